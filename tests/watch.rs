//! Watch against real etcd (etcd from `ETCD_BIN` or `PATH`).
//!
//! `cargo test -p etcdv3-integration --test watch`

use std::sync::Arc;
use std::time::Duration;

use etcdv3_client::api::{
    CompactOptions, DeleteOptions, EventType, WatchEvent, WatchOptions, Watcher,
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

etcdv3_integration::runtime_tests!(
    put_and_delete_events_prefix_and_range,
    history_replay_prev_kv_and_filters,
    progress_request_and_cancel,
    compacted_start_revision_reports_compacted,
    closing_the_client_ends_watchers_with_closed,
    many_watchers_share_one_stream_and_survive_member_restarts,
);
