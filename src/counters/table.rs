//! The status zone's contents: a header, then a fixed array of series.
//! Pure: works on any memory laid out this way (the zone, or a buffer in
//! unit tests).
//!
//! Series are added only at configuration time (zone init, in the master
//! process, under the zone lock), never removed; requests only do relaxed
//! atomic adds on series they were given at configuration time. A reader
//! (the status handler) sees a series once its kind is published (release
//! store after the label is written).

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::schema::{Kind, SLOTS};

/// The longest label a series can carry (an auth URI, a consumer name, an
/// upstream name). A longer one is not counted (see [`Insert::TooLong`]).
pub const LABEL_MAX: usize = 248;

/// Identifies memory laid out by this version of the table.
pub const MAGIC: u64 = 0x6167_7374_6174_7573; // "agstatus"

#[repr(C)]
pub struct Header {
    pub magic: u64,
    /// Series the array holds.
    pub capacity: u64,
    /// Series in use (the first `used` entries).
    pub used: AtomicU64,
    /// Configurations that took the zone over from an earlier one.
    pub reloads: AtomicU64,
    /// `worker_processes` of the latest configuration.
    pub workers: AtomicU64,
    /// Series of the latest configuration that did not fit.
    pub dropped: AtomicU64,
}

#[repr(C)]
pub struct Series {
    /// A [`Kind`] discriminant; 0 while the entry is being written.
    kind: AtomicU32,
    label_len: u32,
    label: [u8; LABEL_MAX],
    pub values: [AtomicU64; SLOTS],
}

impl Series {
    pub fn kind(&self) -> Option<Kind> {
        Kind::from_stored(self.kind.load(Ordering::Acquire))
    }

    pub fn label(&self) -> &[u8] {
        &self.label[..(self.label_len as usize).min(LABEL_MAX)]
    }

    pub fn value(&self, slot: usize) -> u64 {
        self.values[slot].load(Ordering::Relaxed)
    }

    #[inline]
    pub fn add(&self, slot: usize, n: u64) {
        self.values[slot].fetch_add(n, Ordering::Relaxed);
    }

    #[inline]
    pub fn sub(&self, slot: usize, n: u64) {
        self.values[slot].fetch_sub(n, Ordering::Relaxed);
    }
}

/// Bytes a table of `capacity` series takes.
pub const fn bytes_for(capacity: usize) -> usize {
    size_of::<Header>() + capacity * size_of::<Series>()
}

/// The table over memory that holds one.
pub struct Table<'a> {
    pub header: &'a Header,
    series: &'a [Series],
}

/// What [`Table::find_or_insert`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Insert<'a> {
    Found(&'a Series),
    Added(&'a Series),
    /// No room: the series is not counted.
    Full,
    /// The label is longer than [`LABEL_MAX`]: not counted.
    TooLong,
}

impl core::fmt::Debug for Series {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Series({:?}, {:?})", self.kind(), self.label())
    }
}

impl PartialEq for Series {
    fn eq(&self, other: &Self) -> bool {
        core::ptr::eq(self, other)
    }
}
impl Eq for Series {}

