//! [`ClusterBuilder`]: the settings of a cluster and its startup.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::binary::{detect_version, resolve_bin};
use crate::cluster::{Proc, Slot};
use crate::proxy::{PeerNet, Proxy, Role};
use crate::tls::{self, TlsFiles};
use crate::{ports, Cluster, TestkitError, DEFAULT_HEALTH_TIMEOUT};

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
    unix_socket: bool,
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
            unix_socket: false,
        }
    }

    /// Serves the client URLs over TLS (`https://`): the testkit generates a CA, a server
    /// certificate for `127.0.0.1` and `localhost` and a client certificate into the
    /// cluster directory (see [`Cluster::tls_files`]) and starts etcd with `--cert-file`
    /// and `--key-file`. [`Cluster::client_urls`] and [`Member::client_url`](crate::Member::client_url) then name
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

    /// Sets raft pre-vote (`--pre-vote`): etcd 3.5 turns it on by default, etcd
    /// 3.4 off. Without it a member cut off from its peers keeps campaigning at
    /// ever higher terms and, when it can reach them again, deposes the leader:
    /// the cluster holds an election after the heal.
    pub fn pre_vote(self, on: bool) -> Self {
        self.arg(format!("--pre-vote={on}"))
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

    /// Each member also serves clients on a unix socket in its member directory
    /// (`--listen-client-urls=...,unix://localhost:2379`, run from that directory: etcd only
    /// accepts `host:port`-shaped socket names, relative to its working directory). The
    /// socket is plain HTTP/2, or TLS (`unixs://`, the server certificate is valid for
    /// `localhost`) in a [`ClusterBuilder::client_tls`] cluster; it is not proxied and not
    /// advertised; see
    /// [`Member::unix_socket_path`](crate::Member::unix_socket_path) and
    /// [`Member::unix_client_url`](crate::Member::unix_client_url). Unix platforms only.
    pub fn unix_socket(mut self, on: bool) -> Self {
        self.unix_socket = on;
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
            closed: AtomicBool::new(false),
        };
        for i in 0..self.size {
            let name = format!("m{i}");
            let member_dir = cluster.dir.join(&name);
            fs::create_dir_all(&member_dir)?;
            slots.push(Slot {
                data_dir: member_dir.join("data"),
                log: member_dir.join("etcd.log"),
                unix_socket: self
                    .unix_socket
                    .then(|| member_dir.join(crate::process::UNIX_SOCKET_NAME)),
                name,
                // Frames are counted on plain-HTTP client links only (TLS ones are opaque).
                client_proxy: Proxy::start(Role::Client, placeholder, !self.client_tls)?,
                peer_proxy: Proxy::start(
                    Role::Peer {
                        to: i,
                        net: Arc::clone(&net),
                    },
                    placeholder,
                    false,
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

/// A TLS cluster's certificates and settings.
#[derive(Debug)]
pub(crate) struct TlsSetup {
    pub(crate) files: TlsFiles,
    pub(crate) client_cert_auth: bool,
}

pub(crate) fn make_temp_dir() -> Result<PathBuf, TestkitError> {
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
