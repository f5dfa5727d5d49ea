//! Issue 17, section 4: waiting costs the cluster nothing. A lock holder
//! and a waiter, each as `etcdv3ctl lock` runs them (its own client, a
//! TTL-60 lease kept alive, `Lock` under it), make the members start at
//! most 2 RPCs in 30 s once both are in place (counted from every member's
//! `grpc_server_started_total`, all methods). The issue measured 45 (a
//! status probe round every 2 s while the waiter's `Lock` was in flight;
//! etcdctl: 0). The waiter still gets the lock at once when the holder
//! lets go.
//!
//! `cargo test -p etcdv3-integration --test regress_wait_cost -- --nocapture`

use std::time::{Duration, Instant};

use etcdv3_client::ClientOptions;
use etcdv3_integration::cluster;
use etcdv3_integration::runtime::{exclusive, TestRuntime, Tokio};

/// What the waiting may cost.
const MAX_RPCS: f64 = 2.0;
/// How long the cost is counted.
const WINDOW: Duration = Duration::from_secs(30);

async fn a_lock_holder_and_a_waiter_cost_no_rpc<R: TestRuntime>() {
    let cluster = cluster::start::<R>(3).await;
    // Two processes' worth of clients, as two `etcdv3ctl lock` would be.
    let holder = R::connect(cluster.client_urls(), ClientOptions::default())
        .await
        .expect("holder");
    let waiter = R::connect(cluster.client_urls(), ClientOptions::default())
        .await
        .expect("waiter");
    let guard = holder
        .lock_with_lease("wait-cost", 60)
        .await
        .expect("the holder locks");
    let waiting = R::spawn(async move {
        let got = waiter.lock_with_lease("wait-cost", 60).await;
        (got.map(|g| g.key().to_vec()), Instant::now(), waiter)
    });
    // Let the start settle (the waiter's lease grant, keep-alive stream and
    // Lock, a probe round while its first calls were in flight).
    R::sleep(Duration::from_secs(2)).await;
    assert!(!waiting.is_finished(), "the waiter got a held lock");
    let before = cluster::rpcs_started(&cluster, None);
    R::sleep(WINDOW).await;
    let after = cluster::rpcs_started(&cluster, None);
    let started: Vec<f64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    let total: f64 = started.iter().sum();
    eprintln!(
        "[wait-cost] RPCs started in {WINDOW:?} by a lock holder and a waiter, per member: {started:?} (total {total})"
    );
    assert!(!waiting.is_finished(), "the waiter got a held lock");

    // Waiting did not break anything: the waiter gets the lock at once.
    let released = Instant::now();
    guard.unlock().await.expect("unlock");
    let (got, at, waiter) = R::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the waiter did not get the lock within 5 s of the unlock");
    let got = got.expect("the waiter's lock");
    eprintln!(
        "[wait-cost] the waiter got the lock {} ms after the unlock",
        at.duration_since(released).as_millis()
    );
    assert!(got.starts_with(b"wait-cost/"));
    holder.close();
    waiter.close();
    R::spawn_blocking(move || drop(cluster)).await;
    assert!(
        total <= MAX_RPCS,
        "a lock holder and a waiter started {total} RPCs in {WINDOW:?} (per member {started:?}); \
         at most {MAX_RPCS} allowed"
    );
}

#[test]
fn a_lock_holder_and_a_waiter_cost_no_rpc_tokio() {
    let _exclusive = exclusive();
    Tokio::block_on(a_lock_holder_and_a_waiter_cost_no_rpc::<Tokio>());
}
