//! `params="name=value,…"` templates (src/auth_http/params.rs): parsing is
//! total, its result is well formed and survives a print-and-parse round
//! trip; the subject common-name extraction and method class are total.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nginx_authgate::auth_http::params::{
    access_for_method, common_name, parse, Param, ParamsError, Piece, Placeholder,
};

const LETTERS: &[u8] = b"uPcaprCdAtm";

/// The letter of a placeholder, found through the parser itself.
fn letter(p: Placeholder) -> u8 {
    for &l in LETTERS {
        let spec = [b'x', b'=', b'%', l];
        if parse(&spec).unwrap()[0].pieces == [Piece::Placeholder(p)] {
            return l;
        }
    }
    panic!("no letter for {p:?}");
}

/// The template text that parses to `params`.
fn print(params: &[Param]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, p) in params.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&p.name);
        out.push(b'=');
        for piece in &p.pieces {
            match piece {
                Piece::Text(t) => {
                    for &b in t {
                        if b == b'%' {
                            out.push(b'%');
                        }
                        out.push(b);
                    }
                }
                Piece::Placeholder(ph) => out.extend_from_slice(&[b'%', letter(*ph)]),
            }
        }
    }
    out
}

fuzz_target!(|spec: &[u8]| {
    match parse(spec) {
        Ok(params) => {
            assert_eq!(params.len(), spec.split(|&b| b == b',').count());
            for p in &params {
                assert!(!p.name.is_empty());
                assert!(!p.name.contains(&b'=') && !p.name.contains(&b','));
                let mut previous_text = false;
                for piece in &p.pieces {
                    if let Piece::Text(t) = piece {
                        assert!(!t.is_empty(), "no empty text pieces");
                        assert!(!t.contains(&b','));
                        assert!(!previous_text, "adjacent text pieces are merged");
                        previous_text = true;
                    } else {
                        previous_text = false;
                    }
                }
            }
            let printed = print(&params);
            assert_eq!(parse(&printed).as_ref(), Ok(&params), "round trip");
        }
        Err(e) => {
            // Every refusal has a message (it goes into an [emerg] line).
            assert!(!e.to_string().is_empty());
            if e == ParamsError::Empty {
                assert!(spec.is_empty());
            }
        }
    }

    let cn = common_name(spec);
    assert!(cn.len() <= spec.len());
    // A common name needs "CN=" (or "cn=") in the subject once escapes are
    // undone (an escaped character stands for itself: "C\\N=x" reads as
    // "CN=x").
    let unescaped: Vec<u8> = spec.iter().copied().filter(|&b| b != b'\\').collect();
    if !unescaped.windows(3).any(|w| w == b"CN=" || w == b"cn=") {
        assert!(cn.is_empty());
    }
    let access = access_for_method(spec);
    assert!(access == b"1" || access == b"2");
});
