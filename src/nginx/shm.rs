//! Shared memory zones: declaring one from a directive, initialising it
//! (fresh, or reused across a reload), allocating in it and locking it.
//!
//! nginx maps every zone before forking workers, at the same address in all
//! of them, so pointers into a zone are valid in every process. A zone with
//! the same name, size and tag in the next configuration (after
//! `nginx -s reload`) keeps its memory: the init callback then receives the
//! old zone's `data`, which the module simply takes over.

use core::ffi::{c_char, c_void};
use core::ptr;
use core::sync::atomic::Ordering;

use nginx_sys::{
    ngx_conf_t, ngx_int_t, ngx_module_t, ngx_pagesize, ngx_parse_size, ngx_shared_memory_add,
    ngx_shm_zone_init_pt, ngx_shm_zone_t, ngx_shmtx_lock, ngx_shmtx_unlock, ngx_slab_alloc_locked,
    ngx_slab_pool_t, ngx_str_t,
};

/// Why a zone could not be declared; the caller turns it into an `[emerg]`.
#[derive(Debug, PartialEq, Eq)]
pub enum ZoneError {
    /// The size is not an nginx size (`10m`, `512k`).
    BadSize,
    /// Smaller than nginx's minimum for a slab zone (8 pages).
    TooSmall(usize),
    /// Larger than [`MAX_ZONE_SIZE`]: nginx would try to map it and fail
    /// at start with an `[alert]` that names no configuration line.
    TooLarge(usize),
    /// nginx refused (it has logged why, e.g. a name already used for
    /// another purpose).
    Refused,
    /// This module already declared a zone of that name in this
    /// configuration.
    Duplicate,
}

/// The largest zone this module declares: far beyond any real need (a
/// million consumers' counters fit in well under 1 GiB), small enough that
/// a typo such as `100000000m` is an `[emerg]` with FILE:LINE rather than a
/// failed `mmap()` at start.
pub const MAX_ZONE_SIZE: usize = 64 << 30;

/// Parses an nginx size (`1m`, `64k`, `32768`).
pub fn parse_size(value: &ngx_str_t) -> Option<usize> {
    let mut value = *value;
    // SAFETY: ngx_parse_size only reads the string.
    let size = unsafe { ngx_parse_size(&mut value) };
    usize::try_from(size).ok()
}

/// [`add`] for a zone directive's `name size` words, refusing each
/// problem with its `[emerg] … in FILE:LINE` (invalid name or size, too
/// small, too large, declared twice): the one place every zone directive
/// (`key_auth_zone`, `auth_cache_zone`, `authgate_status_zone`) reports
/// them, with the same words. `Err` is the directive handler's result.
pub fn declare(
    cf: &mut ngx_conf_t,
    name: &ngx_str_t,
    size: &ngx_str_t,
    module: &'static ngx_module_t,
    init: ngx_shm_zone_init_pt,
    conf: *mut c_void,
) -> Result<*mut ngx_shm_zone_t, *mut c_char> {
    use super::conf::{emerg, CONF_ERROR};
    if name.is_empty() {
        return Err(emerg(cf, format_args!("invalid zone name \"\"")));
    }
    let Some(bytes) = parse_size(size) else {
        return Err(emerg(cf, format_args!("invalid zone size \"{size}\"")));
    };
    add(cf, name, bytes, module, init, conf).map_err(|error| match error {
        ZoneError::BadSize => emerg(cf, format_args!("invalid zone size \"{size}\"")),
        ZoneError::TooSmall(min) => emerg(
            cf,
            format_args!("zone \"{name}\" is too small: {size} (at least {min} bytes)"),
        ),
        ZoneError::TooLarge(max) => emerg(
            cf,
            format_args!(
                "zone \"{name}\" is too large: {size} (at most {}m)",
                max >> 20
            ),
        ),
        ZoneError::Duplicate => emerg(cf, format_args!("zone \"{name}\" is already declared")),
        ZoneError::Refused => CONF_ERROR,
    })
}

