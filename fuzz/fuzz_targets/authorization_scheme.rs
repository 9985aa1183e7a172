//! `Authorization` scheme classification (src/ntlm/credentials.rs):
//! total, and equal to an independent model of the rule it documents.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nginx_authgate::ntlm::credentials::{classify, Scheme};

fn is_token68(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~+/".contains(&b)
}

/// The documented rule, written differently: a scheme word up to the first
/// blank, blanks, then `token68 *"="` to the end.
fn model(value: &[u8]) -> Option<Scheme> {
    let word_end = value
        .iter()
        .position(|&b| b == b' ' || b == b'\t')
        .unwrap_or(value.len());
    let scheme = match value[..word_end].to_ascii_lowercase().as_slice() {
        b"ntlm" => Scheme::Ntlm,
        b"negotiate" => Scheme::Negotiate,
        _ => return None,
    };
    let rest = &value[word_end..];
    let token = &rest[rest
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count()..];
    let padding = token.iter().rev().take_while(|&&b| b == b'=').count();
    let body = &token[..token.len() - padding];
    (word_end < value.len() && !body.is_empty() && body.iter().all(|&b| is_token68(b)))
        .then_some(scheme)
}

fuzz_target!(|value: &[u8]| {
    let got = classify(value);
    assert_eq!(got, model(value), "{:?}", String::from_utf8_lossy(value));
    if got.is_some() {
        // Anything before or after the credential makes it something else.
        let mut leading = b" ".to_vec();
        leading.extend_from_slice(value);
        assert_eq!(classify(&leading), None);
        let mut trailing = value.to_vec();
        trailing.extend_from_slice(b" x");
        assert_eq!(classify(&trailing), None);
        // The scheme name is case-insensitive.
        let mut upper = value.to_vec();
        let word = upper.iter().position(|&b| b == b' ' || b == b'\t').unwrap();
        upper[..word].make_ascii_uppercase();
        assert_eq!(classify(&upper), got);
    }
});
