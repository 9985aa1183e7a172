//! `auth_request` / `auth_request_set`: configuration and directives.

use core::ffi::{c_char, c_void};
use core::ptr::NonNull;

use nginx_sys::{
    ngx_array_t, ngx_command_t, ngx_conf_t, ngx_http_complex_value_t, ngx_http_conf_ctx_t,
    ngx_http_core_loc_conf_t, ngx_str_t, NGX_LOG_EMERG,
};
use ngx::collections::Vec;
use ngx::core::Pool;
use ngx::http::{HttpModuleLocationConf, HttpModuleMainConf, NgxHttpCoreModule};

use super::extensions::{self, Extensions};
use super::AuthRequestModule;
use crate::counters;
use crate::decision_cache::conf::{self as cache, CacheConf};
use crate::decision_cache::valid;
use crate::nginx::conf::{
    args, conf_message, directive, emerg, find_module, merge, CONF_ERROR, CONF_OK,
};
use crate::nginx::variables::{self, AssignableVariable};

/// Where to send the auth subrequest, as configured at one level.
#[derive(Clone, Copy)]
pub enum AuthTarget {
    /// `auth_request off;` — no check here, and none inherited.
    Off,
    /// `auth_request /uri;`
    Uri(ngx_str_t),
}

/// One `auth_request_set $variable value;`.
pub struct AuthRequestVariable {
    pub variable: AssignableVariable,
    /// Evaluated in the auth subrequest's context.
    pub value: ngx_http_complex_value_t,
}

type VariableList = Vec<AuthRequestVariable, Pool>;

/// Location configuration (also used at `http` and `server` level).
#[derive(Default)]
pub struct AuthRequestConf {
    /// `None`: not set at this level (inherit).
    pub target: Option<AuthTarget>,
    /// `None`: no `auth_request_set` at this level (inherit). A level with
    /// its own list replaces the inherited one, as in nginx's C module. The
    /// list lives in the configuration pool and is shared with the levels
    /// that inherit it.
    variables: Option<NonNull<VariableList>>,
    /// The opt-in directives beyond the C module (`auth_request_pass_status`,
    /// `auth_request_client_header`, …), see [`super::extensions`].
    pub ext: Extensions,
    /// The status zone's series for this auth URI (inherited with it).
    pub counter: crate::counters::Counter,
    /// `auth_request_cache`, `auth_request_cache_key`,
    /// `auth_request_cache_valid`.
    pub cache: CacheConf,
    /// Decided once at merge time: neither `auth_request_cache` nor any
    /// opt-in directive (super::extensions) is in effect here, so the
    /// handler takes the C module's path and skips their per-request
    /// setup. `false` (the default, the full path) wherever not merged.
    pub drop_in: bool,
}

impl AuthRequestConf {
    /// The subrequest URI, when this location is protected.
    pub fn uri(&self) -> Option<&ngx_str_t> {
        match &self.target {
            Some(AuthTarget::Uri(uri)) => Some(uri),
            _ => None,
        }
    }

    /// The `auth_request_set` assignments in effect here.
    pub fn variables(&self) -> &[AuthRequestVariable] {
        match self.variables {
            // SAFETY: the list is allocated in the configuration pool by
            // set_variable() and lives as long as every configuration that
            // points at it.
            Some(list) => unsafe { list.as_ref() },
            None => &[],
        }
    }

    fn merge_from(&mut self, parent: &AuthRequestConf) {
        if self.target.is_none() {
            self.target = parent.target;
            self.counter = parent.counter;
        }
        if self.variables.is_none() {
            self.variables = parent.variables;
        }
        self.ext.merge_from(&parent.ext);
        self.cache.merge_from(&parent.cache);
    }
}

/// Main configuration: what the configuration-time checks need.
#[derive(Default)]
pub struct AuthRequestMainConf {
    /// `ctx_index` of nginx's C `ngx_http_auth_request_module`, when this
    /// nginx has it compiled in. That module sees the `auth_request` and
    /// `auth_request_set` directives before we do, so we must refuse
    /// configurations that use them (see merge_loc_conf).
    c_module_index: Option<usize>,
    /// Some block has `auth_request uri`: the access handler is needed.
    pub used: bool,
    /// Some block has `auth_request_upstream_header`: the handler that
    /// removes the client's copies is needed.
    pub upstream_headers_used: bool,
}

