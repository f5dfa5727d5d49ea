//! Real, local etcd clusters for tests, with a fault-injecting TCP proxy in front of every
//! member's client and peer URL.
//!
//! [`ClusterBuilder`] starts `size` etcd processes on 127.0.0.1 (free ports, one temp
//! directory per cluster, fast election settings) and waits until every member answers
//! `GET /health` with `"health":"true"`. Every member advertises its *proxy* URLs, so
//! `member list` shows proxied URLs and all client and peer traffic goes through proxies the
//! test controls:
//!
//! * process faults: [`Cluster::kill`] (SIGKILL), [`Cluster::pause`] / [`Cluster::resume`]
//!   (SIGSTOP / SIGCONT), [`Cluster::restart`] (same data dir, waits for health);
//! * peer faults: [`Cluster::isolate`] cuts a member off from all its peers in both directions
//!   while its client URL keeps working, [`Cluster::heal`] undoes it;
//! * client faults: [`Cluster::blackhole_client`] makes the member's client URL a dead network
//!   path (connections stay open, nothing moves, new connections hang),
//!   [`Cluster::unblackhole_client`] releases it, [`Cluster::reset_client`] kills all current
//!   client connections with a TCP RST;
//! * membership: [`Cluster::leader`], [`Cluster::member_status`], [`Cluster::member_ids`],
//!   [`Cluster::remove_member`], via etcd's JSON gateway.
//!
//! [`ClusterBuilder::client_tls`] serves the client URLs over `https://` with a generated CA
//! and certificates ([`Cluster::tls_files`]); [`ClusterBuilder::client_cert_auth`] also
//! requires client certificates.
//!
//! Dropping the [`Cluster`] (also during a panic's unwinding) SIGKILLs every process it started,
//! by pid, stops the proxies and deletes the temp directory (set `ETCD_TESTKIT_KEEP=1` to keep
//! it for post-mortem reading of the member logs).
//!
//! The etcd binary is [`ClusterBuilder::etcd_bin`], else the `ETCD_BIN` environment variable,
//! else `etcd` on `PATH`; `scripts/install-etcd.sh` installs etcd 3.4 and 3.5. Everything runs
//! on std threads, so tests on any async runtime (or none) can use it.
//!
//! ```no_run
//! use etcdv3_testkit::{Cluster, ClusterBuilder};
//!
//! # fn main() -> Result<(), etcdv3_testkit::TestkitError> {
//! let cluster = ClusterBuilder::new(3).auth_token_ttl(60).start()?;
//! println!("etcd {} at {:?}", cluster.server_version(), cluster.client_urls());
//!
//! let leader = cluster.wait_for_leader(std::time::Duration::from_secs(10))?;
//! cluster.isolate(leader)?; // the other two elect a new leader
//! cluster.heal(leader)?;
//!
//! cluster.kill(1)?;
//! cluster.restart(1)?; // back and healthy
//!
//! let single = Cluster::start(1)?;
//! single.blackhole_client(0)?; // requests to single.member(0).client_url() now hang
//! single.unblackhole_client(0)?;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
mod http;
mod ports;
mod procnet;
mod proxy;
mod tls;

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;

pub use error::TestkitError;
use proxy::{lock, PeerNet, Proxy, Role};
pub use tls::TlsFiles;

/// Default time [`ClusterBuilder::start`] and [`Cluster::restart`] wait for health.
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(20);
/// Timeout of one HTTP call to a member (`/health`, JSON gateway).
const HTTP_TIMEOUT: Duration = Duration::from_secs(2);
/// Log lines quoted in errors.
const LOG_TAIL_LINES: usize = 40;
/// How often startup is retried when etcd finds a chosen port taken by another process.
const PORT_RETRIES: usize = 3;

/// The version an etcd binary reports with `--version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EtcdVersion {
    /// Major version (3).
    pub major: u32,
    /// Minor version (4, 5, ...).
    pub minor: u32,
    /// Patch version.
    pub patch: u32,
}

impl EtcdVersion {
    /// Parses the `etcd Version: X.Y.Z` line of `etcd --version` output.
    pub fn parse_version_output(text: &str) -> Option<EtcdVersion> {
        let line = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("etcd Version:"))?;
        let mut parts = line.trim().split(['.', '-', '+']);
        Some(EtcdVersion {
            major: parts.next()?.parse().ok()?,
            minor: parts.next()?.parse().ok()?,
            patch: parts.next()?.parse().ok()?,
        })
    }

    /// Whether this version is at least `major.minor`.
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        (self.major, self.minor) >= (major, minor)
    }
}

impl fmt::Display for EtcdVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// A member's view of the cluster, from `POST /v3/maintenance/status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberStatus {
    /// The answering member's id (`header.member_id`).
    pub member_id: u64,
    /// The leader's id as this member believes it; 0 when it knows no leader.
    pub leader: u64,
    /// The member's raft term.
    pub raft_term: u64,
    /// The member's raft index.
    pub raft_index: u64,
    /// The server version string.
    pub version: String,
}

/// Configures and starts a [`Cluster`].
#[derive(Debug, Clone)]
pub struct ClusterBuilder {
    size: usize,
    etcd_bin: Option<PathBuf>,
    args: Vec<String>,
    health_timeout: Duration,
    client_tls: bool,
    client_cert_auth: bool,
    extra_advertised_client_urls: Vec<String>,
}

