//! Fault-injecting TCP proxies, on std threads.
//!
//! Each proxy has one listener thread and, per accepted connection, two pump threads (one per
//! direction). Pumps block in `read` with a timeout, so they notice state changes; killing a
//! connection shuts its sockets down, which wakes them at once.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::h2frames::{FrameCounts, FrameScanner, Http2Counts};
use crate::procnet;

/// How long a pump blocks in `read`/`write` before rechecking its state.
const TICK: Duration = Duration::from_millis(250);
/// Poll interval while a client proxy is blackholed.
const HOLD: Duration = Duration::from_millis(20);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Cluster-wide peer isolation state shared by all peer proxies.
#[derive(Debug)]
pub(crate) struct PeerNet {
    isolated: Mutex<Vec<bool>>,
    pids: Mutex<Vec<Option<u32>>>,
}

impl PeerNet {
    pub(crate) fn new(size: usize) -> Self {
        PeerNet {
            isolated: Mutex::new(vec![false; size]),
            pids: Mutex::new(vec![None; size]),
        }
    }

    pub(crate) fn set_pid(&self, member: usize, pid: Option<u32>) {
        if let Some(slot) = lock(&self.pids).get_mut(member) {
            *slot = pid;
        }
    }

    pub(crate) fn set_isolated(&self, member: usize, isolated: bool) {
        if let Some(slot) = lock(&self.isolated).get_mut(member) {
            *slot = isolated;
        }
    }

    /// Whether a peer connection from `from` (unknown: `None`) to `to` must be dropped. An
    /// unidentified dialer is dropped while any member is isolated (it might be that member;
    /// etcd just redials).
    fn blocked(&self, from: Option<usize>, to: usize) -> bool {
        let iso = lock(&self.isolated);
        if iso.get(to).copied().unwrap_or(false) {
            return true;
        }
        match from {
            Some(f) => iso.get(f).copied().unwrap_or(false),
            None => iso.iter().any(|&b| b),
        }
    }
}

/// What a proxy stands in front of.
#[derive(Debug)]
pub(crate) enum Role {
    /// A member's client URL: supports blackhole and reset.
    Client,
    /// A member's peer URL: connections are tagged (from, to) and subject to isolation.
    Peer { to: usize, net: Arc<PeerNet> },
}

struct Conn {
    /// The dialing member (peer role; `None` if unknown or client role).
    from: Option<usize>,
    /// The accepted socket (towards the dialer).
    down: TcpStream,
    /// The socket to the etcd process.
    up: TcpStream,
    dead: AtomicBool,
    finished: AtomicU8,
}

impl Conn {
    /// Drops the connection: FIN to both ends.
    fn kill(&self) {
        self.dead.store(true, Ordering::SeqCst);
        let _ = self.down.shutdown(Shutdown::Both);
        let _ = self.up.shutdown(Shutdown::Both);
    }
}

struct Shared {
    role: Role,
    upstream: Mutex<SocketAddr>,
    blackholed: AtomicBool,
    /// Bandwidth of the etcd → dialer direction in bytes per second (0: unlimited): a slow
    /// link (client role).
    down_rate: AtomicU64,
    closing: AtomicBool,
    next_id: AtomicU64,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// The HTTP/2 frames counted on the relayed connections (plain-HTTP client proxies).
    frames: Option<FrameCounts>,
}

impl Shared {
    fn closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }

    fn held(&self) -> bool {
        matches!(self.role, Role::Client) && self.blackholed.load(Ordering::SeqCst)
    }

    fn blocked(&self, from: Option<usize>) -> bool {
        match &self.role {
            Role::Client => false,
            Role::Peer { to, net } => net.blocked(from, *to),
        }
    }

    fn spawn(self: &Arc<Self>, f: impl FnOnce() + Send + 'static) {
        let handle = thread::Builder::new()
            .name("etcd-testkit-proxy".into())
            .spawn(f);
        if let Ok(handle) = handle {
            let mut threads = lock(&self.threads);
            threads.retain(|t| !t.is_finished());
            threads.push(handle);
        }
    }
}

