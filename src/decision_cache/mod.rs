//! The decision cache: answers of auth services (`auth_request`,
//! `auth_http`) kept in a shared zone, so that a repeated question is
//! answered in the access phase without a subrequest, exactly as the miss
//! that filled the entry was.
//!
//! * [`freshness`] — how long the service lets an answer live, pure;
//! * [`entry`] — what an entry holds and its byte layout, pure;
//! * [`table`] — buckets, LRU order, single flight, purge, pure;
//! * [`valid`] — `*_cache_valid` times and key checks, pure;
//! * [`zone`] — `auth_cache_zone`, the zone's init, locking;
//! * [`conf`] — the cache settings of a location (directives a mechanism
//!   lists in its own table), the `$auth_cache_status` variable,
//!   `auth_cache_purge`;
//! * [`lookup`] — the request path: look, wait, store.

pub mod conf;
pub mod entry;
pub mod freshness;
pub mod lookup;
pub mod module;
pub mod purge;
pub mod table;
pub mod valid;
pub mod zone;

/// What the cache did for a request; `$auth_cache_status` prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// Answered from the zone, without a subrequest.
    Hit,
    /// No entry: the service was asked (and its answer stored if cacheable).
    Miss,
    /// An entry was there but stale: the service was asked.
    Expired,
    /// The cache could not be used for this request (empty key, an
    /// unreadable entry): the service was asked, nothing stored.
    Bypass,
}

impl CacheStatus {
    /// The variable's value.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "HIT",
            CacheStatus::Miss => "MISS",
            CacheStatus::Expired => "EXPIRED",
            CacheStatus::Bypass => "BYPASS",
        }
    }
}
