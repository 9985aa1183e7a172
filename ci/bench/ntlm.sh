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
# Both variants are locations of the one front nginx: same worker, same
# Authorization header (wrk sends it on every request), different upstream.
variants=(keepalive bound)
for v in "${variants[@]}"; do
    BENCH_URL[$v]="http://127.0.0.1:$front_port/$v/x"
    BENCH_WORKER[$v]=$front_worker
done
BENCH_WRK_ARGS=(-H "$auth")

# Sanity: both locations answer, and a bound client keeps one backend connection.
for v in "${variants[@]}"; do
    code=$(bench_http_code -H "$auth" "${BENCH_URL[$v]}")
    [[ "$code" == 200 ]] || die "$v: GET answered $code"
done
conns=$(curl -s -H "$auth" "http://127.0.0.1:$front_port/bound/[1-5]" | sort -u | wc -l)
[[ "$conns" == 1 ]] || die "bound: 5 requests on one client used $conns backend connections"

bench_rounds "${variants[@]}"
# Stop before the report: its one target line needs both figures.
bench_die_if_failed "${variants[@]}"
if grep -E '\[(alert|crit|emerg)\]' "$BENCH_TMP/front/logs/error.log"; then
    die "alerts in the front error log"
fi

echo
echo "ntlm benchmark — nginx $(bench_nginx_version "$OURS_NGINX"), front and backend 1 worker each," \
    "wrk -t1 -c$BENCH_CONNECTIONS, ${BENCH_DURATION}s × $BENCH_ROUNDS round(s); pinning: ${BENCH_NGINX_PIN[*]:-none}"
bench_table 10 "req/s:9:rps" "CPU µs/req:11:cpu" -- "${variants[@]}"
r=$(bench_ratio "${BENCH_RPS[bound]}" "${BENCH_RPS[keepalive]}")
c=$(bench_ratio "${BENCH_CPU[bound]}" "${BENCH_CPU[keepalive]}")
echo
echo "bound/keepalive: req/s $r, front CPU per request $c"
awk -v r="$r" 'BEGIN { if (r >= 0.95) print "target req/s ratio >= 0.95: MET (" r ")";
                       else print "target req/s ratio >= 0.95: NOT MET (" r ")" }'
