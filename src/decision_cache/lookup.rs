//! The request path: look a question up before asking the service, wait
//! for another request's answer to the same question, store the answer
//! after the verdict.
//!
//! A cache failure (no zone, an unreadable entry, no room) is never a
//! request failure and never an allow: the request is asked about as if
//! there were no cache.

use nginx_sys::{
    ngx_current_msec, ngx_http_request_t, ngx_list_t, ngx_pnalloc, ngx_str_t, ngx_table_elt_t,
    NGX_LOG_INFO, NGX_LOG_WARN,
};

use super::conf::CacheConf;
use super::entry::{self, Entry};
use super::freshness::{self, Lifetime};
use super::table::{Begin, Clock, StoreError, Tags, DATA_CAP};
use super::zone::Zone;
use super::CacheStatus;
use crate::keyed_hash::KeyedHash;
use crate::nginx::{delay, request, variables};

/// How long a request asking the service for an entry holds the other
/// requests with the same question waiting (ms); after it they ask for
/// themselves.
pub const FLIGHT_MS: u64 = 5000;
/// How often a waiting request looks again (ms).
pub const WAIT_STEP_MS: u64 = 10;

/// A request's part in the cache, kept in the mechanism's context.
#[derive(Clone, Copy, Default)]
pub struct Flight {
    // Bytes, not `u128`: request pools align to 8 only.
    id: [u8; 16],
    /// What the entry is purged by ([`Tags`]), as bytes.
    tags: [[u8; 16]; 2],
    state: State,
    wait_until_ms: u64,
    /// Claiming this request's entry pushed another out of the full zone.
    evicted: bool,
    /// The zone's purge count when this request started asking: a purge
    /// after it means the answer is not stored.
    purges: u64,
}

#[derive(Clone, Copy, Default, PartialEq, Eq)]
enum State {
    /// Nothing looked up yet.
    #[default]
    New,
    /// Waiting for another request's answer.
    Waiting,
    /// Asking the service, holding the single-flight marker.
    Owner,
    /// Asking the service, without the marker.
    Asking,
    /// Nothing (more) to do with the cache.
    Done,
}

impl Flight {
    /// The request is paused waiting for another request's answer.
    pub fn waiting(&self) -> bool {
        self.state == State::Waiting
    }

    /// The request asks the service for an answer the cache may keep:
    /// [`store`] or [`release`] are due (without a cache, never: the
    /// caller then skips preparing what to store).
    pub fn asking(&self) -> bool {
        matches!(self.state, State::Owner | State::Asking)
    }

    /// Making room for this request's entry evicted the zone's least
    /// recently used one.
    pub fn evicted(&self) -> bool {
        self.evicted
    }

    fn tags(&self) -> Tags {
        self.tags.map(u128::from_le_bytes)
    }

    fn set_tags(&mut self, tags: Tags) {
        self.tags = tags.map(u128::to_le_bytes);
    }
}

