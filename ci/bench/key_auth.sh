#!/usr/bin/env bash
# Benchmark (not a test, not in CI): the cost of key_auth with 100 000
# consumers per request.
#
# Variants, one worker each, serving the same small static file, every
# request carrying the header "apikey: <the key of consumer #50000>":
#   noauth  vendored nginx, no module, no check
#   map     vendored nginx, no module: the nginx-only alternative
#             map $http_apikey $consumer { <100 000 keys> default ""; }
#             if ($consumer = "") { return 401; }
#   ours    our module: key_auth_consumers with the same 100 000 keys
#           (with credential and custom_id), key_auth on
#   quota   as ours, every consumer with limit= (one shared-zone update per
#           request)
# Primary figure asked for: req/s relative to no auth (target ≥ 0.97); the
# worker CPU time per request is printed too (the stable figure on a shared
# machine, see ci/bench/lib.sh).
#
#   bash ci/bench/key_auth.sh
#   BENCH_VARIANTS=noauth,ours bash ci/bench/key_auth.sh
#   BENCH_DURATION=5 BENCH_ROUNDS=1 BENCH_CONSUMERS=10000 ...
set -euo pipefail
# shellcheck source=ci/bench/lib.sh
source "$(dirname "$0")/lib.sh"

IFS=, read -r -a variants <<<"${BENCH_VARIANTS:-noauth,map,ours,quota}"
for v in "${variants[@]}"; do
    [[ "$v" =~ ^(noauth|map|ours|quota)$ ]] || die "unknown variant '$v' (noauth, map, ours, quota)"
done
declare -A label=([noauth]="no auth" [map]="map + if" [ours]="key_auth" [quota]="key_auth+quota")
selected() { [[ " ${variants[*]} " == *" $1 "* ]]; }
N=${BENCH_CONSUMERS:-100000}
KEY=$(printf 'key-%06d-0123456789abcdef' $((N / 2)))

bash ci/setup.sh
bench_build_ours
bench_init

# Consumer files, generated once for all variants.
consumers=$BENCH_TMP/consumers.conf
consumers_limited=$BENCH_TMP/consumers-limited.conf
map_file=$BENCH_TMP/map.conf
awk -v n="$N" 'BEGIN { for (i = 0; i < n; i++) printf "c%d key=key-%06d-0123456789abcdef credential=cred-%d custom_id=id%d;\n", i, i, i, i }' >"$consumers"
awk -v n="$N" 'BEGIN { for (i = 0; i < n; i++) printf "c%d key=key-%06d-0123456789abcdef limit=1000000000/1h;\n", i, i }' >"$consumers_limited"
awk -v n="$N" 'BEGIN { for (i = 0; i < n; i++) printf "key-%06d-0123456789abcdef c%d;\n", i, i }' >"$map_file"

# conf LOAD_MODULE_LINE HTTP_LINES LOCATION_LINES (the port is bench_start_nginx's %%PORT%%)
conf() {
    cat <<EOF
$1
worker_processes 1;
error_log logs/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    keepalive_requests 1000000;
    $2
    server {
        listen 127.0.0.1:%%PORT%%;
        location / {
            root html;
            $3
        }
    }
}
EOF
}

declare -A worker url failed
for v in "${variants[@]}"; do
    load="" http="" loc=""
    case $v in
        noauth) ;;
        map)
            http="map_hash_max_size $((N * 2)); map_hash_bucket_size 128;
    map \$http_apikey \$consumer { include $map_file; default \"\"; }"
            # shellcheck disable=SC2016  # nginx variables, not shell ones
            loc='if ($consumer = "") { return 401; }'
            ;;
        ours)
            load="load_module $OURS_MODULE;"
            http="key_auth_consumers { include $consumers; }"
            loc="key_auth on;"
            ;;
        quota)
            load="load_module $OURS_MODULE;"
            http="key_auth_zone key_auth 16m; key_auth_consumers { include $consumers_limited; }"
            loc="key_auth on;"
            ;;
    esac
    t0=$(date +%s.%N)
    if ! bench_start_nginx "$v" "$OURS_NGINX" "$(conf "$load" "$http" "$loc")"; then
        failed[$v]="nginx did not start with this config (messages above)"
        log "bench: VARIANT FAILED: ${label[$v]}: ${failed[$v]}"
        continue
    fi
    t1=$(date +%s.%N)
    url[$v]="http://127.0.0.1:$BENCH_PORT/index.html"
    printf -v pad '%*s' 150 ''
    printf '<!doctype html><title>bench</title><p>%s</p>\n' "${pad// /x}" >"$BENCH_TMP/$v/html/index.html"
    worker[$v]=$(bench_worker_pid "$BENCH_MASTER")

    # Sanity: the key is accepted; without it (auth variants) 401.
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "apikey: $KEY" "${url[$v]}" || true)
    if [[ "$code" != 200 ]]; then
        failed[$v]="GET with the key answered $code, expected 200"
    elif [[ $v != noauth ]]; then
        code=$(curl -s -o /dev/null -w '%{http_code}' -H "apikey: nope" "${url[$v]}" || true)
        [[ "$code" == 401 ]] || failed[$v]="GET with a wrong key answered $code, expected 401"
    fi
    if [[ -n "${failed[$v]:-}" ]]; then
        log "bench: VARIANT FAILED: ${label[$v]}: ${failed[$v]}"
        continue
    fi
    log "bench: ${label[$v]}: nginx -t + start took $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') s, worker ${worker[$v]}"
