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

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use etcdv3_tokio::{CallError, Client, Error, EtcdErrorKind};

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
        /// Ignored, as etcdctl ignores extra arguments here.
        #[arg(hide = true, num_args = 0..)]
        extra: Vec<std::ffi::OsString>,
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
    /// Prints the etcdctl version etcdv3ctl speaks and the API version
    /// (`--version` prints etcdv3ctl's own).
    Version {
        /// Ignored, as etcdctl ignores extra arguments here.
        #[arg(hide = true, num_args = 0..)]
        extra: Vec<std::ffi::OsString>,
    },
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
    /// The client or the server reported an error (exit 1; 2 when the
    /// credentials are refused). Printed as etcdctl prints it: the server's
    /// message, `context deadline exceeded` for a timeout.
    #[error("{}", etcdctl_text(.0))]
    Client(#[from] Error),
    /// A snapshot could not be saved (exit 5, as etcdctl's snapshot save).
    #[error("{0}")]
    Snapshot(String),
    /// A command run under `lock` failed: its exit code is ours.
    #[error("exit status {0}")]
    ChildExit(i32),
    /// The server cancelled a watch (exit 5, etcdctl's `ExitInterrupted`).
    #[error("watch is canceled by the server")]
    WatchCanceled,
    /// The cluster could not be reached or refused the credentials (exit 2,
    /// etcdctl's `ExitBadConnection`).
    #[error("{0}")]
    BadConnection(String),
    /// A command run under `lock` was killed by a signal: etcdctl exits 255
    /// with Go's `signal: interrupt`.
    #[error("signal: {0}")]
    ChildSignal(String),
    /// Ctrl-C stopped the command (exit 130, as a shell reports SIGINT;
    /// nothing is printed).
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
            CliError::Snapshot(_) | CliError::WatchCanceled => 5,
            CliError::BadConnection(_) => 2,
            CliError::ChildExit(code) => u8::try_from(*code).unwrap_or(1),
            CliError::Interrupted => 130,
            CliError::ChildSignal(_) => 255,
            CliError::Client(Error::Call(CallError::Auth { .. })) => 2,
            _ => 1,
        }
    }
}

