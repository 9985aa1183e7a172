//! The entry table in the shared zone: hash buckets, least-recently-used
//! order and the single-flight marker, pure (it works on slices, which the
//! zone provides in shared memory and the tests on the heap).
//!
//! Fixed-size slots: a full zone always has a slot to give (the least
//! recently used one), nothing fragments, and a slot never holds a key —
//! only the keyed hash of the question (`id`) and the keyed hashes an
//! operator purges by (`tags`: the key value alone, for purging one key in
//! every cache sharing the zone; or auth_http's user name and client id).
//!
//! An entry is *used* when it is stored and each time it answers a hit; an
//! entry not used for the zone's `inactive` time counts as absent, even
//! while it is fresh.

/// Bytes of entry data a slot holds (the slot is 1 KiB).
pub const DATA_CAP: usize = 928;

/// What an entry can be purged by: keyed hashes of the values an operator
/// names (the key, a user name, a client id), each hashed with a word of
/// its own so that one never matches another; 0: none.
pub type Tags = [u128; 2];

const NIL: u32 = u32::MAX;

/// One entry. Plain data: an all-zero slot is a valid free one.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Slot {
    id: u128,
    tags: Tags,
    /// The data is fresh before this time (ms); 0: no data.
    expires_ms: u64,
    /// When the entry was last used (stored, or answered a hit; ms).
    used_ms: u64,
    /// A request is asking the service for this entry until this time
    /// (ms); 0: nobody.
    pending_until_ms: u64,
    bucket_next: u32,
    lru_prev: u32,
    lru_next: u32,
    in_use: u32,
    len: u32,
    _reserved: u32,
    data: [u8; DATA_CAP],
}

impl Default for Slot {
    fn default() -> Self {
        Self {
            id: 0,
            tags: [0; 2],
            expires_ms: 0,
            used_ms: 0,
            pending_until_ms: 0,
            bucket_next: NIL,
            lru_prev: NIL,
            lru_next: NIL,
            in_use: 0,
            len: 0,
            _reserved: 0,
            data: [0; DATA_CAP],
        }
    }
}

impl Slot {
    /// Holds data, nobody is asking the service for it, and it was not
    /// used for the zone's `inactive` time: it counts as absent.
    fn is_inactive(&self, clock: Clock) -> bool {
        self.expires_ms != 0
            && self.pending_until_ms <= clock.now_ms
            && clock.now_ms.saturating_sub(self.used_ms) >= clock.inactive_ms
    }
}

/// When a table operation happens and how long an unused entry lives
/// (the zone's `inactive=`), in ms of nginx's monotonic clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    pub now_ms: u64,
    pub inactive_ms: u64,
}

/// The table's bookkeeping, at the start of the zone.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Header {
    /// Most recently used first.
    lru_head: u32,
    lru_tail: u32,
    free_head: u32,
    pub used: u32,
    /// How many purges ran (any kind, wrapping): an answer asked for
    /// before a purge is not stored after it (see [`Table::store_unless_purged`]).
    purges: u64,
}

impl Header {
    /// An empty table over `slots` (which [`Table::format`] links).
    pub fn new() -> Self {
        Self {
            lru_head: NIL,
            lru_tail: NIL,
            free_head: NIL,
            used: 0,
            purges: 0,
        }
    }
}

impl Default for Header {
    fn default() -> Self {
        Self::new()
    }
}

/// The table: header, buckets (slot indexes), slots.
pub struct Table<'a> {
    header: &'a mut Header,
    buckets: &'a mut [u32],
    slots: &'a mut [Slot],
}

/// What the start of a lookup found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Begin {
    /// A fresh entry: its data is [`Table::data`] of this slot.
    Hit(u32),
    /// Another request is asking the service for this entry: look again
    /// later.
    Wait,
    /// Ask the service. `claimed`: this request holds the single-flight
    /// marker (others wait for it). `expired`: an entry was there but is
    /// stale. `evicted`: making room for this request's entry pushed the
    /// least recently used one out (for the status zone).
    Ask {
        claimed: bool,
        expired: bool,
        evicted: bool,
    },
}

