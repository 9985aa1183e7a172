//! `authgate_status_zone` and `authgate_status`: directives, the series a
//! configuration registers, and the zone init that finds them in the zone.

use core::ffi::{c_char, c_void};
use core::ptr;

use nginx_sys::{
    ngx_command_t, ngx_conf_t, ngx_core_conf_t, ngx_cycle_t, ngx_int_t, ngx_shm_zone_t, ngx_str_t,
    NGX_LOG_EMERG, NGX_LOG_NOTICE, NGX_LOG_WARN,
};
use ngx::core::Pool;
use ngx::http::{HttpModule, HttpModuleLocationConf, HttpModuleMainConf, NgxHttpCoreModule};

use super::render::Format;
use super::schema::Kind;
use super::table::{self, Insert, Table, LABEL_MAX};
use super::{Counter, StatusModule};
use crate::nginx::bitfield;
use crate::nginx::conf::{
    args, conf_message, directive, emerg, refuse_duplicate_options, CONF_ERROR, CONF_OK,
};
use crate::nginx::ffi::guard_status;
use crate::nginx::shm;

/// A series the configuration wants, resolved at zone init.
pub struct Registration {
    pub kind: Kind,
    label_len: usize,
    label: [u8; LABEL_MAX + 1],
    /// Set by zone init; null: not counted (no zone, or no room).
    pub series: *const table::Series,
}

impl Registration {
    fn label(&self) -> &[u8] {
        &self.label[..self.label_len]
    }
}

/// `http`-level state.
pub struct StatusMainConf {
    /// `authgate_status_zone`, or null.
    pub zone: *mut ngx_shm_zone_t,
    /// Its name, for the status page.
    pub zone_name: ngx_str_t,
    /// `consumers=on`: per-consumer key_auth series.
    pub consumers: bool,
    /// Every series this configuration counts (in the configuration pool).
    registrations: Vec<*mut Registration>,
    /// The cycle being configured (for `worker_processes` at zone init).
    cycle: *mut ngx_cycle_t,
    /// Some location has `authgate_status`.
    status_used: bool,
}

impl Default for StatusMainConf {
    fn default() -> Self {
        Self {
            zone: ptr::null_mut(),
            zone_name: ngx_str_t::empty(),
            consumers: false,
            registrations: Vec::new(),
            cycle: ptr::null_mut(),
            status_used: false,
        }
    }
}

impl StatusMainConf {
    pub(super) fn register(&mut self, cf: &mut ngx_conf_t, kind: Kind, label: &[u8]) -> Counter {
        let label = &label[..label.len().min(LABEL_MAX + 1)];
        for &reg in &self.registrations {
            // SAFETY: registrations live in the configuration pool.
            let r = unsafe { &*reg };
            if r.kind == kind && r.label() == label {
                return Counter(ptr::NonNull::new(reg));
            }
        }
        let mut reg = Registration {
            kind,
            label_len: label.len(),
            label: [0; LABEL_MAX + 1],
            series: ptr::null(),
        };
        reg.label[..label.len()].copy_from_slice(label);
        // SAFETY: cf->pool is the configuration pool, alive for the cycle.
        let pool = unsafe { Pool::from_ngx_pool(cf.pool) };
        let p = pool.allocate(reg);
        if p.is_null() || self.registrations.try_reserve(1).is_err() {
            return Counter::default();
        }
        self.registrations.push(p);
        Counter(ptr::NonNull::new(p))
    }
}

/// Location configuration: `authgate_status` here, with its default format.
#[derive(Default)]
pub struct StatusConf {
    pub format: Option<Format>,
}

/// The directive table.
pub static mut COMMANDS: [ngx_command_t; 3] = [
    ngx_command_t {
        name: ngx::ngx_string!("authgate_status_zone"),
        type_: (nginx_sys::NGX_HTTP_MAIN_CONF | nginx_sys::NGX_CONF_2MORE) as _,
        set: Some(set_zone),
        conf: nginx_sys::NGX_HTTP_MAIN_CONF_OFFSET,
        offset: 0,
        post: ptr::null_mut(),
    },
    ngx_command_t {
        name: ngx::ngx_string!("authgate_status"),
        type_: (nginx_sys::NGX_HTTP_LOC_CONF
            | nginx_sys::NGX_CONF_NOARGS
            | nginx_sys::NGX_CONF_TAKE1) as _,
        set: Some(set_status),
        conf: nginx_sys::NGX_HTTP_LOC_CONF_OFFSET,
        offset: 0,
        post: ptr::null_mut(),
    },
    ngx_command_t::empty(),
];

