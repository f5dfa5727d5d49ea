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
//! happen, every client reaches the cluster through a [`Tap`]: a TCP relay in
//! front of each member's fault proxy that reads the HTTP/2 frames going
//! through it and counts the client's PINGs and the server's GOAWAYs (a
//! too_many_pings GOAWAY is counted apart). Errors whose text says
//! too_many_pings / ENHANCE_YOUR_CALM are counted too.
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
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etcdv3_bench::{median_duration as median, ConnectOptions, Driver, DriverError, Lib};
// The fault schedule comes from the testkit (shared with the tests and
// `etcdv3ctl demo`); only the classification of the client's errors lives in
// the integration crate, beside the client error type it matches on.
use etcdv3_testkit::fault::{
    fault_stats, inject, ErrorClass, Fault, FaultStats, OpKind, OpRecord, FAULTS,
};
use etcdv3_testkit::Cluster;

const CALL_TIMEOUT: Duration = Duration::from_secs(5);
const HANG_GRACE: Duration = Duration::from_secs(1);
const TICK: Duration = Duration::from_millis(10);
const WARMUP: Duration = Duration::from_millis(1500);
const HOLD: Duration = Duration::from_secs(4);
const TAIL: Duration = Duration::from_secs(2);
/// etcd-client's matched keepalive (etcdv3's detection times).
#[cfg(feature = "etcd-client")]
const KA_INTERVAL: Duration = Duration::from_millis(500);
#[cfg(feature = "etcd-client")]
const KA_TIMEOUT: Duration = Duration::from_millis(800);

/// A put's outcome: the answering member, or the error class, its text, and
/// whether the text says the server sent GOAWAY too_many_pings.
type PutResult = Result<u64, (ErrorClass, String, bool)>;

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

/// Whether an error's text (with its sources) says the server sent GOAWAY
/// too_many_pings.
fn says_too_many_pings(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    t.contains("too_many_pings") || t.contains("enhance_your_calm")
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

/// One put; `Ok(member_id)` of the member that answered.
async fn put(driver: &mut Driver, key: String, value: String) -> PutResult {
    driver.put(key, value).await.map_err(|e| {
        let class = match &e {
            DriverError::Etcdv3(e) => e.class(),
            #[cfg(feature = "etcd-client")]
            DriverError::EtcdClient(e) => classify_etcd_client(e),
            DriverError::Unexpected(m) => ErrorClass::Other(m.clone()),
        };
        let pings = says_too_many_pings(&full_text(&e));
        (class, e.to_string(), pings)
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

/// Sequential puts until `stop`; the records, and how many errors said
/// too_many_pings.
async fn workload(
    mut driver: Driver,
    stop: Arc<AtomicBool>,
    out: Arc<Mutex<Vec<OpRecord>>>,
    pings_errors: Arc<AtomicU64>,
) {
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
        let result = match r {
            Ok(Ok(m)) => Ok(m),
            Ok(Err((class, msg, pings))) => {
                if pings {
                    pings_errors.fetch_add(1, Ordering::Relaxed);
                }
                Err((class, msg))
            }
            Err(_) => Err((ErrorClass::Hang, "no answer".into())),
        };
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

// --------------------------------------------------------------------- tap

/// An HTTP/2 frame a [`FrameScanner`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Frame {
    /// PING (`ack`: a PING ACK).
    Ping {
        /// The ACK flag.
        ack: bool,
    },
    /// GOAWAY with its error code and debug data.
    GoAway {
        /// HTTP/2 error code (11 = ENHANCE_YOUR_CALM).
        code: u32,
        /// Debug data (grpc-go: `too_many_pings`).
        debug: Vec<u8>,
    },
}

const FRAME_PING: u8 = 0x6;
const FRAME_GOAWAY: u8 = 0x7;
const FLAG_ACK: u8 = 0x1;
const ENHANCE_YOUR_CALM: u32 = 0xb;
const CLIENT_PREFACE_LEN: usize = 24;

/// Reads the HTTP/2 frames of one direction of a connection from the
/// chunks the relay forwards, however they are split.
struct FrameScanner {
    /// Bytes of the client connection preface still to skip.
    preface_left: usize,
    buf: Vec<u8>,
}

impl FrameScanner {
    /// A scanner for the client-to-server direction (`from_client`, which
    /// starts with the 24-byte preface) or the other one.
    fn new(from_client: bool) -> Self {
        FrameScanner {
            preface_left: if from_client { CLIENT_PREFACE_LEN } else { 0 },
            buf: Vec::new(),
        }
    }

    /// Feed `data`; the PING and GOAWAY frames it completes.
    fn feed(&mut self, mut data: &[u8]) -> Vec<Frame> {
        if self.preface_left > 0 {
            let n = self.preface_left.min(data.len());
            self.preface_left -= n;
            data = &data[n..];
        }
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        let mut at = 0;
        while self.buf.len() - at >= 9 {
            let h = &self.buf[at..at + 9];
            let len = (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2]);
            let (ty, flags) = (h[3], h[4]);
            if self.buf.len() - at < 9 + len {
                break;
            }
            let payload = &self.buf[at + 9..at + 9 + len];
            match ty {
                FRAME_PING => out.push(Frame::Ping {
                    ack: flags & FLAG_ACK != 0,
                }),
                FRAME_GOAWAY if len >= 8 => out.push(Frame::GoAway {
                    code: u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]]),
                    debug: payload[8..].to_vec(),
                }),
                _ => {}
            }
            at += 9 + len;
        }
        self.buf.drain(..at);
        out
    }
}

