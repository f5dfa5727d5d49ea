//! Keep a local, consistent copy of a prefix: read it locally, wait for
//! your own write, react to changes.
//!
//! `ETCD_ENDPOINTS=http://127.0.0.1:2379 cargo run -p etcdv3-tokio --example cache`

use std::time::Duration;

use etcdv3_tokio::api::{CacheEvent, CacheOptions, DeleteOptions, PutOptions};
use futures_util::StreamExt;

#[tokio::main]
async fn main() -> Result<(), etcdv3_tokio::Error> {
    let endpoints =
        std::env::var("ETCD_ENDPOINTS").unwrap_or_else(|_| "http://127.0.0.1:2379".into());
    let client = etcdv3_tokio::connect(endpoints.split(','), Default::default()).await?;
    client
        .put("example/cache/a", "1", PutOptions::new())
        .await?;

    // Listed at one revision, then kept in sync by a watch (re-listed by
    // itself after a compaction).
    let cache = client
        .cache("example/cache/", CacheOptions::new().with_prefix())
        .await?;
    let view = cache.list();
    println!("{} keys at revision {}", view.value.len(), view.revision);

    // React to changes on another task.
    let mut changes = cache.changes();
    let watcher = tokio::spawn(async move {
        while let Some(Ok(change)) = changes.next().await {
            match change {
                CacheEvent::Put(kv) => println!(
                    "put {} = {}",
                    String::from_utf8_lossy(&kv.key),
                    String::from_utf8_lossy(&kv.value)
                ),
                CacheEvent::Delete { key, .. } => {
                    println!("deleted {}", String::from_utf8_lossy(&key))
                }
                other => println!("{other:?}"),
            }
        }
    });

    // Read your own write: wait until the cache is at the put's revision.
    let put = client
        .put("example/cache/b", "2", PutOptions::new())
        .await?;
    let revision = put.header.map_or(0, |h| h.revision);
    cache.wait_for_revision(revision).await?;
    let b = cache.get("example/cache/b");
    println!(
        "b = {:?} at revision {}",
        b.value
            .map(|kv| String::from_utf8_lossy(&kv.value).into_owned()),
        b.revision
    );

    client
        .delete("example/cache/", DeleteOptions::new().with_prefix())
        .await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(cache);
    watcher.abort();
    Ok(())
}
