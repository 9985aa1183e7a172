//! `auth_request_upstream_header`: auth response headers set on the
//! request the upstream receives, spoof-proof.
//!
//! The client's copies (in every spelling an application takes for the
//! name: ASCII case folded, `_` equal to `-`, see
//! [`headers_in::same_name`]) are removed in the preaccess phase, before any
//! access check, in every request of a location where the directive is in
//! effect. So they are gone also when the auth service is not asked (a
//! `satisfy any` neighbour allowed first, `auth_request off`) and when it
//! refuses (an `error_page` target may proxy). When the auth response
//! allows, its headers of those names are added in the access phase.

use nginx_sys::{ngx_http_request_t, ngx_int_t, NGX_DECLINED};
use ngx::http::HttpModuleLocationConf;

use super::respond;
use super::AuthRequestModule;
use crate::nginx::ffi::guard_status;
use crate::nginx::{headers, headers_in, request, NgxError};

/// The preaccess-phase handler: removes the client's copies of the
/// configured headers.
///
/// # Safety
/// Called by nginx's phase engine with a live request.
pub unsafe extern "C" fn preaccess_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: the phase engine passes the live request.
    let r = unsafe { &mut *r };
    guard_status(request::log(r), || {
        let Some(conf) = AuthRequestModule::location_conf(r) else {
            return nginx_sys::NGX_ERROR as ngx_int_t;
        };
        let names: std::vec::Vec<&[u8]> = conf
            .ext
            .upstream_headers()
            .iter()
            .map(|n| n.as_bytes())
            .collect();
        if names.is_empty() {
            return NGX_DECLINED as ngx_int_t;
        }
        let removed = if core::ptr::eq(r, r.main) {
            headers_in::remove_any(r, &names).map(|_| ())
        } else {
            // A subrequest shares its parent's header list: it gets a list
            // of its own instead.
            headers::own_list_without(r, &names)
        };
        match removed {
            Ok(()) => NGX_DECLINED as ngx_int_t,
            Err(NgxError) => nginx_sys::NGX_ERROR as ngx_int_t,
        }
    })
}

/// The auth response allowed: adds each of its headers called one of
/// `names` to the request, under the configured name, in order.
pub fn set_from(
    r: &mut ngx_http_request_t,
    sr: &ngx_http_request_t,
    names: &[nginx_sys::ngx_str_t],
) -> Result<(), NgxError> {
    for name in names {
        for value in respond::values(sr, name.as_bytes()) {
            headers_in::push(r, name.as_bytes(), value.as_bytes())?;
        }
    }
    Ok(())
}
