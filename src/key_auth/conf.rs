//! `key_auth*` directives: the consumer block, the quota zone, and the
//! per-location settings.

use core::ffi::{c_char, c_void};
use core::ptr;

use nginx_sys::{
    ngx_command_t, ngx_conf_include, ngx_conf_parse, ngx_conf_t, ngx_create_pool, ngx_destroy_pool,
    ngx_int_t, ngx_shm_zone_t, ngx_str_t, NGX_DEFAULT_POOL_SIZE, NGX_LOG_EMERG, NGX_LOG_NOTICE,
    NGX_LOG_WARN,
};
use ngx::http::{HttpModule, HttpModuleMainConf, HttpModuleServerConf, NgxHttpCoreModule};

use super::consumers::{parse_line, Consumer, Registry};
use super::expiry;
use super::quota::{Slot, Table};
use super::KeyAuthModule;
use crate::counters::{self, Counter};
use crate::nginx::bitfield;
use crate::nginx::conf::{
    args, conf_message, directive, emerg, merge, refuse_duplicate_options, set_once, size_option,
    CONF_ERROR, CONF_OK,
};
use crate::nginx::ffi::guard_status;
use crate::nginx::shm;
use crate::nginx::variables::{self, AssignableVariable};

/// `http`-level state: the consumers, the quota zone, the variables.
pub struct KeyAuthMainConf {
    /// Every consumer of the `http` block. Owned by this configuration
    /// (which lives in the cycle's pool and is dropped with it).
    pub registry: Registry,
    /// The quota zone (`key_auth_zone`), or null.
    pub zone: *mut ngx_shm_zone_t,
    pub var_consumer: Option<AssignableVariable>,
    pub var_credential: Option<AssignableVariable>,
    pub var_custom_id: Option<AssignableVariable>,
    /// Some block has `key_auth on`: the handlers and filters are needed.
    pub used: bool,
    /// `$request_uri` and `$request`, which nginx caches once read: hiding a
    /// key from the request target must forget what they said before.
    /// Indexed only when some block has `key_auth_hide_credentials on`.
    pub target_variables: Vec<ngx_int_t>,
    /// `key_auth_header` names with `_` already warned about (file, line).
    pub underscore_warned: Vec<(usize, usize)>,
    /// `key_auth_quota_store`: quotas counted in Redis instead of the zone.
    pub store: Option<Box<crate::redis::client::Store>>,
    /// Where `key_auth_quota_store` was (file, line), for errors found once
    /// the whole `http` block is read.
    pub store_at: Option<(ngx_str_t, usize)>,
    /// The status zone's key_auth series, and one per consumer (indexed
    /// like the registry) with `authgate_status_zone … consumers=on`.
    pub counter: Counter,
    pub consumer_counters: Vec<Counter>,
    /// `X-RateLimit-Limit` of the common `limit=` counts, made by check_main.
    pub limit_texts: super::quota::LimitTexts,
}

impl Default for KeyAuthMainConf {
    fn default() -> Self {
        Self {
            registry: Registry::new(),
            zone: ptr::null_mut(),
            var_consumer: None,
            var_credential: None,
            var_custom_id: None,
            used: false,
            target_variables: Vec::new(),
            underscore_warned: Vec::new(),
            store: None,
            store_at: None,
            counter: Counter::default(),
            consumer_counters: Vec::new(),
            limit_texts: Default::default(),
        }
    }
}

/// `key_auth_anonymous_consumer`.
#[derive(Clone, Copy)]
pub enum Anonymous {
    Off,
    Named {
        name: ngx_str_t,
        /// Where the directive was, for the error when the name is unknown
        /// (checked once all consumers are known).
        file: ngx_str_t,
        line: usize,
        /// Index of the consumer, resolved when merging.
        index: Option<usize>,
    },
}

/// Location configuration (also `http` and `server` level).
#[derive(Default)]
pub struct KeyAuthConf {
    pub enabled: Option<bool>,
    pub header: Option<ngx_str_t>,
    /// Where a `key_auth_header` whose name holds `_` was given (see
    /// [`warn_underscore`]).
    pub header_underscore_at: Option<(ngx_str_t, usize)>,
    pub query: Option<ngx_str_t>,
    pub hide_credentials: Option<bool>,
    pub anonymous: Option<Anonymous>,
    /// `key_auth_allow` (`Some(None)`: `off`).
    pub allow: Option<Option<&'static Restriction>>,
    /// `key_auth_deny` (`Some(None)`: `off`).
    pub deny: Option<Option<&'static Restriction>>,
    /// The whole `WWW-Authenticate` value of `key_auth_realm`, in the
    /// configuration pool (which outlives every request).
    pub challenge: Option<&'static [u8]>,
    /// `key_auth_preflight pass` (true) or `check`.
    pub preflight_pass: Option<bool>,
    /// `key_auth_body_field` (`Some(None)`: `off`).
    pub body_field: Option<Option<BodyField>>,
}

/// `key_auth_body_field name [max=size]`: the form field that may carry the
/// key, and how much of a form body is searched.
#[derive(Clone, Copy)]
pub struct BodyField {
    pub name: ngx_str_t,
    pub max: usize,
}

/// The default `max=` of `key_auth_body_field`: a login or token form, not
/// an upload.
pub const DEFAULT_BODY_MAX: usize = 64 * 1024;

/// The challenge sent with a 401 when `key_auth_realm` is not set (APISIX's).
pub const DEFAULT_CHALLENGE: &[u8] = br#"apikey realm="key""#;