/// The directive table.
pub static mut COMMANDS: [ngx_command_t; 11] = [
    ngx_command_t {
        name: ngx::ngx_string!("auth_request"),
        type_: (nginx_sys::NGX_HTTP_MAIN_CONF
            | nginx_sys::NGX_HTTP_SRV_CONF
            | nginx_sys::NGX_HTTP_LOC_CONF
            | nginx_sys::NGX_CONF_TAKE1) as _,
        set: Some(set_auth_request),
        conf: nginx_sys::NGX_HTTP_LOC_CONF_OFFSET,
        offset: 0,
        post: core::ptr::null_mut(),
    },
    ngx_command_t {
        name: ngx::ngx_string!("auth_request_set"),
        type_: (nginx_sys::NGX_HTTP_MAIN_CONF
            | nginx_sys::NGX_HTTP_SRV_CONF
            | nginx_sys::NGX_HTTP_LOC_CONF
            | nginx_sys::NGX_CONF_TAKE2) as _,
        set: Some(set_variable),
        conf: nginx_sys::NGX_HTTP_LOC_CONF_OFFSET,
        offset: 0,
        post: core::ptr::null_mut(),
    },
    // The opt-in directives beyond the C module (see super::extensions).
    ngx_command_t {
        name: ngx::ngx_string!("auth_request_pass_status"),
        type_: (nginx_sys::NGX_HTTP_MAIN_CONF
            | nginx_sys::NGX_HTTP_SRV_CONF
            | nginx_sys::NGX_HTTP_LOC_CONF
            | nginx_sys::NGX_CONF_1MORE) as _,
        set: Some(extensions::set_pass_status),
        conf: nginx_sys::NGX_HTTP_LOC_CONF_OFFSET,
        offset: 0,
        post: core::ptr::null_mut(),
    },
    ngx_command_t {
        name: ngx::ngx_string!("auth_request_allow_status"),
        type_: (nginx_sys::NGX_HTTP_MAIN_CONF
            | nginx_sys::NGX_HTTP_SRV_CONF
            | nginx_sys::NGX_HTTP_LOC_CONF
            | nginx_sys::NGX_CONF_1MORE) as _,
        set: Some(extensions::set_allow_status),
        conf: nginx_sys::NGX_HTTP_LOC_CONF_OFFSET,
        offset: 0,
        post: core::ptr::null_mut(),
    },
    ngx_command_t {
        name: ngx::ngx_string!("auth_request_client_header"),
        type_: (nginx_sys::NGX_HTTP_MAIN_CONF
            | nginx_sys::NGX_HTTP_SRV_CONF
            | nginx_sys::NGX_HTTP_LOC_CONF
            | nginx_sys::NGX_CONF_TAKE1) as _,
        set: Some(extensions::set_client_header),
        conf: nginx_sys::NGX_HTTP_LOC_CONF_OFFSET,
        offset: 0,
        post: core::ptr::null_mut(),
    },
    ngx_command_t {
        name: ngx::ngx_string!("auth_request_upstream_header"),
        type_: (nginx_sys::NGX_HTTP_MAIN_CONF
            | nginx_sys::NGX_HTTP_SRV_CONF
            | nginx_sys::NGX_HTTP_LOC_CONF
            | nginx_sys::NGX_CONF_TAKE1) as _,
        set: Some(extensions::set_upstream_header),
        conf: nginx_sys::NGX_HTTP_LOC_CONF_OFFSET,
        offset: 0,
        post: core::ptr::null_mut(),
    },
    ngx_command_t {
        name: ngx::ngx_string!("auth_request_body"),
        type_: (nginx_sys::NGX_HTTP_MAIN_CONF
            | nginx_sys::NGX_HTTP_SRV_CONF
            | nginx_sys::NGX_HTTP_LOC_CONF
            | nginx_sys::NGX_CONF_TAKE12) as _,
        set: Some(extensions::set_body),
        conf: nginx_sys::NGX_HTTP_LOC_CONF_OFFSET,
        offset: 0,
        post: core::ptr::null_mut(),
    },
    ngx_command_t {
        name: ngx::ngx_string!("auth_request_cache"),
        type_: (nginx_sys::NGX_HTTP_MAIN_CONF
            | nginx_sys::NGX_HTTP_SRV_CONF
            | nginx_sys::NGX_HTTP_LOC_CONF
            | nginx_sys::NGX_CONF_TAKE1) as _,
        set: Some(set_cache),
        conf: nginx_sys::NGX_HTTP_LOC_CONF_OFFSET,
        offset: 0,
        post: core::ptr::null_mut(),
    },
    ngx_command_t {
        name: ngx::ngx_string!("auth_request_cache_key"),
        type_: (nginx_sys::NGX_HTTP_MAIN_CONF
            | nginx_sys::NGX_HTTP_SRV_CONF
            | nginx_sys::NGX_HTTP_LOC_CONF
            | nginx_sys::NGX_CONF_TAKE1) as _,
        set: Some(set_cache_key),
        conf: nginx_sys::NGX_HTTP_LOC_CONF_OFFSET,
        offset: 0,
        post: core::ptr::null_mut(),
    },
    ngx_command_t {
        name: ngx::ngx_string!("auth_request_cache_valid"),
        type_: (nginx_sys::NGX_HTTP_MAIN_CONF
            | nginx_sys::NGX_HTTP_SRV_CONF
            | nginx_sys::NGX_HTTP_LOC_CONF
            | nginx_sys::NGX_CONF_1MORE) as _,
        set: Some(set_cache_valid),
        conf: nginx_sys::NGX_HTTP_LOC_CONF_OFFSET,
        offset: 0,
        post: core::ptr::null_mut(),
    },
    ngx_command_t::empty(),
];

