//! `endpoint status|health|hashkv [--cluster]` and `defrag [--cluster]`.

use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use etcdv3_tokio::api::{GetOptions, MemberListOptions, StatusResponse};
use serde::Serialize;

use crate::flags::{with_scheme, WriteOut};
use crate::output::{fields_header, humanize_bytes, is_zero, print_json, table, HeaderJson};
use crate::{CliError, Ctx};

/// `endpoint [--cluster] <status|health>`.
#[derive(Args, Debug)]
pub struct EndpointArgs {
    /// Use all endpoints from the cluster member list.
    #[arg(long, global = true)]
    pub cluster: bool,
    #[command(subcommand)]
    pub command: EndpointCommand,
}

/// Endpoint subcommands.
#[derive(Subcommand, Debug)]
pub enum EndpointCommand {
    /// Prints out the status of endpoints specified in `--endpoints` flag.
    Status {
        /// Ignored, as etcdctl ignores extra arguments here.
        #[arg(hide = true, num_args = 0..)]
        extra: Vec<std::ffi::OsString>,
    },
    /// Checks the healthiness of endpoints specified in `--endpoints` flag.
    Health {
        /// Ignored, as etcdctl ignores extra arguments here.
        #[arg(hide = true, num_args = 0..)]
        extra: Vec<std::ffi::OsString>,
    },
    /// Prints the KV history hash for each endpoint in `--endpoints`.
    Hashkv {
        /// Ignored, as etcdctl ignores extra arguments here.
        #[arg(hide = true, num_args = 0..)]
        extra: Vec<std::ffi::OsString>,
        /// Maximum revision to hash (default: latest revision).
        #[arg(long, default_value_t = 0)]
        rev: i64,
    },
}

#[derive(Serialize)]
struct HashKvJson {
    header: HeaderJson,
    #[serde(skip_serializing_if = "is_zero")]
    hash: u32,
    #[serde(skip_serializing_if = "is_zero")]
    compact_revision: i64,
    #[serde(skip_serializing_if = "is_zero")]
    hash_revision: i64,
}

#[derive(Serialize)]
struct EpHashKvJson {
    #[serde(rename = "Endpoint")]
    endpoint: String,
    #[serde(rename = "HashKV")]
    hash_kv: HashKvJson,
}

/// `defrag [--cluster]`: defragment each endpoint's backend.
pub async fn defrag(ctx: &Ctx, cluster: bool) -> Result<(), CliError> {
    let plain = !ctx
        .global
        .endpoint_urls()
        .iter()
        .any(|u| u.starts_with("https://"));
    let mut failed = false;
    for ep in endpoints(ctx, cluster).await? {
        let res = async {
            let client = ctx.connect_to(&[with_scheme(&ep, plain)]).await?;
            Ok::<_, CliError>(client.defragment().await?)
        }
        .await;
        match res {
            Ok(_) => println!("Finished defragmenting etcd member[{ep}]"),
            Err(e) => {
                failed = true;
                eprintln!("Failed to defragment etcd member[{ep}] ({e})");
            }
        }
    }
    if failed {
        return Err(CliError::Other("failed to defragment some members".into()));
    }
    Ok(())
}

