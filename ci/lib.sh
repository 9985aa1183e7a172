# shellcheck shell=bash
# Variables set here are used by the scripts that source this file:
# shellcheck disable=SC2034
# Helpers shared by the scripts under ci/ (sourced, never run).
#
# Sourcing it cds to the repository root, so every script works from any cwd,
# and sets ROOT to that root.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1

# The nginx that `cargo build` vendors must be configured exactly as
# nginx-src's defaults: an NGX_CONFIGURE_ARGS left in the caller's environment
# would, for example, compile the C auth_request module into the nginx our
# module loads into, and its directive would clash with ours. Builds that want
# extra flags (the C reference) set them for that one command only.
unset NGX_CONFIGURE_ARGS NGX_CFLAGS NGX_LDFLAGS NGX_VERSION
# Likewise nginx-sys's NGINX_SOURCE_DIR / NGINX_BUILD_DIR: the main build is
# always the vendored one. ci/test.sh reads NGINX_SOURCE_DIR before this
# point, as "also run the suite against this nginx" (ci/matrix.sh), and
# build-against.sh sets it for its own cargo command only.
unset NGINX_SOURCE_DIR NGINX_BUILD_DIR

log() { printf '%s\n' "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

# Cargo.lock is committed: in CI a build that would have to change it means
# someone forgot to commit it, which must fail rather than silently resolve.
cargo_locked=()
if [[ -n "${CI:-}" ]]; then
    cargo_locked=(--locked)
fi

# find_nginx TARGET_DIR PROFILE: path of the nginx binary that nginx-sys built
# under TARGET_DIR (several nginx-sys-* build dirs can exist after dependency
# or flag changes; the newest one is the live one).
find_nginx() {
    local target_dir=$1 profile=$2 best="" f
    for f in "$target_dir/$profile"/build/nginx-sys-*/out/objs/nginx; do
        [[ -x "$f" ]] || continue
        if [[ -z "$best" || "$f" -nt "$best" ]]; then
            best=$f
        fi
    done
    [[ -n "$best" ]] || die "no nginx binary under $target_dir/$profile/build/nginx-sys-*/out/objs/ (did the nginx-sys build run?)"
    printf '%s\n' "$best"
}

# target_dir: where cargo puts the main build (respects CARGO_TARGET_DIR).
target_dir() {
    local t=${CARGO_TARGET_DIR:-$ROOT/target}
    [[ "$t" = /* ]] || t=$ROOT/$t
    printf '%s\n' "$t"
}

# module_path PROFILE: our cdylib in the main build.
module_path() {
    local so
    so="$(target_dir)/$1/libnginx_authgate.so"
    [[ -f "$so" ]] || die "module not built: $so"
    printf '%s\n' "$so"
}

# check_module_loads NGINX SO DIR: `nginx -t` with a minimal configuration
# that loads SO (written under DIR, which is the prefix; nothing is bound).
# Fails with nginx's own message (e.g. "is not binary compatible").
check_module_loads() {
    local nginx=$1 so=$2 dir=$3 out
    mkdir -p "$dir/logs"
    cat >"$dir/check.conf" <<CONF
load_module $so;
pid $dir/nginx.pid;
error_log stderr;
events {}
http {
    access_log off;
    client_body_temp_path $dir/client_body_temp;
    proxy_temp_path $dir/proxy_temp;
    fastcgi_temp_path $dir/fastcgi_temp;
    uwsgi_temp_path $dir/uwsgi_temp;
    scgi_temp_path $dir/scgi_temp;
    server { listen 127.0.0.1:8080; location / { root $dir; } }
}
CONF
    # An nginx built with AddressSanitizer: no leak check, nginx -t exits
    # without freeing its cycle (LeakSanitizer reports that as leaks and
    # fails the exit status wherever it can run; leaks are valgrind's step).
    if ! out=$(ASAN_OPTIONS="detect_leaks=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}" \
        "$nginx" -p "$dir/" -e stderr -c "$dir/check.conf" -t 2>&1); then
        log "$out"
        die "$nginx does not load $so (above)"
    fi
}

# vendored_nginx_source: the nginx source tree of the nginx-src crate that
# `cargo build` vendors (in cargo's registry).
vendored_nginx_source() {
    local manifest
    manifest=$(cargo metadata --format-version 1 "${cargo_locked[@]}" 2>/dev/null |
        grep -o '"manifest_path":"[^"]*/nginx-src-[^"]*/Cargo.toml"' | head -1 |
        sed 's/^"manifest_path":"//; s/"$//') || true
    [[ -n $manifest ]] || die "cannot find the nginx-src crate (cargo metadata)"
    printf '%s\n' "$(dirname "$manifest")/nginx"
}
