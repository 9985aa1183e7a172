//! `ntlm` / `ntlm_timeout`: directives, and wrapping each upstream block
//! that uses them.

use core::ffi::{c_char, c_void};

use nginx_sys::{
    ngx_command_t, ngx_conf_t, ngx_http_upstream_init_peer_pt, ngx_int_t, ngx_msec_t,
    ngx_parse_time, ngx_str_t, ngx_uint_t, NGX_ERROR, NGX_LOG_EMERG, NGX_OK,
};
use ngx::core::Pool;
use ngx::http::HttpModuleServerConf;

use super::handler::{self, IdleEntry};
use super::lru::IdleLru;
use super::NtlmModule;
use crate::nginx::conf::{args, conf_message, emerg, CONF_OK};
use crate::nginx::ffi::{guard_conf, guard_status};
use crate::nginx::upstream::upstream_blocks;

/// Default `ntlm` connections: idle bound connections kept per worker.
pub const DEFAULT_CONNECTIONS: usize = 100;
/// The largest `ntlm` connections value (its LRU slots are allocated at
/// configuration time).
pub const MAX_CONNECTIONS: usize = 1_000_000;
/// Default `ntlm_timeout`: 60 s.
pub const DEFAULT_TIMEOUT_MS: ngx_msec_t = 60_000;

/// Per `upstream {}` block configuration.
pub struct NtlmSrvConf {
    /// `Some` when `ntlm` is in the block.
    connections: Option<usize>,
    timeout: Option<ngx_msec_t>,
    /// Where `ntlm_timeout` was set, for the error when `ntlm` is missing.
    timeout_at: Option<(ngx_str_t, ngx_uint_t)>,
    /// Built at the end of configuration for blocks with `ntlm`; each worker
    /// has its own copy after fork.
    pub upstream: *mut UpstreamState,
}

impl Default for NtlmSrvConf {
    fn default() -> Self {
        Self {
            connections: None,
            timeout: None,
            timeout_at: None,
            upstream: core::ptr::null_mut(),
        }
    }
}

/// One upstream block's bindings in one worker.
pub struct UpstreamState {
    /// The peer initialiser of the chain `ntlm` wraps (balancer, keepalive).
    pub original_init_peer: ngx_http_upstream_init_peer_pt,
    pub timeout: ngx_msec_t,
    /// Idle bound connections, least recently used last.
    pub idle: IdleLru<IdleEntry, Pool>,
    /// The status zone's series for this upstream block.
    pub counter: crate::counters::Counter,
}

/// The directive table.
pub static mut COMMANDS: [ngx_command_t; 3] = [
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
    let (cf, conf) = unsafe { (&mut *cf, &mut *conf.cast::<NtlmSrvConf>()) };
    guard_conf(cf.log, || {
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

/// `ntlm_timeout time;`
unsafe extern "C" fn set_ntlm_timeout(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: as in set_ntlm().
    let (cf, conf) = unsafe { (&mut *cf, &mut *conf.cast::<NtlmSrvConf>()) };
    guard_conf(cf.log, || {
        if conf.timeout.is_some() {
            return conf_message(c"is duplicate");
        }
        let mut value = args(cf)[1];
        // SAFETY: `value` points into the configuration buffer.
        let ms = unsafe { ngx_parse_time(&mut value, 0) };
        if ms == NGX_ERROR as ngx_int_t || ms <= 0 {
            return emerg(
                cf,
                format_args!(
                    "invalid value \"{value}\" in \"ntlm_timeout\" directive, \
                     a positive time is expected"
                ),
            );
        }
        conf.timeout = Some(ms as ngx_msec_t);
        // SAFETY: while parsing, cf->conf_file is the file being read.
        conf.timeout_at = unsafe { cf.conf_file.as_ref() }.map(|f| (f.file.name, f.line));
        CONF_OK
    })
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
                if let Some((file, line)) = conf.timeout_at {
                    ngx::ngx_conf_log_error!(
                        NGX_LOG_EMERG,
                        cf,
                        "\"ntlm_timeout\" in {file}:{line} has no effect: upstream \"{}\" \
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
            let counter =
                crate::counters::register(cf, crate::counters::Kind::Ntlm, uscf.host.as_bytes());
            let state = pool.allocate(UpstreamState {
                original_init_peer: uscf.peer.init,
                timeout: conf.timeout.unwrap_or(DEFAULT_TIMEOUT_MS),
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
    use super::parse_connections;

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
