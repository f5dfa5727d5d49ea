//! The driver library both bench binaries share: one `Driver` over either
//! client library (etcdv3, and with the `etcd-client` feature the
//! `etcd-client` crate), and the measurements (CPU of named threads and of
//! processes, RSS, percentiles).
//!
//! Nothing here knows about a particular benchmark: the binaries in
//! `src/bin/` decide the workloads and the tables.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::time::Duration;

pub mod overload;
pub mod watch_scale;

/// Which client library drives a workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Lib {
    /// This project's client.
    Etcdv3,
    /// The `etcd-client` crate (tonic).
    #[cfg(feature = "etcd-client")]
    EtcdClient,
}

impl Lib {
    /// The name the tables and the command line use.
    pub fn name(self) -> &'static str {
        match self {
            Lib::Etcdv3 => "etcdv3",
            #[cfg(feature = "etcd-client")]
            Lib::EtcdClient => "etcd-client",
        }
    }

    /// The library named `s` (as [`Lib::name`] spells it), if built in.
    pub fn parse(s: &str) -> Option<Lib> {
        Lib::all().into_iter().find(|l| l.name() == s)
    }

    /// Every library this build can drive, etcdv3 first.
    pub fn all() -> Vec<Lib> {
        vec![
            Lib::Etcdv3,
            #[cfg(feature = "etcd-client")]
            Lib::EtcdClient,
        ]
    }
}

/// How a [`Driver`] connects.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// Per-call timeout (each library's default when `None`).
    pub timeout: Option<Duration>,
    /// HTTP/2 keepalive (interval, timeout) for etcd-client; etcdv3's core
    /// decides its own pings.
    pub keepalive: Option<(Duration, Duration)>,
}

/// Why an operation of a [`Driver`] failed.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// etcdv3's error.
    #[error("{0}")]
    Etcdv3(#[from] etcdv3_client::Error),
    /// etcd-client's error.
    #[cfg(feature = "etcd-client")]
    #[error("{0}")]
    EtcdClient(#[from] etcd_client::Error),
    /// The call succeeded with an answer the workload did not expect.
    #[error("{0}")]
    Unexpected(String),
}

impl From<DriverError> for String {
    fn from(e: DriverError) -> String {
        e.to_string()
    }
}

/// A connected client of either library. Cloning shares the client (both
/// libraries' clients are handles).
#[derive(Clone)]
pub enum Driver {
    /// etcdv3.
    Etcdv3(etcdv3_client::Client),
    /// etcd-client.
    #[cfg(feature = "etcd-client")]
    EtcdClient(Box<etcd_client::Client>),
}

/// A successful read: how many keys and bytes it returned, and the member
/// that answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadAnswer {
    /// Keys returned.
    pub kvs: usize,
    /// Bytes of values returned.
    pub bytes: usize,
    /// Member id of the answering member (0 if the header was missing).
    pub member: u64,
}

impl Driver {
    /// Connect `lib` to `urls`.
    pub async fn connect(
        lib: Lib,
        urls: &[String],
        opts: &ConnectOptions,
    ) -> Result<Driver, DriverError> {
        match lib {
            Lib::Etcdv3 => {
                let mut o = etcdv3_client::ClientOptions::default();
                if let Some(t) = opts.timeout {
                    o = o.with_timeout(t);
                }
                Ok(Driver::Etcdv3(etcdv3_tokio::connect(urls, o).await?))
            }
            #[cfg(feature = "etcd-client")]
            Lib::EtcdClient => {
                let mut o = etcd_client::ConnectOptions::new();
                if let Some(t) = opts.timeout {
                    o = o.with_timeout(t);
                }
                if let Some((interval, timeout)) = opts.keepalive {
                    o = o.with_keep_alive(interval, timeout);
                }
                let c = etcd_client::Client::connect(urls, Some(o)).await?;
                Ok(Driver::EtcdClient(Box::new(c)))
            }
        }
    }

    /// Which library this is.
    pub fn lib(&self) -> Lib {
        match self {
            Driver::Etcdv3(_) => Lib::Etcdv3,
            #[cfg(feature = "etcd-client")]
            Driver::EtcdClient(_) => Lib::EtcdClient,
        }
    }

    /// A put; the member id of the member that answered.
    pub async fn put(
        &mut self,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
    ) -> Result<u64, DriverError> {
        match self {
            Driver::Etcdv3(c) => Ok(c
                .put(key, value, etcdv3_client::api::PutOptions::new())
                .await?
                .header
                .map_or(0, |h| h.member_id)),
            #[cfg(feature = "etcd-client")]
            Driver::EtcdClient(c) => Ok(c
                .put(key.into(), value.into(), None)
                .await?
                .header()
                .map_or(0, |h| h.member_id())),
        }
    }

