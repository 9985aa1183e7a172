//! The access-phase handler: one request's way from "is this location
//! protected?" to allow / 401 / 403 / 500.
//!
//! First call: start the auth subrequest and return `NGX_AGAIN`.
//! The phase engine calls again after the subrequest finished: evaluate
//! `auth_request_set` in the subrequest's context, then decide from its
//! status (see [`super::verdict`]).
//!
//! With `auth_request_cache`, the decision cache is asked first: a hit
//! answers without a subrequest, a concurrent miss waits for the request
//! already asking; after the verdict, the answer is stored (see
//! [`super::cache`]).

use nginx_sys::{
    ngx_current_msec, ngx_http_request_t, ngx_int_t, ngx_str_t, NGX_AGAIN, NGX_DECLINED, NGX_ERROR,
    NGX_HTTP_FORBIDDEN, NGX_HTTP_INTERNAL_SERVER_ERROR, NGX_HTTP_UNAUTHORIZED, NGX_LOG_ERR, NGX_OK,
};
use ngx::http::{HttpModule, HttpModuleLocationConf};

use super::body::{self, BodyStep};
use super::cache;
use super::conf::AuthRequestConf;
use super::respond;
use super::verdict::{verdict_with, Verdict};
use super::AuthRequestModule;
use crate::counters::{self, schema::auth_request as slots};
use crate::decision_cache::entry::Entry;
use crate::decision_cache::lookup::{self, Flight, Look};
use crate::nginx::ffi::guard_request;
use crate::nginx::subrequest::{self, Record, SubrequestResult};
use crate::nginx::{delay, headers, request, variables};

/// Per-request state, reset by nginx on internal redirects.
#[derive(Clone, Copy, Default)]
struct AuthRequestCtx {
    subrequest: SubrequestResult,
    /// When the subrequest started (ngx_current_msec), for its latency.
    started_ms: usize,
    cache: Flight,
}

/// Per-request state of a location where neither cache nor extension
/// applies ([`check_plain`]): no cache flight, and the subrequest's memory
/// (result, completion record, request body) in the same allocation. Written
/// in place (a value built on the stack would be copied in with memcpy). A
/// location is either plain or not for the whole request: nginx clears
/// module contexts on every internal redirect, the only way to another
/// location after the access phase.
struct PlainCtx {
    frame: subrequest::Frame,
    /// When the subrequest started (ngx_current_msec), for its latency.
    started_ms: usize,
}

/// The access-phase entry point.
///
/// # Safety
/// Called by nginx's phase engine with a live main request.
pub unsafe extern "C" fn access_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: the phase engine passes the live main request, for the call.
    unsafe {
        guard_request(r, || {
            // SAFETY: as above; nothing else holds a reference to it.
            check(&mut *r)
        })
    }
}

fn check(r: &mut ngx_http_request_t) -> ngx_int_t {
    let Some(conf) = AuthRequestModule::location_conf(r) else {
        return NGX_ERROR as ngx_int_t;
    };
    let Some(uri) = conf.uri() else {
        return NGX_DECLINED as ngx_int_t;
    };

    // Neither cache nor extension here (decided at configuration time):
    // straight to the subrequest, as nginx's C module does.
    if conf.drop_in {
        return check_plain(r, conf, uri);
    }

    let module = AuthRequestModule::module();
    if let Some(ctx) = request::ctx::<AuthRequestCtx>(r, module) {
        if ctx.cache.waiting() {
            if delay::is_paused(r) {
                return NGX_AGAIN as ngx_int_t;
            }
            return look_or_ask(r, conf, uri, ctx, None);
        }
        if !ctx.subrequest.done {
            return NGX_AGAIN as ngx_int_t;
        }
        let latency = now_ms().wrapping_sub(ctx.started_ms);
        let rc = decide(r, conf, &ctx.subrequest, latency);
        cache::remember(r, conf, &mut ctx.cache, &ctx.subrequest);
        return rc;
    }

    // Opt-in auth_request_body (super::body): read the client's body first.
    let body = match conf.ext.body_max() {
        None => None,
        Some(max) => match body::prepare(r, max) {
            BodyStep::Ready(body) => body,
            BodyStep::Reading(rc) | BodyStep::Refuse(rc) => return rc,
        },
    };

    // The first look needs no context: a hit answers now and the handler
    // is not called again for this request; anything else keeps the flight
    // in a new one.
    let mut flight = Flight::default();
    let look = lookup::look(r, &conf.cache, &mut flight, conf.variables().len());
    if let Look::Hit(entry) = look {
        return answer_hit(r, conf, &entry);
    }
    let Some(ctx) = request::new_ctx::<AuthRequestCtx>(r, module) else {
        lookup::release(&conf.cache, &mut flight);
        return NGX_ERROR as ngx_int_t;
    };
    ctx.cache = flight;
    after_look(r, conf, uri, ctx, look, body)
}

