//! Status, alarms, hash and a snapshot of some member.
//!
//! `ETCD_ENDPOINTS=http://127.0.0.1:2379 cargo run -p etcdv3-tokio --example maintenance`

#[tokio::main]
async fn main() -> Result<(), etcdv3_tokio::Error> {
    let endpoints =
        std::env::var("ETCD_ENDPOINTS").unwrap_or_else(|_| "http://127.0.0.1:2379".into());
    let client = etcdv3_tokio::connect(endpoints.split(','), Default::default()).await?;

    let st = client.status().await?;
    println!(
        "member {:016x}: etcd {}, leader {:016x}, raft term {}, db {} bytes",
        st.header.map_or(0, |h| h.member_id),
        st.version,
        st.leader,
        st.raft_term,
        st.db_size
    );

    let alarms = client.alarm_list().await?;
    println!("{} alarm(s) raised", alarms.alarms.len());

    let hash = client.hash_kv(0).await?;
    println!("kv hash {:08x} at revision {}", hash.hash, hash.revision());

    let mut snapshot = client.snapshot().await?;
    let mut size = 0;
    while let Some(chunk) = snapshot.next_chunk().await {
        size += chunk?.len();
    }
    println!("snapshot: {size} bytes");
    Ok(())
}
