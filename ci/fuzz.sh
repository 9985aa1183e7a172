#!/usr/bin/env bash
# Runs every cargo fuzz target under fuzz/ for a bounded time, starting from
# the committed seed corpus (fuzz/corpus/<target>/seed-*), which it copies to
# a temporary directory so the repository's corpus is never modified.
#
#   FUZZ_SECONDS   seconds per target (default 30)
#   FUZZ_TARGETS   space-separated subset of targets (default: all)
#
# Needs a nightly toolchain (`cargo +nightly`); without one it prints
# "SKIPPED: ..." and exits 0. Installs cargo-fuzz when it is missing. The
# first run builds the fuzz crate (and, once, its own vendored nginx under
# fuzz/target, which the fuzz binaries do not link), a couple of minutes on
# 2 cores. A crash leaves its input in fuzz/artifacts/<target>/; reproduce
# with `cd fuzz && cargo +nightly fuzz run <target> <that file>`.
set -euo pipefail
# shellcheck source=ci/lib.sh
source "$(dirname "$0")/lib.sh"

seconds=${FUZZ_SECONDS:-30}
[[ $seconds =~ ^[0-9]+$ && $seconds -gt 0 ]] || die "FUZZ_SECONDS must be a positive integer (got '$seconds')"

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "SKIPPED: no nightly toolchain (cargo +nightly)"
    exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    log "cargo-fuzz is missing: installing it"
    cargo install cargo-fuzz --locked
fi

# The fuzz crate depends on nginx-sys too. When the main debug build exists,
# point nginx-sys at its configured vendored nginx (source in cargo's
# registry, objs/ in target/) so that it does not configure and build a copy
# of its own in fuzz/target/ (about two minutes); the fuzz targets never call
# nginx, they only need its headers for the bindings.
if main_nginx=$(find_nginx "$(target_dir)" debug 2>/dev/null); then
    NGINX_SOURCE_DIR=$(vendored_nginx_source)
    NGINX_BUILD_DIR=$(dirname "$main_nginx")
    export NGINX_SOURCE_DIR NGINX_BUILD_DIR
    log "fuzz: nginx headers from the main build ($NGINX_BUILD_DIR)"
fi

cd "$ROOT/fuzz"
targets=()
if [[ -n ${FUZZ_TARGETS:-} ]]; then
    read -r -a targets <<<"$FUZZ_TARGETS"
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
((${#targets[@]})) || die "no fuzz targets (cargo +nightly fuzz list printed none)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

start=$SECONDS
cargo +nightly fuzz build
echo "fuzz build: $((SECONDS - start))s"

failed=()
for target in "${targets[@]}"; do
    [[ -d corpus/$target ]] || die "no seed corpus fuzz/corpus/$target/"
    mkdir -p "$work/$target"
    cp corpus/"$target"/seed-* "$work/$target/"
    t0=$SECONDS
    log_file=$work/$target.log
    if cargo +nightly fuzz run "$target" "$work/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
        >"$log_file" 2>&1; then
        runs=$(awk '/^stat::number_of_executed_units:/ { print $NF }' "$log_file")
        printf 'ok    %-22s %3ds  %s runs, corpus %d -> %d inputs\n' "$target" "$((SECONDS - t0))" \
            "${runs:-?}" "$(find corpus/"$target" -name 'seed-*' | wc -l)" "$(find "$work/$target" -type f | wc -l)"
    else
        printf 'FAIL  %-22s %3ds  (last lines of its log below; the input is in fuzz/artifacts/%s/)\n' \
            "$target" "$((SECONDS - t0))" "$target"
        tail -n 40 "$log_file"
        failed+=("$target")
    fi
done

echo "fuzzing: ${#targets[@]} targets, ${seconds}s each, $((SECONDS - start))s in all"
((${#failed[@]} == 0)) || die "fuzz targets failed: ${failed[*]}"
