//! Grouped watch (`Client::watch_group`) against real etcd (etcd from
//! `ETCD_BIN` or `PATH`): many watchers on one stream of
//! `(WatcherId, Result<WatchEvent>)`, pipelined creation, cancel, failover
//! of the stream's member, and cancellation on the server when the group is
//! dropped.
//!
//! `cargo test -p etcdv3-integration --test watch_group`

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcdv3_client::api::{WatchEvent, WatchGroup, WatchOptions, WatcherId};
use etcdv3_client::{Client, Error};
use etcdv3_integration::cluster::{connect, put_rev, start};
use etcdv3_integration::runtime::TestRuntime;
use etcdv3_testkit::{metric_sum, Cluster};
use futures_util::StreamExt;

/// The group's next item that is not a progress notification.
async fn next_item<R: TestRuntime>(g: &mut WatchGroup) -> (WatcherId, WatchEvent) {
    loop {
        match R::timeout(Duration::from_secs(15), g.next()).await {
            Ok(Some((_, Ok(WatchEvent::Progress { .. })))) => continue,
            Ok(Some((id, Ok(e)))) => return (id, e),
            Ok(Some((id, Err(e)))) => panic!("watcher {id}: error {e}"),
            Ok(None) => panic!("group stream ended"),
            Err(_) => panic!("no group item within 15 s"),
        }
    }
}

/// Wait until every id in `ids` reported `Created`; nothing else may come
/// first.
async fn await_created<R: TestRuntime>(g: &mut WatchGroup, ids: &[WatcherId]) {
    let mut waiting: HashSet<WatcherId> = ids.iter().copied().collect();
    while !waiting.is_empty() {
        match next_item::<R>(g).await {
            (id, WatchEvent::Created { revision }) => {
                assert!(revision > 0);
                assert!(waiting.remove(&id), "Created twice or for a stranger: {id}");
            }
            (id, other) => panic!("watcher {id}: {other:?} before every Created"),
        }
    }
}

/// Collect events until each watcher in `want` received as many revisions
/// as `want` lists for it; returns what each received (mod revisions, in
/// delivery order).
async fn collect<R: TestRuntime>(
    g: &mut WatchGroup,
    want: &HashMap<WatcherId, Vec<i64>>,
) -> HashMap<WatcherId, Vec<i64>> {
    let total: usize = want.values().map(Vec::len).sum();
    let mut got: HashMap<WatcherId, Vec<i64>> = HashMap::new();
    let mut n = 0;
    while n < total {
        match next_item::<R>(g).await {
            (id, WatchEvent::Events { events, .. }) => {
                assert!(want.contains_key(&id), "events for unexpected watcher {id}");
                for e in events {
                    got.entry(id)
                        .or_default()
                        .push(e.kv.as_ref().unwrap().mod_revision);
                    n += 1;
                }
            }
            (id, other) => panic!("watcher {id}: unexpected {other:?}"),
        }
    }
    got
}

/// Nothing but progress notifications for half a second.
async fn assert_quiet<R: TestRuntime>(g: &mut WatchGroup) {
    let until = Instant::now() + Duration::from_millis(500);
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        match R::timeout(left, g.next()).await {
            Err(_) => return,
            Ok(Some((_, Ok(WatchEvent::Progress { .. })))) => {}
            Ok(other) => panic!("expected nothing, got {other:?}"),
        }
    }
}

/// etcd's count of live watchers on each member.
fn watchers_on(cluster: &Cluster) -> Vec<f64> {
    gauge_on(cluster, "etcd_debugging_mvcc_watcher_total")
}

/// etcd's count of open gRPC watch streams on each member.
fn streams_on(cluster: &Cluster) -> Vec<f64> {
    gauge_on(cluster, "etcd_debugging_mvcc_watch_stream_total")
}

fn gauge_on(cluster: &Cluster, name: &str) -> Vec<f64> {
    (0..cluster.size())
        .map(|i| {
            let text = cluster
                .metrics(i)
                .unwrap_or_else(|e| panic!("metrics of m{i}: {e}"));
            metric_sum(&text, name, &[])
        })
        .collect()
}

async fn wait_until<R: TestRuntime>(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        R::sleep(Duration::from_millis(50)).await;
    }
}

const KEYS: usize = 10;

