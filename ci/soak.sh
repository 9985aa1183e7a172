#!/usr/bin/env bash
# The soak (issue 9 §3): many requests across every mechanism, with nginx
# reloaded under load, every answer checked, the workers' RSS watched.
#
#   bash ci/soak.sh          1 000 000 requests, a reload every 5 s (minutes)
#   bash ci/soak.sh --ci     20 000 requests, 3 reloads (what CI runs)
#
# It builds the client/backends program (ci/soak/, std only), starts its
# backends and an nginx with the module (debug build, as the tests use;
# SOAK_PROFILE=release for the release one) on 127.0.0.1, runs the program,
# stops everything it started and exits with the program's status: non-zero
# on any wrong answer, connection error, failed reload, RSS growth, backend
# anomaly, or an [alert]/[crit]/[emerg] or crashed worker in nginx's log.
#
# Env (all optional): SOAK_REQUESTS, SOAK_CONNECTIONS (16), SOAK_SEED (1),
# SOAK_RELOAD_INTERVAL (5 s; full run), SOAK_RELOADS (3; --ci), SOAK_TIMEOUT
# (hard limit in s: 3600, --ci 300), SOAK_PROFILE (debug), SOAK_KEEP=1 keeps
# the temp dir (nginx.conf, error.log).
set -euo pipefail
# shellcheck source=ci/bench/lib.sh
source "$(dirname "$0")/bench/lib.sh"

ci=0
case "${1:-}" in
    --ci) ci=1 ;;
    "") ;;
    *) die "usage: $0 [--ci]" ;;
esac

profile=${SOAK_PROFILE:-debug}
connections=${SOAK_CONNECTIONS:-16}
seed=${SOAK_SEED:-1}
quota_limit=50
if ((ci)); then
    requests=${SOAK_REQUESTS:-20000}
    # A few seconds in all: sample often enough to see a trend.
    timing=(--reloads "${SOAK_RELOADS:-3}" --rss-interval 0.1)
    hard_timeout=${SOAK_TIMEOUT:-300}
else
    requests=${SOAK_REQUESTS:-1000000}
    timing=(--reload-interval "${SOAK_RELOAD_INTERVAL:-5}" --rss-interval 1)
    hard_timeout=${SOAK_TIMEOUT:-3600}
fi

release=()
[[ $profile == release ]] && release=(--release)
log "soak: cargo build ${release[*]} (module + vendored nginx)"
cargo build "${cargo_locked[@]}" "${release[@]}" >&2
nginx=$(find_nginx "$(target_dir)" "$profile")
module=$(module_path "$profile")
log "soak: cargo build --release --manifest-path ci/soak/Cargo.toml"
# Its own target dir, also when CARGO_TARGET_DIR is set for the main build.
cargo build "${cargo_locked[@]}" --release --manifest-path ci/soak/Cargo.toml \
    --target-dir "$ROOT/ci/soak/target" >&2
soak=$ROOT/ci/soak/target/release/authgate-soak

