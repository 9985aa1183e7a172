//! The decision cache's own nginx module: `auth_cache_zone`,
//! `auth_cache_purge` and the `$auth_cache_status` variable. The
//! per-location settings (`auth_request_cache`, …) belong to the mechanisms
//! and live in [`super::conf`].

use core::ffi::{c_char, c_void};
use core::ptr::{self, addr_of};

use nginx_sys::{
    ngx_command_t, ngx_conf_t, ngx_http_module_t, ngx_int_t, ngx_module_t, ngx_shm_zone_t,
    ngx_str_t, NGX_ERROR, NGX_OK,
};
use ngx::http::{HttpModule, HttpModuleLocationConf, HttpModuleMainConf};

use super::zone;
use super::zone::ZoneSettings;
use crate::nginx::conf::{
    args, conf_message, directive, emerg, refuse_duplicate_options, CONF_ERROR, CONF_OK,
};
use crate::nginx::ffi::guard_status;
use crate::nginx::shm;
use crate::nginx::variables::{self, AssignableVariable};

/// Type that ties the configuration structures to the module.
pub struct DecisionCacheModule;

impl HttpModule for DecisionCacheModule {
    fn module() -> &'static ngx_module_t {
        // SAFETY: the module static is only written by nginx while it loads
        // modules, before any handler runs.
        unsafe { &*addr_of!(ngx_http_authgate_decision_cache_module) }
    }

    unsafe extern "C" fn preconfiguration(cf: *mut ngx_conf_t) -> ngx_int_t {
        // SAFETY: nginx passes the configuration being parsed.
        let cf = unsafe { &mut *cf };
        guard_status(cf.log, || {
            let var = variables::declare_readonly(cf, &ngx::ngx_string!("auth_cache_status"));
            match (var, DecisionCacheModule::main_conf_mut(cf)) {
                (Some(var), Some(main)) => {
                    main.status_variable = Some(var);
                    NGX_OK as ngx_int_t
                }
                _ => NGX_ERROR as ngx_int_t,
            }
        })
    }
}

/// Main configuration.
#[derive(Default)]
pub struct DecisionCacheMainConf {
    /// `$auth_cache_status`.
    pub status_variable: Option<AssignableVariable>,
}

/// Location configuration: `auth_cache_purge`.
#[derive(Default)]
pub struct DecisionCacheLocConf {
    /// The zone this location's purge handler empties.
    pub purge_zone: Option<*mut ngx_shm_zone_t>,
    purge_at: Option<super::conf::Position>,
}

// SAFETY: the configuration types below are the ones create_main_conf and
// create_loc_conf allocate for this module.
unsafe impl HttpModuleMainConf for DecisionCacheModule {
    type MainConf = DecisionCacheMainConf;
}
unsafe impl HttpModuleLocationConf for DecisionCacheModule {
    type LocationConf = DecisionCacheLocConf;
}

/// The directive table.
pub static mut COMMANDS: [ngx_command_t; 3] = [
    ngx_command_t {
        name: ngx::ngx_string!("auth_cache_zone"),
        type_: (nginx_sys::NGX_HTTP_MAIN_CONF | nginx_sys::NGX_CONF_2MORE) as _,
        set: Some(set_zone),
        conf: nginx_sys::NGX_HTTP_MAIN_CONF_OFFSET,
        offset: 0,
        post: ptr::null_mut(),
    },
    ngx_command_t {
        name: ngx::ngx_string!("auth_cache_purge"),
        type_: (nginx_sys::NGX_HTTP_LOC_CONF | nginx_sys::NGX_CONF_TAKE1) as _,
        set: Some(set_purge),
        conf: nginx_sys::NGX_HTTP_LOC_CONF_OFFSET,
        offset: 0,
        post: ptr::null_mut(),
    },
    ngx_command_t::empty(),
];

