//! Election recipe (`etcdv3_client::concurrency::Election`, `observe`)
//! against real etcd, with and without member faults.
//!
//! `cargo test -p etcdv3-integration --test recipes_election`

#[path = "recipes_common.rs"]
mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use etcdv3_client::api::{Event, EventType, GetOptions, KeyValue, WatchEvent, WatchOptions};
use etcdv3_client::concurrency::{self, Election, Error, Session, SessionOptions};
use etcdv3_client::Client;
use etcdv3_integration::cluster::{connect, start};
use etcdv3_integration::runtime::TestRuntime;
use futures_util::StreamExt;

async fn next_value<R: TestRuntime>(obs: &mut concurrency::Observe) -> String {
    let kv = R::timeout(Duration::from_secs(5), obs.next())
        .await
        .expect("an observed leader in time")
        .expect("stream open")
        .expect("no error");
    String::from_utf8(kv.value).unwrap()
}

async fn election_campaign_proclaim_resign_observe<R: TestRuntime>() {
    let cluster = start::<R>(1).await;
    let c = connect::<R>(&cluster).await;
    let sa = Session::new(&c, SessionOptions::new().with_ttl(10))
        .await
        .unwrap();
    let sb = Session::new(&c, SessionOptions::new().with_ttl(10))
        .await
        .unwrap();
    let mut a = Election::new(&sa, "el");
    let mut b = Election::new(&sb, "el");

    assert!(matches!(a.leader().await, Err(Error::NoLeader)));
    assert!(matches!(a.proclaim("x").await, Err(Error::NotLeader)));
    let mut obs = concurrency::observe(&c, "el");
    let first = R::spawn(async move {
        let v = next_value::<R>(&mut obs).await;
        (v, obs)
    });
    R::sleep(Duration::from_millis(300)).await;

    a.campaign("a1").await.unwrap();
    assert!(a.is_leader());
    assert_eq!(a.key(), format!("el/{:x}", sa.lease_id()).as_bytes());
    let (v, mut obs) = R::timeout(Duration::from_secs(5), first).await.unwrap();
    assert_eq!(v, "a1");
    assert_eq!(concurrency::leader_of(&c, "el").await.unwrap().value, b"a1");

    // b waits behind a.
    let waiting = R::spawn(async move { b.campaign("b1").await.map(|()| b) });
    R::sleep(Duration::from_millis(400)).await;
    assert!(!waiting.is_finished(), "b must wait while a leads");
    // b's candidacy put is not a leader change.
    a.proclaim("a2").await.unwrap();
    assert_eq!(next_value::<R>(&mut obs).await, "a2");
    assert_eq!(a.leader().await.unwrap().value, b"a2");

    // Guarded by leadership.
    let cmp = a.is_leader_compare().unwrap();
    a.resign().await.unwrap();
    assert!(!a.is_leader());
    let mut b = R::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("b elected after a resigned")
        .unwrap();
    assert_eq!(next_value::<R>(&mut obs).await, "b1");
    let txn = etcdv3_client::api::Txn::new().when([cmp]);
    assert!(!c.txn(txn).await.unwrap().succeeded);

    // Campaign again while leading: a proclamation.
    b.campaign("b2").await.unwrap();
    assert_eq!(next_value::<R>(&mut obs).await, "b2");

    // Dropping the leader's Election resigns; a takes over.
    let waiting = R::spawn(async move { a.campaign("a3").await.map(|()| a) });
    R::sleep(Duration::from_millis(300)).await;
    drop(b);
    let mut a = R::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("a elected after b's Election dropped")
        .unwrap();
    assert_eq!(next_value::<R>(&mut obs).await, "a3");

    // A lost session loses the leadership.
    sa.close().await.unwrap();
    assert!(matches!(a.proclaim("late").await, Err(Error::NotLeader)));
    assert!(!a.is_leader());
    let next = R::timeout(Duration::from_millis(500), obs.next()).await;
    assert!(next.is_err(), "no leader, nothing to report: {next:?}");
    assert!(matches!(
        concurrency::leader_of(&c, "el").await,
        Err(Error::NoLeader)
    ));
    // A new candidate after an empty spell is reported.
    let sc = Session::new(&c, SessionOptions::new().with_ttl(10))
        .await
        .unwrap();
    let mut e = Election::new(&sc, "el");
    e.campaign("c1").await.unwrap();
    assert_eq!(next_value::<R>(&mut obs).await, "c1");
    assert!(matches!(
        a.campaign("again").await,
        Err(Error::SessionExpired { .. })
    ));

    // Closing the client ends the observer: one error, then the end.
    c.close();
    let end = R::timeout(Duration::from_secs(5), obs.next())
        .await
        .unwrap();
    assert!(
        matches!(&end, Some(Err(Error::Client(e))) if e.is_closed()),
        "{end:?}"
    );
    assert!(R::timeout(Duration::from_secs(5), obs.next())
        .await
        .unwrap()
        .is_none());
}

