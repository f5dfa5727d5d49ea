//! `etcdv3ctl bench`: throughput, latency percentiles and client CPU per
//! operation for put and range at a given concurrency.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use etcdv3_tokio::api::{GetOptions, PutOptions};
use etcdv3_tokio::{Client, Error};

/// Which operation to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Op {
    /// Put to random keys.
    Put,
    /// Linearizable range read of one key.
    Range,
    /// Serializable range read of one key.
    RangeSerializable,
}

/// Arguments of `etcdv3ctl bench`.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Operation to measure.
    #[arg(value_enum)]
    pub op: Op,
    /// Concurrent requests in flight.
    #[arg(long, default_value_t = 1)]
    pub clients: usize,
    /// Total requests.
    #[arg(long, default_value_t = 10_000)]
    pub total: u64,
    /// Key size in bytes.
    #[arg(long, default_value_t = 8)]
    pub key_size: usize,
    /// Value size in bytes.
    #[arg(long, default_value_t = 256)]
    pub val_size: usize,
    /// Number of distinct keys written.
    #[arg(long, default_value_t = 10_000)]
    pub key_space: u64,
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// Requests that succeeded.
    pub ok: u64,
    /// Requests that failed.
    pub errors: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Latency percentiles (p50, p90, p99, max).
    pub p50: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Slowest request.
    pub max: Duration,
    /// Client CPU time (user + system) of this process during the run.
    pub cpu: Option<Duration>,
}

impl Report {
    /// Requests per second.
    pub fn throughput(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// This process's CPU time (user + system) from /proc, if readable.
pub fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may contain spaces) start after ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the full line: 11 and 12 here.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // The kernel reports clock ticks; USER_HZ is 100 on Linux.
    Some(Duration::from_millis((utime + stime) * 10))
}

fn key(i: u64, size: usize) -> Vec<u8> {
    let mut k = format!("bench/{i:016x}").into_bytes();
    k.resize(size.max(8), b'k');
    k
}

/// Run one measurement.
pub async fn measure(client: &Client, args: &BenchArgs) -> Report {
    let value = vec![b'v'; args.val_size];
    if args.op != Op::Put {
        let _ = client
            .put(key(0, args.key_size), value.clone(), PutOptions::new())
            .await;
    }
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let cpu0 = process_cpu();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.clients.max(1) {
        let client = client.clone();
        let next = next.clone();
        let errors = errors.clone();
        let value = value.clone();
        let args = args.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= args.total {
                    break;
                }
                let t = Instant::now();
                let r = match args.op {
                    Op::Put => client
                        .put(
                            key(i % args.key_space, args.key_size),
                            value.clone(),
                            PutOptions::new(),
                        )
                        .await
                        .map(|_| ()),
                    Op::Range => client
                        .get(key(0, args.key_size), GetOptions::new())
                        .await
                        .map(|_| ()),
                    Op::RangeSerializable => client
                        .get(key(0, args.key_size), GetOptions::new().with_serializable())
                        .await
                        .map(|_| ()),
                };
                match r {
                    Ok(()) => lat.push(t.elapsed()),
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        if let Ok(l) = t.await {
            all.extend(l);
        }
    }
    let elapsed = start.elapsed();
    let cpu = match (cpu0, process_cpu()) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    all.sort_unstable();
    let pct = |p: f64| -> Duration {
        if all.is_empty() {
            return Duration::ZERO;
        }
        let idx = ((all.len() as f64 - 1.0) * p).round() as usize;
        all[idx.min(all.len() - 1)]
    };
    Report {
        ok: all.len() as u64,
        errors: errors.load(Ordering::Relaxed),
        elapsed,
        p50: pct(0.50),
        p90: pct(0.90),
        p99: pct(0.99),
        max: all.last().copied().unwrap_or_default(),
        cpu,
    }
}

/// `etcdv3ctl bench`: run and print.
pub async fn run(client: &Client, args: &BenchArgs) -> Result<(), Error> {
    let r = measure(client, args).await;
    println!(
        "{:?} clients={} ok={} errors={} {:.0} req/s p50={:?} p90={:?} p99={:?} max={:?}",
        args.op,
        args.clients,
        r.ok,
        r.errors,
        r.throughput(),
        r.p50,
        r.p90,
        r.p99,
        r.max
    );
    if let Some(cpu) = r.cpu {
        let per_op = cpu.as_secs_f64() * 1e6 / r.ok.max(1) as f64;
        println!("client CPU {cpu:?} total, {per_op:.1} µs per request");
    }
    Ok(())
}