/// One entry of `key_auth_allow` / `key_auth_deny`.
#[derive(Debug, PartialEq, Eq)]
pub enum Member {
    Consumer(String),
    Group(String),
}

/// A `key_auth_allow` or `key_auth_deny` list, in the configuration pool
/// (which outlives every request and every level that points at it).
pub struct Restriction {
    pub members: Vec<Member>,
    /// Where the directive was, for errors found when merging.
    file: ngx_str_t,
    line: usize,
}

impl Restriction {
    /// Whether `consumer` is named in the list, by name or by a group.
    pub fn names(&self, consumer: &Consumer) -> bool {
        self.members.iter().any(|m| match m {
            Member::Consumer(name) => *name == consumer.name,
            Member::Group(group) => consumer.groups().any(|g| g == group),
        })
    }
}

/// Why a location's `key_auth_allow` / `key_auth_deny` refuses a consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forbidden {
    Denied,
    NotAllowed,
}

pub const DEFAULT_NAME: &[u8] = b"apikey";

impl KeyAuthConf {
    pub fn enabled(&self) -> bool {
        self.enabled.unwrap_or(false)
    }
    pub fn header(&self) -> &[u8] {
        self.header.as_ref().map_or(DEFAULT_NAME, |s| s.as_bytes())
    }
    pub fn query(&self) -> &[u8] {
        self.query.as_ref().map_or(DEFAULT_NAME, |s| s.as_bytes())
    }
    pub fn hide_credentials(&self) -> bool {
        self.hide_credentials.unwrap_or(false)
    }
    /// Whether `key_auth_deny` / `key_auth_allow` refuse `consumer` here:
    /// a consumer the deny list names is refused; with an allow list, so
    /// is every consumer it does not name.
    pub fn forbids(&self, consumer: &Consumer) -> Option<Forbidden> {
        if let Some(Some(deny)) = self.deny {
            if deny.names(consumer) {
                return Some(Forbidden::Denied);
            }
        }
        match self.allow {
            Some(Some(allow)) if !allow.names(consumer) => Some(Forbidden::NotAllowed),
            _ => None,
        }
    }

    pub fn challenge(&self) -> &'static [u8] {
        self.challenge.unwrap_or(DEFAULT_CHALLENGE)
    }
    pub fn body_field(&self) -> Option<&BodyField> {
        self.body_field.as_ref().and_then(Option::as_ref)
    }
    pub fn preflight_pass(&self) -> bool {
        self.preflight_pass.unwrap_or(false)
    }

    /// The anonymous consumer's index, when one is configured.
    pub fn anonymous(&self) -> Option<usize> {
        match self.anonymous {
            Some(Anonymous::Named { index, .. }) => index,
            _ => None,
        }
    }
}

const LOC: u32 =
    nginx_sys::NGX_HTTP_MAIN_CONF | nginx_sys::NGX_HTTP_SRV_CONF | nginx_sys::NGX_HTTP_LOC_CONF;

const fn command(
    name: ngx_str_t,
    type_: u32,
    set: unsafe extern "C" fn(*mut ngx_conf_t, *mut ngx_command_t, *mut c_void) -> *mut c_char,
    conf: usize,
) -> ngx_command_t {
    ngx_command_t {
        name,
        type_: type_ as _,
        set: Some(set),
        conf,
        offset: 0,
        post: ptr::null_mut(),
    }
}

/// The directive table.
pub static mut COMMANDS: [ngx_command_t; 14] = [
    command(
        ngx::ngx_string!("key_auth_consumers"),
        nginx_sys::NGX_HTTP_MAIN_CONF | nginx_sys::NGX_CONF_BLOCK | nginx_sys::NGX_CONF_NOARGS,
        set_consumers,
        nginx_sys::NGX_HTTP_MAIN_CONF_OFFSET,
    ),
    command(
        ngx::ngx_string!("key_auth_zone"),
        nginx_sys::NGX_HTTP_MAIN_CONF | nginx_sys::NGX_CONF_TAKE2,
        set_zone,
        nginx_sys::NGX_HTTP_MAIN_CONF_OFFSET,
    ),
    command(
        ngx::ngx_string!("key_auth_quota_store"),
        nginx_sys::NGX_HTTP_MAIN_CONF | nginx_sys::NGX_CONF_1MORE,
        set_quota_store,
        nginx_sys::NGX_HTTP_MAIN_CONF_OFFSET,
    ),
    command(
        ngx::ngx_string!("key_auth"),
        LOC | nginx_sys::NGX_CONF_TAKE1,
        set_enabled,
        nginx_sys::NGX_HTTP_LOC_CONF_OFFSET,
    ),
    command(
        ngx::ngx_string!("key_auth_header"),
        LOC | nginx_sys::NGX_CONF_TAKE1,
        set_header,
        nginx_sys::NGX_HTTP_LOC_CONF_OFFSET,
    ),
    command(
        ngx::ngx_string!("key_auth_query"),
        LOC | nginx_sys::NGX_CONF_TAKE1,
        set_query,
        nginx_sys::NGX_HTTP_LOC_CONF_OFFSET,
    ),
    command(
        ngx::ngx_string!("key_auth_body_field"),
        LOC | nginx_sys::NGX_CONF_TAKE12,
        set_body_field,
        nginx_sys::NGX_HTTP_LOC_CONF_OFFSET,
    ),
    command(
        ngx::ngx_string!("key_auth_hide_credentials"),
        LOC | nginx_sys::NGX_CONF_TAKE1,
        set_hide,
        nginx_sys::NGX_HTTP_LOC_CONF_OFFSET,
    ),
    command(
        ngx::ngx_string!("key_auth_anonymous_consumer"),
        LOC | nginx_sys::NGX_CONF_TAKE1,
        set_anonymous,
        nginx_sys::NGX_HTTP_LOC_CONF_OFFSET,
    ),
    command(
        ngx::ngx_string!("key_auth_realm"),
        LOC | nginx_sys::NGX_CONF_TAKE1,
        set_realm,
        nginx_sys::NGX_HTTP_LOC_CONF_OFFSET,
    ),
    command(
        ngx::ngx_string!("key_auth_preflight"),
        LOC | nginx_sys::NGX_CONF_TAKE1,
        set_preflight,
        nginx_sys::NGX_HTTP_LOC_CONF_OFFSET,
    ),
    command(
        ngx::ngx_string!("key_auth_allow"),
        LOC | nginx_sys::NGX_CONF_1MORE,
        set_allow,
        nginx_sys::NGX_HTTP_LOC_CONF_OFFSET,
    ),
    command(
        ngx::ngx_string!("key_auth_deny"),
        LOC | nginx_sys::NGX_CONF_1MORE,
        set_deny,
        nginx_sys::NGX_HTTP_LOC_CONF_OFFSET,
    ),
    ngx_command_t::empty(),
];

