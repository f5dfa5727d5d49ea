//! The failover workload, written once for the three places that run it: the
//! failover suite (`tests/failover.rs`, on tokio and async-std),
//! `failover-bench` (etcdv3 and the `etcd-client` crate) and `etcdv3ctl demo`.
//!
//! While a fault runs, a client
//! * puts fresh keys `<prefix>00000001`, `<prefix>00000002`, ... one after the
//!   other, [`TICK`] apart ([`put_loop`]), each with the [`CALL_TIMEOUT`]
//!   deadline, and remembers which were acknowledged (at which revision),
//!   which may have applied and which certainly did not;
//! * reads the latest acknowledged key back, [`TICK`] apart ([`get_loop`]):
//!   each read must see the value acknowledged before it started;
//! * watches the prefix ([`collect_watch`]).
//!
//! Every call is recorded as an [`OpRecord`] (which member answered, or how
//! the call failed; a call not back [`HANG_GRACE`] after its deadline is a
//! `Hang`), the input of [`etcdv3_testkit::fault::fault_stats`]. At the end
//! the store is read back ([`read_store`]) and the writes and the watch are
//! checked against it ([`check_writes`], [`check_watch`]).
//!
//! The workload takes its runtime's timer as a [`SleepFn`], so one body
//! serves tokio and async-std; the fault schedule and the statistics live in
//! [`etcdv3_testkit::fault`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use etcdv3_client::api::watch::Watcher;
use etcdv3_client::api::{GetOptions, PutOptions, WatchEvent};
use etcdv3_client::Client;
use etcdv3_testkit::fault::{ErrorClass, Fault, OpKind, OpRecord};
use etcdv3_testkit::Cluster;
use futures_util::future::{self, BoxFuture, Either};
use futures_util::StreamExt;
use serde::Serialize;

/// Deadline of every workload call.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// A call that has not returned this long after its deadline is a hang.
pub const HANG_GRACE: Duration = Duration::from_secs(1);
/// Pause between two calls of one workload loop.
pub const TICK: Duration = Duration::from_millis(10);
/// How often the watch collector looks at its stop flag while no event comes.
const WATCH_POLL: Duration = Duration::from_millis(200);
/// Reads of the store at the end: attempts, and the pause between two.
const READ_BACK_ATTEMPTS: usize = 5;
const READ_BACK_PAUSE: Duration = Duration::from_millis(500);

/// Which member a scenario's fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// The raft leader.
    Leader,
    /// A follower.
    Follower,
    /// Every member in turn (rolling restart).
    All,
}

/// One scenario of the failover suite and the benchmark: a fault and its
/// target's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scenario {
    /// The fault.
    pub fault: Fault,
    /// Whom it hits.
    pub role: Role,
}

impl Scenario {
    /// `SIGKILL (leader)`, `isolate from peers (follower)`, `rolling restart`...
    pub fn name(self) -> String {
        let base = match self.fault {
            Fault::KillUsed | Fault::KillLeader => "SIGKILL",
            Fault::PauseUsed => "SIGSTOP",
            Fault::IsolateUsed => "isolate from peers",
            Fault::BlackholeUsed => "blackhole client link",
            Fault::RollingRestart => "rolling restart",
            Fault::RemoveUsed => "remove member",
        };
        match self.role {
            Role::Leader => format!("{base} (leader)"),
            Role::Follower => format!("{base} (follower)"),
            Role::All => base.to_string(),
        }
    }
}

/// A runtime's sleep, boxed.
pub type Sleep = BoxFuture<'static, ()>;
/// The runtime's timer: `|d| Box::pin(tokio::time::sleep(d))`, or
/// async-std's; the integration suite passes `TestRuntime::sleep`.
pub type SleepFn = fn(Duration) -> Sleep;

/// `fut`'s output, or `None` if `sleep(after)` completes first.
pub async fn timeout<F: Future>(sleep: SleepFn, after: Duration, fut: F) -> Option<F::Output> {
    match future::select(std::pin::pin!(fut), sleep(after)).await {
        Either::Left((v, _)) => Some(v),
        Either::Right(_) => None,
    }
}

/// How a workload call failed.
#[derive(Debug, Clone)]
pub struct CallError {
    /// The coarse class ([`etcdv3_client::Error::class`] for etcdv3).
    pub class: ErrorClass,
    /// The error's text.
    pub text: String,
    /// The call may have been applied (outcome unknown, or no answer).
    pub may_have_applied: bool,
}

