#!/usr/bin/env bash
# The test suite against one more nginx release: the nginx users download
# today (1.30 stable, 1.31 mainline), or your own nginx source.
#
#   ci/matrix.sh SOURCE          SOURCE: an nginx source tree (release layout
#                                with ./configure, or a git checkout), or a
#                                release tarball nginx-X.Y.Z.tar.gz
#
# For that source, all in target/against/ (reused while source and configure
# line are unchanged, so a second run only re-runs the tests):
#   1. nginx with the C ngx_http_auth_request_module compiled in, no module
#      (the reference: our auth_request tests must describe it);
#   2. nginx plus our module (debug profile), configured like the vendored
#      build (ci/test.sh's main build);
#   3. prove -r t with our module in that nginx (the packaging tests skip
#      themselves: they build their own nginx);
#   4. prove t/auth_request_*.t against the C reference (TEST_NGINX_MODULE=none);
#   before 3, cargo test against that nginx's headers (bit-field layout).
#
# Tarballs are unpacked once into target/nginx-src/. ci/test.sh runs this for
# every tarball in ../shared/nginx-src/ and for $NGINX_SOURCE_DIR when set.
set -euo pipefail
caller_pwd=$PWD
# shellcheck source=ci/lib.sh
source "$(dirname "$0")/lib.sh"

(($# == 1)) || die "usage: ci/matrix.sh NGINX_SOURCE_DIR|nginx-X.Y.Z.tar.gz"
src=$1
[[ $src == /* ]] || src=$caller_pwd/$src

# The vendored build's configure line (nginx-sys's defaults), so the same
# tests apply; --with-compat is added by build-against.sh.
configure=(
    --with-http_realip_module --with-http_ssl_module --with-http_v2_module
    --with-stream --with-stream_realip_module --with-stream_ssl_module --with-threads
)

if [[ -f $src && $src == *.tar.gz ]]; then
    name=$(basename "$src" .tar.gz)
    unpacked=$ROOT/target/nginx-src/$name
    if [[ ! -f $unpacked/src/core/nginx.h ]]; then
        log "matrix: unpacking $src"
        rm -rf "$unpacked" && mkdir -p "$ROOT/target/nginx-src"
        tmp=$(mktemp -d "$ROOT/target/nginx-src/.unpack.XXXXXX")
        tar -xzf "$src" -C "$tmp"
        [[ -f $tmp/$name/src/core/nginx.h ]] || die "$src does not unpack to $name/"
        mv "$tmp/$name" "$unpacked" && rmdir "$tmp"
    fi
    src=$unpacked
fi
[[ -f $src/src/core/nginx.h ]] || die "$src is not an nginx source tree"
version=$(sed -n 's/^#define NGINX_VERSION *"\(.*\)"/\1/p' "$src/src/core/nginx.h")

log "matrix: nginx $version: C reference (--with-http_auth_request_module)"
cref=$(bash ci/build-against.sh --make-nginx --nginx-only "$src" "${configure[@]}" \
    --with-http_auth_request_module)
log "matrix: nginx $version: nginx and our module"
module=$(bash ci/build-against.sh --debug --make-nginx "$src" "${configure[@]}")
# The nginx binary it built and checked, from its build.env (NGINX=...).
nginx=$(
    # shellcheck disable=SC1091 # written by build-against.sh
    source "$(dirname "$module")/build.env"
    printf '%s\n' "${NGINX:?build.env names no nginx}"
)

# The unit tests against this nginx's headers: among them, every bit-field
# accessor checked against the C compiler's layout of this release.
work=$(dirname "$module")
printf '\n---- nginx %s: cargo test (bindings and bit-fields of this nginx) ----\n' "$version"
if ! out=$(NGINX_SOURCE_DIR=$work/nginx CARGO_TARGET_DIR=$work/cargo cargo test "${cargo_locked[@]}" 2>&1); then
    printf '%s\n' "$out" | tail -60
    die "cargo test failed against nginx $version"
fi
printf '%s\n' "$out" | grep -E '^test result' || true

prove_args=(-I t/lib)
[[ "${PROVE_JOBS:-1}" -gt 1 ]] && prove_args+=(-j "$PROVE_JOBS")

printf '\n---- nginx %s: prove -r t (our module) ----\n' "$version"
printf 'TEST_NGINX_BINARY=%s\nTEST_NGINX_MODULE=%s\n' "$nginx" "$module"
TEST_NGINX_BINARY=$nginx TEST_NGINX_MODULE=$module TEST_NGINX_C_AUTH_REQUEST_BINARY=$cref \
    prove "${prove_args[@]}" -r t

printf '\n---- nginx %s: prove t/auth_request_*.t (C reference, no module) ----\n' "$version"
printf 'TEST_NGINX_BINARY=%s\n' "$cref"
mapfile -t tests < <(find t -maxdepth 1 -name 'auth_request_*.t' | sort)
TEST_NGINX_BINARY=$cref TEST_NGINX_MODULE=none prove "${prove_args[@]}" "${tests[@]}"
