//! The access-phase handler: authentication question, superuser question,
//! ACL question, retries, decision. The decisions themselves are in [`super::decision`].

use nginx_sys::{
    ngx_current_msec, ngx_http_auth_basic_user, ngx_http_request_t, ngx_inet_get_port, ngx_int_t,
    ngx_str_t, NGX_AGAIN, NGX_DECLINED, NGX_ERROR, NGX_HTTP_FORBIDDEN,
    NGX_HTTP_INTERNAL_SERVER_ERROR, NGX_HTTP_SERVICE_UNAVAILABLE, NGX_HTTP_UNAUTHORIZED,
    NGX_LOG_ERR, NGX_LOG_INFO, NGX_OK,
};
use ngx::collections::Vec;
use ngx::core::Pool;
use ngx::http::{HttpModule, HttpModuleLocationConf, HttpModuleMainConf};

use super::cache;
use super::conf::{AuthHttpConf, Service, ValuePiece};
use super::decision::{
    json_as_text, next_step, plain_encoding, unreachable, Outcome, Policy, Stage, Step,
};
use super::params::{self, Placeholder};
use super::AuthHttpModule;
use crate::counters::{self, schema::auth_http as slots, Counter};
use crate::decision_cache::lookup::{Flight, Look};
use crate::nginx::decimal::{decimal, DecimalBuf};
use crate::nginx::ffi::guard_status;
use crate::nginx::subrequest::{
    self, Body, ClientHeaders, Method, Record, SubrequestResult, SubrequestSpec,
};
use crate::nginx::{delay, headers, headers_in, request, variables};

const FORM: &str = "application/x-www-form-urlencoded";

/// Per-request state, reset by nginx on internal redirects.
#[derive(Clone, Copy, Default)]
struct AuthHttpCtx {
    stage: Stage,
    /// 0-based attempt at the current stage's service.
    attempt: u32,
    /// Waiting for a retry timer.
    paused: bool,
    subrequest: SubrequestResult,
    /// When the current attempt started (ngx_current_msec), for its latency.
    started_ms: usize,
    /// The current stage's part in the decision cache.
    cache: Flight,
}

/// The access-phase entry point.
///
/// # Safety
/// Called by nginx's phase engine with a live main request.
pub unsafe extern "C" fn access_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: the phase engine passes the live main request.
    let r = unsafe { &mut *r };
    guard_status(request::log(r), || check(r))
}

fn check(r: &mut ngx_http_request_t) -> ngx_int_t {
    let Some(conf) = AuthHttpModule::location_conf(r) else {
        return NGX_ERROR as ngx_int_t;
    };
    if conf.auth().is_none() && conf.superuser().is_none() && conf.acl().is_none() {
        return NGX_DECLINED as ngx_int_t;
    }

    let module = AuthHttpModule::module();
    let ctx = match request::ctx::<AuthHttpCtx>(r, module) {
        Some(ctx) => ctx,
        None => {
            let Some(ctx) = request::new_ctx::<AuthHttpCtx>(r, module) else {
                return NGX_ERROR as ngx_int_t;
            };
            ctx.stage = if conf.auth().is_some() {
                Stage::Auth
            } else if conf.superuser().is_some() {
                Stage::Superuser
            } else {
                Stage::Acl
            };
            return ask(r, conf, ctx);
        }
    };

    if ctx.paused {
        if delay::is_paused(r) {
            return NGX_AGAIN as ngx_int_t;
        }
        ctx.paused = false;
        return ask(r, conf, ctx);
    }
    if !ctx.subrequest.done {
        return NGX_AGAIN as ngx_int_t;
    }
    let answer = ctx.subrequest;
    answered(r, conf, ctx, &answer, false)
}

