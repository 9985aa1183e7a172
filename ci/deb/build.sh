#!/usr/bin/env bash
# Builds the Debian package libnginx-mod-http-authgate for the nginx of this
# machine (Debian's nginx + nginx-dev), the way Debian builds its nginx
# module packages: dpkg-buildpackage with debhelper's nginx sequence
# (ci/deb/debian/), from the release tarball (ci/dist.sh) as the upstream
# tarball, offline.
#
#   ci/deb/build.sh [--tarball FILE] [--out DIR] [--build-dir DIR] [--cargo-target DIR]
#
#   --tarball       nginx-authgate-VERSION.tar.gz (default: ci/dist.sh makes it)
#   --out           where the .deb, .dsc, ... go (default target/deb)
#   --build-dir     the build tree (emptied first): the tarball is unpacked
#                   in DIR/nginx-authgate-VERSION, dpkg-buildpackage writes
#                   into DIR (default: OUT/build)
#   --cargo-target  CARGO_TARGET_DIR of the module build (default: inside
#                   the build tree). Builds can share one; cargo reuses the
#                   crates compiled by an earlier build only if that build
#                   unpacked the tarball at the same path (a crate's source
#                   path is part of its fingerprint), so give them the same
#                   --build-dir too (ci/rpm/build.sh has the same option)
#
# `dpkg-buildpackage -d`: the Build-Depends are not checked, because the Rust
# toolchain here is rustup's (Debian 12's rustc is older than 1.81). The
# other Build-Depends are Debian packages ci/setup.sh installs.
#
# Debian's nginx_mod build system runs nginx's configure in
# /usr/share/nginx/src, which leaves a top-level Makefile there; it is
# removed again when it was not there before.
#
# Prints the path of the .deb as the only line on stdout.
set -euo pipefail
caller_pwd=$PWD
# shellcheck source=ci/lib.sh
source "$(dirname "$0")/../lib.sh"

tarball="" out="" build_dir="" cargo_target=""
while (($#)); do
    case $1 in
        --tarball | --out | --build-dir | --cargo-target)
            (($# >= 2)) || die "$1 needs a value"
            value=$2
            [[ $value == /* ]] || value=$caller_pwd/$value
            case $1 in
                --tarball) tarball=$value ;;
                --out) out=$value ;;
                --build-dir) build_dir=$value ;;
                --cargo-target) cargo_target=$value ;;
            esac
            shift 2
            ;;
        -h | --help)
            sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
            exit 0
            ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done

command -v dpkg-buildpackage >/dev/null || die "dpkg-buildpackage not found (apt-get install dpkg-dev debhelper)"
nginx_src=/usr/share/nginx/src
[[ -f $nginx_src/conf_flags && -f /usr/share/perl5/Debian/Debhelper/Buildsystem/nginx_mod.pm ]] ||
    die "Debian's nginx-dev is missing (apt-get install nginx-dev)"

[[ -n $tarball ]] || tarball=$(bash ci/dist.sh)
[[ -f $tarball ]] || die "no tarball $tarball"
version=$(basename "$tarball" .tar.gz)
version=${version#nginx-authgate-}
[[ $version =~ ^[0-9] ]] || die "cannot read the version from $tarball (nginx-authgate-VERSION.tar.gz)"

out=${out:-$(target_dir)/deb}
mkdir -p "$out"
out=$(cd "$out" && pwd)
build=${build_dir:-$out/build}
rm -rf "$build"
mkdir -p "$build"

# The source package: upstream tarball + debian/.
cp "$tarball" "$build/nginx-authgate_$version.orig.tar.gz"
tar -xzf "$tarball" -C "$build"
src=$build/nginx-authgate-$version
[[ -f $src/config ]] || die "$tarball does not unpack to nginx-authgate-$version/"
cp -a ci/deb/debian "$src/debian"
sed -e "s/@VERSION@/$version/" -e "s/@DATE@/$(date -R -d "@$(stat -c %Y "$tarball")")/" \
    "$src/debian/changelog.in" >"$src/debian/changelog"
rm "$src/debian/changelog.in"

stray_makefile=0
[[ -e $nginx_src/Makefile ]] || stray_makefile=1
cleanup() { if ((stray_makefile)); then rm -f "$nginx_src/Makefile"; fi; }
trap cleanup EXIT

log "deb: dpkg-buildpackage -us -uc -d (nginx $(/usr/sbin/nginx -v 2>&1 | sed 's|.*/||'), module $version)"
export CARGO_TARGET_DIR=${cargo_target:-$build/cargo}
# debhelper (compat 13) gives the build its own HOME: a rustup toolchain is
# then found only through RUSTUP_HOME.
if [[ -z ${RUSTUP_HOME:-} && -d $HOME/.rustup ]]; then
    export RUSTUP_HOME=$HOME/.rustup
fi
if ! (cd "$src" && dpkg-buildpackage -us -uc -d) >"$build/dpkg-buildpackage.log" 2>&1; then
    tail -40 "$build/dpkg-buildpackage.log" >&2
    die "dpkg-buildpackage failed (full log: $build/dpkg-buildpackage.log)"
fi

debs=("$build"/libnginx-mod-http-authgate_"$version"-1_*.deb)
[[ -f ${debs[0]} ]] || die "no .deb produced (log: $build/dpkg-buildpackage.log)"
for f in "$build"/nginx-authgate_"$version"* "$build"/libnginx-mod-http-authgate_"$version"*; do
    [[ -f $f ]] && cp "$f" "$out/"
done
printf '%s\n' "$out/$(basename "${debs[0]}")"
