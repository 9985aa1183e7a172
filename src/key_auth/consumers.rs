//! The consumer registry: parsing `key_auth_consumers` lines and looking keys
//! up. Pure Rust, no nginx; built once at configuration time.
//!
//! No key's text is kept. A plain `key=` entry is kept as its 128-bit keyed
//! hash ([`KeyedHash`]: SipHash-1-3 with a secret drawn from the kernel for
//! this registry, i.e. per configuration load); a `key=sha256:` entry as its
//! SHA-256 digest. A request's key is hashed with the same secret and looked
//! up among the plain entries; only when that fails and the configuration
//! has `sha256:` entries is its SHA-256 computed and looked up among those.
//! (SHA-256 of every presented key was most of key_auth's cost: about 3 000
//! instructions in software, where SipHash-1-3 takes about 150.)
//!
//! Timing: the tables compare hashes, never secrets. Without the secret a
//! client cannot compute, predict or collide the keyed hashes (SipHash is a
//! keyed PRF), so whatever the lookup's timing shows about where a guess's
//! hash falls among the stored ones tells nothing about any key; a digest's
//! position likewise reveals nothing (preimage resistance). Both hashes are
//! uniformly distributed, so their first eight bytes serve directly as the
//! hash table's hash (no second hashing pass).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use sha2::{Digest as _, Sha256};

use crate::keyed_hash::KeyedHash;

/// A SHA-256 digest.
pub type Digest = [u8; 32];

/// `limit=N/WINDOW`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Requests allowed per window (≥ 1).
    pub count: u64,
    /// Window length in milliseconds (≥ 1).
    pub window_ms: u64,
}

/// Status sent when a consumer is over its limit and none is configured.
pub const DEFAULT_LIMIT_STATUS: u16 = 503;

/// One consumer: what it is told upstream, and its quota.
#[derive(Debug, Clone)]
pub struct Consumer {
    pub name: String,
    /// `group=a,b`: for `key_auth_allow` / `key_auth_deny group:NAME`.
    pub groups: Vec<String>,
    pub custom_id: Option<String>,
    pub limit: Option<Limit>,
    /// `limit_status=`; see [`Consumer::over_limit_status`].
    pub limit_status: Option<u16>,
    /// The key of this consumer's counter in the shared zone: derived from
    /// the name (not from its position), so counts survive reloads that
    /// reorder or add consumers.
    pub counter_key: [u8; 16],
}

impl Consumer {
    /// The status sent when the consumer is over its limit.
    pub fn over_limit_status(&self) -> u16 {
        self.limit_status.unwrap_or(DEFAULT_LIMIT_STATUS)
    }
}

/// One key of a consumer.
#[derive(Debug, Clone)]
pub struct Credential {
    /// Index into the consumer list.
    pub consumer: usize,
    /// `credential=` (sent as `X-Credential-Identifier`).
    pub id: Option<String>,
    /// `expires=`, Unix seconds (see [`super::expiry`]).
    pub expires: Option<i64>,
}

/// One parsed `key_auth_consumers` line.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Line {
    pub name: String,
    pub key: Option<Key>,
    pub credential: Option<String>,
    /// `expires=`, Unix seconds.
    pub expires: Option<i64>,
    pub custom_id: Option<String>,
    pub limit: Option<Limit>,
    pub limit_status: Option<u16>,
    pub groups: Option<Vec<String>>,
}

/// A key as a consumer line gives it. The plain text lives only while its
/// line is added to the registry (which keeps its keyed hash); it is never
/// printed.
#[derive(Clone, PartialEq, Eq)]
pub enum Key {
    /// `key=TEXT`.
    Plain(Vec<u8>),
    /// `key=sha256:HEX`.
    Sha256(Digest),
}

impl core::fmt::Debug for Key {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Key::Plain(_) => "Key::Plain(..)",
            Key::Sha256(_) => "Key::Sha256(..)",
        })
    }
}

