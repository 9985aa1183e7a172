//! Upstream peer glue: wrapping the peer hooks of an upstream block's
//! balancer chain, and keeping idle upstream connections parked outside any
//! request (the way nginx's `keepalive` does), written once for any module
//! that needs it.
//!
//! * [`upstream_blocks`] — every `upstream {}` block of the configuration;
//! * [`keepalive_settings`] — a block's `keepalive_requests` and
//!   `keepalive_time`, as nginx's keepalive module stores them;
//! * [`InnerPeer`] — the hooks of the wrapped chain, saved per request, with
//!   forwarders for the TLS session and notify hooks;
//! * [`connection_reusable`] — nginx's own conditions for keeping an upstream
//!   connection after a request;
//! * [`park_idle`] / [`unpark`] / [`close_connection`] — an idle upstream
//!   connection's life outside requests: read events and a timer watch it,
//!   and its owner is told through an [`IdleHook`] when it is gone.

use core::ffi::{c_int, c_void};
use core::ptr;

use nginx_sys::{
    ngx_add_timer, ngx_close_connection, ngx_conf_t, ngx_connection_t, ngx_cycle, ngx_del_timer,
    ngx_destroy_pool, ngx_event_free_peer_pt, ngx_event_get_peer_pt, ngx_event_notify_peer_pt,
    ngx_event_t, ngx_exiting, ngx_handle_read_event, ngx_http_request_t,
    ngx_http_upstream_srv_conf_t, ngx_http_upstream_t, ngx_int_t, ngx_log_t, ngx_msec_t,
    ngx_peer_connection_t, ngx_terminate, ngx_uint_t, recv, MSG_PEEK, NGX_EAGAIN, NGX_ERROR,
    NGX_OK, NGX_PEER_FAILED,
};
#[cfg(any(ngx_feature = "ssl", ngx_feature = "compat"))]
use nginx_sys::{ngx_event_save_peer_session_pt, ngx_event_set_peer_session_pt};
use ngx::http::{HttpModuleMainConf, NgxHttpUpstreamModule};

use super::bitfield;
use super::conf::find_module;
use super::ffi::guard;
use super::NgxError;

/// Every `upstream {}` block (and implicit upstream) of the configuration.
pub fn upstream_blocks(cf: &ngx_conf_t) -> &[*mut ngx_http_upstream_srv_conf_t] {
    let Some(umcf) = NgxHttpUpstreamModule::main_conf(cf) else {
        return &[];
    };
    // SAFETY: umcf->upstreams is an array of ngx_http_upstream_srv_conf_t
    // pointers in the configuration pool.
    unsafe {
        umcf.upstreams
            .as_slice::<*mut ngx_http_upstream_srv_conf_t>()
    }
}

/// `keepalive_requests` and `keepalive_time` of upstream block `uscf`
/// (`None`: not set in the block, or nginx lacks the keepalive module).
///
/// The keepalive module's configuration structure is private to its C file
/// and its layout changes between releases, so the fields are found the way
/// nginx itself writes them: through the `offset` of the module's own
/// directive table entries.
pub fn keepalive_settings(
    cf: &ngx_conf_t,
    uscf: &ngx_http_upstream_srv_conf_t,
) -> (Option<ngx_uint_t>, Option<ngx_msec_t>) {
    // SAFETY: cf->cycle is the cycle being configured.
    let Some(cycle) = (unsafe { cf.cycle.as_ref() }) else {
        return (None, None);
    };
    let Some(module) = find_module(cycle, "ngx_http_upstream_keepalive_module") else {
        return (None, None);
    };
    if module.commands.is_null() || uscf.srv_conf.is_null() {
        return (None, None);
    }
    // SAFETY: an upstream block's srv_conf array has an entry for every
    // HTTP module's ctx_index; the keepalive module creates its structure.
    let conf = unsafe { *uscf.srv_conf.add(module.ctx_index) }.cast::<u8>();
    if conf.is_null() {
        return (None, None);
    }
    let field = |name: &[u8]| -> Option<ngx_uint_t> {
        let mut cmd = module.commands;
        // SAFETY: a module's command table ends with an entry whose name is
        // empty; `offset` is where that directive's slot function writes in
        // the structure at `conf`, an ngx_uint_t (ngx_msec_t is one too)
        // for both directives looked up here.
        unsafe {
            while (*cmd).name.len != 0 {
                if (*cmd).name.as_bytes() == name
                    && (*cmd).conf == nginx_sys::NGX_HTTP_SRV_CONF_OFFSET
                {
                    let value = conf
                        .add((*cmd).offset)
                        .cast::<ngx_uint_t>()
                        .read_unaligned();
                    return (value != ngx_uint_t::MAX).then_some(value);
                }
                cmd = cmd.add(1);
            }
        }
        None
    };
    (
        field(b"keepalive_requests"),
        field(b"keepalive_time").map(|t| t as ngx_msec_t),
    )
}

