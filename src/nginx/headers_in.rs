//! Editing the request headers (`r->headers_in`) so that what an upstream
//! receives changes.
//!
//! `proxy_pass` (and grpc/fastcgi/uwsgi/scgi) build the upstream request by
//! walking `r->headers_in.headers`, a list of header elements, skipping only
//! names given to `proxy_set_header`. An element flagged with `hash = 0` is
//! still sent, so removing a header means taking it out of the list.
//!
//! nginx also caches pointers to list elements: `r->headers_in.host`,
//! `.user_agent`, `.authorization`, … (one slot per header it knows, see
//! `ngx_http_headers_in[]`), and chains repeated headers through each
//! element's `next`. [`remove`] keeps all of these coherent: a removed
//! element is unlinked from every slot and chain, and pointers to the
//! elements that move down by one place are adjusted.
//!
//! nginx before 1.23 has no `next` chains: a slot holds the first header of
//! its name, and the headers that may repeat (`Cookie`, `X-Forwarded-For`)
//! are collected in `ngx_array_t`s of element pointers instead of slots.
//! The `#[cfg(not(nginx1_23_0))]` parts below keep those arrays coherent too.

use core::ptr;

use nginx_sys::{
    ngx_hash_find, ngx_hash_key, ngx_http_header_t, ngx_http_headers_in, ngx_http_headers_in_t,
    ngx_http_request_t, ngx_list_part_t, ngx_list_push, ngx_pnalloc, ngx_str_t, ngx_table_elt_t,
};

use ngx::http::{HttpModuleMainConf, NgxHttpCoreModule};

use super::{bitfield, headers, NgxError};

/// The value of the first header called `name` (ASCII-case-insensitive).
pub fn find<'r>(r: &'r ngx_http_request_t, name: &[u8]) -> Option<&'r ngx_table_elt_t> {
    let mut part: *const ngx_list_part_t = &r.headers_in.headers.part;
    while !part.is_null() {
        // SAFETY: the header list's parts and their `nelts` elements are
        // live request memory.
        let (elts, n) = unsafe { ((*part).elts.cast::<ngx_table_elt_t>(), (*part).nelts) };
        for i in 0..n {
            // SAFETY: i < nelts.
            let h = unsafe { &*elts.add(i) };
            if h.key.as_bytes().eq_ignore_ascii_case(name) {
                return Some(h);
            }
        }
        // SAFETY: as above.
        part = unsafe { (*part).next };
    }
    None
}

/// Whether some header called `name` (ASCII-case-insensitive) has a value
/// for which `pred` holds.
pub fn any_value(r: &ngx_http_request_t, name: &[u8], pred: impl Fn(&[u8]) -> bool) -> bool {
    any_header(r, |key| key.eq_ignore_ascii_case(name), pred)
}

/// Whether some header called `name` in any spelling an application would
/// take for it (see [`same_name`]: `Content_Type` for `Content-Type`, with
/// `underscores_in_headers on`) has a value for which `pred` holds.
pub fn any_value_any_spelling(
    r: &ngx_http_request_t,
    name: &[u8],
    pred: impl Fn(&[u8]) -> bool,
) -> bool {
    any_header(r, |key| same_name(key, name), pred)
}

fn any_header(
    r: &ngx_http_request_t,
    name_matches: impl Fn(&[u8]) -> bool,
    pred: impl Fn(&[u8]) -> bool,
) -> bool {
    let mut part: *const ngx_list_part_t = &r.headers_in.headers.part;
    while !part.is_null() {
        // SAFETY: as in find().
        let (elts, n) = unsafe { ((*part).elts.cast::<ngx_table_elt_t>(), (*part).nelts) };
        for i in 0..n {
            // SAFETY: i < nelts.
            let h = unsafe { &*elts.add(i) };
            if name_matches(h.key.as_bytes()) && pred(h.value.as_bytes()) {
                return true;
            }
        }
        // SAFETY: as above.
        part = unsafe { (*part).next };
    }
    false
}

/// nginx < 1.23: offsets of the `ngx_array_t` fields of `headers_in` that
/// collect repeated headers; their `ngx_http_headers_in[]` entries are no
/// `ngx_table_elt_t *` slots.
#[cfg(not(nginx1_23_0))]
fn multi_header_arrays() -> &'static [usize] {
    &[
        core::mem::offset_of!(ngx_http_headers_in_t, cookies),
        #[cfg(ngx_feature = "http_x_forwarded_for")]
        core::mem::offset_of!(ngx_http_headers_in_t, x_forwarded_for),
    ]
}