/// Hasher for digests and keyed hashes: their first eight bytes are already
/// uniform.
#[derive(Default, Debug)]
pub struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // A [u8; 32] key arrives here as its 32 bytes: take the first eight.
        let mut first = [0u8; 8];
        let n = bytes.len().min(8);
        first[..n].copy_from_slice(&bytes[..n]);
        self.0 = u64::from_le_bytes(first);
    }
    fn write_usize(&mut self, _: usize) {
        // The length prefix slices hash first: always 32, carries nothing.
    }
}

type DigestMap<V> = HashMap<Digest, V, BuildHasherDefault<DigestHasher>>;
type KeyedMap<V> = HashMap<u128, V, BuildHasherDefault<DigestHasher>>;

/// All consumers and keys of one `http` block.
#[derive(Default, Debug)]
pub struct Registry {
    consumers: Vec<Consumer>,
    by_name: HashMap<String, usize>,
    credentials: Vec<Credential>,
    /// The secret of `plain` (made with the first plain key).
    hasher: Option<KeyedHash>,
    /// Plain keys while the block is parsed: keyed hash -> credential index
    /// (finds a duplicate at its line).
    plain: KeyedMap<u32>,
    /// Plain keys once parsed ([`Registry::freeze`]): the keyed hashes sorted,
    /// and each one's credential index, 20 bytes a key.
    plain_sorted: Box<[u128]>,
    plain_slots: Box<[u32]>,
    /// `sha256:` keys: digest -> credential index.
    hashed: DigestMap<u32>,
    credential_ids: HashMap<String, usize>,
}

