#!/usr/bin/env bash
# The performance gate (run by ci/test.sh): instructions per request of each
# mechanism, divided by its own reference measured in the same run, compared
# with the committed ratios in ci/perf-baseline.txt. Fails when a ratio
# exceeds its baseline by more than GATE_TOLERANCE (default 3%).
#
#   bash ci/perf-gate.sh            measure and compare
#   bash ci/perf-gate.sh --update   measure and rewrite ci/perf-baseline.txt
#                                   (commit it with the change that moved the
#                                   ratios, and say why in the message)
#   bash ci/perf-gate.sh --table    also measure the peers (the C auth_request
#                                   module in the C reference nginx) and print
#                                   issue 15's side-by-side table of overheads
#                                   and targets (ci/bench/all.sh uses it)
#
# Why it cannot be fooled by noise: the figure is user-space instructions
# (callgrind), not time. nginx runs as one process (master_process off) and
# callgrind collects only inside the event loop (ngx_process_events_and_timers),
# leaving out everything before and after it (configuration, which hashes with
# random secrets, and exit). What would follow the wall clock is pinned: the
# clock is not read during a run (timer_resolution 100s) and the served file
# has a fixed mtime. A variant's
# figure is the difference between a run of GATE_SMALL and one of GATE_LARGE
# requests on one keep-alive connection (curl), divided by the difference in
# requests, so the connection's setup and close cancel out. Run twice, the
# counts repeat exactly.
#
# Rows (mechanism / its reference, all the release build of the module and the
# vendored nginx, a small static file as the protected content):
#   auth_request   auth_request /auth (return 204)   / no auth, no module
#   auth_http      auth_http_acl to a proxied local service / no auth, no module
#   key_auth       GATE_CONSUMERS consumers, key_auth on / map $http_apikey + if,
#                  same keys, no module
#   key_auth_quota the same consumers, each also with limit= / map + if
#   ntlm           upstream { ntlm; } bound connection    / upstream { keepalive; }
#   keepalive_ntlm upstream { keepalive; ntlm; }          / upstream { keepalive; }
#   ntlm_plain     as ntlm, the Authorization on a first request only (as
#                  browsers after the handshake) / keepalive, the same requests
# The ntlm rows proxy to a second nginx (not measured, run normally).
#
# Env: GATE_TOLERANCE (0.03), GATE_SMALL (20), GATE_LARGE (220),
# GATE_CONSUMERS (10000). Changing the request counts or consumer count
# changes the ratios slightly: regenerate the baseline with the same values.
set -euo pipefail
# shellcheck source=ci/bench/lib.sh
source "$(dirname "$0")/bench/lib.sh"

update=0 table=0
case ${1:-} in
    --update) update=1 ;;
    --table) table=1 ;;
    "") ;;
    *) die "usage: ci/perf-gate.sh [--update | --table]" ;;
esac
BASELINE=$ROOT/ci/perf-baseline.txt
GATE_TOLERANCE=${GATE_TOLERANCE:-0.03}
GATE_SMALL=${GATE_SMALL:-20}
GATE_LARGE=${GATE_LARGE:-220}
GATE_CONSUMERS=${GATE_CONSUMERS:-10000}
command -v valgrind >/dev/null || die "valgrind is not installed (ci/setup.sh installs it)"
started=$SECONDS

bench_build_ours
((table)) && bench_build_cref
bench_init
# GATE_KEEP=1: leave the prefixes (configs, callgrind outputs) for callgrind_annotate.
[[ -z ${GATE_KEEP:-} ]] || trap 'bench_stop_all; log "gate: kept $BENCH_TMP"' EXIT

