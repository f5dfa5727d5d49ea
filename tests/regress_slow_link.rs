//! Issue 17, section 4: bytes arriving for a unary call prove the member
//! alive. A 3-member cluster holds about 12 MB under one prefix; the
//! members' client links are then limited to 2 MiB/s (16 Mbit/s, a slow
//! WAN link: what etcd sends faster queues in the socket buffers, so an
//! HTTP/2 PING answer waits a second or more behind the response). One
//! prefix get of all of it must succeed in one `Range` call: the client
//! must not judge the connection silent while the answer streams in, cut
//! it off and re-send the read (counted from each member's
//! `grpc_server_started_total{grpc_method="Range"}`).
//!
//! `cargo test -p etcdv3-integration --test regress_slow_link -- --nocapture`

use std::time::{Duration, Instant};

use etcdv3_client::api::{GetOptions, PutOptions, Txn, TxnOp};
use etcdv3_client::ClientOptions;
use etcdv3_integration::cluster;
use etcdv3_integration::runtime::{exclusive, TestRuntime, Tokio};

/// Keys under the prefix.
const KEYS: usize = 1200;
/// Bytes per value.
const VALUE_SIZE: usize = 10 * 1024;
/// Puts per loading txn (about 1 MB, under etcd's 1.5 MiB request limit).
const BATCH: usize = 100;
/// The slow link: bytes per second from each member to the client.
const RATE: u64 = 2 * 1024 * 1024;
/// Deadline of the prefix get.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

async fn a_large_read_on_a_slow_link_is_not_cut_off<R: TestRuntime>() {
    let cluster = cluster::start::<R>(3).await;
    let client = R::connect(
        cluster.client_urls(),
        ClientOptions::default().with_timeout(Duration::from_secs(20)),
    )
    .await
    .expect("client");
    let value = vec![b'v'; VALUE_SIZE];
    for batch in 0..KEYS / BATCH {
        let ops = (0..BATCH).map(|j| {
            TxnOp::put(
                format!("slow/{:06}", batch * BATCH + j),
                value.clone(),
                PutOptions::new(),
            )
        });
        client
            .txn(Txn::new().and_then(ops))
            .await
            .unwrap_or_else(|e| panic!("loading batch {batch}: {e}"));
    }
    for i in 0..cluster.size() {
        cluster
            .limit_client_bandwidth(i, Some(RATE))
            .expect("limit bandwidth");
    }
    let before = cluster::rpcs_started(&cluster, Some("Range"));
    let t = Instant::now();
    let got = client
        .get(
            "slow/",
            GetOptions::new().with_prefix().with_timeout(READ_TIMEOUT),
        )
        .await;
    let took = t.elapsed();
    let after = cluster::rpcs_started(&cluster, Some("Range"));
    let ranges: f64 = after.iter().zip(&before).map(|(a, b)| a - b).sum();
    eprintln!(
        "[slow-link] prefix get of {} MB at {} MiB/s: {} after {} ms, {ranges} Range call(s) started",
        KEYS * VALUE_SIZE / 1_000_000,
        RATE / 1024 / 1024,
        match &got {
            Ok(r) => format!("{} keys", r.kvs.len()),
            Err(e) => format!("error {e}"),
        },
        took.as_millis()
    );
    for i in 0..cluster.size() {
        cluster
            .limit_client_bandwidth(i, None)
            .expect("unlimit bandwidth");
    }
    client.close();
    R::spawn_blocking(move || drop(cluster)).await;
    let got = got.expect("the prefix get on a slow link");
    assert_eq!(got.kvs.len(), KEYS);
    assert!(
        ranges <= 2.0,
        "{ranges} Range calls for one read: it was cut off and re-sent"
    );
}

#[test]
fn a_large_read_on_a_slow_link_is_not_cut_off_tokio() {
    let _exclusive = exclusive();
    Tokio::block_on(a_large_read_on_a_slow_link_is_not_cut_off::<Tokio>());
}
