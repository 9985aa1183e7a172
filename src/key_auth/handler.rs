//! The access-phase handler: one request's way from "is this location
//! protected?" to allow / 401 / over-quota status.
//!
//! 0. (preaccess phase, [`strip_handler`]) Strip client-sent
//!    `X-Consumer-Username`, `X-Credential-Identifier`, `X-Consumer-Custom-Id`
//!    (always, whatever the access checks decide).
//! 1. Find the key: the header; only when it is absent, the query argument.
//! 2. Look its digest up. Missing or unknown: the anonymous consumer when
//!    configured, else 401 (see [`super::respond`] for the JSON body).
//! 3. Hide the credential from the upstream when asked.
//! 4. Set `$key_auth_*` (so even a refused-by-quota request is logged with
//!    its consumer).
//! 5. Quota: count in the shared zone (once per request, also across
//!    internal redirects); add `X-RateLimit-*`; over the limit → the
//!    consumer's `limit_status`, no upstream request.
//! 6. Tell the upstream who the consumer is.

use core::ptr;

use nginx_sys::{
    ngx_current_msec, ngx_http_request_t, ngx_int_t, ngx_str_t, NGX_DECLINED, NGX_ERROR,
    NGX_HTTP_INTERNAL_SERVER_ERROR, NGX_HTTP_SERVICE_UNAVAILABLE, NGX_LOG_ERR, NGX_OK,
};
use ngx::http::{HttpModuleLocationConf, HttpModuleMainConf};

use super::conf::{KeyAuthConf, KeyAuthMainConf, ZoneHeader};
use super::consumers::{Consumer, Credential};
use super::quota::Decision;
use super::respond::Denial;
use super::KeyAuthModule;
use crate::nginx::decimal::decimal;
use crate::nginx::ffi::guard_status;
use crate::nginx::headers_in::PreparedName;
use crate::nginx::{args, headers, headers_in, request, shm, variables};

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

/// Where the key came from.
enum Found {
    Missing,
    /// The header's value (request memory, not copied).
    Header(ngx_str_t),
    /// The argument's value, percent-decoded.
    Query(Vec<u8>),
}

/// Preaccess-phase entry point: removes client-sent copies of the consumer
/// headers in every request of a `key_auth` location, before any access
/// check runs, so that they are gone even when `satisfy any` lets the
/// request in through `allow` and key_auth itself never runs.
///
/// # Safety
/// Called by nginx's phase engine with a live request.
pub unsafe extern "C" fn strip_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: the phase engine passes a live request.
    let r = unsafe { &mut *r };
    guard_status(request::log(r), || {
        let enabled = KeyAuthModule::location_conf(r).is_some_and(KeyAuthConf::enabled);
        if enabled && ptr::eq(r, r.main) {
            headers_in::remove_any(r, &CONSUMER_HEADERS);
        }
        NGX_DECLINED as ngx_int_t
    })
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
    let (Some(conf), Some(main)) = (KeyAuthModule::location_conf(r), KeyAuthModule::main_conf(r))
    else {
        return NGX_ERROR as ngx_int_t;
    };
    if !conf.enabled() {
        return NGX_DECLINED as ngx_int_t;
    }

    let found = find_key(r, conf);
    let identified = match &found {
        Found::Missing => Err(Denial::Missing),
        Found::Header(key) => main.registry.lookup(key.as_bytes()).ok_or(Denial::Invalid),
        Found::Query(key) => main.registry.lookup(key).ok_or(Denial::Invalid),
    };
    let (consumer, credential): (&Consumer, Option<&Credential>) = match identified {
        Ok((consumer, credential)) => (consumer, Some(credential)),
        Err(denial) => match conf.anonymous() {
            Some(index) => (main.registry.consumer(index), None),
            None => return super::respond::deny(r, denial),
        },
    };

    if conf.hide_credentials() {
        let anonymous = credential.is_none();
        if anonymous || matches!(found, Found::Header(_)) {
            headers_in::remove(r, conf.header());
        }
        if (anonymous || matches!(found, Found::Query(_))) && hide_query(r, conf).is_err() {
            return NGX_ERROR as ngx_int_t;
        }
    }

    // Counted already when this request passed key_auth for the same
    // consumer before an internal redirect (try_files, error_page, named
    // locations): its X-RateLimit-* headers are already on the response.
    let counted = main
        .var_consumer
        .as_ref()
        .and_then(|v| variables::stored(r, v))
        .is_some_and(|v| ptr::eq(v.data, consumer.name.as_ptr()));

    set_variables(r, main, consumer, credential);

    if let (Some(limit), false) = (&consumer.limit, counted) {
        let Some(decision) = count(main, consumer, limit) else {
            ngx::ngx_log_error!(
                NGX_LOG_ERR,
                request::log(r),
                "key_auth zone is full: cannot count the requests of consumer \"{}\"; request \
                 refused (make key_auth_zone larger)",
                consumer.name
            );
            return NGX_HTTP_SERVICE_UNAVAILABLE as ngx_int_t;
        };
        if rate_limit_headers(r, &decision).is_err() {
            return NGX_ERROR as ngx_int_t;
        }
        if !decision.allowed {
            return consumer.over_limit_status() as ngx_int_t;
        }
    }

    if upstream_headers(r, consumer, credential).is_err() {
        return NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t;
    }
    NGX_OK as ngx_int_t
}

