//! `member list|add|remove|update|promote` and `move-leader`.

use clap::Subcommand;
use etcdv3_tokio::api::{Member, MemberListOptions};
use serde::Serialize;

use crate::flags::WriteOut;
use crate::output::{fields_header, is_zero, print_json, table, HeaderJson};
use crate::{CliError, Ctx};

/// Member subcommands.
#[derive(Subcommand, Debug)]
pub enum MemberCommand {
    /// Lists all members in the cluster.
    List {
        /// Ignored, as etcdctl ignores extra arguments here.
        #[arg(hide = true, num_args = 0..)]
        extra: Vec<std::ffi::OsString>,
    },
    /// Adds a member into the cluster.
    Add {
        /// Name of the new member.
        name: String,
        /// Comma separated peer URLs for the new member.
        #[arg(long, value_delimiter = ',', required = true)]
        peer_urls: Vec<String>,
        /// Indicates if the new member is raft learner.
        #[arg(long)]
        learner: bool,
    },
    /// Removes a member from the cluster.
    Remove {
        /// Member ID (hex).
        #[arg(value_parser = parse_member_id)]
        id: u64,
    },
    /// Updates a member in the cluster.
    Update {
        /// Member ID (hex).
        #[arg(value_parser = parse_member_id)]
        id: u64,
        /// Comma separated peer URLs for the updated member.
        #[arg(long, value_delimiter = ',', required = true)]
        peer_urls: Vec<String>,
    },
    /// Promotes a non-voting member in the cluster.
    Promote {
        /// Member ID (hex).
        #[arg(value_parser = parse_member_id)]
        id: u64,
    },
}

/// Parse a member id as etcdctl does: hexadecimal, etcdctl's message
/// (exit 128, see `main`).
pub fn parse_member_id(s: &str) -> Result<u64, String> {
    crate::flags::member_id_arg(s).map_err(|e| e.to_string())
}

#[derive(Serialize)]
struct MemberJson {
    #[serde(rename = "ID", skip_serializing_if = "is_zero")]
    id: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    name: String,
    #[serde(rename = "peerURLs", skip_serializing_if = "Vec::is_empty")]
    peer_urls: Vec<String>,
    #[serde(rename = "clientURLs", skip_serializing_if = "Vec::is_empty")]
    client_urls: Vec<String>,
    #[serde(rename = "isLearner", skip_serializing_if = "is_zero")]
    is_learner: bool,
}

impl MemberJson {
    fn of(m: &Member) -> MemberJson {
        MemberJson {
            id: m.id,
            name: m.name.clone(),
            peer_urls: m.peer_ur_ls.clone(),
            client_urls: m.client_ur_ls.clone(),
            is_learner: m.is_learner,
        }
    }
}

#[derive(Serialize)]
struct MemberListJson {
    header: HeaderJson,
    #[serde(skip_serializing_if = "Option::is_none")]
    member: Option<MemberJson>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    members: Vec<MemberJson>,
}

impl MemberListJson {
    fn of(
        header: Option<&etcdv3_tokio::api::ResponseHeader>,
        member: Option<&Member>,
        members: &[Member],
    ) -> MemberListJson {
        MemberListJson {
            header: HeaderJson::of(header),
            member: member.map(MemberJson::of),
            members: members.iter().map(MemberJson::of).collect(),
        }
    }
}

/// etcdctl 3.5's `member list -w json --hex`, which it writes by hand: ids
/// as hex strings, `raft_term` always, and `clientURLS` spelt so.
fn member_list_hex_json(r: &etcdv3_tokio::api::MemberListResponse) -> String {
    let h = r.header.unwrap_or_default();
    let json = |v: &[String]| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
    let mut out = format!(
        "{{\"header\":{{\"cluster_id\":\"{:x}\",\"member_id\":\"{:x}\",\"raft_term\":{}",
        h.cluster_id, h.member_id, h.raft_term
    );
    for (i, m) in r.members.iter().enumerate() {
        out.push_str(if i == 0 {
            "},\"members\":[{\"ID\":\""
        } else {
            "},{\"ID\":\""
        });
        out.push_str(&format!(
            "{:x}\",\"name\":\"{}\",\"peerURLs\":{},\"clientURLS\":{}",
            m.id,
            m.name,
            json(&m.peer_ur_ls),
            json(&m.client_ur_ls)
        ));
        if m.is_learner {
            out.push_str(",\"isLearner\":true");
        }
    }
    out.push_str(if r.members.is_empty() { "}}" } else { "}]}" });
    out
}

/// etcdctl's `Member %16x <verb> cluster %16x`.
fn member_changed(id: u64, verb: &str, header: Option<&etcdv3_tokio::api::ResponseHeader>) {
    let cluster = header.map(|h| h.cluster_id).unwrap_or_default();
    println!("Member {id:16x} {verb} cluster {cluster:16x}");
}

/// etcdctl's member row: ID, status, name, peer URLs, client URLs, learner.
fn member_row(m: &Member) -> Vec<String> {
    vec![
        format!("{:x}", m.id),
        if m.name.is_empty() {
            "unstarted"
        } else {
            "started"
        }
        .to_string(),
        m.name.clone(),
        m.peer_ur_ls.join(","),
        m.client_ur_ls.join(","),
        m.is_learner.to_string(),
    ]
}

