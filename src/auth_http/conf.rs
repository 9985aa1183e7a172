//! `auth_http_*` directives: configuration structures, parsing, merging.

use core::ffi::{c_char, c_void};

use nginx_sys::{
    ngx_command_t, ngx_conf_t, ngx_http_complex_value_t, ngx_int_t, ngx_parse_time, ngx_str_t,
    NGX_CONF_1MORE, NGX_CONF_TAKE1, NGX_ERROR, NGX_HTTP_LOC_CONF, NGX_HTTP_LOC_CONF_OFFSET,
    NGX_HTTP_MAIN_CONF, NGX_HTTP_SRV_CONF, NGX_LOG_WARN,
};
use ngx::core::Pool;
use ngx::http::HttpModuleMainConf;

use super::decision::{CachedAnswer, NoMatch};
use super::params::{self, Piece, Placeholder};
use super::retry::{self, RetryPolicy};
use super::AuthHttpModule;
use crate::decision_cache::conf::{self as cache, CacheConf};
use crate::nginx::conf::{self, args, conf_message, emerg, set_once, CONF_ERROR, CONF_OK};
use crate::nginx::subrequest::Method;
use crate::nginx::variables::{self, AssignableVariable};

/// EMQX's default parameters, used when a directive gives no `params=`.
const DEFAULT_AUTH_PARAMS: &[u8] = b"clientid=%c,username=%u,password=%P";
const DEFAULT_SUPERUSER_PARAMS: &[u8] = b"clientid=%c,username=%u";
const DEFAULT_ACL_PARAMS: &[u8] =
    b"access=%A,username=%u,clientid=%c,ipaddr=%a,topic=%t,mountpoint=%m";

/// A piece of a parameter value, ready for request time.
pub enum ValuePiece {
    Text(Vec<u8>),
    /// Text holding nginx variables.
    Variables(ngx_http_complex_value_t),
    Placeholder(Placeholder),
}

/// One parameter: its name already form-encoded, its value pieces.
pub struct ServiceParam {
    pub encoded_name: Vec<u8>,
    pub value: Vec<ValuePiece>,
}

/// A service to ask (superuser or ACL), compiled at configuration time.
pub struct Service {
    /// The URI as configured, for log messages.
    pub configured: ngx_str_t,
    /// The path the subrequest goes to (the URI before any `?`).
    pub path: ngx_str_t,
    /// Fixed query arguments given in the URI after `?` (may be empty).
    pub fixed_args: Vec<u8>,
    pub method: Method,
    pub params: Vec<ServiceParam>,
    /// The status zone's series for this service URI.
    pub counter: crate::counters::Counter,
}

/// `auth_http_auth` / `auth_http_superuser` / `auth_http_acl` at one level.
#[derive(Clone, Copy)]
pub enum ServiceSetting {
    Off,
    /// Allocated in the configuration pool, which outlives every request
    /// and every configuration level that points at it.
    On(&'static Service),
}

#[derive(Default)]
pub struct AuthHttpConf {
    pub auth: Option<ServiceSetting>,
    /// The whole `WWW-Authenticate` value of `auth_http_realm`, in the
    /// configuration pool (which outlives every request).
    pub challenge: Option<&'static [u8]>,
    pub superuser: Option<ServiceSetting>,
    pub acl: Option<ServiceSetting>,
    pub retry: Option<RetryPolicy>,
    pub client_id: Option<ngx_http_complex_value_t>,
    pub mountpoint: Option<ngx_http_complex_value_t>,
    pub nomatch: Option<NoMatch>,
    /// `auth_http_cache`, `auth_http_cache_valid`.
    pub cache: CacheConf,
}

fn active(setting: Option<ServiceSetting>) -> Option<&'static Service> {
    match setting {
        Some(ServiceSetting::On(service)) => Some(service),
        _ => None,
    }
}

/// The challenge sent with a 401 when `auth_http_realm` is not set.
pub const DEFAULT_CHALLENGE: &[u8] = br#"Basic realm="restricted""#;

