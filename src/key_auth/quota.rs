//! Per-consumer quotas: a fixed window that starts at the consumer's first
//! request, and the counter table that lives in the shared memory zone.
//! Pure Rust over plain slices, so the whole logic is unit-tested; the
//! handler supplies the (locked) zone memory and the clock.

use super::consumers::Limit;

/// One consumer's counter. Lives in shared memory: `repr(C)`, plain data.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Slot {
    /// Non-zero when the slot holds a counter.
    pub occupied: u64,
    /// The consumer's counter key (derived from its name).
    pub key: [u8; 16],
    /// When the current window started (ms, nginx's monotonic clock).
    pub start_ms: u64,
    /// The window length in effect when it started; lets a full table drop
    /// counters whose window is over without knowing the configuration.
    pub window_ms: u64,
    /// Requests counted in the current window.
    pub count: u64,
}

/// The verdict for one request, with what the `X-RateLimit-*` headers say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// `X-RateLimit-Limit`.
    pub limit: u64,
    /// `X-RateLimit-Remaining` (after this request).
    pub remaining: u64,
    /// `X-RateLimit-Reset`: seconds until the window ends, rounded up.
    pub reset_secs: u64,
}

/// `X-RateLimit-Limit` as text for the `limit=` counts of the configuration,
/// made once when it is loaded: a request of a limited consumer then points
/// its header at the text instead of formatting the number. Limits come in
/// few distinct values (tiers); only the [`LimitTexts::MAX`] most common are
/// kept (a request of another count formats it), so a configuration where
/// every consumer has a limit of its own costs no more than that.
#[derive(Debug, Default)]
pub struct LimitTexts {
    /// Sorted by count.
    texts: Vec<(u64, Box<[u8]>)>,
}

impl LimitTexts {
    pub const MAX: usize = 64;

    pub fn new(counts: impl Iterator<Item = u64>) -> Self {
        let mut seen = std::collections::HashMap::<u64, usize>::new();
        for count in counts {
            *seen.entry(count).or_default() += 1;
        }
        let mut common: Vec<(u64, usize)> = seen.into_iter().collect();
        // most common first, then by count (deterministic)
        common.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        common.truncate(Self::MAX);
        let mut texts: Vec<(u64, Box<[u8]>)> = common
            .into_iter()
            .map(|(count, _)| (count, count.to_string().into_bytes().into_boxed_slice()))
            .collect();
        texts.sort_unstable_by_key(|&(count, _)| count);
        Self { texts }
    }

    /// The text of `count`, when kept.
    #[inline]
    pub fn get(&self, count: u64) -> Option<&[u8]> {
        match self.texts.as_slice() {
            [(only, text)] => (*only == count).then_some(&**text),
            texts => texts
                .binary_search_by_key(&count, |&(c, _)| c)
                .ok()
                .map(|i| &*texts[i].1),
        }
    }
}

/// Whether a window that started at `start_ms` and lasts `window_ms` is
/// over at `now_ms`.
///
/// Workers read different clocks: each caches nginx's monotonic time when
/// its event loop wakes up (every `timer_resolution` with that directive),
/// and a window may have been started by a worker whose clock is ahead. A
/// start later than `now_ms` is therefore still the current window, never
/// a reason to start a new one: a window is over only once `now_ms` reaches
/// its end.
pub fn window_over(start_ms: u64, window_ms: u64, now_ms: u64) -> bool {
    now_ms >= start_ms.saturating_add(window_ms)
}

/// Counts one request of the consumer owning `slot` at time `now_ms`.
///
/// A new window starts at the first request, and again at the first request
/// once the previous window is over ([`window_over`]). A refused request is
/// not counted. However far apart the clocks of the workers calling it,
/// at most `limit.count` requests are allowed between two window starts.
pub fn take(slot: &mut Slot, limit: &Limit, now_ms: u64) -> Decision {
    // Configuration may have changed the window since the counter started
    // (a reload): the current configuration decides when it ends.
    if slot.count == 0 || window_over(slot.start_ms, limit.window_ms, now_ms) {
        slot.start_ms = now_ms;
        slot.count = 0;
    }
    slot.window_ms = limit.window_ms;
    let ends = slot.start_ms.saturating_add(limit.window_ms);
    let allowed = slot.count < limit.count;
    if allowed {
        slot.count += 1;
    }
    // A window started by a worker whose clock is ahead ends, by this
    // clock, more than one window from now; say at most one window.
    let left_ms = ends.saturating_sub(now_ms).min(limit.window_ms);
    Decision {
        allowed,
        limit: limit.count,
        remaining: limit.count.saturating_sub(slot.count),
        // div_ceil in fewer instructions; they differ only for a window
        // within 999 ms of u64::MAX (half a billion years), by one second.
        reset_secs: left_ms.saturating_add(999) / 1000,
    }
}

