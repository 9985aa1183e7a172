//! Service answer -> next step (src/auth_http/decision.rs), under a retry
//! policy parsed by src/auth_http/retry.rs: total, and never lets a request
//! through on an answer that does not say so.
//!
//! Input: a flags byte (stage, ACL configured, nomatch, superuser
//! configured), the attempt
//! number, the status (u16, little-endian), the `auth_http_retry` options
//! (space-separated) up to a newline, then the answer body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nginx_authgate::auth_http::decision::{
    json_as_text, next_step, unreachable, NoMatch, Outcome, Policy, Stage, Step,
};
use nginx_authgate::auth_http::retry::{self, RetryPolicy, MAX_DELAY_MS};
use nginx_authgate::key_auth::consumers::parse_time_ms;

fuzz_target!(|data: &[u8]| {
    let [flags, attempt, lo, hi, rest @ ..] = data else {
        return;
    };
    let stage = match (flags & 8 != 0, flags & 1 == 0) {
        (true, _) => Stage::Auth,
        (false, true) => Stage::Superuser,
        (false, false) => Stage::Acl,
    };
    let superuser_configured = flags & 16 != 0;
    let acl_configured = flags & 2 != 0;
    let nomatch = if flags & 4 == 0 {
        NoMatch::Deny
    } else {
        NoMatch::Allow
    };
    let attempt = u32::from(*attempt);
    // Statuses above u16 are not HTTP; 0 (no response) and 1xx..9xx are.
    let status = usize::from(u16::from_le_bytes([*lo, *hi]));
    let (options, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(nl) => (&rest[..nl], &rest[nl + 1..]),
        None => (rest, &b""[..]),
    };
    let words: Vec<&[u8]> = options
        .split(|&b| b == b' ')
        .filter(|w| !w.is_empty())
        .collect();
    let retry = match retry::parse(&words, parse_time_ms) {
        Ok(policy) => {
            assert!(policy.times <= retry::MAX_TIMES);
            assert!(policy.interval_ms > 0 && policy.interval_ms <= MAX_DELAY_MS);
            assert!(policy.backoff.is_finite() && (1.0..=10.0).contains(&policy.backoff));
            let mut last = 0;
            for n in 0..policy.times + 2 {
                match policy.delay_after(n) {
                    Some(ms) => {
                        assert!(n < policy.times);
                        assert!(ms <= MAX_DELAY_MS && ms >= last, "waits never shrink");
                        last = ms;
                    }
                    None => assert!(n >= policy.times),
                }
            }
            policy
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            RetryPolicy::default()
        }
    };
    let policy = Policy {
        superuser_configured,
        acl_configured,
        nomatch,
        retry,
    };

    // answer=json: total, and only an answer that says so allows
    let (json_status, json_body) = json_as_text(stage, status, body);
    match stage {
        Stage::Acl if json_status == 200 && json_body.is_empty() => {
            assert!(status == 204 || status == 200 && body.windows(5).any(|w| w == b"allow"))
        }
        Stage::Acl if json_status == 200 => assert!(json_body == b"ignore" && status == 200),
        Stage::Superuser if json_status == 200 => {
            assert!(status == 200 && body.windows(4).any(|w| w == b"true"))
        }
        Stage::Acl | Stage::Superuser => assert_eq!((json_status, json_body), (403, &b""[..])),
        Stage::Auth => assert_eq!(json_status, status),
    }

    let step = next_step(stage, attempt, status, body, &policy);
    if unreachable(status) {
        assert!(
            matches!(step, Step::RetryAfter(_) | Step::Unavailable),
            "{step:?}"
        );
        assert_eq!(matches!(step, Step::RetryAfter(_)), attempt < retry.times);
        return;
    }
    match step {
        Step::Allow(Outcome::Superuser) => assert!(stage == Stage::Superuser && status == 200),
        Step::Allow(Outcome::Allow) => {
            assert!(stage == Stage::Acl && status == 200 && body != b"ignore")
        }
        Step::Allow(Outcome::Ignore) => {
            assert!(stage != Stage::Auth);
            assert_eq!(nomatch, NoMatch::Allow)
        }
        Step::Allow(Outcome::Authenticated) => {
            assert!(stage == Stage::Auth && status == 200);
            assert!(!superuser_configured && !acl_configured);
        }
        Step::Allow(o) => panic!("allowed with outcome {o:?}"),
        Step::Deny(Outcome::Deny) => assert!(stage == Stage::Acl && status != 200),
        Step::Deny(Outcome::Ignore) => {
            assert!(stage != Stage::Auth);
            assert_eq!(nomatch, NoMatch::Deny)
        }
        Step::Unauthenticated => assert!(stage == Stage::Auth && status != 200),
        Step::AskSuperuser => {
            assert!(stage == Stage::Auth && status == 200 && superuser_configured)
        }
        Step::Deny(o) => panic!("denied with outcome {o:?}"),
        Step::AskAcl => assert!(
            acl_configured
                && match stage {
                    Stage::Superuser => status != 200,
                    Stage::Auth => status == 200 && !superuser_configured,
                    Stage::Acl => false,
                }
        ),
        Step::RetryAfter(_) | Step::Unavailable => panic!("retry on an answer: {status}"),
    }
});