/// Why an answer was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreError {
    /// Larger than [`DATA_CAP`].
    TooLarge,
    /// The table has no slots at all.
    NoRoom,
    /// A purge ran after the answer was asked for: it may be what the
    /// purge revoked.
    Purged,
}

impl<'a> Table<'a> {
    /// The table over memory laid out by [`Table::format`] (or a previous
    /// run of it, when a zone survives a reload).
    pub fn new(header: &'a mut Header, buckets: &'a mut [u32], slots: &'a mut [Slot]) -> Self {
        Self {
            header,
            buckets,
            slots,
        }
    }

    /// Makes every slot free and every bucket empty.
    pub fn format(&mut self) {
        *self.header = Header::new();
        self.buckets.fill(NIL);
        for i in (0..self.slots.len()).rev() {
            self.slots[i] = Slot::default();
            self.slots[i].bucket_next = self.header.free_head;
            self.header.free_head = i as u32;
        }
    }

    /// Starts a lookup for `id` at `clock`. `tags` are only computed when
    /// a new entry is made (a hit costs no second hash).
    ///
    /// A fresh entry used within the zone's `inactive` time is a hit (and
    /// becomes the most recently used). One not used for that long counts
    /// as absent and leaves the table (a miss, not `expired`). When another
    /// request's marker is live and `may_wait`, wait. Otherwise ask; with
    /// `may_claim` the request puts up its own marker, valid `flight_ms`,
    /// so that others wait for its answer instead of asking too.
    pub fn begin(
        &mut self,
        id: u128,
        tags: impl FnOnce() -> Tags,
        clock: Clock,
        flight_ms: u64,
        may_wait: bool,
        may_claim: bool,
    ) -> Begin {
        let now = clock.now_ms;
        let mut found = self.find(id);
        if let Some(i) = found {
            if self.slots[i as usize].is_inactive(clock) {
                self.remove(i);
                found = None;
            }
        }
        let mut expired = false;
        if let Some(i) = found {
            let slot = &self.slots[i as usize];
            if slot.expires_ms > now {
                self.touch(i, now);
                return Begin::Hit(i);
            }
            expired = slot.expires_ms != 0;
            if slot.pending_until_ms > now && may_wait {
                return Begin::Wait;
            }
        }
        if !may_claim {
            return Begin::Ask {
                claimed: false,
                expired,
                evicted: false,
            };
        }
        let (slot, evicted) = match found {
            Some(i) => (Some(i), false),
            None => match self.insert(id, tags(), clock) {
                Some((i, evicted)) => (Some(i), evicted),
                None => (None, false),
            },
        };
        let Some(i) = slot else {
            return Begin::Ask {
                claimed: false,
                expired,
                evicted: false,
            };
        };
        self.slots[i as usize].pending_until_ms = now.saturating_add(flight_ms).max(1);
        Begin::Ask {
            claimed: true,
            expired,
            evicted,
        }
    }

    /// [`Table::begin`]'s hit alone: the slot of a fresh entry for `id`
    /// used within the zone's `inactive` time, made the most recently
    /// used; `None` for anything else (absent, inactive, expired, in
    /// flight), which is for `begin` to handle.
    #[inline]
    pub fn hit(&mut self, id: u128, clock: Clock) -> Option<u32> {
        let i = self.find(id)?;
        let slot = &self.slots[i as usize];
        if slot.expires_ms <= clock.now_ms || slot.is_inactive(clock) {
            return None;
        }
        self.touch(i, clock.now_ms);
        Some(i)
    }

    /// The data of slot `i` (after [`Begin::Hit`]).
    #[inline]
    pub fn data(&self, i: u32) -> &[u8] {
        let slot = &self.slots[i as usize];
        &slot.data[..slot.len as usize]
    }

    /// Stores `data` for `id`, fresh until `expires_ms`, purged by `tags`
    /// (they replace those the entry had), used at `clock`, and ends its
    /// flight. A full table gives up its least recently used entry.
    pub fn store(
        &mut self,
        id: u128,
        tags: Tags,
        expires_ms: u64,
        clock: Clock,
        data: &[u8],
    ) -> Result<(), StoreError> {
        if data.len() > DATA_CAP {
            self.release(id);
            return Err(StoreError::TooLarge);
        }
        let Some(i) = self
            .find(id)
            .or_else(|| self.insert(id, tags, clock).map(|(i, _)| i))
        else {
            return Err(StoreError::NoRoom);
        };
        let slot = &mut self.slots[i as usize];
        slot.data[..data.len()].copy_from_slice(data);
        slot.len = data.len() as u32;
        slot.tags = tags;
        slot.expires_ms = expires_ms.max(1);
        slot.pending_until_ms = 0;
        self.touch(i, clock.now_ms);
        Ok(())
    }

