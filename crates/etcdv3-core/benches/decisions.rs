//! Cost of the core's hot decisions, in nanoseconds per operation.
//!
//! `cargo bench -p etcdv3-core --bench decisions` prints one line per case.
//! A plain timing loop (no criterion) keeps the build light; each case runs
//! for about half a second and reports the best of five rounds.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use etcdv3_core::endpoints::balancer::{Balancer, Candidate, Policy};
use etcdv3_core::endpoints::endpoint::Endpoint;
use etcdv3_core::machine::{Action, Config, Core, Outcome};
use etcdv3_core::util::rng::Rng;
use etcdv3_core::wire::codec::{self, Decoder};
use etcdv3_core::wire::error::classify;
use etcdv3_core::wire::status::{Code, Status};
use etcdv3_proto::etcdserverpb::PutRequest;
use etcdv3_proto::method::KV_RANGE;

fn bench(name: &str, mut f: impl FnMut(u64)) {
    let mut iters = 1u64;
    // Calibrate to ~100 ms per round.
    loop {
        let t = Instant::now();
        f(iters);
        if t.elapsed() > Duration::from_millis(100) {
            break;
        }
        iters *= 2;
    }
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        f(iters);
        best = best.min(t.elapsed().as_nanos() as f64 / iters as f64);
    }
    println!("{name:<40} {best:>10.1} ns/op");
}

fn main() {
    let candidates: Vec<Candidate> = (0..3)
        .map(|i| Candidate {
            id: i,
            tier: 0,
            in_flight: i as u32,
            latency: Some(Duration::from_micros(500 + 100 * i as u64)),
            tried: false,
        })
        .collect();
    for policy in [Policy::Adaptive, Policy::RoundRobin, Policy::Pinned] {
        let mut b = Balancer::new(policy);
        let mut rng = Rng::new(1);
        bench(&format!("balancer pick, 3 endpoints, {policy:?}"), |n| {
            for _ in 0..n {
                black_box(b.pick(black_box(&candidates), &mut rng));
            }
        });
    }

    let statuses = [
        Status::new(Code::Unavailable, "etcdserver: no leader"),
        Status::new(
            Code::OutOfRange,
            "etcdserver: mvcc: required revision has been compacted",
        ),
        Status::new(Code::Unknown, "something nobody has seen"),
    ];
    bench("classify an etcd error", |n| {
        for i in 0..n {
            black_box(classify(black_box(&statuses[(i % 3) as usize])));
        }
    });

    let msg = PutRequest {
        key: b"bench/key/0001".to_vec(),
        value: vec![7u8; 256 - 20],
        ..Default::default()
    };
    bench("encode a 256-byte message (5-byte prefix)", |n| {
        for _ in 0..n {
            black_box(codec::encode(black_box(&msg), 1 << 20).ok());
        }
    });
    let framed = codec::encode(&msg, 1 << 20).unwrap_or_default();
    bench("decode a 256-byte message (frame + prost)", |n| {
        for _ in 0..n {
            let mut d = Decoder::new(1 << 20);
            d.push(framed.clone());
            if let Ok(Some(body)) = d.next_message() {
                black_box(codec::decode_message::<PutRequest>(body).ok());
            }
        }
    });
    let halves = (framed.slice(..100), framed.slice(100..));
    bench("reassemble a message split in two chunks", |n| {
        for _ in 0..n {
            let mut d = Decoder::new(1 << 20);
            d.push(halves.0.clone());
            d.push(halves.1.clone());
            black_box(d.next_message().ok());
        }
    });

    // A whole unary call through the composed machine on an open connection:
    // start_call -> Send -> Success -> Complete.
    let eps: Vec<Endpoint> = ["127.0.0.1:2379", "127.0.0.1:22379", "127.0.0.1:32379"]
        .iter()
        .filter_map(|e| Endpoint::parse(e).ok())
        .collect();
    let now = Instant::now();
    let config = Config {
        probe_interval: None,
        ..Config::default()
    };
    let mut core = Core::new(config, eps, 7);
    // Open all three connections first.
    let mut warm = Vec::new();
    for _ in 0..3 {
        warm.push(core.start_call(now, KV_RANGE, Some(now + Duration::from_secs(5))));
    }
    while let Some(a) = core.poll_action() {
        if let Action::Connect { conn, .. } = a {
            core.handle_connected(now, conn);
        }
    }
    let mut sends = Vec::new();
    bench("core: one unary call, start to complete", |n| {
        for _ in 0..n {
            let call = core.start_call(now, KV_RANGE, Some(now + Duration::from_secs(5)));
            sends.clear();
            while let Some(a) = core.poll_action() {
                if let Action::Send { call, attempt, .. } = a {
                    sends.push((call, attempt));
                }
            }
            for &(c, att) in &sends {
                core.handle_outcome(now, c, att, Outcome::Success(None));
            }
            while let Some(a) = core.poll_action() {
                black_box(a);
            }
            black_box(call);
        }
    });
    let _ = Bytes::new();
}
