# nginx-authgate, the Makefile part (see `config`): nginx's configure sources
# this file while it writes objs/Makefile and appends the cargo build of the
# static library the module links.
#
# cargo runs on every `make`: it tracks the Rust sources itself and does
# nothing when they are unchanged (hence .PHONY). --no-default-features: no
# vendored nginx (nginx-sys uses this configured tree) and no module table of
# ours (nginx generates it). cargo runs in the module's directory, so that
# its .cargo/config.toml applies (a release tarball's: the vendored crates,
# offline). --locked: exactly the crates of Cargo.lock. The release profile whatever --with-debug says:
# that flag is nginx's debug log, which the module follows at run time.

ngx_authgate_dir=$ngx_addon_dir
case $ngx_authgate_dir in
    /*) ;;
    *) ngx_authgate_dir=$PWD/$ngx_authgate_dir ;;
esac
ngx_authgate_objs=$NGX_OBJS
case $ngx_authgate_objs in
    /*) ;;
    *) ngx_authgate_objs=$PWD/$ngx_authgate_objs ;;
esac

cat <<END >>$NGX_MAKEFILE

# nginx-authgate (Rust, built by cargo against this configured tree)
.PHONY: $ngx_authgate_lib

$ngx_authgate_lib: $NGX_OBJS/ngx_auto_config.h
	cd $ngx_authgate_dir && \\
	NGINX_BUILD_DIR=$ngx_authgate_objs NGINX_SOURCE_DIR=$PWD \\
	$NGX_CARGO rustc --lib --release --crate-type staticlib \\
		--no-default-features --locked \\
		--target-dir $ngx_authgate_target_dir

END
