//! The non-blocking Redis client: one keep-alive connection per worker
//! and store, on nginx's event loop, with every command pipelined on it.
//!
//! A request that needs Redis gets a [`Ticket`], its command goes into the
//! connection's write buffer and its entry joins the queue of commands in
//! flight (Redis answers in order, so the queue's front is what the next
//! reply answers). The request then waits (its phase handler returned
//! `NGX_AGAIN`); when its reply arrives, or the store gives up, the
//! ticket's outcome is set and the request's phases are run again, so
//! its handler can [`Store::take`] the outcome. Nothing ever blocks: the
//! worker serves everyone else meanwhile.
//!
//! Failures (connect refused or reset, no reply within `timeout`, garbage,
//! a failed `AUTH`/`SELECT`) close the connection, fail every command in
//! flight, and start a back-off (100 ms, doubling to 1 s) during which
//! requests fail at once without a connection attempt. An error reply
//! (`NOAUTH`, `READONLY`, `OOM`…) fails that command only. The first
//! failure of an episode is logged once (at `error`); the first success
//! after it once (at `notice`). nginx's own connect/recv messages for the
//! store's connection are kept below `crit` so that they do not repeat
//! per attempt.
//!
//! One connection per worker suffices: Redis executes commands one at a
//! time anyway, and pipelining keeps a single connection full; requests of
//! one worker share it.

use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::ptr;
use std::collections::VecDeque;

use nginx_sys::{
    ngx_add_timer, ngx_close_connection, ngx_connection_t, ngx_current_msec, ngx_cycle,
    ngx_del_timer, ngx_event_connect_peer, ngx_event_get_peer, ngx_event_t, ngx_handle_read_event,
    ngx_handle_write_event, ngx_http_block_reading, ngx_http_core_run_phases,
    ngx_http_request_empty_handler, ngx_http_request_t, ngx_http_run_posted_requests,
    ngx_http_test_reading, ngx_int_t, ngx_log_t, ngx_msec_t, ngx_peer_connection_t,
    ngx_pool_cleanup_add, ngx_posted_events, ngx_queue_insert_before, ngx_str_t, NGX_AGAIN,
    NGX_LOG_CRIT, NGX_LOG_ERR, NGX_LOG_NOTICE, NGX_OK,
};

use super::resp::{self, QuotaReply};
use super::spec::{OnError, StoreSpec};
use crate::nginx::bitfield;
use crate::nginx::ffi::guard;

/// What a request's command came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The window's count after this request and its remaining time (ms).
    Counted { count: u64, ttl_ms: u64 },
    /// Redis could not answer (the store logged why); `on_error` decides.
    Failed,
}

/// A request's claim on an outcome (index and generation of its waiter).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ticket {
    index: u32,
    generation: u32,
}

const BACKOFF_FIRST_MS: u64 = 100;
const BACKOFF_MAX_MS: u64 = 1_000;
const READ_CHUNK: usize = 4096;

/// A configured store: its address and credentials (from configuration,
/// shared by the workers forked with it) and, in each worker, that
/// worker's connection.
pub struct Store {
    pub spec: StoreSpec,
    /// `redis://host:port`, never the credentials.
    pub address: String,
    name: ngx_str_t,
    sockaddr: Vec<u8>,
    /// `AUTH`/`SELECT`, sent first on each new connection.
    handshake: Vec<u8>,
    handshake_replies: usize,
    sha: [u8; 40],
    state: UnsafeCell<State>,
}

enum Waiter {
    Free,
    /// The request waits for the outcome.
    Waiting(*mut ngx_http_request_t),
    /// The request is gone (its pool cleanup ran); the reply is dropped.
    Cancelled,
    /// The outcome is known; the request will take it when it runs again.
    Done(*mut ngx_http_request_t, Outcome),
}

struct Slot {
    generation: u32,
    waiter: Waiter,
}

enum Command {
    Handshake,
    Quota {
        ticket: Ticket,
        /// Sent as `EVAL` (after a `NOSCRIPT`).
        eval: bool,
        key: Vec<u8>,
        window_ms: u64,
    },
}