/// The peer hooks a wrapper replaced, saved per request.
///
/// A wrapper's per-request peer data must be `#[repr(C)]` and start with an
/// `InnerPeer`: the forwarding hooks installed by [`InnerPeer::wrap`] cast
/// the peer data to it.
#[repr(C)]
pub struct InnerPeer {
    pub data: *mut c_void,
    pub get: ngx_event_get_peer_pt,
    pub free: ngx_event_free_peer_pt,
    pub notify: ngx_event_notify_peer_pt,
    #[cfg(any(ngx_feature = "ssl", ngx_feature = "compat"))]
    pub set_session: ngx_event_set_peer_session_pt,
    #[cfg(any(ngx_feature = "ssl", ngx_feature = "compat"))]
    pub save_session: ngx_event_save_peer_session_pt,
}

impl InnerPeer {
    /// Saves `pc`'s hooks into `*wrapper` and installs `get`/`free` with
    /// `wrapper` as peer data; notify and the TLS session hooks, when set,
    /// are forwarded to the saved ones unchanged.
    ///
    /// # Safety
    /// `wrapper` must point to writable memory that starts with an
    /// `InnerPeer` and lives as long as the request (its pool).
    pub unsafe fn wrap(
        pc: &mut ngx_peer_connection_t,
        wrapper: *mut InnerPeer,
        get: ngx_event_get_peer_pt,
        free: ngx_event_free_peer_pt,
    ) {
        // SAFETY: per the contract, `wrapper` is valid for writes.
        unsafe {
            wrapper.write(InnerPeer {
                data: pc.data,
                get: pc.get,
                free: pc.free,
                notify: pc.notify,
                #[cfg(any(ngx_feature = "ssl", ngx_feature = "compat"))]
                set_session: pc.set_session,
                #[cfg(any(ngx_feature = "ssl", ngx_feature = "compat"))]
                save_session: pc.save_session,
            });
        }
        pc.data = wrapper.cast();
        pc.get = get;
        pc.free = free;
        if pc.notify.is_some() {
            pc.notify = Some(forward_notify);
        }
        #[cfg(any(ngx_feature = "ssl", ngx_feature = "compat"))]
        {
            if pc.set_session.is_some() {
                pc.set_session = Some(forward_set_session);
            }
            if pc.save_session.is_some() {
                pc.save_session = Some(forward_save_session);
            }
        }
    }

    /// Installs `get`/`free` with `wrapper` as peer data *without* running
    /// the wrapped chain's initialiser: for a request that is given a
    /// connection the wrapper holds, so that the balancer (and `keepalive`)
    /// would only be set up to be left unused. `*wrapper`'s saved hooks are
    /// empty until [`init_chain`](Self::init_chain) runs (call it before
    /// [`get`](Self::get) or [`free`](Self::free) when the request needs the
    /// balancer after all). `tries` as nginx's retry decisions should see
    /// them (what the chain's initialiser gives), no notify hook; the TLS session hooks
    /// do nothing: a held connection has its session, and one it is sent
    /// later belongs to no peer the balancer picked (the balancer's own hooks
    /// would save it into the peer of its last pick, which has none yet).
    ///
    /// # Safety
    /// As for [`wrap`](Self::wrap).
    pub unsafe fn wrap_without_chain(
        pc: &mut ngx_peer_connection_t,
        wrapper: *mut InnerPeer,
        get: ngx_event_get_peer_pt,
        free: ngx_event_free_peer_pt,
        tries: ngx_uint_t,
    ) {
        // SAFETY: per the contract, `wrapper` is valid for writes.
        unsafe { wrapper.write(InnerPeer::EMPTY) };
        pc.data = wrapper.cast();
        pc.get = get;
        pc.free = free;
        pc.notify = None;
        pc.tries = tries;
        #[cfg(any(ngx_feature = "ssl", ngx_feature = "compat"))]
        {
            pc.set_session = Some(held_set_session);
            pc.save_session = Some(held_save_session);
        }
    }

