//! Watches on an auth-enabled cluster: the stream gets a token before it
//! opens, a token the server no longer knows is refreshed and the watcher
//! re-created without loss, and a real permission error ends the watcher
//! (after one refresh) instead of looping.
//!
//! `cargo test -p etcdv3-integration --test streams_auth`

use std::sync::Arc;
use std::time::Duration;

use etcdv3_client::api::{
    Permission, PutOptions, UserAddOptions, WatchEvent, WatchOptions, Watcher,
};
use etcdv3_client::{Client, ClientOptions, Error};
use etcdv3_integration::runtime::TestRuntime;
use etcdv3_testkit::{Cluster, ClusterBuilder};
use futures_util::StreamExt;

/// A 1-member cluster with auth enabled and tokens that expire after 2 s
/// of disuse: `root`/`rootpw` may do anything, `alice`/`alicepw` may read
/// `a/` only.
async fn auth_cluster<R: TestRuntime>() -> Arc<Cluster> {
    let cluster = R::spawn_blocking(|| ClusterBuilder::new(1).auth_token_ttl(2).start())
        .await
        .expect("auth cluster");
    let cluster = Arc::new(cluster);
    let admin = R::connect(cluster.client_urls(), ClientOptions::default())
        .await
        .expect("admin client");
    admin
        .user_add("root", "rootpw", UserAddOptions::new())
        .await
        .expect("root");
    admin.user_grant_role("root", "root").await.expect("grant");
    admin
        .user_add("alice", "alicepw", UserAddOptions::new())
        .await
        .expect("alice");
    admin.role_add("reader").await.expect("role");
    admin
        .role_grant_permission("reader", Permission::read("a/").with_prefix())
        .await
        .expect("permission");
    admin
        .user_grant_role("alice", "reader")
        .await
        .expect("grant");
    admin.auth_enable().await.expect("enable");
    cluster
}

async fn user<R: TestRuntime>(cluster: &Cluster, name: &str, password: &str) -> Client {
    R::connect(
        cluster.client_urls(),
        ClientOptions::default()
            .with_timeout(Duration::from_secs(10))
            .with_user(name, password),
    )
    .await
    .expect("client")
}

/// The mod revisions of the next `n` events (progress skipped).
async fn revisions<R: TestRuntime>(w: &mut Watcher, n: usize) -> Vec<i64> {
    let mut out = Vec::new();
    while out.len() < n {
        match R::timeout(Duration::from_secs(15), w.next()).await {
            Ok(Some(Ok(WatchEvent::Events { events, .. }))) => out.extend(
                events
                    .iter()
                    .map(|e| e.kv.as_ref().map_or(0, |kv| kv.mod_revision)),
            ),
            Ok(Some(Ok(WatchEvent::Progress { .. }))) => {}
            other => panic!("expected events, got {other:?} after {out:?}"),
        }
    }
    out
}

async fn put(c: &Client, key: &str) -> i64 {
    c.put(key, "v", PutOptions::new())
        .await
        .unwrap_or_else(|e| panic!("put {key}: {e}"))
        .header
        .map_or(0, |h| h.revision)
}

async fn a_watch_as_the_first_call_with_credentials_receives_events<R: TestRuntime>() {
    let cluster = auth_cluster::<R>().await;
    let client = user::<R>(&cluster, "root", "rootpw").await;
    // Nothing before it: the stream itself must wait for a token.
    let mut w = client
        .watch("w/", WatchOptions::new().with_prefix())
        .await
        .unwrap_or_else(|e| panic!("first-call watch refused: {e}"));
    let writer = user::<R>(&cluster, "root", "rootpw").await;
    let mut want = Vec::new();
    for i in 0..3 {
        want.push(put(&writer, &format!("w/{i}")).await);
    }
    assert_eq!(revisions::<R>(&mut w, 3).await, want);
}

async fn a_watch_outlives_its_expired_token<R: TestRuntime>() {
    let cluster = auth_cluster::<R>().await;
    let client = user::<R>(&cluster, "root", "rootpw").await;
    let writer = user::<R>(&cluster, "root", "rootpw").await;
    let mut w = client
        .watch("t/", WatchOptions::new().with_prefix())
        .await
        .expect("watch");
    let mut want = vec![put(&writer, "t/before").await];
    assert_eq!(revisions::<R>(&mut w, 1).await, want);
    // The stream's token expires (nothing uses it: the server checks it
    // when a watch is created), then the stream breaks: the re-created
    // watch is refused with "permission denied" until the client gets a new
    // token.
    R::sleep(Duration::from_millis(3500)).await;
    let c = cluster.clone();
    let reset = R::spawn_blocking(move || c.reset_client(0))
        .await
        .expect("reset");
    assert!(reset > 0, "no connection to reset");
    // A writer whose connection the reset did not cut (a put in flight on
    // a reset connection is rightly reported as outcome unknown).
    let writer = user::<R>(&cluster, "root", "rootpw").await;
    for i in 0..3 {
        want.push(put(&writer, &format!("t/after/{i}")).await);
    }
    let got = revisions::<R>(&mut w, 3).await;
    assert_eq!(got, want[1..], "every revision after the restart, once");
}

async fn a_real_permission_error_ends_the_watch_after_one_refresh<R: TestRuntime>() {
    let cluster = auth_cluster::<R>().await;
    let alice = user::<R>(&cluster, "alice", "alicepw").await;
    // Allowed: a/ ...
    let _ok = alice
        .watch("a/", WatchOptions::new().with_prefix())
        .await
        .expect("alice may watch a/");
    // ... refused: b/ (after one token refresh, not in a loop).
    let refused = R::timeout(
        Duration::from_secs(15),
        alice.watch("b/", WatchOptions::new().with_prefix()),
    )
    .await
    .expect("the refusal must come, not a retry loop");
    match refused {
        Err(Error::WatchCancelled { reason }) => {
            assert!(reason.contains("permission denied"), "{reason}")
        }
        other => panic!("expected WatchCancelled, got {other:?}"),
    }
}

etcdv3_integration::runtime_tests!(
    a_watch_as_the_first_call_with_credentials_receives_events,
    a_watch_outlives_its_expired_token,
    a_real_permission_error_ends_the_watch_after_one_refresh,
);
