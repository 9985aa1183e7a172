//! Query argument finding, removal and decoding (src/nginx/args.rs), and the
//! form encoding of src/auth_http/params.rs that the decoder must invert.
//!
//! Input: the argument name, a newline, then the query string.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nginx_authgate::auth_http::params::form_encode_into;
use nginx_authgate::nginx::args::{decode, find, remove};

fn is_named(piece: &[u8], name: &[u8]) -> bool {
    piece.len() > name.len()
        && piece[name.len()] == b'='
        && piece[..name.len()].eq_ignore_ascii_case(name)
}

fuzz_target!(|data: &[u8]| {
    let (name, args) = match data.iter().position(|&b| b == b'\n') {
        Some(nl) => (&data[..nl], &data[nl + 1..]),
        None => (&b"apikey"[..], data),
    };

    let found = find(args, name);
    if let Some(value) = found {
        // A slice of the query, right after "name=" at the start of a piece,
        // and running to the end of that piece.
        let at = value.as_ptr() as usize - args.as_ptr() as usize;
        let start = at - name.len() - 1;
        assert!(is_named(&args[start..], name));
        assert!(start == 0 || args[start - 1] == b'&');
        let end = at + value.len();
        assert!(end == args.len() || args[end] == b'&');
        assert!(!value.contains(&b'&'));
    }

    let removed = remove(args, name);
    assert_eq!(removed.is_some(), found.is_some(), "remove iff find");
    if let Some(out) = &removed {
        assert!(out.len() <= args.len(), "editing never lengthens the query");
        assert!(out.len() < args.len(), "something was removed");
        assert_eq!(find(out, name), None, "no such argument left");
        assert_eq!(remove(out, name), None, "removal is idempotent");
        // Every other piece survives, byte for byte, in order.
        let kept: Vec<&[u8]> = args
            .split(|&b| b == b'&')
            .filter(|p| !is_named(p, name))
            .collect();
        assert_eq!(out.clone(), kept.join(&b'&'));
    }

    let decoded = decode(args);
    assert!(decoded.len() <= args.len(), "decoding never lengthens");
    if !args.contains(&b'%') && !args.contains(&b'+') {
        assert_eq!(decoded, args);
    }

    // Form encoding is decoded back to the same bytes, and is plain ASCII.
    let mut encoded = Vec::new();
    form_encode_into(&mut encoded, args);
    assert!(encoded.iter().all(|b| b.is_ascii_graphic()));
    assert!(encoded.len() >= args.len() && encoded.len() <= 3 * args.len());
    assert!(!encoded.contains(&b'&') && !encoded.contains(&b'='));
    assert_eq!(decode(&encoded), args, "decode(form_encode(x)) == x");
});
