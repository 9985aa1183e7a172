//! From a service's answer to the next step. Pure logic.
//!
//! The EMQX contract: ask the authentication service (if configured): 200
//! means the credentials are valid, go on; any other answer refuses with 401.
//! Then ask the superuser service (if configured): 200 means
//! superuser, allow; anything else means "not a superuser", go on. Then ask
//! the ACL service: 200 with body `ignore` means no decision
//! (`auth_http_nomatch`), 200 with any other body allows, any other status
//! denies. A service that cannot be reached (502/503/504 from its location,
//! or a subrequest that failed without a status) is retried per the retry
//! policy; when retries run out the client gets 503 — never access.

use super::retry::RetryPolicy;

/// Which question is being asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Stage {
    /// `auth_http_auth`: are these credentials valid?
    Auth,
    #[default]
    Superuser,
    Acl,
}

/// What `auth_http_nomatch` says to do when the ACL service answers `ignore`
/// (or no ACL service is configured).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NoMatch {
    Allow,
    #[default]
    Deny,
}

/// The value of `$auth_http_result`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The authentication service alone decided: valid credentials.
    Authenticated,
    /// The authentication service refused the credentials: 401.
    Unauthenticated,
    Superuser,
    Allow,
    Deny,
    Ignore,
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Authenticated => "authenticated",
            Self::Unauthenticated => "unauthenticated",
            Self::Superuser => "superuser",
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::Ignore => "ignore",
            Self::Error => "error",
        }
    }
}

/// The next step for the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Let the request through.
    Allow(Outcome),
    /// Answer 403.
    Deny(Outcome),
    /// Answer 401 with the Basic challenge.
    Unauthenticated,
    /// Ask the superuser service.
    AskSuperuser,
    /// Ask the ACL service.
    AskAcl,
    /// Wait this many milliseconds, then ask the same service again.
    RetryAfter(u64),
    /// The service stayed unreachable: answer 503.
    Unavailable,
}

/// Whether a status means the service was not reached (as opposed to an
/// answer). 0 is a subrequest that failed before any response.
pub fn unreachable(status: usize) -> bool {
    matches!(status, 0 | 502 | 503 | 504)
}

/// Whether an answer with this `Content-Encoding` value (empty: no such
/// header) is an answer: its body is the service's bytes only when it is
/// not encoded. `gzip`, `br`, `deflate`, … are no answer — an `ignore` that
/// arrives compressed must not read as "allow".
pub fn plain_encoding(content_encoding: &[u8]) -> bool {
    let value = content_encoding.trim_ascii();
    value.is_empty() || value.eq_ignore_ascii_case(b"identity")
}

/// What the rest of the configuration says, for [`next_step`].
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub superuser_configured: bool,
    pub acl_configured: bool,
    pub nomatch: NoMatch,
    pub retry: RetryPolicy,
}

/// Decides the next step after attempt number `attempt` (0-based) of
/// `stage` answered `status` with `body`.
pub fn next_step(stage: Stage, attempt: u32, status: usize, body: &[u8], policy: &Policy) -> Step {
    if unreachable(status) {
        return match policy.retry.delay_after(attempt) {
            Some(ms) => Step::RetryAfter(ms),
            None => Step::Unavailable,
        };
    }
    match stage {
        Stage::Auth if status != 200 => Step::Unauthenticated,
        Stage::Auth if policy.superuser_configured => Step::AskSuperuser,
        Stage::Auth if policy.acl_configured => Step::AskAcl,
        Stage::Auth => Step::Allow(Outcome::Authenticated),
        Stage::Superuser if status == 200 => Step::Allow(Outcome::Superuser),
        Stage::Superuser if policy.acl_configured => Step::AskAcl,
        Stage::Superuser => no_match(policy.nomatch),
        Stage::Acl if status == 200 && body == b"ignore" => no_match(policy.nomatch),
        Stage::Acl if status == 200 => Step::Allow(Outcome::Allow),
        Stage::Acl => Step::Deny(Outcome::Deny),
    }
}

