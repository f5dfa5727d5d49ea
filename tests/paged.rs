//! Paginated snapshots (`Client::get_paged`) against real etcd, under
//! member SIGKILLs and a compaction in the middle of a read.
//!
//! `cargo test -p etcdv3-integration --test paged`

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use etcdv3_client::api::{
    CompactOptions, GetOptions, KeyValue, Page, PageError, Paged, PagedOptions, PutOptions,
};
use etcdv3_client::{Client, ClientOptions};
use etcdv3_integration::cluster::{connect, judged_run, members_agree, put_rev, start};
use etcdv3_integration::runtime::TestRuntime;
use futures_util::StreamExt;
use prost_free::encoded_len;

/// The next page (panics on an error, an end, or 20 s without one).
async fn page<R: TestRuntime>(pages: &mut Paged) -> Option<Page> {
    match R::timeout(Duration::from_secs(20), pages.next()).await {
        Ok(Some(Ok(p))) => Some(p),
        Ok(Some(Err(e))) => panic!("page error: {e}"),
        Ok(None) => None,
        Err(_) => panic!("no page within 20 s"),
    }
}

/// Writers overwriting `pg/*` keys until `stop`: the revision moves on
/// while a snapshot is read.
fn churn<R: TestRuntime>(
    c: &Client,
    stop: Arc<AtomicBool>,
) -> etcdv3_integration::runtime::Task<usize> {
    let c = c.clone();
    R::spawn(async move {
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            let k = format!("pg/{:04}", (n * 7) % 400);
            // Failures during a fault are expected; the writer goes on.
            let _ = c.put(k, format!("w{n}"), PutOptions::new()).await;
            n += 1;
        }
        n
    })
}

