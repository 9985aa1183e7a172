//! The access-phase handler: one request's way from "is this location
//! protected?" to allow / 401 / over-quota status.
//!
//! 0. (preaccess phase, [`strip_handler`]) Strip client-sent
//!    `X-Consumer-Username`, `X-Credential-Identifier`, `X-Consumer-Custom-Id`
//!    (always, whatever the access checks decide; in every `key_auth`
//!    location a request passes, so ours from an earlier one go too). A
//!    subrequest, which skips the access phase, gets a header list of its
//!    own without them (and without the key), see [`subrequest`].
//! 1. Find the request's [`Passage`]: what an earlier `key_auth` location
//!    decided before an internal redirect. Refused there: refused here, the
//!    same way. Identified there: the same consumer here.
//! 2. Otherwise find the key: the header; only when it is absent, the query
//!    argument; only when both are absent, with `key_auth_body_field`, the
//!    field of a form body (read without consuming it: the request waits,
//!    `NGX_DONE`, and this handler runs again once it is in). Look its
//!    digest up. Missing or unknown: the anonymous consumer when
//!    configured, else 401 (see [`super::respond`] for the JSON body).
//! 3. Hide the credential from the upstream, the variables and the logs
//!    when asked (also for a refused request: an `error_page` may still
//!    send it somewhere).
//! 4. Set `$key_auth_*` (so even a refused-by-quota request is logged with
//!    its consumer).
//! 5. Quota: count in the shared zone, or in Redis with
//!    `key_auth_quota_store` (the request waits for the reply: `NGX_AGAIN`,
//!    then this handler runs again and goes on from here), once per
//!    request and consumer; add `X-RateLimit-*`; over the limit → the
//!    consumer's `limit_status`, no upstream request, and the refusal is
//!    kept in the passage. Redis failing: `on_error` (503 by default).
//! 6. Tell the upstream who the consumer is.
//! 7. (precontent phase, [`hide_handler`]) With `key_auth_hide_credentials
//!    on`, hide the key also when the access phase let the request in
//!    before key_auth ran (`satisfy any`).

use core::ptr;

use nginx_sys::{
    ngx_current_msec, ngx_http_request_t, ngx_int_t, ngx_str_t, ngx_uint_t, NGX_AGAIN,
    NGX_DECLINED, NGX_ERROR, NGX_HTTP_BAD_REQUEST, NGX_HTTP_FORBIDDEN,
    NGX_HTTP_INTERNAL_SERVER_ERROR, NGX_HTTP_SERVICE_UNAVAILABLE, NGX_HTTP_UNSUPPORTED_MEDIA_TYPE,
    NGX_LOG_ERR, NGX_LOG_INFO, NGX_OK,
};
use ngx::http::{HttpModule, HttpModuleLocationConf, HttpModuleMainConf};

use super::conf::{Forbidden, KeyAuthConf, KeyAuthMainConf, ZoneHeader};
use super::consumers::{Consumer, Credential};
use super::expiry;
use super::form::{self, Field};
use super::passage::{hidden_sources, Identity, Passage, Refusal, Source, Step, Verdict};
use super::quota::Decision;
use super::respond::Denial;
use super::KeyAuthModule;
use crate::counters;
use crate::counters::schema::{key_auth as slots, key_auth_consumer as consumer_slots};
use crate::nginx::client_body::{self, BodyStep};
use crate::nginx::ffi::guard_status;
use crate::nginx::headers_in::PreparedName;
use crate::nginx::{args, headers, headers_in, pool, request, shm, variables};

/// Headers only this module may send upstream (names hashed at compile
/// time: they are set on every request).
const CONSUMER_USERNAME: PreparedName =
    PreparedName::new(b"X-Consumer-Username", b"x-consumer-username");
const CREDENTIAL_IDENTIFIER: PreparedName =
    PreparedName::new(b"X-Credential-Identifier", b"x-credential-identifier");
const CONSUMER_CUSTOM_ID: PreparedName =
    PreparedName::new(b"X-Consumer-Custom-Id", b"x-consumer-custom-id");
const CONSUMER_HEADERS: [&[u8]; 3] = [
    CONSUMER_USERNAME.key(),
    CREDENTIAL_IDENTIFIER.key(),
    CONSUMER_CUSTOM_ID.key(),
];