/// The verdict for one request counted in Redis (`key_auth_quota_store`):
/// `count` is the window's count including this request, `ttl_ms` the
/// window's remaining time, both as the quota script answered. Unlike the
/// zone, Redis counts refused requests too; only the first `limit.count`
/// of a window are allowed either way.
pub fn shared_decision(limit: &Limit, count: u64, ttl_ms: u64) -> Decision {
    Decision {
        allowed: count <= limit.count,
        limit: limit.count,
        remaining: limit.count.saturating_sub(count),
        reset_secs: ttl_ms.min(limit.window_ms).div_ceil(1000),
    }
}

/// An open-addressing hash table of [`Slot`]s (linear probing). When it is
/// full, counters whose window is over are dropped by [`Table::compact`] —
/// at most once per counter window end, not once per request: the zone
/// remembers the earliest time a kept counter's window ends, and before
/// that nothing could be dropped.
pub struct Table<'a> {
    slots: &'a mut [Slot],
    /// Occupied slots, kept in the zone next to the slots.
    used: &'a mut u64,
    /// No counter's window ends before this time (ms), as of the last
    /// compaction (0: compact when needed). Kept in the zone.
    next_compaction_ms: &'a mut u64,
}

/// Number of slots that may be occupied in a table of `len` slots (3/4 of
/// them, so probes stay short).
pub fn max_used(len: usize) -> u64 {
    (len as u64 * 3 / 4).max(1).min(len as u64)
}

impl<'a> Table<'a> {
    pub fn new(slots: &'a mut [Slot], used: &'a mut u64, next_compaction_ms: &'a mut u64) -> Self {
        Self {
            slots,
            used,
            next_compaction_ms,
        }
    }

    fn home(&self, key: &[u8; 16]) -> usize {
        home(key, self.slots.len())
    }

    fn max_used(&self) -> u64 {
        max_used(self.slots.len())
    }

    /// The slot of `key`, creating it when absent. `None`: the table is full
    /// even after dropping expired counters (or no counter can have expired
    /// since the last compaction).
    ///
    /// Inline: a consumer already counted (every request but its first in
    /// a window) is one probe, usually at its home slot; creating a counter
    /// is [`Table::insert`]'s, out of line.
    #[inline]
    pub fn slot(&mut self, key: &[u8; 16], now_ms: u64) -> Option<&mut Slot> {
        match self.probe(key) {
            Ok(found) => Some(&mut self.slots[found]),
            Err(free) => self.insert(key, free, now_ms),
        }
    }

    /// [`Table::slot`] for a `key` not in the table, whose probe ended at the
    /// free slot `free` (`len` for none).
    #[cold]
    #[inline(never)]
    fn insert(&mut self, key: &[u8; 16], free: usize, now_ms: u64) -> Option<&mut Slot> {
        if self.slots.is_empty() {
            return None;
        }
        let max_used = self.max_used();
        let free = if *self.used < max_used {
            free
        } else {
            if now_ms < *self.next_compaction_ms {
                return None;
            }
            self.compact(now_ms);
            if *self.used >= max_used {
                return None;
            }
            self.probe(key).err()?
        };
        let slot = self.slots.get_mut(free)?;
        *slot = Slot {
            occupied: 1,
            key: *key,
            ..Slot::default()
        };
        *self.used += 1;
        Some(slot)
    }

