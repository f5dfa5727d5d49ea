//! The fault schedule shared by the failover suite, the failover benchmark and
//! `etcdv3ctl demo`: [`Fault`] and [`inject`], which drive a [`Cluster`]; and
//! the pure helpers that judge what a workload saw: operation records, gap and
//! error statistics, and the history checks (counter bounds, exactly-once
//! application, per-key linearizability on etcd revisions).
//!
//! Apart from [`inject`], nothing here talks to a server; callers record what
//! happened and hand the records to these functions, which are unit-tested on
//! hand-made histories below. Classifying a client error into an
//! [`ErrorClass`] is the caller's job (the testkit does not depend on the
//! client).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::{Duration, Instant};

use crate::{Cluster, TestkitError};

/// A fault the failover suite and benchmark inject into a 3-member cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL the member the client uses; restart it after the hold time.
    KillUsed,
    /// SIGSTOP the member the client uses (its TCP connections stay open);
    /// SIGCONT after the hold time.
    PauseUsed,
    /// Cut the member the client uses off from its peers (the client still
    /// reaches it); heal after the hold time.
    IsolateUsed,
    /// Blackhole the client link of the member the client uses; release
    /// after the hold time.
    BlackholeUsed,
    /// SIGKILL the leader; restart it after the hold time.
    KillLeader,
    /// Restart every member in turn, one second apart.
    RollingRestart,
    /// Remove the member the client uses from the cluster (for good).
    RemoveUsed,
}

/// Every fault, in the order the suite runs them.
pub const FAULTS: [Fault; 7] = [
    Fault::KillUsed,
    Fault::PauseUsed,
    Fault::IsolateUsed,
    Fault::BlackholeUsed,
    Fault::KillLeader,
    Fault::RollingRestart,
    Fault::RemoveUsed,
];

impl Fault {
    /// A short human name.
    pub fn name(self) -> &'static str {
        match self {
            Fault::KillUsed => "SIGKILL member in use",
            Fault::PauseUsed => "SIGSTOP member in use",
            Fault::IsolateUsed => "isolate member in use",
            Fault::BlackholeUsed => "blackhole client link",
            Fault::KillLeader => "SIGKILL leader",
            Fault::RollingRestart => "rolling restart",
            Fault::RemoveUsed => "remove member in use",
        }
    }
}

/// How long the cluster itself takes to elect a leader other than the one
/// a fault hit: the yardstick of a client's leader-fault gap (no client can
/// write before the members have a new leader, whose election takes a
/// randomized 1-2 election timeouts).
///
/// [`ElectionClock::start`] reads the leader's term, then a thread asks the
/// other members for their status every 10 ms (directly, not through the
/// fault proxies) until one names a leader at a newer term or another
/// leader; [`ElectionClock::finish`] returns how long after `from` that
/// was, or `None` if no member did within `limit` (no election: the fault
/// left the leader in place, e.g. only the client's link was cut).
///
/// ```no_run
/// # use std::sync::Arc;
/// # use std::time::{Duration, Instant};
/// # use etcdv3_testkit::{Cluster, fault::ElectionClock};
/// # fn main() -> Result<(), etcdv3_testkit::TestkitError> {
/// let cluster = Arc::new(Cluster::start(3)?);
/// let leader = cluster.wait_for_leader(Duration::from_secs(10))?;
/// let from = Instant::now();
/// let clock = ElectionClock::start(cluster.clone(), leader, from, Duration::from_secs(4))?;
/// cluster.kill(leader)?;
/// let took = clock.finish();
/// # Ok(()) }
/// ```
pub struct ElectionClock {
    handle: std::thread::JoinHandle<Option<Duration>>,
}

