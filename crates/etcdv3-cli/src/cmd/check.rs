//! `check perf`: etcdctl's write-load check with its load profiles and
//! pass/fail criteria.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use etcdv3_tokio::api::{CompactOptions, DeleteOptions, GetOptions, PutOptions};

use crate::{CliError, Ctx};

/// `check` subcommands.
#[derive(Subcommand, Debug)]
pub enum CheckCommand {
    /// Check the performance of the etcd cluster.
    Perf(PerfArgs),
}

/// `check perf` flags.
#[derive(Args, Debug)]
pub struct PerfArgs {
    /// The performance check's workload model: s, m, l or xl.
    #[arg(long, default_value = "s")]
    pub load: String,
    /// The prefix for writing the performance check's keys.
    #[arg(long, default_value = "/etcdctl-check-perf/")]
    pub prefix: String,
    /// Compact storage with the last revision after the test.
    #[arg(long)]
    pub auto_compact: bool,
    /// Defragment storage after the test.
    #[arg(long)]
    pub auto_defrag: bool,
    /// How long the load runs, in seconds (etcdv3ctl only; etcdctl's is 60).
    #[arg(long, default_value_t = 60, hide = true)]
    pub duration: u64,
}

/// A load profile: writes per second, concurrent clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    /// Target writes per second.
    pub limit: u32,
    /// Concurrent writers.
    pub clients: usize,
}

/// etcdctl's profiles.
pub fn profile(load: &str) -> Option<Profile> {
    let (limit, clients) = match load {
        "s" => (150, 50),
        "m" => (1000, 200),
        "l" => (8000, 500),
        "xl" => (15000, 1000),
        _ => return None,
    };
    Some(Profile { limit, clients })
}

/// What the load measured.
#[derive(Debug, Default)]
pub struct Stats {
    /// Latencies of the writes that succeeded, in seconds.
    pub latencies: Vec<f64>,
    /// Errors by message.
    pub errors: std::collections::BTreeMap<String, u64>,
    /// Wall time of the load, in seconds.
    pub elapsed: f64,
}

impl Stats {
    fn rps(&self) -> f64 {
        if self.elapsed > 0.0 {
            self.latencies.len() as f64 / self.elapsed
        } else {
            0.0
        }
    }

    fn slowest(&self) -> f64 {
        self.latencies.iter().copied().fold(0.0, f64::max)
    }

    fn stddev(&self) -> f64 {
        let n = self.latencies.len() as f64;
        if n == 0.0 {
            return 0.0;
        }
        let mean = self.latencies.iter().sum::<f64>() / n;
        (self
            .latencies
            .iter()
            .map(|l| (l - mean).powi(2))
            .sum::<f64>()
            / n)
            .sqrt()
    }
}

/// etcdctl's verdict lines, and whether the check passed.
pub fn verdict(stats: &Stats, limit: u32) -> (Vec<String>, bool) {
    let mut lines = Vec::new();
    let mut ok = true;
    if !stats.errors.is_empty() {
        lines.push("FAIL: too many errors".to_string());
        for (e, n) in &stats.errors {
            lines.push(format!("FAIL: ERROR({e}) -> {n}"));
        }
        ok = false;
    }
    let rps = stats.rps();
    if rps / f64::from(limit) <= 0.9 {
        lines.push(format!(
            "FAIL: Throughput too low: {} writes/s",
            rps as i64 + 1
        ));
        ok = false;
    } else {
        lines.push(format!("PASS: Throughput is {} writes/s", rps as i64 + 1));
    }
    let slowest = stats.slowest();
    if slowest > 0.5 {
        lines.push(format!("Slowest request took too long: {slowest:.6}s"));
        ok = false;
    } else {
        lines.push(format!("PASS: Slowest request took {slowest:.6}s"));
    }
    let stddev = stats.stddev();
    if stddev > 0.1 {
        lines.push(format!("Stddev too high: {stddev:.6}s"));
        ok = false;
    } else {
        lines.push(format!("PASS: Stddev is {stddev:.6}s"));
    }
    lines.push(if ok { "PASS" } else { "FAIL" }.to_string());
    (lines, ok)
}

