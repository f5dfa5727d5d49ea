//! Consistency under faults: concurrent compare-and-swap counters against a
//! real 3-member cluster while members are killed, paused, cut off from
//! their peers and blackholed.
//!
//! K tasks increment M counters: read the counter (value and mod_revision),
//! then `txn(if mod_revision == seen then put counter = value + 1 and put
//! hist/<counter>/<token> = value + 1)`, with a unique token per attempt.
//! Every operation is recorded (start, end, result: acknowledged / certainly
//! not applied / outcome unknown). Afterwards the history keys tell exactly
//! which increments the cluster applied, and
//! `etcdv3_integration::failover_support::check_counters` verifies:
//!
//! * `acked <= final <= acked + unknown` for every counter, and the applied
//!   values form the chain 1, 2, ..., final in revision order;
//! * every acknowledged increment was applied at the revision its response
//!   reported; none the client called "not applied" was; none twice (each
//!   history key has version 1) — an unsafe retry of a txn would break one
//!   of these;
//! * per counter, reads and writes are linearizable, with writes ordered by
//!   their etcd revision (the store's total order);
//! * no call outlives its deadline;
//! * after each fault is undone, an increment sent after the undo is
//!   acknowledged before the next fault (the workload recovers from every
//!   fault, not only by the end of the run).
//!
//! Runs once per runtime (tokio and async-std), one after the other:
//! `cargo test -p etcdv3-integration --test consistency -- --nocapture`

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etcdv3_client::api::{Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp};
use etcdv3_client::{Client, ClientOptions};
use etcdv3_integration::failover_support::{
    check_counters, AppliedIncrement, IncrementOp, IncrementResult, ReadOp,
};
use etcdv3_integration::runtime::TestRuntime;
use etcdv3_testkit::Cluster;

/// Concurrent incrementing tasks.
const TASKS: usize = 6;
/// Counters.
const COUNTERS: usize = 4;
/// Deadline of every call.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// A call returning later than its deadline plus this is a hang.
const HANG_GRACE: Duration = Duration::from_secs(1);

#[derive(Default)]
struct History {
    incs: Vec<IncrementOp>,
    reads: Vec<ReadOp>,
    hangs: Vec<String>,
    read_errors: Vec<String>,
}

fn counter_key(c: usize) -> String {
    format!("cnt/{c}")
}

fn init_tracing() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
}

async fn incrementer<R: TestRuntime>(
    client: Client,
    task: usize,
    stop: Arc<AtomicBool>,
    out: Arc<Mutex<History>>,
) {
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        seq += 1;
        let counter = (task + seq as usize) % COUNTERS;
        let key = counter_key(counter);
        // Read half.
        let start = Instant::now();
        let got = R::timeout(
            CALL_TIMEOUT + HANG_GRACE,
            client.get(key.clone(), GetOptions::new().with_timeout(CALL_TIMEOUT)),
        )
        .await;
        let end = Instant::now();
        let (value, mod_revision) = match got {
            Err(_) => {
                out.lock().unwrap().hangs.push(format!("get {key} hung"));
                continue;
            }
            Ok(Err(e)) => {
                // Reads are retried until their deadline; report anything else.
                if !e.is_deadline_exceeded() {
                    out.lock().unwrap().read_errors.push(e.to_string());
                }
                continue;
            }
            Ok(Ok(r)) => match r.kvs.first() {
                None => (0u64, 0i64),
                Some(kv) => {
                    let v = String::from_utf8_lossy(&kv.value)
                        .parse()
                        .unwrap_or(u64::MAX);
                    (v, kv.mod_revision)
                }
            },
        };
        out.lock().unwrap().reads.push(ReadOp {
            counter,
            value,
            mod_revision,
            start,
            end,
        });
        // Write half.
        let next = value + 1;
        let token = format!("t{task}-{seq}");
        let txn = Txn::new()
            .when([Compare::mod_revision(
                key.clone(),
                CompareOp::Equal,
                mod_revision,
            )])
            .and_then([
                TxnOp::put(key.clone(), next.to_string(), PutOptions::new()),
                TxnOp::put(
                    format!("hist/{counter}/{token}"),
                    next.to_string(),
                    PutOptions::new(),
                ),
            ])
            .with_timeout(CALL_TIMEOUT);
        let start = Instant::now();
        let r = R::timeout(CALL_TIMEOUT + HANG_GRACE, client.txn(txn)).await;
        let end = Instant::now();
        let result = match r {
            Err(_) => {
                out.lock().unwrap().hangs.push(format!("txn {token} hung"));
                IncrementResult::Unknown
            }
            Ok(Ok(resp)) if resp.succeeded => IncrementResult::Acked {
                revision: resp.header.map_or(0, |h| h.revision),
            },
            Ok(Ok(_)) => IncrementResult::Failed,
            Ok(Err(e)) if e.may_have_applied() => IncrementResult::Unknown,
            Ok(Err(_)) => IncrementResult::Failed,
        };
        out.lock().unwrap().incs.push(IncrementOp {
            counter,
            token,
            value: next,
            start,
            end,
            result,
        });
    }
}