    /// How many purges have run: read when a request starts asking the
    /// service, handed back to [`Table::store_unless_purged`].
    pub fn purges(&self) -> u64 {
        self.header.purges
    }

    /// [`Table::store`], unless a purge ran since [`Table::purges`] was
    /// `asked_at`: the answer was asked for before the purge, maybe from a
    /// service that has changed its mind since, so keeping it would bring
    /// back a revoked decision for its whole lifetime. The flight ends
    /// either way (waiters ask for themselves, after the purge).
    pub fn store_unless_purged(
        &mut self,
        asked_at: u64,
        id: u128,
        tags: Tags,
        expires_ms: u64,
        clock: Clock,
        data: &[u8],
    ) -> Result<(), StoreError> {
        if self.header.purges != asked_at {
            self.release(id);
            return Err(StoreError::Purged);
        }
        self.store(id, tags, expires_ms, clock, data)
    }

    /// Ends `id`'s flight without an answer to store: waiters stop
    /// waiting. An entry without data leaves the table.
    pub fn release(&mut self, id: u128) {
        if let Some(i) = self.find(id) {
            self.slots[i as usize].pending_until_ms = 0;
            if self.slots[i as usize].expires_ms == 0 {
                self.remove(i);
            }
        }
    }

    /// Removes every entry tagged `tag` (the keyed hash of a key value, a
    /// user name or a client id); returns how many.
    pub fn purge_tag(&mut self, tag: u128) -> usize {
        if tag == 0 {
            return 0;
        }
        self.purge_where(|slot| slot.tags.contains(&tag))
    }

    /// Removes every entry; returns how many.
    pub fn purge_all(&mut self) -> usize {
        self.purge_where(|_| true)
    }

    fn purge_where(&mut self, matches: impl Fn(&Slot) -> bool) -> usize {
        // Every purge, also one that finds nothing now: the answers being
        // fetched have no entry to remove yet, they must not be stored.
        self.header.purges = self.header.purges.wrapping_add(1);
        let mut removed = 0;
        for i in 0..self.slots.len() {
            if self.slots[i].in_use != 0 && matches(&self.slots[i]) {
                self.remove(i as u32);
                removed += 1;
            }
        }
        removed
    }

    fn bucket(&self, id: u128) -> usize {
        (id as u64 % self.buckets.len().max(1) as u64) as usize
    }

    #[inline]
    fn find(&self, id: u128) -> Option<u32> {
        if self.buckets.is_empty() {
            return None;
        }
        let mut i = self.buckets[self.bucket(id)];
        while i != NIL {
            let slot = &self.slots[i as usize];
            if slot.id == id {
                return Some(i);
            }
            i = slot.bucket_next;
        }
        None
    }

    /// A new entry for `id` (free slot, else the least recently used one),
    /// most recently used, without data; and whether an entry was evicted
    /// for it (one that could still answer, or a flight's marker: a stale
    /// or idle entry taking its turn is no loss).
    fn insert(&mut self, id: u128, tags: Tags, clock: Clock) -> Option<(u32, bool)> {
        if self.buckets.is_empty() {
            return None;
        }
        let (i, evicted) = if self.header.free_head != NIL {
            let i = self.header.free_head;
            self.header.free_head = self.slots[i as usize].bucket_next;
            (i, false)
        } else if self.header.lru_tail != NIL {
            let i = self.header.lru_tail;
            let tail = &self.slots[i as usize];
            let lost = tail.expires_ms == 0
                || (tail.expires_ms > clock.now_ms && !tail.is_inactive(clock));
            self.remove(i);
            self.header.free_head = self.slots[i as usize].bucket_next;
            (i, lost)
        } else {
            return None;
        };
        let b = self.bucket(id);
        let slot = &mut self.slots[i as usize];
        slot.id = id;
        slot.tags = tags;
        slot.expires_ms = 0;
        slot.used_ms = clock.now_ms;
        slot.pending_until_ms = 0;
        slot.len = 0;
        slot.in_use = 1;
        slot.bucket_next = self.buckets[b];
        self.buckets[b] = i;
        self.link_front(i);
        self.header.used += 1;
        Some((i, evicted))
    }