/// Run a member subcommand.
pub async fn member(ctx: &Ctx, command: MemberCommand) -> Result<(), CliError> {
    let p = ctx.printer;
    let list = matches!(command, MemberCommand::List { .. });
    if list {
        p.require(&[
            WriteOut::Simple,
            WriteOut::Json,
            WriteOut::Table,
            WriteOut::Fields,
            WriteOut::Protobuf,
        ])?;
    } else {
        p.require(&[WriteOut::Simple, WriteOut::Json])?;
    }
    let client = ctx.connect().await?;
    match command {
        MemberCommand::List { .. } => {
            let r = client
                .member_list(MemberListOptions::new().with_linearizable())
                .await?;
            match p.format {
                WriteOut::Protobuf => {
                    crate::output::write_pb(&r);
                    Ok(())
                }
                WriteOut::Json if p.hex => {
                    println!("{}", member_list_hex_json(&r));
                    Ok(())
                }
                WriteOut::Json => {
                    print_json(&MemberListJson::of(r.header.as_ref(), None, &r.members))
                }
                WriteOut::Fields => {
                    let mut out = fields_header(r.header.as_ref());
                    for m in &r.members {
                        out.push_str(&format!("\"ID\" : {}\n\"Name\" : {:?}\n", m.id, m.name));
                        for u in &m.peer_ur_ls {
                            out.push_str(&format!("\"PeerURL\" : {u:?}\n"));
                        }
                        for u in &m.client_ur_ls {
                            out.push_str(&format!("\"ClientURL\" : {u:?}\n"));
                        }
                        out.push_str(&format!("\"IsLearner\" : {}\n\n", m.is_learner));
                    }
                    print!("{out}");
                    Ok(())
                }
                WriteOut::Table => {
                    let rows: Vec<Vec<String>> = r.members.iter().map(member_row).collect();
                    print!(
                        "{}",
                        table(
                            &[
                                "ID",
                                "STATUS",
                                "NAME",
                                "PEER ADDRS",
                                "CLIENT ADDRS",
                                "IS LEARNER"
                            ],
                            &rows
                        )
                    );
                    Ok(())
                }
                _ => {
                    for m in &r.members {
                        println!("{}", member_row(m).join(", "));
                    }
                    Ok(())
                }
            }
        }
        MemberCommand::Add {
            name,
            peer_urls,
            learner,
        } => {
            let r = client.member_add(peer_urls.clone(), learner).await?;
            if p.json() {
                return print_json(&MemberListJson::of(
                    r.header.as_ref(),
                    r.member.as_ref(),
                    &r.members,
                ));
            }
            let id = r.member.as_ref().map(|m| m.id).unwrap_or_default();
            member_changed(id, "added to", r.header.as_ref());
            let mut conf = Vec::new();
            for m in &r.members {
                let n = if m.id == id { &name } else { &m.name };
                for u in &m.peer_ur_ls {
                    conf.push(format!("{n}={u}"));
                }
            }
            println!(
                "\nETCD_NAME=\"{name}\"\nETCD_INITIAL_CLUSTER=\"{}\"\nETCD_INITIAL_ADVERTISE_PEER_URLS=\"{}\"\nETCD_INITIAL_CLUSTER_STATE=\"existing\"",
                conf.join(","),
                peer_urls.join(",")
            );
            Ok(())
        }
        MemberCommand::Remove { id } => {
            let r = client.member_remove(id).await?;
            if p.json() {
                return print_json(&MemberListJson::of(r.header.as_ref(), None, &r.members));
            }
            member_changed(id, "removed from", r.header.as_ref());
            Ok(())
        }
        MemberCommand::Update { id, peer_urls } => {
            let r = client.member_update(id, peer_urls).await?;
            if p.json() {
                return print_json(&MemberListJson::of(r.header.as_ref(), None, &r.members));
            }
            member_changed(id, "updated in", r.header.as_ref());
            Ok(())
        }
        MemberCommand::Promote { id } => {
            let r = client.member_promote(id).await?;
            if p.json() {
                return print_json(&MemberListJson::of(r.header.as_ref(), None, &r.members));
            }
            member_changed(id, "promoted in", r.header.as_ref());
            Ok(())
        }
    }
}

/// `move-leader <transferee-member-id>`.
pub async fn move_leader(ctx: &Ctx, target: &str) -> Result<(), CliError> {
    // etcdctl prints strconv's error alone here.
    let target =
        crate::flags::go_parse_hex(target, "ParseUint", u64::MAX).map_err(CliError::BadArgs)?;
    // As etcdctl: ask each endpoint in turn for its status and send the
    // request through the first that is the leader; none is a usage error.
    let mut found = None;
    for url in ctx.global.endpoint_urls() {
        let client = ctx.connect_to(std::slice::from_ref(&url)).await?;
        let status = client.status().await?;
        let member = status.header.map(|h| h.member_id).unwrap_or_default();
        if member == status.leader {
            found = Some((client, status.leader));
            break;
        }
    }
    let Some((client, leader)) = found else {
        return Err(CliError::BadArgs(format!(
            "no leader endpoint given at [{}]",
            ctx.global.endpoints.join(" ")
        )));
    };
    let r = client.move_leader(target).await?;
    if ctx.printer.json() {
        return crate::output::HeaderOnly::print(r.header.as_ref());
    }
    println!("Leadership transferred from {leader:x} to {target:x}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_rows_match_etcdctl() {
        let m = Member {
            id: 0xbdae9bbc11dd390d,
            name: "h5".into(),
            peer_ur_ls: vec!["http://127.0.0.1:23801".into()],
            client_ur_ls: vec!["http://127.0.0.1:23791".into()],
            is_learner: false,
        };
        assert_eq!(
            member_row(&m).join(", "),
            "bdae9bbc11dd390d, started, h5, http://127.0.0.1:23801, http://127.0.0.1:23791, false"
        );
    }
}
