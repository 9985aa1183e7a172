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
    ngx_int_t, ngx_palloc, ngx_pcalloc, ngx_str_t, ngx_uint_t, NGX_HTTP_GET, NGX_HTTP_POST,
    NGX_HTTP_PUT, NGX_HTTP_SPECIAL_RESPONSE, NGX_HTTP_SUBREQUEST_IN_MEMORY,
    NGX_HTTP_SUBREQUEST_WAITED, NGX_OK,
};

use super::bitfield;
use super::ffi::guard_status;
use super::headers;
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
    /// The response body, when the spec asked to capture it (request pool).
    pub body: ngx_str_t,
    /// The whole response arrived. False when the service's connection
    /// ended before the body its header announced: nginx logs "upstream
    /// prematurely closed connection" but, the header being already passed
    /// on, finishes the subrequest normally with the header's status and a
    /// truncated body. See [`response_complete`].
    pub complete: bool,
    /// The answer's `Content-Encoding` as nginx passes the response on (the
    /// service's header, unless a filter such as `gunzip` removed it);
    /// empty without one.
    pub content_encoding: ngx_str_t,
}

impl Default for SubrequestResult {
    fn default() -> Self {
        Self {
            done: false,
            status: 0,
            request: ptr::null_mut(),
            body: ngx_str_t::empty(),
            complete: false,
            content_encoding: ngx_str_t::empty(),
        }
    }
}

/// The HTTP method of a subrequest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
}

/// A request body the subrequest sends instead of the client's.
#[derive(Clone, Copy)]
pub struct Body {
    /// The `Content-Type` the subrequest carries instead of the client's.
    pub content_type: &'static str,
    /// The bytes; must live in the request pool (or longer).
    pub data: ngx_str_t,
}

/// What to ask, beyond the URI.
#[derive(Clone, Copy)]
pub struct SubrequestSpec<'a> {
    /// Taken literally: no variables, no `?` splitting.
    pub uri: &'a ngx_str_t,
    pub args: Option<&'a ngx_str_t>,
    pub method: Method,
    /// `None`: no body at all.
    pub body: Option<Body>,
    /// Keep the response body in memory (up to `subrequest_output_buffer_size`)
    /// for [`SubrequestResult::body`]; otherwise only the header is produced.
    pub capture_body: bool,
    /// Which of the client's request headers the subrequest carries.
    pub client_headers: ClientHeaders,
    /// What the completion callback records in the [`SubrequestResult`].
    pub record: Record,
}

/// What the completion callback records of a finished subrequest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Record {
    /// `done`, `status` and `request` only, as nginx's C auth_request
    /// does (`body`, `complete` and `content_encoding` keep their initial
    /// values): for a caller that decides from the status and reads
    /// nothing else of the answer, so that it pays for nothing else.
    Status,
    /// Everything in [`SubrequestResult`].
    Answer,
}

impl<'a> SubrequestSpec<'a> {
    /// A body-less GET whose response body is discarded.
    pub fn get(uri: &'a ngx_str_t) -> Self {
        Self {
            uri,
            args: None,
            method: Method::Get,
            body: None,
            capture_body: false,
            client_headers: ClientHeaders::ForDecision,
            record: Record::Answer,
        }
    }
}

/// Which of the client's request headers a subrequest carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientHeaders {
    /// All of them unchanged, body framing included, as nginx's C
    /// auth_request does (its users add `proxy_pass_request_body off;
    /// proxy_set_header Content-Length "";`). The method stays the client's.
    All,
    /// All but [`headers::NOT_FOR_DECISIONS`]: nothing about the client's
    /// body (the subrequest describes only its own), and nothing that lets
    /// the client choose how the answer is encoded or which part of it
    /// arrives, for a service whose answer body is compared byte for byte.
    ForDecision,
}

/// Starts a GET subrequest of `r` to `uri` (taken literally: no variables,
/// no `?` splitting) with optional `args`, carrying all the client's request
/// headers, as nginx's C auth_request does; `record` says what the result
/// gets. See [`start_with`].
///
/// # Safety
/// As for [`start_with`].
#[inline]
pub unsafe fn start(
    r: &mut ngx_http_request_t,
    uri: &ngx_str_t,
    args: Option<&ngx_str_t>,
    record: Record,
    result: *mut SubrequestResult,
) -> Result<*mut ngx_http_request_t, NgxError> {
    let spec = SubrequestSpec {
        args,
        client_headers: ClientHeaders::All,
        record,
        ..SubrequestSpec::get(uri)
    };
    // SAFETY: forwarded contract.
    unsafe { start_with(r, &spec, result) }
}

