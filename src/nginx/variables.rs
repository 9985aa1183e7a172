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
    slot.set_len(value.len as _);
    slot.set_valid(1);
    slot.set_no_cacheable(0);
    slot.set_not_found(0);
    slot.data = value.data;
    if let Some(set) = var.set_handler {
        // SAFETY: the handler belongs to this variable and gets the data it
        // was declared with.
        unsafe { set(r, slot, var.set_data) };
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

/// Declares a variable this module sets itself (such as
/// `$auth_http_result`): it reads empty until [`store`] gives it a value.
pub fn declare_result_variable(
    cf: &mut ngx_conf_t,
    name: &'static str,
) -> Option<AssignableVariable> {
    let name = ngx_str_t {
        len: name.len(),
        data: name.as_ptr().cast_mut(),
    };
    let variable = declare_assignable(cf, &name)?;
    // SAFETY: the declaration lives in the core module's configuration.
    let declaration = unsafe { &mut *variable.declaration };
    declaration.get_handler = Some(not_found_getter);
    Some(AssignableVariable {
        set_handler: None,
        ..variable
    })
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
pub fn get_indexed(r: &mut ngx_http_request_t, index: ngx_int_t) -> &[u8] {
    let Ok(index) = ngx_uint_t::try_from(index) else {
        return &[];
    };
    // SAFETY: `index` came from ngx_http_get_variable_index() at
    // configuration time; the value lives in the request pool.
    unsafe {
        let v = ngx_http_get_indexed_variable(r, index);
        if v.is_null() || (*v).not_found() != 0 || (*v).data.is_null() {
            return &[];
        }
        core::slice::from_raw_parts((*v).data, (*v).len() as usize)
    }
}