/// Runs a one-argument location-level directive: duplicate check, parse,
/// store into the field `field` picks.
///
/// # Safety
/// `cf` and `conf` must be what nginx passes to a directive handler of this
/// module's location configuration.
unsafe fn set_loc<T>(
    cf: *mut ngx_conf_t,
    conf: *mut c_void,
    field: impl FnOnce(&mut KeyAuthConf) -> &mut Option<T>,
    parse: impl FnOnce(&mut ngx_conf_t, ngx_str_t) -> Result<T, *mut c_char>,
) -> *mut c_char {
    // SAFETY: forwarded contract.
    unsafe {
        directive(cf, conf, |cf, conf: &mut KeyAuthConf| {
            set_once(cf, field(conf), parse)
        })
    }
}

fn flag(cf: &mut ngx_conf_t, value: ngx_str_t) -> Result<bool, *mut c_char> {
    match value.as_bytes() {
        b"on" => Ok(true),
        b"off" => Ok(false),
        _ => Err(emerg(
            cf,
            format_args!("invalid value \"{value}\", it must be \"on\" or \"off\""),
        )),
    }
}

/// A header or argument name: non-empty token characters only.
fn name(cf: &mut ngx_conf_t, value: ngx_str_t) -> Result<ngx_str_t, *mut c_char> {
    let ok = !value.is_empty()
        && value
            .as_bytes()
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~!$'*+^`|".contains(b));
    if ok {
        Ok(value)
    } else {
        let directive = args(cf)[0];
        Err(emerg(
            cf,
            format_args!("\"{directive}\": invalid name \"{value}\""),
        ))
    }
}

/// `key_auth on | off;`
unsafe extern "C" fn set_enabled(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx passes the configuration and this module's location
    // configuration.
    unsafe {
        set_loc(
            cf,
            conf,
            |c| &mut c.enabled,
            |cf, value| {
                let on = flag(cf, value)?;
                if let (true, Some(main)) = (on, KeyAuthModule::main_conf_mut(cf)) {
                    main.used = true;
                }
                Ok(on)
            },
        )
    }
}

/// `key_auth_hide_credentials on | off;`
unsafe extern "C" fn set_hide(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: as in set_enabled().
    unsafe {
        set_loc(
            cf,
            conf,
            |c| &mut c.hide_credentials,
            |cf, value| {
                let on = flag(cf, value)?;
                if on && !index_target_variables(cf) {
                    return Err(CONF_ERROR);
                }
                Ok(on)
            },
        )
    }
}

/// Indexes `$request_uri` and `$request` once, so that the handler can
/// flush their cached values after hiding a key (see
/// [`KeyAuthMainConf::target_variables`]).
fn index_target_variables(cf: &mut ngx_conf_t) -> bool {
    if KeyAuthModule::main_conf(cf).is_some_and(|m| !m.target_variables.is_empty()) {
        return true;
    }
    let (Some(uri), Some(line)) = (
        variables::index_of(cf, "request_uri"),
        variables::index_of(cf, "request"),
    ) else {
        return false;
    };
    match KeyAuthModule::main_conf_mut(cf) {
        Some(main) => {
            main.target_variables = vec![uri, line];
            true
        }
        None => false,
    }
}

/// `key_auth_header name;`
unsafe extern "C" fn set_header(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: as in set_enabled().
    unsafe {
        directive(cf, conf, |cf, conf: &mut KeyAuthConf| {
            let rv = set_once(cf, &mut conf.header, name);
            if rv == CONF_OK && conf.header.is_some_and(|h| h.as_bytes().contains(&b'_')) {
                conf.header_underscore_at = Some(conf_position(cf));
            }
            rv
        })
    }
}

