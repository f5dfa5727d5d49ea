//! Lock and Election against real etcd (etcd from `ETCD_BIN` or `PATH`).
//!
//! `cargo test -p etcdv3-integration --test lock`

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use etcdv3_client::api::{GetOptions, LeaseGrantOptions, LockOptions};
use etcdv3_integration::cluster::{connect, start};
use etcdv3_integration::runtime::TestRuntime;
use futures_util::StreamExt;

async fn lock_is_mutually_exclusive_between_clients<R: TestRuntime>() {
    let cluster = start::<R>(1).await;
    let a = connect::<R>(&cluster).await;
    let b = connect::<R>(&cluster).await;
    let inside = Arc::new(AtomicBool::new(false));
    let entries = Arc::new(AtomicUsize::new(0));
    let last_token = Arc::new(AtomicI64::new(0));
    let mut tasks = Vec::new();
    for c in [a.clone(), b.clone(), a, b] {
        let inside = inside.clone();
        let entries = entries.clone();
        let last_token = last_token.clone();
        tasks.push(R::spawn(async move {
            for _ in 0..3 {
                let guard = c.lock_with_lease("mutex", 10).await.unwrap();
                assert!(guard.key().starts_with(b"mutex/"));
                assert!(!inside.swap(true, Ordering::SeqCst), "two holders at once");
                // The Lock response's revision is a fencing token: larger
                // for every later holder, no extra read needed.
                let token = guard.revision();
                let before = last_token.swap(token, Ordering::SeqCst);
                assert!(token > before, "fencing token {token} after {before}");
                // The keeper reads through a shared borrow.
                let shared: &etcdv3_client::api::LockGuard = &guard;
                assert!(shared.keeper().is_some_and(|k| k.ttl() > 0));
                entries.fetch_add(1, Ordering::SeqCst);
                R::sleep(Duration::from_millis(30)).await;
                inside.store(false, Ordering::SeqCst);
                guard.unlock().await.unwrap();
            }
        }));
    }
    for t in tasks {
        R::timeout(Duration::from_secs(60), t).await.unwrap();
    }
    assert_eq!(entries.load(Ordering::SeqCst), 12);
}

async fn plain_lock_waits_for_unlock_and_leased_lock_for_expiry<R: TestRuntime>() {
    let cluster = start::<R>(1).await;
    let a = connect::<R>(&cluster).await;
    let b = connect::<R>(&cluster).await;
    let held = a.lock("plain", LockOptions::new()).await.unwrap();
    assert!(held.key.starts_with(b"plain/"));
    // b cannot get it while held.
    let e = b
        .lock(
            "plain",
            LockOptions::new().with_timeout(Duration::from_millis(500)),
        )
        .await
        .unwrap_err();
    assert!(e.is_deadline_exceeded(), "{e:?}");
    let waiter = R::spawn(async move { b.lock("plain", LockOptions::new()).await });
    R::sleep(Duration::from_millis(300)).await;
    assert!(!waiter.is_finished());
    a.unlock(held.key.clone()).await.unwrap();
    let got = R::timeout(Duration::from_secs(10), waiter)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(got.key, held.key);

    // A lock on a lease that is not kept alive is released on expiry.
    let lease = a.lease_grant(2, LeaseGrantOptions::new()).await.unwrap();
    let l1 = a
        .lock("leased", LockOptions::new().with_lease(lease.id))
        .await
        .unwrap();
    let t0 = std::time::Instant::now();
    let l2 = a.lock("leased", LockOptions::new()).await.unwrap();
    assert!(t0.elapsed() >= Duration::from_secs(1), "{:?}", t0.elapsed());
    assert_ne!(l1.key, l2.key);
    assert_eq!(a.get(l1.key, GetOptions::new()).await.unwrap().count, 0);
}

async fn dropped_lock_guard_releases_the_lock<R: TestRuntime>() {
    let cluster = start::<R>(1).await;
    let c = connect::<R>(&cluster).await;
    let g = c.lock_with_lease("dropped", 30).await.unwrap();
    drop(g);
    // Released by the background revoke, long before the 30 s TTL.
    let again = R::timeout(Duration::from_secs(5), c.lock_with_lease("dropped", 30))
        .await
        .expect("lock released promptly")
        .unwrap();
    again.unlock().await.unwrap();
}

