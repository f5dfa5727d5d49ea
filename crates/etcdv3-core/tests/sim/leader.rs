//! Leader faults and the sequential writer (issue 17 §9): runs whose only
//! faults are a crash, a SIGSTOP or a partition of whichever member leads
//! when the fault starts, one at a time with the cluster settled between
//! them, while a writer puts one key after the other (the put loop of
//! `tests/failover.rs`: the next put 10 ms after the previous one ended,
//! each with a 5 s deadline), next to the usual random workload.
//!
//! The invariant ([`World::check_leader_faults`]), per leader fault, over
//! the window from the fault to the next leader fault (or the writer's
//! end):
//! * the writer sees at most [`LEADER_FAULT_UNKNOWNS`] put end "outcome
//!   unknown" (the one in flight on the leader when it went: the next ones
//!   wait for the new leader instead of being forwarded to the old one);
//! * its longest put gap (the suite's `longest_gap`: the longest time
//!   without a successful put completing, from the fault on) is at most the
//!   time the simulated cluster took to elect a new leader after the fault
//!   plus [`LEADER_FAULT_SLACK`].

use std::time::{Duration, Instant};

use etcdv3_core::machine::CallError;

use super::{ms, CallKind, CallRec, Ev, Fault, FaultKind, LeaderFaultStat, World};
use crate::cluster::ELECTION_TIMEOUT;

/// Pause between two puts of the writer (the failover suite's put loop).
const WRITER_THINK: Duration = Duration::from_millis(10);
/// Deadline of each put of the writer (the failover suite's call timeout).
const WRITER_TIMEOUT: Duration = Duration::from_secs(5);
/// What a leader fault may cost the writer beyond the cluster's own
/// election (the client's share of the put gap; issue 17 §9).
pub const LEADER_FAULT_SLACK: Duration = Duration::from_millis(500);
/// Outcome-unknown puts of the writer per leader fault.
pub const LEADER_FAULT_UNKNOWNS: u32 = 1;

impl World {
    /// The fault schedule of a leader-fault run: from 2-4 s on, a crash,
    /// hang or partition of the leader of 0.3-6 s, then 3-6 s for the
    /// cluster and the client to settle, and so on over the fault window.
    pub(super) fn plan_leader_faults(&mut self, window: Duration) {
        let mut t = ms(self.rng.gen_range(2000..4000));
        while t < window {
            let kinds = [FaultKind::Crash, FaultKind::Hang, FaultKind::Partition];
            let kind = kinds[self.rng.gen_range(0..kinds.len() as u64) as usize];
            let dur = ms(self.rng.gen_range(300..6000));
            self.leader_targets.insert(self.faults.len());
            self.faults.push(Fault {
                at: self.base + t,
                dur,
                kind,
                // Set when it starts (`aim_at_leader`).
                member: 0,
            });
            self.fault_end = self.fault_end.max(self.base + t + dur);
            t += dur + ms(self.rng.gen_range(3000..6000));
        }
    }

    /// Leader fault `i` starts: it hits the member leading now (any member
    /// if none leads, then not counted as a leader fault).
    pub(super) fn aim_at_leader(&mut self, i: usize) {
        let m = match self.cluster.leader {
            Some(l) => {
                self.leader_fault_log
                    .push((self.now, self.faults[i].kind, l));
                l
            }
            None => self.rng.gen_range(0..self.n as u64) as usize,
        };
        let f = &mut self.faults[i];
        f.member = m;
        // Liveness bookkeeping, as `plan` does for the other faults.
        let tail = match f.kind {
            FaultKind::Crash => ms(600),
            _ => ELECTION_TIMEOUT + ms(500),
        };
        let (at, dur) = (f.at, f.dur);
        self.bad[m].push((at, at + dur + tail));
    }

    /// The sequential writer: its first put 1 s in, its last started before
    /// 4 s after the last fault ended.
    pub(super) fn plan_writer(&mut self) {
        let end = self.fault_end + ms(4000);
        self.writer_end = Some(end);
        self.workload_end = self.workload_end.max(end + WRITER_TIMEOUT);
        self.writer_put(self.base + ms(1000));
    }

    /// The writer's next put, once its previous one ended.
    pub(super) fn writer_next(&mut self) {
        self.writer_put(self.now + WRITER_THINK);
    }