/// `auth_request_cache zone | off;`
unsafe extern "C" fn set_cache(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: as in set_auth_request().
    unsafe {
        directive(cf, conf, |cf, c: &mut AuthRequestConf| {
            cache::set_zone(cf, &mut c.cache)
        })
    }
}

/// `auth_request_cache_key string;`
unsafe extern "C" fn set_cache_key(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: as in set_auth_request().
    unsafe {
        directive(cf, conf, |cf, c: &mut AuthRequestConf| {
            cache::set_key(cf, &mut c.cache)
        })
    }
}

/// `auth_request_cache_valid [code ...] time;`: codes are 2xx statuses,
/// `401`, `403` or `any` (all three kinds); without codes, every 2xx.
unsafe extern "C" fn set_cache_valid(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: as in set_auth_request().
    unsafe {
        directive(cf, conf, |cf, c: &mut AuthRequestConf| {
            cache::set_valid(cf, &mut c.cache, Some(valid::ANY_2XX), |word| {
                if word == b"any" {
                    return Ok(valid::ANY);
                }
                match core::str::from_utf8(word)
                    .ok()
                    .and_then(|w| w.parse::<u16>().ok())
                {
                    Some(code @ (200..=299 | 401 | 403)) => Ok(code),
                    _ => Err("cannot be cached: only 2xx, 401 and 403 answers are decisions"),
                }
            })
        })
    }
}

/// `auth_request uri | off;`
unsafe extern "C" fn set_auth_request(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx passes the configuration being parsed and this module's
    // location configuration for the current block.
    unsafe { directive(cf, conf, auth_request) }
}

fn auth_request(cf: &mut ngx_conf_t, conf: &mut AuthRequestConf) -> *mut c_char {
    if conf.target.is_some() {
        return conf_message(c"is duplicate");
    }
    let value = args(cf)[1];
    conf.target = Some(if value.as_bytes() == b"off" {
        AuthTarget::Off
    } else {
        if let Some(main) = AuthRequestModule::main_conf_mut(cf) {
            main.used = true;
        }
        conf.counter = counters::register(cf, counters::Kind::AuthRequest, value.as_bytes());
        AuthTarget::Uri(value)
    });
    CONF_OK
}

