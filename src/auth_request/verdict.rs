//! What an auth subrequest's status means for the protected request.
//! Pure logic, identical to nginx's C `ngx_http_auth_request_module`.

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

#[cfg(test)]
mod tests {
    use super::*;

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
