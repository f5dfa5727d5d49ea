//! Tests of gRPC status parsing, percent-encoding and grpc-timeout.

use std::time::Duration;

use etcdv3_core::wire::status::{
    encode_grpc_timeout, parse_grpc_timeout, percent_decode, percent_encode, response_status, Code,
    Status,
};
use http::{HeaderMap, HeaderValue, StatusCode};
use proptest::prelude::*;

fn map(pairs: &[(&'static str, &[u8])]) -> HeaderMap {
    let mut m = HeaderMap::new();
    for (k, v) in pairs {
        m.insert(*k, HeaderValue::from_bytes(v).unwrap());
    }
    m
}

#[test]
fn code_names_and_numbers() {
    assert_eq!(Code::Unavailable.as_str(), "UNAVAILABLE");
    assert_eq!(Code::from_i32(14), Code::Unavailable);
    assert_eq!(Code::from_i32(16), Code::Unauthenticated);
    assert_eq!(Code::from_i32(99), Code::Unknown);
    assert_eq!(Code::from_i32(i32::MIN), Code::Unknown);
    assert_eq!(Code::DeadlineExceeded.to_string(), "DEADLINE_EXCEEDED");
    assert_eq!(Code::Ok as i32, 0);
    assert_eq!(Code::Unauthenticated as i32, 16);
}

#[test]
fn status_display() {
    let s = Status::new(Code::Unavailable, "etcdserver: no leader");
    assert_eq!(s.to_string(), "UNAVAILABLE: etcdserver: no leader");
    let e: &dyn std::error::Error = &s;
    assert!(e.to_string().starts_with("UNAVAILABLE"));
}

#[test]
fn from_headers_decodes_message() {
    let h = map(&[
        ("grpc-status", b"3"),
        ("grpc-message", b"bad%20thing%3A%20%E2%82%AC"),
    ]);
    let s = Status::from_headers(&h).unwrap();
    assert_eq!(s, Status::new(Code::InvalidArgument, "bad thing: €"));
    assert_eq!(Status::from_headers(&HeaderMap::new()), None);
    let ok = Status::from_headers(&map(&[("grpc-status", b"0")])).unwrap();
    assert!(ok.is_ok());
    assert_eq!(ok.message, "");
}

#[test]
fn malformed_grpc_status_is_unknown_with_explanation() {
    for bad in [
        &b"abc"[..],
        b"",
        b"-1",
        b"1.0",
        b"99999999999999999999",
        b"\xff",
    ] {
        let h = map(&[("grpc-status", bad)]);
        let s = Status::from_headers(&h).unwrap();
        assert_eq!(s.code, Code::Unknown, "{bad:?}");
        assert!(s.message.contains("grpc-status"), "{s:?}");
    }
    // Well-formed but unknown numbers.
    let s = Status::from_headers(&map(&[("grpc-status", b"42")])).unwrap();
    assert_eq!(s.code, Code::Unknown);
    assert!(s.message.contains("42"));
}

#[test]
fn http_status_mapping() {
    let cases = [
        (200, None),
        (400, Some(Code::Internal)),
        (401, Some(Code::Unauthenticated)),
        (403, Some(Code::PermissionDenied)),
        (404, Some(Code::Unimplemented)),
        (429, Some(Code::Unavailable)),
        (502, Some(Code::Unavailable)),
        (503, Some(Code::Unavailable)),
        (504, Some(Code::Unavailable)),
        (500, Some(Code::Unknown)),
        (301, Some(Code::Unknown)),
        (201, Some(Code::Unknown)),
    ];
    for (http, code) in cases {
        let s = Status::from_http_status(StatusCode::from_u16(http).unwrap());
        assert_eq!(s.as_ref().map(|s| s.code), code, "HTTP {http}");
        if let Some(s) = s {
            assert!(s.message.contains(&http.to_string()), "{s:?}");
        }
    }
}

#[test]
fn h2_reason_mapping() {
    let cases = [
        (0x7, Code::Unavailable, "REFUSED_STREAM"),
        (0x8, Code::Cancelled, "CANCEL"),
        (0xb, Code::ResourceExhausted, "ENHANCE_YOUR_CALM"),
        (0xc, Code::PermissionDenied, "INADEQUATE_SECURITY"),
        (0x0, Code::Internal, "NO_ERROR"),
        (0x1, Code::Internal, "PROTOCOL_ERROR"),
        (0x2, Code::Internal, "INTERNAL_ERROR"),
        (0xdead, Code::Internal, "0xdead"),
    ];
    for (reason, code, name) in cases {
        let s = Status::from_h2_reason(reason);
        assert_eq!(s.code, code, "{reason:#x}");
        assert!(s.message.contains(name), "{s:?}");
    }
}

#[test]
fn response_status_precedence() {
    let headers_status = map(&[("grpc-status", b"5"), ("grpc-message", b"from headers")]);
    let trailers_status = map(&[("grpc-status", b"14"), ("grpc-message", b"from trailers")]);
    let empty = HeaderMap::new();

    // Trailers-only headers win over trailers and HTTP status.
    let s = response_status(
        StatusCode::BAD_GATEWAY,
        &headers_status,
        Some(&trailers_status),
    );
    assert_eq!(s, Status::new(Code::NotFound, "from headers"));
    // Then trailers, even with a non-200 HTTP status.
    let s = response_status(StatusCode::BAD_REQUEST, &empty, Some(&trailers_status));
    assert_eq!(s, Status::new(Code::Unavailable, "from trailers"));
    // Then the HTTP status.
    let s = response_status(StatusCode::SERVICE_UNAVAILABLE, &empty, Some(&empty));
    assert_eq!(s.code, Code::Unavailable);
    let s = response_status(StatusCode::NOT_FOUND, &empty, None);
    assert_eq!(s.code, Code::Unimplemented);
    // A 200 without any grpc-status is UNKNOWN.
    let s = response_status(StatusCode::OK, &empty, None);
    assert_eq!(s.code, Code::Unknown);
    assert!(s.message.contains("missing grpc-status"));
    let s = response_status(StatusCode::OK, &empty, Some(&empty));
    assert_eq!(s.code, Code::Unknown);
    assert!(s.message.contains("missing grpc-status"));
    // A normal OK.
    let ok = map(&[("grpc-status", b"0")]);
    assert!(response_status(StatusCode::OK, &empty, Some(&ok)).is_ok());
}

#[test]
fn percent_encoding_examples() {
    assert_eq!(percent_encode("plain text"), "plain text");
    assert_eq!(percent_encode("100%"), "100%25");
    assert_eq!(percent_encode("a\nb"), "a%0Ab");
    assert_eq!(percent_encode("€"), "%E2%82%AC");
    assert_eq!(percent_decode("%E2%82%AC"), "€");
    assert_eq!(percent_decode("%e2%82%ac"), "€");
    // Invalid UTF-8 after decoding becomes U+FFFD, never an error.
    assert_eq!(percent_decode("a%FFb"), "a\u{fffd}b");
    assert_eq!(percent_decode("%G0"), "%G0");
}

#[test]
fn grpc_timeout_examples() {
    assert_eq!(encode_grpc_timeout(Duration::ZERO), "0n");
    assert_eq!(encode_grpc_timeout(Duration::from_millis(500)), "500000u");
    assert_eq!(encode_grpc_timeout(Duration::from_secs(3600)), "3600000m");
    assert_eq!(
        encode_grpc_timeout(Duration::from_nanos(99_999_999)),
        "99999999n"
    );
    assert_eq!(
        encode_grpc_timeout(Duration::from_nanos(100_000_000)),
        "100000u"
    );
    assert_eq!(encode_grpc_timeout(Duration::MAX), "99999999H");
    assert_eq!(
        parse_grpc_timeout("500000u"),
        Some(Duration::from_millis(500))
    );
    assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
    assert_eq!(parse_grpc_timeout("2M"), Some(Duration::from_secs(120)));
    assert_eq!(parse_grpc_timeout("3S"), Some(Duration::from_secs(3)));
    assert_eq!(parse_grpc_timeout("4m"), Some(Duration::from_millis(4)));
    assert_eq!(parse_grpc_timeout("5n"), Some(Duration::from_nanos(5)));
    assert_eq!(
        parse_grpc_timeout("99999999H"),
        Some(Duration::from_secs(99_999_999 * 3600))
    );
    for bad in [
        "",
        "H",
        "123456789S",
        "1x",
        "-1S",
        "1 S",
        "1.5S",
        "S1",
        "１S",
    ] {
        assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
    }
}

fn unit_nanos(s: &str) -> u128 {
    match s.as_bytes().last() {
        Some(b'n') => 1,
        Some(b'u') => 1_000,
        Some(b'm') => 1_000_000,
        Some(b'S') => 1_000_000_000,
        Some(b'M') => 60_000_000_000,
        Some(b'H') => 3_600_000_000_000,
        _ => panic!("bad unit in {s}"),
    }
}

proptest! {
    #[test]
    fn from_headers_never_panics(status in prop::collection::vec(any::<u8>(), 0..20),
                                 message in prop::collection::vec(any::<u8>(), 0..100)) {
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_bytes(&status) {
            h.insert("grpc-status", v);
        }
        if let Ok(v) = HeaderValue::from_bytes(&message) {
            h.insert("grpc-message", v);
        }
        let had_status = h.contains_key("grpc-status");
        let s = Status::from_headers(&h);
        prop_assert_eq!(s.is_some(), had_status);
        let _ = response_status(StatusCode::OK, &h, Some(&h));
    }

    #[test]
    fn numeric_status_round_trips(code in 0i32..=16, msg in ".{0,40}") {
        let mut h = HeaderMap::new();
        h.insert("grpc-status", HeaderValue::from_str(&code.to_string()).unwrap());
        h.insert("grpc-message", HeaderValue::from_str(&percent_encode(&msg)).unwrap());
        let s = Status::from_headers(&h).unwrap();
        prop_assert_eq!(s.code as i32, code);
        prop_assert_eq!(s.message, msg);
    }

    #[test]
    fn percent_round_trip(s in any::<String>()) {
        let e = percent_encode(&s);
        prop_assert!(e.bytes().all(|b| (0x20..=0x7e).contains(&b)));
        prop_assert!(HeaderValue::from_str(&e).is_ok());
        prop_assert_eq!(percent_decode(&e), s);
    }

    #[test]
    fn percent_decode_never_panics(s in any::<String>()) {
        let _ = percent_decode(&s);
    }

    #[test]
    fn timeout_round_trip(secs in 0u64..=400_000_000_000, nanos in 0u32..1_000_000_000) {
        let d = Duration::new(secs, nanos);
        let e = encode_grpc_timeout(d);
        let digits = &e[..e.len() - 1];
        prop_assert!(!digits.is_empty() && digits.len() <= 8, "{}", e);
        let back = parse_grpc_timeout(&e).unwrap();
        prop_assert!(back <= d);
        let cap = Duration::from_secs(99_999_999 * 3600);
        if d <= cap {
            // Truncation loses less than one unit.
            prop_assert!(d.as_nanos() - back.as_nanos() < unit_nanos(&e), "{:?} -> {} -> {:?}", d, e, back);
        } else {
            prop_assert_eq!(back, cap);
        }
    }

    #[test]
    fn timeout_uses_most_precise_unit(nanos in 0u64..u64::MAX) {
        let d = Duration::from_nanos(nanos);
        let e = encode_grpc_timeout(d);
        let unit = unit_nanos(&e);
        // The next finer unit would need more than 8 digits.
        let finer = match unit { 1 => None, 1_000 => Some(1), 1_000_000 => Some(1_000), 1_000_000_000 => Some(1_000_000),
            60_000_000_000 => Some(1_000_000_000), _ => Some(60_000_000_000) };
        if let Some(f) = finer {
            prop_assert!(d.as_nanos() / f > 99_999_999, "{:?} encoded as {}", d, e);
        }
    }
}
