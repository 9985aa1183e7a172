//! The request's query string (`r->args`): finding an argument, and
//! removing one so that an upstream sees every other argument exactly as the
//! client sent it (same order, same encoding, same empty pieces).
//!
//! The byte-string functions are pure and unit-tested;
//! [`remove_everywhere`] installs the edited target in a request so that
//! `proxy_pass`, `$args`, `$request_uri`, `$request` and the error log use
//! it.

use nginx_sys::ngx_http_request_t;

use super::pool::copy_to_pool;
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

/// `target` (a request target: the path, then `?` and the arguments)
/// without any `name=…` argument, or `None` when it has none. The path and
/// every other argument keep their bytes; a query left empty loses its `?`.
pub fn remove_from_target(target: &[u8], name: &[u8]) -> Option<Vec<u8>> {
    let q = target.iter().position(|&b| b == b'?')?;
    let rest = remove(&target[q + 1..], name)?;
    let mut out = Vec::with_capacity(target.len());
    out.extend_from_slice(&target[..q]);
    if !rest.is_empty() {
        out.push(b'?');
        out.extend_from_slice(&rest);
    }
    Some(out)
}

/// A request line (`METHOD SP target [SP HTTP/x.y]`, as nginx keeps it for
/// `$request` and the error log) without any `name=…` argument in its
/// target, or `None` when it has none. nginx accepts spaces inside the
/// target, so the target ends at the last space that precedes `HTTP/`.
pub fn remove_from_request_line(line: &[u8], name: &[u8]) -> Option<Vec<u8>> {
    let start = line.iter().position(|&b| b == b' ')? + 1;
    let end = match line.iter().rposition(|&b| b == b' ') {
        Some(sp) if sp >= start && line[sp + 1..].starts_with(b"HTTP/") => sp,
        _ => line.len(),
    };
    let target = remove_from_target(&line[start..end], name)?;
    let mut out = Vec::with_capacity(line.len());
    out.extend_from_slice(&line[..start]);
    out.extend_from_slice(&target);
    out.extend_from_slice(&line[end..]);
    Some(out)
}

/// Removes every `name=…` argument from everything nginx shows of the
/// request's target, wherever the request has been moved since the client
/// sent it:
///
/// * `r->args`: `$args`, `$query_string`, `$arg_*`, `proxy_pass` with a
///   URI or after a rewrite (which may have replaced the arguments, or kept
///   the client's);
/// * `r->unparsed_uri`: `$request_uri`, and `proxy_pass` without a URI part
///   while the request still forwards the client's target (rewrites and
///   internal redirects stop that, but `$request_uri` stays the client's);
/// * `r->request_line`: `$request` (access logs) and the `request: "…"`
///   context of nginx's own error-log lines.
///
/// Each edited field gets a copy in the request pool, so memory the request
/// does not own (an argument string from the configuration after
/// `set $args …`, HPACK's static table) is never written. The fields are
/// independent: a field is only changed when it holds the argument itself.
/// Returns whether anything was removed.
pub fn remove_everywhere(r: &mut ngx_http_request_t, name: &[u8]) -> Result<bool, NgxError> {
    let mut removed = false;
    if let Some(args) = remove(r.args.as_bytes(), name) {
        r.args = copy_to_pool(r, &args)?;
        removed = true;
    }
    if let Some(uri) = remove_from_target(r.unparsed_uri.as_bytes(), name) {
        r.unparsed_uri = copy_to_pool(r, &uri)?;
        removed = true;
    }
    if let Some(line) = remove_from_request_line(r.request_line.as_bytes(), name) {
        r.request_line = copy_to_pool(r, &line)?;
        removed = true;
    }
    Ok(removed)
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

    fn rm_target(target: &str, name: &str) -> Option<String> {
        remove_from_target(target.as_bytes(), name.as_bytes())
            .map(|v| String::from_utf8(v).unwrap())
    }

    fn rm_line(line: &str, name: &str) -> Option<String> {
        remove_from_request_line(line.as_bytes(), name.as_bytes())
            .map(|v| String::from_utf8(v).unwrap())
    }

    #[test]
    fn removes_from_a_target_keeping_the_path() {
        assert_eq!(
            rm_target("/a%2Fb?apikey=k", "apikey").as_deref(),
            Some("/a%2Fb")
        );
        assert_eq!(
            rm_target("/p?z=%2f+x&apikey=k&&b", "apikey").as_deref(),
            Some("/p?z=%2f+x&&b")
        );
        assert_eq!(
            rm_target("http://h/p?a=1&APIKEY=k", "apikey").as_deref(),
            Some("http://h/p?a=1")
        );
        assert_eq!(
            rm_target("/apikey=k", "apikey"),
            None,
            "in the path: not an argument"
        );
        assert_eq!(rm_target("/p?a=1", "apikey"), None);
        assert_eq!(rm_target("/p", "apikey"), None);
        assert_eq!(rm_target("", "apikey"), None);
    }

    #[test]
    fn removes_from_a_request_line() {
        assert_eq!(
            rm_line("GET /p?apikey=k&a=1 HTTP/1.1", "apikey").as_deref(),
            Some("GET /p?a=1 HTTP/1.1")
        );
        assert_eq!(
            rm_line("HEAD /p?apikey=k HTTP/1.0", "apikey").as_deref(),
            Some("HEAD /p HTTP/1.0")
        );
        assert_eq!(
            rm_line("GET /p?apikey=k", "apikey").as_deref(),
            Some("GET /p"),
            "HTTP/0.9: no protocol"
        );
        assert_eq!(
            rm_line("GET /a b?x=1 2&apikey=k HTTP/1.1", "apikey").as_deref(),
            Some("GET /a b?x=1 2 HTTP/1.1"),
            "spaces inside the target"
        );
        assert_eq!(
            rm_line("GET /p?apikey=k%20HTTP/1.1 HTTP/2.0", "apikey").as_deref(),
            Some("GET /p HTTP/2.0")
        );
        assert_eq!(rm_line("GET /p?a=1 HTTP/1.1", "apikey"), None);
        assert_eq!(rm_line("GET", "apikey"), None);
        assert_eq!(rm_line("", "apikey"), None);
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