    /// Counts one request of the consumer `key` ([`take`]). `None`: the
    /// table is full.
    #[inline]
    pub fn count(&mut self, key: &[u8; 16], limit: &Limit, now_ms: u64) -> Option<Decision> {
        let slot = self.slot(key, now_ms)?;
        let decision = take(slot, limit, now_ms);
        // A new counter, or one whose window got shorter with a reload, may
        // end before every other.
        let ends = slot.start_ms.saturating_add(slot.window_ms);
        *self.next_compaction_ms = (*self.next_compaction_ms).min(ends);
        Some(decision)
    }

    /// `Ok(index)` of the slot holding `key`, or `Err(index)` of the free
    /// slot where it would go (`Err(len)`: none, only when every slot is
    /// occupied; never with [`max_used`] < len; or an empty table).
    #[inline]
    fn probe(&self, key: &[u8; 16]) -> Result<usize, usize> {
        let len = self.slots.len();
        if len == 0 {
            return Err(0);
        }
        let mut i = self.home(key);
        for _ in 0..len {
            let slot = &self.slots[i];
            if slot.occupied == 0 {
                return Err(i);
            }
            if slot.key == *key {
                return Ok(i);
            }
            i += 1;
            if i == len {
                i = 0;
            }
        }
        Err(len)
    }

    /// Drops the counters whose window is over at `now_ms` (a window that
    /// started later than `now_ms`, by another worker's clock, is kept), in
    /// place; remembers when the earliest kept window ends. Returns how many
    /// were dropped. One pass over the table.
    pub fn compact(&mut self, now_ms: u64) -> u64 {
        let len = self.slots.len();
        let mut dropped = 0;
        let mut i = 0;
        while i < len {
            let s = &self.slots[i];
            if s.occupied != 0 && window_over(s.start_ms, s.window_ms, now_ms) {
                self.remove_at(i);
                dropped += 1;
                // Another counter may have moved into `i`: look again.
                continue;
            }
            i += 1;
        }
        *self.used -= dropped;
        *self.next_compaction_ms = self
            .slots
            .iter()
            .filter(|s| s.occupied != 0)
            .map(|s| s.start_ms.saturating_add(s.window_ms))
            .min()
            .unwrap_or(0)
            .max(now_ms.saturating_add(1));
        dropped
    }

    /// Empties slot `i` and moves later counters of its probe run back, so
    /// that every counter stays reachable from its home slot (deletion in
    /// linear probing without tombstones). Only counters from positions after
    /// `i` (cyclically) move, into `i` or into positions between.
    fn remove_at(&mut self, mut i: usize) {
        let len = self.slots.len();
        self.slots[i] = Slot::default();
        let mut j = i;
        loop {
            j = (j + 1) % len;
            if self.slots[j].occupied == 0 || j == i {
                return;
            }
            let k = self.home(&self.slots[j].key);
            // The counter at j stays when its home lies cyclically in (i, j].
            let stays = if i <= j {
                i < k && k <= j
            } else {
                i < k || k <= j
            };
            if !stays {
                self.slots[i] = self.slots[j];
                self.slots[j] = Slot::default();
                i = j;
            }
        }
    }
}

