//! RESP: commands encoded and replies decoded with the `redis-protocol`
//! crate (RESP2 only, no async runtime), and what the module asks Redis:
//! the fixed-window counter script. Pure.

use redis_protocol::resp2::decode::decode;
use redis_protocol::resp2::encode::encode_borrowed;
use redis_protocol::resp2::types::{BorrowedFrame, OwnedFrame};
use sha1::{Digest, Sha1};

/// One fixed window per key, atomically: count the request; the first
/// request of a window starts it (`PEXPIRE`, milliseconds); answer the
/// count and the window's remaining time in milliseconds (`PTTL`).
///
/// A key left without a TTL (written by hand, or an expiry lost) or with a
/// TTL longer than the configured window (the window was shortened by a
/// reload) gets the configured window, so no counter outlives it.
/// `KEYS[1]` the counter, `ARGV[1]` the window in ms.
pub const QUOTA_SCRIPT: &str = "\
local n = redis.call('INCR', KEYS[1])
local w = tonumber(ARGV[1])
local t = -1
if n > 1 then t = redis.call('PTTL', KEYS[1]) end
if t < 0 or t > w then
  redis.call('PEXPIRE', KEYS[1], w)
  t = w
end
return {n, t}
";

/// The script's SHA-1 in lowercase hex, as `EVALSHA` wants it.
pub fn script_sha(script: &str) -> [u8; 40] {
    let digest = Sha1::digest(script.as_bytes());
    let mut hex = [0u8; 40];
    for (i, b) in digest.iter().enumerate() {
        hex[2 * i] = b"0123456789abcdef"[usize::from(b >> 4)];
        hex[2 * i + 1] = b"0123456789abcdef"[usize::from(b & 15)];
    }
    hex
}

/// Appends the command `words` (an array of bulk strings) to `out`.
pub fn encode_command(out: &mut Vec<u8>, words: &[&[u8]]) {
    let parts: Vec<BorrowedFrame<'_>> =
        words.iter().map(|w| BorrowedFrame::BulkString(w)).collect();
    let frame = BorrowedFrame::Array(&parts);
    let start = out.len();
    out.resize(start + frame.encode_len(false), 0);
    // The buffer was sized by encode_len: encoding cannot run short.
    let n = encode_borrowed(&mut out[start..], &frame, false).unwrap_or(0);
    out.truncate(start + n);
}

/// `EVALSHA sha 1 key window_ms` (or `EVAL script 1 key window_ms`).
pub fn encode_quota(out: &mut Vec<u8>, sha: Option<&[u8; 40]>, key: &[u8], window_ms: u64) {
    let window = window_ms.to_string();
    match sha {
        Some(sha) => encode_command(out, &[b"EVALSHA", sha, b"1", key, window.as_bytes()]),
        None => encode_command(
            out,
            &[
                b"EVAL",
                QUOTA_SCRIPT.as_bytes(),
                b"1",
                key,
                window.as_bytes(),
            ],
        ),
    }
}

/// The bytes Redis sent are not RESP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotResp;

/// One reply off the front of `buf`: `Ok(None)` when it is incomplete,
/// `Ok(Some((reply, bytes used)))`, `Err` when it is not RESP.
pub fn decode_reply(buf: &[u8]) -> Result<Option<(OwnedFrame, usize)>, NotResp> {
    decode(buf).map_err(|_| NotResp)
}

/// What the quota script answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuotaReply {
    /// The window's count after this request, and the window's remaining
    /// time (ms).
    Counted { count: u64, ttl_ms: u64 },
    /// `NOSCRIPT`: the script is not cached (a restarted or flushed
    /// Redis): send it with `EVAL`.
    NoScript,
    /// Any other error reply (`NOAUTH`, `WRONGPASS`, `READONLY`, `OOM`…).
    Error,
    /// A reply of another shape: not our script's, or not Redis.
    Garbage,
}

