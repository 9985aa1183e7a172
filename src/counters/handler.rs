//! The `authgate_status` content handler: a snapshot of the zone, in the
//! format the request asks for.
//!
//! The format: `?format=json|prometheus` when given; else the first of ours
//! the `Accept` header names (`application/json`; `text/plain` or
//! `application/openmetrics-text`, which Prometheus sends); else the
//! directive's. `GET` and `HEAD` only.

use nginx_sys::{
    ngx_http_discard_request_body, ngx_http_request_t, ngx_int_t, NGX_DECLINED, NGX_ERROR,
    NGX_HTTP_GET, NGX_HTTP_HEAD, NGX_HTTP_NOT_ALLOWED, NGX_HTTP_OK, NGX_OK,
};
use ngx::http::{HttpModuleLocationConf, HttpModuleMainConf};

use super::conf::zone_table;
use super::render::{render, Format, SeriesSnapshot, Snapshot};
use super::schema::SLOTS;
use super::StatusModule;
use crate::nginx::ffi::guard_status;
use crate::nginx::{args, headers_in, request, response};

/// The content handler.
///
/// # Safety
/// Called by nginx with a live request of an `authgate_status` location.
pub unsafe extern "C" fn status_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: nginx passes a live request.
    let r = unsafe { &mut *r };
    guard_status(request::log(r), || answer(r))
}

fn answer(r: &mut ngx_http_request_t) -> ngx_int_t {
    if r.method & (NGX_HTTP_GET | NGX_HTTP_HEAD) as usize == 0 {
        return NGX_HTTP_NOT_ALLOWED as ngx_int_t;
    }
    // SAFETY: the live request; nginx reads and drops any body.
    let rc = unsafe { ngx_http_discard_request_body(r) };
    if rc != NGX_OK as ngx_int_t {
        return rc;
    }
    let (Some(conf), Some(main)) = (StatusModule::location_conf(r), StatusModule::main_conf(r))
    else {
        return NGX_ERROR as ngx_int_t;
    };
    let Some(default) = conf.format else {
        return NGX_DECLINED as ngx_int_t;
    };
    let format = args::find(r.args.as_bytes(), b"format")
        .and_then(Format::parse)
        .or_else(|| {
            headers_in::find(r, b"Accept").and_then(|h| Format::from_accept(h.value.as_bytes()))
        })
        .unwrap_or(default);
    let mut snapshot = Snapshot {
        zone: main.zone_name.to_string(),
        ..Snapshot::default()
    };
    // SAFETY: the zone is this cycle's status zone (postconfiguration
    // refuses authgate_status without one), initialised before any request.
    if let Some(table) = unsafe { zone_table(main.zone) } {
        use core::sync::atomic::Ordering::Relaxed;
        let h = table.header;
        for s in table.iter() {
            let Some(kind) = s.kind() else { continue };
            let mut values = [0u64; SLOTS];
            for (i, v) in values.iter_mut().enumerate() {
                *v = s.value(i);
            }
            snapshot.series.push(SeriesSnapshot {
                kind,
                label: s.label().to_vec(),
                values,
            });
        }
        snapshot.process = [
            h.workers.load(Relaxed),
            h.reloads.load(Relaxed),
            snapshot.series.len() as u64,
            h.capacity,
            h.dropped.load(Relaxed),
        ];
    }
    let body = render(&snapshot, format);
    response::send(
        r,
        NGX_HTTP_OK as usize,
        format.content_type(),
        body.as_bytes(),
    )
}