/// The SHA-256 digest of `bytes`.
pub fn sha256(bytes: &[u8]) -> Digest {
    Sha256::digest(bytes).into()
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of consumers.
    pub fn len(&self) -> usize {
        self.consumers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.consumers.is_empty()
    }

    /// Number of keys.
    pub fn key_count(&self) -> usize {
        self.plain.len() + self.plain_sorted.len() + self.hashed.len()
    }

    /// Called when the `key_auth_consumers` block is parsed: the plain keys
    /// move from the hash map that found duplicates to two compact sorted
    /// arrays (a key costs 20 bytes instead of the map's ~40), searched in a
    /// fixed number of steps.
    pub fn freeze(&mut self) {
        if self.plain.is_empty() {
            return;
        }
        let mut pairs: Vec<(u128, u32)> = self.plain.drain().collect();
        self.plain = KeyedMap::default();
        pairs.extend(
            self.plain_sorted
                .iter()
                .copied()
                .zip(self.plain_slots.iter().copied()),
        );
        pairs.sort_unstable_by_key(|&(hash, _)| hash);
        self.plain_sorted = pairs.iter().map(|&(hash, _)| hash).collect();
        self.plain_slots = pairs.iter().map(|&(_, slot)| slot).collect();
    }

    /// A frozen plain key's credential index. A branch-free binary search:
    /// its steps depend on the number of keys only, never on the hashes, so
    /// its instructions (and timing) are the same for every presented key
    /// and secret.
    fn search_plain(&self, hash: u128) -> Option<u32> {
        let sorted = &*self.plain_sorted;
        let mut len = sorted.len();
        if len == 0 {
            return None;
        }
        let mut base = 0usize;
        while len > 1 {
            let half = len / 2;
            // hash >= sorted[base + half] as a mask, not a branch (left to
            // itself the compiler turns the step back into one, whose two
            // arms differ by an instruction).
            let (_, below) = hash.overflowing_sub(sorted[base + half]);
            base += half & core::hint::black_box(usize::from(below)).wrapping_sub(1);
            len -= half;
        }
        (sorted[base] ^ hash == 0).then(|| self.plain_slots[base])
    }

    /// Whether any consumer has a quota (then a zone is needed).
    pub fn first_limited(&self) -> Option<&Consumer> {
        self.consumers.iter().find(|c| c.limit.is_some())
    }

    pub fn consumer(&self, index: usize) -> &Consumer {
        &self.consumers[index]
    }

    /// Whether some consumer is in group `group`.
    pub fn has_group(&self, group: &str) -> bool {
        self.consumers
            .iter()
            .any(|c| c.groups.iter().any(|g| g == group))
    }

    /// The consumer called `name`.
    pub fn find(&self, name: &[u8]) -> Option<usize> {
        let name = core::str::from_utf8(name).ok()?;
        self.by_name.get(name).copied()
    }

    /// The credential (and its consumer) owning `key`, if any.
    pub fn lookup(&self, key: &[u8]) -> Option<(&Consumer, &Credential)> {
        let credential = self.credential(self.lookup_credential(key)?);
        Some((self.consumers.get(credential.consumer)?, credential))
    }

    /// The index of the credential owning `key`, if any.
    pub fn lookup_credential(&self, key: &[u8]) -> Option<usize> {
        if let Some(hasher) = &self.hasher {
            let hash = hasher.hash(&[key]);
            if let Some(index) = self
                .search_plain(hash)
                .or_else(|| self.plain.get(&hash).copied())
            {
                return Some(index as usize);
            }
        }
        if self.hashed.is_empty() {
            return None;
        }
        self.hashed.get(&sha256(key)).map(|&index| index as usize)
    }

    /// The credential at `index` (from [`Registry::lookup_credential`]).
    pub fn credential(&self, index: usize) -> &Credential {
        &self.credentials[index]
    }

    /// Adds one line. Several lines may name the same consumer (one per
    /// key); consumer attributes given on more than one of them must agree.
    pub fn add(&mut self, line: Line) -> Result<(), String> {
        let name = line.name;
        let index = match self.by_name.get(&name) {
            Some(&index) => {
                let c = &mut self.consumers[index];
                merge_attr(&name, "custom_id", &mut c.custom_id, line.custom_id)?;
                let mut groups = (!c.groups.is_empty()).then(|| c.groups.clone());
                merge_attr(&name, "group", &mut groups, line.groups)?;
                c.groups = groups.unwrap_or_default();
                let mut limit = c.limit;
                merge_attr(&name, "limit", &mut limit, line.limit)?;
                c.limit = limit;
                let mut status = c.limit_status;
                merge_attr(&name, "limit_status", &mut status, line.limit_status)?;
                c.limit_status = status;
                index
            }
            None => {
                let index = self.consumers.len();
                let digest = sha256(name.as_bytes());
                let mut counter_key = [0u8; 16];
                counter_key.copy_from_slice(&digest[..16]);
                self.consumers.push(Consumer {
                    name: name.clone(),
                    groups: line.groups.unwrap_or_default(),
                    custom_id: line.custom_id,
                    limit: line.limit,
                    limit_status: line.limit_status,
                    counter_key,
                });
                self.by_name.insert(name.clone(), index);
                index
            }
        };
        let c = &self.consumers[index];
        if c.limit.is_none() && line.limit_status.is_some() {
            return Err(format!(
                "consumer \"{name}\" has \"limit_status\" without \"limit\""
            ));
        }

        match line.key {
            Some(key) => {
                let credential_index = self.credentials.len();
                if let Some(id) = &line.credential {
                    if let Some(&other) = self.credential_ids.get(id) {
                        let owner = &self.consumers[self.credentials[other].consumer].name;
                        return Err(format!(
                            "credential \"{id}\" of consumer \"{name}\" is already used by \
                             consumer \"{owner}\""
                        ));
                    }
                }
                let Ok(slot) = u32::try_from(credential_index) else {
                    return Err("too many keys".to_owned());
                };
                let key = match key {
                    Key::Plain(text) => {
                        let hasher = match self.hasher {
                            Some(hasher) => hasher,
                            None => *self.hasher.insert(KeyedHash::random().map_err(|_| {
                                "no random secret for the key table (getrandom failed)".to_owned()
                            })?),
                        };
                        Ok(hasher.hash(&[&text]))
                    }
                    Key::Sha256(digest) => Err(digest),
                };
                let taken = match &key {
                    Ok(hash) => self
                        .search_plain(*hash)
                        .or_else(|| self.plain.get(hash).copied()),
                    Err(digest) => self.hashed.get(digest).copied(),
                };
                if let Some(other) = taken {
                    let owner = &self.consumers[self.credentials[other as usize].consumer].name;
                    return Err(if *owner == name {
                        format!("consumer \"{name}\" has the same key twice")
                    } else {
                        format!("the key of consumer \"{name}\" is already the key of consumer \"{owner}\"")
                    });
                }
                match key {
                    Ok(hash) => self.plain.insert(hash, slot),
                    Err(digest) => self.hashed.insert(digest, slot),
                };
                if let Some(id) = &line.credential {
                    self.credential_ids.insert(id.clone(), credential_index);
                }
                self.credentials.push(Credential {
                    consumer: index,
                    id: line.credential,
                    expires: line.expires,
                });
            }
            None if line.expires.is_some() => {
                return Err(format!(
                    "consumer \"{name}\" has \"expires\" without \"key\""
                ));
            }
            None => {
                if let Some(id) = line.credential {
                    return Err(format!(
                        "credential \"{id}\" of consumer \"{name}\" has no \"key\""
                    ));
                }
            }
        }
        Ok(())
    }
}

