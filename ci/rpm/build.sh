#!/usr/bin/env bash
# Builds the nginx-module-authgate RPM from a module already built against a
# given nginx (no compiling, no network).
#
#   ci/rpm/build.sh --so MODULE.so --nginx NGINX_BINARY [--out DIR] [--epoch N] [--with-abi]
#   ci/rpm/build.sh --debian [--out DIR]     ci/build-against.sh --debian, then package it
#
#   --so       the module (e.g. target/against/<name>/libnginx_authgate.so)
#   --nginx    the nginx it was built against: its version becomes
#              "Requires: nginx = VERSION", and `nginx -t` must load the module
#              before anything is packaged
#   --out      where the .rpm goes (default target/rpm); rpmbuild's tree is DIR/rpmbuild
#   --epoch    epoch of the target nginx package (nginx.org's packages: 1)
#   --with-abi also "Requires: nginx(abi) = VERSION" (Fedora/EPEL nginx)
#
# Prints the path of the .rpm as the only line on stdout.
set -euo pipefail
caller_pwd=$PWD # lib.sh cds to the repository root; paths given are the caller's
# shellcheck source=ci/lib.sh
source "$(dirname "$0")/../lib.sh"

so="" nginx="" out="" epoch="" abi=0 debian=0
while (($#)); do
    case $1 in
        --so | --nginx | --out | --epoch)
            (($# >= 2)) || die "$1 needs a value"
            declare "${1#--}=$2"
            shift 2
            ;;
        --with-abi) abi=1 && shift ;;
        --debian) debian=1 && shift ;;
        -h | --help)
            sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
            exit 0
            ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done

command -v rpmbuild >/dev/null || die "rpmbuild not found (Debian: apt-get install rpm)"
if ((debian)); then
    so=$(bash ci/build-against.sh --debian)
    nginx=/usr/sbin/nginx
fi
[[ -n $so && -n $nginx ]] || die "need --so and --nginx (or --debian); see --help"
[[ $so == /* ]] || so=$caller_pwd/$so
[[ $nginx != */* || $nginx == /* ]] || nginx=$caller_pwd/$nginx
[[ -z $out || $out == /* ]] || out=$caller_pwd/$out
[[ -f $so ]] || die "module not found: $so"
so=$(cd "$(dirname "$so")" && pwd)/$(basename "$so")
nginx=$(command -v "$nginx") || die "nginx binary not found"

out=${out:-$(target_dir)/rpm}
mkdir -p "$out"
out=$(cd "$out" && pwd)
top=$out/rpmbuild
rm -rf "$top"
mkdir -p "$top"/{SOURCES,SPECS,BUILD,BUILDROOT,RPMS,SRPMS}

nginx_version=$("$nginx" -v 2>&1 | sed -n 's|^nginx version: [^/]*/\([^ ]*\).*|\1|p')
[[ -n $nginx_version ]] || die "cannot read the version of $nginx"
authgate_version=$(sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -1)

# Package only what is known to load into that nginx.
check_module_loads "$nginx" "$so" "$top/check"
log "rpm: $nginx (nginx $nginx_version) loads $so"

cp "$so" "$top/SOURCES/libnginx_authgate.so"
cp README.md LICENSE "$top/SOURCES/"
cp ci/rpm/nginx-module-authgate.spec "$top/SPECS/"

defs=(
    --define "_topdir $top"
    --define "nginx_version $nginx_version"
    --define "authgate_version $authgate_version"
)
[[ -z $epoch ]] || defs+=(--define "nginx_epoch $epoch")
((abi == 0)) || defs+=(--with nginx_abi)

log "rpm: rpmbuild -bb (nginx $nginx_version, module $authgate_version)"
if ! rpmbuild -bb "${defs[@]}" "$top/SPECS/nginx-module-authgate.spec" >"$top/rpmbuild.log" 2>&1; then
    tail -30 "$top/rpmbuild.log" >&2
    die "rpmbuild failed (full log: $top/rpmbuild.log)"
fi
rpms=("$top"/RPMS/*/nginx-module-authgate-*.rpm)
[[ -f ${rpms[0]} ]] || die "rpmbuild produced no package (log: $top/rpmbuild.log)"
cp "${rpms[0]}" "$out/"
printf '%s\n' "$out/$(basename "${rpms[0]}")"