async fn observe_reports_leaders_that_came_and_went<R: TestRuntime>() {
    let cluster = start::<R>(1).await;
    let c = connect::<R>(&cluster).await;
    let mut sessions = Vec::new();
    for _ in 0..3 {
        sessions.push(
            Session::new(&c, SessionOptions::new().with_ttl(10))
                .await
                .unwrap(),
        );
    }
    let mut a = Election::new(&sessions[0], "brief");
    a.campaign("a").await.unwrap();
    let mut obs = a.observe();
    assert_eq!(next_value::<R>(&mut obs).await, "a");
    // b and c queue up behind a.
    let mut b = Election::new(&sessions[1], "brief");
    let mut cc = Election::new(&sessions[2], "brief");
    let wb = R::spawn(async move { b.campaign("b").await.map(|()| b) });
    R::sleep(Duration::from_millis(200)).await;
    let wc = R::spawn(async move { cc.campaign("c").await.map(|()| cc) });
    R::sleep(Duration::from_millis(200)).await;
    // While the observer is not polled, b leads briefly and goes.
    a.resign().await.unwrap();
    let mut b = R::timeout(Duration::from_secs(5), wb)
        .await
        .unwrap()
        .unwrap();
    b.proclaim("b2").await.unwrap();
    b.resign().await.unwrap();
    let mut cc = R::timeout(Duration::from_secs(5), wc)
        .await
        .unwrap()
        .unwrap();
    cc.proclaim("c2").await.unwrap();
    // Every leader and value, in order, none twice.
    for want in ["b", "b2", "c", "c2"] {
        assert_eq!(next_value::<R>(&mut obs).await, want);
    }
    let next = R::timeout(Duration::from_millis(300), obs.next()).await;
    assert!(next.is_err(), "nothing more to report: {next:?}");
    cc.resign().await.unwrap();
}

/// The leader values an observer must report for an election history:
/// after each revision, the key with the lowest create revision leads, and
/// each new leader or new value of the leader is one report.
fn expected_reports(events: &[Event]) -> Vec<(Vec<u8>, i64)> {
    let mut live: BTreeMap<Vec<u8>, KeyValue> = BTreeMap::new();
    let mut out: Vec<(Vec<u8>, i64)> = Vec::new();
    let mut i = 0;
    while i < events.len() {
        let rev = events[i].kv.as_ref().unwrap().mod_revision;
        while i < events.len() && events[i].kv.as_ref().unwrap().mod_revision == rev {
            let kv = events[i].kv.clone().unwrap();
            if events[i].r#type() == EventType::Delete {
                live.remove(&kv.key);
            } else {
                live.insert(kv.key.clone(), kv);
            }
            i += 1;
        }
        if let Some(leader) = live.values().min_by_key(|kv| kv.create_revision) {
            let id = (leader.key.clone(), leader.mod_revision);
            if out.last() != Some(&id) {
                out.push(id);
            }
        }
    }
    out
}

#[test]
fn expected_reports_follow_leader_changes() {
    let ev = |t: EventType, key: &str, create: i64, m: i64| Event {
        r#type: t as i32,
        kv: Some(KeyValue {
            key: key.into(),
            create_revision: if t == EventType::Delete { 0 } else { create },
            mod_revision: m,
            ..Default::default()
        }),
        prev_kv: None,
    };
    let put = EventType::Put;
    let del = EventType::Delete;
    let history = [
        ev(put, "a", 2, 2),
        ev(put, "b", 3, 3), // waits: no report
        ev(put, "a", 2, 4), // proclamation
        ev(del, "a", 0, 5), // b leads
        ev(put, "c", 6, 6),
        ev(del, "c", 0, 7), // a waiter leaves: no report
        ev(del, "b", 0, 8),
    ];
    let got = expected_reports(&history);
    let want: Vec<(Vec<u8>, i64)> =
        vec![(b"a".to_vec(), 2), (b"a".to_vec(), 4), (b"b".to_vec(), 3)];
    assert_eq!(got, want);
}

