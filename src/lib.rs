//! nginx-authgate: authentication and authorization for open-source nginx,
//! as one dynamic module library.
//!
//! Each mechanism is its own nginx module in its own folder; `nginx/` holds
//! the glue they share. This file only lists the modules for nginx.

pub mod auth_request;
pub mod key_auth;
pub mod nginx;

// The table nginx reads from the library at `load_module`. Compiled out of
// unit tests, which link without nginx.
//
// Order matters: it is the run order of the access checks (key_auth →
// auth_request → auth_http), see nginx::phase. Written out by hand because
// ngx 0.5's `ngx_modules!` miscounts more than one module (its `count!`
// macro cannot match the trailing comma it generates).
#[cfg(not(test))]
mod module_table {
    use core::ffi::c_char;
    use core::ptr::{addr_of, null};

    use nginx_sys::ngx_module_t;

    use crate::auth_request::ngx_http_authgate_auth_request_module;
    use crate::key_auth::ngx_http_authgate_key_auth_module;

    #[no_mangle]
    #[allow(non_upper_case_globals)]
    pub static mut ngx_modules: [*const ngx_module_t; 3] = [
        addr_of!(ngx_http_authgate_key_auth_module),
        addr_of!(ngx_http_authgate_auth_request_module),
        null(),
    ];

    #[no_mangle]
    #[allow(non_upper_case_globals)]
    pub static mut ngx_module_names: [*const c_char; 3] = [
        c"ngx_http_authgate_key_auth_module".as_ptr(),
        c"ngx_http_authgate_auth_request_module".as_ptr(),
        null(),
    ];

    #[no_mangle]
    #[allow(non_upper_case_globals)]
    pub static mut ngx_module_order: [*const c_char; 1] = [null()];
}
