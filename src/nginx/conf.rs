//! Configuration-time helpers: directive arguments, `[emerg]` messages,
//! looking at the other modules nginx was built with.

use core::ffi::{c_char, c_void, CStr};

use nginx_sys::{ngx_conf_t, ngx_cycle_t, ngx_module_t, ngx_str_t, NGX_LOG_EMERG};

use super::ffi::guard;

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

/// Runs a directive handler's body inside the panic guard, with the
/// configuration being parsed and the module's configuration structure the
/// directive writes to.
///
/// # Safety
/// `cf` and `conf` must be what nginx passes to a directive handler whose
/// configuration slot holds a `T`.
pub unsafe fn directive<T>(
    cf: *mut ngx_conf_t,
    conf: *mut c_void,
    body: impl FnOnce(&mut ngx_conf_t, &mut T) -> *mut c_char,
) -> *mut c_char {
    // SAFETY: per the contract: the live configuration being parsed and the
    // module's configuration for the current block.
    let (cf, conf) = unsafe { (&mut *cf, &mut *conf.cast::<T>()) };
    guard(cf.log, CONF_ERROR, || body(cf, conf))
}

/// Runs a `merge_loc_conf`/`merge_srv_conf` body inside the panic guard,
/// with the parent and child configurations typed.
///
/// # Safety
/// `cf`, `parent` and `child` must be what nginx passes to a merge callback
/// of a module whose configurations at that level are `T`s.
pub unsafe fn merge<T>(
    cf: *mut ngx_conf_t,
    parent: *mut c_void,
    child: *mut c_void,
    body: impl FnOnce(&mut ngx_conf_t, &T, &mut T) -> *mut c_char,
) -> *mut c_char {
    // SAFETY: per the contract; parent and child are distinct structures.
    let (cf, parent, child) = unsafe { (&mut *cf, &*parent.cast::<T>(), &mut *child.cast::<T>()) };
    guard(cf.log, CONF_ERROR, || body(cf, parent, child))
}

/// The common shape of a one-argument directive: refuse a second one in the
/// same block (`"NAME" directive is duplicate`), parse the argument, store
/// it. `parse` reports its own `[emerg]` (see [`emerg`]) and returns the
/// handler result on error.
pub fn set_once<T>(
    cf: &mut ngx_conf_t,
    slot: &mut Option<T>,
    parse: impl FnOnce(&mut ngx_conf_t, ngx_str_t) -> Result<T, *mut c_char>,
) -> *mut c_char {
    if slot.is_some() {
        return conf_message(c"is duplicate");
    }
    let value = args(cf)[1];
    match parse(cf, value) {
        Ok(v) => {
            *slot = Some(v);
            CONF_OK
        }
        Err(rv) => rv,
    }
}
