//! Users, roles and permissions (does not enable authentication).
//!
//! `ETCD_ENDPOINTS=http://127.0.0.1:2379 cargo run -p etcdv3-tokio --example auth`

use etcdv3_tokio::api::{Permission, UserAddOptions};

#[tokio::main]
async fn main() -> Result<(), etcdv3_tokio::Error> {
    let endpoints =
        std::env::var("ETCD_ENDPOINTS").unwrap_or_else(|_| "http://127.0.0.1:2379".into());
    let client = etcdv3_tokio::connect(endpoints.split(','), Default::default()).await?;

    println!("auth enabled: {}", client.auth_status().await?.enabled);

    client.role_add("example-reader").await?;
    client
        .role_grant_permission("example-reader", Permission::read("example/").with_prefix())
        .await?;
    client
        .user_add("example-user", "example-password", UserAddOptions::new())
        .await?;
    client
        .user_grant_role("example-user", "example-reader")
        .await?;

    let roles = client.user_get("example-user").await?.roles;
    println!("example-user has roles {roles:?}");
    for perm in client.role_get("example-reader").await?.perm {
        println!(
            "example-reader may {:?} [{}, {})",
            perm.perm_type(),
            String::from_utf8_lossy(&perm.key),
            String::from_utf8_lossy(&perm.range_end)
        );
    }

    client.user_delete("example-user").await?;
    client.role_delete("example-reader").await?;
    Ok(())
}
