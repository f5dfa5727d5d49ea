//! Read a large prefix page by page at one revision (a consistent
//! snapshot), as pages and as key-values.
//!
//! `ETCD_ENDPOINTS=http://127.0.0.1:2379 cargo run -p etcdv3-tokio --example paged`

use etcdv3_tokio::api::{DeleteOptions, PageError, PagedOptions, PutOptions};
use futures_util::StreamExt;

#[tokio::main]
async fn main() -> Result<(), etcdv3_tokio::Error> {
    let endpoints =
        std::env::var("ETCD_ENDPOINTS").unwrap_or_else(|_| "http://127.0.0.1:2379".into());
    let client = etcdv3_tokio::connect(endpoints.split(','), Default::default()).await?;

    for i in 0..250 {
        client
            .put(
                format!("example/paged/{i:04}"),
                "x".repeat(100),
                PutOptions::new(),
            )
            .await?;
    }

    // Pages of at most 100 keys, every one at the first page's revision.
    let mut pages = client.get_paged(
        "example/paged/",
        PagedOptions::new().with_prefix().with_page_count(100),
    );
    while let Some(page) = pages.next().await {
        match page {
            Ok(page) => println!(
                "page of {} keys at revision {} ({} left)",
                page.kvs.len(),
                page.revision,
                page.remaining
            ),
            // The snapshot's revision was compacted mid-read: start again.
            Err(PageError::Compacted { revision, .. }) => {
                println!("revision {revision} was compacted");
                break;
            }
            Err(e) => return Err(e.into()),
        }
    }

    // The same range as key-values, in pages of about 8 KiB.
    let mut kvs = client
        .get_paged(
            "example/paged/",
            PagedOptions::new().with_prefix().with_page_bytes(8 << 10),
        )
        .into_kvs();
    let mut n = 0;
    while let Some(kv) = kvs.next().await {
        kv?;
        n += 1;
    }
    println!("{n} keys at revision {}", kvs.revision());

    client
        .delete("example/paged/", DeleteOptions::new().with_prefix())
        .await?;
    Ok(())
}
