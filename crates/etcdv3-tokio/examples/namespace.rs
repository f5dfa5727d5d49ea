//! A namespaced view of the keyspace.
//!
//! `ETCD_ENDPOINTS=http://127.0.0.1:2379 cargo run -p etcdv3-tokio --example namespace`

use etcdv3_tokio::api::{DeleteOptions, GetOptions, PutOptions};

#[tokio::main]
async fn main() -> Result<(), etcdv3_tokio::Error> {
    let endpoints =
        std::env::var("ETCD_ENDPOINTS").unwrap_or_else(|_| "http://127.0.0.1:2379".into());
    let client = etcdv3_tokio::connect(endpoints.split(','), Default::default()).await?;

    let tenant = client.namespaced("example/ns/acme/");
    tenant.put("config", "{}", PutOptions::new()).await?;

    // Inside the namespace the key is "config" ...
    for kv in tenant.get("", GetOptions::new().with_prefix()).await?.kvs {
        println!("in namespace: {}", String::from_utf8_lossy(&kv.key));
    }
    // ... outside it is "example/ns/acme/config".
    for kv in client
        .get("example/ns/", GetOptions::new().with_prefix())
        .await?
        .kvs
    {
        println!("raw: {}", String::from_utf8_lossy(&kv.key));
    }

    tenant
        .delete("", DeleteOptions::new().with_prefix())
        .await?;
    Ok(())
}
