//! A minimal HTTP/1.1 client over `std::net::TcpStream` and a tiny JSON field scanner, enough
//! for `/health` and etcd's JSON gateway.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A parsed HTTP response.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) body: String,
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Sends one request with `Connection: close` and reads the whole response; `timeout`
/// bounds the connect and the whole exchange.
pub(crate) fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    timeout: Duration,
) -> io::Result<Response> {
    let deadline = Instant::now() + timeout;
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_nodelay(true)?;
    stream.set_write_timeout(Some(timeout))?;
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "response timed out",
            ));
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    parse_response(&raw)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

pub(crate) fn parse_response(raw: &[u8]) -> io::Result<Response> {
    let head_end = find(raw, b"\r\n\r\n").ok_or_else(|| invalid("no end of headers"))?;
    let head = String::from_utf8_lossy(&raw[..head_end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| invalid(format!("bad status line {status_line:?}")))?;
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("transfer-encoding")
                && value.to_ascii_lowercase().contains("chunked")
            {
                chunked = true;
            } else if name.eq_ignore_ascii_case("content-length") {
                length = value.parse::<usize>().ok();
            }
        }
    }
    let rest = &raw[head_end + 4..];
    let body = if chunked {
        dechunk(rest)?
    } else if let Some(len) = length {
        rest.get(..len)
            .ok_or_else(|| invalid("body shorter than Content-Length"))?
            .to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Response {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut rest: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = find(rest, b"\r\n").ok_or_else(|| invalid("truncated chunk size"))?;
        let size_str = String::from_utf8_lossy(&rest[..eol]);
        let size_hex = size_str.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| invalid(format!("bad chunk size {size_hex:?}")))?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        let chunk = rest.get(..size).ok_or_else(|| invalid("truncated chunk"))?;
        out.extend_from_slice(chunk);
        rest = rest.get(size + 2..).unwrap_or(&[]);
    }
}

/// Returns the value of the first `"key": value` pair in a JSON text, as written: the
/// contents of a string (escapes are not decoded) or the literal of a number/bool. Good
/// enough for the flat fields of etcd's gateway answers (grpc-gateway writes 64-bit
/// integers as strings).
pub(crate) fn json_field(json: &str, key: &str) -> Option<String> {
    let pat = format!("\"{key}\"");
    let mut from = 0;
    while let Some(pos) = json[from..].find(&pat) {
        let after = from + pos + pat.len();
        let rest = json[after..].trim_start();
        if let Some(value) = rest.strip_prefix(':') {
            let value = value.trim_start();
            if let Some(s) = value.strip_prefix('"') {
                let mut end = None;
                let mut escaped = false;
                for (i, c) in s.char_indices() {
                    match c {
                        _ if escaped => escaped = false,
                        '\\' => escaped = true,
                        '"' => {
                            end = Some(i);
                            break;
                        }
                        _ => {}
                    }
                }
                return end.map(|e| s[..e].to_string());
            }
            let end = value
                .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+')))
                .unwrap_or(value.len());
            return Some(value[..end].to_string());
        }
        from = after;
    }
    None
}

/// [`json_field`] parsed as a `u64` (absent → `None`).
pub(crate) fn json_u64(json: &str, key: &str) -> Option<u64> {
    json_field(json, key).and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_gateway_status() {
        let s = r#"{"header":{"cluster_id":"151","member_id":"1366","revision":"1","raft_term":"2"},"version":"3.4.23","dbSize":"20480","leader":"1366","raftIndex":"5","raftTerm":"7"}"#;
        assert_eq!(json_u64(s, "member_id"), Some(1366));
        assert_eq!(json_u64(s, "leader"), Some(1366));
        assert_eq!(json_u64(s, "raftTerm"), Some(7));
        assert_eq!(json_field(s, "version").as_deref(), Some("3.4.23"));
        assert_eq!(json_field(s, "nope"), None);
        assert_eq!(json_u64(r#"{"a" : 12, "b":true}"#, "a"), Some(12));
        assert_eq!(
            json_field(r#"{"k":"x\"y"}"#, "k").as_deref(),
            Some("x\\\"y")
        );
        // A key-looking string value is not a key.
        assert_eq!(
            json_u64(r#"{"x":"leader","leader":"5"}"#, "leader"),
            Some(5)
        );
    }

    #[test]
    fn parses_plain_and_chunked() {
        let r =
            parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 17\r\n\r\n{\"health\":\"true\"}")
                .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, "{\"health\":\"true\"}");
        let r = parse_response(
            b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n3;x=y\r\nefg\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.status, 503);
        assert_eq!(r.body, "abcdefg");
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_err());
        assert!(parse_response(b"garbage\r\n\r\n").is_err());
    }
}
