//! The [`Client`] handle and the call primitives the typed API is built on.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use etcdv3_core::endpoints::endpoint::Endpoint;
use etcdv3_core::machine::{EndpointId, ReadKind};
use etcdv3_core::wire::codec;
use etcdv3_proto::method::Method;

use crate::error::{Error, Result};
use crate::options::ClientOptions;
use crate::options::StaleRead;
pub(crate) use crate::options::Target;
use crate::runtime::Runtime;
use crate::transport::{self, Shared};

pub(crate) use crate::transport::stream::{BidiCall, ServerStream};

/// How a read is served: through consensus (linearizable, the default of
/// etcd and of this client) or by whichever member answers, from its local
/// state (serializable: faster, available without a leader, possibly
/// stale).
///
/// ```
/// use etcdv3_client::{CallOptions, ReadConsistency};
/// let local = CallOptions::new().with_read(ReadConsistency::Serializable);
/// assert_eq!(local.read, Some(ReadConsistency::Serializable));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReadConsistency {
    /// Reads reflect every write completed before they started.
    Linearizable,
    /// Reads come from the answering member's local state.
    Serializable,
}

/// A response, and whether it came back below the revision the client had
/// already seen ([`StaleRead`]). Returned by [`Client::get_checked`].
///
/// ```no_run
/// use etcdv3_client::api::GetOptions;
/// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
/// let read = client.get_checked("config", GetOptions::new().with_serializable()).await?;
/// if let Some(stale) = &read.stale {
///     println!("older than revision {} already seen", stale.seen);
/// }
/// println!("{} keys", read.response.count);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Checked<T> {
    /// The answer.
    pub response: T,
    /// Set when the answer is below the revision seen when the call started.
    pub stale: Option<StaleRead>,
}

/// Per-call options, one convention for every method: give them to one call
/// (methods that take `CallOptions`) or to every call of a scoped handle
/// ([`Client::with_call_options`]). Each field left `None` keeps the
/// client's default; request-specific options (e.g. a
/// [`GetOptions`](crate::api::GetOptions) timeout) win over a scope's.
///
/// ```
/// use std::time::Duration;
/// use etcdv3_client::{CallOptions, ReadConsistency, Target};
/// let opts = CallOptions::new()
///     .with_timeout(Duration::from_secs(2))
///     .with_require_leader(false)
///     .with_read(ReadConsistency::Serializable)
///     .with_target(Target::Member(42));
/// assert_eq!(opts.timeout, Some(Duration::from_secs(2)));
/// assert_eq!(CallOptions::new().with_timeout(Duration::from_secs(2)).timeout, opts.timeout);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallOptions {
    /// Deadline of this call, overriding
    /// [`ClientOptions::request_timeout`](crate::ClientOptions::request_timeout).
    pub timeout: Option<Duration>,
    /// Whether a member without a leader must refuse the call at once,
    /// overriding [`ClientOptions::require_leader`](crate::ClientOptions::require_leader).
    /// Serializable reads and Maintenance calls never ask for a leader
    /// (they are served by the member alone), whatever this says.
    pub require_leader: Option<bool>,
    /// The member the call must run on (never moved to another). Applies to
    /// unary calls and to server streams (snapshot, observe); watches and
    /// lease keep-alives share the client's streams and ignore it.
    pub target: Option<Target>,
    /// Linearizable or serializable reads, for the calls that read (`get`,
    /// `member_list`). A request-specific `with_serializable()` wins.
    pub read: Option<ReadConsistency>,
}

impl CallOptions {
    /// No options: every call uses the client's defaults.
    ///
    /// ```
    /// use etcdv3_client::CallOptions;
    /// assert_eq!(CallOptions::new(), CallOptions::default());
    /// assert_eq!(CallOptions::new().timeout, None);
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Set the deadline of each call.
    ///
    /// ```
    /// use etcdv3_client::CallOptions;
    /// use std::time::Duration;
    /// let opts = CallOptions::new().with_timeout(Duration::from_secs(5));
    /// assert_eq!(opts.timeout, Some(Duration::from_secs(5)));
    /// ```
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Set whether a member without a leader must refuse at once.
    ///
    /// ```
    /// use etcdv3_client::CallOptions;
    /// assert_eq!(CallOptions::new().with_require_leader(true).require_leader, Some(true));
    /// ```
    pub fn with_require_leader(mut self, require: bool) -> Self {
        self.require_leader = Some(require);
        self
    }

