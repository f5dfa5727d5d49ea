//! Client configuration, and the plain data types every layer above shares
//! (a call's [`Target`], the [`StaleRead`] marker of an answer).

use std::path::PathBuf;
use std::time::Duration;

pub use etcdv3_core::endpoints::balancer::Policy;
pub use etcdv3_core::machine::Config as CoreConfig;

/// How a [`crate::Client`] behaves. `Default` gives the recommended settings.
///
/// ```
/// use std::time::Duration;
/// use etcdv3_client::ClientOptions;
/// let opts = ClientOptions::default()
///     .with_timeout(Duration::from_secs(3))
///     .with_user("root", "secret");
/// assert_eq!(opts.request_timeout, Duration::from_secs(3));
/// // `{:?}` never prints the password (nor TLS key material).
/// assert!(!format!("{opts:?}").contains("secret"));
/// ```
#[derive(Clone)]
pub struct ClientOptions {
    /// Failover tunables of the core (policy, timeouts, probes, backoff).
    pub core: CoreConfig,
    /// Deadline of a unary call unless the call sets its own.
    pub request_timeout: Duration,
    /// User name and password: the client authenticates and refreshes the
    /// token when it expires.
    pub user: Option<(String, String)>,
    /// TLS settings, required for `https://` and `unixs://` endpoints (a
    /// `unixs://` server's certificate is checked against `localhost` unless
    /// a server name is set).
    pub tls: Option<TlsOptions>,
    /// Largest request message, in bytes (etcd's server accepts about 1.5 MiB
    /// by default).
    pub max_send_message_size: usize,
    /// Largest response message, in bytes.
    pub max_recv_message_size: usize,
    /// Send `hasleader: true` so that a member without a leader refuses at
    /// once instead of hanging (and cancels watches when it loses its leader).
    /// Per call kind: linearizable reads, writes, txns, lease, lock,
    /// election, auth and cluster calls carry it, and so do watch and
    /// keep-alive streams; serializable reads and Maintenance calls (status,
    /// hash, defragment, alarm, snapshot, move-leader) never do, so they
    /// work on a member without a leader (docs/failure-semantics.md,
    /// "`require_leader` per call kind").
    pub require_leader: bool,
    /// Seed of the core's randomness (backoff jitter, balancer choices);
    /// `None` draws one from the clock at start.
    pub seed: Option<u64>,
    /// Keep the endpoint set in sync with the cluster's member list at this
    /// interval; `None` disables.
    pub auto_sync_interval: Option<Duration>,
    /// Find the endpoints through DNS SRV records
    /// ([`ClientOptions::with_discovery_srv`]).
    pub discovery_srv: Option<SrvDiscovery>,
    /// Refuse to connect to a cluster older than etcd 3.2 (as Go's
    /// `RejectOldCluster`): the runtime crates' `connect` (and
    /// [`Client::connect`](crate::Client::connect)) ask the endpoints'
    /// status and fail with [`Error::OldCluster`](crate::Error::OldCluster)
    /// unless one reports 3.2 or later.
    pub reject_old_cluster: bool,
    /// HTTP/2 stream window, in bytes.
    pub stream_window: u32,
    /// HTTP/2 connection window, in bytes.
    pub connection_window: u32,
    /// Test hook (feature `test-util`): the first HTTP/2 stream id of every
    /// connection (odd; ignored otherwise), to reach stream-id exhaustion
    /// without 2^30 requests.
    #[cfg(feature = "test-util")]
    #[doc(hidden)]
    pub first_stream_id: Option<u32>,
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A service logs its configuration with `{:?}`: the password is
        // never printed (as TLS key material is not).
        let mut d = f.debug_struct("ClientOptions");
        d.field("core", &self.core)
            .field("request_timeout", &self.request_timeout)
            .field(
                "user",
                &self.user.as_ref().map(|(name, _)| (name, "<redacted>")),
            )
            .field("tls", &self.tls)
            .field("max_send_message_size", &self.max_send_message_size)
            .field("max_recv_message_size", &self.max_recv_message_size)
            .field("require_leader", &self.require_leader)
            .field("seed", &self.seed)
            .field("auto_sync_interval", &self.auto_sync_interval)
            .field("reject_old_cluster", &self.reject_old_cluster)
            .field("stream_window", &self.stream_window)
            .field("connection_window", &self.connection_window);
        #[cfg(feature = "test-util")]
        d.field("first_stream_id", &self.first_stream_id);
        d.finish()
    }
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            core: CoreConfig::default(),
            request_timeout: etcdv3_core::machine::DEFAULT_REQUEST_TIMEOUT,
            user: None,
            tls: None,
            max_send_message_size: etcdv3_core::wire::codec::DEFAULT_MAX_ENCODE_SIZE,
            max_recv_message_size: etcdv3_core::wire::codec::DEFAULT_MAX_DECODE_SIZE,
            require_leader: true,
            seed: None,
            auto_sync_interval: None,
            discovery_srv: None,
            reject_old_cluster: false,
            stream_window: 2 * 1024 * 1024,
            connection_window: 5 * 1024 * 1024,
            #[cfg(feature = "test-util")]
            first_stream_id: None,
        }
    }
}

