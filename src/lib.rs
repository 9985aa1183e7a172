//! nginx-authgate: authentication and authorization for open-source nginx,
//! as one dynamic module library.
//!
//! Each mechanism is its own nginx module in its own folder; `nginx/` holds
//! the glue they share. This file only lists the modules for nginx.

pub mod auth_http;
pub mod auth_request;
pub mod counters;
pub mod decision_cache;
pub mod key_auth;
pub mod keyed_hash;
pub mod nginx;
pub mod ntlm;
pub mod redis;

/// Exports the tables nginx reads from a module library at `load_module`:
/// `ngx_modules`, `ngx_module_names` and `ngx_module_order`.
///
/// ngx 0.5's `ngx_modules!` cannot list more than one module (its counting
/// helper rejects the trailing comma it generates), hence this one.
#[cfg_attr(
    any(test, fuzzing, not(feature = "export-modules")),
    allow(unused_macros)
)]
macro_rules! module_table {
    ($($module:path => $name:literal),+ $(,)?) => {
        const MODULE_COUNT: usize = [$($name),+].len();

        #[no_mangle]
        #[allow(non_upper_case_globals)]
        pub static mut ngx_modules: [*const nginx_sys::ngx_module_t; MODULE_COUNT + 1] = [
            // nginx owns the module structures from load_module on.
            $(core::ptr::addr_of!($module),)+
            core::ptr::null(),
        ];

        #[no_mangle]
        #[allow(non_upper_case_globals)]
        pub static mut ngx_module_names: [*const core::ffi::c_char; MODULE_COUNT + 1] = [
            $(concat!($name, "\0").as_ptr().cast(),)+
            core::ptr::null(),
        ];

        /// No ordering constraints relative to nginx's own modules.
        #[no_mangle]
        #[allow(non_upper_case_globals)]
        pub static mut ngx_module_order: [*const core::ffi::c_char; 1] = [core::ptr::null()];
    };
}

// The order is the order in which the access checks run in a location that
// uses several: each module registers at the front of the access phase, and
// all of them run after nginx's allow/deny and auth_basic. Compiled out of
// unit tests and fuzz targets (`--cfg fuzzing`), which link without nginx:
// without the table nothing refers to the modules' directive handlers.
// Left out too when nginx's configure builds the module (`config`: no
// default features), as nginx writes the table itself.
#[cfg(all(feature = "export-modules", not(any(test, fuzzing))))]
module_table!(
    key_auth::ngx_http_authgate_key_auth_module => "ngx_http_authgate_key_auth_module",
    auth_request::ngx_http_authgate_auth_request_module => "ngx_http_authgate_auth_request_module",
    auth_http::ngx_http_authgate_auth_http_module => "ngx_http_authgate_auth_http_module",
    // No access handler: the cache's zone, purge handler and variable.
    decision_cache::module::ngx_http_authgate_decision_cache_module => "ngx_http_authgate_decision_cache_module",
    // No access handler; wraps upstream peer hooks, so its position is free.
    ntlm::ngx_http_authgate_ntlm_module => "ngx_http_authgate_ntlm_module",
    // A content handler and the shared counters; no access handler.
    counters::ngx_http_authgate_status_module => "ngx_http_authgate_status_module",
);