fn no_match(nomatch: NoMatch) -> Step {
    match nomatch {
        NoMatch::Allow => Step::Allow(Outcome::Ignore),
        NoMatch::Deny => Step::Deny(Outcome::Ignore),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(nomatch: NoMatch) -> Policy {
        Policy {
            superuser_configured: true,
            acl_configured: true,
            nomatch,
            retry: RetryPolicy {
                times: 2,
                interval_ms: 100,
                backoff: 2.0,
            },
        }
    }

    #[test]
    fn auth_200_goes_on_to_the_next_configured_question() {
        let both = policy(NoMatch::Deny);
        assert_eq!(
            next_step(Stage::Auth, 0, 200, b"", &both),
            Step::AskSuperuser
        );
        let acl_only = Policy {
            superuser_configured: false,
            ..both
        };
        assert_eq!(next_step(Stage::Auth, 0, 200, b"", &acl_only), Step::AskAcl);
        let auth_only = Policy {
            acl_configured: false,
            ..acl_only
        };
        assert_eq!(
            next_step(Stage::Auth, 0, 200, b"ignore", &auth_only),
            Step::Allow(Outcome::Authenticated)
        );
    }

    #[test]
    fn auth_other_answers_are_401_and_unreachable_is_retried() {
        let p = policy(NoMatch::Allow);
        for status in [201, 204, 301, 400, 401, 403, 404, 500] {
            assert_eq!(
                next_step(Stage::Auth, 0, status, b"", &p),
                Step::Unauthenticated,
                "{status}"
            );
        }
        for status in [0, 502, 503, 504] {
            assert_eq!(
                next_step(Stage::Auth, 1, status, b"", &p),
                Step::RetryAfter(200)
            );
            assert_eq!(
                next_step(Stage::Auth, 2, status, b"", &p),
                Step::Unavailable
            );
        }
    }

    #[test]
    fn superuser_200_allows_without_acl() {
        let p = policy(NoMatch::Deny);
        assert_eq!(
            next_step(Stage::Superuser, 0, 200, b"", &p),
            Step::Allow(Outcome::Superuser)
        );
    }

    #[test]
    fn superuser_other_answers_go_to_acl() {
        let p = policy(NoMatch::Deny);
        for status in [201, 204, 301, 400, 401, 403, 404, 500] {
            assert_eq!(
                next_step(Stage::Superuser, 0, status, b"", &p),
                Step::AskAcl,
                "{status}"
            );
        }
    }

    #[test]
    fn superuser_only_falls_to_nomatch() {
        let p = Policy {
            acl_configured: false,
            ..policy(NoMatch::Allow)
        };
        assert_eq!(
            next_step(Stage::Superuser, 0, 403, b"", &p),
            Step::Allow(Outcome::Ignore)
        );
    }

    #[test]
    fn acl_answers() {
        let deny = policy(NoMatch::Deny);
        let allow = policy(NoMatch::Allow);
        let cases: [(&[u8], &Policy, Step); 5] = [
            (b"", &deny, Step::Allow(Outcome::Allow)),
            (b"allow", &deny, Step::Allow(Outcome::Allow)),
            (b"ignore", &deny, Step::Deny(Outcome::Ignore)),
            (b"ignore", &allow, Step::Allow(Outcome::Ignore)),
            // only the exact body means "no decision"
            (b"ignore\n", &deny, Step::Allow(Outcome::Allow)),
        ];
        for (body, policy, expected) in cases {
            assert_eq!(
                next_step(Stage::Acl, 0, 200, body, policy),
                expected,
                "{body:?}"
            );
        }
        for status in [201, 204, 302, 400, 401, 403, 404, 500] {
            assert_eq!(
                next_step(Stage::Acl, 0, status, b"ignore", &allow),
                Step::Deny(Outcome::Deny),
                "{status}"
            );
        }
    }

    #[test]
    fn unreachable_services_are_retried_then_unavailable() {
        let p = policy(NoMatch::Allow);
        for stage in [Stage::Superuser, Stage::Acl] {
            for status in [0, 502, 503, 504] {
                assert_eq!(next_step(stage, 0, status, b"", &p), Step::RetryAfter(100));
                assert_eq!(next_step(stage, 1, status, b"", &p), Step::RetryAfter(200));
                assert_eq!(next_step(stage, 2, status, b"", &p), Step::Unavailable);
            }
        }
    }

    #[test]
    fn only_identity_answers_are_answers() {
        for plain in [&b""[..], b"identity", b"Identity", b" identity "] {
            assert!(plain_encoding(plain), "{plain:?}");
        }
        for encoded in [
            &b"gzip"[..],
            b"br",
            b"deflate",
            b"x-gzip",
            b"gzip, identity",
            b"identity, gzip",
            b"zstd",
        ] {
            assert!(!plain_encoding(encoded), "{encoded:?}");
        }
    }

    #[test]
    fn outcome_names() {
        let names: Vec<_> = [
            Outcome::Authenticated,
            Outcome::Unauthenticated,
            Outcome::Superuser,
            Outcome::Allow,
            Outcome::Deny,
            Outcome::Ignore,
            Outcome::Error,
        ]
        .iter()
        .map(|o| o.as_str())
        .collect();
        assert_eq!(
            names,
            [
                "authenticated",
                "unauthenticated",
                "superuser",
                "allow",
                "deny",
                "ignore",
                "error"
            ]
        );
    }
}