impl ClientOptions {
    /// The recommended settings (the same as `Default`), to build on with
    /// the `with_*` methods as every options type of the crate.
    ///
    /// ```
    /// use etcdv3_client::ClientOptions;
    /// use std::time::Duration;
    /// let opts = ClientOptions::new().with_timeout(Duration::from_secs(3));
    /// assert_eq!(opts.request_timeout, Duration::from_secs(3));
    /// assert_eq!(ClientOptions::new().request_timeout, ClientOptions::default().request_timeout);
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Set the default deadline of unary calls.
    ///
    /// ```
    /// use etcdv3_client::ClientOptions;
    /// use std::time::Duration;
    /// let opts = ClientOptions::default().with_timeout(Duration::from_secs(3));
    /// assert_eq!(opts.request_timeout, Duration::from_secs(3));
    /// ```
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Authenticate as `user` with `password`.
    ///
    /// ```
    /// use etcdv3_client::ClientOptions;
    /// let opts = ClientOptions::default().with_user("app", "secret");
    /// assert_eq!(opts.user, Some(("app".to_string(), "secret".to_string())));
    /// ```
    pub fn with_user(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.user = Some((user.into(), password.into()));
        self
    }

    /// Use TLS settings.
    ///
    /// ```
    /// use etcdv3_client::{ClientOptions, TlsOptions};
    /// let opts = ClientOptions::default().with_tls(TlsOptions::default().with_ca_file("/etc/etcd/ca.pem"));
    /// assert!(opts.tls.is_some());
    /// ```
    pub fn with_tls(mut self, tls: TlsOptions) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Choose the balancing policy.
    ///
    /// ```
    /// use etcdv3_client::{ClientOptions, Policy};
    /// let opts = ClientOptions::default().with_policy(Policy::RoundRobin);
    /// assert!(matches!(opts.core.policy, Policy::RoundRobin));
    /// ```
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.core.policy = policy;
        self
    }

    /// Fix the seed of the core's randomness (for reproducible runs).
    ///
    /// ```
    /// use etcdv3_client::ClientOptions;
    /// assert_eq!(ClientOptions::default().with_seed(42).seed, Some(42));
    /// ```
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Sync endpoints from the member list at `interval`. The endpoints the
    /// client was created with (the seeds) stay a fallback for its whole
    /// life: they are used until an advertised endpoint answered, and come
    /// back whenever no endpoint in use answers or a sync fails.
    ///
    /// ```
    /// use etcdv3_client::ClientOptions;
    /// use std::time::Duration;
    /// let opts = ClientOptions::default().with_auto_sync(Duration::from_secs(60));
    /// assert_eq!(opts.auto_sync_interval, Some(Duration::from_secs(60)));
    /// ```
    pub fn with_auto_sync(mut self, interval: Duration) -> Self {
        self.auto_sync_interval = Some(interval);
        self
    }

    /// Find the cluster's endpoints through DNS SRV records, as etcdctl's
    /// `--discovery-srv` ([`SrvDiscovery`]): [`Client::connect`]
    /// (and the runtime crates' `connect`) resolves them first and uses
    /// them in place of the endpoints given, which stay the fallback when
    /// the records name none; with [`ClientOptions::with_auto_sync`] they
    /// are resolved again before every sync and become its fallback seeds.
    /// [`Client::new`] does not resolve (it cannot wait).
    ///
    /// [`Client::connect`]: crate::Client::connect
    /// [`Client::new`]: crate::Client::new
    ///
    /// ```
    /// use etcdv3_client::{ClientOptions, SrvDiscovery};
    /// let opts = ClientOptions::default().with_discovery_srv(SrvDiscovery::new("example.com"));
    /// assert_eq!(opts.discovery_srv.unwrap().domain, "example.com");
    /// ```
    pub fn with_discovery_srv(mut self, discovery: SrvDiscovery) -> Self {
        self.discovery_srv = Some(discovery);
        self
    }

    /// Longest time opening a connection (TCP, TLS, HTTP/2 handshake, first
    /// ping answered) may take before the endpoint counts as failed
    /// ([`CoreConfig::connect_timeout`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use etcdv3_client::ClientOptions;
    /// let opts = ClientOptions::default()
    ///     .with_connect_timeout(Duration::from_secs(2))
    ///     .with_keepalive(Duration::from_secs(10), Duration::from_secs(3))
    ///     .with_stall_timeout(Duration::from_secs(4))
    ///     .with_require_leader(false)
    ///     .with_reject_old_cluster();
    /// assert_eq!(opts.core.connect_timeout, Duration::from_secs(2));
    /// assert_eq!(opts.core.keepalive_interval, Duration::from_secs(10));
    /// assert_eq!(opts.core.ping_timeout, Duration::from_secs(3));
    /// assert!(opts.reject_old_cluster && !opts.require_leader);
    /// ```
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.core.connect_timeout = timeout;
        self
    }

    /// HTTP/2 keepalive: ping every `interval` while a long-lived stream is
    /// open (raised to etcd's minimum of 5 s, below which the server sends
    /// GOAWAY; the core spaces pings at least 5.5 s apart, so that one
    /// delayed on the way does not make the next arrive early), and declare
    /// the connection dead when a ping goes unanswered for `timeout`
    /// ([`CoreConfig::keepalive_interval`], [`CoreConfig::ping_timeout`]).
    ///
    /// ```
    /// use etcdv3_client::ClientOptions;
    /// use std::time::Duration;
    /// let opts = ClientOptions::default().with_keepalive(Duration::from_secs(1), Duration::from_secs(3));
    /// // Raised to etcd's minimum interval of 5 s.
    /// assert_eq!(opts.core.keepalive_interval, Duration::from_secs(5));
    /// assert_eq!(opts.core.ping_timeout, Duration::from_secs(3));
    /// ```
    pub fn with_keepalive(mut self, interval: Duration, timeout: Duration) -> Self {
        self.core.keepalive_interval = interval.max(etcdv3_core::machine::MIN_PING_INTERVAL);
        self.core.ping_timeout = timeout;
        self
    }

    /// Stall detection: a connection that owes a reply and was silent this
    /// long gets a liveness ping, and new calls avoid it until the pong
    /// ([`CoreConfig::stall_timeout`]).
    ///
    /// ```
    /// use etcdv3_client::ClientOptions;
    /// use std::time::Duration;
    /// let opts = ClientOptions::default().with_stall_timeout(Duration::from_secs(4));
    /// assert_eq!(opts.core.stall_timeout, Duration::from_secs(4));
    /// ```
    pub fn with_stall_timeout(mut self, timeout: Duration) -> Self {
        self.core.stall_timeout = timeout;
        self
    }

    /// Partition probes (`Maintenance/Status` to compare leader and term):
    /// every `interval` (`None` disables), and whether also while idle
    /// ([`CoreConfig::probe_interval`], [`CoreConfig::probe_when_idle`]).
    ///
    /// ```
    /// use etcdv3_client::ClientOptions;
    /// use std::time::Duration;
    /// let opts = ClientOptions::default().with_probes(Some(Duration::from_secs(10)), false);
    /// assert_eq!(opts.core.probe_interval, Some(Duration::from_secs(10)));
    /// assert!(!opts.core.probe_when_idle);
    /// ```
    pub fn with_probes(mut self, interval: Option<Duration>, when_idle: bool) -> Self {
        self.core.probe_interval = interval;
        self.core.probe_when_idle = when_idle;
        self
    }

    /// Close connections idle this long ([`CoreConfig::idle_timeout`]).
    ///
    /// ```
    /// use etcdv3_client::ClientOptions;
    /// use std::time::Duration;
    /// let opts = ClientOptions::default().with_idle_timeout(Duration::from_secs(300));
    /// assert_eq!(opts.core.idle_timeout, Duration::from_secs(300));
    /// ```
    pub fn with_idle_timeout(mut self, timeout: Duration) -> Self {
        self.core.idle_timeout = timeout;
        self
    }

    /// Whether members without a leader must refuse calls at once (default
    /// `true`); a call can override it ([`crate::CallOptions`]). Serializable
    /// reads and Maintenance calls never ask for a leader (see
    /// [`ClientOptions::require_leader`]).
    ///
    /// ```
    /// use etcdv3_client::ClientOptions;
    /// assert!(ClientOptions::default().require_leader);
    /// assert!(!ClientOptions::default().with_require_leader(false).require_leader);
    /// ```
    pub fn with_require_leader(mut self, require: bool) -> Self {
        self.require_leader = require;
        self
    }

    /// Largest request and response messages, in bytes.
    ///
    /// ```
    /// use etcdv3_client::ClientOptions;
    /// let opts = ClientOptions::default().with_max_message_size(4 << 20, 16 << 20);
    /// assert_eq!((opts.max_send_message_size, opts.max_recv_message_size), (4 << 20, 16 << 20));
    /// ```
    pub fn with_max_message_size(mut self, send: usize, recv: usize) -> Self {
        self.max_send_message_size = send;
        self.max_recv_message_size = recv;
        self
    }

    /// Refuse clusters older than etcd 3.2 when connecting
    /// ([`ClientOptions::reject_old_cluster`]).
    ///
    /// ```
    /// use etcdv3_client::ClientOptions;
    /// assert!(!ClientOptions::default().reject_old_cluster);
    /// assert!(ClientOptions::default().with_reject_old_cluster().reject_old_cluster);
    /// ```
    pub fn with_reject_old_cluster(mut self) -> Self {
        self.reject_old_cluster = true;
        self
    }
}

