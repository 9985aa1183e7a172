//! The opt-in `auth_request_*` directives that go beyond nginx's C module:
//! their configuration, parsing and merging. Without any of them a
//! location behaves exactly as with the C module.
//!
//! * `auth_request_pass_status code ...;` — statuses of the auth response
//!   the client gets as they are (with `Location`, `Retry-After`,
//!   `WWW-Authenticate`), instead of 500;
//! * `auth_request_allow_status code ...;` — only these 2xx allow;
//! * `auth_request_client_header name;` — auth response headers to the
//!   client, on allow and on deny;
//! * `auth_request_upstream_header name;` — auth response headers set on the
//!   upstream request, the client's copies removed first;
//! * `auth_request_body on [max=size] | off;` — the client's body is read
//!   and sent to the auth service too.
//!
//! Request-time work lives in [`super::respond`], [`super::upstream_headers`]
//! and [`super::body`].

use core::ffi::{c_char, c_void};
use core::ptr::NonNull;

use nginx_sys::{ngx_command_t, ngx_conf_t, ngx_str_t};
use ngx::collections::Vec;
use ngx::core::Pool;
use ngx::http::HttpModuleMainConf;

use super::conf::AuthRequestConf;
use super::statuses::{self, Purpose, StatusSet};
use super::AuthRequestModule;
use crate::nginx::conf::{
    args, conf_message, directive, emerg, refuse_duplicate_options, size_option, CONF_ERROR,
    CONF_OK,
};
use crate::nginx::headers_in::same_name;

type NameList = Vec<ngx_str_t, Pool>;

/// `auth_request_body` at one level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodySetting {
    Off,
    /// Read the client's body (at most `max` bytes, else 413) and send it to
    /// the auth service.
    On {
        max: usize,
    },
}

/// The default `max=` of `auth_request_body on`.
pub const DEFAULT_BODY_MAX: usize = 16 * 1024;

/// The opt-in settings of one configuration level; `None`: not set here
/// (inherit).
#[derive(Default)]
pub struct Extensions {
    pub pass_status: Option<StatusSet>,
    pub allow_status: Option<StatusSet>,
    /// A level with its own `auth_request_client_header` lines replaces the
    /// inherited list (as `auth_request_set` does). Lists live in the
    /// configuration pool, shared with the levels that inherit them.
    client_headers: Option<NonNull<NameList>>,
    upstream_headers: Option<NonNull<NameList>>,
    pub body: Option<BodySetting>,
}

impl Extensions {
    pub fn merge_from(&mut self, parent: &Extensions) {
        self.pass_status = self.pass_status.or(parent.pass_status);
        self.allow_status = self.allow_status.or(parent.allow_status);
        self.client_headers = self.client_headers.or(parent.client_headers);
        self.upstream_headers = self.upstream_headers.or(parent.upstream_headers);
        self.body = self.body.or(parent.body);
    }

    /// The name of one opt-in directive in effect here, if any.
    pub fn any_directive(&self) -> Option<&'static str> {
        [
            (self.pass_status.is_some(), "auth_request_pass_status"),
            (self.allow_status.is_some(), "auth_request_allow_status"),
            (self.client_headers.is_some(), "auth_request_client_header"),
            (
                self.upstream_headers.is_some(),
                "auth_request_upstream_header",
            ),
            (self.body.is_some(), "auth_request_body"),
        ]
        .into_iter()
        .find_map(|(set, name)| set.then_some(name))
    }

    /// The `auth_request_client_header` names in effect here.
    pub fn client_headers(&self) -> &[ngx_str_t] {
        list(self.client_headers)
    }

    /// The `auth_request_upstream_header` names in effect here.
    pub fn upstream_headers(&self) -> &[ngx_str_t] {
        list(self.upstream_headers)
    }

    /// The body limit when `auth_request_body on` is in effect here.
    pub fn body_max(&self) -> Option<usize> {
        match self.body {
            Some(BodySetting::On { max }) => Some(max),
            _ => None,
        }
    }
}

fn list(names: Option<NonNull<NameList>>) -> &'static [ngx_str_t] {
    match names {
        // SAFETY: the list is allocated in the configuration pool by
        // add_name() and lives as long as every configuration pointing at it.
        Some(list) => unsafe { list.as_ref() },
        None => &[],
    }
}

/// `auth_request_pass_status code ...;`
pub(super) unsafe extern "C" fn set_pass_status(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx passes the configuration being parsed and this module's
    // location configuration for the current block.
    unsafe {
        directive(cf, conf, |cf, conf: &mut AuthRequestConf| {
            status_set(cf, &mut conf.ext.pass_status, Purpose::Pass)
        })
    }
}

/// `auth_request_allow_status code ...;`
pub(super) unsafe extern "C" fn set_allow_status(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: as in set_pass_status().
    unsafe {
        directive(cf, conf, |cf, conf: &mut AuthRequestConf| {
            status_set(cf, &mut conf.ext.allow_status, Purpose::Allow)
        })
    }
}

