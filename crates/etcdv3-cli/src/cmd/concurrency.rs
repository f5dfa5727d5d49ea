//! `lock` and `elect`: etcd's concurrency services.

use clap::Args;
use etcdv3_tokio::api::{
    GetOptions, KeepAliveEvent, LeaseGrantOptions, LeaseKeeper, RangeResponse,
};
use etcdv3_tokio::Client;
use futures_core::Stream;

use super::kv;
use crate::flags::{os_bytes, WriteOut};
use crate::output::print_json;
use crate::{CliError, Ctx};

/// `lock <lockname> [exec-command arg1 arg2 ...]`.
#[derive(Args, Debug)]
pub struct LockArgs {
    /// Name of the lock (bytes, as given).
    pub name: std::ffi::OsString,
    /// Timeout for the session (seconds).
    #[arg(long, default_value_t = 10)]
    pub ttl: i64,
    /// A command to run while holding the lock (with `ETCD_LOCK_KEY` and
    /// `ETCD_LOCK_REV` set); etcdv3ctl exits with its exit code.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// `elect <election-name> [proposal]` or `elect -l <election-name>`.
#[derive(Args, Debug)]
pub struct ElectArgs {
    /// Name of the election (bytes, as given).
    pub name: std::ffi::OsString,
    /// The value to campaign with (bytes, as given).
    pub proposal: Option<std::ffi::OsString>,
    /// Observation mode: print each new leader.
    #[arg(short, long)]
    pub listen: bool,
}

/// Print the key as etcdctl does after acquiring: a get of it.
fn print_range(ctx: &Ctx, resp: &RangeResponse) -> Result<(), CliError> {
    if ctx.printer.json() {
        return print_json(&kv::range_json(resp));
    }
    crate::output::write_stdout(&kv::range_text(&ctx.printer, resp, false));
    Ok(())
}

/// Wait for SIGINT or SIGTERM while keeping `keeper` alive; fails if the
/// lease is lost.
async fn hold(keeper: &mut LeaseKeeper) -> Result<(), CliError> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| CliError::Other(format!("cannot listen for SIGTERM: {e}")))?;
    loop {
        #[cfg(unix)]
        let terminated = term.recv();
        #[cfg(not(unix))]
        let terminated = std::future::pending::<Option<()>>();
        tokio::select! {
            next = std::future::poll_fn(|cx| Stream::poll_next(std::pin::Pin::new(&mut *keeper), cx)) => match next {
                Some(Ok(KeepAliveEvent::Renewed { .. })) => {}
                Some(Ok(_)) => return Err(CliError::Other("the session's lease may have expired: no renewal answered before its deadline".into())),
                Some(Err(e)) => return Err(e.into()),
                None => return Err(CliError::Other("the session's lease ended".into())),
            },
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = terminated => return Ok(()),
        }
    }
}

/// `lock`.
pub async fn lock(ctx: &Ctx, a: LockArgs) -> Result<(), CliError> {
    ctx.printer.require(&[WriteOut::Simple, WriteOut::Json])?;
    let client = ctx.connect().await?;
    let mut guard = client.lock_with_lease(os_bytes(&a.name), a.ttl).await?;
    let key = guard.key().to_vec();
    let resp = client.get(key.clone(), GetOptions::new()).await?;
    let result = if a.command.is_empty() {
        print_range(ctx, &resp)?;
        match guard.keeper_mut() {
            Some(keeper) => hold(keeper).await,
            None => Ok(()),
        }
    } else {
        let rev = resp.header.map(|h| h.revision).unwrap_or_default();
        let program = a.command[0].clone();
        let args = a.command[1..].to_vec();
        let key = crate::flags::bytes_os(key);
        // As etcdctl: SIGINT and SIGTERM do not kill etcdv3ctl while the
        // command runs (Ctrl-C reaches the command itself); when it ends,
        // the lock is released.
        #[cfg(unix)]
        let _signals = {
            use tokio::signal::unix::{signal, SignalKind};
            let listen = |kind| {
                signal(kind).map_err(|e| CliError::Other(format!("cannot listen for signals: {e}")))
            };
            (
                listen(SignalKind::interrupt())?,
                listen(SignalKind::terminate())?,
            )
        };
        let status = tokio::task::spawn_blocking(move || {
            std::process::Command::new(&program)
                .args(&args)
                .env("ETCD_LOCK_KEY", key)
                .env("ETCD_LOCK_REV", rev.to_string())
                .status()
                .map_err(|e| CliError::Other(format!("cannot run {program}: {e}")))
        })
        .await
        .map_err(|e| CliError::Other(e.to_string()))?;
        match status {
            Ok(s) if s.success() => Ok(()),
            Ok(s) => Err(match s.code() {
                Some(code) => CliError::ChildExit(code),
                None => CliError::ChildSignal(signal_name(&s)),
            }),
            Err(e) => Err(e),
        }
    };
    guard.unlock().await?;
    result
}

