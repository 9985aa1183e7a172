//! The status zone: live counters of every mechanism, in shared memory,
//! shown by `authgate_status` as JSON or Prometheus text.
//!
//! * [`schema`] — what is counted: kinds of series, their slots, names;
//! * [`table`] — the zone's layout: series found by kind and label (pure);
//! * [`render`] — JSON and Prometheus exposition (pure);
//! * [`conf`] — `authgate_status_zone`, `authgate_status`, zone init;
//! * [`handler`] — the content handler.
//!
//! How a mechanism counts: at configuration time it asks for a
//! [`Counter`] for its label set ([`register`]: an auth URI, a service, an
//! upstream, a consumer). When the zone is initialised (in the master,
//! before workers fork, and again at each reload) every registered counter
//! is resolved to its series in the zone, found again by kind and label
//! when the zone is kept across a reload, so the counts go on. A request
//! then only does relaxed atomic adds: no lock, no lookup. Without a zone,
//! or when the zone had no room for a series, the counter is inert (one
//! branch) and nothing fails.
//!
//! Decisions are counted once per request and series, across internal
//! redirects ([`count_decision`]; the record of what was counted is kept
//! with the request, see [`crate::nginx::request::kept_or_new`]).

pub mod conf;
pub mod handler;
pub mod render;
pub mod schema;
pub mod table;

use core::ptr::{addr_of, NonNull};

use nginx_sys::{ngx_conf_t, ngx_http_module_t, ngx_http_request_t, ngx_module_t};
use ngx::http::{HttpModule, HttpModuleLocationConf, HttpModuleMainConf};

pub use schema::Kind;

use crate::nginx::request;

/// Type that ties the configuration structures to the module.
pub struct StatusModule;

impl HttpModule for StatusModule {
    fn module() -> &'static ngx_module_t {
        // SAFETY: the module static is only written by nginx while it loads
        // modules, before any handler runs.
        unsafe { &*addr_of!(ngx_http_authgate_status_module) }
    }
}

// SAFETY: the main and location configuration types below are the ones
// create_main_conf/create_loc_conf allocate for this module.
unsafe impl HttpModuleMainConf for StatusModule {
    type MainConf = conf::StatusMainConf;
}
unsafe impl HttpModuleLocationConf for StatusModule {
    type LocationConf = conf::StatusConf;
}

static MODULE_CTX: ngx_http_module_t = ngx_http_module_t {
    preconfiguration: None,
    postconfiguration: Some(conf::postconfiguration),
    create_main_conf: Some(StatusModule::create_main_conf),
    init_main_conf: None,
    create_srv_conf: None,
    merge_srv_conf: None,
    create_loc_conf: Some(StatusModule::create_loc_conf),
    merge_loc_conf: None,
};

/// The nginx module.
#[allow(non_upper_case_globals)]
// By name: the module table nginx generates under its configure (`config`)
// refers to it. Not in unit tests and fuzz targets (see src/lib.rs).
#[cfg_attr(not(any(test, fuzzing)), no_mangle)]
pub static mut ngx_http_authgate_status_module: ngx_module_t = ngx_module_t {
    ctx: addr_of!(MODULE_CTX) as *mut _,
    // nginx only reads the command table through this pointer.
    commands: addr_of!(conf::COMMANDS) as *mut _,
    type_: nginx_sys::NGX_HTTP_MODULE as _,
    ..ngx_module_t::default()
};

/// A mechanism's handle on one series: inert (`Counter::default()`) until
/// the zone is initialised with room for it.
#[derive(Clone, Copy, Default)]
pub struct Counter(Option<NonNull<conf::Registration>>);

impl Counter {
    /// The series in the zone, when counting.
    #[inline]
    fn series(self) -> Option<&'static table::Series> {
        // SAFETY: a registration lives in the configuration pool, as long
        // as every configuration structure holding this counter; its
        // series pointer is set once at zone init (before workers fork) and
        // points into the zone, mapped at the same address in every
        // process for the cycle's life.
        unsafe { self.0?.as_ref().series.as_ref() }
    }

    /// Adds one to `slot` (see [`schema`] for the slots of each kind).
    #[inline]
    pub fn inc(self, slot: usize) {
        if let Some(s) = self.series() {
            s.add(slot, 1);
        }
    }

    /// Takes one from the gauge `slot`.
    #[inline]
    pub fn dec(self, slot: usize) {
        if let Some(s) = self.series() {
            s.sub(slot, 1);
        }
    }

    /// Records a latency of `ms` in the histogram starting at `first`.
    #[inline]
    pub fn observe_ms(self, first: usize, ms: u64) {
        if let Some(s) = self.series() {
            s.add(first + schema::bucket_of(ms), 1);
            s.add(first + schema::HISTOGRAM_SLOTS - 1, ms);
        }
    }

    /// Whether this counter counts (a zone with room for it exists).
    #[inline]
    pub fn active(self) -> bool {
        self.series().is_some()
    }
}

/// The counter of `kind` for `label` in the `http` block being configured
/// (the same one for the same kind and label).
pub fn register(cf: &mut ngx_conf_t, kind: Kind, label: &[u8]) -> Counter {
    match StatusModule::main_conf_mut(cf) {
        Some(main) => main.register(cf, kind, label),
        None => Counter::default(),
    }
}

/// Whether per-consumer key_auth series are wanted
/// (`authgate_status_zone … consumers=on`).
pub fn per_consumer(cf: &ngx_conf_t) -> bool {
    StatusModule::main_conf(cf).is_some_and(|m| m.consumers)
}

/// What a request has had counted: the series of its decisions.
#[derive(Clone, Copy, Default)]
struct Counted {
    series: [usize; 4],
}

/// Counts a decision (`slot` of `counter`) for request `r`, at most once
/// per request and series, however many internal redirects bring it back
/// to a location that decides again. `Some(ms)`: also its latency in the
/// histogram at `latency`. Returns whether it counted.
///
/// Inlined: without a status zone (the counter inert) the caller pays one
/// test, not a call.
#[inline]
pub fn count_decision(
    r: &mut ngx_http_request_t,
    counter: Counter,
    slot: usize,
    latency: Option<(usize, u64)>,
) -> bool {
    match counter.series() {
        Some(series) => count_in(r, series, slot, latency),
        None => false,
    }
}

/// [`count_decision`] with a status zone.
fn count_in(
    r: &mut ngx_http_request_t,
    series: &'static table::Series,
    slot: usize,
    latency: Option<(usize, u64)>,
) -> bool {
    let id = core::ptr::from_ref(series) as usize;
    // SAFETY: a handler's request belongs to a live main request.
    let main = unsafe { &mut *r.main };
    let Some(counted) = request::kept_or_new::<Counted>(main, StatusModule::module()) else {
        return false;
    };
    // One pass: already counted, or the first free place for it (when all
    // are taken, the decision is counted without being remembered).
    for place in &mut counted.series {
        if *place == id {
            return false;
        }
        if *place == 0 {
            *place = id;
            break;
        }
    }
    series.add(slot, 1);
    if let Some((first, ms)) = latency {
        series.add(first + schema::bucket_of(ms), 1);
        series.add(first + schema::HISTOGRAM_SLOTS - 1, ms);
    }
    true
}
