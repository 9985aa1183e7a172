//! `auth_http_retry times=N interval=T backoff=F`: the retry schedule.
//! Pure logic.

use std::fmt;

/// The most retries one request may make per service. Every attempt is a
/// subrequest, and nginx allows a request at most 50 of them.
pub const MAX_TIMES: u32 = 10;
/// The longest a single wait may be, in milliseconds (one hour).
pub const MAX_DELAY_MS: u64 = 3_600_000;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub times: u32,
    /// Wait before the first retry, in milliseconds.
    pub interval_ms: u64,
    /// Factor applied to the wait for each further retry.
    pub backoff: f64,
}

impl Default for RetryPolicy {
    /// EMQX's defaults: three retries, 1 s, doubling.
    fn default() -> Self {
        Self {
            times: 3,
            interval_ms: 1000,
            backoff: 2.0,
        }
    }
}

impl RetryPolicy {
    /// How long to wait after failed attempt number `failed` (0 = the first
    /// attempt), or `None` when no retry is left.
    pub fn delay_after(&self, failed: u32) -> Option<u64> {
        if failed >= self.times {
            return None;
        }
        let factor = self.backoff.powi(failed as i32);
        let delay = (self.interval_ms as f64 * factor).round();
        Some(if delay.is_finite() && delay < MAX_DELAY_MS as f64 {
            delay as u64
        } else {
            MAX_DELAY_MS
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryError {
    UnknownOption(String),
    BadTimes(String),
    BadInterval(String),
    BadBackoff(String),
}

impl fmt::Display for RetryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownOption(o) => write!(
                f,
                "unknown option \"{o}\" (expected times=, interval=, backoff=)"
            ),
            Self::BadTimes(v) => write!(
                f,
                "invalid times \"{v}\" (a whole number from 0 to {MAX_TIMES})"
            ),
            Self::BadInterval(v) => write!(
                f,
                "invalid interval \"{v}\" (a time such as 500ms or 1s, above 0, at most 1h)"
            ),
            Self::BadBackoff(v) => write!(f, "invalid backoff \"{v}\" (a number from 1.0 to 10.0)"),
        }
    }
}

/// Parses the directive's arguments. `parse_ms` turns an nginx time value
/// (`500ms`, `1s`, `2m`) into milliseconds (nginx's own parser at
/// configuration time; a simple one in tests).
pub fn parse(
    args: &[&[u8]],
    parse_ms: impl Fn(&[u8]) -> Option<u64>,
) -> Result<RetryPolicy, RetryError> {
    let mut policy = RetryPolicy::default();
    for arg in args {
        let shown = || String::from_utf8_lossy(arg).into_owned();
        let text = std::str::from_utf8(arg).map_err(|_| RetryError::UnknownOption(shown()))?;
        if let Some(v) = text.strip_prefix("times=") {
            policy.times = v
                .parse()
                .ok()
                .filter(|t| *t <= MAX_TIMES)
                .ok_or_else(|| RetryError::BadTimes(v.into()))?;
        } else if let Some(v) = text.strip_prefix("interval=") {
            policy.interval_ms = parse_ms(v.as_bytes())
                .filter(|ms| *ms > 0 && *ms <= MAX_DELAY_MS)
                .ok_or_else(|| RetryError::BadInterval(v.into()))?;
        } else if let Some(v) = text.strip_prefix("backoff=") {
            policy.backoff = v
                .parse::<f64>()
                .ok()
                .filter(|b| b.is_finite() && (1.0..=10.0).contains(b))
                .ok_or_else(|| RetryError::BadBackoff(v.into()))?;
        } else {
            return Err(RetryError::UnknownOption(shown()));
        }
    }
    Ok(policy)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: &[u8]) -> Option<u64> {
        let s = std::str::from_utf8(v).ok()?;
        if let Some(n) = s.strip_suffix("ms") {
            n.parse().ok()
        } else if let Some(n) = s.strip_suffix('s') {
            n.parse::<u64>().ok().map(|n| n * 1000)
        } else if let Some(n) = s.strip_suffix('h') {
            n.parse::<u64>().ok().map(|n| n * 3_600_000)
        } else {
            s.parse::<u64>().ok().map(|n| n * 1000)
        }
    }

    #[test]
    fn schedule_grows_by_backoff_and_stops_after_times() {
        let p = parse(&[b"times=3", b"interval=1s", b"backoff=2.0"], ms).unwrap();
        let delays: Vec<_> = (0..5).map(|n| p.delay_after(n)).collect();
        assert_eq!(delays, [Some(1000), Some(2000), Some(4000), None, None]);
    }

    #[test]
    fn fractional_backoff_and_zero_times() {
        let p = parse(&[b"times=2", b"interval=100ms", b"backoff=1.5"], ms).unwrap();
        assert_eq!(p.delay_after(0), Some(100));
        assert_eq!(p.delay_after(1), Some(150));
        assert_eq!(p.delay_after(2), None);
        let none = parse(&[b"times=0"], ms).unwrap();
        assert_eq!(none.delay_after(0), None);
    }

    #[test]
    fn defaults_are_emqx_defaults() {
        assert_eq!(parse(&[], ms).unwrap(), RetryPolicy::default());
        assert_eq!(RetryPolicy::default().delay_after(2), Some(4000));
    }

    #[test]
    fn delay_is_capped() {
        let p = parse(&[b"times=10", b"interval=1h", b"backoff=10"], ms).unwrap();
        assert_eq!(p.delay_after(9), Some(MAX_DELAY_MS));
    }

    #[test]
    fn rejects_bad_values() {
        assert_eq!(
            parse(&[b"times=-1"], ms),
            Err(RetryError::BadTimes("-1".into()))
        );
        assert_eq!(
            parse(&[b"times=11"], ms),
            Err(RetryError::BadTimes("11".into()))
        );
        assert_eq!(
            parse(&[b"times=x"], ms),
            Err(RetryError::BadTimes("x".into()))
        );
        assert_eq!(
            parse(&[b"interval=0"], ms),
            Err(RetryError::BadInterval("0".into()))
        );
        assert_eq!(
            parse(&[b"interval=2h"], ms),
            Err(RetryError::BadInterval("2h".into()))
        );
        assert_eq!(
            parse(&[b"interval=soon"], ms),
            Err(RetryError::BadInterval("soon".into()))
        );
        assert_eq!(
            parse(&[b"backoff=0.5"], ms),
            Err(RetryError::BadBackoff("0.5".into()))
        );
        assert_eq!(
            parse(&[b"backoff=NaN"], ms),
            Err(RetryError::BadBackoff("NaN".into()))
        );
        assert_eq!(
            parse(&[b"backoff=inf"], ms),
            Err(RetryError::BadBackoff("inf".into()))
        );
        assert_eq!(
            parse(&[b"tries=3"], ms),
            Err(RetryError::UnknownOption("tries=3".into()))
        );
    }
}