/// Declares the zone `name` of `size` bytes owned by `module` (its address
/// is the zone's tag: a zone is only reused by the same module), with `init` as its init callback and `conf` stored in
/// `zone->data` until init replaces it.
pub fn add(
    cf: &mut ngx_conf_t,
    name: &ngx_str_t,
    size: usize,
    module: &'static ngx_module_t,
    init: ngx_shm_zone_init_pt,
    conf: *mut c_void,
) -> Result<*mut ngx_shm_zone_t, ZoneError> {
    // SAFETY: ngx_pagesize is set at startup, before any configuration.
    let min = 8 * unsafe { ngx_pagesize };
    if size < min {
        return Err(ZoneError::TooSmall(min));
    }
    if size > MAX_ZONE_SIZE {
        return Err(ZoneError::TooLarge(MAX_ZONE_SIZE));
    }
    let mut name = *name;
    let tag = ptr::from_ref(module).cast_mut().cast::<c_void>();
    // SAFETY: cf is the configuration being parsed; nginx copies nothing,
    // `name` points into configuration memory that outlives the cycle.
    let zone = unsafe { ngx_shared_memory_add(cf, &mut name, size, tag) };
    if zone.is_null() {
        return Err(ZoneError::Refused);
    }
    // SAFETY: ngx_shared_memory_add returned a live zone of the cycle.
    let zone_ref = unsafe { &mut *zone };
    if !zone_ref.data.is_null() {
        return Err(ZoneError::Duplicate);
    }
    zone_ref.init = init;
    zone_ref.data = conf;
    Ok(zone)
}

/// The slab pool at the start of an initialised zone.
///
/// # Safety
/// `zone` must be a zone of the running cycle, after nginx mapped it.
pub unsafe fn slab_pool(zone: *mut ngx_shm_zone_t) -> *mut ngx_slab_pool_t {
    // SAFETY: per the contract; the slab pool header sits at shm.addr.
    unsafe { (*zone).shm.addr.cast::<ngx_slab_pool_t>() }
}

/// Allocates `size` bytes in the zone while holding its lock, or null.
///
/// # Safety
/// As [`slab_pool`], and only from a zone init callback or while no other
/// code of this process holds the lock.
pub unsafe fn alloc(zone: *mut ngx_shm_zone_t, size: usize) -> *mut c_void {
    // SAFETY: per the contract.
    unsafe {
        let _guard = Locked::new(zone);
        ngx_slab_alloc_locked(slab_pool(zone), size)
    }
}

// The lock word is an ngx_atomic_t, used as an AtomicUsize by Locked::new.
const _: () = assert!(
    size_of::<nginx_sys::ngx_atomic_t>() == size_of::<usize>()
        && align_of::<nginx_sys::ngx_atomic_t>() == align_of::<usize>()
);

/// The zone's mutex, held until dropped. Shared across all workers.
pub struct Locked(*mut ngx_slab_pool_t);

impl Locked {
    /// Locks the zone.
    ///
    /// # Safety
    /// As [`slab_pool`]; do not lock the same zone twice in one process.
    pub unsafe fn new(zone: *mut ngx_shm_zone_t) -> Self {
        // SAFETY: per the contract; the slab pool's mutex is initialised by
        // nginx when it creates the zone.
        unsafe {
            let pool = slab_pool(zone);
            let mutex = ptr::addr_of_mut!((*pool).mutex);
            // nginx's ngx_shmtx_trylock inline, the uncontended case (a
            // call less per lock: the quota path locks once per request);
            // taken, it is ngx_shmtx_lock's to spin and sleep. The lock word
            // holds the owner's pid, as ngx_shmtx_unlock expects.
            let lock = core::sync::atomic::AtomicUsize::from_ptr((*mutex).lock.cast());
            let pid = nginx_sys::ngx_pid as usize;
            if lock.load(Ordering::Relaxed) != 0
                || lock
                    .compare_exchange(0, pid, Ordering::Acquire, Ordering::Relaxed)
                    .is_err()
            {
                ngx_shmtx_lock(mutex);
            }
            Self(pool)
        }
    }
}

impl Drop for Locked {
    fn drop(&mut self) {
        // SAFETY: locked in new(); the zone outlives this guard.
        unsafe { ngx_shmtx_unlock(ptr::addr_of_mut!((*self.0).mutex)) };
    }
}

/// Stores `data` as the zone's own data (`zone->data` and the slab pool's
/// `data`), for the requests and for the next configuration to find.
///
/// # Safety
/// As [`slab_pool`]; `data` must live in the zone.
pub unsafe fn set_data(zone: *mut ngx_shm_zone_t, data: *mut c_void) {
    // SAFETY: per the contract.
    unsafe {
        (*slab_pool(zone)).data = data;
        (*zone).data = data;
    }
}

/// The conventional init result.
pub const INIT_OK: ngx_int_t = nginx_sys::NGX_OK as ngx_int_t;
/// The conventional init failure.
pub const INIT_ERROR: ngx_int_t = nginx_sys::NGX_ERROR as ngx_int_t;
