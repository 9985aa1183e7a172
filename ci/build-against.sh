#!/usr/bin/env bash
# Builds nginx-authgate against a given nginx, the way ops teams need it: the
# exact nginx version and configure line of the binary it will be loaded
# into (a module built against anything else is refused at load_module).
#
#   ci/build-against.sh [options] NGINX_SOURCE_DIR [configure args...]
#   ci/build-against.sh [options] --debian     Debian's nginx: /usr/share/nginx/src
#                                              (nginx-dev), args from `/usr/sbin/nginx -V`,
#                                              checked with /usr/sbin/nginx
#   ci/build-against.sh [options] --vendored [configure args...]
#                                              the nginx source vendored by the
#                                              nginx-src crate (what `cargo build` uses)
#
# Options (before the source directory):
#   --nginx BINARY   check the result with this nginx (`nginx -t` loading the module);
#                    its version must be the source's
#   --make-nginx     also build nginx from the configured source (needs a full
#                    source tree, not headers only) and check with that binary
#   --work DIR       work directory (default target/against/<name>-<hash of source+args>)
#   --nginx-only     with --make-nginx: build nginx only, not the module (a
#                    reference nginx, e.g. with the C auth_request compiled in);
#                    prints the nginx binary's path instead of the module's
#   --debug          cargo's dev profile instead of --release
#   --configure      build the module through nginx's own build system, as
#                    distribution packages do: `configure ... --with-compat
#                    --add-dynamic-module=ADDON` then `make modules` (the
#                    repository's `config` and `config.make` drive cargo);
#                    the result is objs/ngx_http_authgate_module.so
#   --static         `--add-module=ADDON`: the module compiled into nginx
#                    (implies --configure --make-nginx); prints the nginx
#                    binary's path, there is no .so
#   --addon DIR      the module's tree for --configure (default: this
#                    repository; e.g. an unpacked ci/dist.sh tarball, which
#                    builds offline); implies --configure
#   --cargo-target DIR  the module build's CARGO_TARGET_DIR (default
#                    WORK/cargo); several builds can share one, so the crates
#                    compile once
#   --clippy         also `cargo clippy -- -D warnings` against this nginx: code
#                    under version cfgs (e.g. not(nginx1_23_0)) compiles only here
#   -h, --help
#
# What it does, all inside the work directory, so the main build (target/)
# and the given source tree are never touched:
#   WORK/nginx/        a COPY of the source tree, configured there (`./configure`
#                      writes objs/ and a top-level Makefile; Debian's source is
#                      root-owned package content, nginx-src's is cargo's
#                      registry). Reused while the source and args are unchanged.
#   WORK/cargo/        the CARGO_TARGET_DIR of the module build (NGINX_SOURCE_DIR=WORK/nginx)
#   WORK/libnginx_authgate.so   the result
#   WORK/build.env     MODULE=, NGINX_VERSION=, NGINX= (checking binary, may be
#                      empty), CONFIGURE_ARGS=(array) — shell-quoted, for `source`
#
# Configure arguments: given ones are used as they are, plus --with-compat when
# missing (nginx only accepts dynamic modules from compat builds of other
# trees). Arguments that only add *dynamic* modules (--with-X=dynamic,
# --add-dynamic-module=...) are dropped: those modules are separate .so files,
# not part of the binary's ABI, and would require their own -dev libraries
# (Debian's nginx -V names geoip, xslt, image_filter, perl).
#
# Output: progress on stderr; the module's path as the only line on stdout.
set -euo pipefail
caller_pwd=$PWD # lib.sh cds to the repository root; paths given are the caller's
# shellcheck source=ci/lib.sh
source "$(dirname "$0")/lib.sh"

# from_caller PATH: PATH as the caller meant it (relative to their directory).
from_caller() { if [[ $1 == /* ]]; then printf '%s\n' "$1"; else printf '%s\n' "$caller_pwd/$1"; fi; }

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit "${1:-2}"
}

nginx_bin="" make_nginx=0 nginx_only=0 work="" profile=release mode="" clippy=0
configure_mode=0 static=0 addon=$ROOT cargo_target=""
while (($#)); do
    case $1 in
        --nginx)
            (($# >= 2)) || die "--nginx needs a path"
            nginx_bin=$2
            # a bare name is looked up in PATH, anything with a slash is a path
            [[ $nginx_bin != */* ]] || nginx_bin=$(from_caller "$nginx_bin")
            shift 2
            ;;
        --make-nginx) make_nginx=1 && shift ;;
        --nginx-only) nginx_only=1 && shift ;;
        --work)
            (($# >= 2)) || die "--work needs a directory"
            work=$(from_caller "$2")
            shift 2
            ;;
        --debug) profile=debug && shift ;;
        --clippy) clippy=1 && shift ;;
        --configure) configure_mode=1 && shift ;;
        --static) static=1 configure_mode=1 make_nginx=1 && shift ;;
        --addon | --cargo-target)
            (($# >= 2)) || die "$1 needs a directory"
            [[ -d $2 ]] || [[ $1 == --cargo-target ]] || die "$1: no directory $2"
            if [[ $1 == --addon ]]; then
                addon=$(cd "$(from_caller "$2")" && pwd)
                configure_mode=1
            else
                cargo_target=$(from_caller "$2")
            fi
            shift 2
            ;;
        --debian | --vendored) mode=${1#--} && shift && break ;;
        -h | --help) usage 0 ;;
        --) shift && break ;;
        -*) die "unknown option $1 (see --help)" ;;
        *) break ;;
    esac