    /// Runs the wrapped chain's initialiser `init` now for request `r` of
    /// block `us`, as nginx would have before connecting (the peer hooks
    /// reset first, the tries capped by `proxy_next_upstream_tries` after),
    /// and wraps the hooks it installed, as [`wrap`](Self::wrap) does.
    /// Returns what `init` returned.
    ///
    /// # Safety
    /// `r` must be the live request whose upstream's peer connection is
    /// `pc` and was set up with [`wrap_without_chain`](Self::wrap_without_chain);
    /// `us` its upstream block, `init` the chain's initialiser; nothing may
    /// hold a reference into `*pc` across this call.
    pub unsafe fn init_chain(
        r: *mut ngx_http_request_t,
        us: *mut ngx_http_upstream_srv_conf_t,
        init: unsafe extern "C" fn(
            *mut ngx_http_request_t,
            *mut ngx_http_upstream_srv_conf_t,
        ) -> ngx_int_t,
        pc: *mut ngx_peer_connection_t,
        wrapper: *mut InnerPeer,
    ) -> ngx_int_t {
        // SAFETY: per the contract, `pc` is live and not borrowed.
        let (get, free) = unsafe {
            let saved = ((*pc).get, (*pc).free);
            (*pc).data = ptr::null_mut();
            (*pc).get = None;
            (*pc).free = None;
            (*pc).notify = None;
            (*pc).tries = 0;
            #[cfg(any(ngx_feature = "ssl", ngx_feature = "compat"))]
            {
                (*pc).set_session = None;
                (*pc).save_session = None;
            }
            saved
        };
        // SAFETY: the chain's initialiser with nginx's own arguments; it
        // writes the hooks of `r->upstream->peer`, which is `*pc`.
        let rc = unsafe { init(r, us) };
        if rc != NGX_OK as ngx_int_t {
            return rc;
        }
        // SAFETY: per the contract; as ngx_http_upstream_init_request does
        // after the initialiser (u->conf is the location's upstream conf).
        unsafe {
            let conf = (*(*r).upstream).conf;
            if let Some(conf) = conf.as_ref() {
                if conf.next_upstream_tries != 0 && (*pc).tries > conf.next_upstream_tries {
                    (*pc).tries = conf.next_upstream_tries;
                }
            }
            Self::wrap(&mut *pc, wrapper, get, free);
        }
        NGX_OK as ngx_int_t
    }

    const EMPTY: InnerPeer = InnerPeer {
        data: ptr::null_mut(),
        get: None,
        free: None,
        notify: None,
        #[cfg(any(ngx_feature = "ssl", ngx_feature = "compat"))]
        set_session: None,
        #[cfg(any(ngx_feature = "ssl", ngx_feature = "compat"))]
        save_session: None,
    };

    /// Asks the wrapped chain for a peer.
    pub fn get(&self, pc: &mut ngx_peer_connection_t) -> ngx_int_t {
        match self.get {
            // SAFETY: the saved hook with the data it was installed with.
            Some(get) => unsafe { get(pc, self.data) },
            None => NGX_ERROR as ngx_int_t,
        }
    }

    /// Tells the wrapped chain the attempt it served is over. Call only
    /// after [`get`](Self::get) was called for this attempt.
    pub fn free(&self, pc: &mut ngx_peer_connection_t, state: ngx_uint_t) {
        if let Some(free) = self.free {
            // SAFETY: as in get().
            unsafe { free(pc, self.data, state) };
        }
    }
}

unsafe extern "C" fn forward_notify(
    pc: *mut ngx_peer_connection_t,
    data: *mut c_void,
    kind: ngx_uint_t,
) {
    // SAFETY: installed by InnerPeer::wrap with data starting with an InnerPeer.
    let inner = unsafe { &*data.cast::<InnerPeer>() };
    guard((*pc).log, (), || {
        if let Some(notify) = inner.notify {
            // SAFETY: the saved hook with its own data.
            unsafe { notify(pc, inner.data, kind) };
        }
    })
}

/// The TLS session hooks of a request on a held connection (see
/// [`InnerPeer::wrap_without_chain`]): nothing to restore, nothing to save.
#[cfg(any(ngx_feature = "ssl", ngx_feature = "compat"))]
unsafe extern "C" fn held_set_session(
    _pc: *mut ngx_peer_connection_t,
    _data: *mut c_void,
) -> ngx_int_t {
    NGX_OK as ngx_int_t
}

