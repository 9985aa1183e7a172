//! `key_auth_consumers` lines (src/key_auth/consumers.rs): `parse_line` and
//! `Registry::add` are total; accepted values are what the docs promise,
//! limits, keys and expiry times round-trip, and a plain key never shows in a message.
//!
//! Input: consumer lines, one per `\n`, words separated by blanks (as
//! nginx's configuration parser hands them over).
#![no_main]

use libfuzzer_sys::fuzz_target;
use nginx_authgate::key_auth::consumers::{parse_key, parse_limit, parse_line, Key, Registry};
use nginx_authgate::key_auth::expiry::{format_utc, parse_expires};

fn words(line: &[u8]) -> Vec<&[u8]> {
    line.split(|&b| b == b' ' || b == b'\t')
        .filter(|w| !w.is_empty())
        .collect()
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fuzz_target!(|data: &[u8]| {
    let mut registry = Registry::new();
    let mut plain_keys: Vec<(Vec<u8>, String)> = Vec::new();
    for line in data.split(|&b| b == b'\n') {
        let words = words(line);
        let parsed = parse_line(&words);

        // A plain key's value may decide whether the line is accepted
        // (empty or not), never what the message says: swap it for another.
        let swapped: Vec<Vec<u8>> = words
            .iter()
            .map(|w| match w.strip_prefix(b"key=") {
                Some(v) if !v.is_empty() && !v.starts_with(b"sha256:") => b"key=other".to_vec(),
                _ => w.to_vec(),
            })
            .collect();
        let swapped: Vec<&[u8]> = swapped.iter().map(Vec::as_slice).collect();
        if let Err(message) = &parsed {
            if !words.is_empty() && !words[0].starts_with(b"key=") {
                assert_eq!(
                    parse_line(&swapped).err().as_ref(),
                    Some(message),
                    "key echoed?"
                );
            }
            continue;
        }
        let parsed = parsed.unwrap();
        assert!(!parsed.name.is_empty() && !parsed.name.contains('='));
        assert!(!parsed.name.bytes().any(|b| b < 0x20 || b == 0x7f));
        if let Some(limit) = parsed.limit {
            assert!(limit.count >= 1 && limit.window_ms >= 1);
            let text = format!("{}/{}ms", limit.count, limit.window_ms);
            assert_eq!(parse_limit(text.as_bytes()), Ok(limit), "limit round trip");
        }
        if let Some(at) = parsed.expires {
            // an accepted expiry round-trips through its log form
            let text = format_utc(at);
            assert_eq!(parse_expires(text.as_bytes()), Ok(at), "expires round trip");
        }
        if let Some(status) = parsed.limit_status {
            assert!((400..=599).contains(&status));
        }
        match &parsed.key {
            Some(Key::Sha256(digest)) => {
                let text = format!("sha256:{}", hex(digest));
                assert_eq!(parse_key(text.as_bytes()), Ok(Key::Sha256(*digest)), "sha256: round trip");
                let upper = text.to_uppercase().replacen("SHA256:", "sha256:", 1);
                assert_eq!(parse_key(upper.as_bytes()), Ok(Key::Sha256(*digest)));
            }
            Some(Key::Plain(text)) => {
                let value = words
                    .iter()
                    .rev()
                    .find_map(|w| w.strip_prefix(b"key="))
                    .unwrap();
                assert!(!value.starts_with(b"sha256:"));
                assert_eq!(*text, value);
                // never shown in a debug form
                assert_eq!(format!("{:?}", parsed.key), "Some(Key::Plain(..))");
            }
            None => {}
        }
        let key_value = words.iter().rev().find_map(|w| w.strip_prefix(b"key="));
        let name = parsed.name.to_owned();
        let has_key = parsed.key.is_some();
        if registry.add(parsed).is_ok() {
            if let (Some(value), true) = (key_value, has_key) {
                if !value.starts_with(b"sha256:") {
                    plain_keys.push((value.to_vec(), name));
                }
            }
        }
    }
    assert!(registry.key_count() <= data.len());
    for (key, name) in &plain_keys {
        let (consumer, _) = registry.lookup(key).expect("an added key is found");
        assert_eq!(&consumer.name, name);
    }
});