/// Preaccess-phase entry point: removes client-sent copies of the consumer
/// headers in every request of a `key_auth` location, before any access
/// check runs, so that they are gone even when `satisfy any` lets the
/// request in through `allow` and key_auth itself never runs. Subrequests,
/// for which nginx skips the access phase, are treated by [`subrequest`].
///
/// # Safety
/// Called by nginx's phase engine with a live request.
pub unsafe extern "C" fn strip_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: the phase engine passes a live request.
    let r = unsafe { &mut *r };
    guard_status(request::log(r), || {
        let Some(conf) = KeyAuthModule::location_conf(r).filter(|c| c.enabled()) else {
            return NGX_DECLINED as ngx_int_t;
        };
        if ptr::eq(r, r.main) {
            if headers_in::remove_any(r, &CONSUMER_HEADERS).is_err() {
                return NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t;
            }
            return NGX_DECLINED as ngx_int_t;
        }
        subrequest(r, conf)
    })
}

/// A subrequest (SSI `include virtual=`, `mirror`, an auth subrequest)
/// entering a `key_auth` location: nginx skips the access phase for it, so
/// key_auth never checks it. It starts with its parent's request headers,
/// which for an unchecked main request are the client's. It gets a header
/// list of its own (the parent's is shared, see
/// [`headers::own_list_without`]) without the consumer headers and, with
/// `key_auth_hide_credentials on`, without the key header (any spelling),
/// and its own arguments, `$request_uri` and request line without the key
/// argument. When the main request was identified by key_auth in a way
/// this location accepts ([`Passage::step`]), the subrequest carries our
/// identity headers for that consumer; otherwise none. When key_auth
/// refused the main request, the subrequest is refused the same way.
fn subrequest(r: &mut ngx_http_request_t, conf: &KeyAuthConf) -> ngx_int_t {
    let Some(main) = KeyAuthModule::main_conf(r) else {
        return NGX_ERROR as ngx_int_t;
    };
    let error = NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t;
    // SAFETY: a subrequest's main request lives until all its subrequests
    // are finalised.
    let main_request = unsafe { &*r.main };
    let passage = request::kept::<Passage>(main_request, KeyAuthModule::module()).copied();
    let step = passage.map(|p| p.step(conf.anonymous()));
    // A request key_auth refused gets nothing from a key_auth location, not
    // even through a subrequest (an `error_page` page that includes one).
    if let Some(Step::Refuse(refusal)) = step {
        return refuse(r, refusal);
    }
    let hide = conf.hide_credentials();
    let mut names = [&b""[..]; 5];
    names[..3].copy_from_slice(&CONSUMER_HEADERS);
    let mut n = 3;
    if hide {
        for c in key_names(conf, passage.as_ref()) {
            names[n] = c.header();
            n += 1;
        }
    }
    if headers::own_list_without(r, &names[..n]).is_err() {
        return error;
    }
    if hide && remove_key_arguments(r, main, conf, passage.as_ref()).is_err() {
        return error;
    }
    if let Some(Step::Continue(identity)) = step {
        let consumer = &main.registry.consumer(identity.consumer);
        let credential = identity
            .credential
            .map(|(index, _)| main.registry.credential(index));
        if upstream_headers(r, consumer, credential.as_ref()).is_err() {
            return error;
        }
    }
    NGX_DECLINED as ngx_int_t
}

/// Precontent-phase entry point: `key_auth_hide_credentials on` holds
/// whatever the access phase decided. Under `satisfy any`, `allow` (or
/// another check) lets a request in before key_auth's access handler runs,
/// which then never hides the key: without this, the key would reach the
/// upstream, `$request_uri`, `$args` and the access log. The key's sources
/// are removed here as [`hide`] does, unless the access handler already did
/// in this location (the passage records where it hid last). Main requests
/// only: [`subrequest`] treats subrequests. It runs before `mirror` and
/// `try_files` (registered later, so run first), which copy or move the
/// request.
///
/// # Safety
/// Called by nginx's phase engine with a live request.
pub unsafe extern "C" fn hide_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: the phase engine passes a live request.
    let r = unsafe { &mut *r };
    guard_status(request::log(r), || {
        let (Some(conf), Some(main)) =
            (KeyAuthModule::location_conf(r), KeyAuthModule::main_conf(r))
        else {
            return NGX_ERROR as ngx_int_t;
        };
        if !conf.enabled() || !conf.hide_credentials() || !ptr::eq(r, r.main) {
            return NGX_DECLINED as ngx_int_t;
        }
        let Some(passage) = request::kept_or_new::<Passage>(r, KeyAuthModule::module()) else {
            return NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t;
        };
        if passage.hidden_by == conf_id(conf) {
            return NGX_DECLINED as ngx_int_t;
        }
        // key_auth never looked at this request: a form body may still
        // hold the field (read it now; fail closed when it cannot be).
        if passage.verdict == Verdict::Unchecked && !passage.body_field {
            match body_key(r, conf, passage) {
                BodyKey::Reading(rc) => return rc,
                BodyKey::Refused(status) => return status as ngx_int_t,
                _ => {}
            }
        }
        if hide(r, conf, main, passage).is_err() {
            return fail(passage);
        }
        passage.hidden_by = conf_id(conf);
        NGX_DECLINED as ngx_int_t
    })
}