/// A paged read with a member SIGKILLed after its second page, three
/// times (each member in turn) while writers move the revision: every
/// page is at the first page's revision and together they equal the range
/// read at that revision in one request.
async fn paged_read_is_one_snapshot_across_member_kills_run<R: TestRuntime>() -> Result<(), String>
{
    let cluster = Arc::new(start::<R>(3).await);
    let c = connect::<R>(&cluster).await;
    for i in 0..400 {
        put_rev::<R>(&c, &format!("pg/{i:04}"), &format!("v{i}")).await;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let writer = churn::<R>(&c, stop.clone());
    for round in 0..3 {
        let mut pages = c.get_paged("pg/", PagedOptions::new().with_prefix().with_page_count(25));
        let mut got: Vec<KeyValue> = Vec::new();
        let mut revisions = Vec::new();
        let mut n = 0;
        while let Some(p) = page::<R>(&mut pages).await {
            revisions.push(p.revision);
            got.extend(p.kvs);
            n += 1;
            if n == 2 {
                let cl = cluster.clone();
                R::spawn_blocking(move || cl.kill(round)).await.unwrap();
            }
        }
        let rev = revisions[0];
        assert!(n >= 16, "{n} pages of at most 25 for 400 keys");
        assert!(revisions.iter().all(|r| *r == rev), "{revisions:?}");
        let want = c
            .get("pg/", GetOptions::new().with_prefix().with_revision(rev))
            .await
            .unwrap_or_else(|e| panic!("get at {rev}: {e}"));
        assert_eq!(got.len(), 400);
        assert!(
            got == want.kvs,
            "round {round}: the pages differ from the range at {rev}"
        );
        assert!(got.iter().all(|kv| kv.mod_revision <= rev));
        let cl = cluster.clone();
        R::spawn_blocking(move || cl.restart(round)).await.unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let writes = writer.await;
    assert!(writes > 0);
    members_agree::<R>(&cluster, &c).await.map(|_| ())
}

async fn paged_read_is_one_snapshot_across_member_kills<R: TestRuntime>() {
    judged_run::<R, _, _>(paged_read_is_one_snapshot_across_member_kills_run::<R>).await
}

/// The snapshot's revision compacted between two pages: the read ends with
/// `PageError::Compacted` at that revision, then the stream ends.
async fn compaction_mid_read_ends_with_compacted<R: TestRuntime>() {
    let cluster = start::<R>(1).await;
    let c = connect::<R>(&cluster).await;
    for i in 0..100 {
        put_rev::<R>(&c, &format!("pg/{i:04}"), "v").await;
    }
    let mut pages = c.get_paged("pg/", PagedOptions::new().with_prefix().with_page_count(10));
    let first = page::<R>(&mut pages).await.expect("a first page");
    page::<R>(&mut pages).await.expect("a second page");
    let later = put_rev::<R>(&c, "pg/0000", "changed").await;
    c.compact(later, CompactOptions::new()).await.unwrap();
    match R::timeout(Duration::from_secs(20), pages.next()).await {
        Ok(Some(Err(PageError::Compacted { revision, source }))) => {
            assert_eq!(revision, first.revision);
            assert!(source.to_string().contains("compacted"), "{source}");
        }
        other => panic!("expected Compacted, got {other:?}"),
    }
    assert!(
        pages.next().await.is_none(),
        "the stream ends after Compacted"
    );
}

/// Values of 8 KiB, 200 keys (1.6 MB) under a receive limit of 256 KiB: a
/// plain get of the prefix cannot be received; a paged read of any page
/// size gets every key in pages under the limit.
async fn pages_stay_under_the_receive_limit<R: TestRuntime>() {
    const LIMIT: usize = 256 << 10;
    let cluster = start::<R>(1).await;
    let writer = connect::<R>(&cluster).await;
    let value = "x".repeat(8 << 10);
    for i in 0..200 {
        put_rev::<R>(&writer, &format!("big/{i:04}"), &format!("{i}{value}")).await;
    }
    let c = R::connect(
        cluster.client_urls(),
        ClientOptions::default()
            .with_timeout(Duration::from_secs(10))
            .with_max_message_size(2 << 20, LIMIT),
    )
    .await
    .unwrap();
    let whole = c
        .get(
            "big/",
            GetOptions::new()
                .with_prefix()
                .with_timeout(Duration::from_secs(2)),
        )
        .await;
    assert!(
        whole.is_err(),
        "the whole prefix fits the limit: the test proves nothing"
    );
    for opts in [
        PagedOptions::new().with_page_bytes(100 << 20),
        PagedOptions::new().with_page_count(10_000),
        PagedOptions::new(),
    ] {
        let mut pages = c.get_paged("big/", opts.clone().with_prefix());
        let mut keys = 0;
        while let Some(p) = page::<R>(&mut pages).await {
            let size: usize = p.kvs.iter().map(encoded_len).sum();
            assert!(size < LIMIT, "{opts:?}: a page of {size} bytes");
            keys += p.kvs.len();
        }
        assert_eq!(keys, 200, "{opts:?}");
    }
    // The key-value stream, resumed from a position on another stream.
    let mut pages = c.get_paged(
        "big/",
        PagedOptions::new().with_prefix().with_page_count(50),
    );
    let first = page::<R>(&mut pages).await.expect("a first page");
    let mut rest = c
        .get_paged_from(pages.position(), PagedOptions::new())
        .into_kvs();
    let mut n = first.kvs.len();
    while let Some(kv) = rest.next().await {
        assert!(kv.unwrap().mod_revision <= first.revision);
        n += 1;
    }
    assert_eq!(n, 200);
}

mod prost_free {
    use etcdv3_client::api::KeyValue;

    /// What a key-value weighs in a response (tag and length bytes aside).
    pub fn encoded_len(kv: &KeyValue) -> usize {
        kv.key.len() + kv.value.len() + 40
    }
}

etcdv3_integration::runtime_tests!(
    paged_read_is_one_snapshot_across_member_kills,
    compaction_mid_read_ends_with_compacted,
    pages_stay_under_the_receive_limit,
);