/// TLS settings (rustls, feature `tls`).
///
/// Trust comes from a CA file, CA certificates in memory (PEM bytes, e.g.
/// from a Kubernetes secret), the system's trust store (feature
/// `tls-native-roots`), or all of these; a client certificate for mutual TLS
/// from files or from memory. Or the caller hands over a whole
/// [`rustls::ClientConfig`](crate::rustls::ClientConfig) with
/// [`TlsOptions::with_client_config`].
///
/// A server the settings cannot verify (an untrusted CA, a certificate not
/// valid for the name, a client certificate the server refuses) is not
/// retried: calls fail at once with [`crate::Error::Tls`] when every
/// endpoint fails that way, and go to the other endpoints when some work.
///
/// ```
/// use etcdv3_client::TlsOptions;
/// # let (ca, cert, key) = (String::new(), String::new(), String::new());
/// // PEM text read from anywhere: an environment variable, a secret store.
/// let tls = TlsOptions::default()
///     .with_ca_pem(ca)
///     .with_identity_pem(cert, key)
///     .with_domain_name("etcd.example.internal");
/// assert!(tls.ca_pem.is_some());
/// ```
#[derive(Clone, Default)]
pub struct TlsOptions {
    /// PEM file with the CA certificates to trust.
    pub ca_file: Option<PathBuf>,
    /// CA certificates to trust, as PEM bytes (added to those of
    /// [`TlsOptions::ca_file`]).
    pub ca_pem: Option<Vec<u8>>,
    /// Trust the system's certificate store too (feature
    /// `tls-native-roots`, through `rustls-native-certs`).
    #[cfg(feature = "tls-native-roots")]
    pub native_roots: bool,
    /// Client certificate chain and key (PEM files) for mutual TLS.
    pub identity: Option<(PathBuf, PathBuf)>,
    /// Client certificate chain and key as PEM bytes, for mutual TLS (instead
    /// of [`TlsOptions::identity`]).
    pub identity_pem: Option<(Vec<u8>, Vec<u8>)>,
    /// Server name to verify (and send as SNI) instead of the endpoint's
    /// host: e.g. connect to `https://10.0.0.5:2379` and verify the
    /// certificate for `etcd.example.internal`.
    pub domain_name: Option<String>,
    /// Accept any server certificate: the connection is encrypted but the
    /// server is not authenticated. For tests and debugging only; set it with
    /// [`TlsOptions::danger_accept_invalid_certs`].
    pub danger_accept_invalid_certs: bool,
    /// A complete rustls configuration to use as is (only
    /// [`TlsOptions::domain_name`] still applies; `h2` is offered by ALPN when
    /// the configuration names no protocol).
    #[cfg(feature = "tls")]
    pub client_config: Option<std::sync::Arc<crate::rustls::ClientConfig>>,
}

