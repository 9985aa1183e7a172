//! Header plumbing between a subrequest and its parent: response headers
//! copied up, and a request-header list of the subrequest's own.

use nginx_sys::{
    ngx_hash_key_lc, ngx_http_request_t, ngx_list_init, ngx_list_part_t, ngx_list_push,
    ngx_table_elt_t, ngx_uint_t, NGX_OK,
};

use nginx_sys::ngx_str_t;

use super::decimal::{decimal, DecimalBuf};
use super::{bitfield, headers_in, NgxError};

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
    let mut h = first_www_authenticate(sr);

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

/// Client request headers a decision subrequest (auth_http) never carries,
/// in any spelling (see [`headers_in::same_name`]):
///
/// * what describes the client's body: the subrequest sends its own body
///   or none;
/// * what lets the client choose how the answer is encoded or which part
///   of it, or which (cached) copy of it, arrives: content negotiation,
///   transfer codings, conditionals, ranges, cache directives,
///   preferences. An ACL answer is compared byte for byte (`ignore`): a
///   compressed, partial, transcoded or "not modified" answer would read as
///   another one.
pub const NOT_FOR_DECISIONS: [&[u8]; 18] = [
    // body framing
    b"Content-Length",
    b"Transfer-Encoding",
    b"Content-Type",
    b"Expect",
    // content negotiation
    b"Accept",
    b"Accept-Charset",
    b"Accept-Encoding",
    b"Accept-Language",
    // transfer codings
    b"TE",
    // conditionals and ranges
    b"If-Match",
    b"If-None-Match",
    b"If-Modified-Since",
    b"If-Unmodified-Since",
    b"If-Range",
    b"Range",
    // caches and preferences
    b"Cache-Control",
    b"Pragma",
    b"Prefer",
];

/// Gives subrequest `sr` a request-header list of its own: the parent's
/// headers minus [`NOT_FOR_DECISIONS`], plus `Content-Type: content_type`
/// when given; the known-header slots of those headers (`accept_encoding`,
/// `range`, `if_modified_since`, …, whichever this nginx build has) are
/// emptied. The parent's list and elements are untouched.
pub fn rebuild_for_decision(
    sr: &mut ngx_http_request_t,
    content_type: Option<&'static str>,
) -> Result<(), NgxError> {
    own_list_without(sr, &NOT_FOR_DECISIONS)?;
    bitfield::headers_in::set_chunked(&mut sr.headers_in, false);

    if let Some(value) = content_type {
        let copy = push_header(sr)?;
        static KEY: &[u8] = b"Content-Type";
        static LOWCASE: &[u8] = b"content-type";
        // SAFETY: `copy` is a fresh element; key and value point to static
        // data nginx only reads.
        unsafe {
            copy.write(ngx_table_elt_t {
                hash: ngx_hash_key_lc(LOWCASE.as_ptr().cast_mut(), LOWCASE.len()) as ngx_uint_t,
                key: ngx_str_t {
                    len: KEY.len(),
                    data: KEY.as_ptr().cast_mut(),
                },
                value: ngx_str_t {
                    len: value.len(),
                    data: value.as_ptr().cast_mut(),
                },
                lowcase_key: LOWCASE.as_ptr().cast_mut(),
                #[cfg(nginx1_23_0)] // nginx < 1.23 has no `next` chain
                next: core::ptr::null_mut(),
            });
        }
        sr.headers_in.content_type = copy;
    }
    Ok(())
}

