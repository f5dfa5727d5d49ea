//! `etcdv3ctl`: an etcdctl-style command line over the etcdv3 client.
//!
//! ```text
//! etcdv3ctl --endpoints http://127.0.0.1:2379 put greeting hello
//! etcdv3ctl get greeting
//! etcdv3ctl get app/ --prefix --keys-only
//! etcdv3ctl member list
//! etcdv3ctl endpoint status
//! etcdv3ctl bench put --clients 64 --total 20000
//! ```
#![forbid(unsafe_code)]

mod bench;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use etcdv3_tokio::api::{
    CompactOptions, DeleteOptions, EventType, GetOptions, LeaseGrantOptions, MemberListOptions,
    PutOptions, WatchEvent, WatchOptions,
};
use etcdv3_tokio::{ClientOptions, Error, Policy};
use futures_core::Stream;

/// An etcd v3 command line built on the etcdv3 client.
#[derive(Parser, Debug)]
#[command(name = "etcdv3ctl", version, about)]
struct Cli {
    /// Comma-separated endpoints (http://host:port, https://host:port or host:port).
    #[arg(
        long,
        env = "ETCDCTL_ENDPOINTS",
        default_value = "http://127.0.0.1:2379",
        value_delimiter = ',',
        global = true
    )]
    endpoints: Vec<String>,
    /// User as NAME:PASSWORD.
    #[arg(long, global = true)]
    user: Option<String>,
    /// Per-request timeout, e.g. 5s or 500ms.
    #[arg(long, default_value = "5s", value_parser = parse_duration, global = true)]
    timeout: Duration,
    /// Balancer policy: adaptive, round-robin or pinned.
    #[arg(long, default_value = "adaptive", value_parser = parse_policy, global = true)]
    policy: Policy,
    /// CA file for https endpoints.
    #[arg(long, global = true)]
    cacert: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Read a key or a range.
    Get {
        key: String,
        /// Every key with this prefix.
        #[arg(long)]
        prefix: bool,
        /// Every key from this one on.
        #[arg(long)]
        from_key: bool,
        /// At most this many keys.
        #[arg(long, default_value_t = 0)]
        limit: i64,
        /// Read at this revision.
        #[arg(long, default_value_t = 0)]
        rev: i64,
        /// Print keys only.
        #[arg(long)]
        keys_only: bool,
        /// Print the count only.
        #[arg(long)]
        count_only: bool,
        /// Print values only.
        #[arg(long)]
        print_value_only: bool,
        /// Serve from the local member without consensus.
        #[arg(long)]
        serializable: bool,
    },
    /// Write a key.
    Put {
        key: String,
        value: String,
        /// Attach to this lease (hex or decimal id).
        #[arg(long, value_parser = parse_id)]
        lease: Option<i64>,
        /// Print the previous value.
        #[arg(long)]
        prev_kv: bool,
    },
    /// Delete a key or a range.
    Del {
        key: String,
        #[arg(long)]
        prefix: bool,
        #[arg(long)]
        prev_kv: bool,
    },
    /// Compact the history up to a revision.
    Compact {
        revision: i64,
        #[arg(long)]
        physical: bool,
    },
    /// Cluster membership.
    Member {
        #[command(subcommand)]
        command: MemberCommand,
    },
    /// Per-endpoint information.
    Endpoint {
        #[command(subcommand)]
        command: EndpointCommand,
    },
    /// Watch a key or prefix and print events until interrupted.
    Watch {
        key: String,
        #[arg(long)]
        prefix: bool,
        /// Start from this revision (history replay).
        #[arg(long, default_value_t = 0)]
        rev: i64,
        /// Print the previous value with each event.
        #[arg(long)]
        prev_kv: bool,
    },
    /// Leases.
    Lease {
        #[command(subcommand)]
        command: LeaseCommand,
    },
    /// Save a snapshot of the backend to a file.
    Snapshot {
        /// Destination file.
        file: std::path::PathBuf,
    },
    /// Measure throughput and latency against the cluster.
    Bench(bench::BenchArgs),
}

#[derive(Subcommand, Debug)]
enum LeaseCommand {
    /// Grant a lease with a TTL in seconds.
    Grant { ttl: i64 },
    /// Revoke a lease (its keys are deleted).
    Revoke {
        #[arg(value_parser = parse_id)]
        id: i64,
    },
    /// Remaining TTL of a lease.
    Timetolive {
        #[arg(value_parser = parse_id)]
        id: i64,
        /// Also list the attached keys.
        #[arg(long)]
        keys: bool,
    },
    /// List leases.
    List,
    /// Keep a lease alive until interrupted.
    KeepAlive {
        #[arg(value_parser = parse_id)]
        id: i64,
    },
}

#[derive(Subcommand, Debug)]
enum MemberCommand {
    /// List the members.
    List,
}

