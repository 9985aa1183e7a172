//! Which requests bind: an `Authorization` value whose scheme is NTLM or
//! Negotiate (SPNEGO/Kerberos), well-formed or not. Pure logic over bytes
//! (no nginx types), so it is unit-tested here and can be fuzzed as is.
//!
//! Binding is decided on the scheme name alone, as the C
//! nginx-ntlm-module does: whatever follows the name (a token, junk,
//! nothing) an upstream may still act on it and authenticate or start
//! authenticating the connection, so such a connection must never reach
//! the shared `keepalive` pool. Binding a connection that turns out not to be
//! authenticated costs nothing but that connection's pooling.
//!
//! Two inputs are classified: a header value ([`classify`]), and the request
//! head as it goes upstream ([`HeadScan`], which finds every
//! `Authorization` line of an HTTP/1.x request head delivered in pieces).

/// The connection-authenticating scheme an `Authorization` value names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Ntlm,
    Negotiate,
}

/// What follows the scheme name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// Whitespace, then one token68 (`A-Z a-z 0-9 - . _ ~ + /`, then
    /// optional `=` padding): what NTLM and SPNEGO clients send.
    Token,
    /// Nothing (`NTLM`, `NTLM `).
    Empty,
    /// Whitespace, then something that is not one token68 (`NTLM a b`,
    /// `NTLM ab=c`, `NTLM abc,def`).
    Malformed,
    /// Further characters right after the name, no whitespace (`NTLMfoo`,
    /// `Negotiated x`, `NTLM,x`): strictly another scheme, or none, but it
    /// begins with the name, which lax parsers (and the C module) accept.
    Glued,
}

/// An `Authorization` value that binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credential {
    pub scheme: Scheme,
    pub form: Form,
}

const NTLM: &[u8] = b"ntlm";
const NEGOTIATE: &[u8] = b"negotiate";

/// The longest prefix of a value [`classify`] needs to tell whether it
/// binds (`Negotiate` and nothing more).
pub const DECISIVE_PREFIX: usize = 9;

/// Classifies an `Authorization` header value: `Some` when it binds.
///
/// Leading spaces and tabs are skipped (an upstream strips them as
/// optional whitespace); then the value binds when it begins with `NTLM` or
/// `Negotiate` in any case, whatever follows.
pub fn classify(value: &[u8]) -> Option<Credential> {
    let (scheme, rest) = scheme_and_rest(value)?;
    Some(Credential {
        scheme,
        form: form(rest),
    })
}

/// Whether an `Authorization` value binds: [`classify`] without telling
/// the [`Form`], which takes a walk over the whole token (an NTLM
/// message is 40 to 1 000 bytes of base64). Only the scheme name is read.
pub fn binds(value: &[u8]) -> bool {
    scheme_and_rest(value).is_some()
}

/// The scheme a value names, and what follows the name.
fn scheme_and_rest(value: &[u8]) -> Option<(Scheme, &[u8])> {
    let value = trim_start(value);
    if starts_with_ignore_case(value, NTLM) {
        Some((Scheme::Ntlm, &value[NTLM.len()..]))
    } else if starts_with_ignore_case(value, NEGOTIATE) {
        Some((Scheme::Negotiate, &value[NEGOTIATE.len()..]))
    } else {
        None
    }
}

fn form(rest: &[u8]) -> Form {
    let token = trim_start(rest);
    if token.len() == rest.len() {
        return if rest.is_empty() {
            Form::Empty
        } else {
            Form::Glued
        };
    }
    let token = trim_end(token);
    if token.is_empty() {
        return Form::Empty;
    }
    let body_len = token.iter().take_while(|&&b| is_token68_char(b)).count();
    if body_len == 0 || token[body_len..].iter().any(|&b| b != b'=') {
        Form::Malformed
    } else {
        Form::Token
    }
}

fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim_start(v: &[u8]) -> &[u8] {
    let n = v.iter().take_while(|&&b| is_ows(b)).count();
    &v[n..]
}