/// Wait (up to 20 s) until a linearizable read succeeds: the cluster has
/// a leader the writer reaches.
async fn await_leader<R: TestRuntime>(writer: &Client) {
    let start = Instant::now();
    while writer
        .get(key(0), etcdv3_client::api::GetOptions::new())
        .await
        .is_err()
    {
        assert!(start.elapsed() < Duration::from_secs(20), "no leader");
        R::sleep(Duration::from_millis(100)).await;
    }
}

/// Put every key once (value `<round>/<key>`, unique); each key's revision
/// is appended to its list. A put whose outcome is unknown (the leader
/// changed while it was in flight: etcd 3.4 without pre-vote re-elects when
/// a killed member rejoins) is read back and repeated only if it did not
/// apply (`put_rev`), so the list is what the store holds.
async fn write_round<R: TestRuntime>(writer: &Client, round: &str, revs: &mut [Vec<i64>]) {
    for (k, r) in revs.iter_mut().enumerate() {
        r.push(put_rev::<R>(writer, &key(k), &format!("{round}/{k}")).await);
    }
}

fn key(k: usize) -> String {
    format!("g/{k}")
}

async fn many_watchers_get_exactly_their_events_in_order<R: TestRuntime>() {
    let cluster = start::<R>(1).await;
    let c = connect::<R>(&cluster).await;
    let mut g = c.watch_group();
    // Invalid input fails at once, with the typed error, and adds nothing.
    assert!(matches!(
        g.add("", WatchOptions::new()),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        g.add("g/x", WatchOptions::new().with_start_revision(-1)),
        Err(Error::InvalidArgument(_))
    ));
    // 200 watchers (watcher w on key w % KEYS) and one prefix watcher, all
    // added without waiting for the server.
    let mut key_of: BTreeMap<WatcherId, Option<usize>> = BTreeMap::new();
    for w in 0..200 {
        let id = g.add(key(w % KEYS), WatchOptions::new()).unwrap();
        assert!(
            key_of.insert(id, Some(w % KEYS)).is_none(),
            "ids are unique"
        );
    }
    let prefix = g.add("g/", WatchOptions::new().with_prefix()).unwrap();
    key_of.insert(prefix, None);
    assert_eq!(g.live(), 201);
    let ids: Vec<WatcherId> = key_of.keys().copied().collect();
    await_created::<R>(&mut g, &ids).await;

    let mut revs_of_key: Vec<Vec<i64>> = vec![Vec::new(); KEYS];
    let mut all = Vec::new();
    for round in 0..3 {
        for (k, revs) in revs_of_key.iter_mut().enumerate() {
            let r = put_rev::<R>(&c, &key(k), &format!("v{round}")).await;
            revs.push(r);
            all.push(r);
        }
    }
    put_rev::<R>(&c, "other", "x").await;
    let want: HashMap<WatcherId, Vec<i64>> = key_of
        .iter()
        .map(|(id, k)| {
            (
                *id,
                k.map_or_else(|| all.clone(), |k| revs_of_key[k].clone()),
            )
        })
        .collect();
    let got = collect::<R>(&mut g, &want).await;
    for (id, w) in &want {
        assert_eq!(got.get(id), Some(w), "watcher {id}: its events, in order");
    }
    assert_quiet::<R>(&mut g).await;
    assert_eq!(g.live(), 201);
}

async fn a_cancelled_watcher_stops<R: TestRuntime>() {
    let cluster = start::<R>(1).await;
    let c = connect::<R>(&cluster).await;
    let mut g = c.watch_group();
    let a = g.add("c/k", WatchOptions::new()).unwrap();
    let b = g.add("c/k", WatchOptions::new()).unwrap();
    await_created::<R>(&mut g, &[a, b]).await;
    let r1 = put_rev::<R>(&c, "c/k", "1").await;
    let got = collect::<R>(&mut g, &HashMap::from([(a, vec![r1]), (b, vec![r1])])).await;
    assert_eq!(got[&a], vec![r1]);

    g.cancel(a).unwrap();
    // The cancel's confirmation is the next item (a's last).
    match next_item::<R>(&mut g).await {
        (id, WatchEvent::Cancelled { reason }) if id == a => assert_eq!(reason, ""),
        (id, other) => panic!("watcher {id}: unexpected {other:?} before a's cancel"),
    }
    assert_eq!(g.live(), 1);
    // Cancelling again, or an id that is not the group's, changes nothing.
    g.cancel(a).unwrap();
    let stranger = c.watch("c/k", WatchOptions::new()).await.unwrap();
    g.cancel(stranger.id()).unwrap();
    let r2 = put_rev::<R>(&c, "c/k", "2").await;
    let got = collect::<R>(&mut g, &HashMap::from([(b, vec![r2])])).await;
    assert_eq!(got[&b], vec![r2], "b goes on, a gets nothing");
    assert_quiet::<R>(&mut g).await;
    drop(stranger);
}

