//! `Authorization` classification for NTLM binding (src/ntlm/credentials.rs):
//! total, equal to an independent model of the documented rule, and the
//! streaming request-head scanner agrees with it however the head is split.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nginx_authgate::ntlm::credentials::{binds, classify, HeadScan, Scheme};

/// The documented rule, written differently: after optional blanks, the
/// value starts with `NTLM` or `Negotiate` in any case, whatever follows.
fn model(value: &[u8]) -> Option<Scheme> {
    let start = value
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(value.len());
    let lower = value[start..].to_ascii_lowercase();
    if lower.starts_with(b"ntlm") {
        Some(Scheme::Ntlm)
    } else if lower.starts_with(b"negotiate") {
        Some(Scheme::Negotiate)
    } else {
        None
    }
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks where the request head is split; the rest is
    // the Authorization value.
    let (split, value) = match data.split_first() {
        Some((&s, v)) => (s as usize, v),
        None => (0, data),
    };
    let got = classify(value);
    assert_eq!(got.map(|c| c.scheme), model(value), "{:?}", String::from_utf8_lossy(value));
    assert_eq!(binds(value), got.is_some());

    // A value without line breaks, in a head: the scanner finds the same
    // answer, in one piece or split anywhere.
    if value.iter().any(|&b| b == b'\r' || b == b'\n') {
        return;
    }
    let mut head = b"GET / HTTP/1.1\r\nHost: a\r\naUtHoRiZaTiOn:".to_vec();
    head.extend_from_slice(value);
    head.extend_from_slice(b"\r\nX: y\r\n\r\n");
    let mut whole = HeadScan::new();
    whole.feed(&head);
    assert_eq!(whole.binds(), got.is_some(), "head {:?}", String::from_utf8_lossy(&head));
    let at = split % (head.len() + 1);
    let mut pieces = HeadScan::new();
    pieces.feed(&head[..at]);
    pieces.feed(&head[at..]);
    assert_eq!(pieces.binds(), whole.binds(), "split at {at}");
});
