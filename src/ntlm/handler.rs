//! The peer hooks: one request's way through `ntlm`.
//!
//! * [`init_peer`] — notes what the decisions need: is the client
//!   multiplexed (HTTP/2, HTTP/3), does its connection have a binding in this
//!   upstream block, does the request carry NTLM/Negotiate credentials; and
//!   runs the wrapped chain's initialiser. For a client with an idle
//!   binding (its request is *held*: it will get that connection) neither
//!   the chain nor the credentials are looked at until that connection
//!   fails and the request needs the balancer (`ensure_chain`): the common
//!   request of a bound client costs a pointer walk, not a balancer set-up
//!   and a scan of the request head;
//! * `get` — a client with an idle binding gets exactly its own upstream
//!   connection (same server, same socket); anybody else asks the balancer;
//! * `free` — parks the connection as the client's binding, closes it, or
//!   hands it back to the chain untouched ([`super::binding::on_free`]).
//!
//! A binding ([`ClientBinding`]) lives in the client connection's pool and
//! dies with it: its pool cleanup closes the bound upstream connection. No
//! table is keyed by anything a later client connection could reuse; the
//! LRU list of idle bound connections refers to bindings through
//! generation-checked handles, and every path that drops a binding (client
//! close, upstream close, timeout, eviction, failure) removes both sides.

use core::ffi::c_void;
use core::ptr;

use nginx_sys::{
    ngx_atomic_uint_t, ngx_chain_t, ngx_connection_t, ngx_current_msec, ngx_http_request_t,
    ngx_http_upstream_srv_conf_t, ngx_http_upstream_t, ngx_int_t, ngx_log_t, ngx_palloc,
    ngx_pcalloc, ngx_peer_connection_t, ngx_pnalloc, ngx_sockaddr_t, ngx_str_t, ngx_uint_t,
    socklen_t, NGX_DONE, NGX_ERROR, NGX_HTTP_VERSION_20, NGX_LOG_INFO, NGX_OK, NGX_PEER_FAILED,
    NGX_PEER_NEXT,
};
use ngx::http::HttpModuleServerConf;

use super::binding::{
    not_bound_reason, on_free, on_get, Attempt, BindingState, FreeAction, FreeFacts,
};
use super::conf::UpstreamState;
use super::credentials::{binds, head_binds};
use super::lru::Handle;
use super::NtlmModule;
use crate::counters::{schema::ntlm as slots, Counter};
use crate::nginx::bitfield;
use crate::nginx::ffi::guard;
use crate::nginx::headers_in;
use crate::nginx::pool::{add_cleanup, find_cleanup};
use crate::nginx::upstream::{
    close_connection, connection_reusable, park_idle, unpark, IdleHook, InnerPeer,
};

/// A debug-level line (nginx built `--with-debug`, `error_log … debug`).
fn debug(log: *mut ngx_log_t, message: core::fmt::Arguments<'_>) {
    if !log.is_null() {
        ngx::ngx_log_debug!(mask: ngx::log::DebugMask::Http, log, "ntlm: {}", message);
    }
}

/// The log of the cycle, for events outside any request.
fn cycle_log() -> *mut ngx_log_t {
    ngx::log::ngx_cycle_log().as_ptr()
}

/// An entry of the idle LRU list: the binding whose connection is parked.
#[derive(Clone, Copy)]
pub struct IdleEntry {
    binding: *mut ClientBinding,
}

/// One client connection's binding in one upstream block. Allocated in the
/// client connection's pool; its pool cleanup closes what it holds.
#[repr(C)]
pub struct ClientBinding {
    /// First: the idle-connection glue calls `hook.lost`.
    hook: IdleHook,
    upstream: *mut UpstreamState,
    /// `c->number` of the client connection (unique per nginx run).
    client_number: ngx_atomic_uint_t,
    state: BindingState,
    /// The LRU entry while `Idle`.
    handle: Option<Handle>,
    /// The bound upstream connection while `Idle` or `InUse`.
    connection: *mut ngx_connection_t,
    /// The bound server, for `$upstream_addr` and the peer connection.
    sockaddr: ngx_sockaddr_t,
    socklen: socklen_t,
    name: ngx_str_t,
}