    fn remove(&mut self, i: u32) {
        let b = self.bucket(self.slots[i as usize].id);
        // Unlink from the bucket chain.
        let next = self.slots[i as usize].bucket_next;
        if self.buckets[b] == i {
            self.buckets[b] = next;
        } else {
            let mut j = self.buckets[b];
            while j != NIL {
                if self.slots[j as usize].bucket_next == i {
                    self.slots[j as usize].bucket_next = next;
                    break;
                }
                j = self.slots[j as usize].bucket_next;
            }
        }
        self.unlink_lru(i);
        let slot = &mut self.slots[i as usize];
        slot.in_use = 0;
        slot.expires_ms = 0;
        slot.pending_until_ms = 0;
        slot.len = 0;
        slot.id = 0;
        slot.tags = [0; 2];
        slot.bucket_next = self.header.free_head;
        self.header.free_head = i;
        self.header.used -= 1;
    }

    #[inline]
    fn touch(&mut self, i: u32, now_ms: u64) {
        self.slots[i as usize].used_ms = now_ms;
        if self.header.lru_head != i {
            self.unlink_lru(i);
            self.link_front(i);
        }
    }

    fn link_front(&mut self, i: u32) {
        let head = self.header.lru_head;
        self.slots[i as usize].lru_prev = NIL;
        self.slots[i as usize].lru_next = head;
        if head != NIL {
            self.slots[head as usize].lru_prev = i;
        } else {
            self.header.lru_tail = i;
        }
        self.header.lru_head = i;
    }

    fn unlink_lru(&mut self, i: u32) {
        let (prev, next) = (
            self.slots[i as usize].lru_prev,
            self.slots[i as usize].lru_next,
        );
        if prev != NIL {
            self.slots[prev as usize].lru_next = next;
        } else if self.header.lru_head == i {
            self.header.lru_head = next;
        }
        if next != NIL {
            self.slots[next as usize].lru_prev = prev;
        } else if self.header.lru_tail == i {
            self.header.lru_tail = prev;
        }
        self.slots[i as usize].lru_prev = NIL;
        self.slots[i as usize].lru_next = NIL;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Mem {
        header: Header,
        buckets: Vec<u32>,
        slots: Vec<Slot>,
    }

    impl Mem {
        fn new(n: usize) -> Self {
            let mut m = Mem {
                header: Header::new(),
                buckets: vec![0; n],
                slots: vec![Slot::default(); n],
            };
            m.table().format();
            m
        }
        fn table(&mut self) -> Table<'_> {
            Table::new(&mut self.header, &mut self.buckets, &mut self.slots)
        }
    }

    /// `now` with no inactivity limit.
    fn at(now: u64) -> Clock {
        Clock {
            now_ms: now,
            inactive_ms: u64::MAX,
        }
    }

    const ASK: Begin = Begin::Ask {
        claimed: true,
        expired: false,
        evicted: false,
    };

    #[test]
    fn miss_store_hit_expire() {
        let mut m = Mem::new(4);
        let mut t = m.table();
        assert_eq!(t.begin(1, || [10, 0], at(100), 5000, true, true), ASK);
        t.store(1, [10, 0], 200, at(0), b"decision").unwrap();
        let Begin::Hit(i) = t.begin(1, || [10, 0], at(150), 5000, true, true) else {
            panic!("no hit")
        };
        assert_eq!(t.data(i), b"decision");
        assert_eq!(
            t.begin(1, || [10, 0], at(200), 5000, true, true),
            Begin::Ask {
                claimed: true,
                expired: true,
                evicted: false,
            }
        );
    }

