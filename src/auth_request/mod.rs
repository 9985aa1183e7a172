//! `auth_request` / `auth_request_set`: a drop-in for nginx's C
//! `ngx_http_auth_request_module`.
//!
//! A protected request is allowed when a GET subrequest to the configured
//! URI answers 2xx, denied with 401 (plus the service's `WWW-Authenticate`)
//! or 403 when it answers those, and fails with 500 on anything else.
//!
//! * [`conf`] — directives, configuration merge, C-module detection;
//! * [`handler`] — the access-phase handler;
//! * [`cache`] — what a cache hit replays and a miss stores;
//! * [`verdict`] — status → decision, pure.
//!
//! Opt-in directives beyond the C module (nothing changes without them):
//!
//! * [`extensions`] — their configuration;
//! * [`statuses`] — the status sets they take, pure;
//! * [`respond`] — auth response headers to the client and the upstream;
//! * [`upstream_headers`] — removing the client's copies of the headers the
//!   auth response sets on the upstream request;
//! * [`body`] — reading the client's body for the auth subrequest.

pub mod body;
pub mod cache;
pub mod conf;
pub mod extensions;
pub mod handler;
pub mod respond;
pub mod statuses;
pub mod upstream_headers;
pub mod verdict;

use core::ptr::addr_of;

use nginx_sys::{ngx_conf_t, ngx_http_module_t, ngx_int_t, ngx_module_t};
use ngx::http::{HttpModule, HttpModuleLocationConf, HttpModuleMainConf};

use crate::nginx::phase::{postconfiguration_access, register_handler};

/// Type that ties the configuration structures to the module.
pub struct AuthRequestModule;

impl HttpModule for AuthRequestModule {
    fn module() -> &'static ngx_module_t {
        // SAFETY: the module static is only written by nginx while it loads
        // modules, before any handler runs.
        unsafe { &*addr_of!(ngx_http_authgate_auth_request_module) }
    }

    unsafe extern "C" fn postconfiguration(cf: *mut ngx_conf_t) -> ngx_int_t {
        // SAFETY: nginx passes the configuration being finalised.
        let rc = unsafe {
            postconfiguration_access(cf, handler::access_handler, |cf| {
                AuthRequestModule::main_conf(cf).is_some_and(|m| m.used)
            })
        };
        if rc != nginx_sys::NGX_OK as ngx_int_t {
            return rc;
        }
        // SAFETY: as above.
        let cf = unsafe { &mut *cf };
        let needed = AuthRequestModule::main_conf(cf).is_some_and(|m| m.upstream_headers_used);
        if needed
            && !register_handler(
                cf,
                nginx_sys::ngx_http_phases_NGX_HTTP_PREACCESS_PHASE,
                Some(upstream_headers::preaccess_handler),
            )
        {
            return nginx_sys::NGX_ERROR as ngx_int_t;
        }
        rc
    }
}

// SAFETY: the main and location configuration types below are the ones
// create_main_conf/create_loc_conf allocate for this module.
unsafe impl HttpModuleMainConf for AuthRequestModule {
    type MainConf = conf::AuthRequestMainConf;
}
unsafe impl HttpModuleLocationConf for AuthRequestModule {
    type LocationConf = conf::AuthRequestConf;
}

static MODULE_CTX: ngx_http_module_t = ngx_http_module_t {
    preconfiguration: Some(conf::preconfiguration),
    postconfiguration: Some(AuthRequestModule::postconfiguration),
    create_main_conf: Some(AuthRequestModule::create_main_conf),
    init_main_conf: None,
    create_srv_conf: None,
    merge_srv_conf: None,
    create_loc_conf: Some(AuthRequestModule::create_loc_conf),
    merge_loc_conf: Some(conf::merge_loc_conf),
};

/// The nginx module. Its name (the symbol) is what `nginx -V`-style module
/// lists and error messages show.
#[allow(non_upper_case_globals)]
// By name: the module table nginx generates under its configure (`config`)
// refers to it. Not in unit tests and fuzz targets (see src/lib.rs).
#[cfg_attr(not(any(test, fuzzing)), no_mangle)]
pub static mut ngx_http_authgate_auth_request_module: ngx_module_t = ngx_module_t {
    ctx: addr_of!(MODULE_CTX) as *mut _,
    // nginx only reads the command table through this pointer.
    commands: addr_of!(conf::COMMANDS) as *mut _,
    type_: nginx_sys::NGX_HTTP_MODULE as _,
    ..ngx_module_t::default()
};