pub fn quota_reply(frame: &OwnedFrame) -> QuotaReply {
    match frame {
        OwnedFrame::Error(e) if e.starts_with("NOSCRIPT") => QuotaReply::NoScript,
        OwnedFrame::Error(_) => QuotaReply::Error,
        OwnedFrame::Array(items) => match items.as_slice() {
            [OwnedFrame::Integer(n), OwnedFrame::Integer(t)] if *n >= 1 && *t >= 0 => {
                QuotaReply::Counted {
                    count: *n as u64,
                    ttl_ms: *t as u64,
                }
            }
            _ => QuotaReply::Garbage,
        },
        _ => QuotaReply::Garbage,
    }
}

/// The first line of an error reply, for the log (Redis error replies
/// never echo a password).
pub fn error_text(frame: &OwnedFrame) -> Option<String> {
    match frame {
        OwnedFrame::Error(e) => Some(e.chars().take(120).collect()),
        _ => None,
    }
}

/// Whether a handshake reply (`AUTH`, `SELECT`) is `+OK`.
pub fn is_ok(frame: &OwnedFrame) -> bool {
    matches!(frame, OwnedFrame::SimpleString(s) if s == b"OK")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha_matches_redis() {
        // sha1("") and sha1("abc"), the test vectors Redis' SCRIPT LOAD
        // would answer for those scripts.
        assert_eq!(&script_sha(""), b"da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(
            &script_sha("abc"),
            b"a9993e364706816aba3e25717850c26c9cd0d89d"
        );
    }

    #[test]
    fn encodes_commands_as_bulk_string_arrays() {
        let mut out = Vec::new();
        encode_command(&mut out, &[b"AUTH", b"u", b"p w"]);
        assert_eq!(out, b"*3\r\n$4\r\nAUTH\r\n$1\r\nu\r\n$3\r\np w\r\n");
        out.clear();
        encode_quota(&mut out, Some(&[b'a'; 40]), b"authgate:jack", 30_000);
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.starts_with("*5\r\n$7\r\nEVALSHA\r\n$40\r\n"));
        assert!(text.ends_with("$13\r\nauthgate:jack\r\n$5\r\n30000\r\n"));
        out.clear();
        encode_quota(&mut out, None, b"k", 1);
        assert!(out.starts_with(b"*5\r\n$4\r\nEVAL\r\n"));
    }

    #[test]
    fn decodes_replies_incrementally() {
        let reply = b"*2\r\n:3\r\n:29500\r\n";
        for cut in 0..reply.len() {
            assert_eq!(decode_reply(&reply[..cut]), Ok(None), "cut at {cut}");
        }
        let (frame, used) = decode_reply(reply).unwrap().unwrap();
        assert_eq!(used, reply.len());
        assert_eq!(
            quota_reply(&frame),
            QuotaReply::Counted {
                count: 3,
                ttl_ms: 29_500
            }
        );
        assert!(decode_reply(b"?what\r\n").is_err());
    }

    #[test]
    fn classifies_replies() {
        let f = |b: &[u8]| decode_reply(b).unwrap().unwrap().0;
        assert_eq!(
            quota_reply(&f(b"-NOSCRIPT No matching script.\r\n")),
            QuotaReply::NoScript
        );
        for e in [
            &b"-NOAUTH Authentication required.\r\n"[..],
            b"-WRONGPASS invalid username-password pair\r\n",
            b"-READONLY You can't write against a read only replica.\r\n",
            b"-OOM command not allowed\r\n",
        ] {
            assert_eq!(quota_reply(&f(e)), QuotaReply::Error);
        }
        for g in [
            &b"+OK\r\n"[..],
            b":1\r\n",
            b"*1\r\n:1\r\n",
            b"*2\r\n:0\r\n:5\r\n",
            b"*2\r\n:1\r\n:-2\r\n",
            b"*2\r\n$1\r\n1\r\n:5\r\n",
            b"$-1\r\n",
        ] {
            assert_eq!(quota_reply(&f(g)), QuotaReply::Garbage, "{g:?}");
        }
        assert!(is_ok(&f(b"+OK\r\n")));
        assert!(!is_ok(&f(b"-ERR x\r\n")));
        assert_eq!(error_text(&f(b"-ERR x\r\n")).as_deref(), Some("ERR x"));
    }
}