/// Per-request peer data.
#[repr(C)]
struct NtlmPeer {
    /// First: the glue's forwarding hooks cast the peer data to it.
    inner: InnerPeer,
    upstream: *mut UpstreamState,
    u: *mut ngx_http_upstream_t,
    /// The request and its upstream block, for initialising the wrapped
    /// chain later ([`ensure_chain`]).
    request: *mut ngx_http_request_t,
    block: *mut ngx_http_upstream_srv_conf_t,
    /// Whether the wrapped chain was initialised (`inner` holds its hooks).
    chain_ready: bool,
    client: *mut ngx_connection_t,
    credentials: bool,
    multiplexed: bool,
    /// The client's binding in this upstream block, once it has one.
    binding: *mut ClientBinding,
    /// The attempt `get` started and `free` has not ended yet.
    attempt: Option<Attempt>,
}

/// `peer.init` of every upstream block with `ntlm`.
///
/// # Safety
/// Called by nginx's upstream module with a live request and its block.
pub unsafe extern "C" fn init_peer(
    r: *mut ngx_http_request_t,
    us: *mut ngx_http_upstream_srv_conf_t,
) -> ngx_int_t {
    // SAFETY: nginx passes the live request and upstream block.
    let (r, us) = unsafe { (&mut *r, &mut *us) };
    // SAFETY: a request's connection and its log are live.
    let log = unsafe { (*r.connection).log };
    guard(log, NGX_ERROR as ngx_int_t, || {
        let Some(state) = NtlmModule::server_conf(us).map(|c| c.upstream) else {
            return NGX_ERROR as ngx_int_t;
        };
        if state.is_null() {
            return NGX_ERROR as ngx_int_t;
        }
        // SAFETY: built at configuration time, per worker, never freed.
        let Some(original) = (unsafe { (*state).original_init_peer }) else {
            return NGX_ERROR as ngx_int_t;
        };
        if r.upstream.is_null() {
            return NGX_ERROR as ngx_int_t;
        }
        let multiplexed = r.http_version >= NGX_HTTP_VERSION_20 as ngx_uint_t;
        let client = r.connection;
        let binding = if multiplexed {
            ptr::null_mut()
        } else {
            // SAFETY: the client connection is live for the request.
            unsafe { find_binding(client, state) }
        };
        // SAFETY: a binding lives in the client pool, alive for the request.
        let held =
            unsafe { binding.as_ref() }.is_some_and(|b| on_get(Some(b.state)) == Attempt::Bound);
        // A client with an idle bound connection gets it in `get`, without
        // the balancer: its chain (balancer, keepalive) is only initialised
        // if that connection fails and the request goes to the balancer.
        if !held {
            // SAFETY: the wrapped chain's initialiser, with its own arguments.
            let rc = unsafe { original(r, us) };
            if rc != NGX_OK as ngx_int_t {
                return rc;
            }
            // SAFETY: the upstream state is per worker, never freed; the
            // chain just set the upstream's tries.
            unsafe { (*state).chain_tries = (*r.upstream).peer.tries };
        }
        // SAFETY: allocation in the live request pool, sized for NtlmPeer
        // (pool memory is aligned for pointers); every field is written below.
        let peer = unsafe { ngx_palloc(r.pool, size_of::<NtlmPeer>()) }.cast::<NtlmPeer>();
        if peer.is_null() {
            return NGX_ERROR as ngx_int_t;
        }
        // Only a request that may end on a connection of the balancer needs
        // to know: for one on the held connection it is found out when
        // that connection fails ([`ensure_chain`]), which saves scanning
        // the request head of every request of a bound client (after the
        // handshake, browsers send no Authorization).
        let credentials = !held && request_credentials(r, false);
        // SAFETY: `peer` is fresh request-pool memory; the upstream's peer
        // connection is live (initialised by the wrapped chain above, or
        // by nginx and set up here without it).
        unsafe {
            ptr::addr_of_mut!((*peer).upstream).write(state);
            ptr::addr_of_mut!((*peer).u).write(r.upstream);
            ptr::addr_of_mut!((*peer).request).write(ptr::from_mut(r));
            ptr::addr_of_mut!((*peer).block).write(ptr::from_mut(us));
            ptr::addr_of_mut!((*peer).chain_ready).write(!held);
            ptr::addr_of_mut!((*peer).client).write(client);
            ptr::addr_of_mut!((*peer).credentials).write(credentials);
            ptr::addr_of_mut!((*peer).multiplexed).write(multiplexed);
            ptr::addr_of_mut!((*peer).binding).write(binding);
            ptr::addr_of_mut!((*peer).attempt).write(None);
            let pc = &mut (*r.upstream).peer;
            let inner = peer.cast::<InnerPeer>();
            if held {
                // nginx decides on retries (proxy_next_upstream) from the
                // tries before it calls `free`: as many as the chain gave the
                // last request that initialised it (every bound client's
                // first request did), so they are decided as with the chain.
                let tries = (*state).chain_tries;
                InnerPeer::wrap_without_chain(pc, inner, Some(get_peer), Some(free_peer), tries);
            } else {
                InnerPeer::wrap(pc, inner, Some(get_peer), Some(free_peer));
            }
        }
        NGX_OK as ngx_int_t
    })
}