fn merge_attr<T: PartialEq>(
    name: &str,
    attr: &str,
    have: &mut Option<T>,
    new: Option<T>,
) -> Result<(), String> {
    match (have.as_ref(), new) {
        (_, None) => Ok(()),
        (None, Some(v)) => {
            *have = Some(v);
            Ok(())
        }
        (Some(old), Some(v)) if *old == v => Ok(()),
        (Some(_), Some(_)) => Err(format!(
            "consumer \"{name}\" has conflicting \"{attr}\" values"
        )),
    }
}

/// Parses one line's words: `NAME attr=value …`.
pub fn parse_line(words: &[&[u8]]) -> Result<Line, String> {
    let Some((first, attrs)) = words.split_first() else {
        return Err("empty consumer line".to_owned());
    };
    if first.is_empty() || first.contains(&b'=') {
        return Err(format!(
            "consumer without a name (the line starts with \"{}\")",
            shown(first, first.starts_with(b"key="))
        ));
    }
    let name = text(first)
        .map_err(|why| format!("invalid consumer name \"{}\": {why}", shown(first, false)))?;
    let mut line = Line {
        name,
        ..Line::default()
    };
    for word in attrs {
        let Some(eq) = word.iter().position(|&b| b == b'=') else {
            return Err(format!(
                "consumer \"{}\": \"{}\" is not an attribute (expected name=value)",
                line.name,
                shown(word, false)
            ));
        };
        let (attr, value) = (&word[..eq], &word[eq + 1..]);
        let attr_name = String::from_utf8_lossy(attr).into_owned();
        let dup = || format!("consumer \"{}\": duplicate \"{attr_name}\"", line.name);
        let bad = |why: &str, secret: bool| {
            format!(
                "consumer \"{}\": invalid \"{attr_name}\" value \"{}\": {why}",
                line.name,
                shown(value, secret)
            )
        };
        match attr {
            b"key" => {
                if line.key.is_some() {
                    return Err(dup());
                }
                line.key = Some(parse_key(value).map_err(|why| bad(why, true))?);
            }
            b"credential" => {
                if line.credential.is_some() {
                    return Err(dup());
                }
                line.credential = Some(text(value).map_err(|why| bad(why, false))?);
            }
            b"expires" => {
                if line.expires.is_some() {
                    return Err(dup());
                }
                line.expires =
                    Some(super::expiry::parse_expires(value).map_err(|why| bad(why, false))?);
            }
            b"group" => {
                if line.groups.is_some() {
                    return Err(dup());
                }
                line.groups = Some(parse_groups(value).map_err(|why| bad(why, false))?);
            }
            b"custom_id" => {
                if line.custom_id.is_some() {
                    return Err(dup());
                }
                line.custom_id = Some(text(value).map_err(|why| bad(why, false))?);
            }
            b"limit" => {
                if line.limit.is_some() {
                    return Err(dup());
                }
                line.limit = Some(parse_limit(value).map_err(|why| bad(why, false))?);
            }
            b"limit_status" => {
                if line.limit_status.is_some() {
                    return Err(dup());
                }
                line.limit_status = Some(parse_status(value).map_err(|why| bad(why, false))?);
            }
            _ => {
                return Err(format!(
                    "consumer \"{}\": unknown attribute \"{attr_name}\" (expected key, \
                     credential, expires, group, custom_id, limit, limit_status)",
                    line.name
                ))
            }
        }
    }
    Ok(line)
}