fn trim_end(v: &[u8]) -> &[u8] {
    let n = v.iter().rev().take_while(|&&b| is_ows(b)).count();
    &v[..v.len() - n]
}

fn starts_with_ignore_case(value: &[u8], prefix: &[u8]) -> bool {
    value.len() >= prefix.len() && value[..prefix.len()].eq_ignore_ascii_case(prefix)
}

fn is_token68_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
}

const AUTHORIZATION: &[u8] = b"authorization:";

/// Where [`HeadScan`] is in the request head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In the request line.
    RequestLine,
    /// At the start of a header line, or this many bytes into it, all of
    /// which matched `authorization:`.
    Name(usize),
    /// In the value of an `Authorization` line: collecting its first bytes.
    Value,
    /// In a line that does not matter.
    Skip,
    /// A CR at the start of a line: the empty line ending the head.
    EndCr,
    /// The head has ended.
    Done,
}

/// Finds, in an HTTP/1.x request head fed in any number of pieces, whether
/// an `Authorization` line binds ([`classify`] of its value). The first line
/// (the request line) is skipped; the scan ends at the empty line. Header
/// names are matched case-insensitively; whitespace before the colon (which
/// no upstream accepts as that header) does not match; lines end at LF, a
/// CR before it is ignored.
#[derive(Debug, Clone)]
pub struct HeadScan {
    state: State,
    value: [u8; DECISIVE_PREFIX],
    value_len: usize,
    binds: bool,
}

impl Default for HeadScan {
    fn default() -> Self {
        Self::new()
    }
}

impl HeadScan {
    pub fn new() -> Self {
        Self {
            state: State::RequestLine,
            value: [0; DECISIVE_PREFIX],
            value_len: 0,
            binds: false,
        }
    }

    /// Whether a binding `Authorization` line was seen so far.
    pub fn binds(&self) -> bool {
        self.binds
    }

    /// Whether more input can change the answer (the head has not ended and
    /// nothing binding was found yet).
    pub fn wants_more(&self) -> bool {
        !self.binds && self.state != State::Done
    }

    /// Scans the next piece of the head.
    pub fn feed(&mut self, piece: &[u8]) {
        for &b in piece {
            if !self.wants_more() {
                return;
            }
            self.state = match self.state {
                State::RequestLine | State::Skip if b == b'\n' => State::Name(0),
                State::RequestLine => State::RequestLine,
                State::Skip => State::Skip,
                State::Name(0) if b == b'\n' => State::Done,
                State::Name(0) if b == b'\r' => State::EndCr,
                State::EndCr if b == b'\n' => State::Done,
                State::EndCr => State::Skip,
                State::Name(i) if b.eq_ignore_ascii_case(&AUTHORIZATION[i]) => {
                    if i + 1 == AUTHORIZATION.len() {
                        self.value_len = 0;
                        State::Value
                    } else {
                        State::Name(i + 1)
                    }
                }
                State::Name(_) if b == b'\n' => State::Name(0),
                State::Name(_) => State::Skip,
                State::Value if b == b'\n' || b == b'\r' => {
                    self.end_value();
                    if b == b'\n' {
                        State::Name(0)
                    } else {
                        State::Skip
                    }
                }
                State::Value => {
                    // Leading whitespace is not collected: classify() would
                    // skip it, and it must not use up the prefix buffer.
                    if !(self.value_len == 0 && is_ows(b)) {
                        self.value[self.value_len] = b;
                        self.value_len += 1;
                    }
                    if self.value_len == DECISIVE_PREFIX {
                        self.end_value();
                        State::Skip
                    } else {
                        State::Value
                    }
                }
                State::Done => State::Done,
            };
        }
    }

    /// The end of the input: an `Authorization` line cut short still counts.
    pub fn finish(&mut self) -> bool {
        if self.state == State::Value {
            self.end_value();
            self.state = State::Done;
        }
        self.binds
    }

    fn end_value(&mut self) {
        if binds(&self.value[..self.value_len]) {
            self.binds = true;
        }
    }
}

