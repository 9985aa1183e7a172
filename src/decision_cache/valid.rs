//! `*_cache_valid` times and the checks on a cache key's text, pure.

/// How long answers with each decision code are kept: a handful of
/// `(code, seconds)` rules, most specific first at lookup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ValidTimes {
    rules: [(u16, u32); MAX_RULES],
    len: u8,
}

const MAX_RULES: usize = 16;

/// More `*_cache_valid` codes at one level than a location keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyRules;

/// Matches every decision code a mechanism caches (`any`).
pub const ANY: u16 = 0;
/// Matches every 2xx status (`auth_request_cache_valid TIME;` without
/// codes).
pub const ANY_2XX: u16 = 2;

impl ValidTimes {
    /// Adds a rule; `Err` when there are already [`MAX_RULES`].
    pub fn add(&mut self, code: u16, seconds: u32) -> Result<(), TooManyRules> {
        if usize::from(self.len) == MAX_RULES {
            return Err(TooManyRules);
        }
        // A later rule for the same code replaces the earlier one.
        if let Some(rule) = self.rules[..usize::from(self.len)]
            .iter_mut()
            .find(|r| r.0 == code)
        {
            rule.1 = seconds;
            return Ok(());
        }
        self.rules[usize::from(self.len)] = (code, seconds);
        self.len += 1;
        Ok(())
    }

    /// The time for `code`: its own rule, else `2xx` for 2xx codes, else
    /// `any`; `None`: not cached.
    pub fn seconds(&self, code: u16) -> Option<u32> {
        let rules = &self.rules[..usize::from(self.len)];
        let find = |c: u16| rules.iter().find(|r| r.0 == c).map(|r| r.1);
        find(code)
            .or_else(|| (200..300).contains(&code).then(|| find(ANY_2XX)).flatten())
            .or_else(|| find(ANY))
    }

    /// Whether no rule was given.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The variable names in an nginx string value (`$name`, `${name}`), in
/// order; `$1`-style captures included as digits.
pub fn variable_names(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = text;
    core::iter::from_fn(move || loop {
        let at = rest.iter().position(|&b| b == b'$')?;
        rest = &rest[at + 1..];
        let braced = rest.first() == Some(&b'{');
        if braced {
            rest = &rest[1..];
        }
        let end = rest
            .iter()
            .position(|&b| !(b.is_ascii_alphanumeric() || b == b'_'))
            .unwrap_or(rest.len());
        let name = &rest[..end];
        rest = &rest[end..];
        if braced && rest.first() == Some(&b'}') {
            rest = &rest[1..];
        }
        if !name.is_empty() {
            return Some(name);
        }
    })
}

/// Whether a variable carries the client's credential, so that a key using
/// it tells clients apart: `$http_*` (the `Authorization` header among
/// them), `$cookie_*`, `$ssl_client_*`, `$remote_user`, `$arg_*`.
pub fn bears_credentials(name: &[u8]) -> bool {
    let name = name.to_ascii_lowercase();
    ["http_", "cookie_", "ssl_client_", "arg_"]
        .iter()
        .any(|p| name.starts_with(p.as_bytes()))
        || name == b"remote_user"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_specific_rule_wins() {
        let mut v = ValidTimes::default();
        assert_eq!(v.seconds(200), None);
        v.add(ANY_2XX, 60).unwrap();
        v.add(204, 5).unwrap();
        v.add(401, 10).unwrap();
        assert_eq!(v.seconds(204), Some(5));
        assert_eq!(v.seconds(200), Some(60));
        assert_eq!(v.seconds(401), Some(10));
        assert_eq!(v.seconds(403), None);
        v.add(ANY, 1).unwrap();
        assert_eq!(v.seconds(403), Some(1));
        assert_eq!(v.seconds(200), Some(60));
        v.add(401, 20).unwrap();
        assert_eq!(v.seconds(401), Some(20));
        for c in 0..12 {
            v.add(210 + c, 1).unwrap();
        }
        assert!(v.add(299, 1).is_err());
    }

    #[test]
    fn names_in_a_value() {
        let names: Vec<_> =
            variable_names(b"$http_authorization:${cookie_sid}x$1$ $$remote_user").collect();
        assert_eq!(
            names,
            [
                &b"http_authorization"[..],
                b"cookie_sid",
                b"1",
                b"remote_user"
            ]
        );
        assert_eq!(variable_names(b"static").count(), 0);
    }

    #[test]
    fn credential_bearing() {
        for n in [
            "http_authorization",
            "HTTP_X_API_KEY",
            "cookie_session",
            "ssl_client_s_dn",
            "remote_user",
            "arg_token",
        ] {
            assert!(bears_credentials(n.as_bytes()), "{n}");
        }
        for n in ["uri", "remote_addr", "host", "request_uri", "1"] {
            assert!(!bears_credentials(n.as_bytes()), "{n}");
        }
    }
}