impl From<etcdv3_client::Error> for CallError {
    fn from(e: etcdv3_client::Error) -> Self {
        CallError {
            class: e.class(),
            text: e.to_string(),
            may_have_applied: e.may_have_applied(),
        }
    }
}

/// Whatever sends the workload's puts: an etcdv3 [`Client`], or in
/// `failover-bench` another client library.
pub trait Putter: Send + 'static {
    /// One put with the [`CALL_TIMEOUT`] deadline: the id of the member that
    /// answered and the revision it reported (0 where the library does not
    /// say).
    fn put(
        &mut self,
        key: String,
        value: String,
    ) -> impl Future<Output = Result<(u64, i64), CallError>> + Send;
}

impl Putter for Client {
    async fn put(&mut self, key: String, value: String) -> Result<(u64, i64), CallError> {
        let r = Client::put(
            self,
            key,
            value,
            PutOptions::new().with_timeout(CALL_TIMEOUT),
        )
        .await?;
        Ok(r.header.map_or((0, 0), |h| (h.member_id, h.revision)))
    }
}

/// What the workload saw, shared by its loops (and whoever watches them).
#[derive(Debug, Default)]
pub struct Log {
    /// Every put and get, in completion order.
    pub records: Vec<OpRecord>,
    /// Acknowledged puts: key -> revision from the response header.
    pub acked: HashMap<String, i64>,
    /// Puts that may have applied (outcome unknown, hang).
    pub unknown: Vec<String>,
    /// Puts that certainly did not apply.
    pub not_applied: Vec<String>,
    /// The latest acknowledged put: (key, value).
    pub last_acked: Option<(String, String)>,
    /// Reads that did not see the put acknowledged before they started.
    pub stale_reads: Vec<String>,
    /// (mod_revision, key) of every put event the watch delivered, in order.
    pub watched: Vec<(i64, String)>,
    /// Highest header revision the watch reported (events or progress).
    pub watch_revision: i64,
    /// The watch ended or failed: why.
    pub watch_ended: Option<String>,
}

/// The [`Log`] the loops share.
pub type SharedLog = Arc<Mutex<Log>>;

/// Locks the log, whatever a panicking holder left in it.
pub fn lock(log: &Mutex<Log>) -> MutexGuard<'_, Log> {
    log.lock().unwrap_or_else(|e| e.into_inner())
}

/// One timed call: its record and its value.
async fn timed<T>(
    sleep: SleepFn,
    kind: OpKind,
    fut: impl Future<Output = Result<T, CallError>>,
    member: impl Fn(&T) -> u64,
) -> (OpRecord, Result<T, CallError>) {
    let start = Instant::now();
    let r = timeout(sleep, CALL_TIMEOUT + HANG_GRACE, fut)
        .await
        .unwrap_or_else(|| {
            Err(CallError {
                class: ErrorClass::Hang,
                text: "no answer within deadline + grace".into(),
                may_have_applied: true,
            })
        });
    let result = match &r {
        Ok(v) => Ok(member(v)),
        Err(e) => Err((e.class.clone(), e.text.clone())),
    };
    let end = Instant::now();
    (
        OpRecord {
            kind,
            start,
            end,
            result,
        },
        r,
    )
}

/// Sequential puts of fresh keys under `prefix` until `stop`.
pub async fn put_loop<P: Putter>(
    mut putter: P,
    prefix: String,
    stop: Arc<AtomicBool>,
    log: SharedLog,
    sleep: SleepFn,
) {
    let mut n: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let key = format!("{prefix}{n:08}");
        let value = n.to_string();
        let (rec, resp) = timed(
            sleep,
            OpKind::Put,
            putter.put(key.clone(), value.clone()),
            |(member, _)| *member,
        )
        .await;
        {
            let mut w = lock(&log);
            w.records.push(rec);
            match resp {
                Ok((_, rev)) => {
                    w.acked.insert(key.clone(), rev);
                    w.last_acked = Some((key, value));
                }
                Err(e) if e.may_have_applied => w.unknown.push(key),
                Err(_) => w.not_applied.push(key),
            }
        }
        sleep(TICK).await;
    }
}

