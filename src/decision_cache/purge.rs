//! `auth_cache_purge name;`: a content handler that removes entries.
//!
//! * `DELETE` with `Auth-Cache-Key: VALUE` removes the entries whose key
//!   evaluated to exactly VALUE, in every cache sharing the zone;
//! * `DELETE` with `Auth-Cache-Username: USER` / `Auth-Cache-Client-Id:
//!   ID` removes the auth_http answers asked for that user (`%u`) / client
//!   id (`%c`); several of these headers (and lines of one) add up;
//! * `DELETE` with `Auth-Cache-Purge: all` removes every entry.
//!
//! Answers `200` with `purged N\n`, `400` without any of them, `405` for
//! other methods. The key travels in a header, not the URI, so that it
//! does not reach the access log.

use core::ffi::c_char;

use nginx_sys::{
    ngx_buf_t, ngx_chain_t, ngx_conf_t, ngx_http_core_loc_conf_t, ngx_http_output_filter,
    ngx_http_request_t, ngx_http_send_header, ngx_int_t, ngx_pcalloc, ngx_pnalloc, NGX_ERROR,
    NGX_HTTP_BAD_REQUEST, NGX_HTTP_DELETE, NGX_HTTP_NOT_ALLOWED, NGX_OK,
};
use ngx::http::{HttpModuleLocationConf, NgxHttpCoreModule};

use super::lookup::{tag, CLIENT_TAG, KEY_TAG, USER_TAG};
use super::module::DecisionCacheModule;
use super::zone::Zone;
use crate::nginx::conf::{CONF_ERROR, CONF_OK};
use crate::nginx::ffi::guard_status;
use crate::nginx::{bitfield, headers_in, request};

/// Makes the location being parsed answer with [`purge_handler`].
pub fn install(cf: &mut ngx_conf_t) -> *mut c_char {
    let Some(clcf) = NgxHttpCoreModule::location_conf_mut(cf) else {
        return CONF_ERROR;
    };
    let clcf: &mut ngx_http_core_loc_conf_t = clcf;
    clcf.handler = Some(purge_handler);
    CONF_OK
}

unsafe extern "C" fn purge_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: nginx calls the content handler with the live request.
    let r = unsafe { &mut *r };
    guard_status(request::log(r), || purge(r))
}

fn purge(r: &mut ngx_http_request_t) -> ngx_int_t {
    if r.method != NGX_HTTP_DELETE as usize {
        return NGX_HTTP_NOT_ALLOWED as ngx_int_t;
    }
    let Some(zone) = DecisionCacheModule::location_conf(r).and_then(|c| c.purge_zone) else {
        return NGX_ERROR as ngx_int_t;
    };
    // Each header names a tag: the entries of one key value (auth_request),
    // of one user or one client id (auth_http); hashed with the zone's
    // secret as the entries were, so the zone never sees the text. Every
    // line of each header counts.
    let named = core::cell::RefCell::new(std::vec::Vec::new());
    for (header, word) in [
        (&b"Auth-Cache-Key"[..], KEY_TAG),
        (b"Auth-Cache-Username", USER_TAG),
        (b"Auth-Cache-Client-Id", CLIENT_TAG),
    ] {
        headers_in::any_value(r, header, |value| {
            named.borrow_mut().push((word, value.to_vec()));
            false
        });
    }
    let named = named.into_inner();
    let all =
        headers_in::find(r, b"Auth-Cache-Purge").is_some_and(|h| h.value.as_bytes() == b"all");
    if !all && named.is_empty() {
        return NGX_HTTP_BAD_REQUEST as ngx_int_t;
    }
    let removed = Zone(zone).with(|secret, table| {
        if all {
            return table.purge_all();
        }
        named
            .iter()
            .map(|(word, value)| table.purge_tag(tag(secret, word, value)))
            .sum()
    });
    let Some(removed) = removed else {
        return NGX_ERROR as ngx_int_t;
    };
    send_text(r, format!("purged {removed}\n").as_bytes())
}

fn send_text(r: &mut ngx_http_request_t, text: &[u8]) -> ngx_int_t {
    // SAFETY: allocations in the live request pool, filled right below.
    let (data, buf, chain) = unsafe {
        (
            ngx_pnalloc(r.pool, text.len()).cast::<u8>(),
            ngx_pcalloc(r.pool, size_of::<ngx_buf_t>()).cast::<ngx_buf_t>(),
            ngx_pcalloc(r.pool, size_of::<ngx_chain_t>()).cast::<ngx_chain_t>(),
        )
    };
    if data.is_null() || buf.is_null() || chain.is_null() {
        return NGX_ERROR as ngx_int_t;
    }
    r.headers_out.status = 200;
    r.headers_out.content_length_n = text.len() as _;
    r.headers_out.content_type = ngx::ngx_string!("text/plain");
    r.headers_out.content_type_len = r.headers_out.content_type.len;
    // SAFETY: the request is live; header filters run once.
    let rc = unsafe { ngx_http_send_header(r) };
    if rc == NGX_ERROR as ngx_int_t || rc > NGX_OK as ngx_int_t || bitfield::request::header_only(r)
    {
        return rc;
    }
    // SAFETY: data/buf/chain were just allocated; the buffer describes
    // `data`, which lives in the request pool.
    unsafe {
        core::ptr::copy_nonoverlapping(text.as_ptr(), data, text.len());
        (*buf).pos = data;
        (*buf).start = data;
        (*buf).last = data.add(text.len());
        (*buf).end = (*buf).last;
        bitfield::buf::set_memory(&mut *buf, true);
        bitfield::buf::set_last_buf(&mut *buf, true);
        bitfield::buf::set_last_in_chain(&mut *buf, true);
        (*chain).buf = buf;
        ngx_http_output_filter(r, chain)
    }
}
