//! What an auth subrequest's status means for the protected request.
//! Pure logic: [`verdict`] is nginx's C `ngx_http_auth_request_module`;
//! [`verdict_with`] adds the opt-in `auth_request_allow_status` and
//! `auth_request_pass_status`.

use super::statuses::StatusSet;

/// The decision for the main request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx: let the request through.
    Allow,
    /// 401: deny, passing on the service's `WWW-Authenticate` challenges.
    Unauthorized,
    /// 403: deny.
    Forbidden,
    /// Anything else (1xx, 3xx, 404, 5xx, a failed subrequest): the service
    /// did not answer the question; fail closed with 500 and log the status.
    Unexpected(usize),
    /// `auth_request_pass_status` lists it: the client gets this status.
    Pass(usize),
    /// A 2xx that `auth_request_allow_status` does not list: fail closed
    /// with 500.
    NotAllowed(usize),
}

/// Maps the auth subrequest's response status to a verdict.
pub fn verdict(status: usize) -> Verdict {
    match status {
        401 => Verdict::Unauthorized,
        403 => Verdict::Forbidden,
        200..=299 => Verdict::Allow,
        other => Verdict::Unexpected(other),
    }
}

/// [`verdict`], narrowed by `allow` (only these 2xx allow) and widened by
/// `pass` (these otherwise unexpected statuses go to the client). With
/// neither, exactly [`verdict`].
pub fn verdict_with(status: usize, allow: Option<&StatusSet>, pass: Option<&StatusSet>) -> Verdict {
    match verdict(status) {
        Verdict::Allow if allow.is_some_and(|a| !a.contains(status)) => Verdict::NotAllowed(status),
        Verdict::Unexpected(s) if pass.is_some_and(|p| p.contains(s)) => Verdict::Pass(s),
        v => v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth_request::statuses::{parse, Purpose};

    #[test]
    fn without_options_verdict_with_is_the_c_module() {
        for status in 0..1000 {
            assert_eq!(verdict_with(status, None, None), verdict(status));
        }
    }

    #[test]
    fn allow_status_narrows_2xx_only() {
        let allow = parse(&[b"200", b"204"], Purpose::Allow).unwrap();
        assert_eq!(verdict_with(200, Some(&allow), None), Verdict::Allow);
        assert_eq!(verdict_with(204, Some(&allow), None), Verdict::Allow);
        assert_eq!(
            verdict_with(202, Some(&allow), None),
            Verdict::NotAllowed(202)
        );
        assert_eq!(
            verdict_with(206, Some(&allow), None),
            Verdict::NotAllowed(206)
        );
        assert_eq!(verdict_with(401, Some(&allow), None), Verdict::Unauthorized);
        assert_eq!(
            verdict_with(302, Some(&allow), None),
            Verdict::Unexpected(302)
        );
    }

    #[test]
    fn pass_status_turns_only_unexpected_statuses() {
        let pass = parse(&[b"302", b"429", b"503"], Purpose::Pass).unwrap();
        assert_eq!(verdict_with(302, None, Some(&pass)), Verdict::Pass(302));
        assert_eq!(verdict_with(429, None, Some(&pass)), Verdict::Pass(429));
        assert_eq!(verdict_with(503, None, Some(&pass)), Verdict::Pass(503));
        assert_eq!(
            verdict_with(301, None, Some(&pass)),
            Verdict::Unexpected(301)
        );
        assert_eq!(verdict_with(0, None, Some(&pass)), Verdict::Unexpected(0));
        assert_eq!(verdict_with(200, None, Some(&pass)), Verdict::Allow);
        assert_eq!(verdict_with(403, None, Some(&pass)), Verdict::Forbidden);
    }

    #[test]
    fn every_2xx_allows() {
        for status in [200, 201, 204, 206, 299] {
            assert_eq!(verdict(status), Verdict::Allow, "{status}");
        }
    }

    #[test]
    fn only_401_and_403_deny() {
        assert_eq!(verdict(401), Verdict::Unauthorized);
        assert_eq!(verdict(403), Verdict::Forbidden);
    }

    #[test]
    fn everything_else_is_unexpected_and_fails_closed() {
        for status in [
            0, 100, 199, 300, 301, 302, 304, 400, 402, 404, 407, 429, 500, 502, 503, 504, 599, 999,
        ] {
            assert_eq!(verdict(status), Verdict::Unexpected(status), "{status}");
        }
    }
}
