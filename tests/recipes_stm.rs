//! STM recipe (`etcdv3_client::concurrency::stm`) against real etcd, with
//! and without member faults.
//!
//! `cargo test -p etcdv3-integration --test recipes_stm`

#[path = "recipes_common.rs"]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use etcdv3_client::api::{GetOptions, PutOptions};
use etcdv3_client::concurrency::stm::{self, Abort, Isolation};
use etcdv3_client::concurrency::{self as recipes, Mutex, Session, SessionOptions};
use etcdv3_client::Client;
use etcdv3_integration::cluster::{connect, start};
use etcdv3_integration::runtime::TestRuntime;

fn parse(v: Option<Vec<u8>>) -> i64 {
    v.and_then(|v| String::from_utf8(v).ok()?.parse().ok())
        .unwrap_or(0)
}

const LEVELS: [Isolation; 3] = [
    Isolation::SerializableSnapshot,
    Isolation::Serializable,
    Isolation::RepeatableReads,
];

/// One increment of `counter`, logged under `log/<new value>` with `op`.
async fn increment(c: &Client, iso: Isolation, name: &str, op: &str) -> recipes::Result<i64> {
    let counter = format!("{name}/counter");
    let log = format!("{name}/log/");
    stm::run(c, iso, |tx| {
        let n = parse(tx.get(&counter)?) + 1;
        tx.put(counter.clone(), n.to_string());
        tx.put(format!("{log}{n:06}"), op.to_string());
        Ok(n)
    })
    .await
}

async fn stm_semantics<R: TestRuntime>() {
    let cluster = start::<R>(1).await;
    let c = connect::<R>(&cluster).await;

    // Reads see the transaction's own writes; several keys; deletes.
    c.put("s/a", "10", PutOptions::new()).await.unwrap();
    c.put("s/b", "5", PutOptions::new()).await.unwrap();
    let runs = AtomicUsize::new(0);
    let moved = stm::run(&c, Isolation::default(), |tx| {
        runs.fetch_add(1, Ordering::SeqCst);
        let a = parse(tx.get("s/a")?);
        let b = parse(tx.get("s/b")?);
        tx.put("s/a", (a - 3).to_string());
        tx.put("s/b", (b + 3).to_string());
        assert_eq!(parse(tx.get("s/a")?), a - 3);
        tx.delete("s/gone");
        assert_eq!(tx.get("s/gone")?, None);
        Ok(a + b)
    })
    .await
    .unwrap();
    assert_eq!(moved, 15);
    // One run per fetched key, then the committing run.
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    let get = |k: &'static str| {
        let c = c.clone();
        async move {
            c.get(k, GetOptions::new()).await.unwrap().kvs[0]
                .value
                .clone()
        }
    };
    assert_eq!(get("s/a").await, b"7");
    assert_eq!(get("s/b").await, b"8");

    // An error of the body aborts: nothing is written.
    let r: recipes::Result<()> = stm::run(&c, Isolation::Serializable, |tx| {
        tx.put("s/a", "0");
        let _ = tx.get("s/b")?;
        Err(Abort::msg("no"))
    })
    .await;
    assert!(matches!(r, Err(recipes::Error::Aborted(_))), "{r:?}");
    assert_eq!(get("s/a").await, b"7");
    let r: recipes::Result<i64> = stm::run(&c, Isolation::Serializable, |tx| {
        let v: i64 = String::from_utf8_lossy(&tx.get("s/a")?.unwrap_or_default()).parse()?;
        let _bad: i64 = "x".parse()?;
        Ok(v)
    })
    .await;
    assert!(matches!(r, Err(recipes::Error::Aborted(_))), "{r:?}");

    // Concurrent increments on each conflict-checked level: none lost.
    for iso in LEVELS {
        let name = format!("s/{iso:?}");
        let mut tasks = Vec::new();
        for w in 0..4 {
            let c = c.clone();
            let name = name.clone();
            tasks.push(R::spawn(async move {
                for i in 0..10 {
                    increment(&c, iso, &name, &format!("{w}-{i}"))
                        .await
                        .unwrap();
                }
            }));
        }
        for t in tasks {
            R::timeout(Duration::from_secs(30), t).await.unwrap();
        }
        let v = c
            .get(format!("{name}/counter"), GetOptions::new())
            .await
            .unwrap();
        assert_eq!(v.kvs[0].value, b"40", "{iso:?}");
    }

    // A conflict re-runs the body on fresh values: the body reads "s/x",
    // then "s/z"; while "s/z" is being fetched (the transaction is held
    // right there), another writer changes "s/x". The commit must fail and
    // the body run again with the new value.
    // The checked levels retry on the stale read of s/x; ReadCommitted
    // checks nothing, so the stale read commits.
    for iso in LEVELS.into_iter().chain([Isolation::ReadCommitted]) {
        c.put("s/x", "1", PutOptions::new()).await.unwrap();
        c.put("s/z", "z", PutOptions::new()).await.unwrap();
        let runs = AtomicUsize::new(0);
        let at_z = AtomicBool::new(false);
        let mut txn = std::pin::pin!(stm::run(&c, iso, |tx| {
            runs.fetch_add(1, Ordering::SeqCst);
            let x = parse(tx.get("s/x")?);
            at_z.store(true, Ordering::SeqCst);
            let _ = tx.get("s/z")?;
            tx.put("s/y", (x * 100).to_string());
            Ok(x)
        }));
        while !at_z.load(Ordering::SeqCst) {
            if let std::task::Poll::Ready(r) = futures_util::poll!(txn.as_mut()) {
                panic!("finished before reading s/z: {r:?}");
            }
            R::sleep(Duration::from_millis(5)).await;
        }
        // The transaction now waits for its fetch of "s/z".
        c.put("s/x", "2", PutOptions::new()).await.unwrap();
        let x = R::timeout(Duration::from_secs(10), txn)
            .await
            .unwrap()
            .unwrap();
        if iso == Isolation::ReadCommitted {
            assert_eq!(x, 1, "{iso:?}: the stale read commits");
            assert_eq!(get("s/y").await, b"100", "{iso:?}");
        } else {
            assert_eq!(x, 2, "{iso:?}: committed on a stale read");
            assert_eq!(get("s/y").await, b"200", "{iso:?}");
            // x, z, conflicting commit, committing run.
            assert_eq!(runs.load(Ordering::SeqCst), 4, "{iso:?}");
        }
    }
}