async fn election_campaign_leader_observe_proclaim_resign<R: TestRuntime>() {
    let cluster = start::<R>(1).await;
    let a = connect::<R>(&cluster).await;
    let b = connect::<R>(&cluster).await;
    let la = a.lease_grant(10, LeaseGrantOptions::new()).await.unwrap();
    let lb = b.lease_grant(10, LeaseGrantOptions::new()).await.unwrap();
    let _ka = a.lease_keep_alive(la.id).await.unwrap();
    let _kb = b.lease_keep_alive(lb.id).await.unwrap();

    let won = a.campaign("elect", "a", la.id).await.unwrap();
    let leader_a = won.leader.clone().unwrap();
    assert_eq!(leader_a.name, b"elect");
    assert_eq!(leader_a.lease, la.id);

    let cur = b.leader("elect").await.unwrap();
    assert_eq!(cur.kv.as_ref().unwrap().value, b"a");

    let mut observe = b.observe("elect").await.unwrap();
    let first = R::timeout(Duration::from_secs(5), observe.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.kv.unwrap().value, b"a");

    // b campaigns and waits behind a.
    let b2 = b.clone();
    let campaign_b = R::spawn(async move { b2.campaign("elect", "b", lb.id).await });
    R::sleep(Duration::from_millis(300)).await;
    assert!(!campaign_b.is_finished(), "b must wait while a leads");

    a.proclaim(leader_a.clone(), "a2").await.unwrap();
    let next = R::timeout(Duration::from_secs(5), observe.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(next.kv.unwrap().value, b"a2");

    a.resign(leader_a).await.unwrap();
    let won_b = R::timeout(Duration::from_secs(10), campaign_b)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(won_b.leader.unwrap().lease, lb.id);
    let next = R::timeout(Duration::from_secs(5), observe.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(next.kv.unwrap().value, b"b");
    assert_eq!(a.leader("elect").await.unwrap().kv.unwrap().value, b"b");
}

async fn server_lock_and_election_run_inside_a_namespace<R: TestRuntime>() {
    let cluster = start::<R>(1).await;
    let raw = connect::<R>(&cluster).await;
    let a = raw.with_namespace("ns-a/");
    let b = raw.with_namespace("ns-b/");
    let la = a.lease_grant(10, LeaseGrantOptions::new()).await.unwrap();
    let lb = b.lease_grant(10, LeaseGrantOptions::new()).await.unwrap();
    let _ka = a.lease_keep_alive(la.id).await.unwrap();
    let _kb = b.lease_keep_alive(lb.id).await.unwrap();

    // Two namespaces hold the lock of one name at once (the second would
    // wait for the first if the names met on the server).
    let wait = Duration::from_secs(5);
    let opts = |lease| LockOptions::new().with_lease(lease).with_timeout(wait);
    let lock_a = a.lock("job", opts(la.id)).await.unwrap();
    let lock_b = b.lock("job", opts(lb.id)).await.unwrap();
    assert!(lock_a.key.starts_with(b"job/"), "{:?}", lock_a.key);
    assert!(lock_b.key.starts_with(b"job/"), "{:?}", lock_b.key);
    // The raw client sees the prefixed key; the namespaced one reads it
    // back by its own name.
    let on_server = [b"ns-a/".as_slice(), &lock_a.key].concat();
    let raw_view = raw
        .get(b"ns-a/job/".to_vec(), GetOptions::new().with_prefix())
        .await
        .unwrap();
    assert_eq!(
        raw_view
            .kvs
            .iter()
            .map(|kv| kv.key.clone())
            .collect::<Vec<_>>(),
        [on_server]
    );
    assert_eq!(
        a.get(lock_a.key.clone(), GetOptions::new())
            .await
            .unwrap()
            .count,
        1
    );
    // Unlock takes the key as the namespaced client gave it.
    a.unlock(lock_a.key.clone()).await.unwrap();
    assert_eq!(
        raw.get(b"ns-a/job/".to_vec(), GetOptions::new().with_prefix())
            .await
            .unwrap()
            .count,
        0
    );
    b.unlock(lock_b.key.clone()).await.unwrap();
    // A guard from lock_with_lease works the same way.
    let guard = a.lock_with_lease("job", 10).await.unwrap();
    assert!(guard.key().starts_with(b"job/"), "{:?}", guard.key());
    guard.unlock().await.unwrap();

    // Elections: both namespaces lead "elect" at once.
    let bounded = |c: &etcdv3_client::Client| {
        c.with_call_options(etcdv3_client::CallOptions::new().with_timeout(wait))
    };
    let won_a = bounded(&a).campaign("elect", "a", la.id).await.unwrap();
    let won_b = bounded(&b).campaign("elect", "b", lb.id).await.unwrap();
    let leader_a = won_a.leader.clone().unwrap();
    assert_eq!(leader_a.name, b"elect");
    assert!(leader_a.key.starts_with(b"elect/"), "{:?}", leader_a.key);
    assert!(won_b.leader.unwrap().key.starts_with(b"elect/"));
    let kv = a.leader("elect").await.unwrap().kv.unwrap();
    assert_eq!(
        (kv.key.as_slice(), kv.value.as_slice()),
        (leader_a.key.as_slice(), b"a".as_slice())
    );
    let raw_kv = raw.leader("ns-a/elect").await.unwrap().kv.unwrap();
    assert_eq!(raw_kv.key, [b"ns-a/".as_slice(), &leader_a.key].concat());
    let mut observe = a.observe("elect").await.unwrap();
    let first = R::timeout(wait, observe.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.kv.unwrap().key, leader_a.key);
    // Proclaim and resign take the leader key as the namespace gave it.
    a.proclaim(leader_a.clone(), "a2").await.unwrap();
    let next = R::timeout(wait, observe.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let kv = next.kv.unwrap();
    assert_eq!((kv.key, kv.value), (leader_a.key.clone(), b"a2".to_vec()));
    assert_eq!(
        raw.leader("ns-a/elect").await.unwrap().kv.unwrap().value,
        b"a2"
    );
    a.resign(leader_a).await.unwrap();
    assert_eq!(
        raw.get(b"ns-a/elect/".to_vec(), GetOptions::new().with_prefix())
            .await
            .unwrap()
            .count,
        0
    );
    assert_eq!(
        raw.leader("ns-b/elect").await.unwrap().kv.unwrap().value,
        b"b"
    );
}

etcdv3_integration::runtime_tests!(
    server_lock_and_election_run_inside_a_namespace,
    lock_is_mutually_exclusive_between_clients,
    plain_lock_waits_for_unlock_and_leased_lock_for_expiry,
    dropped_lock_guard_releases_the_lock,
    election_campaign_leader_observe_proclaim_resign,
);