/// What identifies a location's configuration in [`Passage::hidden_by`].
fn conf_id(conf: &KeyAuthConf) -> usize {
    ptr::from_ref(conf) as usize
}

/// The access-phase entry point.
///
/// # Safety
/// Called by nginx's phase engine with a live main request.
pub unsafe extern "C" fn access_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: the phase engine passes the live main request.
    let r = unsafe { &mut *r };
    guard_status(request::log(r), || {
        let rc = check(r);
        if rc == NGX_ERROR as ngx_int_t || rc == NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t {
            // An internal failure (fail()): counted unless this request's
            // decision was counted already (an over-quota 500).
            if let Some(main) = KeyAuthModule::main_conf(r) {
                count_outcome(r, main, slots::ERROR, None);
            }
        }
        rc
    })
}

fn check(r: &mut ngx_http_request_t) -> ngx_int_t {
    let (Some(conf), Some(main)) = (KeyAuthModule::location_conf(r), KeyAuthModule::main_conf(r))
    else {
        return NGX_ERROR as ngx_int_t;
    };
    if !conf.enabled() {
        return NGX_DECLINED as ngx_int_t;
    }
    // key_auth_preflight pass: a CORS preflight carries no key (browsers
    // never send credentials with it); it is not key_auth's to refuse.
    if conf.preflight_pass() && is_preflight(r) {
        return NGX_DECLINED as ngx_int_t;
    }
    let Some(passage) = request::kept_or_new::<Passage>(r, KeyAuthModule::module()) else {
        return NGX_ERROR as ngx_int_t;
    };

    // Steps 1 to 3 ran already when the request resumes after Redis
    // answered (or gave up on) its count.
    if passage.quota_wait.is_none() {
        passage.verdict = match passage.step(conf.anonymous()) {
            Step::Check => {
                passage.checked_in = conf_id(conf);
                match identify(r, conf, main, passage) {
                    Lookup::Decided(verdict) => verdict,
                    Lookup::Reading(rc) => return rc,
                }
            }
            Step::Refuse(refusal) => Verdict::Refused(refusal),
            Step::Continue(identity) => Verdict::Allowed(identity),
        };

        if conf.hide_credentials() {
            if hide(r, conf, main, passage).is_err() {
                return fail(passage);
            }
            passage.hidden_by = conf_id(conf);
        }
    }

    let identity = match passage.verdict {
        Verdict::Allowed(identity) => identity,
        Verdict::Refused(refusal) => {
            count_outcome(r, main, refused_slot(refusal), None);
            return refuse(r, refusal);
        }
        Verdict::Unchecked => return fail(passage),
    };
    let consumer = &main.registry.consumer(identity.consumer);
    let credential = identity
        .credential
        .map(|(index, _)| main.registry.credential(index));

    set_variables(r, main, consumer, credential.as_ref());

    // key_auth_allow / key_auth_deny: before the quota, so that a consumer
    // refused here is not charged. Not kept in the passage: a location an
    // internal redirect leads to applies its own lists.
    if let Some(why) = conf.forbids(consumer) {
        // Without nginx's request context: its request line may hold the
        // key (`?apikey=…`), hidden or not.
        request::without_request_context(r, |log| {
            ngx::ngx_log_error!(
                NGX_LOG_ERR,
                log,
                "key_auth: access forbidden to consumer \"{}\" by {}, client: {}, uri: \"{}\"",
                consumer.name,
                match why {
                    Forbidden::Denied => "key_auth_deny",
                    Forbidden::NotAllowed => "key_auth_allow",
                },
                request::client(r),
                r.uri
            );
        });
        return NGX_HTTP_FORBIDDEN as ngx_int_t;
    }

    if let (Some(limit), true) = (&consumer.limit, passage.needs_count(identity.consumer)) {
        let refusal = match count(r, main, consumer, limit, passage) {
            Count::Waiting => return NGX_AGAIN as ngx_int_t,
            Count::ZoneFull => {
                // Without nginx's request context, as above.
                request::without_request_context(r, |log| {
                    ngx::ngx_log_error!(
                        NGX_LOG_ERR,
                        log,
                        "key_auth zone is full: cannot count the requests of consumer \"{}\"; \
                         request refused (make key_auth_zone larger), client: {}, uri: \"{}\"",
                        consumer.name,
                        request::client(r),
                        r.uri
                    );
                });
                count_outcome(r, main, slots::ZONE_FULL, Some((identity.consumer, false)));
                Some(Refusal::Status(NGX_HTTP_SERVICE_UNAVAILABLE as u16))
            }
            // The store logged the failure (once per episode).
            Count::StoreFailed => {
                count_outcome(r, main, slots::ERROR, Some((identity.consumer, false)));
                Some(Refusal::Status(NGX_HTTP_SERVICE_UNAVAILABLE as u16))
            }
            Count::Uncounted => None,
            Count::Decided(decision) => {
                if rate_limit_headers(r, main, &decision).is_err() {
                    return fail(passage);
                }
                if !decision.allowed {
                    count_outcome(r, main, slots::OVER_QUOTA, Some((identity.consumer, true)));
                }
                (!decision.allowed).then(|| Refusal::Status(consumer.over_limit_status()))
            }
        };
        passage.counted = Some(identity.consumer);
        if let Some(refusal) = refusal {
            passage.verdict = Verdict::Refused(refusal);
            return refuse(r, refusal);
        }
    }

    if upstream_headers(r, consumer, credential.as_ref()).is_err() {
        return fail(passage);
    }
    let slot = if identity.credential.is_some() {
        slots::ALLOWED
    } else {
        slots::ANONYMOUS
    };
    count_outcome(r, main, slot, Some((identity.consumer, false)));
    NGX_OK as ngx_int_t
}

