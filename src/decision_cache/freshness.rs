//! How long the auth service lets its answer be reused: `Cache-Control`
//! and `X-Accel-Expires`, pure.
//!
//! The cache never extends what the service allows. Anything it does not
//! understand shortens the lifetime to "not at all": a cache that stores
//! too little only costs a subrequest, one that stores too much can let a
//! revoked credential in.

/// The longest the service lets the answer be reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// The headers set no limit: the configured `*_cache_valid` time holds.
    Unlimited,
    /// At most this many seconds; 0: never store it.
    AtMost(u64),
}

impl Lifetime {
    /// The lifetime allowed by both `self` and `other`.
    pub fn min(self, other: Lifetime) -> Lifetime {
        match (self, other) {
            (Lifetime::Unlimited, x) | (x, Lifetime::Unlimited) => x,
            (Lifetime::AtMost(a), Lifetime::AtMost(b)) => Lifetime::AtMost(a.min(b)),
        }
    }

    /// Caps the configured time `valid` (seconds).
    pub fn cap(self, valid: u64) -> u64 {
        match self {
            Lifetime::Unlimited => valid,
            Lifetime::AtMost(limit) => valid.min(limit),
        }
    }
}

/// The limit one `Cache-Control` header value sets.
///
/// `no-store`, `no-cache` and `private` (also with a field list) forbid
/// storing; `max-age=N` and `s-maxage=N` each cap the lifetime (both apply:
/// the smaller wins). An unreadable `max-age`/`s-maxage` value forbids
/// storing. Other directives (`public`, `must-revalidate`, extensions)
/// change nothing.
pub fn cache_control(value: &[u8]) -> Lifetime {
    let mut lifetime = Lifetime::Unlimited;
    for directive in split_directives(value) {
        let (name, argument) = match directive.iter().position(|&b| b == b'=') {
            Some(i) => (
                trim(&directive[..i]),
                Some(unquote(trim(&directive[i + 1..]))),
            ),
            None => (directive, None),
        };
        let limit = if name.eq_ignore_ascii_case(b"no-store")
            || name.eq_ignore_ascii_case(b"no-cache")
            || name.eq_ignore_ascii_case(b"private")
        {
            Lifetime::AtMost(0)
        } else if name.eq_ignore_ascii_case(b"max-age") || name.eq_ignore_ascii_case(b"s-maxage") {
            Lifetime::AtMost(argument.and_then(seconds).unwrap_or(0))
        } else {
            Lifetime::Unlimited
        };
        lifetime = lifetime.min(limit);
    }
    lifetime
}

/// The limit one `X-Accel-Expires` header value sets: `N` seconds from
/// now, or `@T` (an absolute Unix time; `now` is the current one). `0`
/// and unreadable values forbid storing, as do times in the past.
pub fn x_accel_expires(value: &[u8], now: u64) -> Lifetime {
    let value = trim(value);
    Lifetime::AtMost(match value.strip_prefix(b"@") {
        Some(at) => seconds(at).map_or(0, |t| t.saturating_sub(now)),
        None => seconds(value).unwrap_or(0),
    })
}

/// A non-negative decimal number of seconds (huge values saturate).
fn seconds(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0u64, |n, &d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

/// The comma-separated directives of a `Cache-Control` value, trimmed, with
/// commas inside quoted strings (`private="a, b"`) kept in their directive.
fn split_directives(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = value;
    core::iter::from_fn(move || loop {
        if rest.is_empty() {
            return None;
        }
        let mut quoted = false;
        let mut escaped = false;
        let mut end = rest.len();
        for (i, &b) in rest.iter().enumerate() {
            if escaped {
                escaped = false;
            } else if quoted && b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                quoted = !quoted;
            } else if b == b',' && !quoted {
                end = i;
                break;
            }
        }
        let directive = trim(&rest[..end]);
        rest = rest.get(end + 1..).unwrap_or(&[]);
        if !directive.is_empty() {
            return Some(directive);
        }
    })
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &s[start..end]
}

fn unquote(s: &[u8]) -> &[u8] {
    match s {
        [b'"', inner @ .., b'"'] => inner,
        _ => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Lifetime::{AtMost, Unlimited};

    #[test]
    fn forbidding_directives() {
        for v in [
            "no-store",
            "No-Cache",
            "private",
            "public, no-store",
            "max-age=60, private=\"x-user, x-id\"",
            "no-cache=\"set-cookie\"",
        ] {
            assert_eq!(cache_control(v.as_bytes()), AtMost(0), "{v}");
        }
    }

    #[test]
    fn ages_cap_and_the_smaller_wins() {
        assert_eq!(cache_control(b"max-age=60"), AtMost(60));
        assert_eq!(
            cache_control(b"public, max-age=60, s-maxage=30"),
            AtMost(30)
        );
        assert_eq!(cache_control(b"s-maxage=\"90\" , max-age=120"), AtMost(90));
        assert_eq!(cache_control(b"max-age=0"), AtMost(0));
        assert_eq!(
            cache_control(b"max-age=99999999999999999999999"),
            AtMost(u64::MAX)
        );
    }

    #[test]
    fn unreadable_ages_forbid() {
        for v in [
            "max-age",
            "max-age=",
            "max-age=-1",
            "max-age=1.5",
            "s-maxage=abc",
        ] {
            assert_eq!(cache_control(v.as_bytes()), AtMost(0), "{v}");
        }
    }

    #[test]
    fn other_directives_change_nothing() {
        assert_eq!(cache_control(b""), Unlimited);
        assert_eq!(
            cache_control(b" , public,must-revalidate, x-ext=\"a,b\""),
            Unlimited
        );
        assert_eq!(cache_control(b"x=\"no-store, private\""), Unlimited);
    }

    #[test]
    fn x_accel_expires_relative_and_absolute() {
        assert_eq!(x_accel_expires(b"30", 1000), AtMost(30));
        assert_eq!(x_accel_expires(b" 0 ", 1000), AtMost(0));
        assert_eq!(x_accel_expires(b"@1060", 1000), AtMost(60));
        assert_eq!(x_accel_expires(b"@900", 1000), AtMost(0));
        for v in ["", "x", "-5", "@", "@x", "1m"] {
            assert_eq!(x_accel_expires(v.as_bytes(), 1000), AtMost(0), "{v}");
        }
    }

    #[test]
    fn combining() {
        assert_eq!(Unlimited.min(AtMost(5)), AtMost(5));
        assert_eq!(AtMost(7).min(AtMost(5)), AtMost(5));
        assert_eq!(Unlimited.cap(60), 60);
        assert_eq!(AtMost(5).cap(60), 5);
        assert_eq!(AtMost(500).cap(60), 60);
    }
}