impl<'a> Table<'a> {
    /// Writes an empty table of `capacity` series at `mem`.
    ///
    /// # Safety
    /// `mem` must be valid for [`bytes_for`]`(capacity)` bytes, aligned for
    /// `u64`, and not used by anyone else yet.
    pub unsafe fn init(mem: *mut u8, capacity: usize) -> Table<'a> {
        // SAFETY: per the contract; all-zero bytes are a valid Header and
        // valid free Series (atomics and byte arrays).
        unsafe {
            core::ptr::write_bytes(mem, 0, bytes_for(capacity));
            let header = mem.cast::<Header>();
            (*header).magic = MAGIC;
            (*header).capacity = capacity as u64;
            Self::open(mem)
        }
    }

    /// The table [`Table::init`] wrote at `mem`.
    ///
    /// # Safety
    /// `mem` must hold a table written by [`Table::init`] that lives for
    /// `'a`.
    pub unsafe fn open(mem: *mut u8) -> Table<'a> {
        // SAFETY: per the contract, `capacity` series follow the header.
        unsafe {
            let header = &*mem.cast::<Header>();
            let series = core::slice::from_raw_parts(
                mem.add(size_of::<Header>()).cast::<Series>(),
                header.capacity as usize,
            );
            Table { header, series }
        }
    }

    /// The series in use, in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = &'a Series> {
        let used = (self.header.used.load(Ordering::Acquire) as usize).min(self.series.len());
        self.series[..used].iter().filter(|s| s.kind().is_some())
    }

    /// The series of this kind and label, added when absent and room is
    /// left. Only one process may add at a time (the caller holds the
    /// zone lock).
    pub fn find_or_insert(&self, kind: Kind, label: &[u8]) -> Insert<'a> {
        if label.len() > LABEL_MAX {
            return Insert::TooLong;
        }
        if let Some(s) = self
            .iter()
            .find(|s| s.kind() == Some(kind) && s.label() == label)
        {
            return Insert::Found(s);
        }
        let used = self.header.used.load(Ordering::Acquire) as usize;
        let Some(entry) = self.series.get(used) else {
            return Insert::Full;
        };
        let p = core::ptr::from_ref(entry).cast_mut();
        // SAFETY: the entry is past `used`: no reader looks at it and no
        // request holds it; the caller is the only writer. Its kind is
        // published last, with release ordering, for readers of `iter`.
        unsafe {
            core::ptr::addr_of_mut!((*p).label_len).write(label.len() as u32);
            let dst = core::ptr::addr_of_mut!((*p).label).cast::<u8>();
            core::ptr::copy_nonoverlapping(label.as_ptr(), dst, label.len());
        }
        entry.kind.store(kind as u32, Ordering::Release);
        self.header.used.store(used as u64 + 1, Ordering::Release);
        Insert::Added(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buffer(capacity: usize) -> Vec<u64> {
        vec![0u64; bytes_for(capacity).div_ceil(8)]
    }

    #[test]
    fn finds_what_it_added_and_stops_when_full() {
        let mut mem = buffer(2);
        // SAFETY: the buffer is large enough and aligned.
        let t = unsafe { Table::init(mem.as_mut_ptr().cast(), 2) };
        let a = match t.find_or_insert(Kind::AuthRequest, b"/auth") {
            Insert::Added(s) => s,
            other => panic!("{other:?}"),
        };
        a.add(0, 3);
        assert_eq!(
            t.find_or_insert(Kind::AuthRequest, b"/auth"),
            Insert::Found(a)
        );
        let b = match t.find_or_insert(Kind::Ntlm, b"/auth") {
            Insert::Added(s) => s,
            other => panic!("{other:?}"),
        };
        assert_ne!(a, b, "same label, another kind: another series");
        assert_eq!(t.find_or_insert(Kind::KeyAuth, b""), Insert::Full);
        assert_eq!(
            t.find_or_insert(Kind::KeyAuth, &[b'x'; LABEL_MAX + 1]),
            Insert::TooLong
        );
        let all: Vec<_> = t.iter().map(|s| (s.kind(), s.label().to_vec())).collect();
        assert_eq!(
            all,
            [
                (Some(Kind::AuthRequest), b"/auth".to_vec()),
                (Some(Kind::Ntlm), b"/auth".to_vec())
            ]
        );
        // reopened (a reload): the values are still there
        // SAFETY: the same buffer, written by init.
        let again = unsafe { Table::open(mem.as_mut_ptr().cast()) };
        match again.find_or_insert(Kind::AuthRequest, b"/auth") {
            Insert::Found(s) => assert_eq!(s.value(0), 3),
            other => panic!("{other:?}"),
        }
        assert_eq!(again.header.magic, MAGIC);
    }

    #[test]
    fn gauges_go_down() {
        let mut mem = buffer(1);
        // SAFETY: as above.
        let t = unsafe { Table::init(mem.as_mut_ptr().cast(), 1) };
        let Insert::Added(s) = t.find_or_insert(Kind::Ntlm, b"u") else {
            panic!()
        };
        s.add(1, 2);
        s.sub(1, 1);
        assert_eq!(s.value(1), 1);
    }
}
