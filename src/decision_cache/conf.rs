//! A location's cache settings, for the mechanisms that use the cache:
//! `auth_request_cache`, `auth_request_cache_key`,
//! `auth_request_cache_valid` (and `auth_http_cache*`). Each mechanism
//! lists the directives in its own table and keeps a [`CacheConf`] in its
//! location configuration; the parsing and checks are written once here.

use core::ffi::{c_char, c_void};
use core::ptr;

use nginx_sys::{
    ngx_conf_t, ngx_http_complex_value_t, ngx_http_core_srv_conf_t, ngx_http_server_name_t,
    ngx_int_t, ngx_parse_time, ngx_shared_memory_add, ngx_shm_zone_t, ngx_str_t, NGX_ERROR,
    NGX_LOG_EMERG, NGX_LOG_WARN,
};
use ngx::http::{HttpModule, HttpModuleMainConf, HttpModuleServerConf, NgxHttpCoreModule};

use super::module::DecisionCacheModule;
use super::valid::{self, ValidTimes};
use crate::keyed_hash::{KeyedHash, Prefixed};
use crate::nginx::conf::{args, conf_message, emerg, CONF_ERROR, CONF_OK};
use crate::nginx::variables;

/// Where a directive was written, for `[emerg] … in FILE:LINE` reported
/// after the block was parsed.
#[derive(Clone, Copy)]
pub struct Position {
    file: ngx_str_t,
    line: usize,
}

impl Position {
    pub fn here(cf: &ngx_conf_t) -> Self {
        // SAFETY: while a directive is parsed, cf->conf_file is the file
        // being read.
        let f = unsafe { &*cf.conf_file };
        Position {
            file: f.file.name,
            line: f.line,
        }
    }
}

impl core::fmt::Display for Position {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// The configuration was refused; the `[emerg]` is logged.
#[derive(Debug, Clone, Copy)]
pub struct Refused;

/// `…_cache name | off;` as written at one level.
#[derive(Clone, Copy)]
pub enum CacheZone {
    Off,
    Zone {
        zone: *mut ngx_shm_zone_t,
        name: ngx_str_t,
        at: Position,
    },
}

/// A location's cache settings.
#[derive(Clone, Default)]
pub struct CacheConf {
    zone: Option<CacheZone>,
    key: Option<ngx_http_complex_value_t>,
    /// When the key is one variable and nothing else (`$http_authorization`):
    /// its index, read directly instead of through the script engine.
    key_variable: Option<ngx_int_t>,
    valid: Option<ValidTimes>,
    /// The zone's `inactive=` (ms), copied when the configuration is
    /// finished: an entry not used for this long counts as absent.
    inactive_ms: u64,
    /// What the cached question is, besides the key (the mechanism, its
    /// service URI and everything that shapes the answer), fingerprinted at
    /// merge time: two locations asking different questions never share an
    /// entry, even with the same key in the same zone, and a reload that
    /// changes those settings leaves the old entries unreachable.
    /// Bytes, not `u128`: configuration pools align to 8 only.
    pub scope: [u8; 16],
    /// The zone's keyed hash with [`CacheConf::scope`] already absorbed,
    /// and the secret it was made with: made by each worker on its first
    /// lookup (the secret is the zone's, known only once the zone is
    /// initialised), so that a lookup hashes the key bytes only: the
    /// scope length-prefixed, then the key's bytes as they are (see
    /// [`Prefixed::hash_last`]).
    question: core::cell::Cell<Option<(KeyedHash, Prefixed)>>,
    /// `$auth_cache_status`'s slot in `r->variables` (set by `finish`).
    status_index: Option<usize>,
}

impl CacheConf {
    /// The zone, when caching is on here.
    pub fn zone(&self) -> Option<*mut ngx_shm_zone_t> {
        match self.zone {
            Some(CacheZone::Zone { zone, .. }) => Some(zone),
            _ => None,
        }
    }

