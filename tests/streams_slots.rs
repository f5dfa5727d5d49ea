//! Streams leave nothing behind in the client (no call slot per ended
//! stream) and their errors name the endpoint they ran on.
//!
//! `cargo test -p etcdv3-integration --test streams_slots`

use std::sync::Arc;
use std::time::Duration;

use etcdv3_client::api::{LeaseGrantOptions, PutOptions, WatchEvent, WatchOptions};
use etcdv3_client::Client;
use etcdv3_integration::cluster::{connect, start};
use etcdv3_integration::runtime::TestRuntime;
use futures_util::StreamExt;

/// Wait until the client tracks no call (background tasks end
/// asynchronously), or fail with how many are left.
async fn no_call_left<R: TestRuntime>(client: &Client, what: &str) {
    for _ in 0..100 {
        if client.calls_tracked() == 0 {
            return;
        }
        R::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{what}: {} call slot(s) still tracked",
        client.calls_tracked()
    );
}

async fn ended_streams_leave_no_call_slot<R: TestRuntime>() {
    let cluster = Arc::new(start::<R>(1).await);
    let client = connect::<R>(&cluster).await;
    client
        .put("s/k", "v", PutOptions::new())
        .await
        .expect("put");

    // A server stream read to its end.
    let mut snap = client.snapshot().await.expect("snapshot");
    let mut chunks = 0;
    while let Some(chunk) = snap.next().await {
        chunk.expect("snapshot chunk");
        chunks += 1;
    }
    assert!(chunks > 0);
    drop(snap);
    no_call_left::<R>(&client, "after a snapshot").await;

    // A watch and a keepalive whose streams break and are reopened.
    let mut w = client
        .watch("s/", WatchOptions::new().with_prefix())
        .await
        .expect("watch");
    let lease = client
        .lease_grant(30, LeaseGrantOptions::new())
        .await
        .expect("lease");
    let keeper = client.lease_keep_alive(lease.id).await.expect("keeper");
    for _ in 0..2 {
        let c = cluster.clone();
        R::spawn_blocking(move || c.restart(0))
            .await
            .expect("restart");
        let rev = client
            .put("s/k", "v", PutOptions::new())
            .await
            .expect("put")
            .header
            .map_or(0, |h| h.revision);
        loop {
            match R::timeout(Duration::from_secs(15), w.next()).await {
                Ok(Some(Ok(WatchEvent::Events { revision, .. }))) if revision >= rev => break,
                Ok(Some(Ok(_))) => {}
                other => panic!("watch after restart: {other:?}"),
            }
        }
    }
    drop(w);
    drop(keeper);
    no_call_left::<R>(&client, "after watch and keepalive reconnects").await;
}

async fn a_broken_stream_names_its_endpoint<R: TestRuntime>() {
    let cluster = Arc::new(start::<R>(1).await);
    let client = connect::<R>(&cluster).await;
    // A database larger than the HTTP/2 stream window (2 MiB): the server
    // cannot finish the snapshot before the client reads.
    for i in 0..6 {
        client
            .put(
                format!("big/{i}"),
                vec![b'x'; 1024 * 1024],
                PutOptions::new(),
            )
            .await
            .expect("put");
    }
    let mut snap = client.snapshot().await.expect("snapshot");
    // Break the connection under the stream.
    let c = cluster.clone();
    R::spawn_blocking(move || c.reset_client(0))
        .await
        .expect("reset");
    let mut err = None;
    while let Some(chunk) = snap.next().await {
        if let Err(e) = chunk {
            err = Some(e);
            break;
        }
    }
    let e = err.expect("the snapshot cannot have finished: its connection was reset");
    let url = cluster.client_urls()[0].clone();
    assert!(
        e.to_string().contains(&url),
        "the error does not name {url}: {e}"
    );
}

etcdv3_integration::runtime_tests!(
    ended_streams_leave_no_call_slot,
    a_broken_stream_names_its_endpoint,
);