/// One injected fault: what it was, when it was undone, and when the next
/// fault was injected (or the run ended).
#[derive(Debug, Clone)]
struct Injected {
    what: String,
    undone: Instant,
    next: Instant,
}

/// Injects the faults one after another; returns what it did, with the
/// instants each one was undone.
fn inject_faults(cluster: &Cluster) -> Result<Vec<Injected>, String> {
    let e = |e: etcdv3_testkit::TestkitError| e.to_string();
    let hold = Duration::from_secs(2);
    let settle = Duration::from_millis(1000);
    let mut log: Vec<Injected> = Vec::new();
    // Records a fault as undone now; the previous one ended when this one
    // was injected.
    let undone = |log: &mut Vec<Injected>, what: String, injected: Instant| {
        if let Some(prev) = log.last_mut() {
            prev.next = injected;
        }
        let now = Instant::now();
        log.push(Injected {
            what,
            undone: now,
            next: now,
        });
    };
    let leader = cluster
        .wait_for_leader(Duration::from_secs(10))
        .map_err(e)?;
    std::thread::sleep(settle);

    let at = Instant::now();
    cluster.kill(leader).map_err(e)?;
    std::thread::sleep(hold);
    cluster.restart(leader).map_err(e)?;
    undone(&mut log, format!("kill leader m{leader}"), at);
    std::thread::sleep(settle);

    let follower = (leader + 1) % cluster.size();
    let at = Instant::now();
    cluster.pause(follower).map_err(e)?;
    std::thread::sleep(hold);
    cluster.resume(follower).map_err(e)?;
    undone(&mut log, format!("pause m{follower}"), at);
    std::thread::sleep(settle);

    let leader = cluster
        .wait_for_leader(Duration::from_secs(10))
        .map_err(e)?;
    let at = Instant::now();
    cluster.isolate(leader).map_err(e)?;
    std::thread::sleep(hold + hold);
    cluster.heal(leader).map_err(e)?;
    undone(&mut log, format!("isolate leader m{leader}"), at);
    std::thread::sleep(settle);

    let leader = cluster
        .wait_for_leader(Duration::from_secs(10))
        .map_err(e)?;
    let at = Instant::now();
    cluster.pause(leader).map_err(e)?;
    std::thread::sleep(hold);
    cluster.resume(leader).map_err(e)?;
    undone(&mut log, format!("pause leader m{leader}"), at);
    std::thread::sleep(settle);

    let some = (leader + 2) % cluster.size();
    let at = Instant::now();
    cluster.blackhole_client(some).map_err(e)?;
    std::thread::sleep(hold);
    cluster.unblackhole_client(some).map_err(e)?;
    undone(&mut log, format!("blackhole client link of m{some}"), at);
    std::thread::sleep(settle);

    let some = (some + 1) % cluster.size();
    let at = Instant::now();
    cluster.kill(some).map_err(e)?;
    std::thread::sleep(hold);
    cluster.restart(some).map_err(e)?;
    undone(&mut log, format!("kill m{some}, restart"), at);
    std::thread::sleep(settle + settle);
    if let Some(last) = log.last_mut() {
        last.next = Instant::now();
    }
    Ok(log)
}

/// The server's record of applied increments and the final counter values.
async fn server_state(client: &Client) -> (Vec<u64>, Vec<AppliedIncrement>) {
    let mut finals = Vec::new();
    for c in 0..COUNTERS {
        let r = client
            .get(counter_key(c), GetOptions::new().with_timeout(CALL_TIMEOUT))
            .await
            .expect("read final counter");
        finals.push(r.kvs.first().map_or(0, |kv| {
            String::from_utf8_lossy(&kv.value)
                .parse()
                .unwrap_or(u64::MAX)
        }));
    }
    let r = client
        .get(
            "hist/",
            GetOptions::new().with_prefix().with_timeout(CALL_TIMEOUT),
        )
        .await
        .expect("read history");
    let mut applied = Vec::new();
    for kv in r.kvs {
        let key = String::from_utf8_lossy(&kv.key).into_owned();
        let mut parts = key.splitn(3, '/').skip(1);
        let counter = parts
            .next()
            .and_then(|c| c.parse().ok())
            .expect("history key");
        let token = parts.next().expect("history token").to_string();
        applied.push(AppliedIncrement {
            counter,
            token,
            value: String::from_utf8_lossy(&kv.value)
                .parse()
                .unwrap_or(u64::MAX),
            revision: kv.mod_revision,
            version: kv.version,
        });
    }
    (finals, applied)
}