impl ElectionClock {
    /// Starts watching for the election that replaces member `leader`.
    pub fn start(
        cluster: std::sync::Arc<Cluster>,
        leader: usize,
        from: Instant,
        limit: Duration,
    ) -> Result<ElectionClock, TestkitError> {
        let old = cluster.member_status(leader)?;
        let others: Vec<usize> = (0..cluster.size()).filter(|&i| i != leader).collect();
        let handle = std::thread::spawn(move || {
            while from.elapsed() < limit {
                for &i in &others {
                    if let Ok(st) = cluster.member_status(i) {
                        if st.leader != 0
                            && (st.raft_term > old.raft_term || st.leader != old.member_id)
                        {
                            return Some(from.elapsed());
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            None
        });
        Ok(ElectionClock { handle })
    }

    /// Waits for the watch to end: the time from `from` to the first
    /// member naming a new leader, or `None`.
    pub fn finish(self) -> Option<Duration> {
        self.handle.join().ok().flatten()
    }
}

/// Injects `fault` on member `target` (ignored by a rolling restart), holds
/// it for `hold`, then undoes it. Blocks; returns when the cluster is whole
/// again (restarted members healthy), except after a removal.
pub fn inject(
    cluster: &Cluster,
    fault: Fault,
    target: usize,
    hold: Duration,
) -> Result<(), String> {
    let e = |e: TestkitError| e.to_string();
    match fault {
        Fault::KillUsed | Fault::KillLeader => {
            cluster.kill(target).map_err(e)?;
            std::thread::sleep(hold);
            cluster.restart(target).map_err(e)?;
        }
        Fault::PauseUsed => {
            cluster.pause(target).map_err(e)?;
            std::thread::sleep(hold);
            cluster.resume(target).map_err(e)?;
        }
        Fault::IsolateUsed => {
            cluster.isolate(target).map_err(e)?;
            std::thread::sleep(hold);
            cluster.heal(target).map_err(e)?;
        }
        Fault::BlackholeUsed => {
            cluster.blackhole_client(target).map_err(e)?;
            std::thread::sleep(hold);
            cluster.unblackhole_client(target).map_err(e)?;
        }
        Fault::RollingRestart => {
            for i in 0..cluster.size() {
                cluster.restart(i).map_err(e)?;
                std::thread::sleep(Duration::from_millis(1000));
            }
        }
        Fault::RemoveUsed => {
            cluster.remove_member(target).map_err(e)?;
            std::thread::sleep(hold);
        }
    }
    Ok(())
}

/// Which kind of operation a record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OpKind {
    /// A `Put` (a mutation).
    Put,
    /// A linearizable `Range` (a read).
    Get,
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OpKind::Put => "put",
            OpKind::Get => "get",
        })
    }
}

/// How a failed call failed, coarse enough to count and assert on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorClass {
    /// The call's deadline passed (`Error::is_deadline_exceeded`).
    DeadlineExceeded,
    /// A mutation's outcome is unknown (`Error::is_outcome_unknown`).
    OutcomeUnknown,
    /// The server answered with a final error status (gRPC code name).
    Status(String),
    /// The client had no endpoint to send to.
    NoEndpoints,
    /// The call did not return within its deadline plus a grace period: the
    /// caller's own timer fired first. Always a bug.
    Hang,
    /// Anything else (its display text).
    Other(String),
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorClass::DeadlineExceeded => f.write_str("DeadlineExceeded"),
            ErrorClass::OutcomeUnknown => f.write_str("OutcomeUnknown"),
            ErrorClass::Status(code) => write!(f, "Status({code})"),
            ErrorClass::NoEndpoints => f.write_str("NoEndpoints"),
            ErrorClass::Hang => f.write_str("HANG"),
            ErrorClass::Other(s) => write!(f, "Other({s})"),
        }
    }
}

/// One operation of a workload.
#[derive(Debug, Clone)]
pub struct OpRecord {
    /// Put or get.
    pub kind: OpKind,
    /// When the call was started.
    pub start: Instant,
    /// When it returned (or the caller gave up on it).
    pub end: Instant,
    /// `Ok(member_id)` of the member that answered, or how it failed (with
    /// the error's text).
    pub result: Result<u64, (ErrorClass, String)>,
}

