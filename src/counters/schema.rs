//! What is counted: the kinds of series, the slots of each, and how they
//! render. Pure data, read by the hooks (slot numbers), the zone table
//! (sizes) and the renderers (names, help, labels).
//!
//! A series is one label set of one kind (e.g. auth_request for the auth
//! URI `/auth`); it holds [`SLOTS`] 64-bit values. Each kind's
//! [`Family`]s say which slots form which metric.

/// Values per series.
pub const SLOTS: usize = 32;

/// Upper bounds (milliseconds) of the latency histograms' buckets; one more
/// bucket holds what is slower, and one slot the sum of milliseconds.
pub const BUCKETS_MS: [u64; 12] = [1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];
/// Slots a histogram takes: the buckets, the overflow bucket, the sum.
pub const HISTOGRAM_SLOTS: usize = BUCKETS_MS.len() + 2;

/// The bucket slot (relative to the histogram's first) for `ms`.
pub fn bucket_of(ms: u64) -> usize {
    BUCKETS_MS
        .iter()
        .position(|&le| ms <= le)
        .unwrap_or(BUCKETS_MS.len())
}

/// The kinds of series. The discriminant is what the zone stores (0 marks
/// a free entry), so values are never reused for something else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Kind {
    AuthRequest = 1,
    AuthHttp = 2,
    KeyAuth = 3,
    KeyAuthConsumer = 4,
    Ntlm = 5,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::AuthRequest,
        Kind::AuthHttp,
        Kind::KeyAuth,
        Kind::KeyAuthConsumer,
        Kind::Ntlm,
    ];

    pub fn from_stored(v: u32) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| *k as u32 == v)
    }

    pub fn schema(self) -> &'static KindSchema {
        match self {
            Kind::AuthRequest => &AUTH_REQUEST,
            Kind::AuthHttp => &AUTH_HTTP,
            Kind::KeyAuth => &KEY_AUTH,
            Kind::KeyAuthConsumer => &KEY_AUTH_CONSUMER,
            Kind::Ntlm => &NTLM,
        }
    }
}

/// auth_request, per auth URI.
pub mod auth_request {
    pub const ALLOW: usize = 0;
    pub const UNAUTHORIZED: usize = 1;
    pub const FORBIDDEN: usize = 2;
    pub const ERROR: usize = 3;
    /// Reserved for the decision cache: hits, misses, stores, evictions.
    pub const CACHE_HIT: usize = 4;
    pub const CACHE_MISS: usize = 5;
    pub const CACHE_STORE: usize = 6;
    pub const CACHE_EVICTION: usize = 7;
    /// The subrequest latency histogram (see [`super::HISTOGRAM_SLOTS`]).
    pub const LATENCY: usize = 8;
    /// `auth_request_pass_status` passed the service's status on.
    pub const PASSED: usize = 22;
}

/// auth_http, per service URI.
pub mod auth_http {
    pub const SUPERUSER: usize = 0;
    pub const ALLOW: usize = 1;
    pub const DENY: usize = 2;
    pub const NOMATCH: usize = 3;
    pub const ERROR: usize = 4;
    pub const RETRIES: usize = 5;
    pub const EXHAUSTED: usize = 6;
    pub const TRUNCATED: usize = 7;
    pub const ENCODED: usize = 8;
    pub const LATENCY: usize = 9;
    /// After the latency histogram's slots.
    pub const AUTHENTICATED: usize = 23;
    pub const UNAUTHENTICATED: usize = 24;
    /// The decision cache (`auth_http_cache`), per service: as
    /// auth_request's.
    pub const CACHE_HIT: usize = 25;
    pub const CACHE_MISS: usize = 26;
    pub const CACHE_STORE: usize = 27;
    pub const CACHE_EVICTION: usize = 28;
}

/// key_auth, one series for the whole `http` block.
pub mod key_auth {
    pub const ALLOWED: usize = 0;
    pub const MISSING: usize = 1;
    pub const INVALID: usize = 2;
    pub const ANONYMOUS: usize = 3;
    pub const OVER_QUOTA: usize = 4;
    pub const ZONE_FULL: usize = 5;
    pub const ERROR: usize = 6;
}

