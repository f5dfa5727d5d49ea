//! Micro-benchmarks of the core primitives: framing a 256-byte message,
//! decoding it (whole and split across chunks), classifying an etcd error
//! status and parsing status headers.
//!
//! A plain `harness = false` bench with no dependencies: `cargo bench -p
//! etcdv3-core --bench primitives` prints nanoseconds per operation (the
//! median of several timed batches).

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use etcdv3_core::wire::codec::{self, Decoder};
use etcdv3_core::wire::error::classify;
use etcdv3_core::wire::status::{Code, Status};
use etcdv3_proto::etcdserverpb::PutRequest;
use http::{HeaderMap, HeaderValue};

/// Runs `f` in batches sized to take about 20 ms each and returns the median
/// time per call.
fn bench<F: FnMut()>(name: &str, mut f: F) {
    let mut iters: u64 = 1;
    loop {
        let start = Instant::now();
        for _ in 0..iters {
            f();
        }
        if start.elapsed() >= Duration::from_millis(20) || iters >= 1 << 30 {
            break;
        }
        iters *= 2;
    }
    let mut samples: Vec<f64> = (0..9)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iters {
                f();
            }
            start.elapsed().as_nanos() as f64 / iters as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    println!("{name:<40} {:>10.1} ns/op", samples[samples.len() / 2]);
}

fn main() {
    // A Put whose encoding is 256 bytes.
    let mut msg = PutRequest {
        key: b"/registry/services/endpoints/default/kubernetes".to_vec(),
        value: Vec::new(),
        ..Default::default()
    };
    while prost::Message::encoded_len(&msg) < 256 {
        msg.value.push(b'v');
    }
    assert_eq!(prost::Message::encoded_len(&msg), 256);
    let frame = codec::encode(&msg, codec::DEFAULT_MAX_ENCODE_SIZE).unwrap();

    bench("encode 256-byte message", || {
        black_box(codec::encode(black_box(&msg), codec::DEFAULT_MAX_ENCODE_SIZE).unwrap());
    });

    let mut buf = BytesMut::with_capacity(64 * 1024);
    bench("encode_into reused buffer", || {
        buf.clear();
        codec::encode_into(black_box(&msg), &mut buf, codec::DEFAULT_MAX_ENCODE_SIZE).unwrap();
        black_box(&buf);
    });

    bench("unframe 256-byte message (one chunk)", || {
        let mut d = Decoder::new(codec::DEFAULT_MAX_DECODE_SIZE);
        d.push(black_box(frame.clone()));
        black_box(d.next_message().unwrap());
    });

    let (a, b) = (frame.slice(..100), frame.slice(100..));
    bench("unframe 256-byte message (two chunks)", || {
        let mut d = Decoder::new(codec::DEFAULT_MAX_DECODE_SIZE);
        d.push(black_box(a.clone()));
        d.push(black_box(b.clone()));
        black_box(d.next_message().unwrap());
    });

    bench("unframe + prost decode 256-byte Put", || {
        let mut d = Decoder::new(codec::DEFAULT_MAX_DECODE_SIZE);
        d.push(black_box(frame.clone()));
        let body: Bytes = d.next_message().unwrap().unwrap();
        black_box(codec::decode_message::<PutRequest>(body).unwrap());
    });

    let statuses = [
        Status::new(Code::Unavailable, "etcdserver: no leader"),
        Status::new(
            Code::Unavailable,
            "etcdserver: request timed out, possibly due to connection lost",
        ),
        Status::new(
            Code::OutOfRange,
            "etcdserver: mvcc: required revision has been compacted",
        ),
        Status::new(Code::Unavailable, "connection reset by peer"),
    ];
    for s in &statuses {
        let label = format!("classify {:?}", classify(s));
        bench(&label, || {
            black_box(classify(black_box(s)));
        });
    }

    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("14"));
    trailers.insert(
        "grpc-message",
        HeaderValue::from_static("etcdserver:%20no%20leader"),
    );
    bench("Status::from_headers", || {
        black_box(Status::from_headers(black_box(&trailers)));
    });
}