/// What the cache says.
pub enum Look {
    /// The stored decision (its strings live in the request pool).
    Hit(Entry<'static>),
    /// Paused (see [`crate::nginx::delay`]); return `NGX_AGAIN` and look
    /// again when the phase engine calls back.
    Wait,
    /// Ask the service, then [`store`] or [`release`].
    Ask,
}

/// Looks the request's question up, filed under the location's
/// `*_cache_key`. `values` is how many variable values the mechanism
/// stores with an entry (an entry with another count is not used).
pub fn look(
    r: &mut ngx_http_request_t,
    cache: &CacheConf,
    flight: &mut Flight,
    values: usize,
) -> Look {
    let Some(zone) = cache.zone() else {
        // No cache here: nothing to do, nothing more to cost.
        return Look::Ask;
    };
    let key = if flight.state != State::New {
        None
    } else if let Some(index) = cache.key_variable() {
        let value = variables::get_indexed(r, index);
        Some(ngx_str_t {
            len: value.len(),
            data: value.as_ptr().cast_mut(),
        })
    } else {
        cache.key().and_then(|cv| variables::evaluate(r, cv))
    };
    // SAFETY: variable values live in the request pool (or are static).
    let key = key.map(|k| match k.len {
        0 => &[][..],
        len => unsafe { core::slice::from_raw_parts(k.data, len) },
    });
    let key = key.unwrap_or(&[]);
    let mut id_known = false;
    if flight.state == State::New && !key.is_empty() {
        match first_hit(r, cache, Zone(zone), flight, values, key) {
            FirstLook::Hit(entry) => {
                flight.state = State::Done;
                set_status(r, cache, CacheStatus::Hit);
                return Look::Hit(entry);
            }
            FirstLook::NotHit => id_known = true,
            FirstLook::NoZone => {}
        }
    }
    look_id(r, cache, flight, values, key, id_known)
}

/// What [`first_hit`] found.
enum FirstLook {
    Hit(Entry<'static>),
    /// Not a hit it can answer; the question's id is in the flight.
    NotHit,
    /// The zone is not ready.
    NoZone,
}

/// The hit path on its own, the common case kept short: the question's id
/// and one pass under the lock that finds a fresh entry and reads it.
/// Anything else (no entry, expired, inactive, in flight, unreadable, out
/// of memory) is left to [`look_id`], which sees the table again and
/// handles it as it always does.
fn first_hit(
    r: &ngx_http_request_t,
    cache: &CacheConf,
    zone: Zone,
    flight: &mut Flight,
    values: usize,
    key: &[u8],
) -> FirstLook {
    // SAFETY: as in look_key().
    let now = unsafe { ngx_current_msec } as u64;
    let clock = Clock {
        now_ms: now,
        inactive_ms: cache.inactive_ms(),
    };
    let pool = r.pool;
    let found = zone.with(|secret, table| {
        let id = cache.question_id(secret, key);
        flight.id = id.to_le_bytes();
        let i = table.hit(id, clock)?;
        let data = table.data(i);
        let entry = Entry::parse(data)?;
        if let Some(bare) = entry.bare() {
            return Some(bare);
        }
        // SAFETY: as in look_key().
        let copy = unsafe { ngx_pnalloc(pool, data.len().max(1)) }.cast::<u8>();
        if copy.is_null() {
            return None;
        }
        // SAFETY: as in look_key().
        unsafe {
            core::ptr::copy_nonoverlapping(data.as_ptr(), copy, data.len());
            Entry::parse(core::slice::from_raw_parts(copy, data.len()))
        }
    });
    match found {
        None => FirstLook::NoZone,
        Some(Some(entry)) if entry.value_count() == values => FirstLook::Hit(entry),
        Some(_) => FirstLook::NotHit,
    }
}

/// [`look`] with the key given by the mechanism (auth_http's key is the
/// question it asks). An empty key is not looked up (`BYPASS`).
pub fn look_key(
    r: &mut ngx_http_request_t,
    cache: &CacheConf,
    flight: &mut Flight,
    values: usize,
    key: &[u8],
) -> Look {
    look_id(r, cache, flight, values, key, false)
}

/// [`look_key`]; `id_known`: [`first_hit`] has put the question's id in
/// the flight already.
fn look_id(
    r: &mut ngx_http_request_t,
    cache: &CacheConf,
    flight: &mut Flight,
    values: usize,
    key: &[u8],
    id_known: bool,
) -> Look {
    let Some(zone) = cache.zone() else {
        flight.state = State::Done;
        return Look::Ask;
    };
    if flight.state == State::Done {
        return Look::Ask;
    }
    let zone = Zone(zone);
    let first = flight.state == State::New;
    // SAFETY: ngx_current_msec is nginx's cached monotonic clock, read on
    // the worker's own thread.
    let now = unsafe { ngx_current_msec } as u64;
    if first && key.is_empty() {
        set_status(r, cache, CacheStatus::Bypass);
        flight.state = State::Done;
        return Look::Ask;
    }
    let key = first.then_some(key);
    let pool = r.pool;
    let clock = Clock {
        now_ms: now,
        inactive_ms: cache.inactive_ms(),
    };
    let looked = zone.with(|secret, table| {
        if let Some(key) = key {
            if !id_known {
                flight.id = cache.question_id(secret, key).to_le_bytes();
            }
            flight.wait_until_ms = now + FLIGHT_MS;
        }
        // The key's own hash (for purging) only when it is needed: for a
        // new entry now, or for storing the answer later; not on a hit.
        let known_tags = flight.tags();
        let tags = || key.map_or(known_tags, |k| [tag(secret, KEY_TAG, k), 0]);
        let may_wait = now < flight.wait_until_ms;
        let begun = table.begin(
            u128::from_le_bytes(flight.id),
            tags,
            clock,
            FLIGHT_MS,
            may_wait,
            first,
        );
        if !matches!(begun, Begin::Hit(_)) {
            flight.set_tags(tags());
            flight.purges = table.purges();
        }
        match begun {
            Begin::Hit(i) => {
                let data = table.data(i);
                // A bare decision (no challenges, no values) is read here
                // and needs no copy; an unreadable one is seen below.
                if let Some(bare) = Entry::parse(data).and_then(|e| e.bare()) {
                    return Ok((Begin::Hit(i), Some(bare), &[][..]));
                }
                // SAFETY: allocation in the live request pool.
                let copy = unsafe { ngx_pnalloc(pool, data.len().max(1)) }.cast::<u8>();
                if copy.is_null() {
                    return Err(());
                }
                // SAFETY: `copy` has room for `data`; the pool outlives
                // every use of the entry by this request.
                unsafe {
                    core::ptr::copy_nonoverlapping(data.as_ptr(), copy, data.len());
                    Ok((
                        Begin::Hit(i),
                        None,
                        core::slice::from_raw_parts(copy, data.len()),
                    ))
                }
            }
            other => Ok((other, None, &[][..])),
        }
    });
    let Some(Ok((begun, bare, data))) = looked else {
        set_status(r, cache, CacheStatus::Bypass);
        flight.state = State::Done;
        return Look::Ask;
    };
    match begun {
        Begin::Hit(_) => {
            flight.state = State::Done;
            match bare
                .or_else(|| Entry::parse(data))
                .filter(|e| e.value_count() == values)
            {
                Some(entry) => {
                    set_status(r, cache, CacheStatus::Hit);
                    Look::Hit(entry)
                }
                None => {
                    ngx::ngx_log_error!(
                        NGX_LOG_WARN,
                        request::log(r),
                        "auth cache: unreadable entry, asking the service"
                    );
                    set_status(r, cache, CacheStatus::Bypass);
                    Look::Ask
                }
            }
        }
        Begin::Wait => {
            flight.state = State::Waiting;
            delay::pause(r, WAIT_STEP_MS);
            Look::Wait
        }
        Begin::Ask {
            claimed,
            expired,
            evicted,
        } => {
            flight.state = if claimed { State::Owner } else { State::Asking };
            flight.evicted = evicted;
            set_status(
                r,
                cache,
                if expired {
                    CacheStatus::Expired
                } else {
                    CacheStatus::Miss
                },
            );
            Look::Ask
        }
    }
}

/// After the verdict: stores the decision when `code` has a
/// `*_cache_valid` time and the service's headers allow it, for the
/// smaller of the two; otherwise ends the flight (waiters ask for
/// themselves). Returns whether it stored (for the status zone).
pub fn store<'s>(
    r: &ngx_http_request_t,
    cache: &CacheConf,
    flight: &mut Flight,
    code: u16,
    lifetime: Lifetime,
    challenges: impl Iterator<Item = &'s [u8]> + Clone,
    values: impl Iterator<Item = &'s [u8]> + Clone,
) -> bool {
    if !matches!(flight.state, State::Owner | State::Asking) {
        return false;
    }
    let Some(zone) = cache.zone().map(Zone) else {
        return false;
    };
    let seconds = cache
        .valid_seconds(code)
        .map_or(0, |s| lifetime.cap(u64::from(s)));
    if seconds == 0 {
        release(cache, flight);
        return false;
    }
    let mut buf = [0u8; DATA_CAP];
    let Some(len) = entry::encode(&mut buf, code, challenges, values) else {
        ngx::ngx_log_error!(
            NGX_LOG_INFO,
            request::log(r),
            "auth cache: decision larger than {} bytes, not stored",
            DATA_CAP
        );
        release(cache, flight);
        return false;
    };
    // SAFETY: as in look().
    let now = unsafe { ngx_current_msec } as u64;
    let expires = now.saturating_add(seconds.saturating_mul(1000));
    let clock = Clock {
        now_ms: now,
        inactive_ms: cache.inactive_ms(),
    };
    let stored = zone.with(|_, table| {
        table.store_unless_purged(
            flight.purges,
            u128::from_le_bytes(flight.id),
            flight.tags(),
            expires,
            clock,
            &buf[..len],
        )
    });
    flight.state = State::Done;
    let why = match stored {
        Some(Ok(())) => return true,
        Some(Err(StoreError::TooLarge)) => "decision too large",
        Some(Err(StoreError::NoRoom)) => "the zone has no room",
        Some(Err(StoreError::Purged)) => {
            ngx::ngx_log_error!(
                NGX_LOG_INFO,
                request::log(r),
                "auth cache: not stored: a purge ran while it was asked for"
            );
            return false;
        }
        None => "the zone is not ready",
    };
    ngx::ngx_log_error!(
        NGX_LOG_WARN,
        request::log(r),
        "auth cache: not stored: {why}"
    );
    false
}

/// Files the answer this request is asking for under the client's
/// identity instead of the key: `user` and `client` (either may be empty:
/// no such tag), so that `auth_cache_purge` with `Auth-Cache-Username` or
/// `Auth-Cache-Client-Id` finds it. Only their keyed hashes reach the
/// zone. Call it before [`store`], on the miss path only.
pub fn tag_identity(cache: &CacheConf, flight: &mut Flight, user: &[u8], client: &[u8]) {
    let Some(secret) = cache.zone().and_then(|z| Zone(z).secret()) else {
        return;
    };
    flight.set_tags(identity_tags(&secret, user, client));
}

/// The tags of an auth_http answer asked for `user` and `client`.
fn identity_tags(secret: &KeyedHash, user: &[u8], client: &[u8]) -> Tags {
    [tag(secret, USER_TAG, user), tag(secret, CLIENT_TAG, client)]
}

/// The tag of `value` in the role `word` ([`KEY_TAG`], [`USER_TAG`],
/// [`CLIENT_TAG`]): its keyed hash; 0 (no tag) when it is empty. The purge
/// handler hashes the operator's value the same way.
pub fn tag(secret: &KeyedHash, word: &[u8], value: &[u8]) -> u128 {
    if value.is_empty() {
        0
    } else {
        secret.hash(&[word, value])
    }
}

/// The words that keep the tags apart: a key value, a user name and a
/// client id that are spelled alike never match one another.
pub const KEY_TAG: &[u8] = b"key";
pub const USER_TAG: &[u8] = b"user";
pub const CLIENT_TAG: &[u8] = b"client";

/// Ends the request's flight without storing anything.
pub fn release(cache: &CacheConf, flight: &mut Flight) {
    if flight.state == State::Owner {
        if let Some(zone) = cache.zone().map(Zone) {
            zone.with(|_, table| table.release(u128::from_le_bytes(flight.id)));
        }
    }
    flight.state = State::Done;
}

/// Sets `$auth_cache_status`; kept in the main request's variables, so it
/// survives internal redirects and reaches the access log. A static string
/// into the variable's slot, found once per configuration.
fn set_status(r: &mut ngx_http_request_t, cache: &CacheConf, status: CacheStatus) {
    let Some(index) = cache.status_index() else {
        return;
    };
    let s = status.as_str();
    // SAFETY: the main request of a live request.
    let main = unsafe { &mut *r.main };
    // A static string; nginx only reads variable values.
    variables::store_readonly(
        main,
        index,
        ngx_str_t {
            len: s.len(),
            data: s.as_ptr().cast_mut(),
        },
    );
}

/// The lifetime the service's `Cache-Control` and `X-Accel-Expires`
/// headers allow for the answer of the finished subrequest `sr`: those of
/// its upstream (a proxied service; nginx hides `X-Accel-Expires` from the
/// response) and of its own response (`add_header`, `expires`).
pub fn service_lifetime(sr: &ngx_http_request_t) -> Lifetime {
    // SAFETY: ngx_cached_time is nginx's time cache, read on the worker's
    // own thread.
    let now = unsafe { (*nginx_sys::ngx_cached_time).sec } as u64;
    let mut lifetime = Lifetime::Unlimited;
    let mut visit = |h: &ngx_table_elt_t| {
        let (name, value) = (h.key.as_bytes(), h.value.as_bytes());
        if name.eq_ignore_ascii_case(b"Cache-Control") {
            lifetime = lifetime.min(freshness::cache_control(value));
        } else if name.eq_ignore_ascii_case(b"X-Accel-Expires") {
            lifetime = lifetime.min(freshness::x_accel_expires(value, now));
        }
    };
    if !sr.upstream.is_null() {
        // SAFETY: a finished subrequest's upstream lives in the request pool
        // until the main request ends.
        for_each_header(unsafe { &(*sr.upstream).headers_in.headers }, &mut visit);
    }
    for_each_header(&sr.headers_out.headers, &mut visit);
    lifetime
}

/// Calls `f` for every live element of a header list.
fn for_each_header(list: &ngx_list_t, f: &mut impl FnMut(&ngx_table_elt_t)) {
    let mut part: *const nginx_sys::ngx_list_part_t = &list.part;
    if list.nalloc == 0 {
        return;
    }
    while !part.is_null() {
        // SAFETY: the list's parts and their `nelts` elements are live
        // request memory.
        let (elts, n) = unsafe { ((*part).elts.cast::<ngx_table_elt_t>(), (*part).nelts) };
        for i in 0..n {
            // SAFETY: i < nelts.
            let h = unsafe { &*elts.add(i) };
            if h.hash != 0 {
                f(h);
            }
        }
        // SAFETY: as above.
        part = unsafe { (*part).next };
    }
}