/// Starts a subrequest of `r` described by `spec`; the parent waits for it.
///
/// The subrequest carries the parent's request headers as
/// `spec.client_headers` says. With [`ClientHeaders::ForDecision`] the
/// client's body framing (`Content-Length`, `Transfer-Encoding`,
/// `Content-Type`, `Expect`) never leaks into it: it has no body, or exactly
/// `spec.body` (with that `Content-Type`); nor do the headers that shape
/// the answer (`Accept-Encoding`, `Range`, `If-None-Match`, …). It gets a request body structure of its own, so that it
/// never tries to read the client's body and an upstream module never
/// closes a body temp file the main request will still need. Its response
/// body never reaches the client.
///
/// When it finishes, `result` is filled in. Its status is the subrequest's
/// response status; when a subrequest fails before producing one (upstream
/// refused, timed out), the status nginx finalised it with is recorded
/// instead, so the log can name it.
///
/// # Safety
/// `result` must stay valid until the subrequest finishes — allocate it in
/// `r`'s pool (the module context).
#[inline(always)]
pub unsafe fn start_with(
    r: &mut ngx_http_request_t,
    spec: &SubrequestSpec<'_>,
    result: *mut SubrequestResult,
) -> Result<*mut ngx_http_request_t, NgxError> {
    // SAFETY: allocations from the live request pool. `post` is not zeroed
    // (both of its fields are written by start_into(), as nginx's C
    // auth_request does); zeroed memory is a valid initial state for `body`.
    let post = unsafe { ngx_palloc(r.pool, size_of::<ngx_http_post_subrequest_t>()) }
        .cast::<ngx_http_post_subrequest_t>();
    let body = unsafe { ngx_pcalloc(r.pool, size_of::<ngx_http_request_body_t>()) }
        .cast::<ngx_http_request_body_t>();
    if post.is_null() || body.is_null() {
        return Err(NgxError);
    }
    // SAFETY: fresh request-pool memory; `result` per the contract.
    unsafe { start_into(r, spec, result, post, body) }
}

/// One subrequest's memory in a single piece, for a caller that keeps it in
/// its own request-pool context: the result, nginx's completion record and
/// the subrequest's own request body (what [`start_with`] allocates
/// separately). One pool allocation instead of three.
pub struct Frame {
    pub result: SubrequestResult,
    post: ngx_http_post_subrequest_t,
    body: ngx_http_request_body_t,
}

impl Frame {
    /// Initialises the frame at `p` in place: the result as
    /// `SubrequestResult::default()`, the request body zeroed (as
    /// `ngx_pcalloc` would), no completion record yet. In place, because a
    /// 176-byte value built on the stack would be copied in with `memcpy`.
    ///
    /// # Safety
    /// `p` is valid for writes of a `Frame`.
    #[inline(always)]
    pub unsafe fn init(p: *mut Frame) {
        // SAFETY: per the contract; each field is written once, whole.
        unsafe {
            ptr::addr_of_mut!((*p).result).write(SubrequestResult::default());
            ptr::addr_of_mut!((*p).post).write(ngx_http_post_subrequest_t {
                handler: None,
                data: ptr::null_mut(),
            });
            ptr::addr_of_mut!((*p).body).write_bytes(0, 1);
        }
    }
}

/// [`start`] with its memory in `frame` (initialised by [`Frame::init`]).
///
/// # Safety
/// `frame` is initialised and lives in `r`'s pool (the module context),
/// used for no other subrequest.
#[inline(always)]
pub unsafe fn start_in(
    r: &mut ngx_http_request_t,
    uri: &ngx_str_t,
    record: Record,
    frame: *mut Frame,
) -> Result<*mut ngx_http_request_t, NgxError> {
    let spec = SubrequestSpec {
        client_headers: ClientHeaders::All,
        record,
        ..SubrequestSpec::get(uri)
    };
    // SAFETY: the three parts of a live frame in the request pool, per the
    // contract.
    unsafe {
        start_into(
            r,
            &spec,
            ptr::addr_of_mut!((*frame).result),
            ptr::addr_of_mut!((*frame).post),
            ptr::addr_of_mut!((*frame).body),
        )
    }
}

