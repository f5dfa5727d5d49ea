//! `lease grant|revoke|timetolive|list|keep-alive`.

use std::io::Write;

use clap::Subcommand;
use etcdv3_tokio::api::LeaseGrantOptions;
use futures_core::Stream;
use serde::Serialize;

use crate::flags::WriteOut;
use crate::output::{fields_header, go_quote, print_json, HeaderJson, HeaderOnly, B64};
use crate::{CliError, Ctx};

/// Lease subcommands.
#[derive(Subcommand, Debug)]
pub enum LeaseCommand {
    /// Creates leases.
    Grant {
        /// TTL in seconds.
        ttl: String,
    },
    /// Revokes leases.
    Revoke {
        /// Lease ID (hex).
        #[arg(value_parser = lease_id)]
        id: i64,
    },
    /// Get lease information.
    Timetolive {
        /// Lease ID (hex).
        #[arg(value_parser = lease_id)]
        id: i64,
        /// Get keys attached to this lease.
        #[arg(long)]
        keys: bool,
    },
    /// List all active leases.
    List {
        /// Ignored, as etcdctl ignores extra arguments here.
        #[arg(hide = true, num_args = 0..)]
        extra: Vec<std::ffi::OsString>,
    },
    /// Keeps leases alive (renew).
    KeepAlive {
        /// Lease ID (hex).
        #[arg(value_parser = lease_id)]
        id: i64,
        /// Resets the keep-alive time to its original value and exits
        /// immediately.
        #[arg(long)]
        once: bool,
    },
}

// clientv3's lease responses embed `*pb.ResponseHeader`: its fields are
// flattened into the object, and their own fields carry Go's names.

#[derive(Serialize)]
struct GrantJson {
    #[serde(flatten)]
    header: HeaderJson,
    #[serde(rename = "ID")]
    id: i64,
    #[serde(rename = "TTL")]
    ttl: i64,
    #[serde(rename = "Error")]
    error: String,
}

#[derive(Serialize)]
struct TimeToLiveJson {
    #[serde(flatten)]
    header: HeaderJson,
    id: i64,
    ttl: i64,
    #[serde(rename = "granted-ttl")]
    granted_ttl: i64,
    keys: Option<Vec<B64>>,
}

#[derive(Serialize)]
struct LeaseIdJson {
    id: i64,
}

#[derive(Serialize)]
struct LeasesJson {
    #[serde(flatten)]
    header: HeaderJson,
    leases: Option<Vec<LeaseIdJson>>,
}

#[derive(Serialize)]
struct KeepAliveJson {
    #[serde(flatten)]
    header: HeaderJson,
    #[serde(rename = "ID")]
    id: i64,
    #[serde(rename = "TTL")]
    ttl: i64,
}

/// A lease id argument: etcdctl's message (exit 128, see `main`).
fn lease_id(s: &str) -> Result<i64, String> {
    crate::flags::lease_id_arg(s).map_err(|e| e.to_string())
}

/// etcdctl's `attached keys([a b])`: the raw key bytes (Go's `%v` of a
/// string slice; `--hex` does not apply).
fn keys_text(keys: &[Vec<u8>]) -> Vec<u8> {
    let mut out = b"[".to_vec();
    out.extend_from_slice(&keys.join(&b' '));
    out.push(b']');
    out
}