    /// The key's compiled value.
    pub fn key(&self) -> Option<&ngx_http_complex_value_t> {
        self.key.as_ref()
    }

    /// The key's variable index, when the key is that one variable.
    pub fn key_variable(&self) -> Option<ngx_int_t> {
        self.key_variable
    }

    /// The id of the question `key` asks here: the zone's keyed hash of
    /// the scope and the key.
    #[inline]
    pub fn question_id(&self, secret: &KeyedHash, key: &[u8]) -> u128 {
        // SAFETY: read in place, not copied out of the cell: a worker is
        // one thread, and nothing holds a reference into the cell across
        // this function (set() below replaces the value whole).
        if let Some((made_with, prefixed)) = unsafe { &*self.question.as_ptr() } {
            if made_with == secret {
                return prefixed.hash_last(key);
            }
        }
        let prefixed = secret.prefixed(&[&self.scope]);
        self.question.set(Some((*secret, prefixed)));
        prefixed.hash_last(key)
    }

    /// `$auth_cache_status`'s index, once the configuration is finished.
    pub fn status_index(&self) -> Option<usize> {
        self.status_index
    }

    /// The zone's `inactive=` time (ms).
    pub fn inactive_ms(&self) -> u64 {
        self.inactive_ms
    }

    /// How long answers with `code` are kept (seconds); `None`: not cached.
    pub fn valid_seconds(&self, code: u16) -> Option<u32> {
        self.valid.as_ref()?.seconds(code)
    }

    /// Inherits what this level does not set.
    pub fn merge_from(&mut self, parent: &CacheConf) {
        if self.zone.is_none() {
            self.zone = parent.zone;
        }
        if self.key.is_none() {
            self.key = parent.key;
            self.key_variable = parent.key_variable;
        }
        if self.valid.is_none() {
            self.valid = parent.valid;
        }
    }