/// key_auth, per consumer (opt in).
pub mod key_auth_consumer {
    pub const REQUESTS: usize = 0;
    pub const OVER_QUOTA: usize = 1;
}

/// ntlm, per upstream.
pub mod ntlm {
    pub const CREATED: usize = 0;
    /// Gauge.
    pub const BOUND: usize = 1;
    /// Gauge.
    pub const IDLE: usize = 2;
    pub const REQUESTS: usize = 3;
    pub const CLOSE_CLIENT: usize = 4;
    pub const CLOSE_UPSTREAM: usize = 5;
    pub const CLOSE_TIMEOUT: usize = 6;
    pub const CLOSE_EVICTED: usize = 7;
    pub const CLOSE_ERROR: usize = 8;
    pub const HTTP2_REFUSED: usize = 9;
    /// Closed after ntlm_max_requests / ntlm_max_time.
    pub const CLOSE_LIMIT: usize = 10;
}

/// Prometheus metric types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
}

impl MetricType {
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
        }
    }
}

/// Which slots a family reads.
#[derive(Clone, Copy, Debug)]
pub enum Samples {
    /// One value.
    Single(usize),
    /// One value per value of a second label.
    Labeled {
        label: &'static str,
        values: &'static [(&'static str, usize)],
    },
    /// A latency histogram starting at this slot.
    Histogram(usize),
}

/// One metric family of a kind.
#[derive(Clone, Copy, Debug)]
pub struct Family {
    /// The Prometheus name (counters end in `_total`).
    pub name: &'static str,
    /// The key in the JSON object of a series.
    pub json: &'static str,
    pub metric_type: MetricType,
    pub help: &'static str,
    pub samples: Samples,
}

/// How a kind renders.
#[derive(Debug)]
pub struct KindSchema {
    /// The JSON section (top-level key) holding this kind's series.
    pub section: &'static str,
    /// The label naming a series (`uri`, `service`, …); `None`: the kind
    /// has one series without a label.
    pub key_label: Option<&'static str>,
    pub families: &'static [Family],
}

use MetricType::{Counter, Gauge, Histogram};

pub static AUTH_REQUEST: KindSchema = KindSchema {
    section: "auth_request",
    key_label: Some("uri"),
    families: &[
        Family {
            name: "authgate_auth_request_decisions_total",
            json: "decisions",
            metric_type: Counter,
            help: "auth_request decisions by outcome (error: the service answered something else, 500)",
            samples: Samples::Labeled {
                label: "decision",
                values: &[
                    ("allow", auth_request::ALLOW),
                    ("unauthorized", auth_request::UNAUTHORIZED),
                    ("forbidden", auth_request::FORBIDDEN),
                    ("passed", auth_request::PASSED),
                    ("error", auth_request::ERROR),
                ],
            },
        },
        Family {
            name: "authgate_auth_request_cache_total",
            json: "cache",
            metric_type: Counter,
            help: "auth_request decision cache events",
            samples: Samples::Labeled {
                label: "event",
                values: &[
                    ("hit", auth_request::CACHE_HIT),
                    ("miss", auth_request::CACHE_MISS),
                    ("store", auth_request::CACHE_STORE),
                    ("eviction", auth_request::CACHE_EVICTION),
                ],
            },
        },
        Family {
            name: "authgate_auth_request_duration_seconds",
            json: "duration_ms",
            metric_type: Histogram,
            help: "auth_request subrequest latency",
            samples: Samples::Histogram(auth_request::LATENCY),
        },
    ],
};

