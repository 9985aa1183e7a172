//! Directive value parsers: `ntlm [connections]` (src/ntlm/conf.rs), the
//! `limit=N/WINDOW` attribute and nginx time syntax of key_auth
//! (src/key_auth/consumers.rs), `auth_http_retry` options
//! (src/auth_http/retry.rs), and the decimal formatter
//! (src/nginx/decimal.rs) that prints numbers back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nginx_authgate::auth_http::retry;
use nginx_authgate::key_auth::consumers::{parse_limit, parse_time_ms};
use nginx_authgate::nginx::decimal::{decimal, DecimalBuf};
use nginx_authgate::ntlm::conf::{parse_connections, MAX_CONNECTIONS};

fuzz_target!(|value: &[u8]| {
    if let Some(n) = parse_connections(value) {
        assert!((1..=MAX_CONNECTIONS).contains(&n));
        assert!(value.iter().all(u8::is_ascii_digit));
        let mut buf = DecimalBuf::default();
        assert_eq!(parse_connections(decimal(n as u64, &mut buf)), Some(n));
    }

    if let Some(ms) = parse_time_ms(value) {
        let mut buf = DecimalBuf::default();
        let mut text = decimal(ms, &mut buf).to_vec();
        text.extend_from_slice(b"ms");
        assert_eq!(parse_time_ms(&text), Some(ms), "time round trip");
        // Only digits and unit letters.
        assert!(value
            .iter()
            .all(|b| b.is_ascii_digit() || b"yMwdhms".contains(b)));
    }

    match parse_limit(value) {
        Ok(limit) => {
            assert!(limit.count >= 1 && limit.window_ms >= 1);
            let slash = value.iter().position(|&b| b == b'/').unwrap();
            assert_eq!(parse_time_ms(&value[slash + 1..]), Some(limit.window_ms));
        }
        Err(why) => assert!(!why.is_empty()),
    }

    let words: Vec<&[u8]> = value
        .split(|&b| b == b' ')
        .filter(|w| !w.is_empty())
        .collect();
    if let Ok(policy) = retry::parse(&words, parse_time_ms) {
        assert!(policy.times <= retry::MAX_TIMES);
        assert!(policy.interval_ms >= 1 && policy.interval_ms <= retry::MAX_DELAY_MS);
    }

    // Decimal formatting round-trips every u64.
    if value.len() >= 8 {
        let n = u64::from_le_bytes(value[..8].try_into().unwrap());
        let mut buf = DecimalBuf::default();
        let text = decimal(n, &mut buf);
        assert_eq!(core::str::from_utf8(text).unwrap().parse::<u64>(), Ok(n));
    }
});