/// Sequential gets of the latest acknowledged key until `stop`: each must
/// see the value that was acknowledged before it started.
pub async fn get_loop(client: Client, stop: Arc<AtomicBool>, log: SharedLog, sleep: SleepFn) {
    while !stop.load(Ordering::Relaxed) {
        let last = lock(&log).last_acked.clone();
        let Some((key, value)) = last else {
            sleep(TICK).await;
            continue;
        };
        let get = async {
            Ok(client
                .get(key.clone(), GetOptions::new().with_timeout(CALL_TIMEOUT))
                .await?)
        };
        let (rec, got) = timed(sleep, OpKind::Get, get, |r| {
            r.header.as_ref().map_or(0, |h| h.member_id)
        })
        .await;
        {
            let mut w = lock(&log);
            w.records.push(rec);
            if let Ok(resp) = got {
                let seen = resp.kvs.first().map(|kv| kv.value.clone());
                if seen.as_deref() != Some(value.as_bytes()) {
                    let seen = seen.map(|v| String::from_utf8_lossy(&v).into_owned());
                    w.stale_reads.push(format!(
                        "{key}: acknowledged put not seen by a later get ({seen:?})"
                    ));
                }
            }
        }
        sleep(TICK).await;
    }
}

/// Drains the watcher into the log until it ends or `stop` is set.
pub async fn collect_watch(
    mut watcher: Watcher,
    stop: Arc<AtomicBool>,
    log: SharedLog,
    sleep: SleepFn,
) {
    while !stop.load(Ordering::Relaxed) {
        let Some(next) = timeout(sleep, WATCH_POLL, watcher.next()).await else {
            continue;
        };
        let mut w = lock(&log);
        match next {
            Some(Ok(WatchEvent::Events { events, revision })) => {
                for e in events {
                    if let Some(kv) = e.kv {
                        w.watched.push((
                            kv.mod_revision,
                            String::from_utf8_lossy(&kv.key).into_owned(),
                        ));
                    }
                }
                w.watch_revision = w.watch_revision.max(revision);
            }
            Some(Ok(WatchEvent::Progress { revision })) => {
                w.watch_revision = w.watch_revision.max(revision)
            }
            Some(Ok(WatchEvent::Created { .. })) => {}
            Some(Ok(other)) => {
                w.watch_ended = Some(format!("watch ended: {other:?}"));
                return;
            }
            Some(Err(e)) => {
                w.watch_ended = Some(format!("watch failed: {e}"));
                return;
            }
            None => {
                w.watch_ended = Some("watch stream ended".into());
                return;
            }
        }
    }
}

/// The store's content under a prefix at the end of a run.
#[derive(Debug, Clone, Default)]
pub struct Store {
    /// key -> mod revision.
    pub keys: HashMap<String, i64>,
    /// The revision of the read.
    pub revision: i64,
}

/// Every key under `prefix` with its mod revision: a linearizable read,
/// retried a few times (the cluster just went through faults); the last
/// error if none succeeded.
pub async fn read_store(
    client: &Client,
    prefix: &str,
    sleep: SleepFn,
) -> Result<Store, etcdv3_client::Error> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let read = client
            .get(
                prefix,
                GetOptions::new().with_prefix().with_timeout(CALL_TIMEOUT),
            )
            .await;
        match read {
            Ok(r) => {
                return Ok(Store {
                    revision: r.header.map_or(0, |h| h.revision),
                    keys: r
                        .kvs
                        .into_iter()
                        .map(|kv| {
                            (
                                String::from_utf8_lossy(&kv.key).into_owned(),
                                kv.mod_revision,
                            )
                        })
                        .collect(),
                })
            }
            Err(e) if attempt >= READ_BACK_ATTEMPTS => return Err(e),
            Err(_) => sleep(READ_BACK_PAUSE).await,
        }
    }
}

/// Waits until the cluster is whole again (a blocking call): every member
/// not in `removed` healthy, and a leader; the leader's index.
pub fn settle(cluster: &Cluster, removed: &[usize]) -> Result<usize, String> {
    for i in (0..cluster.size()).filter(|i| !removed.contains(i)) {
        cluster
            .wait_member_healthy(i, Duration::from_secs(20))
            .map_err(|e| format!("m{i} not healthy: {e}"))?;
    }
    cluster
        .wait_for_leader(Duration::from_secs(10))
        .map_err(|e| e.to_string())
}

/// How many problem messages a check keeps.
const MAX_PROBLEMS: usize = 20;

/// What happened to the puts, checked against the store at the end.
#[derive(Debug, Default, Clone, Serialize)]
pub struct WriteCheck {
    /// Puts the cluster acknowledged.
    pub acknowledged: usize,
    /// Of those, present at the end with the acknowledged revision.
    pub acknowledged_present: usize,
    /// Puts that ended with outcome unknown (may or may not have applied).
    pub outcome_unknown: usize,
    /// Of those, found applied at the end.
    pub outcome_unknown_applied: usize,
    /// Puts reported as certainly not applied.
    pub not_applied: usize,
    /// Of those, found in the store anyway (must be 0).
    pub not_applied_but_present: usize,
    /// Keys read back at the end.
    pub read_back: usize,
    /// Up to 10 acknowledged keys missing or at another revision.
    pub missing_examples: Vec<String>,
    /// What is wrong, in words (empty: nothing).
    #[serde(skip)]
    pub problems: Vec<String>,
}