/// Go's name of the signal that ended a process (`signal: interrupt`).
fn signal_name(status: &std::process::ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        match status.signal() {
            Some(2) => "interrupt".into(),
            Some(15) => "terminated".into(),
            Some(9) => "killed".into(),
            Some(n) => format!("signal {n}"),
            None => status.to_string(),
        }
    }
    #[cfg(not(unix))]
    {
        status.to_string()
    }
}

/// `elect`.
pub async fn elect(ctx: &Ctx, a: ElectArgs) -> Result<(), CliError> {
    ctx.printer.require(&[WriteOut::Simple, WriteOut::Json])?;
    let client = ctx.connect().await?;
    match (a.listen, a.proposal) {
        (true, None) => observe(ctx, &client, &os_bytes(&a.name)).await,
        (false, Some(proposal)) => {
            campaign(ctx, &client, &os_bytes(&a.name), &os_bytes(&proposal)).await
        }
        (true, Some(_)) => Err(CliError::BadArgs("proposal given but -l is set".into())),
        (false, None) => Err(CliError::BadArgs(
            "no proposal argument but -l not set".into(),
        )),
    }
}

async fn observe(ctx: &Ctx, client: &Client, name: &[u8]) -> Result<(), CliError> {
    // Ctrl-C ends the observation quietly (exit 0, as etcdctl), also while
    // the stream is being opened.
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut stream = tokio::select! {
        stream = client.observe(name) => stream?,
        _ = &mut ctrl_c => return Ok(()),
    };
    loop {
        let next = tokio::select! {
            next = std::future::poll_fn(|cx| Stream::poll_next(std::pin::Pin::new(&mut stream), cx)) => next,
            _ = &mut ctrl_c => return Ok(()),
        };
        match next {
            None => return Err(CliError::Other("observe stream ended".into())),
            Some(Err(e)) => return Err(e.into()),
            Some(Ok(leader)) => {
                let resp = RangeResponse {
                    header: leader.header,
                    kvs: leader.kv.into_iter().collect(),
                    count: 1,
                    ..Default::default()
                };
                print_range(ctx, &resp)?;
            }
        }
    }
}

async fn campaign(
    ctx: &Ctx,
    client: &Client,
    name: &[u8],
    proposal: &[u8],
) -> Result<(), CliError> {
    // etcdctl's session: a 60 s lease kept alive while campaigning and leading.
    let lease = client.lease_grant(60, LeaseGrantOptions::new()).await?;
    let mut keeper = client.lease_keep_alive(lease.id).await?;
    let result = async {
        let campaign = client.campaign(name, proposal, lease.id);
        tokio::pin!(campaign);
        let won = tokio::select! {
            won = &mut campaign => won?,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let leader = won.leader.unwrap_or_default();
        let resp = client.get(leader.key.clone(), GetOptions::new()).await?;
        print_range(ctx, &resp)?;
        let held = hold(&mut keeper).await;
        client.resign(leader).await?;
        held
    }
    .await;
    let _ = client.lease_revoke(lease.id).await;
    result
}
