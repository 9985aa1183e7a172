//! The shared zone of `auth_cache_zone`: its layout, its init (fresh, or
//! kept across a reload), and locked access to its table.
//!
//! Layout: a [`ZoneData`] (the keyed hash's random secret, the table
//! header, the sizes), then the bucket array, then the slots, in one slab
//! allocation. Every worker maps the zone at the same address and reads the
//! same secret, so they agree on every entry's hash; a client, who never
//! sees the secret, can neither predict nor collide them.

use core::ffi::c_void;
use core::ptr;

use nginx_sys::{ngx_int_t, ngx_shm_zone_t, NGX_LOG_EMERG, NGX_LOG_NOTICE};

use super::table::{Header, Slot, Table};
use crate::keyed_hash::KeyedHash;
use crate::nginx::ffi::guard_status;
use crate::nginx::{bitfield, shm};

/// Written at the start of the zone's data, checked when a zone is reused.
/// v2: slots carry their last use and two purge tags.
const MAGIC: u64 = 0x6167_6463_6163_6802; // "agdcach" v2

/// The zone's own data.
#[repr(C)]
pub struct ZoneData {
    magic: u64,
    secret: KeyedHash,
    header: Header,
    buckets: u64,
    slots: u64,
}

/// What `auth_cache_zone` sets besides its name and size, for the
/// configuration being built. It lives in the configuration pool, not in
/// the zone: after a reload that changes it the new workers use the new
/// value on the entries the zone kept, while the old workers finish with
/// theirs (as `proxy_cache_path inactive=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZoneSettings {
    /// An entry not used for this long counts as absent (ms).
    pub inactive_ms: u64,
}

/// `inactive=10m`, as `proxy_cache_path`.
pub const DEFAULT_INACTIVE_MS: u64 = 10 * 60 * 1000;

impl Default for ZoneSettings {
    fn default() -> Self {
        Self {
            inactive_ms: DEFAULT_INACTIVE_MS,
        }
    }
}

/// `inactive=`'s time (an nginx time: `500ms`, `30s`, `10m`, `1h`) in ms;
/// `None` for anything else, and for 0 (every entry would be absent at
/// once: say `auth_request_cache off` instead).
pub fn parse_inactive(time: &[u8]) -> Option<u64> {
    let mut text = nginx_sys::ngx_str_t {
        len: time.len(),
        data: time.as_ptr().cast_mut(),
    };
    // SAFETY: ngx_parse_time only reads the bytes; is_sec 0: milliseconds.
    let ms = unsafe { nginx_sys::ngx_parse_time(&mut text, 0) };
    if ms == nginx_sys::NGX_ERROR as ngx_int_t || ms <= 0 {
        return None;
    }
    u64::try_from(ms).ok()
}

/// A copy of `settings` in the configuration pool, to be the zone's `data`
/// until nginx initialises it (see [`configured_settings`]); `None` when
/// the pool is out of memory.
pub fn keep_settings(
    cf: &mut nginx_sys::ngx_conf_t,
    settings: ZoneSettings,
) -> Option<*mut ZoneSettings> {
    // SAFETY: an allocation in the configuration pool, which outlives the
    // configuration's zones.
    let kept =
        unsafe { nginx_sys::ngx_palloc(cf.pool, size_of::<ZoneSettings>()) }.cast::<ZoneSettings>();
    if kept.is_null() {
        return None;
    }
    // SAFETY: just allocated, sized for a ZoneSettings and aligned (pool
    // allocations align to the word size, a ZoneSettings to 8 bytes).
    unsafe { kept.write(settings) };
    Some(kept)
}

/// The settings of a declared zone, while the configuration is built
/// (before nginx initialises the zone, its `data` is the settings
/// `auth_cache_zone` allocated).
///
/// # Safety
/// `zone` is a zone of the configuration being built, declared by
/// `auth_cache_zone` (its size is set), not yet initialised.
pub unsafe fn configured_settings(zone: *mut ngx_shm_zone_t) -> ZoneSettings {
    // SAFETY: per the contract, shm::declare stored the ZoneSettings
    // pointer in zone->data.
    unsafe {
        let settings = (*zone).data.cast::<ZoneSettings>();
        if settings.is_null() {
            ZoneSettings::default()
        } else {
            *settings
        }
    }
}

/// A configured zone: the nginx zone it lives in.
#[derive(Clone, Copy)]
pub struct Zone(pub *mut ngx_shm_zone_t);

