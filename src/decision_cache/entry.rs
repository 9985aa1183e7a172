//! What a cache entry holds, and its byte layout in the zone, pure.
//!
//! An entry is everything the protected request's outcome depends on, so
//! that a hit replays the miss that filled it: the decision (the service's
//! status, or a mechanism's own code), the `WWW-Authenticate` challenges in
//! their order, and the values the mechanism's variables were given
//! (`auth_request_set`, `$auth_http_result`), in configuration order.
//!
//! Layout (little-endian): `u16 decision, u16 challenges, u16 values`, then
//! each string as `u16 length, bytes`. It is bounded by [`super::table::DATA_CAP`];
//! a decision that does not fit is not stored.

/// A decision, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    bytes: &'a [u8],
    pub decision: u16,
    challenges: u16,
    values: u16,
}

/// Writes an entry into `out`; `None` when it does not fit (or a string is
/// longer than 65535 bytes). Returns the bytes written.
pub fn encode<'s>(
    out: &mut [u8],
    decision: u16,
    challenges: impl Iterator<Item = &'s [u8]> + Clone,
    values: impl Iterator<Item = &'s [u8]> + Clone,
) -> Option<usize> {
    let mut w = Writer { out, at: 0 };
    w.u16(decision)?;
    w.u16(u16::try_from(challenges.clone().count()).ok()?)?;
    w.u16(u16::try_from(values.clone().count()).ok()?)?;
    for s in challenges.chain(values) {
        w.u16(u16::try_from(s.len()).ok()?)?;
        w.bytes(s)?;
    }
    Some(w.at)
}

struct Writer<'o> {
    out: &'o mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn bytes(&mut self, b: &[u8]) -> Option<()> {
        let end = self.at.checked_add(b.len())?;
        self.out.get_mut(self.at..end)?.copy_from_slice(b);
        self.at = end;
        Some(())
    }
    fn u16(&mut self, v: u16) -> Option<()> {
        self.bytes(&v.to_le_bytes())
    }
}

impl<'a> Entry<'a> {
    /// Reads an entry written by [`encode`]; `None` when the bytes are not
    /// one (the caller then asks the service, as without a cache).
    #[inline]
    pub fn parse(bytes: &'a [u8]) -> Option<Self> {
        // A bare decision (the common hit): its 6 bytes and nothing more.
        if let [d0, d1, 0, 0, 0, 0] = *bytes {
            return Some(Entry {
                bytes,
                decision: u16::from_le_bytes([d0, d1]),
                challenges: 0,
                values: 0,
            });
        }
        let u16_at = |i: usize| Some(u16::from_le_bytes(bytes.get(i..i + 2)?.try_into().ok()?));
        let entry = Entry {
            bytes,
            decision: u16_at(0)?,
            challenges: u16_at(2)?,
            values: u16_at(4)?,
        };
        // Every string must be there, and nothing after them.
        let mut strings = entry.strings();
        let count = usize::from(entry.challenges) + usize::from(entry.values);
        for _ in 0..count {
            strings.next()??;
        }
        (strings.at == bytes.len()).then_some(entry)
    }

    /// The `WWW-Authenticate` challenges, in order.
    pub fn challenges(&self) -> impl ExactSizeIterator<Item = &'a [u8]> + 'a {
        let mut strings = self.strings();
        (0..usize::from(self.challenges)).map(move |_| strings.next().flatten().unwrap_or(b""))
    }

    /// The stored variable values, in configuration order.
    pub fn values(&self) -> impl ExactSizeIterator<Item = &'a [u8]> + 'a {
        let mut strings = self.strings();
        for _ in 0..self.challenges {
            strings.next();
        }
        (0..usize::from(self.values)).map(move |_| strings.next().flatten().unwrap_or(b""))
    }

    /// The entry without its bytes when it holds no strings (a bare
    /// decision: nothing to copy out of the zone); `None` otherwise.
    pub fn bare(&self) -> Option<Entry<'static>> {
        (self.challenges == 0 && self.values == 0).then_some(Entry {
            bytes: &[],
            decision: self.decision,
            challenges: 0,
            values: 0,
        })
    }

    /// How many variable values the entry holds.
    pub fn value_count(&self) -> usize {
        usize::from(self.values)
    }

    fn strings(&self) -> Strings<'a> {
        Strings {
            bytes: self.bytes,
            at: 6,
        }
    }
}

struct Strings<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Iterator for Strings<'a> {
    /// `Some(None)`: the bytes end inside a string.
    type Item = Option<&'a [u8]>;
    fn next(&mut self) -> Option<Self::Item> {
        let read = || {
            let len = self.bytes.get(self.at..self.at + 2)?;
            let len = usize::from(u16::from_le_bytes([len[0], len[1]]));
            let start = self.at + 2;
            Some((self.bytes.get(start..start + len)?, start + len))
        };
        Some(read().map(|(s, end)| {
            self.at = end;
            s
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_order() {
        let mut buf = [0u8; 256];
        let ch: [&[u8]; 2] = [b"Basic realm=\"a\"", b"Bearer"];
        let vals: [&[u8]; 3] = [b"alice", b"", b"admin,dev"];
        let n = encode(&mut buf, 401, ch.iter().copied(), vals.iter().copied()).unwrap();
        let e = Entry::parse(&buf[..n]).unwrap();
        assert_eq!(e.decision, 401);
        assert_eq!(e.challenges().collect::<Vec<_>>(), ch);
        assert_eq!(e.values().collect::<Vec<_>>(), vals);
        assert_eq!(e.value_count(), 3);
    }

    #[test]
    fn does_not_fit() {
        let mut buf = [0u8; 16];
        let vals: [&[u8]; 1] = [b"0123456789"];
        assert_eq!(
            encode(&mut buf, 200, [].iter().copied(), vals.iter().copied()),
            None
        );
        let mut buf = [0u8; 18];
        assert_eq!(
            encode(&mut buf, 200, [].iter().copied(), vals.iter().copied()),
            Some(18)
        );
        let long = vec![b'x'; 70_000];
        let mut big = vec![0u8; 80_000];
        assert_eq!(
            encode(&mut big, 200, [&long[..]].into_iter(), [].iter().copied()),
            None
        );
    }

    #[test]
    fn garbage_is_refused() {
        let mut buf = [0u8; 64];
        let vals: [&[u8]; 1] = [b"abc"];
        let n = encode(&mut buf, 204, [].iter().copied(), vals.iter().copied()).unwrap();
        for cut in 0..n {
            assert_eq!(Entry::parse(&buf[..cut]), None, "{cut}");
        }
        assert_eq!(Entry::parse(&buf[..n + 1]), None, "trailing byte");
        assert!(Entry::parse(&buf[..n]).is_some());
    }

    #[test]
    fn a_bare_decision_needs_no_bytes() {
        let mut buf = [0u8; 16];
        let n = encode(&mut buf, 204, [].iter().copied(), [].iter().copied()).unwrap();
        let bare = Entry::parse(&buf[..n]).unwrap().bare().unwrap();
        assert_eq!((bare.decision, bare.value_count()), (204, 0));
        assert_eq!(bare.challenges().count(), 0);
        let vals: [&[u8]; 1] = [b"v"];
        let n = encode(&mut buf, 200, [].iter().copied(), vals.iter().copied()).unwrap();
        assert!(Entry::parse(&buf[..n]).unwrap().bare().is_none());
    }
}