/// The header when present (even empty or wrong); otherwise the query
/// argument (percent-decoded).
fn find_key(r: &ngx_http_request_t, conf: &KeyAuthConf) -> Found {
    if let Some(h) = headers_in::find(r, conf.header()) {
        return Found::Header(h.value);
    }
    match args::find(r.args.as_bytes(), conf.query()) {
        Some(raw) => Found::Query(args::decode(raw)),
        None => Found::Missing,
    }
}

/// Removes the key argument from what the upstream will see.
fn hide_query(
    r: &mut ngx_http_request_t,
    conf: &KeyAuthConf,
) -> Result<(), crate::nginx::NgxError> {
    match args::remove(r.args.as_bytes(), conf.query()) {
        Some(rest) => args::set(r, &rest),
        None => Ok(()),
    }
}

fn str_of(s: &str) -> ngx_str_t {
    ngx_str_t {
        len: s.len(),
        data: s.as_ptr().cast_mut(),
    }
}

/// `$key_auth_consumer`, `$key_auth_credential`, `$key_auth_custom_id`:
/// stored in the request's variable slots so that they survive internal
/// redirects and reach the log phase. The strings live in the registry,
/// which outlives every request of its configuration.
fn set_variables(
    r: &mut ngx_http_request_t,
    main: &KeyAuthMainConf,
    consumer: &Consumer,
    credential: Option<&Credential>,
) {
    if let Some(v) = &main.var_consumer {
        variables::store(r, v, str_of(&consumer.name));
    }
    if let (Some(v), Some(id)) = (
        &main.var_credential,
        credential.and_then(|c| c.id.as_deref()),
    ) {
        variables::store(r, v, str_of(id));
    }
    if let (Some(v), Some(id)) = (&main.var_custom_id, consumer.custom_id.as_deref()) {
        variables::store(r, v, str_of(id));
    }
}

/// Counts the request in the shared zone. `None`: the zone is full.
fn count(
    main: &KeyAuthMainConf,
    consumer: &Consumer,
    limit: &super::consumers::Limit,
) -> Option<Decision> {
    if main.zone.is_null() {
        return None; // refused at configuration time; fail closed anyway
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
            return None;
        }
        ZoneHeader::table(header).count(&consumer.counter_key, limit, now)
    }
}

fn rate_limit_headers(
    r: &mut ngx_http_request_t,
    d: &Decision,
) -> Result<(), crate::nginx::NgxError> {
    let mut buf = [0u8; 20];
    headers::push_response(r, b"X-RateLimit-Limit", decimal(d.limit, &mut buf))?;
    headers::push_response(r, b"X-RateLimit-Remaining", decimal(d.remaining, &mut buf))?;
    headers::push_response(r, b"X-RateLimit-Reset", decimal(d.reset_secs, &mut buf))?;
    Ok(())
}

fn upstream_headers(
    r: &mut ngx_http_request_t,
    consumer: &Consumer,
    credential: Option<&Credential>,
) -> Result<(), crate::nginx::NgxError> {
    // The values live in the consumer registry, which outlives every request
    // of its configuration: no copy.
    headers_in::push_prepared(r, &CONSUMER_USERNAME, consumer.name.as_bytes())?;
    if let Some(id) = credential.and_then(|c| c.id.as_deref()) {
        headers_in::push_prepared(r, &CREDENTIAL_IDENTIFIER, id.as_bytes())?;
    }
    if let Some(id) = consumer.custom_id.as_deref() {
        headers_in::push_prepared(r, &CONSUMER_CUSTOM_ID, id.as_bytes())?;
    }
    Ok(())
}
