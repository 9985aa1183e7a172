//! A Redis client on nginx's event loop, shared by whatever needs Redis
//! (today key_auth's quota store, `key_auth_quota_store`).
//!
//! * [`spec`] — the store's URL and options (pure, fuzzed);
//! * [`resp`] — RESP encoding and decoding (the `redis-protocol` crate)
//!   and the quota script (pure);
//! * [`client`] — the per-worker connection: pipelined commands, timeouts,
//!   back-off, failure episodes, resuming the requests that wait.

pub mod client;
pub mod resp;
pub mod spec;
