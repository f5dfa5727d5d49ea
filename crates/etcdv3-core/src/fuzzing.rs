//! Bodies of the fuzz targets in `fuzz/`, kept here so that the same code is
//! also run by `cargo test` (over generated inputs) and not only under
//! `cargo fuzz`. Each function panics when an invariant is broken and must
//! never panic otherwise, whatever its input.
//!
//! Not part of the stable API.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use crate::codec::{Decoder, FrameError};
use crate::endpoint::Endpoint;
use crate::error::classify;
use crate::status::{
    encode_grpc_timeout, parse_grpc_timeout, percent_decode, percent_decode_bytes, percent_encode,
    response_status, Status,
};

/// A cursor over fuzz input that hands out bytes and numbers, returning
/// zeros once the input is exhausted.
struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// Decodes `stream` in one piece, collecting messages until `None` or an
/// error.
fn decode_whole(max: usize, stream: &[u8]) -> (Vec<Bytes>, Option<FrameError>, Decoder) {
    let mut decoder = Decoder::new(max);
    decoder.push(Bytes::copy_from_slice(stream));
    let mut messages = Vec::new();
    loop {
        match decoder.next_message() {
            Ok(Some(m)) => messages.push(m),
            Ok(None) => return (messages, None, decoder),
            Err(e) => return (messages, Some(e), decoder),
        }
    }
}

/// Fuzz body for the frame decoder.
///
/// The first byte picks the message size limit; the rest alternates between
/// a chunk length byte and that many bytes of stream. Checks that the
/// messages and the error are exactly those of decoding the whole stream at
/// once, that no message exceeds the limit, that a failed decoder stays
/// failed, and that `finish` agrees with what is left buffered.
pub fn fuzz_decoder(data: &[u8]) {
    let mut input = Input { data };
    let max = match input.byte() % 4 {
        0 => 0,
        1 => 16,
        2 => 300,
        _ => 1 << 20,
    };
    let mut chunks: Vec<&[u8]> = Vec::new();
    while !input.is_empty() {
        let len = usize::from(input.byte());
        chunks.push(input.take(len));
    }
    let stream: Vec<u8> = chunks.concat();

    let mut decoder = Decoder::new(max);
    let mut messages = Vec::new();
    let mut error = None;
    let mut consumed = 0usize;
    let mut pushed = 0usize;
    'outer: for chunk in &chunks {
        decoder.push(Bytes::copy_from_slice(chunk));
        pushed += chunk.len();
        loop {
            match decoder.next_message() {
                Ok(Some(m)) => {
                    assert!(m.len() <= max, "message of {} bytes > max {max}", m.len());
                    consumed += crate::codec::HEADER_LEN + m.len();
                    messages.push(m);
                }
                Ok(None) => break,
                Err(e) => {
                    error = Some(e);
                    break 'outer;
                }
            }
        }
        // Everything pushed is either returned or still buffered.
        assert_eq!(consumed + decoder.buffered_len(), pushed);
    }

    let (whole_messages, whole_error, whole) = decode_whole(max, &stream);
    assert_eq!(messages, whole_messages, "chunking changed the messages");
    match (&error, &whole_error) {
        (Some(a), Some(b)) => assert_eq!(a, b, "chunking changed the error"),
        (None, None) => {
            assert_eq!(decoder.buffered_len(), whole.buffered_len());
            match decoder.finish() {
                Ok(()) => assert_eq!(decoder.buffered_len(), 0),
                Err(FrameError::Truncated { buffered }) => {
                    assert!(buffered > 0);
                    assert_eq!(buffered, decoder.buffered_len());
                }
                Err(other) => panic!("finish returned {other:?} on a healthy decoder"),
            }
        }
        (a, b) => panic!("chunked error {a:?} vs whole-stream error {b:?}"),
    }
    if let Some(err) = error {
        // A failed decoder stays failed, whatever is pushed afterwards.
        decoder.push(Bytes::from_static(&[0, 0, 0, 0, 0]));
        assert_eq!(decoder.next_message(), Err(err.clone()));
        assert_eq!(decoder.finish(), Err(err));
    }
}

