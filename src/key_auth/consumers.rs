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

use std::collections::hash_map::{Entry, RandomState};
use std::collections::HashMap;
use std::hash::{BuildHasher as _, BuildHasherDefault, Hasher};

use sha2::{Digest as _, Sha256};

use crate::keyed_hash::KeyedHash;

/// A SHA-256 digest.
pub type Digest = [u8; 32];

/// `limit=N/WINDOW`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Limit {
    /// Requests allowed per window (≥ 1).
    pub count: u64,
    /// Window length in milliseconds (≥ 1).
    pub window_ms: u64,
}

/// Status sent when a consumer is over its limit and none is configured.
pub const DEFAULT_LIMIT_STATUS: u16 = 503;

/// One consumer as the registry hands it out: a view of its compact
/// record, the texts in the registry's arena.
#[derive(Debug, Clone, Copy)]
pub struct Consumer<'a> {
    pub name: &'a str,
    pub custom_id: Option<&'a str>,
    /// `group=a,b` as given (see [`Consumer::groups`]).
    group_list: Option<&'a str>,
    pub limit: Option<Limit>,
    /// `limit_status=`; see [`Consumer::over_limit_status`].
    pub limit_status: Option<u16>,
    /// The key of this consumer's counter in the shared zone: derived from
    /// the name (not from its position), so counts survive reloads that
    /// reorder or add consumers. All zeros for a consumer without `limit=`
    /// (never counted: a SHA-256 per consumer was 8% of loading a million).
    pub counter_key: [u8; 16],
}

impl<'a> Consumer<'a> {
    /// The status sent when the consumer is over its limit.
    pub fn over_limit_status(&self) -> u16 {
        self.limit_status.unwrap_or(DEFAULT_LIMIT_STATUS)
    }

    /// `group=a,b`: for `key_auth_allow` / `key_auth_deny group:NAME`.
    pub fn groups(&self) -> impl Iterator<Item = &'a str> {
        self.group_list.into_iter().flat_map(|list| list.split(','))
    }
}

/// One key of a consumer, as the registry hands it out.
#[derive(Debug, Clone, Copy)]
pub struct Credential<'a> {
    /// Index into the consumer list.
    pub consumer: usize,
    /// `credential=` (sent as `X-Credential-Identifier`).
    pub id: Option<&'a str>,
    /// `expires=`, Unix seconds (see [`super::expiry`]).
    pub expires: Option<i64>,
}

/// A text of the arena: the offset of its length (LEB128) and bytes.
type Text = u32;
/// No text (an absent `custom_id=`, `credential=`, `group=`).
const NO_TEXT: Text = Text::MAX;
/// No `expires=`.
const NO_EXPIRY: i64 = i64::MIN;

/// A consumer as kept: 32 bytes, its texts in the arena.
#[derive(Debug, Clone, Copy)]
struct ConsumerRecord {
    name: Text,
    custom_id: Text,
    groups: Text,
    /// Index into [`Registry::quotas`] (0: no limit).
    quota: u32,
    counter_key: [u8; 16],
}

/// A key's credential as kept: 16 bytes.
#[derive(Debug, Clone, Copy)]
struct CredentialRecord {
    consumer: u32,
    id: Text,
    expires: i64,
}

/// A consumer's `limit=` and `limit_status=`; few distinct ones, kept once.
type Quota = (Option<Limit>, Option<u16>);

/// One parsed `key_auth_consumers` line.
#[derive(Debug, Default, PartialEq, Eq)]
/// Its texts are the line's words (nginx's, in the block's temporary pool):
/// nothing is copied until the registry keeps it.
pub struct Line<'a> {
    pub name: &'a str,
    pub key: Option<Key<'a>>,
    pub credential: Option<&'a str>,
    /// `expires=`, Unix seconds.
    pub expires: Option<i64>,
    pub custom_id: Option<&'a str>,
    pub limit: Option<Limit>,
    pub limit_status: Option<u16>,
    /// `group=a,b` as given (checked by [`parse_groups`]).
    pub groups: Option<&'a str>,
}

/// A key as a consumer line gives it. The plain text lives only while its
/// line is added to the registry (which keeps its keyed hash); it is never
/// printed.
#[derive(Clone, PartialEq, Eq)]
pub enum Key<'a> {
    /// `key=TEXT`.
    Plain(&'a [u8]),
    /// `key=sha256:HEX`.
    Sha256(Digest),
}