    /// Run on this member only.
    ///
    /// ```
    /// use etcdv3_client::{CallOptions, Target};
    /// let opts = CallOptions::new().with_target(Target::Member(0x8e9e05c52164694d));
    /// assert_eq!(opts.target, Some(Target::Member(0x8e9e05c52164694d)));
    /// ```
    pub fn with_target(mut self, target: Target) -> Self {
        self.target = Some(target);
        self
    }

    /// Choose linearizable or serializable reads.
    ///
    /// ```
    /// use etcdv3_client::{CallOptions, ReadConsistency};
    /// let opts = CallOptions::new().with_read(ReadConsistency::Linearizable);
    /// assert_eq!(opts.read, Some(ReadConsistency::Linearizable));
    /// ```
    pub fn with_read(mut self, read: ReadConsistency) -> Self {
        self.read = Some(read);
        self
    }

    /// Set the deadline of each call; renamed [`CallOptions::with_timeout`]
    /// (every options type builds with `with_*`).
    ///
    /// ```
    /// # #![allow(deprecated)]
    /// use etcdv3_client::CallOptions;
    /// use std::time::Duration;
    /// assert_eq!(CallOptions::new().timeout(Duration::from_secs(5)), CallOptions::new().with_timeout(Duration::from_secs(5)));
    /// ```
    #[deprecated(note = "use CallOptions::with_timeout")]
    pub fn timeout(self, timeout: Duration) -> Self {
        self.with_timeout(timeout)
    }

    /// Renamed [`CallOptions::with_require_leader`].
    ///
    /// ```
    /// # #![allow(deprecated)]
    /// use etcdv3_client::CallOptions;
    /// assert_eq!(CallOptions::new().require_leader(true).require_leader, Some(true));
    /// ```
    #[deprecated(note = "use CallOptions::with_require_leader")]
    pub fn require_leader(self, require: bool) -> Self {
        self.with_require_leader(require)
    }

    /// Renamed [`CallOptions::with_target`].
    ///
    /// ```
    /// # #![allow(deprecated)]
    /// use etcdv3_client::{CallOptions, Target};
    /// assert_eq!(CallOptions::new().target(Target::Member(1)).target, Some(Target::Member(1)));
    /// ```
    #[deprecated(note = "use CallOptions::with_target")]
    pub fn target(self, target: Target) -> Self {
        self.with_target(target)
    }

    /// Renamed [`CallOptions::with_read`].
    ///
    /// ```
    /// # #![allow(deprecated)]
    /// use etcdv3_client::{CallOptions, ReadConsistency};
    /// assert_eq!(CallOptions::new().read(ReadConsistency::Serializable).read, Some(ReadConsistency::Serializable));
    /// ```
    #[deprecated(note = "use CallOptions::with_read")]
    pub fn read(self, read: ReadConsistency) -> Self {
        self.with_read(read)
    }

    /// These options, with every field left `None` taken from `fallback`.
    ///
    /// ```
    /// use etcdv3_client::CallOptions;
    /// use std::time::Duration;
    /// let scope = CallOptions::new().with_timeout(Duration::from_secs(5)).with_require_leader(true);
    /// let call = CallOptions::new().with_timeout(Duration::from_secs(1)).or(&scope);
    /// assert_eq!(call.timeout, Some(Duration::from_secs(1)));
    /// assert_eq!(call.require_leader, Some(true));
    /// ```
    pub fn or(self, fallback: &CallOptions) -> CallOptions {
        CallOptions {
            timeout: self.timeout.or(fallback.timeout),
            require_leader: self.require_leader.or(fallback.require_leader),
            target: self.target.or_else(|| fallback.target.clone()),
            read: self.read.or(fallback.read),
        }
    }
}

/// The outcome of [`Client::endpoint_status_all`] for one endpoint.
///
/// ```no_run
/// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
/// let healthy = client
///     .endpoint_status_all()
///     .await
///     .iter()
///     .filter(|st| st.result.is_ok())
///     .count();
/// println!("{healthy} endpoints answer");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct EndpointStatus {
    /// The endpoint, as the client writes it (`scheme://host:port`).
    pub endpoint: String,
    /// Its status, or why it could not be had.
    pub result: Result<etcdv3_proto::etcdserverpb::StatusResponse>,
}

impl EndpointStatus {
    /// The id of the member that answered, if it did.
    ///
    /// ```no_run
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// for st in client.endpoint_status_all().await {
    ///     println!("{} is member {:?}", st.endpoint, st.member_id().map(|id| format!("{id:x}")));
    /// }
    /// # Ok(()) }
    /// ```
    pub fn member_id(&self) -> Option<u64> {
        self.result
            .as_ref()
            .ok()
            .and_then(|r| r.header.as_ref())
            .map(|h| h.member_id)
    }
}

