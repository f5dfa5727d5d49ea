//! `unix://` endpoints against real etcd (etcd from `ETCD_BIN` or `PATH`):
//! the testkit makes each member also listen on a unix socket in its
//! directory, and the client reaches it by path, on both runtimes.
//!
//! `cargo test -p etcdv3-integration --test unix_socket`

use std::time::{Duration, Instant};

use etcdv3_client::api::{GetOptions, PutOptions, WatchEvent, WatchOptions};
use etcdv3_client::{ClientOptions, Error, TlsOptions};
use etcdv3_integration::runtime::TestRuntime;
use etcdv3_testkit::{Cluster, ClusterBuilder};
use futures_util::StreamExt;

async fn start_with_socket<R: TestRuntime>() -> Cluster {
    R::spawn_blocking(|| ClusterBuilder::new(1).unix_socket(true).start())
        .await
        .unwrap_or_else(|e| panic!("starting etcd with a unix socket: {e}"))
}

async fn put_get_watch_over_a_unix_socket<R: TestRuntime>() {
    let cluster = start_with_socket::<R>().await;
    let member = cluster.member(0);
    let path = member.unix_socket_path().expect("socket configured");
    assert!(path.exists(), "etcd did not create {}", path.display());
    let url = member.unix_client_url().expect("socket url");
    assert_eq!(url, format!("unix://{}", path.display()));

    let client = R::connect(
        [url.as_str()],
        ClientOptions::default().with_timeout(Duration::from_secs(10)),
    )
    .await
    .expect("client over unix socket");

    let mut watcher = client
        .watch("unix/", WatchOptions::new().with_prefix())
        .await
        .expect("watch over unix socket");
    let rev = client
        .put("unix/a", "1", PutOptions::new())
        .await
        .expect("put over unix socket")
        .header
        .expect("header")
        .revision;
    let got = client
        .get("unix/a", GetOptions::new())
        .await
        .expect("get over unix socket");
    assert_eq!(got.kvs.len(), 1);
    assert_eq!(got.kvs[0].value, b"1");
    assert_eq!(got.kvs[0].mod_revision, rev);

    let event = loop {
        match R::timeout(Duration::from_secs(10), watcher.next()).await {
            Ok(Some(Ok(WatchEvent::Progress { .. }))) => continue,
            Ok(Some(Ok(e))) => break e,
            other => panic!("no watch event over the unix socket: {other:?}"),
        }
    };
    match event {
        WatchEvent::Events { events, .. } => {
            let kv = events[0].kv.clone().expect("kv");
            assert_eq!((kv.key.as_slice(), kv.mod_revision), (&b"unix/a"[..], rev));
        }
        other => panic!("unexpected {other:?}"),
    }
    // All of it went over the socket: nothing came through the TCP proxy.
    assert_eq!(member.client_connections(), 0);

    // An explicit sync adds the advertised TCP URL and keeps the socket.
    let endpoints = client.sync().await.expect("sync");
    assert!(endpoints.contains(&url), "{endpoints:?}");
    client.close();

    // Auto-sync on and short: the member advertises only its TCP proxy URL,
    // which answers too, and the unix endpoint must stay in use anyway.
    let client = R::connect(
        [url.as_str()],
        ClientOptions::default()
            .with_timeout(Duration::from_secs(10))
            .with_auto_sync(Duration::from_millis(200)),
    )
    .await
    .expect("client with auto-sync");
    for i in 0..10 {
        client
            .put(format!("unix/b{i}"), "x", PutOptions::new())
            .await
            .expect("put after sync");
        R::sleep(Duration::from_millis(100)).await;
    }
    let states = client.endpoint_states();
    assert!(
        states.len() == 2,
        "auto-sync did not add the advertised URL: {:?}",
        states
            .iter()
            .map(|s| s.endpoint.to_string())
            .collect::<Vec<_>>()
    );
    assert!(
        states.iter().any(|s| s.endpoint == url),
        "the unix endpoint was dropped by auto-sync: {:?}",
        states
            .iter()
            .map(|s| s.endpoint.to_string())
            .collect::<Vec<_>>()
    );
    client.close();

    // A killed etcd leaves its socket file behind; a restart listens on it
    // again (etcd 3.4 fails to unless the testkit removes the stale file).
    cluster.kill(0).expect("kill");
    assert!(path.exists(), "SIGKILL is expected to leave the socket");
    cluster
        .restart(0)
        .expect("restart with a stale socket file");
    let client = R::connect(
        [url.as_str()],
        ClientOptions::default().with_timeout(Duration::from_secs(10)),
    )
    .await
    .expect("client after restart");
    let got = client
        .get("unix/a", GetOptions::new())
        .await
        .expect("get over the socket after a restart");
    assert_eq!(got.kvs[0].value, b"1");
    client.close();
}

