//! Throughput benchmark: etcdv3 side by side with the `etcd-client` crate
//! (tonic) against the same etcd cluster, in the same run.
//!
//! One testkit cluster (3 members by default) is started; both clients talk
//! to the members' own client listeners (`Member::direct_client_url`), not
//! to the testkit's fault proxies, so no proxy sits in the measured path.
//! Each client library gets ONE client shared by all workers (the way an
//! application uses it), created and warmed up before the first cell.
//!
//! Measured, per library:
//! - put and linearizable range: throughput and p50/p99 latency at several
//!   concurrencies (workers sharing one client), a fixed number of
//!   operations per cell, 256-byte values. Every cell is repeated
//!   (`--repeat`, default 3) and the libraries alternate which one goes
//!   first; the tables show the median of the repetitions.
//! - client CPU per operation: the CPU time of the benchmark's tokio runtime
//!   threads only (named `tb-rt`, summed from
//!   `/proc/self/task/<tid>/schedstat`, nanoseconds), read before and after
//!   each cell. The testkit's proxy threads live in the same process and are
//!   left out. Server CPU per operation (utime+stime of the etcd processes
//!   from `/proc/<pid>/stat`) is shown too: a client that sends its reads to
//!   a follower makes the cluster work more.
//! - memory per connection and per watcher: each measurement runs in a fresh
//!   child process (the allocator keeps freed pages, so a second measurement
//!   in the same process would look cheaper). The child creates one warm-up
//!   client, reads `VmRSS` from `/proc/self/status`, then creates N clients
//!   (one endpoint each, so one connection each; each makes one call so its
//!   connection is open) or N watchers on one client, reads `VmRSS` again and
//!   reports the delta per unit.
//!
//! Every metric is printed as a markdown table with both libraries side by
//! side and their ratio (etcd-client / etcdv3 for latency, CPU and memory;
//! etcdv3 / etcd-client for throughput): the machine is shared and noisy, so
//! the ratios matter more than the absolute numbers.
//!
//! ```text
//! cargo run --release -p etcdv3-bench --features etcd-client --bin throughput-bench
//! cargo run --release -p etcdv3-bench --bin throughput-bench -- --ops 5000 --conc 1,16
//! ```
//!
//! Options: `--members N` (1 or 3, default 3), `--ops N` (per cell, default
//! 10000), `--conc LIST` (default `1,16,64,256`), `--repeat N` (default 3),
//! `--value-size BYTES` (default 256), `--clients N` (memory per connection,
//! default 200), `--watchers N` (memory per watcher, default 1000),
//! `--only put|range|serializable|mem|overload|watch-scale` (one part only),
//! `--only-lib etcdv3|etcd-client`.
//!
//! Decode floor (`--ws-decode-floor N [VALUE_SIZE] [prev-kv]`): decode one
//! watch-scale `WatchResponse` N times, the protobuf work both libraries
//! do per response (see `etcdv3_bench::watch_scale::decode_floor`).
//!
//! Watch scale (`--only watch-scale`, `etcdv3_bench::watch_scale`): N
//! watchers on one client in a fresh child process (`--ws-child`), a paced
//! writer in this process; memory per watcher, delivery latency, client CPU
//! per event, events expected against received. `--ws-watchers N` (default
//! 10000), `--ws-keys N` (default 100), `--ws-rate N` (writes/s, default
//! 1000), `--ws-secs N` (default 10), `--ws-variants LIST` (default
//! `etcdv3,etcdv3-one-task,etcdv3-group,etcd-client-stream,etcd-client-per-watch`);
//! `--repeat N` runs each variant N times, alternating the order.
//! `--ws-streams S` spreads the watchers over S `WatchStream`s
//! (etcd-client) or S `WatchGroup`s (etcdv3), `--ws-prev-kv` asks for
//! previous values: with `--ws-keys 1` that is etcd's own
//! `tools/benchmark watch-latency` shape (`--streams S
//! --watchers-per-stream N/S --put-rate R --prevkv`), e.g.
//! `--only watch-scale --ws-keys 1 --ws-streams 10 --ws-watchers 1000
//! --ws-rate 100 --ws-secs 10 --value-size 32 --ws-prev-kv
//! --ws-variants etcdv3-group,etcd-client-stream`.
//! Profiling the watch-scale children during the event phase only:
//! `WS_CALLGRIND_DIR=DIR` (each child under callgrind, instructions;
//! `WS_CALLGRIND_CACHE=1` adds the cache simulation), `WS_PERF_DIR=DIR`
//! (`perf record -e cpu-clock -g` attached to each child, one
//! `perf.VARIANT.PID.data` per child; `WS_PERF_CALLGRAPH=dwarf` for whole
//! call chains).
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcdv3_bench::{
    median_f64, percentile, processes_cpu, rss_kib, threads_cpu, ConnectOptions, Driver, Lib,
};

/// Name of the benchmark's runtime threads, whose CPU time is "client CPU".
const RT_THREAD: &str = "tb-rt";
/// Keys the range cells read (written once before the first cell).
const READ_KEYS: usize = 1000;
/// Keys the put cells overwrite (bounded, so the database stays small).
const WRITE_KEYS: usize = 1000;
/// Operations run before each cell, not measured.
const WARMUP_OPS: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    Put,
    Range,
    RangeSerializable,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Put => "put",
            Op::Range => "range (linearizable)",
            Op::RangeSerializable => "range (serializable)",
        }
    }
}