done

runnable=()
for v in "${variants[@]}"; do
    [[ -z "${failed[$v]:-}" ]] && runnable+=("$v")
done
((${#runnable[@]})) || die "no variant could run"

BENCH_WRK_ARGS=(-H "apikey: $KEY")
log "bench: warm-up ${BENCH_WARMUP}s per variant"
for v in "${runnable[@]}"; do
    bench_wrk "${url[$v]}" "$BENCH_WARMUP" >/dev/null || failed[$v]="wrk failed during warm-up"
done

declare -A cpu_runs rps_runs
for round in $(seq "$BENCH_ROUNDS"); do
    for v in "${runnable[@]}"; do
        [[ -z "${failed[$v]:-}" ]] || continue
        if ! res=$(bench_measure "${url[$v]}" "${worker[$v]}" "$BENCH_DURATION"); then
            failed[$v]="wrk run failed in round $round"
            continue
        fi
        read -r cpu rps reqs <<<"$res"
        cpu_runs[$v]+="$cpu "
        rps_runs[$v]+="$rps "
        log "bench: round $round/$BENCH_ROUNDS ${label[$v]}: $cpu µs CPU/req, $rps req/s ($reqs requests)"
    done
done

declare -A cpu_med rps_med
echo
echo "key_auth benchmark — $N consumers, nginx $("$OURS_NGINX" -v 2>&1 | sed 's/^nginx version: nginx\///'), 1 worker," \
    "wrk -t1 -c$BENCH_CONNECTIONS, ${BENCH_DURATION}s × $BENCH_ROUNDS rounds, interleaved, medians"
printf '%-16s %12s %14s   %s\n' variant "req/s" "CPU µs/req" "per run (req/s)"
for v in "${variants[@]}"; do
    if [[ -n "${failed[$v]:-}" ]]; then
        cpu_med[$v]=n/a rps_med[$v]=n/a
        printf '%-16s %12s %14s   FAILED: %s\n' "${label[$v]}" n/a n/a "${failed[$v]}"
        continue
    fi
    # shellcheck disable=SC2086  # the runs are space-separated on purpose
    {
        cpu_med[$v]=$(bench_median ${cpu_runs[$v]})
        rps_med[$v]=$(bench_median ${rps_runs[$v]})
    }
    printf '%-16s %12.0f %14s   %s\n' "${label[$v]}" "${rps_med[$v]}" "${cpu_med[$v]}" "${rps_runs[$v]}"
done

echo
ratio_line() {
    local a=$1 b=$2
    selected "$a" && selected "$b" || return 0
    printf '%-16s req/s %6s   CPU/req %6s\n' "$a/$b:" \
        "$(bench_ratio "${rps_med[$a]}" "${rps_med[$b]}")" "$(bench_ratio "${cpu_med[$a]}" "${cpu_med[$b]}")"
}
ratio_line ours noauth
ratio_line quota noauth
ratio_line map noauth
ratio_line ours map

echo
echo "target: key_auth req/s ≥ 0.97 × no auth"
if ! selected ours || ! selected noauth; then
    echo "  not evaluated: variants ours and noauth were not both selected"
elif [[ -n "${failed[ours]:-}" || -n "${failed[noauth]:-}" ]]; then
    echo "  NOT EVALUATED: ours: ${failed[ours]:-ok}; no auth: ${failed[noauth]:-ok}"
else
    r=$(bench_ratio "${rps_med[ours]}" "${rps_med[noauth]}")
    awk -v r="$r" 'BEGIN { if (r >= 0.97) print "  MET (" r ")"; else print "  NOT MET (" r ")" }'
fi

for v in "${variants[@]}"; do
    [[ -z "${failed[$v]:-}" ]] || die "variant '${label[$v]}' failed: ${failed[$v]}"
done
