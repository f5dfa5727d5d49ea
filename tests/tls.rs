//! TLS end to end against real etcd (etcd from `ETCD_BIN` or `PATH`): the testkit starts
//! members with `https://` client URLs and throw-away certificates; the client talks to them
//! through the testkit's TCP proxies with rustls.
//!
//! `cargo test -p etcdv3-integration --test tls`

use std::time::{Duration, Instant};

use etcdv3_client::api::{EventType, GetOptions, PutOptions, WatchEvent, WatchOptions};
use etcdv3_client::{Client, ClientOptions, Error, TlsOptions};
use etcdv3_integration::runtime::TestRuntime;
use etcdv3_testkit::{Cluster, ClusterBuilder, TlsFiles};
use futures_util::StreamExt;

/// Deadline of the calls that are expected to fail.
const FAIL_DEADLINE: Duration = Duration::from_secs(3);

async fn start<R: TestRuntime>(cert_auth: bool) -> Cluster {
    R::spawn_blocking(move || {
        ClusterBuilder::new(1)
            .client_tls(true)
            .client_cert_auth(cert_auth)
            .start()
    })
    .await
    .unwrap_or_else(|e| panic!("starting a TLS etcd cluster: {e}"))
}

fn files(cluster: &Cluster) -> TlsFiles {
    cluster.tls_files().expect("a TLS cluster has TLS files")
}

async fn connect<R: TestRuntime>(cluster: &Cluster, tls: TlsOptions, timeout: Duration) -> Client {
    let urls = cluster.client_urls();
    assert!(urls.iter().all(|u| u.starts_with("https://")), "{urls:?}");
    R::connect(
        urls,
        ClientOptions::default().with_tls(tls).with_timeout(timeout),
    )
    .await
    .unwrap()
}

/// Puts `key` and reads it back; panics on any error.
async fn round_trip(client: &Client, key: &str, value: &str) {
    client.put(key, value, PutOptions::new()).await.unwrap();
    let got = client.get(key, GetOptions::new()).await.unwrap();
    let values: Vec<&[u8]> = got.kvs.iter().map(|kv| kv.value.as_slice()).collect();
    assert_eq!(values, vec![value.as_bytes()]);
}

/// Runs a put that must fail, and checks that it fails before its deadline is much past.
async fn failing_put<R: TestRuntime>(client: &Client) -> Error {
    let started = Instant::now();
    let res = R::timeout(
        FAIL_DEADLINE + Duration::from_secs(5),
        client.put("tls/never", "x", PutOptions::new()),
    )
    .await
    .expect("the call hung past its deadline");
    let elapsed = started.elapsed();
    let err = res.expect_err("the put succeeded without a valid TLS setup");
    eprintln!("failed as expected after {:?}: {err}", started.elapsed());
    assert!(
        elapsed < FAIL_DEADLINE + Duration::from_secs(2),
        "failed only after {elapsed:?}: {err}"
    );
    err
}

/// Whether the error's text contains one of `needles` (case-insensitive).
fn mentions(err: &Error, needles: &[&str]) -> bool {
    let text = err.to_string().to_lowercase();
    needles.iter().any(|n| text.contains(&n.to_lowercase()))
}

async fn put_get_over_https<R: TestRuntime>() {
    let cluster = start::<R>(false).await;
    let f = files(&cluster);
    let client = connect::<R>(
        &cluster,
        TlsOptions::default().with_ca_file(&f.ca),
        Duration::from_secs(10),
    )
    .await;
    round_trip(&client, "tls/k", "over https").await;
    // The server certificate also names localhost: verifying that name works too.
    let by_name = connect::<R>(
        &cluster,
        TlsOptions::default()
            .with_ca_file(&f.ca)
            .with_domain_name("localhost"),
        Duration::from_secs(10),
    )
    .await;
    let got = by_name.get("tls/k", GetOptions::new()).await.unwrap();
    assert_eq!(got.kvs.len(), 1);
    assert_eq!(got.kvs[0].value, b"over https");
}