done

((nginx_only == 0 || make_nginx == 1)) || die "--nginx-only needs --make-nginx"
((configure_mode == 0 || (clippy == 0 && nginx_only == 0))) || die "--configure builds with nginx's make: no --clippy, --nginx-only"
[[ $profile == release || $configure_mode == 0 ]] || die "--configure builds the release profile (config.make)"
[[ -f $addon/config && -f $addon/config.make ]] || die "$addon has no config and config.make"

args=()
case $mode in
    debian)
        src=/usr/share/nginx/src
        [[ -f $src/src/core/nginx.h && -x $src/configure ]] ||
            die "$src is missing or incomplete: apt-get install nginx-dev"
        debian_nginx=/usr/sbin/nginx
        [[ -x $debian_nginx ]] || die "$debian_nginx not found: apt-get install nginx"
        [[ -n $nginx_bin ]] || nginx_bin=$debian_nginx
        (($# == 0)) || die "--debian takes no configure arguments (they come from $debian_nginx -V)"
        # `nginx -V` prints the arguments shell-quoted (--with-cc-opt='-g -O2 …');
        # xargs splits them with the shell's quoting rules without evaluating anything.
        line=$("$debian_nginx" -V 2>&1 | sed -n 's/^configure arguments: //p')
        [[ -n $line ]] || die "$debian_nginx -V printed no configure arguments"
        mapfile -d '' args < <(printf '%s' "$line" | xargs printf '%s\0')
        name=debian
        ;;
    vendored)
        src=$(vendored_nginx_source)
        args=("$@")
        name=vendored
        ;;
    *)
        (($# >= 1)) || usage
        src=$(from_caller "$1")
        shift
        args=("$@")
        name=$(basename "$src")
        ;;
esac

[[ -f $src/src/core/nginx.h && ( -f $src/configure || -f $src/auto/configure ) ]] ||
    die "$src is not an nginx source tree (no src/core/nginx.h and configure)"
src=$(cd "$src" && pwd)
version=$(sed -n 's/^#define NGINX_VERSION *"\(.*\)"/\1/p' "$src/src/core/nginx.h")
[[ -n $version ]] || die "cannot read NGINX_VERSION from $src/src/core/nginx.h"

# The configure line actually used.
conf_args=() have_compat=0 dropped=()
for a in "${args[@]}"; do
    case $a in
        --with-*=dynamic | --add-dynamic-module=*) dropped+=("$a") ;;
        --with-compat) have_compat=1 && conf_args+=("$a") ;;
        *) conf_args+=("$a") ;;
    esac
