//! Deterministic simulation of the sans-IO core against a simulated etcd
//! cluster with a faulty network.
//!
//! One `u64` seed drives everything (cluster size, balancer policy, link
//! latencies and follower lag, fault schedule, workload). The workload:
//! Range, Put, Txn, slow Ranges (seconds of service), Lock and Campaign
//! waits, calls the user cancels, a `WatchHub` and a `LeaseKeeper` driven
//! over the core's stream calls, auth with expiring tokens, and in some runs
//! a quiet gap longer than the idle timeout. Faults: crash, SIGSTOP, reset,
//! GOAWAY, partition, lossy link, blackhole, refused streams, too many
//! requests, applied-but-timed-out, token expiry, member removal, slow but
//! healthy members, members that answer pings but no request, a restore of
//! the whole cluster from an older snapshot (the history goes back by
//! thousands of revisions), a response header with a huge revision, slow
//! links (a member's large read answers take seconds to arrive, and what it
//! sends meanwhile, PONGs included, waits behind them longer than the ping
//! timeout), and watch consumers that stall (take nothing for seconds).
//!
//! Every run checks liveness (completion by the deadline, success while a
//! healthy member is reachable; a call whose request reached a member that
//! answers pings but no request may wait out its deadline, as the core
//! lets it; `simulation_liveness_check_catches_lost_answers` shows the
//! check bites), safety (mutations applied at most once and
//! re-sent only after proof of non-processing, definite failures really did
//! nothing), connection hygiene (no removed endpoint, one connection per
//! endpoint), etcd's ping policy, reads never going back in revision, watch
//! events exactly once and in order, reads never failing for good after a
//! restore from an older revision or a bogus header (the revision fence
//! resets on a quorum-confirmed answer; only serializable reads are handed
//! over marked stale, never linearizable ones), each watch consumer holding
//! at most the hub's buffer limit (plus one response), leases never believed
//! alive past the server's expiry, no holder told it owns a lease past the
//! server's expiry of it (`streams.rs`), no slow healthy call aborted or
//! re-sent, no answer cut off or re-sent while its bytes arrive from a live
//! member over a slow link (the adapter reports each chunk with
//! `Core::handle_call_progress`, as the client does), stream reopen rate, no timer that stays due, at most 10
//! connection attempts per endpoint in any second (however many calls wait
//! out an outage), no status probe caused by Lock/Campaign calls waiting on
//! live members, and (one seed in eight) no call,
//! connection or timer left once everything ended and the idle timeout
//! passed. The totals over all seeds are asserted too (each fault kind hit
//! calls, outcomes were unknown, watches delivered...), so a harness change
//! that stops exercising something fails.
//!
//! Leader faults stay tight (issue 17 §9; `leader.rs`,
//! `simulation_leader_faults`): in runs whose only faults are a crash, a
//! SIGSTOP or a partition of whichever member leads (0.3-6 s, one at a
//! time, 3-6 s apart), a sequential writer (the next put 10 ms after the
//! previous one ended, 5 s deadline, as in `tests/failover.rs`) runs beside
//! the usual workload. Each leader loss (the fault, or the cluster's own
//! leader change when a member rejoins at a higher term without pre-vote)
//! opens a window that ends at the next one; in it the writer sees at most
//! one put end "outcome unknown", and its longest put gap (the longest time
//! without a successful put completing, counted from the loss, as the
//! failover suite's `longest_gap`) is at most the time the simulated cluster
//! took to elect a new leader after the loss (`cluster.rs`: one election
//! timeout, 1 s) + 0.5 s. Every other invariant above holds in those runs
//! too. `simulation_leader_faults_fail_without_the_election_wait` shows the
//! invariant bites: with `Config::election_wait` zero, about 4 seeds in 10
//! break it (a put sent to a follower that still forwards to the old leader
//! ends "outcome unknown" too).
//!
//! * `ETCDV3_SIM_SEEDS=<n>`: number of seeds (default 2000).
//! * `ETCDV3_SIM_SEED=<n>`: run just that seed, printing its event log.
//! * `ETCDV3_SIM_ALLOW_SLOW_ABORT=1`: skip "no slow healthy call aborted"
//!   (to look at the other invariants on a core that still aborts).
//! * `ETCDV3_SIM_LEADER=1`: with `ETCDV3_SIM_SEED`, replay a leader-fault
//!   seed (they start at 2000000).
//! * `ETCDV3_SIM_NO_ELECTION_WAIT=1`: `Config::election_wait` zero (for
//!   `simulation_seeds` replays and `simulation_leader_faults`).