/// `auth_cache_zone name size [inactive=time];`
unsafe extern "C" fn set_zone(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx passes this module's main configuration.
    unsafe {
        directive(cf, conf, |cf, _main: &mut DecisionCacheMainConf| {
            let words = args(cf).to_vec();
            let (directive, name, size) = (words[0], words[1], words[2]);
            let settings = match zone_settings(cf, directive, &words[3..]) {
                Ok(settings) => settings,
                Err(rv) => return rv,
            };
            let Some(kept) = zone::keep_settings(cf, settings) else {
                return CONF_ERROR;
            };
            let module = DecisionCacheModule::module();
            match shm::declare(cf, &name, &size, module, Some(zone::init_zone), kept.cast()) {
                Ok(_) => CONF_OK,
                Err(rv) => rv,
            }
        })
    }
}

/// The options after `auth_cache_zone name size`: `inactive=time`, once.
fn zone_settings(
    cf: &mut ngx_conf_t,
    directive: ngx_str_t,
    options: &[ngx_str_t],
) -> Result<ZoneSettings, *mut c_char> {
    refuse_duplicate_options(cf, directive, options)?;
    let mut settings = ZoneSettings::default();
    for option in options {
        let Some(time) = option.as_bytes().strip_prefix(b"inactive=") else {
            return Err(emerg(
                cf,
                format_args!("\"{directive}\": invalid parameter \"{option}\""),
            ));
        };
        let Some(ms) = zone::parse_inactive(time) else {
            return Err(emerg(
                cf,
                format_args!(
                    "\"{directive}\": invalid \"{option}\" (a time above 0, such as 30s or 10m)"
                ),
            ));
        };
        settings.inactive_ms = ms;
    }
    Ok(settings)
}

/// `auth_cache_purge name;`
unsafe extern "C" fn set_purge(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx passes this module's location configuration.
    unsafe {
        directive(cf, conf, |cf, loc: &mut DecisionCacheLocConf| {
            if loc.purge_zone.is_some() {
                return conf_message(c"is duplicate");
            }
            let name = args(cf)[1];
            let Some(zone) = super::conf::zone_reference(cf, &name) else {
                return CONF_ERROR;
            };
            loc.purge_zone = Some(zone);
            loc.purge_at = Some(super::conf::Position::here(cf));
            super::purge::install(cf)
        })
    }
}

static MODULE_CTX: ngx_http_module_t = ngx_http_module_t {
    preconfiguration: Some(DecisionCacheModule::preconfiguration),
    postconfiguration: None,
    create_main_conf: Some(DecisionCacheModule::create_main_conf),
    init_main_conf: None,
    create_srv_conf: None,
    merge_srv_conf: None,
    create_loc_conf: Some(DecisionCacheModule::create_loc_conf),
    merge_loc_conf: Some(merge_loc_conf),
};

/// Refuses an `auth_cache_purge` naming a zone no `auth_cache_zone`
/// declares (known once the whole `http` block is parsed).
unsafe extern "C" fn merge_loc_conf(
    cf: *mut ngx_conf_t,
    parent: *mut c_void,
    child: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx passes two of this module's location configurations.
    unsafe {
        crate::nginx::conf::merge(
            cf,
            parent,
            child,
            |cf, _, loc: &mut DecisionCacheLocConf| {
                match (loc.purge_zone, loc.purge_at) {
                    // SAFETY: a zone of the configuration being built.
                    (Some(zone), Some(at)) if (*zone).shm.size == 0 => {
                        ngx::ngx_log_error!(
                        nginx_sys::NGX_LOG_EMERG,
                        cf.log,
                        "\"auth_cache_purge\": unknown zone \"{}\" (no auth_cache_zone declares it) in {at}",
                        (*zone).shm.name
                    );
                        CONF_ERROR
                    }
                    _ => CONF_OK,
                }
            },
        )
    }
}

/// The nginx module.
#[allow(non_upper_case_globals)]
// By name: the module table nginx generates under its configure (`config`)
// refers to it. Not in unit tests and fuzz targets (see src/lib.rs).
#[cfg_attr(not(any(test, fuzzing)), no_mangle)]
pub static mut ngx_http_authgate_decision_cache_module: ngx_module_t = ngx_module_t {
    ctx: addr_of!(MODULE_CTX) as *mut _,
    // nginx only reads the command table through this pointer.
    commands: addr_of!(COMMANDS) as *mut _,
    type_: nginx_sys::NGX_HTTP_MODULE as _,
    ..ngx_module_t::default()
};
