//! Failover against real 3-member etcd clusters with real faults, held to
//! the numbers docs/failure-semantics.md reports.
//!
//! Every fault runs twice, aimed once at the leader and once at a follower
//! (plus a rolling restart of all members), sequentially: parallel clusters
//! on a 2-core machine would starve each other and distort the gaps. The
//! faults share one cluster, undone and healthy again between scenarios,
//! except the removal of the leader, which gets its own (a removal is for
//! good, so the removal of a follower closes the shared cluster's run).
//!
//! Each scenario uses a fresh client on which run, concurrently:
//! * a put loop: one put of a fresh key every ~10 ms (5 s deadline);
//! * a get loop: a get of the latest acknowledged key every ~10 ms;
//! * a prefix watch on the scenario's keys;
//! * a TTL-5 lease kept alive by the client's keep-alive, with a key
//!   attached,
//!
//! while the fault is injected, held 4 s and undone, then 1 s more, and 1 s
//! more once the cluster has a leader again (on etcd 3.4, without pre-vote,
//! a member rejoining after a cut holds an election first). The whole
//! run happens once per runtime (tokio and async-std, one after the other):
//!
//! ```text
//! cargo test -p etcdv3-integration --test failover -- --nocapture
//! cargo test -p etcdv3-integration --test failover async_std    # one runtime
//! FAILOVER_ONLY=SIGSTOP cargo test ...     # scenarios whose name contains it
//! RUST_LOG=etcdv3_client=debug cargo test ...   # client tracing on stderr
//! ```
//!
//! The clusters run with raft pre-vote on (etcd 3.5's default; etcd 3.4's
//! default is off, and a member cut off from its peers then deposes the
//! leader when it rejoins: an election after the heal that is the server's,
//! not the client's).
//!
//! Asserted per scenario:
//! * the longest time without a successful put, from the injection on, is
//!   under 2.5 s for a fault of the leader (and the rolling restart), and
//!   under 0.3 s for a fault of a follower that no put was sent to (a put
//!   that was, fails as outcome unknown: then 2.5 s);
//! * no put fails with `DeadlineExceeded` (nor anything but
//!   `OutcomeUnknown`), no read with anything but `DeadlineExceeded`, no
//!   call returns later than its deadline plus 1 s, and puts succeed in the
//!   last second of the scenario, which starts once the cluster has a leader
//!   again after the fault;
//! * read-your-writes: a get started after a put was acknowledged sees it;
//! * the watch delivers every put the store holds at the end (which includes
//!   every acknowledged one, at the revision its response reported) exactly
//!   once, in strictly increasing revision order, and nothing reported as
//!   certainly not applied;
//! * the lease never expires: the keeper reports no expiry, and afterwards
//!   the server still has the lease with the key attached.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etcdv3_client::api::{GetOptions, LeaseGrantOptions, PutOptions, WatchOptions};
use etcdv3_client::ClientOptions;
use etcdv3_failover::{
    check_watch, check_writes, collect_watch, get_loop, lock, put_loop, read_store, settle, Role,
    Scenario, SharedLog, CALL_TIMEOUT, HANG_GRACE,
};
use etcdv3_integration::failover_support::{
    busiest_member, fault_stats, inject, ErrorClass, Fault, FaultStats, OpKind, OpRecord,
};
use etcdv3_integration::runtime::TestRuntime;
use etcdv3_testkit::fault::ElectionClock;
use etcdv3_testkit::{Cluster, ClusterBuilder};
use futures_util::StreamExt;

