//! Two tasks take turns on a distributed lock held under a kept-alive
//! lease.
//!
//! `ETCD_ENDPOINTS=http://127.0.0.1:2379 cargo run -p etcdv3-tokio --example lock`

use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), etcdv3_tokio::Error> {
    let endpoints =
        std::env::var("ETCD_ENDPOINTS").unwrap_or_else(|_| "http://127.0.0.1:2379".into());
    let client = etcdv3_tokio::connect(endpoints.split(','), Default::default()).await?;

    let mut tasks = Vec::new();
    for worker in 0..2 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            for round in 0..2 {
                let guard = client.lock_with_lease("example/lock", 10).await?;
                println!(
                    "worker {worker} holds the lock ({}) in round {round}",
                    String::from_utf8_lossy(guard.key())
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
                guard.unlock().await?;
            }
            Ok::<_, etcdv3_tokio::Error>(())
        }));
    }
    for t in tasks {
        t.await.expect("worker panicked")?;
    }
    Ok(())
}
