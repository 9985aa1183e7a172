//! The soak test of nginx-authgate (ci/soak.sh starts nginx and runs this).
//!
//!   authgate-soak backends --ports-file FILE
//!   authgate-soak run --port P --master PID --backends-file FILE [options]
//!
//! `backends` serves the app, auth, ACL and NTLM backends on 127.0.0.1 until
//! killed; `run` sends the requests, reloads nginx, samples RSS, prints the
//! report and exits 1 if anything was wrong.

mod backends;
mod client;
mod http;
mod procfs;

use std::collections::HashMap;
use std::process::ExitCode;

fn usage() -> ExitCode {
    eprintln!(
        "usage: authgate-soak backends --ports-file FILE\n       \
         authgate-soak run --port P --master PID --backends-file FILE [--requests N] \
         [--connections N] [--ntlm-connections N] [--workers N] [--seed N] [--quota-limit N] \
         [--reload-interval SECS] [--reloads N] [--rss-pct P] [--rss-mb M] [--warmup-pct P] [--rss-interval SECS]"
    );
    ExitCode::from(2)
}

fn options(args: &[String]) -> Option<HashMap<String, String>> {
    let mut map = HashMap::new();
    let mut it = args.iter();
    while let Some(k) = it.next() {
        let name = k.strip_prefix("--")?;
        map.insert(name.to_string(), it.next()?.clone());
    }
    Some(map)
}

fn num<T: std::str::FromStr>(
    opts: &HashMap<String, String>,
    name: &str,
    default: T,
) -> Result<T, String> {
    match opts.get(name) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| format!("--{name}: not a number: {v:?}")),
    }
}

fn run(opts: &HashMap<String, String>) -> Result<bool, String> {
    let file = opts
        .get("backends-file")
        .ok_or("--backends-file is required")?;
    let text = std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?;
    let backends = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(n, p)| {
            Ok((
                n.to_string(),
                p.parse().map_err(|_| format!("{file}: {p:?}"))?,
            ))
        })
        .collect::<Result<Vec<(String, u16)>, String>>()?;
    let cfg = client::Config {
        port: num(opts, "port", 0)?,
        master: num(opts, "master", 0)?,
        workers: num(opts, "workers", 2)?,
        requests: num(opts, "requests", 20_000)?,
        connections: num(opts, "connections", 16)?,
        ntlm_connections: num(opts, "ntlm-connections", 4)?,
        seed: num(opts, "seed", 1)?,
        quota_limit: num(opts, "quota-limit", 50)?,
        reload_interval: num(opts, "reload-interval", 0.0)?,
        reloads: num(opts, "reloads", 0)?,
        backends,
        rss_pct: num(opts, "rss-pct", 10.0)?,
        rss_mb: num(opts, "rss-mb", 2.0)?,
        warmup_pct: num(opts, "warmup-pct", 10.0)?,
        rss_interval: num(opts, "rss-interval", 1.0)?,
    };
    if cfg.port == 0 || cfg.master == 0 {
        return Err("--port and --master are required".into());
    }
    if cfg.connections == 0 || cfg.ntlm_connections >= cfg.connections {
        return Err("--connections must exceed --ntlm-connections".into());
    }
    Ok(client::run(cfg))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = args.split_first() else {
        return usage();
    };
    let Some(opts) = options(rest) else {
        return usage();
    };
    let result = match cmd.as_str() {
        "backends" => match opts.get("ports-file") {
            Some(f) => backends::run(f).map(|()| true),
            None => return usage(),
        },
        "run" => run(&opts),
        _ => return usage(),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("authgate-soak: {e}");
            ExitCode::from(2)
        }
    }
}
