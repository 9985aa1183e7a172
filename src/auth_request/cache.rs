//! auth_request's use of the decision cache: what a hit replays and what a
//! miss stores (see [`crate::decision_cache`]).
//!
//! Stored: the service's status when it is a decision (2xx, 401, 403) and
//! the whole answer arrived; with it the `WWW-Authenticate` challenges of a
//! 401 in order, and the `auth_request_set` values as evaluated. Never
//! stored: anything that maps to 500 (other statuses, failed, timed-out or
//! refused subrequests), truncated answers, answers whose `Cache-Control`
//! or `X-Accel-Expires` forbid it.

use nginx_sys::{
    ngx_http_request_t, ngx_int_t, ngx_str_t, NGX_ERROR, NGX_HTTP_FORBIDDEN,
    NGX_HTTP_INTERNAL_SERVER_ERROR, NGX_HTTP_UNAUTHORIZED, NGX_OK,
};

use super::conf::{AuthRequestConf, AuthRequestVariable};
use super::verdict::{verdict_with, Verdict};
use crate::counters::schema::auth_request as slots;
use crate::decision_cache::entry::Entry;
use crate::decision_cache::lookup::{self, Flight};
use crate::nginx::subrequest::SubrequestResult;
use crate::nginx::{headers, variables};

/// Answers from a stored decision exactly as `decide()` answered the miss
/// that stored it. Inlined: it is the hit's whole answer, called once.
#[inline]
pub fn answer(
    r: &mut ngx_http_request_t,
    conf: &AuthRequestConf,
    entry: &Entry<'_>,
) -> (Verdict, ngx_int_t) {
    for (assignment, value) in conf.variables().iter().zip(entry.values()) {
        let value = ngx_str_t {
            len: value.len(),
            data: value.as_ptr().cast_mut(),
        };
        // The entry was copied into the request pool by the lookup.
        variables::store(r, &assignment.variable, value);
    }
    let verdict = verdict_of(conf, usize::from(entry.decision));
    let rc = match verdict {
        Verdict::Allow => NGX_OK as ngx_int_t,
        Verdict::Forbidden => NGX_HTTP_FORBIDDEN as ngx_int_t,
        Verdict::Unauthorized => {
            for challenge in entry.challenges() {
                if headers::push_www_authenticate(r, challenge).is_err() {
                    return (verdict, NGX_ERROR as ngx_int_t);
                }
            }
            NGX_HTTP_UNAUTHORIZED as ngx_int_t
        }
        // Never stored (see remember()); a reload may have narrowed
        // auth_request_allow_status since: fail closed as a miss would.
        _ => NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t,
    };
    (verdict, rc)
}

/// The verdict for `status` under this location's settings (the hit
/// re-applies `auth_request_allow_status`, as the miss did).
fn verdict_of(conf: &AuthRequestConf, status: usize) -> Verdict {
    verdict_with(
        status,
        conf.ext.allow_status.as_ref(),
        conf.ext.pass_status.as_ref(),
    )
}

/// After `decide()`: stores the decision if it may be, otherwise lets the
/// requests waiting for it ask for themselves.
pub fn remember(
    r: &mut ngx_http_request_t,
    conf: &AuthRequestConf,
    flight: &mut Flight,
    outcome: &SubrequestResult,
) {
    if !flight.asking() {
        return;
    }
    let status = outcome.status;
    let decision = matches!(
        verdict_of(conf, status),
        Verdict::Allow | Verdict::Unauthorized | Verdict::Forbidden
    );
    if !decision || !outcome.complete || outcome.request.is_null() {
        lookup::release(&conf.cache, flight);
        return;
    }
    // SAFETY: the finished subrequest lives in the shared request pool
    // until the main request ends.
    let sr = unsafe { &*outcome.request };
    let lifetime = lookup::service_lifetime(sr);
    let r_ref: &ngx_http_request_t = r;
    let values = conf.variables().iter().map(|a| stored_bytes(r_ref, a));
    let challenges = headers::www_authenticate_values(sr).filter(|_| status == 401);
    if lookup::store(
        r_ref,
        &conf.cache,
        flight,
        status as u16,
        lifetime,
        challenges,
        values,
    ) {
        conf.counter.inc(slots::CACHE_STORE);
    }
}

/// The value `decide()` stored for an `auth_request_set` variable.
fn stored_bytes<'r>(r: &'r ngx_http_request_t, a: &AuthRequestVariable) -> &'r [u8] {
    match variables::stored(r, &a.variable) {
        // SAFETY: the value lives in the request pool, as long as `r`.
        Some(v) if !v.data.is_null() => unsafe { core::slice::from_raw_parts(v.data, v.len) },
        _ => &[],
    }
}
