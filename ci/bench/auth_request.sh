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
# req/s is shown too, and (with valgrind) user-space instructions per request
# under callgrind, which repeat exactly where CPU time wobbles by ±5%.
# Target: ours/C CPU per request <= 1.00 (noise ±3%).
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

# conf LOAD_MODULE_LINE AUTH_LINE DENY_BLOCK (the port is bench_start_nginx's %%PORT%%)
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
        listen 127.0.0.1:%%PORT%%;
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
for v in "${variants[@]}"; do
    case $v in
        noauth) bin=$OURS_NGINX load="" auth="" deny="" ;;
        cref) bin=$CREF_NGINX load="" auth=$auth_line deny=$deny_block ;;
        ours) bin=$OURS_NGINX load="load_module $OURS_MODULE;" auth=$auth_line deny=$deny_block ;;
    esac
    if ! bench_start_nginx "$v" "$bin" "$(conf "$load" "$auth" "$deny")"; then
        failed[$v]="nginx did not start with this config (messages above)"
        log "bench: VARIANT FAILED: ${label[$v]}: ${failed[$v]}"
        continue
    fi
    port=$BENCH_PORT
    url[$v]="http://127.0.0.1:$port/index.html"
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

# Deterministic companion metric (see ci/bench/lib.sh): the daemons are
# stopped first, their prefixes and ports reused one at a time.
declare -A ir
bench_stop_all
if ((BENCH_CALLGRIND)); then
    for v in "${runnable[@]}"; do
        [[ -z "${failed[$v]:-}" ]] || continue
        log "bench: callgrind, ${label[$v]}: instructions per request ($BENCH_CG_REQUESTS requests)"
        ir[$v]=$(bench_callgrind_per_req "$v" "${url[$v]}") || failed[$v]="callgrind run failed"
    done
fi

declare -A cpu_med rps_med
echo
echo "auth_request benchmark — nginx $("$OURS_NGINX" -v 2>&1 | sed 's/^nginx version: nginx\///'), 1 worker," \
    "wrk -t1 -c$BENCH_CONNECTIONS, ${BENCH_DURATION}s × $BENCH_ROUNDS rounds interleaved, medians;" \
    "pinning: ${BENCH_NGINX_PIN[*]:-none}"
printf '%-16s %11s %9s %11s   %s\n' variant "CPU µs/req" "req/s" "instr/req" "per run: CPU µs/req"
for v in "${variants[@]}"; do
    if [[ -n "${failed[$v]:-}" ]]; then
        cpu_med[$v]=n/a rps_med[$v]=n/a ir[$v]=n/a
        printf '%-16s %11s %9s %11s   FAILED: %s\n' "${label[$v]}" n/a n/a n/a "${failed[$v]}"
        continue
    fi
    # shellcheck disable=SC2086  # the runs are space-separated on purpose
    {
        cpu_med[$v]=$(bench_median ${cpu_runs[$v]})
        rps_med[$v]=$(bench_median ${rps_runs[$v]})
    }
    printf '%-16s %11s %9.0f %11s   %s\n' "${label[$v]}" "${cpu_med[$v]}" "${rps_med[$v]}" \
        "${ir[$v]:-skipped}" "${cpu_runs[$v]}"
done

echo
declare -A short=([noauth]=no-auth [cref]=C [ours]=ours)
ratio_line() {
    local a=$1 b=$2
    selected "$a" && selected "$b" || return 0
    printf '%-14s CPU/req %6s   req/s %6s   instr/req %6s\n' "${short[$a]}/${short[$b]}:" \
        "$(bench_ratio "${cpu_med[$a]}" "${cpu_med[$b]}")" \
        "$(bench_ratio "${rps_med[$a]}" "${rps_med[$b]}")" \
        "$(bench_ratio "${ir[$a]:-}" "${ir[$b]:-}")"
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
        if (r <= 1.00) print "  MET: " r;
        else if (r <= 1.03) print "  within noise, not clearly met: " r " (<= 1.03)";
        else print "  NOT MET: " r }'
    if [[ -n "${ir[ours]:-}" && -n "${ir[cref]:-}" ]]; then
        echo "  (deterministic cross-check: ours/C user-space instructions per request" \
            "$(bench_ratio "${ir[ours]}" "${ir[cref]}"))"
    fi
fi

for v in "${variants[@]}"; do
    [[ -z "${failed[$v]:-}" ]] || die "variant '${label[$v]}' failed: ${failed[$v]}"
done
