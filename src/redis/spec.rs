//! `key_auth_quota_store redis://[user[:password]@]host[:port][/db] [options]`:
//! the store's address, credentials and options, parsed from the
//! directive's words. Pure, so it is unit-tested and fuzzed
//! (`fuzz/fuzz_targets/redis_store_spec.rs`).
//!
//! No message this parser returns contains the password: nginx prints
//! them in `[emerg]` lines, which reach terminals and logs.

/// What the quota check does when Redis cannot answer in time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnError {
    /// Refuse the request with 503 (fail closed; the default).
    Deny,
    /// Count in the node's own `key_auth_zone` instead.
    Local,
    /// Let the request in uncounted (fails open).
    Allow,
}

impl OnError {
    pub fn name(self) -> &'static str {
        match self {
            OnError::Deny => "deny",
            OnError::Local => "local",
            OnError::Allow => "allow",
        }
    }
}

/// The parsed directive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreSpec {
    /// Host name or address (an IPv6 address without its brackets).
    pub host: Vec<u8>,
    pub port: u16,
    /// ACL user (Redis ≥ 6); `None`: `AUTH password` alone (the `default`
    /// user).
    pub user: Option<Vec<u8>>,
    /// From the URL (percent-decoded). `password_file=` is read by the
    /// caller, which sets this.
    pub password: Option<Vec<u8>>,
    pub password_file: Option<Vec<u8>>,
    /// Logical database (`SELECT`), 0 by default.
    pub db: u32,
    /// How long a request waits for Redis, connecting included.
    pub timeout_ms: u64,
    /// Prepended to the consumer's name to make its counter key.
    pub prefix: Vec<u8>,
    pub on_error: OnError,
}

pub const DEFAULT_PORT: u16 = 6379;
pub const DEFAULT_TIMEOUT_MS: u64 = 50;
pub const DEFAULT_PREFIX: &[u8] = b"authgate:";
/// Longest `timeout=`: a request never waits longer than a minute.
pub const MAX_TIMEOUT_MS: u64 = 60_000;

impl StoreSpec {
    /// `redis://host:port` (never the credentials): how logs name the store.
    pub fn display_address(&self) -> String {
        let host = String::from_utf8_lossy(&self.host);
        if self.host.contains(&b':') {
            format!("redis://[{host}]:{}", self.port)
        } else {
            format!("redis://{host}:{}", self.port)
        }
    }
}

/// Parses the URL and the option words (`name=value`). Duplicate options
/// are refused by the caller first (`refuse_duplicate_options`); here the
/// last one would win.
pub fn parse(url: &[u8], options: &[&[u8]]) -> Result<StoreSpec, String> {
    let mut spec = parse_url(url)?;
    for &word in options {
        let Some(eq) = word.iter().position(|&b| b == b'=') else {
            return Err(format!("unknown option \"{}\"", show(word)));
        };
        let (name, value) = (&word[..eq], &word[eq + 1..]);
        match name {
            b"timeout" => {
                spec.timeout_ms = parse_timeout(value).ok_or_else(|| {
                    format!(
                        "invalid \"timeout={}\": expected 1ms to 60s, e.g. 50ms",
                        show(value)
                    )
                })?
            }
            b"prefix" => {
                if value.len() > 256 || value.iter().any(|&b| b <= b' ' || b == 0x7f) {
                    return Err(format!(
                        "invalid \"prefix={}\": at most 256 visible characters",
                        show(value)
                    ));
                }
                spec.prefix = value.to_vec();
            }
            b"on_error" => {
                spec.on_error = match value {
                    b"deny" => OnError::Deny,
                    b"local" => OnError::Local,
                    b"allow" => OnError::Allow,
                    _ => {
                        return Err(format!(
                            "invalid \"on_error={}\": it must be \"deny\", \"local\" or \"allow\"",
                            show(value)
                        ))
                    }
                }
            }
            b"password_file" => {
                if value.is_empty() {
                    return Err("empty \"password_file=\"".into());
                }
                if spec.password.is_some() {
                    return Err(
                        "\"password_file=\" and a password in the URL: give one of them".into(),
                    );
                }
                spec.password_file = Some(value.to_vec());
            }
            _ => return Err(format!("unknown option \"{}\"", show(word))),
        }
    }
    Ok(spec)
}

