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
    /// `answer=json`: EMQX 5 answers (see [`super::decision::json_as_text`]).
    pub json_answer: bool,
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
    /// `auth_http_header`s of this block, in order (each in the
    /// configuration pool); a block without any inherits its parent's.
    pub headers: std::vec::Vec<&'static ExtraHeader>,
}

/// `auth_http_header Name value;`: a header every service request carries.
pub struct ExtraHeader {
    pub name: ngx_str_t,
    pub value: std::vec::Vec<ValuePiece>,
}

/// Headers `auth_http_header` may not set: the subrequest's own framing,
/// and what would change how an answer arrives (see
/// [`crate::nginx::headers::NOT_FOR_DECISIONS`]).
fn reserved_header(name: &[u8]) -> bool {
    crate::nginx::headers::NOT_FOR_DECISIONS
        .iter()
        .chain([&b"Host"[..], b"Connection", b"Keep-Alive", b"Upgrade"].iter())
        .any(|reserved| crate::nginx::headers_in::same_name(reserved, name))
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
        if self.headers.is_empty() {
            self.headers = parent.headers.clone();
        }
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

pub static mut COMMANDS: [ngx_command_t; 12] = [
    command(ngx::ngx_string!("auth_http_auth"), NGX_CONF_1MORE, set_auth),
    command(
        ngx::ngx_string!("auth_http_header"),
        nginx_sys::NGX_CONF_TAKE2,
        set_header,
    ),
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
        match parse_service(cf, DEFAULT_AUTH_PARAMS, false) {
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

unsafe extern "C" fn set_header(
    cf: *mut ngx_conf_t,
    _: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    directive(cf, conf, |cf, conf| {
        let words = args(cf).to_vec();
        let (name, value) = (words[1], words[2]);
        let token = |b: &u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b);
        if name.is_empty() || !name.as_bytes().iter().all(token) {
            return emerg(
                cf,
                format_args!("\"auth_http_header\": invalid header name \"{name}\""),
            );
        }
        if reserved_header(name.as_bytes()) {
            return emerg(
                cf,
                format_args!(
                    "\"auth_http_header\": \"{name}\" cannot be set: it describes the service \
                     request itself or how its answer is encoded"
                ),
            );
        }
        if conf
            .headers
            .iter()
            .any(|h| crate::nginx::headers_in::same_name(h.name.as_bytes(), name.as_bytes()))
        {
            return emerg(
                cf,
                format_args!("\"auth_http_header\": \"{name}\" is given twice in this block"),
            );
        }
        if value
            .as_bytes()
            .iter()
            .any(|&b| b < 0x20 && b != b'\t' || b == 0x7f)
        {
            return emerg(
                cf,
                format_args!(
                    "\"auth_http_header\": the value of \"{name}\" holds control characters"
                ),
            );
        }
        let pieces = match params::parse_value(value.as_bytes()) {
            Ok(pieces) => pieces,
            Err(e) => {
                let why = match e {
                    params::ParamsError::TrailingPercent(_) => {
                        "it ends with a lone \"%\"".to_owned()
                    }
                    e => e.to_string(),
                };
                return emerg(
                    cf,
                    format_args!("\"auth_http_header\": invalid value \"{value}\": {why}"),
                );
            }
        };
        let uses_subject = pieces.iter().any(|p| {
            matches!(
                p,
                Piece::Placeholder(Placeholder::CertCommonName | Placeholder::CertSubject)
            )
        });
        if uses_subject {
            let index = ssl_subject_index(cf);
            if let Some(main) = AuthHttpModule::main_conf_mut(cf) {
                main.ssl_subject_index = index;
            }
        }
        let value = match compile_pieces(cf, pieces) {
            Ok(v) => v,
            Err(rv) => return rv,
        };
        // SAFETY: cf->pool is the configuration pool; Pool::allocate
        // registers a cleanup that drops the header when the pool goes.
        let pool = unsafe { Pool::from_ngx_pool(cf.pool) };
        // SAFETY: a non-null result is an initialised ExtraHeader there.
        match unsafe { pool.allocate(ExtraHeader { name, value }).as_ref() } {
            Some(h) => {
                conf.headers.push(h);
                CONF_OK
            }
            None => CONF_ERROR,
        }
    })
}

/// Placeholder pieces ready for request time: text with `$` is compiled
/// as nginx variables.
fn compile_pieces(
    cf: &mut ngx_conf_t,
    pieces: std::vec::Vec<Piece>,
) -> Result<std::vec::Vec<ValuePiece>, *mut c_char> {
    let mut value = std::vec::Vec::with_capacity(pieces.len());
    for piece in pieces {
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
    Ok(value)
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
        match parse_service(cf, DEFAULT_SUPERUSER_PARAMS, true) {
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
        match parse_service(cf, DEFAULT_ACL_PARAMS, true) {
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
/// `uri|off [method=get|post|put] [params="…"] [answer=text|json]`
/// (`answer=` where `answers`).
fn parse_service(
    cf: &mut ngx_conf_t,
    default_params: &[u8],
    answers: bool,
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
    let mut json_answer = false;
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
        } else if let (true, Some(a)) = (answers, bytes.strip_prefix(b"answer=")) {
            json_answer = match a {
                b"text" => false,
                b"json" => true,
                _ => {
                    return Err(emerg(
                        cf,
                        format_args!(
                            "\"{directive}\": invalid answer \"{}\" (text or json)",
                            String::from_utf8_lossy(a)
                        ),
                    ))
                }
            };
        } else {
            let known = if answers {
                "method=, params=, answer="
            } else {
                "method=, params="
            };
            return Err(emerg(
                cf,
                format_args!("\"{directive}\": unknown option \"{option}\" ({known})"),
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
        let value = compile_pieces(cf, param.pieces)?;
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
        json_answer,
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
