//! gRPC status: codes, the [`Status`] of a finished call, and how to derive
//! it from what arrived on the wire.
//!
//! A call's status is found, in order of precedence (see
//! [`response_status`]):
//!
//! 1. `grpc-status` in the response headers (a "trailers-only" response),
//! 2. `grpc-status` in the trailers,
//! 3. the HTTP status, when it is not 200 ([`Status::from_http_status`]),
//! 4. a 200 response that ended without `grpc-status` is `UNKNOWN`.
//!
//! When the stream is reset instead, [`Status::from_h2_reason`] maps the
//! `RST_STREAM` code.
//!
//! `grpc-message` is percent-encoded on the wire; [`percent_decode`] never
//! fails. Deadlines travel in `grpc-timeout` ([`encode_grpc_timeout`],
//! [`parse_grpc_timeout`]).
//!
//! ```
//! use etcdv3_core::wire::status::{response_status, Code};
//! use http::{HeaderMap, HeaderValue, StatusCode};
//!
//! let mut trailers = HeaderMap::new();
//! trailers.insert("grpc-status", HeaderValue::from_static("14"));
//! trailers.insert("grpc-message", HeaderValue::from_static("etcdserver: no leader"));
//! let status = response_status(StatusCode::OK, &HeaderMap::new(), Some(&trailers));
//! assert_eq!(status.code, Code::Unavailable);
//! assert_eq!(status.to_string(), "UNAVAILABLE: etcdserver: no leader");
//! ```

use std::fmt;
use std::time::Duration;

use http::{HeaderMap, StatusCode};

/// Name of the header/trailer carrying the numeric status code.
pub const GRPC_STATUS: &str = "grpc-status";
/// Name of the header/trailer carrying the percent-encoded status message.
pub const GRPC_MESSAGE: &str = "grpc-message";
/// Name of the request header carrying the call's deadline.
pub const GRPC_TIMEOUT: &str = "grpc-timeout";

/// A gRPC status code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(i32)]
pub enum Code {
    /// Not an error.
    Ok = 0,
    /// The operation was cancelled, typically by the caller.
    Cancelled = 1,
    /// Unknown error.
    Unknown = 2,
    /// The client specified an invalid argument.
    InvalidArgument = 3,
    /// The deadline expired before the operation could complete.
    DeadlineExceeded = 4,
    /// Some requested entity was not found.
    NotFound = 5,
    /// The entity that a client attempted to create already exists.
    AlreadyExists = 6,
    /// The caller does not have permission to execute the operation.
    PermissionDenied = 7,
    /// Some resource has been exhausted.
    ResourceExhausted = 8,
    /// The system is not in a state required for the operation.
    FailedPrecondition = 9,
    /// The operation was aborted.
    Aborted = 10,
    /// The operation was attempted past the valid range.
    OutOfRange = 11,
    /// The operation is not implemented or supported.
    Unimplemented = 12,
    /// Internal error.
    Internal = 13,
    /// The service is currently unavailable.
    Unavailable = 14,
    /// Unrecoverable data loss or corruption.
    DataLoss = 15,
    /// The request does not have valid authentication credentials.
    Unauthenticated = 16,
}

impl Code {
    /// All codes, in numeric order.
    pub const ALL: [Code; 17] = [
        Code::Ok,
        Code::Cancelled,
        Code::Unknown,
        Code::InvalidArgument,
        Code::DeadlineExceeded,
        Code::NotFound,
        Code::AlreadyExists,
        Code::PermissionDenied,
        Code::ResourceExhausted,
        Code::FailedPrecondition,
        Code::Aborted,
        Code::OutOfRange,
        Code::Unimplemented,
        Code::Internal,
        Code::Unavailable,
        Code::DataLoss,
        Code::Unauthenticated,
    ];

    /// The code with number `value`; numbers outside 0..=16 give
    /// [`Code::Unknown`].
    pub fn from_i32(value: i32) -> Code {
        usize::try_from(value)
            .ok()
            .and_then(|i| Code::ALL.get(i).copied())
            .unwrap_or(Code::Unknown)
    }

    /// The numeric value of the code.
    pub fn as_i32(self) -> i32 {
        self as i32
    }

