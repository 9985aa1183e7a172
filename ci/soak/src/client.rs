//! The load: `connections` threads, one keep-alive HTTP/1.1 connection each
//! (reopened when nginx closes it), each sending its share of the requests
//! in a sequence drawn from the seed; every answer is checked against what
//! that request must get. Meanwhile one thread reloads nginx (SIGHUP to the
//! master) and one samples the workers' RSS every second.

use crate::http::{self, Message, ReadError};
use crate::procfs;
use std::collections::HashSet;
use std::io::Write;
use std::net::TcpStream;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub struct Config {
    pub port: u16,
    pub master: u32,
    pub workers: usize,
    pub requests: u64,
    pub connections: usize,
    pub ntlm_connections: usize,
    pub seed: u64,
    pub quota_limit: u64,
    /// Reload every this many seconds (0: not by time).
    pub reload_interval: f64,
    /// Reload this many times, evenly spread over the requests (0: not by progress).
    pub reloads: u64,
    pub backends: Vec<(String, u16)>,
    pub rss_pct: f64,
    pub rss_mb: f64,
    pub warmup_pct: f64,
    /// Seconds between two RSS samples.
    pub rss_interval: f64,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    ArAllow204,
    ArAllow200,
    ArDeny401,
    ArDeny403,
    KaHeader,
    KaQuery,
    KaMissing,
    KaInvalid,
    KaQuota,
    AclAllow,
    AclAllowPost,
    AclDeny,
    AclIgnore,
    AclSuperuser,
    NtlmNone,
    NtlmBound,
}

/// The mix of the ordinary connections: (kind, weight).
const MIX: &[(Kind, u64)] = &[
    (Kind::ArAllow204, 10),
    (Kind::ArAllow200, 8),
    (Kind::ArDeny401, 6),
    (Kind::ArDeny403, 5),
    (Kind::KaHeader, 12),
    (Kind::KaQuery, 8),
    (Kind::KaMissing, 5),
    (Kind::KaInvalid, 5),
    (Kind::KaQuota, 3),
    (Kind::AclAllow, 9),
    (Kind::AclAllowPost, 4),
    (Kind::AclDeny, 5),
    (Kind::AclIgnore, 4),
    (Kind::AclSuperuser, 5),
    (Kind::NtlmNone, 6),
];

const KINDS: &[(Kind, &str)] = &[
    (Kind::ArAllow204, "auth_request allow (204)"),
    (Kind::ArAllow200, "auth_request allow (200)"),
    (Kind::ArDeny401, "auth_request deny 401"),
    (Kind::ArDeny403, "auth_request deny 403"),
    (Kind::KaHeader, "key_auth key in header"),
    (Kind::KaQuery, "key_auth key in query"),
    (Kind::KaMissing, "key_auth missing key"),
    (Kind::KaInvalid, "key_auth invalid key"),
    (Kind::KaQuota, "key_auth quota consumer"),
    (Kind::AclAllow, "auth_http allow (GET)"),
    (Kind::AclAllowPost, "auth_http allow (POST)"),
    (Kind::AclDeny, "auth_http deny"),
    (Kind::AclIgnore, "auth_http ignore->deny"),
    (Kind::AclSuperuser, "auth_http superuser"),
    (Kind::NtlmNone, "ntlm, never authenticated"),
    (Kind::NtlmBound, "ntlm, bound connections"),
];

fn kind_index(k: Kind) -> usize {
    KINDS.iter().position(|(x, _)| *x == k).unwrap()
}

const MISSING_BODY: &str = r#"{"message":"Missing API key found in request"}"#;
const INVALID_BODY: &str = r#"{"message":"Invalid API key in request"}"#;

/// splitmix64: small, good enough, and the same everywhere.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[derive(Default)]
struct KindStats {
    sent: AtomicU64,
    ok: AtomicU64,
    wrong: AtomicU64,
    conn_errors: AtomicU64,
}

