//! Starting a test cluster and a client on it, the same way in every suite.

use std::time::Duration;

use etcdv3_client::{Client, ClientOptions};
use etcdv3_testkit::Cluster;

use crate::runtime::TestRuntime;

/// Start a `size`-member etcd cluster without blocking the runtime.
pub async fn start<R: TestRuntime>(size: usize) -> Cluster {
    R::spawn_blocking(move || Cluster::start(size))
        .await
        .unwrap_or_else(|e| panic!("starting a {size}-member etcd cluster: {e}"))
}

/// A client on every member of `cluster`, with a 10 s call deadline.
pub async fn connect<R: TestRuntime>(cluster: &Cluster) -> Client {
    R::connect(
        cluster.client_urls(),
        ClientOptions::default().with_timeout(Duration::from_secs(10)),
    )
    .await
    .unwrap_or_else(|e| panic!("connecting to {:?}: {e}", cluster.client_urls()))
}