impl std::fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Key material is never printed.
        let mut d = f.debug_struct("TlsOptions");
        d.field("ca_file", &self.ca_file)
            .field("ca_pem", &self.ca_pem.as_ref().map(|p| p.len()));
        #[cfg(feature = "tls-native-roots")]
        d.field("native_roots", &self.native_roots);
        d.field("identity", &self.identity)
            .field(
                "identity_pem",
                &self.identity_pem.as_ref().map(|_| "<redacted>"),
            )
            .field("domain_name", &self.domain_name)
            .field(
                "danger_accept_invalid_certs",
                &self.danger_accept_invalid_certs,
            );
        #[cfg(feature = "tls")]
        d.field(
            "client_config",
            &self.client_config.as_ref().map(|_| "<set>"),
        );
        d.finish()
    }
}

impl TlsOptions {
    /// Trust the CA certificates in `path`.
    ///
    /// ```
    /// use etcdv3_client::TlsOptions;
    /// let tls = TlsOptions::default().with_ca_file("/etc/etcd/ca.pem");
    /// assert_eq!(tls.ca_file.as_deref(), Some(std::path::Path::new("/etc/etcd/ca.pem")));
    /// ```
    pub fn with_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Trust the CA certificates in `pem` (PEM bytes, e.g. a Kubernetes
    /// secret's `ca.crt`).
    ///
    /// ```
    /// use etcdv3_client::TlsOptions;
    /// # let ca_crt = String::from("-----BEGIN CERTIFICATE-----\n...");
    /// let tls = TlsOptions::default().with_ca_pem(ca_crt.clone());
    /// assert_eq!(tls.ca_pem, Some(ca_crt.into_bytes()));
    /// ```
    pub fn with_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pem = Some(pem.into());
        self
    }