/// The current stage's service answered (or the cache did, `cached`):
/// decide, or go on to the next question.
fn answered(
    r: &mut ngx_http_request_t,
    conf: &AuthHttpConf,
    ctx: &mut AuthHttpCtx,
    answer: &SubrequestResult,
    cached: bool,
) -> ngx_int_t {
    let policy = Policy {
        superuser_configured: conf.superuser().is_some(),
        acl_configured: conf.acl().is_some(),
        nomatch: conf.nomatch(),
        retry: conf.retry(),
    };
    // The captured body lives in the request pool.
    let body = answer.body.as_bytes();
    // A truncated answer (the service went away in the middle of its body)
    // is no answer: a cut "ignore" must not read as "allow". Nor is an
    // encoded one (a compressed "ignore"). Both are treated as unreachable:
    // retried, then 503.
    let encoding = answer.content_encoding.as_bytes();
    let plain = plain_encoding(encoding);
    if !plain {
        ngx::ngx_log_error!(
            NGX_LOG_ERR,
            request::log(r),
            "auth_http: {} service \"{}\" answered with \"Content-Encoding: {}\"; \
             an encoded answer is no answer",
            stage_name(ctx.stage),
            service(conf, ctx.stage).map_or(ngx_str_t::empty(), |s| s.configured),
            answer.content_encoding
        );
    }
    let status = if answer.complete && plain {
        answer.status
    } else {
        0
    };
    // answer=json: the EMQX 5 answer read as the EMQX 4 one it means (a
    // cached answer is stored in that form already).
    let json = service(conf, ctx.stage).is_some_and(|s| s.json_answer);
    let (status, body) = if json && !cached && !unreachable(status) {
        json_as_text(ctx.stage, status, body)
    } else {
        (status, body)
    };
    let normalized = SubrequestResult {
        status,
        body: ngx_str_t {
            len: body.len(),
            data: body.as_ptr().cast_mut(),
        },
        ..*answer
    };
    let answer = &normalized;
    let counter = service(conf, ctx.stage).map_or_else(Default::default, |s| s.counter);
    if !cached {
        count_attempt(counter, ctx, answer.complete, plain);
        cache::remember(r, conf, &mut ctx.cache, ctx.stage, status, answer);
    }
    match next_step(ctx.stage, ctx.attempt, status, body, &policy) {
        Step::Allow(outcome) => finish(r, counter, outcome, NGX_OK as ngx_int_t),
        Step::Deny(outcome) => finish(r, counter, outcome, NGX_HTTP_FORBIDDEN as ngx_int_t),
        Step::Unauthenticated => {
            // A request refused again after an internal redirect keeps the
            // response headers of the first refusal: one challenge.
            let challenge = conf.challenge();
            if !headers::has_www_authenticate(r, challenge)
                && headers::push_www_authenticate(r, challenge).is_err()
            {
                return NGX_ERROR as ngx_int_t;
            }
            finish(
                r,
                counter,
                Outcome::Unauthenticated,
                NGX_HTTP_UNAUTHORIZED as ngx_int_t,
            )
        }
        Step::AskSuperuser => {
            ctx.stage = Stage::Superuser;
            ctx.attempt = 0;
            ctx.cache = Flight::default();
            ask(r, conf, ctx)
        }
        Step::AskAcl => {
            ctx.stage = Stage::Acl;
            ctx.attempt = 0;
            ctx.cache = Flight::default();
            ask(r, conf, ctx)
        }
        Step::RetryAfter(ms) => {
            ngx::ngx_log_error!(
                NGX_LOG_INFO,
                request::log(r),
                "auth_http: {} service \"{}\" not reachable (status {}), retrying in {ms} ms",
                stage_name(ctx.stage),
                service(conf, ctx.stage).map_or(ngx_str_t::empty(), |s| s.configured),
                status
            );
            counter.inc(slots::RETRIES);
            ctx.attempt += 1;
            ctx.paused = true;
            delay::pause(r, ms);
            NGX_AGAIN as ngx_int_t
        }
        Step::Unavailable => {
            ngx::ngx_log_error!(
                NGX_LOG_ERR,
                request::log(r),
                "auth_http: {} service \"{}\" not reachable after {} attempts (last status {}); \
                 answering 503",
                stage_name(ctx.stage),
                service(conf, ctx.stage).map_or(ngx_str_t::empty(), |s| s.configured),
                ctx.attempt + 1,
                status
            );
            counter.inc(slots::EXHAUSTED);
            finish(
                r,
                counter,
                Outcome::Error,
                NGX_HTTP_SERVICE_UNAVAILABLE as ngx_int_t,
            )
        }
    }
}

fn stage_name(stage: Stage) -> &'static str {
    match stage {
        Stage::Auth => "authentication",
        Stage::Superuser => "superuser",
        Stage::Acl => "ACL",
    }
}

pub(super) fn service(conf: &AuthHttpConf, stage: Stage) -> Option<&'static Service> {
    match stage {
        Stage::Auth => conf.auth(),
        Stage::Superuser => conf.superuser(),
        Stage::Acl => conf.acl(),
    }
}

