//! Session and Mutex recipes (`etcdv3_client::concurrency`) against real
//! etcd, with and without member faults.
//!
//! `cargo test -p etcdv3-integration --test recipes_mutex`

#[path = "recipes_common.rs"]
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use etcdv3_client::api::{GetOptions, PutOptions, Txn, TxnOp};
use etcdv3_client::concurrency::{Error, Mutex, Session, SessionEnd, SessionOptions};
use etcdv3_client::Client;
use etcdv3_integration::cluster::{connect, start};
use etcdv3_integration::runtime::TestRuntime;

async fn session_lifecycle<R: TestRuntime>() {
    let cluster = start::<R>(1).await;
    let c = connect::<R>(&cluster).await;
    let other = connect::<R>(&cluster).await;

    assert!(matches!(
        Session::new(&c, SessionOptions::new().with_ttl(0)).await,
        Err(Error::Client(etcdv3_client::Error::InvalidArgument(_)))
    ));

    // Kept alive past its TTL.
    let s = Session::new(&c, SessionOptions::new().with_ttl(2))
        .await
        .unwrap();
    assert_eq!(s.ttl(), 2);
    R::sleep(Duration::from_millis(3000)).await;
    assert_eq!(s.ended(), None);
    let ttl = other.lease_time_to_live(s.lease_id(), false).await.unwrap();
    assert!(ttl.ttl > 0, "{ttl:?}");

    // Revoked elsewhere: done() says so.
    let done = s.done();
    other.lease_revoke(s.lease_id()).await.unwrap();
    let end = R::timeout(Duration::from_secs(5), done)
        .await
        .expect("done() resolves when the lease is revoked");
    assert_eq!(end, SessionEnd::Expired);
    assert_eq!(s.ended(), Some(SessionEnd::Expired));

    // close() revokes at once.
    let s = Session::new(&c, SessionOptions::new()).await.unwrap();
    assert_eq!(s.ttl(), SessionOptions::DEFAULT_TTL);
    s.close().await.unwrap();
    assert_eq!(s.done().await, SessionEnd::Closed);
    let ttl = other.lease_time_to_live(s.lease_id(), false).await.unwrap();
    assert_eq!(ttl.ttl, -1, "closed session's lease must be gone");

    // Dropping the last clone revokes in the background.
    let s = Session::new(&c, SessionOptions::new()).await.unwrap();
    let id = s.lease_id();
    let clone = s.clone();
    drop(s);
    R::sleep(Duration::from_millis(300)).await;
    assert!(other.lease_time_to_live(id, false).await.unwrap().ttl > 0);
    drop(clone);
    let t0 = Instant::now();
    while other.lease_time_to_live(id, false).await.unwrap().ttl != -1 {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "dropped session not revoked"
        );
        R::sleep(Duration::from_millis(50)).await;
    }

    // An existing lease: adopted and kept alive; a missing one refused.
    let lease = c
        .lease_grant(2, etcdv3_client::api::LeaseGrantOptions::new())
        .await
        .unwrap();
    let s = Session::new(&c, SessionOptions::new().with_lease(lease.id))
        .await
        .unwrap();
    assert_eq!(s.lease_id(), lease.id);
    R::sleep(Duration::from_millis(3000)).await;
    assert_eq!(s.ended(), None);
    s.orphan();
    assert_eq!(s.done().await, SessionEnd::Closed);
    assert!(Session::new(&c, SessionOptions::new().with_lease(0x7777))
        .await
        .is_err());
}

