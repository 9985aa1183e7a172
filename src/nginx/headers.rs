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

/// Adds the response header `name: value` (bytes copied into the request
/// pool). It is sent with whatever response the request ends with: the
/// upstream's, a static file, or an error page.
pub fn push_response(
    r: &mut ngx_http_request_t,
    name: &'static [u8],
    value: &[u8],
) -> Result<*mut ngx_table_elt_t, NgxError> {
    // SAFETY: allocation in the live request pool, filled right below.
    let data = unsafe { nginx_sys::ngx_pnalloc(r.pool, value.len().max(1)) }.cast::<u8>();
    // SAFETY: headers_out.headers is the response's header list.
    let h = unsafe { ngx_list_push(&mut r.headers_out.headers) }.cast::<ngx_table_elt_t>();
    if data.is_null() || h.is_null() {
        return Err(NgxError);
    }
    // SAFETY: `data` has room for `value`; `h` is a fresh list element,
    // fully initialised here. `name` is static.
    unsafe {
        core::ptr::copy_nonoverlapping(value.as_ptr(), data, value.len());
        h.write(ngx_table_elt_t {
            hash: 1,
            key: nginx_sys::ngx_str_t {
                len: name.len(),
                data: name.as_ptr().cast_mut(),
            },
            value: nginx_sys::ngx_str_t {
                len: value.len(),
                data,
            },
            lowcase_key: core::ptr::null_mut(),
            // nginx < 1.23 has no `next` chain of repeated headers.
            #[cfg(nginx1_23_0)]
            next: core::ptr::null_mut(),
        });
    }
    Ok(h)
}

/// Adds a `WWW-Authenticate: value` challenge to the response, linked into
/// `r->headers_out.www_authenticate` so that nginx can hide it when
/// `satisfy any` lets the request through another way.
pub fn push_www_authenticate(
    r: &mut ngx_http_request_t,
    value: &'static [u8],
) -> Result<(), NgxError> {
    let h = push_response(r, b"WWW-Authenticate", value)?;
    #[cfg(nginx1_23_0)]
    // SAFETY: the chain consists of live response header elements.
    unsafe {
        let mut link: *mut *mut ngx_table_elt_t = &mut r.headers_out.www_authenticate;
        while !(*link).is_null() {
            link = &mut (**link).next;
        }
        *link = h;
    }
    #[cfg(not(nginx1_23_0))]
    if r.headers_out.www_authenticate.is_null() {
        r.headers_out.www_authenticate = h;
    }
    Ok(())
}