    /// Trust the system's certificate store as well (feature
    /// `tls-native-roots`).
    ///
    /// ```
    /// use etcdv3_client::TlsOptions;
    /// assert!(TlsOptions::default().with_native_roots().native_roots);
    /// ```
    #[cfg(feature = "tls-native-roots")]
    pub fn with_native_roots(mut self) -> Self {
        self.native_roots = true;
        self
    }

    /// Present a client certificate (PEM files).
    ///
    /// ```
    /// use etcdv3_client::TlsOptions;
    /// let tls = TlsOptions::default()
    ///     .with_ca_file("ca.pem")
    ///     .with_identity("client.pem", "client-key.pem");
    /// assert!(tls.identity.is_some());
    /// ```
    pub fn with_identity(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.identity = Some((cert.into(), key.into()));
        self
    }

    /// Present a client certificate given as PEM bytes (chain, then key).
    ///
    /// ```
    /// use etcdv3_client::TlsOptions;
    /// # let (cert, key) = (String::new(), String::new());
    /// let tls = TlsOptions::default().with_identity_pem(cert, key);
    /// assert!(tls.identity_pem.is_some() && tls.identity.is_none());
    /// ```
    pub fn with_identity_pem(mut self, cert: impl Into<Vec<u8>>, key: impl Into<Vec<u8>>) -> Self {
        self.identity_pem = Some((cert.into(), key.into()));
        self
    }

