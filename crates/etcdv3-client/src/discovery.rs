//! DNS SRV discovery of a cluster's client endpoints, as etcdctl's
//! `--discovery-srv` does it: the SRV records `_etcd-client-ssl._tcp.<domain>`
//! (`https://` endpoints) and `_etcd-client._tcp.<domain>` (`http://`), with
//! `-<name>` after `etcd-client[-ssl]` for a service name
//! ([`SrvDiscovery::with_service_name`]).
//!
//! The query is a plain DNS question over UDP to the nameservers of
//! `/etc/resolv.conf` (or those given, [`SrvDiscovery::with_nameserver`]),
//! sent through the runtime's [`Runtime::udp_exchange`] (`etcdv3-tokio` and
//! `etcdv3-async-std` provide it); the message encoding and decoding here has
//! no IO of its own. [`ClientOptions::with_discovery_srv`] resolves at
//! [`Client::connect`] and again before every auto-sync, where the endpoints
//! found become the sync's fallback seeds.
//!
//! [`ClientOptions::with_discovery_srv`]: crate::ClientOptions::with_discovery_srv
//! [`Client::connect`]: crate::Client::connect

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use etcdv3_core::endpoints::srv::SRV_QUERY_TIMEOUT;

use crate::error::{Error, Result};
use crate::options::SrvDiscovery;
use crate::runtime::Runtime;

/// The SRV service etcd clients are discovered under.
/// DNS record type SRV and class IN.
const TYPE_SRV: u16 = 33;
const CLASS_IN: u16 = 1;
/// Where `/etc/resolv.conf` names no nameserver: the local one (Go's and
/// glibc's default).
const DEFAULT_NAMESERVER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 53);

/// What a discovery found.
///
/// ```
/// let found = etcdv3_client::Discovered::default();
/// assert!(found.endpoints.is_empty() && found.ignored_insecure.is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Discovered {
    /// The endpoints, `https://` ones first, each record's `target:port`
    /// (without the target's final dot, which etcdctl keeps: endpoints do
    /// not take one).
    pub endpoints: Vec<String>,
    /// `http://` endpoints found and dropped because
    /// [`SrvDiscovery::insecure`] is off.
    pub ignored_insecure: Vec<String>,
}

/// One SRV record.
///
/// ```
/// let r = etcdv3_client::SrvRecord { priority: 0, weight: 1, port: 2379, target: "m0.example.com.".into() };
/// assert_eq!(r.target.trim_end_matches('.'), "m0.example.com");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvRecord {
    /// Lower is preferred.
    pub priority: u16,
    /// Relative weight among records of one priority.
    pub weight: u16,
    /// The port.
    pub port: u16,
    /// The host name, with its final dot.
    pub target: String,
}

/// Finds the endpoints `discovery` describes, through `runtime`'s UDP.
/// Fails (`Error::Config`, etcdctl's `dns lookup errors: ...` text) only
/// when neither SRV name could be looked up; a name that has no records
/// contributes nothing.
///
/// ```no_run
/// use etcdv3_client::{discover_srv, Runtime, SrvDiscovery};
/// # async fn demo(runtime: &dyn Runtime) -> etcdv3_client::Result<()> {
/// let found = discover_srv(runtime, &SrvDiscovery::new("example.com")).await?;
/// println!("{:?}", found.endpoints);
/// # Ok(()) }
/// ```
pub async fn discover_srv(runtime: &dyn Runtime, discovery: &SrvDiscovery) -> Result<Discovered> {
    let servers = if discovery.nameservers.is_empty() {
        let conf = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let servers = resolv_conf_nameservers(&conf);
        if servers.is_empty() {
            vec![DEFAULT_NAMESERVER]
        } else {
            servers
        }
    } else {
        discovery.nameservers.clone()
    };
    let mut found = Discovered::default();
    let mut errors = Vec::new();
    for (name, scheme) in discovery.srv_names() {
        match lookup_srv(runtime, &servers, &name).await {
            Ok(records) => {
                for r in records {
                    let host = r.target.trim_end_matches('.');
                    let url = format!("{scheme}://{host}:{}", r.port);
                    if scheme == "http" && !discovery.insecure {
                        found.ignored_insecure.push(url);
                    } else {
                        found.endpoints.push(url);
                    }
                }
            }
            Err(e) => errors.push(e),
        }
    }
    if errors.len() == 2 {
        return Err(Error::Config(format!(
            "dns lookup errors: {}",
            errors.join(" and ")
        )));
    }
    Ok(found)
}

