//! Failover against real 3-member etcd clusters with real faults.
//!
//! One test runs every fault in turn (sequentially: parallel clusters on a
//! 2-core machine would starve each other and distort the gaps). For each
//! fault a fresh cluster is started and a client runs a sequential workload —
//! one put of a fresh key and one get of it every ~10 ms, each with a 5 s
//! deadline — while the fault is injected, held and undone. Measured per
//! fault: the longest time without a successful operation (from the
//! injection on) and every error the caller saw, printed with `--nocapture`.
//! The whole run happens once per runtime (tokio and async-std, one after
//! the other, never both at once):
//!
//! ```text
//! cargo test -p etcdv3-integration --test failover -- --nocapture
//! cargo test -p etcdv3-integration --test failover async_std    # one runtime
//! RUST_LOG=etcdv3_client=debug cargo test ...   # client tracing on stderr
//! ```
//!
//! Asserted (loose bounds, the point is "no hang, no wrong answer"):
//! * no call returns later than its deadline plus 1 s of grace;
//! * reads fail with nothing but `DeadlineExceeded` (they are retried
//!   elsewhere until their deadline), puts with nothing but `OutcomeUnknown`
//!   or `DeadlineExceeded`;
//! * the longest gap stays under 8 s (4 s when the fault cannot leave a
//!   put pending inside etcd), and operations succeed again after
//!   the fault is undone;
//! * read-your-writes on every key: an acknowledged put is seen by the get
//!   that follows it, a put that certainly failed is not.
//!
//! * a prefix watch on the workload's keys, open through the whole run,
//!   delivers every put that the store holds at the end exactly once, in
//!   strictly increasing revision order, at the revision the put's response
//!   reported (and nothing the client reported as certainly not applied).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etcdv3_client::api::{GetOptions, PutOptions, WatchEvent, WatchOptions};
use etcdv3_client::{Client, ClientOptions};
use etcdv3_integration::failover_support::{
    busiest_member, classify, fault_stats, inject, ErrorClass, Fault, FaultStats, OpKind, OpRecord,
    FAULTS,
};
use etcdv3_integration::runtime::TestRuntime;
use etcdv3_testkit::Cluster;
use futures_util::StreamExt;

/// Deadline of every workload call.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// A call returning later than its deadline plus this is a hang.
const HANG_GRACE: Duration = Duration::from_secs(1);
/// Pause between two workload iterations.
const TICK: Duration = Duration::from_millis(10);
/// Loose bound on the longest gap between successful operations.
const MAX_GAP: Duration = Duration::from_secs(8);
/// Bound on the longest gap when no mutation can be stuck inside etcd.
const TIGHT_GAP: Duration = Duration::from_secs(4);
/// How long the watch may take to catch up with the store after the run.
const WATCH_CATCH_UP: Duration = Duration::from_secs(15);
/// Workload time before the fault.
const WARMUP: Duration = Duration::from_millis(1500);
/// How long a fault is held before it is undone (or, for a removal, how
/// long the workload runs on before the tail).
const HOLD: Duration = Duration::from_secs(4);
/// Workload time after the fault is undone.
const TAIL: Duration = Duration::from_secs(2);

/// What the workload saw.
#[derive(Debug, Default)]
struct Workload {
    records: Vec<OpRecord>,
    violations: Vec<String>,
    /// Acknowledged puts: key -> revision from the response header.
    acked: HashMap<String, i64>,
    /// Keys whose put failed with an error that says it was not applied.
    not_applied: Vec<String>,
}

fn init_tracing() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
}