/// The entries of nginx's `ngx_http_headers_in[]` table that are cached
/// `ngx_table_elt_t *` slots of `headers_in`: (header name, offset of the
/// slot). Which headers are in the table depends on nginx's build flags
/// (`Accept-Encoding` only with gzip or headers modules, `X-Real-IP` with
/// realip, …), so code that cares about a slot looks it up here by name
/// instead of naming a field.
fn known_entries() -> impl Iterator<Item = (&'static [u8], usize)> {
    let mut i = 0usize;
    core::iter::from_fn(move || loop {
        // SAFETY: ngx_http_headers_in[] is nginx's static table of known
        // request headers, terminated by an entry with an empty name.
        let entry = unsafe {
            &*ptr::addr_of!(ngx_http_headers_in)
                .cast::<nginx_sys::ngx_http_header_t>()
                .add(i)
        };
        if entry.name.len == 0 {
            return None;
        }
        i += 1;
        // Offset 0 is the `headers` list itself, never a cached pointer.
        #[cfg(not(nginx1_23_0))]
        if multi_header_arrays().contains(&entry.offset) {
            continue;
        }
        if entry.offset != 0 {
            return Some((entry.name.as_bytes(), entry.offset));
        }
    })
}

/// Every cached `ngx_table_elt_t *` slot of `headers_in` (the known
/// headers), as raw pointers to the slots.
fn known_slots(hin: *mut ngx_http_headers_in_t) -> impl Iterator<Item = *mut *mut ngx_table_elt_t> {
    known_entries().map(move |(_, offset)| {
        // SAFETY: `offset` is offsetof(ngx_http_headers_in_t, field) of a
        // `ngx_table_elt_t *` field.
        unsafe { hin.cast::<u8>().add(offset) }.cast::<*mut ngx_table_elt_t>()
    })
}

/// Empties the cached slot of every known header called one of `names`
/// (compared as [`same_name`] does), so that nginx and its modules no longer
/// see such a header through `headers_in` (after the header list was
/// rebuilt without them).
pub fn clear_known(hin: &mut ngx_http_headers_in_t, names: &[&[u8]]) {
    let hin: *mut ngx_http_headers_in_t = hin;
    for (name, offset) in known_entries() {
        if names.iter().any(|n| same_name(name, n)) {
            // SAFETY: `offset` is that of a `ngx_table_elt_t *` field of the
            // live headers_in.
            unsafe {
                *hin.cast::<u8>().add(offset).cast::<*mut ngx_table_elt_t>() = ptr::null_mut();
            }
        }
    }
    // nginx < 1.23 collects Cookie and X-Forwarded-For in arrays instead.
    #[cfg(not(nginx1_23_0))]
    {
        let arrays: [(&[u8], usize); 2] = [
            (
                b"Cookie",
                core::mem::offset_of!(ngx_http_headers_in_t, cookies),
            ),
            #[cfg(ngx_feature = "http_x_forwarded_for")]
            (
                b"X-Forwarded-For",
                core::mem::offset_of!(ngx_http_headers_in_t, x_forwarded_for),
            ),
            #[cfg(not(ngx_feature = "http_x_forwarded_for"))]
            (b"", 0),
        ];
        for (name, offset) in arrays {
            if !name.is_empty() && names.iter().any(|n| same_name(name, n)) {
                // SAFETY: `offset` is that of an ngx_array_t field of the
                // live headers_in; an empty array is a valid one.
                unsafe {
                    (*hin
                        .cast::<u8>()
                        .add(offset)
                        .cast::<nginx_sys::ngx_array_t>())
                    .nelts = 0;
                }
            }
        }
    }
}

/// Whether two header names are the same for an application: ASCII case
/// folded and `_` equal to `-`. CGI-style gateways (FastCGI, uwsgi, SCGI,
/// and the PHP, Rack, WSGI environments behind them) turn both
/// `X-Consumer-Username` and `X_Consumer_Username` into
/// `HTTP_X_CONSUMER_USERNAME`, and nginx's own `$http_x_consumer_username`
/// matches both; with `underscores_in_headers on` nginx passes the second
/// spelling on as a header of its own.
pub fn same_name(a: &[u8], b: &[u8]) -> bool {
    let fold = |c: u8| {
        if c == b'_' {
            b'-'
        } else {
            c.to_ascii_lowercase()
        }
    };
    a.len() == b.len() && a.iter().zip(b).all(|(&x, &y)| fold(x) == fold(y))
}

/// Removes every header called `name` from the request, in every spelling
/// an application would take for it (see [`same_name`]). Returns how many
/// were removed.
pub fn remove(r: &mut ngx_http_request_t, name: &[u8]) -> Result<usize, NgxError> {
    remove_any(r, &[name])
}