# gate_events_ir NAME N URL [CURL_ARGS...]: event-loop instructions of the
# nginx of prefix $BENCH_TMP/NAME (conf/nginx.conf written, %%PORT%% already
# replaced) serving N requests to URL on one connection under callgrind.
gate_events_ir() {
    local name=$1 n=$2 url=$3 prefix out vpid codes ir
    shift 3
    prefix=$BENCH_TMP/$name
    out=$prefix/logs/callgrind.$n.out
    rm -f "$prefix/logs/cg.pid" "$out"
    valgrind -q --tool=callgrind --callgrind-out-file="$out" --collect-atstart=no \
        --toggle-collect=ngx_process_events_and_timers \
        "$(<"$prefix/binary")" -p "$prefix/" -c "$prefix/conf/nginx.conf" \
        -g "daemon off; master_process off; pid $prefix/logs/cg.pid;" \
        >"$prefix/logs/callgrind.log" 2>&1 &
    vpid=$!
    for _ in $(seq 600); do
        [[ -s "$prefix/logs/cg.pid" ]] && break
        kill -0 "$vpid" 2>/dev/null || break
        sleep 0.1
    done
    if [[ ! -s "$prefix/logs/cg.pid" ]]; then
        kill -KILL "$vpid" 2>/dev/null || true
        wait "$vpid" 2>/dev/null || true
        sed "s/^/  $name: /" "$prefix/logs/callgrind.log" "$prefix/logs/error.log" >&2 || true
        die "$name: nginx under callgrind did not start"
    fi
    # GATE_FIRST_ARGS: curl arguments of one request sent before the N on
    # the same connection (in both runs: it cancels out of the figure).
    local first=() want=$n
    if ((${#GATE_FIRST_ARGS[@]})); then
        first=("${GATE_FIRST_ARGS[@]}" "$url?first" --next -s -o /dev/null -w '%{http_code}\n')
        want=$((n + 1))
    fi
    codes=$(curl -s -o /dev/null -w '%{http_code}\n' "${first[@]}" "$@" "$url?[1-$n]" | sort | uniq -c |
        awk '{print $2 "x" $1}' | tr '\n' ' ')
    # Now and then a TERM that reaches the process under valgrind between two
    # system calls goes unseen until another event: send it again until it is gone.
    for i in $(seq 300); do
        kill -0 "$vpid" 2>/dev/null || break
        ((i % 20 == 1)) && kill -TERM "$vpid" 2>/dev/null
        sleep 0.1
    done
    kill -KILL "$vpid" 2>/dev/null && die "$name: nginx under callgrind did not stop"
    wait "$vpid" 2>/dev/null || true
    [[ "$codes" == "200x$want " ]] || die "$name: under callgrind, $want requests answered: $codes"
    ir=$(awk '/^(summary|totals):/ { print $2; exit }' "$out" 2>/dev/null)
    [[ -n "$ir" ]] || die "$name: no totals in $out"
    printf '%s\n' "$ir"
}

# gate_variant NAME BINARY CONF PATH [CURL_ARGS...]: writes the prefix, checks
# that nginx -t accepts CONF, sets IR[NAME] to instructions per request.
declare -A IR=()
GATE_FIRST_ARGS=()
gate_variant() {
    local name=$1 bin=$2 conf=$3 path=$4 prefix port a b
    shift 4
    [[ -z ${GATE_ONLY:-} || ",$GATE_ONLY," == *",$name,"* ]] || return 0
    prefix=$BENCH_TMP/$name
    mkdir -p "$prefix/conf" "$prefix/logs" "$prefix/html"
    bench_page "$prefix/html/index.html"
    # A fixed mtime: Last-Modified and ETag are printed from it, and printing a
    # 7 costs fewer instructions than printing a 17.
    touch -d '2020-11-11 11:11:11 UTC' "$prefix/html/index.html"
    port=$(bench_free_port)
    printf '%s\n' "${conf//%%PORT%%/$port}" >"$prefix/conf/nginx.conf"
    printf '%s\n' "$bin" >"$prefix/binary"
    "$bin" -p "$prefix/" -c "$prefix/conf/nginx.conf" -t >"$prefix/logs/t.out" 2>&1 || {
        cat "$prefix/logs/t.out" >&2
        die "$name: nginx -t refused the configuration"
    }
    a=$(gate_events_ir "$name" "$GATE_SMALL" "http://127.0.0.1:$port$path" "$@")
    b=$(gate_events_ir "$name" "$GATE_LARGE" "http://127.0.0.1:$port$path" "$@")
    IR[$name]=$(awk -v a="$a" -v b="$b" -v n=$((GATE_LARGE - GATE_SMALL)) 'BEGIN { printf "%.1f\n", (b - a) / n }')
    log "gate: $name: ${IR[$name]} instructions/request"
}

# conf LOAD HTTP_LINES LOCATION_LINES [SERVER_LINES]
conf() {
    cat <<EOF
$1
worker_processes 1;
# The clock is read once at start and then only every 100 s (never during a
# run): otherwise how often it is read, and whether the second changed, would
# follow the wall clock.
timer_resolution 100s;
error_log logs/error.log warn;
events { worker_connections 64; }
http {
    access_log off;
    keepalive_requests 1000000;
    $2
    server {
        listen 127.0.0.1:%%PORT%% default_server;
        root html;
        location / {
            $3
        }
        ${4:-}
    }
}
EOF
}
load="load_module $OURS_MODULE;"

# Consumers and the equivalent map; every request presents consumer N/2's key.
N=$GATE_CONSUMERS
KEY=$(printf 'key-%06d-0123456789abcdef' $((N / 2)))
awk -v n="$N" 'BEGIN { for (i = 0; i < n; i++) printf "c%d key=key-%06d-0123456789abcdef credential=cred-%d custom_id=id%d;\n", i, i, i, i }' >"$BENCH_TMP/consumers.conf"
# The same consumers with a quota: only limit= differs, so that the two rows
# differ by the quota's cost alone (consumer headers and variables included).
awk -v n="$N" 'BEGIN { for (i = 0; i < n; i++) printf "c%d key=key-%06d-0123456789abcdef credential=cred-%d custom_id=id%d limit=1000000000/1h;\n", i, i, i, i }' >"$BENCH_TMP/consumers-limited.conf"
awk -v n="$N" 'BEGIN { for (i = 0; i < n; i++) printf "key-%06d-0123456789abcdef c%d;\n", i, i }' >"$BENCH_TMP/map.conf"

gate_variant noauth "$OURS_NGINX" "$(conf "" "" "")" /index.html -H "apikey: $KEY"
((table)) && gate_variant cref "$CREF_NGINX" "$(conf "" "" "auth_request /auth;" \
    'location = /auth { internal; return 204; }')" /index.html
gate_variant auth_request "$OURS_NGINX" "$(conf "$load" "" "auth_request /auth;" \
    'location = /auth { internal; return 204; }')" /index.html
# shellcheck disable=SC2016  # nginx variables, not shell ones
gate_variant map "$OURS_NGINX" "$(conf "" "map_hash_max_size $((N * 2)); map_hash_bucket_size 128;
    map \$http_apikey \$consumer { include $BENCH_TMP/map.conf; default \"\"; }" \
    'if ($consumer = "") { return 401; }')" /index.html -H "apikey: $KEY"
gate_variant key_auth "$OURS_NGINX" "$(conf "$load" "key_auth_consumers { include $BENCH_TMP/consumers.conf; }" \
    "key_auth on;")" /index.html -H "apikey: $KEY"
gate_variant key_auth_quota "$OURS_NGINX" "$(conf "$load" "key_auth_zone key_auth 4m;
    key_auth_consumers { include $BENCH_TMP/consumers-limited.conf; }" "key_auth on;")" /index.html -H "apikey: $KEY"

# auth_http: the ACL service is a server block of the measured nginx itself,
# reached over a keep-alive upstream (a real proxied exchange per request).
acl_http="upstream svc { server 127.0.0.1:%%PORT%%; keepalive 8; keepalive_requests 1000000; }
    server { listen 127.0.0.1:%%PORT%%; server_name svc; location = /acl { return 200 \"allow\"; } }"
acl_server='location /_acl/ {
            internal;
            proxy_pass http://svc/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host svc;
        }'
gate_variant auth_http "$OURS_NGINX" "$(conf "$load" "$acl_http" "auth_http_acl /_acl/acl;" "$acl_server")" /index.html

# ntlm: the backend is a second nginx, run normally (not measured).
backend_conf="worker_processes 1;
error_log logs/error.log warn;
events { worker_connections 256; }
http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    server { listen 127.0.0.1:%%PORT%%; location / { return 200 \"ok\\n\"; } }
}"
bench_start_nginx backend "$OURS_NGINX" "$backend_conf" || die "the ntlm backend nginx did not start"
back=127.0.0.1:$BENCH_PORT
# Each variant has a configuration of its own that differs from the others
# only in the upstream block (same upstream name, same location, same URI),
# so nothing but the upstream's peer hooks differs between the figures: with
# one location per variant, the URI's length and the location tree's shape
# showed up in the ratios (about 120 instructions in favour of /bound/x).
ntlm_conf() {
    conf "$load" "upstream up { server $back; $1 }" "" 'proxy_http_version 1.1;
        proxy_set_header Connection "";
        location /up/ { proxy_pass http://up; }'
}
auth='Authorization: NTLM TlRMTVNTUAADAAAAGAAYAEgAAAAYABgAYAAAAAAAAAB4AAAA'
gate_variant keepalive "$OURS_NGINX" "$(ntlm_conf 'keepalive 8; keepalive_requests 1000000;')" /up/x -H "$auth"
gate_variant ntlm "$OURS_NGINX" "$(ntlm_conf 'ntlm 8;')" /up/x -H "$auth"
gate_variant keepalive_ntlm "$OURS_NGINX" "$(ntlm_conf 'keepalive 8; keepalive_requests 1000000; ntlm 8;')" /up/x -H "$auth"
# After the NTLM handshake browsers send no Authorization on the bound
# connection: the credentials on a first request only, in both variants.
GATE_FIRST_ARGS=(-H "$auth")
gate_variant keepalive_plain "$OURS_NGINX" "$(ntlm_conf 'keepalive 8; keepalive_requests 1000000;')" /up/x
gate_variant ntlm_plain "$OURS_NGINX" "$(ntlm_conf 'ntlm 8;')" /up/x
GATE_FIRST_ARGS=()
bench_stop_all
# GATE_ONLY=a,b: measure only those variants (their figures are in the log), no verdict.
[[ -z ${GATE_ONLY:-} ]] || exit 0

# mechanism reference, in table order.
rows=(auth_request:noauth auth_http:noauth key_auth:map key_auth_quota:map ntlm:keepalive keepalive_ntlm:keepalive
    ntlm_plain:keepalive_plain)
declare -A RATIO=() REF=()
for row in "${rows[@]}"; do
    m=${row%%:*} ref=${row#*:}
    REF[$m]=$ref
    RATIO[$m]=$(awk -v a="${IR[$m]}" -v b="${IR[$ref]}" 'BEGIN { printf "%.4f\n", a / b }')
done

if ((update)); then
    {
        echo "# Baseline of ci/perf-gate.sh: per mechanism, callgrind instructions per request"
        echo "# divided by those of its reference in the same run (see the script's header)."
        echo "# The gate fails when a ratio exceeds the one here by more than 3%."
        echo "# Regenerate with:  bash ci/perf-gate.sh --update"
        echo "# and commit it with the change that moved a ratio, saying why in the message."
        echo "# Measured with GATE_SMALL=$GATE_SMALL GATE_LARGE=$GATE_LARGE GATE_CONSUMERS=$GATE_CONSUMERS,"
        echo "# nginx $(bench_nginx_version "$OURS_NGINX"), $(git -C "$ROOT" log -1 --format='commit %h' 2>/dev/null || echo 'no commit')."
        echo "#"
        echo "# mechanism      reference  ratio   (instructions/request: ours reference)"
        for row in "${rows[@]}"; do
            m=${row%%:*}
            printf '%-16s %-10s %s   # %s %s\n' "$m" "${REF[$m]}" "${RATIO[$m]}" "${IR[$m]}" "${IR[${REF[$m]}]}"
        done
    } >"$BASELINE"
    log "gate: wrote $BASELINE"
fi

[[ -f $BASELINE ]] || die "no baseline $BASELINE (bash ci/perf-gate.sh --update writes it)"
declare -A BASE=()
while read -r m ref ratio _; do
    [[ -z $m || $m == \#* ]] && continue
    [[ ${REF[$m]:-} == "$ref" ]] || die "baseline row '$m $ref' is not a row of this gate (regenerate it)"
    BASE[$m]=$ratio
done <"$BASELINE"

echo
echo "perf gate — callgrind instructions/request, $((GATE_LARGE - GATE_SMALL)) requests on one keep-alive" \
    "connection, $N consumers; tolerance +$(awk -v t="$GATE_TOLERANCE" 'BEGIN { printf "%g", t * 100 }')%"
printf '%-16s %-10s %10s %10s %8s %9s %8s  %s\n' mechanism reference "ref ir" "ours ir" ratio baseline limit verdict
failed=0
for row in "${rows[@]}"; do
    m=${row%%:*} ref=${REF[$m]}
    base=${BASE[$m]:-}
    if [[ -z $base ]]; then
        verdict="FAIL (no baseline row)" limit=n/a
        failed=1
    else
        limit=$(awk -v b="$base" -v t="$GATE_TOLERANCE" 'BEGIN { printf "%.4f\n", b * (1 + t) }')
        if awk -v r="${RATIO[$m]}" -v l="$limit" 'BEGIN { exit !(r > l) }'; then
            verdict=FAIL
            failed=1
        elif awk -v r="${RATIO[$m]}" -v b="$base" -v t="$GATE_TOLERANCE" 'BEGIN { exit !(r < b * (1 - t)) }'; then
            verdict="ok (better by > tolerance: regenerate the baseline to keep the gain)"
        else
            verdict=ok
        fi
    fi
    printf '%-16s %-10s %10s %10s %8s %9s %8s  %s\n' "$m" "$ref" "${IR[$ref]}" "${IR[$m]}" "${RATIO[$m]}" "${base:-n/a}" "$limit" "$verdict"
done
echo "measured in $((SECONDS - started))s (release build included)"

# The side-by-side table: each mechanism's overhead over its baseline, ours
# and the peer's, in instructions per request.
if ((table)); then
    # row MECHANISM BASELINE_NAME BASE_IR PEER_NAME PEER_IR OURS_IR TARGET_TEXT VERDICT RATIO
    echo
    echo "side by side — callgrind instructions/request (overheads over the baseline), release builds, nginx $(bench_nginx_version "$OURS_NGINX")"
    printf '| %-28s | %-22s | %-28s | %-26s | %-16s | %-28s | %-4s |\n' mechanism baseline peer ours ratio target met?
    printf '|%s|%s|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..30})" "$(printf -- '-%.0s' {1..24})" \
        "$(printf -- '-%.0s' {1..30})" "$(printf -- '-%.0s' {1..28})" "$(printf -- '-%.0s' {1..18})" \
        "$(printf -- '-%.0s' {1..30})" "$(printf -- '-%.0s' {1..6})"
    over() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.0f\n", a - b }'; }
    div() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", a / b }'; }
    met() { awk -v r="$1" -v t="$2" 'BEGIN { print (r <= t ? "yes" : "NO") }'; }
    na=${IR[noauth]} ka=${IR[keepalive]}
    o=$(over "${IR[auth_request]}" "$na") p=$(over "${IR[cref]}" "$na") r=$(div "$o" "$p")
    printf '| %-28s | %-22s | %-28s | %-26s | %-16s | %-28s | %-4s |\n' "auth_request (return 204)" "no auth $na" \
        "C auth_request $p" "$o" "${r}x C" "<= 1.00x C" "$(met "$r" 1.00)"
    o=$(over "${IR[ntlm]}" "$ka") r=$(div "$o" "$ka")
    printf '| %-28s | %-22s | %-28s | %-26s | %-16s | %-28s | %-4s |\n' "ntlm (bound, ntlm alone)" "keepalive $ka" \
        "C nginx-ntlm-module: n/a" "$o" "$(div "${IR[ntlm]}" "$ka")x keepalive" "<= 1.01x keepalive" "$(met "$r" 0.01)"
    o=$(over "${IR[keepalive_ntlm]}" "$ka") r=$(div "$o" "$ka")
    printf '| %-28s | %-22s | %-28s | %-26s | %-16s | %-28s | %-4s |\n' "ntlm (keepalive + ntlm)" "keepalive $ka" \
        "C nginx-ntlm-module: n/a" "$o" "$(div "${IR[keepalive_ntlm]}" "$ka")x keepalive" "<= 1.01x keepalive" "$(met "$r" 0.01)"
    kp=${IR[keepalive_plain]}
    o=$(over "${IR[ntlm_plain]}" "$kp") r=$(div "$o" "$kp")
    printf '| %-28s | %-22s | %-28s | %-26s | %-16s | %-28s | %-4s |\n' "ntlm (bound, no Authorization)" "keepalive $kp" \
        "-" "$o" "$(div "${IR[ntlm_plain]}" "$kp")x keepalive" "<= 1.01x keepalive" "$(met "$r" 0.01)"
    o=$(over "${IR[key_auth]}" "$na") p=$(over "${IR[map]}" "$na") r=$(div "$o" "$p")
    printf '| %-28s | %-22s | %-28s | %-26s | %-16s | %-28s | %-4s |\n' "key_auth, $N consumers" "no auth $na" \
        "map + if $p" "$o" "${r}x map" "<= 1.50x map" "$(met "$r" 1.50)"
    q=$(over "${IR[key_auth_quota]}" "${IR[key_auth]}")
    printf '| %-28s | %-22s | %-28s | %-26s | %-16s | %-28s | %-4s |\n' "key_auth + quota" "key_auth ${IR[key_auth]}" \
        "-" "$q" "-" "<= +600 over key_auth" "$(met "$q" 600)"
    o=$(over "${IR[auth_http]}" "$na")
    printf '| %-28s | %-22s | %-28s | %-26s | %-16s | %-28s | %-4s |\n' "auth_http acl (proxied svc)" "no auth $na" \
        "-" "$o" "-" "(none)" "-"
    echo "(ntlm: no C ntlm module is built here, so its peer column is empty; the C figure the issue quotes is +98.)"
fi
if ((failed)); then
    echo "perf gate: FAILED (a ratio above its baseline + tolerance: find the cost with callgrind_annotate," \
        "or, for an intended change, bash ci/perf-gate.sh --update and say why in the commit)"
    exit 1
fi
echo "perf gate: passed"