/// `authgate_status_zone name size [consumers=on|off];`
unsafe extern "C" fn set_zone(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx passes this module's main configuration.
    unsafe {
        directive(cf, conf, |cf, main: &mut StatusMainConf| {
            if !main.zone.is_null() {
                return conf_message(c"is duplicate");
            }
            let words = args(cf);
            let (directive, zone_name, size) = (words[0], words[1], words[2]);
            let options: Vec<ngx_str_t> = words[3..].to_vec();
            if let Err(rv) = refuse_duplicate_options(cf, directive, &options) {
                return rv;
            }
            for option in options {
                match option.as_bytes() {
                    b"consumers=on" => main.consumers = true,
                    b"consumers=off" => main.consumers = false,
                    _ => {
                        return emerg(
                            cf,
                            format_args!("\"{directive}\": invalid parameter \"{option}\""),
                        )
                    }
                }
            }
            main.cycle = cf.cycle;
            match shm::declare(
                cf,
                &zone_name,
                &size,
                StatusModule::module(),
                Some(init_zone),
                ptr::from_mut(main).cast(),
            ) {
                Ok(zone) => {
                    main.zone = zone;
                    main.zone_name = zone_name;
                    CONF_OK
                }
                Err(rv) => rv,
            }
        })
    }
}

/// `authgate_status [json|prometheus];`
unsafe extern "C" fn set_status(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx passes this module's location configuration.
    unsafe {
        directive(cf, conf, |cf, conf: &mut StatusConf| {
            if conf.format.is_some() {
                return conf_message(c"is duplicate");
            }
            let word = args(cf).get(1).copied();
            let format = match word {
                None => Format::Json,
                Some(word) => match Format::parse(word.as_bytes()) {
                    Some(f) => f,
                    None => {
                        return emerg(
                            cf,
                            format_args!(
                            "\"authgate_status\": invalid format \"{word}\" (json or prometheus)"
                        ),
                        )
                    }
                },
            };
            conf.format = Some(format);
            let Some(core) = NgxHttpCoreModule::location_conf_mut(cf) else {
                return CONF_ERROR;
            };
            core.handler = Some(super::handler::status_handler);
            if let Some(main) = StatusModule::main_conf_mut(cf) {
                main.status_used = true;
            }
            CONF_OK
        })
    }
}

/// Refuses `authgate_status` without a zone to show.
///
/// # Safety
/// Called by nginx with the http block's configuration.
pub unsafe extern "C" fn postconfiguration(cf: *mut ngx_conf_t) -> ngx_int_t {
    // SAFETY: nginx passes the configuration being finalised.
    let cf = unsafe { &mut *cf };
    guard_status(cf.log, || {
        let Some(main) = super::StatusModule::main_conf(cf) else {
            return nginx_sys::NGX_ERROR as ngx_int_t;
        };
        if main.status_used && main.zone.is_null() {
            ngx::ngx_conf_log_error!(
                NGX_LOG_EMERG,
                cf,
                "\"authgate_status\" needs an \"authgate_status_zone\" in the http block"
            );
            return nginx_sys::NGX_ERROR as ngx_int_t;
        }
        nginx_sys::NGX_OK as ngx_int_t
    })
}

/// `worker_processes` of the cycle being configured.
fn worker_processes(cycle: *mut ngx_cycle_t) -> u64 {
    if cycle.is_null() {
        return 0;
    }
    // SAFETY: the core module's configuration is created and initialised
    // (init_conf) before shared zones are initialised; conf_ctx has a slot
    // per core module.
    unsafe {
        let ctx = (*cycle).conf_ctx;
        let ccf = (*ctx.add(nginx_sys::ngx_core_module.index))
            .cast::<ngx_core_conf_t>()
            .as_ref();
        ccf.map_or(0, |c| c.worker_processes.max(0) as u64)
    }
}