    #[test]
    fn single_flight() {
        let mut m = Mem::new(4);
        let mut t = m.table();
        assert_eq!(t.begin(1, || [10, 0], at(100), 5000, true, true), ASK);
        // others wait while the marker lives
        assert_eq!(
            t.begin(1, || [10, 0], at(101), 5000, true, true),
            Begin::Wait
        );
        // a waiter that may not wait any longer asks without a marker
        assert_eq!(
            t.begin(1, || [10, 0], at(102), 5000, false, false),
            Begin::Ask {
                claimed: false,
                expired: false,
                evicted: false,
            }
        );
        // the marker's deadline passes: the next one claims
        assert_eq!(t.begin(1, || [10, 0], at(5101), 5000, true, true), ASK);
        // the flight ends without an answer: nobody waits
        t.release(1);
        assert_eq!(t.m_used(), 0);
        assert_eq!(t.begin(1, || [10, 0], at(5102), 5000, true, true), ASK);
        t.store(1, [10, 0], 9000, at(0), b"x").unwrap();
        assert!(matches!(
            t.begin(1, || [10, 0], at(5103), 5000, true, true),
            Begin::Hit(_)
        ));
    }

    #[test]
    fn full_table_evicts_least_recently_used() {
        let mut m = Mem::new(3);
        let mut t = m.table();
        for id in 1..=3u128 {
            t.store(id, [id, 0], 1000, at(0), b"v").unwrap();
        }
        // use 1, so 2 is the least recently used
        assert!(matches!(
            t.begin(1, || [1, 0], at(0), 10, true, true),
            Begin::Hit(_)
        ));
        t.store(4, [4, 0], 1000, at(0), b"v").unwrap();
        assert!(matches!(
            t.begin(2, || [2, 0], at(0), 10, false, false),
            Begin::Ask { .. }
        ));
        for id in [1u128, 3, 4] {
            assert!(
                matches!(
                    t.begin(id, || [id, 0], at(0), 10, false, false),
                    Begin::Hit(_)
                ),
                "{id}"
            );
        }
        assert_eq!(t.m_used(), 3);
        // a miss that claims a slot in the full table says it evicted
        assert_eq!(
            t.begin(5, || [5, 0], at(0), 10, false, true),
            Begin::Ask {
                claimed: true,
                expired: false,
                evicted: true,
            }
        );
        t.release(5);
    }

    #[test]
    fn too_large_releases_the_flight() {
        let mut m = Mem::new(2);
        let mut t = m.table();
        assert_eq!(t.begin(1, || [1, 0], at(0), 5000, true, true), ASK);
        assert_eq!(
            t.store(1, [1, 0], 100, at(0), &[0; DATA_CAP + 1]),
            Err(StoreError::TooLarge)
        );
        assert_eq!(t.begin(1, || [1, 0], at(1), 5000, true, true), ASK);
        assert!(t.store(1, [1, 0], 100, at(0), &[0; DATA_CAP]).is_ok());
    }

    #[test]
    fn an_answer_asked_before_a_purge_is_not_stored() {
        let mut m = Mem::new(4);
        let mut t = m.table();
        // asked before a purge that matches nothing yet (no data to remove)
        let asked = t.purges();
        assert_eq!(t.begin(1, || [10, 0], at(0), 5000, true, true), ASK);
        assert_eq!(t.purge_tag(99), 0);
        assert_eq!(
            t.store_unless_purged(asked, 1, [10, 0], 1000, at(1), b"allow"),
            Err(StoreError::Purged)
        );
        // the flight ended: the next request asks (and claims) again
        assert_eq!(t.begin(1, || [10, 0], at(2), 5000, true, true), ASK);
        let asked = t.purges();
        assert!(t
            .store_unless_purged(asked, 1, [10, 0], 1000, at(3), b"deny")
            .is_ok());
        assert_eq!(
            t.begin(1, || [10, 0], at(4), 5000, true, true),
            Begin::Hit(0)
        );
        assert_eq!(t.data(0), b"deny");
        // purge all counts too
        let asked = t.purges();
        assert_eq!(t.begin(2, || [20, 0], at(5), 5000, true, true), ASK);
        t.purge_all();
        assert_eq!(
            t.store_unless_purged(asked, 2, [20, 0], 1000, at(6), b"x"),
            Err(StoreError::Purged)
        );
        assert_eq!(t.header.used, 0);
    }

