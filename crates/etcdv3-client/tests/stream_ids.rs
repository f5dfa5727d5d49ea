//! A connection whose HTTP/2 stream ids run out (h2 `OverflowedStreamId`,
//! after about 2^30 streams) is replaced, against a real etcd. Needs the
//! client's `test-util` feature: `cargo test -p etcdv3-client --features
//! test-util --test stream_ids`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use etcdv3_client::api::{GetOptions, PutOptions};
use etcdv3_client::{Client, ClientOptions};
use etcdv3_testkit::ClusterBuilder;

mod common;
use common::Tokio;

async fn put_get(client: &Client, key: &str) {
    client
        .put(key, "v", PutOptions::new())
        .await
        .unwrap_or_else(|e| panic!("put {key}: {e}"));
    let got = client
        .get(key, GetOptions::new())
        .await
        .unwrap_or_else(|e| panic!("get {key}: {e}"));
    assert_eq!(got.kvs.len(), 1, "{key}");
}

/// Each connection starts 6 stream ids before the end of the id space, so
/// 40 calls need at least 7 connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_ids_used_up_replace_the_connection() {
    let cluster = tokio::task::spawn_blocking(|| ClusterBuilder::new(1).start())
        .await
        .expect("join")
        .unwrap_or_else(|e| panic!("starting etcd: {e}"));
    let mut options = ClientOptions::default().with_timeout(Duration::from_secs(5));
    options.first_stream_id = Some(i32::MAX as u32 - 2 * 5);
    let client = Client::new(Arc::new(Tokio), cluster.client_urls(), options).expect("client");
    let start = Instant::now();
    for i in 0..20 {
        put_get(&client, &format!("stream-ids/{i}")).await;
    }
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "40 calls took {:?}",
        start.elapsed()
    );
    client.close();
    drop(cluster);
}