impl core::fmt::Debug for Key<'_> {
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
type HashedMap<V> = HashMap<u64, V, BuildHasherDefault<DigestHasher>>;

/// All consumers and keys of one `http` block, in a compact form: a
/// million consumers with key, credential and custom_id take about 100 MB.
/// Every text (names, ids, custom_ids, group lists) is in one byte arena;
/// consumers and credentials are small fixed records pointing into it.
/// What only the parse needs (the maps that find a consumer's other lines
/// and duplicate keys or credentials) is in [`Parse`], dropped by
/// [`Registry::freeze`] at the end of each block.
#[derive(Default, Debug)]
pub struct Registry {
    /// The texts: each a LEB128 length and the bytes (valid UTF-8: only
    /// [`Registry::push_text`] writes here, from `&str`).
    arena: Vec<u8>,
    consumers: Vec<ConsumerRecord>,
    credentials: Vec<CredentialRecord>,
    /// The distinct `limit=`/`limit_status=` pairs; 0 is "no limit".
    quotas: Vec<Quota>,
    /// The secret of the plain keys (made with the first plain key).
    hasher: Option<KeyedHash>,
    /// Plain keys once parsed: the keyed hashes sorted, and each one's
    /// credential index, 20 bytes a key.
    plain_sorted: Box<[u128]>,
    plain_slots: Box<[u32]>,
    /// `sha256:` keys: digest -> credential index.
    hashed: DigestMap<u32>,
    /// For [`Registry::find`] once parsed: the hashes of the names (with
    /// `names`' secret) sorted, and each one's consumer.
    name_hashes: Box<[u64]>,
    name_slots: Box<[u32]>,
    /// The hash of names and credential ids (a random secret per registry).
    names: RandomState,
    /// The parse-time maps, while a block is parsed.
    parse: Option<Box<Parse>>,
}

/// What the parse of a block needs besides the kept records.
#[derive(Debug, Default)]
struct Parse {
    /// Consumers by name.
    by_name: TextIndex,
    /// Credentials by `credential=` id.
    by_credential: TextIndex,
    /// Plain keys added since the last freeze: keyed hash -> credential
    /// index (finds a duplicate at its line).
    plain: KeyedMap<u32>,
    quotas: HashMap<Quota, u32>,
}

/// Records by the 64-bit hash of a text of theirs. A hash shared by two
/// different texts (never seen in practice: the hash is keyed) chains the
/// later record to the earlier in `next`.
#[derive(Debug, Default)]
struct TextIndex {
    first: HashedMap<u32>,
    next: HashMap<u32, u32>,
}

impl TextIndex {
    fn find(&self, hash: u64, is: impl Fn(u32) -> bool) -> Option<u32> {
        let mut at = *self.first.get(&hash)?;
        loop {
            if is(at) {
                return Some(at);
            }
            at = *self.next.get(&at)?;
        }
    }

    /// The record whose text `is`, if any; otherwise `new` is added under
    /// `hash` (one probe of the table, the usual case at parse time).
    fn find_or_insert(&mut self, hash: u64, new: u32, is: impl Fn(u32) -> bool) -> Option<u32> {
        let mut at = match self.first.entry(hash) {
            Entry::Vacant(vacant) => {
                vacant.insert(new);
                return None;
            }
            Entry::Occupied(occupied) => *occupied.get(),
        };
        loop {
            if is(at) {
                return Some(at);
            }
            match self.next.get(&at) {
                Some(&next) => at = next,
                None => {
                    self.next.insert(at, new);
                    return None;
                }
            }
        }
    }

    /// Adds `record`, whose text is not in the index yet.
    fn insert(&mut self, hash: u64, record: u32) {
        self.find_or_insert(hash, record, |_| false);
    }
}

/// The text of `arena` at `at`.
#[inline]
fn text_at(arena: &[u8], at: Text) -> Option<&str> {
    if at == NO_TEXT {
        return None;
    }
    let at = at as usize;
    // A text under 128 bytes (a name, an id: nearly all) has a one-byte
    // length: read on the request path without a loop.
    let first = *arena.get(at)?;
    let (start, len) = if first < 0x80 {
        (at + 1, usize::from(first))
    } else {
        long_text_len(arena, at)?
    };
    let bytes = arena.get(start..start.checked_add(len)?)?;
    // SAFETY: push_text wrote these bytes from a &str, at this offset.
    Some(unsafe { core::str::from_utf8_unchecked(bytes) })
}