/// The endpoints an endpoint command looks at: the flags', or with
/// `--cluster` every member's client URLs.
async fn endpoints(ctx: &Ctx, cluster: bool) -> Result<Vec<String>, CliError> {
    if !cluster {
        return Ok(ctx.global.endpoints.clone());
    }
    let client = ctx.connect().await?;
    let r = client
        .member_list(MemberListOptions::new().with_linearizable())
        .await?;
    let mut eps = Vec::new();
    for m in r.members {
        for u in m.client_ur_ls {
            if !eps.contains(&u) {
                eps.push(u);
            }
        }
    }
    Ok(eps)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusJson {
    header: HeaderJson,
    #[serde(skip_serializing_if = "String::is_empty")]
    version: String,
    #[serde(skip_serializing_if = "is_zero")]
    db_size: i64,
    #[serde(skip_serializing_if = "is_zero")]
    leader: u64,
    #[serde(skip_serializing_if = "is_zero")]
    raft_index: u64,
    #[serde(skip_serializing_if = "is_zero")]
    raft_term: u64,
    #[serde(skip_serializing_if = "is_zero")]
    raft_applied_index: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<String>,
    #[serde(skip_serializing_if = "is_zero")]
    db_size_in_use: i64,
    #[serde(skip_serializing_if = "is_zero")]
    is_learner: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct EpStatusJson {
    endpoint: String,
    status: StatusJson,
}

fn status_row(ep: &str, s: &StatusResponse) -> Vec<String> {
    let id = s.header.as_ref().map(|h| h.member_id).unwrap_or_default();
    vec![
        ep.to_string(),
        format!("{id:x}"),
        s.version.clone(),
        humanize_bytes(s.db_size.max(0) as u64),
        (s.leader == id).to_string(),
        s.is_learner.to_string(),
        s.raft_term.to_string(),
        s.raft_index.to_string(),
        s.raft_applied_index.to_string(),
        s.errors.join(", "),
    ]
}

#[derive(Serialize)]
struct HealthJson {
    endpoint: String,
    health: bool,
    took: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    error: String,
}

/// Go's `time.Duration.String()` for durations under an hour.
pub fn go_duration(d: Duration) -> String {
    fn trim(v: f64, unit: &str) -> String {
        let s = format!("{v:.9}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        format!("{s}{unit}")
    }
    let ns = d.as_nanos();
    if ns == 0 {
        "0s".into()
    } else if ns < 1_000 {
        format!("{ns}ns")
    } else if ns < 1_000_000 {
        trim(ns as f64 / 1e3, "µs")
    } else if ns < 1_000_000_000 {
        trim(ns as f64 / 1e6, "ms")
    } else {
        trim(d.as_secs_f64(), "s")
    }
}

/// Run an endpoint subcommand.
pub async fn endpoint(ctx: &Ctx, a: EndpointArgs) -> Result<(), CliError> {
    let p = ctx.printer;
    let plain = !ctx
        .global
        .endpoint_urls()
        .iter()
        .any(|u| u.starts_with("https://"));
    match a.command {
        EndpointCommand::Status { .. } => {
            p.require(&[
                WriteOut::Simple,
                WriteOut::Json,
                WriteOut::Table,
                WriteOut::Fields,
            ])?;
            let eps = endpoints(ctx, a.cluster).await?;
            let mut ok = Vec::new();
            let mut failed = false;
            for ep in eps {
                let res = async {
                    let client = ctx.connect_to(&[with_scheme(&ep, plain)]).await?;
                    Ok::<_, CliError>(client.status().await?)
                }
                .await;
                match res {
                    Ok(s) => ok.push((ep, s)),
                    Err(e) => {
                        failed = true;
                        eprintln!("Failed to get the status of endpoint {ep} ({e})");
                    }
                }
            }
            match p.format {
                WriteOut::Json => {
                    let list: Vec<EpStatusJson> = ok
                        .iter()
                        .map(|(ep, s)| EpStatusJson {
                            endpoint: ep.clone(),
                            status: StatusJson {
                                header: HeaderJson::of(s.header.as_ref()),
                                version: s.version.clone(),
                                db_size: s.db_size,
                                leader: s.leader,
                                raft_index: s.raft_index,
                                raft_term: s.raft_term,
                                raft_applied_index: s.raft_applied_index,
                                errors: s.errors.clone(),
                                db_size_in_use: s.db_size_in_use,
                                is_learner: s.is_learner,
                            },
                        })
                        .collect();
                    print_json(&list)?;
                }
                WriteOut::Fields => {
                    let mut out = String::new();
                    for (ep, s) in &ok {
                        out.push_str(&fields_header(s.header.as_ref()));
                        out.push_str(&format!(
                            "\"Version\" : {:?}\n\"DBSize\" : {}\n\"Leader\" : {}\n\"IsLearner\" : {}\n\"RaftIndex\" : {}\n\"RaftTerm\" : {}\n\"RaftAppliedIndex\" : {}\n\"Errors\" : [{}]\n\"Endpoint\" : {:?}\n\n",
                            s.version,
                            s.db_size,
                            s.leader,
                            s.is_learner,
                            s.raft_index,
                            s.raft_term,
                            s.raft_applied_index,
                            s.errors.join(" "),
                            ep
                        ));
                    }
                    print!("{out}");
                }
                WriteOut::Table => {
                    let rows: Vec<Vec<String>> =
                        ok.iter().map(|(ep, s)| status_row(ep, s)).collect();
                    print!(
                        "{}",
                        table(
                            &[
                                "ENDPOINT",
                                "ID",
                                "VERSION",
                                "DB SIZE",
                                "IS LEADER",
                                "IS LEARNER",
                                "RAFT TERM",
                                "RAFT INDEX",
                                "RAFT APPLIED INDEX",
                                "ERRORS"
                            ],
                            &rows
                        )
                    );
                }
                _ => {
                    for (ep, s) in &ok {
                        println!("{}", status_row(ep, s).join(", "));
                    }
                }
            }
            if failed {
                return Err(CliError::Other(
                    "failed to get the status of some endpoints".into(),
                ));
            }
            Ok(())
        }
        EndpointCommand::Hashkv { rev, .. } => {
            p.require(&[
                WriteOut::Simple,
                WriteOut::Json,
                WriteOut::Table,
                WriteOut::Fields,
            ])?;
            let mut ok = Vec::new();
            let mut failed = false;
            for ep in endpoints(ctx, a.cluster).await? {
                let res = async {
                    let client = ctx.connect_to(&[with_scheme(&ep, plain)]).await?;
                    Ok::<_, CliError>(client.hash_kv(rev).await?)
                }
                .await;
                match res {
                    Ok(h) => ok.push((ep, h)),
                    Err(e) => {
                        failed = true;
                        eprintln!("Failed to get the hash of endpoint {ep} ({e})");
                    }
                }
            }
            match p.format {
                WriteOut::Json => {
                    let list: Vec<EpHashKvJson> = ok
                        .iter()
                        .map(|(ep, h)| EpHashKvJson {
                            endpoint: ep.clone(),
                            hash_kv: HashKvJson {
                                header: HeaderJson::of(h.header.as_ref()),
                                hash: h.hash,
                                compact_revision: h.compact_revision,
                                hash_revision: h.hash_revision,
                            },
                        })
                        .collect();
                    print_json(&list)?;
                }
                WriteOut::Fields => {
                    for (ep, h) in &ok {
                        print!(
                            "{}\"Endpoint\" : {}\n\"Hash\" : {}\n\n",
                            crate::output::fields_header(h.header.as_ref()),
                            crate::output::go_quote(ep.as_bytes()),
                            h.hash
                        );
                    }
                }
                WriteOut::Table => {
                    let rows: Vec<Vec<String>> = ok
                        .iter()
                        .map(|(ep, h)| vec![ep.clone(), h.hash.to_string()])
                        .collect();
                    print!("{}", table(&["ENDPOINT", "HASH"], &rows));
                }
                _ => {
                    for (ep, h) in &ok {
                        println!("{ep}, {}", h.hash);
                    }
                }
            }
            if failed {
                return Err(CliError::Other(
                    "failed to get the hash of some endpoints".into(),
                ));
            }
            Ok(())
        }
        EndpointCommand::Health { .. } => {
            p.require(&[
                WriteOut::Simple,
                WriteOut::Json,
                WriteOut::Table,
                WriteOut::Fields,
            ])?;
            let eps = endpoints(ctx, a.cluster).await?;
            let mut results = Vec::new();
            for ep in eps {
                let start = Instant::now();
                let res = async {
                    let client = ctx.connect_to(&[with_scheme(&ep, plain)]).await?;
                    match client.get("health", GetOptions::new()).await {
                        Ok(_) => {}
                        // etcdctl counts a permission error as healthy: the
                        // member answered through consensus.
                        Err(e) if e.to_string().contains("permission denied") => {}
                        Err(e) => return Err(CliError::from(e)),
                    }
                    let alarms = client.alarm_list().await?;
                    if !alarms.alarms.is_empty() {
                        let names: Vec<String> = alarms
                            .alarms
                            .iter()
                            .map(|a| crate::cmd::maintenance::alarm_name(a.alarm).to_string())
                            .collect();
                        return Err(CliError::Other(format!(
                            "Active Alarm(s): {}",
                            names.join(" ")
                        )));
                    }
                    Ok(())
                }
                .await;
                results.push(HealthJson {
                    endpoint: ep,
                    health: res.is_ok(),
                    took: go_duration(start.elapsed()),
                    error: res.err().map(|e| e.to_string()).unwrap_or_default(),
                });
            }
            if p.json() {
                print_json(&results)?;
            } else if p.format == WriteOut::Fields {
                for h in &results {
                    print!(
                        "\"Endpoint\" : {}\n\"Health\" : {}\n\"Took\" : {}\n\"Error\" : {}\n\n",
                        crate::output::go_quote(h.endpoint.as_bytes()),
                        h.health,
                        h.took,
                        h.error
                    );
                }
            } else if p.format == WriteOut::Table {
                let rows: Vec<Vec<String>> = results
                    .iter()
                    .map(|h| {
                        vec![
                            h.endpoint.clone(),
                            h.health.to_string(),
                            h.took.clone(),
                            h.error.clone(),
                        ]
                    })
                    .collect();
                print!("{}", table(&["ENDPOINT", "HEALTH", "TOOK", "ERROR"], &rows));
            } else {
                for h in &results {
                    if h.health {
                        println!(
                            "{} is healthy: successfully committed proposal: took = {}",
                            h.endpoint, h.took
                        );
                    } else {
                        eprintln!(
                            "{} is unhealthy: failed to commit proposal: {}",
                            h.endpoint, h.error
                        );
                    }
                }
            }
            if results.iter().any(|h| !h.health) {
                return Err(CliError::Other("unhealthy cluster".into()));
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_like_go() {
        assert_eq!(go_duration(Duration::from_nanos(4_897_864)), "4.897864ms");
        assert_eq!(go_duration(Duration::from_millis(5)), "5ms");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_nanos(1500)), "1.5µs");
    }
}
