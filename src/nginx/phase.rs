//! Access-phase registration.
//!
//! nginx builds its phase engine by walking each phase's handler array from
//! the last element to the first, so the handler registered last runs first.
//! Built-in modules register before any dynamically loaded one; a loaded
//! module that simply appends its handler (the ngx-rust examples' pattern)
//! would therefore run *before* `allow`/`deny` and `auth_basic`.
//!
//! nginx's own C `auth_request` module sits earlier in the module list than
//! `auth_basic` and `access`, so it runs after them. We reproduce that by
//! inserting our handler at the front of the array: it then runs after every
//! access handler registered before it. That ordering matters for
//! `satisfy all|any` (the first failing handler decides under `all`) and for
//! not calling an auth service for a client `deny` already refused.

use nginx_sys::{
    ngx_array_push, ngx_conf_t, ngx_http_handler_pt, ngx_http_phases_NGX_HTTP_ACCESS_PHASE,
    ngx_http_request_t, ngx_int_t, NGX_ERROR, NGX_OK,
};
use ngx::http::{HttpModuleMainConf, NgxHttpCoreModule};

use super::ffi::guard_status;

/// Inserts `handler` at the front of the access-phase handler array.
///
/// Call from a module's `postconfiguration`. Among this project's modules,
/// the one that registers last (latest in the module table) runs last.
pub fn register_access_handler_first(cf: &mut ngx_conf_t, handler: ngx_http_handler_pt) -> bool {
    let Some(cmcf) = NgxHttpCoreModule::main_conf_mut(cf) else {
        return false;
    };
    let handlers = &mut cmcf.phases[ngx_http_phases_NGX_HTTP_ACCESS_PHASE as usize].handlers;

    // SAFETY: `handlers` is the core module's access-phase array, created by
    // ngx_http_init_phases() with element size sizeof(ngx_http_handler_pt)
    // and allocated in the configuration pool.
    let slot = unsafe { ngx_array_push(handlers) }.cast::<ngx_http_handler_pt>();
    if slot.is_null() {
        return false;
    }
    // SAFETY: as above; the push succeeded, so all `nelts` elements,
    // including the new last one, are initialised after this write.
    unsafe {
        slot.write(handler);
        let all = handlers.as_slice_mut::<ngx_http_handler_pt>();
        all.rotate_right(1);
    }
    true
}

/// Appends `handler` to the handlers of `phase` (e.g.
/// `ngx_http_phases_NGX_HTTP_PREACCESS_PHASE`), for work that must happen
/// in every request of a location before any access check decides.
pub fn register_handler(
    cf: &mut ngx_conf_t,
    phase: nginx_sys::ngx_http_phases,
    handler: ngx_http_handler_pt,
) -> bool {
    let Some(cmcf) = NgxHttpCoreModule::main_conf_mut(cf) else {
        return false;
    };
    let handlers = &mut cmcf.phases[phase as usize].handlers;
    // SAFETY: the core module's phase array, created by
    // ngx_http_init_phases() with element size sizeof(ngx_http_handler_pt).
    let slot = unsafe { ngx_array_push(handlers) }.cast::<ngx_http_handler_pt>();
    if slot.is_null() {
        return false;
    }
    // SAFETY: the push succeeded; the new element is written once here.
    unsafe { slot.write(handler) };
    true
}

/// A whole `postconfiguration` for a mechanism whose only nginx hook is an
/// access handler: registers it with [`register_access_handler_first`] —
/// only when `used` says the configuration enables the mechanism somewhere,
/// so that a loaded but unused mechanism costs requests nothing.
///
/// # Safety
/// Call from a module's `postconfiguration` with the `cf` nginx passed.
pub unsafe fn postconfiguration_access(
    cf: *mut ngx_conf_t,
    handler: unsafe extern "C" fn(*mut ngx_http_request_t) -> ngx_int_t,
    used: fn(&ngx_conf_t) -> bool,
) -> ngx_int_t {
    // SAFETY: per the contract, the configuration being finalised.
    let cf = unsafe { &mut *cf };
    guard_status(cf.log, || {
        if !used(cf) || register_access_handler_first(cf, Some(handler)) {
            NGX_OK as ngx_int_t
        } else {
            NGX_ERROR as ngx_int_t
        }
    })
}