async fn missing_socket_is_a_typed_error_quickly<R: TestRuntime>() {
    let dir = std::env::temp_dir().join(format!("etcdv3-unix-missing-{}", std::process::id()));
    let url = format!("unix://{}/nobody-listens.sock", dir.display());
    let client = R::connect(
        [url.as_str()],
        ClientOptions::default().with_timeout(Duration::from_millis(1500)),
    )
    .await
    .expect("client (connections open lazily)");
    let start = Instant::now();
    let err = R::timeout(
        Duration::from_secs(10),
        client.put("k", "v", PutOptions::new()),
    )
    .await
    .expect("the put hung")
    .expect_err("nobody listens on the socket");
    let took = start.elapsed();
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert!(matches!(err, Error::Call(_)), "{err}");
    assert!(!err.may_have_applied(), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("nobody-listens.sock"), "{msg}");

    // An empty path is rejected up front with the input named.
    let err = R::connect(["unix://"], ClientOptions::default())
        .await
        .expect_err("empty unix path");
    assert!(matches!(err, Error::InvalidEndpoint(_)), "{err}");
}

async fn tls_over_a_unix_socket<R: TestRuntime>() {
    let cluster = R::spawn_blocking(|| {
        ClusterBuilder::new(1)
            .client_tls(true)
            .unix_socket(true)
            .start()
    })
    .await
    .unwrap_or_else(|e| panic!("starting etcd with TLS on a unix socket: {e}"));
    let member = cluster.member(0);
    let url = member.unix_client_url().expect("socket url");
    assert!(url.starts_with("unixs:///"), "{url}");
    let files = cluster.tls_files().expect("TLS files");

    // Without TLS options a unixs endpoint is refused up front.
    let err = R::connect([url.as_str()], ClientOptions::default())
        .await
        .expect_err("unixs without TLS options");
    assert!(matches!(err, Error::Config(_)), "{err}");

    // The server certificate is valid for `localhost`, the name checked.
    let client = R::connect(
        [url.as_str()],
        ClientOptions::default()
            .with_timeout(Duration::from_secs(10))
            .with_tls(TlsOptions::default().with_ca_file(&files.ca)),
    )
    .await
    .expect("client over unixs");
    client
        .put("unixs/a", "1", PutOptions::new())
        .await
        .expect("put over unixs");
    let got = client
        .get("unixs/a", GetOptions::new())
        .await
        .expect("get over unixs");
    assert_eq!(got.kvs[0].value, b"1");
    assert_eq!(member.client_connections(), 0);
    client.close();

    // A CA that signed nothing here: a TLS error naming the endpoint, at once.
    let client = R::connect(
        [url.as_str()],
        ClientOptions::default()
            .with_timeout(Duration::from_secs(5))
            .with_tls(TlsOptions::default().with_ca_file(&files.foreign_ca)),
    )
    .await
    .expect("client");
    let start = Instant::now();
    let err = client
        .get("unixs/a", GetOptions::new())
        .await
        .expect_err("untrusted server certificate");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert!(matches!(err, Error::Tls { .. }), "{err}");
    client.close();
}

etcdv3_integration::runtime_tests!(
    put_get_watch_over_a_unix_socket,
    tls_over_a_unix_socket,
    missing_socket_is_a_typed_error_quickly,
);
