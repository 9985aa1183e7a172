//! `key_auth*`: API-key authentication with consumers (the APISIX
//! `key-auth` model), with per-consumer quotas counted in shared memory.
//!
//! * [`conf`] — directives: the `key_auth_consumers {}` block (parsed like
//!   `map {}`, `include` works inside), `key_auth_zone`, per-location
//!   settings;
//! * [`consumers`] — the registry: line parsing, SHA-256 digests, O(1)
//!   lookup (pure);
//! * [`form`] — form bodies: the `key_auth_body_field`, the body without
//!   it (pure);
//! * [`quota`] — fixed windows and the shared counter table (pure);
//! * [`passage`] — what was decided for a request, kept across internal
//!   redirects (pure);
//! * [`handler`] — the access-phase flow (and its preaccess and precontent
//!   companions);
//! * [`respond`] — the 401 JSON responses (header and body filters).

pub mod conf;
pub mod consumers;
pub mod expiry;
pub mod form;
pub mod handler;
pub mod passage;
pub mod quota;
pub mod respond;

use core::ptr::addr_of;

use nginx_sys::{ngx_conf_t, ngx_http_module_t, ngx_int_t, ngx_module_t, NGX_ERROR, NGX_OK};
use ngx::http::{HttpModule, HttpModuleLocationConf, HttpModuleMainConf};

use crate::nginx::ffi::guard_status;
use crate::nginx::phase::{register_access_handler_first, register_handler};

/// Type that ties the configuration structures to the module.
pub struct KeyAuthModule;

impl HttpModule for KeyAuthModule {
    fn module() -> &'static ngx_module_t {
        // SAFETY: the module static is only written by nginx while it loads
        // modules, before any handler runs.
        unsafe { &*addr_of!(ngx_http_authgate_key_auth_module) }
    }

    unsafe extern "C" fn postconfiguration(cf: *mut ngx_conf_t) -> ngx_int_t {
        // SAFETY: nginx passes the configuration being finalised.
        let cf = unsafe { &mut *cf };
        guard_status(cf.log, || {
            if !conf::check_main(cf) {
                return NGX_ERROR as ngx_int_t;
            }
            // A loaded but unused key_auth costs requests nothing.
            if !KeyAuthModule::main_conf(cf).is_some_and(|m| m.used) {
                return NGX_OK as ngx_int_t;
            }
            conf::register_counters(cf);
            respond::register_filters(cf);
            let preaccess = nginx_sys::ngx_http_phases_NGX_HTTP_PREACCESS_PHASE;
            let precontent = nginx_sys::ngx_http_phases_NGX_HTTP_PRECONTENT_PHASE;
            if register_access_handler_first(cf, Some(handler::access_handler))
                && register_handler(cf, preaccess, Some(handler::strip_handler))
                && register_handler(cf, precontent, Some(handler::hide_handler))
            {
                NGX_OK as ngx_int_t
            } else {
                NGX_ERROR as ngx_int_t
            }
        })
    }
}

// SAFETY: the main and location configuration types below are the ones
// create_main_conf/create_loc_conf allocate for this module.
unsafe impl HttpModuleMainConf for KeyAuthModule {
    type MainConf = conf::KeyAuthMainConf;
}
unsafe impl HttpModuleLocationConf for KeyAuthModule {
    type LocationConf = conf::KeyAuthConf;
}

static MODULE_CTX: ngx_http_module_t = ngx_http_module_t {
    preconfiguration: Some(conf::preconfiguration),
    postconfiguration: Some(KeyAuthModule::postconfiguration),
    create_main_conf: Some(KeyAuthModule::create_main_conf),
    init_main_conf: None,
    create_srv_conf: None,
    merge_srv_conf: None,
    create_loc_conf: Some(KeyAuthModule::create_loc_conf),
    merge_loc_conf: Some(conf::merge_loc_conf),
};

/// The nginx module.
#[allow(non_upper_case_globals)]
// By name: the module table nginx generates under its configure (`config`)
// refers to it. Not in unit tests and fuzz targets (see src/lib.rs).
#[cfg_attr(not(any(test, fuzzing)), no_mangle)]
pub static mut ngx_http_authgate_key_auth_module: ngx_module_t = ngx_module_t {
    ctx: addr_of!(MODULE_CTX) as *mut _,
    // nginx only reads the command table through this pointer.
    commands: addr_of!(conf::COMMANDS) as *mut _,
    type_: nginx_sys::NGX_HTTP_MODULE as _,
    ..ngx_module_t::default()
};
