//! `alarm list|disarm` and `snapshot save`.

use std::io::Write;
use std::path::PathBuf;

use clap::Subcommand;
use etcdv3_tokio::api::AlarmResponse;
use serde::Serialize;

use crate::flags::WriteOut;
use crate::output::{is_zero, print_json, HeaderJson};
use crate::{CliError, Ctx};

/// Alarm subcommands.
#[derive(Subcommand, Debug)]
pub enum AlarmCommand {
    /// Lists all alarms.
    List,
    /// Disarms all alarms.
    Disarm,
}

/// Snapshot subcommands.
#[derive(Subcommand, Debug)]
pub enum SnapshotCommand {
    /// Stores an etcd node backend snapshot to a given file.
    Save {
        /// Destination file.
        file: PathBuf,
    },
}

/// The name etcd gives an alarm type.
pub fn alarm_name(alarm: i32) -> &'static str {
    match alarm {
        1 => "NOSPACE",
        2 => "CORRUPT",
        _ => "NONE",
    }
}

#[derive(Serialize)]
struct AlarmMemberJson {
    #[serde(rename = "memberID", skip_serializing_if = "is_zero")]
    member_id: u64,
    #[serde(skip_serializing_if = "is_zero")]
    alarm: i32,
}

#[derive(Serialize)]
struct AlarmJson {
    #[serde(skip_serializing_if = "Option::is_none")]
    header: Option<HeaderJson>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    alarms: Vec<AlarmMemberJson>,
}

fn print_alarms(ctx: &Ctx, r: &AlarmResponse, with_header: bool) -> Result<(), CliError> {
    if ctx.printer.json() {
        return print_json(&AlarmJson {
            header: with_header.then(|| HeaderJson::of(r.header.as_ref())),
            alarms: r
                .alarms
                .iter()
                .map(|a| AlarmMemberJson {
                    member_id: a.member_id,
                    alarm: a.alarm,
                })
                .collect(),
        });
    }
    for a in &r.alarms {
        // Go's `%+v` of the protobuf message.
        println!("memberID:{} alarm:{} ", a.member_id, alarm_name(a.alarm));
    }
    Ok(())
}

/// Run an alarm subcommand.
pub async fn alarm(ctx: &Ctx, command: AlarmCommand) -> Result<(), CliError> {
    ctx.printer.require(&[WriteOut::Simple, WriteOut::Json])?;
    let client = ctx.connect().await?;
    match command {
        AlarmCommand::List => print_alarms(ctx, &client.alarm_list().await?, true),
        // clientv3 builds the disarm response itself, without a header.
        AlarmCommand::Disarm => print_alarms(ctx, &client.alarm_disarm_all().await?, false),
    }
}

/// Run a snapshot subcommand.
pub async fn snapshot(ctx: &Ctx, command: SnapshotCommand) -> Result<(), CliError> {
    ctx.printer.require(&[WriteOut::Simple])?;
    let SnapshotCommand::Save { file } = command;
    let client = ctx.connect().await?;
    let part = file.with_extension("part");
    let io_err =
        |e: std::io::Error| CliError::Other(format!("cannot write {}: {e}", part.display()));
    let mut out = std::io::BufWriter::new(std::fs::File::create(&part).map_err(io_err)?);
    let result = async {
        let mut snap = client.snapshot().await?;
        let mut total = 0usize;
        while let Some(chunk) = snap.next_chunk().await {
            let chunk = chunk?;
            total += chunk.len();
            out.write_all(&chunk).map_err(io_err)?;
        }
        out.flush().map_err(io_err)?;
        Ok::<_, CliError>(total)
    }
    .await;
    match result {
        Ok(total) => {
            std::fs::rename(&part, &file)
                .map_err(|e| CliError::Other(format!("cannot write {}: {e}", file.display())))?;
            println!("Snapshot saved at {} ({total} bytes)", file.display());
            Ok(())
        }
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            Err(e)
        }
    }
}