    /// The canonical upper-case name, e.g. `"UNAVAILABLE"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Ok => "OK",
            Code::Cancelled => "CANCELLED",
            Code::Unknown => "UNKNOWN",
            Code::InvalidArgument => "INVALID_ARGUMENT",
            Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
            Code::NotFound => "NOT_FOUND",
            Code::AlreadyExists => "ALREADY_EXISTS",
            Code::PermissionDenied => "PERMISSION_DENIED",
            Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Code::FailedPrecondition => "FAILED_PRECONDITION",
            Code::Aborted => "ABORTED",
            Code::OutOfRange => "OUT_OF_RANGE",
            Code::Unimplemented => "UNIMPLEMENTED",
            Code::Internal => "INTERNAL",
            Code::Unavailable => "UNAVAILABLE",
            Code::DataLoss => "DATA_LOSS",
            Code::Unauthenticated => "UNAUTHENTICATED",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<i32> for Code {
    fn from(value: i32) -> Code {
        Code::from_i32(value)
    }
}

/// The status of a finished gRPC call: a code and a human-readable message.
///
/// Displays as `"CODE: message"`, or just `"CODE"` when the message is
/// empty.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}{}{message}", if .message.is_empty() { "" } else { ": " })]
pub struct Status {
    /// The status code.
    pub code: Code,
    /// The (already percent-decoded) message.
    pub message: String,
}

/// HTTP/2 error code REFUSED_STREAM: the server did not process the stream.
pub const H2_REFUSED_STREAM: u32 = 0x7;
/// HTTP/2 error code CANCEL.
pub const H2_CANCEL: u32 = 0x8;
/// HTTP/2 error code ENHANCE_YOUR_CALM.
pub const H2_ENHANCE_YOUR_CALM: u32 = 0xb;
/// HTTP/2 error code INADEQUATE_SECURITY.
pub const H2_INADEQUATE_SECURITY: u32 = 0xc;

/// The message of the [`Status`] made by [`Status::from_h2_reason`] for
/// REFUSED_STREAM. Such a request was provably not processed.
pub const REFUSED_STREAM_MESSAGE: &str =
    "stream reset by peer with REFUSED_STREAM (0x7): the request was not processed";

impl Status {
    /// A status with the given code and message.
    pub fn new(code: Code, message: impl Into<String>) -> Status {
        Status {
            code,
            message: message.into(),
        }
    }

    /// Whether the code is [`Code::Ok`].
    pub fn is_ok(&self) -> bool {
        self.code == Code::Ok
    }

    /// The status carried by `grpc-status` / `grpc-message` in `headers`, or
    /// `None` when there is no `grpc-status`.
    ///
    /// A `grpc-status` that is not a decimal number gives [`Code::Unknown`]
    /// with a message saying so (the bad value is quoted, escaped). Numbers
    /// outside 0..=16 also give `Unknown`. Never panics.
    pub fn from_headers(headers: &HeaderMap) -> Option<Status> {
        // Looked up by pre-built names: a `&str` name is parsed on every
        // lookup, and this runs up to three times per call.
        const STATUS: http::HeaderName = http::HeaderName::from_static(GRPC_STATUS);
        const MESSAGE: http::HeaderName = http::HeaderName::from_static(GRPC_MESSAGE);
        let raw = headers.get(&STATUS)?.as_bytes();
        let message = headers
            .get(&MESSAGE)
            .map(|v| percent_decode_bytes(v.as_bytes()))
            .unwrap_or_default();
        let code = match parse_status_code(raw) {
            Some(value) => value,
            None => {
                let shown = String::from_utf8_lossy(raw);
                let mut msg = format!("malformed grpc-status header {:?}", shown.as_ref());
                if !message.is_empty() {
                    msg.push_str(" (grpc-message: ");
                    msg.push_str(&message);
                    msg.push(')');
                }
                return Some(Status::new(Code::Unknown, msg));
            }
        };
        let status = Code::from_i32(code);
        if status == Code::Unknown && code != Code::Unknown as i32 && message.is_empty() {
            return Some(Status::new(
                Code::Unknown,
                format!("unknown grpc-status {code}"),
            ));
        }
        Some(Status::new(status, message))
    }

