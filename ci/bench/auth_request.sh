#!/usr/bin/env bash
# Benchmark (not a test, not in CI): the cost of auth_request per request.
#
# Three variants, one worker each, same config apart from the auth lines,
# serving a small static file (not `return`: that runs in the rewrite phase,
# before the access phase, so no auth would run at all):
#   noauth  vendored nginx, no module, no auth_request
#   cref    reference nginx (same nginx-src + --with-http_auth_request_module),
#           C `auth_request /auth;` with `location = /auth { internal; return 204; }`
#   ours    vendored nginx + our module (load_module), the identical auth lines
# Primary metric: worker CPU time per request (see ci/bench/lib.sh for why);
# req/s is shown too. Target: ours/C CPU per request <= 1.00 (noise ±3%).
#
#   bash ci/bench/auth_request.sh
#   BENCH_VARIANTS=noauth,cref bash ci/bench/auth_request.sh   # subset
#   BENCH_DURATION=5 BENCH_ROUNDS=5 ...                          # see ci/bench/lib.sh
#
# Exits non-zero if a selected variant could not run or answered wrongly.
set -euo pipefail
# shellcheck source=ci/bench/lib.sh
source "$(dirname "$0")/lib.sh"

IFS=, read -r -a variants <<<"${BENCH_VARIANTS:-noauth,cref,ours}"
for v in "${variants[@]}"; do
    [[ "$v" =~ ^(noauth|cref|ours)$ ]] || die "unknown variant '$v' (noauth, cref, ours)"
done
declare -A label=([noauth]="no auth" [cref]="C auth_request" [ours]="ours (authgate)")
selected() { [[ " ${variants[*]} " == *" $1 "* ]]; }

bash ci/setup.sh
bench_build_ours
selected cref && bench_build_cref

# conf LOAD_MODULE_LINE AUTH_LINE DENY_BLOCK PORT
conf() {
    cat <<EOF
$1
worker_processes 1;
error_log logs/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    # Measure request processing, not connection setup: wrk keeps its
    # connections, nginx would otherwise close them every 1000 requests.
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$4;
        location = /auth { internal; return 204; }
        location = /auth-deny { internal; return 403; }
        location / {
            root html;
            $2
        }
        $3
    }
}
EOF
}
auth_line='auth_request /auth;'
# Only for the sanity check that auth really runs: must answer 403.
deny_block='location /denied/ { root html; auth_request /auth-deny; }'

bench_init
declare -A worker url failed
port=$BENCH_PORT_BASE
for v in "${variants[@]}"; do
    port=$((port + 1))
    case $v in
        noauth) bin=$OURS_NGINX load="" auth="" deny="" ;;
        cref) bin=$CREF_NGINX load="" auth=$auth_line deny=$deny_block ;;
        ours) bin=$OURS_NGINX load="load_module $OURS_MODULE;" auth=$auth_line deny=$deny_block ;;
    esac
    url[$v]="http://127.0.0.1:$port/index.html"
    if ! bench_start_nginx "$v" "$bin" "$(conf "$load" "$auth" "$deny" "$port")"; then
        failed[$v]="nginx did not start with this config (messages above)"
        log "bench: VARIANT FAILED: ${label[$v]}: ${failed[$v]}"
        continue
    fi
    html=$BENCH_TMP/$v/html
    mkdir -p "$html/denied"
    # A small static page (~200 bytes), the same for every variant.
    printf -v pad '%*s' 150 ''
    printf '<!doctype html><title>bench</title><p>%s</p>\n' "${pad// /x}" >"$html/index.html"
    cp "$html/index.html" "$html/denied/index.html"
    worker[$v]=$(bench_worker_pid "$BENCH_MASTER")

    # Sanity: the page is served, and (auth variants) a denying auth location
    # does deny, i.e. the access-phase handler really runs.
    code=$(curl -s -o /dev/null -w '%{http_code}' "${url[$v]}" || true)
    if [[ "$code" != 200 ]]; then
        failed[$v]="GET /index.html answered $code, expected 200"
    elif [[ -n "$deny" ]]; then
        code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/denied/index.html" || true)
        [[ "$code" == 403 ]] || failed[$v]="auth_request to a 403 location answered $code, expected 403"
    fi
    if [[ -n "${failed[$v]:-}" ]]; then
        log "bench: VARIANT FAILED: ${label[$v]}: ${failed[$v]}"
        continue
    fi
    log "bench: ${label[$v]}: $bin${load:+ + module}, worker pid ${worker[$v]}, ${url[$v]}"
done

runnable=()
for v in "${variants[@]}"; do
    [[ -z "${failed[$v]:-}" ]] && runnable+=("$v")
done
((${#runnable[@]})) || die "no variant could run"

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
echo "auth_request benchmark — nginx $("$OURS_NGINX" -v 2>&1 | sed 's/^nginx version: nginx\///'), 1 worker," \
    "wrk -t1 -c$BENCH_CONNECTIONS, ${BENCH_DURATION}s × $BENCH_ROUNDS rounds, interleaved, medians"
printf '%-17s %14s %12s   %s\n' variant "CPU µs/req" "req/s" "per run (CPU µs/req)"
for v in "${variants[@]}"; do
    if [[ -n "${failed[$v]:-}" ]]; then
        cpu_med[$v]=n/a rps_med[$v]=n/a
        printf '%-17s %14s %12s   FAILED: %s\n' "${label[$v]}" n/a n/a "${failed[$v]}"
        continue
    fi
    # shellcheck disable=SC2086  # the runs are space-separated on purpose
    {
        cpu_med[$v]=$(bench_median ${cpu_runs[$v]})
        rps_med[$v]=$(bench_median ${rps_runs[$v]})
    }
    printf '%-17s %14s %12.0f   %s\n' "${label[$v]}" "${cpu_med[$v]}" "${rps_med[$v]}" "${cpu_runs[$v]}"
done

echo
ratio_line() {
    local a=$1 b=$2
    selected "$a" && selected "$b" || return 0
    printf '%-16s CPU/req %6s   req/s %6s\n' "$a/$b:" \
        "$(bench_ratio "${cpu_med[$a]}" "${cpu_med[$b]}")" "$(bench_ratio "${rps_med[$a]}" "${rps_med[$b]}")"
}
ratio_line ours cref
ratio_line ours noauth
ratio_line cref noauth

echo
echo "target: ours/C CPU per request <= 1.00 (noise ±3%)"
if ! selected ours || ! selected cref; then
    echo "  not evaluated: variants ours and cref were not both selected"
elif [[ -n "${failed[ours]:-}" || -n "${failed[cref]:-}" ]]; then
    echo "  NOT EVALUATED: ours: ${failed[ours]:-ok}; C: ${failed[cref]:-ok}"
else
    r=$(bench_ratio "${cpu_med[ours]}" "${cpu_med[cref]}")
    awk -v r="$r" 'BEGIN {
        if (r <= 1.00) print "  MET (" r ")";
        else if (r <= 1.03) print "  within noise, not clearly met (" r " ≤ 1.03)";
        else print "  NOT MET (" r ")" }'
fi

for v in "${variants[@]}"; do
    [[ -z "${failed[$v]:-}" ]] || die "variant '${label[$v]}' failed: ${failed[$v]}"
done
