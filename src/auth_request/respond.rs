//! Auth response headers for the client (`auth_request_client_header`,
//! and the headers that go with an `auth_request_pass_status` status).
//!
//! They are added to the main request's response header list in the access
//! phase; nginx sends that list with whatever response the request ends
//! with: the upstream's, a static file, nginx's own error page or an
//! `error_page` target.

use nginx_sys::{
    ngx_http_request_t, ngx_list_part_t, ngx_list_push, ngx_str_t, ngx_table_elt_t, ngx_uint_t,
};

use super::extensions::Extensions;
use super::upstream_headers;
use super::verdict::Verdict;
use crate::nginx::NgxError;

/// The `hash` of response headers copied from an auth response. nginx only
/// tests a response header's hash for zero (zero: not sent); this value
/// also tells a later check of the same request (after an internal
/// redirect, which keeps the response headers) which copies to hide
/// before adding those of its own auth response.
const FROM_AUTH_RESPONSE: ngx_uint_t = 0x6172_6571_u32 as ngx_uint_t;

/// The headers of a passed status the client needs to act on it.
const PASS_STATUS_HEADERS: [&[u8]; 3] = [b"Location", b"Retry-After", b"WWW-Authenticate"];

/// Carries the auth response's headers where the opt-in directives say,
/// for this verdict: `auth_request_client_header` names to the client on
/// allow, 401, 403 and a passed status; a passed status's own headers; and
/// `auth_request_upstream_header` names to the upstream request on allow.
/// Nothing on a failure (500). Without those directives, does nothing.
pub fn pass_on(
    r: &mut ngx_http_request_t,
    sr: &ngx_http_request_t,
    ext: &Extensions,
    verdict: Verdict,
) -> Result<(), NgxError> {
    let client = ext.client_headers();
    if client.is_empty() && ext.pass_status.is_none() && ext.upstream_headers().is_empty() {
        return Ok(());
    }
    hide_earlier_copies(r);
    match verdict {
        Verdict::Allow => {
            copy_named(r, sr, client)?;
            upstream_headers::set_from(r, sr, ext.upstream_headers())
        }
        Verdict::Unauthorized | Verdict::Forbidden => copy_named(r, sr, client),
        Verdict::Pass(_) => {
            copy_pass_status_headers(r, sr)?;
            copy_named(r, sr, client)
        }
        Verdict::Unexpected(_) | Verdict::NotAllowed(_) => Ok(()),
    }
}

/// Hides (never sends) the headers an earlier auth check of this request
/// copied to the client.
pub fn hide_earlier_copies(r: &mut ngx_http_request_t) {
    let mut part: *mut ngx_list_part_t = &mut r.headers_out.headers.part;
    while !part.is_null() {
        // SAFETY: the response header list's parts and their `nelts`
        // elements are live request memory.
        let elts = unsafe {
            core::slice::from_raw_parts_mut((*part).elts.cast::<ngx_table_elt_t>(), (*part).nelts)
        };
        for h in elts {
            if h.hash == FROM_AUTH_RESPONSE {
                h.hash = 0;
                if core::ptr::eq(r.headers_out.location, h) {
                    r.headers_out.location = core::ptr::null_mut();
                }
            }
        }
        // SAFETY: as above.
        part = unsafe { (*part).next };
    }
}

/// Adds to `r`'s response every header of the finished auth subrequest
/// `sr` called one of `names` (ASCII case-insensitively), name by name, in
/// the auth response's order.
pub fn copy_named(
    r: &mut ngx_http_request_t,
    sr: &ngx_http_request_t,
    names: &[ngx_str_t],
) -> Result<(), NgxError> {
    for name in names {
        copy_one_name(r, sr, name.as_bytes())?;
    }
    Ok(())
}

/// For a passed status: the auth response's `Location` (also nginx's
/// `r->headers_out.location`, so that a relative one is made absolute as
/// nginx does for its own redirects), `Retry-After` and `WWW-Authenticate`.
pub fn copy_pass_status_headers(
    r: &mut ngx_http_request_t,
    sr: &ngx_http_request_t,
) -> Result<(), NgxError> {
    for name in PASS_STATUS_HEADERS {
        let first = copy_one_name(r, sr, name)?;
        if name == b"Location" {
            if let Some(location) = first {
                r.headers_out.location = location;
            }
        }
    }
    Ok(())
}

/// Copies every header of `sr`'s response called `name`; returns the first
/// copy.
fn copy_one_name(
    r: &mut ngx_http_request_t,
    sr: &ngx_http_request_t,
    name: &[u8],
) -> Result<Option<*mut ngx_table_elt_t>, NgxError> {
    let mut first = None;
    let mut part: *const ngx_list_part_t = &sr.headers_out.headers.part;
    while !part.is_null() {
        // SAFETY: the finished subrequest's response header list lives in
        // the shared request pool until the main request ends.
        let (elts, next) = unsafe {
            let p = &*part;
            (
                core::slice::from_raw_parts(p.elts.cast::<ngx_table_elt_t>(), p.nelts),
                p.next,
            )
        };
        for h in elts {
            if h.hash == 0 || !h.key.as_bytes().eq_ignore_ascii_case(name) {
                continue;
            }
            // SAFETY: headers_out.headers is the response's header list,
            // owned by r's pool; the element is fully written below.
            let copy =
                unsafe { ngx_list_push(&mut r.headers_out.headers) }.cast::<ngx_table_elt_t>();
            if copy.is_null() {
                return Err(NgxError);
            }
            // SAFETY: `copy` is a fresh element; the key and value bytes
            // live in the shared request pool and outlive the copy.
            unsafe {
                copy.write(ngx_table_elt_t {
                    hash: FROM_AUTH_RESPONSE,
                    key: h.key,
                    value: h.value,
                    lowcase_key: h.lowcase_key,
                    #[cfg(nginx1_23_0)] // nginx < 1.23 has no `next` chain
                    next: core::ptr::null_mut(),
                });
            }
            first.get_or_insert(copy);
        }
        part = next;
    }
    Ok(first)
}

/// The values of the headers of `sr`'s response called `name` (ASCII
/// case-insensitively), in order.
pub fn values<'a>(
    sr: &'a ngx_http_request_t,
    name: &'a [u8],
) -> impl Iterator<Item = &'a ngx_str_t> + 'a {
    let mut part: *const ngx_list_part_t = &sr.headers_out.headers.part;
    let mut i = 0;
    core::iter::from_fn(move || loop {
        if part.is_null() {
            return None;
        }
        // SAFETY: as in copy_one_name().
        let p = unsafe { &*part };
        if i >= p.nelts {
            part = p.next;
            i = 0;
            continue;
        }
        // SAFETY: i < nelts.
        let h = unsafe { &*p.elts.cast::<ngx_table_elt_t>().add(i) };
        i += 1;
        if h.hash != 0 && h.key.as_bytes().eq_ignore_ascii_case(name) {
            return Some(&h.value);
        }
    })
}
