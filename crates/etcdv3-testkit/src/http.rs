//! A minimal HTTP/1.0 client over `std::net::TcpStream`, enough for `/health`, `/metrics` and
//! etcd's JSON gateway: one request per connection, so the response is delimited by the
//! server closing it (an HTTP/1.0 server never answers with chunked encoding). JSON answers
//! are parsed with serde_json by the callers.

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

/// Sends one request and reads the whole response; `timeout` bounds the connect and the
/// whole exchange.
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
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\n\
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

/// Splits a complete response (the server closed the connection after it) into status and
/// body; the body is cut at `Content-Length` when there is one.
pub(crate) fn parse_response(raw: &[u8]) -> io::Result<Response> {
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| invalid("no end of headers"))?;
    let head = String::from_utf8_lossy(&raw[..head_end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|s| s.split_whitespace().nth(1))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| invalid(format!("bad status line {status_line:?}")))?;
    let mut body = &raw[head_end + 4..];
    for (name, value) in lines.filter_map(|l| l.split_once(':')) {
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") && !value.eq_ignore_ascii_case("identity")
        {
            return Err(invalid(format!("unexpected Transfer-Encoding {value}")));
        }
        if name.eq_ignore_ascii_case("content-length") {
            let len = value
                .parse::<usize>()
                .map_err(|_| invalid(format!("bad Content-Length {value:?}")))?;
            body = body
                .get(..len)
                .ok_or_else(|| invalid("body shorter than Content-Length"))?;
        }
    }
    Ok(Response {
        status,
        body: String::from_utf8_lossy(body).into_owned(),
    })
}

/// A 64-bit integer field of a gateway answer: grpc-gateway writes them as JSON strings,
/// other encoders as numbers; both are accepted.
pub(crate) fn u64_of(v: &serde_json::Value) -> Option<u64> {
    match v {
        serde_json::Value::String(s) => s.parse().ok(),
        other => other.as_u64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_responses() {
        let r =
            parse_response(b"HTTP/1.0 200 OK\r\nContent-Length: 17\r\n\r\n{\"health\":\"true\"}xx")
                .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, "{\"health\":\"true\"}");
        let r = parse_response(b"HTTP/1.1 503 Service Unavailable\r\nX: y\r\n\r\nabc").unwrap();
        assert_eq!(r.status, 503);
        assert_eq!(r.body, "abc");
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_err());
        assert!(parse_response(b"garbage\r\n\r\n").is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc").is_err());
        assert!(
            parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc")
                .is_err()
        );
    }

    #[test]
    fn u64_fields_as_strings_or_numbers() {
        let v: serde_json::Value =
            serde_json::from_str(r#"{"a":"18446744073709551615","b":7,"c":"x","d":-1}"#).unwrap();
        assert_eq!(u64_of(&v["a"]), Some(u64::MAX));
        assert_eq!(u64_of(&v["b"]), Some(7));
        assert_eq!(u64_of(&v["c"]), None);
        assert_eq!(u64_of(&v["d"]), None);
        assert_eq!(u64_of(&v["missing"]), None);
    }
}