#[derive(Subcommand, Debug)]
enum EndpointCommand {
    /// Status of each endpoint (version, db size, leader, raft term).
    Status,
    /// Whether each endpoint answers a read in time.
    Health,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map(|i| s.split_at(i))
        .unwrap_or((s, "s"));
    let n: f64 = num.parse().map_err(|_| format!("not a duration: {s}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" | "" => n,
        "m" => n * 60.0,
        _ => return Err(format!("unknown unit in {s} (use ms, s or m)")),
    };
    if !(0.0..=86_400.0).contains(&secs) {
        return Err(format!("duration out of range: {s}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_policy(s: &str) -> Result<Policy, String> {
    match s {
        "adaptive" => Ok(Policy::Adaptive),
        "round-robin" | "roundrobin" => Ok(Policy::RoundRobin),
        "pinned" => Ok(Policy::Pinned),
        _ => Err(format!(
            "unknown policy {s}: use adaptive, round-robin or pinned"
        )),
    }
}

fn parse_id(s: &str) -> Result<i64, String> {
    let parsed = match s.strip_prefix("0x") {
        Some(hex) => i64::from_str_radix(hex, 16),
        None => s.parse::<i64>().or_else(|_| i64::from_str_radix(s, 16)),
    };
    parsed.map_err(|_| format!("not a lease id: {s}"))
}

fn options(cli: &Cli) -> Result<ClientOptions, String> {
    let mut opts = ClientOptions::default()
        .with_timeout(cli.timeout)
        .with_policy(cli.policy);
    if let Some(user) = &cli.user {
        let (name, password) = user
            .split_once(':')
            .ok_or_else(|| "--user must be NAME:PASSWORD".to_string())?;
        opts = opts.with_user(name, password);
    }
    if let Some(ca) = &cli.cacert {
        opts = opts.with_tls(etcdv3_tokio::TlsOptions::default().with_ca_file(ca));
    }
    Ok(opts)
}

fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn run(cli: Cli) -> Result<(), Error> {
    let opts = options(&cli).map_err(Error::Config)?;
    let client = etcdv3_tokio::connect(&cli.endpoints, opts.clone()).await?;
    match cli.command {
        Command::Get {
            key,
            prefix,
            from_key,
            limit,
            rev,
            keys_only,
            count_only,
            print_value_only,
            serializable,
        } => {
            let mut o = GetOptions::new().with_limit(limit).with_revision(rev);
            if prefix {
                o = o.with_prefix();
            }
            if from_key {
                o = o.with_from_key();
            }
            if keys_only {
                o = o.with_keys_only();
            }
            if count_only {
                o = o.with_count_only();
            }
            if serializable {
                o = o.with_serializable();
            }
            let resp = client.get(key, o).await?;
            if count_only {
                println!("{}", resp.count);
            }
            for kv in resp.kvs {
                if !print_value_only {
                    println!("{}", show(&kv.key));
                }
                if !keys_only {
                    println!("{}", show(&kv.value));
                }
            }
        }
        Command::Put {
            key,
            value,
            lease,
            prev_kv,
        } => {
            let mut o = PutOptions::new();
            if let Some(l) = lease {
                o = o.with_lease(l);
            }
            if prev_kv {
                o = o.with_prev_kv();
            }
            let resp = client.put(key, value, o).await?;
            println!("OK");
            if let Some(prev) = resp.prev_kv {
                println!("{}\n{}", show(&prev.key), show(&prev.value));
            }
        }
        Command::Del {
            key,
            prefix,
            prev_kv,
        } => {
            let mut o = DeleteOptions::new();
            if prefix {
                o = o.with_prefix();
            }
            if prev_kv {
                o = o.with_prev_kv();
            }
            let resp = client.delete(key, o).await?;
            println!("{}", resp.deleted);
            for kv in resp.prev_kvs {
                println!("{}\n{}", show(&kv.key), show(&kv.value));
            }
        }
        Command::Compact { revision, physical } => {
            let mut o = CompactOptions::new();
            if physical {
                o = o.with_physical();
            }
            client.compact(revision, o).await?;
            println!("compacted revision {revision}");
        }
        Command::Member {
            command: MemberCommand::List,
        } => {
            let resp = client.member_list(MemberListOptions::default()).await?;
            for m in resp.members {
                println!(
                    "{:x}, {}, {}, {}, {}",
                    m.id,
                    if m.is_learner { "learner" } else { "voter" },
                    m.name,
                    m.peer_ur_ls.join(","),
                    m.client_ur_ls.join(",")
                );
            }
        }
        Command::Endpoint { command } => {
            for ep in &cli.endpoints {
                let one = etcdv3_tokio::connect([ep], opts.clone()).await?;
                match command {
                    EndpointCommand::Status => match one.status().await {
                        Ok(s) => println!(
                            "{ep}, {:x}, {}, {} bytes, leader {:x}, raft term {}, raft index {}",
                            s.header.map(|h| h.member_id).unwrap_or_default(),
                            s.version,
                            s.db_size,
                            s.leader,
                            s.raft_term,
                            s.raft_index
                        ),
                        Err(e) => println!("{ep}: {e}"),
                    },
                    EndpointCommand::Health => {
                        let start = std::time::Instant::now();
                        match one
                            .get("health", GetOptions::new().with_serializable())
                            .await
                        {
                            Ok(_) => println!("{ep} is healthy: took {:?}", start.elapsed()),
                            Err(e) => println!("{ep} is unhealthy: {e}"),
                        }
                    }
                }
            }
        }
        Command::Watch {
            key,
            prefix,
            rev,
            prev_kv,
        } => {
            let mut o = WatchOptions::new();
            if prefix {
                o = o.with_prefix();
            }
            if rev > 0 {
                o = o.with_start_revision(rev);
            }
            if prev_kv {
                o = o.with_prev_kv();
            }
            let mut watcher = client.watch(key, o).await?;
            loop {
                let next = tokio::select! {
                    next = std::future::poll_fn(|cx| Stream::poll_next(std::pin::Pin::new(&mut watcher), cx)) => next,
                    _ = tokio::signal::ctrl_c() => None,
                };
                match next {
                    None => break,
                    Some(Err(e)) => return Err(e),
                    Some(Ok(WatchEvent::Events { events, .. })) => {
                        for ev in events {
                            let kind = if ev.r#type() == EventType::Delete {
                                "DELETE"
                            } else {
                                "PUT"
                            };
                            let kv = ev.kv.unwrap_or_default();
                            println!("{kind}\n{}\n{}", show(&kv.key), show(&kv.value));
                        }
                    }
                    Some(Ok(WatchEvent::Compacted { compact_revision })) => {
                        return Err(Error::WatchCancelled {
                            reason: format!("revision compacted at {compact_revision}"),
                        });
                    }
                    Some(Ok(WatchEvent::Cancelled { reason })) => {
                        return Err(Error::WatchCancelled { reason });
                    }
                    Some(Ok(_)) => {}
                }
            }
        }
        Command::Lease { command } => match command {
            LeaseCommand::Grant { ttl } => {
                let r = client
                    .lease_grant(ttl, LeaseGrantOptions::default())
                    .await?;
                println!("lease {:x} granted with TTL({}s)", r.id, r.ttl);
            }
            LeaseCommand::Revoke { id } => {
                client.lease_revoke(id).await?;
                println!("lease {id:x} revoked");
            }
            LeaseCommand::Timetolive { id, keys } => {
                let r = client.lease_time_to_live(id, keys).await?;
                if r.ttl < 0 {
                    println!("lease {id:x} already expired");
                } else {
                    println!(
                        "lease {id:x} granted with TTL({}s), remaining({}s)",
                        r.granted_ttl, r.ttl
                    );
                }
                for k in r.keys {
                    println!("{}", show(&k));
                }
            }
            LeaseCommand::List => {
                let r = client.lease_leases().await?;
                println!("found {} leases", r.leases.len());
                for l in r.leases {
                    println!("{:x}", l.id);
                }
            }
            LeaseCommand::KeepAlive { id } => {
                let mut keeper = client.lease_keep_alive(id).await?;
                loop {
                    let next = tokio::select! {
                        next = std::future::poll_fn(|cx| Stream::poll_next(std::pin::Pin::new(&mut keeper), cx)) => next,
                        _ = tokio::signal::ctrl_c() => None,
                    };
                    match next {
                        None => break,
                        Some(Ok(ttl)) => println!("lease {id:x} keepalived with TTL({ttl})"),
                        Some(Err(e)) => return Err(e),
                    }
                }
            }
        },
        Command::Snapshot { file } => {
            let mut snap = client.snapshot().await?;
            let mut out = Vec::new();
            while let Some(chunk) = snap.next_chunk().await {
                out.extend_from_slice(&chunk?);
            }
            std::fs::write(&file, &out)
                .map_err(|e| Error::Config(format!("cannot write {}: {e}", file.display())))?;
            println!("snapshot saved to {} ({} bytes)", file.display(), out.len());
        }
        Command::Bench(args) => bench::run(&client, &args).await?,
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("5h").is_err());
        assert!(parse_duration("x").is_err());
    }

    #[test]
    fn ids_parse_hex_and_decimal() {
        assert_eq!(parse_id("0x1f"), Ok(31));
        assert_eq!(parse_id("31"), Ok(31));
        assert_eq!(parse_id("7fa"), Ok(0x7fa));
        assert!(parse_id("zz").is_err());
    }

    #[test]
    fn cli_parses_subcommands() {
        let cli = Cli::try_parse_from([
            "etcdv3ctl",
            "--endpoints",
            "a:1,b:2",
            "get",
            "k",
            "--prefix",
        ])
        .unwrap();
        assert_eq!(cli.endpoints, vec!["a:1", "b:2"]);
        assert!(matches!(cli.command, Command::Get { prefix: true, .. }));
        assert!(Cli::try_parse_from(["etcdv3ctl", "--policy", "nope", "get", "k"]).is_err());
    }
}