fn header_value(bytes: &[u8]) -> Option<HeaderValue> {
    HeaderValue::from_bytes(bytes).ok()
}

/// Fuzz body for status parsing.
///
/// Splits the input into a few header values (grpc-status, grpc-message, in
/// headers and in trailers), an HTTP status and an HTTP/2 reason code, then
/// runs every parser in [`crate::status`], [`classify`] and
/// [`Endpoint::parse`] over them. Checks the precedence rules, that
/// percent-encoding round-trips, and that timeouts re-encode consistently.
pub fn fuzz_status(data: &[u8]) {
    let mut input = Input { data };
    let selector = input.byte();
    let http =
        StatusCode::from_u16(100 + (u16::from(input.byte()) << 8 | u16::from(input.byte())) % 900)
            .unwrap_or(StatusCode::OK);
    let http = if selector & 1 == 0 {
        StatusCode::OK
    } else {
        http
    };
    let reason = input.u32();

    let mut fields: Vec<&[u8]> = Vec::new();
    for _ in 0..4 {
        let len = usize::from(input.byte() % 64);
        fields.push(input.take(len));
    }
    let rest = input.take(usize::MAX);

    let mut headers = HeaderMap::new();
    let mut trailers = HeaderMap::new();
    let names = [
        HeaderName::from_static(crate::status::GRPC_STATUS),
        HeaderName::from_static(crate::status::GRPC_MESSAGE),
    ];
    for (i, field) in fields.iter().enumerate() {
        let Some(value) = header_value(field) else {
            continue;
        };
        let name = names[i % 2].clone();
        if i < 2 {
            if selector & 2 != 0 {
                headers.insert(name, value);
            }
        } else if selector & 4 != 0 {
            trailers.insert(name, value);
        }
    }

    let from_headers = Status::from_headers(&headers);
    let from_trailers = Status::from_headers(&trailers);
    let trailers_opt = if selector & 8 != 0 {
        Some(&trailers)
    } else {
        None
    };
    let status = response_status(http, &headers, trailers_opt);
    // Precedence.
    if let Some(s) = &from_headers {
        assert_eq!(&status, s);
    } else if let (Some(s), Some(_)) = (&from_trailers, trailers_opt) {
        assert_eq!(&status, s);
    } else if http != StatusCode::OK {
        assert_eq!(Some(&status), Status::from_http_status(http).as_ref());
    } else {
        assert_eq!(status.code, crate::status::Code::Unknown);
    }
    let _ = status.to_string();
    let kind = classify(&status);
    let _ = (
        kind.retry(),
        kind.may_have_applied(),
        kind.is_invalid_token(),
    );

    let reset = Status::from_h2_reason(reason);
    assert!(!reset.message.is_empty());
    let _ = classify(&reset);

    // Percent-encoding of arbitrary text round-trips, and decoding arbitrary
    // bytes never fails.
    let text = String::from_utf8_lossy(rest);
    let encoded = percent_encode(&text);
    assert!(HeaderValue::from_str(&encoded).is_ok());
    assert_eq!(percent_decode(&encoded), text);
    let _ = percent_decode_bytes(rest);

    // Timeouts: whatever parses re-encodes to something that parses to the
    // same or a truncated value, in at most 8 digits.
    for field in fields.iter().chain(std::iter::once(&rest)) {
        let Ok(s) = std::str::from_utf8(field) else {
            continue;
        };
        if let Some(d) = parse_grpc_timeout(s) {
            let again = encode_grpc_timeout(d);
            assert!(again.len() <= 9, "{again}");
            let back = parse_grpc_timeout(&again).expect("re-encoded timeout must parse");
            assert!(back <= d);
        }
        if let Ok(ep) = Endpoint::parse(s) {
            assert_eq!(Endpoint::parse(&ep.to_string()).as_ref(), Ok(&ep));
        }
    }
}
