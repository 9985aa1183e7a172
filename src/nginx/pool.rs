//! Pool cleanups: objects whose lifetime is a pool's (a client connection's,
//! a request's) and that must act when it ends; bytes copied into a
//! request's pool.

use core::ffi::c_void;

use nginx_sys::{
    ngx_http_request_t, ngx_pnalloc, ngx_pool_cleanup_add, ngx_pool_cleanup_pt, ngx_pool_t,
    ngx_str_t,
};

use super::NgxError;

/// Registers `handler(data)` to run when `pool` is destroyed (cleanups run
/// in reverse order of registration, before the pool's memory is freed).
///
/// # Safety
/// `pool` must be live; `data` must stay valid until the handler has run.
pub unsafe fn add_cleanup(
    pool: *mut ngx_pool_t,
    handler: ngx_pool_cleanup_pt,
    data: *mut c_void,
) -> Result<(), NgxError> {
    // SAFETY: the caller guarantees a live pool; size 0 allocates no data.
    let cln = unsafe { ngx_pool_cleanup_add(pool, 0) };
    if cln.is_null() {
        return Err(NgxError);
    }
    // SAFETY: ngx_pool_cleanup_add returned a fresh, linked cleanup entry.
    unsafe {
        (*cln).handler = handler;
        (*cln).data = data;
    }
    Ok(())
}

/// Finds the data of a cleanup registered on `pool` with `handler` for which
/// `matches(data)` holds. A pool has a handful of cleanups; this is a short
/// walk.
///
/// # Safety
/// `pool` must be live; `matches` is only given data registered with
/// `handler`, which must be a non-generic function.
pub unsafe fn find_cleanup(
    pool: *mut ngx_pool_t,
    handler: ngx_pool_cleanup_pt,
    matches: impl Fn(*mut c_void) -> bool,
) -> Option<*mut c_void> {
    // SAFETY: the caller guarantees a live pool; its cleanup list is a
    // null-terminated singly linked list of entries in that pool.
    // A non-generic `extern "C"` function is one symbol: its address is
    // the same wherever it is taken in the library.
    let wanted = handler.map(|f| f as usize);
    let mut cln = unsafe { (*pool).cleanup };
    while !cln.is_null() {
        // SAFETY: `cln` is a live entry of the list (see above).
        let entry = unsafe { &*cln };
        if entry.handler.map(|f| f as usize) == wanted && matches(entry.data) {
            return Some(entry.data);
        }
        cln = entry.next;
    }
    None
}

/// A copy of `bytes` in the request's pool (lives as long as the request).
pub fn copy_to_pool(r: &ngx_http_request_t, bytes: &[u8]) -> Result<ngx_str_t, NgxError> {
    // SAFETY: allocation in the live request pool, filled right below.
    let p = unsafe { ngx_pnalloc(r.pool, bytes.len().max(1)) }.cast::<u8>();
    if p.is_null() {
        return Err(NgxError);
    }
    // SAFETY: `p` holds `bytes.len()` bytes and does not overlap `bytes`.
    unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len()) };
    Ok(ngx_str_t {
        len: bytes.len(),
        data: p,
    })
}