#[derive(Default)]
struct Shared {
    kinds: Vec<KindStats>,
    completed: AtomicU64,
    connects: AtomicU64,
    idle_retries: AtomicU64,
    /// Why idle connections were found closed: "EOF", "write: …", "… reset …".
    retry_reasons: Mutex<std::collections::BTreeMap<String, u64>>,
    server_closes: AtomicU64,
    ntlm_lost: AtomicU64,
    ntlm_own: AtomicU64,
    quota_admitted: AtomicU64,
    quota_refused: AtomicU64,
    quota_remaining: Mutex<Vec<u64>>,
    reloads: AtomicU64,
    reload_failures: AtomicU64,
    notes: Mutex<Vec<String>>,
    stop: AtomicBool,
}

impl Shared {
    fn note(&self, what: String) {
        let mut notes = self.notes.lock().unwrap();
        if notes.len() < 30 {
            notes.push(what);
        }
    }
}

/// What a correct answer was.
enum Good {
    Plain,
    /// An NTLM connection's request answered without its token: the binding
    /// ended (acceptable; the client authenticates again).
    BindingLost,
}

struct Request {
    kind: Kind,
    id: String,
    bytes: Vec<u8>,
    /// The NTLM token this request carried, if any.
    sent_token: Option<String>,
    /// The token of this TCP connection (what a bound upstream must show).
    own_token: String,
}

fn build(kind: Kind, id: &str, conn: usize, own_token: &str, send_token: bool) -> Request {
    let target = match kind {
        Kind::ArAllow204 => format!("/ar/allow204/{id}"),
        Kind::ArAllow200 => format!("/ar/allow200/{id}"),
        Kind::ArDeny401 => format!("/ar/deny401/{id}"),
        Kind::ArDeny403 => format!("/ar/deny403/{id}"),
        Kind::KaHeader => format!("/ka/h/{id}?x=1"),
        Kind::KaQuery => format!("/ka/q/{id}?z=%2f+x&apikey=bob-key&b"),
        Kind::KaMissing => format!("/ka/m/{id}"),
        Kind::KaInvalid => format!("/ka/i/{id}"),
        Kind::KaQuota => format!("/ka/quota/{id}"),
        Kind::AclAllow | Kind::AclAllowPost => format!("/acl/allow/{id}"),
        Kind::AclDeny | Kind::AclSuperuser => format!("/acl/deny/{id}"),
        Kind::AclIgnore => format!("/acl/ignore/{id}"),
        Kind::NtlmNone | Kind::NtlmBound => format!("/ntlm/{id}"),
    };
    let method = if kind == Kind::AclAllowPost {
        "POST"
    } else {
        "GET"
    };
    let mut extra = String::new();
    match kind {
        Kind::KaHeader => {
            // Forged identity headers must be replaced by the consumer's.
            extra.push_str("apikey: alice-key\r\nX-Consumer-Username: mallory\r\nX-Credential-Identifier: forged\r\n")
        }
        Kind::KaInvalid => extra.push_str(&format!("apikey: bad-{id}\r\n")),
        Kind::KaQuota => extra.push_str("apikey: quota-key\r\n"),
        Kind::AclAllow | Kind::AclDeny | Kind::AclIgnore => extra.push_str(&format!(
            "Authorization: Basic YWxpY2U6cHc=\r\nX-Client-Id: c{conn}\r\nX-Expect-Access: 1\r\n"
        )),
        Kind::AclAllowPost => extra.push_str(&format!(
            "Authorization: Basic YWxpY2U6cHc=\r\nX-Client-Id: c{conn}\r\nX-Expect-Access: 2\r\nContent-Length: 7\r\n"
        )),
        Kind::AclSuperuser => extra.push_str(&format!(
            "Authorization: Basic cm9vdDpwdw==\r\nX-Client-Id: c{conn}\r\n"
        )),
        _ => {}
    }
    let sent_token = (kind == Kind::NtlmBound && send_token).then(|| {
        extra.push_str(&format!("Authorization: NTLM {own_token}\r\n"));
        own_token.to_string()
    });
    let mut bytes =
        format!("{method} {target} HTTP/1.1\r\nHost: soak\r\nX-Soak-Id: {id}\r\n{extra}\r\n")
            .into_bytes();
    if kind == Kind::AclAllowPost {
        bytes.extend_from_slice(b"payload");
    }
    Request {
        kind,
        id: id.to_string(),
        bytes,
        sent_token,
        own_token: own_token.to_string(),
    }
}