/// nginx drops request headers whose names contain `_` unless the server
/// has `underscores_in_headers on`, so such a `key_auth_header` would never
/// find a key: warn (once per directive) in the servers where that is so.
/// Not an error: the query argument still works, and the operator may mean
/// to turn `underscores_in_headers` on.
fn warn_underscore(cf: &mut ngx_conf_t, conf: &KeyAuthConf) {
    let (Some(header), Some((file, line))) = (conf.header, conf.header_underscore_at) else {
        return;
    };
    let underscores = NgxHttpCoreModule::server_conf(&*cf).map(|s| s.underscores_in_headers);
    if underscores.is_some_and(|on| on != 0) {
        return;
    }
    let Some(main) = KeyAuthModule::main_conf_mut(cf) else {
        return;
    };
    let at = (file.data as usize, line);
    if main.underscore_warned.contains(&at) {
        return;
    }
    main.underscore_warned.push(at);
    ngx::ngx_log_error!(
        NGX_LOG_WARN,
        cf.log,
        "\"key_auth_header {}\": nginx ignores request headers whose names contain \"_\" \
         unless \"underscores_in_headers on\" is set in the server, so this header would never \
         carry a key, in {}:{}",
        header,
        file,
        line
    );
}

/// `key_auth_query name;`
unsafe extern "C" fn set_query(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: as in set_enabled().
    unsafe { set_loc(cf, conf, |c| &mut c.query, name) }
}

/// `key_auth_body_field name [max=size] | off;`
unsafe extern "C" fn set_body_field(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: as in set_enabled().
    unsafe { set_loc(cf, conf, |c| &mut c.body_field, body_field) }
}

fn body_field(cf: &mut ngx_conf_t, value: ngx_str_t) -> Result<Option<BodyField>, *mut c_char> {
    let words = args(cf).to_vec();
    let (directive, options) = (words[0], &words[2..]);
    if value.as_bytes() == b"off" {
        return match options.first() {
            None => Ok(None),
            Some(option) => Err(emerg(
                cf,
                format_args!("\"{directive} off\" takes no options, \"{option}\" given"),
            )),
        };
    }
    let name = name(cf, value)?;
    let mut max = DEFAULT_BODY_MAX;
    for &option in options {
        match size_option(cf, directive, option, b"max=") {
            Some(Ok(n)) => max = n,
            Some(Err(rv)) => return Err(rv),
            None => {
                return Err(emerg(
                    cf,
                    format_args!("\"{directive}\": invalid option \"{option}\""),
                ))
            }
        }
    }
    Ok(Some(BodyField { name, max }))
}

/// `key_auth_anonymous_consumer name | off;`
unsafe extern "C" fn set_anonymous(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: as in set_enabled().
    unsafe { set_loc(cf, conf, |c| &mut c.anonymous, anonymous) }
}

fn anonymous(cf: &mut ngx_conf_t, value: ngx_str_t) -> Result<Anonymous, *mut c_char> {
    if value.as_bytes() == b"off" {
        return Ok(Anonymous::Off);
    }
    let (file, line) = conf_position(cf);
    Ok(Anonymous::Named {
        name: value,
        file,
        line,
        index: None,
    })
}

/// `key_auth_realm text;`
unsafe extern "C" fn set_realm(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: as in set_enabled().
    unsafe { set_loc(cf, conf, |c| &mut c.challenge, realm) }
}

/// `apikey realm="VALUE"`, in the configuration pool.
fn realm(cf: &mut ngx_conf_t, value: ngx_str_t) -> Result<&'static [u8], *mut c_char> {
    let Some(challenge) = crate::nginx::headers::challenge("apikey", value.as_bytes()) else {
        return Err(emerg(
            cf,
            format_args!(
                "\"key_auth_realm\": invalid realm \"{value}\" (not empty; printable ASCII \
                 without '\"' or '\\')"
            ),
        ));
    };
    // SAFETY: allocation in the configuration pool.
    let copy = unsafe { ngx_str_t::from_bytes(cf.pool, &challenge) }.ok_or(CONF_ERROR)?;
    // SAFETY: `copy` holds `challenge.len()` bytes in the configuration
    // pool, which outlives every request using them.
    Ok(unsafe { core::slice::from_raw_parts(copy.data, copy.len) })
}

/// `key_auth_preflight pass | check;`
unsafe extern "C" fn set_preflight(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: as in set_enabled().
    unsafe {
        set_loc(
            cf,
            conf,
            |c| &mut c.preflight_pass,
            |cf, value| match value.as_bytes() {
                b"pass" => Ok(true),
                b"check" => Ok(false),
                _ => Err(emerg(
                    cf,
                    format_args!(
                        "\"key_auth_preflight\": invalid value \"{value}\" (pass or check)"
                    ),
                )),
            },
        )
    }
}

/// `key_auth_allow NAME | group:NAME … | off;`
unsafe extern "C" fn set_allow(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: as in set_enabled().
    unsafe {
        directive(cf, conf, |cf, conf: &mut KeyAuthConf| {
            set_restriction(cf, &mut conf.allow)
        })
    }
}

/// `key_auth_deny NAME | group:NAME … | off;`
unsafe extern "C" fn set_deny(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: as in set_enabled().
    unsafe {
        directive(cf, conf, |cf, conf: &mut KeyAuthConf| {
            set_restriction(cf, &mut conf.deny)
        })
    }
}

