//! The boundary between nginx and Rust.
//!
//! A Rust panic must never unwind into nginx's C frames: that is undefined
//! behaviour, and since Rust 1.81 an `extern "C"` function that panics aborts
//! the whole worker. Every entry point nginx calls (handlers, directive
//! setters, variable getters, subrequest callbacks) therefore runs its body
//! inside [`guard`], which turns a panic into the failure value the caller
//! understands (`NGX_ERROR`, `NGX_CONF_ERROR`, …) and logs it.
//!
//! A panic is always a bug in this module; the guard exists so that a bug
//! costs one request, not a worker and every connection it holds.

use core::ffi::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};

use nginx_sys::{ngx_http_request_t, ngx_int_t, ngx_log_t, NGX_ERROR, NGX_LOG_CRIT};

/// Runs `body`, returning `on_panic` instead if it panics.
///
/// `log` may be null (then the cycle log is used).
///
/// Inlined, with the panic report out of line: a handler then costs no
/// extra call per invocation, and a body that cannot unwind costs nothing
/// at all (the compiler removes the landing pad).
#[inline(always)]
pub fn guard<T>(log: *mut ngx_log_t, on_panic: T, body: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(value) => value,
        Err(payload) => {
            report_panic(log, payload.as_ref());
            on_panic
        }
    }
}

/// Logs a panic [`guard`] caught.
#[cold]
#[inline(never)]
fn report_panic(log: *mut ngx_log_t, payload: &(dyn core::any::Any + Send)) {
    let what = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("unknown panic");
    let log = if log.is_null() {
        ngx::log::ngx_cycle_log().as_ptr()
    } else {
        log
    };
    ngx::ngx_log_error!(NGX_LOG_CRIT, log, "nginx-authgate: internal error: {what}");
}

/// [`guard`] for handlers that return an nginx status code.
#[inline(always)]
pub fn guard_status(log: *mut ngx_log_t, body: impl FnOnce() -> ngx_int_t) -> ngx_int_t {
    guard(log, NGX_ERROR as ngx_int_t, body)
}

/// [`guard_status`] for a request handler: the request's log is looked up
/// only to report a panic, not on every call.
///
/// # Safety
/// `r` is a live request, with its connection, for the whole call.
#[inline(always)]
pub unsafe fn guard_request(
    r: *const ngx_http_request_t,
    body: impl FnOnce() -> ngx_int_t,
) -> ngx_int_t {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(value) => value,
        Err(payload) => {
            // SAFETY: the request and its connection are live (contract).
            let log = unsafe { (*(*r).connection).log };
            report_panic(log, payload.as_ref());
            NGX_ERROR as ngx_int_t
        }
    }
}

/// [`guard`] for directive and configuration callbacks (`char *` results).
pub fn guard_conf(log: *mut ngx_log_t, body: impl FnOnce() -> *mut c_char) -> *mut c_char {
    guard(log, ngx::core::NGX_CONF_ERROR, body)
}