/// `redis://[user[:password]@]host[:port][/db]`.
fn parse_url(url: &[u8]) -> Result<StoreSpec, String> {
    if url.starts_with(b"rediss://") {
        return Err("\"rediss://\" (TLS) is not supported; use \"redis://\"".into());
    }
    let Some(rest) = url.strip_prefix(b"redis://") else {
        return Err("the store must be a \"redis://\" URL".into());
    };
    // The userinfo ends at the last '@' (a password may hold '@' when
    // percent-encoded only, but be lenient about a raw one).
    let (userinfo, hostpart) = match rest.iter().rposition(|&b| b == b'@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    let (user, password) = match userinfo {
        None => (None, None),
        Some(info) => {
            let (u, p) = match info.iter().position(|&b| b == b':') {
                Some(c) => (&info[..c], Some(&info[c + 1..])),
                None => (info, None),
            };
            let user = percent_decode(u).ok_or("invalid percent-encoding in the URL's user")?;
            let password = match p {
                Some(p) => Some(
                    percent_decode(p).ok_or("invalid percent-encoding in the URL's password")?,
                ),
                None => None,
            };
            if password.as_ref().is_some_and(|p| p.is_empty()) {
                return Err("empty password in the URL".into());
            }
            if user.iter().any(|&b| b <= b' ') {
                return Err("invalid user in the URL".into());
            }
            ((!user.is_empty()).then_some(user), password)
        }
    };
    let (authority, db) = match hostpart.iter().position(|&b| b == b'/') {
        Some(s) => (&hostpart[..s], Some(&hostpart[s + 1..])),
        None => (hostpart, None),
    };
    let (host, port) = split_host_port(authority)?;
    let db = match db {
        None | Some(b"") => 0,
        Some(d) => parse_number(d)
            .filter(|&n| n <= i32::MAX as u64)
            .ok_or_else(|| format!("invalid database \"{}\" in the URL", show(d)))?
            as u32,
    };
    Ok(StoreSpec {
        host,
        port,
        user,
        password,
        password_file: None,
        db,
        timeout_ms: DEFAULT_TIMEOUT_MS,
        prefix: DEFAULT_PREFIX.to_vec(),
        on_error: OnError::Deny,
    })
}

fn split_host_port(authority: &[u8]) -> Result<(Vec<u8>, u16), String> {
    let (host, port) = if let Some(v6) = authority.strip_prefix(b"[") {
        let close = v6
            .iter()
            .position(|&b| b == b']')
            .ok_or("unclosed \"[\" in the URL's host")?;
        let host = &v6[..close];
        if host.is_empty()
            || !host
                .iter()
                .all(|b| b.is_ascii_hexdigit() || *b == b':' || *b == b'.')
        {
            return Err("invalid IPv6 address in the URL".into());
        }
        match &v6[close + 1..] {
            b"" => (host, None),
            p if p.first() == Some(&b':') => (host, Some(&p[1..])),
            _ => return Err("invalid host in the URL".into()),
        }
    } else {
        match authority.iter().position(|&b| b == b':') {
            Some(c) => (&authority[..c], Some(&authority[c + 1..])),
            None => (authority, None),
        }
    };
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(b));
    if !host_ok {
        return Err(format!("invalid host \"{}\" in the URL", show(host)));
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => parse_number(p)
            .filter(|&n| (1..=65535).contains(&n))
            .ok_or_else(|| format!("invalid port \"{}\" in the URL", show(p)))?
            as u16,
    };
    Ok((host.to_vec(), port))
}

fn parse_number(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 10 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    core::str::from_utf8(digits).ok()?.parse().ok()
}

/// `50ms`, `1s`, or a bare number of seconds (nginx's convention).
fn parse_timeout(value: &[u8]) -> Option<u64> {
    let (digits, unit) = if let Some(d) = value.strip_suffix(b"ms") {
        (d, 1)
    } else if let Some(d) = value.strip_suffix(b"s") {
        (d, 1000)
    } else {
        (value, 1000)
    };
    let ms = parse_number(digits)?.checked_mul(unit)?;
    (1..=MAX_TIMEOUT_MS).contains(&ms).then_some(ms)
}

fn percent_decode(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            let hex = core::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    Some(out)
}