    /// The status implied by an HTTP status when no `grpc-status` arrived,
    /// following gRPC's HTTP-to-gRPC mapping; `None` for 200 OK.
    ///
    /// 400 → `INTERNAL`, 401 → `UNAUTHENTICATED`, 403 → `PERMISSION_DENIED`,
    /// 404 → `UNIMPLEMENTED`, 429/502/503/504 → `UNAVAILABLE`, anything else
    /// → `UNKNOWN`.
    pub fn from_http_status(status: StatusCode) -> Option<Status> {
        let code = match status.as_u16() {
            200 => return None,
            400 => Code::Internal,
            401 => Code::Unauthenticated,
            403 => Code::PermissionDenied,
            404 => Code::Unimplemented,
            429 | 502 | 503 | 504 => Code::Unavailable,
            _ => Code::Unknown,
        };
        Some(Status::new(
            code,
            format!("HTTP status {status} without grpc-status"),
        ))
    }

    /// The status of a stream reset with HTTP/2 error code `reason`.
    ///
    /// REFUSED_STREAM → `UNAVAILABLE` (the request was not processed: safe to
    /// retry anywhere), CANCEL → `CANCELLED`, ENHANCE_YOUR_CALM →
    /// `RESOURCE_EXHAUSTED`, INADEQUATE_SECURITY → `PERMISSION_DENIED`,
    /// anything else (NO_ERROR included) → `INTERNAL`. The message names the
    /// reason.
    pub fn from_h2_reason(reason: u32) -> Status {
        let (code, message) = match reason {
            H2_REFUSED_STREAM => (Code::Unavailable, REFUSED_STREAM_MESSAGE.to_string()),
            H2_CANCEL => (
                Code::Cancelled,
                "stream reset by peer with CANCEL (0x8)".to_string(),
            ),
            H2_ENHANCE_YOUR_CALM => (
                Code::ResourceExhausted,
                "stream reset by peer with ENHANCE_YOUR_CALM (0xb)".to_string(),
            ),
            H2_INADEQUATE_SECURITY => (
                Code::PermissionDenied,
                "stream reset by peer with INADEQUATE_SECURITY (0xc)".to_string(),
            ),
            other => (
                Code::Internal,
                format!(
                    "stream reset by peer with {} ({other:#x})",
                    h2_reason_name(other)
                ),
            ),
        };
        Status::new(code, message)
    }
}

/// The name of an HTTP/2 error code, e.g. `"PROTOCOL_ERROR"`.
pub fn h2_reason_name(reason: u32) -> &'static str {
    match reason {
        0x0 => "NO_ERROR",
        0x1 => "PROTOCOL_ERROR",
        0x2 => "INTERNAL_ERROR",
        0x3 => "FLOW_CONTROL_ERROR",
        0x4 => "SETTINGS_TIMEOUT",
        0x5 => "STREAM_CLOSED",
        0x6 => "FRAME_SIZE_ERROR",
        0x7 => "REFUSED_STREAM",
        0x8 => "CANCEL",
        0x9 => "COMPRESSION_ERROR",
        0xa => "CONNECT_ERROR",
        0xb => "ENHANCE_YOUR_CALM",
        0xc => "INADEQUATE_SECURITY",
        0xd => "HTTP_1_1_REQUIRED",
        _ => "unknown HTTP/2 error code",
    }
}

fn parse_status_code(raw: &[u8]) -> Option<i32> {
    let trimmed = raw.trim_ascii();
    if trimmed.is_empty() || trimmed.len() > 10 || !trimmed.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut value: i64 = 0;
    for &b in trimmed {
        value = value * 10 + i64::from(b - b'0');
    }
    // Out-of-range numbers are valid syntax but unknown codes.
    Some(i32::try_from(value).unwrap_or(i32::MAX))
}

/// The status of a finished response.
///
/// Precedence: `grpc-status` in `headers` (trailers-only response) >
/// `grpc-status` in `trailers` > a non-200 `http_status` > `UNKNOWN`
/// ("missing grpc-status") for a 200 response without any `grpc-status`.
pub fn response_status(
    http_status: StatusCode,
    headers: &HeaderMap,
    trailers: Option<&HeaderMap>,
) -> Status {
    if let Some(status) = Status::from_headers(headers) {
        return status;
    }
    if let Some(status) = trailers.and_then(Status::from_headers) {
        return status;
    }
    if let Some(status) = Status::from_http_status(http_status) {
        return status;
    }
    let message = match trailers {
        Some(_) => "missing grpc-status in trailers",
        None => "missing grpc-status: response ended without trailers",
    };
    Status::new(Code::Unknown, message)
}