/// The status zone's outcome for a refusal kept in the passage (a 401, or
/// an internal failure kept from an earlier location).
fn refused_slot(refusal: Refusal) -> usize {
    match refusal {
        Refusal::Unauthorized(Denial::Missing) => slots::MISSING,
        Refusal::Unauthorized(Denial::Invalid) => slots::INVALID,
        Refusal::Unauthorized(Denial::None) | Refusal::Status(_) => slots::ERROR,
    }
}

/// Counts the decision in the status zone, once per request: the outcome,
/// and with per-consumer series, the consumer's request (and its quota
/// refusal when `over_quota`).
fn count_outcome(
    r: &mut ngx_http_request_t,
    main: &KeyAuthMainConf,
    slot: usize,
    consumer: Option<(usize, bool)>,
) {
    if !counters::count_decision(r, main.counter, slot, None) {
        return;
    }
    if let Some((index, over_quota)) = consumer {
        if let Some(&c) = main.consumer_counters.get(index) {
            c.inc(consumer_slots::REQUESTS);
            if over_quota {
                c.inc(consumer_slots::OVER_QUOTA);
            }
        }
    }
}

/// A CORS preflight: `OPTIONS` with `Origin` and
/// `Access-Control-Request-Method` (the Fetch standard's definition).
fn is_preflight(r: &ngx_http_request_t) -> bool {
    r.method == nginx_sys::NGX_HTTP_OPTIONS as ngx_uint_t
        && headers_in::find(r, b"origin").is_some()
        && headers_in::find(r, b"access-control-request-method").is_some()
}

/// What looking for the key came to.
enum Lookup {
    Decided(Verdict),
    /// nginx is reading the form body: the access handler returns this
    /// (`NGX_DONE`) and runs again once the body is in.
    Reading(ngx_int_t),
}

