//! The prefix cache (`Client::cache`) against real etcd, under member
//! SIGKILLs and a compaction in the middle of the run.
//!
//! `cargo test -p etcdv3-integration --test cache`

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use etcdv3_client::api::{
    Cache, CacheChanges, CacheEvent, CacheOptions, CompactOptions, DeleteOptions, GetOptions,
    KeyValue, PutOptions,
};
use etcdv3_client::{Client, ClientOptions};
use etcdv3_integration::cluster::{connect, judged_run, members_agree, put_rev, start};
use etcdv3_integration::runtime::{Task, TestRuntime};
use futures_util::StreamExt;

/// `client.cache(prefix, opts)`, within 20 s.
async fn open<R: TestRuntime>(client: &Client, prefix: &str, opts: CacheOptions) -> Cache {
    match R::timeout(Duration::from_secs(20), client.cache(prefix, opts)).await {
        Ok(Ok(cache)) => cache,
        Ok(Err(e)) => panic!("cache of {prefix}: {e}"),
        Err(_) => panic!("cache of {prefix}: not listed within 20 s"),
    }
}

/// Waits (20 s at most) until `cache` is at `rev` or later.
async fn caught_up<R: TestRuntime>(cache: &Cache, rev: i64, what: &str) -> i64 {
    match R::timeout(Duration::from_secs(20), cache.wait_for_revision(rev)).await {
        Ok(Ok(at)) => {
            assert!(at >= rev);
            at
        }
        Ok(Err(e)) => panic!("{what}: cache stopped: {e}"),
        Err(_) => panic!("{what}: not at {rev} within 20 s (at {})", cache.revision()),
    }
}

/// The cache's view equals the server's range at the view's revision.
async fn equals_server(c: &Client, cache: &Cache, prefix: &str, what: &str) -> i64 {
    let view = cache.list();
    let want = c
        .get(
            prefix,
            GetOptions::new().with_prefix().with_revision(view.revision),
        )
        .await
        .unwrap_or_else(|e| panic!("{what}: get at {}: {e}", view.revision));
    assert!(
        view.value == want.kvs,
        "{what}: the cache at {} differs from the server: {} keys vs {}",
        view.revision,
        view.value.len(),
        want.kvs.len()
    );
    view.revision
}

/// Puts and deletes on `c/0`..`c/49` until `stop`.
fn churn<R: TestRuntime>(c: &Client, stop: Arc<AtomicBool>) -> Task<usize> {
    let c = c.clone();
    R::spawn(async move {
        let mut n = 0usize;
        while !stop.load(Ordering::Relaxed) {
            let k = format!("c/{}", (n * 13) % 50);
            // Failures during a fault are expected; the writer goes on.
            if n % 5 == 4 {
                let _ = c.delete(k, DeleteOptions::new()).await;
            } else {
                let _ = c.put(k, format!("w{n}"), PutOptions::new()).await;
            }
            n += 1;
            R::sleep(Duration::from_millis(5)).await;
        }
        n
    })
}