fn read_key(i: usize) -> Vec<u8> {
    format!("tb/r/{:06}", i % READ_KEYS).into_bytes()
}

fn write_key(i: usize) -> Vec<u8> {
    format!("tb/w/{:06}", i % WRITE_KEYS).into_bytes()
}

/// The result of one cell run.
#[derive(Debug, Clone, Default)]
struct CellRun {
    ops_per_sec: f64,
    p50: Duration,
    p99: Duration,
    /// Client CPU per op, microseconds.
    cpu_us: f64,
    /// Server CPU per op (all members), microseconds.
    server_cpu_us: f64,
    /// Share of the successful operations answered by the leader.
    leader_share: f64,
    errors: usize,
    first_error: Option<String>,
}

/// What [`run_ops`] saw.
struct OpsResult {
    latencies: Vec<Duration>,
    on_leader: usize,
    ok: usize,
    errors: usize,
    first_error: Option<String>,
    wall: Duration,
}

/// Run `ops` operations with `conc` workers sharing `driver`.
async fn run_ops(
    driver: &Driver,
    op: Op,
    conc: usize,
    ops: usize,
    value: &Arc<Vec<u8>>,
    leader: u64,
) -> OpsResult {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(conc);
    for _ in 0..conc {
        let mut d = driver.clone();
        let next = next.clone();
        let value = value.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(ops / conc + 1);
            let (mut on_leader, mut ok) = (0usize, 0usize);
            let mut errors = 0usize;
            let mut first_error = None;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= ops {
                    break;
                }
                let t0 = Instant::now();
                let r = match op {
                    Op::Put => d.put(write_key(i), value.as_ref().clone()).await,
                    Op::Range => d.get(read_key(i), false).await,
                    Op::RangeSerializable => d.get(read_key(i), true).await,
                }
                .map_err(|e| e.to_string());
                lat.push(t0.elapsed());
                match r {
                    Ok(member) => {
                        ok += 1;
                        on_leader += usize::from(member == leader);
                    }
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                    }
                }
            }
            (lat, on_leader, ok, errors, first_error)
        }));
    }
    let mut res = OpsResult {
        latencies: Vec::with_capacity(ops),
        on_leader: 0,
        ok: 0,
        errors: 0,
        first_error: None,
        wall: Duration::ZERO,
    };
    for t in tasks {
        match t.await {
            Ok((lat, l, ok, e, fe)) => {
                res.latencies.extend(lat);
                res.on_leader += l;
                res.ok += ok;
                res.errors += e;
                if res.first_error.is_none() {
                    res.first_error = fe;
                }
            }
            Err(e) => {
                res.errors += 1;
                res.first_error
                    .get_or_insert(format!("worker panicked: {e}"));
            }
        }
    }
    res.wall = start.elapsed();
    res
}

async fn run_cell(
    driver: &Driver,
    op: Op,
    conc: usize,
    ops: usize,
    value: &Arc<Vec<u8>>,
    cluster: &ClusterInfo,
) -> CellRun {
    // Warm-up at the cell's concurrency (not measured).
    let _ = run_ops(
        driver,
        op,
        conc,
        WARMUP_OPS.max(conc),
        value,
        cluster.leader,
    )
    .await;
    let cpu0 = threads_cpu(RT_THREAD);
    let srv0 = processes_cpu(&cluster.pids);
    let mut r = run_ops(driver, op, conc, ops, value, cluster.leader).await;
    let cpu1 = threads_cpu(RT_THREAD);
    let srv1 = processes_cpu(&cluster.pids);
    r.latencies.sort_unstable();
    CellRun {
        ops_per_sec: ops as f64 / r.wall.as_secs_f64().max(1e-9),
        p50: percentile(&r.latencies, 0.50),
        p99: percentile(&r.latencies, 0.99),
        cpu_us: cpu1.saturating_sub(cpu0).as_secs_f64() * 1e6 / ops as f64,
        server_cpu_us: srv1.saturating_sub(srv0).as_secs_f64() * 1e6 / ops as f64,
        leader_share: r.on_leader as f64 / r.ok.max(1) as f64,
        errors: r.errors,
        first_error: r.first_error,
    }
}

/// What the benchmark knows about the cluster.
struct ClusterInfo {
    urls: Vec<String>,
    /// Pids of the etcd processes.
    pids: Vec<u32>,
    /// Member id of the leader at start.
    leader: u64,
}

// ---------------------------------------------------------------------------
// Memory measurements (in a child process).

/// What a memory child measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum MemKind {
    /// N clients with one endpoint each (one connection each).
    Clients,
    /// N watchers on one client, each created with the library's `watch` call.
    Watchers,
    /// etcd-client only: N watchers created on ONE `WatchStream`
    /// (`WatchStream::watch`), the caller demultiplexes by watch id.
    WatchersOneStream,
}