impl ClusterBuilder {
    /// A builder for a cluster of `size` members (1 or 3 are typical).
    pub fn new(size: usize) -> Self {
        ClusterBuilder {
            size,
            etcd_bin: None,
            args: Vec::new(),
            health_timeout: DEFAULT_HEALTH_TIMEOUT,
            client_tls: false,
            client_cert_auth: false,
            extra_advertised_client_urls: Vec::new(),
        }
    }

    /// Serves the client URLs over TLS (`https://`): the testkit generates a CA, a server
    /// certificate for `127.0.0.1` and `localhost` and a client certificate into the
    /// cluster directory (see [`Cluster::tls_files`]) and starts etcd with `--cert-file`
    /// and `--key-file`. [`Cluster::client_urls`] and [`Member::client_url`] then name
    /// `https://` proxy URLs. Peer URLs stay plain HTTP.
    ///
    /// Each member also listens on a second, plain-HTTP client URL on 127.0.0.1 that only
    /// the testkit uses (for `/health` and the JSON gateway behind [`Cluster::leader`] and
    /// friends); it is not advertised and has no proxy.
    pub fn client_tls(mut self, on: bool) -> Self {
        self.client_tls = on;
        if !on {
            self.client_cert_auth = false;
        }
        self
    }

    /// Requires clients to present a certificate signed by the cluster's CA
    /// (`--client-cert-auth --trusted-ca-file`); implies [`ClusterBuilder::client_tls`].
    pub fn client_cert_auth(mut self, on: bool) -> Self {
        self.client_cert_auth = on;
        if on {
            self.client_tls = true;
        }
        self
    }

    /// Uses this etcd binary instead of `ETCD_BIN` / `etcd` on `PATH`.
    pub fn etcd_bin(mut self, path: impl Into<PathBuf>) -> Self {
        self.etcd_bin = Some(path.into());
        self
    }

    /// Sets `--auth-token-ttl` (seconds) for the default `simple` auth tokens.
    pub fn auth_token_ttl(self, secs: u64) -> Self {
        self.arg(format!("--auth-token-ttl={secs}"))
    }

    /// Appends one extra command-line argument for every member, e.g. `"--max-txn-ops=256"`.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Every member also advertises `url` as a client URL, after its proxy URL (e.g. an
    /// unreachable or unparsable URL, to test endpoint auto-sync). etcd must accept it as a
    /// URL (`http`, `https`, `unix` or `unixs` with a host).
    pub fn also_advertise_client_url(mut self, url: impl Into<String>) -> Self {
        self.extra_advertised_client_urls.push(url.into());
        self
    }

    /// How long to wait for the members to become healthy (default
    /// [`DEFAULT_HEALTH_TIMEOUT`]); also used by [`Cluster::restart`].
    pub fn health_timeout(mut self, timeout: Duration) -> Self {
        self.health_timeout = timeout;
        self
    }

    /// Starts the members and waits until all are healthy.
    ///
    /// On error everything started so far is killed and the temp directory removed; health
    /// and exit errors carry the failing member's log tail.
    pub fn start(self) -> Result<Cluster, TestkitError> {
        if self.size == 0 {
            return Err(TestkitError::InvalidSize(0));
        }
        let bin = resolve_bin(self.etcd_bin.as_deref())?;
        let version = detect_version(&bin)?;
        let dir = make_temp_dir()?;
        let tls = if self.client_tls {
            match tls::generate(&dir.join("tls")) {
                Ok(files) => Some(TlsSetup {
                    files,
                    client_cert_auth: self.client_cert_auth,
                }),
                Err(e) => {
                    let _ = fs::remove_dir_all(&dir);
                    return Err(e);
                }
            }
        } else {
            None
        };
        let net = Arc::new(PeerNet::new(self.size));
        let placeholder = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 1));
        let mut slots = Vec::with_capacity(self.size);
        let mut procs = Vec::with_capacity(self.size);
        // Build the Cluster value early so that Drop cleans up whatever fails below.
        let mut cluster = Cluster {
            bin,
            version,
            dir,
            token: String::new(),
            initial_cluster: String::new(),
            extra_args: self.args,
            extra_advertised_client_urls: self.extra_advertised_client_urls,
            health_timeout: self.health_timeout,
            tls,
            slots: Vec::new(),
            procs: Mutex::new(Vec::new()),
            ids: Vec::new(),
            net: Arc::clone(&net),
        };
        for i in 0..self.size {
            let name = format!("m{i}");
            let member_dir = cluster.dir.join(&name);
            fs::create_dir_all(&member_dir)?;
            slots.push(Slot {
                data_dir: member_dir.join("data"),
                log: member_dir.join("etcd.log"),
                name,
                client_proxy: Proxy::start(Role::Client, placeholder)?,
                peer_proxy: Proxy::start(
                    Role::Peer {
                        to: i,
                        net: Arc::clone(&net),
                    },
                    placeholder,
                )?,
            });
            procs.push(Proc::default());
        }
        cluster.initial_cluster = slots
            .iter()
            .map(|s| format!("{}={}", s.name, s.peer_proxy.url()))
            .collect::<Vec<_>>()
            .join(",");
        cluster.slots = slots;
        cluster.procs = Mutex::new(procs);
        cluster.boot()?;
        Ok(cluster)
    }
}

