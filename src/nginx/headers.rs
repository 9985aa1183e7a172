//! Response-header plumbing between a subrequest and its parent.

use nginx_sys::{ngx_http_request_t, ngx_list_push, ngx_table_elt_t};

use super::NgxError;

/// Copies every `WWW-Authenticate` header of the finished subrequest `sr`
/// into `r`'s response, in order.
///
/// They come from the subrequest's own response headers (an auth location
/// answering with `return 401` + `add_header`), or, when it has none, from
/// its upstream's (a proxied auth service).
pub fn copy_www_authenticate(
    r: &mut ngx_http_request_t,
    sr: &ngx_http_request_t,
) -> Result<(), NgxError> {
    let mut h = sr.headers_out.www_authenticate;
    if h.is_null() && !sr.upstream.is_null() {
        // SAFETY: a subrequest's upstream lives in the request pool until the
        // main request is finalised.
        h = unsafe { (*sr.upstream).headers_in.www_authenticate };
    }

    // nginx 1.23 chained repeated headers through `next`; older nginx kept
    // only the first one.
    #[cfg(nginx1_23_0)]
    let mut tail: *mut *mut ngx_table_elt_t = &mut r.headers_out.www_authenticate;

    while !h.is_null() {
        // SAFETY: headers_out.headers is the response's header list, owned by
        // r's pool; the pushed element is fully overwritten below.
        let copy = unsafe { ngx_list_push(&mut r.headers_out.headers) }.cast::<ngx_table_elt_t>();
        if copy.is_null() {
            return Err(NgxError);
        }
        // SAFETY: `h` is a valid header element of the subrequest; key and
        // value point into the shared request pool and outlive the copy.
        unsafe {
            copy.write(*h);
        }
        #[cfg(nginx1_23_0)]
        // SAFETY: `tail` points at r's www_authenticate slot or at the `next`
        // field of the previous copy; both are live.
        unsafe {
            (*copy).next = core::ptr::null_mut();
            *tail = copy;
            tail = &mut (*copy).next;
            h = (*h).next;
        }
        #[cfg(not(nginx1_23_0))]
        {
            r.headers_out.www_authenticate = copy;
            h = core::ptr::null_mut();
        }
    }
    Ok(())
}