/// Steps 2: the key (header when present, even empty or wrong; otherwise
/// the query argument, percent-decoded; otherwise, with
/// `key_auth_body_field`, the form body's field), its credential, or the
/// anonymous consumer. A body that cannot be searched (too large, a field
/// given twice, unreadable) refuses the request whatever the anonymous
/// consumer.
fn identify(
    r: &mut ngx_http_request_t,
    conf: &KeyAuthConf,
    main: &KeyAuthMainConf,
    passage: &mut Passage,
) -> Lookup {
    let found = if let Some(h) = headers_in::find(r, conf.header()) {
        let index = main.registry.lookup_credential(h.value.as_bytes());
        Some((index, Source::Header))
    } else if let Some(raw) = args::find(r.args.as_bytes(), conf.query()) {
        let index = main.registry.lookup_credential(&args::decode(raw));
        Some((index, Source::Query))
    } else {
        match body_key(r, conf, passage) {
            BodyKey::NotSearched | BodyKey::Absent => None,
            BodyKey::Key(key) => Some((main.registry.lookup_credential(&key), Source::Body)),
            BodyKey::Reading(rc) => return Lookup::Reading(rc),
            BodyKey::Repeated(field) => {
                request::without_request_context(r, |log| {
                    ngx::ngx_log_error!(
                        NGX_LOG_INFO,
                        log,
                        "key_auth: the form body holds the field \"{}\" more than once; \
                         refused (400), client: {}, uri: \"{}\"",
                        field,
                        request::client(r),
                        r.uri
                    );
                });
                let status = NGX_HTTP_BAD_REQUEST as u16;
                return Lookup::Decided(Verdict::Refused(Refusal::Status(status)));
            }
            BodyKey::Refused(status) => {
                return Lookup::Decided(Verdict::Refused(Refusal::Status(status)))
            }
        }
    };
    let denial = match found {
        Some((Some(index), source)) if !key_expired(r, main, index) => {
            return Lookup::Decided(Verdict::Allowed(Identity {
                consumer: main.registry.credential(index).consumer,
                credential: Some((index, source)),
            }))
        }
        // an expired key is an invalid key
        Some((Some(_), _)) => Denial::Invalid,
        Some((None, _)) => Denial::Invalid,
        None => Denial::Missing,
    };
    Lookup::Decided(match conf.anonymous() {
        Some(consumer) => Verdict::Allowed(Identity {
            consumer,
            credential: None,
        }),
        None => Verdict::Refused(Refusal::Unauthorized(denial)),
    })
}

/// What the form body says about the key.
enum BodyKey {
    /// No `key_auth_body_field` here, not a form, or no body.
    NotSearched,
    /// A form without the field.
    Absent,
    /// The field's decoded value.
    Key(Vec<u8>),
    /// The field (this name) more than once.
    Repeated(ngx_str_t),
    /// nginx is reading the body (return this status).
    Reading(ngx_int_t),
    /// The body cannot be searched: answer with this status (413 over
    /// `max=`, or what nginx's reader refused with).
    Refused(u16),
}

const BODY_FIELD: &str = "key_auth_body_field";

/// The `key_auth_body_field` of a form body (`Content-Type:
/// application/x-www-form-urlencoded`, with a body), read with nginx's
/// reader the first time (the upstream still gets it whole). Marks the
/// passage when the body holds the field, so that hiding removes it.
fn body_key(r: &mut ngx_http_request_t, conf: &KeyAuthConf, passage: &mut Passage) -> BodyKey {
    let Some(field) = conf.body_field() else {
        return BodyKey::NotSearched;
    };
    if !client_body::announced(r) {
        return BodyKey::NotSearched;
    }
    // Every Content-Type line, also spelled `Content_Type` (with
    // underscores_in_headers on, a header of its own that CGI-style
    // gateways may read as the same): with two, an upstream may read the
    // other one than nginx's first, and find (and keep) a key in a body
    // key_auth did not search, or did not strip. As for a field given
    // twice, no guess. The same spellings count for Content-Encoding.
    // A value that names the form among other text (`…urlencoded,
    // text/plain`) is no form here, but one for some upstreams: refused too.
    let (types, forms) = (core::cell::Cell::new(0), core::cell::Cell::new(0));
    let ambiguous = headers_in::any_value_any_spelling(r, b"Content-Type", |value| {
        types.set(types.get() + 1);
        forms.set(forms.get() + usize::from(form::is_form(value)));
        form::names_form_ambiguously(value)
    });
    if ambiguous {
        request::without_request_context(r, |log| {
            ngx::ngx_log_error!(
                NGX_LOG_INFO,
                log,
                "key_auth: the request's \"Content-Type\" names a form among other text; \
                 refused (400), client: {}, uri: \"{}\"",
                request::client(r),
                r.uri
            );
        });
        return BodyKey::Refused(NGX_HTTP_BAD_REQUEST as u16);
    }
    if forms.get() == 0 {
        return BodyKey::NotSearched;
    }
    if types.get() > 1 {
        request::without_request_context(r, |log| {
            ngx::ngx_log_error!(
                NGX_LOG_INFO,
                log,
                "key_auth: the request has {} \"Content-Type\" headers, one a form; \
                 refused (400), client: {}, uri: \"{}\"",
                types.get(),
                request::client(r),
                r.uri
            );
        });
        return BodyKey::Refused(NGX_HTTP_BAD_REQUEST as u16);
    }
    // A coded body (gzip): its bytes cannot be searched, and an upstream
    // that decodes it would find the key. Fail closed (RFC 7694: 415).
    if headers_in::any_value_any_spelling(r, b"Content-Type", |v| !form::ascii_charset(v)) {
        request::without_request_context(r, |log| {
            ngx::ngx_log_error!(
                NGX_LOG_INFO,
                log,
                "key_auth: a form body in a charset other than UTF-8, ASCII or Latin-1 cannot \
                 be searched; refused (415), client: {}, uri: \"{}\"",
                request::client(r),
                r.uri
            );
        });
        return BodyKey::Refused(NGX_HTTP_UNSUPPORTED_MEDIA_TYPE as u16);
    }
    if headers_in::any_value_any_spelling(r, b"Content-Encoding", form::is_coded) {
        request::without_request_context(r, |log| {
            ngx::ngx_log_error!(
                NGX_LOG_INFO,
                log,
                "key_auth: a form body with a \"Content-Encoding\" cannot be searched; \
                 refused (415), client: {}, uri: \"{}\"",
                request::client(r),
                r.uri
            );
        });
        return BodyKey::Refused(NGX_HTTP_UNSUPPORTED_MEDIA_TYPE as u16);
    }
    let body = match client_body::prepare(r, field.max, BODY_FIELD) {
        BodyStep::Ready(None) => return BodyKey::NotSearched,
        BodyStep::Ready(Some(body)) => body,
        BodyStep::Reading(rc) => return BodyKey::Reading(rc),
        BodyStep::Refuse(status) => return BodyKey::Refused(status as u16),
    };
    match form::find(body.as_bytes(), field.name.as_bytes()) {
        Field::Absent => BodyKey::Absent,
        Field::Once(key) => {
            passage.body_field = true;
            BodyKey::Key(key)
        }
        Field::Repeated => {
            passage.body_field = true;
            BodyKey::Repeated(field.name)
        }
    }
}