# Config, pid file and logs in a temp dir of their own, removed on exit.
tmp=$(mktemp -d /tmp/authgate-soak.XXXXXX)
chmod 755 "$tmp"
backends_pid=""
master=""
# shellcheck disable=SC2317  # run by the EXIT trap
cleanup() {
    if [[ -n "$master" ]]; then
        kill -TERM "$master" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$master" 2>/dev/null || break; sleep 0.1; done
    fi
    if [[ -n "$backends_pid" ]]; then
        kill -TERM "$backends_pid" 2>/dev/null || true
        wait "$backends_pid" 2>/dev/null || true
    fi
    if [[ -n "${SOAK_KEEP:-}" ]]; then
        log "soak: kept $tmp"
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT

"$soak" backends --ports-file "$tmp/ports" &
backends_pid=$!
for _ in $(seq 100); do
    [[ -f "$tmp/ports" ]] && break
    kill -0 "$backends_pid" 2>/dev/null || die "the backends exited at start"
    sleep 0.05
done
[[ -f "$tmp/ports" ]] || die "the backends did not start"
declare -A port=()
while IFS='=' read -r name p; do port[$name]=$p; done <"$tmp/ports"

user_line=""
((EUID == 0)) && user_line="user root;"
mkdir -p "$tmp/logs"
write_conf() {
    cat >"$tmp/nginx.conf" <<CONF
load_module $module;
$user_line
worker_processes 2;
pid $tmp/nginx.pid;
error_log $tmp/logs/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $tmp/client_body_temp;
    proxy_temp_path $tmp/proxy_temp;
    fastcgi_temp_path $tmp/fastcgi_temp;
    uwsgi_temp_path $tmp/uwsgi_temp;
    scgi_temp_path $tmp/scgi_temp;

    upstream app  { server 127.0.0.1:${port[app]};  keepalive 16; }
    upstream auth { server 127.0.0.1:${port[auth]}; keepalive 16; }
    upstream acl  { server 127.0.0.1:${port[acl]};  keepalive 16; }
    upstream ntlm_app {
        server 127.0.0.1:${port[ntlm]};
        keepalive 8;
        ntlm 64;
        ntlm_timeout 60s;
    }

    # One window of an hour: the whole run, reloads included, is one window.
    key_auth_zone soak 1m;
    key_auth_consumers {
        alice key=alice-key credential=cred-alice custom_id=c-alice;
        bob   key=bob-key   credential=cred-bob;
        quota key=quota-key credential=cred-quota limit=$quota_limit/1h limit_status=429;
    }

    server {
        listen 127.0.0.1:$1;
        proxy_http_version 1.1;
        proxy_set_header Connection "";

        location /ar/ {
            auth_request /_auth;
            proxy_pass http://app;
        }
        location = /_auth {
            internal;
            proxy_pass http://auth/check;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header Connection "";
            proxy_set_header X-Original-URI \$request_uri;
        }

        location /ka/ {
            key_auth on;
            key_auth_hide_credentials on;
            proxy_pass http://app;
        }

        location /acl/ {
            auth_http_superuser /_acl/superuser method=post params="clientid=%c,username=%u";
            auth_http_acl /_acl/acl method=get params="access=%A,username=%u,clientid=%c,topic=%t";
            auth_http_client_id \$http_x_client_id;
            auth_http_nomatch deny;
            proxy_pass http://app;
        }
        location /_acl/ {
            internal;
            proxy_pass http://acl;
        }

        location /ntlm/ {
            proxy_pass http://ntlm_app;
        }
    }
}
CONF
}

nginx_cmd=("$nginx" -p "$tmp/" -c "$tmp/nginx.conf")
started=0
for _ in 1 2 3 4 5; do
    front=$(bench_free_port)
    write_conf "$front"
    "${nginx_cmd[@]}" -t -q 2>"$tmp/start.out" || {
        cat "$tmp/start.out" >&2
        die "nginx rejected the soak config ($tmp/nginx.conf; SOAK_KEEP=1 keeps it)"
    }
    if "${nginx_cmd[@]}" 2>>"$tmp/start.out"; then
        started=1
        break
    fi
    grep -q 'Address already in use' "$tmp/start.out" || break
    log "soak: port $front taken meanwhile, trying another"
done
if ((!started)); then
    cat "$tmp/start.out" >&2
    die "nginx did not start"
fi
for _ in $(seq 100); do
    [[ -s "$tmp/nginx.pid" ]] && break
    sleep 0.05
done
master=$(cat "$tmp/nginx.pid")
log "soak: nginx $(bench_nginx_version "$nginx") ($profile) master $master on 127.0.0.1:$front;" \
    "backends app ${port[app]}, auth ${port[auth]}, acl ${port[acl]}, ntlm ${port[ntlm]}"
log "soak: $requests requests over $connections connections, seed $seed, ${timing[*]}, hard timeout ${hard_timeout}s"

rc=0
timeout "$hard_timeout" "$soak" run --port "$front" --master "$master" --backends-file "$tmp/ports" \
    --workers 2 --requests "$requests" --connections "$connections" --ntlm-connections 4 \
    --seed "$seed" --quota-limit "$quota_limit" "${timing[@]}" \
    --rss-pct 10 --rss-mb 2 --warmup-pct 10 || rc=$?
((rc != 124)) || log "soak: FAILED: hard timeout of ${hard_timeout}s reached"

# nginx's own view: no crash, nothing it calls alert/crit/emerg.
bad=$(grep -E '\[(alert|crit|emerg)\]|exited on signal' "$tmp/logs/error.log" || true)
errors=$(grep -c '\[error\]' "$tmp/logs/error.log" || true)
printf 'nginx error.log: %s [error] lines, %s [alert]/[crit]/[emerg]/crash lines\n' \
    "$errors" "$(grep -c . <<<"$bad" || true)"
grep '\[error\]' "$tmp/logs/error.log" | head -n 5 || true
if [[ -n "$bad" ]]; then
    printf '%s\n' "$bad" | head -n 20
    log "soak: FAILED: nginx logged alerts or a worker crashed"
    ((rc != 0)) || rc=1
fi
exit "$rc"