impl MemKind {
    fn arg(self) -> &'static str {
        match self {
            MemKind::Clients => "clients",
            MemKind::Watchers => "watchers",
            MemKind::WatchersOneStream => "watchers-one-stream",
        }
    }

    fn parse(s: &str) -> Option<MemKind> {
        match s {
            "clients" => Some(MemKind::Clients),
            "watchers" => Some(MemKind::Watchers),
            "watchers-one-stream" => Some(MemKind::WatchersOneStream),
            _ => None,
        }
    }
}

/// The child's work: returns (RSS before, RSS after) in KiB.
async fn mem_child(lib: Lib, kind: MemKind, n: usize, url: String) -> Result<(u64, u64), String> {
    let urls = vec![url];
    let mut base = Driver::connect(lib, &urls, &ConnectOptions::default()).await?;
    base.put(b"tb/mem".to_vec(), b"x".to_vec()).await?;
    base.get(b"tb/mem".to_vec(), false).await?;
    match kind {
        MemKind::Clients => {
            // A warm-up client of the same kind as the measured ones.
            let mut warm = Driver::connect(lib, &urls, &ConnectOptions::default()).await?;
            warm.get(b"tb/mem".to_vec(), false).await?;
            settle().await;
            let before = rss_kib();
            let mut clients = Vec::with_capacity(n);
            for _ in 0..n {
                let mut c = Driver::connect(lib, &urls, &ConnectOptions::default()).await?;
                c.get(b"tb/mem".to_vec(), false).await?;
                clients.push(c);
            }
            settle().await;
            let after = rss_kib();
            for c in &clients {
                c.close();
            }
            Ok((before, after))
        }
        MemKind::Watchers | MemKind::WatchersOneStream => watchers_child(&base, kind, n).await,
    }
}

async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

fn watch_key(i: usize) -> Vec<u8> {
    format!("tb/watch/{i:06}").into_bytes()
}

async fn watchers_child(base: &Driver, kind: MemKind, n: usize) -> Result<(u64, u64), String> {
    match base {
        Driver::Etcdv3(c) => {
            let _ = kind;
            let opts = etcdv3_client::api::WatchOptions::new;
            // Warm-up watcher: starts the client's watch stream and task.
            let warm = c
                .watch(watch_key(n), opts())
                .await
                .map_err(|e| e.to_string())?;
            settle().await;
            let before = rss_kib();
            let mut ws = Vec::with_capacity(n);
            for i in 0..n {
                ws.push(
                    c.watch(watch_key(i), opts())
                        .await
                        .map_err(|e| e.to_string())?,
                );
            }
            settle().await;
            let after = rss_kib();
            drop(ws);
            drop(warm);
            Ok((before, after))
        }
        #[cfg(feature = "etcd-client")]
        Driver::EtcdClient(c) => {
            let mut c = (**c).clone();
            // Warm-up watcher (its own stream), created and confirmed.
            let mut warm = c
                .watch(watch_key(n), None)
                .await
                .map_err(|e| e.to_string())?;
            expect_created(&mut warm, 1).await?;
            settle().await;
            let before = rss_kib();
            let mut streams = Vec::new();
            match kind {
                MemKind::WatchersOneStream => {
                    let mut s = c
                        .watch(watch_key(0), None)
                        .await
                        .map_err(|e| e.to_string())?;
                    for i in 1..n {
                        s.watch(watch_key(i), None)
                            .await
                            .map_err(|e| e.to_string())?;
                    }
                    expect_created(&mut s, n).await?;
                    streams.push(s);
                }
                _ => {
                    for i in 0..n {
                        let mut s = c
                            .watch(watch_key(i), None)
                            .await
                            .map_err(|e| e.to_string())?;
                        expect_created(&mut s, 1).await?;
                        streams.push(s);
                    }
                }
            }
            settle().await;
            let after = rss_kib();
            drop(streams);
            drop(warm);
            Ok((before, after))
        }
    }
}

