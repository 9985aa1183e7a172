//! Form bodies for key_auth_body_field (src/key_auth/form.rs): finding the
//! field, removing it, recognising the content type.
//!
//! Input: the field name, a newline, then the body (also tried as a
//! Content-Type and a Content-Encoding value).
#![no_main]

use libfuzzer_sys::fuzz_target;
use nginx_authgate::auth_http::params::form_encode_into;
use nginx_authgate::key_auth::form::{
    ascii_charset, find, is_coded, is_form, names_form_ambiguously, remove, Field,
};
use nginx_authgate::nginx::args::decode;

fuzz_target!(|data: &[u8]| {
    let (name, body) = match data.iter().position(|&b| b == b'\n') {
        Some(nl) => (&data[..nl], &data[nl + 1..]),
        None => (&b"apikey"[..], data),
    };
    if name.is_empty() {
        return; // refused at configuration time
    }

    let found = find(body, name);
    let removed = remove(body, name);
    assert_eq!(
        removed.is_some(),
        found != Field::Absent,
        "remove iff found"
    );
    if let Field::Once(value) = &found {
        assert!(value.len() <= body.len());
    }
    if let Some(out) = &removed {
        assert!(out.len() < body.len(), "something was removed");
        assert_eq!(find(out, name), Field::Absent, "no such field left");
        assert_eq!(remove(out, name), None, "removal is idempotent");
        // Every other pair survives, byte for byte, in order.
        let kept: Vec<&[u8]> = body
            .split(|&b| b == b'&')
            .filter(|p| {
                let raw = p.split(|&b| b == b'=').next().unwrap_or_default();
                p.is_empty() || decode(raw) != name
            })
            .collect();
        assert_eq!(out.clone(), kept.join(&b'&'));
    }

    // A field written by a form encoder is found with its value, and only
    // once; appending it again makes it ambiguous.
    let mut form = Vec::new();
    form_encode_into(&mut form, name);
    form.push(b'=');
    form_encode_into(&mut form, body);
    assert_eq!(find(&form, name), Field::Once(body.to_vec()));
    let mut twice = form.clone();
    twice.push(b'&');
    twice.extend_from_slice(&form);
    assert_eq!(find(&twice, name), Field::Repeated);
    assert_eq!(remove(&twice, name), Some(Vec::new()));

    // Content types: never panics; the media type alone decides.
    if is_form(body) {
        let media = body.split(|&b| b == b';').next().unwrap_or_default();
        assert!(media.len() >= b"application/x-www-form-urlencoded".len());
    }
    // A form is never ambiguous; an ambiguous value is never a form, and
    // says the form's name in its media type.
    if names_form_ambiguously(body) {
        assert!(!is_form(body));
        let media = body.split(|&b| b == b';').next().unwrap_or_default();
        assert!(media.len() > b"application/x-www-form-urlencoded".len());
    }

    // Content codings: a coding is a list element other than identity;
    // adding identity elements never changes the answer.
    let mut with_identity = body.to_vec();
    with_identity.extend_from_slice(b", identity");
    assert_eq!(is_coded(&with_identity), is_coded(body));
    if !is_coded(body) {
        assert!(body
            .split(|&b| b == b',')
            .all(|c| c.iter().all(|b| b" \t".contains(b))
                || c.trim_ascii().eq_ignore_ascii_case(b"identity")));
    }

    // Charsets: never panics; no parameter is always searched, and adding
    // a foreign charset always refuses.
    let media_only = body.split(|&b| b == b';').next().unwrap_or_default();
    assert!(ascii_charset(media_only));
    let mut foreign = body.to_vec();
    foreign.extend_from_slice(b"; charset=utf-16");
    assert!(!ascii_charset(&foreign));
});
