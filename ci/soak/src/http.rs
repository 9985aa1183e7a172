//! Just enough HTTP/1.1 for the soak: one message at a time over a blocking
//! stream, `Content-Length` or chunked bodies, no pipelining.

use std::io::{self, Read};

/// A parsed request or response.
#[derive(Debug, Default)]
pub struct Message {
    /// Request: method. Response: "HTTP/1.1".
    pub first: String,
    /// Request: target. Response: status code.
    pub second: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Message {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every header of that name, in order.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Whether the sender asked for the connection to be closed after it.
    pub fn wants_close(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }

    pub fn status(&self) -> u16 {
        self.second.parse().unwrap_or(0)
    }
}

/// Why no message could be read.
#[derive(Debug)]
pub enum ReadError {
    /// The peer closed or reset the connection before sending any byte of
    /// the message: on a reused keep-alive connection, the ordinary race with
    /// a server that closes idle connections.
    ClosedBeforeAnyByte(String),
    /// Anything else: a close or reset mid-message, a timeout, garbage.
    Broken(String),
}

/// Reads one message from `stream`. `buf` carries bytes read past the end of
/// the previous message (none, without pipelining, but kept honest).
/// `is_response`: 1xx, 204 and 304 responses have no body.
pub fn read_message<S: Read>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    is_response: bool,
) -> Result<Message, ReadError> {
    let started_empty = buf.is_empty();
    let mut chunk = [0u8; 16384];
    let head_end = loop {
        if let Some(pos) = find(buf, b"\r\n\r\n") {
            break pos;
        }
        if buf.len() > 64 * 1024 {
            return Err(ReadError::Broken("header larger than 64k".into()));
        }
        match stream.read(&mut chunk) {
            Ok(0) => {
                return Err(if buf.is_empty() && started_empty {
                    ReadError::ClosedBeforeAnyByte("EOF".into())
                } else {
                    ReadError::Broken(format!("EOF after {} header bytes", buf.len()))
                })
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(if buf.is_empty() && started_empty && is_reset(&e) {
                    ReadError::ClosedBeforeAnyByte(e.to_string())
                } else {
                    ReadError::Broken(format!("{e} after {} header bytes", buf.len()))
                })
            }
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    buf.drain(..head_end + 4);
    let mut lines = head.split("\r\n");
    let start = lines.next().unwrap_or_default();
    let mut parts = start.splitn(3, ' ');
    let mut msg = Message {
        first: parts.next().unwrap_or_default().to_string(),
        second: parts.next().unwrap_or_default().to_string(),
        ..Default::default()
    };
    if msg.second.is_empty() {
        return Err(ReadError::Broken(format!("bad start line {start:?}")));
    }
    for line in lines {
        let Some((n, v)) = line.split_once(':') else {
            return Err(ReadError::Broken(format!("bad header line {line:?}")));
        };
        msg.headers
            .push((n.trim().to_string(), v.trim().to_string()));
    }
    let bodyless = is_response && matches!(msg.status(), 100..=199 | 204 | 304);
    if bodyless {
        return Ok(msg);
    }
    if msg
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let line = read_line(stream, buf)?;
            let size_str = line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size_str, 16)
                .map_err(|_| ReadError::Broken(format!("bad chunk size {line:?}")))?;
            if size == 0 {
                // Trailers, then the empty line.
                while !read_line(stream, buf)?.is_empty() {}
                break;
            }
            fill(stream, buf, size + 2)?;
            msg.body.extend_from_slice(&buf[..size]);
            buf.drain(..size + 2);
        }
    } else {
        let len = match msg.header("content-length") {
            Some(v) => v
                .parse::<usize>()
                .map_err(|_| ReadError::Broken(format!("bad content-length {v:?}")))?,
            None if is_response => {
                return Err(ReadError::Broken(
                    "response without length (close-delimited)".into(),
                ))
            }
            None => 0,
        };
        fill(stream, buf, len)?;
        msg.body = buf.drain(..len).collect();
    }
    Ok(msg)
}

fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

/// Whether a write error is the peer having closed the connection.
pub fn is_closed_by_peer(e: &io::Error) -> bool {
    is_reset(e)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn fill<S: Read>(stream: &mut S, buf: &mut Vec<u8>, want: usize) -> Result<(), ReadError> {
    let mut chunk = [0u8; 16384];
    while buf.len() < want {
        match stream.read(&mut chunk) {
            Ok(0) => {
                return Err(ReadError::Broken(format!(
                    "EOF mid-body ({} of {want} bytes)",
                    buf.len()
                )))
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ReadError::Broken(format!("{e} mid-body"))),
        }
    }
    Ok(())
}

fn read_line<S: Read>(stream: &mut S, buf: &mut Vec<u8>) -> Result<String, ReadError> {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(pos) = find(buf, b"\r\n") {
            let line = String::from_utf8_lossy(&buf[..pos]).into_owned();
            buf.drain(..pos + 2);
            return Ok(line);
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Err(ReadError::Broken("EOF in chunked body".into())),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ReadError::Broken(format!("{e} in chunked body"))),
        }
    }
}

/// Serialises a response with a `Content-Length` body.
pub fn response(status: u16, reason: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} {reason}\r\n");
    for (n, v) in headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}
