//! Configuration-time helpers: directive arguments, `[emerg]` messages,
//! looking at the other modules nginx was built with.

use core::ffi::{c_char, CStr};

use nginx_sys::{ngx_conf_t, ngx_cycle_t, ngx_module_t, ngx_str_t, NGX_LOG_EMERG};

/// The value a directive handler returns on success.
pub const CONF_OK: *mut c_char = core::ptr::null_mut();
/// The value a directive handler returns after logging its own error.
pub const CONF_ERROR: *mut c_char = ngx::core::NGX_CONF_ERROR;

/// A fixed message nginx appends to `"NAME" directive `, e.g. `is duplicate`.
///
/// nginx logs it as `[emerg] "NAME" directive is duplicate in FILE:LINE`.
pub fn conf_message(message: &'static CStr) -> *mut c_char {
    message.as_ptr().cast_mut()
}

/// The directive's arguments; element 0 is the directive name.
pub fn args(cf: &ngx_conf_t) -> &[ngx_str_t] {
    // SAFETY: while a directive handler runs, cf->args is the array of the
    // directive's words (ngx_str_t elements), owned by the configuration
    // parser and valid for the duration of the call.
    unsafe {
        cf.args
            .as_ref()
            .map(|a| a.as_slice::<ngx_str_t>())
            .unwrap_or(&[])
    }
}

/// Logs `[emerg] <message> in FILE:LINE` for the directive being parsed and
/// returns the directive-handler error value.
pub fn emerg(cf: &mut ngx_conf_t, message: core::fmt::Arguments<'_>) -> *mut c_char {
    ngx::ngx_conf_log_error!(NGX_LOG_EMERG, cf, "{}", message);
    CONF_ERROR
}

/// Finds a module compiled into (or loaded by) nginx by its name, such as
/// `ngx_http_auth_request_module`.
pub fn find_module<'a>(cycle: &'a ngx_cycle_t, name: &str) -> Option<&'a ngx_module_t> {
    if cycle.modules.is_null() {
        return None;
    }
    (0..cycle.modules_n)
        .map(|i| {
            // SAFETY: cycle->modules holds modules_n valid module pointers
            // (ngx_cycle_modules() allocates and fills it before any
            // configuration is parsed).
            unsafe { &**cycle.modules.add(i) }
        })
        .find(|module| {
            !module.name.is_null()
                // SAFETY: module names are NUL-terminated C strings (the
                // ngx_module_names table nginx and ngx_modules! generate).
                && unsafe { CStr::from_ptr(module.name) }.to_bytes() == name.as_bytes()
        })
}