async fn candidate<R: TestRuntime>(c: Client, id: usize, stop: Arc<AtomicBool>) -> usize {
    let mut terms = 0;
    let mut session: Option<Session> = None;
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        let s = match &session {
            Some(s) if s.ended().is_none() => s.clone(),
            _ => match Session::new(&c, SessionOptions::new().with_ttl(5)).await {
                Ok(s) => {
                    session = Some(s.clone());
                    s
                }
                Err(_) => {
                    R::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let mut e = Election::new(&s, "elected");
        n += 1;
        match R::timeout(Duration::from_secs(8), e.campaign(format!("{id}-{n}"))).await {
            Ok(Ok(())) => {}
            _ => continue,
        }
        terms += 1;
        // Candidate 2 leads only for an instant: an observer that reads
        // "the latest leader" after a change would skip it.
        let proclamations = if id == 2 { 0 } else { 2 };
        for p in 0..proclamations {
            R::sleep(Duration::from_millis(60)).await;
            let _ = e.proclaim(format!("{id}-{n}-p{p}")).await;
        }
        let _ = e.resign().await;
    }
    if let Some(s) = session {
        let _ = s.close().await;
    }
    terms
}

async fn observe_survives_member_faults<R: TestRuntime>() {
    etcdv3_integration::cluster::judged_run::<R, _, _>(observe_faults_run::<R>).await
}

/// One run of the observer under faults; `Err` when etcd diverged.
async fn observe_faults_run<R: TestRuntime>() -> Result<(), String> {
    let cluster = common::start3::<R>().await;
    let watcher_client = connect::<R>(&cluster).await;
    let start_rev = watcher_client
        .get("elected/", GetOptions::new().with_prefix())
        .await
        .unwrap()
        .header
        .unwrap()
        .revision;
    // The observer, on its own client, records everything it reports.
    let observer_client = connect::<R>(&cluster).await;
    let seen: Arc<StdMutex<Vec<KeyValue>>> = Arc::default();
    let obs_stop = Arc::new(AtomicBool::new(false));
    let observer = {
        let seen = seen.clone();
        let obs_stop = obs_stop.clone();
        let mut obs = concurrency::observe(&observer_client, "elected");
        R::spawn(async move {
            while !obs_stop.load(Ordering::SeqCst) {
                match R::timeout(Duration::from_millis(200), obs.next()).await {
                    Ok(Some(Ok(kv))) => seen.lock().unwrap().push(kv),
                    Ok(other) => panic!("observe ended: {other:?}"),
                    Err(_) => {}
                }
            }
        })
    };
    R::sleep(Duration::from_millis(500)).await;

    let stop = Arc::new(AtomicBool::new(false));
    let mut candidates = Vec::new();
    for id in 0..3 {
        let c = connect::<R>(&cluster).await;
        candidates.push(R::spawn(candidate::<R>(c, id, stop.clone())));
    }
    R::sleep(Duration::from_millis(1500)).await;
    let faults = common::inject::<R>(
        cluster.clone(),
        observer_client.clone(),
        &common::ALL,
        Duration::from_millis(1500),
        Duration::from_millis(800),
    )
    .await;
    R::sleep(Duration::from_millis(2000)).await;
    stop.store(true, Ordering::SeqCst);
    let mut terms = 0;
    for t in candidates {
        terms += R::timeout(Duration::from_secs(20), t)
            .await
            .expect("candidates stop");
    }
    let states = etcdv3_integration::cluster::members_agree::<R>(&cluster, &watcher_client).await?;
    // Let the observer catch up with the end of the history.
    let end_rev = watcher_client
        .get("elected/", GetOptions::new().with_prefix())
        .await
        .unwrap()
        .header
        .unwrap()
        .revision;
    let t0 = std::time::Instant::now();
    while t0.elapsed() < Duration::from_secs(10) {
        let caught_up = seen
            .lock()
            .unwrap()
            .last()
            .is_some_and(|kv| kv.mod_revision >= end_rev);
        if caught_up {
            break;
        }
        R::sleep(Duration::from_millis(100)).await;
    }
    R::sleep(Duration::from_millis(500)).await;
    obs_stop.store(true, Ordering::SeqCst);
    R::timeout(Duration::from_secs(5), observer)
        .await
        .expect("observer stops");

    // The whole history of the election, replayed.
    let mut history = watcher_client
        .watch(
            "elected/",
            WatchOptions::new()
                .with_prefix()
                .with_start_revision(start_rev + 1),
        )
        .await
        .unwrap();
    let mut events = Vec::new();
    while events
        .last()
        .is_none_or(|e: &Event| e.kv.as_ref().unwrap().mod_revision < end_rev)
    {
        match R::timeout(Duration::from_secs(5), history.next()).await {
            Ok(Some(Ok(WatchEvent::Events { events: evs, .. }))) => events.extend(evs),
            Ok(Some(Ok(_))) => {}
            other => panic!("history replay: {other:?}"),
        }
    }
    let want = expected_reports(&events);
    let got: Vec<(Vec<u8>, i64)> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|kv| (kv.key.clone(), kv.mod_revision))
        .collect();
    eprintln!(
        "{}: {terms} terms, {} reports expected, {} observed; faults: {faults:?}; members {states:x?}",
        R::NAME,
        want.len(),
        got.len()
    );
    assert!(terms >= 5, "too few terms: {terms}");
    if got != want {
        let first_diff = got.iter().zip(&want).position(|(g, w)| g != w);
        panic!(
            "observed reports differ from the history (first difference at {first_diff:?}):\n got {got:?}\nwant {want:?}"
        );
    }
    Ok(())
}

etcdv3_integration::runtime_tests!(
    election_campaign_proclaim_resign_observe,
    observe_reports_leaders_that_came_and_went
);
etcdv3_integration::runtime_tests!(exclusive: observe_survives_member_faults);
