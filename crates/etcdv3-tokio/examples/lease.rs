//! Grant a lease, attach a key, keep it alive for a while, then let it
//! expire.
//!
//! `ETCD_ENDPOINTS=http://127.0.0.1:2379 cargo run -p etcdv3-tokio --example lease`

use std::time::Duration;

use etcdv3_tokio::api::{GetOptions, LeaseGrantOptions, PutOptions};
use futures_util::StreamExt;

#[tokio::main]
async fn main() -> Result<(), etcdv3_tokio::Error> {
    let endpoints =
        std::env::var("ETCD_ENDPOINTS").unwrap_or_else(|_| "http://127.0.0.1:2379".into());
    let client = etcdv3_tokio::connect(endpoints.split(','), Default::default()).await?;

    let lease = client.lease_grant(3, LeaseGrantOptions::new()).await?;
    println!("lease {:x}, TTL {} s", lease.id, lease.ttl);
    client
        .put(
            "example/lease/session",
            "alive",
            PutOptions::new().with_lease(lease.id),
        )
        .await?;

    // Renewed every TTL/3 in the background while `keeper` lives.
    let mut keeper = client.lease_keep_alive(lease.id).await?;
    for _ in 0..4 {
        if let Some(item) = keeper.next().await {
            println!("keep-alive: {:?}", item?);
        }
    }
    let ttl = client.lease_time_to_live(lease.id, true).await?;
    println!("remaining {} s, keys {}", ttl.ttl, ttl.keys.len());

    // Stop renewing: the lease (and its key) expire after the TTL.
    drop(keeper);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let left = client
        .get("example/lease/session", GetOptions::new())
        .await?
        .count;
    println!("after expiry the key exists: {}", left == 1);
    Ok(())
}