struct Entry {
    command: Command,
    /// When the store gives up on this reply (ms, nginx's clock).
    deadline: u64,
}

struct State {
    conn: *mut ngx_connection_t,
    connecting: bool,
    out: Vec<u8>,
    input: Vec<u8>,
    queue: VecDeque<Entry>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    retry_at: u64,
    backoff_ms: u64,
    /// A failure episode is going on (its first failure was logged).
    failing: bool,
    /// The cycle's log, muted below `crit`, for nginx's own messages about
    /// this connection.
    quiet_log: Option<Box<ngx_log_t>>,
    /// Tickets whose outcome is set and whose request is to run again.
    ready: Vec<Ticket>,
    /// Posted when `ready` gets a ticket: requests are resumed from the
    /// event loop, never from inside another request's handler.
    resume_event: Option<Box<ngx_event_t>>,
}

/// What the pool cleanup of a waiting request needs.
#[repr(C)]
struct CleanupData {
    store: *const Store,
    ticket: Ticket,
}

fn now() -> u64 {
    // SAFETY: nginx's cached clock, written by this worker's event loop.
    unsafe { ngx_current_msec as u64 }
}

fn cycle_log() -> *mut ngx_log_t {
    // SAFETY: ngx_cycle is the running cycle, whose log lives as long as it.
    unsafe { (*ngx_cycle).log }
}

impl Store {
    /// A store for `spec` (the password already read), whose address
    /// resolved to `sockaddr`.
    pub fn new(spec: StoreSpec, sockaddr: Vec<u8>) -> Box<Store> {
        let mut handshake = Vec::new();
        let mut handshake_replies = 0;
        if let Some(password) = &spec.password {
            match &spec.user {
                Some(user) => resp::encode_command(&mut handshake, &[b"AUTH", user, password]),
                None => resp::encode_command(&mut handshake, &[b"AUTH", password]),
            }
            handshake_replies += 1;
        }
        if spec.db != 0 {
            let db = spec.db.to_string();
            resp::encode_command(&mut handshake, &[b"SELECT", db.as_bytes()]);
            handshake_replies += 1;
        }
        let address = spec.display_address();
        let mut store = Box::new(Store {
            spec,
            address,
            name: ngx_str_t::default(),
            sockaddr,
            handshake,
            handshake_replies,
            sha: resp::script_sha(resp::QUOTA_SCRIPT),
            state: UnsafeCell::new(State {
                conn: ptr::null_mut(),
                connecting: false,
                out: Vec::new(),
                input: Vec::new(),
                queue: VecDeque::new(),
                slots: Vec::new(),
                free: Vec::new(),
                retry_at: 0,
                backoff_ms: BACKOFF_FIRST_MS,
                failing: false,
                quiet_log: None,
                ready: Vec::new(),
                resume_event: None,
            }),
        });
        // The name nginx's connect messages use: the Box's String does not
        // move.
        let name = store.address.as_bytes();
        store.name = ngx_str_t {
            len: name.len(),
            data: name.as_ptr().cast_mut(),
        };
        store
    }

    /// The worker's connection state.
    ///
    /// # Safety
    /// Workers are single-threaded; callers keep the reference only while
    /// they call nothing that could reach the store again (resuming a
    /// request, closing a connection).
    #[allow(clippy::mut_from_ref)]
    unsafe fn state(&self) -> &mut State {
        // SAFETY: per the contract, no other reference is live.
        unsafe { &mut *self.state.get() }
    }

