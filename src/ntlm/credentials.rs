//! Which requests bind: an `Authorization` value that carries an NTLM or
//! Negotiate (SPNEGO/Kerberos) token. Pure logic.

/// The connection-authenticating scheme an `Authorization` value uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Ntlm,
    Negotiate,
}

/// Classifies an `Authorization` header value.
///
/// The scheme name is matched case-insensitively and must be followed by
/// whitespace and a non-empty token68 (`A-Z a-z 0-9 - . _ ~ + /`, then
/// optional `=` padding), as NTLM and SPNEGO clients send it. Anything else
/// (`Basic …`, a bare `NTLM`, `NTLMx …`, junk after the token) is not a
/// connection credential.
pub fn classify(value: &[u8]) -> Option<Scheme> {
    let (scheme, rest) = if starts_with_ignore_case(value, b"ntlm") {
        (Scheme::Ntlm, &value[4..])
    } else if starts_with_ignore_case(value, b"negotiate") {
        (Scheme::Negotiate, &value[9..])
    } else {
        return None;
    };
    let token_start = rest.iter().position(|&b| b != b' ' && b != b'\t')?;
    if token_start == 0 {
        return None; // "NTLMx" is another scheme
    }
    let token = &rest[token_start..];
    let body_len = token.iter().take_while(|&&b| is_token68_char(b)).count();
    if body_len == 0 || token[body_len..].iter().any(|&b| b != b'=') {
        return None;
    }
    Some(scheme)
}

fn starts_with_ignore_case(value: &[u8], prefix: &[u8]) -> bool {
    value.len() >= prefix.len() && value[..prefix.len()].eq_ignore_ascii_case(prefix)
}

fn is_token68_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ntlm_and_negotiate_tokens_in_any_case() {
        for v in [
            "NTLM TlRMTVNTUAABAAAAB4IIog==",
            "ntlm abc",
            "NtLm  x",
            "NTLM\tx",
        ] {
            assert_eq!(classify(v.as_bytes()), Some(Scheme::Ntlm), "{v}");
        }
        for v in [
            "Negotiate YIIGhgYGKwYBBQUCoIIGejCCBnag",
            "NEGOTIATE a/b+c=",
            "negotiate t",
        ] {
            assert_eq!(classify(v.as_bytes()), Some(Scheme::Negotiate), "{v}");
        }
    }

    #[test]
    fn other_schemes_and_malformed_values_do_not_bind() {
        for v in [
            "",
            "Basic dXNlcjpwYXNz",
            "Bearer abc",
            "NTLM",
            "NTLM ",
            "Negotiate",
            "NTLMSSP abc",
            "Negotiated abc",
            "NTLM a b",
            "NTLM ab=c",
            "NTLM ==",
            " NTLM abc",
            "Digest NTLM abc",
        ] {
            assert_eq!(classify(v.as_bytes()), None, "{v:?}");
        }
    }
}