/// A value for a message: printable ASCII as is, the rest escaped.
fn show(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(url: &str, options: &[&str]) -> Result<StoreSpec, String> {
        let o: Vec<&[u8]> = options.iter().map(|s| s.as_bytes()).collect();
        parse(url.as_bytes(), &o)
    }

    #[test]
    fn defaults() {
        let s = p("redis://127.0.0.1", &[]).unwrap();
        assert_eq!(s.host, b"127.0.0.1");
        assert_eq!(s.port, 6379);
        assert_eq!((&s.user, &s.password, s.db), (&None, &None, 0));
        assert_eq!(s.timeout_ms, 50);
        assert_eq!(s.prefix, b"authgate:");
        assert_eq!(s.on_error, OnError::Deny);
        assert_eq!(s.display_address(), "redis://127.0.0.1:6379");
    }

    #[test]
    fn full_url_and_options() {
        let s = p(
            "redis://gate:s%40cret@redis.example:6380/3",
            &["timeout=200ms", "prefix=q:", "on_error=local"],
        )
        .unwrap();
        assert_eq!(s.user.as_deref(), Some(&b"gate"[..]));
        assert_eq!(s.password.as_deref(), Some(&b"s@cret"[..]));
        assert_eq!((s.port, s.db, s.timeout_ms), (6380, 3, 200));
        assert_eq!(s.prefix, b"q:");
        assert_eq!(s.on_error, OnError::Local);
        assert_eq!(s.display_address(), "redis://redis.example:6380");
        let s = p("redis://:pw@[::1]:7000", &["timeout=1s", "on_error=allow"]).unwrap();
        assert_eq!((&s.user, s.password.as_deref()), (&None, Some(&b"pw"[..])));
        assert_eq!(s.host, b"::1");
        assert_eq!(s.timeout_ms, 1000);
        assert_eq!(s.display_address(), "redis://[::1]:7000");
        let s = p("redis://u@h:1", &["password_file=/etc/x"]).unwrap();
        assert_eq!(s.password_file.as_deref(), Some(&b"/etc/x"[..]));
        assert_eq!(s.user.as_deref(), Some(&b"u"[..]));
    }

    #[test]
    fn refusals_never_show_the_password() {
        let bad = [
            ("http://h:1", vec![]),
            ("rediss://h:1", vec![]),
            ("redis://u:topsecret@h:0", vec![]),
            ("redis://u:topsecret@h:65536", vec![]),
            ("redis://u:topsecret@h:x", vec![]),
            ("redis://u:topsecret@:1", vec![]),
            ("redis://u:topsecret@h:1/x", vec![]),
            ("redis://u:topsecret@h:1/99999999999", vec![]),
            ("redis://u:top%zzsecret@h:1", vec![]),
            ("redis://u:@h:1", vec![]),
            ("redis://u:topsecret@[::1", vec![]),
            ("redis://u:topsecret@h:1", vec!["timeout=0"]),
            ("redis://u:topsecret@h:1", vec!["timeout=61s"]),
            ("redis://u:topsecret@h:1", vec!["timeout=fast"]),
            ("redis://u:topsecret@h:1", vec!["on_error=maybe"]),
            ("redis://u:topsecret@h:1", vec!["prefix=a b"]),
            ("redis://u:topsecret@h:1", vec!["password_file=/x"]),
            ("redis://u:topsecret@h:1", vec!["password_file="]),
            ("redis://u:topsecret@h:1", vec!["colour=blue"]),
            ("redis://u:topsecret@h:1", vec!["blue"]),
        ];
        for (url, options) in bad {
            let e = p(url, &options).expect_err(url);
            assert!(!e.contains("topsecret"), "{url} {options:?}: {e}");
        }
    }

    #[test]
    fn timeouts() {
        assert_eq!(parse_timeout(b"50ms"), Some(50));
        assert_eq!(parse_timeout(b"2s"), Some(2000));
        assert_eq!(parse_timeout(b"1"), Some(1000));
        assert_eq!(parse_timeout(b"60s"), Some(60_000));
        assert_eq!(parse_timeout(b"0ms"), None);
        assert_eq!(parse_timeout(b"ms"), None);
        assert_eq!(parse_timeout(b"99999999999s"), None);
    }
}