/// The SRV records of `name`, by priority (then heavier weight first): the
/// first nameserver that answers decides. The error in Go's words
/// (`lookup <name> on <server>: no such host`).
async fn lookup_srv(
    runtime: &dyn Runtime,
    servers: &[SocketAddr],
    name: &str,
) -> std::result::Result<Vec<SrvRecord>, String> {
    let mut last = format!("lookup {name}: no nameserver");
    for (i, server) in servers.iter().enumerate() {
        let id = (std::process::id() as u16) ^ (name.len() as u16) ^ (i as u16).rotate_left(8);
        let query = encode_query(id, name).map_err(|e| format!("lookup {name}: {e}"))?;
        let deadline = runtime.now() + SRV_QUERY_TIMEOUT;
        let exchange = runtime.udp_exchange(*server, query);
        let answer = futures_util::future::select(exchange, runtime.sleep_until(deadline)).await;
        let bytes = match answer {
            futures_util::future::Either::Left((Ok(bytes), _)) => bytes,
            futures_util::future::Either::Left((Err(e), _)) => {
                last = format!("lookup {name} on {server}: {e}");
                continue;
            }
            futures_util::future::Either::Right(_) => {
                last = format!("lookup {name} on {server}: i/o timeout");
                continue;
            }
        };
        return match parse_srv_response(id, &bytes) {
            Ok(mut records) if !records.is_empty() => {
                records.sort_by_key(|r| (r.priority, std::cmp::Reverse(r.weight)));
                Ok(records)
            }
            Ok(_) | Err(DnsError::NoSuchHost) => {
                Err(format!("lookup {name} on {server}: no such host"))
            }
            Err(DnsError::Malformed(what)) => Err(format!(
                "lookup {name} on {server}: cannot unmarshal DNS message ({what})"
            )),
            Err(DnsError::Server(rcode)) => Err(format!(
                "lookup {name} on {server}: server misbehaving (rcode {rcode})"
            )),
        };
    }
    Err(last)
}

/// The `nameserver` lines of a resolv.conf, port 53.
pub(crate) fn resolv_conf_nameservers(conf: &str) -> Vec<SocketAddr> {
    conf.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some("nameserver"))
                .then(|| words.next())
                .flatten()
                .and_then(|ip| ip.parse::<IpAddr>().ok())
                .map(|ip| SocketAddr::new(ip, 53))
        })
        .collect()
}

/// Why a DNS answer gave no records.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum DnsError {
    /// NXDOMAIN.
    NoSuchHost,
    /// Another error code.
    Server(u8),
    /// Not a DNS answer to the question.
    Malformed(&'static str),
}

/// A standard query (recursion desired) for the SRV records of `name`.
pub(crate) fn encode_query(id: u16, name: &str) -> std::result::Result<Vec<u8>, String> {
    let mut m = Vec::with_capacity(name.len() + 18);
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!("invalid domain name {name:?}"));
        }
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.push(0);
    m.extend_from_slice(&TYPE_SRV.to_be_bytes());
    m.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(m)
}

/// Reads a (possibly compressed) name at `at`; the name with its final dot
/// and where the name ends in `msg`.
fn read_name(msg: &[u8], mut at: usize) -> std::result::Result<(String, usize), DnsError> {
    let mut name = String::new();
    let mut end = None;
    for _ in 0..128 {
        let len = *msg.get(at).ok_or(DnsError::Malformed("name"))? as usize;
        if len == 0 {
            if name.is_empty() {
                name.push('.');
            }
            return Ok((name, end.unwrap_or(at + 1)));
        }
        if len & 0xc0 == 0xc0 {
            let lo = *msg.get(at + 1).ok_or(DnsError::Malformed("pointer"))? as usize;
            end.get_or_insert(at + 2);
            at = ((len & 0x3f) << 8) | lo;
            continue;
        }
        let label = msg
            .get(at + 1..at + 1 + len)
            .ok_or(DnsError::Malformed("label"))?;
        name.push_str(&String::from_utf8_lossy(label));
        name.push('.');
        at += 1 + len;
    }
    Err(DnsError::Malformed("name loop"))
}

