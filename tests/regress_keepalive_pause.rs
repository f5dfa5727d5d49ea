//! Regression (issue 10, bug 6): a lease kept alive through a follower that
//! is SIGSTOPped does not expire.
//!
//! The client starts with the follower as its only endpoint, grants a TTL-5
//! lease, attaches a key to it and starts the keep-alive there, then gets the
//! other members' endpoints too. The follower's connection carries nothing
//! but the keep-alive stream when the follower is paused for 12 s: the
//! client must notice the silent connection within about the time it
//! notices a stalled unary call (~1.5 s) and renew through another member,
//! not wait for the 10 s keepalive ping while the lease runs out.
//!
//! `cargo test -p etcdv3-integration --test regress_keepalive_pause -- --nocapture`

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etcdv3_client::api::{GetOptions, LeaseGrantOptions, PutOptions};
use etcdv3_client::ClientOptions;
use etcdv3_integration::cluster;
use etcdv3_integration::runtime::{exclusive, TestRuntime, Tokio};
use futures_util::StreamExt;

/// The lease's TTL, seconds.
const TTL: i64 = 5;
/// How long the follower stays stopped.
const PAUSE: Duration = Duration::from_secs(12);

async fn keepalive_survives_a_paused_follower<R: TestRuntime>() {
    let cluster = Arc::new(cluster::start::<R>(3).await);
    let c = cluster.clone();
    let leader = R::spawn_blocking(move || c.wait_for_leader(Duration::from_secs(10)))
        .await
        .expect("leader");
    let follower = (leader + 1) % cluster.size();
    let urls = cluster.client_urls();
    let options = ClientOptions::default().with_timeout(Duration::from_secs(5));
    let client = R::connect([urls[follower].clone()], options.clone())
        .await
        .expect("client on the follower");
    let lease = client
        .lease_grant(TTL, LeaseGrantOptions::new())
        .await
        .expect("grant")
        .id;
    client
        .put("ka/key", "v", PutOptions::new().with_lease(lease))
        .await
        .expect("put with lease");
    let mut keeper = client.lease_keep_alive(lease).await.expect("keep-alive");
    // The first renewal comes over the keep-alive stream: it is open, on the
    // follower, the client's only endpoint so far.
    let first = R::timeout(Duration::from_secs(5), keeper.next()).await;
    assert!(
        matches!(first, Ok(Some(Ok(_)))),
        "no renewal on the keep-alive stream: {first:?}"
    );
    // Every member from now on; the keep-alive stream stays where it is.
    client.set_endpoints(&urls).expect("set endpoints");
    let renewals = Arc::new(Mutex::new(Vec::new()));
    let r = renewals.clone();
    let watch_keeper = R::spawn(async move {
        while let Some(item) = keeper.next().await {
            let failed = item.is_err();
            r.lock()
                .unwrap()
                .push((Instant::now(), item.map_err(|e| e.to_string())));
            if failed {
                return;
            }
        }
    });
    R::sleep(Duration::from_secs(2)).await;
    assert!(
        cluster.member(follower).client_connections() > 0,
        "the keep-alive stream is not on the follower m{follower}"
    );

    let c = cluster.clone();
    R::spawn_blocking(move || c.pause(follower))
        .await
        .expect("pause");
    let paused_at = Instant::now();
    eprintln!("[keepalive-pause] leader m{leader}, paused follower m{follower} for {PAUSE:?}");
    // Ask the other members, with a separate client, while it is still paused.
    let others: Vec<String> = (0..cluster.size())
        .filter(|&i| i != follower)
        .map(|i| urls[i].clone())
        .collect();
    let checker = R::connect(&others, options).await.expect("checker");
    R::sleep(PAUSE.saturating_sub(paused_at.elapsed())).await;
    let ttl = checker.lease_time_to_live(lease, true).await;
    let key = checker.get("ka/key", GetOptions::new()).await;
    let c = cluster.clone();
    R::spawn_blocking(move || c.resume(follower))
        .await
        .expect("resume");

    let log: Vec<String> = renewals
        .lock()
        .unwrap()
        .iter()
        .map(|(t, r)| {
            let secs = if *t >= paused_at {
                t.duration_since(paused_at).as_secs_f64()
            } else {
                -paused_at.duration_since(*t).as_secs_f64()
            };
            format!("{secs:+.1} s: {r:?}")
        })
        .collect();
    eprintln!("[keepalive-pause] renewals seen (s after the pause): {log:?}");
    let ttl = ttl.expect("lease time-to-live during the pause");
    eprintln!(
        "[keepalive-pause] after {:.1} s of pause: lease TTL {} s, keys {:?}",
        paused_at.elapsed().as_secs_f64(),
        ttl.ttl,
        ttl.keys
    );
    assert!(
        ttl.ttl > 0,
        "the TTL-{TTL} lease expired while the follower carrying its keep-alive stream was \
         SIGSTOPped for {PAUSE:?} (bug 6: stream-only connections get no stall detection); \
         renewals: {log:?}"
    );
    let key = key.expect("get the lease's key");
    assert_eq!(key.kvs.len(), 1, "the key attached to the lease is gone");
    // The keeper must still be renewing, and never have reported an expiry.
    R::sleep(Duration::from_secs(2)).await;
    let after = checker
        .lease_time_to_live(lease, false)
        .await
        .expect("time-to-live after the pause");
    assert!(after.ttl > 0, "the lease expired after the pause");
    assert!(
        renewals
            .lock()
            .unwrap()
            .iter()
            .all(|(_, r)| matches!(r, Ok(etcdv3_client::api::KeepAliveEvent::Renewed { .. }))),
        "the keeper reported an error or a lapse: {:?}",
        renewals.lock().unwrap()
    );
    client.close();
    checker.close();
    drop(watch_keeper);
    R::spawn_blocking(move || drop(cluster)).await;
}

#[test]
fn keepalive_survives_a_paused_follower_tokio() {
    let _exclusive = exclusive();
    Tokio::block_on(keepalive_survives_a_paused_follower::<Tokio>());
}
