//! Watch a prefix, write to it, and print the events (and the history
//! replayed from an older revision).
//!
//! `ETCD_ENDPOINTS=http://127.0.0.1:2379 cargo run -p etcdv3-tokio --example watch`

use etcdv3_tokio::api::{DeleteOptions, PutOptions, WatchEvent, WatchOptions};
use futures_util::StreamExt;

#[tokio::main]
async fn main() -> Result<(), etcdv3_tokio::Error> {
    let endpoints =
        std::env::var("ETCD_ENDPOINTS").unwrap_or_else(|_| "http://127.0.0.1:2379".into());
    let client = etcdv3_tokio::connect(endpoints.split(','), Default::default()).await?;

    let mut watcher = client
        .watch(
            "example/watch/",
            WatchOptions::new().with_prefix().with_prev_kv(),
        )
        .await?;
    println!("watching from revision {}", watcher.created_revision() + 1);

    let first = client
        .put("example/watch/a", "1", PutOptions::new())
        .await?;
    client
        .put("example/watch/a", "2", PutOptions::new())
        .await?;
    client
        .delete("example/watch/a", DeleteOptions::new())
        .await?;

    let mut seen = 0;
    while seen < 3 {
        match watcher.next().await {
            Some(Ok(WatchEvent::Events { events, revision })) => {
                for e in events {
                    seen += 1;
                    let kv = e.kv.clone().unwrap_or_default();
                    println!(
                        "{:?} {} = {:?} (prev {:?}) at {} (response revision {revision})",
                        e.r#type(),
                        String::from_utf8_lossy(&kv.key),
                        String::from_utf8_lossy(&kv.value),
                        e.prev_kv
                            .map(|p| String::from_utf8_lossy(&p.value).into_owned()),
                        kv.mod_revision,
                    );
                }
            }
            Some(Ok(other)) => println!("{other:?}"),
            Some(Err(e)) => return Err(e),
            None => break,
        }
    }
    watcher.cancel().await?;

    // Replay the same history from the first write's revision.
    let start = first.revision().max(1);
    let mut replay = client
        .watch(
            "example/watch/a",
            WatchOptions::new().with_start_revision(start),
        )
        .await?;
    if let Some(Ok(WatchEvent::Events { events, .. })) = replay.next().await {
        println!("replayed {} event(s) from revision {start}", events.len());
    }
    Ok(())
}