fn set_restriction(
    cf: &mut ngx_conf_t,
    slot: &mut Option<Option<&'static Restriction>>,
) -> *mut c_char {
    if slot.is_some() {
        return conf_message(c"is duplicate");
    }
    let words = args(cf).to_vec();
    let directive = words[0];
    if words[1].as_bytes() == b"off" {
        if words.len() > 2 {
            return emerg(cf, format_args!("\"{directive} off\" takes nothing else"));
        }
        *slot = Some(None);
        return CONF_OK;
    }
    let members: Result<Vec<Member>, &str> = words[1..]
        .iter()
        .map(|w| parse_member(w.as_bytes()))
        .collect();
    let members = match members {
        Ok(members) => members,
        Err(why) => return emerg(cf, format_args!("\"{directive}\": {why}")),
    };
    let (file, line) = conf_position(cf);
    // SAFETY: cf->pool is the configuration pool; Pool::allocate registers
    // a cleanup that drops the list when the pool goes.
    let pool = unsafe { ngx::core::Pool::from_ngx_pool(cf.pool) };
    let restriction = pool.allocate(Restriction {
        members,
        file,
        line,
    });
    // SAFETY: a non-null result is an initialised Restriction in that pool.
    match unsafe { restriction.as_ref() } {
        Some(r) => {
            *slot = Some(Some(r));
            CONF_OK
        }
        None => CONF_ERROR,
    }
}

/// `NAME` or `group:NAME`.
fn parse_member(word: &[u8]) -> Result<Member, &'static str> {
    let (group, name) = match word.strip_prefix(b"group:") {
        Some(name) => (true, name),
        None => (false, word),
    };
    if name.is_empty() {
        return Err("empty name (NAME or group:NAME)");
    }
    let name = core::str::from_utf8(name)
        .map_err(|_| "not UTF-8")?
        .to_owned();
    Ok(if group {
        Member::Group(name)
    } else {
        Member::Consumer(name)
    })
}

/// Checks that every member of `list` is a known consumer or group.
fn check_members(cf: &mut ngx_conf_t, directive: &str, list: &Restriction) -> Result<(), ()> {
    let Some(main) = KeyAuthModule::main_conf(cf) else {
        return Err(());
    };
    for member in &list.members {
        let (known, what, name) = match member {
            Member::Consumer(n) => (main.registry.find(n.as_bytes()).is_some(), "consumer", n),
            Member::Group(g) => (main.registry.has_group(g), "group", g),
        };
        if !known {
            ngx::ngx_log_error!(
                NGX_LOG_EMERG,
                cf.log,
                "\"{directive}\" names the {what} \"{name}\", which no line of \
                 \"key_auth_consumers\" defines, in {}:{}",
                list.file,
                list.line
            );
            return Err(());
        }
    }
    Ok(())
}

/// The file and line being parsed.
fn conf_position(cf: &ngx_conf_t) -> (ngx_str_t, usize) {
    // SAFETY: while a directive is parsed, cf->conf_file is the file being
    // read (nginx sets it before parsing any file).
    let f = unsafe { &*cf.conf_file };
    (f.file.name, f.line)
}

/// `key_auth_zone name size;`
unsafe extern "C" fn set_zone(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx passes this module's main configuration.
    unsafe {
        directive(cf, conf, |cf, main: &mut KeyAuthMainConf| {
            if !main.zone.is_null() {
                return conf_message(c"is duplicate");
            }
            let (zone_name, size) = (args(cf)[1], args(cf)[2]);
            match shm::declare(
                cf,
                &zone_name,
                &size,
                KeyAuthModule::module(),
                Some(init_zone),
                ptr::from_mut(main).cast(),
            ) {
                Ok(zone) => {
                    main.zone = zone;
                    CONF_OK
                }
                Err(rv) => rv,
            }
        })
    }
}

/// `key_auth_quota_store redis://[user[:password]@]host[:port][/db]
/// [timeout=50ms] [prefix=authgate:] [on_error=deny|local|allow]
/// [password_file=FILE];`
///
/// The password file is read here, by the master as it reads the
/// configuration (so it may be readable by root only); `nginx -s reload`
/// reads it again. The host is resolved here too, as for `upstream`
/// servers. No message shows the password.
unsafe extern "C" fn set_quota_store(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx passes this module's main configuration.
    unsafe {
        directive(cf, conf, |cf, main: &mut KeyAuthMainConf| {
            if main.store.is_some() {
                return conf_message(c"is duplicate");
            }
            let words = args(cf).to_vec();
            if let Err(rv) = refuse_duplicate_options(cf, words[0], &words[2..]) {
                return rv;
            }
            let options: Vec<&[u8]> = words[2..].iter().map(|w| w.as_bytes()).collect();
            let mut spec = match crate::redis::spec::parse(words[1].as_bytes(), &options) {
                Ok(spec) => spec,
                Err(e) => return emerg(cf, format_args!("\"key_auth_quota_store\": {e}")),
            };
            if let Some(file) = spec.password_file.clone() {
                match read_password_file(cf, &file) {
                    Ok(password) => spec.password = Some(password),
                    Err(e) => return emerg(cf, format_args!("\"key_auth_quota_store\": {e}")),
                }
            }
            let sockaddr = match resolve(cf, &spec) {
                Ok(sockaddr) => sockaddr,
                Err(e) => return emerg(cf, format_args!("\"key_auth_quota_store\": {e}")),
            };
            main.store = Some(crate::redis::client::Store::new(spec, sockaddr));
            main.store_at = Some(conf_position(cf));
            CONF_OK
        })
    }
}