/// Checks the puts of `log` against the store's final content
/// (`key -> mod_revision`): every acknowledged put there at its revision,
/// nothing reported as not applied there.
pub fn check_writes(log: &Log, store: &HashMap<String, i64>) -> WriteCheck {
    let mut missing: Vec<String> = log
        .acked
        .iter()
        .filter(|(k, rev)| store.get(*k) != Some(rev))
        .map(|(k, rev)| match store.get(k) {
            Some(found) => format!("{k} (acknowledged at {rev}, found at {found})"),
            None => format!("{k} (acknowledged at {rev}, absent)"),
        })
        .collect();
    missing.sort();
    let lost = missing.len();
    let present_anyway: Vec<&String> = log
        .not_applied
        .iter()
        .filter(|k| store.contains_key(*k))
        .collect();
    let mut problems: Vec<String> = missing
        .iter()
        .map(|m| format!("acknowledged put lost: {m}"))
        .chain(
            present_anyway
                .iter()
                .map(|k| format!("put of {k} reported as not applied is in the store")),
        )
        .collect();
    problems.truncate(MAX_PROBLEMS);
    missing.truncate(10);
    WriteCheck {
        acknowledged: log.acked.len(),
        acknowledged_present: log.acked.len() - lost,
        outcome_unknown: log.unknown.len(),
        outcome_unknown_applied: log
            .unknown
            .iter()
            .filter(|k| store.contains_key(*k))
            .count(),
        not_applied: log.not_applied.len(),
        not_applied_but_present: present_anyway.len(),
        read_back: store.len(),
        missing_examples: missing,
        problems,
    }
}

/// What the watch delivered, checked against the store at the end.
#[derive(Debug, Default, Clone, Serialize)]
pub struct WatchCheck {
    /// Put events delivered.
    pub events: usize,
    /// Keys in the store at the end (each must have been delivered once).
    pub expected: usize,
    /// Keys in the store that the watch never delivered.
    pub missed: usize,
    /// Events delivered more than once.
    pub duplicates: usize,
    /// Events whose revision was not above the previous one.
    pub out_of_order: usize,
    /// Every key delivered exactly once, at the revision the store has.
    pub complete: bool,
    /// Revisions strictly increasing.
    pub in_order: bool,
    /// The watch ended or failed: why.
    pub ended: Option<String>,
    /// What is wrong, in words (empty: nothing).
    #[serde(skip)]
    pub problems: Vec<String>,
}