/// Wait until `n` "created" responses arrived on an etcd-client watch stream.
#[cfg(feature = "etcd-client")]
async fn expect_created(s: &mut etcd_client::WatchStream, n: usize) -> Result<(), String> {
    let mut seen = 0;
    while seen < n {
        match s.message().await {
            Ok(Some(r)) if r.created() => seen += 1,
            Ok(Some(r)) if r.canceled() => {
                return Err(format!("watch cancelled: {}", r.cancel_reason()))
            }
            Ok(Some(_)) => {}
            Ok(None) => return Err("watch stream ended".into()),
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(())
}

/// Run one memory measurement in a fresh child process; KiB per unit.
fn mem_measure(lib: Lib, kind: MemKind, n: usize, url: &str) -> Result<f64, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = std::process::Command::new(exe)
        .args(["--mem-child", lib.name(), kind.arg(), &n.to_string(), url])
        .output()
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("RSS "))
        .ok_or_else(|| {
            format!(
                "child failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )
        })?;
    let mut it = line.split_whitespace().map(|v| v.parse::<u64>());
    match (it.next(), it.next()) {
        (Some(Ok(before)), Some(Ok(after))) => Ok((after as f64 - before as f64) / n.max(1) as f64),
        _ => Err(format!("bad child output: {line}")),
    }
}

// ---------------------------------------------------------------------------
// Arguments, main, report.

struct Args {
    members: usize,
    ops: usize,
    conc: Vec<usize>,
    repeat: usize,
    value_size: usize,
    clients: usize,
    watchers: usize,
    only: Option<String>,
    libs: Vec<Lib>,
    /// Members fsync their WAL (etcd's default; the testkit turns it off).
    fsync: bool,
    /// Use a cluster started elsewhere (`--serve-cluster`), so that a
    /// profiler sees the client alone (the testkit's proxies run in the
    /// process that starts the cluster).
    endpoints: Option<Vec<String>>,
    /// The pids of that cluster's members (server CPU).
    server_pids: Vec<u32>,
    /// Only start a cluster, print its endpoints and pids, and keep it until
    /// standard input closes.
    serve_cluster: bool,
    /// Overload runs: concurrencies, slow 2 MB range workers, seconds each,
    /// per-call timeout.
    overload_conc: Vec<usize>,
    overload_slow: usize,
    overload_secs: u64,
    overload_timeout: Duration,
    /// Watch scale (`--only watch-scale`): watchers, keys, writes/s,
    /// seconds, variants.
    ws_watchers: usize,
    ws_keys: usize,
    ws_rate: usize,
    ws_secs: u64,
    ws_variants: Vec<etcdv3_bench::watch_scale::Variant>,
    ws_streams: usize,
    ws_prev_kv: bool,
}

/// A comma-separated list of positive counts (`1,64,256`).
fn counts(v: Option<String>, flag: &str) -> Result<Vec<usize>, String> {
    let v = v.unwrap_or_default();
    v.split(',')
        .map(|s| s.trim().parse::<usize>().ok().filter(|n| *n > 0))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| format!("bad {flag} {v}"))
}

const USAGE: &str = "throughput-bench [--members N] [--ops N] [--conc 1,16,64,256] [--repeat N] \
[--value-size BYTES] [--clients N] [--watchers N] [--only put|range|serializable|mem] [--only-lib LIB] \
[--fsync on|off] [--serve-cluster] [--endpoints URL,..] [--server-pids PID,..] \
[--only overload] [--overload-conc 1024,4096] [--overload-slow N] [--overload-secs N] [--overload-timeout-ms N] \
[--only watch-scale] [--ws-watchers N] [--ws-keys N] [--ws-rate N] [--ws-secs N] [--ws-streams N] [--ws-prev-kv] [--ws-variants etcdv3,etcdv3-one-task,etcdv3-group,etcd-client-stream,etcd-client-per-watch]
[--ws-decode-floor N [VALUE_SIZE] [prev-kv]]
environment (watch-scale children, event phase only): WS_CALLGRIND_DIR=DIR [WS_CALLGRIND_CACHE=1] (callgrind), WS_PERF_DIR=DIR (perf record -e cpu-clock -g) [WS_PERF_CALLGRAPH=dwarf], WS_CHILD_WORKERS=N (runtime threads, default 2)";

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        members: 3,
        ops: 10_000,
        conc: vec![1, 16, 64, 256],
        repeat: 3,
        value_size: 256,
        clients: 200,
        watchers: 1000,
        only: None,
        libs: Lib::all(),
        fsync: true,
        endpoints: None,
        server_pids: Vec::new(),
        serve_cluster: false,
        overload_conc: vec![1024, 4096],
        overload_slow: 4,
        overload_secs: 10,
        overload_timeout: Duration::from_secs(5),
        ws_watchers: 10_000,
        ws_keys: 100,
        ws_rate: 1000,
        ws_secs: 10,
        ws_variants: etcdv3_bench::watch_scale::Variant::all(),
        ws_streams: 1,
        ws_prev_kv: false,
    };
    let mut args = std::env::args().skip(1);
    fn num(v: Option<String>, name: &str) -> Result<usize, String> {
        v.as_deref()
            .and_then(|s| s.parse().ok())
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("{name} needs a positive number"))
    }
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--members" => a.members = num(args.next(), "--members")?,
            "--ops" => a.ops = num(args.next(), "--ops")?,
            "--repeat" => a.repeat = num(args.next(), "--repeat")?,
            "--value-size" => a.value_size = num(args.next(), "--value-size")?,
            "--clients" => a.clients = num(args.next(), "--clients")?,
            "--watchers" => a.watchers = num(args.next(), "--watchers")?,
            "--conc" => a.conc = counts(args.next(), "--conc")?,
            "--only" => a.only = args.next(),
            "--fsync" => {
                a.fsync = match args.next().as_deref() {
                    Some("on") => true,
                    Some("off") => false,
                    other => return Err(format!("--fsync on|off, not {other:?}")),
                }
            }
            "--serve-cluster" => a.serve_cluster = true,
            "--overload-conc" => a.overload_conc = counts(args.next(), "--overload-conc")?,
            "--overload-slow" => {
                a.overload_slow = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or("--overload-slow needs a number")?
            }
            "--overload-secs" => a.overload_secs = num(args.next(), "--overload-secs")? as u64,
            "--overload-timeout-ms" => {
                a.overload_timeout =
                    Duration::from_millis(num(args.next(), "--overload-timeout-ms")? as u64)
            }
            "--ws-watchers" => a.ws_watchers = num(args.next(), "--ws-watchers")?,
            "--ws-keys" => a.ws_keys = num(args.next(), "--ws-keys")?,
            "--ws-rate" => a.ws_rate = num(args.next(), "--ws-rate")?,
            "--ws-secs" => a.ws_secs = num(args.next(), "--ws-secs")? as u64,
            "--ws-streams" => a.ws_streams = num(args.next(), "--ws-streams")?,
            "--ws-prev-kv" => a.ws_prev_kv = true,
            "--ws-variants" => {
                let v = args.next().unwrap_or_default();
                a.ws_variants = v
                    .split(',')
                    .map(etcdv3_bench::watch_scale::Variant::parse)
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| format!("bad --ws-variants {v}"))?;
            }
            "--endpoints" => {
                a.endpoints = Some(
                    args.next()
                        .unwrap_or_default()
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect(),
                )
            }
            "--server-pids" => {
                let v = args.next().unwrap_or_default();
                a.server_pids = v
                    .split(',')
                    .map(|s| s.trim().parse::<u32>().ok())
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| format!("bad --server-pids {v}"))?;
            }
            "--only-lib" => {
                let v = args.next().unwrap_or_default();
                a.libs = vec![Lib::parse(&v).ok_or_else(|| format!("unknown library {v}"))?];
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(a)
}

fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(RT_THREAD)
        // Blocking threads must not exit mid-cell: their CPU time would vanish.
        .thread_keep_alive(Duration::from_secs(3600))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tokio runtime: {e}");
            std::process::exit(1);
        }
    }
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some(etcdv3_bench::watch_scale::CHILD_FLAG) {
        std::process::exit(etcdv3_bench::watch_scale::child_main(&argv[2..]));
    }
    if argv.get(1).map(String::as_str) == Some("--ws-decode-floor") {
        // `--ws-decode-floor N [VALUE_SIZE] [prev-kv]`: decode one
        // watch-scale response N times (run under callgrind at two N).
        let n = argv.get(2).and_then(|s| s.parse().ok()).unwrap_or(100_000);
        let size = argv.get(3).and_then(|s| s.parse().ok()).unwrap_or(256);
        let prev_kv = argv.get(4).map(String::as_str) == Some("prev-kv");
        let t = std::time::Instant::now();
        let events = etcdv3_bench::watch_scale::decode_floor(n, size, prev_kv);
        println!(
            "decoded {n} responses ({events} events) in {:.3} s: {:.0} ns per response",
            t.elapsed().as_secs_f64(),
            t.elapsed().as_nanos() as f64 / n.max(1) as f64
        );
        return;
    }
    if argv.get(1).map(String::as_str) == Some("--mem-child") {
        child_main(&argv[2..]);
        return;
    }
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    if let Some(urls) = args.endpoints.clone() {
        let info = ClusterInfo {
            urls,
            pids: args.server_pids.clone(),
            leader: 0,
        };
        std::process::exit(run_and_print(args, info));
    }
    eprintln!(
        "starting a {}-member cluster (fsync {})",
        args.members,
        if args.fsync { "on" } else { "off" }
    );
    let mut builder = etcdv3_testkit::ClusterBuilder::new(args.members);
    if args.fsync {
        // The testkit passes --unsafe-no-fsync to etcd 3.5; the last flag wins.
        builder = builder.arg("--unsafe-no-fsync=false");
    }
    let cluster = match builder.start() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cluster: {e}");
            std::process::exit(1);
        }
    };
    let leader = match cluster.wait_for_leader(Duration::from_secs(10)) {
        Ok(i) => cluster.member(i).id(),
        Err(e) => {
            eprintln!("no leader: {e}");
            std::process::exit(1);
        }
    };
    let info = ClusterInfo {
        urls: (0..cluster.size())
            .map(|i| cluster.member(i).direct_client_url())
            .collect(),
        pids: (0..cluster.size())
            .filter_map(|i| cluster.member(i).pid())
            .collect(),
        leader,
    };
    eprintln!(
        "etcd {:?}, endpoints {:?}, leader {leader:x}",
        cluster.server_version(),
        info.urls
    );
    if args.serve_cluster {
        println!("ENDPOINTS {}", info.urls.join(","));
        let pids: Vec<String> = info.pids.iter().map(u32::to_string).collect();
        println!("PIDS {}", pids.join(","));
        // Keep the cluster until standard input closes.
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new());
        drop(cluster);
        return;
    }
    let code = run_and_print(args, info);
    drop(cluster);
    std::process::exit(code);
}

/// Run the benchmark on `info`'s cluster and print the report; the exit
/// code.
fn run_and_print(args: Args, info: ClusterInfo) -> i32 {
    let rt = runtime();
    let report = rt.block_on(async {
        let task = tokio::spawn(bench(args, info));
        task.await
            .unwrap_or_else(|e| Err(format!("bench task: {e}")))
    });
    drop(rt);
    match report {
        Ok(text) => {
            println!("{text}");
            0
        }
        Err(e) => {
            eprintln!("benchmark failed: {e}");
            1
        }
    }
}