/// One timed call: records it and returns its result, or `Hang` if it did
/// not return within its deadline plus grace.
async fn timed<R: TestRuntime, T>(
    kind: OpKind,
    fut: impl std::future::Future<Output = etcdv3_client::Result<T>>,
    member: impl Fn(&T) -> u64,
) -> (OpRecord, Option<T>, Option<(ErrorClass, bool)>) {
    let start = Instant::now();
    let r = R::timeout(CALL_TIMEOUT + HANG_GRACE, fut).await;
    let end = Instant::now();
    let (result, value, class) = match r {
        Ok(Ok(v)) => (Ok(member(&v)), Some(v), None),
        Ok(Err(e)) => {
            let c = classify(&e);
            (
                Err((c.clone(), e.to_string())),
                None,
                Some((c, e.may_have_applied())),
            )
        }
        Err(_) => (
            Err((ErrorClass::Hang, "no answer within deadline + grace".into())),
            None,
            Some((ErrorClass::Hang, true)),
        ),
    };
    (
        OpRecord {
            kind,
            start,
            end,
            result,
        },
        value,
        class,
    )
}

/// Sequential put+get workload until `stop`; every record is pushed to `out`.
async fn run_workload<R: TestRuntime>(
    client: Client,
    prefix: String,
    stop: Arc<AtomicBool>,
    out: Arc<Mutex<Workload>>,
) {
    let mut n: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let key = format!("{prefix}{n:08}");
        let value = n.to_string();
        let (rec, put_resp, put_err) = timed::<R, _>(
            OpKind::Put,
            client.put(
                key.clone(),
                value.clone(),
                PutOptions::new().with_timeout(CALL_TIMEOUT),
            ),
            |r| r.header.as_ref().map_or(0, |h| h.member_id),
        )
        .await;
        let put_certainly_failed = put_err
            .as_ref()
            .is_some_and(|(_, may_have_applied)| !may_have_applied);
        {
            let mut w = out.lock().unwrap();
            w.records.push(rec);
            if let Some(r) = put_resp {
                let rev = r.header.map_or(0, |h| h.revision);
                w.acked.insert(key.clone(), rev);
            }
            if put_certainly_failed {
                w.not_applied.push(key.clone());
            }
        }
        let (rec, got, _) = timed::<R, _>(
            OpKind::Get,
            client.get(key.clone(), GetOptions::new().with_timeout(CALL_TIMEOUT)),
            |r| r.header.as_ref().map_or(0, |h| h.member_id),
        )
        .await;
        {
            let mut w = out.lock().unwrap();
            w.records.push(rec);
            if let Some(resp) = got {
                let seen = resp.kvs.first().map(|kv| kv.value.clone());
                let put_acked = put_err.is_none();
                if put_acked && seen.as_deref() != Some(value.as_bytes()) {
                    w.violations.push(format!(
                        "{key}: acknowledged put not seen by the next get ({seen:?})"
                    ));
                }
                if put_certainly_failed && seen.is_some() {
                    w.violations
                        .push(format!("{key}: put reported as failed but the get saw it"));
                }
            }
        }
        R::sleep(TICK).await;
    }
}

/// What the prefix watch delivered.
#[derive(Debug, Default)]
struct Watched {
    /// (mod_revision, key) of every put event, in delivery order.
    events: Vec<(i64, String)>,
    /// Highest header revision seen (events or progress).
    revision: i64,
    /// The watcher ended or failed: why.
    ended: Option<String>,
}

/// Drains the watcher into `out` until it ends or `stop` is set.
async fn collect_watch<R: TestRuntime>(
    mut watcher: etcdv3_client::api::watch::Watcher,
    stop: Arc<AtomicBool>,
    out: Arc<Mutex<Watched>>,
) {
    while !stop.load(Ordering::Relaxed) {
        let next = R::timeout(Duration::from_millis(200), watcher.next()).await;
        let Ok(next) = next else { continue };
        let mut w = out.lock().unwrap();
        match next {
            Some(Ok(WatchEvent::Events { events, revision })) => {
                for e in events {
                    if let Some(kv) = e.kv {
                        w.events.push((
                            kv.mod_revision,
                            String::from_utf8_lossy(&kv.key).into_owned(),
                        ));
                    }
                }
                w.revision = w.revision.max(revision);
            }
            Some(Ok(WatchEvent::Progress { revision })) => w.revision = w.revision.max(revision),
            Some(Ok(WatchEvent::Created { .. })) => {}
            Some(Ok(other)) => {
                w.ended = Some(format!("watcher ended: {other:?}"));
                return;
            }
            Some(Err(e)) => {
                w.ended = Some(format!("watcher failed: {e}"));
                return;
            }
            None => {
                w.ended = Some("watcher stream ended".into());
                return;
            }
        }
    }
}