/// [`start_with`] once its memory is there: `post` is written here, `body`
/// is zeroed (or the caller's initial request body structure).
///
/// # Safety
/// `result`, `post` and `body` are valid, in `r`'s pool, for this
/// subrequest only.
#[inline(always)]
unsafe fn start_into(
    r: &mut ngx_http_request_t,
    spec: &SubrequestSpec<'_>,
    result: *mut SubrequestResult,
    post: *mut ngx_http_post_subrequest_t,
    body: *mut ngx_http_request_body_t,
) -> Result<*mut ngx_http_request_t, NgxError> {
    // SAFETY: `post` is valid per the contract; `result` too.
    unsafe {
        post.write(ngx_http_post_subrequest_t {
            handler: Some(match spec.record {
                Record::Status => status_done,
                Record::Answer => subrequest_done,
            }),
            data: result.cast::<c_void>(),
        });
    }

    let mut uri = *spec.uri;
    let mut args = spec.args.copied();
    let args_ptr = args
        .as_mut()
        .map_or(ptr::null_mut(), |a| a as *mut ngx_str_t);
    let mut flags = NGX_HTTP_SUBREQUEST_WAITED as ngx_uint_t;
    if spec.capture_body {
        flags |= NGX_HTTP_SUBREQUEST_IN_MEMORY as ngx_uint_t;
    }
    let mut sr: *mut ngx_http_request_t = ptr::null_mut();
    // SAFETY: r is a live request; ngx_http_subrequest copies `uri` and
    // `args` (the structs, not the bytes, which live in configuration or
    // request memory) into the new subrequest.
    let rc = unsafe { ngx_http_subrequest(r, &mut uri, args_ptr, &mut sr, post, flags) };
    if rc != NGX_OK as ngx_int_t || sr.is_null() {
        return Err(NgxError);
    }
    // SAFETY: ngx_http_subrequest returned NGX_OK, so `sr` is a new, live
    // subrequest allocated in the shared request pool.
    let sr_ref = unsafe { &mut *sr };
    sr_ref.request_body = body;
    if !spec.capture_body {
        bitfield::request::set_header_only(sr_ref, true);
    }
    if spec.client_headers == ClientHeaders::ForDecision {
        // SAFETY: `body` was allocated above in the request pool.
        unsafe { set_method_and_body(sr_ref, spec, &mut *body)? };
    }
    // SAFETY: `result` is valid per the contract.
    unsafe { (*result).request = sr };
    Ok(sr)
}

/// Gives the subrequest its own method, header list and body.
///
/// `sr->headers_in` starts as a copy of the parent's, sharing the header
/// list; it gets a list of its own without the client's body framing and
/// content type, so nothing the client said about *its* body reaches the
/// service, and without the headers that shape the answer.
fn set_method_and_body(
    sr: &mut ngx_http_request_t,
    spec: &SubrequestSpec<'_>,
    body: &mut ngx_http_request_body_t,
) -> Result<(), NgxError> {
    let (method, name): (u32, &'static [u8]) = match spec.method {
        Method::Get => (NGX_HTTP_GET, b"GET"),
        Method::Post => (NGX_HTTP_POST, b"POST"),
        Method::Put => (NGX_HTTP_PUT, b"PUT"),
    };
    sr.method = method as ngx_uint_t;
    sr.method_name = ngx_str_t {
        len: name.len(),
        data: name.as_ptr().cast_mut(),
    };

    let content_type = spec.body.map(|b| b.content_type);
    headers::rebuild_for_decision(sr, content_type)?;

    match spec.body {
        None => sr.headers_in.content_length_n = -1,
        Some(Body { data, .. }) => attach_body(sr, body, data)?,
    }
    Ok(())
}

/// Makes `data` (request-pool bytes) the whole body subrequest `sr` sends,
/// `Content-Length` included (an upstream module computes it from
/// `content_length_n`; the client's framing headers are its own to skip).
/// `body` is the subrequest's own request body structure ([`start_with`]
/// gives it one), never the client's.
pub fn attach_body(
    sr: &mut ngx_http_request_t,
    body: &mut ngx_http_request_body_t,
    data: ngx_str_t,
) -> Result<(), NgxError> {
    sr.headers_in.content_length_n = data.len as _;
    bitfield::headers_in::set_chunked(&mut sr.headers_in, false);
    body.bufs = super::client_body::one_buffer_chain(sr, data)?;
    Ok(())
}

