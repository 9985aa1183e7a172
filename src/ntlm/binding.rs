//! The binding rules: which upstream connection a request gets, and what
//! happens to that connection when the request is done with it. Pure logic,
//! decided from plain facts the peer hooks collect.
//!
//! A client connection has at most one binding per upstream block; the
//! binding owns at most one upstream connection, which is either parked idle
//! (in the upstream's LRU list) or in use by one request of that client.

/// Where a client connection's binding stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindingState {
    /// Never bound, or the bound connection is gone (closed by either side,
    /// timed out, evicted). Requests go through the balancer again.
    Unbound,
    /// The bound upstream connection is parked, waiting for this client.
    Idle,
    /// A request of this client is using the bound connection right now.
    InUse,
}

/// Which connection one attempt of a request was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// The client's own bound connection.
    Bound,
    /// Whatever the wrapped balancer chain (balancer, keepalive) gave.
    Balancer,
}

/// The decision of `get`.
pub fn on_get(binding: Option<BindingState>) -> Attempt {
    match binding {
        Some(BindingState::Idle) => Attempt::Bound,
        // No binding, a dropped one, or the bound connection is busy with
        // another request of the same client (a subrequest): a connection
        // from the balancer, which `on_free` never lets become anybody
        // else's authenticated connection.
        _ => Attempt::Balancer,
    }
}

/// What `free` knows about the attempt that just ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FreeFacts {
    pub attempt: Attempt,
    /// The request carries an `Authorization` whose scheme is NTLM or
    /// Negotiate, well-formed or not (client-sent or set by `proxy_set_header`).
    pub credentials: bool,
    /// The client speaks HTTP/2 or HTTP/3: its requests are concurrent
    /// streams of one connection, which a connection binding cannot follow.
    pub multiplexed: bool,
    /// The client's binding, when it has one.
    pub binding: Option<BindingState>,
    /// The upstream allowed keep-alive, the request body was fully sent,
    /// nothing failed, the worker is not exiting.
    pub reusable: bool,
    /// The connection has served its share ([`SessionLimits::spent`]): it
    /// is not kept for another request.
    pub spent: bool,
}

/// How long one bound connection may serve: `ntlm_max_requests` /
/// `ntlm_max_time`, by default the upstream's `keepalive_requests` /
/// `keepalive_time`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    pub max_requests: u64,
    pub max_time_ms: u64,
}

impl SessionLimits {
    /// nginx's defaults of `keepalive_requests` and `keepalive_time`.
    pub const NGINX_KEEPALIVE_DEFAULTS: Self = Self {
        max_requests: 1000,
        max_time_ms: 3_600_000,
    };

    /// Whether a connection that has carried `requests` requests (this one
    /// included) and was opened `age_ms` ago must close instead of waiting
    /// for another request: the same test as nginx's upstream keepalive.
    pub fn spent(&self, requests: u64, age_ms: u64) -> bool {
        requests >= self.max_requests || age_ms > self.max_time_ms
    }
}

/// The decision of `free`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreeAction {
    /// Park the connection as the client's bound connection (bind it if it
    /// was not bound yet).
    Park,
    /// Close the connection; if it was the bound one, the client is unbound.
    Close,
    /// Not ours: hand the connection back to the wrapped chain unchanged
    /// (`keepalive` may pool it), exactly as without `ntlm`.
    PassOn,
}

/// The decision of `free`.
pub fn on_free(f: FreeFacts) -> FreeAction {
    match f.attempt {
        Attempt::Bound if f.reusable && !f.spent => FreeAction::Park,
        Attempt::Bound => FreeAction::Close,
        // A connection that carried credentials may now be authenticated: it
        // is either this client's bound connection or closed, never pooled.
        Attempt::Balancer if f.credentials => {
            let free_to_bind = matches!(f.binding, None | Some(BindingState::Unbound));
            if f.reusable && !f.spent && free_to_bind && !f.multiplexed {
                FreeAction::Park
            } else {
                FreeAction::Close
            }
        }
        Attempt::Balancer => FreeAction::PassOn,
    }
}

