//! Regression (issue 10, bug 1): a read that is slow on a healthy member is
//! neither cut off nor re-sent.
//!
//! A 3-member cluster holds about 30 MB under one prefix; eight concurrent
//! prefix gets of all of it, through one client with a generous deadline,
//! keep the members busy for longer than the core's stall timeout (500 ms)
//! before the first byte of an answer. The members answer pings meanwhile, so
//! nothing is stalled: all eight must succeed, and the members must have
//! executed about eight `Range` calls, not one per stall (counted from each
//! member's `grpc_server_started_total{grpc_method="Range"}`).
//!
//! `cargo test -p etcdv3-integration --test regress_slow_reads -- --nocapture`

use std::time::{Duration, Instant};

use etcdv3_client::api::{GetOptions, PutOptions, Txn, TxnOp};
use etcdv3_client::ClientOptions;
use etcdv3_integration::cluster;
use etcdv3_integration::runtime::{exclusive, TestRuntime, Tokio};

/// Keys under the prefix.
const KEYS: usize = 3000;
/// Bytes per value.
const VALUE_SIZE: usize = 10 * 1024;
/// Puts per loading txn (about 1 MB, under etcd's 1.5 MiB request limit).
const BATCH: usize = 100;
/// Concurrent prefix gets.
const READERS: usize = 8;
/// Deadline of each prefix get.
const READ_TIMEOUT: Duration = Duration::from_secs(40);
/// Range calls allowed beyond one per reader.
const SLACK: f64 = 1.0;

async fn slow_reads_on_healthy_members_are_not_retried<R: TestRuntime>() {
    let cluster = cluster::start::<R>(3).await;
    let client = R::connect(
        cluster.client_urls(),
        ClientOptions::default().with_timeout(Duration::from_secs(20)),
    )
    .await
    .expect("client");

    let loading = Instant::now();
    let value = vec![b'v'; VALUE_SIZE];
    for batch in 0..KEYS / BATCH {
        let ops = (0..BATCH).map(|j| {
            TxnOp::put(
                format!("big/{:06}", batch * BATCH + j),
                value.clone(),
                PutOptions::new(),
            )
        });
        client
            .txn(Txn::new().and_then(ops))
            .await
            .unwrap_or_else(|e| panic!("loading batch {batch}: {e}"));
    }
    eprintln!(
        "[slow-reads] loaded {KEYS} keys x {VALUE_SIZE} B in {} ms",
        loading.elapsed().as_millis()
    );
    // One read alone, for scale (not counted below).
    let one = Instant::now();
    let r = client
        .get(
            "big/",
            GetOptions::new()
                .with_prefix()
                .with_count_only()
                .with_timeout(READ_TIMEOUT),
        )
        .await
        .expect("count");
    assert_eq!(r.count, KEYS as i64);
    eprintln!(
        "[slow-reads] count-only range: {} ms",
        one.elapsed().as_millis()
    );

    let before = cluster::rpcs_started(&cluster, Some("Range"));
    let started = Instant::now();
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let client = client.clone();
            R::spawn(async move {
                let t = Instant::now();
                let r = client
                    .get(
                        "big/",
                        GetOptions::new().with_prefix().with_timeout(READ_TIMEOUT),
                    )
                    .await;
                (t.elapsed(), r.map(|r| r.kvs.len()))
            })
        })
        .collect();
    let mut results = Vec::new();
    for r in readers {
        results.push(r.await);
    }
    let took = started.elapsed();
    let after = cluster::rpcs_started(&cluster, Some("Range"));
    let per_member: Vec<f64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    let ranges: f64 = per_member.iter().sum();
    for (i, (t, r)) in results.iter().enumerate() {
        match r {
            Ok(n) => eprintln!("[slow-reads] reader {i}: {n} keys in {} ms", t.as_millis()),
            Err(e) => eprintln!(
                "[slow-reads] reader {i}: failed after {} ms: {e}",
                t.as_millis()
            ),
        }
    }
    eprintln!(
        "[slow-reads] {READERS} concurrent prefix gets took {} ms; Range calls executed per member: {per_member:?} (total {ranges})",
        took.as_millis()
    );

    let failed: Vec<String> = results
        .iter()
        .filter_map(|(t, r)| match r {
            Ok(n) if *n == KEYS => None,
            Ok(n) => Some(format!("{n} keys instead of {KEYS}")),
            Err(e) => Some(format!("after {} ms: {e}", t.as_millis())),
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {READERS} slow prefix gets on healthy members failed (bug 1: slow calls \
         cut off as stalled and re-sent): {failed:#?}",
        failed.len()
    );
    assert!(
        ranges <= READERS as f64 + SLACK,
        "the members executed {ranges} Range calls for {READERS} gets (per member \
         {per_member:?}): slow reads were re-sent (bug 1)"
    );
    client.close();
    R::spawn_blocking(move || drop(cluster)).await;
}

#[test]
fn slow_reads_on_healthy_members_are_not_retried_tokio() {
    let _exclusive = exclusive();
    Tokio::block_on(slow_reads_on_healthy_members_are_not_retried::<Tokio>());
}