/// Initialises the wrapped chain of a request that was set up without it
/// (its client had an idle bound connection), now that it needs the
/// balancer. Does nothing when it is initialised already.
///
/// # Safety
/// `peer` must be the request's live peer data and `pc` its upstream's peer
/// connection, not borrowed across this call.
unsafe fn ensure_chain(peer: *mut NtlmPeer, pc: *mut ngx_peer_connection_t) -> ngx_int_t {
    // SAFETY: per the contract.
    let (ready, r, us, state) = unsafe {
        (
            (*peer).chain_ready,
            (*peer).request,
            (*peer).block,
            (*peer).upstream,
        )
    };
    if ready {
        return NGX_OK as ngx_int_t;
    }
    // SAFETY: the upstream state is per worker, never freed.
    let Some(original) = (unsafe { (*state).original_init_peer }) else {
        return NGX_ERROR as ngx_int_t;
    };
    // SAFETY: per the contract; `r` and `us` are the request and block
    // init_peer was called with, `pc` is `&r->upstream->peer`.
    let rc = unsafe { InnerPeer::init_chain(r, us, original, pc, peer.cast()) };
    if rc == NGX_OK as ngx_int_t {
        // SAFETY: per the contract; `r` is live. The request may have
        // been sent over the held connection already: its buffers are
        // read from their start, as nginx resends them.
        unsafe {
            (*peer).credentials = request_credentials(&*r, true);
            (*peer).chain_ready = true;
        }
    }
    rc
}