/// The password in `password_file=`: the file's first line (a trailing
/// newline is not part of it). A relative name is relative to the
/// directory of nginx.conf, as for `include`.
fn read_password_file(cf: &ngx_conf_t, name: &[u8]) -> Result<Vec<u8>, String> {
    use std::os::unix::ffi::OsStrExt;
    let shown = name.escape_ascii().to_string();
    let mut path = std::path::PathBuf::new();
    if name.first() != Some(&b'/') {
        // SAFETY: the cycle being configured and its prefix string.
        let prefix = unsafe { (*cf.cycle).conf_prefix };
        path.push(std::ffi::OsStr::from_bytes(prefix.as_bytes()));
    }
    path.push(std::ffi::OsStr::from_bytes(name));
    let text =
        std::fs::read(&path).map_err(|e| format!("cannot read \"password_file={shown}\": {e}"))?;
    let line = text.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        return Err(format!(
            "\"password_file={shown}\" holds no password on its first line"
        ));
    }
    Ok(line.to_vec())
}

/// The store's address, resolved now (the first address of the name).
fn resolve(cf: &mut ngx_conf_t, spec: &crate::redis::spec::StoreSpec) -> Result<Vec<u8>, String> {
    let host = String::from_utf8_lossy(&spec.host);
    let text = if spec.host.contains(&b':') {
        format!("[{host}]:{}", spec.port)
    } else {
        format!("{host}:{}", spec.port)
    };
    // SAFETY: all-zero is how nginx callers start an ngx_url_t.
    let mut u: nginx_sys::ngx_url_t = unsafe { core::mem::zeroed() };
    u.url = ngx_str_t {
        len: text.len(),
        data: text.as_ptr().cast_mut(),
    };
    u.default_port = spec.port;
    // SAFETY: the URL text outlives the call; results live in cf's pool.
    let rc = unsafe { nginx_sys::ngx_parse_url(cf.pool, &mut u) };
    if rc != nginx_sys::NGX_OK as ngx_int_t || u.naddrs == 0 || u.addrs.is_null() {
        let why = if u.err.is_null() {
            "host not found".to_string()
        } else {
            // SAFETY: nginx's error strings are static C strings.
            unsafe { core::ffi::CStr::from_ptr(u.err) }
                .to_string_lossy()
                .into_owned()
        };
        return Err(format!("cannot resolve \"{text}\": {why}"));
    }
    // SAFETY: naddrs >= 1 resolved addresses in cf's pool.
    let addr = unsafe { &*u.addrs };
    // SAFETY: the address's sockaddr holds socklen bytes.
    let bytes =
        unsafe { core::slice::from_raw_parts(addr.sockaddr.cast::<u8>(), addr.socklen as usize) };
    Ok(bytes.to_vec())
}

/// The quota zone's contents: a header, then the counter slots.
#[repr(C)]
pub struct ZoneHeader {
    pub used: u64,
    pub len: u64,
    /// See [`super::quota::Table`]: no compaction before this time.
    pub next_compaction_ms: u64,
}

impl ZoneHeader {
    /// The counter table: the slots following the header.
    ///
    /// # Safety
    /// `this` must be a header written by [`init_zone`], with the zone
    /// locked.
    pub unsafe fn table<'a>(this: *mut ZoneHeader) -> Table<'a> {
        // SAFETY: per the contract, `len` slots follow the header in the
        // same allocation.
        unsafe {
            let slots = this.add(1).cast::<Slot>();
            Table::new(
                core::slice::from_raw_parts_mut(slots, (*this).len as usize),
                &mut (*this).used,
                &mut (*this).next_compaction_ms,
            )
        }
    }
}

/// Zone init: a fresh zone gets an empty counter table as large as it
/// holds; a zone kept across a reload keeps its counters.
unsafe extern "C" fn init_zone(zone: *mut ngx_shm_zone_t, data: *mut c_void) -> ngx_int_t {
    let log = ngx::log::ngx_cycle_log().as_ptr();
    guard_status(log, || {
        // SAFETY: nginx calls init with a mapped zone of the new cycle and,
        // when reusing it, the previous cycle's data pointer, which points
        // into this same memory.
        unsafe {
            if !data.is_null() {
                shm::set_data(zone, data);
                return shm::INIT_OK;
            }
            let pool = shm::slab_pool(zone);
            let avail = ((*pool).end as usize).saturating_sub((*pool).start as usize);
            let mut len = avail / size_of::<Slot>();
            let mut header: *mut ZoneHeader = ptr::null_mut();
            // Trying sizes down from "everything" is expected to fail a few
            // times: keep the slab allocator from logging that as [crit].
            bitfield::slab_pool::set_log_nomem(&mut *pool, false);
            while len > 0 {
                let bytes = size_of::<ZoneHeader>() + len * size_of::<Slot>();
                header = shm::alloc(zone, bytes).cast();
                if !header.is_null() {
                    break;
                }
                len = len * 49 / 50;
            }
            bitfield::slab_pool::set_log_nomem(&mut *pool, true);
            if header.is_null() {
                return shm::INIT_ERROR;
            }
            let slots = header.add(1).cast::<Slot>();
            for i in 0..len {
                slots.add(i).write(Slot::default());
            }
            header.write(ZoneHeader {
                used: 0,
                len: len as u64,
                next_compaction_ms: 0,
            });
            shm::set_data(zone, header.cast());
            let name = (*zone).shm.name;
            ngx::ngx_log_error!(
                NGX_LOG_NOTICE,
                log,
                "key_auth zone \"{}\": room for {} limited consumers",
                name,
                super::quota::max_used(len)
            );
            shm::INIT_OK
        }
    })
}