async fn mutex_lock_try_lock_unlock_is_owner<R: TestRuntime>() {
    let cluster = start::<R>(1).await;
    let c = connect::<R>(&cluster).await;
    let s1 = Session::new(&c, SessionOptions::new().with_ttl(10))
        .await
        .unwrap();
    let s2 = Session::new(&c, SessionOptions::new().with_ttl(10))
        .await
        .unwrap();
    let m1 = Mutex::new(&s1, "mx");
    let m2 = Mutex::new(&s2, "mx");
    assert_eq!(m1.key(), format!("mx/{:x}", s1.lease_id()).as_bytes());

    let g1 = m1.lock().await.unwrap();
    assert_eq!(g1.key(), m1.key());
    let stored = c.get(g1.key(), GetOptions::new()).await.unwrap();
    assert_eq!(stored.kvs[0].create_revision, g1.revision());
    assert_eq!(stored.kvs[0].lease, s1.lease_id());
    // The guard carries the header of the answer that made it the holder:
    // the txn that created the key when the lock was free.
    assert_eq!(g1.header().map(|h| h.revision), Some(g1.revision()));

    // try_lock fails at once, and leaves no key behind.
    let t0 = Instant::now();
    assert!(matches!(m2.try_lock().await, Err(Error::Locked)));
    assert!(t0.elapsed() < Duration::from_secs(2));
    let keys = c.get("mx/", GetOptions::new().with_prefix()).await.unwrap();
    assert_eq!(keys.count, 1, "try_lock must remove its key");
    // The same session cannot take it twice either.
    assert!(matches!(m1.try_lock().await, Err(Error::Locked)));

    // Guarded writes succeed while owner.
    let write = |g: &etcdv3_client::concurrency::MutexGuard, v: &str| {
        Txn::new().when([g.is_owner()]).and_then([TxnOp::put(
            "mx-data",
            v.to_string(),
            PutOptions::new(),
        )])
    };
    assert!(c.txn(write(&g1, "1")).await.unwrap().succeeded);

    // lock() waits for the holder.
    let waiter = R::spawn(async move { m2.lock().await.map(|g| (g, m2)) });
    R::sleep(Duration::from_millis(500)).await;
    assert!(!waiter.is_finished(), "lock must wait while held");
    let old = (g1.key().to_vec(), g1.revision());
    let stale = write(&g1, "stale");
    g1.unlock().await.unwrap();
    let (g2, m2) = R::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("lock acquired after unlock")
        .unwrap();
    assert!(g2.revision() > old.1);
    // After a wait: the read that confirmed ownership, after the old key's
    // deletion.
    let acquired_at = g2.header().map_or(0, |h| h.revision);
    assert!(
        acquired_at > g2.revision(),
        "{acquired_at} > {}",
        g2.revision()
    );
    assert_eq!(c.get(old.0, GetOptions::new()).await.unwrap().count, 0);
    // The old owner's guarded write is refused now.
    assert!(!c.txn(stale).await.unwrap().succeeded);
    assert!(c.txn(write(&g2, "2")).await.unwrap().succeeded);

    // A second lock through the same session waits for the first guard.
    let m2b = Mutex::new(&s2, "mx");
    let same = R::spawn(async move { m2b.lock().await.map(|g| g.revision()) });
    R::sleep(Duration::from_millis(300)).await;
    assert!(
        !same.is_finished(),
        "same-session lock must wait for the guard"
    );
    let r2 = g2.revision();
    drop(g2); // released in the background
    let r3 = R::timeout(Duration::from_secs(5), same)
        .await
        .expect("same-session lock after drop")
        .unwrap();
    assert!(r3 > r2, "a new incarnation of the key: {r3} > {r2}");

    // A lost session: the guard reports it and its writes are refused.
    let g = R::timeout(Duration::from_secs(5), m2.lock())
        .await
        .expect("free again")
        .unwrap();
    let lost = g.lost();
    s2.close().await.unwrap();
    assert_eq!(
        R::timeout(Duration::from_secs(5), lost).await.unwrap(),
        SessionEnd::Closed
    );
    assert!(!c.txn(write(&g, "3")).await.unwrap().succeeded);
    assert!(matches!(m2.lock().await, Err(Error::SessionExpired { .. })));

    // A waiter whose session expires while it waits fails.
    let g1 = m1.lock().await.unwrap();
    let s3 = Session::new(&c, SessionOptions::new().with_ttl(10))
        .await
        .unwrap();
    let m3 = Mutex::new(&s3, "mx");
    let waiter = R::spawn(async move { m3.lock().await.map(|_| ()) });
    R::sleep(Duration::from_millis(300)).await;
    c.lease_revoke(s3.lease_id()).await.unwrap();
    let r = R::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("waiter fails when its session ends");
    assert!(matches!(r, Err(Error::SessionExpired { .. })), "{r:?}");
    // A dropped lock() future leaves the queue.
    let s4 = Session::new(&c, SessionOptions::new().with_ttl(30))
        .await
        .unwrap();
    let m4 = Mutex::new(&s4, "mx");
    let _ = R::timeout(Duration::from_millis(300), m4.lock()).await;
    let t0 = Instant::now();
    while c.get(m4.key(), GetOptions::new()).await.unwrap().count != 0 {
        assert!(t0.elapsed() < Duration::from_secs(5), "abandoned key stays");
        R::sleep(Duration::from_millis(50)).await;
    }
    g1.unlock().await.unwrap();
}

/// One successful guarded write of a holder.
#[derive(Debug, Clone, Copy)]
struct Fenced {
    revision: i64,
    worker: usize,
    lock_revision: i64,
}