/// Run a lease subcommand.
pub async fn run(ctx: &Ctx, command: LeaseCommand) -> Result<(), CliError> {
    let p = ctx.printer;
    let keep_alive_stream = matches!(command, LeaseCommand::KeepAlive { once: false, .. });
    if keep_alive_stream {
        p.require(&[WriteOut::Simple, WriteOut::Json])?;
    } else {
        p.require(&[
            WriteOut::Simple,
            WriteOut::Json,
            WriteOut::Fields,
            WriteOut::Protobuf,
        ])?;
    }
    let fields = p.format == WriteOut::Fields;
    // etcdctl's protobuf printer gets clientv3's lease responses, which
    // embed the header: it writes the header's bytes alone.
    let pb_header = |h: Option<&etcdv3_tokio::api::ResponseHeader>| {
        crate::output::write_pb(&h.copied().unwrap_or_default());
    };
    let protobuf = p.format == WriteOut::Protobuf;
    let ttl = match &command {
        LeaseCommand::Grant { ttl } => Some(
            crate::flags::go_parse_int(ttl)
                .map_err(|e| CliError::BadArgs(format!("bad TTL ({e})")))?,
        ),
        _ => None,
    };
    let client = ctx.connect().await?;
    match command {
        LeaseCommand::Grant { .. } => {
            let r = client
                .lease_grant(ttl.unwrap_or_default(), LeaseGrantOptions::default())
                .await?;
            if p.json() {
                return print_json(&GrantJson {
                    header: HeaderJson::of(r.header.as_ref()),
                    id: r.id,
                    ttl: r.ttl,
                    error: r.error,
                });
            }
            if protobuf {
                pb_header(r.header.as_ref());
                return Ok(());
            }
            if fields {
                print_id_ttl_fields(r.header.as_ref(), r.id, r.ttl);
                return Ok(());
            }
            println!("lease {:016x} granted with TTL({}s)", r.id, r.ttl);
        }
        LeaseCommand::Revoke { id } => {
            let r = client.lease_revoke(id).await?;
            if protobuf {
                // etcdctl revokes, then cannot marshal clientv3's response.
                return Err(CliError::Unsupported(
                    "marshal unsupported for type clientv3.LeaseRevokeResponse".into(),
                ));
            }
            if p.json() {
                return HeaderOnly::print(r.header.as_ref());
            }
            if fields {
                print!("{}", fields_header(r.header.as_ref()));
                return Ok(());
            }
            println!("lease {id:016x} revoked");
        }
        LeaseCommand::Timetolive { id, keys } => {
            let r = client.lease_time_to_live(id, keys).await?;
            if p.json() {
                return print_json(&TimeToLiveJson {
                    header: HeaderJson::of(r.header.as_ref()),
                    id: r.id,
                    ttl: r.ttl,
                    granted_ttl: r.granted_ttl,
                    keys: (!r.keys.is_empty())
                        .then(|| r.keys.iter().map(|k| B64(k.clone())).collect()),
                });
            }
            if protobuf {
                pb_header(r.header.as_ref());
                return Ok(());
            }
            if fields {
                let mut out = fields_header(r.header.as_ref());
                out.push_str(&format!(
                    "\"ID\" : {}\n\"TTL\" : {}\n\"GrantedTTL\" : {}\n",
                    r.id, r.ttl, r.granted_ttl
                ));
                for k in &r.keys {
                    out.push_str(&format!("\"Key\" : {}\n", go_quote(k)));
                }
                print!("{out}");
                return Ok(());
            }
            if r.granted_ttl == 0 && r.ttl == -1 {
                println!("lease {id:016x} already expired");
                return Ok(());
            }
            let mut line = format!(
                "lease {id:016x} granted with TTL({}s), remaining({}s)",
                r.granted_ttl, r.ttl
            )
            .into_bytes();
            if keys {
                line.extend_from_slice(b", attached keys(");
                line.extend_from_slice(&keys_text(&r.keys));
                line.push(b')');
            }
            line.push(b'\n');
            crate::output::write_stdout(&line);
        }
        LeaseCommand::List { .. } => {
            let r = client.lease_leases().await?;
            if p.json() {
                return print_json(&LeasesJson {
                    header: HeaderJson::of(r.header.as_ref()),
                    leases: (!r.leases.is_empty())
                        .then(|| r.leases.iter().map(|l| LeaseIdJson { id: l.id }).collect()),
                });
            }
            if protobuf {
                pb_header(r.header.as_ref());
                return Ok(());
            }
            if fields {
                let mut out = fields_header(r.header.as_ref());
                for l in &r.leases {
                    out.push_str(&format!("\"ID\" : {}\n", l.id));
                }
                print!("{out}");
                return Ok(());
            }
            let mut out = format!("found {} leases\n", r.leases.len());
            for l in &r.leases {
                out.push_str(&format!("{:016x}\n", l.id));
            }
            print!("{out}");
        }
        LeaseCommand::KeepAlive { id, once } => {
            if once {
                let r = match client.keep_alive_once(id).await {
                    Ok(r) => r,
                    // etcdctl: the server's message, ExitBadConnection.
                    Err(etcdv3_tokio::Error::LeaseExpired { .. }) => {
                        return Err(CliError::BadConnection(
                            "etcdserver: requested lease not found".into(),
                        ))
                    }
                    Err(e) => return Err(e.into()),
                };
                if p.json() {
                    return print_json(&KeepAliveJson {
                        header: HeaderJson::of(r.header.as_ref()),
                        id: r.id,
                        ttl: r.ttl,
                    });
                }
                if protobuf {
                    pb_header(r.header.as_ref());
                    return Ok(());
                }
                if fields {
                    print_id_ttl_fields(r.header.as_ref(), r.id, r.ttl);
                    return Ok(());
                }
                println!("lease {id:016x} keepalived with TTL({})", r.ttl);
                return Ok(());
            }
            if p.json() {
                return keep_alive_json(&client, id).await;
            }
            let mut keeper = match client.lease_keep_alive(id).await {
                Ok(keeper) => keeper,
                // etcdctl: the message and exit 0, also when the lease never existed.
                Err(etcdv3_tokio::Error::LeaseExpired { .. }) => {
                    println!("lease {id:016x} expired or revoked.");
                    return Ok(());
                }
                Err(e) => return Err(e.into()),
            };
            loop {
                let next = tokio::select! {
                    next = std::future::poll_fn(|cx| Stream::poll_next(std::pin::Pin::new(&mut keeper), cx)) => next,
                    // etcdctl dies of SIGINT: the shell reports 130.
                    _ = tokio::signal::ctrl_c() => return Err(CliError::Interrupted),
                };
                match next {
                    None => break,
                    Some(Ok(etcdv3_tokio::api::KeepAliveEvent::Renewed { ttl, .. })) => {
                        println!("lease {id:016x} keepalived with TTL({ttl})");
                        let _ = std::io::stdout().flush();
                    }
                    // Not confirmed: the keeper goes on renewing.
                    Some(Ok(_)) => {
                        eprintln!("lease {id:016x} may have expired: no renewal answered before its deadline");
                    }
                    Some(Err(e)) => {
                        println!("lease {id:016x} expired or revoked.");
                        if matches!(e, etcdv3_tokio::Error::LeaseExpired { .. }) {
                            break;
                        }
                        return Err(e.into());
                    }
                }
            }
        }
    }
    Ok(())
}

