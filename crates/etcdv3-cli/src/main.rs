//! `etcdv3ctl`: an etcdctl-compatible command line over the etcdv3 client.
//!
//! ```text
//! etcdv3ctl --endpoints 127.0.0.1:2379 put greeting hello
//! etcdv3ctl get greeting -w json
//! etcdv3ctl get app/ --prefix --keys-only
//! etcdv3ctl member list -w table
//! etcdv3ctl endpoint status --cluster
//! etcdv3ctl bench put --clients 64 --total 20000
//! ```
//!
//! Flags, output (`-w simple|json|table`) and exit codes follow etcdctl 3.5;
//! `docs/cli.md` lists every command and the differences.
#![forbid(unsafe_code)]

mod bench;
mod bolt;
mod cmd;
mod demo;
mod flags;
mod output;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use etcdv3_tokio::{Client, Error};

use crate::flags::GlobalArgs;
use crate::output::Printer;

/// An etcd v3 command line built on the etcdv3 client.
#[derive(Parser, Debug)]
#[command(name = "etcdv3ctl", version, about)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Gets the key or a range of keys.
    Get(cmd::kv::GetArgs),
    /// Puts the given key into the store.
    Put(cmd::kv::PutArgs),
    /// Removes the specified key or range of keys [key, range_end).
    Del(cmd::kv::DelArgs),
    /// Txn processes all the requests in one transaction (read from stdin).
    Txn(cmd::txn::TxnArgs),
    /// Compacts the event history in etcd.
    #[command(alias = "compact")]
    Compaction(cmd::kv::CompactionArgs),
    /// Watches events stream on keys or prefixes.
    Watch(cmd::watch::WatchArgs),
    /// Lease related commands.
    Lease {
        #[command(subcommand)]
        command: cmd::lease::LeaseCommand,
    },
    /// Membership related commands.
    Member {
        #[command(subcommand)]
        command: cmd::cluster::MemberCommand,
    },
    /// Endpoint related commands.
    Endpoint(cmd::endpoint::EndpointArgs),
    /// Defragments the storage of the etcd members.
    Defrag {
        /// Defragment every member of the cluster (from the member list).
        #[arg(long)]
        cluster: bool,
    },
    /// Transfers leadership to another etcd cluster member.
    MoveLeader {
        /// The transferee's member ID (hex).
        transferee: String,
    },
    /// Acquires a named lock (runs a command while holding it).
    Lock(cmd::concurrency::LockArgs),
    /// Observes and participates in leader election.
    Elect(cmd::concurrency::ElectArgs),
    /// Makes a mirror at the destination etcd cluster.
    MakeMirror(cmd::mirror::MirrorArgs),
    /// Alarm related commands.
    Alarm {
        #[command(subcommand)]
        command: cmd::maintenance::AlarmCommand,
    },
    /// Manages etcd node snapshots.
    Snapshot {
        #[command(subcommand)]
        command: cmd::maintenance::SnapshotCommand,
    },
    /// Enable or disable authentication.
    Auth {
        #[command(subcommand)]
        command: cmd::auth::AuthCommand,
    },
    /// User related commands.
    User {
        #[command(subcommand)]
        command: cmd::auth::UserCommand,
    },
    /// Role related commands.
    Role {
        #[command(subcommand)]
        command: cmd::auth::RoleCommand,
    },
    /// Commands for checking properties of the etcd cluster.
    Check {
        #[command(subcommand)]
        command: cmd::check::CheckCommand,
    },
    /// Prints the version of etcdv3ctl.
    Version,
    /// Measure throughput and latency against the cluster (etcdv3 only).
    Bench(bench::BenchArgs),
    /// Start a throwaway 3-member cluster, run a workload with a watch, kill,
    /// pause and cut off the member in use and the leader, and report what
    /// the client did (etcdv3 only).
    Demo(demo::DemoArgs),
}