/// Applies the changes of `changes` to `model` until the put of
/// `c/marker` at `marker` (or a re-list at or past it), 20 s at most.
async fn drain<R: TestRuntime>(
    changes: &mut CacheChanges,
    model: &mut BTreeMap<Vec<u8>, KeyValue>,
    marker: i64,
) {
    loop {
        let item = match R::timeout(Duration::from_secs(20), changes.next()).await {
            Ok(Some(item)) => item.expect("change stream error"),
            other => panic!("change stream: no marker {marker}: {other:?}"),
        };
        match item {
            CacheEvent::Put(kv) => {
                let done = kv.key == b"c/marker" && kv.mod_revision == marker;
                model.insert(kv.key.clone(), kv);
                if done {
                    return;
                }
            }
            CacheEvent::Delete { key, .. } => {
                model.remove(&key);
            }
            CacheEvent::Relisted { revision } if revision >= marker => return,
            CacheEvent::Relisted { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Two caches of `c/` while writers put and delete: one on a client of
/// every member (its watch fails over), one on a client of member 0 only.
/// Fault 1..3: each member SIGKILLed and restarted in turn. Fault 4:
/// member 0 killed, writes and a compaction past the cache's revision
/// meanwhile, member 0 restarted: that cache's watch resumes into the
/// compacted history and it must re-list. After each fault both caches are
/// brought to a fresh revision and must equal the server's range at their
/// revision; the change stream, applied to the first list, must equal the
/// final view.
async fn cache_equals_the_range_under_kills_and_compaction_run<R: TestRuntime>(
) -> Result<(), String> {
    let cluster = Arc::new(start::<R>(3).await);
    let writer = connect::<R>(&cluster).await;
    for i in 0..50 {
        put_rev::<R>(&writer, &format!("c/{i}"), "init").await;
    }
    let all = connect::<R>(&cluster).await;
    let one = R::connect(
        [cluster.member(0).client_url()],
        ClientOptions::default().with_timeout(Duration::from_secs(10)),
    )
    .await
    .unwrap();
    let opts = CacheOptions::new().with_prefix().with_page_count(7);
    let cache_all = open::<R>(&all, "c/", opts.clone()).await;
    let cache_one = open::<R>(&one, "c/", opts).await;
    let mut changes = cache_one.changes();
    let mut model: BTreeMap<Vec<u8>, KeyValue> = cache_one
        .list()
        .value
        .into_iter()
        .map(|kv| (kv.key.clone(), kv))
        .collect();
    equals_server(&writer, &cache_all, "c/", "start").await;

    let stop = Arc::new(AtomicBool::new(false));
    let churner = churn::<R>(&writer, stop.clone());
    for round in 0..4 {
        let member = round % 3;
        eprintln!("{}: fault {round}: member {member}", R::NAME);
        let cl = cluster.clone();
        R::spawn_blocking(move || cl.kill(member)).await.unwrap();
        R::sleep(Duration::from_millis(800)).await;
        if round == 3 {
            // Member 0 is down: compact past where cache_one stopped.
            let behind = cache_one.revision();
            let mut last = 0;
            for i in 0..20 {
                last = put_rev::<R>(&writer, &format!("c/{}", i % 50), &format!("gap{i}")).await;
            }
            writer.compact(last, CompactOptions::new()).await.unwrap();
            assert!(behind < last);
        }
        let cl = cluster.clone();
        R::spawn_blocking(move || cl.restart(member)).await.unwrap();
        eprintln!("{}: fault {round}: restarted", R::NAME);
        let marker = put_rev::<R>(&writer, "c/marker", &format!("m{round}")).await;
        let what = format!("fault {round}: member {member}");
        caught_up::<R>(&cache_all, marker, &what).await;
        caught_up::<R>(&cache_one, marker, &what).await;
        equals_server(&writer, &cache_all, "c/", &what).await;
        equals_server(&writer, &cache_one, "c/", &what).await;
        drain::<R>(&mut changes, &mut model, marker).await;
    }
    assert!(
        cache_one.relists() >= 1,
        "the compaction while member 0 was down did not make its cache re-list"
    );
    stop.store(true, Ordering::Relaxed);
    assert!(churner.await > 0);
    let last = put_rev::<R>(&writer, "c/marker", "end").await;
    caught_up::<R>(&cache_one, last, "end").await;
    drain::<R>(&mut changes, &mut model, last).await;
    let view = cache_one.list();
    assert_eq!(view.revision, last, "nothing written after the last marker");
    assert!(
        model.values().cloned().collect::<Vec<_>>() == view.value,
        "the change stream applied to the first list differs from the view"
    );
    members_agree::<R>(&cluster, &writer).await.map(|_| ())
}

async fn cache_equals_the_range_under_kills_and_compaction<R: TestRuntime>() {
    judged_run::<R, _, _>(cache_equals_the_range_under_kills_and_compaction_run::<R>).await
}

/// A write outside the cached prefix moves the store's revision, not the
/// cache's; `wait_for_revision` gets the view there through progress
/// notifications (read-your-writes on an idle prefix), and a put inside
/// is visible once the cache is at its revision.
async fn wait_for_revision_on_an_idle_prefix<R: TestRuntime>() {
    let cluster = start::<R>(1).await;
    let c = connect::<R>(&cluster).await;
    put_rev::<R>(&c, "idle/a", "1").await;
    let cache = open::<R>(
        &c,
        "idle/",
        CacheOptions::new()
            .with_prefix()
            .with_progress_interval(Duration::from_secs(3600)),
    )
    .await;
    let before = cache.revision();
    let mut outside = 0;
    for i in 0..5 {
        outside = put_rev::<R>(&c, "elsewhere", &format!("{i}")).await;
    }
    R::sleep(Duration::from_millis(300)).await;
    assert_eq!(cache.revision(), before, "nothing in the prefix changed");
    let at = caught_up::<R>(&cache, outside, "idle").await;
    assert!(at >= outside);
    let inside = put_rev::<R>(&c, "idle/b", "2").await;
    caught_up::<R>(&cache, inside, "inside").await;
    let b = cache.get("idle/b");
    assert_eq!(b.value.map(|kv| kv.value), Some(b"2".to_vec()));
    assert!(b.revision >= inside);
    equals_server(&c, &cache, "idle/", "idle").await;
    // One delete of the prefix: two events at one revision, both applied.
    let gone = c
        .delete("idle/", DeleteOptions::new().with_prefix())
        .await
        .unwrap();
    assert_eq!(gone.deleted, 2);
    caught_up::<R>(&cache, gone.header.unwrap().revision, "delete").await;
    assert!(cache.list().value.is_empty(), "{:?}", cache.list());
}

/// A change reader that does not read while 2,000 changes of 1 KiB are
/// applied: the cache holds at most its bound of changes, the reader is
/// told it lagged, then reads on; the view is still the server's.
async fn a_slow_change_reader_lags_with_bounded_memory<R: TestRuntime>() {
    const BOUND: usize = 64 << 10;
    let cluster = start::<R>(1).await;
    let c = connect::<R>(&cluster).await;
    let cache = open::<R>(
        &c,
        "s/",
        CacheOptions::new()
            .with_prefix()
            .with_max_change_bytes(BOUND),
    )
    .await;
    let mut changes = cache.changes();
    let value = "v".repeat(1024);
    let mut last = 0;
    for i in 0..2000 {
        last = c
            .put(format!("s/{}", i % 100), value.as_str(), PutOptions::new())
            .await
            .unwrap()
            .header
            .unwrap()
            .revision;
    }
    caught_up::<R>(&cache, last, "slow").await;
    assert!(cache.change_bytes() <= BOUND, "{}", cache.change_bytes());
    match R::timeout(Duration::from_secs(5), changes.next()).await {
        Ok(Some(Ok(CacheEvent::Lagged { revision }))) => assert!(revision >= last),
        other => panic!("expected Lagged, got {other:?}"),
    }
    let next = put_rev::<R>(&c, "s/after", "x").await;
    match R::timeout(Duration::from_secs(10), changes.next()).await {
        Ok(Some(Ok(CacheEvent::Put(kv)))) => assert_eq!(kv.mod_revision, next),
        other => panic!("expected the put after the lag, got {other:?}"),
    }
    equals_server(&c, &cache, "s/", "slow").await;
}

etcdv3_integration::runtime_tests!(
    cache_equals_the_range_under_kills_and_compaction,
    wait_for_revision_on_an_idle_prefix,
    a_slow_change_reader_lags_with_bounded_memory,
);