/// Bound on the put gap of a rolling restart, and of a leader fault whose
/// election the suite could not time (measured: 1.0-2.1 s).
const LEADER_GAP: Duration = Duration::from_millis(2500);
/// What a leader fault may cost beyond the cluster's own election (timed
/// by `ElectionClock`, from the fault to a member naming a new leader): the
/// client's share of the gap (measured: -0.2 to 0.3 s; issue 17 §9).
const ELECTION_SLACK: Duration = Duration::from_millis(500);
/// The testkit's `--election-timeout`: a fault that leaves the leader in
/// place (its client link blackholed) may cost that plus the slack.
const ELECTION_TIMEOUT: Duration = Duration::from_millis(1000);
/// Puts a leader fault may leave "outcome unknown": the one in flight on
/// the leader when it went (the next wait for the new leader instead of
/// being forwarded to the old one).
const LEADER_FAULT_UNKNOWNS: usize = 1;
/// Bound on the put gap when the leader removes itself from the cluster
/// (measured: 1.3-2.6 s). etcd keeps a removed member running for a fixed
/// 1 s after it applies its own removal (`stopWithDelay(10*100ms)` in
/// etcdserver) before it stops, and only then does the election timeout
/// (1-2 s randomized) start on the others: one second more than any other
/// leader fault, whatever the client does.
const REMOVED_LEADER_GAP: Duration = Duration::from_millis(3500);
/// Bound on the put gap of a follower fault no put was sent to (measured:
/// 30-40 ms).
const FOLLOWER_GAP: Duration = Duration::from_millis(300);
/// Loose bound on the get gap (reads on a faulty member wait for its
/// detection, then retry).
const GET_GAP: Duration = Duration::from_secs(4);
/// How long the watch may take to catch up with the store after the run.
const WATCH_CATCH_UP: Duration = Duration::from_secs(15);
/// Workload time before the fault.
const WARMUP: Duration = Duration::from_millis(1500);
/// How long a fault is held before it is undone (or, for a removal, how
/// long the workload runs on before the tail).
const HOLD: Duration = Duration::from_secs(4);
/// Workload time after the fault is undone, before the cluster is asked
/// for its leader.
const TAIL: Duration = Duration::from_secs(1);
/// Workload time once the cluster has a leader again after the fault: puts
/// must succeed in it. (On etcd 3.4, where pre-vote is off by default, a
/// member cut off from its peers rejoins with the higher term it campaigned
/// at and deposes the leader: the cluster holds an election after the heal
/// that no client can shorten; the liveness window starts after it.)
const LIVENESS: Duration = Duration::from_secs(1);
/// TTL of the scenario's lease, seconds.
const LEASE_TTL: i64 = 5;

/// The scenarios, grouped by the cluster they share.
fn cluster_groups() -> Vec<Vec<Scenario>> {
    let s = |fault, role| Scenario { fault, role };
    let mut shared = Vec::new();
    for fault in [
        Fault::KillUsed,
        Fault::PauseUsed,
        Fault::IsolateUsed,
        Fault::BlackholeUsed,
    ] {
        shared.push(s(fault, Role::Leader));
        shared.push(s(fault, Role::Follower));
    }
    shared.push(s(Fault::RollingRestart, Role::All));
    shared.push(s(Fault::RemoveUsed, Role::Follower));
    vec![shared, vec![s(Fault::RemoveUsed, Role::Leader)]]
}

fn init_tracing() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
}

/// What the lease keeper reported.
#[derive(Debug, Default)]
struct LeaseLog {
    renewals: usize,
    /// When each renewal was received.
    renewed_at: Vec<Instant>,
    /// When the keeper said the lease may have expired (its local deadline
    /// passed unrenewed; a renewal may follow: the server had extended it).
    lapsed_at: Vec<Instant>,
    /// The keeper's error (an expiry), with when it came.
    error: Option<String>,
}

