//! Port allocation for the etcd listeners.
//!
//! The proxies bind `127.0.0.1:0` and keep their listeners, so they never collide. The etcd
//! processes must be told a port up front: the testkit picks one it can bind right now, from
//! below the kernel's ephemeral range when possible (so outgoing connections never take it in
//! the meantime), and remembers every port it handed out in this process so that clusters
//! started in parallel by the same test binary never share one. A clash with another process
//! is still possible; cluster start retries with fresh ports when etcd reports the address as
//! in use.

use std::collections::hash_map::RandomState;
use std::collections::HashSet;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

fn handed_out() -> &'static Mutex<HashSet<u16>> {
    static PORTS: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    PORTS.get_or_init(|| Mutex::new(HashSet::new()))
}

/// A pseudo-random number; each call differs (random hasher keys plus a counter).
pub(crate) fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    h.finish()
}

/// Lower bound of the kernel's ephemeral port range (32768 when unknown).
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|p| p.parse().ok()))
        .unwrap_or(32768)
}

fn can_bind(port: u16) -> bool {
    TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// Returns a port on 127.0.0.1 that is free now and was never handed out by this process.
pub(crate) fn reserve_port() -> io::Result<u16> {
    const LOW: u16 = 12000;
    let high = ephemeral_low();
    let mut used = handed_out().lock().unwrap_or_else(|e| e.into_inner());
    if high > LOW + 1000 {
        let span = u64::from(high - LOW);
        for _ in 0..500 {
            let port = LOW + (random_u64() % span) as u16;
            if !used.contains(&port) && can_bind(port) {
                used.insert(port);
                return Ok(port);
            }
        }
    }
    // Fall back to whatever the kernel hands out.
    for _ in 0..500 {
        let port = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port();
        if used.insert(port) {
            return Ok(port);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrNotAvailable,
        "no free port on 127.0.0.1",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_ports_are_distinct_and_bindable() {
        let mut seen = HashSet::new();
        for _ in 0..50 {
            let p = reserve_port().unwrap();
            assert!(seen.insert(p), "port {p} handed out twice");
            assert!(can_bind(p));
        }
    }
}
