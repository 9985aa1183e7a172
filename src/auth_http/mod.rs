//! External HTTP ACL, the EMQX `emqx_auth_http` contract: ask an
//! authentication service, a superuser service, then an ACL service, with EMQX-style placeholder parameters sent
//! as a query string (GET) or a form body (POST, PUT); retry unreachable
//! services with backoff; never let a request through on failure.
//!
//! * [`conf`] — directives, service compilation;
//! * [`handler`] — the access-phase flow;
//! * [`params`] — placeholder templates and form encoding (pure);
//! * [`retry`] — the retry schedule (pure);
//! * [`decision`] — answer → next step (pure).

pub mod cache;
pub mod conf;
pub mod decision;
pub mod handler;
pub mod params;
pub mod retry;

use core::ffi::c_char;
use core::ffi::c_void;
use core::ptr::addr_of;

use nginx_sys::{ngx_conf_t, ngx_http_module_t, ngx_int_t, ngx_module_t, NGX_ERROR, NGX_OK};
use ngx::http::{HttpModule, HttpModuleLocationConf, HttpModuleMainConf};

use crate::nginx::conf::{merge, CONF_OK};
use crate::nginx::ffi::guard_status;
use crate::nginx::phase::postconfiguration_access;
use crate::nginx::variables;

pub struct AuthHttpModule;

impl HttpModule for AuthHttpModule {
    fn module() -> &'static ngx_module_t {
        // SAFETY: the module static is only written by nginx while it loads
        // modules, before any handler runs.
        unsafe { &*addr_of!(ngx_http_authgate_auth_http_module) }
    }

    unsafe extern "C" fn preconfiguration(cf: *mut ngx_conf_t) -> ngx_int_t {
        // SAFETY: nginx passes the configuration being parsed.
        let cf = unsafe { &mut *cf };
        guard_status(cf.log, || {
            let Some(var) = variables::declare_readonly(cf, &ngx::ngx_string!("auth_http_result"))
            else {
                return NGX_ERROR as ngx_int_t;
            };
            match AuthHttpModule::main_conf_mut(cf) {
                Some(main) => {
                    main.result_variable = Some(var);
                    NGX_OK as ngx_int_t
                }
                None => NGX_ERROR as ngx_int_t,
            }
        })
    }

    unsafe extern "C" fn postconfiguration(cf: *mut ngx_conf_t) -> ngx_int_t {
        // SAFETY: nginx passes the configuration being finalised.
        unsafe {
            postconfiguration_access(cf, handler::access_handler, |cf| {
                AuthHttpModule::main_conf(cf).is_some_and(|m| m.used)
            })
        }
    }
}

// SAFETY: these are the types create_main_conf/create_loc_conf allocate.
unsafe impl HttpModuleMainConf for AuthHttpModule {
    type MainConf = conf::AuthHttpMainConf;
}
unsafe impl HttpModuleLocationConf for AuthHttpModule {
    type LocationConf = conf::AuthHttpConf;
}

/// Merges a level with its parent.
///
/// # Safety
/// Called by nginx with two of this module's location configurations.
unsafe extern "C" fn merge_loc_conf(
    cf: *mut ngx_conf_t,
    parent: *mut c_void,
    child: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx passes valid configurations of this module.
    unsafe {
        merge(
            cf,
            parent,
            child,
            |cf, parent, child: &mut conf::AuthHttpConf| {
                child.merge_from(parent);
                let protected =
                    child.auth().is_some() || child.superuser().is_some() || child.acl().is_some();
                // The key is the question itself (see handler::question).
                match child
                    .cache
                    .finish(cf, "auth_http_cache", protected, false, &[b"auth_http"])
                {
                    Ok(()) => CONF_OK,
                    Err(_) => crate::nginx::conf::CONF_ERROR,
                }
            },
        )
    }
}

static MODULE_CTX: ngx_http_module_t = ngx_http_module_t {
    preconfiguration: Some(AuthHttpModule::preconfiguration),
    postconfiguration: Some(AuthHttpModule::postconfiguration),
    create_main_conf: Some(AuthHttpModule::create_main_conf),
    init_main_conf: None,
    create_srv_conf: None,
    merge_srv_conf: None,
    create_loc_conf: Some(AuthHttpModule::create_loc_conf),
    merge_loc_conf: Some(merge_loc_conf),
};

#[allow(non_upper_case_globals)]
// By name: the module table nginx generates under its configure (`config`)
// refers to it. Not in unit tests and fuzz targets (see src/lib.rs).
#[cfg_attr(not(any(test, fuzzing)), no_mangle)]
pub static mut ngx_http_authgate_auth_http_module: ngx_module_t = ngx_module_t {
    ctx: addr_of!(MODULE_CTX) as *mut _,
    // nginx only reads the command table through this pointer.
    commands: addr_of!(conf::COMMANDS) as *mut _,
    type_: nginx_sys::NGX_HTTP_MODULE as _,
    ..ngx_module_t::default()
};
