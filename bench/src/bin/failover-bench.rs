//! Failover benchmark: for every fault of the failover suite, aimed at the
//! leader and at a follower, start a fresh 3-member etcd cluster (testkit,
//! real processes behind fault proxies), run one put every 10 ms
//! (sequential, 5 s timeout per put), inject the fault, hold it 4 s, undo
//! it, run 2 s more, and report the longest time without a successful put
//! and the errors the caller saw.
//!
//! Three client configurations run in every round, each alone on its own
//! fresh cluster (sequentially, so they do not compete for the CPU; the
//! order rotates from round to round):
//!
//! - `etcdv3`: this project's client, its defaults (detection: keepalive and
//!   stall timers of its core) except the 5 s call timeout every client gets;
//! - `etcd-client (defaults)`: the `etcd-client` crate (tonic) as a user gets
//!   it, no HTTP/2 keepalive, the same 5 s timeout;
//! - `etcd-client (ka 0.5/0.8 s)`: the same with HTTP/2 keepalive matched to
//!   etcdv3's detection times (interval 0.5 s, timeout 0.8 s) and
//!   `keep_alive_while_idle(false)`: etcd (grpc-go, `MinTime` 5 s,
//!   `PermitWithoutStream: false`) counts every ping on a connection without
//!   streams as a strike, so pinging idle connections only earns GOAWAYs.
//!
//! etcd answers pings closer than 5 s apart on a connection whose server
//! wrote no HEADERS/DATA since the previous ping with a strike, and the third
//! strike with GOAWAY(ENHANCE_YOUR_CALM, "too_many_pings"). To see that
//! happen, the testkit's client proxies (in front of every member) read the
//! HTTP/2 frames going through them and count the client's PINGs and the
//! server's GOAWAYs (a too_many_pings GOAWAY apart):
//! `Cluster::client_http2_counts`. Errors whose text says too_many_pings /
//! ENHANCE_YOUR_CALM are counted too.
//!
//! The put loop is the failover workload's (`etcdv3-failover`, shared with
//! the failover suite and `etcdv3ctl demo`), driven through a [`Putter`] over
//! either client library.
//!
//! Targets are chosen by role and round, independently of the client: the
//! leader, or in round `r` follower `r % 2` of the non-leader members sorted
//! by index (the same choice for the three clients of a round).
//!
//! ```text
//! cargo run --release -p etcdv3-bench --features etcd-client --bin failover-bench
//! cargo run --release -p etcdv3-bench --bin failover-bench -- --rounds 1 --only SIGKILL
//! ```
//!
//! Options: `--rounds N` (runs per fault, role and client, default 5; the
//! tables show the median gap and the worst), `--only TEXT` (scenarios whose
//! name contains TEXT).
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcdv3_bench::{median_duration as median, ConnectOptions, Driver, DriverError, Lib};
// The fault schedule comes from the testkit, the workload from
// etcdv3-failover (both shared with the tests and `etcdv3ctl demo`).
use etcdv3_failover::{
    lock, put_loop, CallError, Putter, Role, Scenario, SharedLog, Sleep, CALL_TIMEOUT,
};
use etcdv3_testkit::fault::{fault_stats, inject, ErrorClass, Fault, FaultStats, FAULTS};
use etcdv3_testkit::{says_too_many_pings, Cluster};

const WARMUP: Duration = Duration::from_millis(1500);
const HOLD: Duration = Duration::from_secs(4);
const TAIL: Duration = Duration::from_secs(2);
/// etcd-client's matched keepalive (etcdv3's detection times).
#[cfg(feature = "etcd-client")]
const KA_INTERVAL: Duration = Duration::from_millis(500);
#[cfg(feature = "etcd-client")]
const KA_TIMEOUT: Duration = Duration::from_millis(800);

// ------------------------------------------------------------------ clients

/// A client configuration the benchmark compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Client {
    /// etcdv3 with its defaults (and the shared 5 s call timeout).
    Etcdv3,
    /// etcd-client with its defaults: no keepalive, the 5 s timeout.
    #[cfg(feature = "etcd-client")]
    EtcdClientDefault,
    /// etcd-client with keepalive 0.5 s / 0.8 s, not while idle.
    #[cfg(feature = "etcd-client")]
    EtcdClientMatched,
}

impl Client {
    fn all() -> Vec<Client> {
        vec![
            Client::Etcdv3,
            #[cfg(feature = "etcd-client")]
            Client::EtcdClientDefault,
            #[cfg(feature = "etcd-client")]
            Client::EtcdClientMatched,
        ]
    }