/// `key_auth_consumers { NAME attr=value …; include FILE; }`
///
/// Parsed like nginx's `map {}`: each line of the block (and of included
/// files) is handed to [`consumer_line`] instead of being looked up as a
/// directive.
unsafe extern "C" fn set_consumers(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx passes the configuration being parsed and this module's
    // main configuration.
    unsafe { directive(cf, conf, consumers_block) }
}

fn consumers_block(cf: &mut ngx_conf_t, main: &mut KeyAuthMainConf) -> *mut c_char {
    // nginx's conf reader allocates every word of every line from
    // cf->pool, the cycle's pool: a million consumer lines would keep
    // about 100 MB of words for the whole cycle. Like ngx_http_map_block,
    // parse the block with a pool of its own, destroyed afterwards
    // (the registry copies what it keeps; included files' names, which
    // nginx puts there too, are only used while they are read).
    // SAFETY: a new pool, owned by this function until destroyed below.
    let words = unsafe { ngx_create_pool(NGX_DEFAULT_POOL_SIZE as usize, cf.log) };
    if words.is_null() {
        return CONF_ERROR;
    }
    let save = *cf;
    cf.pool = words;
    cf.handler = Some(consumer_line);
    cf.handler_conf = ptr::from_mut(&mut main.registry).cast();
    // SAFETY: the standard nested-block parse, as ngx_http_map_module
    // does; `cf` is restored afterwards.
    let rv = unsafe { ngx_conf_parse(cf, ptr::null_mut()) };
    *cf = save;
    // SAFETY: nothing refers to the block's words any more: every line
    // was handled (and its messages logged) during the parse.
    unsafe { ngx_destroy_pool(words) };
    // The block is complete: the key table takes its compact form.
    main.registry.freeze();
    release_freed_memory();
    rv
}

/// Gives the pages freed by a consumer block's parse (its words, the
/// parse-time maps) back to the kernel. glibc returns only the top of its
/// heap by itself; the block's garbage lies below what the rest of the
/// configuration allocates afterwards, and would stay resident (and be
/// inherited by every worker) for the whole cycle. `malloc_trim` also
/// releases free pages in the middle of the heap.
fn release_freed_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only returns free pages; no live allocation moves.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// One line inside `key_auth_consumers`.
unsafe extern "C" fn consumer_line(
    cf: *mut ngx_conf_t,
    dummy: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    let body = |cf: &mut ngx_conf_t, registry: &mut Registry| {
        let words = args(cf);
        if words.len() == 2 && words[0].as_bytes() == b"include" {
            let save = *cf;
            // SAFETY: as in ngx_http_map_module: included lines come back to
            // this handler (cf->handler is still set).
            let rv = unsafe { ngx_conf_include(cf, dummy, conf) };
            *cf = save;
            return rv;
        }
        let rv = consumer_words(cf, registry);
        wipe_words(cf);
        rv
    };
    // SAFETY: `conf` is the registry set as handler_conf in set_consumers.
    unsafe { directive(cf, conf, body) }
}

/// Zeroes the words of the consumer line just handled. They hold plain
/// keys, and the pool they live in is only freed, not cleared, when the
/// block ends (and a failed reload leaves the old cycle running beside
/// the freed memory): what the registry keeps is the keys' hashes, so the
/// text must not linger in the process's free memory either.
fn wipe_words(cf: &mut ngx_conf_t) {
    for word in args(cf) {
        if !word.data.is_null() {
            // SAFETY: each word is `len` bytes that nginx's conf reader
            // allocated for this line (in the block's own pool); nothing
            // refers to them after the line was handled: the registry
            // copied what it keeps.
            unsafe { ptr::write_bytes(word.data, 0, word.len) };
        }
    }
}

/// Parses one consumer line and adds it to the registry.
fn consumer_words(cf: &mut ngx_conf_t, registry: &mut Registry) -> *mut c_char {
    {
        let words: Vec<&[u8]> = args(cf).iter().map(|w| w.as_bytes()).collect();
        let line = match parse_line(&words) {
            Ok(line) => line,
            Err(message) => return emerg(cf, format_args!("key_auth_consumers: {message}")),
        };
        // The line's words are cf's: copied for the (rare) warning below.
        let expires = line
            .expires
            .map(|at| (at, line.name.to_owned(), line.credential.map(str::to_owned)));
        if let Err(message) = registry.add(line) {
            return emerg(cf, format_args!("key_auth_consumers: {message}"));
        }
        if let Some((at, name, credential)) = expires {
            if expiry::expired(Some(at), now()) {
                ngx::ngx_conf_log_error!(
                    NGX_LOG_WARN,
                    cf,
                    "key_auth_consumers: the key of consumer \"{name}\" ({}) expired at {}: \
                     it is refused",
                    expiry::describe_credential(credential.as_deref()),
                    expiry::format_utc(at)
                );
            }
        }
        CONF_OK
    }
}

/// nginx's cached wall-clock time, Unix seconds.
pub fn now() -> i64 {
    // SAFETY: ngx_cached_time points at nginx's current cached time slot,
    // updated by ngx_time_update() on this (single-threaded) process.
    let seconds = unsafe { (*nginx_sys::ngx_cached_time).sec };
    #[allow(clippy::useless_conversion)] // time_t is narrower on some platforms
    i64::from(seconds)
}