/// Decodes a percent-encoded `grpc-message`. Never fails: malformed escapes
/// are kept literally and invalid UTF-8 is replaced with U+FFFD.
pub fn percent_decode(s: &str) -> String {
    percent_decode_bytes(s.as_bytes())
}

/// Like [`percent_decode`], for a raw header value.
pub fn percent_decode_bytes(input: &[u8]) -> String {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        if b == b'%' && i + 2 < input.len() {
            if let (Some(hi), Some(lo)) = (hex_val(input[i + 1]), hex_val(input[i + 2])) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    match String::from_utf8(out) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-encodes a `grpc-message`: every byte outside printable ASCII
/// (0x20..=0x7E) and `%` itself become `%XX`. The result is always a valid
/// header value, and `percent_decode(&percent_encode(s)) == s`.
pub fn percent_encode(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
    out
}

const MAX_TIMEOUT_VALUE: u128 = 99_999_999;

/// Encodes a deadline as a `grpc-timeout` value: at most 8 digits and a
/// unit, using the most precise unit in which the value fits (the value is
/// truncated to that unit). 500 ms is `"500000u"`, 1 h is `"3600000m"`, zero
/// is `"0n"`; durations above 99,999,999 hours are capped there. The one
/// encoder: [`GrpcTimeout`] writes the same without allocating.
pub fn encode_grpc_timeout(timeout: Duration) -> String {
    GrpcTimeout::new(timeout).as_str().to_owned()
}

/// A `grpc-timeout` value written on the stack (a request header built for
/// every call); spelled as [`encode_grpc_timeout`] says.
///
/// ```
/// use std::time::Duration;
/// use etcdv3_core::wire::status::GrpcTimeout;
///
/// assert_eq!(GrpcTimeout::new(Duration::from_millis(500)).as_str(), "500000u");
/// assert_eq!(GrpcTimeout::new(Duration::MAX).as_bytes(), b"99999999H");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrpcTimeout {
    buf: [u8; 9],
    start: usize,
}

impl GrpcTimeout {
    /// The value for `timeout`.
    pub fn new(timeout: Duration) -> GrpcTimeout {
        const UNITS: [(u128, u8); 6] = [
            (1, b'n'),
            (1_000, b'u'),
            (1_000_000, b'm'),
            (1_000_000_000, b'S'),
            (60_000_000_000, b'M'),
            (3_600_000_000_000, b'H'),
        ];
        let nanos = timeout.as_nanos();
        let (mut value, unit) = UNITS
            .iter()
            .map(|(per, unit)| (nanos / per, *unit))
            .find(|(v, _)| *v <= MAX_TIMEOUT_VALUE)
            .unwrap_or((MAX_TIMEOUT_VALUE, b'H'));
        // At most 8 digits and the unit.
        let mut buf = [0u8; 9];
        let mut start = buf.len() - 1;
        buf[start] = unit;
        loop {
            start -= 1;
            buf[start] = b'0' + (value % 10) as u8;
            value /= 10;
            if value == 0 {
                break;
            }
        }
        GrpcTimeout { buf, start }
    }

    /// The value's bytes (ASCII digits and a unit letter).
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// The value as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits and a unit letter are ever written.
        std::str::from_utf8(self.as_bytes()).unwrap_or("0n")
    }
}

/// Parses a `grpc-timeout` value (1 to 8 ASCII digits followed by one of
/// `H M S m u n`). Returns `None` for anything else.
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let bytes = value.as_bytes();
    let (&unit, digits) = bytes.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = digits
        .iter()
        .fold(0u64, |acc, &d| acc * 10 + u64::from(d - b'0'));
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_round_trip() {
        for (i, code) in Code::ALL.iter().enumerate() {
            assert_eq!(Code::from_i32(i as i32), *code);
            assert_eq!(code.as_i32(), i as i32);
        }
        assert_eq!(Code::from_i32(17), Code::Unknown);
        assert_eq!(Code::from_i32(-1), Code::Unknown);
    }

    #[test]
    fn display_without_message() {
        assert_eq!(Status::new(Code::Internal, "").to_string(), "INTERNAL");
    }

    #[test]
    fn decode_edge_cases() {
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("%41"), "A");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
        assert_eq!(percent_decode("a%"), "a%");
    }
}
