//! What key_auth decided for one request, kept for the request's whole
//! life: across internal redirects (`try_files`, `error_page`, `rewrite …
//! last`, named locations), which clear module contexts, a request keeps
//! its identity, its refusal and its count (see
//! [`crate::nginx::request::kept_or_new`] for where it is kept). Pure: the
//! handler turns these decisions into nginx calls.

use super::respond::Denial;

/// Where a valid key was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Header,
    Query,
    /// The `key_auth_body_field` of a form body.
    Body,
}

/// Who the request is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    /// Index of the consumer in the registry.
    pub consumer: usize,
    /// The key's credential (index in the registry) and where it was found;
    /// `None` for the anonymous consumer.
    pub credential: Option<(usize, Source)>,
}

/// How key_auth refused the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// 401: no key, or an unknown one.
    Unauthorized(Denial),
    /// Over quota (the consumer's `limit_status`), zone full (503), or an
    /// internal failure (500).
    Status(u16),
}

/// The decision so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Verdict {
    /// key_auth has not checked this request yet.
    #[default]
    Unchecked,
    Allowed(Identity),
    Refused(Refusal),
}

/// The record kept for a request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Passage {
    pub verdict: Verdict,
    /// The consumer whose quota this request has been counted against.
    pub counted: Option<usize>,
    /// The location configuration (its address) whose
    /// `key_auth_hide_credentials on` last removed the key's sources from
    /// this request; 0: none yet. Tells the precontent-phase hide that the
    /// access handler already did it here.
    pub hidden_by: usize,
    /// The location configuration (its address) where the key was looked
    /// for; 0: not yet. A later location hides the key under that
    /// location's `key_auth_header` / `key_auth_query` names too, which may
    /// differ from its own.
    pub checked_in: usize,
    /// The quota store (`key_auth_quota_store`) is counting this request:
    /// the access handler waits for this ticket's outcome.
    pub quota_wait: Option<crate::redis::client::Ticket>,
    /// The form body holds the `key_auth_body_field` (once or more): it
    /// is the key's source, which `key_auth_hide_credentials on` removes.
    pub body_field: bool,
    /// The field was removed from the body the upstream gets (once: an
    /// internal redirect does not read or strip the body again).
    pub body_hidden: bool,
}

/// What a `key_auth` location does with a request, given its passage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Look for a key and decide.
    Check,
    /// Refused before: the same refusal, whatever this location says.
    Refuse(Refusal),
    /// Known already: this identity, without looking for a key again (an
    /// earlier location may have hidden it).
    Continue(Identity),
}

impl Passage {
    /// The step for a location whose anonymous consumer is `anonymous_here`.
    ///
    /// A key proved once identifies the request everywhere. The anonymous
    /// consumer is not a proof: it only carries on into a location that
    /// grants the same anonymous consumer; elsewhere the request is checked
    /// afresh (and becomes that location's anonymous consumer or is refused).
    pub fn step(&self, anonymous_here: Option<usize>) -> Step {
        match self.verdict {
            Verdict::Unchecked => Step::Check,
            Verdict::Refused(refusal) => Step::Refuse(refusal),
            Verdict::Allowed(id) if id.credential.is_some() => Step::Continue(id),
            Verdict::Allowed(id) if anonymous_here == Some(id.consumer) => Step::Continue(id),
            Verdict::Allowed(_) => Step::Check,
        }
    }

    /// Whether the request still has to be counted against `consumer`'s
    /// quota (each request counts once for a consumer, however many
    /// locations it passes).
    pub fn needs_count(&self, consumer: usize) -> bool {
        self.counted != Some(consumer)
    }
}

/// Which key sources `key_auth_hide_credentials on` removes, the header
/// and the query argument: the one a valid key came from; both when there
/// was no valid key (anonymous or refused), since a wrong key may be a
/// near-miss of a real one. A body field is removed whenever the body held
/// it ([`Passage::body_field`]); a valid key from the body leaves the
/// header and the argument alone (neither was there: the body is only
/// searched without them).
pub fn hidden_sources(verdict: &Verdict) -> (bool, bool) {
    match verdict {
        Verdict::Allowed(Identity {
            credential: Some((_, Source::Header)),
            ..
        }) => (true, false),
        Verdict::Allowed(Identity {
            credential: Some((_, Source::Query)),
            ..
        }) => (false, true),
        Verdict::Allowed(Identity {
            credential: Some((_, Source::Body)),
            ..
        }) => (false, false),
        _ => (true, true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JACK: Identity = Identity {
        consumer: 0,
        credential: Some((3, Source::Query)),
    };
    const ANON: Identity = Identity {
        consumer: 1,
        credential: None,
    };

    fn with(verdict: Verdict) -> Passage {
        Passage {
            verdict,
            ..Passage::default()
        }
    }

    #[test]
    fn first_location_checks() {
        assert_eq!(Passage::default().step(None), Step::Check);
        assert_eq!(Passage::default().step(Some(1)), Step::Check);
    }

    #[test]
    fn a_refusal_is_final_everywhere() {
        for refusal in [
            Refusal::Unauthorized(Denial::Missing),
            Refusal::Unauthorized(Denial::Invalid),
            Refusal::Status(429),
            Refusal::Status(503),
        ] {
            let p = with(Verdict::Refused(refusal));
            assert_eq!(p.step(None), Step::Refuse(refusal));
            assert_eq!(
                p.step(Some(1)),
                Step::Refuse(refusal),
                "even with an anonymous consumer"
            );
        }
    }

    #[test]
    fn a_key_identifies_everywhere() {
        let p = with(Verdict::Allowed(JACK));
        assert_eq!(p.step(None), Step::Continue(JACK));
        assert_eq!(
            p.step(Some(1)),
            Step::Continue(JACK),
            "not downgraded to anonymous"
        );
    }

    #[test]
    fn anonymous_carries_on_only_where_granted() {
        let p = with(Verdict::Allowed(ANON));
        assert_eq!(p.step(Some(1)), Step::Continue(ANON));
        assert_eq!(p.step(Some(2)), Step::Check, "another anonymous consumer");
        assert_eq!(p.step(None), Step::Check, "no anonymous consumer here");
    }

    #[test]
    fn counted_once_per_consumer() {
        let mut p = with(Verdict::Allowed(JACK));
        assert!(p.needs_count(0));
        p.counted = Some(0);
        assert!(!p.needs_count(0));
        assert!(p.needs_count(1));
    }

    #[test]
    fn hides_the_source_of_a_valid_key_else_both() {
        let header = Identity {
            consumer: 0,
            credential: Some((0, Source::Header)),
        };
        assert_eq!(hidden_sources(&Verdict::Allowed(header)), (true, false));
        assert_eq!(hidden_sources(&Verdict::Allowed(JACK)), (false, true));
        let body = Identity {
            consumer: 0,
            credential: Some((0, Source::Body)),
        };
        assert_eq!(hidden_sources(&Verdict::Allowed(body)), (false, false));
        assert_eq!(hidden_sources(&Verdict::Allowed(ANON)), (true, true));
        assert_eq!(
            hidden_sources(&Verdict::Refused(Refusal::Unauthorized(Denial::Invalid))),
            (true, true)
        );
        assert_eq!(hidden_sources(&Verdict::Unchecked), (true, true));
    }
}