/// Per-member things that live as long as the cluster.
struct Slot {
    name: String,
    data_dir: PathBuf,
    log: PathBuf,
    client_proxy: Proxy,
    peer_proxy: Proxy,
}

/// Per-member process state.
#[derive(Default)]
struct Proc {
    child: Option<Child>,
    paused: bool,
    removed: bool,
    client_port: u16,
    peer_port: u16,
    /// The plain-HTTP client listener of a TLS member (0 without TLS).
    control_port: u16,
}

/// A TLS cluster's certificates and settings.
#[derive(Debug)]
struct TlsSetup {
    files: TlsFiles,
    client_cert_auth: bool,
}

/// A running etcd cluster on 127.0.0.1; see the [crate docs](crate).
///
/// All methods take `&self`, so a cluster can be shared (e.g. in an `Arc`) between the test
/// and threads or tasks that inject faults. Member indices run from 0 to `size - 1`; member
/// `i` is named `m{i}`.
pub struct Cluster {
    bin: PathBuf,
    version: EtcdVersion,
    dir: PathBuf,
    token: String,
    initial_cluster: String,
    extra_args: Vec<String>,
    extra_advertised_client_urls: Vec<String>,
    health_timeout: Duration,
    tls: Option<TlsSetup>,
    slots: Vec<Slot>,
    procs: Mutex<Vec<Proc>>,
    ids: Vec<u64>,
    net: Arc<PeerNet>,
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("version", &self.version)
            .field("dir", &self.dir)
            .field("client_urls", &self.client_urls())
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

/// A borrowed view of one member, from [`Cluster::member`].
#[derive(Clone, Copy)]
pub struct Member<'a> {
    cluster: &'a Cluster,
    index: usize,
}

impl fmt::Debug for Member<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Member")
            .field("index", &self.index)
            .field("name", &self.name())
            .field("client_url", &self.client_url())
            .field("peer_url", &self.peer_url())
            .field("pid", &self.pid())
            .finish()
    }
}

impl<'a> Member<'a> {
    fn slot(&self) -> &'a Slot {
        &self.cluster.slots[self.index]
    }

    /// The member's index in the cluster.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The member's etcd name, `m{index}`.
    pub fn name(&self) -> &'a str {
        &self.slot().name
    }

    /// The member's raft id.
    pub fn id(&self) -> u64 {
        self.cluster.ids[self.index]
    }

    /// `http://127.0.0.1:PORT` of the member's client proxy (its advertised client URL);
    /// `https://` in a TLS cluster.
    pub fn client_url(&self) -> String {
        self.cluster.proxy_client_url(self.slot())
    }

    /// `http://127.0.0.1:PORT` of the member's peer proxy (its advertised peer URL).
    pub fn peer_url(&self) -> String {
        self.slot().peer_proxy.url()
    }

    /// The etcd process's own client listener, bypassing the proxy (changes on restart);
    /// `https://` in a TLS cluster.
    pub fn direct_client_url(&self) -> String {
        format!(
            "{}://127.0.0.1:{}",
            self.cluster.client_scheme(),
            self.cluster.proc_ports(self.index).0
        )
    }

    /// The pid of the member's etcd process, `None` while killed or after removal.
    pub fn pid(&self) -> Option<u32> {
        lock(&self.cluster.procs)[self.index]
            .child
            .as_ref()
            .map(Child::id)
    }

    /// Whether the process is running (started and not killed; it may be paused).
    pub fn is_running(&self) -> bool {
        self.pid().is_some()
    }

    /// Whether the process is stopped by [`Cluster::pause`].
    pub fn is_paused(&self) -> bool {
        lock(&self.cluster.procs)[self.index].paused
    }

    /// The member's data directory.
    pub fn data_dir(&self) -> &'a Path {
        &self.slot().data_dir
    }

    /// The file that receives the member's stdout and stderr (all its starts, appended).
    pub fn log_path(&self) -> &'a Path {
        &self.slot().log
    }

    /// The last `lines` lines of the member's log.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.slot().log, lines)
    }

    /// Number of client connections currently open through the member's client proxy.
    pub fn client_connections(&self) -> usize {
        self.slot().client_proxy.connection_count()
    }
}

impl Cluster {
    /// Starts a cluster of `size` members with default settings:
    /// `ClusterBuilder::new(size).start()`.
    pub fn start(size: usize) -> Result<Cluster, TestkitError> {
        ClusterBuilder::new(size).start()
    }

    /// Number of members (including removed ones).
    pub fn size(&self) -> usize {
        self.slots.len()
    }

    /// The version reported by `etcd --version`.
    pub fn server_version(&self) -> EtcdVersion {
        self.version
    }

    /// The etcd binary in use.
    pub fn etcd_bin(&self) -> &Path {
        &self.bin
    }