#[derive(Default)]
struct Outcomes {
    acked: BTreeMap<String, i64>,
    unknown: BTreeSet<String>,
}

async fn stm_worker<R: TestRuntime>(
    c: Client,
    w: usize,
    stop: Arc<AtomicBool>,
    out: Arc<StdMutex<BTreeMap<String, Outcomes>>>,
) {
    let mut i = 0;
    while !stop.load(Ordering::SeqCst) {
        let iso = LEVELS[i % LEVELS.len()];
        let name = format!("lin/{iso:?}");
        let op = format!("{w}-{i}");
        i += 1;
        match R::timeout(Duration::from_secs(15), increment(&c, iso, &name, &op)).await {
            Ok(Ok(n)) => {
                out.lock()
                    .unwrap()
                    .entry(name)
                    .or_default()
                    .acked
                    .insert(op, n);
            }
            Ok(Err(e)) if e.may_have_applied() => {
                out.lock()
                    .unwrap()
                    .entry(name)
                    .or_default()
                    .unknown
                    .insert(op);
            }
            Ok(Err(_)) => R::sleep(Duration::from_millis(50)).await,
            Err(_) => panic!("an STM increment hung past 15 s"),
        }
    }
}

async fn stm_counters_linearizable_under_member_faults<R: TestRuntime>() {
    etcdv3_integration::cluster::judged_run::<R, _, _>(stm_counters_run::<R>).await
}

/// One run of the counters under faults; `Err` when the members diverged.
async fn stm_counters_run<R: TestRuntime>() -> Result<(), String> {
    let cluster = common::start3::<R>().await;
    let stop = Arc::new(AtomicBool::new(false));
    let out: Arc<StdMutex<BTreeMap<String, Outcomes>>> = Arc::default();
    let mut clients = Vec::new();
    let mut workers = Vec::new();
    for w in 0..4 {
        let c = connect::<R>(&cluster).await;
        clients.push(c.clone());
        workers.push(R::spawn(stm_worker::<R>(c, w, stop.clone(), out.clone())));
    }
    R::sleep(Duration::from_millis(1500)).await;
    let faults = common::inject::<R>(
        cluster.clone(),
        clients[0].clone(),
        &common::ALL,
        Duration::from_millis(1500),
        Duration::from_millis(800),
    )
    .await;
    R::sleep(Duration::from_millis(2000)).await;
    stop.store(true, Ordering::SeqCst);
    for t in workers {
        R::timeout(Duration::from_secs(30), t)
            .await
            .expect("workers stop");
    }
    let c = &clients[1];
    let states = etcdv3_integration::cluster::members_agree::<R>(&cluster, c).await?;
    let out = std::mem::take(&mut *out.lock().unwrap());
    let mut report = Vec::new();
    for iso in LEVELS {
        let name = format!("lin/{iso:?}");
        let o = out.get(&name).expect("some increments per level");
        let counter = c
            .get(format!("{name}/counter"), GetOptions::new())
            .await
            .unwrap();
        let final_value = counter.kvs.first().map_or(0, |kv| {
            String::from_utf8_lossy(&kv.value).parse::<i64>().unwrap()
        });
        let log = c
            .get(format!("{name}/log/"), GetOptions::new().with_prefix())
            .await
            .unwrap();
        // Every value 1..=final written exactly once, each by one op.
        let mut writers: BTreeMap<String, i64> = BTreeMap::new();
        for (i, kv) in log.kvs.iter().enumerate() {
            let n: i64 = String::from_utf8_lossy(&kv.key[name.len() + 5..])
                .parse()
                .unwrap();
            assert_eq!(n, i as i64 + 1, "{name}: log has a gap before {n}");
            let op = String::from_utf8(kv.value.clone()).unwrap();
            assert!(
                writers.insert(op.clone(), n).is_none(),
                "{name}: op {op} applied twice"
            );
        }
        assert_eq!(
            log.kvs.len() as i64,
            final_value,
            "{name}: final value vs log"
        );
        for (op, n) in &o.acked {
            assert_eq!(
                writers.get(op),
                Some(n),
                "{name}: acknowledged op {op} (value {n}) not applied as acknowledged"
            );
        }
        for op in writers.keys() {
            assert!(
                o.acked.contains_key(op) || o.unknown.contains(op),
                "{name}: op {op} applied but reported as not applied"
            );
        }
        report.push(format!(
            "{iso:?}: final {final_value} = {} acked + {} of {} unknown",
            o.acked.len(),
            final_value as usize - o.acked.len(),
            o.unknown.len()
        ));
        assert!(o.acked.len() >= 10, "{name}: too little progress");
    }
    eprintln!(
        "{}: {report:?}; faults: {faults:?}; members {states:x?}",
        R::NAME
    );
    Ok(())
}