/// Checks what the watch delivered against the store's final content under
/// the prefix and what the workload was told.
fn check_watch(watched: &Watched, store: &HashMap<String, i64>, work: &Workload) -> Vec<String> {
    let mut errs = Vec::new();
    if let Some(e) = &watched.ended {
        errs.push(e.clone());
    }
    for pair in watched.events.windows(2) {
        if pair[1].0 <= pair[0].0 {
            errs.push(format!(
                "watch events out of order or duplicated: revision {} ({}) after {} ({})",
                pair[1].0, pair[1].1, pair[0].0, pair[0].1
            ));
            break;
        }
    }
    let mut seen: HashMap<&str, Vec<i64>> = HashMap::new();
    for (rev, key) in &watched.events {
        seen.entry(key.as_str()).or_default().push(*rev);
    }
    for (key, revs) in &seen {
        if revs.len() != 1 {
            errs.push(format!(
                "watch delivered {key} {} times: {revs:?}",
                revs.len()
            ));
        }
        if store.get(*key) != revs.first() {
            errs.push(format!(
                "watch delivered {key} at {revs:?}, the store has it at {:?}",
                store.get(*key)
            ));
        }
    }
    for (key, rev) in store {
        if !seen.contains_key(key.as_str()) {
            errs.push(format!("watch missed {key} (revision {rev})"));
        }
    }
    for (key, rev) in &work.acked {
        if store.get(key) != Some(rev) {
            errs.push(format!(
                "put of {key} acknowledged at revision {rev}, the store has {:?}",
                store.get(key)
            ));
        }
    }
    for key in &work.not_applied {
        if store.contains_key(key) {
            errs.push(format!(
                "put of {key} reported as not applied is in the store"
            ));
        }
    }
    errs.truncate(20);
    errs
}

/// Runs a blocking testkit operation off the async workers.
async fn blocking<R: TestRuntime, T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    R::spawn_blocking(f).await
}

/// The cluster index of the member the client used most recently.
fn used_member(cluster: &Cluster, w: &Mutex<Workload>) -> usize {
    let id = busiest_member(&w.lock().unwrap().records, 100)
        .expect("no successful operation before the fault");
    cluster
        .member_ids()
        .iter()
        .position(|m| *m == id)
        .expect("answering member is not in the cluster")
}

struct Outcome {
    fault: Fault,
    watch_events: usize,
    watch_lag: Duration,
    target: String,
    stats: FaultStats,
    failures: Vec<String>,
}

