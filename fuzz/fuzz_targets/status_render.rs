//! The status page (src/counters/render.rs): the `Accept` parser is total
//! and agrees with a model of the documented rule; any label bytes (an auth
//! URI, a consumer name) render as one well-formed Prometheus sample line
//! per sample and as one well-formed JSON string.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nginx_authgate::counters::render::{
    escape_label, json_string, render, Format, SeriesSnapshot, Snapshot,
};
use nginx_authgate::counters::schema::{Kind, SLOTS};

/// The documented rule, written differently: the first comma-separated
/// media type (parameters after `;` ignored, blanks trimmed, any case)
/// that is ours decides.
fn model(accept: &[u8]) -> Option<Format> {
    let text = String::from_utf8_lossy(accept).to_string();
    for item in text.split(',') {
        let media = item.split(';').next().unwrap_or("");
        let media = media.trim_matches(|c: char| c.is_ascii_whitespace()).to_ascii_lowercase();
        match media.as_str() {
            "application/json" => return Some(Format::Json),
            "text/plain" | "application/openmetrics-text" => return Some(Format::Prometheus),
            _ => {}
        }
    }
    None
}

/// A label value as the exposition format reads it: up to the closing
/// quote, with `\\`, `\"`, `\n` escapes and no raw newline. Returns the rest.
fn label_value(s: &str) -> Option<&str> {
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some(&s[i + 1..]),
            '\\' => match chars.next() {
                Some((_, '\\' | '"' | 'n')) => {}
                _ => return None,
            },
            '\n' => return None,
            _ => {}
        }
    }
    None
}

/// A JSON string literal (after its opening quote): escapes are JSON's,
/// no raw control character. Returns the rest.
fn json_value(s: &str) -> Option<&str> {
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some(&s[i + 1..]),
            '\\' => match chars.next() {
                Some((_, '"' | '\\' | '/' | 'b' | 'f' | 'n' | 'r' | 't')) => {}
                Some((_, 'u')) => {
                    for _ in 0..4 {
                        if !chars.next().is_some_and(|(_, h)| h.is_ascii_hexdigit()) {
                            return None;
                        }
                    }
                }
                _ => return None,
            },
            c if (c as u32) < 0x20 => return None,
            _ => {}
        }
    }
    None
}

fuzz_target!(|data: &[u8]| {
    assert_eq!(Format::from_accept(data), model(data), "{:?}", String::from_utf8_lossy(data));

    let mut escaped = String::new();
    escape_label(&mut escaped, data);
    escaped.push('"');
    assert_eq!(label_value(&escaped), Some(""), "label {escaped:?}");

    let mut json = String::new();
    json_string(&mut json, data);
    assert!(json.starts_with('"'));
    assert_eq!(json_value(&json[1..]), Some(""), "json {json:?}");

    // A whole page: every sample line is NAME{uri="…",…} VALUE.
    let snapshot = Snapshot {
        zone: String::from_utf8_lossy(data).into_owned(),
        process: [1, 2, 3, 4, 5],
        series: vec![SeriesSnapshot {
            kind: Kind::AuthRequest,
            label: data.to_vec(),
            values: [7; SLOTS],
        }],
    };
    let text = render(&snapshot, Format::Prometheus);
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let (name, mut rest) = line.split_at(line.find(['{', ' ']).expect("a name"));
        assert!(name.starts_with("authgate_"), "{line:?}");
        if let Some(labels) = rest.strip_prefix('{') {
            let mut r = labels;
            loop {
                let eq = r.find("=\"").expect("label=\"");
                assert!(r[..eq].bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{line:?}");
                r = label_value(&r[eq + 2..]).expect("a well-formed label value");
                match r.as_bytes().first() {
                    Some(b',') => r = &r[1..],
                    Some(b'}') => break,
                    _ => panic!("{line:?}"),
                }
            }
            rest = &r[1..];
        }
        let value = rest.strip_prefix(' ').expect("a value");
        assert!(value.parse::<f64>().is_ok(), "{line:?}");
    }
    let page = render(&snapshot, Format::Json);
    assert!(page.starts_with('{') && page.ends_with("}\n"));
});
