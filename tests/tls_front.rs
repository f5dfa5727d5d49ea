//! TLS against certificates of the test's own making: a plain etcd cluster behind TLS
//! fronts (a rustls server on 127.0.0.1 that forwards to a member) whose certificates name
//! `etcd.example.internal` only, signed by a CA of the test, or by a CA the client does not
//! trust.
//!
//! - the server name override: connecting to 127.0.0.1 verifies the certificate for the
//!   name given, and fails without it;
//! - a TLS failure that will not heal on some endpoints: the client uses the others and
//!   never waits for the broken ones; on every endpoint: calls fail at once.
//!
//! `cargo test -p etcdv3-integration --test tls_front`

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcdv3_client::api::{GetOptions, PutOptions};
use etcdv3_client::{Client, ClientOptions, Error, TlsOptions};
use etcdv3_integration::runtime::TestRuntime;
use etcdv3_testkit::Cluster;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use tokio_rustls::rustls;

const NAME: &str = "etcd.example.internal";

/// A CA: its PEM and what signs with it.
fn make_ca(cn: &str) -> (String, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), Issuer::new(params, key))
}

/// A server certificate for [`NAME`] only (not for 127.0.0.1): (cert PEM, key PEM).
fn server_cert(issuer: &Issuer<'_, KeyPair>) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec![NAME.to_string()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, NAME);
    params.use_authority_key_identifier_extension = true;
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// A TLS front: terminates TLS on 127.0.0.1 and forwards the bytes to `upstream`.
/// Runs on a runtime of its own, shut down on drop.
struct Front {
    addr: SocketAddr,
    rt: Option<tokio::runtime::Runtime>,
}

impl Front {
    fn start(upstream: SocketAddr, cert_pem: &str, key_pem: &str) -> Front {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let chain = vec![CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap()];
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        // Bound here (the test may itself run inside a tokio runtime, where
        // `block_on` is refused), handed to the front's runtime.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        rt.spawn(async move {
            let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                return;
            };
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let Ok(mut up) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
                });
            }
        });
        Front { addr, rt: Some(rt) }
    }

    fn url(&self) -> String {
        format!("https://{}", self.addr)
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

async fn plain_cluster<R: TestRuntime>() -> (Cluster, SocketAddr) {
    let cluster = R::spawn_blocking(|| Cluster::start(1))
        .await
        .unwrap_or_else(|e| panic!("starting etcd: {e}"));
    let url = cluster.client_urls().remove(0);
    let addr = url
        .trim_start_matches("http://")
        .parse::<SocketAddr>()
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    (cluster, addr)
}

async fn client<R: TestRuntime>(urls: Vec<String>, tls: TlsOptions) -> Client {
    R::connect(
        urls,
        ClientOptions::default()
            .with_tls(tls)
            .with_timeout(Duration::from_secs(10)),
    )
    .await
    .unwrap()
}

async fn server_name_override<R: TestRuntime>() {
    let (_cluster, upstream) = plain_cluster::<R>().await;
    let (ca_pem, ca) = make_ca("tls_front CA");
    let (cert, key) = server_cert(&ca);
    let front = Front::start(upstream, &cert, &key);

    // 127.0.0.1, verified as etcd.example.internal: works.
    let c = client::<R>(
        vec![front.url()],
        TlsOptions::default()
            .with_ca_pem(ca_pem.clone())
            .with_domain_name(NAME),
    )
    .await;
    c.put("front/k", "v", PutOptions::new()).await.unwrap();
    let got = c.get("front/k", GetOptions::new()).await.unwrap();
    assert_eq!(got.kvs[0].value, b"v");

    // Without the override, the certificate does not name 127.0.0.1: fails at once.
    let c = client::<R>(vec![front.url()], TlsOptions::default().with_ca_pem(ca_pem)).await;
    let started = Instant::now();
    let err = c.get("front/k", GetOptions::new()).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(1), "{err}");
    match &err {
        Error::Tls { cause, .. } => assert!(cause.contains("not valid for name"), "{err}"),
        other => panic!("expected Error::Tls, got {other:?}"),
    }
}

async fn broken_endpoints_are_skipped_and_all_broken_fails_fast<R: TestRuntime>() {
    let (_cluster, upstream) = plain_cluster::<R>().await;
    let (ca_pem, ca) = make_ca("tls_front CA");
    let (_, foreign) = make_ca("tls_front foreign CA");
    let (cert, key) = server_cert(&ca);
    let (bad_cert, bad_key) = server_cert(&foreign);
    let good = Front::start(upstream, &cert, &key);
    let bad1 = Front::start(upstream, &bad_cert, &bad_key);
    let bad2 = Front::start(upstream, &bad_cert, &bad_key);
    let tls = TlsOptions::default()
        .with_ca_pem(ca_pem)
        .with_domain_name(NAME);

    // Two endpoints with untrusted certificates, one good: every call works and
    // none waits for the broken ones (each is tried at most once).
    let c = client::<R>(vec![bad1.url(), good.url(), bad2.url()], tls.clone()).await;
    let started = Instant::now();
    for i in 0..30 {
        let t = Instant::now();
        c.put(format!("front/{i}"), "v", PutOptions::new())
            .await
            .unwrap();
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "put {i} took {:?}",
            t.elapsed()
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let got = c
        .get("front/", GetOptions::new().with_prefix())
        .await
        .unwrap();
    assert_eq!(got.kvs.len(), 30);

    // Only broken endpoints: the call fails at once with the cause, though its
    // deadline is 10 s away.
    let c = client::<R>(vec![bad1.url(), bad2.url()], tls).await;
    let started = Instant::now();
    let err = c
        .put("front/never", "x", PutOptions::new())
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(1), "after {elapsed:?}: {err}");
    assert!(!err.may_have_applied());
    match &err {
        Error::Tls {
            endpoint, cause, ..
        } => {
            assert!(cause.contains("UnknownIssuer"), "{err}");
            assert!(
                *endpoint == bad1.url() || *endpoint == bad2.url(),
                "{endpoint}"
            );
        }
        other => panic!("expected Error::Tls, got {other:?}"),
    }
}

etcdv3_integration::runtime_tests!(
    server_name_override,
    broken_endpoints_are_skipped_and_all_broken_fails_fast,
);