/// What a [`Tap`] counted.
#[derive(Debug, Default)]
struct TapCounts {
    /// PINGs (not ACKs) the client sent.
    client_pings: AtomicU64,
    /// GOAWAYs the server sent, too_many_pings included.
    goaways: AtomicU64,
    /// GOAWAY(ENHANCE_YOUR_CALM) frames, or ones whose debug data says
    /// too_many_pings.
    too_many_pings: AtomicU64,
    /// Connections relayed.
    connections: AtomicU64,
}

impl TapCounts {
    fn count(&self, f: &Frame, from_client: bool) {
        match f {
            Frame::Ping { ack: false } if from_client => {
                self.client_pings.fetch_add(1, Ordering::Relaxed);
            }
            Frame::GoAway { code, debug } if !from_client => {
                self.goaways.fetch_add(1, Ordering::Relaxed);
                if *code == ENHANCE_YOUR_CALM
                    || says_too_many_pings(&String::from_utf8_lossy(debug))
                {
                    self.too_many_pings.fetch_add(1, Ordering::Relaxed);
                }
            }
            _ => {}
        }
    }
}

struct TapShared {
    upstream: SocketAddr,
    stop: AtomicBool,
    counts: TapCounts,
    /// Both sockets of every relayed connection, to shut down on drop.
    socks: Mutex<Vec<TcpStream>>,
}

/// A TCP relay on 127.0.0.1 in front of one member's client proxy that
/// counts the HTTP/2 frames it forwards (threads of its own, so it does not
/// run on the client's runtime). Dropping it closes every relayed
/// connection.
struct Tap {
    addr: SocketAddr,
    shared: Arc<TapShared>,
    accept: Option<std::thread::JoinHandle<()>>,
}

impl Tap {
    fn start(upstream: SocketAddr) -> std::io::Result<Tap> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(TapShared {
            upstream,
            stop: AtomicBool::new(false),
            counts: TapCounts::default(),
            socks: Mutex::new(Vec::new()),
        });
        let sh = shared.clone();
        let accept = std::thread::Builder::new()
            .name("fobench-tap".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if sh.stop.load(Ordering::Relaxed) {
                        break;
                    }
                    if let Ok(down) = conn {
                        let sh = sh.clone();
                        let _ = std::thread::Builder::new()
                            .name("fobench-tap".into())
                            .spawn(move || relay(sh, down));
                    }
                }
            })?;
        Ok(Tap {
            addr,
            shared,
            accept: Some(accept),
        })
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn counts(&self) -> &TapCounts {
        &self.shared.counts
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        for s in self
            .shared
            .socks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = s.shutdown(Shutdown::Both);
        }
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// Relay one accepted connection: dial the upstream (close at once if it
/// refuses, as the fault proxy does when its member is down), then pump both
/// ways until either side closes.
fn relay(sh: Arc<TapShared>, down: TcpStream) {
    let Ok(up) = TcpStream::connect_timeout(&sh.upstream, Duration::from_secs(2)) else {
        let _ = down.shutdown(Shutdown::Both);
        return;
    };
    let _ = down.set_nodelay(true);
    let _ = up.set_nodelay(true);
    sh.counts.connections.fetch_add(1, Ordering::Relaxed);
    let clones = (
        down.try_clone(),
        up.try_clone(),
        down.try_clone(),
        up.try_clone(),
    );
    let (Ok(d2), Ok(u2), Ok(d3), Ok(u3)) = clones else {
        let _ = down.shutdown(Shutdown::Both);
        let _ = up.shutdown(Shutdown::Both);
        return;
    };
    {
        let mut socks = sh.socks.lock().unwrap_or_else(|p| p.into_inner());
        socks.push(d3);
        socks.push(u3);
    }
    if sh.stop.load(Ordering::Relaxed) {
        let _ = down.shutdown(Shutdown::Both);
        let _ = up.shutdown(Shutdown::Both);
        return;
    }
    let sh2 = sh.clone();
    let upward = std::thread::Builder::new()
        .name("fobench-tap".into())
        .spawn(move || pump(&sh2, d2, u2, true));
    pump(&sh, up, down, false);
    if let Ok(t) = upward {
        let _ = t.join();
    }
}