    /// A single-key range (linearizable unless `serializable`) of a key that
    /// must exist; the member id of the member that answered.
    pub async fn get(
        &mut self,
        key: impl Into<Vec<u8>>,
        serializable: bool,
    ) -> Result<u64, DriverError> {
        let a = self.range(key, false, serializable).await?;
        if a.kvs == 1 {
            Ok(a.member)
        } else {
            Err(DriverError::Unexpected(format!(
                "expected 1 key, got {}",
                a.kvs
            )))
        }
    }

    /// A range of one key, or of every key under a prefix.
    pub async fn range(
        &mut self,
        key: impl Into<Vec<u8>>,
        prefix: bool,
        serializable: bool,
    ) -> Result<ReadAnswer, DriverError> {
        match self {
            Driver::Etcdv3(c) => {
                let mut o = etcdv3_client::api::GetOptions::new();
                if prefix {
                    o = o.with_prefix();
                }
                if serializable {
                    o = o.with_serializable();
                }
                let r = c.get(key, o).await?;
                Ok(ReadAnswer {
                    kvs: r.kvs.len(),
                    bytes: r.kvs.iter().map(|kv| kv.value.len()).sum(),
                    member: r.header.map_or(0, |h| h.member_id),
                })
            }
            #[cfg(feature = "etcd-client")]
            Driver::EtcdClient(c) => {
                let mut o = etcd_client::GetOptions::new();
                if prefix {
                    o = o.with_prefix();
                }
                if serializable {
                    o = o.with_serializable();
                }
                let r = c.get(key.into(), Some(o)).await?;
                Ok(ReadAnswer {
                    kvs: r.kvs().len(),
                    bytes: r.kvs().iter().map(|kv| kv.value().len()).sum(),
                    member: r.header().map_or(0, |h| h.member_id()),
                })
            }
        }
    }

    /// Close the client (etcdv3 closes its connections; etcd-client's close
    /// when its last handle is dropped).
    pub fn close(&self) {
        match self {
            Driver::Etcdv3(c) => c.close(),
            #[cfg(feature = "etcd-client")]
            Driver::EtcdClient(_) => {}
        }
    }
}

// ------------------------------------------------------------- measurements

/// Nearest-rank percentile of sorted samples (`q` in `0..=1`).
pub fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The median of `v` (the upper middle for an even count; 0 when empty).
pub fn median_f64(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// The median of `v` (the lower middle for an even count; 0 when empty).
pub fn median_duration(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or_default()
}

/// CPU time of this process's threads named `thread_name` (e.g. a tokio
/// runtime's workers, named with `Builder::thread_name`), from
/// `/proc/self/task/<tid>/schedstat` (nanoseconds; `stat` ticks as a
/// fallback).
pub fn threads_cpu(thread_name: &str) -> Duration {
    let mut total = Duration::ZERO;
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return total;
    };
    for entry in dir.flatten() {
        let path = entry.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if comm.trim_end() != thread_name {
            continue;
        }
        if let Some(ns) = std::fs::read_to_string(path.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        {
            total += Duration::from_nanos(ns);
        } else if let Some(t) = stat_cpu(&path.join("stat")) {
            total += t;
        }
    }
    total
}

/// utime+stime from a `/proc/.../stat` file.
pub fn stat_cpu(path: &std::path::Path) -> Option<Duration> {
    let s = std::fs::read_to_string(path).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): utime is field 14, stime field 15.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(Duration::from_secs_f64(
        (utime + stime) as f64 / clock_tick(),
    ))
}

fn clock_tick() -> f64 {
    static TICK: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICK.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|t| *t > 0.0)
            .unwrap_or(100.0)
    })
}

/// CPU time (utime+stime) of the processes `pids` (e.g. the etcd members).
pub fn processes_cpu(pids: &[u32]) -> Duration {
    pids.iter()
        .filter_map(|p| stat_cpu(std::path::Path::new(&format!("/proc/{p}/stat"))))
        .sum()
}

/// `VmRSS` of this process, in KiB.
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_is_nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 0.5), Duration::from_millis(50));
        assert_eq!(percentile(&v, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&v, 0.0), Duration::from_millis(1));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }

    #[test]
    fn medians() {
        assert_eq!(median_f64(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median_f64(vec![4.0, 1.0, 2.0, 3.0]), 3.0);
        let d = Duration::from_millis;
        assert_eq!(median_duration(vec![d(4), d(1), d(2), d(3)]), d(2));
    }

    #[test]
    fn libs_round_trip_through_their_names() {
        for l in Lib::all() {
            assert_eq!(Lib::parse(l.name()), Some(l));
        }
        assert_eq!(Lib::parse("nope"), None);
    }

    #[test]
    fn process_cpu_grows_while_this_process_works() {
        let me = [std::process::id()];
        let t0 = processes_cpu(&me);
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while processes_cpu(&me) <= t0 && start.elapsed() < Duration::from_secs(10) {
            for i in 0..1_000_000u64 {
                x = x.wrapping_mul(31).wrapping_add(i);
            }
        }
        assert!(x != 1);
        assert!(processes_cpu(&me) > t0);
        assert!(rss_kib() > 0);
    }
}
