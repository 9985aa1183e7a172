#!/usr/bin/env bash
# Benchmark (not a test, not in CI): what the decision cache costs and
# saves per request.
#
# Variants, one worker each, same config apart from the auth lines, serving
# a small static file (not `return`: it runs before the access phase):
#   noauth     vendored nginx, no module, no auth
#   cref       reference nginx (same nginx-src + --with-http_auth_request_module),
#              C `auth_request /auth;`, `location = /auth { internal; return 204; }`
#   ours       our auth_request, the identical lines, no cache
#   miss       ours with auth_request_cache: every request a new key
#              ($request_id), so every one misses, asks and stores (the zone
#              full: each store evicts the least recently used entry)
#   hit        ours with auth_request_cache: one key ($http_host), every request
#              after the first is a hit, no subrequest
#   http       our auth_http_acl (`location = /acl { internal; return 200; }`), no cache
#   http_hit   the same with auth_http_cache: every request after the first a hit
# Primary metric: worker CPU time per request (ci/bench/lib.sh); instructions
# per request under callgrind where valgrind is installed.
# Target (issue 10): a hit costs at most a quarter of the C module's overhead
# over no auth: (hit - noauth) <= (cref - noauth) / 4, in instructions.
#
#   bash ci/bench/auth_cache.sh
#   BENCH_VARIANTS=noauth,cref,hit bash ci/bench/auth_cache.sh   # subset
#   BENCH_DURATION=5 BENCH_ROUNDS=3 ...                            # see ci/bench/lib.sh
#
# Exits non-zero if a selected variant could not run or answered wrongly.
set -euo pipefail
# shellcheck source=ci/bench/lib.sh
source "$(dirname "$0")/lib.sh"

declare -a variants
bench_select_variants variants noauth,cref,ours,miss,hit,http,http_hit
BENCH_LABEL=([noauth]="no auth" [cref]="C auth_request" [ours]="ours, no cache"
    [miss]="ours, cache miss" [hit]="ours, cache hit" [http]="auth_http, no cache"
    [http_hit]="auth_http, cache hit")

bash ci/setup.sh
bench_build_ours
if [[ " ${variants[*]} " == *" cref "* ]]; then
    bench_build_cref
fi

# conf LOAD_MODULE_LINE HTTP_LINES AUTH_LINES
conf() {
    cat <<CONF
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
        location = /auth { internal; return 204; }
        location = /acl { internal; return 200; }
        location / {
            root html;
            $3
        }
    }
}
CONF
}

zone='auth_cache_zone decisions 1m;'
cache='auth_request_cache decisions; auth_request_cache_valid 1m;'
bench_init
for v in "${variants[@]}"; do
    load="load_module $OURS_MODULE;" http="" bin=$OURS_NGINX
    case $v in
        noauth) load="" auth="" ;;
        cref) bin=$CREF_NGINX load="" auth='auth_request /auth;' ;;
        ours) auth='auth_request /auth;' ;;
        miss) http=$zone auth="auth_request /auth; $cache auth_request_cache_key \$http_host\$request_id;" ;;
        hit) http=$zone auth="auth_request /auth; $cache auth_request_cache_key \$http_host;" ;;
        http) auth='auth_http_acl /acl;' ;;
        http_hit) http=$zone auth='auth_http_acl /acl; auth_http_cache decisions; auth_http_cache_valid any 1m;' ;;
    esac
    if ! bench_start_nginx "$v" "$bin" "$(conf "$load" "$http" "$auth")"; then
        bench_fail "$v" "nginx did not start with this config (messages above)"
        continue
    fi
    BENCH_URL[$v]="http://127.0.0.1:$BENCH_PORT/index.html"
    html=$BENCH_TMP/$v/html
    mkdir -p "$html"
    bench_page "$html/index.html"
    BENCH_WORKER[$v]=$(bench_worker_pid "$BENCH_MASTER")
    code=$(bench_http_code "${BENCH_URL[$v]}")
    if [[ "$code" != 200 ]]; then
        bench_fail "$v" "GET /index.html answered $code, expected 200"
        continue
    fi
    log "bench: ${BENCH_LABEL[$v]}: $bin${load:+ + module}, worker pid ${BENCH_WORKER[$v]}"
done

bench_rounds "${variants[@]}"
bench_callgrind "${variants[@]}"

echo
echo "decision cache benchmark — nginx $(bench_nginx_version "$OURS_NGINX"), 1 worker," \
    "wrk -t1 -c$BENCH_CONNECTIONS, ${BENCH_DURATION}s × $BENCH_ROUNDS rounds interleaved, medians;" \
    "pinning: ${BENCH_NGINX_PIN[*]:-none}"
bench_table 22 "CPU µs/req:11:cpu" "req/s:9:rps" "instr/req:11:ir" "per run: CPU µs/req::cpu_runs" -- "${variants[@]}"

echo
bench_ratio_line 16 hit/C: hit cref cpu rps ir
bench_ratio_line 16 miss/C: miss cref cpu rps ir
bench_ratio_line 16 hit/no-auth: hit noauth cpu rps ir
bench_ratio_line 16 http_hit/http: http_hit http cpu rps ir

# Overheads over no auth, in instructions (deterministic) and CPU time.
overhead() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "") print "n/a"; else printf "%.0f\n", a - b }'; }
echo
echo "overhead over no auth (instr/req; CPU ns/req):"
for v in cref ours miss hit http http_hit; do
    [[ " ${variants[*]} " == *" $v "* && " ${variants[*]} " == *" noauth "* ]] || continue
    printf '  %-22s %8s  %8s\n' "$(bench_label "$v")" \
        "$(overhead "${BENCH_IR[$v]:-}" "${BENCH_IR[noauth]:-}")" \
        "$(awk -v a="${BENCH_CPU[$v]:-}" -v b="${BENCH_CPU[noauth]:-}" 'BEGIN { if (a == "" || b == "") print "n/a"; else printf "%.0f\n", (a - b) * 1000 }')"
done

echo
echo "target: a hit's overhead over no auth <= a quarter of the C module's (instructions)"
if [[ -n "${BENCH_IR[hit]:-}" && -n "${BENCH_IR[cref]:-}" && -n "${BENCH_IR[noauth]:-}" ]]; then
    awk -v h="${BENCH_IR[hit]}" -v c="${BENCH_IR[cref]}" -v n="${BENCH_IR[noauth]}" 'BEGIN {
        q = (c - n) / 4; o = h - n;
        printf "  hit overhead %.0f, C overhead %.0f, quarter %.0f: %s (hit/C overhead %.2f)\n",
            o, c - n, q, (o <= q ? "MET" : "NOT MET"), (c - n > 0 ? o / (c - n) : 0) }'
else
    echo "  not evaluable (needs valgrind for instructions per request)"
fi

bench_die_if_failed "${variants[@]}"
