//! `params="name=value,…"` templates: parsing (configuration time) and
//! form encoding (request time). Pure logic.
//!
//! A value is text with EMQX-style placeholders (`%u`, `%c`, …) and, in the
//! text parts, nginx variables (`tenant=$http_x_tenant`); `%%` is a literal
//! percent sign.

use std::fmt;

/// A placeholder and the request property it stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder {
    /// `%u` Basic-auth user name.
    User,
    /// `%P` Basic-auth password.
    Password,
    /// `%c` the `auth_http_client_id` value.
    ClientId,
    /// `%a` client IP address.
    ClientAddr,
    /// `%p` client port.
    ClientPort,
    /// `%r` client protocol (`$server_protocol`).
    Protocol,
    /// `%C` TLS client certificate common name.
    CertCommonName,
    /// `%d` TLS client certificate subject.
    CertSubject,
    /// `%A` access: 1 reading, 2 writing.
    Access,
    /// `%t` the request path.
    Topic,
    /// `%m` the `auth_http_mountpoint` value.
    Mountpoint,
}

impl Placeholder {
    fn from_letter(c: u8) -> Option<Self> {
        Some(match c {
            b'u' => Self::User,
            b'P' => Self::Password,
            b'c' => Self::ClientId,
            b'a' => Self::ClientAddr,
            b'p' => Self::ClientPort,
            b'r' => Self::Protocol,
            b'C' => Self::CertCommonName,
            b'd' => Self::CertSubject,
            b'A' => Self::Access,
            b't' => Self::Topic,
            b'm' => Self::Mountpoint,
            _ => return None,
        })
    }
}

/// A piece of a parameter value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Text, possibly holding nginx `$variables` (compiled later).
    Text(Vec<u8>),
    Placeholder(Placeholder),
}

/// One `name=value` parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub name: Vec<u8>,
    pub pieces: Vec<Piece>,
}

/// Why a `params` string was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamsError {
    Empty,
    MissingEquals(String),
    EmptyName(String),
    UnknownPlaceholder(String),
    TrailingPercent(String),
}

impl fmt::Display for ParamsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "empty parameter list"),
            Self::MissingEquals(p) => write!(f, "parameter \"{p}\" has no \"=\""),
            Self::EmptyName(p) => write!(f, "parameter \"{p}\" has an empty name"),
            Self::UnknownPlaceholder(p) => write!(
                f,
                "unknown placeholder \"{p}\" (known: %u %P %c %a %p %r %C %d %A %t %m, and %% for \"%\")"
            ),
            Self::TrailingPercent(p) => write!(f, "parameter \"{p}\" ends with a lone \"%\""),
        }
    }
}

/// Parses `name=value,name=value`.
pub fn parse(spec: &[u8]) -> Result<Vec<Param>, ParamsError> {
    if spec.is_empty() {
        return Err(ParamsError::Empty);
    }
    spec.split(|&b| b == b',').map(parse_param).collect()
}

fn parse_param(item: &[u8]) -> Result<Param, ParamsError> {
    let shown = || String::from_utf8_lossy(item).into_owned();
    let eq = item
        .iter()
        .position(|&b| b == b'=')
        .ok_or_else(|| ParamsError::MissingEquals(shown()))?;
    let (name, value) = (&item[..eq], &item[eq + 1..]);
    if name.is_empty() {
        return Err(ParamsError::EmptyName(shown()));
    }
    Ok(Param {
        name: name.to_vec(),
        pieces: parse_value(value).map_err(|e| match e {
            ParamsError::TrailingPercent(_) => ParamsError::TrailingPercent(shown()),
            e => e,
        })?,
    })
}

