//! Overload: drive a cluster past saturation and see whether a client
//! amplifies the load (retries) or keeps goodput flat.
//!
//! `concurrency` workers share one client and issue linearizable single-key
//! reads back to back for a fixed time; `slow` more workers loop over a
//! prefix range that returns about 2 MB (slow to serve, large to send).
//! Every call has the same timeout for both libraries. Reported per run:
//! goodput (successful small reads per second), server CPU per successful
//! operation (all members), p99 latency of the successful small reads,
//! client CPU per successful operation, and the errors by kind.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::{percentile, processes_cpu, threads_cpu, Driver, DriverError};

/// Prefix of the keys the slow ranges read.
pub const BIG_PREFIX: &str = "tb/big/";
/// Number of keys under [`BIG_PREFIX`].
pub const BIG_KEYS: usize = 8;
/// Size of each of them: 8 × 256 KiB = 2 MiB per slow range.
pub const BIG_VALUE: usize = 256 * 1024;

/// One overload run's parameters.
#[derive(Debug, Clone)]
pub struct OverloadSpec {
    /// Workers doing small reads.
    pub concurrency: usize,
    /// Workers doing 2 MB prefix ranges.
    pub slow: usize,
    /// How long the run lasts.
    pub duration: Duration,
    /// Keys the small reads cycle over (`key(i)`), all written beforehand.
    pub keys: usize,
    /// Name of the client's runtime threads (client CPU).
    pub runtime_thread: &'static str,
    /// Pids of the members (server CPU).
    pub server_pids: Vec<u32>,
}

/// What one run measured.
#[derive(Debug, Clone, Default)]
pub struct OverloadRun {
    /// Successful small reads per second.
    pub goodput: f64,
    /// Successful small reads.
    pub ok: usize,
    /// Successful slow ranges.
    pub slow_ok: usize,
    /// p99 latency of the successful small reads.
    pub p99: Duration,
    /// Server CPU (all members) per successful operation (small or slow), µs.
    pub server_cpu_us: f64,
    /// Client CPU per successful operation, µs.
    pub client_cpu_us: f64,
    /// Failed operations by kind.
    pub errors: BTreeMap<String, usize>,
}

impl OverloadRun {
    /// Failed operations in all.
    pub fn error_count(&self) -> usize {
        self.errors.values().sum()
    }

    /// "kind×n, ..." or "none".
    pub fn error_summary(&self) -> String {
        if self.errors.is_empty() {
            return "none".into();
        }
        self.errors
            .iter()
            .map(|(k, n)| format!("{k}×{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A short name for the kind of an error (gRPC code, deadline, budget).
pub fn error_kind(e: &DriverError) -> String {
    match e {
        DriverError::Etcdv3(e) => {
            if e.is_deadline_exceeded() {
                "DeadlineExceeded".into()
            } else if matches!(
                e,
                etcdv3_client::Error::Call(
                    etcdv3_client::core::machine::CallError::RetryBudgetSpent { .. }
                )
            ) {
                format!(
                    "RetryBudgetSpent({})",
                    e.code().map_or("-".to_string(), |c| format!("{c:?}"))
                )
            } else if let Some(c) = e.code() {
                format!("{c:?}")
            } else {
                let s = e.to_string();
                format!("Other({})", s.chars().take(40).collect::<String>())
            }
        }
        #[cfg(feature = "etcd-client")]
        DriverError::EtcdClient(e) => match e {
            etcd_client::Error::GRpcStatus(s) => format!("{:?}", s.code()),
            other => {
                let s = format!("{other:?}");
                format!("Other({})", s.split('(').next().unwrap_or("?"))
            }
        },
        DriverError::Unexpected(m) => format!("Unexpected({m})"),
    }
}

/// Write the keys the slow ranges read (2 MB under [`BIG_PREFIX`]).
pub async fn write_big_keys(driver: &Driver) -> Result<(), DriverError> {
    let mut d = driver.clone();
    let value = vec![b'b'; BIG_VALUE];
    for i in 0..BIG_KEYS {
        d.put(format!("{BIG_PREFIX}{i:02}"), value.clone()).await?;
    }
    Ok(())
}

/// Run `spec` with `driver`; `key(i)` names the i-th small key.
pub async fn run(driver: &Driver, spec: &OverloadSpec, key: fn(usize) -> Vec<u8>) -> OverloadRun {
    let stop = Arc::new(AtomicBool::new(false));
    let cpu0 = threads_cpu(spec.runtime_thread);
    let srv0 = processes_cpu(&spec.server_pids);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..spec.concurrency + spec.slow {
        let slow = w >= spec.concurrency;
        let mut d = driver.clone();
        let stop = stop.clone();
        let keys = spec.keys.max(1);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut ok = 0usize;
            let mut errors: BTreeMap<String, usize> = BTreeMap::new();
            let mut i = w;
            while !stop.load(Ordering::Relaxed) {
                let t0 = Instant::now();
                let r = if slow {
                    d.range(BIG_PREFIX, true, false).await.and_then(|a| {
                        if a.bytes >= BIG_KEYS * BIG_VALUE {
                            Ok(a.member)
                        } else {
                            Err(DriverError::Unexpected(format!("{} bytes", a.bytes)))
                        }
                    })
                } else {
                    d.get(key(i % keys), false).await
                };
                match r {
                    Ok(_) => {
                        ok += 1;
                        if !slow {
                            lat.push(t0.elapsed());
                        }
                    }
                    Err(e) => *errors.entry(error_kind(&e)).or_default() += 1,
                }
                i += 7919;
            }
            (slow, lat, ok, errors)
        }));
    }
    tokio::time::sleep(spec.duration).await;
    stop.store(true, Ordering::Relaxed);
    let wall = start.elapsed();
    let mut out = OverloadRun::default();
    let mut lat = Vec::new();
    for t in tasks {
        match t.await {
            Ok((slow, l, ok, errors)) => {
                if slow {
                    out.slow_ok += ok;
                } else {
                    out.ok += ok;
                }
                lat.extend(l);
                for (k, n) in errors {
                    *out.errors.entry(k).or_default() += n;
                }
            }
            Err(e) => *out.errors.entry(format!("panic: {e}")).or_default() += 1,
        }
    }
    // The calls still running at the stop are counted (their work is in the
    // CPU figures), over the whole time until the last one returned.
    let all = start.elapsed();
    let cpu = threads_cpu(spec.runtime_thread).saturating_sub(cpu0);
    let srv = processes_cpu(&spec.server_pids).saturating_sub(srv0);
    lat.sort_unstable();
    let done = (out.ok + out.slow_ok).max(1) as f64;
    out.goodput = out.ok as f64 / all.max(wall).as_secs_f64().max(1e-9);
    out.p99 = percentile(&lat, 0.99);
    out.server_cpu_us = srv.as_secs_f64() * 1e6 / done;
    out.client_cpu_us = cpu.as_secs_f64() * 1e6 / done;
    out
}
