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
            // How logs name the store never holds the password.
            if let Some(p) = &spec.password {
                let shown = spec.display_address();
                if p.len() >= 4 && !spec.host.windows(p.len()).any(|w| w == &p[..]) {
                    assert!(!shown.as_bytes().windows(p.len()).any(|w| w == &p[..]));
                }
            }
        }
        Err(message) => {
            // Messages never show a password given in the URL.
            let at = url.iter().rposition(|&b| b == b'@').filter(|&at| at >= 8);
            if let (true, Some(at)) = (url.starts_with(b"redis://"), at) {
                let info = &url[8..at];
                if let Some(colon) = info.iter().position(|&b| b == b':') {
                    let pw = &info[colon + 1..];
                    if pw.len() >= 6 && pw.iter().all(|b| b.is_ascii_alphanumeric()) {
                        let later = &url[at..];
                        // Messages quote other words escaped (`\xe3`), and an
                        // escape's hex digits can spell the password's text.
                        let pw_text = core::str::from_utf8(pw).unwrap();
                        let shows = |word: &[u8]| {
                            word.windows(pw.len()).any(|w| w == pw)
                                || word.escape_ascii().to_string().contains(pw_text)
                        };
                        let elsewhere = options.iter().any(|o| shows(o))
                            || shows(later)
                            || shows(&info[..colon]);
                        if !elsewhere {
                            assert!(
                                !message.contains(core::str::from_utf8(pw).unwrap()),
                                "{message}"
                            );
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