fn home(key: &[u8; 16], len: usize) -> usize {
    let mut h = [0u8; 8];
    h.copy_from_slice(&key[..8]);
    (u64::from_le_bytes(h) % len as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Limit = Limit {
        count: 3,
        window_ms: 30_000,
    };

    #[test]
    fn limit_texts_keep_the_common_counts() {
        let empty = LimitTexts::new(core::iter::empty());
        assert_eq!(empty.get(3), None);
        let one = LimitTexts::new([1_000_000_000u64; 5].into_iter());
        assert_eq!(one.get(1_000_000_000), Some(&b"1000000000"[..]));
        assert_eq!(one.get(999_999_999), None);
        let tiers = LimitTexts::new([3u64, 100, 3, 60, 100, 3, u64::MAX].into_iter());
        for n in [3u64, 60, 100, u64::MAX] {
            assert_eq!(tiers.get(n), Some(n.to_string().as_bytes()));
        }
        assert_eq!(tiers.get(4), None);
        // every consumer its own limit: only MAX kept, the most common first
        let many = LimitTexts::new((0..1000u64).chain([500; 3]));
        assert_eq!(many.texts.len(), LimitTexts::MAX);
        assert_eq!(many.get(500), Some(&b"500"[..]));
    }

    #[test]
    fn shared_walkthrough() {
        let d: Vec<_> = (1..=5)
            .map(|n| shared_decision(&L, n, 30_000 - n * 100))
            .collect();
        assert_eq!(
            d.iter().map(|d| d.allowed).collect::<Vec<_>>(),
            [true, true, true, false, false]
        );
        assert_eq!(
            d.iter().map(|d| d.remaining).collect::<Vec<_>>(),
            [2, 1, 0, 0, 0]
        );
        assert!(d.iter().all(|d| d.limit == 3 && d.reset_secs == 30));
        // Milliseconds, rounded up to seconds; never more than one window
        // (a TTL in the wrong unit would say 30000 s).
        assert_eq!(shared_decision(&L, 1, 1).reset_secs, 1);
        assert_eq!(shared_decision(&L, 1, 0).reset_secs, 0);
        assert_eq!(shared_decision(&L, 1, 30_000_000).reset_secs, 30);
        assert_eq!(shared_decision(&L, u64::MAX, 5).remaining, 0);
    }

    #[test]
    fn walkthrough_window() {
        let mut s = Slot::default();
        let t0 = 1_000_000;
        let d: Vec<_> = (0..5).map(|i| take(&mut s, &L, t0 + i * 100)).collect();
        assert_eq!(
            d.iter().map(|d| d.allowed).collect::<Vec<_>>(),
            [true, true, true, false, false]
        );
        assert_eq!(
            d.iter().map(|d| d.remaining).collect::<Vec<_>>(),
            [2, 1, 0, 0, 0]
        );
        assert_eq!(d[0].reset_secs, 30);
        assert_eq!(d[4].reset_secs, 30); // 29.6 s left, rounded up
        assert_eq!(d[0].limit, 3);
    }

    #[test]
    fn window_starts_at_first_request_and_rolls_over() {
        let mut s = Slot::default();
        let t0 = 5_000;
        assert!(take(&mut s, &L, t0).allowed);
        for _ in 0..2 {
            take(&mut s, &L, t0 + 10_000);
        }
        let d = take(&mut s, &L, t0 + 29_999);
        assert!(!d.allowed);
        assert_eq!(d.reset_secs, 1);
        // The window ends exactly 30 s after the first request.
        let d = take(&mut s, &L, t0 + 30_000);
        assert!(d.allowed);
        assert_eq!((d.remaining, d.reset_secs), (2, 30));
        assert_eq!(s.start_ms, t0 + 30_000);
    }

    #[test]
    fn reload_shrinking_the_window_applies_at_once() {
        let mut s = Slot::default();
        take(&mut s, &L, 0);
        let short = Limit {
            count: 3,
            window_ms: 1_000,
        };
        let d = take(&mut s, &short, 2_000);
        assert_eq!(d.remaining, 2); // new window
    }

    #[test]
    fn table_finds_and_creates() {
        let mut slots = vec![Slot::default(); 8];
        let mut used = 0;
        let mut next = 0;
        let mut t = Table::new(&mut slots, &mut used, &mut next);
        let a = [1u8; 16];
        let b = [2u8; 16];
        take(t.slot(&a, 0).unwrap(), &L, 0);
        take(t.slot(&a, 0).unwrap(), &L, 0);
        take(t.slot(&b, 0).unwrap(), &L, 0);
        assert_eq!(t.slot(&a, 0).unwrap().count, 2);
        assert_eq!(t.slot(&b, 0).unwrap().count, 1);
        assert_eq!(used, 2);
    }

    #[test]
    fn full_table_drops_expired_then_refuses() {
        let mut slots = vec![Slot::default(); 8];
        let mut used = 0;
        let mut next = 0;
        let mut t = Table::new(&mut slots, &mut used, &mut next);
        assert_eq!(t.max_used(), 6);
        for i in 0..6u8 {
            take(t.slot(&[i + 1; 16], 0).unwrap(), &L, 0);
        }
        // Full while every window runs.
        assert!(t.slot(&[100; 16], 10).is_none());
        // Existing counters still work.
        assert!(t.slot(&[1; 16], 10).is_some());
        // After the windows ended, room is made.
        take(t.slot(&[1; 16], 20_000).unwrap(), &L, 20_000); // restart only #1? no: still in window
        assert!(t.slot(&[100; 16], 30_001).is_some());
        assert_eq!(*t.used, 1);
    }

    #[test]
    fn colliding_keys_probe() {
        let mut slots = vec![Slot::default(); 4];
        let mut used = 0;
        let mut next = 0;
        let mut t = Table::new(&mut slots, &mut used, &mut next);
        let mut a = [0u8; 16];
        let mut b = [0u8; 16];
        a[0] = 1;
        b[0] = 5; // same home slot modulo 4
        b[15] = 9;
        t.slot(&a, 0).unwrap().count = 7;
        t.slot(&b, 0).unwrap().count = 9;
        assert_eq!(t.slot(&a, 0).unwrap().count, 7);
        assert_eq!(t.slot(&b, 0).unwrap().count, 9);
    }

    /// Worker clocks as `take` sees them: each request comes with the time
    /// of the worker that serves it.
    fn admitted(limit: &Limit, clocks: &[u64]) -> usize {
        let mut s = Slot::default();
        clocks
            .iter()
            .filter(|&&now| take(&mut s, limit, now).allowed)
            .count()
    }

    #[test]
    fn a_window_started_by_a_clock_ahead_is_the_current_one() {
        let l = Limit {
            count: 5,
            window_ms: 60_000,
        };
        // Two workers 100 ms apart (timer_resolution 100ms), alternating.
        let clocks: Vec<u64> = (0..40).map(|i| 1_000_000 + (i % 2) * 100 + i).collect();
        assert_eq!(admitted(&l, &clocks), 5);
        // The worker behind starts the window, the one ahead continues it,
        // and the other way round.
        let clocks: Vec<u64> = (0..40).map(|i| 1_000_100 - (i % 2) * 100).collect();
        assert_eq!(admitted(&l, &clocks), 5);
        // A replaced worker whose clock is far ahead, then the old one.
        let mut clocks = vec![2_000_000; 3];
        clocks.extend([1_990_000; 10]);
        assert_eq!(admitted(&l, &clocks), 5);
    }

    #[test]
    fn a_future_start_is_kept_and_reported_as_at_most_one_window() {
        let mut s = Slot::default();
        assert!(take(&mut s, &L, 10_000).allowed);
        let d = take(&mut s, &L, 9_000);
        assert!(d.allowed);
        assert_eq!(s.start_ms, 10_000, "the window is not restarted");
        assert_eq!((d.remaining, d.reset_secs), (1, 30));
        // It ends by the clock of the worker that started it.
        assert!(take(&mut s, &L, 39_999).allowed);
        assert!(!take(&mut s, &L, 39_999).allowed);
        assert!(take(&mut s, &L, 40_000).allowed);
        assert_eq!(s.start_ms, 40_000);
    }

    #[test]
    fn never_more_than_the_limit_per_window_whatever_the_skew() {
        // Pseudo-random clocks, up to `skew` ms apart, advancing slowly;
        // admitted requests are grouped by the window they fell in.
        let l = Limit {
            count: 5,
            window_ms: 1_000,
        };
        let mut seed: u64 = 42;
        let mut rnd = |m: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % m
        };
        for skew in [0, 1, 10, 100, 999, 5_000] {
            let mut s = Slot::default();
            let mut base = 1_000_000u64;
            let mut per_window = std::collections::HashMap::new();
            for _ in 0..20_000 {
                base += rnd(3);
                let now = base + rnd(skew + 1);
                if take(&mut s, &l, now).allowed {
                    *per_window.entry(s.start_ms).or_insert(0u64) += 1;
                }
            }
            assert!(per_window.len() > 5, "skew {skew}: windows rolled over");
            for (start, n) in per_window {
                assert!(n <= 5, "skew {skew}: {n} admitted in the window of {start}");
            }
        }
    }

    #[test]
    fn compaction_keeps_windows_started_ahead_of_its_clock() {
        let mut slots = vec![Slot::default(); 8];
        let mut used = 0;
        let mut next = 0;
        let mut t = Table::new(&mut slots, &mut used, &mut next);
        for i in 0..6u8 {
            // started by a worker 50 ms ahead
            t.count(&[i + 1; 16], &L, 1_050).unwrap();
        }
        assert_eq!(t.compact(1_000), 0);
        assert_eq!(*t.used, 6);
        for i in 0..6u8 {
            let d = t.count(&[i + 1; 16], &L, 1_000).unwrap();
            assert_eq!(d.remaining, 1, "the counter survived");
        }
        assert_eq!(t.compact(31_050), 6);
        assert_eq!(*t.used, 0);
    }

    #[test]
    fn a_full_table_compacts_once_per_window_end_not_per_request() {
        let mut slots = vec![Slot::default(); 8];
        let mut used = 0;
        let mut next = 0;
        let mut t = Table::new(&mut slots, &mut used, &mut next);
        for i in 0..6u8 {
            t.count(&[i + 1; 16], &L, 1_000 + u64::from(i)).unwrap();
        }
        assert!(t.count(&[100; 16], &L, 2_000).is_none());
        assert_eq!(*t.next_compaction_ms, 31_000, "the earliest window end");
        // Until then no compaction runs: spy on one by planting an expired
        // counter that only a compaction would drop.
        t.slots
            .iter_mut()
            .find(|s| s.occupied != 0)
            .unwrap()
            .window_ms = 1;
        for now in 2_001..2_100 {
            assert!(t.count(&[100; 16], &L, now).is_none());
        }
        assert_eq!(*t.used, 6, "no compaction ran");
        // At the earliest window end, one compaction frees room.
        assert!(t.count(&[100; 16], &L, 31_000).is_some());
        assert_eq!(*t.used, 6);
        assert_eq!(*t.next_compaction_ms, 31_001);
    }

    #[test]
    fn a_short_window_counted_after_a_compaction_moves_the_next_one_earlier() {
        let mut slots = vec![Slot::default(); 8];
        let mut used = 0;
        let mut next = 0;
        let mut t = Table::new(&mut slots, &mut used, &mut next);
        let long = Limit {
            count: 5,
            window_ms: 3_600_000,
        };
        let short = Limit {
            count: 5,
            window_ms: 1_000,
        };
        for i in 0..5u8 {
            t.count(&[i + 1; 16], &long, 0).unwrap();
        }
        t.compact(0);
        assert_eq!(*t.next_compaction_ms, 3_600_000);
        t.count(&[9; 16], &short, 10).unwrap();
        assert_eq!(*t.next_compaction_ms, 1_010);
        assert!(t.count(&[10; 16], &short, 500).is_none(), "full");
        assert!(
            t.count(&[10; 16], &short, 1_010).is_some(),
            "the short one was dropped"
        );
    }

    #[test]
    fn in_place_compaction_keeps_every_live_counter_reachable() {
        // Many keys colliding on few homes, expiring in a pseudo-random
        // order, around the end of the table (wrap-around runs).
        let mut seed: u64 = 7;
        let mut rnd = |m: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % m
        };
        for round in 0..300 {
            let len = 4 + (round % 13) as usize;
            let mut slots = vec![Slot::default(); len];
            let mut used = 0;
            let mut next = 0;
            let mut t = Table::new(&mut slots, &mut used, &mut next);
            let mut live = Vec::new();
            for n in 0..t.max_used() {
                let mut key = [0u8; 16];
                key[..8].copy_from_slice(&(len as u64 - 1 - rnd(3)).to_le_bytes());
                key[8..].copy_from_slice(&n.to_le_bytes());
                let window_ms = 1 + rnd(4) * 100;
                let limit = Limit {
                    count: 9,
                    window_ms,
                };
                t.count(&key, &limit, 0).unwrap();
                live.push((key, window_ms));
            }
            let now = 150;
            let dropped = t.compact(now);
            live.retain(|&(_, w)| w > now);
            assert_eq!(*t.used, live.len() as u64, "round {round}");
            assert_eq!(dropped as usize + live.len(), t.max_used() as usize);
            for (key, _) in &live {
                assert!(
                    t.probe(key).is_ok(),
                    "round {round}: a live counter was lost"
                );
            }
            assert_eq!(
                t.slots.iter().filter(|s| s.occupied != 0).count(),
                live.len()
            );
        }
    }
}
