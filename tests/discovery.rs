//! DNS SRV discovery (`ClientOptions::with_discovery_srv`) against a real
//! cluster named by SRV records that a small authoritative DNS server on
//! 127.0.0.1 (the testkit's) serves, on every runtime: the client reaches
//! the cluster through the records in place of the endpoint it was given,
//! asks again before every auto-sync, drops the `http://` records when insecure discovery is off (falling back
//! to the endpoints given), and fails with etcdctl's `dns lookup errors`
//! text when the domain has no records.

use std::net::SocketAddr;
use std::time::Duration;

use etcdv3_client::api::{GetOptions, PutOptions};
use etcdv3_client::{ClientOptions, SrvDiscovery};
use etcdv3_integration::runtime::TestRuntime;
use etcdv3_testkit::dns::{SrvServer, SrvTarget};
use etcdv3_testkit::Cluster;

/// A port nobody listens on.
fn refused_endpoint() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}")
}

/// The DNS server: `_etcd-client._tcp.example.test` names the cluster's
/// member as `localhost.:<port>`.
fn dns_for(cluster: &Cluster) -> SrvServer {
    let port = cluster.client_endpoints()[0]
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    SrvServer::start(
        "127.0.0.1:0".parse().expect("addr"),
        vec![(
            "_etcd-client._tcp.example.test".into(),
            vec![SrvTarget {
                priority: 0,
                weight: 1,
                port,
                target: "localhost".into(),
            }],
        )],
        vec![],
    )
    .expect("dns server")
}

async fn srv_records_lead_to_the_cluster<R: TestRuntime>() {
    let cluster = R::spawn_blocking(|| Cluster::start(1))
        .await
        .expect("cluster");
    let dns = dns_for(&cluster);
    let at: SocketAddr = dns.addr();
    let port = cluster.client_endpoints()[0]
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    let discovery = SrvDiscovery::new("example.test").with_nameserver(at);

    // The endpoint given is dead: only the records can lead to the cluster.
    let options = ClientOptions::default()
        .with_timeout(Duration::from_secs(5))
        .with_discovery_srv(discovery.clone());
    let client = R::connect([refused_endpoint()], options)
        .await
        .expect("connect through SRV");
    let endpoints: Vec<String> = client
        .endpoint_states()
        .iter()
        .map(|s| s.endpoint.to_string())
        .collect();
    assert_eq!(endpoints, [format!("http://localhost:{port}")]);
    client
        .put("srv", "found", PutOptions::new())
        .await
        .expect("put through the discovered endpoint");
    let got = client.get("srv", GetOptions::new()).await.expect("get");
    assert_eq!(got.kvs[0].value, b"found");
    assert!(
        dns.queries() >= 2,
        "both SRV names asked: {}",
        dns.queries()
    );
    client.close();

    // With auto-sync, the records are resolved again before every sync.
    let options = ClientOptions::default()
        .with_discovery_srv(discovery.clone())
        .with_auto_sync(Duration::from_millis(200));
    let client = R::connect([refused_endpoint()], options)
        .await
        .expect("connect");
    let before = dns.queries();
    R::sleep(Duration::from_millis(1500)).await;
    let asked = dns.queries() - before;
    assert!(
        asked >= 4,
        "{asked} questions in 1.5 s of 200 ms auto-syncs"
    );
    client.get("srv", GetOptions::new()).await.expect("get");
    client.close();

    // Insecure discovery off: the http record is dropped, the endpoints
    // given stay.
    let given = refused_endpoint();
    let options =
        ClientOptions::default().with_discovery_srv(discovery.clone().with_insecure(false));
    let client = R::connect([given.as_str()], options)
        .await
        .expect("connect");
    let endpoints: Vec<String> = client
        .endpoint_states()
        .iter()
        .map(|s| s.endpoint.to_string())
        .collect();
    assert_eq!(endpoints, [given]);
    client.close();

    // No records at all: etcdctl's error.
    let options = ClientOptions::default()
        .with_discovery_srv(SrvDiscovery::new("nowhere.test").with_nameserver(at));
    let err = R::connect([refused_endpoint()], options)
        .await
        .expect_err("no records");
    let text = err.to_string();
    assert!(
        text.contains(&format!(
            "dns lookup errors: lookup _etcd-client-ssl._tcp.nowhere.test on {at}: no such host and lookup _etcd-client._tcp.nowhere.test on {at}: no such host"
        )),
        "{text}"
    );
    R::spawn_blocking(move || drop(cluster)).await;
}

etcdv3_integration::runtime_tests!(srv_records_lead_to_the_cluster);