async fn creation_outcomes_arrive_on_the_stream<R: TestRuntime>() {
    let cluster = start::<R>(1).await;
    let c = connect::<R>(&cluster).await;
    let r1 = put_rev::<R>(&c, "o/k", "1").await;
    put_rev::<R>(&c, "o/k", "2").await;
    let r3 = put_rev::<R>(&c, "o/k", "3").await;
    c.compact(r3, etcdv3_client::api::CompactOptions::new())
        .await
        .unwrap();
    let mut g = c.watch_group();
    // Cancelled before the server answered: its only item is Cancelled.
    let early = g.add("o/k", WatchOptions::new()).unwrap();
    g.cancel(early).unwrap();
    // A start revision below the compaction: it ends with Compacted (etcd
    // 3.5 reports the creation first, then the compaction).
    let compacted = g
        .add("o/k", WatchOptions::new().with_start_revision(r1))
        .unwrap();
    // A replay from the compaction on: Created, then the one event left.
    let replay = g
        .add("o/k", WatchOptions::new().with_start_revision(r3))
        .unwrap();
    let mut items: HashMap<WatcherId, Vec<WatchEvent>> = HashMap::new();
    let ended = |items: &HashMap<WatcherId, Vec<WatchEvent>>, id| {
        items
            .get(&id)
            .and_then(|v: &Vec<WatchEvent>| v.last())
            .is_some_and(WatchEvent::is_terminal)
    };
    while !(ended(&items, early)
        && ended(&items, compacted)
        && items.get(&replay).map_or(0, Vec::len) >= 2)
    {
        let (id, e) = next_item::<R>(&mut g).await;
        items.entry(id).or_default().push(e);
    }
    assert_eq!(
        items[&early],
        vec![WatchEvent::Cancelled {
            reason: String::new()
        }]
    );
    let (last, first) = items[&compacted].split_last().unwrap();
    assert_eq!(
        last,
        &WatchEvent::Compacted {
            compact_revision: r3
        }
    );
    assert!(
        matches!(first, [] | [WatchEvent::Created { .. }]),
        "{first:?}"
    );
    let replayed = &items[&replay];
    assert!(
        matches!(replayed[0], WatchEvent::Created { .. }),
        "{replayed:?}"
    );
    match &replayed[1] {
        WatchEvent::Events { events, .. } => {
            assert_eq!(events.len(), 1);
            assert_eq!(events[0].kv.as_ref().unwrap().mod_revision, r3);
        }
        other => panic!("expected the replayed event, got {other:?}"),
    }
    assert_eq!(g.live(), 1, "only the replay is still live");
    assert_quiet::<R>(&mut g).await;
}

async fn killing_the_streams_member_loses_and_repeats_nothing<R: TestRuntime>() {
    kill_the_streams_member::<R>(false).await;
}

/// The same with the group on a gRPC stream of its own.
async fn an_own_stream_group_loses_and_repeats_nothing_when_its_member_dies<R: TestRuntime>() {
    kill_the_streams_member::<R>(true).await;
}

