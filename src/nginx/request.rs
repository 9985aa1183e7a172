//! Small typed accessors for a request's module context (cleared by
//! internal redirects) and kept records (which survive them).

use core::ffi::c_void;

use nginx_sys::{ngx_http_request_t, ngx_log_t, ngx_module_t, ngx_palloc, ngx_str_t};

/// The module's context for this request, if one was set.
pub fn ctx<T>(r: &ngx_http_request_t, module: &ngx_module_t) -> Option<&'static mut T> {
    // SAFETY: r->ctx has one slot per HTTP module (ngx_http_max_module); a
    // non-null slot for `module` only ever holds a `T` set by set_ctx() with
    // the same module, allocated in the request pool.
    unsafe { (*r.ctx.add(module.ctx_index)).cast::<T>().as_mut() }
}

/// Allocates a `T::default()` in the request pool and makes it the
/// module's context for this request. nginx clears contexts on internal
/// redirects, which is what makes a check run again in the new location.
pub fn new_ctx<T: Copy + Default>(
    r: &mut ngx_http_request_t,
    module: &ngx_module_t,
) -> Option<&'static mut T> {
    // SAFETY: allocation in the live request pool, sized and aligned for T
    // (pool allocations are word-aligned; T holds no over-aligned fields).
    // Not zeroed (ngx_palloc): the write below sets every field, so
    // zeroing first would only cost a memset per request.
    let p = unsafe { ngx_palloc(r.pool, size_of::<T>()) }.cast::<T>();
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

/// Allocates room for a `T` in the request pool, has `init` write it in
/// place, and makes it the module's context for this request (as
/// [`new_ctx`], for a `T` too large to build on the stack and copy in).
///
/// # Safety
/// `init` writes every field of the `T` it is given before returning.
#[inline(always)]
pub unsafe fn new_ctx_in_place<T>(
    r: &mut ngx_http_request_t,
    module: &ngx_module_t,
    init: impl FnOnce(*mut T),
) -> Option<&'static mut T> {
    // SAFETY: allocation in the live request pool, sized and aligned for T
    // (pool allocations are word-aligned; T holds no over-aligned fields).
    let p = unsafe { ngx_palloc(r.pool, size_of::<T>()) }.cast::<T>();
    if p.is_null() {
        return None;
    }
    init(p);
    // SAFETY: `init` initialised the fresh pool memory for a T (the
    // contract); the ctx slot exists for every HTTP module.
    unsafe {
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

/// The client's address as text (`$remote_addr`), for a line written
/// [`without_request_context`].
pub fn client(r: &ngx_http_request_t) -> ngx_str_t {
    // SAFETY: every request has a live connection while any of its
    // handlers run.
    unsafe { (*r.connection).addr_text }
}

/// Runs `write` with the request's log stripped of nginx's request
/// context (`client: …, server: …, request: "GET /x?key=… HTTP/1.1"`), for
/// a line that must not carry the request line: it may hold a secret in its
/// query string. The caller names what it needs (the client address) in
/// its own message.
pub fn without_request_context(r: &ngx_http_request_t, write: impl FnOnce(*mut ngx_log_t)) {
    let log = log(r);
    if log.is_null() {
        return;
    }
    // SAFETY: the connection's log is live; the handler that appends the
    // context is put back before anything else can log (single thread).
    unsafe {
        let handler = (*log).handler;
        (*log).handler = None;
        write(log);
        (*log).handler = handler;
    }
}

/// A module's per-request record that survives internal redirects.
///
/// nginx zeroes `r->ctx` whenever a request moves to another location
/// without a new client request (`ngx_http_internal_redirect`:
/// `try_files`, `error_page URI`, `rewrite … last`, `index`;
/// `ngx_http_named_location`: `@name`), so a module context cannot remember
/// what was decided before the move. The request pool stays: the record is
/// allocated there, and a pool cleanup entry (whose handler does nothing)
/// points at it, so the pool's cleanup list is where it is found again.
/// nginx's realip module keeps its context across redirects the same way.
#[repr(C)]
struct Kept<T> {
    /// Whose record this is: one module, one record type.
    owner: *const ngx_module_t,
    value: T,
}

/// Marks a cleanup entry whose data is a [`Kept`] record. The records are
/// plain `Copy` data in the pool: nothing to release.
unsafe extern "C" fn kept_marker(_data: *mut c_void) {}

/// The record [`kept_or_new`] made for `module` in this request, if any.
///
/// A module must always use the same `T` with its records.
pub fn kept<T: Copy>(r: &ngx_http_request_t, module: &ngx_module_t) -> Option<&'static mut T> {
    let owner: *const ngx_module_t = module;
    // SAFETY: the request pool is live; data of entries with kept_marker
    // are Kept<_> records whose first field (repr(C)) is the owner.
    let found = unsafe {
        super::pool::find_cleanup(r.pool, Some(kept_marker), |data| {
            *data.cast::<*const ngx_module_t>() == owner
        })
    }?;
    // SAFETY: a record of this module, hence a Kept<T> (one record type per
    // module), allocated in the request pool, which outlives the request's
    // handlers.
    Some(unsafe { &mut (*found.cast::<Kept<T>>()).value })
}

/// The module's record for this request, made (zeroed to `T::default()`)
/// on first use; `None` when the pool is out of memory.
pub fn kept_or_new<T: Copy + Default>(
    r: &mut ngx_http_request_t,
    module: &ngx_module_t,
) -> Option<&'static mut T> {
    if let Some(value) = kept::<T>(r, module) {
        return Some(value);
    }
    // SAFETY: allocation in the live request pool, sized for Kept<T> (pool
    // allocations are word-aligned; T holds no over-aligned fields).
    let p = unsafe { ngx_palloc(r.pool, size_of::<Kept<T>>()) }.cast::<Kept<T>>();
    if p.is_null() {
        return None;
    }
    // SAFETY: `p` is fresh pool memory for a Kept<T>; the cleanup entry
    // lives in the same pool, so it never outlives the record.
    unsafe {
        p.write(Kept {
            owner: module,
            value: T::default(),
        });
        super::pool::add_cleanup(r.pool, Some(kept_marker), p.cast()).ok()?;
        Some(&mut (*p).value)
    }
}