/// [`check`] where neither cache nor extension applies: nginx's C module's
/// flow (start the subrequest; once it is done, decide from its status).
fn check_plain(r: &mut ngx_http_request_t, conf: &AuthRequestConf, uri: &ngx_str_t) -> ngx_int_t {
    let module = AuthRequestModule::module();
    match request::ctx::<PlainCtx>(r, module) {
        Some(ctx) if !ctx.frame.result.done => NGX_AGAIN as ngx_int_t,
        Some(ctx) => {
            let latency = now_ms().wrapping_sub(ctx.started_ms);
            decide(r, conf, &ctx.frame.result, latency)
        }
        None => {
            let init = |p: *mut PlainCtx| {
                // SAFETY: `p` is fresh pool memory for a PlainCtx; both of
                // its fields are written.
                unsafe {
                    subrequest::Frame::init(core::ptr::addr_of_mut!((*p).frame));
                    core::ptr::addr_of_mut!((*p).started_ms).write(now_ms());
                }
            };
            // SAFETY: `init` writes every field.
            let Some(ctx) = (unsafe { request::new_ctx_in_place::<PlainCtx>(r, module, init) })
            else {
                return NGX_ERROR as ngx_int_t;
            };
            // SAFETY: the frame is initialised, in the request-pool context,
            // and used for this one subrequest.
            match unsafe { subrequest::start_in(r, uri, Record::Status, &mut ctx.frame) } {
                Ok(_) => NGX_AGAIN as ngx_int_t,
                Err(_) => {
                    count(r, conf, slots::ERROR, None);
                    NGX_ERROR as ngx_int_t
                }
            }
        }
    }
}

/// Answers from the decision cache, waits for another request's answer to
/// the same question, or starts the subrequest.
fn look_or_ask(
    r: &mut ngx_http_request_t,
    conf: &AuthRequestConf,
    uri: &ngx_str_t,
    ctx: &mut AuthRequestCtx,
    body: Option<ngx_str_t>,
) -> ngx_int_t {
    let look = lookup::look(r, &conf.cache, &mut ctx.cache, conf.variables().len());
    after_look(r, conf, uri, ctx, look, body)
}

/// Answers from a stored decision.
fn answer_hit(r: &mut ngx_http_request_t, conf: &AuthRequestConf, entry: &Entry<'_>) -> ngx_int_t {
    conf.counter.inc(slots::CACHE_HIT);
    let (verdict, rc) = cache::answer(r, conf, entry);
    count(r, conf, slot_of(verdict), None);
    rc
}

/// What the cache said: answer, wait, or ask the service.
fn after_look(
    r: &mut ngx_http_request_t,
    conf: &AuthRequestConf,
    uri: &ngx_str_t,
    ctx: &mut AuthRequestCtx,
    look: Look,
    body: Option<ngx_str_t>,
) -> ngx_int_t {
    match look {
        Look::Hit(entry) => return answer_hit(r, conf, &entry),
        Look::Wait => return NGX_AGAIN as ngx_int_t,
        // The cache was asked and had no fresh answer (not a bypass).
        Look::Ask if ctx.cache.asking() => {
            conf.counter.inc(slots::CACHE_MISS);
            if ctx.cache.evicted() {
                conf.counter.inc(slots::CACHE_EVICTION);
            }
        }
        Look::Ask => {}
    }
    ask(r, conf, uri, ctx, body)
}

