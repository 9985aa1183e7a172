//! The 401 responses, with their exact JSON bodies.
//!
//! The handler does not send the 401 itself: it returns
//! `NGX_HTTP_UNAUTHORIZED` like `auth_basic` does, so that nginx's access
//! phase treats it as any other auth refusal:
//!
//! * `satisfy all`: the refusal is final; nginx applies `auth_delay` and
//!   finalises the request with 401;
//! * `satisfy any`: another access check (`allow`, `auth_basic`,
//!   `auth_request`, …) may still let the request in, and nginx then hides
//!   our `WWW-Authenticate`; when all refuse, nginx finalises with 401;
//! * `error_page 401 …` takes over as usual (the redirect clears our
//!   context, so the page the user configured is sent untouched); a
//!   `key_auth` location it leads to refuses the request again (see
//!   [`super::passage`]), without a second challenge.
//!
//! When nginx then produces its own 401 error page for a request we refused
//! (`r->err_status == 401`), the header filter below swaps the HTML for our
//! JSON (`Content-Type: application/json`, exact body) and the body filter
//! sends it instead of nginx's page.

use core::ptr;

use nginx_sys::{
    ngx_buf_t, ngx_chain_t, ngx_conf_t, ngx_http_output_body_filter_pt,
    ngx_http_output_header_filter_pt, ngx_http_request_t, ngx_http_top_body_filter,
    ngx_http_top_header_filter, ngx_int_t, ngx_palloc, ngx_pcalloc, NGX_ERROR,
    NGX_HTTP_UNAUTHORIZED, NGX_OK,
};
use ngx::http::{HttpModule, HttpModuleLocationConf};

use super::KeyAuthModule;
use crate::nginx::ffi::guard_status;
use crate::nginx::{bitfield, headers, request};

/// Why a request was refused.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub enum Denial {
    #[default]
    None,
    Missing,
    Invalid,
}

impl Denial {
    /// The exact response body.
    pub fn body(self) -> &'static [u8] {
        match self {
            Denial::Missing => br#"{"message":"Missing API key found in request"}"#,
            Denial::Invalid => br#"{"message":"Invalid API key in request"}"#,
            Denial::None => b"",
        }
    }
}

const JSON: &[u8] = b"application/json";

/// Per-request state (request pool; cleared by internal redirects).
#[derive(Clone, Copy, Default)]
pub struct KeyAuthCtx {
    pub denial: Denial,
    /// The 401 page being sent is ours to replace.
    replacing: bool,
    /// Our body has been passed on.
    sent: bool,
}

/// Refuses the request with 401, remembering why for the filters.
pub fn deny(r: &mut ngx_http_request_t, denial: Denial) -> ngx_int_t {
    let module = KeyAuthModule::module();
    let ctx = match request::ctx::<KeyAuthCtx>(r, module) {
        Some(ctx) => ctx,
        None => match request::new_ctx::<KeyAuthCtx>(r, module) {
            Some(ctx) => ctx,
            None => return NGX_ERROR as ngx_int_t,
        },
    };
    ctx.denial = denial;
    // key_auth_realm of the location refusing
    let challenge =
        KeyAuthModule::location_conf(r).map_or(super::conf::DEFAULT_CHALLENGE, |c| c.challenge());
    if !headers::has_www_authenticate(r, challenge)
        && headers::push_www_authenticate(r, challenge).is_err()
    {
        return NGX_ERROR as ngx_int_t;
    }
    NGX_HTTP_UNAUTHORIZED as ngx_int_t
}

static mut NEXT_HEADER_FILTER: ngx_http_output_header_filter_pt = None;
static mut NEXT_BODY_FILTER: ngx_http_output_body_filter_pt = None;

/// Inserts the filters at the top of nginx's filter chains.
pub fn register_filters(_cf: &mut ngx_conf_t) {
    // SAFETY: postconfiguration runs single-threaded in the master process;
    // this is nginx's standard filter-chain insertion.
    unsafe {
        NEXT_HEADER_FILTER = ngx_http_top_header_filter;
        ngx_http_top_header_filter = Some(header_filter);
        NEXT_BODY_FILTER = ngx_http_top_body_filter;
        ngx_http_top_body_filter = Some(body_filter);
    }
}