    #[test]
    fn empty_table_never_stores() {
        let mut m = Mem::new(0);
        let mut t = m.table();
        assert_eq!(
            t.begin(1, || [1, 0], at(0), 5000, true, true),
            Begin::Ask {
                claimed: false,
                expired: false,
                evicted: false,
            }
        );
        assert_eq!(
            t.store(1, [1, 0], 100, at(0), b"x"),
            Err(StoreError::NoRoom)
        );
    }

    #[test]
    fn purge_by_key_and_all() {
        let mut m = Mem::new(8);
        let mut t = m.table();
        t.store(1, [100, 0], 1000, at(0), b"a").unwrap();
        t.store(2, [100, 0], 1000, at(0), b"b").unwrap();
        t.store(3, [200, 0], 1000, at(0), b"c").unwrap();
        assert_eq!(t.purge_tag(100), 2);
        assert!(matches!(
            t.begin(1, || [100, 0], at(0), 10, false, false),
            Begin::Ask { .. }
        ));
        assert!(matches!(
            t.begin(3, || [200, 0], at(0), 10, false, false),
            Begin::Hit(_)
        ));
        assert_eq!(t.purge_all(), 1);
        assert_eq!(t.m_used(), 0);
    }

    #[test]
    fn colliding_buckets_and_churn() {
        // many ids into few buckets, stored and removed in mixed order
        let mut m = Mem::new(5);
        let mut t = m.table();
        for round in 0..50u128 {
            let id = round * 5 + 3; // same bucket
            t.store(id, [id, 0], 1000, at(0), &[round as u8]).unwrap();
            if round % 3 == 0 {
                t.release(id); // has data: stays
                t.purge_tag(id);
            }
            assert!(t.m_used() <= 5);
        }
        let hits = (0..50u128)
            .filter(|r| {
                matches!(
                    t.begin(r * 5 + 3, || [0, 0], at(0), 10, false, false),
                    Begin::Hit(_)
                )
            })
            .count();
        assert_eq!(hits, 5);
        t.purge_all();
        assert_eq!(t.m_used(), 0);
        for id in 0..5u128 {
            t.store(id, [id, 0], 1000, at(0), b"v").unwrap();
        }
        assert_eq!(t.m_used(), 5);
    }

    #[test]
    fn an_entry_not_used_for_inactive_counts_as_absent() {
        let mut m = Mem::new(4);
        let mut t = m.table();
        let clock = |now| Clock {
            now_ms: now,
            inactive_ms: 100,
        };
        // fresh for 10 s, inactive after 100 ms without a use
        assert_eq!(t.begin(1, || [1, 0], clock(0), 5000, true, true), ASK);
        t.store(1, [1, 0], 10_000, clock(0), b"v").unwrap();
        // a hit within the window keeps it, and counts as a use
        for now in [90, 180, 270] {
            assert!(
                matches!(
                    t.begin(1, || [1, 0], clock(now), 5000, true, true),
                    Begin::Hit(_)
                ),
                "{now}"
            );
        }
        // 100 ms after the last hit: absent, a miss (not expired)
        assert_eq!(t.begin(1, || [1, 0], clock(370), 5000, true, true), ASK);
        assert_eq!(t.m_used(), 1);
        t.store(1, [1, 0], 10_000, clock(400), b"w").unwrap();
        let Begin::Hit(i) = t.begin(1, || [1, 0], clock(450), 5000, true, true) else {
            panic!("no hit after the new answer")
        };
        assert_eq!(t.data(i), b"w");
        // the freshness still ends the entry first when it is shorter
        t.store(2, [2, 0], 50, clock(0), b"x").unwrap();
        assert_eq!(
            t.begin(2, || [2, 0], clock(60), 5000, true, true),
            Begin::Ask {
                claimed: true,
                expired: true,
                evicted: false,
            }
        );
        t.release(2);
        // while a flight refreshes an entry, idleness does not remove it
        t.store(3, [3, 0], 20, clock(0), b"y").unwrap();
        assert!(matches!(
            t.begin(3, || [3, 0], clock(30), 5000, true, true),
            Begin::Ask { claimed: true, .. }
        ));
        assert_eq!(
            t.begin(3, || [3, 0], clock(200), 5000, true, true),
            Begin::Wait
        );
    }

