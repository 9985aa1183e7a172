//! The backends nginx talks to, one listener each on 127.0.0.1 (ports chosen
//! by the kernel, written to a file for ci/soak.sh to put into nginx.conf):
//!
//! * `app`  — the protected application: echoes what reached it (the request
//!   id, target, consumer headers, whether a key is left) so the client can
//!   check every answer belongs to its own request.
//! * `auth` — the `auth_request` service: answers by the path in
//!   `X-Original-URI` (`/ar/allow204/…` → 204, `/ar/deny401/…` → 401 with two
//!   challenges naming the request id, …).
//! * `acl`  — the `auth_http` service: superuser by user name (`root`), ACL by
//!   topic (`/acl/allow/…` → 200, `/acl/deny/…` → 403, `/acl/ignore/…` →
//!   `ignore`).
//! * `ntlm` — the NTLM application: remembers the `Authorization: NTLM …`
//!   token its TCP connection carried and reports it on every answer.
//!
//! Each counts what it saw that cannot be right (a key reaching the app, an
//! ACL question about another request's path, …) and answers
//! `GET /_soak/stats` with its counters; the client fails on any anomaly.

use crate::http::{self, Message};
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

#[derive(Clone, Copy)]
enum Role {
    App,
    Auth,
    Acl,
    Ntlm,
}

#[derive(Default)]
struct Stats {
    requests: AtomicU64,
    anomalies: AtomicU64,
    notes: Mutex<Vec<String>>,
}

impl Stats {
    fn anomaly(&self, what: String) {
        self.anomalies.fetch_add(1, Ordering::Relaxed);
        let mut notes = self.notes.lock().unwrap();
        if notes.len() < 20 {
            notes.push(what);
        }
    }
}

pub fn run(ports_file: &str) -> Result<(), String> {
    let roles = [
        ("app", Role::App),
        ("auth", Role::Auth),
        ("acl", Role::Acl),
        ("ntlm", Role::Ntlm),
    ];
    let mut listing = String::new();
    let mut handles = Vec::new();
    for (name, role) in roles {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        listing.push_str(&format!("{name}={port}\n"));
        let stats = Arc::new(Stats::default());
        handles.push(thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let stats = Arc::clone(&stats);
                thread::spawn(move || serve(stream, role, &stats));
            }
        }));
    }
    // Written whole, then renamed: the script waits for the file to exist.
    let tmp = format!("{ports_file}.tmp");
    std::fs::write(&tmp, listing).map_err(|e| format!("{tmp}: {e}"))?;
    std::fs::rename(&tmp, ports_file).map_err(|e| format!("{ports_file}: {e}"))?;
    for h in handles {
        let _ = h.join();
    }
    Ok(())
}

fn serve(mut stream: TcpStream, role: Role, stats: &Stats) {
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::new();
    // The NTLM application's per-connection memory.
    let mut token: Option<String> = None;
    loop {
        let Ok(req) = http::read_message(&mut stream, &mut buf, false) else {
            return;
        };
        let out = if req.second == "/_soak/stats" {
            let notes = stats.notes.lock().unwrap().join("\n");
            let body = format!(
                "requests={}\nanomalies={}\n{notes}\n",
                stats.requests.load(Ordering::Relaxed),
                stats.anomalies.load(Ordering::Relaxed)
            );
            http::response(200, "OK", &[], body.as_bytes())
        } else {
            stats.requests.fetch_add(1, Ordering::Relaxed);
            match role {
                Role::App => app(&req, stats),
                Role::Auth => auth(&req, stats),
                Role::Acl => acl(&req, stats),
                Role::Ntlm => ntlm(&req, &mut token),
            }
        };
        let mut out = out;
        if req.wants_close() {
            // Said before closing, so nginx never caches a connection that is gone.
            let head_end = out.windows(2).position(|w| w == b"\r\n").unwrap_or(0) + 2;
            out.splice(head_end..head_end, b"Connection: close\r\n".iter().copied());
        }
        if stream.write_all(&out).is_err() || req.wants_close() {
            return;
        }
    }
}

fn h<'a>(req: &'a Message, name: &str) -> &'a str {
    req.header(name).unwrap_or("-")
}