mod cluster;
mod world;

use std::time::Instant;

use world::{
    FaultKind, LeaderFaultStat, Opts, Report, World, LEADER_FAULT_SLACK, LEADER_FAULT_UNKNOWNS,
};

fn run_seed(seed: u64, opts: &Opts) -> Report {
    World::new(seed, opts.clone()).run()
}

/// Run `seed`; on a violation, re-run it with the event log and panic with
/// everything needed to replay it.
fn check_seed(seed: u64, opts: &Opts) {
    let r = run_seed(seed, opts);
    if r.violations.is_empty() {
        return;
    }
    let logged = run_seed(
        seed,
        &Opts {
            log: true,
            ..opts.clone()
        },
    );
    for line in &logged.log {
        eprintln!("{line}");
    }
    panic!(
        "seed {seed} violated invariants (replay: ETCDV3_SIM_SEED={seed}{}{}{} cargo test -p etcdv3-core --test sim simulation_seeds):\n{}",
        if opts.stale_serve { " ETCDV3_SIM_STALE=1" } else { "" },
        if opts.leader_faults { " ETCDV3_SIM_LEADER=1" } else { "" },
        if opts.no_election_wait { " ETCDV3_SIM_NO_ELECTION_WAIT=1" } else { "" },
        r.violations.join("\n")
    );
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// Totals over many runs.
#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    ok: u64,
    failed: u64,
    unknown: u64,
    events: u64,
    must_succeed: u64,
    fault_hits: [u64; FaultKind::ALL.len()],
    cancelled: u64,
    slow_calls: u64,
    watch_events: u64,
    lease_renewals: u64,
    lease_lapses: u64,
    lease_alive_again: u64,
    stream_opens: u64,
    stream_closes: [u64; 2],
    long_runs: u64,
    fence_resets: u64,
    stale_marked: u64,
    watch_pauses: u64,
    slow_link_answers: u64,
}

impl Totals {
    fn add_report(&mut self, r: &Report) {
        self.ok += u64::from(r.ok);
        self.failed += u64::from(r.failed);
        self.unknown += u64::from(r.unknown);
        self.events += r.events;
        self.must_succeed += u64::from(r.must_succeed);
        for (t, n) in self.fault_hits.iter_mut().zip(r.fault_hits) {
            *t += u64::from(n);
        }
        self.cancelled += u64::from(r.cancelled);
        self.slow_calls += u64::from(r.slow_calls);
        self.watch_events += r.watch_events;
        self.lease_renewals += u64::from(r.lease_renewals);
        self.lease_lapses += u64::from(r.lease_lapses);
        self.lease_alive_again += u64::from(r.lease_alive_again);
        self.stream_opens += u64::from(r.stream_opens);
        for (t, n) in self.stream_closes.iter_mut().zip(r.stream_closes) {
            *t += u64::from(n);
        }
        self.long_runs += u64::from(r.long_runs);
        self.fence_resets += u64::from(r.fence_resets);
        self.stale_marked += u64::from(r.stale_marked);
        self.watch_pauses += u64::from(r.watch_pauses);
        self.slow_link_answers += u64::from(r.slow_link_answers);
    }

    fn add(&mut self, o: &Totals) {
        self.ok += o.ok;
        self.failed += o.failed;
        self.unknown += o.unknown;
        self.events += o.events;
        self.must_succeed += o.must_succeed;
        for (t, n) in self.fault_hits.iter_mut().zip(o.fault_hits) {
            *t += n;
        }
        self.cancelled += o.cancelled;
        self.slow_calls += o.slow_calls;
        self.watch_events += o.watch_events;
        self.lease_renewals += o.lease_renewals;
        self.lease_lapses += o.lease_lapses;
        self.lease_alive_again += o.lease_alive_again;
        self.stream_opens += o.stream_opens;
        for (t, n) in self.stream_closes.iter_mut().zip(o.stream_closes) {
            *t += n;
        }
        self.long_runs += o.long_runs;
        self.fence_resets += o.fence_resets;
        self.stale_marked += o.stale_marked;
        self.watch_pauses += o.watch_pauses;
        self.slow_link_answers += o.slow_link_answers;
    }