/// What a workload run under one fault measured.
#[derive(Debug, Clone, Default)]
pub struct FaultStats {
    /// Longest time without any successful completion, between the fault's
    /// injection and the end of the run (the first success after the fault
    /// counts from the injection).
    pub longest_gap: Duration,
    /// Same, for puts alone.
    pub longest_put_gap: Duration,
    /// Same, for gets alone.
    pub longest_get_gap: Duration,
    /// Slowest single call (successful or not).
    pub slowest_call: Duration,
    /// Successful operations.
    pub ok: usize,
    /// Failed operations by kind and class.
    pub errors: BTreeMap<(OpKind, ErrorClass), usize>,
    /// One example message per (kind, class).
    pub examples: BTreeMap<(OpKind, ErrorClass), String>,
}

impl FaultStats {
    /// Number of failed operations of `kind` for which `pred` holds.
    pub fn count_errors(&self, kind: OpKind, pred: impl Fn(&ErrorClass) -> bool) -> usize {
        self.errors
            .iter()
            .filter(|((k, c), _)| *k == kind && pred(c))
            .map(|(_, n)| *n)
            .sum()
    }

    /// A one-line summary of the errors, e.g. `put:OutcomeUnknown=1`.
    pub fn error_summary(&self) -> String {
        if self.errors.is_empty() {
            return "none".into();
        }
        self.errors
            .iter()
            .map(|((k, c), n)| format!("{k}:{c}={n}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Longest interval without a successful completion among `records` for
/// which `filter` holds, measured from `from` to `until`.
pub fn longest_gap(
    records: &[OpRecord],
    from: Instant,
    until: Instant,
    filter: impl Fn(&OpRecord) -> bool,
) -> Duration {
    let mut ends: Vec<Instant> = records
        .iter()
        .filter(|r| r.result.is_ok() && filter(r) && r.end >= from && r.end <= until)
        .map(|r| r.end)
        .collect();
    ends.sort();
    let mut last = from;
    let mut gap = Duration::ZERO;
    for e in ends {
        gap = gap.max(e.saturating_duration_since(last));
        last = e;
    }
    gap.max(until.saturating_duration_since(last))
}

/// Statistics of a run whose fault was injected at `fault_at` and which
/// ended at `until`. Errors are counted over the whole run.
pub fn fault_stats(records: &[OpRecord], fault_at: Instant, until: Instant) -> FaultStats {
    let mut s = FaultStats {
        longest_gap: longest_gap(records, fault_at, until, |_| true),
        longest_put_gap: longest_gap(records, fault_at, until, |r| r.kind == OpKind::Put),
        longest_get_gap: longest_gap(records, fault_at, until, |r| r.kind == OpKind::Get),
        ..FaultStats::default()
    };
    for r in records {
        s.slowest_call = s.slowest_call.max(r.end.saturating_duration_since(r.start));
        match &r.result {
            Ok(_) => s.ok += 1,
            Err((class, msg)) => {
                *s.errors.entry((r.kind, class.clone())).or_default() += 1;
                s.examples
                    .entry((r.kind, class.clone()))
                    .or_insert_with(|| msg.clone());
            }
        }
    }
    s
}

/// The member that answered most of the successful operations among the
/// last `n` records, if any succeeded.
pub fn busiest_member(records: &[OpRecord], n: usize) -> Option<u64> {
    let mut counts: HashMap<u64, usize> = HashMap::new();
    for r in records.iter().rev().take(n) {
        if let Ok(m) = r.result {
            *counts.entry(m).or_default() += 1;
        }
    }
    counts.into_iter().max_by_key(|(_, c)| *c).map(|(m, _)| m)
}

// ------------------------------------------------------------------ counters

/// How a compare-and-swap increment ended, as its caller saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IncrementResult {
    /// The txn succeeded at this revision: the increment is acknowledged.
    Acked {
        /// The txn response's header revision.
        revision: i64,
    },
    /// The txn answered `succeeded: false` (another writer won) or failed
    /// with an error that says it certainly was not applied.
    Failed,
    /// The outcome is unknown: it may or may not have been applied.
    Unknown,
}

/// One increment attempt of one counter.
#[derive(Debug, Clone)]
pub struct IncrementOp {
    /// Counter index.
    pub counter: usize,
    /// Unique token the increment writes.
    pub token: String,
    /// The value it writes (previous value + 1).
    pub value: u64,
    /// When the txn was sent.
    pub start: Instant,
    /// When its answer (or error) came back.
    pub end: Instant,
    /// How it ended.
    pub result: IncrementResult,
}

/// One read of a counter (the read half of a CAS).
#[derive(Debug, Clone)]
pub struct ReadOp {
    /// Counter index.
    pub counter: usize,
    /// Value observed (0 when absent).
    pub value: u64,
    /// Observed `mod_revision` (0 when absent).
    pub mod_revision: i64,
    /// When the read was sent.
    pub start: Instant,
    /// When it returned.
    pub end: Instant,
}

/// An increment that the cluster applied, from the server's own records
/// (the history key written in the same txn).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedIncrement {
    /// Counter index.
    pub counter: usize,
    /// The token found.
    pub token: String,
    /// Value that was written.
    pub value: u64,
    /// Revision of the txn that wrote it.
    pub revision: i64,
    /// How many times the history key was written (must be 1).
    pub version: i64,
}

/// Checks counter histories after a run; returns every violation found
/// (empty = consistent).
///
/// * Every acknowledged increment was applied, at the revision its response
///   reported; none reported as certainly failed was applied; each applied
///   at most once; every applied token belongs to an issued operation.
/// * Per counter: the applied values, in revision order, are 1, 2, ..., and
///   `acked <= final <= acked + unknown`, with `final` the counter's value.
/// * Per counter, the history of writes (ordered by revision, which is
///   etcd's total order) and reads is linearizable: see
///   [`check_register_linearizable`].
pub fn check_counters(
    counters: usize,
    finals: &[u64],
    ops: &[IncrementOp],
    reads: &[ReadOp],
    applied: &[AppliedIncrement],
) -> Vec<String> {
    let mut errs = Vec::new();
    let by_token: HashMap<&str, &IncrementOp> = ops.iter().map(|o| (o.token.as_str(), o)).collect();
    if by_token.len() != ops.len() {
        errs.push("duplicate tokens among issued operations".to_string());
    }
    let mut applied_tokens: HashMap<&str, &AppliedIncrement> = HashMap::new();
    for a in applied {
        if a.version != 1 {
            errs.push(format!("token {} applied {} times", a.token, a.version));
        }
        if applied_tokens.insert(a.token.as_str(), a).is_some() {
            errs.push(format!("token {} listed twice", a.token));
        }
        match by_token.get(a.token.as_str()) {
            None => errs.push(format!("applied token {} was never issued", a.token)),
            Some(op) => {
                if op.counter != a.counter || op.value != a.value {
                    errs.push(format!(
                        "token {}: issued as counter {} value {}, applied as counter {} value {}",
                        a.token, op.counter, op.value, a.counter, a.value
                    ));
                }
                match op.result {
                    IncrementResult::Failed => errs.push(format!(
                        "token {} was reported as not applied but was applied at revision {}",
                        a.token, a.revision
                    )),
                    IncrementResult::Acked { revision } if revision != a.revision => {
                        errs.push(format!(
                            "token {} acknowledged at revision {revision} but applied at {}",
                            a.token, a.revision
                        ))
                    }
                    _ => {}
                }
            }
        }
    }
    for op in ops {
        if matches!(op.result, IncrementResult::Acked { .. })
            && !applied_tokens.contains_key(op.token.as_str())
        {
            errs.push(format!("acknowledged token {} is missing", op.token));
        }
    }
    for c in 0..counters {
        let fin = finals.get(c).copied().unwrap_or(0);
        let acked = ops
            .iter()
            .filter(|o| o.counter == c && matches!(o.result, IncrementResult::Acked { .. }))
            .count() as u64;
        let unknown = ops
            .iter()
            .filter(|o| o.counter == c && o.result == IncrementResult::Unknown)
            .count() as u64;
        if fin < acked || fin > acked + unknown {
            errs.push(format!(
                "counter {c}: final {fin} outside [acked {acked}, acked + unknown {}]",
                acked + unknown
            ));
        }
        let mut chain: Vec<&AppliedIncrement> = applied.iter().filter(|a| a.counter == c).collect();
        chain.sort_by_key(|a| a.revision);
        for (i, a) in chain.iter().enumerate() {
            if a.value != i as u64 + 1 {
                errs.push(format!(
                    "counter {c}: write #{} at revision {} has value {} (lost or doubled increment)",
                    i + 1,
                    a.revision,
                    a.value
                ));
                break;
            }
        }
        if chain.len() as u64 != fin {
            errs.push(format!(
                "counter {c}: {} applied increments but final value {fin}",
                chain.len()
            ));
        }
        let writes: Vec<Write> = chain
            .iter()
            .map(|a| {
                let op = by_token.get(a.token.as_str());
                Write {
                    revision: a.revision,
                    value: a.value,
                    start: op.map(|o| o.start),
                    // Unknown-outcome writes may take effect any time later.
                    end: op.and_then(|o| match o.result {
                        IncrementResult::Acked { .. } => Some(o.end),
                        _ => None,
                    }),
                }
            })
            .collect();
        let rs: Vec<&ReadOp> = reads.iter().filter(|r| r.counter == c).collect();
        if let Err(e) = check_register_linearizable(&writes, &rs) {
            errs.push(format!("counter {c}: {e}"));
        }
    }
    errs
}

/// A write of a register, as applied by the server.
#[derive(Debug, Clone)]
pub struct Write {
    /// Its revision (etcd's total order of writes).
    pub revision: i64,
    /// The value written.
    pub value: u64,
    /// When the client sent it (`None`: unknown, e.g. not ours).
    pub start: Option<Instant>,
    /// When the client learned it succeeded (`None`: never acknowledged).
    pub end: Option<Instant>,
}

/// Whether a history of one register is linearizable given that writes take
/// effect in revision order (etcd's total order) and each read returns the
/// state after the write with the revision it observed.
///
/// With the order of writes fixed, the order is: w1, reads of w1, w2, reads
/// of w2, ... (reads between two writes commute). Linearization points are
/// chosen greedily as early as possible — each at
/// `max(own start, previous point)` — which is optimal, so the history is
/// linearizable iff every point falls before its operation's end. A read of
/// a revision no write produced (other than 0, the initial state) is a
/// violation too.
pub fn check_register_linearizable(writes: &[Write], reads: &[&ReadOp]) -> Result<(), String> {
    let mut writes: Vec<&Write> = writes.iter().collect();
    writes.sort_by_key(|w| w.revision);
    let mut groups: BTreeMap<i64, Vec<&ReadOp>> = BTreeMap::new();
    for r in reads {
        if r.mod_revision != 0 {
            match writes.iter().find(|w| w.revision == r.mod_revision) {
                None => {
                    return Err(format!(
                        "a read observed mod_revision {} that no increment wrote",
                        r.mod_revision
                    ))
                }
                Some(w) if w.value != r.value => {
                    return Err(format!(
                        "a read at mod_revision {} saw value {}, the write there was {}",
                        r.mod_revision, r.value, w.value
                    ))
                }
                _ => {}
            }
        } else if r.value != 0 {
            return Err(format!("a read saw value {} without a revision", r.value));
        }
        groups.entry(r.mod_revision).or_default().push(r);
    }
    // Linearization point of the latest step; None before the first one.
    let mut point: Option<Instant> = None;
    // Reads of the initial state come first, then each write followed by
    // the reads of its revision.
    place_reads(groups.get(&0), &mut point)?;
    for w in writes {
        let p = match (point, w.start) {
            (Some(p), Some(s)) => Some(p.max(s)),
            (p, s) => p.or(s),
        };
        if let (Some(p), Some(e)) = (p, w.end) {
            if p > e {
                return Err(format!(
                    "not linearizable: the write of value {} at revision {} must take effect after it returned",
                    w.value, w.revision
                ));
            }
        }
        point = p;
        place_reads(groups.get(&w.revision), &mut point)?;
    }
    Ok(())
}

/// Places a group of reads (all observing the same write) after `point`,
/// each as early as it can; `point` becomes the latest of them.
fn place_reads(group: Option<&Vec<&ReadOp>>, point: &mut Option<Instant>) -> Result<(), String> {
    let base = *point;
    for r in group.into_iter().flatten() {
        let p = base.map_or(r.start, |b| b.max(r.start));
        if p > r.end {
            return Err(format!(
                "not linearizable: a read returned revision {} (value {}) although a later write had completed before it started",
                r.mod_revision, r.value
            ));
        }
        *point = Some(point.map_or(p, |m| m.max(p)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(base: Instant, ms: u64) -> Instant {
        base + Duration::from_millis(ms)
    }

    fn rec(base: Instant, kind: OpKind, s: u64, e: u64, ok: bool) -> OpRecord {
        OpRecord {
            kind,
            start: at(base, s),
            end: at(base, e),
            result: if ok {
                Ok(1)
            } else {
                Err((ErrorClass::DeadlineExceeded, "x".into()))
            },
        }
    }

    #[test]
    fn gap_counts_from_fault_and_to_end() {
        let b = Instant::now();
        let recs = vec![
            rec(b, OpKind::Put, 0, 10, true),
            rec(b, OpKind::Get, 10, 20, true),
            rec(b, OpKind::Put, 20, 2000, false),
            rec(b, OpKind::Put, 2000, 2500, true),
            rec(b, OpKind::Get, 2500, 2600, true),
        ];
        let s = fault_stats(&recs, at(b, 100), at(b, 3000));
        assert_eq!(s.longest_gap, Duration::from_millis(2400));
        assert_eq!(s.longest_get_gap, Duration::from_millis(2500));
        assert_eq!(s.ok, 4);
        assert_eq!(
            s.count_errors(OpKind::Put, |c| *c == ErrorClass::DeadlineExceeded),
            1
        );
        assert_eq!(s.slowest_call, Duration::from_millis(1980));
        // Nothing after the fault: the gap runs to the end.
        let s = fault_stats(&recs[..2], at(b, 100), at(b, 900));
        assert_eq!(s.longest_gap, Duration::from_millis(800));
    }

    fn inc(
        b: Instant,
        c: usize,
        tok: &str,
        v: u64,
        s: u64,
        e: u64,
        r: IncrementResult,
    ) -> IncrementOp {
        IncrementOp {
            counter: c,
            token: tok.into(),
            value: v,
            start: at(b, s),
            end: at(b, e),
            result: r,
        }
    }

    fn app(c: usize, tok: &str, v: u64, rev: i64) -> AppliedIncrement {
        AppliedIncrement {
            counter: c,
            token: tok.into(),
            value: v,
            revision: rev,
            version: 1,
        }
    }

    fn read(b: Instant, c: usize, v: u64, rev: i64, s: u64, e: u64) -> ReadOp {
        ReadOp {
            counter: c,
            value: v,
            mod_revision: rev,
            start: at(b, s),
            end: at(b, e),
        }
    }

    #[test]
    fn consistent_history_passes() {
        let b = Instant::now();
        let ops = vec![
            inc(b, 0, "a", 1, 0, 10, IncrementResult::Acked { revision: 5 }),
            inc(b, 0, "b", 2, 20, 30, IncrementResult::Unknown),
            inc(b, 0, "c", 2, 20, 30, IncrementResult::Failed),
            inc(b, 0, "d", 3, 40, 50, IncrementResult::Unknown),
        ];
        // b applied (unknown but happened), d did not.
        let applied = vec![app(0, "a", 1, 5), app(0, "b", 2, 7)];
        let reads = vec![
            read(b, 0, 0, 0, 0, 3),
            read(b, 0, 1, 5, 12, 15),
            read(b, 0, 2, 7, 35, 38),
        ];
        let errs = check_counters(1, &[2], &ops, &reads, &applied);
        assert!(errs.is_empty(), "{errs:?}");
    }

    #[test]
    fn lost_ack_and_double_apply_and_false_failure_are_caught() {
        let b = Instant::now();
        let ops = vec![
            inc(b, 0, "a", 1, 0, 10, IncrementResult::Acked { revision: 5 }),
            inc(b, 0, "b", 2, 20, 30, IncrementResult::Failed),
        ];
        // "b" reported failed but applied (an unsafe retry).
        let errs = check_counters(1, &[2], &ops, &[], &[app(0, "a", 1, 5), app(0, "b", 2, 6)]);
        assert!(
            errs.iter().any(|e| e.contains("reported as not applied")),
            "{errs:?}"
        );
        // Acknowledged but missing.
        let errs = check_counters(1, &[0], &ops[..1], &[], &[]);
        assert!(errs.iter().any(|e| e.contains("missing")), "{errs:?}");
        assert!(errs.iter().any(|e| e.contains("outside")), "{errs:?}");
        // Applied twice.
        let mut twice = app(0, "a", 1, 5);
        twice.version = 2;
        let errs = check_counters(1, &[1], &ops[..1], &[], &[twice]);
        assert!(
            errs.iter().any(|e| e.contains("applied 2 times")),
            "{errs:?}"
        );
        // Final above acked + unknown.
        let errs = check_counters(1, &[3], &ops[..1], &[], &[app(0, "a", 1, 5)]);
        assert!(errs.iter().any(|e| e.contains("outside")), "{errs:?}");
    }

    #[test]
    fn stale_read_is_not_linearizable() {
        let b = Instant::now();
        let ops = vec![
            inc(b, 0, "a", 1, 0, 10, IncrementResult::Acked { revision: 5 }),
            inc(b, 0, "b", 2, 20, 30, IncrementResult::Acked { revision: 6 }),
        ];
        let applied = vec![app(0, "a", 1, 5), app(0, "b", 2, 6)];
        // Reads value 1 after write 2 completed.
        let reads = vec![read(b, 0, 1, 5, 40, 45)];
        let errs = check_counters(1, &[2], &ops, &reads, &applied);
        assert!(
            errs.iter().any(|e| e.contains("not linearizable")),
            "{errs:?}"
        );
        // Reads a value that was never written at that revision.
        let reads = vec![read(b, 0, 3, 6, 40, 45)];
        let errs = check_counters(1, &[2], &ops, &reads, &applied);
        assert!(errs.iter().any(|e| e.contains("saw value 3")), "{errs:?}");
        // Writes whose revision order contradicts real time.
        let ops2 = vec![
            inc(b, 0, "a", 1, 0, 10, IncrementResult::Acked { revision: 6 }),
            inc(b, 0, "b", 2, 20, 30, IncrementResult::Acked { revision: 5 }),
        ];
        let applied2 = vec![app(0, "a", 1, 6), app(0, "b", 2, 5)];
        let errs = check_counters(1, &[2], &ops2, &[], &applied2);
        assert!(
            errs.iter()
                .any(|e| e.contains("not linearizable") || e.contains("value")),
            "{errs:?}"
        );
    }

    #[test]
    fn concurrent_read_may_see_either_side() {
        let b = Instant::now();
        let w = vec![Write {
            revision: 5,
            value: 1,
            start: Some(at(b, 10)),
            end: Some(at(b, 20)),
        }];
        let r_old = read(b, 0, 0, 0, 5, 15);
        let r_new = read(b, 0, 1, 5, 5, 15);
        assert!(check_register_linearizable(&w, &[&r_old, &r_new]).is_ok());
        // A read of the new value that ended before the write started.
        let early = read(b, 0, 1, 5, 0, 5);
        assert!(check_register_linearizable(&w, &[&early]).is_err());
        // A read of the old value that started after the write ended.
        let late = read(b, 0, 0, 0, 25, 30);
        assert!(check_register_linearizable(&w, &[&late]).is_err());
    }
}