async fn watch_over_tls<R: TestRuntime>() {
    let cluster = start::<R>(false).await;
    let f = files(&cluster);
    let client = connect::<R>(
        &cluster,
        TlsOptions::default().with_ca_file(&f.ca),
        Duration::from_secs(10),
    )
    .await;
    let mut watcher = client
        .watch("tls/watched", WatchOptions::new())
        .await
        .unwrap();
    let rev = client
        .put("tls/watched", "v1", PutOptions::new())
        .await
        .unwrap()
        .header
        .unwrap()
        .revision;
    let event = loop {
        match R::timeout(Duration::from_secs(10), watcher.next()).await {
            Ok(Some(Ok(WatchEvent::Created { .. } | WatchEvent::Progress { .. }))) => {}
            Ok(Some(Ok(WatchEvent::Events { mut events, .. }))) => break events.remove(0),
            other => panic!("expected an event, got {other:?}"),
        }
    };
    assert_eq!(event.r#type(), EventType::Put);
    let kv = event.kv.unwrap();
    assert_eq!(kv.key, b"tls/watched");
    assert_eq!(kv.value, b"v1");
    assert_eq!(kv.mod_revision, rev);
}

async fn mutual_tls<R: TestRuntime>() {
    let cluster = start::<R>(true).await;
    assert!(cluster.client_cert_auth());
    let f = files(&cluster);

    let with_identity = connect::<R>(
        &cluster,
        TlsOptions::default()
            .with_ca_file(&f.ca)
            .with_identity(&f.client_cert, &f.client_key),
        Duration::from_secs(10),
    )
    .await;
    round_trip(&with_identity, "tls/mtls", "with a client certificate").await;

    // No client certificate: the server refuses the handshake.
    let without = connect::<R>(
        &cluster,
        TlsOptions::default().with_ca_file(&f.ca),
        FAIL_DEADLINE,
    )
    .await;
    let err = failing_put::<R>(&without).await;
    assert!(matches!(err, Error::Call(_)), "{err:?}");
    assert!(!err.may_have_applied(), "{err}");
    assert!(mentions(&err, &["certificate"]), "{err}");

    // A client certificate from a CA the server does not trust.
    let foreign = connect::<R>(
        &cluster,
        TlsOptions::default()
            .with_ca_file(&f.ca)
            .with_identity(&f.foreign_client_cert, &f.foreign_client_key),
        FAIL_DEADLINE,
    )
    .await;
    let err = failing_put::<R>(&foreign).await;
    assert!(matches!(err, Error::Call(_)), "{err:?}");
    assert!(mentions(&err, &["certificate"]), "{err}");

    // Nothing was written by the refused clients.
    let got = with_identity
        .get("tls/never", GetOptions::new())
        .await
        .unwrap();
    assert!(got.kvs.is_empty());
}

async fn wrong_ca_or_name_fails_naming_the_tls_problem<R: TestRuntime>() {
    let cluster = start::<R>(false).await;
    let f = files(&cluster);

    let wrong_ca = connect::<R>(
        &cluster,
        TlsOptions::default().with_ca_file(&f.foreign_ca),
        FAIL_DEADLINE,
    )
    .await;
    let err = failing_put::<R>(&wrong_ca).await;
    assert!(matches!(err, Error::Call(_)), "{err:?}");
    assert!(!err.may_have_applied(), "{err}");
    assert!(mentions(&err, &["tls"]), "{err}");
    assert!(mentions(&err, &["UnknownIssuer"]), "{err}");

    let wrong_name = connect::<R>(
        &cluster,
        TlsOptions::default()
            .with_ca_file(&f.ca)
            .with_domain_name("not-this-server.example"),
        FAIL_DEADLINE,
    )
    .await;
    let err = failing_put::<R>(&wrong_name).await;
    assert!(matches!(err, Error::Call(_)), "{err:?}");
    assert!(mentions(&err, &["tls"]), "{err}");
    assert!(mentions(&err, &["not valid for name"]), "{err}");

    // The right CA on the same cluster works, so the failures above were the TLS setup's.
    let good = connect::<R>(
        &cluster,
        TlsOptions::default().with_ca_file(&f.ca),
        Duration::from_secs(10),
    )
    .await;
    round_trip(&good, "tls/ok", "yes").await;
}

async fn https_without_tls_options_is_a_config_error<R: TestRuntime>() {
    let cluster = start::<R>(false).await;
    let res = R::connect(cluster.client_urls(), ClientOptions::default()).await;
    match res {
        Err(Error::Config(msg)) => assert!(msg.contains("TLS"), "{msg}"),
        Err(other) => panic!("expected Error::Config, got {other:?}"),
        Ok(_) => panic!("connecting to https:// without TLS options succeeded"),
    }
    // An unreadable CA file is a configuration error at connect too.
    let missing = cluster.dir().join("tls").join("no-such-ca.pem");
    let res = R::connect(
        cluster.client_urls(),
        ClientOptions::default().with_tls(TlsOptions::default().with_ca_file(&missing)),
    )
    .await;
    match res {
        Err(Error::Config(msg)) => assert!(msg.contains("no-such-ca.pem"), "{msg}"),
        Err(other) => panic!("expected Error::Config, got {other:?}"),
        Ok(_) => panic!("connecting with a missing CA file succeeded"),
    }
}

etcdv3_integration::runtime_tests!(
    put_get_over_https,
    watch_over_tls,
    mutual_tls,
    wrong_ca_or_name_fails_naming_the_tls_problem,
    https_without_tls_options_is_a_config_error,
);