/// `lease keep-alive -w json`: etcdctl prints every keep-alive response with its header,
/// which the client's [`LeaseKeeper`](etcdv3_tokio::api::LeaseKeeper) does not hand out
/// (it yields TTLs). So renew with single keep-alives at clientv3's cadence (a third of the
/// TTL, at least 500 ms apart) and print each response. A lease that does not exist (also
/// at the start) or cannot be renewed before its TTL runs out ends the output with exit 0
/// and no text, as etcdctl's JSON printer does; a cluster that cannot be reached for the
/// first renewal is an error.
async fn keep_alive_json(client: &etcdv3_tokio::Client, id: i64) -> Result<(), CliError> {
    let mut expires: Option<tokio::time::Instant> = None;
    loop {
        let renewal = tokio::select! {
            r = client.keep_alive_once(id) => r,
            _ = tokio::signal::ctrl_c() => return Err(CliError::Interrupted),
        };
        let wait = match renewal {
            Ok(r) => {
                print_json(&KeepAliveJson {
                    header: HeaderJson::of(r.header.as_ref()),
                    id: r.id,
                    ttl: r.ttl,
                })?;
                let _ = std::io::stdout().flush();
                let ttl = std::time::Duration::from_secs(r.ttl.unsigned_abs());
                expires = Some(tokio::time::Instant::now() + ttl);
                (ttl / 3).max(std::time::Duration::from_millis(500))
            }
            Err(etcdv3_tokio::Error::LeaseExpired { .. }) => return Ok(()),
            Err(e) => match expires {
                None => return Err(e.into()),
                Some(at) if tokio::time::Instant::now() >= at => return Ok(()),
                Some(_) => std::time::Duration::from_millis(500),
            },
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = tokio::signal::ctrl_c() => return Err(CliError::Interrupted),
        }
    }
}

/// `-w fields` of a grant or a keep-alive answer: the header, then `ID`
/// and `TTL`, as etcdctl prints them.
fn print_id_ttl_fields(header: Option<&etcdv3_tokio::api::ResponseHeader>, id: i64, ttl: i64) {
    print!("{}\"ID\" : {id}\n\"TTL\" : {ttl}\n", fields_header(header));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attached_keys_print_like_go_slices() {
        assert_eq!(keys_text(&[b"a".to_vec(), b"b\xff".to_vec()]), b"[a b\xff]");
        assert_eq!(keys_text(&[]), b"[]");
    }

    #[test]
    fn grant_json_flattens_the_header() {
        let j = GrantJson {
            header: HeaderJson::default(),
            id: 5,
            ttl: 10,
            error: String::new(),
        };
        assert_eq!(
            serde_json::to_string(&j).unwrap(),
            r#"{"ID":5,"TTL":10,"Error":""}"#
        );
    }
}
