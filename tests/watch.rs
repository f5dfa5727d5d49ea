//! Watch against real etcd (etcd from `ETCD_BIN` or `PATH`).
//!
//! `cargo test -p etcdv3-integration --test watch`

use std::sync::Arc;
use std::time::Duration;

use etcdv3_client::api::{
    CompactOptions, DeleteOptions, EventType, PutOptions, WatchEvent, WatchOptions, Watcher,
    MAX_BUFFERED_BYTES,
};
use etcdv3_client::Error;
use etcdv3_integration::cluster::{connect, put_rev, start};
use etcdv3_integration::runtime::TestRuntime;
use futures_util::StreamExt;

/// The next event that is not a progress notification.
async fn next<R: TestRuntime>(w: &mut Watcher) -> WatchEvent {
    loop {
        match R::timeout(Duration::from_secs(10), w.next()).await {
            Ok(Some(Ok(WatchEvent::Progress { .. }))) => continue,
            Ok(Some(Ok(e))) => return e,
            Ok(Some(Err(e))) => panic!("watch error: {e}"),
            Ok(None) => panic!("watcher ended"),
            Err(_) => panic!("no watch event within 10 s"),
        }
    }
}

/// (type, key, value, mod_revision) of the next `n` events.
async fn collect<R: TestRuntime>(
    w: &mut Watcher,
    n: usize,
) -> Vec<(EventType, String, String, i64)> {
    let mut out = Vec::new();
    while out.len() < n {
        match next::<R>(w).await {
            WatchEvent::Events { events, .. } => {
                for e in events {
                    let kv = e.kv.clone().unwrap_or_default();
                    out.push((
                        e.r#type(),
                        String::from_utf8_lossy(&kv.key).into_owned(),
                        String::from_utf8_lossy(&kv.value).into_owned(),
                        kv.mod_revision,
                    ));
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    out
}

async fn assert_quiet<R: TestRuntime>(w: &mut Watcher) {
    match R::timeout(Duration::from_millis(500), w.next()).await {
        Err(_) => {}
        Ok(Some(Ok(WatchEvent::Progress { .. }))) => {}
        Ok(other) => panic!("expected nothing, got {other:?}"),
    }
}

async fn put_and_delete_events_prefix_and_range<R: TestRuntime>() {
    let cluster = start::<R>(1).await;
    let c = connect::<R>(&cluster).await;
    let mut key = c.watch("k", WatchOptions::new()).await.unwrap();
    let mut prefix = c
        .watch("p/", WatchOptions::new().with_prefix())
        .await
        .unwrap();
    assert!(key.created_revision() > 0);
    assert_ne!(key.id(), prefix.id());

    let r1 = put_rev::<R>(&c, "k", "v1").await;
    put_rev::<R>(&c, "q", "x").await;
    let r2 = put_rev::<R>(&c, "p/a", "1").await;
    let r3 = c
        .delete("k", DeleteOptions::new())
        .await
        .unwrap()
        .header
        .unwrap()
        .revision;
    let r4 = put_rev::<R>(&c, "p/b", "2").await;

    assert_eq!(
        collect::<R>(&mut key, 2).await,
        vec![
            (EventType::Put, "k".into(), "v1".into(), r1),
            (EventType::Delete, "k".into(), "".into(), r3),
        ]
    );
    assert_eq!(
        collect::<R>(&mut prefix, 2).await,
        vec![
            (EventType::Put, "p/a".into(), "1".into(), r2),
            (EventType::Put, "p/b".into(), "2".into(), r4),
        ]
    );
    assert_quiet::<R>(&mut key).await;
}

async fn history_replay_prev_kv_and_filters<R: TestRuntime>() {
    let cluster = start::<R>(1).await;
    let c = connect::<R>(&cluster).await;
    let r1 = put_rev::<R>(&c, "h", "1").await;
    let r2 = put_rev::<R>(&c, "h", "2").await;
    let r3 = c
        .delete("h", DeleteOptions::new())
        .await
        .unwrap()
        .header
        .unwrap()
        .revision;

    let mut replay = c
        .watch(
            "h",
            WatchOptions::new().with_start_revision(r1).with_prev_kv(),
        )
        .await
        .unwrap();
    let mut events = Vec::new();
    while events.len() < 3 {
        if let WatchEvent::Events { events: evs, .. } = next::<R>(&mut replay).await {
            events.extend(evs);
        }
    }
    let revs: Vec<i64> = events
        .iter()
        .map(|e| e.kv.as_ref().unwrap().mod_revision)
        .collect();
    assert_eq!(revs, vec![r1, r2, r3]);
    assert!(events[0].prev_kv.is_none());
    assert_eq!(events[1].prev_kv.as_ref().unwrap().value, b"1");
    assert_eq!(events[2].r#type(), EventType::Delete);
    assert_eq!(events[2].prev_kv.as_ref().unwrap().value, b"2");

    let mut no_put = c
        .watch(
            "h",
            WatchOptions::new().with_start_revision(r1).with_no_put(),
        )
        .await
        .unwrap();
    assert_eq!(collect::<R>(&mut no_put, 1).await[0].3, r3);
    let mut no_delete = c
        .watch(
            "h",
            WatchOptions::new().with_start_revision(r1).with_no_delete(),
        )
        .await
        .unwrap();
    let got: Vec<i64> = collect::<R>(&mut no_delete, 2)
        .await
        .iter()
        .map(|e| e.3)
        .collect();
    assert_eq!(got, vec![r1, r2]);
    assert_quiet::<R>(&mut no_delete).await;
}

async fn progress_request_and_cancel<R: TestRuntime>() {
    let cluster = start::<R>(1).await;
    let c = connect::<R>(&cluster).await;
    let rev = put_rev::<R>(&c, "other", "x").await;
    let mut w = c.watch("k", WatchOptions::new()).await.unwrap();
    w.request_progress().unwrap();
    match R::timeout(Duration::from_secs(10), w.next()).await {
        Ok(Some(Ok(WatchEvent::Progress { revision }))) => assert!(revision >= rev),
        other => panic!("expected progress, got {other:?}"),
    }

    let w2 = c.watch("k", WatchOptions::new()).await.unwrap();
    R::timeout(Duration::from_secs(10), w2.cancel())
        .await
        .expect("cancel confirmed in time")
        .unwrap();
    // The remaining watcher is unaffected.
    let r = put_rev::<R>(&c, "k", "v").await;
    assert_eq!(collect::<R>(&mut w, 1).await[0].3, r);
}

async fn compacted_start_revision_reports_compacted<R: TestRuntime>() {
    let cluster = start::<R>(1).await;
    let c = connect::<R>(&cluster).await;
    let r1 = put_rev::<R>(&c, "c", "1").await;
    put_rev::<R>(&c, "c", "2").await;
    let r3 = put_rev::<R>(&c, "c", "3").await;
    c.compact(r3, CompactOptions::new()).await.unwrap();
    let mut w = c
        .watch("c", WatchOptions::new().with_start_revision(r1))
        .await
        .unwrap();
    match next::<R>(&mut w).await {
        WatchEvent::Compacted { compact_revision } => assert_eq!(compact_revision, r3),
        other => panic!("expected Compacted, got {other:?}"),
    }
    assert!(w.next().await.is_none(), "the watcher ends after Compacted");
}

async fn closing_the_client_ends_watchers_with_closed<R: TestRuntime>() {
    let cluster = start::<R>(1).await;
    let c = connect::<R>(&cluster).await;
    let mut w = c.watch("k", WatchOptions::new()).await.unwrap();
    c.close();
    match R::timeout(Duration::from_secs(10), w.next()).await {
        Ok(Some(Err(Error::Closed))) => {}
        other => panic!("expected Err(Closed), got {other:?}"),
    }
    assert!(w.next().await.is_none());
}

async fn many_watchers_share_one_stream_and_survive_member_restarts<R: TestRuntime>() {
    let cluster = Arc::new(start::<R>(3).await);
    let watcher_client = connect::<R>(&cluster).await;
    let writer = connect::<R>(&cluster).await;
    let mut watchers = Vec::new();
    for _ in 0..3 {
        watchers.push(
            watcher_client
                .watch("f/", WatchOptions::new().with_prefix())
                .await
                .unwrap(),
        );
    }
    let mut want = Vec::new();
    for round in 0..3 {
        for i in 0..5 {
            want.push(put_rev::<R>(&writer, &format!("f/{round}/{i}"), "v").await);
        }
        // Take down one member at a time; the watch stream must move.
        let c = cluster.clone();
        R::spawn_blocking(move || c.restart(round)).await.unwrap();
    }
    for i in 0..5 {
        want.push(put_rev::<R>(&writer, &format!("f/end/{i}"), "v").await);
    }
    for w in &mut watchers {
        let got: Vec<i64> = collect::<R>(w, want.len())
            .await
            .iter()
            .map(|e| e.3)
            .collect();
        assert_eq!(got, want, "every revision exactly once, in order");
        assert_quiet::<R>(w).await;
    }
}

/// Events written while the watchers are not polled: 20,000 puts of 1 KiB
/// (about 24 MB of events as buffered).
const SLOW_PUTS: usize = 20_000;

/// Until `gauge` stops moving for a second (the stream task took what the
/// server sent), at most 30 s; the largest value seen.
async fn settled<R: TestRuntime>(gauge: impl Fn() -> usize) -> usize {
    let mut most = gauge();
    let mut last = most;
    let mut still = 0;
    for _ in 0..300 {
        R::sleep(Duration::from_millis(100)).await;
        let now = gauge();
        most = most.max(now);
        still = if now == last { still + 1 } else { 0 };
        last = now;
        if still >= 10 {
            break;
        }
    }
    most
}

/// 16 tasks putting `SLOW_PUTS` keys `slow/<i>` of 1 KiB; each returns the
/// revisions it created.
fn slow_writers<R: TestRuntime>(
    c: &etcdv3_client::Client,
) -> Vec<etcdv3_integration::runtime::Task<Vec<i64>>> {
    let value = "v".repeat(1024);
    (0..16)
        .map(|t| {
            let c = c.clone();
            let value = value.clone();
            R::spawn(async move {
                let mut revs = Vec::new();
                for i in (t..SLOW_PUTS).step_by(16) {
                    let r = c
                        .put(format!("slow/{i}"), value.as_str(), PutOptions::new())
                        .await
                        .unwrap_or_else(|e| panic!("put {i}: {e}"));
                    revs.push(r.header.expect("header").revision);
                }
                revs
            })
        })
        .collect()
}

/// A watcher paused for its slow consumer whose history is compacted
/// meanwhile: polled, it hands over the events it was handed before the
/// pause (a prefix, in order), then ends with `Compacted` at the
/// compaction revision: events were lost and it says so.
async fn a_paused_watcher_whose_history_is_compacted_ends_compacted<R: TestRuntime>() {
    let cluster = start::<R>(1).await;
    let c = connect::<R>(&cluster).await;
    let mut w = c
        .watch("slow/", WatchOptions::new().with_prefix())
        .await
        .unwrap();
    let mut want = Vec::new();
    for t in slow_writers::<R>(&c) {
        want.extend(t.await);
    }
    want.sort_unstable();
    settled::<R>(|| w.buffered_bytes()).await;
    let last = *want.last().expect("writes");
    c.compact(last, CompactOptions::new()).await.unwrap();
    let mut got = Vec::new();
    let compacted = loop {
        match R::timeout(Duration::from_secs(30), w.next()).await {
            Ok(Some(Ok(WatchEvent::Events { events, .. }))) => {
                got.extend(
                    events
                        .iter()
                        .map(|e| e.kv.as_ref().map_or(0, |kv| kv.mod_revision)),
                );
            }
            Ok(Some(Ok(WatchEvent::Progress { .. }))) => {}
            Ok(Some(Ok(WatchEvent::Compacted { compact_revision }))) => break compact_revision,
            other => panic!("after {} events: {other:?}", got.len()),
        }
    };
    assert_eq!(compacted, last);
    assert!(
        !got.is_empty() && got.len() < want.len(),
        "{} of {} events before Compacted",
        got.len(),
        want.len()
    );
    assert!(
        want.starts_with(&got),
        "what was handed over is a prefix, in order"
    );
    assert!(w.next().await.is_none(), "the watcher ended");
}

/// A watcher and a watch group nobody polls while 20,000 events are
/// written hold at most `MAX_BUFFERED_BYTES` plus one response (without the
/// bound they held all 24 MB); polled afterwards, each gets every revision
/// exactly once and in order (paused, then resumed from the revision after
/// the last one it was handed).
async fn a_watcher_nobody_polls_holds_bounded_memory_and_loses_nothing<R: TestRuntime>() {
    let cluster = start::<R>(1).await;
    let c = connect::<R>(&cluster).await;
    let mut w = c
        .watch("slow/", WatchOptions::new().with_prefix())
        .await
        .unwrap();
    let mut group = c.watch_group();
    let gid = group
        .add("slow/", WatchOptions::new().with_prefix())
        .unwrap();
    match R::timeout(Duration::from_secs(10), group.next()).await {
        Ok(Some((id, Ok(WatchEvent::Created { .. })))) => assert_eq!(id, gid),
        other => panic!("expected Created, got {other:?}"),
    }
    let writers = slow_writers::<R>(&c);
    let mut want = Vec::new();
    let mut most = (0, 0);
    for t in writers {
        want.extend(t.await);
        most = (
            most.0.max(w.buffered_bytes()),
            most.1.max(group.buffered_bytes()),
        );
    }
    want.sort_unstable();
    let held = (
        settled::<R>(|| w.buffered_bytes()).await.max(most.0),
        settled::<R>(|| group.buffered_bytes()).await.max(most.1),
    );
    eprintln!(
        "held while not polled: watcher {} B, group {} B (limit {MAX_BUFFERED_BYTES} B)",
        held.0, held.1
    );
    // One response: etcd sends a watcher that is not behind one response
    // per write, and one catching up at most 1,000 revisions (~1.2 MB here).
    let bound = MAX_BUFFERED_BYTES + (3 << 19);
    for (what, h) in [("watcher", held.0), ("group", held.1)] {
        assert!(h <= bound, "{what} held {h} bytes, bound {bound}");
        assert!(
            h >= MAX_BUFFERED_BYTES / 2,
            "{what} never got near the limit: {h}"
        );
    }
    // Polled now: everything arrives, once, in order.
    let mut got = Vec::with_capacity(SLOW_PUTS);
    while got.len() < SLOW_PUTS {
        match R::timeout(Duration::from_secs(30), w.next()).await {
            Ok(Some(Ok(WatchEvent::Events { events, .. }))) => {
                got.extend(
                    events
                        .iter()
                        .map(|e| e.kv.as_ref().map_or(0, |kv| kv.mod_revision)),
                );
            }
            Ok(Some(Ok(WatchEvent::Progress { .. }))) => {}
            other => panic!("watcher: after {} events: {other:?}", got.len()),
        }
    }
    assert!(
        got == want,
        "watcher: every revision exactly once, in order"
    );
    let mut got = Vec::with_capacity(SLOW_PUTS);
    while got.len() < SLOW_PUTS {
        match R::timeout(Duration::from_secs(30), group.next()).await {
            Ok(Some((_, Ok(WatchEvent::Events { events, .. })))) => {
                got.extend(
                    events
                        .iter()
                        .map(|e| e.kv.as_ref().map_or(0, |kv| kv.mod_revision)),
                );
            }
            Ok(Some((_, Ok(WatchEvent::Progress { .. })))) => {}
            other => panic!("group: after {} events: {other:?}", got.len()),
        }
    }
    assert!(got == want, "group: every revision exactly once, in order");
    assert!(w.buffered_bytes() < MAX_BUFFERED_BYTES && group.buffered_bytes() < MAX_BUFFERED_BYTES);
    assert_quiet::<R>(&mut w).await;
}

etcdv3_integration::runtime_tests!(
    put_and_delete_events_prefix_and_range,
    history_replay_prev_kv_and_filters,
    progress_request_and_cancel,
    compacted_start_revision_reports_compacted,
    closing_the_client_ends_watchers_with_closed,
    many_watchers_share_one_stream_and_survive_member_restarts,
    a_watcher_nobody_polls_holds_bounded_memory_and_loses_nothing,
    a_paused_watcher_whose_history_is_compacted_ends_compacted,
);