async fn worker<R: TestRuntime>(
    c: Client,
    id: usize,
    stop: Arc<AtomicBool>,
    log: Arc<StdMutex<Vec<Fenced>>>,
) -> usize {
    let mut held = 0;
    let mut session: Option<Session> = None;
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
        let m = Mutex::new(&s, "fenced");
        let g = match R::timeout(Duration::from_secs(8), m.lock()).await {
            Ok(Ok(g)) => g,
            _ => continue,
        };
        held += 1;
        for step in 0..2 {
            let txn = Txn::new().when([g.is_owner()]).and_then([TxnOp::put(
                "fenced-resource",
                format!("{id}:{}:{step}", g.revision()),
                PutOptions::new(),
            )]);
            if let Ok(resp) = c.txn(txn).await {
                if resp.succeeded {
                    log.lock().unwrap().push(Fenced {
                        revision: resp.header.map_or(0, |h| h.revision),
                        worker: id,
                        lock_revision: g.revision(),
                    });
                }
            }
            R::sleep(Duration::from_millis(40)).await;
        }
        let _ = g.unlock().await;
    }
    if let Some(s) = session {
        let _ = s.close().await;
    }
    held
}

/// Checks the fencing log: sorted by etcd revision, the lock revisions of
/// the successful guarded writes never go back: once a later holder wrote,
/// no earlier holder writes again (no two holders at once).
fn check_fencing(log: &[Fenced]) -> Result<(), String> {
    let mut log = log.to_vec();
    log.sort_by_key(|f| f.revision);
    for w in log.windows(2) {
        if w[1].lock_revision < w[0].lock_revision {
            return Err(format!("overlapping holders: {:?} then {:?}", w[0], w[1]));
        }
        if w[1].lock_revision == w[0].lock_revision && w[1].worker != w[0].worker {
            return Err(format!("two workers with one lock revision: {w:?}"));
        }
    }
    Ok(())
}

#[test]
fn fencing_check_catches_overlap() {
    let f = |revision, worker, lock_revision| Fenced {
        revision,
        worker,
        lock_revision,
    };
    assert!(check_fencing(&[f(10, 0, 5), f(11, 0, 5), f(13, 1, 12)]).is_ok());
    assert!(check_fencing(&[f(10, 0, 5), f(13, 1, 12), f(14, 0, 5)]).is_err());
    assert!(check_fencing(&[f(10, 0, 5), f(11, 1, 5)]).is_err());
}

async fn mutex_excludes_under_member_faults<R: TestRuntime>() {
    etcdv3_integration::cluster::judged_run::<R, _, _>(mutex_excludes_run::<R>).await
}

/// One run of the lock holders under faults; `Err` when etcd diverged.
async fn mutex_excludes_run<R: TestRuntime>() -> Result<(), String> {
    let cluster = common::start3::<R>().await;
    let stop = Arc::new(AtomicBool::new(false));
    let log = Arc::new(StdMutex::new(Vec::new()));
    let mut clients = Vec::new();
    let mut workers = Vec::new();
    for id in 0..3 {
        let c = connect::<R>(&cluster).await;
        clients.push(c.clone());
        workers.push(R::spawn(worker::<R>(c, id, stop.clone(), log.clone())));
    }
    R::sleep(Duration::from_millis(1500)).await;
    let before = log.lock().unwrap().len();
    let faults = common::inject::<R>(
        cluster.clone(),
        clients[0].clone(),
        &common::ALL,
        Duration::from_millis(1500),
        Duration::from_millis(800),
    )
    .await;
    let during = log.lock().unwrap().len();
    R::sleep(Duration::from_millis(2500)).await;
    stop.store(true, Ordering::SeqCst);
    let mut held = 0;
    for w in workers {
        held += R::timeout(Duration::from_secs(20), w)
            .await
            .expect("workers stop");
    }
    let states = etcdv3_integration::cluster::members_agree::<R>(&cluster, &clients[1]).await?;
    let log = log.lock().unwrap().clone();
    eprintln!(
        "{}: {held} lock holds, {} fenced writes ({before} before faults, {during} by their end); faults: {faults:?}; members {states:x?}",
        R::NAME,
        log.len()
    );
    check_fencing(&log).unwrap();
    assert!(before > 0, "no progress before the faults");
    assert!(log.len() > during, "no progress after the faults");
    let mut lock_revisions: Vec<i64> = log.iter().map(|f| f.lock_revision).collect();
    lock_revisions.dedup();
    assert!(
        lock_revisions.len() >= 5,
        "too few holders: {lock_revisions:?}"
    );
    Ok(())
}

etcdv3_integration::runtime_tests!(session_lifecycle, mutex_lock_try_lock_unlock_is_owner);
etcdv3_integration::runtime_tests!(exclusive: mutex_excludes_under_member_faults);