    /// The workload and the faults really reached the core: each fault
    /// kind touched calls, outcomes were unknown, calls had to succeed,
    /// watches delivered, leases renewed, slow and cancelled calls ran,
    /// runs crossed the idle timeout. A harness change that stops any of
    /// that fails here instead of passing vacuously. Thresholds are about
    /// a third of what the seeds produce.
    fn check_coverage(&self, seeds: u64) -> Vec<String> {
        let mut bad = Vec::new();
        let mut need = |what: &str, got: u64, per_100_seeds: u64| {
            let min = seeds * per_100_seeds / 100;
            if got < min {
                bad.push(format!("{what}: {got} < {min} expected for {seeds} seeds"));
            }
        };
        for (k, n) in FaultKind::ALL.iter().zip(self.fault_hits) {
            // Token expiry only exists in auth runs (30 %).
            let per = if *k == FaultKind::TokenExpiry { 5 } else { 10 };
            need(&format!("calls hit by {k:?}"), n, per);
        }
        need("outcome-unknown mutations", self.unknown, 30);
        need("must-succeed calls", self.must_succeed, 500);
        need("calls completed OK", self.ok, 1500);
        need("cancelled calls", self.cancelled, 20);
        need("slow healthy attempts", self.slow_calls, 150);
        need("watch events delivered", self.watch_events, 1000);
        need("lease renewals", self.lease_renewals, 700);
        // About 11 and 1 per 100 seeds.
        need("leases reported as possibly expired", self.lease_lapses, 3);
        need(
            "leases alive again after a lapse (x 3)",
            self.lease_alive_again * 3,
            1,
        );
        need("stream opens", self.stream_opens, 150);
        // The stream driver's decisions, driven as the client drives them.
        need(
            "streams closed for a member without leader",
            self.stream_closes[0],
            5,
        );
        need(
            "streams closed for unanswered requests",
            self.stream_closes[1],
            10,
        );
        need("runs past the idle timeout", self.long_runs, 2);
        // Restores and bogus headers each reach about 3 runs in 10.
        need("revision fence resets", self.fence_resets, 10);
        need(
            "watchers paused by a slow consumer",
            self.watch_pauses,
            WATCH_PAUSES_PER_100,
        );
        // About 22 per 100 seeds.
        need(
            "large answers whole over a slow link",
            self.slow_link_answers,
            7,
        );
        bad
    }
}

/// Watchers paused by a slow consumer per 100 seeds, at least (about a
/// third of what the seeds produce).
const WATCH_PAUSES_PER_100: u64 = 3;

fn run_many(opts: &Opts, first: u64, count: u64) -> Vec<(u64, Vec<String>)> {
    run_many_totals(opts, first, count).0
}

fn run_many_totals(opts: &Opts, first: u64, count: u64) -> (Vec<(u64, Vec<String>)>, Totals) {
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(8) as u64;
    let mut failures = Vec::new();
    let mut totals = Totals::default();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let mut bad = Vec::new();
                    let mut tot = Totals::default();
                    let mut seed = first + t;
                    while seed < first + count {
                        let r = run_seed(seed, opts);
                        tot.add_report(&r);
                        if !r.violations.is_empty() {
                            bad.push((seed, r.violations));
                        }
                        seed += threads;
                    }
                    (bad, tot)
                })
            })
            .collect();
        for h in handles {
            let (bad, tot) = h.join().expect("simulation thread");
            failures.extend(bad);
            totals.add(&tot);
        }
    });
    failures.sort_by_key(|(s, _)| *s);
    (failures, totals)
}