    /// Counts one request in the window `key`: sends the quota script and
    /// makes `r` wait for the reply. `None`: the store cannot ask Redis
    /// now (backing off, or the connection failed at once): treat as
    /// [`Outcome::Failed`].
    pub fn count(&self, r: &mut ngx_http_request_t, key: &[u8], window_ms: u64) -> Option<Ticket> {
        let now = now();
        // SAFETY: see state(); released before anything re-enters.
        let st = unsafe { self.state() };
        if st.resume_event.is_none() {
            // SAFETY: all-zero is a valid idle event (nginx zeroes its
            // events too); the handler and data make it ours.
            let mut ev: Box<ngx_event_t> = Box::new(unsafe { core::mem::zeroed() });
            ev.handler = Some(on_resume);
            ev.data = ptr::from_ref(self).cast_mut().cast();
            ev.log = cycle_log();
            st.resume_event = Some(ev);
        }
        if st.conn.is_null() {
            if now < st.retry_at {
                return None;
            }
            if !self.connect() {
                let err = std::io::Error::last_os_error();
                self.fail_connection(&format!("cannot connect ({err})"));
                return None;
            }
        }
        // SAFETY: as above (connect() released its own).
        let st = unsafe { self.state() };
        let ticket = st.allocate(r);
        // SAFETY: r's pool is live; the data is written right away.
        let cln = unsafe { ngx_pool_cleanup_add(r.pool, size_of::<CleanupData>()) };
        if cln.is_null() {
            st.release(ticket);
            return None;
        }
        // SAFETY: the cleanup and its data were just allocated for us.
        unsafe {
            (*cln).handler = Some(request_gone);
            (*cln).data.cast::<CleanupData>().write(CleanupData {
                store: ptr::from_ref(self),
                ticket,
            });
        }
        resp::encode_quota(&mut st.out, Some(&self.sha), key, window_ms);
        st.queue.push_back(Entry {
            command: Command::Quota {
                ticket,
                eval: false,
                key: key.to_vec(),
                window_ms,
            },
            deadline: now + self.spec.timeout_ms,
        });
        self.arm_timer();
        self.mark_idle();
        r.read_event_handler = Some(ngx_http_test_reading);
        r.write_event_handler = Some(ngx_http_request_empty_handler);
        // A failure here sets the outcome and resumes the request from the
        // event loop, after this handler returned.
        self.send_buffered();
        Some(ticket)
    }

    /// The outcome of `ticket` once known (the waiter is then released);
    /// `None` while the reply is awaited.
    pub fn take(&self, ticket: Ticket) -> Option<Outcome> {
        // SAFETY: see state().
        let st = unsafe { self.state() };
        let slot = st.slots.get(ticket.index as usize)?;
        if slot.generation != ticket.generation {
            return Some(Outcome::Failed);
        }
        match slot.waiter {
            Waiter::Done(_, outcome) => {
                st.release(ticket);
                Some(outcome)
            }
            Waiter::Waiting(_) => None,
            _ => Some(Outcome::Failed),
        }
    }

    /// Opens the connection and queues the handshake. `false`: failed.
    fn connect(&self) -> bool {
        // SAFETY: see state().
        let st = unsafe { self.state() };
        let log = st.quiet_log.get_or_insert_with(|| {
            // SAFETY: a copy of the cycle's log structure (same files,
            // same chain), only with a higher threshold.
            let mut quiet = Box::new(unsafe { *cycle_log() });
            quiet.log_level = NGX_LOG_CRIT as _;
            quiet
        });
        // SAFETY: all-zero is a valid ngx_peer_connection_t (nginx callers
        // ngx_memzero it too).
        let mut pc: ngx_peer_connection_t = unsafe { core::mem::zeroed() };
        pc.sockaddr = self.sockaddr.as_ptr().cast_mut().cast();
        pc.socklen = self.sockaddr.len() as _;
        pc.name = ptr::from_ref(&self.name).cast_mut();
        pc.get = Some(ngx_event_get_peer);
        pc.log = ptr::from_mut(&mut **log);
        pc.tries = 1;
        // SAFETY: a complete peer description; nginx creates and registers
        // the connection.
        let rc = unsafe { ngx_event_connect_peer(&mut pc) };
        if pc.connection.is_null() || (rc != NGX_OK as ngx_int_t && rc != NGX_AGAIN as ngx_int_t) {
            return false;
        }
        let c = pc.connection;
        // SAFETY: the fresh connection nginx returned.
        unsafe {
            (*c).data = ptr::from_ref(self).cast_mut().cast();
            (*(*c).read).handler = Some(on_read);
            (*(*c).write).handler = Some(on_write);
            (*c).pool = ptr::null_mut();
        }
        st.conn = c;
        st.connecting = rc == NGX_AGAIN as ngx_int_t;
        st.input.clear();
        st.out.clear();
        st.out.extend_from_slice(&self.handshake);
        let deadline = now() + self.spec.timeout_ms;
        for _ in 0..self.handshake_replies {
            st.queue.push_back(Entry {
                command: Command::Handshake,
                deadline,
            });
        }
        true
    }