/// Why a connection that carried credentials is closed instead of bound,
/// for the `[info]` log line; `None` when it is not such a case.
pub fn not_bound_reason(f: FreeFacts) -> Option<&'static str> {
    if f.attempt != Attempt::Balancer || !f.credentials || on_free(f) != FreeAction::Close {
        return None;
    }
    Some(if f.multiplexed {
        "the client uses HTTP/2 or HTTP/3, whose requests are never bound (an NTLM handshake \
         cannot complete: serve this site on a listen without http2, where browsers use \
         HTTP/1.1)"
    } else if f.spent && f.reusable {
        "the upstream connection has served ntlm_max_requests requests or ntlm_max_time \
         (by default the upstream's keepalive_requests, keepalive_time)"
    } else if !f.reusable {
        "the upstream connection cannot be kept (no keep-alive from the upstream: are \
         proxy_http_version 1.1 and proxy_set_header Connection \"\" set?; or the request failed)"
    } else {
        "the client's bound connection is busy with another of its requests"
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL_BINDINGS: [Option<BindingState>; 4] = [
        None,
        Some(BindingState::Unbound),
        Some(BindingState::Idle),
        Some(BindingState::InUse),
    ];

    fn facts(attempt: Attempt) -> FreeFacts {
        FreeFacts {
            attempt,
            credentials: false,
            multiplexed: false,
            binding: None,
            reusable: true,
            spent: false,
        }
    }

    #[test]
    fn limits_as_nginx_keepalive() {
        let l = SessionLimits {
            max_requests: 3,
            max_time_ms: 1000,
        };
        assert!(!l.spent(1, 0));
        assert!(!l.spent(2, 1000));
        assert!(l.spent(3, 0), "the 3rd request is the last");
        assert!(l.spent(1, 1001));
    }

    #[test]
    fn a_spent_connection_is_closed_never_parked_nor_passed_on() {
        for attempt in [Attempt::Bound, Attempt::Balancer] {
            let f = FreeFacts {
                credentials: true,
                spent: true,
                ..facts(attempt)
            };
            assert_eq!(on_free(f), FreeAction::Close, "{attempt:?}");
        }
        let f = FreeFacts {
            credentials: true,
            spent: true,
            ..facts(Attempt::Balancer)
        };
        assert!(not_bound_reason(f).unwrap().contains("ntlm_max_requests"));
        // without credentials the limits are the chain's business
        let f = FreeFacts {
            spent: true,
            ..facts(Attempt::Balancer)
        };
        assert_eq!(on_free(f), FreeAction::PassOn);
    }

    #[test]
    fn only_an_idle_binding_gives_the_bound_connection() {
        assert_eq!(on_get(Some(BindingState::Idle)), Attempt::Bound);
        for b in [None, Some(BindingState::Unbound), Some(BindingState::InUse)] {
            assert_eq!(on_get(b), Attempt::Balancer, "{b:?}");
        }
    }

    #[test]
    fn bound_connection_is_parked_again_or_closed() {
        assert_eq!(on_free(facts(Attempt::Bound)), FreeAction::Park);
        let f = FreeFacts {
            reusable: false,
            ..facts(Attempt::Bound)
        };
        assert_eq!(on_free(f), FreeAction::Close);
    }

    #[test]
    fn credentials_bind_a_reusable_connection_of_an_unbound_client() {
        for binding in [None, Some(BindingState::Unbound)] {
            let f = FreeFacts {
                credentials: true,
                binding,
                ..facts(Attempt::Balancer)
            };
            assert_eq!(on_free(f), FreeAction::Park);
        }
    }

    #[test]
    fn a_connection_that_carried_credentials_is_never_passed_on() {
        for binding in ALL_BINDINGS {
            for reusable in [false, true] {
                for multiplexed in [false, true] {
                    let f = FreeFacts {
                        attempt: Attempt::Balancer,
                        credentials: true,
                        multiplexed,
                        binding,
                        reusable,
                        spent: false,
                    };
                    assert_ne!(on_free(f), FreeAction::PassOn, "{f:?}");
                }
            }
        }
    }

    #[test]
    fn second_connection_of_a_bound_client_is_closed() {
        for binding in [Some(BindingState::Idle), Some(BindingState::InUse)] {
            let f = FreeFacts {
                credentials: true,
                binding,
                ..facts(Attempt::Balancer)
            };
            assert_eq!(on_free(f), FreeAction::Close);
        }
    }

    #[test]
    fn multiplexed_clients_never_bind() {
        let f = FreeFacts {
            credentials: true,
            multiplexed: true,
            ..facts(Attempt::Balancer)
        };
        assert_eq!(on_free(f), FreeAction::Close);
    }

    #[test]
    fn reasons_are_given_only_for_closed_credentialed_connections() {
        let base = FreeFacts {
            credentials: true,
            ..facts(Attempt::Balancer)
        };
        assert_eq!(not_bound_reason(base), None, "bound: no reason");
        assert_eq!(not_bound_reason(facts(Attempt::Balancer)), None);
        assert_eq!(not_bound_reason(facts(Attempt::Bound)), None);
        let h2 = not_bound_reason(FreeFacts {
            multiplexed: true,
            ..base
        });
        assert!(h2.unwrap().contains("HTTP/2"));
        let ka = not_bound_reason(FreeFacts {
            reusable: false,
            ..base
        });
        assert!(ka.unwrap().contains("keep-alive"));
        let busy = not_bound_reason(FreeFacts {
            binding: Some(BindingState::InUse),
            ..base
        });
        assert!(busy.unwrap().contains("busy"));
    }

    #[test]
    fn requests_without_credentials_behave_as_without_ntlm() {
        for binding in ALL_BINDINGS {
            for reusable in [false, true] {
                let f = FreeFacts {
                    binding,
                    reusable,
                    ..facts(Attempt::Balancer)
                };
                assert_eq!(on_free(f), FreeAction::PassOn);
            }
        }
    }
}