/// Drains the keeper until `stop` or its first error.
async fn watch_keeper<R: TestRuntime>(
    mut keeper: etcdv3_client::api::LeaseKeeper,
    stop: Arc<AtomicBool>,
    out: Arc<Mutex<LeaseLog>>,
) {
    while !stop.load(Ordering::Relaxed) {
        let Ok(next) = R::timeout(Duration::from_millis(200), keeper.next()).await else {
            continue;
        };
        let mut log = out.lock().unwrap();
        match next {
            Some(Ok(etcdv3_client::api::KeepAliveEvent::Renewed { .. })) => {
                log.renewals += 1;
                log.renewed_at.push(Instant::now());
            }
            Some(Ok(_)) => log.lapsed_at.push(Instant::now()),
            Some(Err(e)) => {
                log.error = Some(e.to_string());
                return;
            }
            None => {
                log.error = Some("keeper ended".into());
                return;
            }
        }
    }
}

/// Runs a blocking testkit operation off the async workers.
async fn blocking<R: TestRuntime, T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    R::spawn_blocking(f).await
}

/// The cluster index of the member with the given raft id.
fn index_of(cluster: &Cluster, id: u64) -> Option<usize> {
    cluster.member_ids().iter().position(|m| *m == id)
}

struct Outcome {
    name: String,
    target: String,
    gap_bound: Duration,
    /// How long the cluster took to name a new leader (timed leader faults).
    election: Option<Duration>,
    watch_events: usize,
    watch_lag: Duration,
    lease_renewals: usize,
    stats: FaultStats,
    failures: Vec<String>,
    /// The failures are only gap bounds broken (no lost event, no lost
    /// lease, no wrong error, no hang).
    timing_only: bool,
}