/// Copy `src` to `dst`, counting frames, until either fails or closes; then
/// shut both down (HTTP/2 has no use for half-closed connections).
fn pump(sh: &TapShared, mut src: TcpStream, mut dst: TcpStream, from_client: bool) {
    let mut scanner = FrameScanner::new(from_client);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for f in scanner.feed(&buf[..n]) {
            sh.counts.count(&f, from_client);
        }
        if dst.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = src.shutdown(Shutdown::Both);
    let _ = dst.shutdown(Shutdown::Both);
}

// --------------------------------------------------------------- scenarios

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

async fn run_once(client: Client, fault: Fault, role: Role, round: usize) -> Result<Run, String> {
    let cluster = Arc::new(
        tokio::task::spawn_blocking(|| Cluster::start(3))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?,
    );
    let mut taps = Vec::new();
    for ep in cluster.client_endpoints() {
        let upstream: SocketAddr = ep.parse().map_err(|e| format!("{ep}: {e}"))?;
        taps.push(Tap::start(upstream).map_err(|e| format!("tap: {e}"))?);
    }
    let urls: Vec<String> = taps.iter().map(Tap::url).collect();
    let driver = client.connect(&urls).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let records = Arc::new(Mutex::new(Vec::new()));
    let pings_errors = Arc::new(AtomicU64::new(0));
    let task = tokio::spawn(workload(
        driver.clone(),
        stop.clone(),
        records.clone(),
        pings_errors.clone(),
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
    let recs = std::mem::take(&mut *records.lock().unwrap_or_else(|p| p.into_inner()));
    let stats = fault_stats(&recs, fault_at, until);
    let sum = |f: fn(&TapCounts) -> &AtomicU64| -> u64 {
        taps.iter()
            .map(|t| f(t.counts()).load(Ordering::Relaxed))
            .sum()
    };
    let run = Run {
        target: desc,
        stats,
        client_pings: sum(|c| &c.client_pings),
        goaways: sum(|c| &c.goaways),
        too_many_pings: sum(|c| &c.too_many_pings),
        too_many_pings_errors: pings_errors.load(Ordering::Relaxed),
    };
    let _ = tokio::task::spawn_blocking(move || {
        drop(taps);
        drop(cluster)
    })
    .await;
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
    scenarios: &[(Fault, Role)],
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
        let (fault, role) = scenarios[si];
        let rounds = clients
            .iter()
            .map(|c| results.get(&(si, *c)).map_or(0, Vec::len))
            .min()
            .unwrap_or(0);
        let ours = results.get(&(si, Client::Etcdv3)).map(|r| gaps(r).0);
        let mut row = format!("| {} | {rounds} |", scenario_name(fault, role));
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
        let (fault, role) = scenarios[si];
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
                scenario_name(fault, role),
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
    for (si, (fault, role)) in scenarios.iter().copied().enumerate() {
        let name = scenario_name(fault, role);
        if only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        for round in 0..rounds {
            // Rotate which client goes first from round to round.
            let mut order = clients.clone();
            let n = order.len().max(1);
            order.rotate_left(round % n);
            for &client in &order {
                match rt.block_on(run_once(client, fault, role, round)) {
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

    fn frame(ty: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut v = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, ty, flags];
        v.extend_from_slice(&stream.to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    fn goaway(code: u32, debug: &[u8]) -> Vec<u8> {
        let mut p = 7u32.to_be_bytes().to_vec();
        p.extend_from_slice(&code.to_be_bytes());
        p.extend_from_slice(debug);
        frame(FRAME_GOAWAY, 0, 0, &p)
    }

    #[test]
    fn scanner_finds_pings_after_the_preface_however_split() {
        let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        bytes.extend(frame(0x4, 0, 0, &[0, 3, 0, 0, 0, 100])); // SETTINGS
        bytes.extend(frame(FRAME_PING, 0, 0, &[1; 8]));
        bytes.extend(frame(0x0, 0, 1, &[FRAME_PING; 40])); // DATA that looks like pings
        bytes.extend(frame(FRAME_PING, FLAG_ACK, 0, &[2; 8]));
        for chunk in [1, 5, 9, 24, 1000] {
            let mut s = FrameScanner::new(true);
            let mut got = Vec::new();
            for c in bytes.chunks(chunk) {
                got.extend(s.feed(c));
            }
            assert_eq!(
                got,
                vec![Frame::Ping { ack: false }, Frame::Ping { ack: true }],
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn too_many_pings_goaway_is_counted_apart() {
        let counts = TapCounts::default();
        let mut s = FrameScanner::new(false);
        let mut bytes = goaway(0, b"");
        bytes.extend(goaway(ENHANCE_YOUR_CALM, b"too_many_pings"));
        bytes.extend(frame(FRAME_PING, 0, 0, &[0; 8])); // a server ping: not the client's
        for f in s.feed(&bytes) {
            counts.count(&f, false);
        }
        assert_eq!(counts.goaways.load(Ordering::Relaxed), 2);
        assert_eq!(counts.too_many_pings.load(Ordering::Relaxed), 1);
        assert_eq!(counts.client_pings.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn error_text_of_h2_goaway_says_too_many_pings() {
        // h2's display of a received GOAWAY carries the debug data.
        assert!(says_too_many_pings(
            "connection error received: detected excessive load generating behavior (b\"too_many_pings\")"
        ));
        assert!(says_too_many_pings(
            "GoAway(b\"\", ENHANCE_YOUR_CALM, Remote)"
        ));
        assert!(!says_too_many_pings(
            "status: Unavailable, message: \"etcdserver: no leader\""
        ));
    }

    #[test]
    fn follower_target_depends_on_round_not_client() {
        assert_eq!(pick_target(Role::Follower, 0, 1, 3), 0);
        assert_eq!(pick_target(Role::Follower, 1, 1, 3), 2);
        assert_eq!(pick_target(Role::Follower, 2, 1, 3), 0);
        assert_eq!(pick_target(Role::Follower, 0, 0, 3), 1);
        assert_eq!(pick_target(Role::Follower, 1, 0, 3), 2);
        assert_eq!(pick_target(Role::Leader, 1, 2, 3), 2);
    }

    #[test]
    fn tap_relays_and_counts_frames() {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let upstream = server.local_addr().unwrap();
        let tap = Tap::start(upstream).unwrap();
        let mut client = TcpStream::connect(tap.addr).unwrap();
        let (mut srv, _) = server.accept().unwrap();
        let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        hello.extend(frame(FRAME_PING, 0, 0, &[1; 8]));
        client.write_all(&hello).unwrap();
        let mut got = vec![0u8; hello.len()];
        srv.read_exact(&mut got).unwrap();
        assert_eq!(got, hello);
        let bye = goaway(ENHANCE_YOUR_CALM, b"too_many_pings");
        srv.write_all(&bye).unwrap();
        let mut got = vec![0u8; bye.len()];
        client.read_exact(&mut got).unwrap();
        assert_eq!(got, bye);
        // The server closes: the tap closes the client side too.
        drop(srv);
        let mut rest = Vec::new();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        assert_eq!(client.read_to_end(&mut rest).unwrap(), 0);
        let c = tap.counts();
        assert_eq!(c.client_pings.load(Ordering::Relaxed), 1);
        assert_eq!(c.too_many_pings.load(Ordering::Relaxed), 1);
        assert_eq!(c.connections.load(Ordering::Relaxed), 1);
    }
}