/// Whether the request head made of `pieces` has a binding `Authorization`
/// line (see [`HeadScan`]).
pub fn head_binds<'a>(pieces: impl IntoIterator<Item = &'a [u8]>) -> bool {
    let mut scan = HeadScan::new();
    for piece in pieces {
        scan.feed(piece);
        if !scan.wants_more() {
            break;
        }
    }
    scan.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(v: &str) -> Option<(Scheme, Form)> {
        classify(v.as_bytes()).map(|c| (c.scheme, c.form))
    }

    #[test]
    fn ntlm_and_negotiate_tokens_in_any_case() {
        for v in [
            "NTLM TlRMTVNTUAABAAAAB4IIog==",
            "ntlm abc",
            "NtLm  x",
            "NTLM\tx",
            "NTLM abc ",
            " NTLM abc",
        ] {
            assert_eq!(class(v), Some((Scheme::Ntlm, Form::Token)), "{v}");
        }
        for v in [
            "Negotiate YIIGhgYGKwYBBQUCoIIGejCCBnag",
            "NEGOTIATE a/b+c=",
            "negotiate t",
        ] {
            assert_eq!(class(v), Some((Scheme::Negotiate, Form::Token)), "{v}");
        }
    }

    #[test]
    fn malformed_values_of_the_schemes_bind() {
        let cases = [
            ("NTLM abc def", Scheme::Ntlm, Form::Malformed),
            ("NTLM ab=c", Scheme::Ntlm, Form::Malformed),
            ("NTLM abc,def", Scheme::Ntlm, Form::Malformed),
            ("NTLM ==", Scheme::Ntlm, Form::Malformed),
            ("NTLM", Scheme::Ntlm, Form::Empty),
            ("NTLM ", Scheme::Ntlm, Form::Empty),
            ("ntlm\t \t", Scheme::Ntlm, Form::Empty),
            ("Negotiate a b", Scheme::Negotiate, Form::Malformed),
            ("Negotiate", Scheme::Negotiate, Form::Empty),
            ("nEgOtIaTe ", Scheme::Negotiate, Form::Empty),
            ("NTLMfoo", Scheme::Ntlm, Form::Glued),
            ("NTLMSSP abc", Scheme::Ntlm, Form::Glued),
            ("NTLM,abc", Scheme::Ntlm, Form::Glued),
            ("Negotiated abc", Scheme::Negotiate, Form::Glued),
        ];
        for (v, scheme, form) in cases {
            assert_eq!(class(v), Some((scheme, form)), "{v:?}");
            assert!(binds(v.as_bytes()), "{v:?}");
        }
    }

    #[test]
    fn other_schemes_do_not_bind() {
        for v in [
            "",
            "   ",
            "Basic dXNlcjpwYXNz",
            "Bearer abc",
            "NTL",
            "NTLx abc",
            "Negotiat",
            "Nego abc",
            "Digest NTLM abc",
            "xNTLM abc",
            "\x0bNTLM abc",
        ] {
            assert_eq!(classify(v.as_bytes()), None, "{v:?}");
        }
    }

    #[test]
    fn the_decisive_prefix_decides() {
        // HeadScan only keeps DECISIVE_PREFIX bytes of a value.
        for v in [
            "Negotiate",
            "NTLM",
            "Basic xyz",
            "Negotiatx",
            "NTLMxxxxxxxxx",
        ] {
            let full = binds(v.as_bytes());
            let cut = &v.as_bytes()[..v.len().min(DECISIVE_PREFIX)];
            assert_eq!(binds(cut), full, "{v:?}");
        }
    }

    fn head(lines: &[&str]) -> Vec<u8> {
        let mut h = b"GET /x HTTP/1.1\r\n".to_vec();
        for l in lines {
            h.extend_from_slice(l.as_bytes());
            h.extend_from_slice(b"\r\n");
        }
        h.extend_from_slice(b"\r\n");
        h
    }

    /// A plain reference implementation for the scanner.
    fn reference(h: &[u8]) -> bool {
        let mut lines = h.split(|&b| b == b'\n');
        lines.next(); // request line
        for line in lines {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                return false;
            }
            if line.len() >= AUTHORIZATION.len()
                && line[..AUTHORIZATION.len()].eq_ignore_ascii_case(AUTHORIZATION)
            {
                let value = &line[AUTHORIZATION.len()..];
                let value = value.split(|&b| b == b'\r').next().unwrap_or(value);
                if binds(value) {
                    return true;
                }
            }
        }
        false
    }

    /// `h` fed whole and split at every position (and byte by byte) agrees
    /// with `want`.
    fn check(h: &[u8], want: bool) {
        assert_eq!(head_binds([h]), want, "{:?}", String::from_utf8_lossy(h));
        assert_eq!(reference(h), want, "ref {:?}", String::from_utf8_lossy(h));
        for i in 0..=h.len() {
            let (a, b) = h.split_at(i);
            assert_eq!(head_binds([a, b]), want, "split at {i}");
        }
        assert_eq!(head_binds(h.chunks(1)), want, "byte by byte");
    }

    #[test]
    fn head_scan_finds_the_authorization_line() {
        check(&head(&["Host: a", "Authorization: NTLM abc"]), true);
        check(&head(&["Host: a", "authorization:NTLM"]), true);
        check(&head(&["AUTHORIZATION:    negotiate a b"]), true);
        check(&head(&["Authorization: NTLMfoo", "X: y"]), true);
        check(
            &head(&["Authorization: Basic abc", "Authorization: NTLM"]),
            true,
        );
        check(&head(&["Host: a", "Authorization: Basic dXNlcg=="]), false);
        check(&head(&["Host: a", "X-Authorization: NTLM abc"]), false);
        check(&head(&["Host: a", "Authorization : NTLM abc"]), false);
        check(&head(&["Host: a", "Authorizatio: NTLM abc"]), false);
        check(&head(&["X-Note: Authorization: NTLM abc"]), false);
        check(&head(&[]), false);
        // The request line is not a header, the body is not the head.
        check(
            b"GET /Authorization:NTLM HTTP/1.1\r\nHost: a\r\n\r\n",
            false,
        );
        check(
            b"POST / HTTP/1.1\r\nHost: a\r\n\r\nAuthorization: NTLM x\r\n",
            false,
        );
        // Bare LF line ends.
        check(b"GET / HTTP/1.1\nHost: a\nAuthorization: NTLM x\n\n", true);
        check(b"GET / HTTP/1.1\nHost: a\n\nAuthorization: NTLM x\n", false);
    }

    #[test]
    fn head_cut_short_in_the_value_still_binds() {
        assert!(head_binds([
            b"GET / HTTP/1.1\r\nAuthorization: NTLM".as_slice()
        ]));
        assert!(!head_binds([
            b"GET / HTTP/1.1\r\nAuthorization: Neg".as_slice()
        ]));
    }

    /// A small deterministic fuzz: random heads from an alphabet rich in
    /// the bytes that matter, scanner against the reference.
    #[test]
    fn head_scan_agrees_with_the_reference() {
        let pieces: [&[u8]; 12] = [
            b"\r\n",
            b"\n",
            b"\r",
            b"Authorization:",
            b"authorization: ",
            b"NTLM",
            b"Negotiate",
            b" ",
            b"\t",
            b"x",
            b"Basic",
            b":",
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let mut h = b"GET / HTTP/1.1\r\n".to_vec();
            let n = next() % 12;
            for _ in 0..n {
                h.extend_from_slice(pieces[(next() % 12) as usize]);
            }
            let want = reference(&h);
            assert_eq!(
                head_binds([h.as_slice()]),
                want,
                "{:?}",
                String::from_utf8_lossy(&h)
            );
            let cut = (next() as usize) % (h.len() + 1);
            let (a, b) = h.split_at(cut);
            assert_eq!(
                head_binds([a, b]),
                want,
                "{:?} at {cut}",
                String::from_utf8_lossy(&h)
            );
        }
    }
}
