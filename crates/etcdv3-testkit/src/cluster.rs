//! [`Cluster`] and [`Member`]: what a running cluster holds, its accessors, and its cleanup.

use std::fmt;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::binary::EtcdVersion;
use crate::builder::TlsSetup;
use crate::h2frames::Http2Counts;
use crate::process::log_tail;
use crate::proxy::{lock, PeerNet, Proxy};
use crate::{ClusterBuilder, TestkitError, TlsFiles};

/// Per-member things that live as long as the cluster.
pub(crate) struct Slot {
    pub(crate) name: String,
    pub(crate) data_dir: PathBuf,
    pub(crate) log: PathBuf,
    pub(crate) client_proxy: Proxy,
    pub(crate) peer_proxy: Proxy,
    /// The unix socket the member also listens on
    /// ([`ClusterBuilder::unix_socket`]), in its member directory.
    pub(crate) unix_socket: Option<PathBuf>,
}

/// Per-member process state.
#[derive(Default)]
pub(crate) struct Proc {
    pub(crate) child: Option<Child>,
    pub(crate) paused: bool,
    pub(crate) removed: bool,
    pub(crate) client_port: u16,
    pub(crate) peer_port: u16,
    /// The plain-HTTP client listener of a TLS member (0 without TLS).
    pub(crate) control_port: u16,
}

///
/// All methods take `&self`, so a cluster can be shared (e.g. in an `Arc`) between the test
/// and threads or tasks that inject faults. Member indices run from 0 to `size - 1`; member
/// `i` is named `m{i}`.
pub struct Cluster {
    pub(crate) bin: PathBuf,
    pub(crate) version: EtcdVersion,
    pub(crate) dir: PathBuf,
    pub(crate) token: String,
    pub(crate) initial_cluster: String,
    pub(crate) extra_args: Vec<String>,
    pub(crate) extra_advertised_client_urls: Vec<String>,
    pub(crate) health_timeout: Duration,
    pub(crate) tls: Option<TlsSetup>,
    pub(crate) slots: Vec<Slot>,
    pub(crate) procs: Mutex<Vec<Proc>>,
    pub(crate) ids: Vec<u64>,
    pub(crate) net: Arc<PeerNet>,
    /// Set by [`Cluster::shutdown`] (under the `procs` lock): no process may start after it.
    pub(crate) closed: AtomicBool,
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
    pub(crate) fn slot(&self) -> &'a Slot {
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

    /// The path of the unix socket the member also serves clients on (no proxy; TLS in a TLS
    /// cluster), when the cluster was built with [`ClusterBuilder::unix_socket`]. etcd creates
    /// it when it starts; the cluster directory (and the socket) is removed on drop.
    pub fn unix_socket_path(&self) -> Option<&'a Path> {
        self.slot().unix_socket.as_deref()
    }

    /// `unix://<absolute path>` of [`Member::unix_socket_path`] (`unixs://` in a TLS
    /// cluster), an endpoint for the client.
    pub fn unix_client_url(&self) -> Option<String> {
        let scheme = if self.cluster.tls.is_some() {
            "unixs"
        } else {
            "unix"
        };
        self.unix_socket_path()
            .map(|p| format!("{scheme}://{}", p.display()))
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

    /// The HTTP/2 frames the member's client proxy counted since the cluster started (all
    /// zero on a TLS cluster, whose client links it cannot read).
    pub fn client_http2_counts(&self) -> Http2Counts {
        self.slot().client_proxy.http2_counts()
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

    /// The HTTP/2 frames every member's client proxy counted, summed
    /// ([`Member::client_http2_counts`]).
    pub fn client_http2_counts(&self) -> Http2Counts {
        self.slots
            .iter()
            .map(|s| s.client_proxy.http2_counts())
            .fold(Http2Counts::default(), |a, b| a + b)
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

    pub(crate) fn client_scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    pub(crate) fn proxy_client_url(&self, slot: &Slot) -> String {
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

    pub(crate) fn check(&self, i: usize) -> Result<(), TestkitError> {
        if i >= self.size() {
            return Err(TestkitError::NoSuchMember {
                index: i,
                size: self.size(),
            });
        }
        Ok(())
    }

    pub(crate) fn proc_ports(&self, i: usize) -> (u16, u16) {
        let procs = lock(&self.procs);
        (procs[i].client_port, procs[i].peer_port)
    }

    /// Where the testkit itself talks plain HTTP to member `i` (`/health`, JSON gateway):
    /// its client listener, or the extra plain listener of a TLS member.
    pub(crate) fn control_addr(&self, i: usize) -> SocketAddr {
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
}

impl Cluster {
    /// Stops the cluster for good, through a shared reference: SIGKILLs every member process
    /// (by pid), and deletes the temp directory (unless `ETCD_TESTKIT_KEEP=1`). Later process
    /// operations fail with [`TestkitError::ShutDown`]; a [`Cluster::restart`] running on
    /// another thread meanwhile cannot leave a process behind. Dropping the cluster does the
    /// same; this is for holders of an `Arc<Cluster>` that must clean up now (e.g. on Ctrl-C)
    /// while another thread may still hold a clone. Idempotent.
    pub fn shutdown(&self) {
        {
            let _procs = lock(&self.procs);
            if self.closed.swap(true, Ordering::SeqCst) {
                return;
            }
        }
        for i in 0..self.slots.len() {
            self.stop_process(i);
        }
        let keep = std::env::var_os("ETCD_TESTKIT_KEEP").is_some_and(|v| v != "0" && !v.is_empty());
        if keep {
            eprintln!("etcdv3-testkit: keeping {}", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }

    /// Whether [`Cluster::shutdown`] ran.
    pub fn is_shut_down(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Proxies stop when `slots` drops, right after this.
        self.shutdown();
    }
}
