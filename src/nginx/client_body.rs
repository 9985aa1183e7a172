//! The client's request body, read in the access phase for a module's own
//! use (`auth_request_body`, `key_auth_body_field`) without being consumed:
//! the upstream still gets it whole.
//!
//! The body is read with nginx's own reader (`client_max_body_size`,
//! `client_body_buffer_size`, temporary files, HTTP/1.1 chunked and HTTP/2
//! all apply as for `proxy_pass`), exactly once per request; the main
//! request keeps it whole for its upstream (`preserve_body`, as the mirror
//! module does, so that a temporary file stays open after an upstream
//! finished, for a later internal redirect). What a caller gets is a copy
//! of at most `max` bytes in the request pool; [`replace`] gives the
//! upstream another body instead (with its own `Content-Length`).

use core::ptr;

use nginx_sys::{
    ngx_alloc_chain_link, ngx_buf_t, ngx_chain_t, ngx_http_finalize_request,
    ngx_http_read_client_request_body, ngx_http_request_body_t, ngx_http_request_t, ngx_int_t,
    ngx_pcalloc, ngx_pnalloc, ngx_read_file, ngx_str_t, NGX_DONE, NGX_HTTP_INTERNAL_SERVER_ERROR,
    NGX_HTTP_REQUEST_ENTITY_TOO_LARGE, NGX_HTTP_SPECIAL_RESPONSE, NGX_LOG_ERR, NGX_LOG_INFO,
};

use super::decimal::decimal;
use super::ffi::guard;
use super::pool::copy_to_pool;
use super::{bitfield, request, NgxError};

/// Where reading the body stands.
pub enum BodyStep {
    /// The whole body, copied into the request pool (may be empty); `None`:
    /// the request has no body.
    Ready(Option<ngx_str_t>),
    /// nginx is reading it; the phase engine runs again (the same phase
    /// handler) once it has. The phase handler returns this status.
    Reading(ngx_int_t),
    /// Answer the client with this status (413, 400, 500, …).
    Refuse(ngx_int_t),
}

/// Whether the request announces a body (a `Content-Length` or HTTP/1.1
/// chunked; HTTP/2 without `END_STREAM` on its headers counts as chunked).
pub fn announced(r: &ngx_http_request_t) -> bool {
    r.headers_in.content_length_n > 0 || bitfield::headers_in::chunked(&r.headers_in)
}

/// Reads the client's body (first call) or returns it (once read). `who`
/// starts the log lines (`auth request body`).
pub fn prepare(r: &mut ngx_http_request_t, max: usize, who: &str) -> BodyStep {
    if r.request_body.is_null() {
        if bitfield::request::discard_body(r) {
            // An earlier response of this request (before an internal
            // redirect) threw the body away: there is nothing to check.
            ngx::ngx_log_error!(
                NGX_LOG_ERR,
                request::log(r),
                "{who}: the request body was already discarded"
            );
            return BodyStep::Refuse(NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t);
        }
        let announced = u64::try_from(r.headers_in.content_length_n).unwrap_or(0);
        if announced > max as u64 {
            return too_large(r, announced, max, who);
        }
        // SAFETY: r is the live main request in its access phase; nginx
        // calls body_read() once the body is in (possibly right away).
        let rc = unsafe { ngx_http_read_client_request_body(r, Some(body_read)) };
        if rc >= NGX_HTTP_SPECIAL_RESPONSE as ngx_int_t {
            return BodyStep::Refuse(rc);
        }
        // ngx_http_read_client_request_body() took a reference on the
        // request; NGX_DONE gives it back (the mirror module's pattern).
        // SAFETY: as above.
        unsafe { ngx_http_finalize_request(r, NGX_DONE as ngx_int_t) };
        return BodyStep::Reading(NGX_DONE as ngx_int_t);
    }
    // SAFETY: request_body of the live request, in its pool.
    let rb = unsafe { &*r.request_body };
    match copy_body(r, rb, max, who) {
        // A request without a body (no Content-Length, not chunked): the
        // subrequest announces none either, as without the directive.
        Ok(Ok(body))
            if body.len == 0
                && r.headers_in.content_length_n < 0
                && !bitfield::headers_in::chunked(&r.headers_in) =>
        {
            BodyStep::Ready(None)
        }
        Ok(Ok(body)) => BodyStep::Ready(Some(body)),
        Ok(Err(size)) => too_large(r, size as u64, max, who),
        Err(NgxError) => BodyStep::Refuse(NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t),
    }
}

fn too_large(r: &ngx_http_request_t, size: u64, max: usize, who: &str) -> BodyStep {
    ngx::ngx_log_error!(
        NGX_LOG_INFO,
        request::log(r),
        "{who}: client body of {size} bytes is larger than max={max}"
    );
    BodyStep::Refuse(NGX_HTTP_REQUEST_ENTITY_TOO_LARGE as ngx_int_t)
}

/// The body reader's completion handler: keep the body for the upstream,
/// then run the phases again (back into the phase handler that asked).
unsafe extern "C" fn body_read(r: *mut ngx_http_request_t) {
    // SAFETY: nginx passes the live main request.
    let r = unsafe { &mut *r };
    guard(request::log(r), (), || {
        bitfield::request::set_preserve_body(r, true);
        r.write_event_handler = Some(nginx_sys::ngx_http_core_run_phases);
        // SAFETY: what nginx's own body handlers (mirror) do.
        unsafe { nginx_sys::ngx_http_core_run_phases(r) };
    });
}