/// `group=a,b`: comma-separated names, none empty.
pub fn parse_groups(value: &[u8]) -> Result<Vec<String>, &'static str> {
    value
        .split(|&b| b == b',')
        .map(|g| {
            if g.is_empty() {
                return Err("empty group name");
            }
            text(g)
        })
        .collect()
}

/// A word for an error message; secrets are not echoed.
fn shown(word: &[u8], secret: bool) -> String {
    if secret {
        return "…".to_owned();
    }
    String::from_utf8_lossy(word).into_owned()
}

/// A value sent upstream in a header or a variable: non-empty, no control
/// characters.
fn text(value: &[u8]) -> Result<String, &'static str> {
    if value.is_empty() {
        return Err("empty");
    }
    if value.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return Err("control characters are not allowed");
    }
    String::from_utf8(value.to_vec()).map_err(|_| "not UTF-8")
}

/// `key=secret` or `key=sha256:<64 hex digits>`.
pub fn parse_key(value: &[u8]) -> Result<Key, &'static str> {
    if let Some(hex) = value.strip_prefix(b"sha256:") {
        if hex.len() != 64 {
            return Err("a sha256: key needs exactly 64 hex digits");
        }
        let mut digest = [0u8; 32];
        for (i, pair) in hex.chunks(2).enumerate() {
            let hi = hex_digit(pair[0]).ok_or("not a hex digit")?;
            let lo = hex_digit(pair[1]).ok_or("not a hex digit")?;
            digest[i] = hi << 4 | lo;
        }
        return Ok(Key::Sha256(digest));
    }
    if value.is_empty() {
        return Err("empty");
    }
    Ok(Key::Plain(value.to_vec()))
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `N/WINDOW`, WINDOW in nginx time syntax (`30s`, `1m`, `1h30m`, `500ms`;
/// a bare number is seconds).
pub fn parse_limit(value: &[u8]) -> Result<Limit, &'static str> {
    let slash = value
        .iter()
        .position(|&b| b == b'/')
        .ok_or("expected N/WINDOW, e.g. 3/30s")?;
    let count = parse_u64(&value[..slash]).ok_or("N must be a positive integer")?;
    if count == 0 {
        return Err("N must be a positive integer");
    }
    let window_ms = parse_time_ms(&value[slash + 1..])
        .ok_or("WINDOW must be an nginx time such as 30s, 1m, 1h")?;
    if window_ms == 0 {
        return Err("WINDOW must not be zero");
    }
    Ok(Limit { count, window_ms })
}

fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    core::str::from_utf8(digits).ok()?.parse().ok()
}

/// nginx time syntax in milliseconds: a sequence of `<number><unit>` with
/// units y M w d h m s ms (a bare number means seconds), each unit at most
/// once and from larger to smaller, as ngx_parse_time() accepts.
pub fn parse_time_ms(text: &[u8]) -> Option<u64> {
    const UNITS: [(&[u8], u64); 8] = [
        (b"y", 365 * 86_400_000),
        (b"M", 30 * 86_400_000),
        (b"w", 7 * 86_400_000),
        (b"d", 86_400_000),
        (b"h", 3_600_000),
        (b"m", 60_000),
        (b"s", 1_000),
        (b"ms", 1),
    ];
    if text.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    let mut rest = text;
    let mut last_rank = None::<usize>;
    while !rest.is_empty() {
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        let number = parse_u64(&rest[..digits])?;
        rest = &rest[digits..];
        let (rank, mult, used) = if rest.is_empty() {
            (6, 1_000, 0) // bare number: seconds
        } else if rest.starts_with(b"ms") {
            (7, 1, 2)
        } else {
            let (rank, (_, mult)) = UNITS
                .iter()
                .enumerate()
                .find(|(_, (u, _))| rest.first() == u.first() && u.len() == 1)?;
            (rank, *mult, 1)
        };
        if last_rank.is_some_and(|last| rank <= last) {
            return None;
        }
        last_rank = Some(rank);
        total = total.checked_add(number.checked_mul(mult)?)?;
        rest = &rest[used..];
    }
    Some(total)
}

