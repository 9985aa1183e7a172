//! `Cache-Control` / `X-Accel-Expires` lifetimes for the decision cache
//! (src/decision_cache/freshness.rs): total, never longer than what the
//! header allows, forbidding whenever a forbidding directive appears, and
//! the decision cache's entry layout round-trips (src/decision_cache/entry.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;
use nginx_authgate::decision_cache::entry::{encode, Entry};
use nginx_authgate::decision_cache::freshness::{cache_control, x_accel_expires, Lifetime};

fuzz_target!(|data: &[u8]| {
    let cc = cache_control(data);
    let lower = data.to_ascii_lowercase();
    // A forbidding word outside quotes forbids; conservatively: when the
    // bytes hold none of them and no quote, a forbid must come from an
    // age (max-age / s-maxage) or be absent.
    let forbidding = [&b"no-store"[..], b"no-cache", b"private"]
        .iter()
        .any(|w| lower.windows(w.len()).any(|x| x == *w));
    let has_age = lower.windows(7).any(|x| x == b"max-age" || x == b"s-maxag");
    if !forbidding && !has_age {
        assert_eq!(cc, Lifetime::Unlimited, "{:?}", String::from_utf8_lossy(data));
    }
    // Adding a no-store directive always forbids.
    let mut with = data.to_vec();
    with.extend_from_slice(b", no-store");
    if !data.contains(&b'"') {
        assert_eq!(cache_control(&with), Lifetime::AtMost(0));
    }
    // Capping never extends.
    assert!(cc.cap(60) <= 60);

    let now = 1_700_000_000;
    match x_accel_expires(data, now) {
        Lifetime::AtMost(_) => {}
        Lifetime::Unlimited => panic!("X-Accel-Expires always limits"),
    }

    // The entry layout: what is written is read back, cut entries are not.
    let mut buf = [0u8; 1024];
    let parts: Vec<&[u8]> = data.split(|&b| b == 0).collect();
    let (challenges, values) = parts.split_at(parts.len() / 2);
    if let Some(n) = encode(&mut buf, 401, challenges.iter().copied(), values.iter().copied()) {
        let e = Entry::parse(&buf[..n]).expect("own encoding");
        assert_eq!(e.challenges().collect::<Vec<_>>(), challenges);
        assert_eq!(e.values().collect::<Vec<_>>(), values);
        if n > 0 {
            assert!(Entry::parse(&buf[..n - 1]).is_none());
        }
    }
    let _ = Entry::parse(data);
});