#[cfg(any(ngx_feature = "ssl", ngx_feature = "compat"))]
unsafe extern "C" fn held_save_session(_pc: *mut ngx_peer_connection_t, _data: *mut c_void) {}

#[cfg(any(ngx_feature = "ssl", ngx_feature = "compat"))]
unsafe extern "C" fn forward_set_session(
    pc: *mut ngx_peer_connection_t,
    data: *mut c_void,
) -> ngx_int_t {
    // SAFETY: installed by InnerPeer::wrap with data starting with an InnerPeer.
    let inner = unsafe { &*data.cast::<InnerPeer>() };
    // SAFETY: nginx passes the live peer connection.
    let log = unsafe { (*pc).log };
    guard(log, NGX_ERROR as ngx_int_t, || match inner.set_session {
        // SAFETY: the saved hook with its own data.
        Some(set) => unsafe { set(pc, inner.data) },
        None => NGX_OK as ngx_int_t,
    })
}

#[cfg(any(ngx_feature = "ssl", ngx_feature = "compat"))]
unsafe extern "C" fn forward_save_session(pc: *mut ngx_peer_connection_t, data: *mut c_void) {
    // SAFETY: installed by InnerPeer::wrap with data starting with an InnerPeer.
    let inner = unsafe { &*data.cast::<InnerPeer>() };
    // SAFETY: nginx passes the live peer connection.
    let log = unsafe { (*pc).log };
    guard(log, (), || {
        if let Some(save) = inner.save_session {
            // SAFETY: the saved hook with its own data.
            unsafe { save(pc, inner.data) };
        }
    })
}

/// nginx's conditions (those of `keepalive`) for keeping upstream connection
/// `c` after request upstream `u` is done with it: the attempt did not fail,
/// no read/write error, timeout or EOF, the upstream allowed keep-alive
/// (`u->keepalive`: complete response, no `Connection: close`), the request
/// body was sent completely, and the worker is not shutting down.
pub fn connection_reusable(
    c: Option<&ngx_connection_t>,
    u: &ngx_http_upstream_t,
    state: ngx_uint_t,
) -> bool {
    let Some(c) = c.filter(|_| state & NGX_PEER_FAILED as ngx_uint_t == 0) else {
        return false;
    };
    // SAFETY: a live connection's events are live.
    let (rev, wev) = unsafe { (&*c.read, &*c.write) };
    if bitfield::event::eof(rev)
        || bitfield::event::error(rev)
        || bitfield::event::timedout(rev)
        || bitfield::event::error(wev)
        || bitfield::event::timedout(wev)
    {
        return false;
    }
    // SAFETY: plain reads of the worker's process-state flags.
    let stopping = unsafe { ngx_terminate != 0 || ngx_exiting != 0 };
    bitfield::upstream::keepalive(u) && bitfield::upstream::request_body_sent(u) && !stopping
}

/// The owner of a parked connection. Embed it first in a `#[repr(C)]`
/// owner; `lost` is called when the connection must go (peer closed it or
/// sent something, idle timeout, worker shutdown) — it must forget the
/// connection, which the glue then closes.
#[repr(C)]
pub struct IdleHook {
    pub lost: unsafe fn(hook: *mut IdleHook),
}

/// Parks idle upstream connection `c`, no longer owned by any request:
/// read events (peer close, unexpected data) and a `timeout` timer watch
/// it; when either fires, `hook.lost` runs and the connection is closed.
/// Fails (and changes nothing) when the connection is already unusable;
/// the caller then closes it.
///
/// # Safety
/// `c` must be a live upstream connection that no request uses any more;
/// `hook` must stay valid until it is called or [`unpark`] is.
pub unsafe fn park_idle(
    c: *mut ngx_connection_t,
    timeout: ngx_msec_t,
    hook: *mut IdleHook,
) -> Result<(), NgxError> {
    // SAFETY: per the contract, `c` and its events are live.
    unsafe {
        let c = &mut *c;
        if ngx_handle_read_event(c.read, 0) != NGX_OK as ngx_int_t {
            return Err(NgxError);
        }
        if bitfield::event::ready(&*c.read) && !peer_quiet(c) {
            return Err(NgxError);
        }
        bitfield::event::set_delayed(&mut *c.read, false);
        ngx_add_timer(c.read, timeout);
        if bitfield::event::timer_set(&*c.write) {
            ngx_del_timer(c.write);
        }
        (*c.write).handler = Some(idle_write_handler);
        (*c.read).handler = Some(idle_read_handler);
        c.data = hook.cast();
        bitfield::connection::set_idle(c, true);
        let log = (*ngx_cycle).log;
        c.log = log;
        (*c.read).log = log;
        (*c.write).log = log;
        if !c.pool.is_null() {
            (*c.pool).log = log;
        }
    }
    Ok(())
}

