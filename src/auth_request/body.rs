//! `auth_request_body on [max=size]`: the client's request body, read in
//! the access phase ([`crate::nginx::client_body`], which keeps it whole
//! for the main request's upstream), goes to the auth service too: a copy
//! of at most `max` bytes with its own `Content-Length`.

use nginx_sys::{ngx_http_request_body_t, ngx_http_request_t, ngx_str_t};

pub use crate::nginx::client_body::BodyStep;
use crate::nginx::{client_body, subrequest, NgxError};

/// Reads the client's body (first call) or returns it (once read).
pub fn prepare(r: &mut ngx_http_request_t, max: usize) -> BodyStep {
    client_body::prepare(r, max, "auth request body")
}

/// Gives the auth subrequest `sr`, just started by `subrequest::start()`,
/// the body.
pub fn attach(sr: &mut ngx_http_request_t, body: ngx_str_t) -> Result<(), NgxError> {
    // SAFETY: subrequest::start() gives a subrequest a request body
    // structure of its own, in the request pool.
    let Some(own) = (unsafe { sr.request_body.as_mut() }) else {
        return Err(NgxError);
    };
    let own: *mut ngx_http_request_body_t = own;
    // SAFETY: `own` is the subrequest's own body structure, not aliased.
    subrequest::attach_body(sr, unsafe { &mut *own }, body)
}