async fn run_fault<R: TestRuntime>(fault: Fault) -> Outcome {
    let cluster = Arc::new(
        blocking::<R, _>(|| Cluster::start(3))
            .await
            .expect("start cluster"),
    );
    let mut options = ClientOptions::default().with_timeout(CALL_TIMEOUT);
    if fault == Fault::RemoveUsed {
        options = options.with_auto_sync(Duration::from_secs(1));
    }
    let client = R::connect(cluster.client_urls(), options)
        .await
        .expect("client");
    let stop = Arc::new(AtomicBool::new(false));
    let work = Arc::new(Mutex::new(Workload::default()));
    let watcher = client
        .watch("fo/", WatchOptions::new().with_prefix())
        .await
        .expect("watch");
    let watch_stop = Arc::new(AtomicBool::new(false));
    let watched = Arc::new(Mutex::new(Watched::default()));
    let watch_task = R::spawn(collect_watch::<R>(
        watcher,
        watch_stop.clone(),
        watched.clone(),
    ));
    let task = R::spawn(run_workload::<R>(
        client.clone(),
        "fo/".to_string(),
        stop.clone(),
        work.clone(),
    ));
    R::sleep(WARMUP).await;

    let leader = {
        let c = cluster.clone();
        blocking::<R, _>(move || c.wait_for_leader(Duration::from_secs(10)))
            .await
            .expect("leader")
    };
    let used = used_member(&cluster, &work);
    let target = match fault {
        Fault::KillLeader => leader,
        _ => used,
    };
    let role = if target == leader {
        "leader"
    } else {
        "follower"
    };
    let target_desc = match fault {
        Fault::RollingRestart => format!("all (leader m{leader}, in use m{used})"),
        _ => format!(
            "m{target} ({role}{})",
            if target == used { ", in use" } else { "" }
        ),
    };
    let target_url = cluster.member(target).client_url();
    // A mutation that reached a member whose leader is lost (leader killed,
    // paused or removed; the member cut off from its peers) can stay
    // pending inside etcd until etcd's own request timeout (7 s here):
    // the client must not retry it, so the caller waits up to the call's
    // deadline. Otherwise failover only waits for the client's own
    // detection (connection loss, or a 700 ms stall plus a 1 s ping).
    let leader_lost = fault == Fault::IsolateUsed
        || fault == Fault::RollingRestart
        || (target == leader && fault != Fault::BlackholeUsed);
    let gap_bound = if leader_lost { MAX_GAP } else { TIGHT_GAP };

    let fault_at = Instant::now();
    let c = cluster.clone();
    let hold_result = blocking::<R, _>(move || inject(&c, fault, target, HOLD)).await;
    R::sleep(TAIL).await;
    let until = Instant::now();
    stop.store(true, Ordering::Relaxed);
    task.await;

    let w = std::mem::take(&mut *work.lock().unwrap());
    let stats = fault_stats(&w.records, fault_at, until);
    let mut failures = Vec::new();

    // The store's final content under the prefix, then let the watch catch
    // up with it (it may be re-establishing after the fault).
    let mut store = HashMap::new();
    let mut store_rev = 0;
    for _ in 0..3 {
        match client
            .get(
                "fo/",
                GetOptions::new().with_prefix().with_timeout(CALL_TIMEOUT),
            )
            .await
        {
            Ok(r) => {
                store_rev = r.header.map_or(0, |h| h.revision);
                for kv in r.kvs {
                    store.insert(
                        String::from_utf8_lossy(&kv.key).into_owned(),
                        kv.mod_revision,
                    );
                }
                break;
            }
            Err(e) => failures.push(format!("final read of the store failed: {e}")),
        }
    }
    let catch_up = Instant::now();
    while catch_up.elapsed() < WATCH_CATCH_UP {
        let (rev, ended) = {
            let w = watched.lock().unwrap();
            (w.revision, w.ended.is_some())
        };
        if rev >= store_rev || ended {
            break;
        }
        R::sleep(Duration::from_millis(50)).await;
    }
    let watch_lag = catch_up.elapsed();
    watch_stop.store(true, Ordering::Relaxed);
    watch_task.await;
    {
        let watched = watched.lock().unwrap();
        if watched.revision < store_rev && watched.ended.is_none() {
            failures.push(format!(
                "watch stuck at revision {} < store revision {store_rev} after {WATCH_CATCH_UP:?}",
                watched.revision
            ));
        }
        failures.extend(check_watch(&watched, &store, &w));
    }
    if let Err(e) = hold_result {
        failures.push(format!("injecting the fault failed: {e}"));
    }
    failures.extend(w.violations.iter().cloned());
    let hangs = stats.count_errors(OpKind::Put, |c| *c == ErrorClass::Hang)
        + stats.count_errors(OpKind::Get, |c| *c == ErrorClass::Hang);
    if hangs > 0 || stats.slowest_call > CALL_TIMEOUT + HANG_GRACE {
        failures.push(format!(
            "{hangs} call(s) hung past their deadline; slowest call {:?}",
            stats.slowest_call
        ));
    }
    let bad_reads = stats.count_errors(OpKind::Get, |c| *c != ErrorClass::DeadlineExceeded);
    if bad_reads > 0 {
        failures.push(format!(
            "reads failed with errors other than DeadlineExceeded: {}",
            stats.error_summary()
        ));
    }
    let bad_puts = stats.count_errors(OpKind::Put, |c| {
        !matches!(c, ErrorClass::OutcomeUnknown | ErrorClass::DeadlineExceeded)
    });
    if bad_puts > 0 {
        failures.push(format!(
            "puts failed with errors other than OutcomeUnknown/DeadlineExceeded: {}",
            stats.error_summary()
        ));
    }
    if stats.longest_gap >= gap_bound {
        failures.push(format!(
            "longest gap {:?} >= {gap_bound:?}",
            stats.longest_gap
        ));
    }
    // Liveness after the fault is undone: the tail must see successes.
    let tail_ok = w
        .records
        .iter()
        .filter(|r| r.result.is_ok() && r.end + TAIL / 2 >= until)
        .count();
    if tail_ok == 0 {
        failures.push("no successful operation in the last second".into());
    }
    if fault == Fault::RemoveUsed {
        // Auto-sync must have dropped the removed member's endpoint.
        let listed = client
            .endpoint_states()
            .iter()
            .any(|s| target_url.ends_with(&s.endpoint.authority()));
        if listed {
            failures.push(format!(
                "removed endpoint {target_url} still in the client's endpoint set"
            ));
        }
    }
    client.close();
    blocking::<R, _>(move || drop(cluster)).await;
    let watch_events = watched.lock().unwrap().events.len();
    Outcome {
        fault,
        watch_events,
        watch_lag,
        target: target_desc,
        stats,
        failures,
    }
}