impl Zone {
    /// Runs `f` with the zone's secret and table, under the zone's lock.
    /// `None` when the zone is not initialised (cannot happen once nginx
    /// serves requests; a cache failure is never a request failure).
    #[inline(always)]
    pub fn with<T>(&self, f: impl FnOnce(&KeyedHash, &mut Table<'_>) -> T) -> Option<T> {
        // SAFETY: the zone belongs to the running cycle; its data was set by
        // init_zone() to a ZoneData followed by its buckets and slots, all
        // in shared memory mapped at the same address in every worker. The
        // lock makes this process the only one touching them; nothing
        // in this module holds the lock while calling back here.
        unsafe {
            let data = (*self.0).data.cast::<ZoneData>();
            if data.is_null() || (*data).magic != MAGIC {
                return None;
            }
            let _lock = shm::Locked::new(self.0);
            let (buckets, slots) = parts(data);
            let secret = (*data).secret;
            let mut table = Table::new(&mut (*data).header, buckets, slots);
            Some(f(&secret, &mut table))
        }
    }

    /// The zone's secret, without the lock: it is written once, when the
    /// zone is made, before any worker runs.
    pub fn secret(&self) -> Option<KeyedHash> {
        // SAFETY: as in with(); the secret is never written after init.
        unsafe {
            let data = (*self.0).data.cast::<ZoneData>();
            if data.is_null() || (*data).magic != MAGIC {
                return None;
            }
            Some((*data).secret)
        }
    }
}

/// Offset of the buckets and slots after the [`ZoneData`].
fn offsets(buckets: usize) -> (usize, usize) {
    let buckets_at = size_of::<ZoneData>();
    let slots_at = (buckets_at + buckets * size_of::<u32>()).next_multiple_of(align_of::<Slot>());
    (buckets_at, slots_at)
}

/// # Safety
/// `data` is a zone's initialised [`ZoneData`], the caller holds the lock.
unsafe fn parts<'a>(data: *mut ZoneData) -> (&'a mut [u32], &'a mut [Slot]) {
    // SAFETY: per the contract; init_zone() allocated the arrays right
    // after the header with these offsets and lengths.
    unsafe {
        let (nb, ns) = ((*data).buckets as usize, (*data).slots as usize);
        let (b_at, s_at) = offsets(nb);
        let base = data.cast::<u8>();
        (
            core::slice::from_raw_parts_mut(base.add(b_at).cast::<u32>(), nb),
            core::slice::from_raw_parts_mut(base.add(s_at).cast::<Slot>(), ns),
        )
    }
}

/// The zone's init callback: a fresh zone gets a new random secret and an
/// empty table as large as it holds; a zone kept across a reload (same
/// name and size) keeps both, so its entries stay valid.
///
/// # Safety
/// Called by nginx with a mapped zone of the new cycle and the previous
/// cycle's data (or null).
pub unsafe extern "C" fn init_zone(zone: *mut ngx_shm_zone_t, data: *mut c_void) -> ngx_int_t {
    let log = ngx::log::ngx_cycle_log().as_ptr();
    guard_status(log, || {
        // SAFETY: per the contract; `data`, when set, is this same memory's
        // ZoneData from the previous cycle.
        unsafe {
            if !data.is_null() {
                shm::set_data(zone, data);
                return shm::INIT_OK;
            }
            let Ok(secret) = KeyedHash::random() else {
                ngx::ngx_log_error!(
                    NGX_LOG_EMERG,
                    log,
                    "auth_cache_zone \"{}\": no random secret (getrandom failed)",
                    (*zone).shm.name
                );
                return shm::INIT_ERROR;
            };
            let pool = shm::slab_pool(zone);
            let avail = ((*pool).end as usize).saturating_sub((*pool).start as usize);
            let per_slot = size_of::<Slot>() + size_of::<u32>();
            let mut n = avail / per_slot;
            let mut mem: *mut ZoneData = ptr::null_mut();
            // Trying sizes down from "everything" fails a few times: keep
            // the slab allocator from logging that as [crit].
            bitfield::slab_pool::set_log_nomem(&mut *pool, false);
            while n > 0 {
                let (_, s_at) = offsets(n);
                mem = shm::alloc(zone, s_at + n * size_of::<Slot>()).cast();
                if !mem.is_null() {
                    break;
                }
                n = n * 49 / 50;
            }
            bitfield::slab_pool::set_log_nomem(&mut *pool, true);
            if mem.is_null() {
                return shm::INIT_ERROR;
            }
            mem.write(ZoneData {
                magic: MAGIC,
                secret,
                header: Header::new(),
                buckets: n as u64,
                slots: n as u64,
            });
            let (buckets, slots) = parts(mem);
            let slots_ptr = slots.as_mut_ptr();
            for i in 0..n {
                slots_ptr.add(i).write(Slot::default());
            }
            Table::new(&mut (*mem).header, buckets, slots).format();
            shm::set_data(zone, mem.cast());
            ngx::ngx_log_error!(
                NGX_LOG_NOTICE,
                log,
                "auth_cache_zone \"{}\": room for {} entries",
                (*zone).shm.name,
                n
            );
            shm::INIT_OK
        }
    })
}