    /// The checks once the whole `http` block is known, for a level that
    /// `protected` (its mechanism is on): the zone exists, a key is set
    /// (when the mechanism has a key directive; auth_http's key is the
    /// question itself).
    /// `scope` names the question (see [`CacheConf::scope`]). Logs the
    /// `[emerg]` naming the cache directive's file and line.
    pub fn finish(
        &mut self,
        cf: &mut ngx_conf_t,
        directive: &str,
        protected: bool,
        needs_key: bool,
        scope: &[&[u8]],
    ) -> Result<(), Refused> {
        let Some(CacheZone::Zone { zone, name, at }) = self.zone else {
            return Ok(());
        };
        // SAFETY: a zone of the configuration being built.
        if unsafe { (*zone).shm.size } == 0 {
            ngx::ngx_log_error!(
                NGX_LOG_EMERG,
                cf.log,
                "\"{directive}\": unknown zone \"{name}\" (no auth_cache_zone declares it) in {at}"
            );
            return Err(Refused);
        }
        // SAFETY: a zone of the configuration being built, declared (its
        // size is set) and not initialised before the http block ends.
        self.inactive_ms = unsafe { super::zone::configured_settings(zone) }.inactive_ms;
        if protected && needs_key && self.key.is_none() {
            ngx::ngx_log_error!(
                NGX_LOG_EMERG,
                cf.log,
                "\"{directive} {name}\" needs \"{directive}_key\" (there is no default key) in {at}"
            );
            return Err(Refused);
        }
        self.status_index = DecisionCacheModule::main_conf(cf)
            .and_then(|m| m.status_variable.as_ref())
            .and_then(|v| usize::try_from(v.index).ok());
        let server = server_identity(cf);
        let mut parts: std::vec::Vec<&[u8]> = scope.to_vec();
        parts.extend(server.iter().map(|p| p.as_slice()));
        self.scope = KeyedHash::with_secret([0; 16]).hash(&parts).to_le_bytes();
        Ok(())
    }
}

/// The server block a location belongs to, as part of the question: the
/// service URI resolves to a location of the request's own server, so two
/// virtual servers with the same auth URI (each proxying to its own service)
/// ask different questions and must never share an entry. The block's file
/// and line and its `server_name` list stay the same across a reload that
/// keeps the server, so its entries stay reachable; a server that moves
/// or is renamed starts afresh.
fn server_identity(cf: &ngx_conf_t) -> std::vec::Vec<std::vec::Vec<u8>> {
    let mut parts = vec![b"server".to_vec()];
    let Some(srv) = NgxHttpCoreModule::server_conf(cf) else {
        return parts;
    };
    let srv: &ngx_http_core_srv_conf_t = srv;
    if !srv.file_name.is_null() {
        // SAFETY: nginx keeps the server block's file name, NUL-terminated,
        // in the configuration pool.
        let file = unsafe { core::ffi::CStr::from_ptr(srv.file_name.cast()) };
        parts.push(file.to_bytes().to_vec());
    }
    parts.push(srv.line.to_le_bytes().to_vec());
    let names = &srv.server_names;
    if !names.elts.is_null() {
        // SAFETY: server_names is an ngx_array_t of ngx_http_server_name_t
        // filled while the server block was parsed.
        let names = unsafe {
            core::slice::from_raw_parts(names.elts.cast::<ngx_http_server_name_t>(), names.nelts)
        };
        for name in names {
            parts.push(name.name.as_bytes().to_vec());
        }
    }
    parts
}

impl CacheConf {
    /// Refuses the cache in a location that also uses `other`, whose
    /// effect a hit could not replay; the `[emerg]` names the cache
    /// directive's line.
    pub fn refuse_with(
        &self,
        cf: &mut ngx_conf_t,
        directive: &str,
        other: &str,
    ) -> Result<(), Refused> {
        let Some(CacheZone::Zone { name, at, .. }) = self.zone else {
            return Ok(());
        };
        ngx::ngx_log_error!(
            NGX_LOG_EMERG,
            cf.log,
            "\"{directive} {name}\" cannot be combined with \"{other}\": what it passes on \
             is not part of a cached decision in {at}"
        );
        Err(Refused)
    }
}

/// The zone `name` declared (now or later in the `http` block) by
/// `auth_cache_zone`; `finish` refuses it if it never is.
pub fn zone_reference(cf: &mut ngx_conf_t, name: &ngx_str_t) -> Option<*mut ngx_shm_zone_t> {
    let mut name = *name;
    let tag = ptr::from_ref(DecisionCacheModule::module())
        .cast_mut()
        .cast::<c_void>();
    // SAFETY: cf is the configuration being parsed; size 0 finds or
    // reserves the zone without sizing it (as proxy_cache does); nginx
    // logs why it refuses (a name used for something else).
    let zone = unsafe { ngx_shared_memory_add(cf, &mut name, 0, tag) };
    (!zone.is_null()).then_some(zone)
}

/// `…_cache name | off;`
pub fn set_zone(cf: &mut ngx_conf_t, conf: &mut CacheConf) -> *mut c_char {
    if conf.zone.is_some() {
        return conf_message(c"is duplicate");
    }
    let name = args(cf)[1];
    if name.as_bytes() == b"off" {
        conf.zone = Some(CacheZone::Off);
        return CONF_OK;
    }
    let Some(zone) = zone_reference(cf, &name) else {
        return CONF_ERROR;
    };
    conf.zone = Some(CacheZone::Zone {
        zone,
        name,
        at: Position::here(cf),
    });
    CONF_OK
}

/// `…_cache_key string;`: refused without variables (every client would
/// share one entry); a warning when none of them carries a credential.
pub fn set_key(cf: &mut ngx_conf_t, conf: &mut CacheConf) -> *mut c_char {
    if conf.key.is_some() {
        return conf_message(c"is duplicate");
    }
    let (directive, text) = (args(cf)[0], args(cf)[1]);
    if valid::variable_names(text.as_bytes()).next().is_none() {
        return emerg(
            cf,
            format_args!(
                "\"{directive}\": the key \"{text}\" holds no variables: every client \
                 would share one decision"
            ),
        );
    }
    if !valid::variable_names(text.as_bytes()).any(valid::bears_credentials) {
        ngx::ngx_conf_log_error!(
            NGX_LOG_WARN,
            cf,
            "\"{directive}\": the key \"{text}\" uses no credential-bearing variable \
             ($http_*, $cookie_*, $ssl_client_*, $remote_user, $arg_*): clients that \
             present different credentials may share a decision"
        );
    }
    let Some(cv) = variables::compile(cf, &text) else {
        return CONF_ERROR;
    };
    conf.key = Some(cv);
    conf.key_variable = single_variable(text.as_bytes()).and_then(|name| {
        let mut name = ngx_str_t {
            len: name.len(),
            data: name.as_ptr().cast_mut(),
        };
        // SAFETY: cf is the configuration being parsed; the name points
        // into the directive's argument, configuration memory that
        // outlives the cycle.
        let index = unsafe { nginx_sys::ngx_http_get_variable_index(cf, &mut name) };
        (index != NGX_ERROR as ngx_int_t).then_some(index)
    });
    CONF_OK
}

/// The name when `text` is exactly one variable (`$name` or `${name}`).
fn single_variable(text: &[u8]) -> Option<&[u8]> {
    let name = text.strip_prefix(b"$")?;
    let name = match name.strip_prefix(b"{") {
        Some(braced) => braced.strip_suffix(b"}")?,
        None => name,
    };
    let plain = !name.is_empty()
        && !name[0].is_ascii_digit()
        && name.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'_');
    plain.then_some(name)
}

