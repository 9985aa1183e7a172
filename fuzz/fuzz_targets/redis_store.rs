//! `key_auth_quota_store` (src/redis/spec.rs) and the RESP reply decoder
//! with the quota-reply classifier (src/redis/resp.rs).
//!
//! Input: directive words separated by newlines (the URL, then options);
//! the same bytes are also decoded as a Redis reply stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nginx_authgate::redis::resp::{decode_reply, quota_reply, QuotaReply};
use nginx_authgate::redis::spec::{parse, MAX_TIMEOUT_MS};

fuzz_target!(|data: &[u8]| {
    let mut words = data.split(|&b| b == b'\n');
    let url = words.next().unwrap_or_default();
    let options: Vec<&[u8]> = words.collect();
    match parse(url, &options) {
        Ok(spec) => {
            assert!(url.starts_with(b"redis://"));
            assert!(spec.port >= 1);
            assert!((1..=MAX_TIMEOUT_MS).contains(&spec.timeout_ms));
            assert!(!spec.host.is_empty());
            assert!(!(spec.password.is_some() && spec.password_file.is_some()));
            // How logs name the store never depends on the password: with
            // another password it reads the same. (A textual search gave
            // false alarms: "redis://" + host can spell a password.)
            if spec.password.is_some() {
                let mut other = spec.clone();
                other.password = Some(b"\x00another".to_vec());
                assert_eq!(spec.display_address(), other.display_address());
            }
        }
        Err(message) => {
            // Messages never show a password given in the URL: the same URL
            // with another password of the same length (alphanumeric, so
            // parsing takes the same path) gives the same message. A
            // message that quoted the password would differ.
            let at = url.iter().rposition(|&b| b == b'@').filter(|&at| at >= 8);
            if let (true, Some(at)) = (url.starts_with(b"redis://"), at) {
                let info = &url[8..at];
                if let Some(colon) = info.iter().position(|&b| b == b':') {
                    let pw = &info[colon + 1..];
                    if !pw.is_empty() && pw.iter().all(|b| b.is_ascii_alphanumeric()) {
                        let fill = if pw.iter().all(|&b| b == b'Q') {
                            b'R'
                        } else {
                            b'Q'
                        };
                        let mut other = url.to_vec();
                        other[8 + colon + 1..at].fill(fill);
                        match parse(&other, &options) {
                            Err(again) => assert_eq!(message, again),
                            Ok(_) => panic!("another password parses: {message}"),
                        }
                    }
                }
            }
        }
    }

    // Replies: decoding consumes a prefix, never more than given, and
    // classifying any frame is total.
    let mut rest = data;
    while let Ok(Some((frame, used))) = decode_reply(rest) {
        assert!(used > 0 && used <= rest.len());
        if let QuotaReply::Counted { count, .. } = quota_reply(&frame) {
            assert!(count >= 1);
        }
        rest = &rest[used..];
    }
});
