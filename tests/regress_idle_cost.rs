//! Issue 13, item 5: an idle client costs the cluster nothing. A client with
//! one watch open and no other traffic starts no RPC on the cluster for ten
//! seconds (counted from every member's `grpc_server_started_total`, all
//! methods), where it used to start a `Maintenance/Status` probe every 2 s.
//! A watch event still arrives at once afterwards.
//!
//! `cargo test -p etcdv3-integration --test regress_idle_cost -- --nocapture`

use std::time::{Duration, Instant};

use etcdv3_client::api::{PutOptions, WatchEvent, WatchOptions};
use etcdv3_client::ClientOptions;
use etcdv3_integration::cluster;
use etcdv3_integration::runtime::{exclusive, TestRuntime, Tokio};
use futures_util::StreamExt;

async fn an_idle_watch_starts_no_rpc<R: TestRuntime>() {
    let cluster = cluster::start::<R>(3).await;
    let client = R::connect(cluster.client_urls(), ClientOptions::default())
        .await
        .expect("client");
    let mut watcher = client
        .watch("idle/", WatchOptions::new().with_prefix())
        .await
        .expect("watch");
    // Let what the start brought settle (the watch create, a probe round
    // while the first calls were in flight).
    R::sleep(Duration::from_secs(1)).await;
    let before = cluster::rpcs_started(&cluster, None);
    R::sleep(Duration::from_secs(10)).await;
    let after = cluster::rpcs_started(&cluster, None);
    let started: Vec<f64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    let total: f64 = started.iter().sum();
    eprintln!(
        "[idle-cost] RPCs started in 10 s by an idle watching client, per member: {started:?}"
    );
    assert!(
        total == 0.0,
        "an idle client started {total} RPCs in 10 s (per member {started:?})"
    );
    // The watch is alive: an event arrives promptly.
    let writer = R::connect(cluster.client_urls(), ClientOptions::default())
        .await
        .expect("writer");
    let t = Instant::now();
    writer
        .put("idle/k", "v", PutOptions::new())
        .await
        .expect("put");
    let ev = tokio_timeout(&mut watcher).await;
    assert!(
        matches!(ev, Some(Ok(WatchEvent::Events { .. }))),
        "watch after idling: {ev:?}"
    );
    eprintln!(
        "[idle-cost] event after idling in {} ms",
        t.elapsed().as_millis()
    );
    client.close();
    writer.close();
    R::spawn_blocking(move || drop(cluster)).await;
}

async fn tokio_timeout(
    w: &mut etcdv3_client::api::Watcher,
) -> Option<etcdv3_client::Result<WatchEvent>> {
    tokio::time::timeout(Duration::from_secs(5), w.next())
        .await
        .ok()
        .flatten()
}

#[test]
fn an_idle_watch_starts_no_rpc_tokio() {
    let _exclusive = exclusive();
    Tokio::block_on(an_idle_watch_starts_no_rpc::<Tokio>());
}
