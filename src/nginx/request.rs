//! Small typed accessors for a request's module context and configuration.

use core::ffi::c_void;

use nginx_sys::{ngx_http_request_t, ngx_log_t, ngx_module_t, ngx_pcalloc};

/// The module's context for this request, if one was set.
pub fn ctx<T>(r: &ngx_http_request_t, module: &ngx_module_t) -> Option<&'static mut T> {
    // SAFETY: r->ctx has one slot per HTTP module (ngx_http_max_module); a
    // non-null slot for `module` only ever holds a `T` set by set_ctx() with
    // the same module, allocated in the request pool.
    unsafe { (*r.ctx.add(module.ctx_index)).cast::<T>().as_mut() }
}

/// Allocates a zeroed `T` in the request pool and makes it the module's
/// context for this request. nginx clears contexts on internal redirects,
/// which is what makes a check run again in the new location.
pub fn new_ctx<T: Copy + Default>(
    r: &mut ngx_http_request_t,
    module: &ngx_module_t,
) -> Option<&'static mut T> {
    // SAFETY: allocation in the live request pool, sized and aligned for T
    // (pool allocations are word-aligned; T holds no over-aligned fields).
    let p = unsafe { ngx_pcalloc(r.pool, size_of::<T>()) }.cast::<T>();
    if p.is_null() {
        return None;
    }
    // SAFETY: `p` is fresh pool memory for a T; the ctx slot exists for
    // every HTTP module.
    unsafe {
        p.write(T::default());
        *r.ctx.add(module.ctx_index) = p.cast::<c_void>();
        Some(&mut *p)
    }
}

/// The request's connection log.
pub fn log(r: &ngx_http_request_t) -> *mut ngx_log_t {
    // SAFETY: every request has a live connection with a log while any of
    // its handlers run.
    unsafe { (*r.connection).log }
}