/// Counts one attempt's answer in the status zone: its latency, and
/// whether it was cut short or encoded (no answer).
fn count_attempt(counter: Counter, ctx: &AuthHttpCtx, complete: bool, plain: bool) {
    if !counter.active() {
        return;
    }
    // SAFETY: nginx's cached clock, read by this worker's event loop only.
    let now = unsafe { ngx_current_msec };
    counter.observe_ms(slots::LATENCY, now.wrapping_sub(ctx.started_ms) as u64);
    if !complete {
        counter.inc(slots::TRUNCATED);
    } else if !plain {
        counter.inc(slots::ENCODED);
    }
}

/// Records `$auth_http_result`, counts the result for the service that
/// decided (once per request and service) and returns `rc`.
fn finish(
    r: &mut ngx_http_request_t,
    counter: Counter,
    outcome: Outcome,
    rc: ngx_int_t,
) -> ngx_int_t {
    let slot = match outcome {
        Outcome::Authenticated => slots::AUTHENTICATED,
        Outcome::Unauthenticated => slots::UNAUTHENTICATED,
        Outcome::Superuser => slots::SUPERUSER,
        Outcome::Allow => slots::ALLOW,
        Outcome::Deny => slots::DENY,
        Outcome::Ignore => slots::NOMATCH,
        Outcome::Error => slots::ERROR,
    };
    counters::count_decision(r, counter, slot, None);
    if let Some(var) = AuthHttpModule::main_conf(r).and_then(|m| m.result_variable.as_ref()) {
        let text = outcome.as_str();
        let value = ngx_str_t {
            len: text.len(),
            data: text.as_ptr().cast_mut(),
        };
        variables::store(r, var, value);
    }
    rc
}

/// Request-pool bytes: freed with the request, never on the global heap.
type PoolBytes = Vec<u8, Pool>;

/// Appends `bytes`, reporting an allocation failure instead of aborting.
fn append(out: &mut PoolBytes, bytes: &[u8]) -> Option<()> {
    out.try_reserve(bytes.len()).ok()?;
    out.extend_from_slice(bytes);
    Some(())
}

/// The bytes as an nginx string; they stay in the request pool until the
/// request ends.
fn into_ngx_str(bytes: PoolBytes) -> ngx_str_t {
    let bytes = bytes.leak();
    ngx_str_t {
        len: bytes.len(),
        data: bytes.as_mut_ptr(),
    }
}