    /// Writes what is buffered. `false`: the connection failed (and was
    /// closed, its commands failed).
    fn send_buffered(&self) -> bool {
        // SAFETY: see state().
        let st = unsafe { self.state() };
        if st.conn.is_null() || st.connecting {
            return true;
        }
        let c = st.conn;
        while !st.out.is_empty() {
            // SAFETY: a live connection of ours; send writes from our buffer.
            let n = unsafe {
                let send = (*c).send.expect("connection send");
                send(c, st.out.as_mut_ptr(), st.out.len())
            };
            if n == NGX_AGAIN as isize {
                // SAFETY: as above.
                if unsafe { ngx_handle_write_event((*c).write, 0) } != NGX_OK as ngx_int_t {
                    self.fail_connection("cannot wait to write");
                    return false;
                }
                return true;
            }
            if n <= 0 {
                let err = std::io::Error::last_os_error();
                self.fail_connection(&format!("write failed ({err})"));
                return false;
            }
            st.out.drain(..n as usize);
        }
        true
    }

    /// The connection's read timer: the deadline of the oldest command in
    /// flight, or none when nothing is.
    fn arm_timer(&self) {
        // SAFETY: see state().
        let st = unsafe { self.state() };
        if st.conn.is_null() {
            return;
        }
        // SAFETY: the connection's read event is live.
        let rev = unsafe { &mut *(*st.conn).read };
        match st.queue.front() {
            Some(front) => {
                let wait = front.deadline.saturating_sub(now()).max(1);
                // nginx keeps a set timer that the new one is within 300 ms
                // of (NGX_TIMER_LAZY_DELAY): the deadline must hold exactly.
                if bitfield::event::timer_set(rev) {
                    // SAFETY: deleting a set timer of a live event.
                    unsafe { ngx_del_timer(rev) };
                }
                // SAFETY: adding a timer of a live event.
                unsafe { ngx_add_timer(rev, wait as ngx_msec_t) };
            }
            None if bitfield::event::timer_set(rev) => {
                // SAFETY: deleting a set timer of a live event.
                unsafe { ngx_del_timer(rev) };
            }
            None => {}
        }
    }

    /// Reads and answers every complete reply.
    fn read(&self) {
        match self.read_replies() {
            Some(reason) => self.fail_connection(&reason),
            None => {
                self.arm_timer();
                self.mark_idle();
            }
        }
    }

    /// Without commands in flight the connection is idle: nginx's
    /// graceful shutdown (reload, `nginx -s quit`) closes idle connections
    /// through their read handler (`c->close`); once shutting down, an
    /// idle connection is closed at once.
    fn mark_idle(&self) {
        // SAFETY: see state().
        let st = unsafe { self.state() };
        if st.conn.is_null() {
            return;
        }
        let idle = st.queue.is_empty();
        // SAFETY: ngx_exiting is the worker's own flag; the connection is live.
        if idle && unsafe { nginx_sys::ngx_exiting } != 0 {
            self.close_quietly();
            return;
        }
        // SAFETY: as above.
        bitfield::connection::set_idle(unsafe { &mut *st.conn }, idle);
    }

    /// Closes a connection without commands in flight: no failure.
    fn close_quietly(&self) {
        // SAFETY: see state().
        let st = unsafe { self.state() };
        let c = core::mem::replace(&mut st.conn, ptr::null_mut());
        st.connecting = false;
        st.out.clear();
        st.input.clear();
        if !c.is_null() {
            // SAFETY: our connection; nginx deletes its timers and events.
            unsafe { ngx_close_connection(c) };
        }
    }

