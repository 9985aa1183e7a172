//! Pausing a request without blocking the worker.
//!
//! An access handler that wants to try again later calls [`pause`] and
//! returns `NGX_AGAIN`. The request then sleeps on its connection's write
//! event timer (the technique nginx's `limit_req` uses for delays, which
//! also works for HTTP/2 streams); when the timer fires, the phase engine
//! runs again and calls the handler, which sees [`is_paused`] false and
//! goes on. Meanwhile the worker serves everyone else. If the client goes
//! away, nginx finalises the request and the timer with it.

use nginx_sys::{
    ngx_add_timer, ngx_handle_read_event, ngx_handle_write_event, ngx_http_block_reading,
    ngx_http_core_run_phases, ngx_http_finalize_request, ngx_http_request_t, ngx_http_test_reading,
    ngx_int_t, ngx_msec_t, NGX_ERROR, NGX_OK,
};

use super::bitfield;
use super::ffi::guard;
use super::request;

/// Puts `r` to sleep for `ms` milliseconds.
pub fn pause(r: &mut ngx_http_request_t, ms: u64) {
    // SAFETY: a live request has a live connection whose write event
    // belongs to it while no subrequest is active.
    let wev = unsafe { &mut *(*r.connection).write };
    r.read_event_handler = Some(ngx_http_test_reading);
    r.write_event_handler = Some(wake);
    bitfield::event::set_delayed(wev, true);
    // SAFETY: `wev` is a valid event of the request's connection.
    unsafe { ngx_add_timer(wev, ms as ngx_msec_t) };
}

/// Whether `r` is still sleeping after [`pause`].
pub fn is_paused(r: &ngx_http_request_t) -> bool {
    // SAFETY: as in pause().
    unsafe { bitfield::event::delayed(&*(*r.connection).write) }
}

/// Write-event handler while paused: once the timer has fired (nginx's
/// request handler clears `delayed` then), resume the phases.
unsafe extern "C" fn wake(r: *mut ngx_http_request_t) {
    // SAFETY: nginx calls the write-event handler with the live request.
    let r = unsafe { &mut *r };
    guard(request::log(r), (), || {
        // SAFETY: connection and its events live as long as the request.
        let (rev, wev) = unsafe { ((*r.connection).read, (*r.connection).write) };
        // SAFETY: as above.
        if unsafe { bitfield::event::delayed(&*wev) } {
            // Woken by something else than the timer: keep waiting.
            if unsafe { ngx_handle_write_event(wev, 0) } != NGX_OK as ngx_int_t {
                unsafe { ngx_http_finalize_request(r, NGX_ERROR as ngx_int_t) };
            }
            return;
        }
        // SAFETY: as above.
        if unsafe { ngx_handle_read_event(rev, 0) } != NGX_OK as ngx_int_t {
            unsafe { ngx_http_finalize_request(r, NGX_ERROR as ngx_int_t) };
            return;
        }
        r.read_event_handler = Some(ngx_http_block_reading);
        r.write_event_handler = Some(ngx_http_core_run_phases);
        // SAFETY: resuming the phase engine of the live request, as nginx's
        // own request handler would.
        unsafe { ngx_http_core_run_phases(r) };
    })
}