/// `auth_request_set $variable value;`
unsafe extern "C" fn set_variable(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: as in set_auth_request().
    unsafe { directive(cf, conf, auth_request_set) }
}

fn auth_request_set(cf: &mut ngx_conf_t, conf: &mut AuthRequestConf) -> *mut c_char {
    let (name, value) = (args(cf)[1], args(cf)[2]);
    let Some(bare_name) = name.strip_prefix("$").filter(|n| !n.is_empty()) else {
        return emerg(cf, format_args!("invalid variable name \"{name}\""));
    };

    let Some(variable) = variables::declare_assignable(cf, &bare_name) else {
        return CONF_ERROR;
    };
    // SAFETY: the declaration lives in the core module's configuration.
    let declaration = unsafe { &mut *variable.declaration };
    if declaration.get_handler.is_none() {
        declaration.get_handler = Some(variables::not_found_getter);
    }
    let Some(value) = variables::compile(cf, &value) else {
        return CONF_ERROR;
    };

    // SAFETY: cf->pool is the configuration pool, alive for the cycle.
    let pool = unsafe { Pool::from_ngx_pool(cf.pool) };
    let list = match conf.variables {
        Some(list) => list,
        None => {
            let Some(list) = NonNull::new(pool.allocate(VariableList::new_in(pool.clone()))) else {
                return CONF_ERROR;
            };
            conf.variables = Some(list);
            list
        }
    };
    // SAFETY: the list was allocated above or by an earlier directive of
    // this same block; nothing else references it while parsing.
    let list = unsafe { &mut *list.as_ptr() };
    if list.try_reserve(1).is_err() {
        return CONF_ERROR;
    }
    list.push(AuthRequestVariable { variable, value });
    CONF_OK
}

/// The location configuration of nginx's C auth_request module, as laid out
/// in ngx_http_auth_request_module.c since its first release (2013). Read
/// only to detect a configuration that would silently use it instead of us.
#[repr(C)]
struct CModuleLocConf {
    uri: ngx_str_t,
    vars: *mut ngx_array_t,
}

/// Records whether nginx's C auth_request module is present.
///
/// # Safety
/// Called by nginx with the http block's configuration.
pub unsafe extern "C" fn preconfiguration(cf: *mut ngx_conf_t) -> nginx_sys::ngx_int_t {
    // SAFETY: nginx passes the configuration being parsed.
    let cf = unsafe { &mut *cf };
    crate::nginx::ffi::guard_status(cf.log, || {
        // SAFETY: cf->cycle is the cycle being configured.
        let cycle = unsafe { &*cf.cycle };
        let c_module_index =
            find_module(cycle, "ngx_http_auth_request_module").map(|m| m.ctx_index);
        if let Some(main) = AuthRequestModule::main_conf_mut(cf) {
            main.c_module_index = c_module_index;
        }
        nginx_sys::NGX_OK as _
    })
}

/// Merges a level with its parent, and refuses configurations that nginx's
/// C auth_request module would silently take over.
///
/// # Safety
/// Called by nginx with two of this module's location configurations.
pub unsafe extern "C" fn merge_loc_conf(
    cf: *mut ngx_conf_t,
    parent: *mut c_void,
    child: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx passes the configuration and two of this module's
    // location configurations.
    unsafe { merge(cf, parent, child, merge_levels) }
}

