//! `application/x-www-form-urlencoded` request bodies, for
//! `key_auth_body_field`: is a body a form, what does its field hold, and
//! the body without that field. Pure (bytes in, bytes out), unit-tested and
//! fuzzed (`fuzz/fuzz_targets/form_body.rs`).
//!
//! A form is `name=value` pairs separated by `&`; names and values are
//! percent-encoded, `+` standing for a space (the WHATWG URL standard's
//! form-urlencoded parser). A field name is compared with the configured one
//! after decoding, byte for byte (form field names are case-sensitive). A
//! pair without `=` is the field with an empty value; empty pairs (`a&&b`)
//! are nobody's.

use crate::nginx::args::decode;

/// The media type a body must have to be searched.
const FORM: &[u8] = b"application/x-www-form-urlencoded";

/// Whether a `Content-Type` value names a form: the media type, compared
/// case-insensitively, optionally followed by parameters (`; charset=utf-8`),
/// with optional whitespace around it.
pub fn is_form(content_type: &[u8]) -> bool {
    let media = content_type
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default();
    trim(media).eq_ignore_ascii_case(FORM)
}

/// Whether a `Content-Type` value's media type holds the form type as one of
/// several words (split at `,`, a space or a tab) without being it:
/// `application/x-www-form-urlencoded,
/// text/plain`, `text/plain, application/x-www-form-urlencoded`,
/// `application/x-www-form-urlencoded foo`. Some upstreams read such a value
/// as a form (PHP cuts the media type at `,` or a space), so a body key_auth
/// did not search, and did not strip, would be a form there.
pub fn names_form_ambiguously(content_type: &[u8]) -> bool {
    let media = trim(
        content_type
            .split(|&b| b == b';')
            .next()
            .unwrap_or_default(),
    );
    !media.eq_ignore_ascii_case(FORM)
        && media
            .split(|&b| matches!(b, b',' | b' ' | b'\t'))
            .any(|word| word.eq_ignore_ascii_case(FORM))
}

/// Whether a form `Content-Type` value has no `charset` parameter or one
/// whose bytes for ASCII are ASCII (UTF-8, US-ASCII, Latin-1 and its
/// Windows form), case-insensitive, quoted or not: the only forms whose
/// field names key_auth reads as an upstream decoding them would. In
/// UTF-16, UTF-7 or EBCDIC, `apikey` is other bytes.
pub fn ascii_charset(content_type: &[u8]) -> bool {
    const ASCII_COMPATIBLE: [&[u8]; 10] = [
        b"utf-8",
        b"utf8",
        b"us-ascii",
        b"ascii",
        b"iso-8859-1",
        b"iso-8859-15",
        b"latin1",
        b"iso_8859-1",
        b"windows-1252",
        b"cp1252",
    ];
    content_type.split(|&b| b == b';').skip(1).all(|param| {
        let (name, value) = match param.iter().position(|&b| b == b'=') {
            Some(eq) => (trim(&param[..eq]), trim(&param[eq + 1..])),
            None => (trim(param), &b""[..]),
        };
        if !name.eq_ignore_ascii_case(b"charset") {
            return true;
        }
        let value = match value {
            [b'"', inner @ .., b'"'] => inner,
            other => other,
        };
        ASCII_COMPATIBLE
            .iter()
            .any(|known| value.eq_ignore_ascii_case(known))
    })
}