/// Gives subrequest `sr` a request-header list of its own, made of the
/// parent's headers minus every header called one of `names` (in any
/// spelling, see [`headers_in::same_name`]) and minus those nginx has
/// hidden (`hash` 0); the known-header slots of `names` are emptied.
///
/// nginx starts a subrequest with a struct copy of its parent's
/// `headers_in`: both lists share their parts and elements, so removing a
/// header from the subrequest's list in place would change the parent's
/// headers (and those of every other subrequest made from it). The new list
/// lives in the request pool; its elements are copies whose names and
/// values still point at the parent's bytes (same pool). The parent's list
/// and elements are untouched. The other known-header slots keep pointing
/// at the parent's elements, which hold the same names and values.
pub fn own_list_without(sr: &mut ngx_http_request_t, names: &[&[u8]]) -> Result<(), NgxError> {
    let parent_list = sr.headers_in.headers;
    // SAFETY: the list header is copied by value; re-initialising the
    // subrequest's copy allocates fresh parts in the request pool and does
    // not touch the parent's parts.
    if unsafe {
        ngx_list_init(
            &mut sr.headers_in.headers,
            sr.pool,
            16,
            size_of::<ngx_table_elt_t>(),
        )
    } != NGX_OK as nginx_sys::ngx_int_t
    {
        return Err(NgxError);
    }
    headers_in::clear_known(&mut sr.headers_in, names);

    let mut part: *const ngx_list_part_t = &parent_list.part;
    while !part.is_null() {
        // SAFETY: walking the parent's header list: each part holds `nelts`
        // initialised ngx_table_elt_t elements in the request pool.
        let (elts, next) = unsafe {
            let p = &*part;
            (
                core::slice::from_raw_parts(p.elts.cast::<ngx_table_elt_t>(), p.nelts),
                p.next,
            )
        };
        for h in elts {
            if h.hash == 0
                || names
                    .iter()
                    .any(|n| headers_in::same_name(h.key.as_bytes(), n))
            {
                continue;
            }
            let copy = push_header(sr)?;
            // SAFETY: `copy` is a fresh element; key/value bytes are shared
            // with the parent and live in the same pool.
            unsafe {
                copy.write(*h);
                #[cfg(nginx1_23_0)] // nginx < 1.23 has no `next` chain
                {
                    (*copy).next = core::ptr::null_mut();
                }
            }
        }
        part = next;
    }
    Ok(())
}

