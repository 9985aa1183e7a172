#!/usr/bin/env bash
# Benchmark (not a test, not in CI): requests over ntlm-bound upstream
# connections vs the same upstream with plain `keepalive`.
#
# One front nginx (our module, one worker) with two locations proxying to the
# same backend, a second nginx (one worker, `return 200`):
#   keepalive  upstream { server backend; keepalive 64; }
#   bound      upstream { server backend; ntlm 64; }  (every wrk connection
#              sends "Authorization: NTLM <token>", so each one is bound to
#              its own upstream connection after its first request)
# wrk sends the same Authorization header to both, so requests are identical.
# Prints req/s and front-worker CPU µs per request for each, and the ratio
# bound/keepalive. Target: req/s ratio >= 0.95.
#
#   bash ci/bench/ntlm.sh
#   BENCH_DURATION=10 BENCH_ROUNDS=1 BENCH_CONNECTIONS=32 ...   (see ci/bench/lib.sh)
set -euo pipefail
# shellcheck source=ci/bench/lib.sh
source "$(dirname "$0")/lib.sh"
BENCH_ROUNDS=${BENCH_ROUNDS_NTLM:-1}

bash ci/setup.sh
bench_build_ours
bench_init


backend_conf() {
    cat <<EOF
worker_processes 1;
error_log logs/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    server {
        listen 127.0.0.1:%%PORT%%;
        location / { return 200 "conn=\$connection token=bench\n"; }
    }
}
EOF
}
front_conf() {
    cat <<EOF
load_module $OURS_MODULE;
worker_processes 1;
error_log logs/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    keepalive_requests 1000000;
    upstream ka    { server 127.0.0.1:$back_port; keepalive 64; keepalive_requests 1000000; }
    upstream bound { server 127.0.0.1:$back_port; ntlm 64; }
    server {
        listen 127.0.0.1:%%PORT%%;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        location /keepalive/ { proxy_pass http://ka; }
        location /bound/     { proxy_pass http://bound; }
    }
}
EOF
}
# Free ports are picked per run (%%PORT%% in the configs, see ci/bench/lib.sh).
bench_start_nginx backend "$OURS_NGINX" "$(backend_conf)" || die "backend nginx did not start"
back_port=$BENCH_PORT
bench_start_nginx front "$OURS_NGINX" "$(front_conf)" || die "front nginx did not start"
front_port=$BENCH_PORT
front_worker=$(bench_worker_pid "$BENCH_MASTER")

auth='Authorization: NTLM TlRMTVNTUAADAAAAGAAYAEgAAAAYABgAYAAAAAAAAAB4AAAA'
# Sanity: both locations answer, and a bound client keeps one backend connection.
for v in keepalive bound; do
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "$auth" "http://127.0.0.1:$front_port/$v/x")
    [[ "$code" == 200 ]] || die "$v: GET answered $code"
done
conns=$(curl -s -H "$auth" "http://127.0.0.1:$front_port/bound/[1-5]" | sort -u | wc -l)
[[ "$conns" == 1 ]] || die "bound: 5 requests on one client used $conns backend connections"

# wrk with the Authorization header on every request.
wrk_h() { "${BENCH_WRK_PIN[@]}" wrk -t1 -c"$BENCH_CONNECTIONS" -d"$2s" -H "$auth" "$1" 2>&1; }
measure() {
    local url=$1 t0 t1 out reqs rps
    t0=$(bench_cpu_ticks "$front_worker")
    out=$(wrk_h "$url" "$BENCH_DURATION")
    t1=$(bench_cpu_ticks "$front_worker")
    if grep -Eq 'Non-2xx or 3xx responses|Socket errors' <<<"$out"; then
        log "$out"
        die "wrk saw errors against $url"
    fi
    reqs=$(awk '/ requests in / {print $1}' <<<"$out")
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    awk -v d="$((t1 - t0))" -v hz="$CLK_TCK" -v n="$reqs" -v rps="$rps" \
        'BEGIN { printf "%.3f %s %d\n", d * 1e6 / hz / n, rps, n }'
}

log "bench: warm-up ${BENCH_WARMUP}s per variant"
for v in keepalive bound; do wrk_h "http://127.0.0.1:$front_port/$v/x" "$BENCH_WARMUP" >/dev/null; done

declare -A cpu_runs rps_runs
for round in $(seq "$BENCH_ROUNDS"); do
    for v in keepalive bound; do
        read -r cpu rps reqs <<<"$(measure "http://127.0.0.1:$front_port/$v/x")"
        cpu_runs[$v]+="$cpu "
        rps_runs[$v]+="$rps "
        log "bench: round $round/$BENCH_ROUNDS $v: $rps req/s, $cpu µs CPU/req ($reqs requests)"
    done
done
if grep -E '\[(alert|crit|emerg)\]' "$BENCH_TMP/front/logs/error.log"; then
    die "alerts in the front error log"
fi

echo
echo "ntlm benchmark — nginx $("$OURS_NGINX" -v 2>&1 | sed 's/^nginx version: nginx\///'), front and backend 1 worker each," \
    "wrk -t1 -c$BENCH_CONNECTIONS, ${BENCH_DURATION}s × $BENCH_ROUNDS round(s); pinning: ${BENCH_NGINX_PIN[*]:-none}"
printf '%-10s %9s %11s\n' variant "req/s" "CPU µs/req"
declare -A rps_med cpu_med
for v in keepalive bound; do
    # shellcheck disable=SC2086  # the runs are space-separated on purpose
    {
        rps_med[$v]=$(bench_median ${rps_runs[$v]})
        cpu_med[$v]=$(bench_median ${cpu_runs[$v]})
    }
    printf '%-10s %9.0f %11s\n' "$v" "${rps_med[$v]}" "${cpu_med[$v]}"
done
r=$(bench_ratio "${rps_med[bound]}" "${rps_med[keepalive]}")
c=$(bench_ratio "${cpu_med[bound]}" "${cpu_med[keepalive]}")
echo
echo "bound/keepalive: req/s $r, front CPU per request $c"
awk -v r="$r" 'BEGIN { if (r >= 0.95) print "target req/s ratio >= 0.95: MET (" r ")";
                       else print "target req/s ratio >= 0.95: NOT MET (" r ")" }'