/// The app backend's echo, as name → value.
fn echo(resp: &Message) -> Vec<(String, String)> {
    String::from_utf8_lossy(&resp.body)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

fn field<'a>(e: &'a [(String, String)], name: &str) -> &'a str {
    e.iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("<absent>")
}

fn expect_status(resp: &Message, want: u16) -> Result<(), String> {
    if resp.status() == want {
        Ok(())
    } else {
        Err(format!(
            "status {} (want {want}), body {:?}",
            resp.status(),
            String::from_utf8_lossy(&resp.body)
        ))
    }
}

/// An answer of the app backend for this request, with these consumer fields.
fn expect_app(
    resp: &Message,
    req: &Request,
    target: &str,
    consumer: (&str, &str, &str),
) -> Result<(), String> {
    expect_status(resp, 200)?;
    let e = echo(resp);
    let want_body = if req.kind == Kind::AclAllowPost {
        "7"
    } else {
        "0"
    };
    let got = (
        field(&e, "id"),
        field(&e, "target"),
        field(&e, "consumer"),
        field(&e, "cred"),
        field(&e, "custom"),
        field(&e, "apikey"),
        field(&e, "body"),
    );
    let want = (
        req.id.as_str(),
        target,
        consumer.0,
        consumer.1,
        consumer.2,
        "-",
        want_body,
    );
    if got == want {
        Ok(())
    } else {
        Err(format!("app saw {got:?}, want {want:?}"))
    }
}

fn expect_nginx_page(resp: &Message, want: u16, text: &str) -> Result<(), String> {
    expect_status(resp, want)?;
    if String::from_utf8_lossy(&resp.body).contains(text) {
        Ok(())
    } else {
        Err(format!(
            "{want} without {text:?}: {:?}",
            String::from_utf8_lossy(&resp.body)
        ))
    }
}