fn push_header(sr: &mut ngx_http_request_t) -> Result<*mut ngx_table_elt_t, NgxError> {
    // SAFETY: the subrequest's own header list, initialised in the pool.
    let h = unsafe { ngx_list_push(&mut sr.headers_in.headers) }.cast::<ngx_table_elt_t>();
    if h.is_null() {
        Err(NgxError)
    } else {
        Ok(h)
    }
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

/// A value of [`push_response_decimals`].
#[derive(Clone, Copy, Debug)]
pub enum Decimal<'a> {
    /// A number, written in decimal into the request pool.
    Number(u64),
    /// The number's text already, which outlives the request
    /// (configuration memory): the header points at it, no copy.
    Text(&'a [u8]),
}

/// Adds the response headers `names[i]: values[i]`, in order, the numbers
/// in decimal ([`push_response`]'s headers, sent the same way). One pool
/// allocation holds every number, written there in place (no copy), and
/// the N list elements are taken at once when the list's last part has
/// room for them (else one by one, as `ngx_list_push` does).
#[inline]
pub fn push_response_decimals<const N: usize>(
    r: &mut ngx_http_request_t,
    names: &[&'static [u8]; N],
    values: [Decimal<'_>; N],
) -> Result<(), NgxError> {
    // SAFETY: allocation in the live request pool; DecimalBuf is a byte
    // array (alignment 1), so the N buffers need no alignment.
    let data = unsafe { nginx_sys::ngx_pnalloc(r.pool, N * size_of::<DecimalBuf>()) };
    if data.is_null() {
        return Err(NgxError);
    }
    // SAFETY: `data` has room for N DecimalBufs and belongs to this request
    // only; any bytes are valid u8s (each buffer is written before use).
    let bufs = unsafe { core::slice::from_raw_parts_mut(data.cast::<DecimalBuf>(), N) };
    let list = &mut r.headers_out.headers;
    // SAFETY: `last` is the list's last part, in the request pool; a part
    // holds `nalloc` elements of `size` bytes, `nelts` of them in use.
    let elts = unsafe {
        let last = &mut *list.last;
        if list.size == size_of::<ngx_table_elt_t>() && last.nelts + N <= list.nalloc {
            let first = last.elts.cast::<ngx_table_elt_t>().add(last.nelts);
            last.nelts += N;
            Some(first)
        } else {
            None
        }
    };
    for (i, buf) in bufs.iter_mut().enumerate() {
        let name = names[i];
        let value = match values[i] {
            Decimal::Number(n) => decimal(n, buf),
            Decimal::Text(text) => text,
        };
        let h = match elts {
            // SAFETY: element i of the N just taken from the last part.
            Some(first) => unsafe { first.add(i) },
            None => {
                // SAFETY: headers_out.headers is the response's header list.
                let h = unsafe { ngx_list_push(list) }.cast::<ngx_table_elt_t>();
                if h.is_null() {
                    return Err(NgxError);
                }
                h
            }
        };
        // SAFETY: `h` is a fresh list element, fully initialised here;
        // `name` is static, `value` lives in the request pool or outlives
        // the request (Decimal::Text).
        unsafe {
            h.write(ngx_table_elt_t {
                hash: 1,
                key: ngx_str_t {
                    len: name.len(),
                    data: name.as_ptr().cast_mut(),
                },
                value: ngx_str_t {
                    len: value.len(),
                    data: value.as_ptr().cast_mut(),
                },
                lowcase_key: core::ptr::null_mut(),
                // nginx < 1.23 has no `next` chain of repeated headers.
                #[cfg(nginx1_23_0)]
                next: core::ptr::null_mut(),
            });
        }
    }
    Ok(())
}

/// The first `WWW-Authenticate` of a finished subrequest, where
/// [`copy_www_authenticate`] takes them from.
fn first_www_authenticate(sr: &ngx_http_request_t) -> *mut ngx_table_elt_t {
    let h = sr.headers_out.www_authenticate;
    if h.is_null() && !sr.upstream.is_null() {
        // SAFETY: a subrequest's upstream lives in the request pool until the
        // main request is finalised.
        return unsafe { (*sr.upstream).headers_in.www_authenticate };
    }
    h
}

/// The values [`copy_www_authenticate`] would copy, in order.
pub fn www_authenticate_values(
    sr: &ngx_http_request_t,
) -> impl Iterator<Item = &[u8]> + Clone + '_ {
    let mut h = first_www_authenticate(sr);
    core::iter::from_fn(move || {
        // SAFETY: header elements live in the shared request pool.
        let elt = unsafe { h.as_ref()? };
        #[cfg(nginx1_23_0)]
        {
            h = elt.next;
        }
        #[cfg(not(nginx1_23_0))]
        {
            h = core::ptr::null_mut();
        }
        Some(elt.value.as_bytes())
    })
}

/// `SCHEME realm="REALM"`, the value of a `WWW-Authenticate` challenge, or
/// `None` when `realm` cannot be sent as a plain quoted string: it must be
/// printable ASCII without `"` or `\`, not empty (directives refuse other
/// realms at configuration time).
pub fn challenge(scheme: &str, realm: &[u8]) -> Option<Vec<u8>> {
    let plain = |&b: &u8| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\';
    if realm.is_empty() || !realm.iter().all(plain) {
        return None;
    }
    let mut value = Vec::with_capacity(scheme.len() + realm.len() + 9);
    value.extend_from_slice(scheme.as_bytes());
    value.extend_from_slice(b" realm=\"");
    value.extend_from_slice(realm);
    value.push(b'"');
    Some(value)
}

/// Whether the response already carries `WWW-Authenticate: value` (one
/// nginx has not hidden: `satisfy any` zeroes the hash of the challenges it
/// drops when another check allows). A request refused again after an
/// internal redirect keeps the response headers of the first refusal.
pub fn has_www_authenticate(r: &ngx_http_request_t, value: &[u8]) -> bool {
    let mut part: *const nginx_sys::ngx_list_part_t = &r.headers_out.headers.part;
    while !part.is_null() {
        // SAFETY: the response header list's parts and their `nelts`
        // elements are live request memory.
        let (elts, n) = unsafe { ((*part).elts.cast::<ngx_table_elt_t>(), (*part).nelts) };
        for i in 0..n {
            // SAFETY: i < nelts.
            let h = unsafe { &*elts.add(i) };
            if h.hash != 0
                && h.key.as_bytes().eq_ignore_ascii_case(b"WWW-Authenticate")
                && h.value.as_bytes() == value
            {
                return true;
            }
        }
        // SAFETY: as above.
        part = unsafe { (*part).next };
    }
    false
}

/// Adds a `WWW-Authenticate: value` challenge to the response, linked into
/// `r->headers_out.www_authenticate` so that nginx can hide it when
/// `satisfy any` lets the request through another way.
pub fn push_www_authenticate(r: &mut ngx_http_request_t, value: &[u8]) -> Result<(), NgxError> {
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