/// Removes every header whose name is one of `names` in every spelling an
/// application would take for it (ASCII case folded, `_` equal to `-`, see
/// [`same_name`]), in one pass over the list. Returns how many were
/// removed.
///
/// A main request whose subrequests may still be running (its reference
/// count says something else holds it) shares its list's parts and
/// elements with them (nginx starts a subrequest with a struct copy of
/// `headers_in`): editing them in place would shift headers under a
/// running subrequest and leave its cached pointers on moved elements. Such
/// a request gets a list of its own instead ([`headers::own_list_without`]);
/// the old one stays as it was for the subrequests.
pub fn remove_any(r: &mut ngx_http_request_t, names: &[&[u8]]) -> Result<usize, NgxError> {
    if ptr::eq(r, r.main) && bitfield::request_count(r) > 1 {
        let matching = count_matching(r, names);
        if matching > 0 {
            headers::own_list_without(r, names)?;
        }
        return Ok(matching);
    }
    Ok(remove_in_place(r, names))
}

/// How many headers of `r` are called one of `names`, in any spelling.
fn count_matching(r: &ngx_http_request_t, names: &[&[u8]]) -> usize {
    let mut n = 0;
    let mut part: *const ngx_list_part_t = &r.headers_in.headers.part;
    while !part.is_null() {
        // SAFETY: each part of a live request's header list holds `nelts`
        // initialised elements in the request pool.
        let (elts, next) = unsafe {
            let p = &*part;
            (
                core::slice::from_raw_parts(p.elts.cast::<ngx_table_elt_t>(), p.nelts),
                p.next,
            )
        };
        n += elts
            .iter()
            .filter(|h| names.iter().any(|name| same_name(h.key.as_bytes(), name)))
            .count();
        part = next;
    }
    n
}

/// [`remove_any`] for a list nobody else uses.
fn remove_in_place(r: &mut ngx_http_request_t, names: &[&[u8]]) -> usize {
    let hin: *mut ngx_http_headers_in_t = &mut r.headers_in;
    let mut removed = 0;
    // SAFETY: `hin` is the live request's headers_in; the list parts and
    // elements are request-pool memory; every pointer adjusted below points
    // at an element of this list.
    unsafe {
        let list: *mut nginx_sys::ngx_list_t = &mut (*hin).headers;
        let mut prev: *mut ngx_list_part_t = ptr::null_mut();
        let mut part: *mut ngx_list_part_t = &mut (*list).part;
        while !part.is_null() {
            let elts = (*part).elts.cast::<ngx_table_elt_t>();
            let mut i = 0;
            while i < (*part).nelts {
                let h = elts.add(i);
                let key = (*h).key.as_bytes();
                if !names.iter().any(|name| same_name(key, name)) {
                    i += 1;
                    continue;
                }
                let n = (*part).nelts;
                let moved = elts.add(i + 1)..elts.add(n);
                let shift = |p: *mut ngx_table_elt_t| {
                    if moved.contains(&p) {
                        p.sub(1)
                    } else {
                        p
                    }
                };
                // What a slot or link pointing at `h` points at afterwards:
                // the next header of that name (nginx < 1.23: none, the
                // slot held the first one and all of them are removed).
                // `h->next` is read only when something points at `h`: only
                // then did a known-header handler (or we) initialise it.
                fix_pointers(hin, |p| {
                    if p != h {
                        return shift(p);
                    }
                    #[cfg(nginx1_23_0)]
                    return shift((*h).next);
                    #[cfg(not(nginx1_23_0))]
                    return ptr::null_mut();
                });
                ptr::copy(elts.add(i + 1), h, n - i - 1);
                (*part).nelts = n - 1;
                removed += 1;
            }
            let next = (*part).next;
            if (*part).nelts == 0 && !prev.is_null() {
                // nginx's list walkers (proxy, fastcgi, $http_*, …) step
                // into the next part and read its first element before
                // checking that it has one: an emptied part other than the
                // first would hand them the last header removed from it.
                (*prev).next = next;
                if (*list).last == part {
                    (*list).last = prev;
                }
            } else {
                prev = part;
            }
            part = next;
        }
    }
    removed
}