fn expect_key_401(resp: &Message, body: &str) -> Result<(), String> {
    expect_status(resp, 401)?;
    let got = (
        String::from_utf8_lossy(&resp.body).into_owned(),
        resp.headers_named("www-authenticate"),
        resp.header("content-type"),
    );
    let want = (
        body.to_string(),
        vec![r#"apikey realm="key""#],
        Some("application/json"),
    );
    if got == want {
        Ok(())
    } else {
        Err(format!("401 {got:?}, want {want:?}"))
    }
}

fn check(req: &Request, resp: &Message, shared: &Shared, quota_limit: u64) -> Result<Good, String> {
    let id = req.id.as_str();
    let none = ("-", "-", "-");
    match req.kind {
        Kind::ArAllow204 | Kind::ArAllow200 => {
            let target = if req.kind == Kind::ArAllow204 {
                format!("/ar/allow204/{id}")
            } else {
                format!("/ar/allow200/{id}")
            };
            expect_app(resp, req, &target, none)?;
        }
        Kind::ArDeny401 => {
            expect_nginx_page(resp, 401, "401 Authorization Required")?;
            let got = resp.headers_named("www-authenticate");
            let realm = format!("Basic realm=\"soak-{id}\"");
            let want = vec![realm.as_str(), "Bearer error=\"soak\""];
            if got != want {
                return Err(format!("challenges {got:?}, want {want:?}"));
            }
        }
        Kind::ArDeny403 | Kind::AclDeny | Kind::AclIgnore => {
            expect_nginx_page(resp, 403, "403 Forbidden")?
        }
        Kind::KaHeader => expect_app(
            resp,
            req,
            &format!("/ka/h/{id}?x=1"),
            ("alice", "cred-alice", "c-alice"),
        )?,
        Kind::KaQuery => expect_app(
            resp,
            req,
            &format!("/ka/q/{id}?z=%2f+x&b"),
            ("bob", "cred-bob", "-"),
        )?,
        Kind::KaMissing => expect_key_401(resp, MISSING_BODY)?,
        Kind::KaInvalid => expect_key_401(resp, INVALID_BODY)?,
        Kind::KaQuota => {
            let limit = resp.header("x-ratelimit-limit").unwrap_or("");
            if limit != quota_limit.to_string() {
                return Err(format!("X-RateLimit-Limit {limit:?}, want {quota_limit}"));
            }
            let remaining: u64 = resp
                .header("x-ratelimit-remaining")
                .and_then(|v| v.parse().ok())
                .ok_or("no valid X-RateLimit-Remaining")?;
            let reset: u64 = resp
                .header("x-ratelimit-reset")
                .and_then(|v| v.parse().ok())
                .ok_or("no valid X-RateLimit-Reset")?;
            if reset == 0 || reset > 3600 {
                return Err(format!("X-RateLimit-Reset {reset} outside 1..=3600"));
            }
            if resp.status() == 429 {
                expect_nginx_page(resp, 429, "429 Too Many Requests")?;
                if remaining != 0 {
                    return Err(format!("429 with X-RateLimit-Remaining {remaining}"));
                }
                shared.quota_refused.fetch_add(1, Ordering::Relaxed);
            } else {
                expect_app(
                    resp,
                    req,
                    &format!("/ka/quota/{id}"),
                    ("quota", "cred-quota", "-"),
                )?;
                shared.quota_admitted.fetch_add(1, Ordering::Relaxed);
                shared.quota_remaining.lock().unwrap().push(remaining);
            }
        }
        Kind::AclAllow | Kind::AclAllowPost => {
            expect_app(resp, req, &format!("/acl/allow/{id}"), none)?
        }
        Kind::AclSuperuser => expect_app(resp, req, &format!("/acl/deny/{id}"), none)?,
        Kind::NtlmNone | Kind::NtlmBound => {
            expect_status(resp, 200)?;
            let e = echo(resp);
            if field(&e, "id") != id {
                return Err(format!("ntlm answer for request {:?}", field(&e, "id")));
            }
            let token = field(&e, "token");
            match (&req.sent_token, req.kind) {
                (_, Kind::NtlmNone) if token != "none" => {
                    return Err(format!(
                        "never authenticated, yet the backend saw {token:?}"
                    ))
                }
                (_, Kind::NtlmNone) => {}
                (Some(sent), _) if token != sent => {
                    return Err(format!("sent token {sent:?}, backend saw {token:?}"))
                }
                (Some(_), _) => {}
                (None, _) if token == "none" => return Ok(Good::BindingLost),
                (None, _) if token == req.own_token => {}
                (None, _) => {
                    return Err(format!(
                        "backend saw {token:?}, not this connection's token"
                    ))
                }
            }
        }
    }
    Ok(Good::Plain)
}

/// One client connection, reopened as needed.
struct Conn {
    port: u16,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
    /// Requests answered on the current stream.
    served: u64,
}

enum Failure {
    /// Closed before any byte of the answer on a reused idle connection:
    /// retry once on a new one.
    Retryable(String),
    Error(String),
}

impl Conn {
    fn connect(&mut self, shared: &Shared) -> Result<(), String> {
        let s =
            TcpStream::connect(("127.0.0.1", self.port)).map_err(|e| format!("connect: {e}"))?;
        let _ = s.set_nodelay(true);
        let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
        let _ = s.set_write_timeout(Some(Duration::from_secs(30)));
        shared.connects.fetch_add(1, Ordering::Relaxed);
        self.stream = Some(s);
        self.buf.clear();
        self.served = 0;
        Ok(())
    }

    fn exchange(&mut self, bytes: &[u8]) -> Result<Message, Failure> {
        let reused = self.served > 0;
        let stream = self.stream.as_mut().expect("connected");
        if let Err(e) = stream.write_all(bytes) {
            return Err(if reused && http::is_closed_by_peer(&e) {
                Failure::Retryable(format!("write: {e}"))
            } else {
                Failure::Error(format!("write: {e}"))
            });
        }
        match http::read_message(stream, &mut self.buf, true) {
            Ok(m) => Ok(m),
            Err(ReadError::ClosedBeforeAnyByte(why)) if reused => Err(Failure::Retryable(why)),
            Err(ReadError::ClosedBeforeAnyByte(why)) => Err(Failure::Error(format!(
                "{why} before any byte on a new connection"
            ))),
            Err(ReadError::Broken(why)) => Err(Failure::Error(why)),
        }
    }
}

fn connection_thread(idx: usize, n: u64, cfg: &Config, shared: &Shared) {
    let ntlm = idx < cfg.ntlm_connections;
    let mut rng = Rng(cfg.seed ^ (idx as u64).wrapping_mul(0x2545_f491_4f6c_dd1d));
    let total_weight: u64 = MIX.iter().map(|(_, w)| w).sum();
    let mut conn = Conn {
        port: cfg.port,
        stream: None,
        buf: Vec::new(),
        served: 0,
    };
    // NTLM: a token per TCP connection, sent until the backend reflects it.
    let mut generation = 0u64;
    let mut authed = false;
    for seq in 0..n {
        if shared.stop.load(Ordering::Relaxed) {
            return;
        }
        let kind = if ntlm {
            Kind::NtlmBound
        } else {
            let mut r = rng.next() % total_weight;
            let mut pick = MIX[0].0;
            for (k, w) in MIX {
                if r < *w {
                    pick = *k;
                    break;
                }
                r -= w;
            }
            pick
        };
        let id = format!("{idx}.{seq}");
        let ks = &shared.kinds[kind_index(kind)];
        ks.sent.fetch_add(1, Ordering::Relaxed);
        let mut result = None;
        let mut last_req = None;
        for attempt in 0..2 {
            if conn.stream.is_none() {
                if let Err(e) = conn.connect(shared) {
                    result = Some(Err(Failure::Error(e)));
                    break;
                }
                generation += 1;
                authed = false;
            }
            let token = format!("TlRMTVNTUAABc{idx}g{generation}");
            let req = build(kind, &id, idx, &token, !authed);
            let r = conn.exchange(&req.bytes);
            last_req = Some(req);
            match r {
                Err(Failure::Retryable(why)) if attempt == 0 => {
                    shared.idle_retries.fetch_add(1, Ordering::Relaxed);
                    *shared.retry_reasons.lock().unwrap().entry(why).or_default() += 1;
                    conn.stream = None;
                }
                other => {
                    result = Some(other);
                    break;
                }
            }
        }
        let req = last_req;
        match result {
            Some(Ok(resp)) => {
                conn.served += 1;
                if resp.wants_close() {
                    shared.server_closes.fetch_add(1, Ordering::Relaxed);
                    conn.stream = None;
                }
                let req = req.expect("sent");
                match check(&req, &resp, shared, cfg.quota_limit) {
                    Ok(good) => {
                        ks.ok.fetch_add(1, Ordering::Relaxed);
                        if kind == Kind::NtlmBound {
                            match good {
                                Good::BindingLost => {
                                    shared.ntlm_lost.fetch_add(1, Ordering::Relaxed);
                                    authed = false;
                                }
                                Good::Plain => {
                                    shared.ntlm_own.fetch_add(1, Ordering::Relaxed);
                                    authed = true;
                                }
                            }
                        }
                    }
                    Err(why) => {
                        ks.wrong.fetch_add(1, Ordering::Relaxed);
                        shared.note(format!("WRONG {kind:?} {id}: {why}"));
                    }
                }
            }
            Some(Err(Failure::Error(why) | Failure::Retryable(why))) => {
                ks.conn_errors.fetch_add(1, Ordering::Relaxed);
                shared.note(format!(
                    "CONNECTION ERROR {kind:?} {id} (request {} on its connection): {why}",
                    conn.served + 1
                ));
                conn.stream = None;
            }
            None => unreachable!("an attempt always ends with a result"),
        }
        shared.completed.fetch_add(1, Ordering::Relaxed);
    }
}

fn active_workers(master: u32) -> Vec<procfs::Worker> {
    procfs::workers(master)
        .into_iter()
        .filter(|w| !w.shutting_down)
        .collect()
}

/// SIGHUP, then wait for a full new generation of workers.
fn reload(cfg: &Config, shared: &Shared) {
    let old: HashSet<u32> = active_workers(cfg.master).iter().map(|w| w.pid).collect();
    let status = Command::new("kill")
        .args(["-HUP", &cfg.master.to_string()])
        .status();
    if !status.is_ok_and(|s| s.success()) {
        shared.reload_failures.fetch_add(1, Ordering::Relaxed);
        shared.note(format!("RELOAD: kill -HUP {} failed", cfg.master));
        return;
    }
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        let now = active_workers(cfg.master);
        if now.len() == cfg.workers && now.iter().all(|w| !old.contains(&w.pid)) {
            shared.reloads.fetch_add(1, Ordering::Relaxed);
            return;
        }
        thread::sleep(Duration::from_millis(20));
    }
    shared.reload_failures.fetch_add(1, Ordering::Relaxed);
    shared.note("RELOAD: no new generation of workers within 30 s".into());
}