/// Gives the upstream `body` (bytes in the request pool) instead of the
/// read one: one in-memory buffer, `Content-Length` (the number nginx's
/// proxy sends, and the header `$content_length` shows) set to its length.
/// The temporary file, which still holds the client's bytes, is no longer
/// named by `$request_body_file`. Call it only once the body was read
/// ([`prepare`] returned it).
pub fn replace(r: &mut ngx_http_request_t, body: &[u8]) -> Result<(), NgxError> {
    // SAFETY: request_body of the live request, in its pool.
    let Some(rb) = (unsafe { r.request_body.as_mut() }) else {
        return Err(NgxError);
    };
    let chain = one_buffer_chain(
        r,
        ngx_str_t {
            len: body.len(),
            data: body.as_ptr().cast_mut(),
        },
    )?;
    rb.bufs = chain;
    rb.temp_file = ptr::null_mut();
    r.headers_in.content_length_n = body.len() as _;
    // SAFETY: the Content-Length header element of the live request (in
    // its pool, or null); its value gets a string of our own.
    if let Some(h) = unsafe { r.headers_in.content_length.as_mut() } {
        let mut digits = [0u8; 20];
        h.value = copy_to_pool(r, decimal(body.len() as u64, &mut digits))?;
    }
    Ok(())
}

/// A request body chain of one in-memory buffer holding `data` (bytes
/// that live at least as long as `r`'s pool, only read through the
/// buffer), allocated in `r`'s pool;
/// null for no bytes.
pub fn one_buffer_chain(
    r: &ngx_http_request_t,
    data: ngx_str_t,
) -> Result<*mut ngx_chain_t, NgxError> {
    if data.len == 0 {
        return Ok(ptr::null_mut());
    }
    // SAFETY: allocations in the live request's pool.
    let (buf, chain) = unsafe {
        (
            ngx_pcalloc(r.pool, size_of::<ngx_buf_t>()).cast::<ngx_buf_t>(),
            ngx_alloc_chain_link(r.pool),
        )
    };
    if buf.is_null() || chain.is_null() {
        return Err(NgxError);
    }
    // SAFETY: both were just allocated; `data` outlives them (the
    // contract).
    unsafe {
        (*buf).pos = data.data;
        (*buf).start = data.data;
        (*buf).last = data.data.add(data.len);
        (*buf).end = (*buf).last;
        bitfield::buf::set_memory(&mut *buf, true);
        bitfield::buf::set_last_buf(&mut *buf, true);
        bitfield::buf::set_last_in_chain(&mut *buf, true);
        (*chain).buf = buf;
        (*chain).next = ptr::null_mut();
    }
    Ok(chain)
}

/// The read body as one pool buffer: `Ok(Err(size))` when it has more than
/// `max` bytes.
fn copy_body(
    r: &ngx_http_request_t,
    rb: &ngx_http_request_body_t,
    max: usize,
    who: &str,
) -> Result<Result<ngx_str_t, usize>, NgxError> {
    let mut total = 0usize;
    for_each_buf(rb, |b| {
        total += buf_len(b);
    });
    if total > max {
        return Ok(Err(total));
    }
    if total == 0 {
        return Ok(Ok(ngx_str_t::empty()));
    }
    // SAFETY: allocation in the live request pool.
    let data = unsafe { ngx_pnalloc(r.pool, total) }.cast::<u8>();
    if data.is_null() {
        return Err(NgxError);
    }
    let mut at = 0usize;
    let mut failed = false;
    for_each_buf(rb, |b| {
        let len = buf_len(b);
        if failed || len == 0 {
            return;
        }
        // SAFETY: `data` has `total` bytes and at + len <= total.
        let dst = unsafe { data.add(at) };
        if in_memory(b) {
            // SAFETY: pos..last of an in-memory buffer are live bytes.
            unsafe { core::ptr::copy_nonoverlapping(b.pos, dst, len) };
        } else {
            // SAFETY: an in-file buffer of the request body names the
            // body's temporary file, open until the request ends
            // (preserve_body); file_pos..file_last is its part.
            let n = unsafe { ngx_read_file(b.file, dst, len, b.file_pos) };
            if n != len as isize {
                failed = true;
                return;
            }
        }
        at += len;
    });
    if failed {
        ngx::ngx_log_error!(
            NGX_LOG_ERR,
            request::log(r),
            "{who}: reading the client body's temporary file failed"
        );
        return Err(NgxError);
    }
    Ok(Ok(ngx_str_t { len: total, data }))
}
fn in_memory(b: &ngx_buf_t) -> bool {
    bitfield::buf::temporary(b) || bitfield::buf::memory(b) || bitfield::buf::mmap(b)
}

fn buf_len(b: &ngx_buf_t) -> usize {
    if in_memory(b) {
        // SAFETY: pos and last delimit the buffer's bytes.
        (unsafe { b.last.offset_from(b.pos) }).max(0) as usize
    } else if bitfield::buf::in_file(b) && !b.file.is_null() {
        (b.file_last - b.file_pos).max(0) as usize
    } else {
        0
    }
}

fn for_each_buf(rb: &ngx_http_request_body_t, mut f: impl FnMut(&ngx_buf_t)) {
    let mut cl = rb.bufs;
    while !cl.is_null() {
        // SAFETY: the body's chain links and buffers live in the request
        // pool.
        unsafe {
            if let Some(b) = (*cl).buf.as_ref() {
                f(b);
            }
            cl = (*cl).next;
        }
    }
}
