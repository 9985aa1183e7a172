//! `ntlm` / `ntlm_timeout` / `ntlm_max_requests` / `ntlm_max_time`: directives, and wrapping each upstream block
//! that uses them.

use core::ffi::{c_char, c_void};

use nginx_sys::{
    ngx_command_t, ngx_conf_t, ngx_http_upstream_init_peer_pt, ngx_int_t, ngx_msec_t,
    ngx_parse_time, ngx_str_t, ngx_uint_t, NGX_ERROR, NGX_LOG_EMERG, NGX_OK,
};
use ngx::core::Pool;
use ngx::http::HttpModuleServerConf;

use super::binding::SessionLimits;
use super::handler::{self, IdleEntry};
use super::lru::IdleLru;
use super::NtlmModule;
use crate::nginx::conf::{args, conf_message, directive, emerg, CONF_OK};
use crate::nginx::ffi::guard_status;
use crate::nginx::upstream::{keepalive_settings, upstream_blocks};

/// Default `ntlm` connections: idle bound connections kept per worker.
pub const DEFAULT_CONNECTIONS: usize = 100;
/// The largest `ntlm` connections value (its LRU slots are allocated at
/// configuration time).
pub const MAX_CONNECTIONS: usize = 1_000_000;
/// Default `ntlm_timeout`: 60 s.
pub const DEFAULT_TIMEOUT_MS: ngx_msec_t = 60_000;
/// The largest `ntlm_max_requests`.
pub const MAX_REQUESTS: u64 = 4_294_967_295;