fn app(req: &Message, stats: &Stats) -> Vec<u8> {
    let id = h(req, "x-soak-id");
    if id == "-" {
        stats.anomaly(format!("app: request without X-Soak-Id: {}", req.second));
    }
    if req.second.starts_with("/ka/")
        && (req.header("apikey").is_some() || req.second.to_ascii_lowercase().contains("apikey"))
    {
        stats.anomaly(format!("app: the key reached the upstream: {}", req.second));
    }
    let body = format!(
        "id={id}\ntarget={}\nconsumer={}\ncred={}\ncustom={}\napikey={}\nbody={}\n",
        req.second,
        h(req, "x-consumer-username"),
        h(req, "x-credential-identifier"),
        h(req, "x-consumer-custom-id"),
        h(req, "apikey"),
        req.body.len()
    );
    http::response(
        200,
        "OK",
        &[("Content-Type", "text/plain")],
        body.as_bytes(),
    )
}

/// `/ar/<kind>/<id>` → (kind, id).
fn kind_and_id(path: &str, prefix: &str) -> Option<(String, String)> {
    let rest = path.strip_prefix(prefix)?;
    let (kind, id) = rest.split_once('/')?;
    Some((kind.to_string(), id.to_string()))
}

fn auth(req: &Message, stats: &Stats) -> Vec<u8> {
    let uri = h(req, "x-original-uri");
    let Some((kind, id)) = kind_and_id(uri, "/ar/") else {
        stats.anomaly(format!("auth: unexpected X-Original-URI {uri:?}"));
        return http::response(500, "Error", &[], b"");
    };
    if id != h(req, "x-soak-id") {
        stats.anomaly(format!(
            "auth: X-Original-URI {uri:?} with X-Soak-Id {:?}",
            h(req, "x-soak-id")
        ));
    }
    match kind.as_str() {
        "allow204" => http::response(204, "No Content", &[], b""),
        "allow200" => http::response(200, "OK", &[], b"allowed by the auth service\n"),
        "deny401" => http::response(
            401,
            "Unauthorized",
            &[
                ("WWW-Authenticate", &format!("Basic realm=\"soak-{id}\"")),
                ("WWW-Authenticate", "Bearer error=\"soak\""),
            ],
            b"no\n",
        ),
        "deny403" => http::response(403, "Forbidden", &[], b"no\n"),
        _ => {
            stats.anomaly(format!("auth: unknown kind in {uri:?}"));
            http::response(500, "Error", &[], b"")
        }
    }
}

/// application/x-www-form-urlencoded → pairs.
fn form(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (n, v) = p.split_once('=').unwrap_or((p, ""));
            (unescape(n), unescape(v))
        })
        .collect()
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn get<'a>(pairs: &'a [(String, String)], name: &str) -> &'a str {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

fn acl(req: &Message, stats: &Stats) -> Vec<u8> {
    let (path, query) = req.second.split_once('?').unwrap_or((&req.second, ""));
    match (req.first.as_str(), path) {
        ("POST", "/_acl/superuser") => {
            let params = form(&String::from_utf8_lossy(&req.body));
            if get(&params, "clientid") != h(req, "x-client-id") {
                stats.anomaly(format!("acl: superuser clientid {params:?}"));
            }
            if get(&params, "username") == "root" {
                http::response(200, "OK", &[], b"")
            } else {
                http::response(404, "Not Found", &[], b"")
            }
        }
        ("GET", "/_acl/acl") => {
            let params = form(query);
            let topic = get(&params, "topic");
            let id = h(req, "x-soak-id");
            let Some((kind, topic_id)) = kind_and_id(topic, "/acl/") else {
                stats.anomaly(format!("acl: unexpected topic {topic:?}"));
                return http::response(500, "Error", &[], b"");
            };
            if topic_id != id
                || get(&params, "clientid") != h(req, "x-client-id")
                || get(&params, "access") != h(req, "x-expect-access")
            {
                stats.anomaly(format!("acl: {params:?} for request {id}"));
            }
            match kind.as_str() {
                "allow" => http::response(200, "OK", &[], b"ok"),
                "deny" => http::response(403, "Forbidden", &[], b""),
                "ignore" => http::response(200, "OK", &[], b"ignore"),
                _ => {
                    stats.anomaly(format!("acl: unknown kind in {topic:?}"));
                    http::response(500, "Error", &[], b"")
                }
            }
        }
        _ => {
            stats.anomaly(format!("acl: unexpected {} {}", req.first, req.second));
            http::response(500, "Error", &[], b"")
        }
    }
}

fn ntlm(req: &Message, token: &mut Option<String>) -> Vec<u8> {
    if let Some(a) = req.header("authorization") {
        if a.len() > 5 && a[..5].eq_ignore_ascii_case("ntlm ") {
            *token = Some(a[5..].to_string());
        }
    }
    let body = format!(
        "token={}\nid={}\n",
        token.as_deref().unwrap_or("none"),
        h(req, "x-soak-id")
    );
    http::response(
        200,
        "OK",
        &[("Content-Type", "text/plain")],
        body.as_bytes(),
    )
}