/// Removes the body field (under every name of [`key_names`]) from the
/// body the upstream gets, once per request.
fn hide_body(
    r: &mut ngx_http_request_t,
    conf: &KeyAuthConf,
    passage: &mut Passage,
) -> Result<(), crate::nginx::NgxError> {
    if !passage.body_field || passage.body_hidden {
        return Ok(());
    }
    // The body was read when the field was found: this is a copy of it
    // (the bound was checked then).
    let BodyStep::Ready(Some(body)) = client_body::prepare(r, usize::MAX, BODY_FIELD) else {
        return Err(crate::nginx::NgxError);
    };
    let mut edited: Option<Vec<u8>> = None;
    for c in key_names(conf, Some(&*passage)) {
        if let Some(field) = c.body_field() {
            let current = edited.as_deref().unwrap_or(body.as_bytes());
            if let Some(without) = form::remove(current, field.name.as_bytes()) {
                edited = Some(without);
            }
        }
    }
    if let Some(without) = edited {
        let copy = pool::copy_to_pool(r, &without)?;
        client_body::replace(r, copy.as_bytes())?;
    }
    passage.body_hidden = true;
    Ok(())
}

/// Whether the key of credential `index` has expired (`expires=`); says so
/// at `[info]`, naming the consumer and credential, never the key.
fn key_expired(r: &ngx_http_request_t, main: &KeyAuthMainConf, index: usize) -> bool {
    let credential = main.registry.credential(index);
    if !expiry::expired(credential.expires, super::conf::now()) {
        return false;
    }
    // Without nginx's request context: its request line may hold the key
    // (`?apikey=…`).
    request::without_request_context(r, |log| {
        ngx::ngx_log_error!(
            NGX_LOG_INFO,
            log,
            "key_auth: the key of consumer \"{}\" ({}) expired at {}; refused as an invalid \
             key, client: {}, uri: \"{}\"",
            main.registry.consumer(credential.consumer).name,
            expiry::describe_credential(credential.id),
            expiry::format_utc(credential.expires.unwrap_or_default()),
            request::client(r),
            r.uri
        );
    });
    true
}