/// Per `upstream {}` block configuration.
pub struct NtlmSrvConf {
    /// `Some` when `ntlm` is in the block.
    connections: Option<usize>,
    timeout: Option<ngx_msec_t>,
    max_requests: Option<u64>,
    max_time: Option<ngx_msec_t>,
    /// The first `ntlm_*` directive of the block and where it was set, for
    /// the error when `ntlm` is missing.
    setting_at: Option<(&'static str, ngx_str_t, ngx_uint_t)>,
    /// Built at the end of configuration for blocks with `ntlm`; each worker
    /// has its own copy after fork.
    pub upstream: *mut UpstreamState,
}

impl Default for NtlmSrvConf {
    fn default() -> Self {
        Self {
            connections: None,
            timeout: None,
            max_requests: None,
            max_time: None,
            setting_at: None,
            upstream: core::ptr::null_mut(),
        }
    }
}

/// One upstream block's bindings in one worker.
pub struct UpstreamState {
    /// The peer initialiser of the chain `ntlm` wraps (balancer, keepalive).
    pub original_init_peer: ngx_http_upstream_init_peer_pt,
    pub timeout: ngx_msec_t,
    pub limits: SessionLimits,
    /// The tries the chain's initialiser gave the last request it set up
    /// (the balancer's peers), for the requests set up without it.
    pub chain_tries: ngx_uint_t,
    /// Idle bound connections, least recently used last.
    pub idle: IdleLru<IdleEntry, Pool>,
    /// The status zone's series for this upstream block.
    pub counter: crate::counters::Counter,
}

/// The directive table.
pub static mut COMMANDS: [ngx_command_t; 5] = [
    ngx_command_t {
        name: ngx::ngx_string!("ntlm"),
        type_: (nginx_sys::NGX_HTTP_UPS_CONF
            | nginx_sys::NGX_CONF_NOARGS
            | nginx_sys::NGX_CONF_TAKE1) as _,
        set: Some(set_ntlm),
        conf: nginx_sys::NGX_HTTP_SRV_CONF_OFFSET,
        offset: 0,
        post: core::ptr::null_mut(),
    },
    ngx_command_t {
        name: ngx::ngx_string!("ntlm_timeout"),
        type_: (nginx_sys::NGX_HTTP_UPS_CONF | nginx_sys::NGX_CONF_TAKE1) as _,
        set: Some(set_ntlm_timeout),
        conf: nginx_sys::NGX_HTTP_SRV_CONF_OFFSET,
        offset: 0,
        post: core::ptr::null_mut(),
    },
    ngx_command_t {
        name: ngx::ngx_string!("ntlm_max_requests"),
        type_: (nginx_sys::NGX_HTTP_UPS_CONF | nginx_sys::NGX_CONF_TAKE1) as _,
        set: Some(set_ntlm_max_requests),
        conf: nginx_sys::NGX_HTTP_SRV_CONF_OFFSET,
        offset: 0,
        post: core::ptr::null_mut(),
    },
    ngx_command_t {
        name: ngx::ngx_string!("ntlm_max_time"),
        type_: (nginx_sys::NGX_HTTP_UPS_CONF | nginx_sys::NGX_CONF_TAKE1) as _,
        set: Some(set_ntlm_max_time),
        conf: nginx_sys::NGX_HTTP_SRV_CONF_OFFSET,
        offset: 0,
        post: core::ptr::null_mut(),
    },
    ngx_command_t::empty(),
];

/// Parses the `connections` argument: a decimal integer in
/// 1..=[`MAX_CONNECTIONS`].
pub fn parse_connections(value: &[u8]) -> Option<usize> {
    if value.is_empty() || value.len() > 9 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: usize = core::str::from_utf8(value).ok()?.parse().ok()?;
    (n > 0 && n <= MAX_CONNECTIONS).then_some(n)
}

/// `ntlm [connections];`
unsafe extern "C" fn set_ntlm(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx passes the configuration being parsed and this module's
    // server configuration of the enclosing upstream block.
    unsafe {
        directive(cf, conf, |cf, conf: &mut NtlmSrvConf| {
            if conf.connections.is_some() {
                return conf_message(c"is duplicate");
            }
            let arg = args(cf).get(1).copied();
            let connections = match arg {
                None => DEFAULT_CONNECTIONS,
                Some(value) => match parse_connections(value.as_bytes()) {
                    Some(n) => n,
                    None => {
                        return emerg(
                            cf,
                            format_args!(
                                "invalid number of connections \"{value}\" in \"ntlm\" directive, \
                                 an integer from 1 to {MAX_CONNECTIONS} is expected"
                            ),
                        )
                    }
                },
            };
            conf.connections = Some(connections);
            CONF_OK
        })
    }
}

/// Runs the body of a directive that refines `ntlm` (`ntlm_timeout`,
/// `ntlm_max_*`), remembering where the first of them was set.
///
/// # Safety
/// What nginx passes to a directive handler of this module.
unsafe fn ntlm_setting(
    cf: *mut ngx_conf_t,
    conf: *mut c_void,
    name: &'static str,
    body: impl FnOnce(&mut ngx_conf_t, &mut NtlmSrvConf) -> *mut c_char,
) -> *mut c_char {
    let setting = |cf: &mut ngx_conf_t, conf: &mut NtlmSrvConf| {
        let rv = body(cf, conf);
        if rv == CONF_OK && conf.setting_at.is_none() {
            // SAFETY: while parsing, cf->conf_file is the file being read.
            conf.setting_at = unsafe { cf.conf_file.as_ref() }.map(|f| (name, f.file.name, f.line));
        }
        rv
    };
    // SAFETY: as in set_ntlm().
    unsafe { directive(cf, conf, setting) }
}

/// A positive nginx time (`ntlm_timeout`, `ntlm_max_time`).
fn positive_time(cf: &mut ngx_conf_t, directive: &str) -> Result<ngx_msec_t, *mut c_char> {
    let mut value = args(cf)[1];
    // SAFETY: `value` points into the configuration buffer.
    let ms = unsafe { ngx_parse_time(&mut value, 0) };
    if ms == NGX_ERROR as ngx_int_t || ms <= 0 {
        return Err(emerg(
            cf,
            format_args!(
                "invalid value \"{value}\" in \"{directive}\" directive, \
                 a positive time is expected"
            ),
        ));
    }
    Ok(ms as ngx_msec_t)
}

/// `ntlm_timeout time;`
unsafe extern "C" fn set_ntlm_timeout(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx's directive-handler arguments.
    unsafe {
        ntlm_setting(cf, conf, "ntlm_timeout", |cf, conf| {
            if conf.timeout.is_some() {
                return conf_message(c"is duplicate");
            }
            match positive_time(cf, "ntlm_timeout") {
                Ok(ms) => {
                    conf.timeout = Some(ms);
                    CONF_OK
                }
                Err(rv) => rv,
            }
        })
    }
}

/// `ntlm_max_time time;`
unsafe extern "C" fn set_ntlm_max_time(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx's directive-handler arguments.
    unsafe {
        ntlm_setting(cf, conf, "ntlm_max_time", |cf, conf| {
            if conf.max_time.is_some() {
                return conf_message(c"is duplicate");
            }
            match positive_time(cf, "ntlm_max_time") {
                Ok(ms) => {
                    conf.max_time = Some(ms);
                    CONF_OK
                }
                Err(rv) => rv,
            }
        })
    }
}

/// Parses `ntlm_max_requests`: a decimal integer in 1..=[`MAX_REQUESTS`].
pub fn parse_max_requests(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 10 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = core::str::from_utf8(value).ok()?.parse().ok()?;
    (n > 0 && n <= MAX_REQUESTS).then_some(n)
}

/// `ntlm_max_requests number;`
unsafe extern "C" fn set_ntlm_max_requests(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx's directive-handler arguments.
    unsafe {
        ntlm_setting(cf, conf, "ntlm_max_requests", |cf, conf| {
            if conf.max_requests.is_some() {
                return conf_message(c"is duplicate");
            }
            let value = args(cf)[1];
            match parse_max_requests(value.as_bytes()) {
                Some(n) => {
                    conf.max_requests = Some(n);
                    CONF_OK
                }
                None => emerg(
                    cf,
                    format_args!(
                        "invalid value \"{value}\" in \"ntlm_max_requests\" directive, \
                         an integer from 1 to {MAX_REQUESTS} is expected"
                    ),
                ),
            }
        })
    }
}

/// Wraps the peer initialiser of every upstream block with `ntlm`.
///
/// This runs after every module's `init_main_conf`, so each block's chain is
/// complete: its balancer (`hash`, `least_conn`, … whatever their order
/// relative to `ntlm`), nginx's `keepalive` (which in nginx 1.29.7 and later
/// wraps every upstream in its `init_main_conf`). `ntlm` is therefore always
/// the outermost layer: its `free` sees a connection first and a bound one
/// never reaches `keepalive`.
///
/// # Safety
/// Called by nginx with the http block's configuration.
pub unsafe extern "C" fn postconfiguration(cf: *mut ngx_conf_t) -> ngx_int_t {
    // SAFETY: nginx passes the configuration being finalised.
    let cf = unsafe { &mut *cf };
    guard_status(cf.log, || {
        // SAFETY: cf->pool is the cycle's configuration pool.
        let pool = unsafe { Pool::from_ngx_pool(cf.pool) };
        // Copied: registering counters needs `cf` while going through them.
        let blocks = upstream_blocks(cf).to_vec();
        for uscf in blocks {
            // SAFETY: the upstream module's array holds live block configs.
            let uscf = unsafe { &mut *uscf };
            let Some(conf) = NtlmModule::server_conf_mut(uscf) else {
                continue; // implicit upstream (proxy_pass host:port)
            };
            let Some(connections) = conf.connections else {
                if let Some((name, file, line)) = conf.setting_at {
                    ngx::ngx_conf_log_error!(
                        NGX_LOG_EMERG,
                        cf,
                        "\"{name}\" in {file}:{line} has no effect: upstream \"{}\" \
                         has no \"ntlm\" directive",
                        uscf.host
                    );
                    return NGX_ERROR as ngx_int_t;
                }
                continue;
            };
            if uscf.peer.init.is_none() {
                ngx::ngx_conf_log_error!(
                    NGX_LOG_EMERG,
                    cf,
                    "\"ntlm\" in upstream \"{}\": the upstream has no balancer",
                    uscf.host
                );
                return NGX_ERROR as ngx_int_t;
            }
            let Ok(idle) = IdleLru::with_capacity_in(connections, pool.clone()) else {
                return NGX_ERROR as ngx_int_t;
            };
            // A bound connection never reaches nginx's keepalive, which
            // would apply these to a pooled one: apply them here, unless
            // ntlm_max_* say otherwise.
            let (ka_requests, ka_time) = keepalive_settings(cf, uscf);
            let defaults = SessionLimits::NGINX_KEEPALIVE_DEFAULTS;
            let limits = SessionLimits {
                max_requests: conf
                    .max_requests
                    .or(ka_requests.map(|n| n as u64))
                    .unwrap_or(defaults.max_requests),
                max_time_ms: conf
                    .max_time
                    .or(ka_time)
                    .map_or(defaults.max_time_ms, |t| t as u64),
            };
            let counter =
                crate::counters::register(cf, crate::counters::Kind::Ntlm, uscf.host.as_bytes());
            let state = pool.allocate(UpstreamState {
                original_init_peer: uscf.peer.init,
                timeout: conf.timeout.unwrap_or(DEFAULT_TIMEOUT_MS),
                limits,
                chain_tries: 1,
                idle,
                counter,
            });
            if state.is_null() {
                return NGX_ERROR as ngx_int_t;
            }
            conf.upstream = state;
            uscf.peer.init = Some(handler::init_peer);
        }
        NGX_OK as ngx_int_t
    })
}

#[cfg(test)]
mod tests {
    use super::{parse_connections, parse_max_requests};

    #[test]
    fn max_requests_is_a_positive_integer() {
        assert_eq!(parse_max_requests(b"1"), Some(1));
        assert_eq!(parse_max_requests(b"4294967295"), Some(4_294_967_295));
        for bad in [
            &b""[..],
            b"0",
            b"-1",
            b"4294967296",
            b"99999999999",
            b"1k",
            b"+1",
        ] {
            assert_eq!(parse_max_requests(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn connections_must_be_a_positive_integer() {
        assert_eq!(parse_connections(b"1"), Some(1));
        assert_eq!(parse_connections(b"100"), Some(100));
        assert_eq!(parse_connections(b"000250"), Some(250));
        assert_eq!(parse_connections(b"1000000"), Some(1_000_000));
        assert_eq!(parse_connections(b"1000001"), None);
        for bad in [
            &b""[..],
            b"0",
            b"-1",
            b"+5",
            b"abc",
            b"10k",
            b"1.5",
            b"9999999999",
            b" 5",
        ] {
            assert_eq!(
                parse_connections(bad),
                None,
                "{:?}",
                core::str::from_utf8(bad)
            );
        }
    }
}