fn child_main(argv: &[String]) {
    let parsed = (
        argv.first().and_then(|s| Lib::parse(s)),
        argv.get(1).and_then(|s| MemKind::parse(s)),
        argv.get(2).and_then(|s| s.parse::<usize>().ok()),
        argv.get(3).cloned(),
    );
    let (Some(lib), Some(kind), Some(n), Some(url)) = parsed else {
        eprintln!("usage: --mem-child LIB clients|watchers|watchers-one-stream N URL");
        std::process::exit(2);
    };
    let rt = runtime();
    match rt.block_on(async move {
        tokio::spawn(mem_child(lib, kind, n, url))
            .await
            .unwrap_or_else(|e| Err(e.to_string()))
    }) {
        Ok((before, after)) => println!("RSS {before} {after}"),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}

async fn bench(args: Args, cluster: ClusterInfo) -> Result<String, String> {
    if args.only.as_deref() == Some("overload") {
        return overload(args, cluster).await;
    }
    if args.only.as_deref() == Some("watch-scale") {
        let spec = etcdv3_bench::watch_scale::WatchScaleSpec {
            watchers: args.ws_watchers,
            keys: args.ws_keys,
            rate: args.ws_rate,
            secs: args.ws_secs,
            value_size: args.value_size,
            repeat: args.repeat,
            variants: args
                .ws_variants
                .iter()
                .copied()
                .filter(|v| args.libs.contains(&v.lib()))
                .collect(),
            urls: cluster.urls.clone(),
            server_pids: cluster.pids.clone(),
            streams: args.ws_streams,
            prev_kv: args.ws_prev_kv,
        };
        return etcdv3_bench::watch_scale::run(&spec).await;
    }
    let urls = &cluster.urls;
    let wants = |part: &str| args.only.as_deref().is_none_or(|o| o == part);
    let value = Arc::new(vec![b'v'; args.value_size]);
    let mut drivers = Vec::new();
    for lib in &args.libs {
        let d = Driver::connect(*lib, urls, &ConnectOptions::default()).await?;
        drivers.push((*lib, d));
    }
    // The keys the range cells read, written once.
    if let Some((_, d)) = drivers.first() {
        let mut d = d.clone();
        for i in 0..READ_KEYS {
            d.put(read_key(i), value.as_ref().clone()).await?;
        }
    }
    let mut ops_list = Vec::new();
    if wants("put") {
        ops_list.push(Op::Put);
    }
    if wants("range") {
        ops_list.push(Op::Range);
    }
    if wants("serializable") {
        ops_list.push(Op::RangeSerializable);
    }
    let mut cells: BTreeMap<(Op, usize, Lib), Vec<CellRun>> = BTreeMap::new();
    for &op in &ops_list {
        for &conc in &args.conc {
            for rep in 0..args.repeat {
                let mut order: Vec<&(Lib, Driver)> = drivers.iter().collect();
                if rep % 2 == 1 {
                    order.reverse();
                }
                for (lib, d) in order {
                    let run = run_cell(d, op, conc, args.ops, &value, &cluster).await;
                    eprintln!(
                        "{:<22} conc {conc:>3} {:<12} rep {rep}: {:>8.0} ops/s p50 {:>7.0} us p99 {:>7.0} us cpu {:>6.1} us/op server {:>6.1} us/op leader {:>3.0}% errors {}{}",
                        op.name(),
                        lib.name(),
                        run.ops_per_sec,
                        run.p50.as_secs_f64() * 1e6,
                        run.p99.as_secs_f64() * 1e6,
                        run.cpu_us,
                        run.server_cpu_us,
                        run.leader_share * 100.0,
                        run.errors,
                        run.first_error
                            .as_deref()
                            .map(|e| format!(" (first: {e})"))
                            .unwrap_or_default()
                    );
                    cells.entry((op, conc, *lib)).or_default().push(run);
                }
            }
        }
    }
    for (_, d) in &drivers {
        d.close();
    }
    drop(drivers);

    // Memory, each measurement in a fresh child process.
    let mut mem: BTreeMap<(MemKind, Lib), Vec<f64>> = BTreeMap::new();
    if wants("mem") {
        let url = urls.first().cloned().unwrap_or_default();
        let mut jobs = Vec::new();
        for lib in &args.libs {
            jobs.push((MemKind::Clients, *lib, args.clients));
            jobs.push((MemKind::Watchers, *lib, args.watchers));
            #[cfg(feature = "etcd-client")]
            if *lib == Lib::EtcdClient {
                jobs.push((MemKind::WatchersOneStream, *lib, args.watchers));
            }
        }
        for rep in 0..args.repeat {
            for &(kind, lib, n) in &jobs {
                let url = url.clone();
                let r = tokio::task::spawn_blocking(move || mem_measure(lib, kind, n, &url))
                    .await
                    .map_err(|e| e.to_string())?;
                match r {
                    Ok(kib) => {
                        eprintln!(
                            "memory {:<20} {:<12} rep {rep}: {kib:.1} KiB per unit (n = {n})",
                            kind.arg(),
                            lib.name()
                        );
                        mem.entry((kind, lib)).or_default().push(kib);
                    }
                    Err(e) => eprintln!("memory {} {}: FAILED: {e}", kind.arg(), lib.name()),
                }
            }
        }
    }
    Ok(render(&args, &cells, &mem))
}

/// The overload runs (`--only overload`): both clients, each concurrency,
/// alternating which library goes first.
async fn overload(args: Args, cluster: ClusterInfo) -> Result<String, String> {
    use etcdv3_bench::overload::{run, write_big_keys, OverloadRun, OverloadSpec};
    let opts = ConnectOptions {
        timeout: Some(args.overload_timeout),
        keepalive: None,
    };
    let value = vec![b'v'; args.value_size];
    let mut drivers = Vec::new();
    for lib in &args.libs {
        drivers.push((*lib, Driver::connect(*lib, &cluster.urls, &opts).await?));
    }
    if let Some((_, d)) = drivers.first() {
        let mut d = d.clone();
        for i in 0..READ_KEYS {
            d.put(read_key(i), value.clone()).await?;
        }
        write_big_keys(&d).await?;
    }
    let mut runs: BTreeMap<(usize, Lib), OverloadRun> = BTreeMap::new();
    for (n, &conc) in args.overload_conc.iter().enumerate() {
        let mut order: Vec<&(Lib, Driver)> = drivers.iter().collect();
        if n % 2 == 1 {
            order.reverse();
        }
        for (lib, d) in order {
            let spec = OverloadSpec {
                concurrency: conc,
                slow: args.overload_slow,
                duration: Duration::from_secs(args.overload_secs),
                keys: READ_KEYS,
                runtime_thread: RT_THREAD,
                server_pids: cluster.pids.clone(),
            };
            let r = run(d, &spec, read_key).await;
            eprintln!(
                "overload conc {conc:>5} {:<12}: goodput {:>7.0}/s ({} slow ranges) p99 {:>6.0} ms server {:>6.1} us/ok client {:>6.1} us/ok errors {}",
                lib.name(),
                r.goodput,
                r.slow_ok,
                r.p99.as_secs_f64() * 1e3,
                r.server_cpu_us,
                r.client_cpu_us,
                r.error_summary()
            );
            runs.insert((conc, *lib), r);
            // Let the members drain what the last run left queued.
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
    for (_, d) in &drivers {
        d.close();
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nOverload: {} members, linearizable single-key reads by N workers sharing one client \
         plus {} workers looping over a 2 MiB prefix range, {} s per run, {} ms timeout per call\n",
        args.members,
        args.overload_slow,
        args.overload_secs,
        args.overload_timeout.as_millis()
    );
    let _ = writeln!(
        out,
        "| concurrency | client | goodput (reads/s) | 2 MiB ranges done | p99 (ms) | server CPU per ok op (µs) | client CPU per ok op (µs) | errors |\n|---:|---|---:|---:|---:|---:|---:|---|"
    );
    for ((conc, lib), r) in &runs {
        let _ = writeln!(
            out,
            "| {conc} | {} | {:.0} | {} | {:.0} | {:.1} | {:.1} | {} |",
            lib.name(),
            r.goodput,
            r.slow_ok,
            r.p99.as_secs_f64() * 1e3,
            r.server_cpu_us,
            r.client_cpu_us,
            r.error_summary()
        );
    }
    Ok(out)
}

fn fmt_ratio(num: f64, den: f64) -> String {
    if den > 0.0 && num.is_finite() {
        format!("{:.2}×", num / den)
    } else {
        "–".into()
    }
}

fn render(
    args: &Args,
    cells: &BTreeMap<(Op, usize, Lib), Vec<CellRun>>,
    mem: &BTreeMap<(MemKind, Lib), Vec<f64>>,
) -> String {
    let libs = &args.libs;
    let mut keys: Vec<(Op, usize)> = cells.keys().map(|(o, c, _)| (*o, *c)).collect();
    keys.dedup();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nmembers: {}, {} ops per cell, {}-byte values, {} repetitions per cell: each value is \
         the median over the repetitions; each ratio is the median of the per-repetition ratios \
         (both clients ran back to back in every repetition)\n",
        args.members, args.ops, args.value_size, args.repeat
    );
    let ours = libs.first().copied().unwrap_or(Lib::Etcdv3);
    let theirs = libs.get(1).copied();
    // (title, value of a run, ratio is ours/theirs (true) or theirs/ours, decimals)
    type Metric = (&'static str, fn(&CellRun) -> f64, bool, usize);
    let metrics: [Metric; 5] = [
        (
            "Throughput (ops/s, higher is better)",
            |r| r.ops_per_sec,
            true,
            0,
        ),
        (
            "p50 latency (µs, lower is better)",
            |r| r.p50.as_secs_f64() * 1e6,
            false,
            0,
        ),
        (
            "p99 latency (µs, lower is better)",
            |r| r.p99.as_secs_f64() * 1e6,
            false,
            0,
        ),
        (
            "Client CPU per op (µs, lower is better)",
            |r| r.cpu_us,
            false,
            1,
        ),
        (
            "Server CPU per op, all members (µs, lower is better)",
            |r| r.server_cpu_us,
            false,
            1,
        ),
    ];
    let header = |with_ratio: Option<bool>| {
        let mut header = String::from("| op | concurrency |");
        let mut sep = String::from("|---|---:|");
        for l in libs {
            let _ = write!(header, " {} |", l.name());
            sep.push_str("---:|");
        }
        if let (Some(t), Some(ours_over_theirs)) = (theirs, with_ratio) {
            if ours_over_theirs {
                let _ = write!(header, " {} / {} |", ours.name(), t.name());
            } else {
                let _ = write!(header, " {} / {} |", t.name(), ours.name());
            }
            sep.push_str("---:|");
        }
        format!("{header}\n{sep}")
    };
    if !keys.is_empty() {
        for (title, get, ours_over_theirs, prec) in metrics {
            let _ = writeln!(out, "### {title}\n\n{}", header(Some(ours_over_theirs)));
            for (op, conc) in &keys {
                let mut row = format!("| {} | {conc} |", op.name());
                for l in libs {
                    match cells.get(&(*op, *conc, *l)) {
                        Some(runs) => {
                            let errors: usize = runs.iter().map(|r| r.errors).sum();
                            let err = if errors > 0 {
                                format!(" ({errors} errors)")
                            } else {
                                String::new()
                            };
                            let v = median_f64(runs.iter().map(get).collect());
                            let _ = write!(row, " {v:.prec$}{err} |");
                        }
                        None => row.push_str(" – |"),
                    }
                }
                if let Some(t) = theirs {
                    let a = cells.get(&(*op, *conc, ours));
                    let b = cells.get(&(*op, *conc, t));
                    let r = match (a, b) {
                        (Some(a), Some(b)) => {
                            let ratios: Vec<f64> = a
                                .iter()
                                .zip(b)
                                .filter_map(|(x, y)| {
                                    let (n, d) = if ours_over_theirs {
                                        (get(x), get(y))
                                    } else {
                                        (get(y), get(x))
                                    };
                                    (d > 0.0).then(|| n / d)
                                })
                                .collect();
                            if ratios.is_empty() {
                                "–".to_string()
                            } else {
                                format!("{:.2}×", median_f64(ratios))
                            }
                        }
                        _ => "–".into(),
                    };
                    let _ = write!(row, " {r} |");
                }
                let _ = writeln!(out, "{row}");
            }
            let _ = writeln!(out);
        }
        if args.members > 1 {
            let _ = writeln!(
                out,
                "### Share of answers that came from the leader (%)\n\n{}",
                header(None)
            );
            for (op, conc) in &keys {
                let mut row = format!("| {} | {conc} |", op.name());
                for l in libs {
                    match cells.get(&(*op, *conc, *l)) {
                        Some(runs) => {
                            let v = median_f64(runs.iter().map(|r| r.leader_share).collect());
                            let _ = write!(row, " {:.0} |", v * 100.0);
                        }
                        None => row.push_str(" – |"),
                    }
                }
                let _ = writeln!(out, "{row}");
            }
            let _ = writeln!(out);
        }
    }
    if !mem.is_empty() {
        let _ = writeln!(
            out,
            "### Memory (KiB of RSS per unit, lower is better; median of {})\n",
            args.repeat
        );
        let mut header = String::from("| unit | n |");
        let mut sep = String::from("|---|---:|");
        for l in libs {
            let _ = write!(header, " {} |", l.name());
            sep.push_str("---:|");
        }
        if let Some(t) = theirs {
            let _ = write!(header, " {} / {} |", t.name(), ours.name());
            sep.push_str("---:|");
        }
        let _ = writeln!(out, "{header}\n{sep}");
        let rows = [
            (
                MemKind::Clients,
                "connection (one client, one endpoint, after one call)",
                args.clients,
            ),
            (
                MemKind::Watchers,
                "watcher (one `watch` call each, one client)",
                args.watchers,
            ),
        ];
        for (kind, label, n) in rows {
            let mut row = format!("| {label} | {n} |");
            let val = |l: Lib| mem.get(&(kind, l)).map(|v| median_f64(v.clone()));
            for l in libs {
                match val(*l) {
                    Some(v) => {
                        let _ = write!(row, " {v:.1} |");
                    }
                    None => row.push_str(" – |"),
                }
            }
            if let Some(t) = theirs {
                let r = match (val(ours), val(t)) {
                    (Some(a), Some(b)) => fmt_ratio(b, a),
                    _ => "–".into(),
                };
                let _ = write!(row, " {r} |");
            }
            let _ = writeln!(out, "{row}");
        }
        #[cfg(feature = "etcd-client")]
        if let Some(v) = mem.get(&(MemKind::WatchersOneStream, Lib::EtcdClient)) {
            let v = median_f64(v.clone());
            let ourw = mem
                .get(&(MemKind::Watchers, ours))
                .map(|w| median_f64(w.clone()));
            let _ = writeln!(
                out,
                "\netcd-client with all {} watchers multiplexed on ONE `WatchStream` \
                 (`WatchStream::watch`, the caller demultiplexes by watch id): {v:.1} KiB per \
                 watcher{}.",
                args.watchers,
                ourw.map(|o| format!(" ({} etcdv3)", fmt_ratio(v, o)))
                    .unwrap_or_default()
            );
        }
    }
    out
}
