//! List the cluster's members.
//!
//! `ETCD_ENDPOINTS=http://127.0.0.1:2379 cargo run -p etcdv3-tokio --example cluster`

use etcdv3_tokio::api::MemberListOptions;

#[tokio::main]
async fn main() -> Result<(), etcdv3_tokio::Error> {
    let endpoints =
        std::env::var("ETCD_ENDPOINTS").unwrap_or_else(|_| "http://127.0.0.1:2379".into());
    let client = etcdv3_tokio::connect(endpoints.split(','), Default::default()).await?;

    let resp = client
        .member_list(MemberListOptions::new().with_linearizable())
        .await?;
    for m in resp.members {
        println!(
            "{:016x} {} peers={:?} clients={:?}{}",
            m.id,
            m.name,
            m.peer_ur_ls,
            m.client_ur_ls,
            if m.is_learner { " (learner)" } else { "" }
        );
    }
    Ok(())
}