#[test]
fn simulation_seeds() {
    let opts = Opts {
        stale_serve: std::env::var_os("ETCDV3_SIM_STALE").is_some(),
        allow_slow_abort: std::env::var_os("ETCDV3_SIM_ALLOW_SLOW_ABORT").is_some(),
        leader_faults: std::env::var_os("ETCDV3_SIM_LEADER").is_some(),
        no_election_wait: std::env::var_os("ETCDV3_SIM_NO_ELECTION_WAIT").is_some(),
        ..Opts::default()
    };
    if let Some(seed) = env_u64("ETCDV3_SIM_SEED") {
        let r = run_seed(
            seed,
            &Opts {
                log: true,
                ..opts.clone()
            },
        );
        for line in &r.log {
            eprintln!("{line}");
        }
        assert!(
            r.violations.is_empty(),
            "seed {seed}:\n{}",
            r.violations.join("\n")
        );
        return;
    }
    let count = env_u64("ETCDV3_SIM_SEEDS").unwrap_or(2000);
    let started = Instant::now();
    let (failures, totals) = run_many_totals(&opts, 0, count);
    let took = started.elapsed();
    eprintln!(
        "simulated {count} seeds in {took:.2?} ({:.0} seeds/s): {totals:?}",
        count as f64 / took.as_secs_f64()
    );
    if let Some((seed, _)) = failures.first() {
        eprintln!(
            "{} failing seeds: {:?}",
            failures.len(),
            failures.iter().map(|f| f.0).collect::<Vec<_>>()
        );
        for (seed, v) in &failures {
            eprintln!("seed {seed}: {}", v[0]);
        }
        check_seed(*seed, &opts);
    }
    if count >= 200 && !opts.leader_faults {
        let missing = totals.check_coverage(count);
        assert!(
            missing.is_empty(),
            "the simulation no longer exercises what it claims:\n{}",
            missing.join("\n")
        );
    }
}

/// Members cut off from their peers answer reads from their stale state
/// while they still believe in their leader (as serializable reads do; the
/// reads are started as `ReadKind::Serializable`). A read handed over
/// without a stale marker must never observe a revision lower than one
/// already observed (within one history).
///
/// In the election-timeout window after a partition the member still
/// reports the old leader and term, so probes cannot tell it apart; the
/// core's revision fence (a serializable `Range` answered below the revision
/// the client had seen when the read started is retried on another member,
/// at most `stale_read_retries` times, then handed over marked) keeps
/// unmarked reads monotonic.
#[test]
fn simulation_stale_serving_members() {
    let opts = Opts {
        stale_serve: true,
        ..Opts::default()
    };
    let count = env_u64("ETCDV3_SIM_SEEDS").unwrap_or(2000) / 4;
    let failures = run_many(&opts, 1_000_000, count);
    if let Some((seed, _)) = failures.first() {
        eprintln!(
            "{} failing seeds: {:?}",
            failures.len(),
            failures.iter().map(|f| f.0).collect::<Vec<_>>()
        );
        check_seed(*seed, &opts);
    }
}

/// The slow-link invariant can fail: an adapter that reports only whole
/// answers (never `Core::handle_call_progress`) has large answers cut off
/// while their bytes arrive from a live member over a slow link (the PONG
/// waits behind them longer than the ping timeout).
#[test]
fn simulation_slow_link_answers_need_call_progress() {
    let opts = Opts {
        no_call_progress: true,
        ..Opts::default()
    };
    let failures = run_many(&opts, 0, SLOW_LINK_PROBE_SEEDS);
    let cut = failures
        .iter()
        .filter(|(_, v)| v.iter().any(|l| l.contains("slow-link answer")))
        .count();
    assert!(
        cut >= 15,
        "only {cut} of {SLOW_LINK_PROBE_SEEDS} seeds cut a slow-link answer off without call progress: the invariant cannot fail"
    );
}

/// Seeds run without call progress.
const SLOW_LINK_PROBE_SEEDS: u64 = 300;

/// The liveness check can fail: reads whose answers are lost on the way
/// to the core (`Opts::lose_answers`; the member answers pings, so the core
/// rightly waits) fail at their deadline while a healthy member is
/// reachable. Its excuses (a call sent to, or reaching, a muted member;
/// slow service; members or the cluster in trouble) do not cover that.
/// About 160 of the 200 seeds fail it.
#[test]
fn simulation_liveness_check_catches_lost_answers() {
    let opts = Opts {
        lose_answers: true,
        ..Opts::default()
    };
    let failures = run_many(&opts, 0, LIVENESS_PROBE_SEEDS);
    let caught = failures
        .iter()
        .filter(|(_, v)| {
            v.iter()
                .any(|l| l.contains("failed although a healthy member was reachable"))
        })
        .count();
    assert!(
        caught >= LIVENESS_PROBE_SEEDS as usize / 2,
        "only {caught} of {LIVENESS_PROBE_SEEDS} seeds with lost read answers failed the liveness check: it cannot fail"
    );
}

