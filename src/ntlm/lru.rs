//! A fixed-capacity least-recently-used list of idle entries, with handles
//! that can never refer to a reused slot. Pure logic.
//!
//! Slots are allocated once (capacity = the `ntlm` connections limit). A
//! handle carries the slot index and the slot's generation at insertion;
//! every removal bumps the generation, so a stale handle (an entry already
//! evicted, timed out or removed) is refused instead of touching whatever
//! entry now occupies the slot.

use ngx::allocator::Allocator;
use ngx::collections::{TryReserveError, Vec};

const NIL: u32 = u32::MAX;

/// Refers to one entry of an [`IdleLru`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handle {
    index: u32,
    generation: u32,
}

struct Slot<T> {
    value: Option<T>,
    generation: u32,
    prev: u32,
    next: u32,
}

/// Most recently inserted at the head, least recently at the tail.
pub struct IdleLru<T, A: Allocator> {
    slots: Vec<Slot<T>, A>,
    head: u32,
    tail: u32,
    free: u32,
    len: usize,
}

impl<T, A: Allocator> IdleLru<T, A> {
    /// All memory is allocated here, once.
    pub fn with_capacity_in(capacity: usize, alloc: A) -> Result<Self, TryReserveError> {
        let capacity = capacity.min(NIL as usize - 1);
        let mut slots = Vec::new_in(alloc);
        slots.try_reserve_exact(capacity)?;
        for i in 0..capacity {
            let next = if i + 1 < capacity { i as u32 + 1 } else { NIL };
            slots.push(Slot {
                value: None,
                generation: 0,
                prev: NIL,
                next,
            });
        }
        Ok(Self {
            slots,
            head: NIL,
            tail: NIL,
            free: if capacity > 0 { 0 } else { NIL },
            len: 0,
        })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Inserts `value` as the most recently used entry. When the list is
    /// full, the least recently used entry is removed first and returned.
    /// With capacity 0 nothing can be kept: `value` itself comes back.
    pub fn insert(&mut self, value: T) -> (Option<Handle>, Option<T>) {
        if self.slots.is_empty() {
            return (None, Some(value));
        }
        let mut evicted = None;
        if self.free == NIL {
            let tail = self.tail;
            evicted = self.unlink(tail);
        }
        let index = self.free;
        let slot = &mut self.slots[index as usize];
        self.free = slot.next;
        slot.value = Some(value);
        slot.prev = NIL;
        slot.next = self.head;
        let generation = slot.generation;
        if self.head != NIL {
            self.slots[self.head as usize].prev = index;
        } else {
            self.tail = index;
        }
        self.head = index;
        self.len += 1;
        (Some(Handle { index, generation }), evicted)
    }

    /// Removes the entry `handle` refers to; `None` when it is gone already.
    pub fn remove(&mut self, handle: Handle) -> Option<T> {
        let slot = self.slots.get(handle.index as usize)?;
        if slot.generation != handle.generation || slot.value.is_none() {
            return None;
        }
        self.unlink(handle.index)
    }

    /// The entry `handle` refers to, if it is still there.
    pub fn get(&self, handle: Handle) -> Option<&T> {
        let slot = self.slots.get(handle.index as usize)?;
        if slot.generation != handle.generation {
            return None;
        }
        slot.value.as_ref()
    }

    /// The least recently used entry.
    pub fn oldest(&self) -> Option<&T> {
        self.slots.get(self.tail as usize)?.value.as_ref()
    }

    fn unlink(&mut self, index: u32) -> Option<T> {
        let slot = self.slots.get_mut(index as usize)?;
        let value = slot.value.take()?;
        let (prev, next) = (slot.prev, slot.next);
        slot.generation = slot.generation.wrapping_add(1);
        slot.prev = NIL;
        slot.next = self.free;
        self.free = index;
        if prev != NIL {
            self.slots[prev as usize].next = next;
        } else {
            self.head = next;
        }
        if next != NIL {
            self.slots[next as usize].prev = prev;
        } else {
            self.tail = prev;
        }
        self.len -= 1;
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ngx::allocator::Global;

    fn lru(capacity: usize) -> IdleLru<u32, Global> {
        IdleLru::with_capacity_in(capacity, Global).unwrap()
    }

    #[test]
    fn evicts_least_recently_inserted_when_full() {
        let mut l = lru(3);
        let (a, _) = l.insert(1);
        l.insert(2);
        l.insert(3);
        assert_eq!(l.len(), 3);
        assert_eq!(l.oldest(), Some(&1));
        let (d, evicted) = l.insert(4);
        assert_eq!(evicted, Some(1));
        assert_eq!(
            l.remove(a.unwrap()),
            None,
            "stale handle of the evicted entry"
        );
        assert_eq!(l.get(d.unwrap()), Some(&4));
        assert_eq!(l.oldest(), Some(&2));
        assert_eq!(l.len(), 3);
    }

    #[test]
    fn reinsert_makes_an_entry_most_recent() {
        let mut l = lru(2);
        let (a, _) = l.insert(1);
        l.insert(2);
        let one = l.remove(a.unwrap()).unwrap();
        l.insert(one);
        let (_, evicted) = l.insert(3);
        assert_eq!(evicted, Some(2));
    }

    #[test]
    fn stale_handles_never_reach_a_reused_slot() {
        let mut l = lru(1);
        let (a, _) = l.insert(10);
        let a = a.unwrap();
        assert_eq!(l.remove(a), Some(10));
        let (b, _) = l.insert(20);
        let b = b.unwrap();
        assert_eq!(a.index, b.index, "the slot is reused");
        assert_eq!(l.get(a), None);
        assert_eq!(l.remove(a), None);
        assert_eq!(l.remove(b), Some(20));
        assert!(l.is_empty());
    }

    #[test]
    fn removal_from_the_middle_keeps_order() {
        let mut l = lru(4);
        let hs: std::vec::Vec<_> = (1..=4).map(|v| l.insert(v).0.unwrap()).collect();
        assert_eq!(l.remove(hs[1]), Some(2));
        assert_eq!(l.remove(hs[0]), Some(1));
        assert_eq!(l.oldest(), Some(&3));
        l.insert(5);
        l.insert(6);
        let (_, e) = l.insert(7);
        assert_eq!(e, Some(3));
        assert_eq!(l.len(), 4);
    }

    #[test]
    fn zero_capacity_keeps_nothing() {
        let mut l = lru(0);
        assert_eq!(l.insert(1), (None, Some(1)));
        assert!(l.is_empty());
    }
}