done
((have_compat)) || conf_args+=(--with-compat)
((${#dropped[@]} == 0)) || log "build-against: not configuring dynamic modules (not part of the binary's ABI): ${dropped[*]}"

# Through nginx's configure, the module is one more configure argument.
addon_arg=()
if ((static)); then
    addon_arg=("--add-module=$addon")
    name=$name-static
elif ((configure_mode)); then
    addon_arg=("--add-dynamic-module=$addon")
    name=$name-configure
fi

key=$(printf '%s\n' "$src" "${conf_args[@]}" "${addon_arg[@]}" | md5sum | cut -c1-8)
[[ -n $work ]] || work=$(target_dir)/against/$name-$key
mkdir -p "$work"
work=$(cd "$work" && pwd)
cargo_target=${cargo_target:-$work/cargo}
# One build per work directory at a time (parallel test files share them).
exec 9>"$work/.lock"
flock 9
log "build-against: nginx $version from $src"
log "build-against: work directory $work"

# 1. Configure a copy (skipped while source and arguments are unchanged).
stamp=$(printf '%s\n' "$src" "$version" "${conf_args[@]}" "${addon_arg[@]}" "$cargo_target")
if [[ -f $work/nginx/objs/ngx_auto_config.h && "$(cat "$work/configure.stamp" 2>/dev/null)" == "$stamp" ]]; then
    log "build-against: configured copy is up to date"
else
    rm -rf "$work/nginx" "$work/configure.stamp"
    cp -a "$src" "$work/nginx"
    # Leftovers of an earlier configure in the source (nginx-src's registry
    # copy has a top-level Makefile) must not leak into ours.
    rm -rf "$work/nginx/objs" "$work/nginx/Makefile"
    # Release tarballs have ./configure; a git checkout (nginx-src) auto/configure.
    configure=./configure
    [[ -f $work/nginx/configure ]] || configure=auto/configure
    log "build-against: $configure ${conf_args[*]} ${addon_arg[*]}"
    # config reads CARGO_TARGET_DIR when nginx's configure runs it.
    if ! (cd "$work/nginx" && CARGO_TARGET_DIR=$cargo_target "$configure" "${conf_args[@]}" "${addon_arg[@]}") \
        >"$work/configure.log" 2>&1; then
        tail -30 "$work/configure.log" >&2
        die "configure failed (full log: $work/configure.log)"
    fi
    printf '%s' "$stamp" >"$work/configure.stamp"
fi

# 2. nginx itself, when asked.
if ((make_nginx)); then
    compgen -G "$work/nginx/src/core/*.c" >/dev/null ||
        die "$src has headers only (like Debian's nginx-dev): it cannot build nginx; use --nginx BINARY"
    log "build-against: make (nginx binary${addon_arg:+, the module through config.make})"
    if ! make -C "$work/nginx" -j "$(nproc)" >"$work/make.log" 2>&1; then
        tail -30 "$work/make.log" >&2
        die "building nginx failed (full log: $work/make.log)"
    fi
    [[ -z $nginx_bin ]] || log "build-against: checking with the built nginx, not $nginx_bin"
    nginx_bin=$work/nginx/objs/nginx
fi

# The checking binary must be the source's version (before spending a build on it).
if [[ -n $nginx_bin ]]; then
    nginx_bin=$(command -v "$nginx_bin") || die "nginx binary not found: $nginx_bin"
    bin_version=$("$nginx_bin" -v 2>&1 | sed -n 's|^nginx version: [^/]*/\([^ ]*\).*|\1|p')
    [[ $bin_version == "$version" ]] ||
        die "$nginx_bin is nginx $bin_version, the source is $version: the module would be refused"
fi

if ((nginx_only)); then
    printf '%s\n' "$nginx_bin"
    exit 0
fi

# 3'. Through nginx's configure: nginx's make ran cargo; the module (or, with
# --static, the nginx binary) is the result.
if ((configure_mode)); then
    if ((static)); then
        "$nginx_bin" -V 2>&1 | grep -q -- "--add-module=$addon" ||
            die "$nginx_bin -V does not name --add-module=$addon"
        log "build-against: the module is compiled into $nginx_bin"
        printf 'MODULE=\nNGINX_VERSION=%q\nNGINX=%q\n' "$version" "$nginx_bin" >"$work/build.env"
        printf '%s\n' "$nginx_bin"
        exit 0
    fi
    if ((make_nginx == 0)); then
        log "build-against: make modules (config.make runs cargo, CARGO_TARGET_DIR=$cargo_target)"
        # objs/Makefile itself: Debian's nginx-dev tree writes no top-level one
        if ! make -C "$work/nginx" -f objs/Makefile -j "$(nproc)" modules >"$work/make.log" 2>&1; then
            tail -30 "$work/make.log" >&2
            die "make modules failed (full log: $work/make.log)"
        fi
    fi
    cp "$work/nginx/objs/ngx_http_authgate_module.so" "$work/libnginx_authgate.so"
fi

# 3. The module, in its own target directory.
profile_args=() profile_dir=debug
if [[ $profile == release ]]; then
    profile_args=(--release)
    profile_dir=release
fi
if ((configure_mode == 0)); then
    log "build-against: cargo build ${profile_args[*]} (CARGO_TARGET_DIR=$cargo_target)"
    NGINX_SOURCE_DIR=$work/nginx CARGO_TARGET_DIR=$cargo_target \
        cargo build "${cargo_locked[@]}" "${profile_args[@]}" >&2
    cp "$cargo_target/$profile_dir/libnginx_authgate.so" "$work/libnginx_authgate.so"
fi
if ((clippy)); then
    log "build-against: cargo clippy -- -D warnings"
    NGINX_SOURCE_DIR=$work/nginx CARGO_TARGET_DIR=$cargo_target \
        cargo clippy "${cargo_locked[@]}" "${profile_args[@]}" -- -D warnings >&2
fi
module=$work/libnginx_authgate.so

# 4. Does it load?
if [[ -n $nginx_bin ]]; then
    check_module_loads "$nginx_bin" "$module" "$work/check"
    log "build-against: $nginx_bin loads the module (nginx -t ok)"
else
    log "build-against: NOT checked with nginx -t (give --nginx BINARY or --make-nginx)"
fi

{
    printf 'MODULE=%q\n' "$module"
    printf 'NGINX_VERSION=%q\n' "$version"
    printf 'NGINX=%q\n' "$nginx_bin"
    printf 'CONFIGURE_ARGS=('
    printf '%q ' "${conf_args[@]}"
    printf ')\n'
} >"$work/build.env"
printf '%s\n' "$module"