/// `…_cache_valid [what …] time;`: each `what` word becomes a rule code
/// through `code` (which names what it refuses); without words,
/// `default` (`None`: a word is required).
pub fn set_valid(
    cf: &mut ngx_conf_t,
    conf: &mut CacheConf,
    default: Option<u16>,
    code: impl Fn(&[u8]) -> Result<u16, &'static str>,
) -> *mut c_char {
    let words: Vec<ngx_str_t> = args(cf).to_vec();
    let (directive, time) = (words[0], words[words.len() - 1]);
    let mut t = time;
    // SAFETY: ngx_parse_time only reads the bytes.
    let seconds = unsafe { ngx_parse_time(&mut t, 1) };
    let Ok(seconds) = u32::try_from(seconds).map_err(|_| ()).and_then(|s| {
        if seconds == NGX_ERROR as ngx_int_t {
            Err(())
        } else {
            Ok(s)
        }
    }) else {
        return emerg(cf, format_args!("\"{directive}\": invalid time \"{time}\""));
    };
    let mut codes: Vec<u16> = Vec::new();
    for word in &words[1..words.len() - 1] {
        match code(word.as_bytes()) {
            Ok(c) => codes.push(c),
            Err(why) => return emerg(cf, format_args!("\"{directive}\": \"{word}\" {why}")),
        }
    }
    if codes.is_empty() {
        match default {
            Some(c) => codes.push(c),
            None => {
                return emerg(
                    cf,
                    format_args!("\"{directive}\": nothing to cache before \"{time}\""),
                )
            }
        }
    }
    let times = conf.valid.get_or_insert_with(ValidTimes::default);
    for c in codes {
        if times.add(c, seconds).is_err() {
            return emerg(cf, format_args!("\"{directive}\": too many rules"));
        }
    }
    CONF_OK
}

#[cfg(test)]
mod tests {
    use super::single_variable;

    #[test]
    fn one_variable_keys() {
        assert_eq!(
            single_variable(b"$http_authorization"),
            Some(&b"http_authorization"[..])
        );
        assert_eq!(single_variable(b"${cookie_sid}"), Some(&b"cookie_sid"[..]));
        for text in ["$a$b", "x$a", "$a:", "$", "${a", "$1", "${}", "static"] {
            assert_eq!(single_variable(text.as_bytes()), None, "{text}");
        }
    }
}