/// Starts the subrequest for the current stage and attempt.
fn ask(r: &mut ngx_http_request_t, conf: &AuthHttpConf, ctx: &mut AuthHttpCtx) -> ngx_int_t {
    let Some(service) = service(conf, ctx.stage) else {
        return NGX_ERROR as ngx_int_t;
    };
    let Some(encoded) = encode_params(r, conf, service) else {
        return NGX_ERROR as ngx_int_t;
    };
    // Fixed arguments from the configured URI live in the configuration.
    let fixed = ngx_str_t {
        len: service.fixed_args.len(),
        data: service.fixed_args.as_ptr().cast_mut(),
    };

    let (args, body) = match service.method {
        Method::Get if fixed.is_empty() => (into_ngx_str(encoded), None),
        Method::Get => {
            // SAFETY: the live request pool outlives the subrequest.
            let mut query = PoolBytes::new_in(unsafe { Pool::from_ngx_pool(r.pool) });
            let joined = append(&mut query, fixed.as_bytes())
                .and_then(|()| append(&mut query, if encoded.is_empty() { b"" } else { b"&" }))
                .and_then(|()| append(&mut query, &encoded));
            if joined.is_none() {
                return NGX_ERROR as ngx_int_t;
            }
            (into_ngx_str(query), None)
        }
        Method::Post | Method::Put => {
            let body = Body {
                content_type: FORM,
                data: into_ngx_str(encoded),
            };
            (fixed, Some(body))
        }
    };

    // auth_http_header: "name\0value\0…", expanded for this request.
    let extra = match expand_headers(r, conf) {
        Ok(extra) => extra,
        Err(rc) => return rc,
    };
    let extra = into_ngx_str(extra);

    // The decision cache, for the first attempt at this question.
    if ctx.attempt == 0 {
        let no_body = ngx_str_t::empty();
        let sent = body.as_ref().map_or(&no_body, |b| &b.data);
        let question = (&service.path, service.method, &args, sent, &extra);
        match cache::look(r, conf, &mut ctx.cache, ctx.stage, question) {
            Look::Hit(entry) => {
                if let Some(answer) = cache::replayed(&entry) {
                    return answered(r, conf, ctx, &answer, true);
                }
            }
            Look::Wait => {
                ctx.paused = true;
                return NGX_AGAIN as ngx_int_t;
            }
            Look::Ask => {}
        }
    }

    let spec = SubrequestSpec {
        uri: &service.path,
        args: (!args.is_empty()).then_some(&args),
        method: service.method,
        body,
        // Only the ACL answer's body matters (`ignore`), but the
        // authentication and superuser answers are read to its end as well: a header-only subrequest makes
        // nginx close the upstream connection whenever the answer has a body
        // (a "403 not a superuser" page), so every ordinary client would
        // cost a new (TLS) connection to the service.
        capture_body: true,
        client_headers: ClientHeaders::ForDecision,
        record: Record::Answer,
    };
    ctx.subrequest = SubrequestResult::default();
    // SAFETY: nginx's cached clock, read by this worker's event loop only.
    ctx.started_ms = unsafe { ngx_current_msec };
    // SAFETY: the result slot lives in the request-pool context.
    match unsafe { subrequest::start_with(r, &spec, &mut ctx.subrequest) } {
        // SAFETY: a started subrequest is live, with a header list of its
        // own (ClientHeaders::ForDecision), and has not run yet.
        Ok(sr) if set_headers(unsafe { &mut *sr }, extra.as_bytes()).is_some() => {
            NGX_AGAIN as ngx_int_t
        }
        Ok(_) => {
            crate::decision_cache::lookup::release(&conf.cache, &mut ctx.cache);
            NGX_ERROR as ngx_int_t
        }
        Err(_) => {
            crate::decision_cache::lookup::release(&conf.cache, &mut ctx.cache);
            NGX_ERROR as ngx_int_t
        }
    }
}

/// The `auth_http_header`s for this request as `name\0value\0…` in its
/// pool. A value that would break the header (CR, LF, NUL from a variable
/// or placeholder) refuses the request with 500 instead of being sent;
/// `NGX_ERROR` when the pool is out of memory.
fn expand_headers(r: &mut ngx_http_request_t, conf: &AuthHttpConf) -> Result<PoolBytes, ngx_int_t> {
    expand_headers_into(r, conf).ok_or(NGX_ERROR as ngx_int_t)?
}

fn expand_headers_into(
    r: &mut ngx_http_request_t,
    conf: &AuthHttpConf,
) -> Option<Result<PoolBytes, ngx_int_t>> {
    // SAFETY: the live request pool outlives every use of this buffer.
    let mut out = PoolBytes::new_in(unsafe { Pool::from_ngx_pool(r.pool) });
    for header in &conf.headers {
        append(&mut out, header.name.as_bytes())?;
        append(&mut out, b"\0")?;
        let start = out.len();
        for piece in &header.value {
            match piece {
                ValuePiece::Text(text) => append(&mut out, text)?,
                ValuePiece::Variables(cv) => {
                    let v = variables::evaluate(r, cv)?;
                    append(&mut out, v.as_bytes())?
                }
                ValuePiece::Placeholder(p) => placeholder_value(r, conf, *p, &mut out)?,
            }
        }
        if out[start..].iter().any(|&b| matches!(b, b'\r' | b'\n' | 0)) {
            ngx::ngx_log_error!(
                NGX_LOG_ERR,
                request::log(r),
                "auth_http: the value of auth_http_header \"{}\" holds CR, LF or NUL; \
                 request refused",
                header.name
            );
            return Some(Err(NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t));
        }
        append(&mut out, b"\0")?;
    }
    Some(Ok(out))
}

/// Sets the headers of [`expand_headers`] on subrequest `sr`, replacing
/// any the client sent under those names.
fn set_headers(sr: &mut ngx_http_request_t, extra: &[u8]) -> Option<()> {
    let mut parts = extra.split(|&b| b == 0);
    while let (Some(name), Some(value)) = (parts.next(), parts.next()) {
        if name.is_empty() {
            break;
        }
        headers_in::remove(sr, name).ok()?;
        headers_in::push(sr, name, value).ok()?;
    }
    Some(())
}

