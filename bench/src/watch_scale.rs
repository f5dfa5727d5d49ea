//! Watch scale: many watchers on one client, a steady stream of writes, and
//! what each library costs per watcher and per delivered event.
//!
//! Setup (issue 13, item 4): `watchers` watchers on ONE client, watcher `w`
//! watching key `w % keys`; a writer in the parent process (an etcdv3
//! client) puts the `keys` keys in turn at `rate` writes per second for
//! `secs` seconds, so each write fans out to about `watchers / keys` events.
//! Each write's value starts with the wall-clock time (ns since the Unix
//! epoch, 20 ASCII digits) at which the put was issued.
//!
//! Each variant's watcher side runs in a FRESH CHILD PROCESS of the bench
//! binary (`--ws-child`, see [`child_main`]), so that one variant's memory
//! and threads do not leak into the next one's figures. The parent and the
//! child talk over the child's standard input and output:
//!
//! 1. the child connects, creates its watchers and prints
//!    `READY <rss before> <rss after> <creation ns>` (KiB, `VmRSS` before
//!    and after creating the watchers, after a warm-up watcher and a
//!    settle; and how long the creation took);
//! 2. the parent sends `GO`; the child reads its own CPU time
//!    (utime+stime, `/proc/self/stat`) and answers `STARTED`;
//! 3. the parent writes, paced, then sends `EXPECT <events>` (successful
//!    writes × watchers of the written key);
//! 4. the child waits until it received that many events (or until no event
//!    came for [`DRAIN_IDLE`]), reads its CPU time again and prints
//!    `RESULT ...`.
//!
//! Measured per variant: memory per watcher (RSS delta across creating the
//! watchers / N, and the RSS growth until the end of the run / N), event
//! delivery latency p50/p99/max (receive time minus the time in the value:
//! it includes the put's own commit, the same for every variant), client
//! CPU per event (the child's CPU over the window / events received),
//! server CPU per event (the members' CPU over the write window), events
//! expected against received, and the achieved write rate.
//!
//! Variants ([`Variant`]):
//! - `etcdv3`: `Client::watch` per watcher (etcdv3 multiplexes all of them on
//!   one gRPC stream and routes events to each `Watcher`), one consumer task
//!   per watcher (the natural use);
//! - `etcdv3-one-task`: the same watchers, all consumed by ONE task through
//!   `futures_util::stream::select_all` (the consumer shape of etcd-client's
//!   best, so the two differ only by the library);
//! - `etcdv3-group`: ONE `WatchGroup` (`Client::watch_group`): all watchers
//!   added to it without waiting for the server, ONE consumer reading
//!   `(WatcherId, event)` and demultiplexing by id with the same kind of
//!   table etcd-client's best needs;
//! - `etcd-client-stream`: etcd-client at its best: ONE `WatchStream`, every
//!   further watcher created with `WatchRequestSender::watch` on it, one
//!   consumer task demultiplexing the responses by watch id;
//! - `etcd-client-per-watch`: one `Client::watch` call (one gRPC stream) per
//!   watcher, one consumer task per stream.
//!
//! Every consumer does the same per-event work: parse the timestamp, check
//! that the event's key is the watcher's key (a mis-routed event counts as
//! "mismatched"), and record the latency.

#[cfg(feature = "etcd-client")]
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::{median_f64, processes_cpu, rss_kib, ConnectOptions, Driver, Lib};

/// The flag that makes the bench binary run [`child_main`].
pub const CHILD_FLAG: &str = "--ws-child";
/// Writes in flight at most; past it the writer falls behind its rate (and
/// the report says so).
pub const MAX_IN_FLIGHT: usize = 1024;
/// The child stops waiting for missing events after this long without one.
pub const DRAIN_IDLE: Duration = Duration::from_secs(5);
/// Name of the child's runtime threads.
const CHILD_THREAD: &str = "ws-rt";
/// Bytes of the timestamp at the start of each value.
const STAMP_LEN: usize = 20;

/// How the watcher side uses its library.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Variant {
    /// etcdv3: one `Client::watch` per watcher (one shared gRPC stream), one
    /// consumer task per watcher.
    Etcdv3,
    /// etcdv3: the same watchers, all consumed by ONE task
    /// (`futures_util::stream::select_all`), as etcd-client's best is.
    Etcdv3OneTask,
    /// etcdv3: ONE `WatchGroup`, one consumer demultiplexing by watcher id.
    Etcdv3Group,
    /// etcd-client: all watchers on ONE `WatchStream`, demultiplexed by the
    /// caller by watch id.
    #[cfg(feature = "etcd-client")]
    EtcdClientStream,
    /// etcd-client: one `Client::watch` (one gRPC stream) per watcher.
    #[cfg(feature = "etcd-client")]
    EtcdClientPerWatch,
}

impl Variant {
    /// The name the command line and the child protocol use.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Etcdv3 => "etcdv3",
            Variant::Etcdv3OneTask => "etcdv3-one-task",
            Variant::Etcdv3Group => "etcdv3-group",
            #[cfg(feature = "etcd-client")]
            Variant::EtcdClientStream => "etcd-client-stream",
            #[cfg(feature = "etcd-client")]
            Variant::EtcdClientPerWatch => "etcd-client-per-watch",
        }
    }

    /// What the table calls it.
    pub fn label(self) -> &'static str {
        match self {
            Variant::Etcdv3 => "etcdv3, `watch` per watcher (one shared stream), task per watcher",
            Variant::Etcdv3OneTask => {
                "etcdv3, `watch` per watcher (one shared stream), ONE consumer task"
            }
            Variant::Etcdv3Group => "etcdv3, ONE `WatchGroup`, caller demultiplexes by id",
            #[cfg(feature = "etcd-client")]
            Variant::EtcdClientStream => {
                "etcd-client, ONE `WatchStream`, caller demultiplexes (its best)"
            }
            #[cfg(feature = "etcd-client")]
            Variant::EtcdClientPerWatch => "etcd-client, `watch` per watcher (one stream each)",
        }
    }

    /// The library it drives.
    pub fn lib(self) -> Lib {
        match self {
            Variant::Etcdv3 | Variant::Etcdv3OneTask | Variant::Etcdv3Group => Lib::Etcdv3,
            #[cfg(feature = "etcd-client")]
            Variant::EtcdClientStream | Variant::EtcdClientPerWatch => Lib::EtcdClient,
        }
    }

    /// Every variant this build has, etcdv3 first.
    pub fn all() -> Vec<Variant> {
        vec![
            Variant::Etcdv3,
            Variant::Etcdv3OneTask,
            Variant::Etcdv3Group,
            #[cfg(feature = "etcd-client")]
            Variant::EtcdClientStream,
            #[cfg(feature = "etcd-client")]
            Variant::EtcdClientPerWatch,
        ]
    }

    /// The variant named `s` (as [`Variant::name`] spells it), if built in.
    pub fn parse(s: &str) -> Option<Variant> {
        Variant::all().into_iter().find(|v| v.name() == s)
    }
}

