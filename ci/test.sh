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
#   6b. cargo fuzz                     ci/fuzz.sh: every fuzz target for FUZZ_SECONDS
#                                      (default 10) on the committed seeds; skipped
#                                      without a nightly toolchain
#   7. C reference nginx               same nginx-src, + --with-http_auth_request_module,
#                                      in target/cref so the two builds never reconfigure each other
#   8. prove -r t                      our module in the vendored nginx
#   9. prove t/auth_request_*.t        the C reference, TEST_NGINX_MODULE=none: the same
#                                      tests must describe the C module's behaviour
#   9a. perf gate                   ci/perf-gate.sh: callgrind instructions/request of each
#                                      mechanism over its reference (release build), within 3%
#                                      of ci/perf-baseline.txt (about a minute)
#   9b. soak --ci                      ci/soak.sh: 20 000 requests over every mechanism,
#                                      3 reloads, every answer checked, RSS flat
#  10. prove t/*.t under valgrind     TEST_NGINX_VALGRIND=1: memcheck, 0 errors and 0
#                                      definite leaks in module frames (a few minutes)
#  10b. AddressSanitizer              nginx + module built with ASan, prove -r t
#  10c. prove t/packaging_*.t           TEST_PACKAGING=1: the module built against other
#                                      nginx builds (vendored 1.28 with another configure
#                                      line, Debian's nginx 1.22) in target/against/;
#                                      nginx's configure (config, config.make) from the
#                                      release tarball, offline; the source RPM; the
#                                      Debian package installed and purged (serial)
#  11. nginx matrix                    ci/matrix.sh for each release tarball in
#                                      ../shared/nginx-src/ (nginx 1.30.x stable, 1.31.x
#                                      mainline) and for $NGINX_SOURCE_DIR: steps 7-9
#                                      against that nginx; skipped with a message when
#                                      there is none
#
# Env: PROVE_JOBS (default 2: the tests take free ports of their own and
# mostly wait on the network, so two files at a time halve the wall time on
# 2 cores) runs that many test files in parallel; the packaging tests always
# run one at a time (each builds nginx and the module).
# FUZZ_SECONDS (default 10): how long each fuzz target runs.
# NGINX_SOURCE_DIR=/path/to/nginx-source also runs the whole suite against
# that nginx (the main build stays the vendored one).
set -euo pipefail
user_nginx_source=${NGINX_SOURCE_DIR:-}
# shellcheck source=ci/lib.sh
source "$(dirname "$0")/lib.sh"

suite_start=$SECONDS
summary=()
# Steps run in subshells; they append the number of tests they ran here.
counts=$(mktemp)
trap 'rm -f "$counts"' EXIT

# count_tests KIND: copies stdin to stdout and records how many tests passed,
# from cargo test's "test result:" lines or prove's "Tests=N" line.
count_tests() {
    local kind=$1 out
    out=$(mktemp)
    tee "$out"
    case $kind in
        cargo) awk '/^test result:/ { n += $4 } END { print n + 0 }' "$out" >>"$counts" ;;
        prove) awk -F'Tests=' '/^Files=[0-9]+, Tests=/ { split($2, a, ","); n += a[1] } END { print n + 0 }' "$out" >>"$counts" ;;
    esac
    rm -f "$out"
}

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

