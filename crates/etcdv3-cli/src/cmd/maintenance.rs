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
    /// Gets backend snapshot status of a given file.
    Status {
        /// The snapshot file.
        file: PathBuf,
    },
}

/// What `snapshot status` reports.
#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotStatus {
    /// CRC-32C over every bucket name, key and value.
    pub hash: u32,
    /// The newest revision in the `key` bucket.
    pub revision: i64,
    /// The number of entries in all buckets.
    pub total_key: u64,
    /// The database size (bbolt's high-water mark of pages).
    pub total_size: u64,
}

/// etcd's `snapshot status` of a bbolt file's content.
pub fn snapshot_status(data: &[u8]) -> Result<SnapshotStatus, crate::bolt::BoltError> {
    let db = crate::bolt::Bolt::open(data)?;
    let mut hash = crate::bolt::Crc32c::default();
    let mut status = SnapshotStatus {
        hash: 0,
        revision: 0,
        total_key: 0,
        total_size: db.size(),
    };
    for (name, entries) in db.buckets()? {
        hash.update(name);
        for (k, v) in entries {
            hash.update(k);
            hash.update(v);
            if name == b"key" {
                if let Some(main) = k.get(..8).and_then(|b| b.try_into().ok()) {
                    status.revision = i64::from_be_bytes(main);
                }
            }
            status.total_key += 1;
        }
    }
    status.hash = hash.sum();
    Ok(status)
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
    if matches!(command, AlarmCommand::List) {
        ctx.printer.require(&[
            WriteOut::Simple,
            WriteOut::Json,
            WriteOut::Fields,
            WriteOut::Protobuf,
        ])?;
    } else {
        ctx.printer.require(&[WriteOut::Simple, WriteOut::Json])?;
    }
    let client = ctx.connect().await?;
    match command {
        AlarmCommand::List if ctx.printer.format == WriteOut::Protobuf => {
            crate::output::write_pb(&client.alarm_list().await?);
            Ok(())
        }
        AlarmCommand::List if ctx.printer.format == WriteOut::Fields => {
            let r = client.alarm_list().await?;
            let mut out = crate::output::fields_header(r.header.as_ref());
            for a in &r.alarms {
                out.push_str(&format!(
                    "\"MemberID\" : {}\n\"AlarmType\" : {}\n\n",
                    a.member_id,
                    alarm_name(a.alarm)
                ));
            }
            print!("{out}");
            Ok(())
        }
        AlarmCommand::List => print_alarms(ctx, &client.alarm_list().await?, true),
        // clientv3 builds the disarm response itself, without a header.
        AlarmCommand::Disarm => print_alarms(ctx, &client.alarm_disarm_all().await?, false),
    }
}

/// Checks etcd's trailing SHA-256 over a snapshot stream without holding
/// the snapshot: every byte but the last 32 goes through the hash, the last
/// 32 must equal it.
pub struct SnapshotHash {
    hasher: ring::digest::Context,
    tail: Vec<u8>,
}

impl Default for SnapshotHash {
    fn default() -> Self {
        SnapshotHash {
            hasher: ring::digest::Context::new(&ring::digest::SHA256),
            tail: Vec::with_capacity(64),
        }
    }
}

impl SnapshotHash {
    const LEN: usize = 32;

    /// Feed the next chunk.
    pub fn update(&mut self, chunk: &[u8]) {
        if chunk.len() >= Self::LEN {
            self.hasher.update(&self.tail);
            let (body, tail) = chunk.split_at(chunk.len() - Self::LEN);
            self.hasher.update(body);
            self.tail.clear();
            self.tail.extend_from_slice(tail);
        } else {
            self.tail.extend_from_slice(chunk);
            if self.tail.len() > Self::LEN {
                let extra = self.tail.len() - Self::LEN;
                self.hasher.update(&self.tail[..extra]);
                self.tail.drain(..extra);
            }
        }
    }

    /// Whether the last 32 bytes are the SHA-256 of everything before them.
    pub fn verify(self) -> bool {
        self.tail.len() == Self::LEN && self.hasher.finish().as_ref() == self.tail.as_slice()
    }
}

