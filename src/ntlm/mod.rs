//! `ntlm` / `ntlm_timeout` / `ntlm_max_requests` / `ntlm_max_time`: binds the upstream connection that carried a
//! client's NTLM or Negotiate credentials to that client connection, so that
//! connection-based Windows authentication works through nginx, and never
//! lets another client use it.
//!
//! * [`conf`] — directives; wrapping each upstream block's peer hooks;
//! * [`handler`] — the peer hooks (`init`, `get`, `free`) and the binding
//!   lifecycle;
//! * [`binding`] — the bind / reuse / close decisions, pure;
//! * [`credentials`] — which `Authorization` values bind, pure;
//! * [`lru`] — the idle bound connections, least recently used first, pure.
//!
//! It has no access handler: it works at the upstream peer level.

pub mod binding;
pub mod conf;
pub mod credentials;
pub mod handler;
pub mod lru;

use core::ptr::addr_of;

use nginx_sys::{ngx_http_module_t, ngx_module_t};
use ngx::http::{HttpModule, HttpModuleServerConf};

/// Type that ties the configuration structures to the module.
pub struct NtlmModule;

impl HttpModule for NtlmModule {
    fn module() -> &'static ngx_module_t {
        // SAFETY: the module static is only written by nginx while it loads
        // modules, before any handler runs.
        unsafe { &*addr_of!(ngx_http_authgate_ntlm_module) }
    }
}

// SAFETY: the server configuration type is the one create_srv_conf allocates.
unsafe impl HttpModuleServerConf for NtlmModule {
    type ServerConf = conf::NtlmSrvConf;
}

static MODULE_CTX: ngx_http_module_t = ngx_http_module_t {
    preconfiguration: None,
    postconfiguration: Some(conf::postconfiguration),
    create_main_conf: None,
    init_main_conf: None,
    create_srv_conf: Some(NtlmModule::create_srv_conf),
    merge_srv_conf: None,
    create_loc_conf: None,
    merge_loc_conf: None,
};

/// The nginx module.
#[allow(non_upper_case_globals)]
// By name: the module table nginx generates under its configure (`config`)
// refers to it. Not in unit tests and fuzz targets (see src/lib.rs).
#[cfg_attr(not(any(test, fuzzing)), no_mangle)]
pub static mut ngx_http_authgate_ntlm_module: ngx_module_t = ngx_module_t {
    ctx: addr_of!(MODULE_CTX) as *mut _,
    // nginx only reads the command table through this pointer.
    commands: addr_of!(conf::COMMANDS) as *mut _,
    type_: nginx_sys::NGX_HTTP_MODULE as _,
    ..ngx_module_t::default()
};