/// Starts the subrequest (and attaches the opt-in body to it).
#[inline(always)]
fn ask(
    r: &mut ngx_http_request_t,
    conf: &AuthRequestConf,
    uri: &ngx_str_t,
    ctx: &mut AuthRequestCtx,
    body: Option<ngx_str_t>,
) -> ngx_int_t {
    ctx.started_ms = now_ms();
    // auth_request_cache stores only complete answers, and the extensions
    // read the answer's headers (check_plain reads only the status, as
    // nginx's C module does).
    // SAFETY: the result slot lives in the request-pool context.
    match unsafe { subrequest::start(r, uri, None, Record::Answer, &mut ctx.subrequest) } {
        // SAFETY: start() returned a live subrequest in the request pool.
        Ok(sr) => match body.map(|b| body::attach(unsafe { &mut *sr }, b)) {
            Some(Err(_)) => NGX_ERROR as ngx_int_t,
            _ => NGX_AGAIN as ngx_int_t,
        },
        Err(_) => {
            lookup::release(&conf.cache, &mut ctx.cache);
            count(r, conf, slots::ERROR, None);
            NGX_ERROR as ngx_int_t
        }
    }
}

/// The status zone's slot for a verdict.
fn slot_of(verdict: Verdict) -> usize {
    match verdict {
        Verdict::Allow => slots::ALLOW,
        Verdict::Unauthorized => slots::UNAUTHORIZED,
        Verdict::Forbidden => slots::FORBIDDEN,
        Verdict::Pass(_) => slots::PASSED,
        Verdict::Unexpected(_) | Verdict::NotAllowed(_) => slots::ERROR,
    }
}

/// nginx's cached clock (milliseconds), updated by the event loop.
fn now_ms() -> usize {
    // SAFETY: read by this (single-threaded) worker's event loop only.
    unsafe { ngx_current_msec }
}

/// Counts the decision in the status zone (once per request and auth URI).
fn count(r: &mut ngx_http_request_t, conf: &AuthRequestConf, slot: usize, ms: Option<usize>) {
    let latency = ms.map(|ms| (slots::LATENCY, ms as u64));
    counters::count_decision(r, conf.counter, slot, latency);
}

/// The subrequest has finished: set variables, then map its status.
/// Inlined: its two callers are the request's hot path.
#[inline(always)]
fn decide(
    r: &mut ngx_http_request_t,
    conf: &AuthRequestConf,
    outcome: &SubrequestResult,
    latency_ms: usize,
) -> ngx_int_t {
    // Set on every outcome, before deciding, so that error_page targets and
    // logs see them; stored in the main request so they survive redirects.
    for assignment in conf.variables() {
        // SAFETY: the finished subrequest lives in the shared request pool
        // until the main request ends.
        let sr = unsafe { &mut *outcome.request };
        let Some(value) = variables::evaluate(sr, &assignment.value) else {
            return NGX_ERROR as ngx_int_t;
        };
        variables::store(r, &assignment.variable, value);
    }

    let verdict = verdict_with(
        outcome.status,
        conf.ext.allow_status.as_ref(),
        conf.ext.pass_status.as_ref(),
    );
    // Opt-in (super::extensions): auth response headers to the client and
    // to the upstream request; nothing without those directives.
    // SAFETY: the finished subrequest lives in the shared request pool
    // until the main request ends.
    if !conf.drop_in
        && respond::pass_on(r, unsafe { &*outcome.request }, &conf.ext, verdict).is_err()
    {
        return NGX_ERROR as ngx_int_t;
    }
    count(r, conf, slot_of(verdict), Some(latency_ms));

    match verdict {
        Verdict::Allow => NGX_OK as ngx_int_t,
        Verdict::Forbidden => NGX_HTTP_FORBIDDEN as ngx_int_t,
        Verdict::Unauthorized => {
            // SAFETY: the finished subrequest lives in the shared request
            // pool until the main request ends.
            let sr = unsafe { &*outcome.request };
            if headers::copy_www_authenticate(r, sr).is_err() {
                return NGX_ERROR as ngx_int_t;
            }
            NGX_HTTP_UNAUTHORIZED as ngx_int_t
        }
        Verdict::Unexpected(status) => {
            // Same wording as nginx's C module, so existing log alerts match.
            ngx::ngx_log_error!(
                NGX_LOG_ERR,
                request::log(r),
                "auth request unexpected status: {status}"
            );
            NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t
        }
        // auth_request_pass_status: the client gets it, with the headers
        // respond::pass_on() copied.
        Verdict::Pass(status) => status as ngx_int_t,
        Verdict::NotAllowed(status) => {
            ngx::ngx_log_error!(
                NGX_LOG_ERR,
                request::log(r),
                "auth request status {status} is not in auth_request_allow_status"
            );
            NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t
        }
    }
}