/// Step 3: removes the key's source: the header, or the argument from the
/// request's arguments, `$request_uri` and the request line (see
/// [`args::remove_everywhere`]); both without a valid key. The body field
/// whenever the body held it ([`hide_body`]).
///
/// After an internal redirect the key was found under the names of the
/// location that checked it ([`Passage::checked_in`]), which may not be
/// this location's: both are removed.
fn hide(
    r: &mut ngx_http_request_t,
    conf: &KeyAuthConf,
    main: &KeyAuthMainConf,
    passage: &mut Passage,
) -> Result<(), crate::nginx::NgxError> {
    hide_body(r, conf, passage)?;
    let (header, query) = hidden_sources(&passage.verdict);
    if header {
        for c in key_names(conf, Some(passage)) {
            headers_in::remove(r, c.header())?;
        }
    }
    if query {
        remove_key_arguments(r, main, conf, Some(passage))?;
    }
    Ok(())
}

/// The locations whose `key_auth_header` / `key_auth_query` names the key
/// may have come under: `conf`, and the one that checked the request
/// ([`Passage::checked_in`]) when that is another.
fn key_names<'a>(
    conf: &'a KeyAuthConf,
    passage: Option<&Passage>,
) -> impl Iterator<Item = &'a KeyAuthConf> {
    let checked = passage
        .map(|p| p.checked_in)
        .filter(|&id| id != 0 && id != conf_id(conf))
        // SAFETY: a non-zero `checked_in` is the address of a key_auth
        // location configuration of this request's cycle (set by check()
        // from a live reference); configurations live until the cycle's
        // pool is destroyed, which outlives every request of that cycle.
        .map(|id| unsafe { &*(id as *const KeyAuthConf) });
    core::iter::once(conf).chain(checked)
}

/// Removes the key argument under every name of [`key_names`] from the
/// request's arguments, `$request_uri` and request line, and forgets the
/// cached values of the variables that show them.
fn remove_key_arguments(
    r: &mut ngx_http_request_t,
    main: &KeyAuthMainConf,
    conf: &KeyAuthConf,
    passage: Option<&Passage>,
) -> Result<(), crate::nginx::NgxError> {
    let mut removed = false;
    for c in key_names(conf, passage) {
        removed |= args::remove_everywhere(r, c.query())?;
    }
    if removed {
        for &index in &main.target_variables {
            variables::flush(r, index);
        }
    }
    Ok(())
}

/// Answers a refusal: 401 through [`super::respond`] (challenge, JSON
/// body), any other status as nginx's error page for it.
fn refuse(r: &mut ngx_http_request_t, refusal: Refusal) -> ngx_int_t {
    match refusal {
        Refusal::Unauthorized(denial) => super::respond::deny(r, denial),
        Refusal::Status(status) => status as ngx_int_t,
    }
}

/// Fails closed: an internal error refuses the request with 500 here and
/// in every `key_auth` location an `error_page 500` sends it to.
fn fail(passage: &mut Passage) -> ngx_int_t {
    let status = NGX_HTTP_INTERNAL_SERVER_ERROR as u16;
    passage.verdict = Verdict::Refused(Refusal::Status(status));
    status as ngx_int_t
}

fn str_of(s: &str) -> ngx_str_t {
    ngx_str_t {
        len: s.len(),
        data: s.as_ptr().cast_mut(),
    }
}

/// `$key_auth_consumer`, `$key_auth_credential`, `$key_auth_custom_id`:
/// stored in the request's variable slots so that they survive internal
/// redirects and reach the log phase. All three describe this consumer: a
/// value it lacks is stored as not found, so none is left over from another
/// consumer an earlier location chose. The strings live in the registry,
/// which outlives every request of its configuration.
fn set_variables(
    r: &mut ngx_http_request_t,
    main: &KeyAuthMainConf,
    consumer: &Consumer,
    credential: Option<&Credential>,
) {
    let values = [
        (&main.var_consumer, Some(consumer.name)),
        (&main.var_credential, credential.and_then(|c| c.id)),
        (&main.var_custom_id, consumer.custom_id),
    ];
    for (var, value) in values {
        match (var, value) {
            (Some(var), Some(value)) => variables::store(r, var, str_of(value)),
            (Some(var), None) => variables::store_not_found(r, var),
            (None, _) => {}
        }
    }
}

/// How counting a request went.
enum Count {
    Decided(Decision),
    /// The store is counting it: the request waits (`NGX_AGAIN`) and runs
    /// again when Redis answered or the store gave up.
    Waiting,
    /// The zone is full.
    ZoneFull,
    /// Redis could not count it and `on_error=deny`: 503.
    StoreFailed,
    /// Redis could not count it and `on_error=allow`: let in uncounted.
    Uncounted,
}