/// Run a check subcommand.
pub async fn run(ctx: &Ctx, command: CheckCommand) -> Result<(), CliError> {
    let CheckCommand::Perf(a) = command;
    let Some(prof) = profile(&a.load) else {
        return Err(CliError::Unsupported(format!(
            "unknown load option {}",
            a.load
        )));
    };
    let client = ctx.connect().await?;
    let existing = client
        .get(
            a.prefix.clone(),
            GetOptions::new().with_prefix().with_limit(1),
        )
        .await?;
    if !existing.kvs.is_empty() {
        return Err(CliError::InvalidInput(format!(
            "prefix {:?} has keys. Delete with 'etcdctl del --prefix {}' first",
            a.prefix, a.prefix
        )));
    }
    let duration = Duration::from_secs(a.duration);
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(prof.clients);
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let (res_tx, mut res_rx) = tokio::sync::mpsc::unbounded_channel();
    let value = vec![0u8; 1024];
    let mut workers = Vec::new();
    for _ in 0..prof.clients {
        let (client, rx, res_tx, value) =
            (client.clone(), rx.clone(), res_tx.clone(), value.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let key = match rx.lock().await.recv().await {
                    Some(k) => k,
                    None => return,
                };
                let start = Instant::now();
                let r = client.put(key, value.clone(), PutOptions::new()).await;
                let _ = res_tx.send((r.err().map(|e| e.to_string()), start.elapsed()));
            }
        }));
    }
    drop(res_tx);
    let started = Instant::now();
    let prefix = a.prefix.clone().into_bytes();
    let producer = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(prof.limit)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // xorshift: the keys only need to be spread, as etcdctl's random ones.
        let mut seed = u64::from(started.elapsed().subsec_nanos()) | 1;
        while started.elapsed() < duration {
            tick.tick().await;
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut key = prefix.clone();
            let mut k = [0u8; 256];
            k[..8].copy_from_slice(&(seed >> 1).to_le_bytes());
            key.extend_from_slice(&k);
            if tx.send(key).await.is_err() {
                return;
            }
        }
    });
    let progress = std::io::stderr().is_terminal();
    let mut stats = Stats::default();
    let mut last_shown = 0;
    while let Some((err, took)) = res_rx.recv().await {
        match err {
            None => stats.latencies.push(took.as_secs_f64()),
            Some(e) => *stats.errors.entry(e).or_default() += 1,
        }
        let secs = started.elapsed().as_secs();
        if progress && secs != last_shown {
            last_shown = secs;
            eprint!("\r{secs} / {} s", duration.as_secs());
        }
    }
    stats.elapsed = started.elapsed().as_secs_f64();
    if progress {
        eprintln!();
    }
    let _ = producer.await;
    for w in workers {
        let _ = w.await;
    }
    let deleted = client
        .delete(a.prefix.clone(), DeleteOptions::new().with_prefix())
        .await?;
    if a.auto_compact {
        if let Some(h) = deleted.header {
            client.compact(h.revision, CompactOptions::new()).await?;
        }
    }
    if a.auto_defrag {
        client.defragment().await?;
    }
    let (lines, ok) = verdict(&stats, prof.limit);
    for l in lines {
        println!("{l}");
    }
    if ok {
        Ok(())
    } else {
        Err(CliError::Other("the performance check failed".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_are_etcdctls() {
        assert_eq!(
            profile("s"),
            Some(Profile {
                limit: 150,
                clients: 50
            })
        );
        assert_eq!(
            profile("xl"),
            Some(Profile {
                limit: 15000,
                clients: 1000
            })
        );
        assert_eq!(profile("xxl"), None);
    }

    #[test]
    fn verdict_applies_etcdctls_criteria() {
        let fast = Stats {
            latencies: vec![0.01; 1500],
            elapsed: 10.0,
            ..Default::default()
        };
        let (lines, ok) = verdict(&fast, 150);
        assert!(ok, "{lines:?}");
        assert_eq!(lines[0], "PASS: Throughput is 151 writes/s");
        assert_eq!(lines.last().map(String::as_str), Some("PASS"));
        let slow = Stats {
            latencies: vec![0.01, 0.9],
            elapsed: 10.0,
            ..Default::default()
        };
        let (lines, ok) = verdict(&slow, 150);
        assert!(!ok);
        assert!(lines
            .iter()
            .any(|l| l.starts_with("FAIL: Throughput too low")));
        assert!(lines
            .iter()
            .any(|l| l.starts_with("Slowest request took too long")));
        assert!(lines.iter().any(|l| l.starts_with("Stddev too high")));
    }
}