# bindgen's bit-field accessors are wrong on some nginx releases (see
# src/nginx/bitfield.rs): the module must not call them outside the files
# allowed below. Their names come from the bindings of this build; a few
# that are also ordinary Rust methods (len, count, uri, read, write, and
# store: the atomics') or methods of the module's own types (active: the
# counters' handle; waiting: the decision cache's flight) are not checked.
lint_bitfields() {
    local bindings names pattern hits
    bindings=$(dirname "$(dirname "$(find_nginx "$(target_dir)" debug)")")/bindings.rs
    [[ -f $bindings ]] || die "no bindings.rs under $(target_dir)/debug/build (cargo build first)"
    # Bit-field names that are also everyday Rust method names (Cell::set,
    # Iterator::skip, Write::flush, ...) are left out: they would flag
    # std calls, and no nginx struct's field of that name is used.
    names=$(awk '/pub fn [a-z_0-9]+\(&self\)/ { match($0, /pub fn [a-z_0-9]+/); name = substr($0, RSTART + 7, RLENGTH - 7) }
                 /self\._bitfield_[0-9]+\.get\(/ && name != "" { print name; name = "" }' "$bindings" |
        grep -vxE 'len|count|uri|write|read|store|active|waiting|set|skip|flush|idle' | sort -u | paste -sd '|')
    [[ -n $names ]] || die "found no bit-field accessors in $bindings"
    pattern="\.(set_)?($names)\("
    hits=$(grep -rnE "$pattern" src --include='*.rs' |
        grep -vE '^src/nginx/(bitfield|variables)\.rs:' |
        grep -vE 'bitfield::[a-z_]+::(set_)?[a-z_]+\(' || true)
    if [[ -n $hits ]]; then
        printf '%s\n' "$hits"
        die "bindgen bit-field accessors called directly (use crate::nginx::bitfield, see its docs)"
    fi
    echo "bit-fields: no bindgen accessor called outside src/nginx/bitfield.rs and variables.rs"
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

export PROVE_JOBS=${PROVE_JOBS:-2}
prove_args=(-r)
[[ -d t/lib ]] && prove_args+=(-I t/lib)
serial_prove_args=("${prove_args[@]}")
[[ "$PROVE_JOBS" -gt 1 ]] && prove_args+=(-j "$PROVE_JOBS")

prove_ours() {
    local tests=()
    mapfile -t tests < <(find t -name '*.t' 2>/dev/null)
    if ((${#tests[@]} == 0)); then
        echo "SKIPPED: no .t files under t/ yet"
        return 0
    fi
    TEST_NGINX_BINARY=$(find_nginx "$(target_dir)" debug)
    TEST_NGINX_MODULE=$(module_path debug)
    # For the tests that load our module into the C reference (must refuse
    # to clash with its auth_request).
    TEST_NGINX_C_AUTH_REQUEST_BINARY=$(find_nginx "$ROOT/target/cref" debug)
    export TEST_NGINX_BINARY TEST_NGINX_MODULE TEST_NGINX_C_AUTH_REQUEST_BINARY
    echo "TEST_NGINX_BINARY=$TEST_NGINX_BINARY"
    echo "TEST_NGINX_MODULE=$TEST_NGINX_MODULE"
    echo "TEST_NGINX_C_AUTH_REQUEST_BINARY=$TEST_NGINX_C_AUTH_REQUEST_BINARY"
    prove "${prove_args[@]}" t 2>&1 | count_tests prove
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
    prove "${prove_args[@]}" "${tests[@]}" 2>&1 | count_tests prove
}

# The nginx tests under valgrind memcheck (t/lib/README: TEST_NGINX_VALGRIND):
# no memcheck error and no definite leak in a module frame. All of t/ but the
# packaging files (they build other nginx) and key_auth_many.t (100 000
# consumers: minutes of startup under valgrind).
prove_valgrind() {
    local tests=()
    mapfile -t tests < <(find t -maxdepth 1 -name '*.t' ! -name 'packaging_*' ! -name 'key_auth_many.t' | sort)
    TEST_NGINX_VALGRIND=1 TEST_NGINX_BINARY=$(find_nginx "$(target_dir)" debug) \
        TEST_NGINX_MODULE=$(module_path debug) prove "${prove_args[@]}" "${tests[@]}" 2>&1 |
        count_tests prove
}

# nginx and the module built with AddressSanitizer (the module through
# rustc's -Zsanitizer=address: RUSTC_BOOTSTRAP=1 lets the stable toolchain
# take that flag), then all of t/ but the packaging files and the C-module
# file (it loads the module into the C-reference nginx). ASan reports go to
# files; any report fails the step. Leak checking stays with valgrind (nginx
# does not free its cycle at exit).
prove_asan() {
    local so nginx logs
    so=$(RUSTC_BOOTSTRAP=1 RUSTFLAGS="-Zsanitizer=address" bash ci/build-against.sh --debug \
        --make-nginx --work "$(target_dir)/against/asan" --vendored "${asan_configure[@]}")
    nginx=$(dirname "$so")/nginx/objs/nginx
    logs=$(mktemp -d)
    # auth_request_c_module.t loads the module into the C-reference nginx,
    # which has no ASan runtime for an instrumented module to link against;
    # config_fuzz.t caps each nginx -t's address space (prlimit --as), which
    # ASan's shadow memory cannot live with.
    local tests=()
    mapfile -t tests < <(find t -maxdepth 1 -name '*.t' ! -name 'packaging_*' \
        ! -name 'auth_request_c_module.t' ! -name 'config_fuzz.t' | sort)
    ASAN_OPTIONS="detect_leaks=0:log_path=$logs/asan" TEST_NGINX_BINARY=$nginx TEST_NGINX_MODULE=$so \
        prove "${prove_args[@]}" "${tests[@]}" 2>&1 | count_tests prove
    if compgen -G "$logs/asan*" >/dev/null; then
        cat "$logs"/asan*
        die "AddressSanitizer reported errors (above)"
    fi
    rm -rf "$logs"
    echo "AddressSanitizer: no reports"
}
asan_configure=(
    --with-http_realip_module --with-http_ssl_module --with-http_v2_module --with-stream
    --with-stream_realip_module --with-stream_ssl_module --with-threads
    "--with-cc-opt=-fsanitize=address -fno-omit-frame-pointer" --with-ld-opt=-fsanitize=address
)

prove_packaging() {
    local tests=()
    mapfile -t tests < <(find t -maxdepth 1 -name 'packaging_*.t' 2>/dev/null | sort)
    if ((${#tests[@]} == 0)); then
        echo "SKIPPED: no t/packaging_*.t files"
        return 0
    fi
    TEST_PACKAGING=1 TEST_NGINX_MODULE=$(module_path debug) prove "${serial_prove_args[@]}" "${tests[@]}" 2>&1 |
        count_tests prove
}

step "setup (ci/setup.sh)" bash ci/setup.sh
step "shellcheck ci scripts" lint_scripts
step "cargo fmt --check" cargo fmt --all --check
step "cargo clippy --all-targets -D warnings" cargo clippy "${cargo_locked[@]}" --all-targets -- -D warnings
cargo_test() { cargo test "${cargo_locked[@]}" 2>&1 | count_tests cargo; }
step "cargo test" cargo_test
step "cargo build (module + vendored nginx)" cargo build "${cargo_locked[@]}"
step "bit-fields only through src/nginx/bitfield.rs" lint_bitfields
step "cargo fuzz targets, ${FUZZ_SECONDS:=10}s each (ci/fuzz.sh)" env FUZZ_SECONDS="$FUZZ_SECONDS" bash ci/fuzz.sh
step "C reference nginx (target/cref, +auth_request)" build_cref
step "prove -r t (our module, vendored nginx)" prove_ours
step "prove t/auth_request_*.t (C reference, no module)" prove_cref
step "perf gate (ci/perf-gate.sh against ci/perf-baseline.txt)" bash ci/perf-gate.sh
soak_lint() {
    cargo fmt --manifest-path ci/soak/Cargo.toml --check
    cargo clippy "${cargo_locked[@]}" --manifest-path ci/soak/Cargo.toml --all-targets -- -D warnings
}
step "ci/soak: cargo fmt --check, clippy -D warnings" soak_lint
step "soak --ci (ci/soak.sh: 20 000 requests, 3 reloads)" bash ci/soak.sh --ci
step "prove t/*.t under valgrind memcheck (TEST_NGINX_VALGRIND=1)" prove_valgrind
step "prove -r t with AddressSanitizer (nginx and module)" prove_asan
step "prove t/packaging_*.t (TEST_PACKAGING=1: other nginx builds, tarball, RPM, .deb)" prove_packaging

matrix_one() { bash ci/matrix.sh "$1" 2>&1 | count_tests prove; }
matrix_sources=()
for tarball in "$ROOT"/../shared/nginx-src/nginx-*.tar.gz; do
    [[ -f $tarball ]] && matrix_sources+=("$(cd "$(dirname "$tarball")" && pwd)/$(basename "$tarball")")
done
[[ -z $user_nginx_source ]] || matrix_sources+=("$user_nginx_source")
if ((${#matrix_sources[@]} == 0)); then
    printf '\n==== nginx matrix ====\nSKIPPED: no nginx release tarballs in %s and NGINX_SOURCE_DIR is not set\n' \
        "$(cd "$ROOT/.." && pwd)/shared/nginx-src"
fi
for source in "${matrix_sources[@]}"; do
    step "nginx matrix: $(basename "$source" .tar.gz) (ci/matrix.sh)" matrix_one "$source"
done

printf '\n==== summary ====\n'
printf '%s\n' "${summary[@]}"
printf 'ALL PASSED in %ds\n' "$((SECONDS - suite_start))"
# The plain closing line CI reads (failures stop the run before this point).
printf 'tests: %d passed, 0 failed\n' "$(awk '{ n += $1 } END { print n + 0 }' "$counts")"
