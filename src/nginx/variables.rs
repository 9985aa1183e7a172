//! Variables: declaring them, compiling complex values at configuration time,
//! evaluating them at request time, and storing a value in a request.

use core::ptr;

use nginx_sys::{
    ngx_conf_t, ngx_http_add_variable, ngx_http_compile_complex_value,
    ngx_http_compile_complex_value_t, ngx_http_complex_value, ngx_http_complex_value_t,
    ngx_http_get_indexed_variable, ngx_http_get_variable_index, ngx_http_request_t,
    ngx_http_set_variable_pt, ngx_http_variable_t, ngx_http_variable_value_t, ngx_int_t, ngx_str_t,
    ngx_uint_t, NGX_ERROR, NGX_HTTP_VAR_CHANGEABLE, NGX_OK,
};

/// A variable a directive may assign to (`auth_request_set $name …`).
pub struct AssignableVariable {
    /// Index into `r->variables`.
    pub index: ngx_int_t,
    /// The variable's own set handler (e.g. `$args` edits the request's
    /// arguments); nginx keeps it only in the variables hash at runtime, so it
    /// is captured here at configuration time.
    pub set_handler: ngx_http_set_variable_pt,
    /// The data the set handler expects.
    pub set_data: usize,
    /// The declaration, for giving it a get handler when nobody else did.
    pub declaration: *mut ngx_http_variable_t,
}

/// Declares (or finds) the changeable variable `name` (without `$`).
pub fn declare_assignable(cf: &mut ngx_conf_t, name: &ngx_str_t) -> Option<AssignableVariable> {
    let mut name = *name;
    // SAFETY: cf is the configuration being parsed; `name` points into
    // configuration memory that outlives the cycle, as nginx requires.
    let declaration = unsafe { ngx_http_add_variable(cf, &mut name, NGX_HTTP_VAR_CHANGEABLE as _) };
    if declaration.is_null() {
        return None;
    }
    // SAFETY: as above.
    let index = unsafe { ngx_http_get_variable_index(cf, &mut name) };
    if index == NGX_ERROR as ngx_int_t {
        return None;
    }
    // SAFETY: ngx_http_add_variable returned a valid declaration.
    let decl = unsafe { &*declaration };
    Some(AssignableVariable {
        index,
        set_handler: decl.set_handler,
        set_data: decl.data,
        declaration,
    })
}

/// Compiles `value` (which may hold `$variables`) into a complex value.
pub fn compile(cf: &mut ngx_conf_t, value: &ngx_str_t) -> Option<ngx_http_complex_value_t> {
    // SAFETY: an all-zero ngx_http_complex_value_t / compile struct is the
    // documented initial state (nginx itself ngx_memzero()s them).
    let mut cv: ngx_http_complex_value_t = unsafe { core::mem::zeroed() };
    let mut value = *value;
    let mut ccv: ngx_http_compile_complex_value_t = unsafe { core::mem::zeroed() };
    ccv.cf = cf;
    ccv.value = &mut value;
    ccv.complex_value = &mut cv;
    // SAFETY: ccv points at live locals for the duration of the call; the
    // compiled lengths/values are allocated in cf->pool.
    if unsafe { ngx_http_compile_complex_value(&mut ccv) } != NGX_OK as ngx_int_t {
        return None;
    }
    Some(cv)
}

/// Evaluates a compiled complex value in the context of request `r`.
/// The result lives in `r`'s pool.
pub fn evaluate(r: &mut ngx_http_request_t, cv: &ngx_http_complex_value_t) -> Option<ngx_str_t> {
    let mut out = ngx_str_t::empty();
    // SAFETY: r is a live request; `cv` was compiled at configuration time
    // and is only read.
    let rc = unsafe { ngx_http_complex_value(r, ptr::from_ref(cv).cast_mut(), &mut out) };
    (rc == NGX_OK as ngx_int_t).then_some(out)
}

/// Stores `value` as the value of `var` in request `r`, and runs the
/// variable's set handler if it has one.
///
/// The value is written into `r->variables` and marked valid so that it is
/// still there after internal redirects, which reset module contexts but
/// keep the request's variable values.
pub fn store(r: &mut ngx_http_request_t, var: &AssignableVariable, value: ngx_str_t) {
    let Ok(index) = usize::try_from(var.index) else {
        return;
    };
    // SAFETY: r->variables has one slot per indexed variable, allocated for
    // the main request at creation; `index` came from
    // ngx_http_get_variable_index() at configuration time.
    let slot: &mut ngx_http_variable_value_t = unsafe { &mut *r.variables.add(index) };
    set_found(slot, value.len);
    slot.data = value.data;
    if let Some(set) = var.set_handler {
        // SAFETY: the handler belongs to this variable and gets the data it
        // was declared with.
        unsafe { set(r, slot, var.set_data) };
    }
}