    /// `Some(reason)`: the connection must go.
    fn read_replies(&self) -> Option<String> {
        // SAFETY: see state(); nothing here re-enters the store.
        let st = unsafe { self.state() };
        let c = st.conn;
        let mut eof = false;
        loop {
            let len = st.input.len();
            st.input.resize(len + READ_CHUNK, 0);
            // SAFETY: a live connection of ours; recv writes into the
            // room just made.
            let n = unsafe {
                let recv = (*c).recv.expect("connection recv");
                recv(c, st.input.as_mut_ptr().add(len), READ_CHUNK)
            };
            st.input.truncate(len + n.max(0) as usize);
            if n == NGX_AGAIN as isize {
                break;
            }
            if n == 0 {
                // What came before the close is answered first.
                eof = true;
                break;
            }
            if n < 0 {
                let err = std::io::Error::last_os_error();
                return Some(format!("connection failed ({err})"));
            }
        }
        // SAFETY: the live read event.
        if !eof && unsafe { ngx_handle_read_event((*c).read, 0) } != NGX_OK as ngx_int_t {
            return Some("cannot wait to read".into());
        }
        let mut used = 0;
        let mut failure = None;
        while used < st.input.len() {
            let (frame, n) = match resp::decode_reply(&st.input[used..]) {
                Ok(Some(decoded)) => decoded,
                Ok(None) => break,
                Err(resp::NotResp) => {
                    failure = Some("Redis sent something that is not RESP".into());
                    break;
                }
            };
            used += n;
            let Some(entry) = st.queue.pop_front() else {
                failure = Some("Redis sent a reply nothing asked for".into());
                break;
            };
            match entry.command {
                Command::Handshake => {
                    if !resp::is_ok(&frame) {
                        let text = resp::error_text(&frame).unwrap_or_else(|| "no +OK".into());
                        failure = Some(format!("AUTH or SELECT refused: {text}"));
                        break;
                    }
                }
                Command::Quota {
                    ticket,
                    eval,
                    key,
                    window_ms,
                } => match resp::quota_reply(&frame) {
                    QuotaReply::Counted { count, ttl_ms } => {
                        st.recovered(&self.address);
                        st.finish(ticket, Outcome::Counted { count, ttl_ms });
                    }
                    QuotaReply::NoScript if !eval => {
                        // The script is not cached (a restarted or flushed
                        // Redis): send it whole, once per connection at most
                        // in practice; EVAL caches it for EVALSHA.
                        if matches!(st.waiter(ticket), Some(Waiter::Waiting(_))) {
                            resp::encode_quota(&mut st.out, None, &key, window_ms);
                            st.queue.push_back(Entry {
                                command: Command::Quota {
                                    ticket,
                                    eval: true,
                                    key,
                                    window_ms,
                                },
                                deadline: entry.deadline,
                            });
                        } else {
                            st.release_if_cancelled(ticket);
                        }
                    }
                    QuotaReply::NoScript | QuotaReply::Error => {
                        let text = resp::error_text(&frame).unwrap_or_default();
                        st.failed(
                            &self.address,
                            self.spec.on_error,
                            &format!("Redis answered \"{text}\""),
                        );
                        st.finish(ticket, Outcome::Failed);
                    }
                    QuotaReply::Garbage => {
                        st.finish(ticket, Outcome::Failed);
                        failure = Some("Redis answered the quota script unexpectedly".into());
                        break;
                    }
                },
            }
        }
        st.input.drain(..used);
        if failure.is_none() && eof {
            if st.queue.is_empty() {
                // Redis closed an idle connection (its `timeout`, a
                // restart): the next request opens another.
                self.close_quietly();
                return None;
            }
            return Some("connection closed by Redis".into());
        }
        if failure.is_none() && !st.out.is_empty() && !self.send_buffered() {
            // send_buffered() closed the connection and failed the rest.
            return None;
        }
        failure
    }