impl AuthHttpConf {
    pub fn auth(&self) -> Option<&'static Service> {
        active(self.auth)
    }
    pub fn challenge(&self) -> &'static [u8] {
        self.challenge.unwrap_or(DEFAULT_CHALLENGE)
    }
    pub fn superuser(&self) -> Option<&'static Service> {
        active(self.superuser)
    }
    pub fn acl(&self) -> Option<&'static Service> {
        active(self.acl)
    }
    pub fn retry(&self) -> RetryPolicy {
        self.retry.unwrap_or_default()
    }
    pub fn nomatch(&self) -> NoMatch {
        self.nomatch.unwrap_or_default()
    }

    pub fn merge_from(&mut self, parent: &Self) {
        self.auth = self.auth.or(parent.auth);
        self.challenge = self.challenge.or(parent.challenge);
        self.superuser = self.superuser.or(parent.superuser);
        self.acl = self.acl.or(parent.acl);
        self.retry = self.retry.or(parent.retry);
        self.client_id = self.client_id.or(parent.client_id);
        self.mountpoint = self.mountpoint.or(parent.mountpoint);
        self.nomatch = self.nomatch.or(parent.nomatch);
        self.cache.merge_from(&parent.cache);
    }
}

#[derive(Default)]
pub struct AuthHttpMainConf {
    /// `$auth_http_result`.
    pub result_variable: Option<AssignableVariable>,
    /// Index of `$ssl_client_s_dn`, when `%C` or `%d` is used.
    pub ssl_subject_index: Option<ngx_int_t>,
    /// Some block asks a superuser or ACL service: the handler is needed.
    pub used: bool,
}

const CONTEXTS: u32 = NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF;

const fn command(
    name: ngx_str_t,
    takes: u32,
    set: unsafe extern "C" fn(*mut ngx_conf_t, *mut ngx_command_t, *mut c_void) -> *mut c_char,
) -> ngx_command_t {
    ngx_command_t {
        name,
        type_: (CONTEXTS | takes) as _,
        set: Some(set),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: 0,
        post: core::ptr::null_mut(),
    }
}

pub static mut COMMANDS: [ngx_command_t; 11] = [
    command(ngx::ngx_string!("auth_http_auth"), NGX_CONF_1MORE, set_auth),
    command(
        ngx::ngx_string!("auth_http_realm"),
        NGX_CONF_TAKE1,
        set_realm,
    ),
    command(
        ngx::ngx_string!("auth_http_superuser"),
        NGX_CONF_1MORE,
        set_superuser,
    ),
    command(ngx::ngx_string!("auth_http_acl"), NGX_CONF_1MORE, set_acl),
    command(
        ngx::ngx_string!("auth_http_retry"),
        NGX_CONF_1MORE,
        set_retry,
    ),
    command(
        ngx::ngx_string!("auth_http_client_id"),
        NGX_CONF_TAKE1,
        set_client_id,
    ),
    command(
        ngx::ngx_string!("auth_http_mountpoint"),
        NGX_CONF_TAKE1,
        set_mountpoint,
    ),
    command(
        ngx::ngx_string!("auth_http_nomatch"),
        NGX_CONF_TAKE1,
        set_nomatch,
    ),
    command(
        ngx::ngx_string!("auth_http_cache"),
        NGX_CONF_TAKE1,
        set_cache,
    ),
    command(
        ngx::ngx_string!("auth_http_cache_valid"),
        NGX_CONF_1MORE,
        set_cache_valid,
    ),
    ngx_command_t::empty(),
];

/// `auth_http_cache zone | off;`
unsafe extern "C" fn set_cache(
    cf: *mut ngx_conf_t,
    _: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    directive(cf, conf, |cf, conf| cache::set_zone(cf, &mut conf.cache))
}

/// `auth_http_cache_valid answer ... time;`
unsafe extern "C" fn set_cache_valid(
    cf: *mut ngx_conf_t,
    _: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    directive(cf, conf, |cf, conf| {
        cache::set_valid(cf, &mut conf.cache, None, |word| {
            CachedAnswer::code_of(word).ok_or(
                "is not an answer (authenticated, unauthenticated, superuser, \
                 allow, deny, ignore, any)",
            )
        })
    })
}