/// Rewrites every cached element pointer (known-header slots and the `next`
/// links of their chains; nginx < 1.23: the repeated-header arrays,
/// dropping entries mapped to null) through `map`.
///
/// nginx ≥ 1.23 sets an element's `next` only when a known-header handler
/// links it into a slot's chain (`ngx_http_process_header_line()` and the
/// like); other elements leave it uninitialised. So the links are found by
/// walking the chains from the slots, never by reading `next` of every
/// element.
///
/// # Safety
/// `hin` must be a live request's headers_in.
unsafe fn fix_pointers(
    hin: *mut ngx_http_headers_in_t,
    map: impl Fn(*mut ngx_table_elt_t) -> *mut ngx_table_elt_t,
) {
    // SAFETY: per the contract, every slot and every element of a slot's
    // chain is live.
    unsafe {
        for slot in known_slots(hin) {
            #[cfg_attr(not(nginx1_23_0), allow(unused_mut))] // no chain to walk
            let mut link = slot;
            #[cfg_attr(not(nginx1_23_0), allow(clippy::never_loop))]
            while !(*link).is_null() {
                let element = *link;
                *link = map(element);
                // The chain goes on from the element's own `next` (not yet
                // moved: the caller moves elements after this).
                #[cfg(nginx1_23_0)]
                {
                    link = &mut (*element).next;
                }
                #[cfg(not(nginx1_23_0))]
                break;
            }
        }
        #[cfg(not(nginx1_23_0))]
        for &offset in multi_header_arrays() {
            // SAFETY: `offset` is that of an ngx_array_t of element
            // pointers in the live headers_in (nelts 0 if never used).
            let array = hin
                .cast::<u8>()
                .add(offset)
                .cast::<nginx_sys::ngx_array_t>();
            let elts = (*array).elts.cast::<*mut ngx_table_elt_t>();
            let mut kept = 0;
            for i in 0..(*array).nelts {
                let p = map(*elts.add(i));
                if !p.is_null() {
                    *elts.add(kept) = p;
                    kept += 1;
                }
            }
            (*array).nelts = kept;
        }
    }
}

/// A header name whose lowercase form and nginx hash are computed at compile
/// time, for headers a module sets on every request.
pub struct PreparedName {
    key: &'static [u8],
    lowcase: &'static [u8],
    hash: usize,
}

impl PreparedName {
    /// `lowcase` must be `key` in lowercase (checked at compile time).
    pub const fn new(key: &'static [u8], lowcase: &'static [u8]) -> Self {
        assert!(
            key.len() == lowcase.len(),
            "lowcase must spell the same name"
        );
        let mut hash: usize = 0;
        let mut i = 0;
        while i < key.len() {
            assert!(
                key[i].to_ascii_lowercase() == lowcase[i],
                "lowcase must be the lowercase key"
            );
            // nginx's ngx_hash(key, c): key * 31 + c, over the lowercase name.
            hash = hash.wrapping_mul(31).wrapping_add(lowcase[i] as usize);
            i += 1;
        }
        Self { key, lowcase, hash }
    }

    pub const fn key(&self) -> &'static [u8] {
        self.key
    }
}

/// Appends the header `name: value` without copying anything: `value` must
/// outlive the request (configuration memory, such as a consumer's name).
/// A header nginx knows is also linked into its cached slot.
pub fn push_prepared(
    r: &mut ngx_http_request_t,
    name: &PreparedName,
    value: &[u8],
) -> Result<(), NgxError> {
    // SAFETY: headers_in.headers is the request's header list (pool memory).
    let h = unsafe { ngx_list_push(&mut r.headers_in.headers) }.cast::<ngx_table_elt_t>();
    if h.is_null() {
        return Err(NgxError);
    }
    // SAFETY: `h` is a fresh list element; nginx only reads header names and
    // values through these pointers, and the bytes outlive the request.
    unsafe {
        h.write(ngx_table_elt_t {
            hash: name.hash as _,
            key: ngx_str_t {
                len: name.key.len(),
                data: name.key.as_ptr().cast_mut(),
            },
            value: ngx_str_t {
                len: value.len(),
                data: value.as_ptr().cast_mut(),
            },
            lowcase_key: name.lowcase.as_ptr().cast_mut(),
            #[cfg(nginx1_23_0)]
            next: ptr::null_mut(),
        });
    }
    link_known(r, h)
}

