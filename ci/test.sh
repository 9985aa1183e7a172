#!/usr/bin/env bash
# THE test command (CI runs it through .ci/run). Stops at the first failing
# step and exits non-zero, naming the step.
#
#   1. ci/setup.sh                     system packages, rust components
#   2. shellcheck on ci/ and .ci/      the scripts that guard everything else
#   3. cargo fmt --check
#   4. cargo clippy --all-targets -- -D warnings
#   5. cargo test
#   6. cargo build                     module + vendored nginx (debug)
#   7. C reference nginx               same nginx-src, + --with-http_auth_request_module,
#                                      in target/cref so the two builds never reconfigure each other
#   8. prove -r t                      our module in the vendored nginx
#   9. prove t/auth_request_*.t        the C reference, TEST_NGINX_MODULE=none: the same
#                                      tests must describe the C module's behaviour
#
# Env: PROVE_JOBS (default 1) runs that many test files in parallel, for local
# use once the tests are known not to share ports.
set -euo pipefail
# shellcheck source=ci/lib.sh
source "$(dirname "$0")/lib.sh"

suite_start=$SECONDS
summary=()

# step NAME CMD...: runs CMD with a banner, timing, and a clear failure line.
# The subshell with its own `set -e` keeps errexit working inside shell
# functions used as steps (bash ignores -e in anything tested by if/||).
step() {
    local name=$1 start=$SECONDS rc
    shift
    printf '\n==== %s ====\n' "$name"
    set +e
    (
        set -e
        "$@"
    )
    rc=$?
    set -e
    local took=$((SECONDS - start))
    if ((rc != 0)); then
        printf '\n**** FAILED: %s (exit %d, after %ds; total %ds) ****\n' "$name" "$rc" "$took" "$((SECONDS - suite_start))"
        exit "$rc"
    fi
    summary+=("$(printf '%5ds  %s' "$took" "$name")")
    printf -- '---- ok: %s (%ds)\n' "$name" "$took"
}

lint_scripts() {
    local files=()
    mapfile -t files < <(git ls-files -co --exclude-standard -- 'ci/*.sh' 'ci/**/*.sh' .ci/run | sort -u)
    ((${#files[@]})) || return 0
    # -x follows the `source` lines into ci/lib.sh and ci/bench/lib.sh.
    shellcheck -x "${files[@]}"
    echo "shellcheck: ${#files[@]} scripts clean"
}

build_cref() {
    CARGO_TARGET_DIR="$ROOT/target/cref" NGX_CONFIGURE_ARGS=--with-http_auth_request_module \
        cargo build "${cargo_locked[@]}" -p nginx-sys
    local nginx
    nginx=$(find_nginx "$ROOT/target/cref" debug)
    # Proves the flag took effect (a stale configure would silently lack it).
    "$nginx" -V 2>&1 | grep -q -- --with-http_auth_request_module ||
        die "$nginx was not configured with --with-http_auth_request_module"
    echo "C reference: $nginx"
}

prove_args=(-r)
[[ -d t/lib ]] && prove_args+=(-I t/lib)
[[ "${PROVE_JOBS:-1}" -gt 1 ]] && prove_args+=(-j "$PROVE_JOBS")

prove_ours() {
    local tests=()
    mapfile -t tests < <(find t -name '*.t' 2>/dev/null)
    if ((${#tests[@]} == 0)); then
        echo "SKIPPED: no .t files under t/ yet"
        return 0
    fi
    TEST_NGINX_BINARY=$(find_nginx "$(target_dir)" debug)
    TEST_NGINX_MODULE=$(module_path debug)
    export TEST_NGINX_BINARY TEST_NGINX_MODULE
    echo "TEST_NGINX_BINARY=$TEST_NGINX_BINARY"
    echo "TEST_NGINX_MODULE=$TEST_NGINX_MODULE"
    prove "${prove_args[@]}" t
}

prove_cref() {
    local tests=()
    mapfile -t tests < <(find t -maxdepth 1 -name 'auth_request_*.t' 2>/dev/null | sort)
    if ((${#tests[@]} == 0)); then
        echo "SKIPPED: no t/auth_request_*.t files yet"
        return 0
    fi
    TEST_NGINX_BINARY=$(find_nginx "$ROOT/target/cref" debug)
    export TEST_NGINX_BINARY TEST_NGINX_MODULE=none
    echo "TEST_NGINX_BINARY=$TEST_NGINX_BINARY"
    echo "TEST_NGINX_MODULE=$TEST_NGINX_MODULE"
    prove "${prove_args[@]}" "${tests[@]}"
}

step "setup (ci/setup.sh)" bash ci/setup.sh
step "shellcheck ci scripts" lint_scripts
step "cargo fmt --check" cargo fmt --all --check
step "cargo clippy --all-targets -D warnings" cargo clippy "${cargo_locked[@]}" --all-targets -- -D warnings
step "cargo test" cargo test "${cargo_locked[@]}"
step "cargo build (module + vendored nginx)" cargo build "${cargo_locked[@]}"
step "C reference nginx (target/cref, +auth_request)" build_cref
step "prove -r t (our module, vendored nginx)" prove_ours
step "prove t/auth_request_*.t (C reference, no module)" prove_cref

printf '\n==== summary ====\n'
printf '%s\n' "${summary[@]}"
printf 'ALL PASSED in %ds\n' "$((SECONDS - suite_start))"