async fn kill_the_streams_member<R: TestRuntime>(own_stream: bool) {
    let cluster = Arc::new(start::<R>(3).await);
    let watching = connect::<R>(&cluster).await;
    let writer = connect::<R>(&cluster).await;
    let base = watchers_on(&cluster);
    let mut g = if own_stream {
        watching.watch_group_on_own_stream()
    } else {
        watching.watch_group()
    };
    let mut ids = Vec::new();
    for w in 0..30 {
        ids.push(g.add(key(w % KEYS), WatchOptions::new()).unwrap());
    }
    await_created::<R>(&mut g, &ids).await;
    // The member that holds the 30 watchers is the stream's member.
    let now = watchers_on(&cluster);
    let member = (0..cluster.size())
        .find(|&i| now[i] - base[i] >= 30.0)
        .unwrap_or_else(|| panic!("no member holds the 30 watchers: {base:?} -> {now:?}"));

    let mut revs_of_key: Vec<Vec<i64>> = vec![Vec::new(); KEYS];
    write_round::<R>(&writer, "before", &mut revs_of_key).await;
    let c = cluster.clone();
    R::spawn_blocking(move || c.kill(member)).await.unwrap();
    // The killed member may have been the leader: a put in flight across
    // the election may end "outcome unknown", which would make the expected
    // revisions unknowable. Write once a linearizable read works again.
    await_leader::<R>(&writer).await;
    write_round::<R>(&writer, "member down", &mut revs_of_key).await;
    let c = cluster.clone();
    R::spawn_blocking(move || c.restart(member)).await.unwrap();
    await_leader::<R>(&writer).await;
    write_round::<R>(&writer, "member back", &mut revs_of_key).await;

    let want: HashMap<WatcherId, Vec<i64>> = ids
        .iter()
        .enumerate()
        .map(|(w, id)| (*id, revs_of_key[w % KEYS].clone()))
        .collect();
    let got = collect::<R>(&mut g, &want).await;
    for (id, w) in &want {
        assert_eq!(
            got.get(id),
            Some(w),
            "watcher {id}: every revision exactly once, in order"
        );
    }
    assert_quiet::<R>(&mut g).await;
    let after = watchers_on(&cluster);
    assert!(
        (0..cluster.size()).any(|i| i != member && after[i] - base[i] >= 30.0),
        "the watchers moved to another member: {base:?} -> {after:?}"
    );
}

async fn dropping_the_group_cancels_on_the_server_and_close_ends_it<R: TestRuntime>() {
    let cluster = start::<R>(1).await;
    let c = connect::<R>(&cluster).await;
    let base = watchers_on(&cluster)[0];
    let mut g = c.watch_group();
    let ids: Vec<WatcherId> = (0..50)
        .map(|i| g.add(format!("d/{i}"), WatchOptions::new()).unwrap())
        .collect();
    await_created::<R>(&mut g, &ids).await;
    assert_eq!(watchers_on(&cluster)[0], base + 50.0);
    drop(g);
    wait_until::<R>(
        "the dropped group's watchers cancelled",
        Duration::from_secs(10),
        || watchers_on(&cluster)[0] == base,
    )
    .await;

    // Closing the client: each live watcher yields Err(Closed), then the
    // stream ends.
    let mut g = c.watch_group();
    let ids: Vec<WatcherId> = (0..3)
        .map(|i| g.add(format!("d/{i}"), WatchOptions::new()).unwrap())
        .collect();
    await_created::<R>(&mut g, &ids).await;
    c.close();
    let mut closed = HashSet::new();
    loop {
        match R::timeout(Duration::from_secs(10), g.next()).await {
            Ok(Some((id, Err(Error::Closed)))) => assert!(closed.insert(id)),
            Ok(None) => break,
            other => panic!("expected Err(Closed) per watcher then the end, got {other:?}"),
        }
    }
    assert_eq!(closed, ids.into_iter().collect::<HashSet<_>>());
    assert!(matches!(
        g.add("d/x", WatchOptions::new()),
        Err(Error::Closed)
    ));
}

/// A group with nothing live (no watcher added, or its watchers ended)
/// waiting in `next()` ends when the client closes: the close wakes it
/// (before issue 18 it slept until something else polled it).
async fn an_idle_group_is_woken_by_close<R: TestRuntime>() {
    let cluster = start::<R>(1).await;
    let c = connect::<R>(&cluster).await;
    let empty = c.watch_group();
    let mut ended = c.watch_group();
    let id = ended.add("i/0", WatchOptions::new()).unwrap();
    await_created::<R>(&mut ended, &[id]).await;
    ended.cancel(id).unwrap();
    match next_item::<R>(&mut ended).await {
        (who, WatchEvent::Cancelled { .. }) if who == id => {}
        other => panic!("expected the cancel, got {other:?}"),
    }
    assert_eq!((empty.live(), ended.live()), (0, 0));
    // Each group waits in its own task, without a timer of its own: only
    // its waker (the stream task's, or the close's) can poll it again.
    let waiting = |mut g: WatchGroup| R::spawn(async move { g.next().await.is_none() });
    let (a, b) = (waiting(empty), waiting(ended));
    R::sleep(Duration::from_millis(300)).await;
    assert!(
        !a.is_finished() && !b.is_finished(),
        "nothing ends a group before the close"
    );
    c.close();
    let waited = Duration::from_secs(5);
    assert_eq!(
        R::timeout(waited, a).await.ok(),
        Some(true),
        "the empty group ends at the close"
    );
    assert_eq!(
        R::timeout(waited, b).await.ok(),
        Some(true),
        "the group whose watchers ended ends at the close"
    );
}