/// Stores `value` in the slot `index` of `r`, for a variable declared by
/// [`declare_readonly`] (it has no set handler): one slot write.
pub fn store_readonly(r: &mut ngx_http_request_t, index: usize, value: ngx_str_t) {
    // SAFETY: as in store(); `index` is a declared variable's.
    let slot: &mut ngx_http_variable_value_t = unsafe { &mut *r.variables.add(index) };
    set_found(slot, value.len);
    slot.data = value.data;
}

/// Stores "not found" as the value of `var` in `r` (it then reads as empty,
/// `-` in logs), replacing any value [`store`]d before.
pub fn store_not_found(r: &mut ngx_http_request_t, var: &AssignableVariable) {
    let Ok(index) = usize::try_from(var.index) else {
        return;
    };
    // SAFETY: as in store().
    let slot: &mut ngx_http_variable_value_t = unsafe { &mut *r.variables.add(index) };
    slot.set_len(0);
    slot.data = ptr::null_mut();
    slot.set_valid(1);
    slot.set_no_cacheable(0);
    slot.set_not_found(1);
    slot.set_escape(0);
}

/// Forgets the cached value of the indexed variable `index` in `r`, so that
/// its next use asks its get handler again (nginx caches `$request_uri` and
/// `$request` once read).
pub fn flush(r: &mut ngx_http_request_t, index: ngx_int_t) {
    let Ok(index) = usize::try_from(index) else {
        return;
    };
    // SAFETY: `index` came from ngx_http_get_variable_index() at
    // configuration time; r->variables has a slot for it.
    let slot: &mut ngx_http_variable_value_t = unsafe { &mut *r.variables.add(index) };
    slot.set_valid(0);
    slot.set_not_found(0);
}

/// The value [`store`]d for `var` in `r`, if any: a valid, found value in
/// the request's slot (slots survive internal redirects).
pub fn stored(r: &ngx_http_request_t, var: &AssignableVariable) -> Option<ngx_str_t> {
    let index = usize::try_from(var.index).ok()?;
    // SAFETY: as in store(): the slot exists for every indexed variable.
    let slot: &ngx_http_variable_value_t = unsafe { &*r.variables.add(index) };
    (slot.valid() == 1 && slot.not_found() == 0).then(|| ngx_str_t {
        len: slot.len() as usize,
        data: slot.data,
    })
}

/// The raw bitfield word of a value that is found, valid and cacheable
/// with length 0, when this nginx lays out `len:28, valid:1, no_cacheable:1,
/// not_found:1, escape:1` from the least significant bit (as GCC and Clang do
/// on every little-endian target); `None` otherwise.
fn found_template() -> Option<u32> {
    use std::sync::OnceLock;
    static TEMPLATE: OnceLock<Option<u32>> = OnceLock::new();
    *TEMPLATE.get_or_init(|| {
        let raw = |v: &ngx_http_variable_value_t| {
            // SAFETY: the bitfield unit is 4 plain bytes (repr(C)).
            u32::from_ne_bytes(unsafe { *ptr::addr_of!(v._bitfield_1).cast::<[u8; 4]>() })
        };
        // SAFETY: an all-zero value is valid plain data.
        let mut v: ngx_http_variable_value_t = unsafe { core::mem::zeroed() };
        v.set_len(0x0abc_def1);
        let len_ok = raw(&v) == 0x0abc_def1;
        // SAFETY: as above.
        let mut v: ngx_http_variable_value_t = unsafe { core::mem::zeroed() };
        v.set_valid(1);
        let valid = raw(&v);
        // SAFETY: as above.
        let mut v: ngx_http_variable_value_t = unsafe { core::mem::zeroed() };
        v.set_not_found(1);
        let not_found_ok = raw(&v) == NOT_FOUND_BIT;
        (len_ok && not_found_ok && valid > 0x0fff_ffff).then_some(valid)
    })
}

/// Marks `slot` as a found, valid, cacheable value of `len` bytes.
///
/// bindgen's bitfield setters loop over every bit (28 for `len`); on the
/// request path one word write does the same.
fn set_found(slot: &mut ngx_http_variable_value_t, len: usize) {
    match found_template() {
        Some(valid) if len < 1 << 28 => {
            let word = valid | len as u32;
            // SAFETY: the bitfield unit is 4 plain bytes (repr(C)); the
            // template was checked against bindgen's own setters.
            unsafe {
                *ptr::addr_of_mut!(slot._bitfield_1).cast::<[u8; 4]>() = word.to_ne_bytes();
            }
        }
        _ => {
            slot.set_len(len as _);
            slot.set_valid(1);
            slot.set_no_cacheable(0);
            slot.set_not_found(0);
            slot.set_escape(0);
        }
    }
}

/// Get handler for variables that only a directive ever assigns: until it
/// does, the variable reads as not found (empty).
///
/// # Safety
/// Called by nginx's variable machinery with a valid value slot.
pub unsafe extern "C" fn not_found_getter(
    _r: *mut ngx_http_request_t,
    v: *mut ngx_http_variable_value_t,
    _data: usize,
) -> ngx_int_t {
    // SAFETY: nginx passes the value slot it wants filled.
    if let Some(v) = unsafe { v.as_mut() } {
        v.set_not_found(1);
    }
    NGX_OK as ngx_int_t
}