/// One watch-scale measurement's parameters.
#[derive(Debug, Clone)]
pub struct WatchScaleSpec {
    /// Watchers on the one client.
    pub watchers: usize,
    /// Keys the writer changes (watcher `w` watches key `w % keys`).
    pub keys: usize,
    /// Writes per second.
    pub rate: usize,
    /// How long the writer writes.
    pub secs: u64,
    /// Size of each value (at least the 20-byte timestamp).
    pub value_size: usize,
    /// Runs per variant (the order alternates between repetitions).
    pub repeat: usize,
    /// The variants to run.
    pub variants: Vec<Variant>,
    /// Watch streams the watchers are spread over (watcher `w` on stream
    /// `w % streams`): etcd-client opens that many `WatchStream`s, etcdv3
    /// that many `WatchGroup`s, each on a gRPC stream of its own
    /// (`Client::watch_group_on_own_stream`; with one stream, the client's
    /// shared one, `Client::watch_group`); 1 is
    /// the watch-scale shape. With `keys: 1` and `prev_kv` this is the
    /// shape of etcd's `tools/benchmark watch-latency` (`--streams`,
    /// `--watchers-per-stream`, `--put-rate`, `--prevkv`). Variants with a
    /// `watch` call per watcher ignore it.
    pub streams: usize,
    /// Ask for each event's previous key-value (`--prevkv`).
    pub prev_kv: bool,
    /// The cluster's client URLs.
    pub urls: Vec<String>,
    /// The members' pids (server CPU).
    pub server_pids: Vec<u32>,
}

/// The key watched by watcher `w` of `keys` keys... or the key of write
/// number `i`: `ws/k/<i % keys>`.
pub fn key(i: usize, keys: usize) -> Vec<u8> {
    format!("ws/k/{:05}", i % keys.max(1)).into_bytes()
}

/// How many of `watchers` watchers watch key number `k` (of `keys`).
pub fn watchers_on_key(k: usize, watchers: usize, keys: usize) -> usize {
    let keys = keys.max(1);
    watchers / keys + usize::from(k % keys < watchers % keys)
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A value of `size` bytes (at least 20) starting with `ns` in 20 digits.
pub fn stamp(ns: u64, size: usize) -> Vec<u8> {
    let mut v = format!("{ns:020}").into_bytes();
    v.resize(size.max(STAMP_LEN), b'v');
    v
}

/// The timestamp at the start of a value made by [`stamp`].
pub fn parse_stamp(value: &[u8]) -> Option<u64> {
    let digits = value.get(..STAMP_LEN)?;
    let mut n: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some(n)
}

// ------------------------------------------------------------ decode floor

/// One encoded `WatchResponse` as the members send it in a watch-scale
/// run: a header, the watch id, and one PUT event of key `ws/k/00042` with
/// a `value_size`-byte value (and its previous value when `prev_kv`).
pub fn sample_response(value_size: usize, prev_kv: bool) -> bytes::Bytes {
    use etcdv3_client::proto::etcdserverpb::{ResponseHeader, WatchResponse};
    use etcdv3_client::proto::mvccpb::{Event, KeyValue};
    let kv = |rev: i64| KeyValue {
        key: key(42, 100),
        create_revision: 12,
        mod_revision: rev,
        version: rev - 11,
        value: stamp(1_764_400_000_123_456_789, value_size),
        lease: 0,
    };
    let resp = WatchResponse {
        header: Some(ResponseHeader {
            cluster_id: 0x6c2b_3c2a_bd12_8f36,
            member_id: 0x8e9e_05c5_2164_694d,
            revision: 123_456,
            raft_term: 2,
        }),
        watch_id: 5_042,
        events: vec![Event {
            r#type: 0,
            kv: Some(kv(123_456)),
            prev_kv: prev_kv.then(|| kv(123_356)),
        }],
        ..Default::default()
    };
    match etcdv3_client::core::wire::codec::encode(&resp, usize::MAX) {
        // The frame's 5-byte gRPC header off: the message alone.
        Ok(frame) => frame.slice(5..),
        Err(_) => bytes::Bytes::new(),
    }
}

/// The protobuf decode floor (issue 18): decode [`sample_response`] `n`
/// times, as both libraries do once per response (one event each in a
/// watch-scale run), and return the events decoded (a checksum that keeps
/// the work from being optimised away). Run it under callgrind at two
/// `n` and take the difference over the extra decodes: the instructions
/// of one decode, which no client can go below.
pub fn decode_floor(n: usize, value_size: usize, prev_kv: bool) -> usize {
    use etcdv3_client::proto::etcdserverpb::WatchResponse;
    let body = sample_response(value_size, prev_kv);
    let mut events = 0;
    for _ in 0..n {
        if let Ok(r) = etcdv3_client::core::wire::codec::decode_message::<WatchResponse>(
            std::hint::black_box(body.clone()),
        ) {
            events += std::hint::black_box(r).events.len();
        }
    }
    events
}

// ------------------------------------------------------------------ child

/// What the consumers of one child saw (one per consumer task, so that the
/// lock is never contended while events flow).
#[derive(Debug, Default)]
struct Sink {
    /// Delivery latency of each event, µs.
    lat_us: Vec<u32>,
    events: u64,
    /// Events whose key was not the watcher's, or whose value had no stamp,
    /// or responses for an unknown watch id.
    mismatched: u64,
    /// Watchers that ended (error, cancel, end of stream).
    ended: u64,
    first_error: Option<String>,
}

impl Sink {
    fn record(&mut self, watched: &[u8], key: &[u8], value: &[u8], now: u64) {
        self.events += 1;
        match parse_stamp(value) {
            Some(t) if key == watched => {
                let us = now.saturating_sub(t) / 1000;
                self.lat_us.push(u32::try_from(us).unwrap_or(u32::MAX));
            }
            _ => self.mismatched += 1,
        }
    }

    /// Record the events of one etcdv3 response for the watcher on
    /// `watched`.
    fn record_events(&mut self, watched: &[u8], events: &[etcdv3_client::api::Event], now: u64) {
        for e in events {
            match &e.kv {
                Some(kv) => self.record(watched, &kv.key, &kv.value, now),
                None => self.mismatched += 1,
            }
        }
    }

    fn end(&mut self, why: String) {
        self.ended += 1;
        self.first_error.get_or_insert(why);
    }
}

type SharedSink = Arc<Mutex<Sink>>;

fn lock(s: &SharedSink) -> std::sync::MutexGuard<'_, Sink> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the child keeps alive while events flow.
struct Watching {
    rss_before: u64,
    rss_after: u64,
    /// How long creating the N watchers took.
    create_time: Duration,
    sinks: Vec<SharedSink>,
    /// Clients, streams and senders that must outlive the run.
    _keep: Vec<Box<dyn std::any::Any + Send>>,
}

async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

async fn read_stdin_line() -> Result<String, String> {
    tokio::task::spawn_blocking(|| {
        let mut s = String::new();
        match std::io::stdin().read_line(&mut s) {
            Ok(0) => Err("standard input closed".to_string()),
            Ok(_) => Ok(s.trim().to_string()),
            Err(e) => Err(e.to_string()),
        }
    })
    .await
    .map_err(|e| e.to_string())?
}

fn say(line: &str) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|e| e.to_string())
}

