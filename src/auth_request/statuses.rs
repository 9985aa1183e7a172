//! Sets of HTTP statuses given to `auth_request_pass_status` and
//! `auth_request_allow_status`. Pure logic: parsing and membership.

/// A set of statuses below 640, one bit each. `Copy`, no allocation: it
/// lives in the location configuration itself.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct StatusSet {
    bits: [u64; 10],
}

impl StatusSet {
    /// Adds `status` (statuses of 640 and more are never parsed).
    pub fn insert(&mut self, status: u16) {
        let i = usize::from(status);
        if i < 640 {
            self.bits[i / 64] |= 1 << (i % 64);
        }
    }

    pub fn contains(&self, status: usize) -> bool {
        status < 640 && self.bits[status / 64] & (1 << (status % 64)) != 0
    }

    pub fn is_empty(&self) -> bool {
        self.bits.iter().all(|&b| b == 0)
    }
}

/// Which statuses a directive accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// `auth_request_pass_status`: 300–599 except 304 (a "not modified"
    /// without a conditional request is meaningless to a client) and 401 /
    /// 403, which `auth_request` always passes on.
    Pass,
    /// `auth_request_allow_status`: 200–299.
    Allow,
}

impl Purpose {
    /// What a valid value is, for the `[emerg]` message.
    pub fn expected(self) -> &'static str {
        match self {
            Purpose::Pass => "a status from 300 to 599 other than 304, 401 and 403",
            Purpose::Allow => "a status from 200 to 299",
        }
    }

    fn accepts(self, status: u16) -> bool {
        match self {
            Purpose::Pass => (300..=599).contains(&status) && ![304, 401, 403].contains(&status),
            Purpose::Allow => (200..=299).contains(&status),
        }
    }
}

/// The first word [`parse`] refuses: not a valid status for the purpose,
/// or one given twice. Displays as the `[emerg]` text after the directive's
/// name: `invalid status "WORD"[ (given twice)], it must be EXPECTED`.
#[derive(Debug, PartialEq, Eq)]
pub struct Refused<'a> {
    pub word: &'a [u8],
    /// The word appears more than once among the directive's words.
    pub given_twice: bool,
    purpose: Purpose,
}

impl core::fmt::Display for Refused<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "invalid status \"{}\"{}, it must be {}",
            String::from_utf8_lossy(self.word),
            if self.given_twice {
                " (given twice)"
            } else {
                ""
            },
            self.purpose.expected()
        )
    }
}

/// Parses the directive's words into a set; refuses the first word that is
/// not a valid status for `purpose` (also a repeated one).
pub fn parse<'a>(words: &[&'a [u8]], purpose: Purpose) -> Result<StatusSet, Refused<'a>> {
    let mut set = StatusSet::default();
    for &word in words {
        let status = (word.len() == 3 && word.iter().all(u8::is_ascii_digit))
            .then(|| word.iter().fold(0u16, |n, &d| n * 10 + u16::from(d - b'0')))
            .filter(|&s| purpose.accepts(s) && !set.contains(usize::from(s)))
            .ok_or_else(|| Refused {
                word,
                given_twice: words.iter().filter(|&&w| w == word).count() > 1,
                purpose,
            })?;
        set.insert(status);
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membership_is_exact() {
        for s in 100u16..=599 {
            let mut set = StatusSet::default();
            set.insert(s);
            for t in 0usize..=1000 {
                assert_eq!(set.contains(t), t == usize::from(s), "{s} vs {t}");
            }
        }
        assert!(StatusSet::default().is_empty());
    }

    #[test]
    fn pass_statuses() {
        let set = parse(&[b"302", b"303", b"307", b"429", b"599"], Purpose::Pass).unwrap();
        for s in [302, 303, 307, 429, 599] {
            assert!(set.contains(s));
        }
        assert!(!set.contains(301) && !set.contains(200) && !set.contains(500));
        for bad in [
            &b"200"[..],
            b"299",
            b"304",
            b"401",
            b"403",
            b"600",
            b"099",
            b"30",
            b"3020",
            b"30x",
            b"+30",
            b"",
        ] {
            assert_eq!(
                refused(&[b"302", bad], Purpose::Pass),
                (bad, false),
                "{bad:?}"
            );
        }
        assert_eq!(
            refused(&[b"302", b"302"], Purpose::Pass),
            (&b"302"[..], true)
        );
        // an invalid word given twice says so too
        assert_eq!(
            refused(&[b"200", b"200"], Purpose::Pass),
            (&b"200"[..], true)
        );
    }

    /// The refused word and whether it was given twice.
    fn refused<'a>(words: &[&'a [u8]], purpose: Purpose) -> (&'a [u8], bool) {
        let e = parse(words, purpose).unwrap_err();
        (e.word, e.given_twice)
    }

    #[test]
    fn refusal_messages() {
        let e = parse(&[b"302", b"302"], Purpose::Pass).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid status \"302\" (given twice), \
             it must be a status from 300 to 599 other than 304, 401 and 403"
        );
        let e = parse(&[b"2x0"], Purpose::Allow).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid status \"2x0\", it must be a status from 200 to 299"
        );
    }

    #[test]
    fn allow_statuses() {
        let set = parse(&[b"200", b"204"], Purpose::Allow).unwrap();
        assert!(set.contains(200) && set.contains(204) && !set.contains(202));
        for bad in [&b"199"[..], b"300", b"401", b"2x0"] {
            assert_eq!(refused(&[bad], Purpose::Allow), (bad, false));
        }
    }
}