fn u16_at(msg: &[u8], at: usize) -> std::result::Result<u16, DnsError> {
    msg.get(at..at + 2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .ok_or(DnsError::Malformed("truncated"))
}

/// The SRV records of an answer to query `id`.
pub(crate) fn parse_srv_response(
    id: u16,
    msg: &[u8],
) -> std::result::Result<Vec<SrvRecord>, DnsError> {
    if msg.len() < 12 || u16_at(msg, 0)? != id || msg[2] & 0x80 == 0 {
        return Err(DnsError::Malformed("not an answer to the query"));
    }
    match msg[3] & 0x0f {
        0 => {}
        3 => return Err(DnsError::NoSuchHost),
        rcode => return Err(DnsError::Server(rcode)),
    }
    let questions = u16_at(msg, 4)?;
    let answers = u16_at(msg, 6)?;
    let mut at = 12;
    for _ in 0..questions {
        at = read_name(msg, at)?.1 + 4;
    }
    let mut out = Vec::new();
    for _ in 0..answers {
        let (_, end) = read_name(msg, at)?;
        let ty = u16_at(msg, end)?;
        let rdlen = u16_at(msg, end + 8)? as usize;
        let rdata = end + 10;
        if msg.len() < rdata + rdlen {
            return Err(DnsError::Malformed("truncated record"));
        }
        if ty == TYPE_SRV {
            out.push(SrvRecord {
                priority: u16_at(msg, rdata)?,
                weight: u16_at(msg, rdata + 2)?,
                port: u16_at(msg, rdata + 4)?,
                target: read_name(msg, rdata + 6)?.0,
            });
        }
        at = rdata + rdlen;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An answer to `query` with `records` (target names compressed against
    /// the question where they can be, as servers do).
    fn answer(query: &[u8], rcode: u8, records: &[(u16, u16, u16, &str)]) -> Vec<u8> {
        let mut m = query.to_vec();
        m[2] |= 0x84;
        m[3] = 0x80 | rcode;
        m[6..8].copy_from_slice(&(records.len() as u16).to_be_bytes());
        for (prio, weight, port, target) in records {
            m.extend_from_slice(&[0xc0, 12]);
            m.extend_from_slice(&TYPE_SRV.to_be_bytes());
            m.extend_from_slice(&CLASS_IN.to_be_bytes());
            m.extend_from_slice(&60u32.to_be_bytes());
            let mut rdata = Vec::new();
            for v in [prio, weight, port] {
                rdata.extend_from_slice(&v.to_be_bytes());
            }
            for label in target.trim_end_matches('.').split('.') {
                rdata.push(label.len() as u8);
                rdata.extend_from_slice(label.as_bytes());
            }
            rdata.push(0);
            m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            m.extend_from_slice(&rdata);
        }
        m
    }

    #[test]
    fn query_and_answer_round_trip() {
        let q = encode_query(7, "_etcd-client._tcp.example.com").unwrap();
        assert_eq!(&q[..4], &[0, 7, 1, 0]);
        let (name, end) = read_name(&q, 12).unwrap();
        assert_eq!(name, "_etcd-client._tcp.example.com.");
        assert_eq!(u16_at(&q, end).unwrap(), TYPE_SRV);
        let a = answer(
            &q,
            0,
            &[(10, 5, 2379, "m0.example.com"), (0, 1, 2380, "m1.x.")],
        );
        let records = parse_srv_response(7, &a).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].target, "m0.example.com.");
        assert_eq!((records[1].priority, records[1].port), (0, 2380));
        assert_eq!(
            parse_srv_response(8, &a),
            Err(DnsError::Malformed("not an answer to the query"))
        );
        assert_eq!(
            parse_srv_response(7, &answer(&q, 3, &[])),
            Err(DnsError::NoSuchHost)
        );
        assert_eq!(
            parse_srv_response(7, &answer(&q, 2, &[])),
            Err(DnsError::Server(2))
        );
        assert!(parse_srv_response(7, &a[..a.len() - 3]).is_err());
        assert!(encode_query(1, "a..b").is_err());
    }

    #[test]
    fn names_and_resolv_conf() {
        let d = SrvDiscovery::new("example.com");
        assert_eq!(d.srv_names()[0].0, "_etcd-client-ssl._tcp.example.com");
        assert_eq!(
            d.clone().with_service_name("").srv_names()[1].0,
            "_etcd-client._tcp.example.com"
        );
        let conf = "# c\nsearch x\nnameserver 10.0.0.1\nnameserver ::1\nnameserver bogus\n";
        assert_eq!(
            resolv_conf_nameservers(conf),
            vec![
                "10.0.0.1:53".parse::<SocketAddr>().unwrap(),
                "[::1]:53".parse().unwrap()
            ]
        );
    }
}
