//! Configuration-time helpers: directive arguments, `[emerg]` messages,
//! looking at the other modules nginx was built with.

use core::ffi::{c_char, c_void, CStr};

use nginx_sys::{ngx_conf_t, ngx_cycle_t, ngx_module_t, ngx_str_t, NGX_LOG_EMERG};

use super::ffi::guard;

/// The value a directive handler returns on success.
pub const CONF_OK: *mut c_char = core::ptr::null_mut();
/// The value a directive handler returns after logging its own error.
pub const CONF_ERROR: *mut c_char = ngx::core::NGX_CONF_ERROR;

/// A fixed message nginx appends to `"NAME" directive `, e.g. `is duplicate`.
///
/// nginx logs it as `[emerg] "NAME" directive is duplicate in FILE:LINE`.
pub fn conf_message(message: &'static CStr) -> *mut c_char {
    message.as_ptr().cast_mut()
}

/// The directive's arguments; element 0 is the directive name.
pub fn args(cf: &ngx_conf_t) -> &[ngx_str_t] {
    // SAFETY: while a directive handler runs, cf->args is the array of the
    // directive's words (ngx_str_t elements), owned by the configuration
    // parser and valid for the duration of the call.
    unsafe {
        cf.args
            .as_ref()
            .map(|a| a.as_slice::<ngx_str_t>())
            .unwrap_or(&[])
    }
}

/// Logs `[emerg] <message> in FILE:LINE` for the directive being parsed and
/// returns the directive-handler error value.
pub fn emerg(cf: &mut ngx_conf_t, message: core::fmt::Arguments<'_>) -> *mut c_char {
    ngx::ngx_conf_log_error!(NGX_LOG_EMERG, cf, "{}", message);
    CONF_ERROR
}

/// For directives whose options are `name=value` words (in any order):
/// refuses a second word with the same `name=` with `[emerg] "DIRECTIVE":
/// duplicate option "name=2" (already given as "name=1") in FILE:LINE`.
/// Call it before looking at the values. `options` are the option words
/// (not the directive name or positional arguments).
pub fn refuse_duplicate_options(
    cf: &mut ngx_conf_t,
    directive: ngx_str_t,
    options: &[ngx_str_t],
) -> Result<(), *mut c_char> {
    match duplicate_option(options) {
        Some((first, again)) => Err(emerg(
            cf,
            format_args!(
                "\"{directive}\": duplicate option \"{again}\" (already given as \"{first}\")"
            ),
        )),
        None => Ok(()),
    }
}

/// The first option word whose `name=` an earlier one has, with that
/// earlier one: `(earlier, again)`. Words without `=` are never
/// duplicates here (they are unknown options for the caller to refuse).
fn duplicate_option<T: AsOptionWord>(options: &[T]) -> Option<(T, T)> {
    fn name(word: &[u8]) -> Option<&[u8]> {
        word.iter().position(|&b| b == b'=').map(|i| &word[..=i])
    }
    options.iter().enumerate().find_map(|(i, again)| {
        let n = name(again.bytes())?;
        options[..i]
            .iter()
            .find(|first| name(first.bytes()) == Some(n))
            .map(|first| (*first, *again))
    })
}

/// What [`duplicate_option`] reads of an option word (nginx strings, byte
/// strings in tests).
trait AsOptionWord: Copy {
    fn bytes(&self) -> &[u8];
}

impl AsOptionWord for ngx_str_t {
    fn bytes(&self) -> &[u8] {
        self.as_bytes()
    }
}

#[cfg(test)]
impl AsOptionWord for &[u8] {
    fn bytes(&self) -> &[u8] {
        self
    }
}

/// Finds a module compiled into (or loaded by) nginx by its name, such as
/// `ngx_http_auth_request_module`.
pub fn find_module<'a>(cycle: &'a ngx_cycle_t, name: &str) -> Option<&'a ngx_module_t> {
    if cycle.modules.is_null() {
        return None;
    }
    (0..cycle.modules_n)
        .map(|i| {
            // SAFETY: cycle->modules holds modules_n valid module pointers
            // (ngx_cycle_modules() allocates and fills it before any
            // configuration is parsed).
            unsafe { &**cycle.modules.add(i) }
        })
        .find(|module| {
            !module.name.is_null()
                // SAFETY: module names are NUL-terminated C strings (the
                // ngx_module_names table nginx and ngx_modules! generate).
                && unsafe { CStr::from_ptr(module.name) }.to_bytes() == name.as_bytes()
        })
}