/// The in-memory response body of a finished subrequest: nginx's postpone
/// filter gathers it into a single buffer at `sr->out`.
fn captured_body(sr: &ngx_http_request_t) -> ngx_str_t {
    if !bitfield::request::subrequest_in_memory(sr) || sr.out.is_null() {
        return ngx_str_t::empty();
    }
    // SAFETY: for in-memory subrequests `out` is one chain link with one
    // temporary buffer in the request pool (ngx_http_postpone_filter_in_memory).
    unsafe {
        let buf = (*sr.out).buf;
        if buf.is_null() || (*buf).pos.is_null() {
            return ngx_str_t::empty();
        }
        ngx_str_t {
            len: (*buf).last.offset_from((*buf).pos) as usize,
            data: (*buf).pos,
        }
    }
}

/// Whether a finished subrequest received its whole response: for
/// in-memory subrequests the captured body is as long as the declared
/// `Content-Length`, and for upstream responses nginx's own end-of-body
/// condition held — buffered (`proxy_buffering on`, the default): the pipe
/// is done, or the response was delimited by closing
/// (`ngx_http_upstream_process_request`); unbuffered: no announced bytes
/// are missing (`u->length` is 0, or -1 for close-delimited). Catches
/// truncated chunked answers too.
fn response_complete(sr: &ngx_http_request_t, captured: &ngx_str_t) -> bool {
    let declared = sr.headers_out.content_length_n;
    if bitfield::request::subrequest_in_memory(sr)
        && declared >= 0
        && (captured.len as i64) < declared
    {
        return false;
    }
    if sr.upstream.is_null() {
        return true;
    }
    // SAFETY: a subrequest's upstream and its pipe live in the request pool
    // until the main request ends; they are only read here.
    unsafe {
        let u = &*sr.upstream;
        if !bitfield::upstream::header_sent(u) {
            return true;
        }
        if !bitfield::upstream::buffering(u) {
            return u.length <= 0;
        }
        if u.pipe.is_null() {
            return true;
        }
        let p = &*u.pipe;
        if bitfield::pipe::upstream_error(p) {
            return false;
        }
        if bitfield::pipe::upstream_eof(p) && !bitfield::pipe::upstream_done(p) && p.length != -1 {
            return false;
        }
    }
    true
}

/// The `Content-Encoding` of a finished subrequest's response, empty
/// without one.
fn content_encoding(sr: &ngx_http_request_t) -> ngx_str_t {
    let h = sr.headers_out.content_encoding;
    // SAFETY: a response header element lives in the request pool; a
    // filter that removes the header sets `hash` to 0 or the slot to null.
    match unsafe { h.as_ref() } {
        Some(h) if h.hash != 0 => h.value,
        _ => ngx_str_t::empty(),
    }
}

/// The status a finished subrequest is decided by: its response status;
/// when it failed before producing one (upstream refused, timed out), the
/// status nginx finalised it with (`rc`), so the log can name it.
fn final_status(sr: &ngx_http_request_t, rc: ngx_int_t) -> ngx_uint_t {
    let status = sr.headers_out.status;
    if status == 0 && rc >= NGX_HTTP_SPECIAL_RESPONSE as ngx_int_t {
        rc as ngx_uint_t
    } else {
        status
    }
}

/// Completion callback of [`Record::Status`]: the status only (the
/// `request` pointer was set by [`start_with`]).
unsafe extern "C" fn status_done(
    sr: *mut ngx_http_request_t,
    data: *mut c_void,
    rc: ngx_int_t,
) -> ngx_int_t {
    // SAFETY: nginx passes the finished subrequest, alive for the call.
    let log = unsafe { (*(*sr).connection).log };
    guard_status(log, || {
        // SAFETY: `data` is the SubrequestResult registered in start_with(),
        // living in the request pool; `sr` is the live subrequest.
        let (result, sr) = unsafe { (&mut *data.cast::<SubrequestResult>(), &*sr) };
        result.done = true;
        result.status = final_status(sr, rc);
        rc
    })
}

/// Completion callback of [`Record::Answer`]: records the whole outcome
/// for the parent.
unsafe extern "C" fn subrequest_done(
    sr: *mut ngx_http_request_t,
    data: *mut c_void,
    rc: ngx_int_t,
) -> ngx_int_t {
    // SAFETY: nginx passes the finished subrequest, alive for the call.
    let log = unsafe { (*(*sr).connection).log };
    guard_status(log, || {
        // SAFETY: `data` is the SubrequestResult registered in start_with(),
        // living in the request pool; `sr` is the live subrequest.
        let (result, sr) = unsafe { (&mut *data.cast::<SubrequestResult>(), &*sr) };
        result.done = true;
        result.body = captured_body(sr);
        result.complete = response_complete(sr, &result.body);
        result.content_encoding = content_encoding(sr);
        result.status = final_status(sr, rc);
        rc
    })
}
