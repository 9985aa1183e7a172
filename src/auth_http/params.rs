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
    Ok(Param {
        name: name.to_vec(),
        pieces,
    })
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
/// `$ssl_client_s_dn` (`CN=alice,O=Example\, Inc.,C=US`), unescaped.
pub fn common_name(subject: &[u8]) -> Vec<u8> {
    let mut rdn = Vec::new();
    let mut i = 0;
    loop {
        let at_end = i >= subject.len();
        if at_end || subject[i] == b',' || subject[i] == b'+' {
            if let Some(value) = rdn.strip_prefix(b"CN=") {
                return value.to_vec();
            }
            if at_end {
                return Vec::new();
            }
            rdn.clear();
            i += 1;
            continue;
        }
        if subject[i] == b'\\' && i + 1 < subject.len() {
            rdn.push(subject[i + 1]);
            i += 2;
            continue;
        }
        rdn.push(subject[i]);
        i += 1;
    }
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
    }
}