async fn run_scenario<R: TestRuntime>(
    cluster: Arc<Cluster>,
    index: usize,
    scenario: Scenario,
    removed: Vec<usize>,
) -> Outcome {
    let Scenario { fault, role } = scenario;
    let mut failures = Vec::new();
    let c = cluster.clone();
    if let Err(e) = blocking::<R, _>(move || settle(&c, &removed)).await {
        failures.push(format!("before the scenario: {e}"));
    }
    let mut options = ClientOptions::default().with_timeout(CALL_TIMEOUT);
    if fault == Fault::RemoveUsed {
        options = options.with_auto_sync(Duration::from_secs(1));
    }
    let client = R::connect(cluster.client_urls(), options)
        .await
        .expect("client");
    let prefix = format!("fo/{index}/");
    let lease_key = format!("fo-lease/{index}");

    let watcher = client
        .watch(prefix.clone(), WatchOptions::new().with_prefix())
        .await
        .expect("watch");
    let lease = client
        .lease_grant(LEASE_TTL, LeaseGrantOptions::new())
        .await
        .expect("lease grant")
        .id;
    client
        .put(
            lease_key.clone(),
            "held",
            PutOptions::new().with_lease(lease),
        )
        .await
        .expect("put with the lease");
    let keeper = client.lease_keep_alive(lease).await.expect("keep-alive");

    let stop = Arc::new(AtomicBool::new(false));
    let side_stop = Arc::new(AtomicBool::new(false));
    let log = SharedLog::default();
    let lease_log = Arc::new(Mutex::new(LeaseLog::default()));
    let watch_task = R::spawn(collect_watch(
        watcher,
        side_stop.clone(),
        log.clone(),
        R::sleep,
    ));
    let keeper_task = R::spawn(watch_keeper::<R>(
        keeper,
        side_stop.clone(),
        lease_log.clone(),
    ));
    let puts = R::spawn(put_loop(
        client.clone(),
        prefix.clone(),
        stop.clone(),
        log.clone(),
        R::sleep,
    ));
    let gets = R::spawn(get_loop(
        client.clone(),
        stop.clone(),
        log.clone(),
        R::sleep,
    ));
    R::sleep(WARMUP).await;

    let c = cluster.clone();
    let leader = blocking::<R, _>(move || c.wait_for_leader(Duration::from_secs(10)))
        .await
        .expect("leader");
    // The follower that answered most operations (the leader's answers left
    // out): the one the client has the most to lose on.
    let follower = {
        let leader_id = cluster.member_ids()[leader];
        let records: Vec<OpRecord> = lock(&log)
            .records
            .iter()
            .filter(|r| r.result.as_ref().is_ok_and(|m| *m != leader_id))
            .cloned()
            .collect();
        busiest_member(&records, usize::MAX)
            .and_then(|id| index_of(&cluster, id))
            .unwrap_or_else(|| {
                (1..cluster.size())
                    .map(|d| (leader + d) % cluster.size())
                    .find(|i| !cluster_removed(&cluster, *i))
                    .unwrap_or((leader + 1) % cluster.size())
            })
    };
    let target = match role {
        Role::Leader => leader,
        Role::Follower | Role::All => follower,
    };
    let target_desc = match role {
        Role::All => format!("all (leader m{leader})"),
        Role::Leader => format!("m{target} (leader)"),
        Role::Follower => format!("m{target} (follower)"),
    };
    let target_url = cluster.member(target).client_url();

    let fault_at = Instant::now();
    // The leader faults that make the cluster elect: time the election.
    let timed = role == Role::Leader
        && matches!(
            fault,
            Fault::KillUsed | Fault::PauseUsed | Fault::IsolateUsed
        );
    let clock = if timed {
        match ElectionClock::start(cluster.clone(), target, fault_at, HOLD) {
            Ok(c) => Some(c),
            Err(e) => {
                failures.push(format!("timing the election failed: {e}"));
                None
            }
        }
    } else {
        None
    };
    let c = cluster.clone();
    let hold_result = blocking::<R, _>(move || inject(&c, fault, target, HOLD)).await;
    let election = match clock {
        Some(c) => blocking::<R, _>(move || c.finish()).await,
        None => None,
    };
    R::sleep(TAIL).await;
    let c = cluster.clone();
    if let Err(e) = blocking::<R, _>(move || c.wait_for_leader(Duration::from_secs(10))).await {
        failures.push(format!("no leader after the fault was undone: {e}"));
    }
    R::sleep(LIVENESS).await;
    let until = Instant::now();
    stop.store(true, Ordering::Relaxed);
    puts.await;
    gets.await;

    // The watch still runs: take the puts' and gets' records alone.
    let records = std::mem::take(&mut lock(&log).records);
    let stats = fault_stats(&records, fault_at, until);

    // The store's final content under the prefix, then let the watch catch
    // up with it (it may be re-establishing after the fault).
    let store = match read_store(&client, &prefix, R::sleep).await {
        Ok(store) => store,
        Err(e) => {
            failures.push(format!("final read of the store failed: {e}"));
            Default::default()
        }
    };
    let store_rev = store.revision;
    let catch_up = Instant::now();
    while catch_up.elapsed() < WATCH_CATCH_UP {
        let (rev, ended) = {
            let w = lock(&log);
            (w.watch_revision, w.watch_ended.is_some())
        };
        if rev >= store_rev || ended {
            break;
        }
        R::sleep(Duration::from_millis(50)).await;
    }
    let watch_lag = catch_up.elapsed();
    side_stop.store(true, Ordering::Relaxed);
    keeper_task.await;
    let lease_log = std::mem::take(&mut *lease_log.lock().unwrap());
    // etcd before 3.4.28 / 3.5.11 (etcd-io/etcd#12528, fixed by #16822): a
    // leader that was stopped resumes believing it still leads; its lessor
    // has had no renewal for the whole pause (they went to the new leader),
    // so it finds the lease expired and proposes a revoke, which raft
    // forwards to the new leader once the old one stepped down. Whether it
    // happens depends on when the last renewal reached the old leader
    // before the pause. The client did its part when the keeper renewed
    // while the old leader was still stopped (only the new leader can have
    // answered): the loss is then etcd's, and is reported, not failed.
    let v = cluster.server_version();
    let server_revokes_on_resume = (v.major, v.minor) < (3, 4)
        || ((v.major, v.minor) == (3, 4) && v.patch < 28)
        || ((v.major, v.minor) == (3, 5) && v.patch < 11);
    let renewed_by_new_leader = lease_log
        .renewed_at
        .iter()
        .any(|t| *t > fault_at && *t < fault_at + HOLD);
    let etcd_revoked = fault == Fault::PauseUsed
        && role == Role::Leader
        && server_revokes_on_resume
        && renewed_by_new_leader;
    let mut lease_failures = Vec::new();
    // The lease, as the server sees it after the fault.
    match client.lease_time_to_live(lease, true).await {
        Ok(r) if r.ttl > 0 && r.keys.iter().any(|k| *k == lease_key.as_bytes()) => {}
        Ok(r) => lease_failures.push(format!(
            "the TTL-{LEASE_TTL} lease expired or lost its key during the fault: TTL {} s, keys {:?}",
            r.ttl,
            r.keys
                .iter()
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .collect::<Vec<_>>()
        )),
        Err(e) => failures.push(format!("lease time-to-live after the fault failed: {e}")),
    }
    match client.get(lease_key.clone(), GetOptions::new()).await {
        Ok(r) if r.kvs.len() == 1 => {}
        Ok(_) => lease_failures.push(format!("the lease's key {lease_key} is gone")),
        Err(e) => failures.push(format!("reading the lease's key failed: {e}")),
    }
    watch_task.await;
    if let Some(e) = &lease_log.error {
        lease_failures.push(format!("the lease keeper reported: {e}"));
    }
    for t in &lease_log.lapsed_at {
        // Honest, not a failure by itself: renewals went unanswered for a
        // whole TTL (the server's view is checked above).
        eprintln!(
            "[failover] the keeper said the lease may have expired {:.2} s after the fault",
            t.saturating_duration_since(fault_at).as_secs_f64()
        );
    }
    if etcd_revoked && !lease_failures.is_empty() {
        eprintln!(
            "[failover] lease lost after the stopped leader resumed: etcd {}.{}.{} revokes it (etcd-io/etcd#12528); \
             the keeper had renewed on the new leader during the pause: {lease_failures:?}",
            v.major, v.minor, v.patch
        );
    } else {
        failures.extend(lease_failures);
    }
    {
        let w = lock(&log);
        if w.watch_revision < store_rev && w.watch_ended.is_none() {
            failures.push(format!(
                "watch stuck at revision {} < store revision {store_rev} after {WATCH_CATCH_UP:?}",
                w.watch_revision
            ));
        }
        failures.extend(check_watch(&w.watched, &store.keys, w.watch_ended.clone()).problems);
        failures.extend(check_writes(&w, &store.keys).problems);
        failures.extend(w.stale_reads.iter().take(10).cloned());
    }
    if let Err(e) = hold_result {
        failures.push(format!("injecting the fault failed: {e}"));
    }
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
    let put_errors = stats.count_errors(OpKind::Put, |_| true);
    let bad_puts = stats.count_errors(OpKind::Put, |c| *c != ErrorClass::OutcomeUnknown);
    if bad_puts > 0 {
        failures.push(format!(
            "puts failed with errors other than OutcomeUnknown: {}",
            stats.error_summary()
        ));
    }
    // A follower fault costs puts nothing unless a put was on the follower
    // (it then fails as outcome unknown once the fault is detected). A
    // follower cut off from its peers is the exception the cluster makes
    // itself: when it rejoins with the higher term it campaigned at, raft
    // may hold an election that stalls every write for a moment (seen:
    // 324 ms), whatever the client does; that fault gets the leader bound.
    let gap_bound = if role == Role::Follower && put_errors == 0 && fault != Fault::IsolateUsed {
        FOLLOWER_GAP
    } else if role == Role::Leader && fault == Fault::RemoveUsed {
        REMOVED_LEADER_GAP
    } else if role == Role::Leader && fault == Fault::BlackholeUsed {
        ELECTION_TIMEOUT + ELECTION_SLACK
    } else if let Some(e) = election {
        e + ELECTION_SLACK
    } else {
        LEADER_GAP
    };
    let unknowns = stats.count_errors(OpKind::Put, |c| *c == ErrorClass::OutcomeUnknown);
    if role == Role::Leader && fault != Fault::RemoveUsed && unknowns > LEADER_FAULT_UNKNOWNS {
        let why: Vec<String> = records
            .iter()
            .filter_map(|r| match &r.result {
                Err((ErrorClass::OutcomeUnknown, text)) if r.kind == OpKind::Put => Some(format!(
                    "{} ms after the fault: {text}",
                    r.end.saturating_duration_since(fault_at).as_millis()
                )),
                _ => None,
            })
            .collect();
        failures.push(format!(
            "leader fault: {unknowns} outcome-unknown puts > {LEADER_FAULT_UNKNOWNS}: {why:?}"
        ));
    }
    if stats.longest_put_gap >= gap_bound {
        failures.push(format!(
            "longest put gap {:?} >= {gap_bound:?}",
            stats.longest_put_gap
        ));
    }
    if stats.longest_get_gap >= GET_GAP {
        failures.push(format!(
            "longest get gap {:?} >= {GET_GAP:?}",
            stats.longest_get_gap
        ));
    }
    // Liveness after the fault is undone: puts succeed once the cluster
    // has a leader again.
    let tail_puts = records
        .iter()
        .filter(|r| r.kind == OpKind::Put && r.result.is_ok())
        .filter(|r| r.end + LIVENESS >= until)
        .count();
    if tail_puts == 0 {
        failures.push(format!(
            "no successful put in the {LIVENESS:?} after the cluster had a leader again"
        ));
    }
    if fault == Fault::RemoveUsed {
        // Auto-sync must have dropped the removed member's endpoint.
        let listed = client
            .endpoint_states()
            .iter()
            .any(|s| target_url.ends_with(s.endpoint.rsplit('/').next().unwrap_or_default()));
        if listed {
            failures.push(format!(
                "removed endpoint {target_url} still in the client's endpoint set"
            ));
        }
    }
    let timing_only = !failures.is_empty()
        && failures
            .iter()
            .all(|f| f.starts_with("longest ") || f.starts_with("leader fault: "));
    client.close();
    let watch_events = lock(&log).watched.len();
    Outcome {
        name: scenario.name(),
        target: target_desc,
        gap_bound,
        election,
        watch_events,
        watch_lag,
        lease_renewals: lease_log.renewals,
        stats,
        failures,
        timing_only,
    }
}