/// Whether the request carries NTLM/Negotiate credentials: an
/// `Authorization` whose scheme is NTLM or Negotiate ([`binds`]), in what
/// the client sent or in what goes upstream.
///
/// `init_peer` (and `ensure_chain`) run after the upstream module built the
/// request (`create_request`), so for `proxy_pass` `u->request_bufs` starts with the
/// request head exactly as the upstream will receive it, with every
/// `proxy_set_header` applied: that is scanned ([`head_binds`]). The
/// client's own headers are checked too, for the modules whose requests are
/// not an HTTP/1.x head (grpc, fastcgi, …): binding more than needed only
/// costs pooling.
///
/// The client's header is looked at first through nginx's own pointer to it
/// (`r->headers_in.authorization`, set for the one `Authorization` nginx
/// accepts: it answers a second one with 400), which costs a few
/// instructions instead of a walk of the header list comparing names; the
/// walk stays as the fallback, for a header some module put into the list
/// without that pointer.
///
/// `from_start`: read the upstream request's buffers from their start
/// instead of their current position, for a request some of which was
/// sent already (nginx resends a request from its buffers' start too).
fn request_credentials(r: &ngx_http_request_t, from_start: bool) -> bool {
    // SAFETY: a request's cached header pointer is null or one of its live
    // header list elements.
    let slot = unsafe { r.headers_in.authorization.as_ref() };
    if slot.is_some_and(|h| binds(h.value.as_bytes()))
        || headers_in::any_value(r, b"authorization", binds)
    {
        return true;
    }
    // SAFETY: init_peer is only called with r->upstream set.
    let Some(u) = (unsafe { r.upstream.as_ref() }) else {
        return false;
    };
    // SAFETY: the chain and its in-memory buffers were built by the
    // upstream module's create_request in the request pool.
    unsafe { head_binds(memory_pieces(u.request_bufs, from_start)) }
}

/// The in-memory buffers at the start of `chain` as byte slices
/// (`pos..last`, or `start..last` with `from_start`), up to the first
/// buffer in a file (a request body).
///
/// # Safety
/// `chain` must be a live chain whose in-memory buffers' `start..last` are
/// readable for as long as the slices are used.
unsafe fn memory_pieces<'a>(
    mut chain: *const ngx_chain_t,
    from_start: bool,
) -> impl Iterator<Item = &'a [u8]> {
    core::iter::from_fn(move || {
        // SAFETY: per the contract.
        let cl = unsafe { chain.as_ref() }?;
        // SAFETY: per the contract.
        let b = unsafe { cl.buf.as_ref() }?;
        let in_memory =
            bitfield::buf::temporary(b) || bitfield::buf::memory(b) || bitfield::buf::mmap(b);
        let first = if from_start && !b.start.is_null() && b.start <= b.pos {
            b.start
        } else {
            b.pos
        };
        if !in_memory || first.is_null() || b.last < first {
            return None;
        }
        chain = cl.next;
        // SAFETY: per the contract; first <= last in one allocation.
        Some(unsafe { core::slice::from_raw_parts(first, b.last.offset_from(first) as usize) })
    })
}