    /// Closes the connection, fails what was in flight (their requests run
    /// again from the event loop), starts the back-off and logs (once per
    /// episode).
    fn fail_connection(&self, reason: &str) {
        // SAFETY: see state().
        let st = unsafe { self.state() };
        st.failed(&self.address, self.spec.on_error, reason);
        let c = core::mem::replace(&mut st.conn, ptr::null_mut());
        st.connecting = false;
        st.out.clear();
        st.input.clear();
        let queue = core::mem::take(&mut st.queue);
        for entry in queue {
            if let Command::Quota { ticket, .. } = entry.command {
                st.finish(ticket, Outcome::Failed);
            }
        }
        st.retry_at = now() + st.backoff_ms;
        st.backoff_ms = (st.backoff_ms * 2).min(BACKOFF_MAX_MS);
        if !c.is_null() {
            // SAFETY: our connection; nginx deletes its timers and events.
            unsafe { ngx_close_connection(c) };
        }
    }

    /// Runs the phases of each request whose outcome was set (unless it
    /// went away meanwhile), as nginx does when an event of theirs fires.
    fn resume(&self) {
        // SAFETY: see state().
        let tickets = core::mem::take(&mut unsafe { self.state() }.ready);
        for ticket in tickets {
            // SAFETY: see state(); released before the request runs.
            let r = match unsafe { self.state() }.waiter(ticket) {
                Some(Waiter::Done(r, _)) => *r,
                _ => continue,
            };
            // SAFETY: a Done waiter's request is live: its pool cleanup
            // would have released the waiter.
            unsafe {
                let c = (*r).connection;
                (*r).read_event_handler = Some(ngx_http_block_reading);
                (*r).write_event_handler = Some(ngx_http_core_run_phases);
                ngx_http_core_run_phases(r);
                ngx_http_run_posted_requests(c);
            }
        }
    }
}

impl State {
    fn allocate(&mut self, r: *mut ngx_http_request_t) -> Ticket {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    waiter: Waiter::Free,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[index as usize];
        slot.waiter = Waiter::Waiting(r);
        Ticket {
            index,
            generation: slot.generation,
        }
    }

    fn waiter(&self, ticket: Ticket) -> Option<&Waiter> {
        self.slots
            .get(ticket.index as usize)
            .filter(|s| s.generation == ticket.generation)
            .map(|s| &s.waiter)
    }

    fn release(&mut self, ticket: Ticket) {
        if let Some(slot) = self.slots.get_mut(ticket.index as usize) {
            if slot.generation == ticket.generation && !matches!(slot.waiter, Waiter::Free) {
                slot.waiter = Waiter::Free;
                slot.generation = slot.generation.wrapping_add(1);
                self.free.push(ticket.index);
            }
        }
    }

    fn release_if_cancelled(&mut self, ticket: Ticket) {
        if matches!(self.waiter(ticket), Some(Waiter::Cancelled)) {
            self.release(ticket);
        }
    }

    /// Sets the outcome; a waiting request is to be resumed (from the
    /// posted resume event), a cancelled one's waiter is released.
    fn finish(&mut self, ticket: Ticket, outcome: Outcome) {
        match self.waiter(ticket) {
            Some(Waiter::Waiting(r)) => {
                let r = *r;
                self.slots[ticket.index as usize].waiter = Waiter::Done(r, outcome);
                self.ready.push(ticket);
                if let Some(ev) = self.resume_event.as_deref_mut() {
                    if !bitfield::event::posted(ev) {
                        bitfield::event::set_posted(ev, true);
                        // SAFETY: the worker's posted-events queue; the event
                        // lives in the store, as long as the cycle.
                        unsafe {
                            ngx_queue_insert_before(
                                ptr::addr_of_mut!(ngx_posted_events),
                                ptr::addr_of_mut!(ev.queue),
                            )
                        };
                    }
                }
            }
            Some(Waiter::Cancelled) => self.release(ticket),
            _ => {}
        }
    }