/// Whether member `i` was removed (its status cannot be asked).
fn cluster_removed(cluster: &Cluster, i: usize) -> bool {
    matches!(
        cluster.member_status(i),
        Err(etcdv3_testkit::TestkitError::Removed(_))
    )
}

/// Every scenario in turn, on runtime `R`; the runtime variants run one at a
/// time (`exclusive`), like the scenarios.
async fn failover_under_real_faults<R: TestRuntime>() {
    init_tracing();
    let only = std::env::var("FAILOVER_ONLY").ok();
    let started = Instant::now();
    let mut outcomes = Vec::new();
    let mut index = 0;
    for group in cluster_groups() {
        let group: Vec<Scenario> = group
            .into_iter()
            .filter(|s| only.as_deref().is_none_or(|o| s.name().contains(o)))
            .collect();
        if group.is_empty() {
            continue;
        }
        let cluster = Arc::new(
            // Pre-vote on, as etcd 3.5 has it by default: without it (etcd
            // 3.4's default) a member cut off from its peers deposes the
            // leader when it rejoins, an election after the heal that no
            // client can shorten (seen on 3.4: put gaps of 3.9-4.3 s).
            blocking::<R, _>(|| ClusterBuilder::new(3).pre_vote(true).start())
                .await
                .expect("start cluster"),
        );
        let mut removed = Vec::new();
        for scenario in group {
            index += 1;
            let mut o = run_scenario::<R>(cluster.clone(), index, scenario, removed.clone()).await;
            // A gap bound broken once may be the shared machine (a member
            // starved of CPU holds its election late); it fails the suite
            // when the scenario breaks it again right after. Anything else
            // (a lost event or lease, a wrong error, a hang) fails at once.
            // A removal cannot be repeated on the same cluster.
            if o.timing_only && scenario.fault != Fault::RemoveUsed {
                eprintln!(
                    "[failover] {:<9} {:<32} broke a gap bound ({:?}); running it once more",
                    R::NAME,
                    o.name,
                    o.failures
                );
                index += 1;
                o = run_scenario::<R>(cluster.clone(), index, scenario, removed.clone()).await;
            } else if o.timing_only && scenario.role == Role::Leader {
                // The removal of the leader has a cluster of its own: it
                // runs once more on a fresh one (seen once on etcd 3.4 in
                // a loaded CI-like run: 4.3 s, against 1.2-1.9 s in the
                // runs around it).
                eprintln!(
                    "[failover] {:<9} {:<32} broke a gap bound ({:?}); running it once more on a fresh cluster",
                    R::NAME,
                    o.name,
                    o.failures
                );
                let fresh = Arc::new(
                    blocking::<R, _>(|| ClusterBuilder::new(3).pre_vote(true).start())
                        .await
                        .expect("start cluster"),
                );
                index += 1;
                o = run_scenario::<R>(fresh.clone(), index, scenario, Vec::new()).await;
                blocking::<R, _>(move || drop(fresh)).await;
            }
            if scenario.fault == Fault::RemoveUsed {
                removed.extend((0..cluster.size()).filter(|&i| cluster_removed(&cluster, i)));
            }
            eprintln!(
                "[failover] {:<9} {:<32} target {:<22} put gap {:>5} ms (bound {:>4} ms), get gap {:>5} ms, slowest call {:>5} ms, ok {:>5}, errors: {}",
                R::NAME,
                o.name,
                o.target,
                o.stats.longest_put_gap.as_millis(),
                o.gap_bound.as_millis(),
                o.stats.longest_get_gap.as_millis(),
                o.stats.slowest_call.as_millis(),
                o.stats.ok,
                o.stats.error_summary()
            );
            if let Some(e) = o.election {
                eprintln!(
                    "[failover] {:<9}     election: a new leader {} ms after the fault; the client's share of the put gap {} ms",
                    R::NAME,
                    e.as_millis(),
                    o.stats.longest_put_gap.as_millis() as i64 - e.as_millis() as i64
                );
            }
            eprintln!(
                "[failover] {:<9}     watch: {} events, caught up {} ms after the run; lease: {} renewals",
                R::NAME,
                o.watch_events,
                o.watch_lag.as_millis(),
                o.lease_renewals
            );
            for ((k, c), msg) in &o.stats.examples {
                eprintln!("[failover] {:<9}     e.g. {k}:{c}: {msg}", R::NAME);
            }
            outcomes.push(o);
        }
        blocking::<R, _>(move || drop(cluster)).await;
    }
    eprintln!(
        "[failover] {}: {} scenarios in {:.1} s",
        R::NAME,
        outcomes.len(),
        started.elapsed().as_secs_f64()
    );
    let failed: BTreeMap<&str, &Vec<String>> = outcomes
        .iter()
        .filter(|o| !o.failures.is_empty())
        .map(|o| (o.name.as_str(), &o.failures))
        .collect();
    assert!(!outcomes.is_empty(), "FAILOVER_ONLY matched no scenario");
    assert!(
        failed.is_empty(),
        "failover properties violated on {}: {failed:#?}",
        R::NAME
    );
}

etcdv3_integration::runtime_tests!(exclusive: failover_under_real_faults);
