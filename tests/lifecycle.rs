//! Lifetimes and tokens: nothing outlives the client, dropped watchers are
//! cancelled on the server, and expired auth tokens are refreshed without
//! the caller seeing an error.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use etcdv3_client::api::{GetOptions, PutOptions, UserAddOptions, WatchOptions};
use etcdv3_client::ClientOptions;
use etcdv3_integration::runtime::TestRuntime;
use etcdv3_testkit::{Cluster, ClusterBuilder};

/// etcd's count of live watchers on one member, from its /metrics page.
fn watchers_on(url: &str) -> usize {
    let addr = url.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).expect("connect for metrics");
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body.lines()
        .find(|l| l.starts_with("etcd_debugging_mvcc_watcher_total "))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map(|v| v as usize)
        .unwrap_or_else(|| panic!("no watcher metric at {url}"))
}

async fn wait_until<R: TestRuntime>(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        R::sleep(Duration::from_millis(50)).await;
    }
}

async fn dropping_the_client_closes_its_connections_and_watchers<R: TestRuntime>() {
    let cluster = Cluster::start(1).expect("cluster");
    let direct = cluster.member(0).direct_client_url();
    let client = R::connect(cluster.client_urls(), ClientOptions::default())
        .await
        .expect("client");
    client
        .put("life/a", "1", PutOptions::new())
        .await
        .expect("put");
    let base = watchers_on(&direct);
    let mut watchers = Vec::new();
    for i in 0..5 {
        let w = client
            .watch(format!("life/w{i}"), WatchOptions::new())
            .await
            .expect("watch");
        watchers.push(w);
    }
    assert_eq!(watchers_on(&direct), base + 5);
    // A dropped watcher is cancelled on the server.
    watchers.truncate(2);
    wait_until::<R>("3 watchers cancelled", Duration::from_secs(5), || {
        watchers_on(&direct) == base + 2
    })
    .await;
    assert!(cluster.member(0).client_connections() >= 1);
    // Dropping the client (and what it handed out) closes every connection
    // and ends the server's watchers.
    drop(watchers);
    drop(client);
    wait_until::<R>("connections closed", Duration::from_secs(5), || {
        cluster.member(0).client_connections() == 0
    })
    .await;
    wait_until::<R>("watchers gone", Duration::from_secs(5), || {
        watchers_on(&direct) == base
    })
    .await;
}

async fn a_dropped_call_is_cancelled_and_the_client_stays_usable<R: TestRuntime>() {
    let cluster = Cluster::start(1).expect("cluster");
    let client = R::connect(cluster.client_urls(), ClientOptions::default())
        .await
        .expect("client");
    // A watch creation abandoned half-way, and many reads dropped before
    // their answer: the client must keep working with no leftovers.
    for i in 0..200 {
        let fut = client.get(format!("life/r{i}"), GetOptions::new());
        let _ = R::timeout(Duration::from_micros(50), fut).await;
    }
    let got = client
        .put("life/after", "ok", PutOptions::new())
        .await
        .expect("put after cancellations");
    assert!(got.header.is_some());
    let states = client.endpoint_states();
    assert_eq!(states[0].in_flight, 0, "{states:?}");
}

async fn expired_tokens_are_refreshed_without_an_error<R: TestRuntime>() {
    // Simple tokens that expire after 2 s of disuse.
    let cluster = ClusterBuilder::new(1)
        .auth_token_ttl(2)
        .start()
        .expect("cluster");
    let urls = cluster.client_urls();
    let admin = R::connect(&urls, ClientOptions::default())
        .await
        .expect("client");
    admin
        .user_add("root", "rootpw", UserAddOptions::new())
        .await
        .expect("root");
    admin.user_grant_role("root", "root").await.expect("grant");
    admin.auth_enable().await.expect("enable");

    let client = R::connect(&urls, ClientOptions::default().with_user("root", "rootpw"))
        .await
        .expect("client");
    client
        .put("tok/a", "1", PutOptions::new())
        .await
        .expect("first put authenticates");
    for round in 0..2 {
        // Let the token expire.
        R::sleep(Duration::from_millis(3500)).await;
        client
            .put("tok/a", format!("{round}"), PutOptions::new())
            .await
            .unwrap_or_else(|e| panic!("round {round}: put after token expiry failed: {e}"));
        let got = client.get("tok/a", GetOptions::new()).await.expect("get");
        assert_eq!(got.kvs[0].value, format!("{round}").into_bytes());
    }
    // An unauthenticated client gets a typed error, not a hang.
    let anon = R::connect(&urls, ClientOptions::default())
        .await
        .expect("client");
    let err = anon
        .get("tok/a", GetOptions::new())
        .await
        .expect_err("auth is on");
    assert!(!err.may_have_applied(), "{err}");
    client.auth_disable().await.expect("disable");
}

etcdv3_integration::runtime_tests!(
    dropping_the_client_closes_its_connections_and_watchers,
    a_dropped_call_is_cancelled_and_the_client_stays_usable,
    expired_tokens_are_refreshed_without_an_error,
);