/// How the client ranks an endpoint for new calls, best first (from its
/// health: see docs/architecture.md, "How failure is detected").
///
/// ```
/// use etcdv3_client::Standing;
/// assert!(Standing::Preferred < Standing::Down);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Standing {
    /// Answering, with a leader: new calls go here.
    Preferred,
    /// Answering, but its member reported no leader or a raft term behind
    /// the cluster's: used when no preferred endpoint is left.
    Lagging,
    /// A connection owes an answer and was silent (a liveness ping is
    /// out): a last resort until it answers.
    Suspect,
    /// Failed; its backoff has run out, so it is tried again in the
    /// background.
    Retrying,
    /// Failed: avoided until its backoff runs out.
    Down,
}

impl Standing {
    fn from_tier(tier: u8) -> Standing {
        match tier {
            0 => Standing::Preferred,
            1 => Standing::Lagging,
            2 => Standing::Suspect,
            3 => Standing::Retrying,
            _ => Standing::Down,
        }
    }
}

/// What the client knows of one endpoint; from [`Client::endpoint_states`].
///
/// ```no_run
/// # fn demo(client: etcdv3_client::Client) {
/// let leader = client.endpoint_states().into_iter().find(|e| e.is_leader);
/// println!("leader served at {:?}", leader.map(|e| e.endpoint));
/// # }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct EndpointInfo {
    /// The endpoint, as the client writes it (`scheme://host:port`).
    pub endpoint: String,
    /// The id of the member behind it, once one of its answers said
    /// (`None` before).
    pub member_id: Option<u64>,
    /// How the client ranks it for new calls.
    pub standing: Standing,
    /// Whether its member is the leader (the one reported with the highest
    /// raft term by any member the client asked).
    pub is_leader: bool,
    /// The leader its member last reported (`None`: none, or not asked).
    pub leader: Option<u64>,
    /// The raft term its member last reported.
    pub raft_term: u64,
    /// Calls in flight on it.
    pub in_flight: u32,
    /// Smoothed latency of its recent answers.
    pub latency: Option<std::time::Duration>,
    /// Whether a connection to it is open or opening.
    pub connected: bool,
}

/// Keeps a client open while a handle created from it lives (a watcher,
/// a lease keeper, a lock guard, an observe stream): dropping the last
/// `Client` clone no longer ends them. [`Client::close`] still does.
#[derive(Clone, Default)]
pub(crate) struct KeepOpen(#[allow(dead_code)] Option<Arc<CloseGuard>>);

impl std::fmt::Debug for KeepOpen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeepOpen")
    }
}

/// Closes the client when the last user handle is dropped.
struct CloseGuard(Arc<Shared>);

impl Drop for CloseGuard {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// An etcd v3 client. Cheap to clone; all clones share connections. When
/// the last clone is dropped, and no handle made from it is left (a
/// [`Watcher`](crate::api::Watcher), [`LeaseKeeper`](crate::api::LeaseKeeper),
/// [`LockGuard`](crate::api::LockGuard), [`LeaderStream`](crate::api::LeaderStream)
/// or [`Snapshot`](crate::api::Snapshot): each keeps the client open while
/// it lives), every connection and background task of the client ends.
/// [`Client::close`] ends everything at once.
///
/// Obtain one from a runtime crate (`etcdv3_tokio::connect`,
/// `etcdv3_async_std::connect`) or with [`Client::new`] and your own
/// [`Runtime`].
///
/// ```no_run
/// use etcdv3_client::api::{GetOptions, PutOptions};
/// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
/// // `client` comes from a runtime crate, e.g. `etcdv3_tokio::connect`.
/// client.put("greeting", "hello", PutOptions::new()).await?;
/// let resp = client.get("greeting", GetOptions::new()).await?;
/// assert_eq!(resp.kvs[0].value, b"hello");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    pub(crate) shared: Arc<Shared>,
    /// Held only for its Drop: the last user handle closes the client.
    _guard: Option<Arc<CloseGuard>>,
    /// Options of every call made through this handle
    /// ([`Client::with_call_options`]).
    scope: Option<Arc<CallOptions>>,
    /// The prefix every key of this handle's KV, txn, watch and lease-TTL
    /// calls lives under ([`Client::with_namespace`]).
    namespace: Option<Arc<[u8]>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

impl Client {
    /// A client over `shared` (the constructors are in `connect`).
    pub(crate) fn from_shared(shared: Arc<Shared>) -> Client {
        Client {
            _guard: Some(Arc::new(CloseGuard(shared.clone()))),
            shared,
            scope: None,
            namespace: None,
        }
    }