    /// Verify this server name instead of the endpoint's host.
    ///
    /// ```
    /// use etcdv3_client::TlsOptions;
    /// let tls = TlsOptions::default().with_domain_name("etcd.example.internal");
    /// assert_eq!(tls.domain_name.as_deref(), Some("etcd.example.internal"));
    /// ```
    pub fn with_domain_name(mut self, name: impl Into<String>) -> Self {
        self.domain_name = Some(name.into());
        self
    }

    /// Accept any server certificate (etcdctl's
    /// `--insecure-skip-tls-verify`): the traffic is encrypted, but anyone
    /// on the path can pose as the server. Never in production.
    ///
    /// ```
    /// use etcdv3_client::TlsOptions;
    /// let insecure = TlsOptions::default().danger_accept_invalid_certs();
    /// assert!(insecure.danger_accept_invalid_certs);
    /// ```
    pub fn danger_accept_invalid_certs(mut self) -> Self {
        self.danger_accept_invalid_certs = true;
        self
    }

    /// Use this rustls configuration as is, instead of building one from
    /// the other settings (which must then be left unset, except the
    /// domain name).
    ///
    /// ```
    /// use etcdv3_client::rustls::{self, ClientConfig, RootCertStore};
    /// use etcdv3_client::TlsOptions;
    /// use std::sync::Arc;
    /// let provider = Arc::new(rustls::crypto::ring::default_provider());
    /// let config = ClientConfig::builder_with_provider(provider)
    ///     .with_safe_default_protocol_versions()
    ///     .unwrap()
    ///     .with_root_certificates(RootCertStore::empty())
    ///     .with_no_client_auth();
    /// let tls = TlsOptions::default().with_client_config(Arc::new(config));
    /// assert!(tls.client_config.is_some());
    /// ```
    #[cfg(feature = "tls")]
    pub fn with_client_config(
        mut self,
        config: std::sync::Arc<crate::rustls::ClientConfig>,
    ) -> Self {
        self.client_config = Some(config);
        self
    }

    /// Whether trust or identity settings are given (which a caller-supplied
    /// rustls configuration replaces).
    #[cfg(feature = "tls")]
    pub(crate) fn sets_trust_or_identity(&self) -> bool {
        #[cfg(feature = "tls-native-roots")]
        let native = self.native_roots;
        #[cfg(not(feature = "tls-native-roots"))]
        let native = false;
        self.ca_file.is_some()
            || self.ca_pem.is_some()
            || native
            || self.identity.is_some()
            || self.identity_pem.is_some()
            || self.danger_accept_invalid_certs
    }
}

/// Where a call must run: one member of the cluster, named by the caller.
///
/// A call with a target runs on that member only: it is never moved to
/// another one (it waits for that member until its deadline). A target the
/// client does not know fails at once with
/// [`Error::UnknownTarget`](crate::Error::UnknownTarget).
///
/// ```
/// use etcdv3_client::{CallOptions, Target};
/// let on_first = CallOptions::new().with_target(Target::Endpoint("http://127.0.0.1:2379".into()));
/// let on_member = CallOptions::new().with_target(Target::Member(0x8e9e05c52164694d));
/// assert_ne!(on_first, on_member);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Target {
    /// One of the client's endpoints, written as given to the client
    /// (`http://host:port`, `https://host:port` or `host:port`).
    Endpoint(String),
    /// The member with this id (as in a response header's `member_id` or
    /// the member list). The client finds which of its endpoints it is
    /// (asking each endpoint's status once if it does not know yet).
    Member(u64),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Endpoint(e) => write!(f, "endpoint {e}"),
            Target::Member(id) => write!(f, "member {id:x}"),
        }
    }
}

/// A read answered below the revision this client had already seen when the
/// read started: the answer is older than something this client has seen.
///
/// The client's revision fence retries a serializable read answered below
/// that revision on other members, but only a few times
/// ([`CoreConfig::stale_read_retries`](crate::CoreConfig::stale_read_retries)); then it hands the
/// answer over with this marker rather than fail the read. A read bound to
/// one member ([`CallOptions::target`](crate::CallOptions::target)) and a read opted out of the fence
/// ([`GetOptions::without_revision_fence`](crate::api::GetOptions::without_revision_fence))
/// get the first answer, marked the same way. Linearizable reads are never
/// marked: etcd confirms them with a quorum, so one below the revision seen
/// means the cluster's history went back (a restore from an older
/// snapshot), and the client resets its fence to it (with a `tracing`
/// warning) instead. See [`Client::get_checked`](crate::Client::get_checked).
///
/// ```
/// use etcdv3_client::StaleRead;
/// let marker = StaleRead { endpoint: "http://127.0.0.1:2379".into(), answered: 5, seen: 8 };
/// assert!(marker.answered < marker.seen);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleRead {
    /// The endpoint that answered.
    pub endpoint: String,
    /// The revision of the answer (its response header's).
    pub answered: i64,
    /// The highest revision the client had seen when the read started.
    pub seen: i64,
}