/// Run a snapshot subcommand.
pub async fn snapshot(ctx: &Ctx, command: SnapshotCommand) -> Result<(), CliError> {
    use std::io::IsTerminal;
    let file = match command {
        SnapshotCommand::Save { file } => file,
        SnapshotCommand::Status { file } => {
            let p = ctx.printer;
            p.require(&[
                WriteOut::Simple,
                WriteOut::Json,
                WriteOut::Table,
                WriteOut::Fields,
            ])?;
            let data = std::fs::read(&file)
                .map_err(|e| CliError::Other(format!("cannot read {} ({e})", file.display())))?;
            let st = snapshot_status(&data).map_err(|e| CliError::Other(e.to_string()))?;
            let row = vec![
                format!("{:x}", st.hash),
                st.revision.to_string(),
                st.total_key.to_string(),
                crate::output::humanize_bytes(st.total_size),
            ];
            match p.format {
                WriteOut::Json => print_json(&st)?,
                WriteOut::Fields => print!(
                    "\"Hash\" : {}\n\"Revision\" : {}\n\"Keys\" : {}\n\"Size\" : {}\n",
                    st.hash, st.revision, st.total_key, st.total_size
                ),
                WriteOut::Table => print!(
                    "{}",
                    crate::output::table(&["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"], &[row])
                ),
                _ => println!("{}", row.join(", ")),
            }
            return Ok(());
        }
    };
    ctx.printer.require(&[WriteOut::Simple, WriteOut::Json])?;
    let client = ctx.connect().await?;
    let mut part = file.clone().into_os_string();
    part.push(".part");
    let part = PathBuf::from(part);
    let fail = |e: String| CliError::Snapshot(e);
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create(true).truncate(true);
    // A snapshot holds every key: readable by its owner only, as etcdctl's.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
    let out = open
        .open(&part)
        .map_err(|e| fail(format!("could not open {} ({e})", part.display())))?;
    let mut out = std::io::BufWriter::new(out);
    let progress = std::io::stderr().is_terminal();
    let result = async {
        let mut snap = client.snapshot().await?;
        let mut hash = SnapshotHash::default();
        let mut total = 0u64;
        while let Some(chunk) = snap.next_chunk().await {
            let chunk = chunk?;
            total += chunk.len() as u64;
            hash.update(&chunk);
            out.write_all(&chunk)
                .map_err(|e| fail(format!("could not write {} ({e})", part.display())))?;
            if progress {
                let all = total + snap.remaining_bytes().unwrap_or(0);
                eprint!("\rfetching snapshot: {total} / {all} bytes");
            }
        }
        if progress {
            eprintln!();
        }
        out.flush()
            .and_then(|()| out.get_ref().sync_all())
            .map_err(|e| fail(format!("could not write {} ({e})", part.display())))?;
        if !hash.verify() {
            return Err(fail(format!(
                "the snapshot's SHA-256 does not match its content ({total} bytes received)"
            )));
        }
        Ok::<_, CliError>(())
    }
    .await;
    if let Err(e) = result {
        drop(out);
        let _ = std::fs::remove_file(&part);
        return Err(e);
    }
    drop(out);
    std::fs::rename(&part, &file)
        .map_err(|e| fail(format!("could not rename {} ({e})", part.display())))?;
    println!("Snapshot saved at {}", file.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot_of(body: &[u8]) -> Vec<u8> {
        let mut data = body.to_vec();
        data.extend_from_slice(ring::digest::digest(&ring::digest::SHA256, body).as_ref());
        data
    }

    #[test]
    fn hash_is_checked_across_any_chunking() {
        let data = snapshot_of(&(0..1000u32).map(|i| i as u8).collect::<Vec<_>>());
        for size in [1, 7, 31, 32, 33, 100, 2000] {
            let mut h = SnapshotHash::default();
            for chunk in data.chunks(size) {
                h.update(chunk);
            }
            assert!(h.verify(), "chunks of {size}");
        }
        let mut bad = data.clone();
        bad[10] ^= 1;
        let mut h = SnapshotHash::default();
        h.update(&bad);
        assert!(!h.verify(), "a flipped byte is caught");
        let mut h = SnapshotHash::default();
        h.update(&data[..data.len() - 1]);
        assert!(!h.verify(), "a truncated snapshot is caught");
    }
}