/// Seeds run with lost read answers.
const LIVENESS_PROBE_SEEDS: u64 = 200;

#[test]
fn simulation_is_deterministic() {
    for seed in [1, 2, 3] {
        let a = run_seed(
            seed,
            &Opts {
                log: true,
                ..Opts::default()
            },
        );
        let b = run_seed(
            seed,
            &Opts {
                log: true,
                ..Opts::default()
            },
        );
        assert_eq!(a.log, b.log, "seed {seed}");
        assert!(
            a.events > 100,
            "seed {seed} did little: {} events",
            a.events
        );
        assert!(a.ok > 0, "seed {seed}: nothing succeeded");
    }
}

// ---------------------------------------------------------- leader faults

/// Run `count` leader-fault seeds from `first`: the failing ones, and the
/// figures of every leader fault.
fn run_leader_seeds(
    opts: &Opts,
    first: u64,
    count: u64,
) -> (Vec<(u64, Vec<String>)>, Vec<LeaderFaultStat>) {
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(8) as u64;
    let mut failures = Vec::new();
    let mut stats = Vec::new();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let mut bad = Vec::new();
                    let mut st = Vec::new();
                    let mut seed = first + t;
                    while seed < first + count {
                        let r = run_seed(seed, opts);
                        st.extend(r.leader_faults.iter().copied());
                        if !r.violations.is_empty() {
                            bad.push((seed, r.violations));
                        }
                        seed += threads;
                    }
                    (bad, st)
                })
            })
            .collect();
        for h in handles {
            let (bad, st) = h.join().expect("simulation thread");
            failures.extend(bad);
            stats.extend(st);
        }
    });
    failures.sort_by_key(|(s, _)| *s);
    (failures, stats)
}

/// Seeds of the leader-fault runs start here (replay one with
/// `ETCDV3_SIM_SEED=<n> ETCDV3_SIM_LEADER=1`).
const LEADER_SEEDS: u64 = 2_000_000;

/// Leader faults stay tight (issue 17 §9): runs whose only faults are a
/// crash, a SIGSTOP or a partition of the leader, one at a time, with a
/// sequential writer (see `leader.rs`). Per leader fault the writer sees at
/// most one outcome-unknown put and a put gap of at most the simulated
/// cluster's own election time + 0.5 s; every other invariant of the
/// simulation holds too. Seeds: `ETCDV3_SIM_SEEDS` / 10 (default 200; each
/// runs a writer of about 100 puts a second for a minute).
#[test]
fn simulation_leader_faults() {
    let opts = Opts {
        leader_faults: true,
        no_election_wait: std::env::var_os("ETCDV3_SIM_NO_ELECTION_WAIT").is_some(),
        ..Opts::default()
    };
    let count = (env_u64("ETCDV3_SIM_SEEDS").unwrap_or(2000) / 10).max(1);
    let (failures, stats) = run_leader_seeds(&opts, LEADER_SEEDS, count);
    eprintln!("{}", leader_summary(count, &stats));
    if let Some((seed, _)) = failures.first() {
        eprintln!(
            "{} failing seeds: {:?}",
            failures.len(),
            failures.iter().map(|f| f.0).collect::<Vec<_>>()
        );
        for (seed, v) in &failures {
            eprintln!("seed {seed}: {}", v[0]);
        }
        check_seed(*seed, &opts);
    }
    // The runs really went through leader faults of each kind, and puts
    // in flight on the leader did end "outcome unknown" (the bound of one
    // is not met vacuously).
    for kind in [FaultKind::Crash, FaultKind::Hang, FaultKind::Partition] {
        let n = stats.iter().filter(|s| s.kind == Some(kind)).count() as u64;
        assert!(
            n >= count / 2,
            "{n} leader faults {kind:?} over {count} seeds"
        );
    }
    let unknowns: u32 = stats.iter().map(|s| s.unknowns).sum();
    assert!(
        u64::from(unknowns) >= count / 10,
        "{unknowns} outcome-unknown puts over {count} seeds"
    );
}

