//! TLS end to end against real etcd (etcd from `ETCD_BIN` or `PATH`): the testkit starts
//! members with `https://` client URLs and throw-away certificates; the client talks to them
//! through the testkit's TCP proxies with rustls. Certificates from files and from memory,
//! a caller-supplied rustls configuration, skipped verification, and TLS failures that
//! will not heal reported at once as `Error::Tls` (see also `tls_front.rs`).
//!
//! `cargo test -p etcdv3-integration --test tls`

use std::time::{Duration, Instant};

use etcdv3_client::api::{EventType, GetOptions, PutOptions, WatchEvent, WatchOptions};
use etcdv3_client::{Client, ClientOptions, Error, TlsOptions};
use etcdv3_integration::runtime::TestRuntime;
use etcdv3_testkit::{Cluster, ClusterBuilder, TlsFiles};
use futures_util::StreamExt;

/// Deadline of the calls that are expected to fail.
const FAIL_DEADLINE: Duration = Duration::from_secs(10);

/// A TLS failure that will not heal must be reported well before the deadline.
const FAIL_FAST: Duration = Duration::from_secs(1);

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

/// Runs a put that must fail, and checks that it fails at once (well before its
/// 10 s deadline): a TLS setup that cannot work is not retried.
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
    eprintln!("failed as expected after {elapsed:?}: {err}");
    assert!(elapsed < FAIL_FAST, "failed only after {elapsed:?}: {err}");
    assert!(!err.may_have_applied(), "{err}");
    err
}

/// The cause of an `Error::Tls`; panics on any other error.
fn tls_cause(err: &Error) -> &str {
    match err {
        Error::Tls {
            cause, endpoint, ..
        } => {
            assert!(endpoint.starts_with("https://"), "{err}");
            cause
        }
        other => panic!("expected Error::Tls, got {other:?}"),
    }
}

fn pem(path: &std::path::Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
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
    assert!(tls_cause(&err).contains("Certificate"), "{err}");

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
    assert!(tls_cause(&err).contains("Certificate"), "{err}");

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
    assert!(tls_cause(&err).contains("UnknownIssuer"), "{err}");
    assert!(mentions(&err, &["tls"]), "{err}");
    // rustls' own error is in the source chain, for reporters that walk it.
    let cause = std::error::Error::source(&err)
        .and_then(|s| s.downcast_ref::<etcdv3_client::TlsCause>())
        .map(etcdv3_client::TlsCause::get);
    assert!(
        matches!(
            cause,
            Some(etcdv3_client::rustls::Error::InvalidCertificate(_))
        ),
        "{err:?}"
    );
    let mut chain = std::iter::successors(std::error::Error::source(&err), |e| e.source());
    assert!(
        chain.any(|e| e.is::<etcdv3_client::rustls::Error>()),
        "{err:?}"
    );
    // Later calls fail at once too (the endpoint is not retried meanwhile).
    let err = failing_put::<R>(&wrong_ca).await;
    assert!(tls_cause(&err).contains("UnknownIssuer"), "{err}");
    // With credentials, the token request meets the same wall: the call reports
    // the TLS cause, not an authentication failure.
    let with_user = R::connect(
        cluster.client_urls(),
        ClientOptions::default()
            .with_tls(TlsOptions::default().with_ca_file(&f.foreign_ca))
            .with_user("root", "secret")
            .with_timeout(FAIL_DEADLINE),
    )
    .await
    .unwrap();
    let err = failing_put::<R>(&with_user).await;
    assert!(tls_cause(&err).contains("UnknownIssuer"), "{err}");
    // A watch cannot be created either, and says why at once.
    let started = Instant::now();
    let res = R::timeout(
        FAIL_DEADLINE + Duration::from_secs(5),
        wrong_ca.watch("tls/w", WatchOptions::new()),
    )
    .await
    .expect("watch hung past its deadline");
    let elapsed = started.elapsed();
    let Err(err) = res else {
        panic!("a watch was created without a valid TLS setup");
    };
    eprintln!("watch failed after {elapsed:?}: {err}");
    assert!(
        elapsed < FAIL_FAST,
        "watch failed only after {elapsed:?}: {err}"
    );
    assert!(tls_cause(&err).contains("UnknownIssuer"), "{err}");

    let wrong_name = connect::<R>(
        &cluster,
        TlsOptions::default()
            .with_ca_file(&f.ca)
            .with_domain_name("not-this-server.example"),
        FAIL_DEADLINE,
    )
    .await;
    let err = failing_put::<R>(&wrong_name).await;
    assert!(tls_cause(&err).contains("not valid for name"), "{err}");
    assert!(mentions(&err, &["not-this-server.example"]), "{err}");

    // The right CA on the same cluster works, so the failures above were the TLS setup's.
    let good = connect::<R>(
        &cluster,
        TlsOptions::default().with_ca_file(&f.ca),
        Duration::from_secs(10),
    )
    .await;
    round_trip(&good, "tls/ok", "yes").await;
}

