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

/// A service's answer as the decision cache keeps it (`auth_http_cache`):
/// exactly what [`next_step`] reads of it, so that a cached answer leads to
/// the step the service's own answer led to. Unreachable answers are never
/// kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CachedAnswer {
    /// The authentication service answered 200.
    Authenticated,
    /// The authentication service answered another status.
    Unauthenticated,
    /// The superuser service answered 200.
    Superuser,
    /// The ACL service answered 200 with another body than `ignore`.
    Allow,
    /// The ACL service (or the superuser service: "not a superuser")
    /// answered another status.
    Deny,
    /// The ACL service answered 200 `ignore`.
    Ignore,
}

impl CachedAnswer {
    const ALL: [(CachedAnswer, &'static str, u16); 6] = [
        (CachedAnswer::Authenticated, "authenticated", 10),
        (CachedAnswer::Unauthenticated, "unauthenticated", 11),
        (CachedAnswer::Superuser, "superuser", 12),
        (CachedAnswer::Allow, "allow", 13),
        (CachedAnswer::Deny, "deny", 14),
        (CachedAnswer::Ignore, "ignore", 15),
    ];

    /// What `stage`'s answer (`status`, `body`) is; `None` when it is no
    /// answer (the service was not reached).
    pub fn of(stage: Stage, status: usize, body: &[u8]) -> Option<Self> {
        if unreachable(status) {
            return None;
        }
        Some(match stage {
            Stage::Auth if status == 200 => CachedAnswer::Authenticated,
            Stage::Auth => CachedAnswer::Unauthenticated,
            Stage::Superuser if status == 200 => CachedAnswer::Superuser,
            Stage::Superuser => CachedAnswer::Deny,
            Stage::Acl if status == 200 && body == b"ignore" => CachedAnswer::Ignore,
            Stage::Acl if status == 200 => CachedAnswer::Allow,
            Stage::Acl => CachedAnswer::Deny,
        })
    }

    /// The code stored in the cache entry and used by the
    /// `auth_http_cache_valid` rules.
    pub fn code(self) -> u16 {
        Self::ALL.iter().find(|a| a.0 == self).map_or(0, |a| a.2)
    }

    /// The stored code back; `None` for anything else.
    pub fn from_code(code: u16) -> Option<Self> {
        Self::ALL.iter().find(|a| a.2 == code).map(|a| a.0)
    }

    /// The rule code of an `auth_http_cache_valid` word (`any`: every
    /// answer).
    pub fn code_of(name: &[u8]) -> Option<u16> {
        if name == b"any" {
            return Some(crate::decision_cache::valid::ANY);
        }
        Self::ALL
            .iter()
            .find(|a| a.1.as_bytes() == name)
            .map(|a| a.2)
    }

    /// A status and body that [`next_step`] reads as this answer.
    pub fn replay(self) -> (usize, &'static [u8]) {
        match self {
            CachedAnswer::Authenticated | CachedAnswer::Superuser | CachedAnswer::Allow => {
                (200, b"")
            }
            CachedAnswer::Ignore => (200, b"ignore"),
            CachedAnswer::Unauthenticated | CachedAnswer::Deny => (403, b""),
        }
    }
}

/// An EMQX 5 answer (`answer=json`) as the EMQX 4 answer it stands for,
/// so that [`next_step`] and the decision cache read both alike. Only for
/// answers (not for an unreachable service, which is retried as always).
///
/// * ACL: `204` is allow; `200` with a JSON object whose `"result"` is
///   `"allow"`, `"deny"` or `"ignore"` says so; **anything else is deny**
///   (another status, a body that is not JSON, no or another `"result"`):
///   EMQX 5 reads such answers as "ignore" (the next authorizer decides);
///   here a malformed answer must not fall through to `auth_http_nomatch
///   allow`.
/// * Superuser: `200` with a JSON object whose `"is_superuser"` is `true`
///   is a superuser; anything else is not.
pub fn json_as_text(stage: Stage, status: usize, body: &[u8]) -> (usize, &'static [u8]) {
    const ALLOW: (usize, &[u8]) = (200, b"");
    const REFUSE: (usize, &[u8]) = (403, b"");
    let object = || {
        serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .filter(serde_json::Value::is_object)
    };
    match stage {
        Stage::Auth => (status, b""),
        Stage::Superuser => match object() {
            Some(v) if status == 200 && v["is_superuser"] == serde_json::Value::Bool(true) => ALLOW,
            _ => REFUSE,
        },
        Stage::Acl if status == 204 => ALLOW,
        Stage::Acl if status == 200 => match object().as_ref().and_then(|v| v["result"].as_str()) {
            Some("allow") => ALLOW,
            Some("ignore") => (200, b"ignore"),
            _ => REFUSE,
        },
        Stage::Acl => REFUSE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emqx5_answers() {
        let acl = |status, body: &[u8]| json_as_text(Stage::Acl, status, body);
        assert_eq!(acl(200, br#"{"result":"allow"}"#), (200, &b""[..]));
        assert_eq!(
            acl(200, br#" {"result": "allow", "x": [1]} "#),
            (200, &b""[..])
        );
        assert_eq!(acl(204, b""), (200, &b""[..]));
        assert_eq!(acl(200, br#"{"result":"ignore"}"#), (200, &b"ignore"[..]));
        for deny in [
            &br#"{"result":"deny"}"#[..],
            br#"{"result":"Allow"}"#,
            br#"{"result":true}"#,
            br#"{"results":"allow"}"#,
            br#"["allow"]"#,
            br#""allow""#,
            b"allow",
            b"ignore",
            b"",
            br#"{"result":"allow""#,
            br#"{"result":"allow"} x"#,
        ] {
            assert_eq!(
                acl(200, deny),
                (403, &b""[..]),
                "{:?}",
                String::from_utf8_lossy(deny)
            );
        }
        for status in [201, 400, 401, 403, 404, 500] {
            assert_eq!(
                acl(status, br#"{"result":"allow"}"#),
                (403, &b""[..]),
                "{status}"
            );
        }
        let su = |status, body: &[u8]| json_as_text(Stage::Superuser, status, body);
        assert_eq!(su(200, br#"{"is_superuser":true}"#), (200, &b""[..]));
        assert_eq!(
            su(200, br#"{"result":"allow","is_superuser":true}"#),
            (200, &b""[..])
        );
        for not in [
            &br#"{"is_superuser":false}"#[..],
            br#"{"is_superuser":"true"}"#,
            b"{}",
            b"",
            b"true",
        ] {
            assert_eq!(su(200, not), (403, &b""[..]));
        }
        assert_eq!(su(204, br#"{"is_superuser":true}"#), (403, &b""[..]));
        // what they stand for decides as the text answers do
        let p = Policy {
            superuser_configured: true,
            acl_configured: true,
            nomatch: NoMatch::Allow,
            retry: RetryPolicy::default(),
        };
        let (status, body) = acl(200, b"garbage");
        assert_eq!(
            next_step(Stage::Acl, 0, status, body, &p),
            Step::Deny(Outcome::Deny)
        );
        let (status, body) = acl(200, br#"{"result":"ignore"}"#);
        assert_eq!(
            next_step(Stage::Acl, 0, status, body, &p),
            Step::Allow(Outcome::Ignore)
        );
    }

    #[test]
    fn a_cached_answer_leads_to_the_same_step() {
        let retry = RetryPolicy::default();
        for stage in [Stage::Auth, Stage::Superuser, Stage::Acl] {
            for (status, body) in [
                (200, &b""[..]),
                (200, b"ignore"),
                (200, b"x"),
                (403, b""),
                (401, b"ignore"),
                (404, b""),
                (500, b""),
                (0, b""),
                (502, b""),
                (503, b""),
                (504, b""),
            ] {
                for nomatch in [NoMatch::Allow, NoMatch::Deny] {
                    for (su, acl) in [(false, false), (true, false), (false, true), (true, true)] {
                        let policy = Policy {
                            superuser_configured: su,
                            acl_configured: acl,
                            nomatch,
                            retry,
                        };
                        let Some(answer) = CachedAnswer::of(stage, status, body) else {
                            assert!(unreachable(status));
                            continue;
                        };
                        assert_eq!(CachedAnswer::from_code(answer.code()), Some(answer));
                        let (s, b) = answer.replay();
                        assert_eq!(
                            next_step(stage, 0, s, b, &policy),
                            next_step(stage, 0, status, body, &policy),
                            "{stage:?} {status} {body:?}"
                        );
                    }
                }
            }
        }
        assert_eq!(CachedAnswer::code_of(b"any"), Some(0));
        assert_eq!(CachedAnswer::code_of(b"allow"), Some(13));
        assert_eq!(CachedAnswer::code_of(b"error"), None);
    }

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