/// The binding of `client` in `upstream`, if it has one.
///
/// # Safety
/// `client` must be a live client connection.
unsafe fn find_binding(
    client: *mut ngx_connection_t,
    upstream: *mut UpstreamState,
) -> *mut ClientBinding {
    // SAFETY: per the contract.
    let (pool, number) = unsafe { ((*client).pool, (*client).number) };
    if pool.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: only data registered with client_cleanup (a ClientBinding in
    // this pool) is inspected.
    let found = unsafe {
        find_cleanup(pool, Some(client_cleanup), |data| {
            let b = data.cast::<ClientBinding>();
            (*b).upstream == upstream && (*b).client_number == number
        })
    };
    found.map_or(ptr::null_mut(), |d| d.cast())
}

/// Creates `client`'s binding in `upstream`, owned by the client's pool.
///
/// # Safety
/// `client` must be a live, non-multiplexed client connection.
unsafe fn new_binding(
    client: *mut ngx_connection_t,
    upstream: *mut UpstreamState,
) -> *mut ClientBinding {
    // SAFETY: per the contract.
    let pool = unsafe { (*client).pool };
    // SAFETY: allocation in the live client pool; zeroed memory is a valid
    // sockaddr and name, the other fields are written below.
    let b = unsafe { ngx_pcalloc(pool, size_of::<ClientBinding>()) }.cast::<ClientBinding>();
    if b.is_null() {
        return b;
    }
    // SAFETY: `b` is fresh pool memory for a ClientBinding.
    unsafe {
        ptr::addr_of_mut!((*b).hook).write(IdleHook { lost: idle_lost });
        ptr::addr_of_mut!((*b).upstream).write(upstream);
        ptr::addr_of_mut!((*b).client_number).write((*client).number);
        ptr::addr_of_mut!((*b).state).write(BindingState::Unbound);
        ptr::addr_of_mut!((*b).handle).write(None);
        ptr::addr_of_mut!((*b).connection).write(ptr::null_mut());
        if add_cleanup(pool, Some(client_cleanup), b.cast()).is_err() {
            return ptr::null_mut();
        }
    }
    b
}

unsafe extern "C" fn get_peer(pc_ptr: *mut ngx_peer_connection_t, data: *mut c_void) -> ngx_int_t {
    // SAFETY: nginx passes the live peer connection and the NtlmPeer
    // installed by init_peer (request pool).
    let (pc, peer) = unsafe { (&mut *pc_ptr, &mut *data.cast::<NtlmPeer>()) };
    guard(pc.log, NGX_ERROR as ngx_int_t, || {
        // SAFETY: a binding lives in the client pool, alive for the request.
        let binding = unsafe { peer.binding.as_mut() };
        let attempt = on_get(binding.as_ref().map(|b| b.state));
        peer.attempt = Some(attempt);
        if let (Attempt::Bound, Some(b)) = (attempt, binding) {
            // SAFETY: the upstream state is per worker, never freed.
            let upstream = unsafe { &mut *peer.upstream };
            let entry = b.handle.take().and_then(|h| upstream.idle.remove(h));
            if entry.is_some() && !b.connection.is_null() {
                let c = b.connection;
                // SAFETY: the parked connection is live (parked connections
                // leave the list before they are closed).
                unsafe { unpark(c, pc.log) };
                b.state = BindingState::InUse;
                upstream.counter.dec(slots::IDLE);
                upstream.counter.inc(slots::REQUESTS);
                debug(
                    pc.log,
                    format_args!(
                        "client *{} uses its bound upstream connection {c:p}",
                        b.client_number
                    ),
                );
                pc.connection = c;
                bitfield::peer::set_cached(pc, true);
                pc.sockaddr = ptr::addr_of_mut!(b.sockaddr).cast();
                pc.socklen = b.socklen;
                pc.name = &mut b.name;
                return NGX_DONE as ngx_int_t;
            }
            // Inconsistent (cannot happen): forget the binding, use the balancer.
            b.state = BindingState::Unbound;
            b.connection = ptr::null_mut();
            peer.attempt = Some(Attempt::Balancer);
        }
        // SAFETY: the request's peer data and peer connection; no
        // reference into either is used across the call.
        let rc = unsafe { ensure_chain(ptr::from_mut(peer), pc_ptr) };
        if rc != NGX_OK as ngx_int_t {
            return NGX_ERROR as ngx_int_t;
        }
        // SAFETY: as above.
        peer.inner.get(unsafe { &mut *pc_ptr })
    })
}

unsafe extern "C" fn free_peer(
    pc_ptr: *mut ngx_peer_connection_t,
    data: *mut c_void,
    state: ngx_uint_t,
) {
    // SAFETY: as in get_peer().
    let (pc, peer) = unsafe { (&mut *pc_ptr, &mut *data.cast::<NtlmPeer>()) };
    guard(pc.log, (), || {
        let Some(attempt) = peer.attempt.take() else {
            return;
        };
        let c = pc.connection;
        // SAFETY: the request's upstream is live while its peer is freed.
        let u = unsafe { &*peer.u };
        let facts = FreeFacts {
            attempt,
            credentials: peer.credentials,
            multiplexed: peer.multiplexed,
            // SAFETY: as in get_peer().
            binding: unsafe { peer.binding.as_ref() }.map(|b| b.state),
            // SAFETY: the attempt's connection, live or null.
            reusable: connection_reusable(unsafe { c.as_ref() }, u, state),
            // SAFETY: as above.
            spent: unsafe { c.as_ref() }.is_some_and(|c| {
                // SAFETY: nginx's cached clock, updated by the worker's
                // event loop on this thread.
                let now = unsafe { ngx_current_msec };
                // SAFETY: the upstream state is per worker, never freed.
                let limits = unsafe { (*peer.upstream).limits };
                // nginx counts the connection's requests (c->requests) and
                // stamps its opening (c->start_time) for its own keepalive.
                limits.spent(c.requests as u64, now.wrapping_sub(c.start_time) as u64)
            }),
        };
        if peer.multiplexed && peer.credentials {
            // SAFETY: the upstream state is per worker, never freed.
            unsafe { (*peer.upstream).counter.inc(slots::HTTP2_REFUSED) };
        }
        if attempt == Attempt::Bound && facts.spent && facts.reusable {
            ngx::ngx_log_error!(
                NGX_LOG_INFO,
                pc.log,
                "ntlm: closing the bound upstream connection after {} requests: it reached \
                 ntlm_max_requests or ntlm_max_time; the client's next request authenticates \
                 again",
                // SAFETY: `spent` implies a live connection.
                unsafe { (*c).requests }
            );
        }
        if let Some(reason) = not_bound_reason(facts) {
            ngx::ngx_log_error!(
                NGX_LOG_INFO,
                pc.log,
                "ntlm: closing the upstream connection that carried NTLM/Negotiate \
                 credentials instead of binding it: {reason}"
            );
        }
        match (on_free(facts), attempt) {
            (FreeAction::Park, Attempt::Bound) => {
                pc.connection = ptr::null_mut();
                // SAFETY: the binding is live (client pool), its connection
                // is `c`, which this request no longer uses.
                unsafe { park(peer.binding, c) };
            }
            (FreeAction::Park, Attempt::Balancer) => {
                pc.connection = ptr::null_mut();
                // SAFETY: the client connection is live for the request.
                unsafe { bind(peer, pc, c) };
            }
            (FreeAction::Close, _) | (FreeAction::PassOn, Attempt::Bound) => {
                pc.connection = ptr::null_mut();
                if attempt == Attempt::Bound {
                    debug(
                        pc.log,
                        format_args!("bound connection not reusable: closed, client unbound"),
                    );
                    // SAFETY: as in get_peer().
                    if let Some(b) = unsafe { peer.binding.as_mut() } {
                        b.state = BindingState::Unbound;
                        b.connection = ptr::null_mut();
                    }
                    let failed = state & NGX_PEER_FAILED as ngx_uint_t != 0;
                    // SAFETY: the upstream state is per worker, never freed.
                    let counter = unsafe { (*peer.upstream).counter };
                    counter.dec(slots::BOUND);
                    counter.inc(if failed {
                        slots::CLOSE_ERROR
                    } else if facts.spent && facts.reusable {
                        slots::CLOSE_LIMIT
                    } else {
                        slots::CLOSE_UPSTREAM
                    });
                }
                if !c.is_null() {
                    // SAFETY: `c` was this attempt's connection; nobody else
                    // holds it and nginx will not see it again.
                    unsafe { close_connection(c) };
                }
            }
            (FreeAction::PassOn, Attempt::Balancer) => {}
        }
        if attempt == Attempt::Balancer {
            peer.inner.free(pc, state);
        } else if state & (NGX_PEER_FAILED | NGX_PEER_NEXT) as ngx_uint_t != 0 {
            // nginx decides on a retry from the tries left right after this:
            // the balancer it would retry with is set up now, so its tries
            // are the ones counted (the bound attempt skipped it).
            // SAFETY: the request's peer data and peer connection; `pc` and
            // `peer` are not used across the call.
            if unsafe { ensure_chain(ptr::from_mut(peer), pc_ptr) } != NGX_OK as ngx_int_t {
                // No balancer to retry with: nginx ends the request (502).
                // SAFETY: as above.
                unsafe { (*pc_ptr).tries = 0 };
                return;
            }
            // SAFETY: as above.
            let pc = unsafe { &mut *pc_ptr };
            // The balancer never saw this attempt, so it cannot count it:
            // count it here, so that retries (proxy_next_upstream) end. nginx
            // adds a try back for a failed cached connection, as for keepalive.
            if pc.tries > 0 {
                pc.tries -= 1;
            }
        }
    })
}

/// Makes `c` (served by the balancer) the client's bound connection.
///
/// # Safety
/// `peer.client` must be live; `c` a live upstream connection no request uses.
unsafe fn bind(peer: &mut NtlmPeer, pc: &ngx_peer_connection_t, c: *mut ngx_connection_t) {
    if peer.binding.is_null() {
        // SAFETY: per the contract; multiplexed clients never get here.
        peer.binding = unsafe { new_binding(peer.client, peer.upstream) };
    }
    // SAFETY: per the contract.
    let client_pool = unsafe { (*peer.client).pool };
    // SAFETY: a live binding in the client pool, or null.
    let Some(b) = (unsafe { peer.binding.as_mut() }) else {
        // SAFETY: per the contract.
        unsafe { close_connection(c) };
        return;
    };
    let socklen = (pc.socklen as usize).min(size_of::<ngx_sockaddr_t>());
    // SAFETY: pc.sockaddr/name were set by the balancer for this attempt;
    // the copies go into the binding and the client pool.
    let name_copy = unsafe {
        ptr::copy_nonoverlapping(
            pc.sockaddr.cast::<u8>(),
            ptr::addr_of_mut!(b.sockaddr).cast::<u8>(),
            socklen,
        );
        match pc.name.as_ref() {
            Some(name) if name.len > 0 => {
                let p = ngx_pnalloc(client_pool, name.len).cast::<u8>();
                if !p.is_null() {
                    ptr::copy_nonoverlapping(name.data, p, name.len);
                }
                ngx_str_t {
                    len: if p.is_null() { 0 } else { name.len },
                    data: p,
                }
            }
            _ => ngx_str_t::empty(),
        }
    };
    b.socklen = socklen as socklen_t;
    b.name = name_copy;
    b.connection = c;
    b.state = BindingState::InUse;
    // SAFETY: the upstream state is per worker, never freed.
    let counter = unsafe { (*peer.upstream).counter };
    counter.inc(slots::CREATED);
    counter.inc(slots::BOUND);
    debug(
        pc.log,
        format_args!(
            "client *{} bound to upstream connection {c:p}",
            b.client_number
        ),
    );
    // SAFETY: `b` is live and holds `c`.
    unsafe { park(b, c) };
}

/// Parks `c`, the bound connection of `b`, in the idle LRU list; evicts the
/// least recently used binding when the list is full. On failure the
/// connection is closed and the client unbound.
///
/// # Safety
/// `b` must be a live binding; `c` its live connection, unused by requests.
unsafe fn park(b: *mut ClientBinding, c: *mut ngx_connection_t) {
    // SAFETY: per the contract.
    let b = unsafe { &mut *b };
    // SAFETY: the upstream state is per worker, never freed.
    let upstream = unsafe { &mut *b.upstream };
    b.state = BindingState::Unbound;
    b.connection = ptr::null_mut();
    // SAFETY: per the contract; the hook (in the binding) outlives the
    // parking: the client cleanup unparks or closes first.
    if unsafe { park_idle(c, upstream.timeout, &mut b.hook) }.is_err() {
        // Already closed or written to by the upstream.
        upstream.counter.dec(slots::BOUND);
        upstream.counter.inc(slots::CLOSE_UPSTREAM);
        // SAFETY: per the contract.
        unsafe { close_connection(c) };
        return;
    }
    let (handle, evicted) = upstream.idle.insert(IdleEntry { binding: b });
    if let Some(old) = evicted {
        debug(
            cycle_log(),
            format_args!("evicting the least recently used bound connection"),
        );
        // SAFETY: entries refer to live bindings: a binding leaves the list
        // before its client pool goes away.
        unsafe { drop_idle(old.binding) };
        close_counted(upstream.counter, slots::CLOSE_EVICTED);
    }
    match handle {
        Some(h) => {
            b.state = BindingState::Idle;
            b.handle = Some(h);
            b.connection = c;
            upstream.counter.inc(slots::IDLE);
        }
        None => {
            upstream.counter.dec(slots::BOUND);
            upstream.counter.inc(slots::CLOSE_ERROR);
            // SAFETY: per the contract (capacity 0 cannot be configured).
            unsafe { close_connection(c) }
        }
    }
}

/// Counts an idle bound connection closed for `reason` (a `CLOSE_*` slot).
fn close_counted(counter: Counter, reason: usize) {
    counter.dec(slots::IDLE);
    counter.dec(slots::BOUND);
    counter.inc(reason);
}

/// Unbinds a binding whose idle connection left the list, and closes it.
///
/// # Safety
/// `b` must be a live binding that was just removed from the list.
unsafe fn drop_idle(b: *mut ClientBinding) {
    // SAFETY: per the contract.
    let b = unsafe { &mut *b };
    let c = b.connection;
    b.state = BindingState::Unbound;
    b.handle = None;
    b.connection = ptr::null_mut();
    if !c.is_null() {
        // SAFETY: the parked connection is live and owned by the binding.
        unsafe { close_connection(c) };
    }
}

/// The parked connection of a binding is gone (upstream closed it, idle
/// timeout, worker shutdown): forget it; the glue closes it.
unsafe fn idle_lost(hook: *mut IdleHook) {
    // SAFETY: the hook is the first field of a live ClientBinding.
    let b = unsafe { &mut *hook.cast::<ClientBinding>() };
    // SAFETY: the upstream state is per worker, never freed.
    let upstream = unsafe { &mut *b.upstream };
    if let Some(h) = b.handle.take() {
        upstream.idle.remove(h);
    }
    // SAFETY: the parked connection is still live (the glue closes it
    // after this hook); its read event says whether the timer fired.
    let timed_out = unsafe { b.connection.as_ref() }
        // SAFETY: a live connection's read event.
        .is_some_and(|c| bitfield::event::timedout(unsafe { &*c.read }));
    // A worker shutting down closes its parked connections the same way:
    // counted as closed by the upstream side.
    close_counted(
        upstream.counter,
        if timed_out {
            slots::CLOSE_TIMEOUT
        } else {
            slots::CLOSE_UPSTREAM
        },
    );
    debug(
        cycle_log(),
        format_args!(
            "idle bound connection of client *{} gone (upstream close, timeout or shutdown)",
            b.client_number
        ),
    );
    b.state = BindingState::Unbound;
    b.connection = ptr::null_mut();
}

/// The client connection is closing: close its bound upstream connection.
unsafe extern "C" fn client_cleanup(data: *mut c_void) {
    let b = data.cast::<ClientBinding>();
    guard(ptr::null_mut(), (), || {
        // SAFETY: registered with a live binding in the pool being destroyed
        // (cleanups run before its memory is freed).
        let binding = unsafe { &mut *b };
        if binding.state == BindingState::Idle {
            debug(
                cycle_log(),
                format_args!(
                    "client *{} closed: closing its bound connection",
                    binding.client_number
                ),
            );
            // SAFETY: the upstream state is per worker, never freed.
            let upstream = unsafe { &mut *binding.upstream };
            if let Some(h) = binding.handle.take() {
                upstream.idle.remove(h);
            }
            // SAFETY: `b` is live and just left the list.
            unsafe { drop_idle(b) };
            close_counted(upstream.counter, slots::CLOSE_CLIENT);
        }
        binding.state = BindingState::Unbound;
    })
}