/// The whole run on runtime `R`; the runtime variants run one at a time
/// (`exclusive`). A run on which etcd itself diverged (see
/// `members_agree`) cannot judge the client and is repeated.
async fn cas_counters_stay_consistent_under_faults<R: TestRuntime>() {
    init_tracing();
    etcdv3_integration::cluster::judged_run::<R, _, _>(cas_counters_run::<R>).await
}

/// One run on a fresh cluster; `Err` when the members diverged.
async fn cas_counters_run<R: TestRuntime>() -> Result<(), String> {
    let cluster = Arc::new(
        R::spawn_blocking(|| Cluster::start(3))
            .await
            .expect("start cluster"),
    );
    let client = R::connect(
        cluster.client_urls(),
        ClientOptions::default().with_timeout(CALL_TIMEOUT),
    )
    .await
    .expect("client");
    let stop = Arc::new(AtomicBool::new(false));
    let history = Arc::new(Mutex::new(History::default()));
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            R::spawn(incrementer::<R>(
                client.clone(),
                t,
                stop.clone(),
                history.clone(),
            ))
        })
        .collect();
    let started = Instant::now();
    let c = cluster.clone();
    let faults = R::spawn_blocking(move || inject_faults(&c)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await;
    }
    let ran = started.elapsed();
    let states = etcdv3_integration::cluster::members_agree::<R>(&cluster, &client).await;
    if let Err(e) = states {
        client.close();
        R::spawn_blocking(move || drop(cluster)).await;
        return Err(e);
    }
    let (finals, applied) = server_state(&client).await;
    let h = std::mem::take(&mut *history.lock().unwrap());

    let count = |f: fn(&IncrementResult) -> bool| h.incs.iter().filter(|o| f(&o.result)).count();
    let acked = count(|r| matches!(r, IncrementResult::Acked { .. }));
    let failed = count(|r| *r == IncrementResult::Failed);
    let unknown = count(|r| *r == IncrementResult::Unknown);
    let unknown_applied = h
        .incs
        .iter()
        .filter(|o| o.result == IncrementResult::Unknown)
        .filter(|o| applied.iter().any(|a| a.token == o.token))
        .count();
    eprintln!(
        "[consistency] {}: {:.1} s, faults: {:?}",
        R::NAME,
        ran.as_secs_f64(),
        faults
            .as_ref()
            .map(|f| f.iter().map(|i| i.what.as_str()).collect::<Vec<_>>())
    );
    eprintln!(
            "[consistency] {}: {} reads, {} txns: {acked} acked, {failed} not applied (CAS lost or refused), {unknown} outcome unknown ({unknown_applied} of them applied); finals {finals:?}",
            R::NAME,
            h.reads.len(),
            h.incs.len()
        );

    let faults = faults.expect("fault injection");
    assert_eq!(faults.len(), 6);
    // Progress after each fault is undone: an increment sent after the undo
    // is acknowledged before the next fault.
    let mut no_progress = Vec::new();
    for f in &faults {
        let first_ack = h
            .incs
            .iter()
            .filter(|o| matches!(o.result, IncrementResult::Acked { .. }))
            .filter(|o| o.start >= f.undone && o.end <= f.next)
            .map(|o| o.end)
            .min();
        match first_ack {
            Some(t) => eprintln!(
                "[consistency] {}: after \"{}\" was undone, first acknowledged increment after {} ms",
                R::NAME,
                f.what,
                t.duration_since(f.undone).as_millis()
            ),
            None => no_progress.push(format!(
                "{} (no increment sent in the {} ms before the next fault was acknowledged)",
                f.what,
                f.next.duration_since(f.undone).as_millis()
            )),
        }
    }
    assert!(
        no_progress.is_empty(),
        "no acknowledged increment after these faults were undone: {no_progress:#?}"
    );
    assert!(
        h.hangs.is_empty(),
        "calls hung past their deadline: {:?}",
        h.hangs
    );
    assert!(
        h.read_errors.is_empty(),
        "reads failed with errors other than DeadlineExceeded: {:?}",
        h.read_errors
    );
    // The workload must have made progress through the faults.
    assert!(acked >= 50, "only {acked} increments acknowledged");
    let errs = check_counters(COUNTERS, &finals, &h.incs, &h.reads, &applied);
    assert!(errs.is_empty(), "consistency violations: {errs:#?}");
    client.close();
    R::spawn_blocking(move || drop(cluster)).await;
    Ok(())
}

etcdv3_integration::runtime_tests!(exclusive: cas_counters_stay_consistent_under_faults);