/// Every fault in turn, on runtime `R`; the runtime variants run one at a
/// time (`exclusive`), like the faults.
async fn failover_under_real_faults<R: TestRuntime>() {
    init_tracing();
    let only = std::env::var("FAILOVER_ONLY").ok();
    let mut outcomes = Vec::new();
    for fault in FAULTS {
        if only.as_deref().is_some_and(|o| !fault.name().contains(o)) {
            continue;
        }
        let o = run_fault::<R>(fault).await;
        eprintln!(
            "[failover] {:<9} {:<24} target {:<34} gap {:>6} ms (put {:>6} ms, get {:>6} ms) slowest call {:>5} ms ok {:>5} errors: {}",
            R::NAME,
            o.fault.name(),
            o.target,
            o.stats.longest_gap.as_millis(),
            o.stats.longest_put_gap.as_millis(),
            o.stats.longest_get_gap.as_millis(),
            o.stats.slowest_call.as_millis(),
            o.stats.ok,
            o.stats.error_summary()
        );
        eprintln!(
            "[failover] {:<9}     watch: {} events, caught up {} ms after the run",
            R::NAME,
            o.watch_events,
            o.watch_lag.as_millis()
        );
        for ((k, c), msg) in &o.stats.examples {
            eprintln!("[failover] {:<9}     e.g. {k}:{c}: {msg}", R::NAME);
        }
        outcomes.push(o);
    }
    let failed: BTreeMap<&str, &Vec<String>> = outcomes
        .iter()
        .filter(|o| !o.failures.is_empty())
        .map(|o| (o.fault.name(), &o.failures))
        .collect();
    assert!(!outcomes.is_empty(), "FAILOVER_ONLY matched no fault");
    assert!(
        failed.is_empty(),
        "failover properties violated on {}: {failed:#?}",
        R::NAME
    );
}

etcdv3_integration::runtime_tests!(exclusive: failover_under_real_faults);
