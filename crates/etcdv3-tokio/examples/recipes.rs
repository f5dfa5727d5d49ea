//! Concurrency recipes: a session, a mutex with fenced writes, an election
//! with an observer, and an STM counter.
//!
//! `ETCD_ENDPOINTS=http://127.0.0.1:2379 cargo run -p etcdv3-tokio --example recipes`

use std::time::Duration;

use etcdv3_tokio::api::{PutOptions, Txn, TxnOp};
use etcdv3_tokio::concurrency::stm::{self, Isolation};
use etcdv3_tokio::concurrency::{self, Election, Mutex, Session, SessionOptions};
use futures_util::StreamExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let endpoints =
        std::env::var("ETCD_ENDPOINTS").unwrap_or_else(|_| "http://127.0.0.1:2379".into());
    let client = etcdv3_tokio::connect(endpoints.split(','), Default::default()).await?;

    // A session: a lease kept alive in the background.
    let session = Session::new(&client, SessionOptions::new().with_ttl(10)).await?;
    println!("session lease {:x}", session.lease_id());

    // A mutex: writes guarded by ownership, fenced by the lock revision.
    let mutex = Mutex::new(&session, "example/recipes/lock");
    let guard = mutex.lock().await?;
    let fenced = Txn::new().when([guard.is_owner()]).and_then([TxnOp::put(
        "example/recipes/resource",
        format!("written under lock revision {}", guard.revision()),
        PutOptions::new(),
    )]);
    println!(
        "fenced write applied: {}",
        client.txn(fenced).await?.succeeded
    );
    // Another session cannot take it now.
    let other = Session::new(&client, SessionOptions::new().with_ttl(10)).await?;
    match Mutex::new(&other, "example/recipes/lock").try_lock().await {
        Err(concurrency::Error::Locked) => println!("try_lock from another session: locked"),
        other => println!("unexpected: {other:?}"),
    }
    guard.unlock().await?;

    // An election, with an observer that reports every leader value.
    let mut leaders = concurrency::observe(&client, "example/recipes/election");
    let mut election = Election::new(&session, "example/recipes/election");
    election.campaign("node-1").await?;
    // The observer starts at its first poll: the current leader first.
    println!("leader says {:?}", next_leader(&mut leaders).await?);
    election.proclaim("node-1 (busy)").await?;
    println!("leader says {:?}", next_leader(&mut leaders).await?);
    election.resign().await?;

    // STM: a read-modify-write retried on conflict.
    let n = stm::run(&client, Isolation::Serializable, |tx| {
        let n: i64 = tx
            .get("example/recipes/counter")?
            .and_then(|v| String::from_utf8(v).ok()?.parse().ok())
            .unwrap_or(0)
            + 1;
        tx.put("example/recipes/counter", n.to_string());
        Ok(n)
    })
    .await?;
    println!("counter is now {n}");

    other.close().await?;
    session.close().await?;
    Ok(())
}

/// The next leader value, or "(nothing)" after 5 s.
async fn next_leader(leaders: &mut concurrency::Observe) -> concurrency::Result<String> {
    match tokio::time::timeout(Duration::from_secs(5), leaders.next()).await {
        Ok(Some(kv)) => Ok(String::from_utf8_lossy(&kv?.value).into_owned()),
        _ => Ok("(nothing)".into()),
    }
}