/// A TCP proxy from a listener on 127.0.0.1 to an upstream address that can change.
pub(crate) struct Proxy {
    shared: Arc<Shared>,
    addr: SocketAddr,
    listener: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Binds 127.0.0.1:0 and starts forwarding to `upstream`; with `count_frames`, reads the
    /// HTTP/2 frames it forwards ([`Proxy::http2_counts`]).
    pub(crate) fn start(role: Role, upstream: SocketAddr, count_frames: bool) -> io::Result<Proxy> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            role,
            upstream: Mutex::new(upstream),
            blackholed: AtomicBool::new(false),
            down_rate: AtomicU64::new(0),
            closing: AtomicBool::new(false),
            next_id: AtomicU64::new(0),
            conns: Mutex::new(HashMap::new()),
            threads: Mutex::new(Vec::new()),
            frames: count_frames.then(FrameCounts::default),
        });
        let sh = Arc::clone(&shared);
        let handle = thread::Builder::new()
            .name("etcd-testkit-accept".into())
            .spawn(move || accept_loop(sh, listener))?;
        Ok(Proxy {
            shared,
            addr,
            listener: Some(handle),
        })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(crate) fn set_upstream(&self, upstream: SocketAddr) {
        *lock(&self.shared.upstream) = upstream;
    }

    pub(crate) fn set_blackholed(&self, on: bool) {
        self.shared.blackholed.store(on, Ordering::SeqCst);
    }

    /// Limits the etcd → dialer direction to `bytes_per_sec` (`None`: unlimited), for
    /// connections open now and later. What etcd sends beyond the rate queues in the socket
    /// buffers, as on a slow link: an HTTP/2 PING answer waits behind it.
    pub(crate) fn set_down_rate(&self, bytes_per_sec: Option<u64>) {
        self.shared
            .down_rate
            .store(bytes_per_sec.unwrap_or(0), Ordering::SeqCst);
    }

    /// Drops (FIN both ends) every connection for which `pred(from)` holds; returns how many.
    pub(crate) fn kill_where(&self, pred: impl Fn(Option<usize>) -> bool) -> usize {
        let victims: Vec<Arc<Conn>> = {
            let mut conns = lock(&self.shared.conns);
            let ids: Vec<u64> = conns
                .iter()
                .filter(|(_, c)| pred(c.from))
                .map(|(id, _)| *id)
                .collect();
            ids.iter().filter_map(|id| conns.remove(id)).collect()
        };
        for c in &victims {
            c.kill();
        }
        victims.len()
    }

    /// Closes every current connection, with a TCP RST towards the dialer (SO_LINGER 0) and a
    /// FIN towards etcd; waits (up to 2 s) until the sockets are really closed.
    pub(crate) fn reset_all(&self) -> usize {
        let victims: Vec<Arc<Conn>> = lock(&self.shared.conns).drain().map(|(_, c)| c).collect();
        for c in &victims {
            let _ = nix::sys::socket::setsockopt(
                &c.down,
                nix::sys::socket::sockopt::Linger,
                &nix::libc::linger {
                    l_onoff: 1,
                    l_linger: 0,
                },
            );
            c.dead.store(true, Ordering::SeqCst);
            // SHUT_RD sends nothing but wakes the pumps; the RST goes out when the last
            // handle to the socket is dropped.
            let _ = c.down.shutdown(Shutdown::Read);
            let _ = c.up.shutdown(Shutdown::Both);
        }
        let n = victims.len();
        let deadline = Instant::now() + Duration::from_secs(2);
        for c in victims {
            while Arc::strong_count(&c) > 1 && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(5));
            }
        }
        n
    }

    /// What the proxy counted of the HTTP/2 frames it forwarded (zero unless it counts them).
    pub(crate) fn http2_counts(&self) -> Http2Counts {
        self.shared
            .frames
            .as_ref()
            .map(FrameCounts::snapshot)
            .unwrap_or_default()
    }

    /// Number of connections currently open through the proxy.
    pub(crate) fn connection_count(&self) -> usize {
        lock(&self.shared.conns).len()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.closing.store(true, Ordering::SeqCst);
        // Wake the blocking accept with a throwaway connection.
        let woke = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)).is_ok();
        for (_, c) in lock(&self.shared.conns).drain() {
            c.kill();
        }
        if let Some(h) = self.listener.take() {
            if woke || h.is_finished() {
                let _ = h.join();
            }
        }
        let threads: Vec<JoinHandle<()>> = lock(&self.shared.threads).drain(..).collect();
        for t in threads {
            let _ = t.join();
        }
    }
}

fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        let accepted = listener.accept();
        if shared.closing() {
            return;
        }
        match accepted {
            Ok((down, from_addr)) => {
                let sh = Arc::clone(&shared);
                shared.spawn(move || handle(sh, down, from_addr));
            }
            Err(_) => thread::sleep(Duration::from_millis(10)),
        }
    }
}

fn handle(shared: Arc<Shared>, down: TcpStream, from_addr: SocketAddr) {
    let _ = down.set_nonblocking(false);
    let _ = down.set_nodelay(true);
    let from = match &shared.role {
        Role::Client => None,
        Role::Peer { net, .. } => {
            let proxy_port = down.local_addr().map(|a| a.port()).unwrap_or(0);
            let mut owner = None;
            for _ in 0..3 {
                let pids = lock(&net.pids).clone();
                owner = procnet::owner_of(from_addr.port(), proxy_port, &pids);
                if owner.is_some() {
                    break;
                }
                thread::sleep(Duration::from_millis(2));
            }
            owner
        }
    };
    if shared.blocked(from) {
        return; // dropping `down` closes it
    }
    // A blackholed client proxy accepts, then hangs: do not even dial etcd until released.
    while shared.held() {
        if shared.closing() {
            return;
        }
        thread::sleep(HOLD);
    }
    let upstream = *lock(&shared.upstream);
    let Ok(up) = TcpStream::connect_timeout(&upstream, CONNECT_TIMEOUT) else {
        return;
    };
    let _ = up.set_nodelay(true);
    if let Some(f) = &shared.frames {
        f.connection();
    }
    for s in [&down, &up] {
        let _ = s.set_read_timeout(Some(TICK));
        let _ = s.set_write_timeout(Some(TICK));
    }
    let conn = Arc::new(Conn {
        from,
        down,
        up,
        dead: AtomicBool::new(false),
        finished: AtomicU8::new(0),
    });
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    lock(&shared.conns).insert(id, Arc::clone(&conn));
    // Re-check after registering: a concurrent isolate()/Drop either saw the entry or is
    // visible here.
    if shared.closing() || shared.blocked(from) {
        lock(&shared.conns).remove(&id);
        conn.kill();
        return;
    }
    let (sh, c) = (Arc::clone(&shared), Arc::clone(&conn));
    shared.spawn(move || pump(sh, c, id, true));
    pump(shared, conn, id, false);
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// Copies bytes one way; `upward` is dialer → etcd.
fn pump(shared: Arc<Shared>, conn: Arc<Conn>, id: u64, upward: bool) {
    let (mut src, mut dst) = if upward {
        (&conn.down, &conn.up)
    } else {
        (&conn.up, &conn.down)
    };
    let stop = |c: &Conn| c.dead.load(Ordering::SeqCst) || shared.closing();
    let mut scanner = shared.frames.as_ref().map(|_| FrameScanner::new(upward));
    let mut buf = vec![0u8; 32 * 1024];
    let mut failed = false;
    // Pacing of a rate-limited direction: when the bytes sent so far may all have left.
    let mut paced_until = Instant::now();
    'outer: loop {
        if stop(&conn) {
            break;
        }
        if shared.blocked(conn.from) {
            failed = true;
            break;
        }
        if shared.held() {
            thread::sleep(HOLD);
            continue;
        }
        let n = match src.read(&mut buf) {
            Ok(0) => {
                // Pass a half-close on, unless the connection is being torn down (a reset
                // must reach the dialer as RST, not FIN).
                if !stop(&conn) {
                    let _ = dst.shutdown(Shutdown::Write);
                }
                break;
            }
            Ok(n) => n,
            Err(e) if is_timeout(&e) => continue,
            Err(_) => {
                failed = true;
                break;
            }
        };
        if let (Some(scanner), Some(counts)) = (scanner.as_mut(), shared.frames.as_ref()) {
            for f in scanner.feed(&buf[..n]) {
                counts.count(&f, upward);
            }
        }
        let rate = shared.down_rate.load(Ordering::SeqCst);
        if !upward && rate > 0 {
            // A link of `rate` bytes/s: these bytes leave once the earlier ones have.
            let now = Instant::now();
            let start = paced_until.max(now);
            paced_until = start + Duration::from_secs_f64(n as f64 / rate as f64);
            while Instant::now() < paced_until {
                if stop(&conn) {
                    break 'outer;
                }
                thread::sleep((paced_until - Instant::now()).min(TICK));
            }
        }
        let mut off = 0;
        while off < n {
            if stop(&conn) {
                break 'outer;
            }
            if shared.held() {
                thread::sleep(HOLD);
                continue;
            }
            match dst.write(&buf[off..n]) {
                Ok(0) => {
                    failed = true;
                    break 'outer;
                }
                Ok(k) => off += k,
                Err(e) if is_timeout(&e) => {}
                Err(_) => {
                    failed = true;
                    break 'outer;
                }
            }
        }
    }
    let both_done = conn.finished.fetch_add(1, Ordering::SeqCst) == 1;
    if failed {
        conn.kill();
    }
    if failed || both_done {
        lock(&shared.conns).remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server on 127.0.0.1:0; returns its address.
    fn echo_server() -> SocketAddr {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = l.local_addr().unwrap();
        thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { return };
                thread::spawn(move || {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 || s.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    fn roundtrip(s: &mut TcpStream, msg: &[u8], timeout: Duration) -> io::Result<Vec<u8>> {
        s.set_read_timeout(Some(timeout))?;
        s.write_all(msg)?;
        let mut got = vec![0u8; msg.len()];
        s.read_exact(&mut got)?;
        Ok(got)
    }

    #[test]
    fn client_proxy_forwards_blackholes_and_resets() {
        let p = Proxy::start(Role::Client, echo_server(), false).unwrap();
        let mut a = TcpStream::connect(p.addr()).unwrap();
        assert_eq!(roundtrip(&mut a, b"hi", TICK * 8).unwrap(), b"hi");

        p.set_blackholed(true);
        let e = roundtrip(&mut a, b"held", Duration::from_millis(300)).unwrap_err();
        assert!(is_timeout(&e), "{e:?}");
        let mut b = TcpStream::connect(p.addr()).unwrap();
        let e = roundtrip(&mut b, b"new", Duration::from_millis(300)).unwrap_err();
        assert!(is_timeout(&e), "{e:?}");
        p.set_blackholed(false);
        // Held bytes arrive after the release.
        let mut got = [0u8; 4];
        a.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        a.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"held");
        b.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut got = [0u8; 3];
        b.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"new");

        assert_eq!(p.connection_count(), 2);
        assert_eq!(p.reset_all(), 2);
        assert_eq!(p.connection_count(), 0);
        let mut buf = [0u8; 1];
        a.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let e = a.read(&mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionReset);

        // Upstream gone: the proxy accepts and then closes.
        p.set_upstream(SocketAddr::from((Ipv4Addr::LOCALHOST, 1)));
        let mut c = TcpStream::connect(p.addr()).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert!(matches!(c.read(&mut buf), Ok(0) | Err(_)));
        drop(p); // joins its threads; would hang the test if a pump leaked
    }

    #[test]
    fn client_proxy_limits_bandwidth_towards_the_dialer() {
        let p = Proxy::start(Role::Client, echo_server(), false).unwrap();
        p.set_down_rate(Some(200 * 1024));
        let mut a = TcpStream::connect(p.addr()).unwrap();
        let msg = vec![7u8; 300 * 1024];
        let writer = {
            let mut w = a.try_clone().unwrap();
            let msg = msg.clone();
            thread::spawn(move || w.write_all(&msg))
        };
        let t = Instant::now();
        a.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut got = vec![0u8; msg.len()];
        a.read_exact(&mut got).unwrap();
        let took = t.elapsed();
        writer.join().unwrap().unwrap();
        assert_eq!(got, msg);
        // 300 KiB at 200 KiB/s: 1.5 s (the first 32 KiB read may go at once).
        assert!(took >= Duration::from_millis(1200), "{took:?}");
        p.set_down_rate(None);
        let t = Instant::now();
        assert_eq!(
            roundtrip(&mut a, &msg[..64 * 1024], Duration::from_secs(5))
                .unwrap()
                .len(),
            64 * 1024
        );
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "{:?}",
            t.elapsed()
        );
    }

    #[test]
    fn client_proxy_counts_http2_frames_both_ways() {
        use crate::h2frames::tests::{goaway, ping, TOO_MANY_PINGS};
        let server = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let p = Proxy::start(Role::Client, server.local_addr().unwrap(), true).unwrap();
        let mut client = TcpStream::connect(p.addr()).unwrap();
        let (mut srv, _) = server.accept().unwrap();
        let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        hello.extend(ping());
        client.write_all(&hello).unwrap();
        let mut got = vec![0u8; hello.len()];
        srv.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        srv.read_exact(&mut got).unwrap();
        assert_eq!(got, hello);
        let bye = goaway(TOO_MANY_PINGS, b"too_many_pings");
        srv.write_all(&bye).unwrap();
        let mut got = vec![0u8; bye.len()];
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        client.read_exact(&mut got).unwrap();
        assert_eq!(got, bye);
        let c = p.http2_counts();
        assert_eq!(
            (c.client_pings, c.goaways, c.too_many_pings, c.connections),
            (1, 1, 1, 1)
        );
        let quiet = Proxy::start(Role::Client, echo_server(), false).unwrap();
        let mut a = TcpStream::connect(quiet.addr()).unwrap();
        assert_eq!(roundtrip(&mut a, &ping(), TICK * 8).unwrap(), ping());
        assert_eq!(quiet.http2_counts(), Http2Counts::default());
    }

    #[test]
    fn peer_proxy_tags_dialers_and_isolates() {
        let net = Arc::new(PeerNet::new(2));
        // This test process plays member 0, dialing member 1's peer proxy.
        net.set_pid(0, Some(std::process::id()));
        let p = Proxy::start(
            Role::Peer {
                to: 1,
                net: Arc::clone(&net),
            },
            echo_server(),
            false,
        )
        .unwrap();
        let mut a = TcpStream::connect(p.addr()).unwrap();
        assert_eq!(
            roundtrip(&mut a, b"x", Duration::from_secs(5)).unwrap(),
            b"x"
        );
        // The connection is known to come from member 0.
        assert_eq!(p.kill_where(|from| from == Some(1)), 0);

        net.set_isolated(0, true);
        assert_eq!(p.kill_where(|from| from == Some(0)), 1);
        let mut buf = [0u8; 1];
        a.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert!(matches!(a.read(&mut buf), Ok(0) | Err(_)));
        // New connections from the isolated member are dropped at once.
        let mut b = TcpStream::connect(p.addr()).unwrap();
        assert!(roundtrip(&mut b, b"y", Duration::from_secs(5)).is_err());

        net.set_isolated(0, false);
        let mut c = TcpStream::connect(p.addr()).unwrap();
        assert_eq!(
            roundtrip(&mut c, b"z", Duration::from_secs(5)).unwrap(),
            b"z"
        );

        // Isolating the target member blocks everyone, known or not.
        net.set_isolated(1, true);
        let mut d = TcpStream::connect(p.addr()).unwrap();
        assert!(roundtrip(&mut d, b"w", Duration::from_secs(5)).is_err());
    }
}
