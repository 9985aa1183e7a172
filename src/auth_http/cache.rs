//! auth_http's use of the decision cache (`auth_http_cache`): each
//! service's answer is kept under the exact question asked, and a cached
//! answer goes through the same decision as the service's own.
//!
//! The question (the key) is: which service (authentication, superuser,
//! ACL: its URI), the method, the query and body sent (the expanded
//! `params`, with the credentials they carry; the expanded
//! `auth_http_header`s), and the client's
//! `Authorization` and `Cookie` headers, which the subrequest carries too.
//! A service that decides on other client headers must receive them in
//! `params` to be cached safely. Unreachable, truncated and encoded answers
//! are never kept, nor answers whose `Cache-Control`/`X-Accel-Expires`
//! forbid it. Each answer is filed under the client's user name (`%u`)
//! and client id (`%c`) as well, as keyed hashes, so that
//! `auth_cache_purge` can revoke one client's answers at once.

use core::cell::RefCell;

use nginx_sys::{ngx_http_request_t, ngx_str_t};
use ngx::collections::Vec;
use ngx::core::Pool;

use super::conf::AuthHttpConf;
use super::decision::{CachedAnswer, Stage};
use crate::counters::{schema::auth_http as slots, Counter};
use crate::decision_cache::entry::Entry;
use crate::decision_cache::lookup::{self, Flight, Look};
use crate::nginx::headers_in;
use crate::nginx::subrequest::{Method, SubrequestResult};

/// Looks `stage`'s question up (see the module documentation).
pub fn look(
    r: &mut ngx_http_request_t,
    conf: &AuthHttpConf,
    flight: &mut Flight,
    stage: Stage,
    question: (&ngx_str_t, Method, &ngx_str_t, &ngx_str_t, &ngx_str_t),
) -> Look {
    if conf.cache.zone().is_none() {
        return Look::Ask;
    }
    // Out of memory: an empty key, not looked up (BYPASS).
    let key = key(r, stage, question);
    let key = key.as_deref().unwrap_or(&[]);
    let look = lookup::look_key(r, &conf.cache, flight, 0, key);
    // The status zone's cache events, in the series of the service asked
    // about (as auth_request's: a bypass is neither a hit nor a miss).
    let counter = counter(conf, stage);
    match look {
        Look::Hit(_) => counter.inc(slots::CACHE_HIT),
        Look::Ask if flight.asking() => {
            counter.inc(slots::CACHE_MISS);
            if flight.evicted() {
                counter.inc(slots::CACHE_EVICTION);
            }
        }
        Look::Ask | Look::Wait => {}
    }
    look
}

/// The status zone series of `stage`'s service.
fn counter(conf: &AuthHttpConf, stage: Stage) -> Counter {
    super::handler::service(conf, stage).map_or_else(Default::default, |s| s.counter)
}

/// The finished subrequest a cached answer stands for.
pub fn replayed(entry: &Entry<'_>) -> Option<SubrequestResult> {
    let (status, body) = CachedAnswer::from_code(entry.decision)?.replay();
    Some(SubrequestResult {
        done: true,
        status,
        body: ngx_str_t {
            len: body.len(),
            data: body.as_ptr().cast_mut(),
        },
        complete: true,
        ..SubrequestResult::default()
    })
}

/// After an answer: keeps it when it is one (`status` 0: no answer) and
/// `auth_http_cache_valid` has a time for it, filed under the client's
/// user name and client id too (for `auth_cache_purge`); otherwise lets the
/// requests waiting for it ask for themselves.
pub fn remember(
    r: &mut ngx_http_request_t,
    conf: &AuthHttpConf,
    flight: &mut Flight,
    stage: Stage,
    status: usize,
    answer: &SubrequestResult,
) {
    if !flight.asking() {
        return;
    }
    let kept = CachedAnswer::of(stage, status, answer.body.as_bytes());
    let (Some(kept), false) = (kept, answer.request.is_null()) else {
        return lookup::release(&conf.cache, flight);
    };
    // An answer that cannot be filed under its client is not kept: a
    // purge of that client must find every answer it was given.
    let Some((user, client)) = super::handler::identity(r, conf) else {
        return lookup::release(&conf.cache, flight);
    };
    lookup::tag_identity(&conf.cache, flight, &user, &client);
    // SAFETY: the finished subrequest lives in the shared request pool
    // until the main request ends.
    let lifetime = lookup::service_lifetime(unsafe { &*answer.request });
    let none = core::iter::empty::<&[u8]>();
    if lookup::store(
        r,
        &conf.cache,
        flight,
        kept.code(),
        lifetime,
        none.clone(),
        none,
    ) {
        counter(conf, stage).inc(slots::CACHE_STORE);
    }
}

/// The question as key bytes, each part length-prefixed, in the request
/// pool; `None` when the pool is out of memory (then nothing is cached).
fn key(
    r: &ngx_http_request_t,
    stage: Stage,
    (path, method, args, body, extra_headers): (
        &ngx_str_t,
        Method,
        &ngx_str_t,
        &ngx_str_t,
        &ngx_str_t,
    ),
) -> Option<Vec<u8, Pool>> {
    // SAFETY: the live request pool outlives the key's use.
    let out = RefCell::new(Vec::new_in(unsafe { Pool::from_ngx_pool(r.pool) }));
    let part = |bytes: &[u8]| -> Option<()> {
        let mut out = out.borrow_mut();
        out.try_reserve(4 + bytes.len()).ok()?;
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(bytes);
        Some(())
    };
    let stage: &[u8] = match stage {
        Stage::Auth => b"auth",
        Stage::Superuser => b"superuser",
        Stage::Acl => b"acl",
    };
    let method: &[u8] = match method {
        Method::Get => b"GET",
        Method::Post => b"POST",
        Method::Put => b"PUT",
    };
    part(stage)?;
    part(path.as_bytes())?;
    part(method)?;
    part(args.as_bytes())?;
    part(body.as_bytes())?;
    // auth_http_header, expanded: the service sees them
    part(extra_headers.as_bytes())?;
    let failed = RefCell::new(false);
    for name in [&b"Authorization"[..], b"Cookie"] {
        part(name)?;
        headers_in::any_value(r, name, |v| {
            *failed.borrow_mut() |= part(v).is_none();
            false
        });
    }
    (!failed.into_inner()).then(|| out.into_inner())
}