fn status_set(cf: &mut ngx_conf_t, slot: &mut Option<StatusSet>, purpose: Purpose) -> *mut c_char {
    if slot.is_some() {
        return conf_message(c"is duplicate");
    }
    let words = args(cf).to_vec();
    let values: std::vec::Vec<&[u8]> = words[1..].iter().map(|w| w.as_bytes()).collect();
    match statuses::parse(&values, purpose) {
        Ok(set) => {
            *slot = Some(set);
            CONF_OK
        }
        Err(refused) => emerg(cf, format_args!("\"{}\": {refused}", words[0])),
    }
}

/// Headers that describe the message itself, not the client or the user:
/// copying them from the auth response would corrupt the framing or the
/// meaning of the response or request they are added to.
const FRAMING: [&[u8]; 9] = [
    b"Content-Length",
    b"Content-Type",
    b"Content-Encoding",
    b"Content-Range",
    b"Transfer-Encoding",
    b"Connection",
    b"Keep-Alive",
    b"Upgrade",
    b"Host",
];

/// `auth_request_client_header name;`
pub(super) unsafe extern "C" fn set_client_header(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: as in set_pass_status().
    unsafe {
        directive(cf, conf, |cf, conf: &mut AuthRequestConf| {
            add_name(cf, &mut conf.ext.client_headers)
        })
    }
}

/// `auth_request_upstream_header name;`
pub(super) unsafe extern "C" fn set_upstream_header(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: as in set_pass_status().
    unsafe {
        directive(cf, conf, |cf, conf: &mut AuthRequestConf| {
            let rv = add_name(cf, &mut conf.ext.upstream_headers);
            if rv == CONF_OK {
                if let Some(main) = AuthRequestModule::main_conf_mut(cf) {
                    main.upstream_headers_used = true;
                }
            }
            rv
        })
    }
}

fn add_name(cf: &mut ngx_conf_t, slot: &mut Option<NonNull<NameList>>) -> *mut c_char {
    let (directive, name) = (args(cf)[0], args(cf)[1]);
    let token = !name.is_empty()
        && name
            .as_bytes()
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~!#$%&'*+^`|".contains(b));
    if !token {
        return emerg(
            cf,
            format_args!("\"{directive}\": invalid header name \"{name}\""),
        );
    }
    if FRAMING.iter().any(|f| same_name(f, name.as_bytes())) {
        return emerg(
            cf,
            format_args!(
                "\"{directive}\": \"{name}\" describes the message itself and cannot be \
                 taken from the auth response"
            ),
        );
    }

    // SAFETY: cf->pool is the configuration pool, alive for the cycle.
    let pool = unsafe { Pool::from_ngx_pool(cf.pool) };
    let list = match *slot {
        Some(list) => list,
        None => {
            let Some(list) = NonNull::new(pool.allocate(NameList::new_in(pool.clone()))) else {
                return CONF_ERROR;
            };
            *slot = Some(list);
            list
        }
    };
    // SAFETY: the list was allocated above or by an earlier directive of
    // this same block; nothing else references it while parsing.
    let list = unsafe { &mut *list.as_ptr() };
    if list
        .iter()
        .any(|known| same_name(known.as_bytes(), name.as_bytes()))
    {
        return emerg(
            cf,
            format_args!("\"{directive}\": \"{name}\" is given twice in this block"),
        );
    }
    if list.try_reserve(1).is_err() {
        return CONF_ERROR;
    }
    list.push(name);
    CONF_OK
}

/// `auth_request_body on [max=size] | off;`
pub(super) unsafe extern "C" fn set_body(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: as in set_pass_status().
    unsafe { directive(cf, conf, body) }
}

fn body(cf: &mut ngx_conf_t, conf: &mut AuthRequestConf) -> *mut c_char {
    if conf.ext.body.is_some() {
        return conf_message(c"is duplicate");
    }
    let words = args(cf).to_vec();
    let (directive, value, options) = (words[0], words[1], &words[2..]);
    if let Err(rv) = refuse_duplicate_options(cf, directive, options) {
        return rv;
    }
    let setting = match value.as_bytes() {
        b"off" if options.is_empty() => BodySetting::Off,
        b"off" => {
            return emerg(
                cf,
                format_args!(
                    "\"{directive} off\" takes no options, \"{}\" given",
                    options[0]
                ),
            )
        }
        b"on" => {
            let mut max = DEFAULT_BODY_MAX;
            for option in options {
                match size_option(cf, directive, *option, b"max=") {
                    Some(Ok(n)) => max = n,
                    Some(Err(rv)) => return rv,
                    None => {
                        return emerg(
                            cf,
                            format_args!("\"{directive}\": invalid option \"{option}\""),
                        )
                    }
                }
            }
            BodySetting::On { max }
        }
        _ => {
            return emerg(
                cf,
                format_args!(
                    "\"{directive}\": invalid value \"{value}\", it must be \"on\" or \"off\""
                ),
            )
        }
    };
    conf.ext.body = Some(setting);
    CONF_OK
}