/// The start and length of a text of 128 bytes or more (a LEB128 length of
/// several bytes).
#[cold]
fn long_text_len(arena: &[u8], mut at: usize) -> Option<(usize, usize)> {
    let (mut len, mut shift) = (0usize, 0u32);
    loop {
        let byte = *arena.get(at)?;
        at += 1;
        len |= usize::from(byte & 0x7f).checked_shl(shift)?;
        if byte < 0x80 {
            return Some((at, len));
        }
        shift += 7;
    }
}

/// The key of the counter of consumer `name` in the quota zone: the first
/// half of the name's SHA-256.
fn counter_key(name: &str) -> [u8; 16] {
    let digest = sha256(name.as_bytes());
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    key
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
        self.parse.as_ref().map_or(0, |p| p.plain.len())
            + self.plain_sorted.len()
            + self.hashed.len()
    }

    /// Appends `text` to the arena.
    fn push_text(&mut self, text: &str) -> Result<Text, String> {
        let at = Text::try_from(self.arena.len())
            .ok()
            .filter(|&at| at != NO_TEXT)
            .ok_or("too many consumers (4 GB of names and ids)")?;
        let mut len = text.len();
        while len >= 0x80 {
            self.arena.push(len as u8 | 0x80);
            len >>= 7;
        }
        self.arena.push(len as u8);
        self.arena.extend_from_slice(text.as_bytes());
        Ok(at)
    }

    /// The text at `at`.
    #[inline]
    fn text(&self, at: Text) -> Option<&str> {
        text_at(&self.arena, at)
    }

    fn hash_text(&self, text: &str) -> u64 {
        self.names.hash_one(text)
    }

    /// Called when a `key_auth_consumers` block is parsed: the parse-time
    /// maps are dropped; the plain keys move to two compact sorted arrays
    /// searched in a fixed number of steps, the names to a sorted array of
    /// their hashes; every table is cut to its size.
    pub fn freeze(&mut self) {
        let Some(parse) = self.parse.take() else {
            return;
        };
        let Parse { plain, by_name, .. } = *parse;
        if !plain.is_empty() {
            let mut pairs: Vec<(u128, u32)> =
                Vec::with_capacity(plain.len() + self.plain_sorted.len());
            pairs.extend(plain);
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
        // Every consumer is in the parse-time index (a later block rebuilds
        // it from the records): its hashes need not be computed again.
        let mut names: Vec<(u64, u32)> = Vec::with_capacity(self.consumers.len());
        for (&hash, &first) in &by_name.first {
            let mut at = first;
            names.push((hash, at));
            while let Some(&next) = by_name.next.get(&at) {
                at = next;
                names.push((hash, at));
            }
        }
        names.sort_unstable();
        self.name_hashes = names.iter().map(|&(hash, _)| hash).collect();
        self.name_slots = names.iter().map(|&(_, slot)| slot).collect();
        self.arena.shrink_to_fit();
        self.consumers.shrink_to_fit();
        self.credentials.shrink_to_fit();
        self.quotas.shrink_to_fit();
    }

    /// The parse-time maps, rebuilt from the records when a block follows
    /// a frozen one.
    fn parse(&mut self) -> &mut Parse {
        if self.parse.is_none() {
            let mut parse = Parse::default();
            for (index, c) in self.consumers.iter().enumerate() {
                let name = self.text(c.name).unwrap_or_default();
                parse.by_name.insert(self.hash_text(name), index as u32);
            }
            for (index, c) in self.credentials.iter().enumerate() {
                if let Some(id) = self.text(c.id) {
                    parse.by_credential.insert(self.hash_text(id), index as u32);
                }
            }
            for (index, &quota) in self.quotas.iter().enumerate() {
                parse.quotas.insert(quota, index as u32);
            }
            self.name_hashes = Box::default();
            self.name_slots = Box::default();
            self.parse = Some(Box::new(parse));
        }
        self.parse.get_or_insert_with(Box::default)
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

    /// A plain key's credential index, frozen or added since.
    fn find_plain(&self, hash: u128) -> Option<u32> {
        self.search_plain(hash)
            .or_else(|| self.parse.as_ref()?.plain.get(&hash).copied())
    }

    /// The first consumer with a quota (then a zone is needed).
    pub fn first_limited(&self) -> Option<Consumer<'_>> {
        let index = self.consumers.iter().position(|c| c.quota != 0)?;
        Some(self.consumer(index))
    }

    #[inline]
    pub fn consumer(&self, index: usize) -> Consumer<'_> {
        let c = &self.consumers[index];
        let (limit, limit_status) = self
            .quotas
            .get(c.quota as usize)
            .copied()
            .unwrap_or_default();
        Consumer {
            name: self.text(c.name).unwrap_or_default(),
            custom_id: self.text(c.custom_id),
            group_list: self.text(c.groups),
            limit,
            limit_status,
            counter_key: c.counter_key,
        }
    }

    /// Whether some consumer is in group `group`.
    pub fn has_group(&self, group: &str) -> bool {
        (0..self.consumers.len()).any(|i| self.consumer(i).groups().any(|g| g == group))
    }

    /// The consumer called `name`.
    pub fn find(&self, name: &[u8]) -> Option<usize> {
        let name = core::str::from_utf8(name).ok()?;
        let hash = self.hash_text(name);
        let is = |index: u32| self.text(self.consumers[index as usize].name) == Some(name);
        if let Some(parse) = &self.parse {
            return parse.by_name.find(hash, is).map(|i| i as usize);
        }
        let first = self.name_hashes.partition_point(|&h| h < hash);
        self.name_hashes[first..]
            .iter()
            .take_while(|&&h| h == hash)
            .zip(&self.name_slots[first..])
            .map(|(_, &index)| index)
            .find(|&index| is(index))
            .map(|i| i as usize)
    }

    /// The credential (and its consumer) owning `key`, if any.
    pub fn lookup(&self, key: &[u8]) -> Option<(Consumer<'_>, Credential<'_>)> {
        let credential = self.credential(self.lookup_credential(key)?);
        Some((self.consumer(credential.consumer), credential))
    }

    /// The index of the credential owning `key`, if any.
    pub fn lookup_credential(&self, key: &[u8]) -> Option<usize> {
        if let Some(hasher) = &self.hasher {
            if let Some(index) = self.find_plain(hasher.hash(&[key])) {
                return Some(index as usize);
            }
        }
        if self.hashed.is_empty() {
            return None;
        }
        self.hashed.get(&sha256(key)).map(|&index| index as usize)
    }

    /// The credential at `index` (from [`Registry::lookup_credential`]).
    #[inline]
    pub fn credential(&self, index: usize) -> Credential<'_> {
        let c = &self.credentials[index];
        Credential {
            consumer: c.consumer as usize,
            id: self.text(c.id),
            expires: (c.expires != NO_EXPIRY).then_some(c.expires),
        }
    }

    /// Adds one line. Several lines may name the same consumer (one per
    /// key); consumer attributes given on more than one of them must agree.
    pub fn add(&mut self, line: Line<'_>) -> Result<(), String> {
        let name = line.name;
        let name_hash = self.hash_text(name);
        let Ok(new_index) = u32::try_from(self.consumers.len()) else {
            return Err("too many consumers".to_owned());
        };
        self.parse();
        let Registry {
            parse: Some(parse),
            consumers,
            arena,
            ..
        } = self
        else {
            return Err("no parse state".to_owned());
        };
        let found = parse.by_name.find_or_insert(name_hash, new_index, |index| {
            text_at(arena, consumers[index as usize].name) == Some(name)
        });
        let index = match found {
            Some(index) => {
                let c = self.consumers[index as usize];
                let old = self.consumer(index as usize);
                let mut custom_id = old.custom_id;
                merge_attr(name, "custom_id", &mut custom_id, line.custom_id)?;
                let mut groups = old.group_list;
                merge_attr(name, "group", &mut groups, line.groups)?;
                let mut limit = old.limit;
                merge_attr(name, "limit", &mut limit, line.limit)?;
                let mut status = old.limit_status;
                merge_attr(name, "limit_status", &mut status, line.limit_status)?;
                let (new_custom_id, new_groups, new_limit) = (
                    old.custom_id.is_none() && custom_id.is_some(),
                    old.group_list.is_none() && groups.is_some(),
                    old.limit.is_none() && limit.is_some(),
                );
                let mut record = c;
                if new_custom_id {
                    record.custom_id = self.push_text(line.custom_id.unwrap_or_default())?;
                }
                if new_groups {
                    record.groups = self.push_text(line.groups.unwrap_or_default())?;
                }
                record.quota = self.quota((limit, status))?;
                if new_limit {
                    record.counter_key = counter_key(name);
                }
                self.consumers[index as usize] = record;
                index
            }
            None => {
                // find_or_insert has put the name in the index.
                let index = new_index;
                let counter_key = match line.limit {
                    Some(_) => counter_key(name),
                    None => [0; 16],
                };
                let record = ConsumerRecord {
                    name: self.push_text(name)?,
                    custom_id: match &line.custom_id {
                        Some(id) => self.push_text(id)?,
                        None => NO_TEXT,
                    },
                    groups: match &line.groups {
                        Some(groups) => self.push_text(groups)?,
                        None => NO_TEXT,
                    },
                    quota: self.quota((line.limit, line.limit_status))?,
                    counter_key,
                };
                self.consumers.push(record);
                index
            }
        };
        let quota = self.consumers[index as usize].quota as usize;
        let limited = self
            .quotas
            .get(quota)
            .is_some_and(|(limit, _)| limit.is_some());
        if !limited && line.limit_status.is_some() {
            return Err(format!(
                "consumer \"{name}\" has \"limit_status\" without \"limit\""
            ));
        }

        match line.key {
            Some(key) => {
                let Ok(slot) = u32::try_from(self.credentials.len()) else {
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
                        Ok(hasher.hash(&[text]))
                    }
                    Key::Sha256(digest) => Err(digest),
                };
                let key_taken = match &key {
                    Ok(hash) => self.find_plain(*hash),
                    Err(digest) => self.hashed.get(digest).copied(),
                };
                // A credential used twice is the message even when the key
                // is taken too. The id is added to the index only when the
                // line is accepted.
                if let Some(id) = &line.credential {
                    let hash = self.hash_text(id);
                    let Registry {
                        parse: Some(parse),
                        credentials,
                        arena,
                        ..
                    } = &mut *self
                    else {
                        return Err("no parse state".to_owned());
                    };
                    let is = |i: u32| text_at(arena, credentials[i as usize].id) == Some(*id);
                    let taken = match key_taken {
                        Some(_) => parse.by_credential.find(hash, is),
                        None => parse.by_credential.find_or_insert(hash, slot, is),
                    };
                    if let Some(other) = taken {
                        let owner = self.owner(other);
                        return Err(format!(
                            "credential \"{id}\" of consumer \"{name}\" is already used by \
                             consumer \"{owner}\""
                        ));
                    }
                }
                if let Some(other) = key_taken {
                    let owner = self.owner(other);
                    return Err(if owner == name {
                        format!("consumer \"{name}\" has the same key twice")
                    } else {
                        format!("the key of consumer \"{name}\" is already the key of consumer \"{owner}\"")
                    });
                }
                let id = match &line.credential {
                    Some(id) => self.push_text(id)?,
                    None => NO_TEXT,
                };
                match key {
                    Ok(hash) => {
                        self.parse().plain.insert(hash, slot);
                    }
                    Err(digest) => {
                        self.hashed.insert(digest, slot);
                    }
                }
                self.credentials.push(CredentialRecord {
                    consumer: index,
                    id,
                    expires: line.expires.unwrap_or(NO_EXPIRY),
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

    /// The name of the consumer of credential `credential`.
    fn owner(&self, credential: u32) -> String {
        let consumer = self.credentials[credential as usize].consumer as usize;
        self.consumer(consumer).name.to_owned()
    }

    /// The index of `quota` in [`Registry::quotas`], added if new.
    fn quota(&mut self, quota: Quota) -> Result<u32, String> {
        if self.quotas.is_empty() {
            self.quotas.push((None, None));
        }
        if quota == (None, None) {
            return Ok(0);
        }
        let next = self.quotas.len();
        let parse = self.parse();
        if let Some(&index) = parse.quotas.get(&quota) {
            return Ok(index);
        }
        let Ok(index) = u32::try_from(next) else {
            return Err("too many distinct limits".to_owned());
        };
        parse.quotas.insert(quota, index);
        self.quotas.push(quota);
        Ok(index)
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
pub fn parse_line<'a>(words: &[&'a [u8]]) -> Result<Line<'a>, String> {
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
        // Only for a message: not made for every attribute of every line.
        let attr_name = || String::from_utf8_lossy(attr);
        let dup = || format!("consumer \"{}\": duplicate \"{}\"", line.name, attr_name());
        let bad = |why: &str, secret: bool| {
            format!(
                "consumer \"{}\": invalid \"{}\" value \"{}\": {why}",
                line.name,
                attr_name(),
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
                    "consumer \"{}\": unknown attribute \"{}\" (expected key, \
                     credential, expires, group, custom_id, limit, limit_status)",
                    line.name,
                    attr_name()
                ))
            }
        }
    }
    Ok(line)
}