/// Zone init: a fresh zone gets an empty table as large as it holds; a zone
/// kept across a reload keeps its series and counts. Then every series the
/// new configuration registered is found (or added) and handed to its
/// counter; a series that does not fit is not counted, logged once here.
unsafe extern "C" fn init_zone(zone: *mut ngx_shm_zone_t, data: *mut c_void) -> ngx_int_t {
    let log = ngx::log::ngx_cycle_log().as_ptr();
    guard_status(log, || {
        // SAFETY: nginx calls init with a mapped zone of the new cycle, whose
        // data is still our main configuration (set by set_zone), and, when
        // reusing the zone, the previous cycle's data: the table in this
        // same memory.
        unsafe {
            let main = &mut *(*zone).data.cast::<StatusMainConf>();
            let name = (*zone).shm.name;
            let table = if !data.is_null() && (*data.cast::<table::Header>()).magic == table::MAGIC
            {
                let t = Table::open(data.cast());
                t.header
                    .reloads
                    .fetch_add(1, core::sync::atomic::Ordering::Relaxed);
                t
            } else {
                let pool = shm::slab_pool(zone);
                let avail = ((*pool).end as usize).saturating_sub((*pool).start as usize);
                let mut capacity = avail / size_of::<table::Series>();
                let mut mem: *mut u8 = ptr::null_mut();
                bitfield::slab_pool::set_log_nomem(&mut *pool, false);
                while capacity > 0 {
                    mem = shm::alloc(zone, table::bytes_for(capacity)).cast();
                    if !mem.is_null() {
                        break;
                    }
                    capacity = capacity * 49 / 50;
                }
                bitfield::slab_pool::set_log_nomem(&mut *pool, true);
                if mem.is_null() {
                    return shm::INIT_ERROR;
                }
                let t = Table::init(mem, capacity);
                ngx::ngx_log_error!(
                    NGX_LOG_NOTICE,
                    log,
                    "authgate_status_zone \"{}\": room for {} series",
                    name,
                    capacity
                );
                t
            };
            let header = table.header;
            header.workers.store(
                worker_processes(main.cycle),
                core::sync::atomic::Ordering::Relaxed,
            );
            let (mut full, mut too_long) = (0u64, 0u64);
            {
                let _lock = shm::Locked::new(zone);
                for &reg in &main.registrations {
                    let reg = &mut *reg;
                    reg.series = match table.find_or_insert(reg.kind, reg.label()) {
                        Insert::Found(s) | Insert::Added(s) => s,
                        Insert::Full => {
                            full += 1;
                            ptr::null()
                        }
                        Insert::TooLong => {
                            too_long += 1;
                            ptr::null()
                        }
                    };
                }
            }
            header
                .dropped
                .store(full + too_long, core::sync::atomic::Ordering::Relaxed);
            if full > 0 {
                ngx::ngx_log_error!(
                    NGX_LOG_WARN,
                    log,
                    "authgate_status_zone \"{}\" is full: {} series of this configuration are not \
                     counted (make the zone larger)",
                    name,
                    full
                );
            }
            if too_long > 0 {
                ngx::ngx_log_error!(
                    NGX_LOG_WARN,
                    log,
                    "authgate_status_zone \"{}\": {} series have a label longer than {} bytes and \
                     are not counted",
                    name,
                    too_long,
                    LABEL_MAX
                );
            }
            shm::set_data(zone, ptr::from_ref(header).cast_mut().cast());
            shm::INIT_OK
        }
    })
}

/// The table of the zone, for the status handler.
///
/// # Safety
/// `zone` must be the running cycle's status zone, initialised.
pub unsafe fn zone_table<'a>(zone: *mut ngx_shm_zone_t) -> Option<Table<'a>> {
    // SAFETY: per the contract: zone->data is the table init_zone wrote.
    unsafe {
        let data = (*zone).data.cast::<u8>();
        if data.is_null() || (*data.cast::<table::Header>()).magic != table::MAGIC {
            return None;
        }
        Some(Table::open(data))
    }
}