/// How etcdctl words a client error: the server's own message
/// (`etcdserver: ...`), `context deadline exceeded` for a call that ran out
/// of time; anything else in etcdv3's words (`--debug` prints those always).
fn etcdctl_text(e: &Error) -> String {
    let server_deadline = e.etcd_kind() == Some(&EtcdErrorKind::DeadlineExceeded)
        || e.status()
            .is_some_and(|s| s.message.contains("context deadline exceeded"));
    if e.is_deadline_exceeded() || server_deadline {
        return "context deadline exceeded".into();
    }
    let server_message = |text: &str| text.find("etcdserver: ").map(|at| text[at..].to_string());
    let found = match e {
        Error::Call(CallError::Auth { cause, .. }) => server_message(cause),
        _ => e.status().and_then(|s| server_message(&s.message)),
    };
    found.unwrap_or_else(|| e.to_string())
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
    // etcdctl's text first: retry loops grep for it.
    Err(CliError::Unreachable(format!(
        "context deadline exceeded (no endpoint reachable within the dial timeout ({dial_timeout:?}): {})",
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
    let format = cli.global.format()?;
    let ctx = Ctx {
        printer: Printer {
            format,
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
        Command::Defrag { cluster, .. } => cmd::endpoint::defrag(&ctx, cluster).await,
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
        Command::Version { .. } => cmd::version(),
        Command::Demo(_) => Ok(()),
        Command::Bench(args) => {
            let client = ctx.connect().await?;
            bench::run(&client, &args).await?;
            Ok(())
        }
    }
}

/// Parse the arguments with etcdctl's boolean flag syntax
/// (`--prefix=false`) on every switch.
fn parse_args<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let mut cmd = flags::go_bool_flags(Cli::command());
    let mut matches = cmd.try_get_matches_from_mut(args)?;
    Cli::from_arg_matches_mut(&mut matches).map_err(|e| e.format(&mut cmd))
}

/// etcdctl's messages for positional arguments missing from (or in excess
/// of) a command that takes a fixed number (its `ExitBadArgs`, 128).
const POSITIONAL_ERRORS: &[(&str, &str)] = &[
    ("lease grant", "lease grant command needs TTL argument"),
    ("lease revoke", "lease revoke command needs 1 argument"),
    (
        "lease timetolive",
        "lease timetolive command needs lease ID as argument",
    ),
    (
        "lease keep-alive",
        "lease keep-alive command needs lease ID as argument",
    ),
    ("member add", "member name not provided"),
    ("member remove", "member ID is not provided"),
    ("member update", "member ID is not provided"),
    ("member promote", "member ID is not provided"),
    ("move-leader", "move-leader command needs 1 argument"),
    (
        "lock",
        "lock takes a lock name argument and an optional command to execute",
    ),
    (
        "elect",
        "elect takes one election name argument and an optional proposal argument",
    ),
    ("make-mirror", "make-mirror takes one destination argument"),
    ("snapshot save", "snapshot save expects one argument"),
    (
        "snapshot status",
        "snapshot status requires exactly one argument",
    ),
    (
        "user add",
        "user add command requires user name as its argument",
    ),
    (
        "user delete",
        "user delete command requires user name as its argument",
    ),
    (
        "user get",
        "user get command requires user name as its argument",
    ),
    (
        "user passwd",
        "user passwd command requires user name as its argument",
    ),
    (
        "user grant-role",
        "user grant command requires user name and role name as its argument",
    ),
    (
        "user revoke-role",
        "user revoke-role requires user name and role name as its argument",
    ),
    ("user list", "user list command requires no arguments"),
    (
        "role add",
        "role add command requires role name as its argument",
    ),
    (
        "role delete",
        "role delete command requires role name as its argument",
    ),
    (
        "role get",
        "role get command requires role name as its argument",
    ),
    (
        "role grant-permission",
        "role grant command requires role name, permission type, and key [endkey] as its argument",
    ),
    (
        "role revoke-permission",
        "role revoke-permission command requires role name and key [endkey] as its argument",
    ),
    ("role list", "role list command requires no arguments"),
    (
        "auth enable",
        "auth enable command does not accept any arguments",
    ),
    (
        "auth disable",
        "auth disable command does not accept any arguments",
    ),
    (
        "auth status",
        "auth status command does not accept any arguments",
    ),
    ("alarm list", "alarm list command accepts no arguments"),
    ("alarm disarm", "alarm disarm command accepts no arguments"),
];

/// The subcommand path (`"member add"`) the arguments name.
fn command_path(args: &[std::ffi::OsString]) -> String {
    let mut cmd = Cli::command();
    let mut path = Vec::new();
    for arg in args.iter().skip(1) {
        let Some(arg) = arg.to_str() else { continue };
        let Some(sub) = cmd.find_subcommand(arg).cloned() else {
            continue;
        };
        path.push(sub.get_name().to_string());
        cmd = sub;
    }
    path.join(" ")
}

/// etcdctl's error for what clap refused, where etcdctl has its own: wrong
/// positional arguments and bad ids exit 128 with etcdctl's message.
fn etcdctl_usage_error(e: &clap::Error, args: &[std::ffi::OsString]) -> Option<CliError> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let invalid = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => s.clone(),
        Some(ContextValue::Strings(v)) => v.join(" "),
        _ => String::new(),
    };
    let path = command_path(args);
    let message = |path: &str| {
        POSITIONAL_ERRORS
            .iter()
            .find(|(p, _)| *p == path)
            .map(|(_, m)| CliError::BadArgs(m.to_string()))
    };
    match e.kind() {
        // etcdctl checks the positional arguments first, then the URLs.
        ErrorKind::MissingRequiredArgument
            if !invalid.contains("<NAME>")
                && !invalid.contains("<ID>")
                && invalid.contains("--peer-urls") =>
        {
            Some(CliError::BadArgs("member peer urls not provided".into()))
        }
        ErrorKind::MissingRequiredArgument => message(&path),
        ErrorKind::UnknownArgument if !invalid.starts_with('-') => {
            if path == "member add" {
                return Some(CliError::BadArgs("too many arguments".into()));
            }
            message(&path)
        }
        // The id parsers word their errors as etcdctl does.
        ErrorKind::ValueValidation if invalid.starts_with('<') => {
            use std::error::Error as _;
            e.source().map(|s| CliError::BadArgs(s.to_string()))
        }
        _ => None,
    }
}

/// A flag error as etcdctl shows it: `Error: <why>` on stderr, the help of
/// the command on stdout.
fn print_usage_error(e: &clap::Error, args: &[std::ffi::OsString]) {
    let text = e.to_string();
    let why = text
        .lines()
        .next()
        .unwrap_or_default()
        .trim_start_matches("error: ");
    let mut cmd = flags::go_bool_flags(Cli::command());
    cmd.build();
    for name in command_path(args).split_whitespace() {
        match cmd.find_subcommand(name) {
            Some(sub) => cmd = sub.clone(),
            None => break,
        }
    }
    println!("{}", cmd.render_help());
    eprintln!("Error: {why}");
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = match parse_args(args.clone()) {
        Ok(cli) => cli,
        Err(e) => {
            if let Some(err) = etcdctl_usage_error(&e, &args) {
                eprintln!("Error: {err}");
                return ExitCode::from(err.exit_code());
            }
            // etcdctl exits 1 on flag errors; help and version exit 0, and
            // so does a bare `etcdctl` (it prints the help).
            let bare = e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand;
            if !e.use_stderr() || bare {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            // As etcdctl: `Error: ...` on stderr, the command's usage on
            // stdout.
            print_usage_error(&e, &args);
            return ExitCode::from(1);
        }
    };
    let debug = cli.global.debug;
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let (true, CliError::Client(inner)) = (debug, &e) {
                eprintln!("etcdv3ctl: {inner}");
            }
            if !matches!(e, CliError::Interrupted) {
                eprintln!("Error: {e}");
            }
            ExitCode::from(e.exit_code())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_parses_etcdctl_flags() {
        let cli = parse_args([
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
        assert_eq!(cli.global.format().unwrap(), flags::WriteOut::Json);
        assert!(cli.global.hex);
        assert!(!cli.global.insecure_transport);
        assert_eq!(
            cli.global.endpoint_urls(),
            vec!["https://a:1", "https://b:2"]
        );
        assert!(matches!(cli.command, Command::Get(ref g) if g.prefix));
        assert!(parse_args(["etcdv3ctl", "--bogus", "get", "k"]).is_err());
        let xml = parse_args(["etcdv3ctl", "-w", "xml", "get", "k"]).unwrap();
        assert_eq!(xml.global.format().unwrap_err().exit_code(), 4);
        // pflag's boolean syntax on every switch.
        let cli = parse_args([
            "etcdv3ctl",
            "get",
            "k",
            "--prefix=true",
            "--keys-only=false",
        ])
        .unwrap();
        assert!(matches!(cli.command, Command::Get(ref g) if g.prefix && !g.keys_only));
        let cli = parse_args(["etcdv3ctl", "endpoint", "health", "--cluster=1"]).unwrap();
        assert!(matches!(cli.command, Command::Endpoint(ref e) if e.cluster));
        assert!(parse_args(["etcdv3ctl", "get", "k", "--prefix=yes"]).is_err());
    }

    #[test]
    fn exit_codes_follow_etcdctl() {
        assert_eq!(CliError::BadArgs(String::new()).exit_code(), 128);
        assert_eq!(CliError::Unsupported(String::new()).exit_code(), 4);
        assert_eq!(CliError::Usage(String::new()).exit_code(), 1);
        assert_eq!(CliError::WatchCanceled.exit_code(), 5);
        assert_eq!(CliError::BadConnection(String::new()).exit_code(), 2);
        assert_eq!(CliError::ChildSignal("interrupt".into()).exit_code(), 255);
        assert_eq!(CliError::Interrupted.exit_code(), 130);
    }

    #[test]
    fn host_port_strips_scheme_and_path() {
        assert_eq!(host_port("http://a:1"), "a:1");
        assert_eq!(host_port("a:1"), "a:1");
        assert_eq!(host_port("https://a:1/x"), "a:1");
    }
}