/// Why a command failed, and the exit code etcdctl gives it.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A flag or option is unusable (exit 1, as etcdctl's flag errors).
    #[error("{0}")]
    Usage(String),
    /// Wrong positional arguments (exit 128, etcdctl's `ExitBadArgs`).
    #[error("{0}")]
    BadArgs(String),
    /// Input that cannot be parsed, e.g. a txn (exit 3, `ExitInvalidInput`).
    #[error("{0}")]
    InvalidInput(String),
    /// An output format the command cannot print (exit 4, `ExitBadFeature`).
    #[error("{0}")]
    Unsupported(String),
    /// No endpoint answered within the dial timeout (exit 1).
    #[error("{0}")]
    Unreachable(String),
    /// The client or the server reported an error (exit 1).
    #[error(transparent)]
    Client(#[from] Error),
    /// A snapshot could not be saved (exit 5, as etcdctl's snapshot save).
    #[error("{0}")]
    Snapshot(String),
    /// A command run under `lock` failed: its exit code is ours.
    #[error("exit status {0}")]
    ChildExit(i32),
    /// Ctrl-C stopped the command (exit 130, as a shell reports SIGINT).
    #[error("interrupted")]
    Interrupted,
    /// Anything else (exit 1).
    #[error("{0}")]
    Other(String),
}

impl CliError {
    /// etcdctl's exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::BadArgs(_) => 128,
            CliError::Unsupported(_) => 4,
            CliError::InvalidInput(_) => 3,
            CliError::Snapshot(_) => 5,
            CliError::ChildExit(code) => u8::try_from(*code).unwrap_or(1),
            CliError::Interrupted => 130,
            _ => 1,
        }
    }
}

/// What every command gets: the flags, the printer, and a way to connect.
pub struct Ctx {
    /// The global flags.
    pub global: GlobalArgs,
    /// The output format.
    pub printer: Printer,
}

impl Ctx {
    /// A client for the given endpoints (the flags' by default), after
    /// checking that at least one endpoint accepts a TCP connection within
    /// the dial timeout.
    pub async fn connect_to(&self, endpoints: &[String]) -> Result<Client, CliError> {
        let opts = self.global.client_options()?;
        if self.global.debug {
            eprintln!("etcdv3ctl: endpoints {endpoints:?}, options {opts:?}");
        }
        let client = etcdv3_tokio::connect(endpoints, opts.clone()).await?;
        reachable(endpoints, self.global.dial_timeout).await?;
        if opts.user.is_none() {
            return Ok(client);
        }
        // etcdctl goes on without a token when the cluster has auth disabled;
        // the client fails every call then, so ask first (AuthStatus needs
        // no token) and drop the credentials when auth is off.
        let mut anonymous = opts.clone();
        anonymous.user = None;
        let probe = etcdv3_tokio::connect(endpoints, anonymous).await?;
        match probe.auth_status().await {
            Ok(status) if !status.enabled => Ok(probe),
            _ => Ok(client),
        }
    }

    /// A client for the flags' endpoints.
    pub async fn connect(&self) -> Result<Client, CliError> {
        self.connect_to(&self.global.endpoint_urls()).await
    }
}

/// Fail with every endpoint and why when none accepts a TCP connection
/// within `dial_timeout`.
async fn reachable(endpoints: &[String], dial_timeout: Duration) -> Result<(), CliError> {
    // Every endpoint is tried at once: the check takes one dial timeout at
    // most, however many endpoints are down.
    let attempts: Vec<_> = endpoints
        .iter()
        .map(|ep| {
            let ep = ep.clone();
            tokio::spawn(async move {
                let addr = host_port(&ep);
                match tokio::time::timeout(dial_timeout, tokio::net::TcpStream::connect(&addr))
                    .await
                {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(format!("{ep}: {e}")),
                    Err(_) => Err(format!("{ep}: no connection within {dial_timeout:?}")),
                }
            })
        })
        .collect();
    let mut why = Vec::new();
    for attempt in attempts {
        match attempt.await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => why.push(e),
            Err(e) => why.push(e.to_string()),
        }
    }
    Err(CliError::Unreachable(format!(
        "no endpoint reachable within the dial timeout ({dial_timeout:?}): {}",
        why.join("; ")
    )))
}

fn host_port(endpoint: &str) -> String {
    let rest = endpoint
        .split_once("://")
        .map(|(_, r)| r)
        .unwrap_or(endpoint);
    rest.split('/').next().unwrap_or(rest).to_string()
}