/// Groups made by `watch_group_on_own_stream` each open a gRPC watch
/// stream of their own (counted by the member), get exactly their own
/// events and their own progress answers, and their stream ends with
/// their last watcher; `watch_group` and `Watcher`s share one stream.
async fn own_stream_groups_have_a_stream_each<R: TestRuntime>() {
    let cluster = start::<R>(1).await;
    let c = connect::<R>(&cluster).await;
    let writer = connect::<R>(&cluster).await;
    let base = streams_on(&cluster)[0];
    let mut shared = c.watch_group();
    let mut a = c.watch_group_on_own_stream();
    let mut b = c.watch_group_on_own_stream();
    let mut watcher = c.watch(key(0), WatchOptions::new()).await.unwrap();
    let mut ids = Vec::new();
    for g in [&mut shared, &mut a, &mut b] {
        let mine: Vec<WatcherId> = (0..KEYS)
            .map(|k| g.add(key(k), WatchOptions::new()).unwrap())
            .collect();
        await_created::<R>(g, &mine).await;
        ids.push(mine);
    }
    assert_eq!(
        streams_on(&cluster)[0],
        base + 3.0,
        "one stream shared by the Watcher and `watch_group`, one per own-stream group"
    );

    let mut revs: Vec<Vec<i64>> = vec![Vec::new(); KEYS];
    write_round::<R>(&writer, "one", &mut revs).await;
    for (g, mine) in [&mut shared, &mut a, &mut b].into_iter().zip(&ids) {
        let want: HashMap<WatcherId, Vec<i64>> = mine
            .iter()
            .enumerate()
            .map(|(k, id)| (*id, revs[k].clone()))
            .collect();
        assert_eq!(collect::<R>(g, &want).await, want);
    }
    match R::timeout(Duration::from_secs(15), watcher.next()).await {
        Ok(Some(Ok(WatchEvent::Events { events, .. }))) => {
            assert_eq!(events[0].kv.as_ref().unwrap().mod_revision, revs[0][0])
        }
        other => panic!("the Watcher's event, got {other:?}"),
    }

    // A progress request goes to the group's own stream only.
    a.request_progress().unwrap();
    let mut progressed = HashSet::new();
    while progressed.len() < KEYS {
        match R::timeout(Duration::from_secs(15), a.next()).await {
            Ok(Some((id, Ok(WatchEvent::Progress { .. })))) => {
                progressed.insert(id);
            }
            other => panic!("expected progress on the asking group, got {other:?}"),
        }
    }
    for g in [&mut shared, &mut b] {
        match R::timeout(Duration::from_millis(500), g.next()).await {
            Err(_) => {}
            Ok(other) => panic!("another stream's progress reached this group: {other:?}"),
        }
    }

    drop(a);
    wait_until::<R>(
        "the dropped group's stream ended",
        Duration::from_secs(10),
        || streams_on(&cluster)[0] == base + 2.0,
    )
    .await;
    // The other group's stream still works.
    write_round::<R>(&writer, "two", &mut revs).await;
    let want: HashMap<WatcherId, Vec<i64>> = ids[2]
        .iter()
        .enumerate()
        .map(|(k, id)| (*id, vec![revs[k][1]]))
        .collect();
    assert_eq!(collect::<R>(&mut b, &want).await, want);
}

etcdv3_integration::runtime_tests!(
    own_stream_groups_have_a_stream_each,
    an_own_stream_group_loses_and_repeats_nothing_when_its_member_dies,
    an_idle_group_is_woken_by_close,
    many_watchers_get_exactly_their_events_in_order,
    a_cancelled_watcher_stops,
    creation_outcomes_arrive_on_the_stream,
    killing_the_streams_member_loses_and_repeats_nothing,
    dropping_the_group_cancels_on_the_server_and_close_ends_it,
);