/// Runs a directive handler body with the configuration and this module's
/// location configuration.
fn directive(
    cf: *mut ngx_conf_t,
    conf: *mut c_void,
    body: impl FnOnce(&mut ngx_conf_t, &mut AuthHttpConf) -> *mut c_char,
) -> *mut c_char {
    // SAFETY: only called from this module's directive handlers, with what
    // nginx passed them: the configuration being parsed and this module's
    // location configuration for the current block.
    unsafe { conf::directive(cf, conf, body) }
}

unsafe extern "C" fn set_auth(
    cf: *mut ngx_conf_t,
    _: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    directive(cf, conf, |cf, conf| {
        if conf.auth.is_some() {
            return conf_message(c"is duplicate");
        }
        match parse_service(cf, DEFAULT_AUTH_PARAMS) {
            Ok(setting) => {
                if let (ServiceSetting::On(_), Some(main)) =
                    (setting, AuthHttpModule::main_conf_mut(cf))
                {
                    main.used = true;
                }
                conf.auth = Some(setting);
                CONF_OK
            }
            Err(rv) => rv,
        }
    })
}

unsafe extern "C" fn set_realm(
    cf: *mut ngx_conf_t,
    _: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    directive(cf, conf, |cf, conf| {
        set_once(cf, &mut conf.challenge, realm)
    })
}

/// `Basic realm="VALUE"`, in the configuration pool. The realm is sent as
/// a quoted string without escapes, so it may not hold `"`, `\` or control
/// bytes.
fn realm(cf: &mut ngx_conf_t, value: ngx_str_t) -> Result<&'static [u8], *mut c_char> {
    let Some(challenge) = basic_challenge(value.as_bytes()) else {
        return Err(emerg(
            cf,
            format_args!(
                "\"auth_http_realm\": invalid realm \"{value}\" (not empty; printable ASCII \
                 without '\"' or '\\')"
            ),
        ));
    };
    let data = copy_to_pool(cf, &challenge).ok_or(CONF_ERROR)?;
    // SAFETY: `challenge.len()` bytes were just copied to `data`, in the
    // configuration pool, which outlives every request using them.
    Ok(unsafe { core::slice::from_raw_parts(data, challenge.len()) })
}

/// The challenge for `realm`, or `None` when it cannot be sent as a plain
/// quoted string.
pub fn basic_challenge(realm: &[u8]) -> Option<Vec<u8>> {
    crate::nginx::headers::challenge("Basic", realm)
}

unsafe extern "C" fn set_superuser(
    cf: *mut ngx_conf_t,
    _: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    directive(cf, conf, |cf, conf| {
        if conf.superuser.is_some() {
            return conf_message(c"is duplicate");
        }
        match parse_service(cf, DEFAULT_SUPERUSER_PARAMS) {
            Ok(setting) => {
                if let (ServiceSetting::On(_), Some(main)) =
                    (setting, AuthHttpModule::main_conf_mut(cf))
                {
                    main.used = true;
                }
                conf.superuser = Some(setting);
                CONF_OK
            }
            Err(rv) => rv,
        }
    })
}

unsafe extern "C" fn set_acl(
    cf: *mut ngx_conf_t,
    _: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    directive(cf, conf, |cf, conf| {
        if conf.acl.is_some() {
            return conf_message(c"is duplicate");
        }
        match parse_service(cf, DEFAULT_ACL_PARAMS) {
            Ok(setting) => {
                if let (ServiceSetting::On(_), Some(main)) =
                    (setting, AuthHttpModule::main_conf_mut(cf))
                {
                    main.used = true;
                }
                conf.acl = Some(setting);
                CONF_OK
            }
            Err(rv) => rv,
        }
    })
}