/// Declares the variables.
///
/// # Safety
/// Called by nginx with the http block's configuration.
pub unsafe extern "C" fn preconfiguration(cf: *mut ngx_conf_t) -> ngx_int_t {
    // SAFETY: nginx passes the configuration being parsed.
    let cf = unsafe { &mut *cf };
    guard_status(cf.log, || {
        let c = variables::declare_readonly(cf, &ngx::ngx_string!("key_auth_consumer"));
        let k = variables::declare_readonly(cf, &ngx::ngx_string!("key_auth_credential"));
        let i = variables::declare_readonly(cf, &ngx::ngx_string!("key_auth_custom_id"));
        let Some(main) = KeyAuthModule::main_conf_mut(cf) else {
            return nginx_sys::NGX_ERROR as ngx_int_t;
        };
        if c.is_none() || k.is_none() || i.is_none() {
            return nginx_sys::NGX_ERROR as ngx_int_t;
        }
        main.var_consumer = c;
        main.var_credential = k;
        main.var_custom_id = i;
        nginx_sys::NGX_OK as ngx_int_t
    })
}

/// Registers the status zone's series: key_auth's, and the consumers'
/// when asked for.
pub fn register_counters(cf: &mut ngx_conf_t) {
    let per_consumer = counters::per_consumer(cf);
    let counter = counters::register(cf, counters::Kind::KeyAuth, b"");
    let mut consumer_counters = Vec::new();
    if per_consumer {
        if let Some(main) = KeyAuthModule::main_conf(cf) {
            let names: Vec<Vec<u8>> = (0..main.registry.len())
                .map(|i| main.registry.consumer(i).name.as_bytes().to_vec())
                .collect();
            consumer_counters = names
                .iter()
                .map(|n| counters::register(cf, counters::Kind::KeyAuthConsumer, n))
                .collect();
        }
    }
    if let Some(main) = KeyAuthModule::main_conf_mut(cf) {
        main.counter = counter;
        main.consumer_counters = consumer_counters;
    }
}

/// Checks made once every consumer is known: a quota needs the zone.
pub fn check_main(cf: &mut ngx_conf_t) -> bool {
    let Some(main) = KeyAuthModule::main_conf(cf) else {
        return false;
    };
    let local = main
        .store
        .as_ref()
        .is_some_and(|s| s.spec.on_error == crate::redis::spec::OnError::Local);
    if let (true, true, Some((file, line))) = (main.zone.is_null(), local, main.store_at) {
        ngx::ngx_log_error!(
            NGX_LOG_EMERG,
            cf.log,
            "\"key_auth_quota_store\" has \"on_error=local\" but no \"key_auth_zone\" is \
             configured to count in, in {}:{}",
            file,
            line
        );
        return false;
    }
    if main.zone.is_null() && main.store.is_none() {
        if let Some(c) = main.registry.first_limited() {
            ngx::ngx_conf_log_error!(
                NGX_LOG_EMERG,
                cf,
                "key_auth_consumers: consumer \"{}\" has a \"limit\" but no \"key_auth_zone\" \
                 or \"key_auth_quota_store\" is configured",
                c.name
            );
            return false;
        }
    }
    let registry = &main.registry;
    let texts = super::quota::LimitTexts::new(
        (0..registry.len()).filter_map(|i| registry.consumer(i).limit.map(|l| l.count)),
    );
    match KeyAuthModule::main_conf_mut(cf) {
        Some(main) => main.limit_texts = texts,
        None => return false,
    }
    true
}

/// Merges a level with its parent and resolves the anonymous consumer.
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

fn merge_levels(cf: &mut ngx_conf_t, parent: &KeyAuthConf, child: &mut KeyAuthConf) -> *mut c_char {
    child.enabled = child.enabled.or(parent.enabled);
    if child.header.is_none() {
        child.header = parent.header;
        child.header_underscore_at = parent.header_underscore_at;
    }
    warn_underscore(cf, child);
    child.query = child.query.or(parent.query);
    child.hide_credentials = child.hide_credentials.or(parent.hide_credentials);
    child.anonymous = child.anonymous.or(parent.anonymous);
    child.challenge = child.challenge.or(parent.challenge);
    child.preflight_pass = child.preflight_pass.or(parent.preflight_pass);
    child.body_field = child.body_field.or(parent.body_field);
    child.allow = child.allow.or(parent.allow);
    child.deny = child.deny.or(parent.deny);
    for (directive, list) in [
        ("key_auth_allow", child.allow),
        ("key_auth_deny", child.deny),
    ] {
        if let Some(Some(list)) = list {
            if check_members(cf, directive, list).is_err() {
                return CONF_ERROR;
            }
        }
    }
    if let Some(Anonymous::Named {
        name,
        file,
        line,
        index,
    }) = &mut child.anonymous
    {
        if index.is_none() {
            let Some(main) = KeyAuthModule::main_conf(cf) else {
                return CONF_ERROR;
            };
            match main.registry.find(name.as_bytes()) {
                Some(i) => *index = Some(i),
                None => {
                    ngx::ngx_log_error!(
                        NGX_LOG_EMERG,
                        cf.log,
                        "\"key_auth_anonymous_consumer\" names \"{}\", which is not a \
                         consumer of \"key_auth_consumers\" in {}:{}",
                        name,
                        file,
                        line
                    );
                    return CONF_ERROR;
                }
            }
        }
    }
    CONF_OK
}
