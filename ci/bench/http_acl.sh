#!/usr/bin/env bash
# Benchmark (not a test, not in CI): what an EMQX-style auth_http check costs
# per request, next to our auth_request asking the same service.
#
# One nginx (vendored, release, our module), one worker, serving a small
# static file (not `return`: that runs before the access phase) from four
# locations that differ only in their access check:
#   noauth     no check
#   auth_req   auth_request /_svc/auth;                   1 subrequest (GET)
#   acl        auth_http_acl /_acl/acl;                   1 subrequest (POST, EMQX default params)
#   su+acl     auth_http_superuser /_acl/superuser;       2 subrequests: the superuser
#              auth_http_acl /_acl/acl;                   service says 403, the ACL 200
# And the same two auth variants again from a second nginx, identical but for
# the status zone (authgate_status_zone): auth_req+st, acl+st (issue 12:
# counting costs <= 1.01 x in instructions per request).
# The "service" is a name-based server block of the same nginx on the same
# (free, picked per run) loopback port, reached with keep-alive (`upstream …
# keepalive`), so every subrequest is a real proxied HTTP exchange and all
# the work lands on the one measured worker.
# Figures: req/s and worker CPU per request from one wrk run per variant
# (see ci/bench/lib.sh), and, when valgrind is installed, the deterministic
# user-space instructions per request under callgrind; the ratios against
# auth_req are printed.
#
#   bash ci/bench/http_acl.sh
#   BENCH_DURATION=5 BENCH_ROUNDS=3 BENCH_CALLGRIND=0 bash ci/bench/http_acl.sh   # see ci/bench/lib.sh
#
# Exits non-zero if a variant could not run or answered wrongly.
set -euo pipefail
# One run per variant unless asked for more.
BENCH_ROUNDS=${BENCH_ROUNDS:-1}
# shellcheck source=ci/bench/lib.sh
source "$(dirname "$0")/lib.sh"

variants=(noauth auth_req acl su+acl auth_req+st acl+st)
declare -A path=([noauth]=/none/ [auth_req]=/ar/ [acl]=/acl/ [su+acl]=/su-acl/ [auth_req+st]=/ar/ [acl+st]=/acl/)

bash ci/setup.sh
bench_build_ours

conf=$(
    cat <<EOF
load_module $OURS_MODULE;
worker_processes 1;
error_log logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;

    upstream svc {
        server 127.0.0.1:%%PORT%%;
        keepalive 64;
        keepalive_requests 1000000;
    }

    # the auth service: auth_request 204; superuser 403 (not a superuser);
    # ACL 200 "allow", or 403 for the sanity check's topic
    server {
        listen 127.0.0.1:%%PORT%%;
        server_name svc;
        location = /auth { return 204; }
        location = /superuser { return 403; }
        location = /acl { return 200 "allow"; }
        location = /acl-deny { return 403; }
    }

    server {
        listen 127.0.0.1:%%PORT%% default_server;
        root html;
        auth_http_retry times=0 interval=1s;
        location /_svc/ {
            internal;
            proxy_pass http://svc/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host svc;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
        }
        # auth_http sends its own body; do not switch it off
        location /_acl/ {
            internal;
            proxy_pass http://svc/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host svc;
        }
        location /none/ { }
        location /ar/ { auth_request /_svc/auth; }
        location /acl/ { auth_http_acl /_acl/acl; }
        location /su-acl/ {
            auth_http_superuser /_acl/superuser;
            auth_http_acl /_acl/acl;
        }
        location /denied/ {
            auth_http_superuser /_acl/superuser;
            auth_http_acl /_acl/acl-deny;
        }
    }
}
EOF
)

bench_init
# The variants are locations of one nginx: same worker, same prefix; the
# +st variants those of the second nginx, with the status zone.
declare -A worker front
for n in http_acl http_acl_st; do
    c=$conf
    [[ $n == http_acl_st ]] && c=${c/http \{/http \{ authgate_status_zone bench 1m;}
    bench_start_nginx "$n" "$OURS_NGINX" "$c" || die "nginx did not start (messages above)"
    worker[$n]=$(bench_worker_pid "$BENCH_MASTER")
    front[$n]=$BENCH_PORT
    html=$BENCH_TMP/$n/html
    for d in none ar acl su-acl denied; do
        mkdir -p "$html/$d"
        bench_page "$html/$d/index.html"
    done
    log "bench: $n: $OURS_NGINX + module, worker pid ${worker[$n]}, 127.0.0.1:${front[$n]} (front end and service)"
done
for v in "${variants[@]}"; do
    n=http_acl
    [[ $v == *+st ]] && n=http_acl_st
    BENCH_URL[$v]="http://127.0.0.1:${front[$n]}${path[$v]}index.html"
    BENCH_WORKER[$v]=${worker[$n]}
    BENCH_PREFIX[$v]=$n
done

# Sanity: every variant serves the page, and auth_http really asks (a denying
# ACL gives 403).
for v in "${variants[@]}"; do
    code=$(bench_http_code "${BENCH_URL[$v]}")
    [[ "$code" == 200 ]] || die "$v: GET ${path[$v]}index.html answered $code, expected 200"
done
code=$(bench_http_code "http://127.0.0.1:${front[http_acl]}/denied/index.html")
[[ "$code" == 403 ]] || die "auth_http with a denying ACL answered $code, expected 403"

bench_rounds "${variants[@]}"
bench_callgrind "${variants[@]}"

echo
echo "auth_http benchmark — nginx $(bench_nginx_version "$OURS_NGINX"), 1 worker" \
    "(front end and service), wrk -t1 -c$BENCH_CONNECTIONS, ${BENCH_DURATION}s × $BENCH_ROUNDS round(s)"
# shellcheck disable=SC2034  # a column of the table: bench_table reads it by name
declare -A subs=([noauth]=0 [auth_req]=1 [acl]=1 [su+acl]=2 [auth_req+st]=1 [acl+st]=1)
bench_table 12 "req/s:12:rps" "CPU µs/req:14:cpu" "instr/req:14:ir" "subrequests per request::subs" -- "${variants[@]}"

echo
bench_ratio_line 22 acl/auth_req: acl auth_req rps cpu ir
bench_ratio_line 22 su+acl/auth_req: su+acl auth_req rps cpu ir
bench_ratio_line 22 auth_req+st/auth_req: auth_req+st auth_req rps cpu ir
bench_ratio_line 22 acl+st/acl: acl+st acl rps cpu ir
echo "target: status zone on/off instructions per request <= 1.01 (the +st/ lines, instr/req)"

bench_die_if_failed "${variants[@]}"
