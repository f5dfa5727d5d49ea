//! Failover benchmark: for every fault of the failover suite, aimed once at
//! the leader and once at a follower, start a fresh 3-member etcd cluster
//! (testkit, real processes behind fault proxies), run one put every 10 ms
//! (sequential, 5 s timeout per put), inject the fault, hold it 4 s, undo
//! it, run 2 s more, and report the longest time without a successful put
//! and the errors the caller saw.
//!
//! Targets are chosen by role, not by "the member the client uses": both
//! clients spread calls over all members (etcdv3's adaptive balancer sends
//! most puts to the leader, which answers them fastest; tonic's balancer
//! picks at random), so the role decides the cost: a put that reached a
//! follower whose leader is gone waits inside etcd, and no client may retry
//! it. The follower target is the follower that answered most puts.
//!
//! Each client runs alone on its own cluster (sequentially, so the two do not
//! compete for the CPU): etcdv3, and — with `--features etcd-client` — the
//! `etcd-client` crate (tonic) configured with HTTP/2 keepalive
//! (2 s interval, 1 s timeout) and the same 5 s timeout.
//!
//! ```text
//! cargo run --release -p etcdv3-bench --features etcd-client --bin failover-bench
//! cargo run --release -p etcdv3-bench --bin failover-bench -- --rounds 3 --only SIGSTOP
//! ```
//!
//! Options: `--rounds N` (runs per fault and client; the table shows the
//! median gap and the max), `--only TEXT` (faults whose name contains TEXT).
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etcdv3_bench::{median_duration as median, ConnectOptions, Driver, DriverError, Lib};
// The fault schedule comes from the testkit (shared with the tests and
// `etcdv3ctl demo`); only the classification of the client's errors lives in
// the integration crate, beside the client error type it matches on.
use etcdv3_integration::failover_support::classify;
use etcdv3_testkit::fault::{
    busiest_member, fault_stats, inject, ErrorClass, Fault, FaultStats, OpKind, OpRecord, FAULTS,
};
use etcdv3_testkit::Cluster;

const CALL_TIMEOUT: Duration = Duration::from_secs(5);
const HANG_GRACE: Duration = Duration::from_secs(1);
const TICK: Duration = Duration::from_millis(10);
const WARMUP: Duration = Duration::from_millis(1500);
const HOLD: Duration = Duration::from_secs(4);
const TAIL: Duration = Duration::from_secs(2);

type PutResult = Result<u64, (ErrorClass, String)>;

/// How both clients connect: the same call timeout; etcd-client with HTTP/2
/// keepalive (2 s interval, 1 s timeout).
fn connect_options() -> ConnectOptions {
    ConnectOptions {
        timeout: Some(CALL_TIMEOUT),
        keepalive: Some((Duration::from_secs(2), Duration::from_secs(1))),
    }
}

/// One put; `Ok(member_id)` of the member that answered.
async fn put(driver: &mut Driver, key: String, value: String) -> PutResult {
    driver.put(key, value).await.map_err(|e| {
        let class = match &e {
            DriverError::Etcdv3(e) => classify(e),
            #[cfg(feature = "etcd-client")]
            DriverError::EtcdClient(e) => classify_etcd_client(e),
            DriverError::Unexpected(m) => ErrorClass::Other(m.clone()),
        };
        (class, e.to_string())
    })
}

#[cfg(feature = "etcd-client")]
fn classify_etcd_client(e: &etcd_client::Error) -> ErrorClass {
    match e {
        etcd_client::Error::GRpcStatus(s) => match s.code() {
            tonic::Code::DeadlineExceeded => ErrorClass::DeadlineExceeded,
            code => ErrorClass::Status(format!("{code:?}")),
        },
        other => {
            let dbg = format!("{other:?}");
            ErrorClass::Other(dbg.split('(').next().unwrap_or("?").to_string())
        }
    }
}

/// Sequential puts until `stop`.
async fn workload(mut driver: Driver, stop: Arc<AtomicBool>, out: Arc<Mutex<Vec<OpRecord>>>) {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let start = Instant::now();
        let r = tokio::time::timeout(
            CALL_TIMEOUT + HANG_GRACE,
            put(&mut driver, format!("fb/{n:08}"), n.to_string()),
        )
        .await;
        let end = Instant::now();
        let result = r.unwrap_or_else(|_| Err((ErrorClass::Hang, "no answer".into())));
        out.lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(OpRecord {
                kind: OpKind::Put,
                start,
                end,
                result,
            });
        tokio::time::sleep(TICK).await;
    }
}

struct Run {
    target: String,
    stats: FaultStats,
}

/// Which member a fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Role {
    Leader,
    Follower,
    /// Every member (rolling restart).
    All,
}

/// The benchmark's scenarios: every fault on the leader and on a follower.
fn scenarios() -> Vec<(Fault, Role)> {
    let mut v = Vec::new();
    for f in FAULTS {
        match f {
            // KillLeader is KillUsed aimed at the leader: covered below.
            Fault::KillLeader => {}
            Fault::RollingRestart => v.push((f, Role::All)),
            _ => {
                v.push((f, Role::Leader));
                v.push((f, Role::Follower));
            }
        }
    }
    v
}

fn scenario_name(fault: Fault, role: Role) -> String {
    let base = match fault {
        Fault::KillUsed | Fault::KillLeader => "SIGKILL",
        Fault::PauseUsed => "SIGSTOP",
        Fault::IsolateUsed => "isolate from peers",
        Fault::BlackholeUsed => "blackhole client link",
        Fault::RollingRestart => "rolling restart",
        Fault::RemoveUsed => "remove member",
    };
    match role {
        Role::Leader => format!("{base} (leader)"),
        Role::Follower => format!("{base} (follower)"),
        Role::All => base.to_string(),
    }
}