    /// The cluster's temp directory (member `i` lives in `dir/m{i}`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The client proxy URLs of all members, `http://127.0.0.1:PORT` (`https://` in a TLS
    /// cluster), in member order.
    pub fn client_urls(&self) -> Vec<String> {
        self.slots
            .iter()
            .map(|s| self.proxy_client_url(s))
            .collect()
    }

    /// The certificate files of a TLS cluster ([`ClusterBuilder::client_tls`]), `None` for a
    /// plain one.
    pub fn tls_files(&self) -> Option<TlsFiles> {
        self.tls.as_ref().map(|t| t.files.clone())
    }

    /// Whether the members require client certificates
    /// ([`ClusterBuilder::client_cert_auth`]).
    pub fn client_cert_auth(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.client_cert_auth)
    }

    fn client_scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    fn proxy_client_url(&self, slot: &Slot) -> String {
        format!("{}://{}", self.client_scheme(), slot.client_proxy.addr())
    }

    /// The client proxy endpoints of all members as `127.0.0.1:PORT` (no scheme).
    pub fn client_endpoints(&self) -> Vec<String> {
        self.slots
            .iter()
            .map(|s| s.client_proxy.addr().to_string())
            .collect()
    }

    /// A view of member `i`.
    ///
    /// # Panics
    /// If `i >= self.size()`, like slice indexing.
    pub fn member(&self, i: usize) -> Member<'_> {
        assert!(
            i < self.size(),
            "no member {i} (cluster has {} members)",
            self.size()
        );
        Member {
            cluster: self,
            index: i,
        }
    }

    /// The raft ids of all members, in member order (learned at startup; stable across
    /// restarts).
    pub fn member_ids(&self) -> Vec<u64> {
        self.ids.clone()
    }

    fn check(&self, i: usize) -> Result<(), TestkitError> {
        if i >= self.size() {
            return Err(TestkitError::NoSuchMember {
                index: i,
                size: self.size(),
            });
        }
        Ok(())
    }

    fn proc_ports(&self, i: usize) -> (u16, u16) {
        let procs = lock(&self.procs);
        (procs[i].client_port, procs[i].peer_port)
    }

    /// Where the testkit itself talks plain HTTP to member `i` (`/health`, JSON gateway):
    /// its client listener, or the extra plain listener of a TLS member.
    fn control_addr(&self, i: usize) -> SocketAddr {
        let port = {
            let procs = lock(&self.procs);
            if self.tls.is_some() {
                procs[i].control_port
            } else {
                procs[i].client_port
            }
        };
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
    }

    // ----- process control --------------------------------------------------------------

    /// Starts all members as a new cluster, retrying with fresh ports on a port clash.
    fn boot(&mut self) -> Result<(), TestkitError> {
        let all: Vec<usize> = (0..self.size()).collect();
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.token = format!("etcdv3-testkit-{:016x}", ports::random_u64());
            for &i in &all {
                self.spawn(i, "new")?;
            }
            match self.wait_healthy(&all, self.health_timeout) {
                Ok(()) => break,
                Err(e) if attempt < PORT_RETRIES && port_clash(&e) => {
                    for &i in &all {
                        self.stop_process(i);
                        let _ = fs::remove_dir_all(&self.slots[i].data_dir);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        let mut ids = Vec::with_capacity(self.size());
        for &i in &all {
            ids.push(self.member_status(i)?.member_id);
        }
        self.ids = ids;
        Ok(())
    }

    /// Picks fresh listener ports for member `i`, points its proxies at them and spawns etcd.
    fn spawn(&self, i: usize, state: &str) -> Result<(), TestkitError> {
        let client_port = ports::reserve_port()?;
        let peer_port = ports::reserve_port()?;
        let control_port = if self.tls.is_some() {
            ports::reserve_port()?
        } else {
            0
        };
        let slot = &self.slots[i];
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&slot.log)?;
        writeln!(
            log,
            "=== etcdv3-testkit: starting {} ({state}) client 127.0.0.1:{client_port} \
             peer 127.0.0.1:{peer_port}{}",
            slot.name,
            if control_port != 0 {
                format!(" control 127.0.0.1:{control_port}")
            } else {
                String::new()
            }
        )?;
        let listen_client = if self.tls.is_some() {
            format!("https://127.0.0.1:{client_port},http://127.0.0.1:{control_port}")
        } else {
            format!("http://127.0.0.1:{client_port}")
        };
        let mut cmd = Command::new(&self.bin);
        cmd.arg(format!("--name={}", slot.name))
            .arg(format!("--data-dir={}", slot.data_dir.display()))
            .arg(format!("--listen-client-urls={listen_client}"))
            .arg(format!(
                "--advertise-client-urls={}",
                std::iter::once(self.proxy_client_url(slot))
                    .chain(self.extra_advertised_client_urls.iter().cloned())
                    .collect::<Vec<_>>()
                    .join(",")
            ))
            .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"))
            .arg(format!(
                "--initial-advertise-peer-urls={}",
                slot.peer_proxy.url()
            ))
            .arg(format!("--initial-cluster={}", self.initial_cluster))
            .arg(format!("--initial-cluster-state={state}"))
            .arg(format!("--initial-cluster-token={}", self.token))
            .arg("--heartbeat-interval=100")
            .arg("--election-timeout=1000")
            .arg("--logger=zap");
        if self.version.at_least(3, 5) {
            // Tests only SIGKILL processes, which keeps the page cache: fsync buys nothing.
            cmd.arg("--unsafe-no-fsync");
        }
        if let Some(tls) = &self.tls {
            cmd.arg(format!("--cert-file={}", tls.files.server_cert.display()))
                .arg(format!("--key-file={}", tls.files.server_key.display()));
            // etcd requires client certificates as soon as it has a trusted CA (even
            // without --client-cert-auth), so the CA is only passed when they are wanted.
            if tls.client_cert_auth {
                cmd.arg("--client-cert-auth")
                    .arg(format!("--trusted-ca-file={}", tls.files.ca.display()));
            }
        }
        cmd.args(&self.extra_args);
        // etcd reads ETCD_* variables as flags (ETCD_BIN would be warned about, others could
        // change the configuration): start it with none.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("ETCD_") {
                cmd.env_remove(key);
            }
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|source| TestkitError::Spawn {
                bin: self.bin.clone(),
                source,
            })?;
        let peer_addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, peer_port));
        let client_addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, client_port));
        slot.client_proxy.set_upstream(client_addr);
        slot.peer_proxy.set_upstream(peer_addr);
        self.net.set_pid(i, Some(child.id()));
        let mut procs = lock(&self.procs);
        let p = &mut procs[i];
        p.child = Some(child);
        p.paused = false;
        p.client_port = client_port;
        p.peer_port = peer_port;
        p.control_port = control_port;
        Ok(())
    }

    /// SIGKILLs member `i`'s process if any (SIGCONT first if paused) and reaps it.
    fn stop_process(&self, i: usize) -> bool {
        let child = {
            let mut procs = lock(&self.procs);
            let p = &mut procs[i];
            let paused = std::mem::take(&mut p.paused);
            p.child.take().map(|c| (c, paused))
        };
        self.net.set_pid(i, None);
        let Some((mut child, paused)) = child else {
            return false;
        };
        if paused {
            let _ = signal(child.id(), Signal::SIGCONT);
        }
        let _ = signal(child.id(), Signal::SIGKILL);
        let _ = child.wait();
        true
    }

    /// Returns the exit status if member `i`'s process has exited.
    fn exited(&self, i: usize) -> Option<String> {
        let mut procs = lock(&self.procs);
        match procs[i].child.as_mut().map(Child::try_wait) {
            Some(Ok(Some(status))) => Some(status.to_string()),
            Some(Ok(None)) => None,
            Some(Err(e)) => Some(format!("wait failed: {e}")),
            None => Some("not running".into()),
        }
    }

    fn running_pid(&self, i: usize) -> Result<u32, TestkitError> {
        self.check(i)?;
        let procs = lock(&self.procs);
        if procs[i].removed {
            return Err(TestkitError::Removed(i));
        }
        procs[i]
            .child
            .as_ref()
            .map(Child::id)
            .ok_or(TestkitError::NotRunning(i))
    }

    /// Waits until every member in `members` answers `/health` with `"health":"true"`.
    fn wait_healthy(&self, members: &[usize], timeout: Duration) -> Result<(), TestkitError> {
        let start = Instant::now();
        let mut pending: Vec<(usize, String)> =
            members.iter().map(|&i| (i, String::from("-"))).collect();
        loop {
            let mut still = Vec::new();
            for (i, _) in pending {
                if let Some(status) = self.exited(i) {
                    return Err(TestkitError::Exited {
                        member: i,
                        status,
                        log_tail: log_tail(&self.slots[i].log, LOG_TAIL_LINES),
                    });
                }
                match self.health_body(i) {
                    Ok(body) if body_healthy(&body) => {}
                    Ok(body) => still.push((i, body)),
                    Err(e) => still.push((i, e.to_string())),
                }
            }
            pending = still;
            let Some((member, last)) = pending.first() else {
                return Ok(());
            };
            if start.elapsed() >= timeout {
                return Err(TestkitError::HealthTimeout {
                    member: *member,
                    waited: start.elapsed(),
                    last: last.clone(),
                    log_tail: log_tail(&self.slots[*member].log, LOG_TAIL_LINES),
                });
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn health_body(&self, i: usize) -> std::io::Result<String> {
        let r = http::request(self.control_addr(i), "GET", "/health", None, HTTP_TIMEOUT)?;
        Ok(format!("{} {}", r.status, r.body.trim()))
    }

    /// Asks member `i` directly (bypassing its client proxy) for `GET /health`: `Ok(true)`
    /// for `"health":"true"`, `Ok(false)` for any other answer, an error if it does not
    /// answer within 2 s (e.g. killed or paused).
    pub fn health(&self, i: usize) -> Result<bool, TestkitError> {
        self.check(i)?;
        self.health_body(i)
            .map(|b| body_healthy(&b))
            .map_err(|e| TestkitError::Http {
                member: i,
                path: "/health".into(),
                detail: e.to_string(),
            })
    }

    /// Member `i`'s Prometheus metrics (`GET /metrics`, asked directly, not through its
    /// client proxy), as text. [`metric_sum`] adds up one counter from it.
    pub fn metrics(&self, i: usize) -> Result<String, TestkitError> {
        self.running_pid(i)?;
        let err = |detail: String| TestkitError::Http {
            member: i,
            path: "/metrics".into(),
            detail,
        };
        let r = http::request(self.control_addr(i), "GET", "/metrics", None, HTTP_TIMEOUT)
            .map_err(|e| err(e.to_string()))?;
        if r.status != 200 {
            return Err(err(format!("status {}", r.status)));
        }
        Ok(r.body)
    }

    /// Waits up to `timeout` until member `i` is healthy.
    pub fn wait_member_healthy(&self, i: usize, timeout: Duration) -> Result<(), TestkitError> {
        self.running_pid(i)?;
        self.wait_healthy(&[i], timeout)
    }

    /// Kills member `i` with SIGKILL and reaps it. Its proxies stay; connections to them are
    /// accepted and then closed because nothing listens behind them.
    pub fn kill(&self, i: usize) -> Result<(), TestkitError> {
        self.running_pid(i)?;
        self.stop_process(i);
        Ok(())
    }

    /// Stops member `i` with SIGSTOP (it keeps its sockets; nothing answers).
    pub fn pause(&self, i: usize) -> Result<(), TestkitError> {
        let pid = self.running_pid(i)?;
        signal(pid, Signal::SIGSTOP)?;
        lock(&self.procs)[i].paused = true;
        wait_proc_state(pid, |s| s == 'T');
        Ok(())
    }

    /// Continues member `i` after [`Cluster::pause`] with SIGCONT.
    pub fn resume(&self, i: usize) -> Result<(), TestkitError> {
        let pid = self.running_pid(i)?;
        signal(pid, Signal::SIGCONT)?;
        lock(&self.procs)[i].paused = false;
        wait_proc_state(pid, |s| s != 'T');
        Ok(())
    }

    /// Starts member `i` again on its data dir (`--initial-cluster-state existing`, new
    /// listener ports behind the same proxies) and waits until it is healthy. A running
    /// member is SIGKILLed first. Fails with [`TestkitError::HealthTimeout`] if it cannot
    /// get healthy, e.g. while isolated or without a quorum.
    pub fn restart(&self, i: usize) -> Result<(), TestkitError> {
        self.check(i)?;
        if lock(&self.procs)[i].removed {
            return Err(TestkitError::Removed(i));
        }
        self.stop_process(i);
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.spawn(i, "existing")?;
            match self.wait_healthy(&[i], self.health_timeout) {
                Ok(()) => return Ok(()),
                Err(e) if attempt < PORT_RETRIES && port_clash(&e) => {
                    self.stop_process(i);
                }
                Err(e) => return Err(e),
            }
        }
    }

    // ----- network faults ---------------------------------------------------------------

    /// Cuts member `i` off from all its peers in both directions: every peer connection from
    /// or to `i` is closed and new ones are refused, until [`Cluster::heal`]. Its client
    /// proxy keeps forwarding, so clients still reach it.
    pub fn isolate(&self, i: usize) -> Result<(), TestkitError> {
        self.check(i)?;
        self.net.set_isolated(i, true);
        for (j, slot) in self.slots.iter().enumerate() {
            slot.peer_proxy
                .kill_where(|from| j == i || from == Some(i) || from.is_none());
        }
        Ok(())
    }

    /// Lets peer traffic of member `i` through again (etcd redials on its own).
    pub fn heal(&self, i: usize) -> Result<(), TestkitError> {
        self.check(i)?;
        self.net.set_isolated(i, false);
        Ok(())
    }

    /// Turns member `i`'s client proxy into a dead network path: open connections stay open
    /// but no byte moves in either direction, and new connections are accepted and then
    /// hang. Held bytes are delivered after [`Cluster::unblackhole_client`], as TCP would
    /// after a healed partition.
    pub fn blackhole_client(&self, i: usize) -> Result<(), TestkitError> {
        self.check(i)?;
        self.slots[i].client_proxy.set_blackholed(true);
        Ok(())
    }

    /// Undoes [`Cluster::blackhole_client`].
    pub fn unblackhole_client(&self, i: usize) -> Result<(), TestkitError> {
        self.check(i)?;
        self.slots[i].client_proxy.set_blackholed(false);
        Ok(())
    }

    /// Closes every current client connection of member `i`: the client side sees a TCP
    /// RST (SO_LINGER 0), etcd a FIN. New connections work as before. Returns how many
    /// connections were reset.
    pub fn reset_client(&self, i: usize) -> Result<usize, TestkitError> {
        self.check(i)?;
        Ok(self.slots[i].client_proxy.reset_all())
    }

    // ----- cluster state ----------------------------------------------------------------

    fn gateway(&self, i: usize, path: &str, body: &str) -> Result<String, TestkitError> {
        let err = |detail: String| TestkitError::Http {
            member: i,
            path: path.into(),
            detail,
        };
        let r = http::request(self.control_addr(i), "POST", path, Some(body), HTTP_TIMEOUT)
            .map_err(|e| err(e.to_string()))?;
        if r.status != 200 {
            return Err(err(format!("status {}: {}", r.status, r.body.trim())));
        }
        Ok(r.body)
    }

    /// Member `i`'s status via the JSON gateway (`POST /v3/maintenance/status`), asked
    /// directly (not through its client proxy).
    pub fn member_status(&self, i: usize) -> Result<MemberStatus, TestkitError> {
        self.running_pid(i)?;
        let path = "/v3/maintenance/status";
        let body = self.gateway(i, path, "{}")?;
        let member_id = http::json_u64(&body, "member_id").ok_or_else(|| TestkitError::Http {
            member: i,
            path: path.into(),
            detail: format!("no member_id in {body}"),
        })?;
        Ok(MemberStatus {
            member_id,
            leader: http::json_u64(&body, "leader").unwrap_or(0),
            raft_term: http::json_u64(&body, "raftTerm").unwrap_or(0),
            raft_index: http::json_u64(&body, "raftIndex").unwrap_or(0),
            version: http::json_field(&body, "version").unwrap_or_default(),
        })
    }

    /// Indices of members whose process runs unpaused.
    fn live_members(&self) -> Vec<usize> {
        let procs = lock(&self.procs);
        (0..self.size())
            .filter(|&i| procs[i].child.is_some() && !procs[i].paused && !procs[i].removed)
            .collect()
    }

    /// The current leader's index: asks every running, unpaused member for its status; the
    /// leader is a member that reports itself as leader, the one with the highest raft term
    /// if several do (an isolated ex-leader may still claim it with a stale term). `None`
    /// if no live member is leader (e.g. during an election, or when followers still
    /// believe in a leader that was just killed).
    pub fn leader(&self) -> Option<usize> {
        let mut best: Option<(u64, usize)> = None;
        for i in self.live_members() {
            if let Ok(st) = self.member_status(i) {
                let claims = st.leader != 0 && st.leader == st.member_id;
                if claims && best.is_none_or(|(term, _)| st.raft_term > term) {
                    best = Some((st.raft_term, i));
                }
            }
        }
        best.map(|(_, i)| i)
    }

    /// Polls [`Cluster::leader`] until there is one, for up to `timeout`.
    pub fn wait_for_leader(&self, timeout: Duration) -> Result<usize, TestkitError> {
        let start = Instant::now();
        loop {
            if let Some(l) = self.leader() {
                return Ok(l);
            }
            if start.elapsed() >= timeout {
                return Err(TestkitError::Timeout {
                    what: "a leader".into(),
                    waited: start.elapsed(),
                });
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Removes member `i` from the cluster (`POST /v3/cluster/member/remove` sent to another
    /// running member), then kills its process. etcd refuses removals until the members
    /// have been connected for about 5 s; this retries (up to the health timeout) meanwhile. The index stays valid for the accessors;
    /// process operations on it fail with [`TestkitError::Removed`].
    pub fn remove_member(&self, i: usize) -> Result<(), TestkitError> {
        self.check(i)?;
        if lock(&self.procs)[i].removed {
            return Err(TestkitError::Removed(i));
        }
        let body = format!("{{\"ID\":\"{}\"}}", self.ids[i]);
        let start = Instant::now();
        'retry: loop {
            let mut last_err = None;
            for j in self.live_members().into_iter().filter(|&j| j != i) {
                match self.gateway(j, "/v3/cluster/member/remove", &body) {
                    Ok(_) => break 'retry,
                    Err(e) => last_err = Some(e),
                }
            }
            // etcd refuses ("unhealthy cluster") until the remaining members have been
            // connected to each other for 5 s, e.g. right after startup: retry.
            let retryable = match &last_err {
                Some(TestkitError::Http { detail, .. }) => detail.contains("unhealthy cluster"),
                _ => false,
            };
            if !retryable || start.elapsed() >= self.health_timeout {
                return Err(last_err.unwrap_or_else(|| TestkitError::Timeout {
                    what: format!("another running member to remove member {i} through"),
                    waited: start.elapsed(),
                }));
            }
            thread::sleep(Duration::from_millis(200));
        }
        self.stop_process(i);
        lock(&self.procs)[i].removed = true;
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.slots.len() {
            self.stop_process(i);
        }
        // Proxies stop when `slots` drops, right after this.
        let keep = std::env::var_os("ETCD_TESTKIT_KEEP").is_some_and(|v| v != "0" && !v.is_empty());
        if keep {
            eprintln!("etcdv3-testkit: keeping {}", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

// ----- helpers ----------------------------------------------------------------------------

fn signal(pid: u32, sig: Signal) -> Result<(), TestkitError> {
    let name = sig.as_str();
    let raw = i32::try_from(pid).map_err(|_| TestkitError::Signal {
        signal: name,
        pid,
        source: nix::errno::Errno::ESRCH,
    })?;
    nix::sys::signal::kill(Pid::from_raw(raw), sig).map_err(|source| TestkitError::Signal {
        signal: name,
        pid,
        source,
    })
}

/// Polls `/proc/PID/stat` (up to 1 s) until the process state letter satisfies `ok`.
fn wait_proc_state(pid: u32, ok: impl Fn(char) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline {
        let state = fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                s.rsplit_once(')')
                    .and_then(|(_, rest)| rest.trim_start().chars().next())
            });
        match state {
            Some(s) if !ok(s) => thread::sleep(Duration::from_millis(5)),
            _ => return,
        }
    }
}

/// The sum of every sample of counter `name` in a Prometheus text exposition (from
/// [`Cluster::metrics`]) whose labels include all of `labels` (`("grpc_method", "Range")`).
///
/// ```
/// let text = "# TYPE c counter\nc{a=\"x\",b=\"y\"} 3\nc{a=\"x\",b=\"z\"} 4\nc{a=\"w\"} 9\nc_other 1\n";
/// assert_eq!(etcdv3_testkit::metric_sum(text, "c", &[("a", "x")]), 7.0);
/// assert_eq!(etcdv3_testkit::metric_sum(text, "c", &[]), 16.0);
/// ```
pub fn metric_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut sum = 0.0;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let (label_text, value) = if let Some(inner) = rest.strip_prefix('{') {
            match inner.split_once('}') {
                Some((l, v)) => (l, v),
                None => continue,
            }
        } else if rest.starts_with(' ') {
            ("", rest)
        } else {
            // Another metric whose name starts with `name`.
            continue;
        };
        let wanted = labels
            .iter()
            .all(|(k, v)| label_text.split(',').any(|kv| kv == format!("{k}=\"{v}\"")));
        if !wanted {
            continue;
        }
        if let Some(v) = value
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
        {
            sum += v;
        }
    }
    sum
}

fn body_healthy(body: &str) -> bool {
    body.replace(' ', "").contains("\"health\":\"true\"")
}

fn port_clash(e: &TestkitError) -> bool {
    match e {
        TestkitError::Exited { log_tail, .. } | TestkitError::HealthTimeout { log_tail, .. } => {
            log_tail.contains("address already in use")
        }
        _ => false,
    }
}

fn log_tail(path: &Path, lines: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn search_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

/// The etcd binary: `explicit`, else `$ETCD_BIN`, else `etcd` on `PATH`. A value without a
/// `/` is looked up on `PATH`.
fn resolve_bin(explicit: Option<&Path>) -> Result<PathBuf, TestkitError> {
    let (wanted, origin) = match explicit {
        Some(p) => (p.to_path_buf(), "ClusterBuilder::etcd_bin"),
        None => match std::env::var_os("ETCD_BIN").filter(|v| !v.is_empty()) {
            Some(v) => (PathBuf::from(v), "ETCD_BIN"),
            None => (PathBuf::from("etcd"), "PATH"),
        },
    };
    let found = if wanted.components().count() > 1 || wanted.is_absolute() {
        Some(wanted.clone()).filter(|p| is_executable(p))
    } else {
        search_path(&wanted.to_string_lossy())
    };
    found.ok_or_else(|| TestkitError::BinaryNotFound {
        searched: format!("{} from {origin}", wanted.display()),
    })
}

fn detect_version(bin: &Path) -> Result<EtcdVersion, TestkitError> {
    let err = |detail: String| TestkitError::Version {
        bin: bin.to_path_buf(),
        detail,
    };
    let out = Command::new(bin)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| err(e.to_string()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    EtcdVersion::parse_version_output(&text)
        .ok_or_else(|| err(format!("unexpected output {:?}", text.trim())))
}

fn make_temp_dir() -> Result<PathBuf, TestkitError> {
    let base = std::env::temp_dir();
    let mut last = None;
    for _ in 0..16 {
        let dir = base.join(format!(
            "etcdv3-testkit-{}-{:08x}",
            std::process::id(),
            ports::random_u64() as u32
        ));
        match fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e.into()),
        }
    }
    Err(last
        .unwrap_or_else(|| std::io::Error::other("cannot create temp dir"))
        .into())
}

/// `Cluster` must stay shareable between threads.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Cluster>();
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions() {
        let v = EtcdVersion::parse_version_output(
            "etcd Version: 3.4.23\nGit SHA: Not provided\nGo Version: go1.19.8\n",
        )
        .unwrap();
        assert_eq!(
            v,
            EtcdVersion {
                major: 3,
                minor: 4,
                patch: 23
            }
        );
        assert_eq!(v.to_string(), "3.4.23");
        assert!(v.at_least(3, 4) && !v.at_least(3, 5));
        assert!(EtcdVersion::parse_version_output("etcdctl version: 3.5.1").is_none());
        assert!(
            EtcdVersion::parse_version_output("etcd Version: 3.6.0-rc.1")
                .unwrap()
                .at_least(3, 6)
        );
    }

    #[test]
    fn missing_binary_is_a_clear_error() {
        let e = ClusterBuilder::new(1)
            .etcd_bin("/nonexistent/etcd")
            .start()
            .unwrap_err();
        assert!(matches!(e, TestkitError::BinaryNotFound { .. }), "{e}");
        assert!(e.to_string().contains("/nonexistent/etcd"), "{e}");
        assert!(matches!(
            ClusterBuilder::new(0).start().unwrap_err(),
            TestkitError::InvalidSize(0)
        ));
    }

    #[test]
    fn health_bodies() {
        assert!(body_healthy("200 {\"health\":\"true\"}"));
        assert!(body_healthy("200 {\"health\":\"true\",\"reason\":\"\"}"));
        assert!(!body_healthy(
            "503 {\"health\":\"false\",\"reason\":\"RAFT NO LEADER\"}"
        ));
    }
}