unsafe extern "C" fn header_filter(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: nginx passes a live request.
    let req = unsafe { &mut *r };
    guard_status(request::log(req), || {
        if let Some(ctx) = request::ctx::<KeyAuthCtx>(req, KeyAuthModule::module()) {
            let ours = ctx.denial != Denial::None
                && req.headers_out.status == NGX_HTTP_UNAUTHORIZED as usize
                && req.err_status == NGX_HTTP_UNAUTHORIZED as usize
                && ptr::eq(req, req.main)
                && !bitfield::request::header_only(req);
            if ours {
                let body = ctx.denial.body();
                ctx.replacing = true;
                req.headers_out.content_type.len = JSON.len();
                req.headers_out.content_type.data = JSON.as_ptr().cast_mut();
                req.headers_out.content_type_len = JSON.len();
                req.headers_out.content_type_lowcase = ptr::null_mut();
                req.headers_out.charset.len = 0;
                req.headers_out.content_length_n = body.len() as _;
                if !req.headers_out.content_length.is_null() {
                    // SAFETY: a live response header element.
                    unsafe { (*req.headers_out.content_length).hash = 0 };
                    req.headers_out.content_length = ptr::null_mut();
                }
            }
        }
        // SAFETY: the next filter was saved at registration.
        match unsafe { NEXT_HEADER_FILTER } {
            Some(next) => unsafe { next(r) },
            None => NGX_ERROR as ngx_int_t,
        }
    })
}

unsafe extern "C" fn body_filter(r: *mut ngx_http_request_t, input: *mut ngx_chain_t) -> ngx_int_t {
    // SAFETY: nginx passes a live request.
    let req = unsafe { &mut *r };
    guard_status(request::log(req), || {
        // SAFETY: the next filter was saved at registration.
        let Some(next) = (unsafe { NEXT_BODY_FILTER }) else {
            return NGX_ERROR as ngx_int_t;
        };
        let Some(ctx) = request::ctx::<KeyAuthCtx>(req, KeyAuthModule::module()) else {
            // SAFETY: passing the chain on unchanged.
            return unsafe { next(r, input) };
        };
        if !ctx.replacing {
            // SAFETY: as above.
            return unsafe { next(r, input) };
        }
        // Consume nginx's error page.
        let mut cl = input;
        while !cl.is_null() {
            // SAFETY: a live chain of live buffers.
            unsafe {
                let b = (*cl).buf;
                if !b.is_null() {
                    (*b).pos = (*b).last;
                    (*b).file_pos = (*b).file_last;
                }
                cl = (*cl).next;
            }
        }
        if ctx.sent {
            return NGX_OK as ngx_int_t;
        }
        ctx.sent = true;
        let body = ctx.denial.body();
        // SAFETY: buffer and link from the request pool; the buffer points
        // at a static, read-only body (memory = 1: nobody writes to it).
        unsafe {
            let b = ngx_pcalloc(req.pool, size_of::<ngx_buf_t>()).cast::<ngx_buf_t>();
            let out = ngx_palloc(req.pool, size_of::<ngx_chain_t>()).cast::<ngx_chain_t>();
            if b.is_null() || out.is_null() {
                return NGX_ERROR as ngx_int_t;
            }
            (*b).start = body.as_ptr().cast_mut();
            (*b).pos = (*b).start;
            (*b).last = (*b).start.add(body.len());
            (*b).end = (*b).last;
            bitfield::buf::set_memory(&mut *b, true);
            bitfield::buf::set_last_buf(&mut *b, true);
            bitfield::buf::set_last_in_chain(&mut *b, true);
            out.write(ngx_chain_t {
                buf: b,
                next: ptr::null_mut(),
            });
            next(r, out)
        }
    })
}