fn merge_levels(
    cf: &mut ngx_conf_t,
    parent: &AuthRequestConf,
    child: &mut AuthRequestConf,
) -> *mut c_char {
    child.merge_from(parent);
    if let Some(directive) = child.ext.any_directive() {
        if AuthRequestModule::main_conf(cf).is_some_and(|m| m.c_module_index.is_some()) {
            ngx::ngx_conf_log_error!(
                NGX_LOG_EMERG,
                cf,
                "\"{directive}\" extends nginx-authgate's auth_request, which this nginx \
                 cannot use: it has nginx's own ngx_http_auth_request_module compiled in, \
                 which takes the \"auth_request\" directive and ignores \"{directive}\"; use \
                 an nginx built without --with-http_auth_request_module"
            );
            return CONF_ERROR;
        }
    }
    if finish_cache(cf, child).is_err() {
        return CONF_ERROR;
    }
    child.drop_in = child.ext.any_directive().is_none() && child.cache.zone().is_none();
    let Some(location) = c_module_in_use(cf) else {
        return CONF_OK;
    };
    ngx::ngx_conf_log_error!(
        NGX_LOG_EMERG,
        cf,
        "\"auth_request\" in {location} would be handled by nginx's own \
         ngx_http_auth_request_module, which this nginx binary has compiled in \
         and which takes the directive before nginx-authgate can; use an nginx \
         built without --with-http_auth_request_module to use nginx-authgate's \
         auth_request"
    );
    CONF_ERROR
}

/// The cache checks, and the cached question's scope: the service URI and
/// every `auth_request_set` (variable and value text), so that a location
/// asking another question, or a reload that changes them, never reuses
/// an entry. The opt-in directives whose effect a hit could not replay
/// (auth response headers passed on, passed statuses, the client's body in
/// the question) are refused with the cache; `auth_request_allow_status`
/// is re-applied to the stored status on a hit.
fn finish_cache(cf: &mut ngx_conf_t, conf: &mut AuthRequestConf) -> Result<(), cache::Refused> {
    let uri = conf.uri().map_or(&[][..], |u| u.as_bytes());
    let mut scope: std::vec::Vec<std::vec::Vec<u8>> = vec![b"auth_request".to_vec(), uri.to_vec()];
    for a in conf.variables() {
        scope.push(a.variable.index.to_le_bytes().to_vec());
        scope.push(a.value.value.as_bytes().to_vec());
    }
    let parts: std::vec::Vec<&[u8]> = scope.iter().map(|p| p.as_slice()).collect();
    let protected = conf.uri().is_some();
    conf.cache
        .finish(cf, "auth_request_cache", protected, true, &parts)?;
    // What these directives pass on is not part of a cached decision.
    let ext = &conf.ext;
    let not_replayable = [
        ("auth_request_pass_status", ext.pass_status.is_some()),
        (
            "auth_request_client_header",
            !ext.client_headers().is_empty(),
        ),
        (
            "auth_request_upstream_header",
            !ext.upstream_headers().is_empty(),
        ),
        ("auth_request_body", ext.body_max().is_some()),
    ];
    match not_replayable.iter().find(|(_, used)| *used) {
        Some((other, _)) if protected => conf.cache.refuse_with(cf, "auth_request_cache", other),
        _ => Ok(()),
    }
}

/// When the C module is present and the block being merged uses it, names
/// that block (`location "/x"` or `server`).
fn c_module_in_use(cf: &ngx_conf_t) -> Option<String> {
    let index = AuthRequestModule::main_conf(cf)?.c_module_index?;
    // SAFETY: during merging cf->ctx is the http conf context whose
    // loc_conf array is that of the block being merged; slot `index` holds
    // the C module's (already merged: it precedes us in the module list)
    // configuration, laid out as CModuleLocConf.
    let ctx = unsafe { &*cf.ctx.cast::<ngx_http_conf_ctx_t>() };
    // SAFETY: as above: slot `index` of that loc_conf array is the C
    // module's configuration (null-checked by as_ref).
    let c_conf = unsafe {
        (*ctx.loc_conf.add(index))
            .cast::<CModuleLocConf>()
            .as_ref()?
    };
    let unset = usize::MAX as *mut ngx_array_t; // NGX_CONF_UNSET_PTR
    if c_conf.uri.len == 0 && (c_conf.vars.is_null() || c_conf.vars == unset) {
        return None;
    }
    let core = NgxHttpCoreModule::location_conf(ctx).map(|c: &ngx_http_core_loc_conf_t| c.name);
    Some(match core {
        Some(name) if name.len > 0 => format!("location \"{name}\""),
        _ => "a server block".to_owned(),
    })
}
