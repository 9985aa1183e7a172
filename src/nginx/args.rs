//! The request's query string (`r->args`): finding an argument, and
//! removing one so that an upstream sees every other argument exactly as the
//! client sent it (same order, same encoding, same empty pieces).
//!
//! The byte-string functions are pure and unit-tested; [`set`] installs
//! edited arguments in a request so that `proxy_pass` (and `$args`,
//! `$request_uri`) use them.

use nginx_sys::{ngx_http_request_t, ngx_pnalloc};

use super::bitfield;
use super::NgxError;

/// Arguments are separated by `&` only, as nginx's `ngx_http_arg()` and
/// `$arg_*` see them.
fn pieces(args: &[u8]) -> impl Iterator<Item = &[u8]> {
    args.split(|&b| b == b'&')
}

/// Whether `piece` is `name=…` (name compared ASCII-case-insensitively, as
/// `$arg_name` does).
fn is_arg(piece: &[u8], name: &[u8]) -> bool {
    piece.len() > name.len()
        && piece[name.len()] == b'='
        && piece[..name.len()].eq_ignore_ascii_case(name)
}

/// The raw (still percent-encoded) value of the first `name=value` argument.
/// `name` without `=` does not count, as with `$arg_name`.
pub fn find<'a>(args: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    pieces(args)
        .find(|p| is_arg(p, name))
        .map(|p| &p[name.len() + 1..])
}

/// `args` without any `name=…` argument, or `None` when there is none.
/// Every other byte is kept as it was.
pub fn remove(args: &[u8], name: &[u8]) -> Option<Vec<u8>> {
    find(args, name)?;
    let mut out = Vec::with_capacity(args.len());
    let mut first = true;
    for piece in pieces(args).filter(|p| !is_arg(p, name)) {
        if !first {
            out.push(b'&');
        }
        out.extend_from_slice(piece);
        first = false;
    }
    Some(out)
}

/// Decodes `%XX` escapes and `+` (space), as form-encoded query values are
/// meant; an invalid escape is kept literally.
pub fn decode(value: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(value.len());
    let mut i = 0;
    while i < value.len() {
        match value[i] {
            b'%' if i + 2 < value.len() => match (hex(value[i + 1]), hex(value[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// Replaces the request's arguments with `args` (copied into the request
/// pool). When the request still forwards its original request line
/// (`r->valid_unparsed_uri`, which `proxy_pass` without a URI part sends as
/// is), the unparsed URI is rebuilt as the original path bytes plus the new
/// arguments, so the path keeps its exact encoding too.
pub fn set(r: &mut ngx_http_request_t, args: &[u8]) -> Result<(), NgxError> {
    let path: &[u8] = if bitfield::request::valid_unparsed_uri(r) {
        let unparsed = r.unparsed_uri.as_bytes();
        let end = unparsed
            .iter()
            .position(|&b| b == b'?')
            .unwrap_or(unparsed.len());
        &unparsed[..end]
    } else {
        &[]
    };
    let with_path = bitfield::request::valid_unparsed_uri(r);
    let len = if with_path {
        path.len() + usize::from(!args.is_empty()) + args.len()
    } else {
        args.len()
    };
    // SAFETY: allocation in the live request pool; `len` bytes are written
    // below before anyone reads them.
    let p = unsafe { ngx_pnalloc(r.pool, len.max(1)) }.cast::<u8>();
    if p.is_null() {
        return Err(NgxError);
    }
    // SAFETY: `p` holds `len` bytes; sources are live request or local
    // memory and do not overlap the fresh allocation.
    unsafe {
        let mut at = p;
        if with_path {
            core::ptr::copy_nonoverlapping(path.as_ptr(), at, path.len());
            at = at.add(path.len());
            if !args.is_empty() {
                *at = b'?';
                at = at.add(1);
            }
        }
        core::ptr::copy_nonoverlapping(args.as_ptr(), at, args.len());
        r.args.data = at;
        r.args.len = args.len();
        if with_path {
            r.unparsed_uri.data = p;
            r.unparsed_uri.len = len;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rm(args: &str, name: &str) -> Option<String> {
        remove(args.as_bytes(), name.as_bytes()).map(|v| String::from_utf8(v).unwrap())
    }

    #[test]
    fn finds_like_arg_variables() {
        assert_eq!(find(b"a=1&apikey=k&b=2", b"apikey"), Some(&b"k"[..]));
        assert_eq!(find(b"APIKEY=k", b"apikey"), Some(&b"k"[..]));
        assert_eq!(find(b"apikey=", b"apikey"), Some(&b""[..]));
        assert_eq!(find(b"apikey", b"apikey"), None);
        assert_eq!(find(b"xapikey=k", b"apikey"), None);
        assert_eq!(find(b"apikeyx=k", b"apikey"), None);
        assert_eq!(find(b"a=apikey=k", b"apikey"), None);
        assert_eq!(find(b"apikey=1&apikey=2", b"apikey"), Some(&b"1"[..]));
        assert_eq!(find(b"", b"apikey"), None);
    }

    #[test]
    fn removes_keeping_everything_else() {
        assert_eq!(rm("apikey=k", "apikey").as_deref(), Some(""));
        assert_eq!(rm("apikey=k&a=1", "apikey").as_deref(), Some("a=1"));
        assert_eq!(rm("a=1&apikey=k", "apikey").as_deref(), Some("a=1"));
        assert_eq!(
            rm("z=%2F%20+&apikey=k&a=1&a=0&&b", "apikey").as_deref(),
            Some("z=%2F%20+&a=1&a=0&&b")
        );
        assert_eq!(
            rm("apikey=1&x=y&ApiKey=2", "apikey").as_deref(),
            Some("x=y")
        );
        assert_eq!(rm("apikey&x=1", "apikey"), None);
        assert_eq!(rm("a=1", "apikey"), None);
        assert_eq!(rm("a=1&apikeys=2", "apikey"), None);
    }

    #[test]
    fn decodes_query_values() {
        assert_eq!(decode(b"a%20b+c"), b"a b c");
        assert_eq!(decode(b"%2f%2F"), b"//");
        assert_eq!(decode(b"100%"), b"100%");
        assert_eq!(decode(b"%zz%4"), b"%zz%4");
        assert_eq!(decode(b"plain-key"), b"plain-key");
    }
}