/// The leader-fault invariant bites: with `Config::election_wait` zero
/// (mutations sent to followers while they still forward to the leader
/// that went), some seeds break it (about 4 in 10). Seeds:
/// `ETCDV3_SIM_SEEDS` / 40, at least 20 (default 50).
#[test]
fn simulation_leader_faults_fail_without_the_election_wait() {
    let opts = Opts {
        leader_faults: true,
        no_election_wait: true,
        ..Opts::default()
    };
    let count = (env_u64("ETCDV3_SIM_SEEDS").unwrap_or(2000) / 40).max(20);
    let (failures, stats) = run_leader_seeds(&opts, LEADER_SEEDS, count);
    let broken = failures
        .iter()
        .filter(|(_, v)| v.iter().any(|l| l.contains("leader fault")))
        .count();
    eprintln!(
        "without the election wait: {broken} of {count} seeds break the leader-fault invariant; {}",
        leader_summary(count, &stats)
    );
    assert!(
        broken > 0,
        "no seed broke the leader-fault invariant without the election wait"
    );
}

/// One line of figures over the leader faults of `count` seeds.
fn leader_summary(count: u64, stats: &[LeaderFaultStat]) -> String {
    let n = stats.len();
    let over = stats
        .iter()
        .filter(|s| s.unknowns > LEADER_FAULT_UNKNOWNS)
        .count();
    let one = stats.iter().filter(|s| s.unknowns == 1).count();
    // The client's share of the gap: the gap beyond the cluster's election.
    let mut share: Vec<i64> = stats
        .iter()
        .filter_map(|s| {
            s.election
                .map(|e| s.gap.as_millis() as i64 - e.as_millis() as i64)
        })
        .collect();
    share.sort();
    let pct = |p: usize| share.get((share.len().max(1) - 1) * p / 100).copied();
    let slack = LEADER_FAULT_SLACK.as_millis();
    let beyond = share.iter().filter(|s| **s > slack as i64).count();
    format!(
        "{count} leader-fault seeds, {n} leader faults: {one} with one outcome-unknown put, {over} with more; client share of the put gap (ms) p50 {:?} p99 {:?} max {:?}, {beyond} beyond {slack} ms",
        pct(50),
        pct(99),
        share.last()
    )
}

// ------------------------------------------------------- regression seeds

/// Seed 5: a probe went unanswered on a hung member, then a call was sent on
/// that connection, arming a stall timer that was already due (poll_timeout
/// in the past). The harness must handle such timers at once; the core must
/// then detect the stall and fail the read over.
#[test]
fn regression_seed_5_timer_due_in_the_past() {
    check_seed(5, &Opts::default());
}

/// Seed 1899: read #4 was sent to m3 2 ms before m3 went mute (answers
/// pings but no request) and reached it after; the core lets a call on a
/// member that answers pings run to its deadline (`Config::stall_timeout`),
/// so it failed there, as it should. The liveness check excused only calls
/// *sent* to a muted member; since 73ce94c it excuses every request that
/// reaches one (the core cannot tell the two apart). Without that, this
/// seed fails, and so did seed 1002761 in stale-serving mode at 859468b
/// (the fault kinds drawn from a seed changed since).
#[test]
fn regression_seed_1899_read_sent_just_before_its_member_went_mute() {
    check_seed(1899, &Opts::default());
}

/// Seed 1000210 (stale-serving mode): a read 0.3 s after a member was cut
/// off from its peers got revision 5 after revision 6 had been observed.
#[test]
fn regression_seed_1000210_stale_read_after_partition() {
    check_seed(
        1_000_210,
        &Opts {
            stale_serve: true,
            ..Opts::default()
        },
    );
}

/// Seed 1001319 (stale-serving mode): a watch open refused for its token
/// before the stream was established (the core retries that itself) was
/// later counted as the established stream's token refusal, so the driver
/// saw two refusals without a message between and failed the watchers.
#[test]
fn regression_seed_1001319_token_refusal_before_the_stream_is_established() {
    check_seed(
        1_001_319,
        &Opts {
            stale_serve: true,
            ..Opts::default()
        },
    );
}