    #[test]
    fn idle_or_stale_entries_give_their_place_without_an_eviction() {
        let mut m = Mem::new(2);
        let mut t = m.table();
        let clock = |now| Clock {
            now_ms: now,
            inactive_ms: 100,
        };
        t.store(1, [1, 0], 10_000, clock(0), b"idle").unwrap();
        t.store(2, [2, 0], 10, clock(0), b"stale").unwrap();
        for id in [3u128, 4] {
            assert_eq!(
                t.begin(id, || [id, 0], clock(500), 5000, true, true),
                ASK,
                "{id}"
            );
        }
        // a fresh, recently used entry pushed out is an eviction
        t.store(3, [3, 0], 10_000, clock(500), b"v").unwrap();
        t.store(4, [4, 0], 10_000, clock(500), b"v").unwrap();
        assert_eq!(
            t.begin(5, || [5, 0], clock(510), 5000, true, true),
            Begin::Ask {
                claimed: true,
                expired: false,
                evicted: true,
            }
        );
    }

    #[test]
    fn purge_by_either_tag() {
        let mut m = Mem::new(8);
        let mut t = m.table();
        // user tag, client tag
        t.store(1, [10, 20], 1000, at(0), b"a").unwrap();
        t.store(2, [10, 21], 1000, at(0), b"b").unwrap();
        t.store(3, [11, 20], 1000, at(0), b"c").unwrap();
        t.store(4, [11, 0], 1000, at(0), b"d").unwrap();
        assert_eq!(t.purge_tag(0), 0, "0 is no tag");
        assert_eq!(t.purge_tag(20), 2);
        assert_eq!(t.purge_tag(10), 1);
        assert!(matches!(
            t.begin(4, || [0, 0], at(0), 10, false, false),
            Begin::Hit(_)
        ));
        // a store replaces the tags the entry had
        t.store(4, [12, 0], 1000, at(0), b"d").unwrap();
        assert_eq!(t.purge_tag(11), 0);
        assert_eq!(t.purge_tag(12), 1);
    }

    /// Random operations (a fixed-seed LCG) on a small table with an
    /// inactive time, and after each the structure's invariants: `used`
    /// counts the slots in use, each is found by its id in its bucket, the
    /// LRU list holds exactly them, newest use first, and a hit is never
    /// idle or stale.
    #[test]
    fn random_operations_keep_the_table_whole() {
        let mut m = Mem::new(6);
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        let mut now = 1u64;
        for _ in 0..20_000 {
            now += next(40);
            let clock = Clock {
                now_ms: now,
                inactive_ms: 100,
            };
            let id = 1 + u128::from(next(12) as u8);
            let mut t = m.table();
            match next(6) {
                0 | 1 => {
                    if let Begin::Hit(i) =
                        t.begin(id, || [id, 0], clock, 50, next(2) == 0, next(2) == 0)
                    {
                        let slot = &t.slots[i as usize];
                        assert!(slot.expires_ms > now && slot.used_ms == now);
                    }
                }
                2 | 3 => {
                    let _ = t.store(id, [id, id + 100], now + next(300), clock, b"v");
                }
                4 => t.release(id),
                _ => {
                    if next(20) == 0 {
                        t.purge_all();
                    } else {
                        t.purge_tag(id + 100 * u128::from(next(2) as u8));
                    }
                }
            }
            let in_use: Vec<u32> = (0..t.slots.len() as u32)
                .filter(|&i| t.slots[i as usize].in_use != 0)
                .collect();
            assert_eq!(t.header.used as usize, in_use.len());
            for &i in &in_use {
                assert_eq!(t.find(t.slots[i as usize].id), Some(i));
            }
            let mut lru = Vec::new();
            let mut i = t.header.lru_head;
            while i != NIL {
                lru.push(i);
                assert!(lru.len() <= t.slots.len(), "LRU loop");
                i = t.slots[i as usize].lru_next;
            }
            let mut sorted = lru.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, in_use);
            assert!(lru
                .windows(2)
                .all(|w| t.slots[w[0] as usize].used_ms >= t.slots[w[1] as usize].used_ms));
        }
    }

    impl Table<'_> {
        fn m_used(&self) -> u32 {
            self.header.used
        }
    }
}