pub static AUTH_HTTP: KindSchema = KindSchema {
    section: "auth_http",
    key_label: Some("service"),
    families: &[
        Family {
            name: "authgate_auth_http_results_total",
            json: "results",
            metric_type: Counter,
            help: "auth_http results by the service that decided (error: unreachable after retries, 503)",
            samples: Samples::Labeled {
                label: "result",
                values: &[
                    ("authenticated", auth_http::AUTHENTICATED),
                    ("unauthenticated", auth_http::UNAUTHENTICATED),
                    ("superuser", auth_http::SUPERUSER),
                    ("allow", auth_http::ALLOW),
                    ("deny", auth_http::DENY),
                    ("nomatch", auth_http::NOMATCH),
                    ("error", auth_http::ERROR),
                ],
            },
        },
        Family {
            name: "authgate_auth_http_retries_total",
            json: "retries",
            metric_type: Counter,
            help: "auth_http requests to the service retried after no answer",
            samples: Samples::Single(auth_http::RETRIES),
        },
        Family {
            name: "authgate_auth_http_exhausted_total",
            json: "exhausted",
            metric_type: Counter,
            help: "auth_http questions given up after the last attempt",
            samples: Samples::Single(auth_http::EXHAUSTED),
        },
        Family {
            name: "authgate_auth_http_bad_answers_total",
            json: "bad_answers",
            metric_type: Counter,
            help: "auth_http answers taken as no answer",
            samples: Samples::Labeled {
                label: "reason",
                values: &[
                    ("truncated", auth_http::TRUNCATED),
                    ("encoded", auth_http::ENCODED),
                ],
            },
        },
        Family {
            name: "authgate_auth_http_cache_total",
            json: "cache",
            metric_type: Counter,
            help: "auth_http decision cache events, per service",
            samples: Samples::Labeled {
                label: "event",
                values: &[
                    ("hit", auth_http::CACHE_HIT),
                    ("miss", auth_http::CACHE_MISS),
                    ("store", auth_http::CACHE_STORE),
                    ("eviction", auth_http::CACHE_EVICTION),
                ],
            },
        },
        Family {
            name: "authgate_auth_http_duration_seconds",
            json: "duration_ms",
            metric_type: Histogram,
            help: "auth_http subrequest latency, per attempt",
            samples: Samples::Histogram(auth_http::LATENCY),
        },
    ],
};

pub static KEY_AUTH: KindSchema = KindSchema {
    section: "key_auth",
    key_label: None,
    families: &[Family {
        name: "authgate_key_auth_requests_total",
        json: "requests",
        metric_type: Counter,
        help: "key_auth decisions by outcome",
        samples: Samples::Labeled {
            label: "outcome",
            values: &[
                ("allowed", key_auth::ALLOWED),
                ("missing", key_auth::MISSING),
                ("invalid", key_auth::INVALID),
                ("anonymous", key_auth::ANONYMOUS),
                ("over_quota", key_auth::OVER_QUOTA),
                ("zone_full", key_auth::ZONE_FULL),
                ("error", key_auth::ERROR),
            ],
        },
    }],
};

pub static KEY_AUTH_CONSUMER: KindSchema = KindSchema {
    section: "key_auth_consumers",
    key_label: Some("consumer"),
    families: &[
        Family {
            name: "authgate_key_auth_consumer_requests_total",
            json: "requests",
            metric_type: Counter,
            help: "key_auth requests identified as the consumer (allowed or over quota)",
            samples: Samples::Single(key_auth_consumer::REQUESTS),
        },
        Family {
            name: "authgate_key_auth_consumer_over_quota_total",
            json: "over_quota",
            metric_type: Counter,
            help: "key_auth requests of the consumer refused by its quota",
            samples: Samples::Single(key_auth_consumer::OVER_QUOTA),
        },
    ],
};