    /// Ask every endpoint's status (concurrently) and succeed with the
    /// newest version reported if it is at least `major.minor`; otherwise
    /// fail with [`Error::OldCluster`] (or, when no endpoint answered, with
    /// the first endpoint's error).
    ///
    /// ```no_run
    /// async fn demo(client: &etcdv3_client::Client) -> etcdv3_client::Result<()> {
    ///     let version = client.check_cluster_version(3, 4).await?;
    ///     println!("etcd {version}");
    ///     Ok(())
    /// }
    /// ```
    pub async fn check_cluster_version(&self, major: u32, minor: u32) -> Result<String> {
        let parse = |v: &str| -> Option<(u32, u32)> {
            let mut it = v.split('.');
            Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
        };
        let mut newest: Option<((u32, u32), String)> = None;
        let mut first_err = None;
        for st in self.endpoint_status_all().await {
            match st.result {
                Ok(r) => {
                    if let Some(v) = parse(&r.version) {
                        if newest.as_ref().is_none_or(|(n, _)| v > *n) {
                            newest = Some((v, r.version));
                        }
                    }
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        match (newest, first_err) {
            (Some((v, s)), _) if v >= (major, minor) => Ok(s),
            (Some((_, s)), _) => Err(Error::OldCluster {
                version: s,
                minimum: format!("{major}.{minor}"),
            }),
            (None, Some(e)) => Err(e),
            (None, None) => Err(Error::OldCluster {
                version: String::new(),
                minimum: format!("{major}.{minor}"),
            }),
        }
    }

    /// Switch the credentials at runtime: authenticate as `user` now (the
    /// old credentials stay in use if this fails), put the new token in
    /// place for every later call, and use the new credentials for every
    /// later token refresh. Works on a client created without a user too
    /// (it then starts authenticating its calls). A refresh already running
    /// with the old credentials may still land its token; the next refresh
    /// uses the new ones.
    ///
    /// ```no_run
    /// async fn demo(client: &etcdv3_client::Client) -> etcdv3_client::Result<()> {
    ///     client.update_user("app", "rotated-secret").await?;
    ///     Ok(())
    /// }
    /// ```
    pub async fn update_user(
        &self,
        user: impl Into<String>,
        password: impl Into<String>,
    ) -> Result<()> {
        let (user, password) = (user.into(), password.into());
        let resp = self.authenticate(user.clone(), password.clone()).await?;
        let token = http::HeaderValue::from_str(&resp.token)
            .map_err(|e| Error::Config(format!("unusable token: {e}")))?;
        *self.shared.user.lock().unwrap_or_else(|p| p.into_inner()) = Some((user, password));
        self.shared.set_token(Some(token));
        self.shared
            .with_state(|st, now| st.core.handle_credentials_changed(now));
        Ok(())
    }

    /// A handle for background tasks that does not keep the client open.
    pub(crate) fn background(&self) -> Client {
        Client {
            shared: self.shared.clone(),
            _guard: None,
            scope: None,
            namespace: self.namespace.clone(),
        }
    }

    /// What keeps the client open while a handle made from this one lives.
    pub(crate) fn keep_open(&self) -> KeepOpen {
        KeepOpen(self._guard.clone())
    }

    /// A handle on the same client (same connections, cheap: an `Arc`
    /// clone) whose every call uses `options`: a deadline, `require_leader`,
    /// a target member, serializable reads. Options a single call gives
    /// (e.g. [`GetOptions::with_timeout`](crate::api::GetOptions::with_timeout))
    /// win; fields left `None` keep the client's defaults. Scopes do not
    /// stack: the new options replace this handle's.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use etcdv3_client::{api::GetOptions, CallOptions, ReadConsistency, Target};
    /// async fn demo(client: &etcdv3_client::Client) -> etcdv3_client::Result<()> {
    ///     // Status and a local read of one member, each within 2 s.
    ///     let member = client.with_call_options(
    ///         CallOptions::new()
    ///             .with_target(Target::Endpoint("http://127.0.0.1:2379".into()))
    ///             .with_read(ReadConsistency::Serializable)
    ///             .with_timeout(Duration::from_secs(2)),
    ///     );
    ///     let status = member.status().await?;
    ///     let local = member.get("k", GetOptions::new()).await?;
    ///     println!("{} {}", status.raft_index, local.count);
    ///     Ok(())
    /// }
    /// ```
    pub fn with_call_options(&self, options: CallOptions) -> Client {
        Client {
            shared: self.shared.clone(),
            _guard: self._guard.clone(),
            scope: Some(Arc::new(options)),
            namespace: self.namespace.clone(),
        }
    }

    /// A handle whose every key lives under `prefix` (Go's `namespace`
    /// package applied to the whole client): `get`, `put`, `delete`, `txn`
    /// and `watch` prefix keys on the way out and remove the prefix on the
    /// way back, with [`KvNamespace`](crate::api::KvNamespace)'s rules, and
    /// `lease_time_to_live` lists only the lease's keys inside. Everything
    /// built on those runs inside the namespace too: [`Session`],
    /// [`Mutex`], [`Election`] and [`stm`]. The server's `Lock` and
    /// `Election` services too: [`lock`](Client::lock),
    /// [`campaign`](Client::campaign), [`leader`](Client::leader) and
    /// [`observe`](Client::observe) prefix the name, `unlock`, `proclaim`
    /// and `resign` the key they are given, and the keys in their answers
    /// (the lock key, the leader key, the leader's key-value) come back
    /// without the prefix. A namespace inside a namespace appends its
    /// prefix. Not covered: watch groups (use
    /// [`KvNamespace::watch_group`](crate::api::KvNamespace::watch_group)).
    ///
    /// [`Session`]: crate::concurrency::Session
    /// [`Mutex`]: crate::concurrency::Mutex
    /// [`Election`]: crate::concurrency::Election
    /// [`stm`]: crate::concurrency::stm
    ///
    /// ```no_run
    /// use etcdv3_client::concurrency::{Mutex, Session, SessionOptions};
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::concurrency::Result<()> {
    /// let tenant = client.with_namespace("tenants/acme/");
    /// let session = Session::new(&tenant, SessionOptions::new()).await?;
    /// // Stored under "tenants/acme/locks/jobs/...".
    /// let guard = Mutex::new(&session, "locks/jobs").lock().await?;
    /// assert!(guard.key().starts_with(b"locks/jobs/"));
    /// // The server's lock service: "tenants/acme/nightly/<lease>" on the
    /// // server, "nightly/<lease>" here.
    /// let lock = tenant.lock_with_lease("nightly", 10).await?;
    /// assert!(lock.key().starts_with(b"nightly/"));
    /// # Ok(()) }
    /// ```
    pub fn with_namespace(&self, prefix: impl AsRef<[u8]>) -> Client {
        let mut full = self.namespace.as_deref().unwrap_or_default().to_vec();
        full.extend_from_slice(prefix.as_ref());
        Client {
            shared: self.shared.clone(),
            _guard: self._guard.clone(),
            scope: self.scope.clone(),
            namespace: (!full.is_empty()).then(|| Arc::from(full)),
        }
    }

    /// The prefix of this handle's namespace ([`Client::with_namespace`]);
    /// empty without one.
    ///
    /// ```no_run
    /// # fn demo(client: etcdv3_client::Client) {
    /// assert_eq!(client.with_namespace("a/").with_namespace("b/").namespace(), b"a/b/");
    /// # }
    /// ```
    pub fn namespace(&self) -> &[u8] {
        self.namespace.as_deref().unwrap_or_default()
    }

    /// This handle without its namespace (namespaced views apply their own
    /// prefix to it).
    pub(crate) fn without_namespace(&self) -> Client {
        Client {
            shared: self.shared.clone(),
            _guard: self._guard.clone(),
            scope: self.scope.clone(),
            namespace: None,
        }
    }

    /// A handle whose every call runs on `target` only
    /// (`with_call_options` with just a target).
    ///
    /// ```no_run
    /// use etcdv3_client::Target;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let member = client.on(Target::Endpoint("http://127.0.0.1:2379".into()));
    /// println!("that member's raft index: {}", member.status().await?.raft_index);
    /// # Ok(()) }
    /// ```
    pub fn on(&self, target: Target) -> Client {
        let options = self.call_options().clone().with_target(target);
        self.with_call_options(options)
    }

    /// The per-call options of this handle (all `None` for a client that is
    /// not scoped).
    ///
    /// ```no_run
    /// use etcdv3_client::{CallOptions, Target};
    /// # fn demo(client: etcdv3_client::Client) {
    /// assert_eq!(client.call_options(), &CallOptions::new());
    /// let scoped = client.on(Target::Member(42));
    /// assert_eq!(scoped.call_options().target, Some(Target::Member(42)));
    /// # }
    /// ```
    pub fn call_options(&self) -> &CallOptions {
        static NONE: CallOptions = CallOptions {
            timeout: None,
            require_leader: None,
            target: None,
            read: None,
        };
        self.scope.as_deref().unwrap_or(&NONE)
    }

    /// `opts` completed with this handle's scope.
    pub(crate) fn effective(&self, opts: CallOptions) -> CallOptions {
        match &self.scope {
            Some(scope) => opts.or(scope),
            None => opts,
        }
    }

    /// The endpoint a target names, learning member ids from the
    /// endpoints' status when needed.
    pub(crate) async fn resolve_target(
        &self,
        target: Option<&Target>,
        timeout: Duration,
    ) -> Result<Option<EndpointId>> {
        let Some(target) = target else {
            return Ok(None);
        };
        let unknown = || Error::UnknownTarget {
            target: target.clone(),
        };
        match target {
            Target::Endpoint(e) => {
                let wanted = Endpoint::parse(e)?;
                self.shared
                    .endpoint_states()
                    .into_iter()
                    .find(|s| s.endpoint == wanted)
                    .map(|s| Some(s.id))
                    .ok_or_else(unknown)
            }
            Target::Member(member) => {
                let member = *member;
                let known = |c: &Client| {
                    c.shared
                        .with_state(|st, _| st.core.endpoint_of_member(member))
                };
                if let Some(ep) = known(self) {
                    return Ok(Some(ep));
                }
                // Ask every endpoint whose member id is not known yet.
                let unknown_eps: Vec<EndpointId> = self.shared.with_state(|st, _| {
                    st.core
                        .endpoint_states()
                        .into_iter()
                        .filter(|s| st.core.member_of_endpoint(s.id).is_none())
                        .map(|s| s.id)
                        .collect()
                });
                let mut asks: futures_util::stream::FuturesUnordered<_> = unknown_eps
                    .into_iter()
                    .map(|ep| {
                        self.unary_bound::<_, etcdv3_proto::etcdserverpb::StatusResponse>(
                            etcdv3_proto::method::MAINTENANCE_STATUS,
                            &etcdv3_proto::etcdserverpb::StatusRequest {},
                            timeout,
                            false,
                            Some(ep),
                        )
                    })
                    .collect();
                // Stop as soon as the member answered (the rest are
                // cancelled when `asks` is dropped).
                while futures_util::StreamExt::next(&mut asks).await.is_some() {
                    if let Some(ep) = known(self) {
                        return Ok(Some(ep));
                    }
                }
                known(self).map(Some).ok_or_else(unknown)
            }
        }
    }

    /// The status of every endpoint of the client, asked concurrently, each
    /// on that endpoint only: one result per endpoint, `Ok` or `Err` (like
    /// `etcdctl endpoint status --cluster` over the client's own
    /// connections). A member without a leader answers too: status calls
    /// never ask for a leader, whatever `require_leader` says.
    ///
    /// ```no_run
    /// async fn demo(client: &etcdv3_client::Client) -> etcdv3_client::Result<()> {
    ///     for st in client.endpoint_status_all().await {
    ///         match &st.result {
    ///             Ok(s) => println!("{}: leader {:x}, db {} bytes", st.endpoint, s.leader, s.db_size),
    ///             Err(e) => println!("{}: {e}", st.endpoint),
    ///         }
    ///     }
    ///     Ok(())
    /// }
    /// ```
    pub async fn endpoint_status_all(&self) -> Vec<EndpointStatus> {
        let opts = self.effective(CallOptions::default());
        let timeout = opts.timeout.unwrap_or(self.shared.options.request_timeout);
        // Maintenance: never sent with `hasleader` (see `wants_leader`).
        let require_leader = false;
        let states = self.shared.endpoint_states();
        let asks = states.iter().map(|s| {
            self.unary_bound::<_, etcdv3_proto::etcdserverpb::StatusResponse>(
                etcdv3_proto::method::MAINTENANCE_STATUS,
                &etcdv3_proto::etcdserverpb::StatusRequest {},
                timeout,
                require_leader,
                Some(s.id),
            )
        });
        let results = futures_util::future::join_all(asks).await;
        states
            .into_iter()
            .zip(results)
            .map(|(s, result)| EndpointStatus {
                endpoint: s.endpoint.to_string(),
                result,
            })
            .collect()
    }

    /// The options the client runs with.
    ///
    /// ```no_run
    /// # fn demo(client: etcdv3_client::Client) {
    /// println!("default deadline: {:?}", client.options().request_timeout);
    /// # }
    /// ```
    pub fn options(&self) -> &ClientOptions {
        &self.shared.options
    }

    /// What the client knows of each endpoint: which member serves it,
    /// whether that member is the leader, and how the client ranks it for
    /// new calls (why calls go where they go).
    ///
    /// ```no_run
    /// use etcdv3_client::Standing;
    /// # fn demo(client: etcdv3_client::Client) {
    /// for ep in client.endpoint_states() {
    ///     let member = ep.member_id.map_or("?".to_string(), |id| format!("{id:x}"));
    ///     let role = if ep.is_leader { "leader" } else { "follower" };
    ///     println!("{} = member {member} ({role}), {:?}", ep.endpoint, ep.standing);
    ///     if ep.standing == Standing::Down {
    ///         println!("  avoided until it answers again");
    ///     }
    /// }
    /// # }
    /// ```
    pub fn endpoint_states(&self) -> Vec<EndpointInfo> {
        self.shared.with_state(|st, _| {
            let states = st.core.endpoint_states();
            // The leader of the highest term any member reported.
            let leader = states
                .iter()
                .filter_map(|s| s.leader.map(|l| (s.raft_term, l)))
                .max()
                .map(|(_, l)| l);
            states
                .into_iter()
                .map(|s| EndpointInfo {
                    is_leader: leader.is_some() && st.core.member_of_endpoint(s.id) == leader,
                    member_id: st.core.member_of_endpoint(s.id),
                    endpoint: s.endpoint.to_string(),
                    standing: Standing::from_tier(s.tier),
                    leader: s.leader,
                    raft_term: s.raft_term,
                    in_flight: s.in_flight,
                    latency: s.latency,
                    connected: s.connected,
                })
                .collect()
        })
    }

    /// Replace the endpoint set. Connections to removed endpoints are closed
    /// once their calls end.
    ///
    /// ```no_run
    /// # fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// client.set_endpoints(["http://10.0.0.1:2379", "http://10.0.0.2:2379"])?;
    /// # Ok(()) }
    /// ```
    pub fn set_endpoints<I, S>(&self, endpoints: I) -> Result<()>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut parsed = Vec::new();
        for e in endpoints {
            parsed.push(Endpoint::parse(e.as_ref())?);
        }
        if parsed.is_empty() {
            return Err(Error::Config("no endpoints given".into()));
        }
        self.shared.set_endpoints(parsed)
    }

    /// Shut the client down now: pending calls fail with [`Error::Closed`],
    /// connections close, and every handle made from the client (watchers,
    /// lease keepers, lock guards, streams) ends with [`Error::Closed`].
    /// Dropping the last clone and the last such handle does the same.
    ///
    /// ```no_run
    /// # fn demo(client: etcdv3_client::Client) {
    /// client.close();
    /// assert!(client.is_closed());
    /// # }
    /// ```
    pub fn close(&self) {
        self.shared.close();
    }

    /// Calls the transport tracks right now (started and not finished:
    /// unary calls in progress, open streams). For tests that check nothing
    /// leaks; not a stable API.
    ///
    /// ```no_run
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let watcher = client.watch("k", Default::default()).await?;
    /// println!("{} calls in progress, the watch stream among them", client.calls_tracked());
    /// # Ok(()) }
    /// ```
    #[doc(hidden)]
    pub fn calls_tracked(&self) -> usize {
        self.shared.call_slots()
    }

    /// Whether the client was closed.
    ///
    /// ```no_run
    /// # fn demo(client: etcdv3_client::Client) {
    /// let other = client.clone();
    /// other.close();
    /// assert!(client.is_closed()); // clones share one client
    /// # }
    /// ```
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    /// Tell the core a revision this client observed outside a unary
    /// response (watch events), for its read fence.
    pub(crate) fn note_revision(&self, revision: i64) {
        self.shared
            .with_state(|st, _| st.core.handle_revision_seen(revision));
    }

    pub(crate) fn runtime(&self) -> &Arc<dyn Runtime> {
        &self.shared.runtime
    }

    pub(crate) fn now(&self) -> Instant {
        self.shared.runtime.now()
    }

    /// Run a background task on the client's runtime.
    pub(crate) fn spawn<F>(&self, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.shared.runtime.spawn(Box::pin(fut));
    }

    /// One unary call: encode `req`, run it through the core (retries,
    /// failover, deadline), decode the answer. `opts` is completed with the
    /// handle's scope.
    pub(crate) async fn unary<Q, A>(&self, method: Method, req: &Q, opts: CallOptions) -> Result<A>
    where
        Q: prost::Message,
        A: prost::Message + Default,
    {
        let read = ReadKind::Unspecified;
        Ok(self.unary_read(method, req, opts, read).await?.response)
    }

    /// [`Client::unary`] for a call the core's revision fence judges as
    /// `read` (a linearizable or serializable `Range`), with the stale
    /// marker of its answer.
    pub(crate) async fn unary_read<Q, A>(
        &self,
        method: Method,
        req: &Q,
        opts: CallOptions,
        read: ReadKind,
    ) -> Result<Checked<A>>
    where
        Q: prost::Message,
        A: prost::Message + Default,
    {
        let opts = self.effective(opts);
        let timeout = opts.timeout.unwrap_or(self.shared.options.request_timeout);
        let require_leader = opts
            .require_leader
            .unwrap_or(self.shared.options.require_leader);
        let started = self.now();
        let bound = self.resolve_target(opts.target.as_ref(), timeout).await?;
        // Finding the target counts against the call's deadline.
        let left = timeout.saturating_sub(self.now().saturating_duration_since(started));
        let body = self.encode(method, req)?;
        let (msg, stale) = transport::call::unary_read(
            &self.shared,
            method,
            body,
            left,
            require_leader,
            bound,
            read,
        )
        .await?;
        let response = codec::decode_message(msg).map_err(|source| Error::Frame {
            method: method.path,
            source,
        })?;
        Ok(Checked { response, stale })
    }

    fn encode<Q: prost::Message>(&self, method: Method, req: &Q) -> Result<Bytes> {
        codec::encode(req, self.shared.options.max_send_message_size).map_err(|source| {
            Error::Frame {
                method: method.path,
                source,
            }
        })
    }

    /// One unary call with everything decided: deadline, `require_leader`,
    /// and the endpoint it is pinned to, if any.
    pub(crate) async fn unary_bound<Q, A>(
        &self,
        method: Method,
        req: &Q,
        timeout: Duration,
        require_leader: bool,
        bound: Option<EndpointId>,
    ) -> Result<A>
    where
        Q: prost::Message,
        A: prost::Message + Default,
    {
        let body =
            codec::encode(req, self.shared.options.max_send_message_size).map_err(|source| {
                Error::Frame {
                    method: method.path,
                    source,
                }
            })?;
        let msg =
            transport::call::unary_on(&self.shared, method, body, timeout, require_leader, bound)
                .await?;
        codec::decode_message(msg).map_err(|source| Error::Frame {
            method: method.path,
            source,
        })
    }

    /// Open a bidirectional stream (watch, lease keepalive). Returns once
    /// the server accepted it (response headers received); until then the
    /// core retries on other endpoints.
    pub(crate) async fn open_bidi<Q, A>(&self, method: Method) -> Result<BidiCall<Q, A>>
    where
        Q: prost::Message,
        A: prost::Message + Default,
    {
        transport::stream::open(&self.shared, method, None, None).await
    }

    /// Start a server-streaming call (snapshot, election observe).
    pub(crate) async fn server_stream<Q, A>(
        &self,
        method: Method,
        req: &Q,
        opts: CallOptions,
    ) -> Result<ServerStream<A>>
    where
        Q: prost::Message,
        A: prost::Message + Default,
    {
        let body =
            codec::encode(req, self.shared.options.max_send_message_size).map_err(|source| {
                Error::Frame {
                    method: method.path,
                    source,
                }
            })?;
        let opts = self.effective(opts);
        let require_leader = opts
            .require_leader
            .unwrap_or(self.shared.options.require_leader);
        let resolve_timeout = opts.timeout.unwrap_or(self.shared.options.request_timeout);
        let bound = self
            .resolve_target(opts.target.as_ref(), resolve_timeout)
            .await?;
        let call: BidiCall<(), A> = transport::stream::open_on(
            &self.shared,
            method,
            Some(body),
            opts.timeout,
            require_leader,
            bound,
        )
        .await?;
        Ok(ServerStream::new(call))
    }
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<Client>();
    let _ = Bytes::new();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_s_own_options_win_over_the_scope() {
        let scope = CallOptions::new()
            .with_timeout(Duration::from_secs(1))
            .with_require_leader(false)
            .with_target(Target::Member(7))
            .with_read(ReadConsistency::Serializable);
        let own = CallOptions::new().with_timeout(Duration::from_secs(9));
        let merged = own.or(&scope);
        assert_eq!(merged.timeout, Some(Duration::from_secs(9)));
        assert_eq!(merged.require_leader, Some(false));
        assert_eq!(merged.target, Some(Target::Member(7)));
        assert_eq!(merged.read, Some(ReadConsistency::Serializable));
        assert_eq!(
            CallOptions::new().or(&CallOptions::new()),
            CallOptions::new()
        );
    }
}
