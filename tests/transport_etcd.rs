//! Transport behaviour against a real etcd: endpoint auto-sync never strands
//! the client on advertised URLs it cannot reach or parse. (A connection
//! whose HTTP/2 stream ids run out: `crates/etcdv3-client/tests/stream_ids.rs`,
//! which needs h2's `unstable` feature, kept out of this crate's build.)

use std::time::{Duration, Instant};

use etcdv3_client::api::{GetOptions, PutOptions};
use etcdv3_client::{Client, ClientOptions};
use etcdv3_integration::runtime::TestRuntime;
use etcdv3_testkit::{Cluster, ClusterBuilder};

async fn start<R: TestRuntime>(builder: ClusterBuilder) -> Cluster {
    R::spawn_blocking(move || builder.start())
        .await
        .unwrap_or_else(|e| panic!("starting etcd: {e}"))
}

async fn put_get(client: &Client, key: &str) {
    client
        .put(key, "v", PutOptions::new())
        .await
        .unwrap_or_else(|e| panic!("put {key}: {e}"));
    let got = client
        .get(key, GetOptions::new())
        .await
        .unwrap_or_else(|e| panic!("get {key}: {e}"));
    assert_eq!(got.kvs.len(), 1, "{key}");
}

fn endpoint_set(client: &Client) -> Vec<String> {
    let mut v: Vec<String> = client
        .endpoint_states()
        .iter()
        .map(|s| s.endpoint.to_string())
        .collect();
    v.sort();
    v
}

/// Every member advertises only an unreachable client URL: the seeds stay.
async fn unreachable_advertised_urls_keep_the_seeds<R: TestRuntime>() {
    // etcd takes the last of repeated flags: this replaces the proxy URL.
    let unreachable = "http://127.0.0.1:1";
    let cluster =
        start::<R>(ClusterBuilder::new(1).arg(format!("--advertise-client-urls={unreachable}")))
            .await;
    let seeds = cluster.client_urls();
    let client = R::connect(
        &seeds,
        ClientOptions::default()
            .with_timeout(Duration::from_secs(3))
            .with_auto_sync(Duration::from_millis(100)),
    )
    .await
    .expect("client");
    let start = Instant::now();
    let mut i = 0;
    while start.elapsed() < Duration::from_millis(1500) {
        put_get(&client, &format!("sync-unreachable/{i}")).await;
        i += 1;
        R::sleep(Duration::from_millis(20)).await;
    }
    let mut expected = vec![seeds[0].clone(), unreachable.to_string()];
    expected.sort();
    assert_eq!(endpoint_set(&client), expected, "synced, seeds kept");
}

/// The members advertise their URL, an unreachable one and an unparsable
/// one; the client was seeded with `localhost` names for the same members.
/// The bad URL is skipped, and the seeds go once an advertised URL answered.
async fn advertised_urls_replace_the_seeds_once_one_answers<R: TestRuntime>() {
    let unreachable = "http://127.0.0.1:1";
    let cluster = start::<R>(
        ClusterBuilder::new(1)
            .also_advertise_client_url("unix://localhost:1")
            .also_advertise_client_url(unreachable),
    )
    .await;
    let advertised = cluster.client_urls();
    let seeds: Vec<String> = advertised
        .iter()
        .map(|u| u.replace("127.0.0.1", "localhost"))
        .collect();
    let client = R::connect(
        &seeds,
        ClientOptions::default()
            .with_timeout(Duration::from_secs(3))
            .with_auto_sync(Duration::from_millis(100)),
    )
    .await
    .expect("client");
    let mut expected = vec![advertised[0].clone(), unreachable.to_string()];
    expected.sort();
    let start = Instant::now();
    let mut i = 0;
    while endpoint_set(&client) != expected {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "endpoints {:?}, expected {expected:?}",
            endpoint_set(&client)
        );
        put_get(&client, &format!("sync-advertised/{i}")).await;
        i += 1;
        R::sleep(Duration::from_millis(20)).await;
    }
    // And the client works on what it synced to.
    put_get(&client, "sync-advertised/last").await;
}

etcdv3_integration::runtime_tests!(
    unreachable_advertised_urls_keep_the_seeds,
    advertised_urls_replace_the_seeds_once_one_answers,
);
