//! A tiny authoritative DNS server on UDP for tests of SRV discovery: it answers SRV
//! questions and A (IPv4) questions for the names it was given, an empty answer for the other
//! types of those names, NXDOMAIN for every other name, and serves until dropped (a std
//! thread, like the rest of the testkit).
//!
//! ```no_run
//! use etcdv3_testkit::dns::{SrvServer, SrvTarget};
//!
//! # fn main() -> std::io::Result<()> {
//! let server = SrvServer::start(
//!     "127.0.0.1:0".parse().unwrap(),
//!     vec![(
//!         "_etcd-client._tcp.example.test".into(),
//!         vec![SrvTarget { priority: 0, weight: 1, port: 2379, target: "localhost".into() }],
//!     )],
//!     vec![],
//! )?;
//! println!("ask {}", server.addr());
//! # Ok(())
//! # }
//! ```

use std::io;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

const TYPE_SRV: u16 = 33;
const TYPE_A: u16 = 1;
const CLASS_IN: u16 = 1;

/// One SRV record's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvTarget {
    /// Lower is preferred.
    pub priority: u16,
    /// Relative weight within a priority.
    pub weight: u16,
    /// The port.
    pub port: u16,
    /// The host name (a final dot is added on the wire either way).
    pub target: String,
}

/// A running DNS server; dropping it stops it.
pub struct SrvServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    queries: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl SrvServer {
    /// Binds `addr` (UDP) and answers for `srv` (SRV name -> its records) and `hosts` (name
    /// -> its IPv4 address).
    pub fn start(
        addr: SocketAddr,
        srv: Vec<(String, Vec<SrvTarget>)>,
        hosts: Vec<(String, Ipv4Addr)>,
    ) -> io::Result<SrvServer> {
        let zone = Zone { srv, hosts };
        let socket = UdpSocket::bind(addr)?;
        socket.set_read_timeout(Some(Duration::from_millis(100)))?;
        let addr = socket.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let queries = Arc::new(AtomicU64::new(0));
        let (s, q) = (Arc::clone(&stop), Arc::clone(&queries));
        let thread = std::thread::Builder::new()
            .name("etcd-testkit-dns".into())
            .spawn(move || serve(&socket, &zone, &s, &q))?;
        Ok(SrvServer {
            addr,
            stop,
            queries,
            thread: Some(thread),
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Questions answered so far.
    pub fn queries(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }
}

impl Drop for SrvServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What the server answers for.
struct Zone {
    srv: Vec<(String, Vec<SrvTarget>)>,
    hosts: Vec<(String, Ipv4Addr)>,
}

fn serve(socket: &UdpSocket, zone: &Zone, stop: &AtomicBool, n: &AtomicU64) {
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        let Ok((len, from)) = socket.recv_from(&mut buf) else {
            continue;
        };
        if let Some(reply) = answer(&buf[..len], zone) {
            n.fetch_add(1, Ordering::Relaxed);
            let _ = socket.send_to(&reply, from);
        }
    }
}

/// The question's name (lower case, no final dot), type, and where the question ends.
fn question(msg: &[u8]) -> Option<(String, u16, usize)> {
    let mut at = 12;
    let mut labels = Vec::new();
    loop {
        let len = *msg.get(at)? as usize;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        labels.push(String::from_utf8_lossy(msg.get(at + 1..at + 1 + len)?).to_ascii_lowercase());
        at += 1 + len;
    }
    let ty = u16::from_be_bytes([*msg.get(at + 1)?, *msg.get(at + 2)?]);
    Some((labels.join("."), ty, at + 5))
}

/// The reply to one query (`None`: not a query worth answering).
fn answer(msg: &[u8], zone: &Zone) -> Option<Vec<u8>> {
    if msg.len() < 12 || msg[2] & 0x80 != 0 || u16::from_be_bytes([msg[4], msg[5]]) != 1 {
        return None;
    }
    let (name, ty, end) = question(msg)?;
    let is = |n: &String| n.trim_end_matches('.').eq_ignore_ascii_case(&name);
    let records = zone.srv.iter().find(|(n, _)| is(n)).map(|(_, r)| r);
    let host = zone.hosts.iter().find(|(n, _)| is(n)).map(|(_, ip)| *ip);
    let exists = records.is_some() || host.is_some();
    let mut out = msg[..end].to_vec();
    // QR, AA, the query's RD; RA off; NOERROR or NXDOMAIN; one question, no
    // authority or additional records (an EDNS OPT in the query is not echoed).
    out[2] = 0x84 | (msg[2] & 0x01);
    out[3] = if exists { 0 } else { 3 };
    out[8..12].fill(0);
    let answers: &[SrvTarget] = match records {
        Some(r) if ty == TYPE_SRV => r,
        _ => &[],
    };
    let address = host.filter(|_| ty == TYPE_A);
    let count = answers.len() + usize::from(address.is_some());
    out[6..8].copy_from_slice(&(count as u16).to_be_bytes());
    if let Some(ip) = address {
        out.extend_from_slice(&[0xc0, 12]);
        out.extend_from_slice(&TYPE_A.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&60u32.to_be_bytes());
        out.extend_from_slice(&4u16.to_be_bytes());
        out.extend_from_slice(&ip.octets());
    }
    for r in answers {
        out.extend_from_slice(&[0xc0, 12]);
        out.extend_from_slice(&TYPE_SRV.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&60u32.to_be_bytes());
        let mut rdata = Vec::new();
        for v in [r.priority, r.weight, r.port] {
            rdata.extend_from_slice(&v.to_be_bytes());
        }
        for label in r.target.trim_end_matches('.').split('.') {
            rdata.push(label.len() as u8);
            rdata.extend_from_slice(label.as_bytes());
        }
        rdata.push(0);
        out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(&rdata);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(id: u16, name: &str, ty: u16) -> Vec<u8> {
        let mut m = id.to_be_bytes().to_vec();
        m.extend_from_slice(&[1, 0, 0, 1, 0, 0, 0, 0, 0, 1]);
        for l in name.split('.') {
            m.push(l.len() as u8);
            m.extend_from_slice(l.as_bytes());
        }
        m.push(0);
        m.extend_from_slice(&ty.to_be_bytes());
        m.extend_from_slice(&CLASS_IN.to_be_bytes());
        // An EDNS OPT record, as Go's resolver sends.
        m.extend_from_slice(&[0, 0, 41, 4, 208, 0, 0, 0, 0, 0, 0]);
        m
    }

    #[test]
    fn answers_srv_and_nxdomain_over_udp() {
        let server = SrvServer::start(
            "127.0.0.1:0".parse().unwrap(),
            vec![(
                "_etcd-client._tcp.example.test".into(),
                vec![SrvTarget {
                    priority: 1,
                    weight: 2,
                    port: 2379,
                    target: "localhost.".into(),
                }],
            )],
            vec![("m0.example.test".into(), Ipv4Addr::LOCALHOST)],
        )
        .unwrap();
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.send_to(
            &query(9, "_etcd-client._tcp.Example.test", TYPE_SRV),
            server.addr(),
        )
        .unwrap();
        let mut buf = [0u8; 512];
        let n = c.recv(&mut buf).unwrap();
        let a = &buf[..n];
        assert_eq!(&a[..4], &[0, 9, 0x85, 0]);
        assert_eq!(&a[6..8], &[0, 1], "one answer");
        assert!(a.ends_with(&[
            0, 1, 0, 2, 9, 0x4b, 9, b'l', b'o', b'c', b'a', b'l', b'h', b'o', b's', b't', 0
        ]));
        c.send_to(
            &query(10, "_etcd-client-ssl._tcp.example.test", TYPE_SRV),
            server.addr(),
        )
        .unwrap();
        let n = c.recv(&mut buf).unwrap();
        assert_eq!(
            (buf[3] & 0x0f, &buf[6..8]),
            (3, &[0u8, 0][..]),
            "NXDOMAIN {:?}",
            &buf[..n]
        );
        c.send_to(&query(11, "m0.example.test", TYPE_A), server.addr())
            .unwrap();
        let n = c.recv(&mut buf).unwrap();
        assert!(buf[..n].ends_with(&[0, 4, 127, 0, 0, 1]), "{:?}", &buf[..n]);
        c.send_to(&query(12, "m0.example.test", 28), server.addr())
            .unwrap();
        let n = c.recv(&mut buf).unwrap();
        assert_eq!(
            (buf[3] & 0x0f, &buf[6..8]),
            (0, &[0u8, 0][..]),
            "AAAA: {:?}",
            &buf[..n]
        );
        assert_eq!(server.queries(), 4);
    }
}
