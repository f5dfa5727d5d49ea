//! Campaign in an election, observe the leader, proclaim and resign.
//!
//! `ETCD_ENDPOINTS=http://127.0.0.1:2379 cargo run -p etcdv3-tokio --example election`

use etcdv3_tokio::api::LeaseGrantOptions;
use futures_util::StreamExt;

#[tokio::main]
async fn main() -> Result<(), etcdv3_tokio::Error> {
    let endpoints =
        std::env::var("ETCD_ENDPOINTS").unwrap_or_else(|_| "http://127.0.0.1:2379".into());
    let client = etcdv3_tokio::connect(endpoints.split(','), Default::default()).await?;

    let lease = client.lease_grant(10, LeaseGrantOptions::new()).await?;
    let _keeper = client.lease_keep_alive(lease.id).await?;

    let won = client
        .campaign("example/election", "node-1", lease.id)
        .await?;
    let me = won.leader.unwrap_or_default();
    println!("elected as {}", String::from_utf8_lossy(&me.key));

    let mut observe = client.observe("example/election").await?;
    client.proclaim(me.clone(), "node-1 (ready)").await?;
    for _ in 0..2 {
        if let Some(leader) = observe.next().await {
            let kv = leader?.kv.unwrap_or_default();
            println!("leader says {}", String::from_utf8_lossy(&kv.value));
        }
    }
    let current = client.leader("example/election").await?;
    println!("current leader value: {:?}", current.kv.map(|kv| kv.value));

    client.resign(me).await?;
    client.lease_revoke(lease.id).await?;
    Ok(())
}