/// The service of the SRV records etcd clients look up (`_etcd-client._tcp`).
const SERVICE: &str = "etcd-client";

/// Where and how to discover a cluster's endpoints through DNS SRV records.
///
/// ```
/// use etcdv3_client::SrvDiscovery;
/// let d = SrvDiscovery::new("example.com").with_service_name("prod");
/// assert_eq!(
///     d.srv_names(),
///     [
///         ("_etcd-client-ssl-prod._tcp.example.com".to_string(), "https"),
///         ("_etcd-client-prod._tcp.example.com".to_string(), "http"),
///     ]
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvDiscovery {
    /// The domain the SRV records are under.
    pub domain: String,
    /// The service name suffix (`etcdctl --discovery-srv-name`), if any.
    pub service_name: Option<String>,
    /// Keep the `http://` endpoints of `_etcd-client._tcp` (etcdctl's
    /// `--insecure-discovery`, on by default).
    pub insecure: bool,
    /// The nameservers asked; empty: those of `/etc/resolv.conf`.
    pub nameservers: Vec<std::net::SocketAddr>,
}

impl SrvDiscovery {
    /// Discovery under `domain`, insecure endpoints kept (etcdctl's default).
    ///
    /// ```
    /// let d = etcdv3_client::SrvDiscovery::new("example.com");
    /// assert!(d.insecure && d.nameservers.is_empty());
    /// ```
    pub fn new(domain: impl Into<String>) -> Self {
        SrvDiscovery {
            domain: domain.into(),
            service_name: None,
            insecure: true,
            nameservers: Vec::new(),
        }
    }

    /// Look up `_etcd-client[-ssl]-<name>._tcp` instead.
    ///
    /// ```
    /// let d = etcdv3_client::SrvDiscovery::new("example.com").with_service_name("a");
    /// assert_eq!(d.service_name.as_deref(), Some("a"));
    /// ```
    pub fn with_service_name(mut self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.service_name = (!name.is_empty()).then_some(name);
        self
    }

    /// Keep (`true`) or drop the `http://` endpoints found.
    ///
    /// ```
    /// let d = etcdv3_client::SrvDiscovery::new("example.com").with_insecure(false);
    /// assert!(!d.insecure);
    /// ```
    pub fn with_insecure(mut self, insecure: bool) -> Self {
        self.insecure = insecure;
        self
    }

    /// Ask `server` (in the order added) instead of `/etc/resolv.conf`'s
    /// nameservers.
    ///
    /// ```
    /// let d = etcdv3_client::SrvDiscovery::new("example.com")
    ///     .with_nameserver("127.0.0.1:5353".parse().unwrap());
    /// assert_eq!(d.nameservers.len(), 1);
    /// ```
    pub fn with_nameserver(mut self, server: std::net::SocketAddr) -> Self {
        self.nameservers.push(server);
        self
    }

    /// The SRV names looked up, each with the scheme of its endpoints: the
    /// TLS one first, as etcdctl.
    ///
    /// ```
    /// let d = etcdv3_client::SrvDiscovery::new("example.com");
    /// assert_eq!(d.srv_names()[1].0, "_etcd-client._tcp.example.com");
    /// ```
    pub fn srv_names(&self) -> [(String, &'static str); 2] {
        let name = |ssl: &str| {
            let suffix = self
                .service_name
                .as_deref()
                .map(|n| format!("-{n}"))
                .unwrap_or_default();
            format!("_{SERVICE}{ssl}{suffix}._tcp.{}", self.domain)
        };
        [(name("-ssl"), "https"), (name(""), "http")]
    }
}
