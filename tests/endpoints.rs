//! Bad endpoints: a server that does not speak HTTP/2, a port that refuses
//! connections, an invalid address. The client must fail over to the good
//! endpoints (mutations included, since nothing was sent) and never hang.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use etcdv3_client::api::{GetOptions, PutOptions};
use etcdv3_client::{ClientOptions, Error, Policy};
use etcdv3_integration::runtime::TestRuntime;
use etcdv3_testkit::Cluster;

/// A server that answers everything with an HTTP/1.1 error and keeps the
/// connection open, like a misconfigured proxy.
fn not_http2_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf);
                let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n");
                // Hold the connection open and silent.
                std::thread::sleep(Duration::from_secs(30));
            });
        }
    });
    format!("http://{addr}")
}

/// A port nobody listens on.
fn refused_endpoint() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}")
}

async fn bad_endpoints_fail_over_without_hanging<R: TestRuntime>() {
    let cluster = Cluster::start(1).expect("cluster");
    let good = cluster.client_urls();
    for policy in [Policy::Pinned, Policy::RoundRobin, Policy::Adaptive] {
        let mut endpoints = vec![not_http2_server(), refused_endpoint()];
        endpoints.extend(good.iter().cloned());
        let client = R::connect(
            &endpoints,
            ClientOptions::default()
                .with_policy(policy)
                .with_timeout(Duration::from_secs(8)),
        )
        .await
        .expect("client");
        let start = Instant::now();
        for i in 0..20 {
            let key = format!("bad-endpoints/{policy:?}/{i}");
            client
                .put(key.clone(), "v", PutOptions::new())
                .await
                .unwrap_or_else(|e| panic!("{policy:?}: put {i} failed: {e}"));
            let got = client
                .get(key, GetOptions::new())
                .await
                .unwrap_or_else(|e| panic!("{policy:?}: get {i} failed: {e}"));
            assert_eq!(got.kvs.len(), 1);
        }
        // Loose bound: failing over from both bad endpoints costs at most a
        // connect timeout (2 s), not a call deadline per operation.
        assert!(
            start.elapsed() < Duration::from_secs(6),
            "{policy:?}: 40 calls took {:?}",
            start.elapsed()
        );
        let states = client.endpoint_states();
        assert_eq!(states.len(), 3);
    }
}

async fn only_bad_endpoints_end_in_a_typed_error_by_the_deadline<R: TestRuntime>() {
    let endpoints = vec![not_http2_server(), refused_endpoint()];
    let client = R::connect(
        &endpoints,
        ClientOptions::default().with_timeout(Duration::from_millis(1500)),
    )
    .await
    .expect("client");
    let start = Instant::now();
    let err = client
        .put("k", "v", PutOptions::new())
        .await
        .expect_err("no server can answer");
    let took = start.elapsed();
    assert!(took < Duration::from_secs(3), "took {took:?}");
    // Nothing reached an etcd server: the put certainly did not apply.
    assert!(!err.may_have_applied(), "{err}");
    assert!(matches!(err, Error::Call(_)), "{err}");
}

/// The errors `e`'s `source()` chain holds, `e` first.
fn chain(e: &Error) -> Vec<&(dyn std::error::Error + 'static)> {
    std::iter::successors(Some(e as &(dyn std::error::Error + 'static)), |e| {
        e.source()
    })
    .collect()
}

/// The first `std::io::Error` down `e`'s `source()` chain.
fn io_cause(e: &Error) -> Option<&std::io::Error> {
    chain(e)
        .into_iter()
        .find_map(|s| s.downcast_ref::<std::io::Error>())
}

async fn transport_failures_chain_to_their_io_and_h2_errors<R: TestRuntime>() {
    let options = || ClientOptions::default().with_timeout(Duration::from_millis(1500));

    // A port nobody listens on: the deadline's last error is the refused
    // connect, and the refusal itself is down the chain.
    let client = R::connect([refused_endpoint()], options())
        .await
        .expect("client");
    let err = client
        .get("k", GetOptions::new())
        .await
        .expect_err("refused");
    assert!(err.is_deadline_exceeded(), "{err}");
    assert!(err.to_string().contains("deadline exceeded"), "{err}");
    assert_eq!(
        io_cause(&err).map(std::io::Error::kind),
        Some(std::io::ErrorKind::ConnectionRefused),
        "{err}: {:?}",
        chain(&err)
    );

    // A peer that does not speak HTTP/2: h2's error of the failed
    // handshake.
    let client = R::connect([not_http2_server()], options())
        .await
        .expect("client");
    let err = client
        .get("k", GetOptions::new())
        .await
        .expect_err("not HTTP/2");
    let h2 = chain(&err)
        .into_iter()
        .find_map(|s| s.downcast_ref::<h2::Error>());
    assert!(h2.is_some(), "{err}: {:?}", chain(&err));

    // A member killed under a connected client: the reconnects are
    // refused, and a read, then a mutation, fail with that refusal as
    // their cause (the mutation was never sent: it certainly did not
    // apply).
    let cluster = Cluster::start(1).expect("cluster");
    let client = R::connect([cluster.member(0).direct_client_url()], options())
        .await
        .expect("client");
    client.put("k", "v", PutOptions::new()).await.expect("put");
    cluster.kill(0).expect("kill");
    let err = client
        .get("k", GetOptions::new())
        .await
        .expect_err("member killed");
    assert_eq!(
        io_cause(&err).map(std::io::Error::kind),
        Some(std::io::ErrorKind::ConnectionRefused),
        "{err}: {:?}",
        chain(&err)
    );
    let err = client
        .put("k", "w", PutOptions::new())
        .await
        .expect_err("member killed");
    assert!(!err.may_have_applied(), "{err}");
    assert_eq!(
        io_cause(&err).map(std::io::Error::kind),
        Some(std::io::ErrorKind::ConnectionRefused),
        "{err}: {:?}",
        chain(&err)
    );
}

async fn invalid_endpoints_are_rejected_with_the_input_named<R: TestRuntime>() {
    for bad in [
        "",
        "http://",
        "unix://",
        "127.0.0.1:99999",
        "http://[::1:2379",
    ] {
        let err = R::connect([bad], ClientOptions::default())
            .await
            .expect_err(bad);
        let msg = err.to_string();
        assert!(matches!(err, Error::InvalidEndpoint(_)), "{bad}: {msg}");
        assert!(
            msg.contains(bad),
            "error for {bad:?} does not name it: {msg}"
        );
    }
    let err = R::connect(["https://127.0.0.1:2379"], ClientOptions::default())
        .await
        .expect_err("https without TLS options");
    assert!(matches!(err, Error::Config(_)), "{err}");
}

etcdv3_integration::runtime_tests!(
    bad_endpoints_fail_over_without_hanging,
    only_bad_endpoints_end_in_a_typed_error_by_the_deadline,
    invalid_endpoints_are_rejected_with_the_input_named,
    transport_failures_chain_to_their_io_and_h2_errors,
);