/// `uri|off [method=get|post|put] [params="…"]`
fn parse_service(
    cf: &mut ngx_conf_t,
    default_params: &[u8],
) -> Result<ServiceSetting, *mut c_char> {
    let words = args(cf).to_vec();
    let directive = words[0];
    let uri = words[1];
    if uri.as_bytes() == b"off" {
        if words.len() > 2 {
            return Err(emerg(
                cf,
                format_args!("\"{directive}\" takes no options after \"off\""),
            ));
        }
        return Ok(ServiceSetting::Off);
    }
    if !uri.as_bytes().starts_with(b"/") && !uri.as_bytes().starts_with(b"@") {
        return Err(emerg(
            cf,
            format_args!("\"{directive}\": invalid URI \"{uri}\" (must start with \"/\")"),
        ));
    }
    if uri.as_bytes().starts_with(b"@") {
        return Err(emerg(
            cf,
            format_args!(
                "\"{directive}\": named location \"{uri}\" cannot be used (subrequests need a URI)"
            ),
        ));
    }

    if uri.as_bytes().contains(&b'$') {
        return Err(emerg(
            cf,
            format_args!(
                "\"{directive}\": the URI \"{uri}\" holds a \"$\": it is taken literally and \
                 cannot use variables"
            ),
        ));
    }
    conf::refuse_duplicate_options(cf, directive, &words[2..])?;

    let mut method = Method::Post;
    let mut params_text: Option<ngx_str_t> = None;
    for option in &words[2..] {
        let bytes = option.as_bytes();
        if let Some(m) = bytes.strip_prefix(b"method=") {
            method = match m {
                b"get" | b"GET" => Method::Get,
                b"post" | b"POST" => Method::Post,
                b"put" | b"PUT" => Method::Put,
                _ => {
                    return Err(emerg(
                        cf,
                        format_args!(
                            "\"{directive}\": invalid method \"{}\" (get, post or put)",
                            String::from_utf8_lossy(m)
                        ),
                    ))
                }
            };
        } else if bytes.starts_with(b"params=") {
            params_text = option.strip_prefix("params=");
        } else {
            return Err(emerg(
                cf,
                format_args!("\"{directive}\": unknown option \"{option}\" (method=, params=)"),
            ));
        }
    }

    let spec = params_text.map_or(default_params, |p| {
        // SAFETY: configuration words live in the configuration pool.
        unquote(unsafe { core::slice::from_raw_parts(p.data, p.len) })
    });
    let parsed = params::parse(spec).map_err(|e| {
        emerg(
            cf,
            format_args!(
                "\"{directive}\": invalid params \"{}\": {e}",
                String::from_utf8_lossy(spec)
            ),
        )
    })?;

    if method == Method::Get && params::uses(&parsed, Placeholder::Password) {
        ngx::ngx_conf_log_error!(
            NGX_LOG_WARN,
            cf,
            "\"{directive}\" sends the Basic-auth password (%P) with method=get: it travels in the \
             URL, where access logs, proxies and the service's own logs record it; method=post \
             keeps it in the request body"
        );
    }
    if params::uses(&parsed, Placeholder::CertCommonName)
        || params::uses(&parsed, Placeholder::CertSubject)
    {
        let index = ssl_subject_index(cf);
        if let Some(main) = AuthHttpModule::main_conf_mut(cf) {
            main.ssl_subject_index = index;
        }
    }

    let mut compiled = Vec::with_capacity(parsed.len());
    for param in parsed {
        let mut encoded_name = Vec::new();
        params::form_encode_into(&mut encoded_name, &param.name);
        let mut value = Vec::with_capacity(param.pieces.len());
        for piece in param.pieces {
            value.push(match piece {
                Piece::Placeholder(p) => ValuePiece::Placeholder(p),
                Piece::Text(text) if text.contains(&b'$') => {
                    let source = ngx_str_t {
                        len: text.len(),
                        // The compiled value keeps pointers into `source`:
                        // copy it into the configuration pool.
                        data: copy_to_pool(cf, &text).ok_or(CONF_ERROR)?,
                    };
                    ValuePiece::Variables(variables::compile(cf, &source).ok_or(CONF_ERROR)?)
                }
                Piece::Text(text) => ValuePiece::Text(text),
            });
        }
        compiled.push(ServiceParam {
            encoded_name,
            value,
        });
    }

    let (path, fixed_args) = match uri.as_bytes().iter().position(|&b| b == b'?') {
        Some(q) => (
            ngx_str_t {
                len: q,
                data: uri.data,
            },
            uri.as_bytes()[q + 1..].to_vec(),
        ),
        None => (uri, Vec::new()),
    };
    let service = Service {
        configured: uri,
        path,
        fixed_args,
        method,
        params: compiled,
        counter: crate::counters::register(cf, crate::counters::Kind::AuthHttp, uri.as_bytes()),
    };
    // SAFETY: cf->pool is the configuration pool; Pool::allocate registers a
    // cleanup that drops the service when the pool goes.
    let pool = unsafe { Pool::from_ngx_pool(cf.pool) };
    // SAFETY: a non-null result is an initialised Service in that pool.
    let service = unsafe { pool.allocate(service).as_ref() }.ok_or(CONF_ERROR)?;
    Ok(ServiceSetting::On(service))
}