/// Takes parked connection `c` back for a request logging to `log`.
///
/// # Safety
/// `c` must have been parked with [`park_idle`] and not closed since.
pub unsafe fn unpark(c: *mut ngx_connection_t, log: *mut ngx_log_t) {
    // SAFETY: per the contract, `c` and its events are live.
    unsafe {
        let c = &mut *c;
        bitfield::connection::set_idle(c, false);
        c.sent = 0;
        c.data = ptr::null_mut();
        c.log = log;
        (*c.read).log = log;
        (*c.write).log = log;
        if !c.pool.is_null() {
            (*c.pool).log = log;
        }
        if bitfield::event::timer_set(&*c.read) {
            ngx_del_timer(c.read);
        }
    }
}

/// Closes upstream connection `c` without waiting for the peer: TLS
/// shutdown without close-notify exchange, then its pool and socket.
///
/// # Safety
/// `c` must be a live upstream connection nobody else will use or close.
pub unsafe fn close_connection(c: *mut ngx_connection_t) {
    #[cfg(ngx_feature = "ssl")]
    // SAFETY: per the contract, `c` is live; c->ssl is its TLS state.
    unsafe {
        if !(*c).ssl.is_null() {
            bitfield::ssl::set_no_wait_shutdown(&mut *(*c).ssl, true);
            bitfield::ssl::set_no_send_shutdown(&mut *(*c).ssl, true);
            if nginx_sys::ngx_ssl_shutdown(c) == NGX_EAGAIN as ngx_int_t {
                (*(*c).ssl).handler = Some(close_after_ssl_shutdown);
                return;
            }
        }
    }
    // SAFETY: per the contract; the pool belongs to the connection.
    unsafe {
        if !(*c).pool.is_null() {
            ngx_destroy_pool((*c).pool);
            (*c).pool = ptr::null_mut();
        }
        ngx_close_connection(c);
    }
}

#[cfg(ngx_feature = "ssl")]
unsafe extern "C" fn close_after_ssl_shutdown(c: *mut ngx_connection_t) {
    // SAFETY: nginx calls the handler with the connection being shut down.
    let log = unsafe { (*c).log };
    // SAFETY: as above; nobody else owns the connection any more.
    guard(log, (), || unsafe { close_connection(c) })
}

/// Whether the peer of idle connection `c` has neither closed it nor sent
/// anything (a 1-byte `MSG_PEEK`); re-arms the read event when quiet.
fn peer_quiet(c: &mut ngx_connection_t) -> bool {
    let mut byte = 0u8;
    // SAFETY: a 1-byte peek into a local buffer on the connection's socket.
    let n = unsafe { recv(c.fd, ptr::from_mut(&mut byte).cast(), 1, MSG_PEEK as c_int) };
    if n == -1 && std::io::Error::last_os_error().raw_os_error() == Some(NGX_EAGAIN as i32) {
        // SAFETY: the connection's live read event.
        unsafe {
            bitfield::event::set_ready(&mut *c.read, false);
            return ngx_handle_read_event(c.read, 0) == NGX_OK as ngx_int_t;
        }
    }
    false
}

unsafe extern "C" fn idle_read_handler(ev: *mut ngx_event_t) {
    // SAFETY: nginx passes the parked connection's read event; its data is
    // the connection, whose data is the IdleHook set by park_idle().
    let (ev, c) = unsafe { (&mut *ev, (*ev).data.cast::<ngx_connection_t>()) };
    // SAFETY: as above.
    let log = unsafe { (*c).log };
    guard(log, (), || {
        // SAFETY: as above; the connection stays live until closed here.
        unsafe {
            let keep = !bitfield::connection::close(&*c)
                && !bitfield::event::timedout(ev)
                && peer_quiet(&mut *c);
            if keep {
                return;
            }
            let hook = (*c).data.cast::<IdleHook>();
            ((*hook).lost)(hook);
            close_connection(c);
        }
    })
}

unsafe extern "C" fn idle_write_handler(_ev: *mut ngx_event_t) {}