/// Step 5's count: in Redis with `key_auth_quota_store` (one round trip,
/// the request waiting meanwhile; `on_error` when Redis fails), else in
/// the shared zone.
#[inline(always)]
fn count(
    r: &mut ngx_http_request_t,
    main: &KeyAuthMainConf,
    consumer: &Consumer,
    limit: &super::consumers::Limit,
    passage: &mut Passage,
) -> Count {
    match main.store.as_deref() {
        Some(store) => count_in_store(r, main, store, consumer, limit, passage),
        None => count_in_zone(main, consumer, limit),
    }
}

/// [`count`] with `key_auth_quota_store`.
#[inline(never)]
fn count_in_store(
    r: &mut ngx_http_request_t,
    main: &KeyAuthMainConf,
    store: &crate::redis::client::Store,
    consumer: &Consumer,
    limit: &super::consumers::Limit,
    passage: &mut Passage,
) -> Count {
    use crate::redis::client::Outcome;
    use crate::redis::spec::OnError;
    let outcome = match passage.quota_wait {
        Some(ticket) => match store.take(ticket) {
            None => return Count::Waiting,
            Some(outcome) => {
                passage.quota_wait = None;
                outcome
            }
        },
        None => {
            // The consumer's name, never a key: every node counts the
            // consumer together, and Redis never holds a credential.
            let mut key = Vec::with_capacity(store.spec.prefix.len() + consumer.name.len());
            key.extend_from_slice(&store.spec.prefix);
            key.extend_from_slice(consumer.name.as_bytes());
            match store.count(r, &key, limit.window_ms) {
                Some(ticket) => {
                    passage.quota_wait = Some(ticket);
                    return Count::Waiting;
                }
                None => Outcome::Failed,
            }
        }
    };
    match (outcome, store.spec.on_error) {
        (Outcome::Counted { count, ttl_ms }, _) => {
            Count::Decided(super::quota::shared_decision(limit, count, ttl_ms))
        }
        (Outcome::Failed, OnError::Deny) => Count::StoreFailed,
        (Outcome::Failed, OnError::Allow) => Count::Uncounted,
        (Outcome::Failed, OnError::Local) => count_in_zone(main, consumer, limit),
    }
}

/// Counts the request in the shared zone.
#[inline]
fn count_in_zone(
    main: &KeyAuthMainConf,
    consumer: &Consumer,
    limit: &super::consumers::Limit,
) -> Count {
    if main.zone.is_null() {
        return Count::ZoneFull; // refused at configuration time; fail closed anyway
    }
    // SAFETY: ngx_current_msec is nginx's cached monotonic clock, updated
    // by the event loop of this (single-threaded) worker.
    let now = unsafe { ngx_current_msec } as u64;
    // SAFETY: the zone belongs to the running cycle; its data is the header
    // written by init_zone; the lock is held while the slots are used.
    unsafe {
        let _lock = shm::Locked::new(main.zone);
        let header = (*main.zone).data.cast::<ZoneHeader>();
        if header.is_null() {
            return Count::ZoneFull;
        }
        match ZoneHeader::table(header).count(&consumer.counter_key, limit, now) {
            Some(decision) => Count::Decided(decision),
            None => Count::ZoneFull,
        }
    }
}

fn rate_limit_headers(
    r: &mut ngx_http_request_t,
    main: &KeyAuthMainConf,
    d: &Decision,
) -> Result<(), crate::nginx::NgxError> {
    const NAMES: [&[u8]; 3] = [
        b"X-RateLimit-Limit",
        b"X-RateLimit-Remaining",
        b"X-RateLimit-Reset",
    ];
    use headers::Decimal::{Number, Text};
    // The limit's text, made with the configuration, which outlives the
    // request.
    let limit = main.limit_texts.get(d.limit).map_or(Number(d.limit), Text);
    headers::push_response_decimals(
        r,
        &NAMES,
        [limit, Number(d.remaining), Number(d.reset_secs)],
    )
}

fn upstream_headers(
    r: &mut ngx_http_request_t,
    consumer: &Consumer,
    credential: Option<&Credential>,
) -> Result<(), crate::nginx::NgxError> {
    // The values live in the consumer registry, which outlives every request
    // of its configuration: no copy.
    headers_in::push_prepared(r, &CONSUMER_USERNAME, consumer.name.as_bytes())?;
    if let Some(id) = credential.and_then(|c| c.id) {
        headers_in::push_prepared(r, &CREDENTIAL_IDENTIFIER, id.as_bytes())?;
    }
    if let Some(id) = consumer.custom_id {
        headers_in::push_prepared(r, &CONSUMER_CUSTOM_ID, id.as_bytes())?;
    }
    Ok(())
}