/// Runs a directive handler's body inside the panic guard, with the
/// configuration being parsed and the module's configuration structure the
/// directive writes to.
///
/// # Safety
/// `cf` and `conf` must be what nginx passes to a directive handler whose
/// configuration slot holds a `T`.
pub unsafe fn directive<T>(
    cf: *mut ngx_conf_t,
    conf: *mut c_void,
    body: impl FnOnce(&mut ngx_conf_t, &mut T) -> *mut c_char,
) -> *mut c_char {
    // SAFETY: per the contract: the live configuration being parsed and the
    // module's configuration for the current block.
    let (cf, conf) = unsafe { (&mut *cf, &mut *conf.cast::<T>()) };
    guard(cf.log, CONF_ERROR, || body(cf, conf))
}

/// Runs a `merge_loc_conf`/`merge_srv_conf` body inside the panic guard,
/// with the parent and child configurations typed.
///
/// # Safety
/// `cf`, `parent` and `child` must be what nginx passes to a merge callback
/// of a module whose configurations at that level are `T`s.
pub unsafe fn merge<T>(
    cf: *mut ngx_conf_t,
    parent: *mut c_void,
    child: *mut c_void,
    body: impl FnOnce(&mut ngx_conf_t, &T, &mut T) -> *mut c_char,
) -> *mut c_char {
    // SAFETY: per the contract; parent and child are distinct structures.
    let (cf, parent, child) = unsafe { (&mut *cf, &*parent.cast::<T>(), &mut *child.cast::<T>()) };
    guard(cf.log, CONF_ERROR, || body(cf, parent, child))
}

/// The common shape of a one-argument directive: refuse a second one in the
/// same block (`"NAME" directive is duplicate`), parse the argument, store
/// it. `parse` reports its own `[emerg]` (see [`emerg`]) and returns the
/// handler result on error.
pub fn set_once<T>(
    cf: &mut ngx_conf_t,
    slot: &mut Option<T>,
    parse: impl FnOnce(&mut ngx_conf_t, ngx_str_t) -> Result<T, *mut c_char>,
) -> *mut c_char {
    if slot.is_some() {
        return conf_message(c"is duplicate");
    }
    let value = args(cf)[1];
    match parse(cf, value) {
        Ok(v) => {
            *slot = Some(v);
            CONF_OK
        }
        Err(rv) => rv,
    }
}

/// The size of a `name=size` option word (`max=16k`), which must be above
/// 0; otherwise `[emerg] "DIRECTIVE": invalid size in "max=…", it must be a
/// size above 0 such as 16k or 1m in FILE:LINE`. `None`: the word is not a
/// `name=` option (the caller refuses it as unknown).
pub fn size_option(
    cf: &mut ngx_conf_t,
    directive: ngx_str_t,
    option: ngx_str_t,
    name: &[u8],
) -> Option<Result<usize, *mut c_char>> {
    let size = option.as_bytes().strip_prefix(name)?;
    let mut size = ngx_str_t {
        len: size.len(),
        data: size.as_ptr().cast_mut(),
    };
    // SAFETY: ngx_parse_size only reads the bytes.
    let n = unsafe { nginx_sys::ngx_parse_size(&mut size) };
    if n == nginx_sys::NGX_ERROR as isize || n <= 0 {
        return Some(Err(emerg(
            cf,
            format_args!(
                "\"{directive}\": invalid size in \"{option}\", it must be a size above 0 \
                 such as 16k or 1m"
            ),
        )));
    }
    Some(Ok(n as usize))
}

#[cfg(test)]
mod tests {
    use super::duplicate_option;

    #[test]
    fn finds_the_first_repeated_option() {
        let words: [&[u8]; 4] = [b"method=get", b"params=a=1", b"x", b"method=post"];
        assert_eq!(
            duplicate_option(&words),
            Some((&b"method=get"[..], &b"method=post"[..]))
        );
        let words: [&[u8]; 3] = [b"times=1", b"interval=1s", b"times=1"];
        assert_eq!(
            duplicate_option(&words),
            Some((&b"times=1"[..], &b"times=1"[..]))
        );
        // the name is what is before the first "=": params=a=1 and a=1 differ
        let words: [&[u8]; 4] = [b"params=a=1", b"a=1", b"x", b"x"];
        assert_eq!(duplicate_option(&words), None);
        let words: [&[u8]; 2] = [b"method=", b"method="];
        assert!(duplicate_option(&words).is_some());
        assert_eq!(duplicate_option::<&[u8]>(&[]), None);
    }
}