    fn writer_put(&mut self, start: Instant) {
        if self.writer_end.is_none_or(|end| start >= end) {
            return;
        }
        self.calls.push(CallRec {
            kind: CallKind::Put,
            put: true,
            cancelled: false,
            service: Duration::ZERO,
            excused: false,
            start,
            deadline: start + WRITER_TIMEOUT,
            done: None,
            floor: 0,
            answer_rev: None,
            last_report: None,
            attempts: 0,
            epoch: 0,
            marked_stale: false,
            writer: true,
        });
        let idx = self.calls.len() - 1;
        self.at(start, Ev::Start(idx));
    }

    /// The leader-fault invariant (see the module docs), checked once the
    /// run ended; each leader loss's figures go to the report.
    pub(super) fn check_leader_faults(&mut self) {
        let Some(writer_end) = self.writer_end else {
            return;
        };
        let mut oks = Vec::new();
        let mut unknown_at = Vec::new();
        for c in self.calls.iter().filter(|c| c.writer) {
            match &c.done {
                Some((t, Ok(()))) => oks.push(*t),
                Some((t, Err(CallError::OutcomeUnknown { .. }))) => unknown_at.push(*t),
                _ => {}
            }
        }
        oks.sort();
        // The leader losses: each leader fault, and each time the cluster
        // lost its leader otherwise (without pre-vote, a member that
        // rejoins at the higher term it campaigned at deposes the leader
        // the fault left: the server's own leader change, held to the same
        // bounds).
        let mut events: Vec<(Instant, Option<FaultKind>, Option<usize>)> = self
            .leader_fault_log
            .iter()
            .map(|&(t, k, m)| (t, Some(k), Some(m)))
            .collect();
        let losses = self
            .cluster
            .leaderless
            .iter()
            .map(|p| p.0)
            .chain(self.cluster.leaderless_since);
        for t in losses {
            if !self.leader_fault_log.iter().any(|f| f.0 == t) {
                events.push((t, None, None));
            }
        }
        events.sort_by_key(|e| e.0);
        for (k, &(t0, kind, m)) in events.iter().enumerate() {
            let until = events
                .get(k + 1)
                .map_or(writer_end, |n| n.0)
                .min(writer_end);
            if until <= t0 {
                continue;
            }
            let election = self
                .elections
                .iter()
                .find(|e| **e >= t0 && **e < until)
                .map(|e| *e - t0);
            let gap = longest_gap(&oks, t0, until);
            let unknowns = unknown_at
                .iter()
                .filter(|t| **t >= t0 && **t < until)
                .count() as u32;
            self.report.leader_faults.push(LeaderFaultStat {
                kind,
                election,
                gap,
                unknowns,
            });
            let what = match (kind, m) {
                (Some(kind), Some(m)) => format!(
                    "leader fault {kind:?} of m{} at {:.3}s",
                    m + 1,
                    (t0 - self.base).as_secs_f64()
                ),
                _ => format!(
                    "leader loss (deposed by a rejoining member) at {:.3}s",
                    (t0 - self.base).as_secs_f64()
                ),
            };
            if unknowns > LEADER_FAULT_UNKNOWNS {
                self.violation(format!(
                    "{what}: the sequential writer saw {unknowns} outcome-unknown puts (at most {LEADER_FAULT_UNKNOWNS})"
                ));
            }
            let bound = election.unwrap_or(ELECTION_TIMEOUT) + LEADER_FAULT_SLACK;
            if gap > bound {
                self.violation(format!(
                    "{what}: the sequential writer's put gap {gap:?} > {bound:?} (the cluster's election {election:?} + {LEADER_FAULT_SLACK:?})"
                ));
            }
        }
    }
}

/// The longest time in `[from, until]` without an instant of `ends`
/// (sorted): the failover suite's put gap.
fn longest_gap(ends: &[Instant], from: Instant, until: Instant) -> Duration {
    let mut last = from;
    let mut gap = Duration::ZERO;
    for &e in ends.iter().filter(|e| **e >= from && **e <= until) {
        gap = gap.max(e - last);
        last = e;
    }
    gap.max(until.saturating_duration_since(last))
}