/// `group=a,b`: comma-separated names, none empty. The list as given.
pub fn parse_groups(value: &[u8]) -> Result<&str, &'static str> {
    for g in value.split(|&b| b == b',') {
        if g.is_empty() {
            return Err("empty group name");
        }
        text(g)?;
    }
    text(value)
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
fn text(value: &[u8]) -> Result<&str, &'static str> {
    if value.is_empty() {
        return Err("empty");
    }
    if value.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return Err("control characters are not allowed");
    }
    core::str::from_utf8(value).map_err(|_| "not UTF-8")
}

/// `key=secret` or `key=sha256:<64 hex digits>`.
pub fn parse_key(value: &[u8]) -> Result<Key<'_>, &'static str> {
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
    Ok(Key::Plain(value))
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

    fn line(s: &str) -> Result<Line<'_>, String> {
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
        assert_eq!(c.custom_id, Some("495aec6a"));
        assert_eq!(
            c.limit,
            Some(Limit {
                count: 3,
                window_ms: 30_000
            })
        );
        assert_eq!(c.over_limit_status(), 429);
        assert_eq!(cred.id, Some("cred-jack-key-auth"));
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
        assert_eq!(r.lookup(b"a").unwrap().1.id, Some("c1"));
        assert_eq!(r.lookup(b"b").unwrap().1.id, Some("c2"));
        assert_eq!(r.lookup(b"c").unwrap().1.id, None);
        assert_eq!(r.lookup(b"a").unwrap().0.custom_id, Some("x"));
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
        let a = registry(&["x key=1 limit=1/1s", "jack key=2", "jack limit=5/1m"]).unwrap();
        let b = registry(&["jack key=3 limit=1/1s"]).unwrap();
        let ja = a.consumer(a.find(b"jack").unwrap()).counter_key;
        let jb = b.consumer(b.find(b"jack").unwrap()).counter_key;
        assert_eq!(ja, jb);
        assert_ne!(ja, a.consumer(a.find(b"x").unwrap()).counter_key);
    }

    #[test]
    fn compact_records_across_blocks() {
        // A long name (a two-byte length in the arena), attributes given on
        // a later line, a second block after a freeze.
        let long = "n".repeat(300);
        let mut r = registry(&[
            &format!("{long} key=a credential=ca"),
            &format!("{long} key=b custom_id=x group=g1,g2 limit=2/1s"),
            "bob key=c",
        ])
        .unwrap();
        let i = r.find(long.as_bytes()).unwrap();
        let c = r.consumer(i);
        assert_eq!(c.name, long);
        assert_eq!(c.custom_id, Some("x"));
        assert_eq!(c.groups().collect::<Vec<_>>(), ["g1", "g2"]);
        assert_eq!(c.limit.unwrap().count, 2);
        assert_eq!(r.find(b"bob"), Some(1));
        assert_eq!(r.find(b"nobody"), None);
        assert!(r.add(line("carol key=d credential=ca").unwrap()).is_err());
        assert!(r.add(line("bob group=g3").unwrap()).is_ok());
        assert!(r.add(line("bob group=g4").unwrap()).is_err());
        r.add(line("carol key=e expires=2000000000").unwrap())
            .unwrap();
        r.freeze();
        assert_eq!(r.find(b"bob"), Some(1));
        assert!(r.has_group("g3") && r.has_group("g2") && !r.has_group("g"));
        let (carol, cred) = r.lookup(b"e").unwrap();
        assert_eq!(
            (carol.name, cred.id, cred.expires),
            ("carol", None, Some(2_000_000_000))
        );
        assert_eq!(r.lookup(b"a").unwrap().1.id, Some("ca"));
        assert_eq!(r.key_count(), 4);
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
        assert_eq!(parse_groups(b"a"), Ok("a"));
        assert_eq!(parse_groups(b"partners,staff"), Ok("partners,staff"));
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