pub static NTLM: KindSchema = KindSchema {
    section: "ntlm",
    key_label: Some("upstream"),
    families: &[
        Family {
            name: "authgate_ntlm_bindings_total",
            json: "bindings",
            metric_type: Counter,
            help: "ntlm client connections bound to an upstream connection",
            samples: Samples::Single(ntlm::CREATED),
        },
        Family {
            name: "authgate_ntlm_bound_connections",
            json: "bound",
            metric_type: Gauge,
            help: "ntlm upstream connections bound to a client now",
            samples: Samples::Single(ntlm::BOUND),
        },
        Family {
            name: "authgate_ntlm_idle_bound_connections",
            json: "idle",
            metric_type: Gauge,
            help: "ntlm bound upstream connections idle now (between the client's requests)",
            samples: Samples::Single(ntlm::IDLE),
        },
        Family {
            name: "authgate_ntlm_bound_requests_total",
            json: "bound_requests",
            metric_type: Counter,
            help: "ntlm requests sent over a connection bound earlier",
            samples: Samples::Single(ntlm::REQUESTS),
        },
        Family {
            name: "authgate_ntlm_closes_total",
            json: "closes",
            metric_type: Counter,
            help: "ntlm bound upstream connections closed, by reason",
            samples: Samples::Labeled {
                label: "reason",
                values: &[
                    ("client_closed", ntlm::CLOSE_CLIENT),
                    ("upstream_closed", ntlm::CLOSE_UPSTREAM),
                    ("timeout", ntlm::CLOSE_TIMEOUT),
                    ("evicted", ntlm::CLOSE_EVICTED),
                    ("limit", ntlm::CLOSE_LIMIT),
                    ("error", ntlm::CLOSE_ERROR),
                ],
            },
        },
        Family {
            name: "authgate_ntlm_http2_refused_total",
            json: "http2_refused",
            metric_type: Counter,
            help: "ntlm requests refused because they came over HTTP/2",
            samples: Samples::Single(ntlm::HTTP2_REFUSED),
        },
    ],
};

/// The process-wide metrics, from the zone header.
pub static PROCESS: &[(&str, &str, MetricType, &str)] = &[
    (
        "authgate_status_workers",
        "workers",
        Gauge,
        "worker_processes of the running configuration",
    ),
    (
        "authgate_status_reloads_total",
        "reloads",
        Counter,
        "configurations that took over the status zone (nginx -s reload with the zone kept)",
    ),
    (
        "authgate_status_zone_series",
        "series",
        Gauge,
        "series stored in the status zone",
    ),
    (
        "authgate_status_zone_series_capacity",
        "capacity",
        Gauge,
        "series the status zone can hold",
    ),
    (
        "authgate_status_zone_series_dropped",
        "dropped",
        Gauge,
        "series of the running configuration that did not fit in the zone (not counted)",
    ),
];

/// Every metric name the module exports (histograms with their
/// `_bucket`, `_sum` and `_count` series).
pub fn metric_names() -> impl Iterator<Item = String> {
    let families = Kind::ALL
        .into_iter()
        .flat_map(|k| k.schema().families.iter())
        .flat_map(|f| match f.metric_type {
            Histogram => vec![
                format!("{}_bucket", f.name),
                format!("{}_sum", f.name),
                format!("{}_count", f.name),
            ],
            _ => vec![f.name.to_owned()],
        });
    families.chain(PROCESS.iter().map(|p| p.0.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(1), 0);
        assert_eq!(bucket_of(2), 1);
        assert_eq!(bucket_of(10000), 11);
        assert_eq!(bucket_of(10001), 12);
    }

    #[test]
    fn slots_fit_and_do_not_overlap() {
        for kind in Kind::ALL {
            let mut used = [false; SLOTS];
            for f in kind.schema().families {
                let slots: Vec<usize> = match f.samples {
                    Samples::Single(s) => vec![s],
                    Samples::Labeled { values, .. } => values.iter().map(|v| v.1).collect(),
                    Samples::Histogram(s) => (s..s + HISTOGRAM_SLOTS).collect(),
                };
                for s in slots {
                    assert!(s < SLOTS, "{kind:?} {}", f.name);
                    assert!(!used[s], "{kind:?} {} slot {s} twice", f.name);
                    used[s] = true;
                }
                match f.metric_type {
                    MetricType::Counter => assert!(f.name.ends_with("_total"), "{}", f.name),
                    _ => assert!(!f.name.ends_with("_total"), "{}", f.name),
                }
            }
            assert_eq!(Kind::from_stored(kind as u32), Some(kind));
        }
        assert_eq!(Kind::from_stored(0), None);
    }
}
