//! nginx's processes as /proc shows them: the master's children and their
//! resident memory.

use std::fs;

#[derive(Debug, Clone)]
pub struct Worker {
    pub pid: u32,
    /// "nginx: worker process is shutting down" (an old generation after a
    /// reload, finishing its requests).
    pub shutting_down: bool,
    pub rss_kb: u64,
}

/// The worker processes of `master` (children whose title says so).
pub fn workers(master: u32) -> Vec<Worker> {
    let mut out = Vec::new();
    let Ok(dir) = fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if ppid(pid) != Some(master) {
            continue;
        }
        let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let title = String::from_utf8_lossy(&cmdline);
        let title = title.trim_end_matches('\0');
        if !title.starts_with("nginx: worker process") {
            continue;
        }
        let Some(rss_kb) = rss_kb(pid) else {
            continue;
        };
        out.push(Worker {
            pid,
            shutting_down: title.contains("shutting down"),
            rss_kb,
        });
    }
    out.sort_by_key(|w| w.pid);
    out
}

fn ppid(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // pid (comm) state ppid …; comm may contain spaces and parentheses.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(1)?.parse().ok()
}

/// VmRSS of a process, in kB.
pub fn rss_kb(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}
