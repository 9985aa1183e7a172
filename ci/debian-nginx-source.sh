#!/usr/bin/env bash
# Fetches the upstream source of the nginx version Debian ships (1.22.1 on
# Debian 12) from Debian's archive — `apt-get source`, through a private
# deb-src list so the system's apt configuration is left alone — and
# unpacks the *orig* tarball (upstream nginx, no Debian patches) into
# target/debian-src/. Prints the source directory.
#
# Used to build a plain nginx 1.22, without the C auth_request module that
# Debian's binary has compiled in, so that the whole test suite, our
# auth_request included, runs on the oldest nginx we support.
#
#   ci/debian-nginx-source.sh            -> target/debian-src/nginx-1.22.1
set -euo pipefail
# shellcheck source=ci/lib.sh
source "$(dirname "$0")/lib.sh"

work=$ROOT/target/debian-src
existing=$(find "$work" -maxdepth 1 -type d -name 'nginx-[0-9]*' 2>/dev/null | sort | tail -n 1 || true)
if [[ -n "$existing" && -f "$existing/configure" ]]; then
    echo "$existing"
    exit 0
fi

mkdir -p "$work/apt/lists/partial" "$work/apt/cache/archives/partial"
# The same archive and suites as the system's own deb lines, as deb-src.
cat >"$work/apt/deb-src.sources" <<'SOURCES'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
apt_opts=(
    -o "Dir::Etc::SourceList=/dev/null"
    -o "Dir::Etc::SourceParts=$work/apt"
    -o "Dir::State::Lists=$work/apt/lists"
    -o "Dir::Cache=$work/apt/cache"
    -o "APT::Sandbox::User=root"
)
log "debian-nginx-source: apt-get source nginx (download only)"
apt-get "${apt_opts[@]}" -qq update >&2
(cd "$work" && apt-get "${apt_opts[@]}" -qq source --download-only nginx >&2)

orig=$(find "$work" -maxdepth 1 -name 'nginx_*.orig.tar.gz' | sort | tail -n 1)
[[ -n "$orig" ]] || die "no nginx orig tarball in $work"
tar -xzf "$orig" -C "$work"
src=$(find "$work" -maxdepth 1 -type d -name 'nginx-[0-9]*' | sort | tail -n 1)
[[ -f "$src/configure" ]] || die "unpacked $orig, but found no nginx source tree"
echo "$src"