/// Parses one value: text with `%` placeholders (`%%` is a `%`).
pub fn parse_value(value: &[u8]) -> Result<Vec<Piece>, ParamsError> {
    let shown = || String::from_utf8_lossy(value).into_owned();
    let mut pieces = Vec::new();
    let mut text = Vec::new();
    let mut i = 0;
    while i < value.len() {
        if value[i] != b'%' {
            text.push(value[i]);
            i += 1;
            continue;
        }
        let Some(&letter) = value.get(i + 1) else {
            return Err(ParamsError::TrailingPercent(shown()));
        };
        if letter == b'%' {
            text.push(b'%');
        } else {
            let placeholder = Placeholder::from_letter(letter).ok_or_else(|| {
                ParamsError::UnknownPlaceholder(
                    String::from_utf8_lossy(&value[i..i + 2]).into_owned(),
                )
            })?;
            if !text.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut text)));
            }
            pieces.push(Piece::Placeholder(placeholder));
        }
        i += 2;
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

/// Whether any parameter uses `placeholder`.
pub fn uses(params: &[Param], placeholder: Placeholder) -> bool {
    params
        .iter()
        .flat_map(|p| &p.pieces)
        .any(|piece| *piece == Piece::Placeholder(placeholder))
}

/// Appends `bytes` to `out` encoded as `application/x-www-form-urlencoded`
/// (the HTML form serialisation): ASCII alphanumerics and `*-._` stay,
/// space becomes `+`, every other byte `%XX`.
pub fn form_encode_into(out: &mut impl Extend<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => out.extend([b]),
            b' ' => out.extend([b'+']),
            _ => out.extend([b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]),
        }
    }
}

/// `%A`: 1 for reading methods, 2 for everything that may change state.
/// Unknown methods count as writing: the stricter answer.
pub fn access_for_method(method: &[u8]) -> &'static [u8] {
    match method {
        b"GET" | b"HEAD" | b"OPTIONS" => b"1",
        _ => b"2",
    }
}

/// The common name in an RFC 2253 subject such as nginx's
/// `$ssl_client_s_dn` (`CN=alice,O=Example\, Inc.,C=US`), unescaped: the
/// value of the first `CN` attribute, with every escape decoded (RFC 2253
/// section 2.4): `\` and a special character (`\,` `\+` `\\` `\"` …) is
/// that character, `\` and two hex digits is that byte (`Jos\C3\A9` →
/// the UTF-8 bytes of `José`). OpenSSL (and so nginx) escapes every byte
/// above 127 that way. A value written as `#` and hex digits (the BER
/// encoding of an attribute of an unusual type) is decoded to the string it
/// holds when it is one of the string types; otherwise it is kept as it
/// was written.
pub fn common_name(subject: &[u8]) -> Vec<u8> {
    let mut i = 0;
    while i <= subject.len() {
        // One attribute `type=value` from `i` up to an unescaped `,` or `+`.
        let start = i;
        let mut escaped = false;
        while i < subject.len() {
            match subject[i] {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b',' | b'+' => break,
                _ => {}
            }
            i += 1;
        }
        let attribute = &subject[start..i];
        i += 1;
        if let Some(value) = attribute
            .strip_prefix(b"CN=")
            .or_else(|| attribute.strip_prefix(b"cn="))
        {
            return rfc2253_value(value);
        }
    }
    Vec::new()
}

