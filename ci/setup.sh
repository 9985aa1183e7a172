#!/usr/bin/env bash
# Installs what building, testing, the demo and the benchmarks need.
#
# Idempotent and quiet: when everything is present it prints one line and
# touches nothing (no apt-get update, so it costs well under a second and works
# offline). Otherwise it runs apt-get update once, installs only the missing
# packages, and prints their names; apt's output is shown only on failure.
#
# Machines are handed out fresh, so nothing installed by hand can be relied
# upon: every tool the ci/ scripts call must come from here.
set -euo pipefail
# shellcheck source=ci/lib.sh
source "$(dirname "$0")/lib.sh"

# Why each package is needed:
#   libclang-dev                     bindgen (nginx-sys generates its bindings with libclang)
#   gcc libc6-dev make               compiling nginx itself (nginx-sys runs configure + make;
#                                    libc6-dev is only a Recommends of gcc, and we skip those)
#   libpcre2-dev libssl-dev zlib1g-dev  nginx's configure: rewrite/regex, ssl, gzip
#   perl libio-socket-ssl-perl       the prove-based tests in t/ (incl. TLS clients)
#   curl                             demo --check, sanity checks in the benchmarks, h2/TLS test clients
#   openssl                          t/auth_http_params.t makes a CA and certificates at test time
#   wrk                              the benchmarks' load generator
#   procps util-linux iproute2       pgrep/ps, taskset, ss (benchmarks, demo)
#   valgrind                         the benchmarks' instructions-per-request metric
#   (package) shellcheck             linting the ci/ scripts in ci/test.sh
#   git ca-certificates              cargo fetching crates over https
#   nginx nginx-dev                  the packaging tests (t/packaging_*.t): Debian's own
#                                    nginx 1.22 binary and its configured headers
#                                    (/usr/share/nginx/src); never started as a service
#   rpm rpm2cpio cpio                the packaging tests: rpmbuild, inspecting the RPM
#   dpkg-dev debhelper fakeroot      the Debian package (ci/deb/build.sh: dpkg-buildpackage,
#                                    dh with nginx-dev's dh-sequence-nginx)
#   prometheus                       t/status_*.t: `promtool check metrics` and a real Prometheus
#                                    server the test starts on its own port; the package's own
#                                    service is never started (policy-rc.d below) nor used
#   redis-server                     the key_auth_quota_store tests (t/*redis*.t) start a real
#                                    Redis on a free port; never started as a service
packages=(
    libclang-dev gcc libc6-dev make libpcre2-dev libssl-dev zlib1g-dev
    perl libio-socket-ssl-perl
    curl openssl wrk procps util-linux iproute2 valgrind shellcheck
    git ca-certificates
    nginx nginx-dev rpm rpm2cpio cpio
    dpkg-dev debhelper fakeroot
    prometheus
    redis-server
)

missing=()
for p in "${packages[@]}"; do
    # dpkg-query prints "install ok installed" only for fully installed packages;
    # half-configured or removed-but-config-left ones count as missing.
    if [[ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)" != "ii " ]]; then
        missing+=("$p")
    fi
done

if ((${#missing[@]})); then
    sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null || die "need root (or sudo) to install: ${missing[*]}"
        sudo=(sudo)
    fi
    aptlog=$(mktemp)
    # Debian's nginx package starts an nginx on port 80 when installed. The
    # tests run it (and redis-server) with their own prefix and ports only, so keep the service
    # from starting: invoke-rc.d and deb-systemd-invoke obey policy-rc.d's
    # 101 ("action forbidden"). Containers usually have one already; if not,
    # one is in place for this install only.
    policy=/usr/sbin/policy-rc.d policy_added=0
    if [[ ! -e $policy ]] && printf '%s\n' "${missing[@]}" | grep -qxE 'nginx|prometheus|redis-server'; then
        printf '#!/bin/sh\n# ci/setup.sh: no service starts while it installs packages\nexit 101\n' |
            "${sudo[@]}" tee "$policy" >/dev/null
        "${sudo[@]}" chmod 755 "$policy"
        policy_added=1
    fi
    cleanup() {
        rm -f "$aptlog"
        if ((policy_added)); then "${sudo[@]}" rm -f "$policy"; fi
    }
    trap cleanup EXIT
    export DEBIAN_FRONTEND=noninteractive
    # Wait for, rather than fail on, another apt/dpkg run holding the lock
    # (a second session on the same machine; also why a package seen
    # half-installed above is simply installed again).
    apt=("${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600)
    if ! { "${apt[@]}" update -qq &&
        "${apt[@]}" install -y -qq --no-install-recommends "${missing[@]}"; } >"$aptlog" 2>&1; then
        cat "$aptlog" >&2
        die "apt-get could not install: ${missing[*]}"
    fi
    log "setup: installed ${missing[*]}"
    if printf '%s\n' "${missing[@]}" | grep -qx nginx; then
        # Belt and braces: a systemd machine would still enable the unit for
        # the next boot, and a start that slipped through must not hold port 80.
        if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; then
            "${sudo[@]}" systemctl disable --now nginx >/dev/null 2>&1 || true
        fi
        pid=$(cat /run/nginx.pid 2>/dev/null || true)
        if [[ $pid =~ ^[0-9]+$ ]] && [[ "$(readlink "/proc/$pid/exe" 2>/dev/null)" == /usr/sbin/nginx ]]; then
            "${sudo[@]}" /usr/sbin/nginx -s stop || true
            log "setup: stopped the nginx service the nginx package started"
        fi
    fi
    if printf '%s\n' "${missing[@]}" | grep -qx prometheus; then
        # The tests start their own Prometheus on a port of their own; a
        # service the package enabled would only hold :9090 and scrape nothing.
        if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; then
            "${sudo[@]}" systemctl disable --now prometheus >/dev/null 2>&1 || true
        fi
    fi
else
    log "setup: all ${#packages[@]} apt packages already present"
fi

# The Rust toolchain comes from rustup on these machines, not apt. fmt and
# clippy are rustup components; try to add them if absent, but rustup may not
# reach its server, so say exactly what is missing if that fails.
command -v cargo >/dev/null || die "cargo not found (a rustup toolchain is expected on PATH)"
for comp in rustfmt clippy; do
    sub=${comp/rustfmt/fmt}
    if ! cargo "$sub" --version >/dev/null 2>&1; then
        if command -v rustup >/dev/null && rustup component add "$comp" >/dev/null 2>&1; then
            log "setup: installed rustup component $comp"
        else
            die "cargo $sub is missing and 'rustup component add $comp' failed (no network to the rustup server?)"
        fi
    fi
done
