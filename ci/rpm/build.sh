#!/usr/bin/env bash
# Builds the source and binary RPMs of nginx-module-authgate
# (ci/rpm/nginx-module-authgate.spec) from the release tarball, against a
# given nginx source tree, offline: `rpmbuild -ba --nodeps`, as an RPM build
# host would, minus the BuildRequires check (this is not an RPM system).
#
#   ci/rpm/build.sh --nginx-source DIR [--configure-args "ARGS"] [--tarball FILE]
#                   [--out DIR] [--build-dir DIR] [--cargo-target DIR] [--nginx-org]
#
#   --nginx-source    the nginx source tree (its version is the package's)
#   --configure-args  the spec's nginx_configure_args (default: the spec's)
#   --tarball         nginx-authgate-VERSION.tar.gz (default: ci/dist.sh makes it)
#   --out             where the .rpm and .src.rpm go (default target/rpm);
#                     rpmbuild's tree is DIR/rpmbuild
#   --build-dir       rpmbuild's %_builddir, where %setup unpacks the tarball
#                     (DIR/nginx-authgate-VERSION; default: in rpmbuild's tree)
#   --cargo-target    CARGO_TARGET_DIR of the module build. Builds can share
#                     one; cargo reuses the crates compiled by an earlier build
#                     only if that build unpacked the tarball at the same path
#                     (a crate's source path is part of its fingerprint), so
#                     give them the same --build-dir too (ci/deb/build.sh has
#                     the same option)
#   --nginx-org       --with nginx_org: "Requires: nginx = 1:VERSION"
#
# The spec copied into the source RPM gets this tree's module version.
# Prints the binary RPM's path, then the source RPM's, one per line.
set -euo pipefail
caller_pwd=$PWD
# shellcheck source=ci/lib.sh
source "$(dirname "$0")/../lib.sh"

nginx_source="" configure_args="" tarball="" out="" build_dir="" cargo_target="" nginx_org=0 have_args=0
abs() { if [[ $1 == /* ]]; then printf '%s\n' "$1"; else printf '%s\n' "$caller_pwd/$1"; fi; }
while (($#)); do
    case $1 in
        --nginx-source | --configure-args | --tarball | --out | --build-dir | --cargo-target)
            (($# >= 2)) || die "$1 needs a value"
            case $1 in
                --nginx-source) nginx_source=$(abs "$2") ;;
                --configure-args) configure_args=$2 have_args=1 ;;
                --tarball) tarball=$(abs "$2") ;;
                --out) out=$(abs "$2") ;;
                --build-dir) build_dir=$(abs "$2") ;;
                --cargo-target) cargo_target=$(abs "$2") ;;
            esac
            shift 2
            ;;
        --nginx-org) nginx_org=1 && shift ;;
        -h | --help)
            sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
            exit 0
            ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done

command -v rpmbuild >/dev/null || die "rpmbuild not found (Debian: apt-get install rpm)"
[[ -n $nginx_source ]] || die "need --nginx-source DIR (see --help)"
[[ -f $nginx_source/src/core/nginx.h ]] || die "$nginx_source is not an nginx source tree"
[[ -n $tarball ]] || tarball=$(bash ci/dist.sh)
[[ -f $tarball ]] || die "no tarball $tarball"
version=$(sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -1)
[[ $(basename "$tarball") == "nginx-authgate-$version.tar.gz" ]] ||
    die "$tarball is not nginx-authgate-$version.tar.gz (this tree's version)"

out=${out:-$(target_dir)/rpm}
mkdir -p "$out"
out=$(cd "$out" && pwd)
top=$out/rpmbuild
rm -rf "$top"
mkdir -p "$top"/{SOURCES,SPECS,BUILD,BUILDROOT,RPMS,SRPMS}
cp "$tarball" "$top/SOURCES/"
sed "s/^%global authgate_version .*/%global authgate_version $version/" \
    ci/rpm/nginx-module-authgate.spec >"$top/SPECS/nginx-module-authgate.spec"

defs=(--define "_topdir $top" --define "nginx_source $nginx_source")
if [[ -n $build_dir ]]; then
    mkdir -p "$build_dir"
    defs+=(--define "_builddir $build_dir")
fi
((have_args == 0)) || defs+=(--define "nginx_configure_args $configure_args")
((nginx_org == 0)) || defs+=(--with nginx_org)
[[ -z $cargo_target ]] || export CARGO_TARGET_DIR=$cargo_target

log "rpm: rpmbuild -ba --nodeps (nginx source $nginx_source, module $version)"
if ! rpmbuild -ba --nodeps "${defs[@]}" "$top/SPECS/nginx-module-authgate.spec" >"$top/rpmbuild.log" 2>&1; then
    tail -40 "$top/rpmbuild.log" >&2
    die "rpmbuild failed (full log: $top/rpmbuild.log)"
fi
rpms=("$top"/RPMS/*/nginx-module-authgate-*.rpm)
srpms=("$top"/SRPMS/nginx-module-authgate-*.src.rpm)
[[ -f ${rpms[0]} && -f ${srpms[0]} ]] || die "rpmbuild produced no packages (log: $top/rpmbuild.log)"
cp "${rpms[0]}" "${srpms[0]}" "$out/"
printf '%s\n' "$out/$(basename "${rpms[0]}")" "$out/$(basename "${srpms[0]}")"
