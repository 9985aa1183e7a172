#!/usr/bin/env bash
# Makes the release tarball nginx-authgate-VERSION.tar.gz: the sources git
# tracks (as they are in the working tree), plus every crate of Cargo.lock
# (`cargo vendor`, in vendor/) and a .cargo/config.toml that points cargo at
# them, so that the unpacked tree builds with no network:
#
#   tar -xzf nginx-authgate-VERSION.tar.gz
#   cd /path/to/nginx-source
#   CARGO_NET_OFFLINE=true ./configure --with-compat \
#       --add-dynamic-module=/path/to/nginx-authgate-VERSION && make modules
#
# (or, outside nginx's build, `cargo build --release --offline` in the
# unpacked tree with NGINX_BUILD_DIR set). Source0 of the RPM spec and the
# upstream tarball of the Debian package.
#
#   ci/dist.sh [--out DIR]      default DIR: target/dist
#
# The vendored crates are cached per Cargo.lock (target/dist/vendor-<hash>):
# `cargo vendor` needs crates.io or cargo's local cache, once.
# Output: progress on stderr; the tarball's path as the only line on stdout.
set -euo pipefail
caller_pwd=$PWD
# shellcheck source=ci/lib.sh
source "$(dirname "$0")/lib.sh"

out=""
while (($#)); do
    case $1 in
        --out)
            (($# >= 2)) || die "--out needs a directory"
            out=$2
            [[ $out == /* ]] || out=$caller_pwd/$out
            shift 2
            ;;
        -h | --help)
            sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
            exit 0
            ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done
out=${out:-$(target_dir)/dist}
mkdir -p "$out"
out=$(cd "$out" && pwd)

version=$(sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -1)
[[ -n $version ]] || die "no version in Cargo.toml"
name=nginx-authgate-$version
cache=$(target_dir)/dist

# 1. The crates, once per Cargo.lock (one ci/dist.sh at a time fills the cache).
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
lock_hash=$(md5sum Cargo.lock | cut -c1-12)
vendor=$cache/vendor-$lock_hash
if [[ ! -f $vendor/config.toml ]]; then
    log "dist: cargo vendor (Cargo.lock $lock_hash)"
    rm -rf "$vendor" "$vendor.tmp"
    mkdir -p "$vendor.tmp"
    # --versioned-dirs: stable directory names; the printed source
    # replacement is what the tarball's .cargo/config.toml says.
    cargo vendor --locked --versioned-dirs "$vendor.tmp/vendor" >"$vendor.tmp/config.toml.in" 2>"$vendor.tmp/vendor.log" || {
        tail -20 "$vendor.tmp/vendor.log" >&2
        die "cargo vendor failed"
    }
    {
        echo "# Written by ci/dist.sh: the crates of Cargo.lock are in vendor/;"
        echo "# cargo uses them instead of crates.io (no network needed)."
        sed "s|directory = \".*\"|directory = \"vendor\"|" "$vendor.tmp/config.toml.in"
        echo
        echo "[net]"
        echo "offline = true"
    } >"$vendor.tmp/config.toml"
    grep -q 'directory = "vendor"' "$vendor.tmp/config.toml" || die "unexpected cargo vendor output: $vendor.tmp/config.toml.in"
    mv "$vendor.tmp" "$vendor"
fi

# 2. The tree: git's files as they are now, the vendored crates, the config.
stage=$(mktemp -d "$out/.stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/$name/.cargo"
# (files git knows but that were deleted in the working tree are left out)
git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do
        if [[ -e $f || -L $f ]]; then printf '%s\0' "$f"; fi
    done |
    xargs -0 -r cp --parents -a -t "$stage/$name"
[[ -f $stage/$name/Cargo.toml && -f $stage/$name/config ]] || die "staging the sources failed"
cp -a "$vendor/vendor" "$stage/$name/vendor"
cp "$vendor/config.toml" "$stage/$name/.cargo/config.toml"

tarball=$out/$name.tar.gz
log "dist: $tarball"
# Reproducible: fixed owner and mtime (the last commit's), sorted entries.
mtime=$(git log -1 --format=%ct 2>/dev/null || echo 0)
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$mtime" \
    -C "$stage" -cf - "$name" | gzip -n -6 >"$stage.tar.gz"
mv "$stage.tar.gz" "$tarball"
log "dist: $(du -h "$tarball" | cut -f1) ($(find "$vendor/vendor" -mindepth 1 -maxdepth 1 | wc -l) crates)"
printf '%s\n' "$tarball"