/// This process's user and system CPU (clock ticks, 10 ms each on Linux)
/// and its voluntary and involuntary context switches, so far.
fn cpu_split() -> [i64; 4] {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command (in parentheses, which may hold spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<i64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let count = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    [
        f.get(11).copied().unwrap_or(0),
        f.get(12).copied().unwrap_or(0),
        count("voluntary_ctxt_switches:"),
        count("nonvoluntary_ctxt_switches:"),
    ]
}

fn self_cpu() -> Duration {
    processes_cpu(&[std::process::id()])
}

/// The environment variable that runs each child under callgrind
/// (`valgrind --tool=callgrind --instr-atstart=no`), writing its profile
/// to the directory it names: the child switches the instrumentation on
/// for the event phase only (from `GO` until the drain ends), so the
/// profile's instruction count over the events received is the client's
/// instructions per event, repeatable whatever the machine's load.
pub const CALLGRIND_ENV: &str = "WS_CALLGRIND_DIR";

/// Under [`CALLGRIND_ENV`], switch callgrind's instrumentation of this
/// process on or off (`callgrind_control -i`).
fn callgrind_instrumentation(on: bool) {
    if std::env::var_os(CALLGRIND_ENV).is_none() {
        return;
    }
    let r = Command::new("callgrind_control")
        .args([
            "-i",
            if on { "on" } else { "off" },
            &std::process::id().to_string(),
        ])
        .stdout(Stdio::null())
        .status();
    if !matches!(r, Ok(s) if s.success()) {
        eprintln!("callgrind_control -i failed: {r:?}");
    }
}

/// The environment variable that profiles each child with `perf record -e
/// cpu-clock -g` during the event phase only (from `GO` until the drain
/// ends), writing `perf.VARIANT.PID.data` to the directory it names: the
/// samples of the event phase, to share out by function (`perf report
/// --no-children --sort sym -i ...`). `WS_PERF_CALLGRAPH=dwarf` (any
/// `--call-graph` mode) records whole call chains instead of `-g`'s frame
/// pointers, which Rust code does not keep.
pub const PERF_ENV: &str = "WS_PERF_DIR";

/// Under [`PERF_ENV`], attach `perf record` to this process (`None`
/// otherwise, or if perf could not be started).
fn perf_start(variant: Variant) -> Option<Child> {
    let dir = std::env::var(PERF_ENV).ok()?;
    let pid = std::process::id();
    let graph = std::env::var("WS_PERF_CALLGRAPH").unwrap_or_else(|_| "fp".into());
    let r = Command::new("perf")
        .args(["record", "-q", "-e", "cpu-clock", "--call-graph", &graph])
        .args(["-p", &pid.to_string(), "-o"])
        .arg(format!("{dir}/perf.{}.{pid}.data", variant.name()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn();
    match r {
        Ok(c) => {
            // Let it attach before the writer starts.
            std::thread::sleep(Duration::from_millis(300));
            Some(c)
        }
        Err(e) => {
            eprintln!("perf record: {e}");
            None
        }
    }
}

/// Stop the `perf record` of [`perf_start`] (SIGINT, so it writes its
/// file) and wait for it.
fn perf_stop(perf: Option<Child>) {
    let Some(mut perf) = perf else { return };
    let _ = Command::new("kill")
        .args(["-INT", &perf.id().to_string()])
        .status();
    let _ = perf.wait();
}

/// The child's entry point (`--ws-child VARIANT WATCHERS KEYS URL,..`):
/// runs the protocol described in the module doc; the exit code.
pub fn child_main(argv: &[String]) -> i32 {
    let parsed = (
        argv.first().and_then(|s| Variant::parse(s)),
        argv.get(1).and_then(|s| s.parse::<usize>().ok()),
        argv.get(2).and_then(|s| s.parse::<usize>().ok()),
        argv.get(3).map(|s| {
            s.split(',')
                .filter(|u| !u.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>()
        }),
    );
    let (Some(variant), Some(n), Some(keys), Some(urls)) = parsed else {
        eprintln!("usage: {CHILD_FLAG} VARIANT WATCHERS KEYS URL,.. [STREAMS] [prev-kv]");
        return 2;
    };
    let shape = Shape {
        streams: argv
            .get(4)
            .and_then(|s| s.parse::<usize>().ok())
            .unwrap_or(1)
            .max(1),
        prev_kv: argv.get(5).map(String::as_str) == Some("prev-kv"),
    };
    // `WS_CHILD_WORKERS=1` runs the child on one worker thread: what the
    // hand-over between threads costs (the profile in docs/benchmarks.md).
    let workers = std::env::var("WS_CHILD_WORKERS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(2)
        .max(1);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name(CHILD_THREAD)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tokio runtime: {e}");
            return 1;
        }
    };
    let r = rt.block_on(async move {
        tokio::spawn(child(variant, n.max(1), keys.max(1), shape, urls))
            .await
            .unwrap_or_else(|e| Err(e.to_string()))
    });
    match r {
        Ok(()) => {
            // Do not wait for thousands of watchers to be torn down.
            std::process::exit(0)
        }
        Err(e) => {
            eprintln!("watch-scale child ({}): {e}", variant.name());
            1
        }
    }
}

/// How the child spreads its watchers ([`WatchScaleSpec::streams`],
/// [`WatchScaleSpec::prev_kv`]).
#[derive(Debug, Clone, Copy)]
struct Shape {
    streams: usize,
    prev_kv: bool,
}

async fn child(
    variant: Variant,
    n: usize,
    keys: usize,
    shape: Shape,
    urls: Vec<String>,
) -> Result<(), String> {
    let driver = Driver::connect(variant.lib(), &urls, &ConnectOptions::default()).await?;
    {
        let mut d = driver.clone();
        d.put(b"ws/warm".to_vec(), b"x".to_vec()).await?;
        d.get(b"ws/warm".to_vec(), false).await?;
    }
    let w = match variant {
        Variant::Etcdv3 => etcdv3_watchers(&driver, n, keys, false).await?,
        Variant::Etcdv3OneTask => etcdv3_watchers(&driver, n, keys, true).await?,
        Variant::Etcdv3Group => etcdv3_group(&driver, n, keys, shape).await?,
        #[cfg(feature = "etcd-client")]
        Variant::EtcdClientStream => etcd_client_one_stream(&driver, n, keys, shape).await?,
        #[cfg(feature = "etcd-client")]
        Variant::EtcdClientPerWatch => etcd_client_per_watch(&driver, n, keys).await?,
    };
    say(&format!(
        "READY {} {} {}",
        w.rss_before,
        w.rss_after,
        w.create_time.as_nanos()
    ))?;
    let go = read_stdin_line().await?;
    if go != "GO" {
        return Err(format!("expected GO, got {go:?}"));
    }
    callgrind_instrumentation(true);
    let perf = perf_start(variant);
    let split0 = cpu_split();
    let cpu0 = self_cpu();
    let t0 = Instant::now();
    say("STARTED")?;
    let line = read_stdin_line().await?;
    let expected: u64 = line
        .strip_prefix("EXPECT ")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("expected EXPECT n, got {line:?}"))?;
    // Drain: until every expected event arrived, or none came for a while.
    let received = |sinks: &[SharedSink]| sinks.iter().map(|s| lock(s).events).sum::<u64>();
    let mut last = received(&w.sinks);
    let mut last_change = Instant::now();
    while last < expected && last_change.elapsed() < DRAIN_IDLE {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = received(&w.sinks);
        if now != last {
            last = now;
            last_change = Instant::now();
        }
    }
    let window = t0.elapsed();
    let cpu = self_cpu().saturating_sub(cpu0);
    callgrind_instrumentation(false);
    let split = cpu_split();
    perf_stop(perf);
    eprintln!(
        "watch scale child {}: user {} ms, system {} ms, context switches {} voluntary {} involuntary",
        variant.name(),
        (split[0] - split0[0]) * 10,
        (split[1] - split0[1]) * 10,
        split[2] - split0[2],
        split[3] - split0[3]
    );
    let rss_end = rss_kib();
    let mut lat: Vec<u32> = Vec::new();
    let (mut events, mut mismatched, mut ended) = (0u64, 0u64, 0u64);
    let mut first_error = None;
    for s in &w.sinks {
        let mut s = lock(s);
        lat.append(&mut s.lat_us);
        events += s.events;
        mismatched += s.mismatched;
        ended += s.ended;
        if first_error.is_none() {
            first_error = s.first_error.take();
        }
    }
    lat.sort_unstable();
    let pct = |q: f64| -> u32 {
        if lat.is_empty() {
            return 0;
        }
        let rank = (q * lat.len() as f64).ceil() as usize;
        lat[rank.clamp(1, lat.len()) - 1]
    };
    say(&format!(
        "RESULT {events} {} {} {} {} {} {mismatched} {ended} {rss_end} {}",
        cpu.as_nanos(),
        window.as_nanos(),
        pct(0.5),
        pct(0.99),
        lat.last().copied().unwrap_or(0),
        first_error
            .unwrap_or_default()
            .replace(char::is_whitespace, "_")
    ))?;
    drop(w);
    Ok(())
}

/// The etcdv3 client of `driver`, with a warm-up watcher that started the
/// client's watch stream and its task (kept alive by the caller).
async fn etcdv3_warmed(
    driver: &Driver,
) -> Result<(&etcdv3_client::Client, etcdv3_client::api::Watcher), String> {
    #[allow(clippy::infallible_destructuring_match)]
    let c = match driver {
        Driver::Etcdv3(c) => c,
        #[cfg(feature = "etcd-client")]
        _ => return Err("etcdv3 variant needs an etcdv3 client".into()),
    };
    let warm = c
        .watch(b"ws/warm".to_vec(), etcdv3_client::api::WatchOptions::new())
        .await
        .map_err(|e| e.to_string())?;
    settle().await;
    Ok((c, warm))
}

async fn etcdv3_watchers(
    driver: &Driver,
    n: usize,
    keys: usize,
    one_task: bool,
) -> Result<Watching, String> {
    use etcdv3_client::api::{WatchEvent, WatchOptions};
    use futures_util::StreamExt;
    let (c, warm) = etcdv3_warmed(driver).await?;
    let rss_before = rss_kib();
    let t_create = Instant::now();
    let mut ws = Vec::with_capacity(n);
    for i in 0..n {
        ws.push(
            c.watch(key(i, keys), WatchOptions::new())
                .await
                .map_err(|e| e.to_string())?,
        );
    }
    let create_time = t_create.elapsed();
    settle().await;
    let rss_after = rss_kib();
    if one_task {
        let sink = SharedSink::default();
        let s2 = sink.clone();
        let watched: Vec<Vec<u8>> = (0..n).map(|w| key(w, keys)).collect();
        let mut all = futures_util::stream::select_all(
            ws.into_iter()
                .enumerate()
                .map(|(i, w)| w.map(move |ev| (i, ev))),
        );
        tokio::spawn(async move {
            while let Some((i, ev)) = all.next().await {
                match ev {
                    Ok(WatchEvent::Events { events, .. }) => {
                        lock(&s2).record_events(&watched[i], &events, now_ns());
                    }
                    Ok(e) if e.is_terminal() => lock(&s2).end(format!("{e:?}")),
                    Ok(_) => {}
                    Err(e) => lock(&s2).end(e.to_string()),
                }
            }
        });
        return Ok(Watching {
            rss_before,
            rss_after,
            create_time,
            sinks: vec![sink],
            _keep: vec![Box::new(warm), Box::new(driver.clone())],
        });
    }
    let mut sinks = Vec::with_capacity(n);
    for (i, mut w) in ws.into_iter().enumerate() {
        let sink = SharedSink::default();
        sinks.push(sink.clone());
        let watched = key(i, keys);
        tokio::spawn(async move {
            while let Some(ev) = w.next().await {
                match ev {
                    Ok(WatchEvent::Events { events, .. }) => {
                        lock(&sink).record_events(&watched, &events, now_ns());
                    }
                    Ok(e) if e.is_terminal() => {
                        lock(&sink).end(format!("{e:?}"));
                        return;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        lock(&sink).end(e.to_string());
                        return;
                    }
                }
            }
            lock(&sink).end("watcher stream ended".into());
        });
    }
    Ok(Watching {
        rss_before,
        rss_after,
        create_time,
        sinks,
        _keep: vec![Box::new(warm), Box::new(driver.clone())],
    })
}

/// etcdv3's grouped watch: ONE `WatchGroup`, the watchers added without
/// waiting for the server (then every `Created` awaited, as etcd-client's
/// one stream awaits its "created" answers), ONE consumer task routing each
/// `(WatcherId, event)` through the same kind of caller table
/// (`HashMap<id, watcher>` + the watched keys) as `etcd_client_one_stream`,
/// built before the "created" memory reading as there.
async fn etcdv3_group(
    driver: &Driver,
    n: usize,
    keys: usize,
    shape: Shape,
) -> Result<Watching, String> {
    use etcdv3_client::api::{WatchEvent, WatchGroup, WatchOptions};
    use futures_util::StreamExt;
    use std::collections::HashMap;
    let (c, warm) = etcdv3_warmed(driver).await?;
    let rss_before = rss_kib();
    let t_create = Instant::now();
    // One stream: the client's shared one (the watch-scale shape); more: a
    // gRPC stream per group, as etcd-client's `WatchStream`s.
    let mut groups: Vec<WatchGroup> = (0..shape.streams)
        .map(|_| {
            if shape.streams == 1 {
                c.watch_group()
            } else {
                c.watch_group_on_own_stream()
            }
        })
        .collect();
    let mut routes: Vec<HashMap<i64, usize>> = (0..shape.streams)
        .map(|_| HashMap::with_capacity(n.div_ceil(shape.streams)))
        .collect();
    let mut opts = WatchOptions::new();
    if shape.prev_kv {
        opts = opts.with_prev_kv();
    }
    for w in 0..n {
        let g = w % shape.streams;
        let id = groups[g]
            .add(key(w, keys), opts.clone())
            .map_err(|e| e.to_string())?;
        routes[g].insert(id.get(), w);
    }
    let watched: Arc<Vec<Vec<u8>>> = Arc::new((0..n).map(|w| key(w, keys)).collect());
    for (g, group) in groups.iter_mut().enumerate() {
        let mut created = 0;
        while created < routes[g].len() {
            match group.next().await {
                Some((_, Ok(WatchEvent::Created { .. }))) => created += 1,
                Some((id, Ok(e))) if e.is_terminal() => {
                    return Err(format!("watcher {id} ended at creation: {e:?}"))
                }
                Some((_, Ok(_))) => {}
                Some((id, Err(e))) => return Err(format!("watcher {id}: {e}")),
                None => return Err("watch group ended".into()),
            }
        }
    }
    let create_time = t_create.elapsed();
    settle().await;
    let rss_after = rss_kib();
    let mut sinks = Vec::with_capacity(shape.streams);
    for (mut group, routes) in groups.into_iter().zip(routes) {
        let sink = SharedSink::default();
        sinks.push(sink.clone());
        let watched = watched.clone();
        tokio::spawn(async move {
            while let Some((id, ev)) = group.next().await {
                match ev {
                    Ok(WatchEvent::Events { events, .. }) => {
                        let now = now_ns();
                        let mut s = lock(&sink);
                        let Some(&w) = routes.get(&id.get()) else {
                            s.mismatched += events.len() as u64;
                            continue;
                        };
                        s.record_events(&watched[w], &events, now);
                    }
                    Ok(e) if e.is_terminal() => lock(&sink).end(format!("{e:?}")),
                    Ok(_) => {}
                    Err(e) => lock(&sink).end(e.to_string()),
                }
            }
        });
    }
    Ok(Watching {
        rss_before,
        rss_after,
        create_time,
        sinks,
        _keep: vec![Box::new(warm), Box::new(driver.clone())],
    })
}

/// Wait until `n` "created" responses arrived on an etcd-client watch
/// stream; the watch id of each, in order.
#[cfg(feature = "etcd-client")]
async fn created_ids<S>(s: &mut S, n: usize) -> Result<Vec<i64>, String>
where
    S: futures_util::Stream<Item = Result<etcd_client::WatchResponse, etcd_client::Error>> + Unpin,
{
    use futures_util::StreamExt;
    let mut ids = Vec::with_capacity(n);
    while ids.len() < n {
        match s.next().await {
            Some(Ok(r)) if r.created() => ids.push(r.watch_id()),
            Some(Ok(r)) if r.canceled() => {
                return Err(format!("watch cancelled: {}", r.cancel_reason()))
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("watch stream ended".into()),
        }
    }
    Ok(ids)
}

#[cfg(feature = "etcd-client")]
async fn etcd_client_one_stream(
    driver: &Driver,
    n: usize,
    keys: usize,
    shape: Shape,
) -> Result<Watching, String> {
    let Driver::EtcdClient(c) = driver else {
        return Err("etcd-client variant needs an etcd-client client".into());
    };
    let mut c = (**c).clone();
    // Warm-up watcher on its own stream, created and confirmed.
    let mut warm = c
        .watch(b"ws/warm".to_vec(), None)
        .await
        .map_err(|e| e.to_string())?;
    created_ids(&mut warm, 1).await?;
    settle().await;
    let prev_kv = shape.prev_kv;
    let opts = move || prev_kv.then(|| etcd_client::WatchOptions::new().with_prev_key());
    let rss_before = rss_kib();
    let t_create = Instant::now();
    // Stream `s` watches watchers s, s + streams, s + 2 * streams, ...
    let mut streams = Vec::with_capacity(shape.streams);
    for st in 0..shape.streams.min(n) {
        let mine: Vec<usize> = (st..n).step_by(shape.streams).collect();
        let s = c
            .watch(key(mine[0], keys), opts())
            .await
            .map_err(|e| e.to_string())?;
        let (mut tx, mut rx) = s.split();
        // Send the other creates while reading the "created" answers: with
        // thousands of watchers, not reading would fill the flow-control
        // window and then the request channel.
        let rest = mine[1..].to_vec();
        let sender = tokio::spawn(async move {
            for w in rest {
                tx.watch(key(w, keys), opts())
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok::<_, String>(tx)
        });
        let ids = created_ids(&mut rx, mine.len()).await?;
        let tx = sender.await.map_err(|e| e.to_string())??;
        // The caller's routing table: watch id -> watcher.
        let routes: HashMap<i64, usize> = ids.iter().copied().zip(mine.iter().copied()).collect();
        streams.push((tx, rx, routes));
    }
    let watched: Arc<Vec<Vec<u8>>> = Arc::new((0..n).map(|w| key(w, keys)).collect());
    let create_time = t_create.elapsed();
    settle().await;
    let rss_after = rss_kib();
    let mut sinks = Vec::with_capacity(streams.len());
    let mut keep: Vec<Box<dyn std::any::Any + Send>> = vec![Box::new(warm)];
    for (tx, mut rx, routes) in streams {
        keep.push(Box::new(tx));
        let sink = SharedSink::default();
        sinks.push(sink.clone());
        let watched = watched.clone();
        tokio::spawn(async move {
            loop {
                match rx.message().await {
                    Ok(Some(r)) => {
                        if r.events().is_empty() {
                            if r.canceled() {
                                lock(&sink).end(format!("cancelled: {}", r.cancel_reason()));
                            }
                            continue;
                        }
                        let now = now_ns();
                        let mut s = lock(&sink);
                        let Some(&w) = routes.get(&r.watch_id()) else {
                            s.mismatched += r.events().len() as u64;
                            continue;
                        };
                        for e in r.events() {
                            match e.kv() {
                                Some(kv) => s.record(&watched[w], kv.key(), kv.value(), now),
                                None => s.mismatched += 1,
                            }
                        }
                    }
                    Ok(None) => {
                        lock(&sink).end("watch stream ended".into());
                        return;
                    }
                    Err(e) => {
                        lock(&sink).end(e.to_string());
                        return;
                    }
                }
            }
        });
    }
    keep.push(Box::new(c));
    Ok(Watching {
        rss_before,
        rss_after,
        create_time,
        sinks,
        _keep: keep,
    })
}

#[cfg(feature = "etcd-client")]
async fn etcd_client_per_watch(driver: &Driver, n: usize, keys: usize) -> Result<Watching, String> {
    let Driver::EtcdClient(c) = driver else {
        return Err("etcd-client variant needs an etcd-client client".into());
    };
    let mut c = (**c).clone();
    let mut warm = c
        .watch(b"ws/warm".to_vec(), None)
        .await
        .map_err(|e| e.to_string())?;
    created_ids(&mut warm, 1).await?;
    settle().await;
    let rss_before = rss_kib();
    let t_create = Instant::now();
    let mut streams = Vec::with_capacity(n);
    for i in 0..n {
        let mut s = c
            .watch(key(i, keys), None)
            .await
            .map_err(|e| e.to_string())?;
        created_ids(&mut s, 1).await?;
        streams.push(s);
    }
    let create_time = t_create.elapsed();
    settle().await;
    let rss_after = rss_kib();
    let mut sinks = Vec::with_capacity(n);
    for (i, mut s) in streams.into_iter().enumerate() {
        let sink = SharedSink::default();
        sinks.push(sink.clone());
        let watched = key(i, keys);
        tokio::spawn(async move {
            loop {
                match s.message().await {
                    Ok(Some(r)) => {
                        if r.events().is_empty() {
                            if r.canceled() {
                                lock(&sink).end(format!("cancelled: {}", r.cancel_reason()));
                                return;
                            }
                            continue;
                        }
                        let now = now_ns();
                        let mut g = lock(&sink);
                        for e in r.events() {
                            match e.kv() {
                                Some(kv) => g.record(&watched, kv.key(), kv.value(), now),
                                None => g.mismatched += 1,
                            }
                        }
                    }
                    Ok(None) => {
                        lock(&sink).end("watch stream ended".into());
                        return;
                    }
                    Err(e) => {
                        lock(&sink).end(e.to_string());
                        return;
                    }
                }
            }
        });
    }
    Ok(Watching {
        rss_before,
        rss_after,
        create_time,
        sinks,
        _keep: vec![Box::new(warm), Box::new(c)],
    })
}

// ----------------------------------------------------------------- parent

/// What one variant's run measured.
#[derive(Debug, Clone)]
pub struct WsRun {
    /// The variant.
    pub variant: Variant,
    /// Repetition number.
    pub rep: usize,
    /// KiB of RSS per watcher: delta across creating them / N.
    pub mem_create_kib: f64,
    /// KiB of RSS per watcher at the end of the run (delta from before the
    /// watchers, including the consumers and what the run allocated) / N.
    pub mem_end_kib: f64,
    /// How long creating the watchers took (one after the other, each
    /// confirmed by the server before the next, except on etcd-client's one
    /// stream, where the creates are pipelined).
    pub create_time: Duration,
    /// Writes that succeeded.
    pub writes_ok: u64,
    /// Writes that failed.
    pub write_errors: u64,
    /// The first write error.
    pub first_write_error: Option<String>,
    /// Successful writes per second, over the time from the first write to
    /// the last answer.
    pub write_rate: f64,
    /// Events the watchers should have received.
    pub expected: u64,
    /// Events they received.
    pub received: u64,
    /// Events routed to the wrong watcher (or without a timestamp).
    pub mismatched: u64,
    /// Watchers that ended before the run did.
    pub ended: u64,
    /// Why the first of them ended.
    pub first_end: String,
    /// Events received per second over the child's window (from the first
    /// write until the last expected event arrived).
    pub events_per_sec: f64,
    /// Events per second the writes asked for (expected events over the
    /// writer's time).
    pub offered_events_per_sec: f64,
    /// Delivery latency percentiles.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Largest.
    pub max: Duration,
    /// Client (child process) CPU per received event, µs.
    pub client_cpu_us: f64,
    /// Members' CPU per received event, µs.
    pub server_cpu_us: f64,
}

/// A child process running one variant's watchers.
struct ChildProc {
    child: Child,
    stdin: ChildStdin,
    stdout: Option<BufReader<ChildStdout>>,
}

impl ChildProc {
    fn spawn(spec: &WatchScaleSpec, variant: Variant) -> Result<ChildProc, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut cmd = match std::env::var(CALLGRIND_ENV) {
            Ok(dir) => {
                let mut c = Command::new("valgrind");
                c.args([
                    "--tool=callgrind".to_string(),
                    "--instr-atstart=no".to_string(),
                    format!("--callgrind-out-file={dir}/callgrind.{}.%p", variant.name()),
                ])
                // With `WS_CALLGRIND_CACHE=1`, simulated cache misses too.
                .args(std::env::var_os("WS_CALLGRIND_CACHE").map(|_| "--cache-sim=yes"))
                .arg(exe);
                c
            }
            Err(_) => Command::new(exe),
        };
        let mut child = cmd
            .args([
                CHILD_FLAG,
                variant.name(),
                &spec.watchers.to_string(),
                &spec.keys.to_string(),
                &spec.urls.join(","),
                &spec.streams.max(1).to_string(),
                if spec.prev_kv { "prev-kv" } else { "-" },
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| e.to_string())?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err("child without pipes".into());
        };
        Ok(ChildProc {
            child,
            stdin,
            stdout: Some(BufReader::new(stdout)),
        })
    }

    fn send(&mut self, line: &str) -> Result<(), String> {
        writeln!(self.stdin, "{line}")
            .and_then(|()| self.stdin.flush())
            .map_err(|e| format!("to child: {e}"))
    }

    /// The next line that starts with `prefix` (other lines are echoed).
    async fn expect(&mut self, prefix: &'static str) -> Result<String, String> {
        let mut out = self.stdout.take().ok_or("child output lost")?;
        let (out, r) = tokio::task::spawn_blocking(move || {
            let r = loop {
                let mut s = String::new();
                match out.read_line(&mut s) {
                    Ok(0) => break Err(format!("child exited before {prefix}")),
                    Ok(_) => {
                        if let Some(rest) = s.trim_end().strip_prefix(prefix) {
                            break Ok(rest.trim().to_string());
                        }
                        eprintln!("child: {}", s.trim_end());
                    }
                    Err(e) => break Err(e.to_string()),
                }
            };
            (out, r)
        })
        .await
        .map_err(|e| e.to_string())?;
        self.stdout = Some(out);
        r
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        // The child exits after RESULT; this ends one that failed midway.
        if matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(200));
            if matches!(self.child.try_wait(), Ok(None)) {
                let _ = self.child.kill();
            }
        }
        let _ = self.child.wait();
    }
}

/// What the paced writer did.
#[derive(Debug, Default)]
struct Writes {
    ok: u64,
    errors: u64,
    first_error: Option<String>,
    expected_events: u64,
    wall: Duration,
}

/// Put the keys in turn at `spec.rate` per second for `spec.secs` (open
/// loop: a write is issued at its due time whatever the others do, up to
/// [`MAX_IN_FLIGHT`]), each value stamped with the time of its issue.
async fn write_paced(writer: &Driver, spec: &WatchScaleSpec) -> Writes {
    #[derive(Default)]
    struct Shared {
        ok: AtomicU64,
        errors: AtomicU64,
        expected: AtomicU64,
        in_flight: AtomicUsize,
        first_error: Mutex<Option<String>>,
    }
    let shared = Arc::new(Shared::default());
    let period = Duration::from_secs_f64(1.0 / spec.rate.max(1) as f64);
    let total = (spec.rate as u64).saturating_mul(spec.secs) as usize;
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        let due = start + period.mul_f64(i as f64);
        if due > Instant::now() {
            tokio::time::sleep_until(due.into()).await;
        }
        while shared.in_flight.load(Ordering::Relaxed) >= MAX_IN_FLIGHT {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        shared.in_flight.fetch_add(1, Ordering::Relaxed);
        let mut d = writer.clone();
        let shared = shared.clone();
        let (k, watchers, keys, size) = (i % spec.keys, spec.watchers, spec.keys, spec.value_size);
        tasks.push(tokio::spawn(async move {
            let r = d.put(key(k, keys), stamp(now_ns(), size)).await;
            match r {
                Ok(_) => {
                    shared.ok.fetch_add(1, Ordering::Relaxed);
                    shared
                        .expected
                        .fetch_add(watchers_on_key(k, watchers, keys) as u64, Ordering::Relaxed);
                }
                Err(e) => {
                    shared.errors.fetch_add(1, Ordering::Relaxed);
                    let mut f = shared.first_error.lock().unwrap_or_else(|e| e.into_inner());
                    f.get_or_insert(e.to_string());
                }
            }
            shared.in_flight.fetch_sub(1, Ordering::Relaxed);
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let first_error = shared
        .first_error
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    Writes {
        ok: shared.ok.load(Ordering::Relaxed),
        errors: shared.errors.load(Ordering::Relaxed),
        first_error,
        expected_events: shared.expected.load(Ordering::Relaxed),
        wall: start.elapsed(),
    }
}

fn field<T: std::str::FromStr>(
    it: &mut std::str::SplitWhitespace<'_>,
    what: &str,
) -> Result<T, String> {
    it.next()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("child output: bad {what}"))
}

/// One variant, one repetition.
async fn run_one(
    writer: &Driver,
    spec: &WatchScaleSpec,
    variant: Variant,
    rep: usize,
) -> Result<WsRun, String> {
    let mut child = ChildProc::spawn(spec, variant)?;
    let ready = child.expect("READY").await?;
    let mut it = ready.split_whitespace();
    let rss_before: u64 = field(&mut it, "rss before")?;
    let rss_after: u64 = field(&mut it, "rss after")?;
    let create_ns: u64 = field(&mut it, "create time")?;
    eprintln!(
        "watch scale {}: {} watchers created in {:.2} s",
        variant.name(),
        spec.watchers,
        create_ns as f64 / 1e9
    );
    child.send("GO")?;
    child.expect("STARTED").await?;
    let srv0 = processes_cpu(&spec.server_pids);
    let w = write_paced(writer, spec).await;
    child.send(&format!("EXPECT {}", w.expected_events))?;
    let result = child.expect("RESULT").await?;
    let srv = processes_cpu(&spec.server_pids).saturating_sub(srv0);
    let mut it = result.split_whitespace();
    let received: u64 = field(&mut it, "events")?;
    let cpu_ns: u64 = field(&mut it, "cpu")?;
    let window_ns: u64 = field(&mut it, "window")?;
    let p50: u64 = field(&mut it, "p50")?;
    let p99: u64 = field(&mut it, "p99")?;
    let max: u64 = field(&mut it, "max")?;
    let mismatched: u64 = field(&mut it, "mismatched")?;
    let ended: u64 = field(&mut it, "ended")?;
    let rss_end: u64 = field(&mut it, "rss end")?;
    let first_end = it.next().unwrap_or_default().replace('_', " ");
    let n = spec.watchers.max(1) as f64;
    let ev = received.max(1) as f64;
    Ok(WsRun {
        variant,
        rep,
        mem_create_kib: (rss_after as f64 - rss_before as f64) / n,
        mem_end_kib: (rss_end as f64 - rss_before as f64) / n,
        create_time: Duration::from_nanos(create_ns),
        writes_ok: w.ok,
        write_errors: w.errors,
        first_write_error: w.first_error,
        write_rate: w.ok as f64 / w.wall.as_secs_f64().max(1e-9),
        expected: w.expected_events,
        received,
        mismatched,
        ended,
        first_end,
        events_per_sec: received as f64 / (window_ns as f64 / 1e9).max(1e-9),
        offered_events_per_sec: w.expected_events as f64 / w.wall.as_secs_f64().max(1e-9),
        p50: Duration::from_micros(p50),
        p99: Duration::from_micros(p99),
        max: Duration::from_micros(max),
        client_cpu_us: cpu_ns as f64 / 1e3 / ev,
        server_cpu_us: srv.as_secs_f64() * 1e6 / ev,
    })
}

/// Run every variant of `spec` (each in a fresh child process, the writer
/// here) and return the report (markdown).
pub async fn run(spec: &WatchScaleSpec) -> Result<String, String> {
    if spec.keys == 0 || spec.watchers == 0 || spec.rate == 0 {
        return Err("watch scale needs watchers, keys and rate above 0".into());
    }
    let writer = Driver::connect(Lib::Etcdv3, &spec.urls, &ConnectOptions::default()).await?;
    {
        // Every key exists before the watchers start; warms the writer.
        let mut d = writer.clone();
        for k in 0..spec.keys {
            d.put(key(k, spec.keys), stamp(now_ns(), spec.value_size))
                .await?;
        }
    }
    let mut runs = Vec::new();
    for rep in 0..spec.repeat.max(1) {
        let mut order = spec.variants.clone();
        if rep % 2 == 1 {
            order.reverse();
        }
        for v in order {
            eprintln!(
                "watch scale {} rep {rep}: {} watchers on {} keys, {} writes/s for {} s",
                v.name(),
                spec.watchers,
                spec.keys,
                spec.rate,
                spec.secs
            );
            match run_one(&writer, spec, v, rep).await {
                Ok(r) => {
                    eprintln!(
                        "watch scale {:<22} rep {rep}: mem {:.2} KiB/watcher (end {:.2}) writes {} ok {} err ({:.0}/s) events {}/{} ({:.0}/s) mismatched {} ended {} p50 {:.1} ms p99 {:.1} ms cpu {:.2} us/event server {:.2} us/event",
                        v.name(),
                        r.mem_create_kib,
                        r.mem_end_kib,
                        r.writes_ok,
                        r.write_errors,
                        r.write_rate,
                        r.received,
                        r.expected,
                        r.events_per_sec,
                        r.mismatched,
                        r.ended,
                        r.p50.as_secs_f64() * 1e3,
                        r.p99.as_secs_f64() * 1e3,
                        r.client_cpu_us,
                        r.server_cpu_us
                    );
                    runs.push(r);
                }
                Err(e) => eprintln!("watch scale {} rep {rep}: FAILED: {e}", v.name()),
            }
            // Let the members and the machine calm down between variants.
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
    writer.close();
    Ok(render(spec, &runs))
}

fn render(spec: &WatchScaleSpec, runs: &[WsRun]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nWatch scale: {} watchers on one client, {} keys (about {} watchers per key), {} writes/s \
         for {} s, {}-byte values{}; each variant's watchers in a fresh child process\n",
        spec.watchers,
        spec.keys,
        spec.watchers / spec.keys.max(1),
        spec.rate,
        spec.secs,
        spec.value_size.max(STAMP_LEN),
        match (spec.streams.max(1), spec.prev_kv) {
            (1, false) => String::new(),
            (s, p) => format!(
                ", {s} streams ({} watchers per stream: `WatchStream`s for etcd-client, \
                 `WatchGroup`s on their own streams for etcdv3){}",
                spec.watchers / s,
                if p { ", prev_kv" } else { "" }
            ),
        }
    );
    let _ = writeln!(
        out,
        "| client (pattern) | rep | creation of all watchers (s) | KiB per watcher (created) | KiB per watcher (end of run) | writes/s achieved | events received / expected | events/s | p50 (ms) | p99 (ms) | max (ms) | client CPU per event (µs) | server CPU per event (µs) |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in runs {
        let mut notes = Vec::new();
        if r.write_errors > 0 {
            notes.push(format!(
                "{} write errors (first: {})",
                r.write_errors,
                r.first_write_error.as_deref().unwrap_or("?")
            ));
        }
        if r.mismatched > 0 {
            notes.push(format!("{} mis-routed", r.mismatched));
        }
        if r.ended > 0 {
            notes.push(format!("{} watchers ended ({})", r.ended, r.first_end));
        }
        let lost = if r.received == r.expected {
            String::new()
        } else {
            format!(" **({:+})**", r.received as i64 - r.expected as i64)
        };
        let _ = writeln!(
            out,
            "| {}{} | {} | {:.1} | {:.2} | {:.2} | {:.0} | {} / {}{lost} | {:.0} | {:.1} | {:.1} | {:.1} | {:.2} | {:.2} |",
            r.variant.label(),
            if notes.is_empty() {
                String::new()
            } else {
                format!(" ({})", notes.join("; "))
            },
            r.rep,
            r.create_time.as_secs_f64(),
            r.mem_create_kib,
            r.mem_end_kib,
            r.write_rate,
            r.received,
            r.expected,
            r.events_per_sec,
            r.p50.as_secs_f64() * 1e3,
            r.p99.as_secs_f64() * 1e3,
            r.max.as_secs_f64() * 1e3,
            r.client_cpu_us,
            r.server_cpu_us
        );
    }
    let behind: Vec<&WsRun> = runs
        .iter()
        .filter(|r| r.write_rate < 0.95 * spec.rate as f64)
        .collect();
    if !behind.is_empty() {
        let _ = writeln!(
            out,
            "\nThe machine did not keep up with {} writes/s in {} of {} runs (achieved {}).",
            spec.rate,
            behind.len(),
            runs.len(),
            behind
                .iter()
                .map(|r| format!("{:.0}/s", r.write_rate))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let lagging: Vec<&WsRun> = runs
        .iter()
        .filter(|r| r.events_per_sec < 0.95 * r.offered_events_per_sec)
        .collect();
    if !lagging.is_empty() {
        let _ = writeln!(
            out,
            "\nEvents arrived slower than the writes produced them in {} of {} runs \
             (received / produced per second: {}): a backlog built up, so the latencies \
             there measure the queue, not the client.",
            lagging.len(),
            runs.len(),
            lagging
                .iter()
                .map(|r| format!(
                    "{} {:.0} / {:.0}",
                    r.variant.name(),
                    r.events_per_sec,
                    r.offered_events_per_sec
                ))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    #[cfg(feature = "etcd-client")]
    {
        let med = |v: Variant, f: fn(&WsRun) -> f64| {
            let xs: Vec<f64> = runs.iter().filter(|r| r.variant == v).map(f).collect();
            (!xs.is_empty()).then(|| median_f64(xs))
        };
        let ratio = |f: fn(&WsRun) -> f64| {
            [
                Variant::Etcdv3,
                Variant::Etcdv3OneTask,
                Variant::Etcdv3Group,
            ]
            .map(
                |ours| match (med(ours, f), med(Variant::EtcdClientStream, f)) {
                    (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
                    _ => "–".into(),
                },
            )
        };
        let mem = ratio(|r| r.mem_create_kib);
        let cpu = ratio(|r| r.client_cpu_us);
        let p50 = ratio(|r| r.p50.as_secs_f64());
        let p99 = ratio(|r| r.p99.as_secs_f64());
        let _ = writeln!(
            out,
            "\netcdv3 / etcd-client at its best (one `WatchStream`), medians, \
             etcdv3 with a task per watcher | with one consumer task | one `WatchGroup`: \
             memory per watcher {} | {} | {}, client CPU per event {} | {} | {}, \
             p50 latency {} | {} | {}, p99 latency {} | {} | {}.",
            mem[0],
            mem[1],
            mem[2],
            cpu[0],
            cpu[1],
            cpu[2],
            p50[0],
            p50[1],
            p50[2],
            p99[0],
            p99[1],
            p99[2],
        );
    }
    #[cfg(not(feature = "etcd-client"))]
    let _ = median_f64;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip() {
        let v = stamp(1_764_400_000_123_456_789, 256);
        assert_eq!(v.len(), 256);
        assert_eq!(parse_stamp(&v), Some(1_764_400_000_123_456_789));
        assert_eq!(stamp(7, 4).len(), STAMP_LEN);
        assert_eq!(parse_stamp(b"12x"), None);
        assert_eq!(parse_stamp(b"0000000000000000000a"), None);
    }

    #[test]
    fn watchers_per_key_add_up() {
        for (n, keys) in [(10_000, 100), (1000, 100), (1003, 100), (7, 10)] {
            let sum: usize = (0..keys).map(|k| watchers_on_key(k, n, keys)).sum();
            assert_eq!(sum, n);
            // Watcher w watches key w % keys: count them directly.
            for k in 0..keys {
                let direct = (0..n).filter(|w| w % keys == k).count();
                assert_eq!(watchers_on_key(k, n, keys), direct);
            }
        }
    }

    #[test]
    fn sink_counts_misrouted_events() {
        let mut s = Sink::default();
        let v = stamp(1_000_000, 32);
        s.record(b"a", b"a", &v, 3_000_000);
        s.record(b"a", b"b", &v, 3_000_000);
        s.record(b"a", b"a", b"no stamp", 3_000_000);
        assert_eq!(s.events, 3);
        assert_eq!(s.mismatched, 2);
        assert_eq!(s.lat_us, vec![2000]);
    }

    #[test]
    fn variants_round_trip_through_their_names() {
        for v in Variant::all() {
            assert_eq!(Variant::parse(v.name()), Some(v));
        }
        assert_eq!(Variant::parse("nope"), None);
    }
}
