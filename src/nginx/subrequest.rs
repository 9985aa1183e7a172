//! Body-less subrequests whose result the parent waits for.
//!
//! A mechanism that asks a service (auth_request, auth_http) starts a
//! subrequest with [`start`], returns `NGX_AGAIN` from its access handler,
//! and is called again by the phase engine once the subrequest has finished
//! and [`SubrequestResult::done`] is set.

use core::ffi::c_void;
use core::ptr;

use nginx_sys::{
    ngx_http_post_subrequest_t, ngx_http_request_body_t, ngx_http_request_t, ngx_http_subrequest,
    ngx_int_t, ngx_pcalloc, ngx_str_t, ngx_uint_t, NGX_HTTP_SPECIAL_RESPONSE,
    NGX_HTTP_SUBREQUEST_WAITED, NGX_OK,
};

use super::ffi::guard_status;
use super::NgxError;

/// What a finished subrequest left behind. Lives in the parent's module
/// context (request pool); filled in by the completion callback.
#[derive(Clone, Copy)]
pub struct SubrequestResult {
    /// The subrequest has finished (successfully or not).
    pub done: bool,
    /// Its response status; see [`start`] for how failures are reported.
    pub status: ngx_uint_t,
    /// The subrequest itself, for evaluating variables in its context and
    /// reading its response headers. Valid until the main request ends.
    pub request: *mut ngx_http_request_t,
}

impl Default for SubrequestResult {
    fn default() -> Self {
        Self {
            done: false,
            status: 0,
            request: ptr::null_mut(),
        }
    }
}

/// Starts a GET subrequest of `r` to `uri` (taken literally: no variables,
/// no `?` splitting) with optional `args`.
///
/// The subrequest carries the parent's request headers and has no body: it
/// gets an empty request body of its own, so that it never tries to read the
/// client's body and an upstream module never closes a body temp file the
/// main request will still need. Only its response header matters
/// (`header_only`): its body never reaches the client.
///
/// When it finishes, `result` is filled in. Its status is the subrequest's
/// response status; when a subrequest fails before producing one (upstream
/// refused, timed out), the status nginx finalised it with is recorded
/// instead, so the log can name it.
///
/// # Safety
/// `result` must stay valid until the subrequest finishes — allocate it in
/// `r`'s pool (the module context).
pub unsafe fn start(
    r: &mut ngx_http_request_t,
    uri: &ngx_str_t,
    args: Option<&ngx_str_t>,
    result: *mut SubrequestResult,
) -> Result<*mut ngx_http_request_t, NgxError> {
    // SAFETY: allocations from the live request pool; zeroed memory is a
    // valid initial state for both structures.
    let post = unsafe { ngx_pcalloc(r.pool, size_of::<ngx_http_post_subrequest_t>()) }
        .cast::<ngx_http_post_subrequest_t>();
    let body = unsafe { ngx_pcalloc(r.pool, size_of::<ngx_http_request_body_t>()) }
        .cast::<ngx_http_request_body_t>();
    if post.is_null() || body.is_null() {
        return Err(NgxError);
    }
    // SAFETY: `post` was just allocated; `result` is valid per the contract.
    unsafe {
        (*post).handler = Some(subrequest_done);
        (*post).data = result.cast::<c_void>();
    }

    let mut uri = *uri;
    let mut args = args.copied();
    let args_ptr = args
        .as_mut()
        .map_or(ptr::null_mut(), |a| a as *mut ngx_str_t);
    let mut sr: *mut ngx_http_request_t = ptr::null_mut();
    // SAFETY: r is a live request; ngx_http_subrequest copies `uri` and
    // `args` (the structs, not the bytes, which live in configuration or
    // request memory) into the new subrequest.
    let rc = unsafe {
        ngx_http_subrequest(
            r,
            &mut uri,
            args_ptr,
            &mut sr,
            post,
            NGX_HTTP_SUBREQUEST_WAITED as ngx_uint_t,
        )
    };
    if rc != NGX_OK as ngx_int_t || sr.is_null() {
        return Err(NgxError);
    }
    // SAFETY: ngx_http_subrequest returned NGX_OK, so `sr` is a new, live
    // subrequest allocated in the shared request pool.
    unsafe {
        (*sr).request_body = body;
        (*sr).set_header_only(1);
        (*result).request = sr;
    }
    Ok(sr)
}

/// Completion callback for [`start`]: records the outcome for the parent.
unsafe extern "C" fn subrequest_done(
    sr: *mut ngx_http_request_t,
    data: *mut c_void,
    rc: ngx_int_t,
) -> ngx_int_t {
    // SAFETY: nginx passes the finished subrequest, alive for the call.
    let log = unsafe { (*(*sr).connection).log };
    guard_status(log, || {
        // SAFETY: `data` is the SubrequestResult registered in start(),
        // living in the request pool; `sr` is the live subrequest.
        let (result, status) = unsafe {
            (
                &mut *data.cast::<SubrequestResult>(),
                (*sr).headers_out.status,
            )
        };
        result.done = true;
        result.status = if status == 0 && rc >= NGX_HTTP_SPECIAL_RESPONSE as ngx_int_t {
            rc as ngx_uint_t
        } else {
            status
        };
        rc
    })
}