/// Whether a `Content-Encoding` value names a coding (`gzip`, `br`, ...):
/// any list element other than `identity` (case-insensitive) or empty.
pub fn is_coded(content_encoding: &[u8]) -> bool {
    content_encoding.split(|&b| b == b',').any(|coding| {
        let coding = trim(coding);
        !coding.is_empty() && !coding.eq_ignore_ascii_case(b"identity")
    })
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// What a form holds under a name.
#[derive(Debug, PartialEq, Eq)]
pub enum Field {
    Absent,
    /// Exactly once: the decoded value.
    Once(Vec<u8>),
    /// More than once: ambiguous (which one would an upstream take?), so
    /// refused rather than guessed.
    Repeated,
}

/// Splits a pair into its raw name and raw value (empty without `=`).
fn split_pair(pair: &[u8]) -> (&[u8], &[u8]) {
    match pair.iter().position(|&b| b == b'=') {
        Some(i) => (&pair[..i], &pair[i + 1..]),
        None => (pair, &[]),
    }
}

/// Whether `pair` is the field `name` (decoded name equal to `name`).
fn is_field(pair: &[u8], name: &[u8]) -> bool {
    if pair.is_empty() {
        return false;
    }
    let (raw, _) = split_pair(pair);
    if !raw.contains(&b'%') && !raw.contains(&b'+') {
        return raw == name; // nothing to decode
    }
    // An encoded name is never shorter than its decoding.
    raw.len() >= name.len() && decode(raw) == name
}

fn pairs(body: &[u8]) -> impl Iterator<Item = &[u8]> {
    body.split(|&b| b == b'&')
}

/// The field `name` of the form `body`.
pub fn find(body: &[u8], name: &[u8]) -> Field {
    let mut found = None;
    for pair in pairs(body).filter(|p| is_field(p, name)) {
        if found.is_some() {
            return Field::Repeated;
        }
        found = Some(decode(split_pair(pair).1));
    }
    found.map_or(Field::Absent, Field::Once)
}

/// `body` without any pair of the field `name`, or `None` when it has none.
/// Every other pair keeps its bytes and its order, joined by single `&` as
/// they were (an empty pair stays).
pub fn remove(body: &[u8], name: &[u8]) -> Option<Vec<u8>> {
    if !pairs(body).any(|p| is_field(p, name)) {
        return None;
    }
    let mut out = Vec::with_capacity(body.len());
    for (i, pair) in pairs(body).filter(|p| !is_field(p, name)).enumerate() {
        if i > 0 {
            out.push(b'&');
        }
        out.extend_from_slice(pair);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rm(body: &str, name: &str) -> Option<String> {
        remove(body.as_bytes(), name.as_bytes()).map(|v| String::from_utf8(v).unwrap())
    }

    #[test]
    fn recognises_ascii_compatible_charsets() {
        let form = "application/x-www-form-urlencoded";
        for ok in [
            "",
            "; charset=utf-8",
            ";CHARSET=\"UTF-8\"",
            "; a=b; charset=latin1",
            "; x",
        ] {
            assert!(ascii_charset(format!("{form}{ok}").as_bytes()), "{ok}");
        }
        for bad in [
            "; charset=utf-16",
            "; charset=\"utf-16be\"",
            "; charset=utf-7",
            "; charset=ibm037",
            "; charset=",
            "; charset=utf-8; charset=utf-16",
        ] {
            assert!(!ascii_charset(format!("{form}{bad}").as_bytes()), "{bad}");
        }
    }

    #[test]
    fn recognises_content_codings() {
        for coded in [
            &b"gzip"[..],
            b"GZIP",
            b"identity, gzip",
            b" br ",
            b"x-custom",
        ] {
            assert!(is_coded(coded), "{:?}", coded);
        }
        for plain in [&b""[..], b"identity", b" Identity ", b",", b"identity,,"] {
            assert!(!is_coded(plain), "{:?}", plain);
        }
    }

    #[test]
    fn recognises_form_content_types() {
        for yes in [
            "application/x-www-form-urlencoded",
            "Application/X-WWW-Form-URLEncoded",
            "application/x-www-form-urlencoded; charset=utf-8",
            "application/x-www-form-urlencoded;charset=UTF-8",
            " application/x-www-form-urlencoded ; charset=utf-8",
        ] {
            assert!(is_form(yes.as_bytes()), "{yes}");
        }
        for no in [
            "",
            "multipart/form-data; boundary=x",
            "application/json",
            "application/x-www-form-urlencodedx",
            "application/x-www-form-urlencoded-x; a=b",
            "text/plain; application/x-www-form-urlencoded",
        ] {
            assert!(!is_form(no.as_bytes()), "{no}");
        }
    }

    #[test]
    fn recognises_ambiguous_form_content_types() {
        for yes in [
            "application/x-www-form-urlencoded, text/plain",
            "text/plain, application/x-www-form-urlencoded",
            "application/x-www-form-urlencoded text/plain; charset=utf-8",
            "Application/X-WWW-Form-URLEncoded,",
            "text/plain,application/x-www-form-urlencoded",
        ] {
            assert!(names_form_ambiguously(yes.as_bytes()), "{yes}");
            assert!(!is_form(yes.as_bytes()), "{yes}");
        }
        for no in [
            "",
            "application/x-www-form-urlencoded",
            " application/x-www-form-urlencoded\t; charset=utf-8",
            "multipart/form-data; boundary=x-www-form-urlencoded",
            "text/plain; application/x-www-form-urlencoded",
            "application/json",
            "application/x-www-form-urlencodedx",
            "text/x-www-form-urlencoded",
        ] {
            assert!(!names_form_ambiguously(no.as_bytes()), "{no}");
        }
    }

    #[test]
    fn finds_a_field_decoded() {
        assert_eq!(
            find(b"a=1&apikey=k1&b=2", b"apikey"),
            Field::Once(b"k1".to_vec())
        );
        assert_eq!(
            find(b"apikey=a%2Bb+c", b"apikey"),
            Field::Once(b"a+b c".to_vec())
        );
        assert_eq!(find(b"api%6Bey=k", b"apikey"), Field::Once(b"k".to_vec()));
        assert_eq!(find(b"x=1&apikey", b"apikey"), Field::Once(Vec::new()));
        assert_eq!(find(b"apikey=", b"apikey"), Field::Once(Vec::new()));
        assert_eq!(find(b"apikey=a=b", b"apikey"), Field::Once(b"a=b".to_vec()));
        assert_eq!(find(b"my+key=k", b"my key"), Field::Once(b"k".to_vec()));
        // "+" in a form is a space: "my+key=" is the field "my key", never
        // the field "my+key" (found by the form_body fuzz target)
        assert_eq!(find(b"my+key=k", b"my+key"), Field::Absent);
        assert_eq!(find(b"my%2Bkey=k", b"my+key"), Field::Once(b"k".to_vec()));
    }

    #[test]
    fn does_not_find_other_fields() {
        for body in [
            "",
            "&",
            "a=1",
            "APIKEY=k",
            "apikeys=k",
            "xapikey=k",
            "a=apikey",
            "a=1&apikey%3Dk",
        ] {
            assert_eq!(find(body.as_bytes(), b"apikey"), Field::Absent, "{body}");
        }
    }

    #[test]
    fn refuses_a_repeated_field() {
        assert_eq!(find(b"apikey=a&apikey=a", b"apikey"), Field::Repeated);
        assert_eq!(find(b"apikey=a&x=1&api%6bey=b", b"apikey"), Field::Repeated);
        assert_eq!(find(b"apikey&apikey=b", b"apikey"), Field::Repeated);
    }

    #[test]
    fn removes_keeping_everything_else() {
        assert_eq!(rm("a=1&apikey=k&b=2", "apikey").as_deref(), Some("a=1&b=2"));
        assert_eq!(rm("apikey=k&b=%20+2", "apikey").as_deref(), Some("b=%20+2"));
        assert_eq!(rm("a=1&apikey=k", "apikey").as_deref(), Some("a=1"));
        assert_eq!(rm("apikey=k", "apikey").as_deref(), Some(""));
        assert_eq!(rm("a=1&&apikey=k&", "apikey").as_deref(), Some("a=1&&"));
        assert_eq!(
            rm("api%6Bey=k&b=2&apikey", "apikey").as_deref(),
            Some("b=2")
        );
        assert_eq!(rm("a=1&b=2", "apikey"), None);
        assert_eq!(rm("", "apikey"), None);
    }

    #[test]
    fn invalid_escapes_are_literal() {
        assert_eq!(
            find(b"apikey=%zz%4", b"apikey"),
            Field::Once(b"%zz%4".to_vec())
        );
        assert_eq!(find(b"%ZZ=k", b"%ZZ"), Field::Once(b"k".to_vec()));
    }
}