    fn name(self) -> &'static str {
        match self {
            Client::Etcdv3 => "etcdv3",
            #[cfg(feature = "etcd-client")]
            Client::EtcdClientDefault => "etcd-client (defaults)",
            #[cfg(feature = "etcd-client")]
            Client::EtcdClientMatched => "etcd-client (ka 0.5/0.8 s)",
        }
    }

    async fn connect(self, urls: &[String]) -> Result<Driver, DriverError> {
        match self {
            Client::Etcdv3 => {
                let opts = ConnectOptions {
                    timeout: Some(CALL_TIMEOUT),
                    keepalive: None,
                };
                Driver::connect(Lib::Etcdv3, urls, &opts).await
            }
            #[cfg(feature = "etcd-client")]
            Client::EtcdClientDefault => {
                let o = etcd_client::ConnectOptions::new().with_timeout(CALL_TIMEOUT);
                let c = etcd_client::Client::connect(urls, Some(o)).await?;
                Ok(Driver::EtcdClient(Box::new(c)))
            }
            #[cfg(feature = "etcd-client")]
            Client::EtcdClientMatched => {
                let o = etcd_client::ConnectOptions::new()
                    .with_timeout(CALL_TIMEOUT)
                    .with_keep_alive(KA_INTERVAL, KA_TIMEOUT)
                    .with_keep_alive_while_idle(false);
                let c = etcd_client::Client::connect(urls, Some(o)).await?;
                Ok(Driver::EtcdClient(Box::new(c)))
            }
        }
    }
}

/// The error's display text followed by its sources' and its debug form.
fn full_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = format!("{e} | {e:?}");
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(&format!(" | {x}"));
        src = x.source();
    }
    s
}

/// The workload's puts through either library's [`Driver`].
struct DriverPutter(Driver);

impl Putter for DriverPutter {
    /// One put; the member that answered (the revision is not asked for).
    /// The error's text is its full text (sources and debug form), where a
    /// GOAWAY too_many_pings shows.
    async fn put(&mut self, key: String, value: String) -> Result<(u64, i64), CallError> {
        match self.0.put(key, value).await {
            Ok(member) => Ok((member, 0)),
            Err(e) => {
                let (class, may_have_applied) = match &e {
                    DriverError::Etcdv3(e) => (e.class(), e.may_have_applied()),
                    #[cfg(feature = "etcd-client")]
                    DriverError::EtcdClient(e) => (classify_etcd_client(e), true),
                    DriverError::Unexpected(m) => (ErrorClass::Other(m.clone()), true),
                };
                Err(CallError {
                    class,
                    text: full_text(&e),
                    may_have_applied,
                })
            }
        }
    }
}