fn reloader(cfg: &Config, shared: &Shared) {
    let start = Instant::now();
    let mut next_by_time = cfg.reload_interval;
    let mut next_by_progress = 1;
    let mut next_tenth = 1;
    while !shared.stop.load(Ordering::Relaxed) {
        thread::sleep(Duration::from_millis(20));
        // A line per tenth of the run, on stderr.
        let done = shared.completed.load(Ordering::Relaxed);
        if next_tenth < 10 && done >= cfg.requests * next_tenth / 10 {
            // Short runs (--ci) are over before anyone reads it.
            if start.elapsed() >= Duration::from_secs(5) {
                eprintln!(
                    "soak: {done}/{} requests, {} reloads, {:.0} s",
                    cfg.requests,
                    shared.reloads.load(Ordering::Relaxed),
                    start.elapsed().as_secs_f64()
                );
            }
            next_tenth += 1;
        }
        let due_time = cfg.reload_interval > 0.0 && start.elapsed().as_secs_f64() >= next_by_time;
        let due_progress = cfg.reloads > 0
            && next_by_progress <= cfg.reloads
            && shared.completed.load(Ordering::Relaxed)
                >= cfg.requests * next_by_progress / (cfg.reloads + 1);
        if due_time || due_progress {
            reload(cfg, shared);
            if due_time {
                next_by_time = start.elapsed().as_secs_f64() + cfg.reload_interval;
            }
            if due_progress {
                next_by_progress += 1;
            }
        }
    }
}