/// Appends the header `name: value` to the request (after removing nothing:
/// call [`remove`] first to replace). The bytes are copied into the request
/// pool. A header nginx knows is also linked into its cached slot.
pub fn push(r: &mut ngx_http_request_t, name: &[u8], value: &[u8]) -> Result<(), NgxError> {
    let total = name.len() * 2 + value.len();
    // SAFETY: allocation in the live request pool, filled right below.
    let buf = unsafe { ngx_pnalloc(r.pool, total.max(1)) }.cast::<u8>();
    if buf.is_null() {
        return Err(NgxError);
    }
    // SAFETY: headers_in.headers is the request's header list (pool memory).
    let h = unsafe { ngx_list_push(&mut r.headers_in.headers) }.cast::<ngx_table_elt_t>();
    if h.is_null() {
        return Err(NgxError);
    }
    // SAFETY: `buf` has `total` bytes: key, lowercase key, value.
    unsafe {
        let key = buf;
        ptr::copy_nonoverlapping(name.as_ptr(), key, name.len());
        let low = buf.add(name.len());
        for (i, b) in name.iter().enumerate() {
            *low.add(i) = b.to_ascii_lowercase();
        }
        let val = low.add(name.len());
        ptr::copy_nonoverlapping(value.as_ptr(), val, value.len());
        h.write(ngx_table_elt_t {
            hash: ngx_hash_key(low, name.len()),
            key: ngx_str_t {
                len: name.len(),
                data: key,
            },
            value: ngx_str_t {
                len: value.len(),
                data: val,
            },
            lowcase_key: low,
            #[cfg(nginx1_23_0)]
            next: ptr::null_mut(),
        });
    }
    link_known(r, h)
}

/// Links the just-pushed header `h` into nginx's cached `headers_in` slot
/// when nginx knows the header.
fn link_known(r: &mut ngx_http_request_t, h: *mut ngx_table_elt_t) -> Result<(), NgxError> {
    // A header nginx knows (Host, Authorization, …) is also linked into its
    // cached slot; nginx's own hash of known headers says which one.
    let Some(cmcf) = NgxHttpCoreModule::main_conf_mut(r) else {
        return Ok(());
    };
    // SAFETY: the core module's hash of known request headers, built at
    // configuration time; `h` was filled above (hash, lowercase key).
    let known = unsafe {
        ngx_hash_find(
            &mut cmcf.headers_in_hash,
            (*h).hash,
            (*h).lowcase_key,
            (*h).key.len,
        )
    }
    .cast::<ngx_http_header_t>();
    // SAFETY: a found entry is an element of ngx_http_headers_in[]; its
    // offset names a `ngx_table_elt_t *` field of the live headers_in, whose
    // chain consists of live list elements.
    unsafe {
        if let Some(entry) = known.as_ref() {
            if entry.offset != 0 {
                let hin: *mut ngx_http_headers_in_t = &mut r.headers_in;
                #[cfg(not(nginx1_23_0))]
                if multi_header_arrays().contains(&entry.offset) {
                    // A repeated header (Cookie, X-Forwarded-For): one more
                    // entry in its array, as nginx < 1.23 collects them.
                    let array = hin
                        .cast::<u8>()
                        .add(entry.offset)
                        .cast::<nginx_sys::ngx_array_t>();
                    if (*array).elts.is_null() {
                        // What ngx_array_init() (static inline, not in the
                        // bindings) does, for one element.
                        let size = core::mem::size_of::<*mut ngx_table_elt_t>();
                        let elts = nginx_sys::ngx_palloc(r.pool, size);
                        if elts.is_null() {
                            return Err(NgxError);
                        }
                        array.write(nginx_sys::ngx_array_t {
                            elts,
                            nelts: 0,
                            size,
                            nalloc: 1,
                            pool: r.pool,
                        });
                    }
                    let slot = nginx_sys::ngx_array_push(array).cast::<*mut ngx_table_elt_t>();
                    if slot.is_null() {
                        return Err(NgxError);
                    }
                    *slot = h;
                    return Ok(());
                }
                #[cfg_attr(not(nginx1_23_0), allow(unused_mut))] // no chain to walk
                let mut link = hin
                    .cast::<u8>()
                    .add(entry.offset)
                    .cast::<*mut ngx_table_elt_t>();
                // nginx < 1.23 keeps the first header of a name in its slot.
                #[cfg(nginx1_23_0)]
                while !(*link).is_null() {
                    link = &mut (**link).next;
                }
                if (*link).is_null() {
                    *link = h;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod prepared_name_tests {
    use super::PreparedName;

    #[test]
    fn hash_is_nginx_hash_of_the_lowercase_name() {
        // ngx_hash_key("host"): ((104 * 31 + 111) * 31 + 115) * 31 + 116
        assert_eq!(PreparedName::new(b"Host", b"host").hash, 3_208_616);
        let name = PreparedName::new(b"X-Consumer-Username", b"x-consumer-username");
        let expected = b"x-consumer-username"
            .iter()
            .fold(0usize, |h, &c| h.wrapping_mul(31).wrapping_add(c as usize));
        assert_eq!(name.hash, expected);
        assert_eq!(name.key(), b"X-Consumer-Username");
    }
}