/// The index of an existing variable, such as `ssl_client_s_dn`.
pub fn index_of(cf: &mut ngx_conf_t, name: &'static str) -> Option<ngx_int_t> {
    let mut name = ngx_str_t {
        len: name.len(),
        data: name.as_ptr().cast_mut(),
    };
    // SAFETY: cf is the configuration being parsed; the name is static.
    let index = unsafe { ngx_http_get_variable_index(cf, &mut name) };
    (index != NGX_ERROR as ngx_int_t).then_some(index)
}

/// The value of an indexed variable in `r`, empty when not found.
#[inline]
pub fn get_indexed(r: &mut ngx_http_request_t, index: ngx_int_t) -> &[u8] {
    let Ok(index) = ngx_uint_t::try_from(index) else {
        return &[];
    };
    // SAFETY: `index` came from ngx_http_get_variable_index() at
    // configuration time; the value lives in the request pool.
    unsafe {
        let v = ngx_http_get_indexed_variable(r, index);
        if v.is_null() {
            return &[];
        }
        // `data` only after the flags and length: a value that is not found
        // or empty may leave it unset (nginx's `ngx_http_ssl_variable`
        // copies an uninitialised pointer when there is no client
        // certificate; valgrind reported the branch on it).
        match found_len(&*v) {
            Some(len) if len > 0 && !(*v).data.is_null() => {
                core::slice::from_raw_parts((*v).data, len)
            }
            _ => &[],
        }
    }
}

/// The length of a found value; `None` when it is not found.
///
/// bindgen's bitfield getters loop over bits; with the layout
/// [`found_template`] checked, one word read and two masks do the same.
fn found_len(v: &ngx_http_variable_value_t) -> Option<usize> {
    match found_template() {
        Some(_) => {
            // SAFETY: the bitfield unit is 4 plain bytes (repr(C)).
            let word =
                u32::from_ne_bytes(unsafe { *ptr::addr_of!(v._bitfield_1).cast::<[u8; 4]>() });
            // not_found is bit 30 in the checked layout (len:28, valid,
            // no_cacheable, not_found, escape from the least significant bit).
            (word & NOT_FOUND_BIT == 0).then_some((word & 0x0fff_ffff) as usize)
        }
        None => (v.not_found() == 0).then_some(v.len() as usize),
    }
}

/// `not_found` in the layout [`found_template`] checks.
const NOT_FOUND_BIT: u32 = 1 << 30;

/// Declares a variable only this module sets (users cannot `set` it), with
/// [`not_found_getter`] until a handler [`store`]s a value.
pub fn declare_readonly(cf: &mut ngx_conf_t, name: &ngx_str_t) -> Option<AssignableVariable> {
    let mut name = *name;
    // SAFETY: cf is the configuration being parsed; `name` is static.
    let declaration = unsafe { ngx_http_add_variable(cf, &mut name, 0) };
    if declaration.is_null() {
        return None;
    }
    // SAFETY: ngx_http_add_variable returned a valid declaration.
    unsafe { (*declaration).get_handler = Some(not_found_getter) };
    // SAFETY: as above.
    let index = unsafe { ngx_http_get_variable_index(cf, &mut name) };
    if index == NGX_ERROR as ngx_int_t {
        return None;
    }
    Some(AssignableVariable {
        index,
        set_handler: None,
        set_data: 0,
        declaration,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn found_len_matches_the_bitfield_getters() {
        for len in [0usize, 1, 7, 255, 65_536, (1 << 28) - 1] {
            for not_found in [0, 1] {
                // SAFETY: all-zero values are valid plain data.
                let mut v: ngx_http_variable_value_t = unsafe { core::mem::zeroed() };
                v.set_len(len as _);
                v.set_valid(1);
                v.set_no_cacheable(1);
                v.set_escape(1);
                v.set_not_found(not_found);
                let want = (not_found == 0).then_some(len);
                assert_eq!(found_len(&v), want);
            }
        }
    }

    #[test]
    fn set_found_matches_the_bitfield_setters() {
        for len in [0usize, 1, 7, 255, 65_536, (1 << 28) - 1] {
            // SAFETY: all-zero values are valid plain data.
            let mut fast: ngx_http_variable_value_t = unsafe { core::mem::zeroed() };
            fast.set_not_found(1);
            fast.set_no_cacheable(1);
            set_found(&mut fast, len);
            assert_eq!(fast.len() as usize, len);
            assert_eq!(fast.valid(), 1);
            assert_eq!(fast.no_cacheable(), 0);
            assert_eq!(fast.not_found(), 0);
            assert_eq!(fast.escape(), 0);
        }
        assert!(
            found_template().is_some(),
            "fast path available on this target"
        );
    }
}