/// `limit_status=`: 400..599, except 401 and 403. Under `satisfy any`
/// nginx lets another access check (`allow`, `auth_basic`, …) override a
/// 401 or 403, which would make an over-quota refusal optional; every other
/// status ends the access phase, so a quota refusal stays final.
fn parse_status(value: &[u8]) -> Result<u16, &'static str> {
    const RANGE: &str = "expected a status code 400..599";
    let status = parse_u64(value).ok_or(RANGE)?;
    if !(400..=599).contains(&status) {
        return Err(RANGE);
    }
    if status == 401 || status == 403 {
        return Err(
            "401 and 403 are not allowed: under \"satisfy any\" another access check \
                    could override them and let an over-quota request through",
        );
    }
    Ok(status as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(s: &str) -> Result<Line, String> {
        let words: Vec<&[u8]> = s.split_whitespace().map(str::as_bytes).collect();
        parse_line(&words)
    }

    fn registry(lines: &[&str]) -> Result<Registry, String> {
        let mut r = Registry::new();
        for l in lines {
            r.add(line(l)?)?;
        }
        r.freeze();
        Ok(r)
    }

    #[test]
    fn parses_the_walkthrough() {
        let r = registry(&[
            "jack key=jack-key credential=cred-jack-key-auth custom_id=495aec6a limit=3/30s limit_status=429",
            "anonymous limit=1/30s limit_status=429",
        ])
        .unwrap();
        assert_eq!(r.len(), 2);
        let (c, cred) = r.lookup(b"jack-key").unwrap();
        assert_eq!(c.name, "jack");
        assert_eq!(c.custom_id.as_deref(), Some("495aec6a"));
        assert_eq!(
            c.limit,
            Some(Limit {
                count: 3,
                window_ms: 30_000
            })
        );
        assert_eq!(c.over_limit_status(), 429);
        assert_eq!(cred.id.as_deref(), Some("cred-jack-key-auth"));
        assert!(r.lookup(b"jack-key ").is_none());
        assert!(r.lookup(b"").is_none());
        let anon = r.find(b"anonymous").unwrap();
        assert_eq!(r.consumer(anon).limit.unwrap().count, 1);
        assert_eq!(r.key_count(), 1);
    }

    #[test]
    fn several_keys_per_consumer() {
        let r = registry(&[
            "jack key=a credential=c1",
            "jack key=b credential=c2 custom_id=x",
            "jack key=c",
        ])
        .unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r.lookup(b"a").unwrap().1.id.as_deref(), Some("c1"));
        assert_eq!(r.lookup(b"b").unwrap().1.id.as_deref(), Some("c2"));
        assert_eq!(r.lookup(b"c").unwrap().1.id, None);
        assert_eq!(r.lookup(b"a").unwrap().0.custom_id.as_deref(), Some("x"));
    }

    #[test]
    fn sha256_keys() {
        // sha256("jack-key")
        let hex: String = sha256(b"jack-key")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let r = registry(&[&format!("jack key=sha256:{hex}")]).unwrap();
        assert_eq!(r.lookup(b"jack-key").unwrap().0.name, "jack");
        let upper = hex.to_uppercase();
        let r = registry(&[&format!("jack key=sha256:{upper}")]).unwrap();
        assert!(r.lookup(b"jack-key").is_some());
        assert!(line("jack key=sha256:abc").is_err());
        assert!(line(&format!("jack key=sha256:{}", "g".repeat(64))).is_err());
    }

    #[test]
    fn configuration_errors() {
        let err = registry(&["jack key=k", "bob key=k"]).err().unwrap();
        assert!(err.contains("\"bob\"") && err.contains("\"jack\""), "{err}");
        assert!(!err.contains("=k"), "key not echoed: {err}");
        assert!(registry(&["jack key=k", "jack key=k"]).is_err());
        assert!(line("key=k credential=x")
            .unwrap_err()
            .contains("without a name"));
        assert!(!line("key=secret").unwrap_err().contains("secret"));
        assert!(line("jack colour=blue")
            .unwrap_err()
            .contains("unknown attribute \"colour\""));
        assert!(line("jack key=").is_err());
        assert!(line("jack key=a key=b").unwrap_err().contains("duplicate"));
        assert!(line("jack nonsense").is_err());
        for bad in [
            "3", "3/", "/30s", "0/30s", "x/30s", "3/0s", "3/30x", "3/-1s", "3/s", "3/1s1m",
        ] {
            let err = line(&format!("jack limit={bad}")).unwrap_err();
            assert!(
                err.contains("\"limit\"") && err.contains(bad),
                "{bad}: {err}"
            );
        }
        for bad in ["200", "600", "abc", "", "401", "403"] {
            assert!(
                line(&format!("jack limit=1/1s limit_status={bad}")).is_err(),
                "{bad}"
            );
        }
        assert!(registry(&["jack limit_status=429"])
            .unwrap_err()
            .contains("without \"limit\""));
        assert!(registry(&["jack credential=c"])
            .unwrap_err()
            .contains("no \"key\""));
        assert!(registry(&["a key=1 credential=c", "b key=2 credential=c"]).is_err());
        assert!(registry(&["a key=1 limit=1/1s", "a key=2 limit=2/1s"]).is_err());
        assert!(registry(&["a key=1 custom_id=x", "a key=2 custom_id=y"]).is_err());
        assert!(registry(&["a key=1 custom_id=x", "a key=2 custom_id=x"]).is_ok());
    }

    #[test]
    fn plain_keys_are_kept_as_keyed_hashes() {
        let a = registry(&["jack key=jack-key", "bob key=bob-key"]).unwrap();
        let b = registry(&["jack key=jack-key"]).unwrap();
        // A secret of its own per registry (per configuration load).
        let (ha, hb) = (a.hasher.unwrap(), b.hasher.unwrap());
        assert_ne!(ha.hash(&[b"jack-key"]), hb.hash(&[b"jack-key"]));
        assert!(a.search_plain(ha.hash(&[b"jack-key"])).is_some());
        assert!(a.hashed.is_empty());
        assert_eq!(a.lookup(b"bob-key").unwrap().0.name, "bob");
        assert!(a.lookup(b"bob-key2").is_none());
        // No key text in the registry's debug form.
        assert!(!format!("{a:?}").contains("jack-key"));
        assert!(!format!("{:?}", line("jack key=jack-key").unwrap()).contains("jack-key"));
    }

    #[test]
    fn plain_and_sha256_keys_together() {
        let hex: String = sha256(b"hashed-key")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let r = registry(&["jack key=plain-key", &format!("bob key=sha256:{hex}")]).unwrap();
        assert_eq!(r.key_count(), 2);
        assert_eq!(r.lookup(b"plain-key").unwrap().0.name, "jack");
        assert_eq!(r.lookup(b"hashed-key").unwrap().0.name, "bob");
        assert!(r.lookup(b"other").is_none());
        // The digest's text is not a key.
        assert!(r.lookup(format!("sha256:{hex}").as_bytes()).is_none());
        assert!(registry(&[
            &format!("a key=sha256:{hex}"),
            &format!("b key=sha256:{hex}")
        ])
        .is_err());
    }

    #[test]
    fn digest_hash_is_the_digest_prefix() {
        use std::hash::BuildHasher;
        let d = sha256(b"k");
        let h = BuildHasherDefault::<DigestHasher>::default().hash_one(d);
        let mut first = [0u8; 8];
        first.copy_from_slice(&d[..8]);
        assert_eq!(h, u64::from_le_bytes(first));
    }

    #[test]
    fn nginx_time_syntax() {
        assert_eq!(parse_time_ms(b"30s"), Some(30_000));
        assert_eq!(parse_time_ms(b"30"), Some(30_000));
        assert_eq!(parse_time_ms(b"1m"), Some(60_000));
        assert_eq!(parse_time_ms(b"1h30m"), Some(5_400_000));
        assert_eq!(parse_time_ms(b"500ms"), Some(500));
        assert_eq!(parse_time_ms(b"1d"), Some(86_400_000));
        assert_eq!(parse_time_ms(b"1M"), Some(30 * 86_400_000));
        assert_eq!(parse_time_ms(b"1s500ms"), Some(1_500));
        assert_eq!(parse_time_ms(b"1m1h"), None);
        assert_eq!(parse_time_ms(b"1s1s"), None);
        assert_eq!(parse_time_ms(b""), None);
        assert_eq!(parse_time_ms(b"s"), None);
        assert_eq!(parse_time_ms(b"1x"), None);
    }

    #[test]
    fn counter_key_depends_on_name_only() {
        let a = registry(&["x key=1", "jack key=2"]).unwrap();
        let b = registry(&["jack key=3 limit=1/1s"]).unwrap();
        let ja = a.consumer(a.find(b"jack").unwrap()).counter_key;
        let jb = b.consumer(b.find(b"jack").unwrap()).counter_key;
        assert_eq!(ja, jb);
        assert_ne!(ja, a.consumer(a.find(b"x").unwrap()).counter_key);
    }

    #[test]
    fn hundred_thousand_consumers() {
        // How fast is for ci/bench/key_auth.sh to say, not a timed test.
        let mut r = Registry::new();
        for i in 0..100_000 {
            r.add(line(&format!("c{i} key=key-{i} credential=cred-{i} limit=10/1m")).unwrap())
                .unwrap();
        }
        assert_eq!(r.len(), 100_000);
        assert_eq!(r.lookup(b"key-99999").unwrap().0.name, "c99999");
        r.freeze();
        assert_eq!(r.key_count(), 100_000);
        for i in (0..100_000).step_by(997).chain([0, 99_999]) {
            assert_eq!(
                r.lookup(format!("key-{i}").as_bytes()).unwrap().0.name,
                format!("c{i}")
            );
        }
        assert!(r.lookup(b"key-100000").is_none());
        // Adding after a freeze still finds duplicates and both generations.
        assert!(r.add(line("dup key=key-5").unwrap()).is_err());
        r.add(line("late key=late-key").unwrap()).unwrap();
        assert_eq!(r.lookup(b"late-key").unwrap().0.name, "late");
        r.freeze();
        assert_eq!(r.lookup(b"late-key").unwrap().0.name, "late");
        assert_eq!(r.lookup(b"key-7").unwrap().0.name, "c7");
    }
}

#[cfg(test)]
mod group_tests {
    use super::{parse_groups, parse_line, Registry};

    #[test]
    fn groups_parse_and_merge() {
        assert_eq!(parse_groups(b"a"), Ok(vec!["a".to_owned()]));
        assert_eq!(
            parse_groups(b"partners,staff"),
            Ok(vec!["partners".to_owned(), "staff".to_owned()])
        );
        for bad in [&b""[..], b",", b"a,", b",a", b"a,,b", b"a,\x01"] {
            assert!(parse_groups(bad).is_err(), "{bad:?}");
        }
        let mut registry = Registry::new();
        for line in [
            &[&b"jack"[..], b"key=1", b"group=a,b"][..],
            &[b"jack", b"key=2"],
        ] {
            registry.add(parse_line(line).unwrap()).unwrap();
        }
        assert!(registry.has_group("a") && registry.has_group("b") && !registry.has_group("c"));
        let conflicting = parse_line(&[b"jack", b"key=3", b"group=c"]).unwrap();
        assert!(registry.add(conflicting).is_err());
    }
}
