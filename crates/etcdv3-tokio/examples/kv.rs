//! Put, get and delete keys.
//!
//! `ETCD_ENDPOINTS=http://127.0.0.1:2379 cargo run -p etcdv3-tokio --example kv`

use etcdv3_tokio::api::{DeleteOptions, GetOptions, PutOptions, SortOrder, SortTarget};

#[tokio::main]
async fn main() -> Result<(), etcdv3_tokio::Error> {
    let endpoints =
        std::env::var("ETCD_ENDPOINTS").unwrap_or_else(|_| "http://127.0.0.1:2379".into());
    let client = etcdv3_tokio::connect(endpoints.split(','), Default::default()).await?;

    client.put("example/kv/a", "1", PutOptions::new()).await?;
    client.put("example/kv/b", "2", PutOptions::new()).await?;
    let prev = client
        .put("example/kv/a", "3", PutOptions::new().with_prev_kv())
        .await?
        .prev_kv;
    println!(
        "a was {:?}",
        prev.map(|kv| String::from_utf8_lossy(&kv.value).into_owned())
    );

    let resp = client
        .get(
            "example/kv/",
            GetOptions::new()
                .with_prefix()
                .with_sort(SortTarget::Key, SortOrder::Descend),
        )
        .await?;
    for kv in &resp.kvs {
        println!(
            "{} = {} (mod revision {})",
            String::from_utf8_lossy(&kv.key),
            String::from_utf8_lossy(&kv.value),
            kv.mod_revision
        );
    }

    let deleted = client
        .delete("example/kv/", DeleteOptions::new().with_prefix())
        .await?
        .deleted;
    println!("deleted {deleted} keys");
    Ok(())
}