    fn failed(&mut self, address: &str, on_error: OnError, reason: &str) {
        if self.failing {
            return;
        }
        self.failing = true;
        let action = match on_error {
            OnError::Deny => "requests of limited consumers are refused with 503",
            OnError::Local => {
                "requests of limited consumers are counted in the local key_auth_zone"
            }
            OnError::Allow => "requests of limited consumers are let in uncounted",
        };
        ngx::ngx_log_error!(
            NGX_LOG_ERR,
            cycle_log(),
            "key_auth_quota_store {}: {}; {} (on_error={}) until Redis answers again",
            address,
            reason,
            action,
            on_error.name()
        );
    }

    fn recovered(&mut self, address: &str) {
        self.backoff_ms = BACKOFF_FIRST_MS;
        if self.failing {
            self.failing = false;
            ngx::ngx_log_error!(
                NGX_LOG_NOTICE,
                cycle_log(),
                "key_auth_quota_store {}: Redis answers again",
                address
            );
        }
    }
}

fn store_of(ev: *mut ngx_event_t) -> (*const Store, *mut ngx_connection_t) {
    // SAFETY: our events belong to our connection, whose data is the store.
    unsafe {
        let c = (*ev).data.cast::<ngx_connection_t>();
        ((*c).data.cast::<Store>().cast_const(), c)
    }
}

unsafe extern "C" fn on_read(ev: *mut ngx_event_t) {
    let (store, _) = store_of(ev);
    guard(cycle_log(), (), || {
        // SAFETY: a store lives as long as its cycle's configuration,
        // which outlives its worker's connections.
        let store = unsafe { &*store };
        // SAFETY: the live event nginx passed.
        let ev = unsafe { &mut *ev };
        // SAFETY: see state().
        let conn = unsafe { store.state() }.conn;
        // SAFETY: the event's connection is live while its handler runs.
        let closing = !conn.is_null() && bitfield::connection::close(unsafe { &*conn });
        if closing {
            // Graceful shutdown closes idle connections: ours has nothing
            // in flight (see mark_idle()).
            store.close_quietly();
            return;
        }
        if bitfield::event::timedout(ev) {
            bitfield::event::set_timedout(ev, false);
            // SAFETY: see state().
            let overdue = unsafe { store.state() }
                .queue
                .front()
                .is_some_and(|e| e.deadline <= now());
            if overdue {
                store.fail_connection(&format!("no reply within {} ms", store.spec.timeout_ms));
            } else {
                store.arm_timer();
            }
            return;
        }
        store.read();
    })
}

unsafe extern "C" fn on_write(ev: *mut ngx_event_t) {
    let (store, _) = store_of(ev);
    guard(cycle_log(), (), || {
        // SAFETY: as in on_read().
        let store = unsafe { &*store };
        // SAFETY: see state().
        let st = unsafe { store.state() };
        st.connecting = false;
        store.send_buffered();
    })
}

/// The posted resume event: nginx has unlinked it from the queue.
unsafe extern "C" fn on_resume(ev: *mut ngx_event_t) {
    // SAFETY: the event's data is its store (see count()).
    let store = unsafe { (*ev).data.cast::<Store>().cast_const() };
    guard(cycle_log(), (), || {
        // SAFETY: as in on_read().
        unsafe { &*store }.resume();
    })
}

/// Pool cleanup of a request that took a ticket: it is going away.
unsafe extern "C" fn request_gone(data: *mut c_void) {
    // SAFETY: the data count() wrote.
    let data = unsafe { &*data.cast::<CleanupData>() };
    guard(cycle_log(), (), || {
        // SAFETY: as in on_read().
        let store = unsafe { &*data.store };
        // SAFETY: see state().
        let st = unsafe { store.state() };
        match st.waiter(data.ticket) {
            Some(Waiter::Waiting(_)) => {
                st.slots[data.ticket.index as usize].waiter = Waiter::Cancelled;
            }
            Some(Waiter::Done(..)) => st.release(data.ticket),
            _ => {}
        }
    })
}