/// `name=value&…`, form-encoded, for this request, in its pool.
fn encode_params(
    r: &mut ngx_http_request_t,
    conf: &AuthHttpConf,
    service: &Service,
) -> Option<PoolBytes> {
    // SAFETY: the live request pool outlives every use of these buffers.
    let pool = unsafe { Pool::from_ngx_pool(r.pool) };
    let mut out = PoolBytes::new_in(pool.clone());
    let mut value = PoolBytes::new_in(pool);
    for (i, param) in service.params.iter().enumerate() {
        append(&mut out, if i > 0 { b"&" } else { b"" })?;
        append(&mut out, &param.encoded_name)?;
        append(&mut out, b"=")?;
        value.clear();
        for piece in &param.value {
            match piece {
                ValuePiece::Text(text) => append(&mut value, text)?,
                ValuePiece::Variables(cv) => {
                    let v = variables::evaluate(r, cv)?;
                    append(&mut value, v.as_bytes())?
                }
                ValuePiece::Placeholder(p) => placeholder_value(r, conf, *p, &mut value)?,
            }
        }
        // Every byte encodes to at most three.
        out.try_reserve(value.len() * 3).ok()?;
        params::form_encode_into(&mut out, &value);
    }
    Some(out)
}

/// The client's user name and client id (the values of `%u` and `%c`),
/// under which the decision cache files an answer so that
/// `auth_cache_purge` can revoke one client's answers at once; `None` when
/// the pool is out of memory.
pub(super) fn identity(
    r: &mut ngx_http_request_t,
    conf: &AuthHttpConf,
) -> Option<(PoolBytes, PoolBytes)> {
    // SAFETY: the live request pool outlives every use of these buffers.
    let pool = unsafe { Pool::from_ngx_pool(r.pool) };
    let (mut user, mut client) = (PoolBytes::new_in(pool.clone()), PoolBytes::new_in(pool));
    placeholder_value(r, conf, Placeholder::User, &mut user)?;
    placeholder_value(r, conf, Placeholder::ClientId, &mut client)?;
    Some((user, client))
}

/// Appends the raw value of placeholder `p` for request `r`; absent values
/// (no Basic auth, no client certificate) are empty.
fn placeholder_value(
    r: &mut ngx_http_request_t,
    conf: &AuthHttpConf,
    p: Placeholder,
    out: &mut PoolBytes,
) -> Option<()> {
    match p {
        Placeholder::User | Placeholder::Password => {
            // SAFETY: parses the request's own Authorization header into
            // headers_in.user / passwd (request pool); NGX_DECLINED when
            // there is no valid Basic credential, leaving them empty.
            let rc = unsafe { ngx_http_auth_basic_user(r) };
            if rc == NGX_OK as ngx_int_t {
                let s = if p == Placeholder::User {
                    r.headers_in.user
                } else {
                    r.headers_in.passwd
                };
                append(out, s.as_bytes())?;
            }
        }
        Placeholder::ClientId | Placeholder::Mountpoint => {
            let cv = if p == Placeholder::ClientId {
                conf.client_id
            } else {
                conf.mountpoint
            };
            if let Some(cv) = cv {
                let v = variables::evaluate(r, &cv)?;
                append(out, v.as_bytes())?;
            }
        }
        Placeholder::ClientAddr => {
            // SAFETY: the connection's address text lives with it.
            let addr = unsafe { (*r.connection).addr_text };
            append(out, addr.as_bytes())?;
        }
        Placeholder::ClientPort => {
            // SAFETY: the connection's sockaddr lives with it.
            let port = unsafe { ngx_inet_get_port((*r.connection).sockaddr) };
            let mut buf = DecimalBuf::default();
            append(out, decimal(u64::from(port), &mut buf))?;
        }
        Placeholder::Protocol => append(out, r.http_protocol.as_bytes())?,
        Placeholder::Topic => append(out, r.uri.as_bytes())?,
        Placeholder::Access => append(out, params::access_for_method(r.method_name.as_bytes()))?,
        Placeholder::CertSubject | Placeholder::CertCommonName => {
            let index = AuthHttpModule::main_conf(r).and_then(|m| m.ssl_subject_index);
            if let Some(index) = index {
                let subject = variables::get_indexed(r, index);
                if p == Placeholder::CertSubject {
                    append(out, subject)?;
                } else {
                    append(out, &params::common_name(subject))?;
                }
            }
        }
    }
    Some(())
}