async fn run_once(lib: Lib, fault: Fault, role: Role) -> Result<Run, String> {
    let cluster = Arc::new(
        tokio::task::spawn_blocking(|| Cluster::start(3))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?,
    );
    let driver = Driver::connect(lib, &cluster.client_urls(), &connect_options()).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let records = Arc::new(Mutex::new(Vec::new()));
    let task = tokio::spawn(workload(driver.clone(), stop.clone(), records.clone()));
    tokio::time::sleep(WARMUP).await;
    let c = cluster.clone();
    let leader = tokio::task::spawn_blocking(move || c.wait_for_leader(Duration::from_secs(10)))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let ids = cluster.member_ids();
    // The follower that answered most puts (the leader's answers left out).
    let follower_records: Vec<OpRecord> = records
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|r| r.result.as_ref().is_ok_and(|m| *m != ids[leader]))
        .cloned()
        .collect();
    let follower = busiest_member(&follower_records, usize::MAX)
        .and_then(|id| ids.iter().position(|m| *m == id))
        .unwrap_or((leader + 1) % ids.len());
    let target = match role {
        Role::Leader => leader,
        Role::Follower | Role::All => follower,
    };
    let desc = match fault {
        Fault::RollingRestart => "all".to_string(),
        _ => format!(
            "m{target} {}",
            if target == leader {
                "leader"
            } else {
                "follower"
            }
        ),
    };
    let fault_at = Instant::now();
    let c = cluster.clone();
    let injected = tokio::task::spawn_blocking(move || inject(&c, fault, target, HOLD))
        .await
        .map_err(|e| e.to_string())?;
    tokio::time::sleep(TAIL).await;
    let until = Instant::now();
    stop.store(true, Ordering::Relaxed);
    let _ = task.await;
    driver.close();
    injected?;
    let recs = std::mem::take(&mut *records.lock().unwrap_or_else(|p| p.into_inner()));
    let stats = fault_stats(&recs, fault_at, until);
    let _ = tokio::task::spawn_blocking(move || drop(cluster)).await;
    Ok(Run {
        target: desc,
        stats,
    })
}

fn main() {
    let mut rounds = 1usize;
    let mut only: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rounds" => rounds = args.next().and_then(|v| v.parse().ok()).unwrap_or(1).max(1),
            "--only" => only = args.next(),
            "-h" | "--help" => {
                println!("failover-bench [--rounds N] [--only TEXT]");
                return;
            }
            other => {
                eprintln!("unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    let libs = Lib::all();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tokio runtime: {e}");
            std::process::exit(1);
        }
    };
    let scenarios = scenarios();
    // (scenario, lib) -> runs
    let mut results: BTreeMap<(usize, Lib), Vec<Run>> = BTreeMap::new();
    for (fi, (fault, role)) in scenarios.iter().copied().enumerate() {
        let name = scenario_name(fault, role);
        if only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        for round in 0..rounds {
            for &lib in &libs {
                match rt.block_on(run_once(lib, fault, role)) {
                    Ok(run) => {
                        eprintln!(
                            "{:<30} {:<12} round {round}: target {:<12} gap {:>5} ms, errors: {}",
                            name,
                            lib.name(),
                            run.target,
                            run.stats.longest_gap.as_millis(),
                            run.stats.error_summary()
                        );
                        results.entry((fi, lib)).or_default().push(run);
                    }
                    Err(e) => {
                        eprintln!("{} {} round {round}: FAILED: {e}", fault.name(), lib.name())
                    }
                }
            }
        }
    }

    println!();
    println!(
        "| fault | client | target(s) | longest gap, median (ms) | max (ms) | ok puts | errors seen by the caller (all rounds) |"
    );
    println!("|---|---|---|---:|---:|---:|---|");
    let mut ours: BTreeMap<usize, Duration> = BTreeMap::new();
    for ((fi, lib), runs) in &results {
        let gaps: Vec<Duration> = runs.iter().map(|r| r.stats.longest_gap).collect();
        let med = median(gaps.clone());
        let max = gaps.iter().max().copied().unwrap_or_default();
        let mut errs: BTreeMap<String, usize> = BTreeMap::new();
        for r in runs {
            for ((_, c), n) in &r.stats.errors {
                *errs.entry(c.to_string()).or_default() += n;
            }
        }
        let errs = if errs.is_empty() {
            "none".to_string()
        } else {
            errs.iter()
                .map(|(c, n)| format!("{c}×{n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let targets: Vec<&str> = runs.iter().map(|r| r.target.as_str()).collect();
        let ok: usize = runs.iter().map(|r| r.stats.ok).sum::<usize>() / runs.len().max(1);
        println!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            scenario_name(scenarios[*fi].0, scenarios[*fi].1),
            lib.name(),
            targets.join(", "),
            med.as_millis(),
            max.as_millis(),
            ok,
            errs
        );
        if *lib == Lib::Etcdv3 {
            ours.insert(*fi, med);
        }
    }
    #[cfg(feature = "etcd-client")]
    {
        println!();
        println!("| fault | etcd-client gap / etcdv3 gap (medians) |");
        println!("|---|---:|");
        for ((fi, lib), runs) in &results {
            if *lib != Lib::EtcdClient {
                continue;
            }
            let theirs = median(runs.iter().map(|r| r.stats.longest_gap).collect());
            if let Some(o) = ours.get(fi) {
                let ratio = theirs.as_secs_f64() / o.as_secs_f64().max(0.001);
                println!(
                    "| {} | {ratio:.2}× |",
                    scenario_name(scenarios[*fi].0, scenarios[*fi].1)
                );
            }
        }
    }
    #[cfg(not(feature = "etcd-client"))]
    let _ = ours;
}