async fn certificates_from_memory<R: TestRuntime>() {
    let cluster = start::<R>(true).await;
    let f = files(&cluster);
    // PEM bytes as a Kubernetes secret would hold them: no file is read by
    // the client.
    let client = connect::<R>(
        &cluster,
        TlsOptions::default()
            .with_ca_pem(pem(&f.ca))
            .with_identity_pem(pem(&f.client_cert), pem(&f.client_key)),
        Duration::from_secs(10),
    )
    .await;
    round_trip(&client, "tls/pem", "from memory").await;

    // The wrong CA from memory fails at once, naming the cause.
    let wrong = connect::<R>(
        &cluster,
        TlsOptions::default()
            .with_ca_pem(pem(&f.foreign_ca))
            .with_identity_pem(pem(&f.client_cert), pem(&f.client_key)),
        FAIL_DEADLINE,
    )
    .await;
    let err = failing_put::<R>(&wrong).await;
    assert!(tls_cause(&err).contains("UnknownIssuer"), "{err}");

    // A client certificate from memory that the server's CA did not sign.
    let foreign = connect::<R>(
        &cluster,
        TlsOptions::default()
            .with_ca_pem(pem(&f.ca))
            .with_identity_pem(pem(&f.foreign_client_cert), pem(&f.foreign_client_key)),
        FAIL_DEADLINE,
    )
    .await;
    let err = failing_put::<R>(&foreign).await;
    assert!(tls_cause(&err).contains("Certificate"), "{err}");
}

async fn insecure_skip_verify_connects<R: TestRuntime>() {
    let cluster = start::<R>(false).await;
    let f = files(&cluster);
    // No CA at all: refused at connect as a configuration error...
    match R::connect(
        cluster.client_urls(),
        ClientOptions::default().with_tls(TlsOptions::default()),
    )
    .await
    {
        Err(Error::Config(msg)) => assert!(msg.contains("with_ca_pem"), "{msg}"),
        Err(other) => panic!("expected Error::Config, got {other:?}"),
        Ok(_) => panic!("TLS without anything to trust was accepted"),
    }
    // ...unless verification is explicitly skipped.
    let client = connect::<R>(
        &cluster,
        TlsOptions::default().danger_accept_invalid_certs(),
        Duration::from_secs(10),
    )
    .await;
    round_trip(&client, "tls/insecure", "unverified").await;
    // Even a wrong CA and a wrong name do not matter then.
    let client = connect::<R>(
        &cluster,
        TlsOptions::default()
            .with_ca_file(&f.foreign_ca)
            .with_domain_name("not-this-server.example")
            .danger_accept_invalid_certs(),
        Duration::from_secs(10),
    )
    .await;
    round_trip(&client, "tls/insecure", "still unverified").await;
}

async fn caller_supplied_rustls_config<R: TestRuntime>() {
    use etcdv3_client::rustls;
    use rustls::pki_types::pem::PemObject;
    let cluster = start::<R>(true).await;
    let f = files(&cluster);
    let mut roots = rustls::RootCertStore::empty();
    let ca = rustls::pki_types::CertificateDer::from_pem_slice(&pem(&f.ca)).unwrap();
    roots.add(ca).unwrap();
    let chain =
        vec![rustls::pki_types::CertificateDer::from_pem_slice(&pem(&f.client_cert)).unwrap()];
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(&pem(&f.client_key)).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    let client = connect::<R>(
        &cluster,
        TlsOptions::default().with_client_config(std::sync::Arc::new(config)),
        Duration::from_secs(10),
    )
    .await;
    round_trip(&client, "tls/custom", "caller's rustls config").await;
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

/// The scheme of an endpoint that does not match what the member speaks
/// fails at once, with an error that says which way round it is:
/// `https://` to a plaintext member, `http://` to a TLS member.
async fn a_scheme_that_does_not_match_the_member_fails_at_once<R: TestRuntime>() {
    let tls_cluster = start::<R>(false).await;
    let f = files(&tls_cluster);
    // http:// to the TLS member.
    let urls: Vec<String> = tls_cluster
        .client_urls()
        .iter()
        .map(|u| u.replacen("https://", "http://", 1))
        .collect();
    let client = R::connect(urls, ClientOptions::default().with_timeout(FAIL_DEADLINE))
        .await
        .unwrap();
    let err = failing_put::<R>(&client).await;
    match &err {
        Error::SchemeMismatch { endpoint, .. } => assert!(endpoint.starts_with("http://"), "{err}"),
        other => panic!("expected Error::SchemeMismatch, got {other:?}"),
    }
    assert!(
        mentions(&err, &["speaks TLS"]) && mentions(&err, &["https://"]),
        "{err}"
    );
    // A watch hears it at once too, instead of reopening until its deadline.
    let watch = R::timeout(
        Duration::from_secs(5),
        client.watch("tls/never", WatchOptions::new()),
    )
    .await
    .expect("the watch hung");
    assert!(
        matches!(watch, Err(Error::SchemeMismatch { .. })),
        "{watch:?}"
    );
    // https:// to a plaintext member.
    let plain = R::spawn_blocking(|| ClusterBuilder::new(1).start())
        .await
        .expect("a plaintext cluster");
    let urls: Vec<String> = plain
        .client_urls()
        .iter()
        .map(|u| u.replacen("http://", "https://", 1))
        .collect();
    let client = R::connect(
        urls,
        ClientOptions::default()
            .with_tls(TlsOptions::default().with_ca_file(&f.ca))
            .with_timeout(FAIL_DEADLINE),
    )
    .await
    .unwrap();
    let err = failing_put::<R>(&client).await;
    match &err {
        Error::SchemeMismatch { endpoint, .. } => {
            assert!(endpoint.starts_with("https://"), "{err}")
        }
        other => panic!("expected Error::SchemeMismatch, got {other:?}"),
    }
    assert!(
        mentions(&err, &["plaintext"]) && mentions(&err, &["http://"]),
        "{err}"
    );
}

etcdv3_integration::runtime_tests!(
    a_scheme_that_does_not_match_the_member_fails_at_once,
    put_get_over_https,
    watch_over_tls,
    mutual_tls,
    wrong_ca_or_name_fails_naming_the_tls_problem,
    https_without_tls_options_is_a_config_error,
    certificates_from_memory,
    insecure_skip_verify_connects,
    caller_supplied_rustls_config,
);
