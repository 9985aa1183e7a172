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

/// Counts one request of the consumer owning `slot` at time `now_ms`.
///
/// A new window starts at the first request, and again at the first request
/// after the previous window ended. A refused request is not counted.
pub fn take(slot: &mut Slot, limit: &Limit, now_ms: u64) -> Decision {
    // Configuration may have changed the window since the counter started
    // (a reload): the current configuration decides when it ends.
    let ends = slot.start_ms.saturating_add(limit.window_ms);
    if slot.count == 0 || now_ms >= ends || now_ms < slot.start_ms {
        slot.start_ms = now_ms;
        slot.count = 0;
    }
    slot.window_ms = limit.window_ms;
    let ends = slot.start_ms.saturating_add(limit.window_ms);
    let allowed = slot.count < limit.count;
    if allowed {
        slot.count += 1;
    }
    Decision {
        allowed,
        limit: limit.count,
        remaining: limit.count.saturating_sub(slot.count),
        reset_secs: (ends - now_ms).div_ceil(1000),
    }
}

/// An open-addressing hash table of [`Slot`]s (linear probing, no deletion;
/// when it is full, counters whose window is over are dropped by
/// [`Table::compact`]).
pub struct Table<'a> {
    slots: &'a mut [Slot],
    /// Occupied slots, kept in the zone next to the slots.
    used: &'a mut u64,
    /// At most this many slots are occupied (3/4 of them), so probes stay
    /// short.
    max_used: u64,
}

/// Number of slots that may be occupied in a table of `len` slots.
pub fn max_used(len: usize) -> u64 {
    (len as u64 * 3 / 4).max(1).min(len as u64)
}

impl<'a> Table<'a> {
    pub fn new(slots: &'a mut [Slot], used: &'a mut u64) -> Self {
        let max_used = max_used(slots.len());
        Self {
            slots,
            used,
            max_used,
        }
    }

    fn home(&self, key: &[u8; 16]) -> usize {
        let mut h = [0u8; 8];
        h.copy_from_slice(&key[..8]);
        (u64::from_le_bytes(h) % self.slots.len() as u64) as usize
    }

    /// The slot of `key`, creating it when absent. `None`: the table is full
    /// even after dropping expired counters.
    pub fn slot(&mut self, key: &[u8; 16], now_ms: u64) -> Option<&mut Slot> {
        if self.slots.is_empty() {
            return None;
        }
        let index = match self.probe(key) {
            Ok(found) => found,
            Err(free) => {
                let free = if *self.used < self.max_used {
                    free
                } else {
                    self.compact(now_ms);
                    if *self.used >= self.max_used {
                        return None;
                    }
                    self.probe(key).err()?
                };
                self.slots[free] = Slot {
                    occupied: 1,
                    key: *key,
                    ..Slot::default()
                };
                *self.used += 1;
                free
            }
        };
        Some(&mut self.slots[index])
    }

    /// `Ok(index)` of the slot holding `key`, or `Err(index)` of the free
    /// slot where it would go.
    fn probe(&self, key: &[u8; 16]) -> Result<usize, usize> {
        let len = self.slots.len();
        let mut i = self.home(key);
        for _ in 0..len {
            let slot = &self.slots[i];
            if slot.occupied == 0 {
                return Err(i);
            }
            if slot.key == *key {
                return Ok(i);
            }
            i = (i + 1) % len;
        }
        Err(len) // only when every slot is occupied; never with max_used < len
    }

    /// Drops counters whose window is over and re-inserts the others.
    pub fn compact(&mut self, now_ms: u64) {
        let live: Vec<Slot> = self
            .slots
            .iter()
            .filter(|s| {
                s.occupied != 0
                    && now_ms >= s.start_ms
                    && now_ms < s.start_ms.saturating_add(s.window_ms)
            })
            .copied()
            .collect();
        self.slots.fill(Slot::default());
        *self.used = 0;
        for slot in live {
            if let Err(free) = self.probe(&slot.key) {
                if free < self.slots.len() {
                    self.slots[free] = slot;
                    *self.used += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Limit = Limit {
        count: 3,
        window_ms: 30_000,
    };

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
        let mut t = Table::new(&mut slots, &mut used);
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
        let mut t = Table::new(&mut slots, &mut used);
        assert_eq!(t.max_used, 6);
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
        let mut t = Table::new(&mut slots, &mut used);
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
}