/// The workload's timer.
fn sleep(d: Duration) -> Sleep {
    Box::pin(tokio::time::sleep(d))
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

// --------------------------------------------------------------- scenarios

/// The benchmark's scenarios: every fault on the leader and on a follower.
fn scenarios() -> Vec<Scenario> {
    let mut v = Vec::new();
    let s = |fault, role| Scenario { fault, role };
    for f in FAULTS {
        match f {
            // KillLeader is KillUsed aimed at the leader: covered below.
            Fault::KillLeader => {}
            Fault::RollingRestart => v.push(s(f, Role::All)),
            _ => {
                v.push(s(f, Role::Leader));
                v.push(s(f, Role::Follower));
            }
        }
    }
    v
}

/// The member a fault of `role` hits in `round`: the leader, or follower
/// `round % 2` of the other members sorted by index (whatever the client
/// does).
fn pick_target(role: Role, round: usize, leader: usize, size: usize) -> usize {
    match role {
        Role::Leader => leader,
        Role::Follower | Role::All => {
            let followers: Vec<usize> = (0..size).filter(|i| *i != leader).collect();
            followers
                .get(round % followers.len().max(1))
                .copied()
                .unwrap_or(leader)
        }
    }
}

struct Run {
    target: String,
    stats: FaultStats,
    /// PINGs the client sent over the run (all members).
    client_pings: u64,
    /// GOAWAYs the members sent over the run, and how many said
    /// too_many_pings.
    goaways: u64,
    too_many_pings: u64,
    /// Errors the caller saw whose text says too_many_pings.
    too_many_pings_errors: u64,
}

async fn run_once(client: Client, scenario: Scenario, round: usize) -> Result<Run, String> {
    let Scenario { fault, role } = scenario;
    let cluster = Arc::new(
        tokio::task::spawn_blocking(|| Cluster::start(3))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?,
    );
    let driver = client.connect(&cluster.client_urls()).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let log = SharedLog::default();
    let task = tokio::spawn(put_loop(
        DriverPutter(driver.clone()),
        "fb/".into(),
        stop.clone(),
        log.clone(),
        sleep,
    ));
    tokio::time::sleep(WARMUP).await;
    let c = cluster.clone();
    let leader = tokio::task::spawn_blocking(move || c.wait_for_leader(Duration::from_secs(10)))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let target = pick_target(role, round, leader, cluster.size());
    let desc = match fault {
        Fault::RollingRestart => "all".to_string(),
        _ if target == leader => format!("m{target} leader"),
        _ => format!("m{target} follower"),
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
    drop(driver);
    injected?;
    let recs = std::mem::take(&mut lock(&log).records);
    let stats = fault_stats(&recs, fault_at, until);
    // What the cluster's client proxies counted over the run (the cluster
    // is this run's alone).
    let frames = cluster.client_http2_counts();
    let too_many_pings_errors = recs
        .iter()
        .filter(|r| {
            r.result
                .as_ref()
                .is_err_and(|(_, text)| says_too_many_pings(text))
        })
        .count() as u64;
    let run = Run {
        target: desc,
        stats,
        client_pings: frames.client_pings,
        goaways: frames.goaways,
        too_many_pings: frames.too_many_pings,
        too_many_pings_errors,
    };
    let _ = tokio::task::spawn_blocking(move || drop(cluster)).await;
    Ok(run)
}

// ------------------------------------------------------------------ tables

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

fn gaps(runs: &[Run]) -> (Duration, Duration) {
    let g: Vec<Duration> = runs.iter().map(|r| r.stats.longest_gap).collect();
    let worst = g.iter().max().copied().unwrap_or_default();
    (median(g), worst)
}

fn error_summary(runs: &[Run]) -> String {
    let mut errs: BTreeMap<String, usize> = BTreeMap::new();
    for r in runs {
        for ((_, c), n) in &r.stats.errors {
            *errs.entry(c.to_string()).or_default() += n;
        }
    }
    if errs.is_empty() {
        "none".to_string()
    } else {
        errs.iter()
            .map(|(c, n)| format!("{c}×{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn tables(
    scenarios: &[Scenario],
    clients: &[Client],
    results: &BTreeMap<(usize, Client), Vec<Run>>,
    only: Option<usize>,
) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let scen: Vec<usize> = {
        let mut v: Vec<usize> = results
            .keys()
            .map(|(s, _)| *s)
            .filter(|s| only.is_none_or(|o| o == *s))
            .collect();
        v.dedup();
        v
    };
    // Gaps: median / worst per client, ratios of medians to etcdv3's.
    let _ = writeln!(out);
    let mut head = "| fault (target) | rounds |".to_string();
    let mut rule = "|---|---:|".to_string();
    for c in clients {
        head.push_str(&format!(" {} median / worst (ms) |", c.name()));
        rule.push_str("---:|");
        if *c != Client::Etcdv3 {
            head.push_str(&format!(" {} / etcdv3 (medians) |", c.name()));
            rule.push_str("---:|");
        }
    }
    let _ = writeln!(out, "{head}");
    let _ = writeln!(out, "{rule}");
    for &si in &scen {
        let name = scenarios[si].name();
        let rounds = clients
            .iter()
            .map(|c| results.get(&(si, *c)).map_or(0, Vec::len))
            .min()
            .unwrap_or(0);
        let ours = results.get(&(si, Client::Etcdv3)).map(|r| gaps(r).0);
        let mut row = format!("| {name} | {rounds} |");
        for c in clients {
            match results.get(&(si, *c)) {
                Some(runs) => {
                    let (med, worst) = gaps(runs);
                    row.push_str(&format!(" {} / {} |", ms(med), ms(worst)));
                    if *c != Client::Etcdv3 {
                        match ours {
                            Some(o) => row.push_str(&format!(
                                " {:.2}× |",
                                med.as_secs_f64() / o.as_secs_f64().max(0.001)
                            )),
                            None => row.push_str(" – |"),
                        }
                    }
                }
                None => row.push_str(if *c == Client::Etcdv3 {
                    " – |"
                } else {
                    " – | – |"
                }),
            }
        }
        let _ = writeln!(out, "{row}");
    }
    // Errors, pings and GOAWAYs per client.
    let _ = writeln!(out);
    let _ = writeln!(
            out,
        "| fault (target) | client | targets by round | ok puts per run (median) | errors seen by the caller (all rounds) | client PINGs per run (median) | GOAWAY too_many_pings (runs with / runs; frames; errors saying so) | other GOAWAYs |"
    );
    let _ = writeln!(out, "|---|---|---|---:|---|---:|---|---:|");
    for &si in &scen {
        let name = scenarios[si].name();
        for c in clients {
            let Some(runs) = results.get(&(si, *c)) else {
                continue;
            };
            let targets: Vec<&str> = runs.iter().map(|r| r.target.as_str()).collect();
            let mut oks: Vec<usize> = runs.iter().map(|r| r.stats.ok).collect();
            oks.sort_unstable();
            let ok = oks
                .get(oks.len().saturating_sub(1) / 2)
                .copied()
                .unwrap_or(0);
            let mut pings: Vec<u64> = runs.iter().map(|r| r.client_pings).collect();
            pings.sort_unstable();
            let ping = pings
                .get(pings.len().saturating_sub(1) / 2)
                .copied()
                .unwrap_or(0);
            let with = runs
                .iter()
                .filter(|r| r.too_many_pings > 0 || r.too_many_pings_errors > 0)
                .count();
            let frames: u64 = runs.iter().map(|r| r.too_many_pings).sum();
            let errs: u64 = runs.iter().map(|r| r.too_many_pings_errors).sum();
            let other: u64 = runs.iter().map(|r| r.goaways - r.too_many_pings).sum();
            let _ = writeln!(
                out,
                "| {} | {} | {} | {ok} | {} | {ping} | {with} / {}; {frames}; {errs} | {other} |",
                name,
                c.name(),
                targets.join(", "),
                error_summary(runs),
                runs.len(),
            );
        }
    }
    out
}

fn main() {
    let mut rounds = 5usize;
    let mut only: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rounds" => rounds = args.next().and_then(|v| v.parse().ok()).unwrap_or(5).max(1),
            "--only" => only = args.next(),
            "-h" | "--help" => {
                println!("failover-bench [--rounds N (default 5)] [--only TEXT]");
                return;
            }
            other => {
                eprintln!("unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    let clients = Client::all();
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
    let mut results: BTreeMap<(usize, Client), Vec<Run>> = BTreeMap::new();
    let began = Instant::now();
    for (si, scenario) in scenarios.iter().copied().enumerate() {
        let name = scenario.name();
        if only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        for round in 0..rounds {
            // Rotate which client goes first from round to round.
            let mut order = clients.clone();
            let n = order.len().max(1);
            order.rotate_left(round % n);
            for &client in &order {
                match rt.block_on(run_once(client, scenario, round)) {
                    Ok(run) => {
                        eprintln!(
                            "[{:>5} s] {:<28} {:<27} round {round}: target {:<12} gap {:>5} ms, pings {:>3}, goaway too_many_pings {} (errors {}), other goaways {}, errors: {}",
                            began.elapsed().as_secs(),
                            name,
                            client.name(),
                            run.target,
                            run.stats.longest_gap.as_millis(),
                            run.client_pings,
                            run.too_many_pings,
                            run.too_many_pings_errors,
                            run.goaways - run.too_many_pings,
                            run.stats.error_summary()
                        );
                        results.entry((si, client)).or_default().push(run);
                    }
                    Err(e) => {
                        eprintln!("{name} {} round {round}: FAILED: {e}", client.name())
                    }
                }
            }
        }
        // This scenario's rows now, in case the run is cut short.
        eprint!("{}", tables(&scenarios, &clients, &results, Some(si)));
    }
    print!("{}", tables(&scenarios, &clients, &results, None));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follower_target_depends_on_round_not_client() {
        assert_eq!(pick_target(Role::Follower, 0, 1, 3), 0);
        assert_eq!(pick_target(Role::Follower, 1, 1, 3), 2);
        assert_eq!(pick_target(Role::Follower, 2, 1, 3), 0);
        assert_eq!(pick_target(Role::Follower, 0, 0, 3), 1);
        assert_eq!(pick_target(Role::Follower, 1, 0, 3), 2);
        assert_eq!(pick_target(Role::Leader, 1, 2, 3), 2);
    }
}