/// An RFC 2253 attribute value, unescaped.
fn rfc2253_value(value: &[u8]) -> Vec<u8> {
    if let Some(hex) = value.strip_prefix(b"#") {
        return ber_string(hex).unwrap_or_else(|| value.to_vec());
    }
    let mut out = Vec::with_capacity(value.len());
    let mut i = 0;
    while i < value.len() {
        if value[i] != b'\\' || i + 1 == value.len() {
            out.push(value[i]);
            i += 1;
            continue;
        }
        match (
            hex_digit(value[i + 1]),
            value.get(i + 2).copied().and_then(hex_digit),
        ) {
            (Some(hi), Some(lo)) => {
                out.push(hi << 4 | lo);
                i += 3;
            }
            _ => {
                out.push(value[i + 1]);
                i += 2;
            }
        }
    }
    out
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The content of a BER-encoded string (`#0C04...` in RFC 2253), given as
/// hex digits: UTF8String, PrintableString, T61String, IA5String or
/// VisibleString with a definite length that matches. `None` otherwise.
fn ber_string(hex: &[u8]) -> Option<Vec<u8>> {
    if hex.len() % 2 != 0 {
        return None;
    }
    let bytes: Vec<u8> = hex
        .chunks(2)
        .map(|p| Some(hex_digit(p[0])? << 4 | hex_digit(p[1])?))
        .collect::<Option<_>>()?;
    let (&tag, rest) = bytes.split_first()?;
    if !matches!(tag, 0x0c | 0x13 | 0x14 | 0x16 | 0x1a) {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, content) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 2 || rest.len() < n {
            return None;
        }
        let (len, content) = rest.split_at(n);
        (
            len.iter().fold(0usize, |l, &b| l << 8 | usize::from(b)),
            content,
        )
    };
    (content.len() == len).then(|| content.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Piece {
        Piece::Text(s.as_bytes().to_vec())
    }

    #[test]
    fn parses_the_emqx_example() {
        let params =
            parse(b"access=%A,username=%u,clientid=%c,ipaddr=%a,topic=%t,mountpoint=%m").unwrap();
        let names: Vec<_> = params
            .iter()
            .map(|p| String::from_utf8(p.name.clone()).unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "access",
                "username",
                "clientid",
                "ipaddr",
                "topic",
                "mountpoint"
            ]
        );
        assert_eq!(params[0].pieces, [Piece::Placeholder(Placeholder::Access)]);
        assert_eq!(params[4].pieces, [Piece::Placeholder(Placeholder::Topic)]);
    }

    #[test]
    fn mixes_text_placeholders_variables_and_percent_escape() {
        let params = parse(b"who=u:%u/%c,tenant=$http_x_tenant,pct=100%%").unwrap();
        assert_eq!(
            params[0].pieces,
            [
                text("u:"),
                Piece::Placeholder(Placeholder::User),
                text("/"),
                Piece::Placeholder(Placeholder::ClientId)
            ]
        );
        assert_eq!(params[1].pieces, [text("$http_x_tenant")]);
        assert_eq!(params[2].pieces, [text("100%")]);
    }

    #[test]
    fn empty_value_is_allowed() {
        assert_eq!(parse(b"a=").unwrap()[0].pieces, []);
    }

    #[test]
    fn every_placeholder_letter_is_known() {
        for letter in "uPcaprCdAtm".bytes() {
            let spec = format!("x=%{}", letter as char);
            assert!(parse(spec.as_bytes()).is_ok(), "{spec}");
        }
    }

    #[test]
    fn rejects_malformed_params() {
        assert_eq!(parse(b""), Err(ParamsError::Empty));
        assert_eq!(parse(b"a=1,b"), Err(ParamsError::MissingEquals("b".into())));
        assert_eq!(parse(b"=1"), Err(ParamsError::EmptyName("=1".into())));
        assert_eq!(
            parse(b"a=%x"),
            Err(ParamsError::UnknownPlaceholder("%x".into()))
        );
        assert_eq!(
            parse(b"a=1%"),
            Err(ParamsError::TrailingPercent("a=1%".into()))
        );
        assert_eq!(
            parse(b"a=1,,b=2"),
            Err(ParamsError::MissingEquals("".into()))
        );
    }

    #[test]
    fn finds_placeholder_use() {
        let params = parse(b"a=%u,b=x%P").unwrap();
        assert!(uses(&params, Placeholder::Password));
        assert!(!uses(&params, Placeholder::ClientId));
    }

    #[test]
    fn form_encoding_handles_every_byte() {
        let mut out = Vec::new();
        form_encode_into(&mut out, b"a b&c=d+e/f?g%h\xff\x00~*-._Z9");
        assert_eq!(out, b"a+b%26c%3Dd%2Be%2Ff%3Fg%25h%FF%00%7E*-._Z9");
        let all: Vec<u8> = (0..=255).collect();
        let mut encoded = Vec::new();
        form_encode_into(&mut encoded, &all);
        assert!(encoded.iter().all(|b| b.is_ascii_graphic()));
    }

    #[test]
    fn access_classes() {
        for m in ["GET", "HEAD", "OPTIONS"] {
            assert_eq!(access_for_method(m.as_bytes()), b"1");
        }
        for m in ["POST", "PUT", "PATCH", "DELETE", "PROPFIND", ""] {
            assert_eq!(access_for_method(m.as_bytes()), b"2");
        }
    }

    #[test]
    fn common_name_from_subject() {
        assert_eq!(common_name(b"CN=alice,O=Example,C=US"), b"alice");
        assert_eq!(
            common_name(b"C=US,O=Example\\, Inc.,CN=bob\\,jr"),
            b"bob,jr"
        );
        assert_eq!(common_name(b"O=NoCN"), b"");
        assert_eq!(common_name(b""), b"");
        assert_eq!(common_name(b"CN=multi+UID=7"), b"multi");
        assert_eq!(common_name(b"UID=7+CN=second"), b"second");
    }

    #[test]
    fn common_name_decodes_rfc2253_escapes() {
        // nginx (OpenSSL, RFC 2253 flags) escapes bytes above 127 as \XX
        assert_eq!(common_name(b"CN=Jos\\C3\\A9,O=x"), "Jos\u{e9}".as_bytes());
        assert_eq!(common_name(b"CN=Jos\\c3\\a9"), "Jos\u{e9}".as_bytes());
        // ... so that it never equals the CN that really is "JosC3A9"
        assert_eq!(common_name(b"CN=JosC3A9"), b"JosC3A9");
        assert_ne!(common_name(b"CN=Jos\\C3\\A9"), common_name(b"CN=JosC3A9"));
        // special characters
        assert_eq!(
            common_name(b"CN=a\\,b\\+c\\;d\\<e\\>f\\\"g\\\\h\\=i"),
            b"a,b+c;d<e>f\"g\\h=i"
        );
        assert_eq!(common_name(b"CN=\\#hash\\ "), b"#hash ");
        assert_eq!(common_name(b"CN=\\ lead"), b" lead");
        // an escaped "\\" before hex digits is a backslash, then text
        assert_eq!(common_name(b"CN=x\\\\C3"), b"x\\C3");
        // an escaped separator does not end the CN; an escaped backslash
        // before a separator does
        assert_eq!(common_name(b"O=a\\,CN=no,CN=yes"), b"yes");
        assert_eq!(common_name(b"CN=a\\\\,O=b"), b"a\\");
        // control bytes
        assert_eq!(common_name(b"CN=a\\0Ab"), b"a\nb");
        // a lone trailing backslash, a single hex digit: kept as written
        assert_eq!(common_name(b"CN=a\\"), b"a\\");
        assert_eq!(common_name(b"CN=a\\Cz"), b"aCz");
    }

    #[test]
    fn common_name_decodes_ber_hex_values() {
        // UTF8String "abc", PrintableString "Ab"
        assert_eq!(common_name(b"CN=#0C03616263"), b"abc");
        assert_eq!(common_name(b"CN=#13024162,O=x"), b"Ab");
        // long-form length
        let mut hex = b"CN=#0C8180".to_vec();
        hex.extend(b"61".repeat(128));
        assert_eq!(common_name(&hex), vec![b'a'; 128]);
        // not a string type, wrong length, odd digits: kept as written
        assert_eq!(common_name(b"CN=#0203010001"), b"#0203010001");
        assert_eq!(common_name(b"CN=#0C0461"), b"#0C0461");
        assert_eq!(common_name(b"CN=#0C0"), b"#0C0");
        // a literal "#" is escaped, so it never reads as BER
        assert_eq!(common_name(b"CN=\\#0C03616263"), b"#0C03616263");
    }
}