/// With the keys named up front the body runs once per commit (without,
/// once more per key read); a write can carry a lease.
async fn stm_prefetch_runs_once_and_puts_with_a_lease<R: TestRuntime>() {
    let cluster = start::<R>(1).await;
    let c = connect::<R>(&cluster).await;
    c.put("pf/a", "1", PutOptions::new()).await.unwrap();
    c.put("pf/b", "2", PutOptions::new()).await.unwrap();
    let lease = c
        .lease_grant(30, etcdv3_client::api::LeaseGrantOptions::new())
        .await
        .unwrap();
    for (prefetch, want_runs) in [(false, 3), (true, 1)] {
        let runs = AtomicUsize::new(0);
        let mut opts = stm::StmOptions::new().with_isolation(Isolation::Serializable);
        if prefetch {
            opts = opts.with_prefetch(["pf/a", "pf/b"]);
        }
        stm::run_with(&c, opts, |tx| {
            runs.fetch_add(1, Ordering::SeqCst);
            let sum = parse(tx.get("pf/a")?) + parse(tx.get("pf/b")?);
            tx.put_with_lease("pf/sum", sum.to_string(), lease.id);
            Ok(())
        })
        .await
        .unwrap();
        assert_eq!(
            runs.load(Ordering::SeqCst),
            want_runs,
            "prefetch {prefetch}"
        );
    }
    let sum = c.get("pf/sum", GetOptions::new()).await.unwrap();
    assert_eq!(sum.kvs[0].value, b"3");
    assert_eq!(sum.kvs[0].lease, lease.id, "the write carries the lease");
}

/// A transaction under a lock next to plain client calls: one error type,
/// `?` on each (the recipes', the client's, the transaction's).
async fn guarded_transfer(c: &Client, amount: i64) -> recipes::Result<i64> {
    let session = Session::new(c, SessionOptions::new().with_ttl(10)).await?;
    let guard = Mutex::new(&session, "one/lock").lock().await?;
    let before = c.get("one/a", GetOptions::new()).await?.kvs.len();
    let moved = stm::run(c, Isolation::Serializable, |tx| {
        let a = parse(tx.get("one/a")?);
        if a < amount {
            return Err(Abort::msg("insufficient funds"));
        }
        let b = parse(tx.get("one/b")?);
        tx.put("one/a", (a - amount).to_string());
        tx.put("one/b", (b + amount).to_string());
        Ok(amount)
    })
    .await?;
    guard.unlock().await?;
    session.close().await?;
    assert_eq!(before, 1);
    Ok(moved)
}

async fn stm_recipes_and_client_share_one_error_type<R: TestRuntime>() {
    let cluster = start::<R>(1).await;
    let c = connect::<R>(&cluster).await;
    c.put("one/a", "10", PutOptions::new()).await.unwrap();
    assert_eq!(guarded_transfer(&c, 7).await.unwrap(), 7);
    // The body's refusal, the same type as a recipe's or a client's error.
    let err = guarded_transfer(&c, 7).await.unwrap_err();
    assert!(
        matches!(&err, recipes::Error::Aborted(why) if why.to_string() == "insufficient funds"),
        "{err:?}"
    );
    assert!(!err.may_have_applied());
    let a = c.get("one/a", GetOptions::new()).await.unwrap();
    assert_eq!(a.kvs[0].value, b"3");
    // A closed client fails the same function with the client's error.
    c.close();
    let err = guarded_transfer(&c, 1).await.unwrap_err();
    assert!(
        matches!(err, recipes::Error::Client(ref e) if e.is_closed()),
        "{err:?}"
    );
}

etcdv3_integration::runtime_tests!(
    stm_semantics,
    stm_prefetch_runs_once_and_puts_with_a_lease,
    stm_recipes_and_client_share_one_error_type,
);
etcdv3_integration::runtime_tests!(exclusive: stm_counters_linearizable_under_member_faults);