struct Sample {
    completed: u64,
    reloads: u64,
    workers_kb: u64,
    master_kb: u64,
    /// (pid, kB) of each worker.
    each: Vec<(u32, u64)>,
}

fn sampler(cfg: &Config, shared: &Shared, out: &Mutex<Vec<Sample>>) {
    let mut next = Instant::now();
    while !shared.stop.load(Ordering::Relaxed) {
        if Instant::now() >= next {
            next += Duration::from_secs_f64(cfg.rss_interval);
            let w = active_workers(cfg.master);
            // Mid-reload (a generation not complete) the sum means nothing.
            if w.len() == cfg.workers {
                if let Some(master_kb) = procfs::rss_kb(cfg.master) {
                    out.lock().unwrap().push(Sample {
                        completed: shared.completed.load(Ordering::Relaxed),
                        reloads: shared.reloads.load(Ordering::Relaxed),
                        workers_kb: w.iter().map(|w| w.rss_kb).sum(),
                        master_kb,
                        each: w.iter().map(|w| (w.pid, w.rss_kb)).collect(),
                    });
                }
            }
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn backend_stats(port: u16) -> Result<(u64, u64, String), String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    s.write_all(b"GET /_soak/stats HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    let m = http::read_message(&mut s, &mut buf, true).map_err(|e| format!("{e:?}"))?;
    let body = String::from_utf8_lossy(&m.body).into_owned();
    let num = |name: &str| {
        body.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.parse().ok())
            .unwrap_or(u64::MAX)
    };
    let notes = body
        .lines()
        .filter(|l| !l.starts_with("requests=") && !l.starts_with("anomalies="))
        .collect::<Vec<_>>()
        .join("\n");
    Ok((num("requests="), num("anomalies="), notes))
}

/// Runs the soak; prints the report; Ok(true) when everything held.
pub fn run(cfg: Config) -> bool {
    let shared = Arc::new(Shared {
        kinds: KINDS.iter().map(|_| KindStats::default()).collect(),
        ..Default::default()
    });
    let cfg = Arc::new(cfg);
    let samples = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let mut side = Vec::new();
    {
        let (cfg, shared) = (Arc::clone(&cfg), Arc::clone(&shared));
        side.push(thread::spawn(move || reloader(&cfg, &shared)));
    }
    {
        let (cfg, shared, samples) = (Arc::clone(&cfg), Arc::clone(&shared), Arc::clone(&samples));
        side.push(thread::spawn(move || sampler(&cfg, &shared, &samples)));
    }
    let mut load = Vec::new();
    let per = cfg.requests / cfg.connections as u64;
    let rest = cfg.requests % cfg.connections as u64;
    for idx in 0..cfg.connections {
        let n = per + u64::from((idx as u64) < rest);
        let (cfg, shared) = (Arc::clone(&cfg), Arc::clone(&shared));
        load.push(thread::spawn(move || {
            connection_thread(idx, n, &cfg, &shared)
        }));
    }
    for t in load {
        let _ = t.join();
    }
    let wall = start.elapsed().as_secs_f64();
    shared.stop.store(true, Ordering::Relaxed);
    for t in side {
        let _ = t.join();
    }
    let samples = samples.lock().unwrap();
    report(&cfg, &shared, &samples, wall)
}

fn report(cfg: &Config, shared: &Shared, samples: &[Sample], wall: f64) -> bool {
    let mut ok = true;
    let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
    println!(
        "{:<28} {:>9} {:>9} {:>7} {:>9}",
        "request kind", "sent", "right", "wrong", "conn-err"
    );
    let (mut sent, mut right, mut wrong, mut cerr) = (0, 0, 0, 0);
    for ((_, name), ks) in KINDS.iter().zip(&shared.kinds) {
        let s = (ld(&ks.sent), ld(&ks.ok), ld(&ks.wrong), ld(&ks.conn_errors));
        println!("{name:<28} {:>9} {:>9} {:>7} {:>9}", s.0, s.1, s.2, s.3);
        sent += s.0;
        right += s.1;
        wrong += s.2;
        cerr += s.3;
    }
    println!("{:<28} {sent:>9} {right:>9} {wrong:>7} {cerr:>9}", "total");
    println!();
    let reloads = ld(&shared.reloads);
    println!(
        "wall {wall:.1} s, {:.0} requests/s, {} connections ({} of them ntlm), {reloads} reloads",
        sent as f64 / wall,
        cfg.connections,
        cfg.ntlm_connections
    );
    println!(
        "connections opened {}; closed by nginx with Connection: close {}; \
         idle keep-alive closed before any answer byte, retried once on a new connection: {}",
        ld(&shared.connects),
        ld(&shared.server_closes),
        ld(&shared.idle_retries)
    );
    let reasons = shared.retry_reasons.lock().unwrap();
    if !reasons.is_empty() {
        let list: Vec<String> = reasons.iter().map(|(r, n)| format!("{r}: {n}")).collect();
        println!("  (how they were found closed: {})", list.join(", "));
    }
    println!(
        "ntlm: answers with the connection's own token {}; binding ended (no token, re-authenticated) {}",
        ld(&shared.ntlm_own),
        ld(&shared.ntlm_lost)
    );
    let mut fail = |why: String| {
        println!("FAIL: {why}");
        ok = false;
    };
    if sent != cfg.requests {
        fail(format!("sent {sent} of {} requests", cfg.requests));
    }
    if wrong > 0 {
        fail(format!("{wrong} wrong answers"));
    }
    if cerr > 0 {
        fail(format!("{cerr} connection errors"));
    }
    if ld(&shared.reload_failures) > 0 {
        fail(format!("{} reloads failed", ld(&shared.reload_failures)));
    }
    if cfg.reloads > 0 && reloads < cfg.reloads {
        fail(format!("{reloads} reloads, want {}", cfg.reloads));
    }

    // The quota consumer: exactly `limit` admissions in its one window,
    // across reloads (the zone survives them), each with its own Remaining.
    let admitted = ld(&shared.quota_admitted);
    let refused = ld(&shared.quota_refused);
    let qi = kind_index(Kind::KaQuota);
    let qsent = ld(&shared.kinds[qi].sent);
    println!(
        "quota consumer (limit={}/1h): {qsent} requests, {admitted} admitted, {refused} refused with 429",
        cfg.quota_limit
    );
    if qsent <= cfg.quota_limit {
        fail(format!(
            "only {qsent} quota requests: the mix never reaches the limit {}",
            cfg.quota_limit
        ));
    } else if admitted != cfg.quota_limit {
        fail(format!(
            "quota consumer admitted {admitted} times, limit {}",
            cfg.quota_limit
        ));
    }
    let mut rem = shared.quota_remaining.lock().unwrap().clone();
    rem.sort_unstable();
    let want: Vec<u64> = (0..admitted.min(cfg.quota_limit)).collect();
    if admitted == cfg.quota_limit && rem != want {
        fail(format!(
            "X-RateLimit-Remaining of the admitted requests {rem:?}, want each of 0..{} once",
            cfg.quota_limit
        ));
    }

    // RSS: the first sample after warm-up is the baseline. Warm-up is
    // warmup_pct of the requests and, when nginx is reloaded at all, the
    // first reload: from then on the master holds two configuration cycles'
    // worth of memory (the old one is freed, but malloc keeps the pages),
    // a step, not a trend.
    let warm = (cfg.requests as f64 * cfg.warmup_pct / 100.0) as u64;
    let warm_reloads = u64::from(cfg.reloads > 0 || cfg.reload_interval > 0.0);
    let post: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.completed >= warm && s.reloads >= warm_reloads)
        .collect();
    println!(
        "rss samples: {} in all, {} after warm-up ({}% of the requests and {warm_reloads} reload)",
        samples.len(),
        post.len(),
        cfg.warmup_pct
    );
    if post.len() < 2 {
        fail("fewer than 2 RSS samples after warm-up: RSS not evaluated".into());
    } else {
        for (what, get) in [
            (
                "workers (sum)",
                (|s: &Sample| s.workers_kb) as fn(&Sample) -> u64,
            ),
            ("master", |s: &Sample| s.master_kb),
        ] {
            let base = get(post[0]);
            let last = get(post[post.len() - 1]);
            let max = post.iter().map(|s| get(s)).max().unwrap_or(0);
            let limit = base as f64 * (1.0 + cfg.rss_pct / 100.0) + cfg.rss_mb * 1024.0;
            println!(
                "rss {what:<14} first {base} kB, last {last} kB, max {max} kB, \
                 limit {limit:.0} kB (first + {}% + {} MB)",
                cfg.rss_pct, cfg.rss_mb
            );
            if last as f64 > limit {
                fail(format!("{what} RSS grew from {base} kB to {last} kB"));
            }
        }
    }

    // Within one worker's life (a reload ends it): the largest growth from
    // its first sample to its last, for the record (a worker grows while it
    // warms up, so this is not a pass/fail figure).
    let mut life: std::collections::BTreeMap<u32, (u64, u64, usize)> = Default::default();
    for s in &post {
        for &(pid, kb) in &s.each {
            let e = life.entry(pid).or_insert((kb, kb, 0));
            e.1 = kb;
            e.2 += 1;
        }
    }
    if let Some((pid, (first, last, n))) = life
        .iter()
        .max_by_key(|(_, (f, l, _))| l.saturating_sub(*f))
    {
        println!(
            "rss of one worker over its life: {} workers seen; largest growth pid {pid}: {first} -> {last} kB over {n} samples",
            life.len()
        );
    }

    for (name, port) in &cfg.backends {
        match backend_stats(*port) {
            Ok((requests, anomalies, notes)) => {
                println!("backend {name:<5} {requests} requests, {anomalies} anomalies");
                if anomalies > 0 {
                    fail(format!("backend {name}: {anomalies} anomalies:\n{notes}"));
                }
            }
            Err(e) => fail(format!("backend {name}: stats: {e}")),
        }
    }
    let notes = shared.notes.lock().unwrap();
    if !notes.is_empty() {
        println!("first {} problems:", notes.len());
        for n in notes.iter() {
            println!("  {n}");
        }
    }
    println!("{}", if ok { "SOAK PASSED" } else { "SOAK FAILED" });
    ok
}