/// `params="a=%u"` reaches us with its quotes: nginx's parser only treats
/// a quote at the start of a word as quoting.
fn unquote(value: &[u8]) -> &[u8] {
    match value {
        [b'"', inner @ .., b'"'] | [b'\'', inner @ .., b'\''] => inner,
        _ => value,
    }
}

#[cfg(ngx_feature = "http_ssl")]
fn ssl_subject_index(cf: &mut ngx_conf_t) -> Option<ngx_int_t> {
    variables::index_of(cf, "ssl_client_s_dn")
}

#[cfg(not(ngx_feature = "http_ssl"))]
fn ssl_subject_index(_cf: &mut ngx_conf_t) -> Option<ngx_int_t> {
    None
}

fn copy_to_pool(cf: &mut ngx_conf_t, bytes: &[u8]) -> Option<*mut u8> {
    // SAFETY: allocation in the configuration pool.
    let s = unsafe { ngx_str_t::from_bytes(cf.pool, bytes) }?;
    Some(s.data)
}

unsafe extern "C" fn set_retry(
    cf: *mut ngx_conf_t,
    _: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    directive(cf, conf, |cf, conf| {
        if conf.retry.is_some() {
            return conf_message(c"is duplicate");
        }
        let words = args(cf).to_vec();
        if let Err(rv) = conf::refuse_duplicate_options(cf, words[0], &words[1..]) {
            return rv;
        }
        let options: Vec<&[u8]> = words[1..].iter().map(|w| w.as_bytes()).collect();
        let parse_ms = |v: &[u8]| {
            let mut s = ngx_str_t {
                len: v.len(),
                data: v.as_ptr().cast_mut(),
            };
            // SAFETY: ngx_parse_time only reads the bytes.
            let ms = unsafe { ngx_parse_time(&mut s, 0) };
            (ms != NGX_ERROR as ngx_int_t)
                .then(|| u64::try_from(ms).ok())
                .flatten()
        };
        match retry::parse(&options, parse_ms) {
            Ok(policy) => {
                conf.retry = Some(policy);
                CONF_OK
            }
            Err(e) => emerg(cf, format_args!("\"auth_http_retry\": {e}")),
        }
    })
}

fn complex_value(
    cf: &mut ngx_conf_t,
    value: ngx_str_t,
) -> Result<ngx_http_complex_value_t, *mut c_char> {
    variables::compile(cf, &value).ok_or(CONF_ERROR)
}

unsafe extern "C" fn set_client_id(
    cf: *mut ngx_conf_t,
    _: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    directive(cf, conf, |cf, conf| {
        set_once(cf, &mut conf.client_id, complex_value)
    })
}

unsafe extern "C" fn set_mountpoint(
    cf: *mut ngx_conf_t,
    _: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    directive(cf, conf, |cf, conf| {
        set_once(cf, &mut conf.mountpoint, complex_value)
    })
}

unsafe extern "C" fn set_nomatch(
    cf: *mut ngx_conf_t,
    _: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    directive(cf, conf, |cf, conf| {
        set_once(cf, &mut conf.nomatch, nomatch)
    })
}

fn nomatch(cf: &mut ngx_conf_t, value: ngx_str_t) -> Result<NoMatch, *mut c_char> {
    match value.as_bytes() {
        b"allow" => Ok(NoMatch::Allow),
        b"deny" => Ok(NoMatch::Deny),
        _ => Err(emerg(
            cf,
            format_args!("\"auth_http_nomatch\": invalid value \"{value}\" (allow or deny)"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::basic_challenge;

    #[test]
    fn realms() {
        assert_eq!(
            basic_challenge(b"my api").as_deref(),
            Some(&br#"Basic realm="my api""#[..])
        );
        for bad in [&b""[..], b"a\"b", b"a\\b", b"a\tb", b"\xc3\xa9", b"a\x7f"] {
            assert_eq!(basic_challenge(bad), None, "{bad:?}");
        }
    }
}