/// Checks the watch's deliveries `(revision, key)` against the store's final
/// content (`key -> mod_revision`): every key exactly once, at its revision,
/// in strictly increasing revision order, and the watch still running.
pub fn check_watch(
    delivered: &[(i64, String)],
    store: &HashMap<String, i64>,
    ended: Option<String>,
) -> WatchCheck {
    let mut problems: Vec<String> = ended.iter().cloned().collect();
    let out_of_order = delivered.windows(2).filter(|w| w[1].0 <= w[0].0).count();
    if let Some(w) = delivered.windows(2).find(|w| w[1].0 <= w[0].0) {
        problems.push(format!(
            "watch events out of order or duplicated: revision {} ({}) after {} ({})",
            w[1].0, w[1].1, w[0].0, w[0].1
        ));
    }
    let mut seen: HashMap<&str, Vec<i64>> = HashMap::new();
    for (rev, key) in delivered {
        seen.entry(key.as_str()).or_default().push(*rev);
    }
    let mut duplicates = 0;
    let mut wrong_revision = 0;
    let mut keys: Vec<(&&str, &Vec<i64>)> = seen.iter().collect();
    keys.sort();
    for (key, revs) in keys {
        if revs.len() != 1 {
            duplicates += revs.len() - 1;
            problems.push(format!(
                "watch delivered {key} {} times: {revs:?}",
                revs.len()
            ));
        }
        let at = store.get(*key);
        if revs.iter().any(|r| Some(r) != at) {
            wrong_revision += 1;
            problems.push(format!(
                "watch delivered {key} at {revs:?}, the store has it at {at:?}"
            ));
        }
    }
    let mut missed_keys: Vec<(&String, &i64)> = store
        .iter()
        .filter(|(k, _)| !seen.contains_key(k.as_str()))
        .collect();
    missed_keys.sort();
    for (key, rev) in &missed_keys {
        problems.push(format!("watch missed {key} (revision {rev})"));
    }
    problems.truncate(MAX_PROBLEMS);
    let missed = missed_keys.len();
    WatchCheck {
        events: delivered.len(),
        expected: store.len(),
        missed,
        duplicates,
        out_of_order,
        complete: missed == 0 && duplicates == 0 && wrong_revision == 0 && ended.is_none(),
        in_order: out_of_order == 0,
        ended,
        problems,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokio_sleep(d: Duration) -> Sleep {
        Box::pin(tokio::time::sleep(d))
    }

    #[test]
    fn watch_and_write_checks_find_every_kind_of_problem() {
        let store: HashMap<String, i64> =
            [("a".into(), 2), ("b".into(), 3), ("c".into(), 4)].into();
        let good = vec![(2, "a".to_string()), (3, "b".into()), (4, "c".into())];
        let w = check_watch(&good, &store, None);
        assert!(w.complete && w.in_order && w.problems.is_empty(), "{w:?}");
        let w = check_watch(&good[..2], &store, None);
        assert!(!w.complete && w.missed == 1, "{w:?}");
        assert_eq!(w.problems, ["watch missed c (revision 4)"]);
        let dup = vec![
            (2, "a".to_string()),
            (3, "b".into()),
            (3, "b".into()),
            (4, "c".into()),
        ];
        let w = check_watch(&dup, &store, None);
        assert!(!w.complete && !w.in_order && w.duplicates == 1, "{w:?}");
        let moved = vec![(2, "a".to_string()), (3, "b".into()), (5, "c".into())];
        let w = check_watch(&moved, &store, None);
        assert!(!w.complete && w.in_order, "{w:?}");
        let w = check_watch(&good, &store, Some("ended".into()));
        assert!(!w.complete && w.problems == ["ended"]);

        let log = Log {
            acked: [("a".into(), 2), ("b".into(), 9)].into(),
            unknown: vec!["c".into(), "x".into()],
            not_applied: vec!["c".into()],
            ..Log::default()
        };
        let r = check_writes(&log, &store);
        assert_eq!(r.acknowledged, 2);
        assert_eq!(r.acknowledged_present, 1);
        assert_eq!(r.missing_examples, ["b (acknowledged at 9, found at 3)"]);
        assert_eq!(r.outcome_unknown_applied, 1);
        assert_eq!(r.not_applied_but_present, 1);
        assert_eq!(r.problems.len(), 2, "{:?}", r.problems);
    }

    /// Puts whose answers the test scripts.
    struct Scripted(Vec<Result<(u64, i64), CallError>>);

    impl Putter for Scripted {
        async fn put(&mut self, _: String, _: String) -> Result<(u64, i64), CallError> {
            match self.0.pop() {
                Some(r) => r,
                // Out of answers: never answer (a hang).
                None => future::pending().await,
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn put_loop_sorts_acknowledged_unknown_and_not_applied_puts() {
        let err = |may_have_applied| CallError {
            class: ErrorClass::OutcomeUnknown,
            text: "x".into(),
            may_have_applied,
        };
        // Popped from the end: ack, unknown, not applied, then a hang.
        let putter = Scripted(vec![Err(err(false)), Err(err(true)), Ok((7, 42))]);
        let log = SharedLog::default();
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(put_loop(
            putter,
            "p/".into(),
            stop.clone(),
            log.clone(),
            tokio_sleep,
        ));
        tokio::time::sleep(CALL_TIMEOUT + HANG_GRACE + Duration::from_secs(1)).await;
        stop.store(true, Ordering::Relaxed);
        task.await.unwrap();
        let w = lock(&log);
        assert_eq!(w.acked, HashMap::from([("p/00000001".to_string(), 42)]));
        assert_eq!(w.last_acked, Some(("p/00000001".into(), "1".into())));
        // The stop finds the second hang in flight: the loop ends after it.
        assert_eq!(w.unknown, ["p/00000002", "p/00000004", "p/00000005"]);
        assert_eq!(w.not_applied, ["p/00000003"]);
        assert_eq!(w.records.len(), 5);
        assert_eq!(w.records[0].result, Ok(7));
        assert!(matches!(w.records[3].result, Err((ErrorClass::Hang, _))));
    }
}