async fn run(cli: Cli) -> Result<(), CliError> {
    if let Command::Demo(args) = cli.command {
        let endpoints_given = cli.global.endpoints != [flags::DEFAULT_ENDPOINT];
        return demo::run(args, endpoints_given).await;
    }
    let ctx = Ctx {
        printer: Printer {
            format: cli.global.write_out,
            hex: cli.global.hex,
        },
        global: cli.global,
    };
    match cli.command {
        Command::Get(a) => cmd::kv::get(&ctx, a).await,
        Command::Put(a) => cmd::kv::put(&ctx, a).await,
        Command::Del(a) => cmd::kv::del(&ctx, a).await,
        Command::Txn(a) => cmd::txn::txn(&ctx, a).await,
        Command::Compaction(a) => cmd::kv::compaction(&ctx, a).await,
        Command::Watch(a) => cmd::watch::watch(&ctx, a).await,
        Command::Lease { command } => cmd::lease::run(&ctx, command).await,
        Command::Member { command } => cmd::cluster::member(&ctx, command).await,
        Command::Endpoint(a) => cmd::endpoint::endpoint(&ctx, a).await,
        Command::Defrag { cluster } => cmd::endpoint::defrag(&ctx, cluster).await,
        Command::MoveLeader { transferee } => cmd::cluster::move_leader(&ctx, &transferee).await,
        Command::Lock(a) => cmd::concurrency::lock(&ctx, a).await,
        Command::Elect(a) => cmd::concurrency::elect(&ctx, a).await,
        Command::MakeMirror(a) => cmd::mirror::make_mirror(&ctx, a).await,
        Command::Alarm { command } => cmd::maintenance::alarm(&ctx, command).await,
        Command::Snapshot { command } => cmd::maintenance::snapshot(&ctx, command).await,
        Command::Auth { command } => cmd::auth::auth(&ctx, command).await,
        Command::User { command } => cmd::auth::user(&ctx, command).await,
        Command::Role { command } => cmd::auth::role(&ctx, command).await,
        Command::Check { command } => cmd::check::run(&ctx, command).await,
        Command::Version => cmd::version(&ctx),
        Command::Demo(_) => Ok(()),
        Command::Bench(args) => {
            let client = ctx.connect().await?;
            bench::run(&client, &args).await?;
            Ok(())
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // etcdctl exits 1 on flag errors; help and version exit 0, and
            // so does a bare `etcdctl` (it prints the help).
            let bare = e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand;
            return if e.use_stderr() && !bare {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_parses_etcdctl_flags() {
        let cli = Cli::try_parse_from([
            "etcdv3ctl",
            "--endpoints",
            "a:1,b:2",
            "-w",
            "json",
            "--hex",
            "--insecure-transport=false",
            "get",
            "k",
            "--prefix",
        ])
        .unwrap();
        assert_eq!(cli.global.endpoints, vec!["a:1", "b:2"]);
        assert_eq!(cli.global.write_out, flags::WriteOut::Json);
        assert!(cli.global.hex);
        assert!(!cli.global.insecure_transport);
        assert_eq!(
            cli.global.endpoint_urls(),
            vec!["https://a:1", "https://b:2"]
        );
        assert!(matches!(cli.command, Command::Get(ref g) if g.prefix));
        assert!(Cli::try_parse_from(["etcdv3ctl", "--bogus", "get", "k"]).is_err());
        assert!(Cli::try_parse_from(["etcdv3ctl", "-w", "xml", "get", "k"]).is_err());
    }

    #[test]
    fn exit_codes_follow_etcdctl() {
        assert_eq!(CliError::BadArgs(String::new()).exit_code(), 128);
        assert_eq!(CliError::Unsupported(String::new()).exit_code(), 4);
        assert_eq!(CliError::Usage(String::new()).exit_code(), 1);
    }

    #[test]
    fn host_port_strips_scheme_and_path() {
        assert_eq!(host_port("http://a:1"), "a:1");
        assert_eq!(host_port("a:1"), "a:1");
        assert_eq!(host_port("https://a:1/x"), "a:1");
    }
}
