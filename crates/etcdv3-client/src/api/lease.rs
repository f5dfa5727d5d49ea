//! Lease: grant, revoke, time-to-live, list, and automatic keep-alive.
//!
//! [`Client::lease_keep_alive`] returns a [`LeaseKeeper`] handle; while it
//! lives, the lease is renewed at a third of its TTL through ONE
//! `LeaseKeepAlive` stream per client, owned by the client's stream task
//! for keepalives (see `stream_task`), which runs the sans-IO
//! [`etcdv3_core::streams::lease::LeaseKeeper`]. If the stream fails, a new one is
//! opened when the core's stream supervisor says (on another endpoint if
//! need be) and every lease is renewed at once. Dropping the handle stops the renewals: the lease then
//! expires by itself after its TTL (call [`Client::lease_revoke`] to end it
//! at once).
//!
//! What a [`LeaseKeeper`] knows, and says ([`KeepAliveEvent`]):
//! [`LeaseKeeper::valid_until`] is the instant until which the lease is
//! *certainly* alive on the server (the send time of the last answered
//! renewal + the TTL it granted). When that instant passes without an
//! answered renewal the keeper says [`KeepAliveEvent::MayHaveExpired`]:
//! the server may have expired the lease (not confirmed). It keeps renewing
//! for one more TTL and says [`KeepAliveEvent::Renewed`] again if the
//! server answers (a new leader extends every lease when it takes over);
//! a **confirmed** expiry (the server answered TTL 0) ends the stream with
//! [`Error::LeaseExpired`], giving up with [`Error::LeaseNotRenewed`].
//!
//! Memory: each handle holds at most two undelivered items (renewals are
//! coalesced into the latest state), however long nobody polls it.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex as StdMutex, MutexGuard as StdMutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use etcdv3_core::streams::lease::{LeaseEvent, LeaseKeeper as CoreKeeper};
use etcdv3_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, LeaseLeasesRequest, LeaseRevokeRequest,
    LeaseTimeToLiveRequest,
};
use etcdv3_proto::method::{
    LEASE_GRANT, LEASE_KEEP_ALIVE, LEASE_LEASES, LEASE_REVOKE, LEASE_TIME_TO_LIVE,
};
use futures_channel::mpsc;
use futures_core::Stream;

use crate::api::stream_task::{self, StreamOwner, Verdict};
use crate::client::{CallOptions, KeepOpen};
use crate::error::{Error, Result};
use crate::transport::tasks::Lane;
use crate::Client;

pub use etcdv3_proto::etcdserverpb::{
    LeaseGrantResponse, LeaseKeepAliveResponse, LeaseLeasesResponse, LeaseRevokeResponse,
    LeaseStatus, LeaseTimeToLiveResponse,
};

/// Options of [`Client::lease_grant`].
///
/// ```
/// use etcdv3_client::api::LeaseGrantOptions;
/// assert_eq!(LeaseGrantOptions::new(), LeaseGrantOptions::default());
/// assert_ne!(LeaseGrantOptions::new().with_id(7), LeaseGrantOptions::new());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LeaseGrantOptions {
    id: i64,
    timeout: Option<Duration>,
}

impl LeaseGrantOptions {
    /// Default options: the server picks the id.
    ///
    /// ```no_run
    /// use etcdv3_client::api::LeaseGrantOptions;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let lease = client.lease_grant(30, LeaseGrantOptions::new()).await?;
    /// println!("lease {:016x} for {}s", lease.id, lease.ttl);
    /// # Ok(()) }
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Ask for this lease id (must be unused).
    ///
    /// ```no_run
    /// use etcdv3_client::api::LeaseGrantOptions;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let lease = client.lease_grant(30, LeaseGrantOptions::new().with_id(0x7001)).await?;
    /// assert_eq!(lease.id, 0x7001);
    /// # Ok(()) }
    /// ```
    pub fn with_id(mut self, id: i64) -> Self {
        self.id = id;
        self
    }

    /// Deadline of the call.
    ///
    /// ```
    /// use etcdv3_client::api::LeaseGrantOptions;
    /// use std::time::Duration;
    /// assert_ne!(LeaseGrantOptions::new().with_timeout(Duration::from_secs(1)), LeaseGrantOptions::new());
    /// ```
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

fn call_opts(timeout: Option<Duration>) -> CallOptions {
    CallOptions {
        timeout,
        ..CallOptions::default()
    }
}

/// Options of [`Client::lease_time_to_live`]: without the lease's keys by
/// default. `From<bool>` (`true`: with keys) keeps
/// `lease_time_to_live(id, true)` working.
///
/// ```
/// use etcdv3_client::api::LeaseTimeToLiveOptions;
/// assert_eq!(LeaseTimeToLiveOptions::from(true), LeaseTimeToLiveOptions::new().with_keys());
/// assert_ne!(LeaseTimeToLiveOptions::new(), LeaseTimeToLiveOptions::new().with_keys());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LeaseTimeToLiveOptions {
    keys: bool,
}

impl LeaseTimeToLiveOptions {
    /// TTLs only.
    ///
    /// ```
    /// assert_eq!(etcdv3_client::api::LeaseTimeToLiveOptions::new(), Default::default());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Also list the keys attached to the lease.
    ///
    /// ```no_run
    /// use etcdv3_client::api::LeaseTimeToLiveOptions;
    /// # async fn demo(client: etcdv3_client::Client, lease: i64) -> etcdv3_client::Result<()> {
    /// let keys = client.lease_time_to_live(lease, LeaseTimeToLiveOptions::new().with_keys()).await?.keys;
    /// # Ok(()) }
    /// ```
    pub fn with_keys(mut self) -> Self {
        self.keys = true;
        self
    }
}

impl From<bool> for LeaseTimeToLiveOptions {
    fn from(keys: bool) -> Self {
        LeaseTimeToLiveOptions { keys }
    }
}

impl Client {
    /// Grant a lease of `ttl` seconds.
    ///
    /// ```no_run
    /// use etcdv3_client::api::{LeaseGrantOptions, PutOptions};
    ///
    /// async fn demo(client: &etcdv3_client::Client) -> etcdv3_client::Result<()> {
    ///     let lease = client.lease_grant(10, LeaseGrantOptions::new()).await?;
    ///     client.put("session", "alive", PutOptions::new().with_lease(lease.id)).await?;
    ///     let keeper = client.lease_keep_alive(lease.id).await?; // renewed while `keeper` lives
    ///     # drop(keeper);
    ///     Ok(())
    /// }
    /// ```
    pub async fn lease_grant(
        &self,
        ttl: i64,
        options: LeaseGrantOptions,
    ) -> Result<LeaseGrantResponse> {
        if ttl <= 0 {
            return Err(Error::InvalidArgument("lease TTL must be positive".into()));
        }
        let req = LeaseGrantRequest {
            ttl,
            id: options.id,
        };
        let resp: LeaseGrantResponse = self
            .unary(LEASE_GRANT, &req, call_opts(options.timeout))
            .await?;
        if !resp.error.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "lease grant refused: {}",
                resp.error
            )));
        }
        Ok(resp)
    }

    /// Revoke lease `id`: every key attached to it is deleted.
    ///
    /// ```no_run
    /// use etcdv3_client::api::{GetOptions, LeaseGrantOptions, PutOptions};
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let lease = client.lease_grant(60, LeaseGrantOptions::new()).await?.id;
    /// client.put("session/a", "x", PutOptions::new().with_lease(lease)).await?;
    /// client.lease_revoke(lease).await?;
    /// assert_eq!(client.get("session/a", GetOptions::new()).await?.count, 0);
    /// # Ok(()) }
    /// ```
    pub async fn lease_revoke(&self, id: i64) -> Result<LeaseRevokeResponse> {
        self.lease_revoke_with(id, CallOptions::default()).await
    }

    /// [`Client::lease_revoke`] with per-call options (e.g. a timeout).
    ///
    /// ```no_run
    /// use etcdv3_client::CallOptions;
    /// use std::time::Duration;
    /// # async fn demo(client: etcdv3_client::Client, lease: i64) -> etcdv3_client::Result<()> {
    /// let opts = CallOptions::new().with_timeout(Duration::from_secs(1));
    /// client.lease_revoke_with(lease, opts).await?;
    /// # Ok(()) }
    /// ```
    pub async fn lease_revoke_with(
        &self,
        id: i64,
        options: CallOptions,
    ) -> Result<LeaseRevokeResponse> {
        self.unary(LEASE_REVOKE, &LeaseRevokeRequest { id }, options)
            .await
    }

    /// [`Client::lease_revoke`], trying for at most `timeout`.
    pub(crate) async fn lease_revoke_within(
        &self,
        id: i64,
        timeout: Duration,
    ) -> Result<LeaseRevokeResponse> {
        self.lease_revoke_with(id, CallOptions::new().with_timeout(timeout))
            .await
    }

    /// The remaining and granted TTL of lease `id` (`ttl == -1` when it
    /// expired or does not exist), and its keys with
    /// [`LeaseTimeToLiveOptions::with_keys`].
    ///
    /// ```no_run
    /// use etcdv3_client::api::LeaseTimeToLiveOptions;
    /// # async fn demo(client: etcdv3_client::Client, lease: i64) -> etcdv3_client::Result<()> {
    /// let ttl = client.lease_time_to_live(lease, LeaseTimeToLiveOptions::new().with_keys()).await?;
    /// println!("{}s of {}s left, {} keys", ttl.ttl, ttl.granted_ttl, ttl.keys.len());
    /// # Ok(()) }
    /// ```
    pub async fn lease_time_to_live(
        &self,
        id: i64,
        options: impl Into<LeaseTimeToLiveOptions>,
    ) -> Result<LeaseTimeToLiveResponse> {
        let keys = options.into().keys;
        let mut resp: LeaseTimeToLiveResponse = self
            .unary(
                LEASE_TIME_TO_LIVE,
                &LeaseTimeToLiveRequest { id, keys },
                CallOptions::default(),
            )
            .await?;
        // Inside a namespace: only its keys, relative to it.
        let ns = self.namespace();
        if !ns.is_empty() {
            resp.keys.retain(|k| k.starts_with(ns));
            for k in &mut resp.keys {
                crate::api::namespace::strip_key(ns, k);
            }
        }
        Ok(resp)
    }

    /// Every lease of the cluster.
    ///
    /// ```no_run
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// for lease in client.lease_leases().await?.leases {
    ///     println!("lease {:016x}", lease.id);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn lease_leases(&self) -> Result<LeaseLeasesResponse> {
        self.lease_leases_with(CallOptions::default()).await
    }

    /// [`Client::lease_leases`] with per-call options.
    ///
    /// ```no_run
    /// use etcdv3_client::CallOptions;
    /// use std::time::Duration;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let opts = CallOptions::new().with_timeout(Duration::from_secs(2));
    /// println!("{} leases", client.lease_leases_with(opts).await?.leases.len());
    /// # Ok(()) }
    /// ```
    pub async fn lease_leases_with(&self, options: CallOptions) -> Result<LeaseLeasesResponse> {
        self.unary(LEASE_LEASES, &LeaseLeasesRequest {}, options)
            .await
    }

    /// Renew lease `id` once, on a short-lived keep-alive stream (within the
    /// handle's call options, like every call). Fails with
    /// [`Error::LeaseExpired`] when the lease no longer exists.
    ///
    /// ```no_run
    /// # async fn demo(client: etcdv3_client::Client, lease: i64) -> etcdv3_client::Result<()> {
    /// let renewed = client.keep_alive_once(lease).await?;
    /// assert!(renewed.ttl > 0);
    /// # Ok(()) }
    /// ```
    pub async fn keep_alive_once(&self, id: i64) -> Result<LeaseKeepAliveResponse> {
        self.keep_alive_once_with(id, CallOptions::default()).await
    }

    /// [`Client::keep_alive_once`] with per-call options (a timeout, the
    /// member to renew through), merged with the handle's like every call's.
    ///
    /// ```no_run
    /// use etcdv3_client::CallOptions;
    /// use std::time::Duration;
    /// # async fn demo(client: etcdv3_client::Client, lease: i64) -> etcdv3_client::Result<()> {
    /// let opts = CallOptions::new().with_timeout(Duration::from_millis(500));
    /// let renewed = client.keep_alive_once_with(lease, opts).await?;
    /// assert!(renewed.ttl > 0);
    /// # Ok(()) }
    /// ```
    pub async fn keep_alive_once_with(
        &self,
        id: i64,
        options: CallOptions,
    ) -> Result<LeaseKeepAliveResponse> {
        self.keep_alive_once_at(id, Some(options))
            .await
            .map(|(resp, _)| resp)
    }

    /// [`Client::keep_alive_once`], and the instant the renewal was sent:
    /// the server restarted the lease's TTL no earlier than that. Without
    /// `options` (a keeper's first renewal), the client's request timeout
    /// on any member, whatever the handle's options.
    async fn keep_alive_once_at(
        &self,
        id: i64,
        options: Option<CallOptions>,
    ) -> Result<(LeaseKeepAliveResponse, Instant)> {
        let started = self.now();
        let mut timeout = self.shared.options.request_timeout;
        let mut require_leader = self.shared.options.require_leader;
        let mut bound = None;
        if let Some(options) = options {
            let options = self.effective(options);
            timeout = options.timeout.unwrap_or(timeout);
            require_leader = options.require_leader.unwrap_or(require_leader);
            bound = self
                .resolve_target(options.target.as_ref(), timeout)
                .await?;
        }
        let mut sleep = self.runtime().sleep_until(started + timeout);
        let call = async {
            let mut stream =
                crate::transport::stream::open_on::<LeaseKeepAliveRequest, LeaseKeepAliveResponse>(
                    &self.shared,
                    LEASE_KEEP_ALIVE,
                    None,
                    None,
                    require_leader,
                    bound,
                )
                .await?;
            let sent_at = self.now();
            stream.send(&LeaseKeepAliveRequest { id })?;
            let resp = stream.message().await?;
            stream.close_send();
            match resp {
                Some(resp) => Ok((resp, sent_at)),
                None => Err(Error::Call(etcdv3_core::machine::CallError::StreamEnded {
                    method: LEASE_KEEP_ALIVE.path,
                    endpoint: stream.endpoint().to_string(),
                    cause: "the server ended the stream without an answer".into(),
                })),
            }
        };
        let mut call = std::pin::pin!(call);
        let resp = std::future::poll_fn(|cx| {
            if let Poll::Ready(r) = call.as_mut().poll(cx) {
                return Poll::Ready(Some(r));
            }
            sleep.as_mut().poll(cx).map(|()| None)
        })
        .await
        .unwrap_or_else(|| {
            Err(Error::Call(
                etcdv3_core::machine::CallError::DeadlineExceeded {
                    method: LEASE_KEEP_ALIVE.path,
                    attempts: 1,
                    last_error: "no keep-alive answer in time".into(),
                    may_have_applied: true,
                    source: None,
                },
            ))
        })?;
        if resp.0.ttl <= 0 {
            return Err(Error::LeaseExpired { id });
        }
        Ok(resp)
    }

    /// Keep lease `id` alive until the returned handle is dropped (renewed
    /// at a third of its TTL by the client's keep-alive task). Renews once
    /// before returning; fails with [`Error::LeaseExpired`] when the lease
    /// no longer exists.
    ///
    /// Dropping the handle only stops the renewals: the lease expires on
    /// the server after its TTL, or revoke it with [`Client::lease_revoke`].
    ///
    /// ```no_run
    /// use etcdv3_client::api::LeaseGrantOptions;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let lease = client.lease_grant(10, LeaseGrantOptions::new()).await?;
    /// let keeper = client.lease_keep_alive(lease.id).await?;
    /// // ... the lease lives while `keeper` does.
    /// drop(keeper);
    /// # Ok(()) }
    /// ```
    pub async fn lease_keep_alive(&self, id: i64) -> Result<LeaseKeeper> {
        self.keep_lease(id, false).await
    }

    /// [`Client::lease_keep_alive`]; with `until_lapse`, the handle stops
    /// keeping the lease at its first [`KeepAliveEvent::MayHaveExpired`]
    /// (the recipes' holders: they never resume ownership) and its stream
    /// ends after that item.
    pub(crate) async fn keep_lease(&self, id: i64, until_lapse: bool) -> Result<LeaseKeeper> {
        let (first, renewed_at) = self.keep_alive_once_at(id, None).await?;
        let token = self.shared.tasks.ids.next_keeper();
        let slot = Arc::new(Slot::new(
            first.ttl,
            etcdv3_core::streams::lease::valid_until(renewed_at, first.ttl),
        ));
        let cmd = || Cmd::Keep {
            id,
            ttl: first.ttl,
            renewed_at,
            token,
            until_lapse,
            slot: slot.clone(),
        };
        let mut cmds;
        loop {
            if self.is_closed() {
                return Err(Error::Closed);
            }
            cmds = stream_task::inbox(self, Lane::SHARED, LeaseOwner::default);
            if cmds.unbounded_send(cmd()).is_ok() {
                break;
            }
        }
        Ok(LeaseKeeper {
            _keep: self.keep_open(),
            id,
            token,
            slot,
            cmds,
            done: false,
        })
    }
}

enum Cmd {
    Keep {
        id: i64,
        ttl: i64,
        /// When the renewal that granted `ttl` was sent: the lease's clock
        /// starts there, not when the task takes the command.
        renewed_at: Instant,
        token: u64,
        until_lapse: bool,
        slot: Arc<Slot>,
    },
    Remove {
        id: i64,
        token: u64,
    },
}

/// What a [`LeaseKeeper`] reports while it keeps its lease: the items of
/// its [`Stream`] (`Ok`). The stream ends with an `Err`: the **confirmed**
/// expiry [`Error::LeaseExpired`] (the server answered TTL 0: revoked,
/// expired or unknown), [`Error::LeaseNotRenewed`] (no renewal answered
/// for a whole TTL past the local deadline: the keeper gave up, the expiry
/// is not confirmed), or [`Error::Closed`] (the client closed).
///
/// ```no_run
/// use etcdv3_client::api::KeepAliveEvent;
/// use futures_util::StreamExt;
/// # async fn demo(client: etcdv3_client::Client, lease: i64) -> etcdv3_client::Result<()> {
/// let mut keeper = client.lease_keep_alive(lease).await?;
/// while let Some(item) = keeper.next().await {
///     match item? {
///         KeepAliveEvent::Renewed { ttl, .. } => println!("renewed for {ttl}s"),
///         KeepAliveEvent::MayHaveExpired { .. } => println!("stop acting on the lease"),
///         _ => {}
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeepAliveEvent {
    /// The server renewed the lease for `ttl` seconds: it is certainly
    /// alive until `valid_until` (the send time of the answered renewal +
    /// `ttl`). After [`MayHaveExpired`](KeepAliveEvent::MayHaveExpired)
    /// this says the lease is alive again: the server had extended it.
    Renewed {
        /// TTL in seconds granted by this renewal.
        ttl: i64,
        /// Until when the lease is certainly alive.
        valid_until: Instant,
    },
    /// The lease's local deadline `valid_until` passed and no renewal was
    /// answered in time (members unreachable, stream down): the lease **may
    /// have expired** on the server, and whatever it guarded may already
    /// belong to someone else. Not confirmed: the keeper keeps renewing for
    /// one more TTL and reports [`Renewed`](KeepAliveEvent::Renewed) if the
    /// server answers. Reported once per lapse, at the deadline.
    MayHaveExpired {
        /// The local deadline that passed.
        valid_until: Instant,
    },
}

/// Most items a handle holds for its user: the latest state, and the
/// lapse before it if one happened since the user last looked.
const MAX_PENDING: usize = 2;

/// What the keep-alive task shares with one [`LeaseKeeper`] handle.
#[derive(Debug)]
pub(crate) struct Slot(StdMutex<SlotState>);

#[derive(Debug)]
struct SlotState {
    ttl: i64,
    valid_until: Instant,
    /// The first local deadline that passed without a renewal.
    lapsed_at: Option<Instant>,
    /// Items not yet taken by the user, oldest first (at most
    /// [`MAX_PENDING`]: consecutive items of one kind are coalesced).
    pending: VecDeque<KeepAliveEvent>,
    /// The stream's last item.
    end: Option<Error>,
    /// Nothing more will come (after `pending` and `end`).
    finished: bool,
    waker: Option<Waker>,
}

impl Slot {
    fn new(ttl: i64, valid_until: Instant) -> Slot {
        Slot(StdMutex::new(SlotState {
            ttl,
            valid_until,
            lapsed_at: None,
            pending: VecDeque::new(),
            end: None,
            finished: false,
            waker: None,
        }))
    }

    fn lock(&self) -> StdMutexGuard<'_, SlotState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Until when the lease is certainly alive (see
    /// [`LeaseKeeper::valid_until`]).
    pub(crate) fn valid_until(&self) -> Instant {
        self.lock().valid_until
    }

    /// The first local deadline that passed without a renewal, if any.
    pub(crate) fn lapsed_at(&self) -> Option<Instant> {
        self.lock().lapsed_at
    }

    /// Record `ev` and wake the user. Bounded: an item of the same kind as
    /// the last pending one replaces it, and only the last
    /// [`MAX_PENDING`] items are kept.
    fn push(&self, ev: KeepAliveEvent) {
        let waker = {
            let mut st = self.lock();
            match ev {
                KeepAliveEvent::Renewed { ttl, valid_until } => {
                    st.ttl = ttl;
                    st.valid_until = valid_until;
                }
                KeepAliveEvent::MayHaveExpired { valid_until } => {
                    st.lapsed_at.get_or_insert(valid_until);
                }
            }
            let same_kind = st
                .pending
                .back()
                .is_some_and(|last| std::mem::discriminant(last) == std::mem::discriminant(&ev));
            if same_kind {
                st.pending.pop_back();
            }
            st.pending.push_back(ev);
            while st.pending.len() > MAX_PENDING {
                st.pending.pop_front();
            }
            st.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// End the stream: with `err` as its last item, or quietly.
    fn finish(&self, err: Option<Error>) {
        let waker = {
            let mut st = self.lock();
            if st.finished {
                return;
            }
            st.end = err;
            st.finished = true;
            st.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// Keeps a lease alive while it lives; from [`Client::lease_keep_alive`].
///
/// It is a [`Stream`] of [`KeepAliveEvent`]s: `Renewed` for each renewal,
/// `MayHaveExpired` when the lease's local deadline passes unrenewed (then
/// `Renewed` again if the server answers later), and it ends with
/// `Err(Error::LeaseExpired)` (confirmed: the server answered TTL 0),
/// `Err(Error::LeaseNotRenewed)` (no answer for a whole TTL past the
/// deadline: given up, not confirmed) or `Err(Error::Closed)` (the client
/// closed). Polling it is optional: renewals happen in the background
/// either way, and an unpolled handle holds at most two items (renewals
/// are coalesced: the stream gives the latest state, and a lapse that
/// happened since the last poll).
///
/// [`valid_until`](LeaseKeeper::valid_until) is the fencing view: until
/// when the lease is certainly alive, without a round trip.
///
/// Dropping it stops the renewals; the lease then expires after its TTL.
///
/// ```no_run
/// use etcdv3_client::api::KeepAliveEvent;
/// use futures_util::StreamExt;
/// # async fn demo(client: etcdv3_client::Client, lease: i64) -> etcdv3_client::Result<()> {
/// let mut keeper = client.lease_keep_alive(lease).await?;
/// while let Some(item) = keeper.next().await {
///     match item {
///         Ok(KeepAliveEvent::Renewed { ttl, .. }) => println!("renewed for {ttl}s"),
///         Ok(_) => println!("may have expired: stop acting on it"),
///         Err(e) => return Err(e), // LeaseExpired, LeaseNotRenewed or Closed
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct LeaseKeeper {
    /// Keeps the client open while this handle lives.
    _keep: KeepOpen,
    id: i64,
    token: u64,
    slot: Arc<Slot>,
    cmds: mpsc::UnboundedSender<Cmd>,
    done: bool,
}

impl std::fmt::Debug for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cmd::Keep { id, .. } => write!(f, "Keep({id})"),
            Cmd::Remove { id, .. } => write!(f, "Remove({id})"),
        }
    }
}

impl LeaseKeeper {
    /// The lease id.
    ///
    /// ```no_run
    /// # async fn demo(client: etcdv3_client::Client, lease: i64) -> etcdv3_client::Result<()> {
    /// let keeper = client.lease_keep_alive(lease).await?;
    /// assert_eq!(keeper.id(), lease);
    /// # Ok(()) }
    /// ```
    pub fn id(&self) -> i64 {
        self.id
    }

    /// The TTL (seconds) the server granted at the last renewal.
    ///
    /// ```no_run
    /// # async fn demo(client: etcdv3_client::Client, lease: i64) -> etcdv3_client::Result<()> {
    /// let keeper = client.lease_keep_alive(lease).await?;
    /// println!("renewed to {}s", keeper.ttl());
    /// # Ok(()) }
    /// ```
    pub fn ttl(&self) -> i64 {
        self.slot.lock().ttl
    }

    /// The instant until which the lease is **certainly** alive on the
    /// server: the send time of the last answered renewal + the TTL it
    /// granted. Past it the lease may have expired. Compare it with
    /// `Instant::now()` before acting on what the lease guards: no round
    /// trip needed.
    ///
    /// ```no_run
    /// use std::time::{Duration, Instant};
    /// # async fn demo(client: etcdv3_client::Client, lease: i64) -> etcdv3_client::Result<()> {
    /// let keeper = client.lease_keep_alive(lease).await?;
    /// // Act only with a second of margin left.
    /// if keeper.valid_until() > Instant::now() + Duration::from_secs(1) {
    ///     println!("still certainly ours");
    /// }
    /// # Ok(()) }
    /// ```
    pub fn valid_until(&self) -> Instant {
        self.slot.valid_until()
    }

    /// The first local deadline that passed without a renewal, if one did
    /// while this handle lived.
    pub(crate) fn lapsed_at(&self) -> Option<Instant> {
        self.slot.lapsed_at()
    }

    /// The state shared with the keep-alive task.
    pub(crate) fn slot(&self) -> Arc<Slot> {
        self.slot.clone()
    }

    /// Wait until the lease is lost or may be: resolves `Ok(())` at the
    /// next [`KeepAliveEvent::MayHaveExpired`] (the local deadline passed
    /// unrenewed: treat the lease as lost, as Go's `Session.Done` does),
    /// or when the stream ends with a confirmed expiry or the keeper gave
    /// up. Fails with [`Error::Closed`] when the client closes first (the
    /// renewals stop then, so the lease will expire soon after).
    ///
    /// ```no_run
    /// # async fn demo(client: etcdv3_client::Client, lease: i64) -> etcdv3_client::Result<()> {
    /// let mut keeper = client.lease_keep_alive(lease).await?;
    /// keeper.expired().await?;
    /// println!("lease {:016x} is, or may be, gone", keeper.id());
    /// # Ok(()) }
    /// ```
    pub async fn expired(&mut self) -> Result<()> {
        loop {
            match std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await {
                Some(Ok(KeepAliveEvent::Renewed { .. })) => {}
                Some(Ok(KeepAliveEvent::MayHaveExpired { .. })) => return Ok(()),
                Some(Err(Error::LeaseExpired { .. } | Error::LeaseNotRenewed { .. })) | None => {
                    return Ok(())
                }
                Some(Err(e)) => return Err(e),
            }
        }
    }
}

impl Stream for LeaseKeeper {
    type Item = Result<KeepAliveEvent>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let mut st = this.slot.lock();
        if let Some(ev) = st.pending.pop_front() {
            return Poll::Ready(Some(Ok(ev)));
        }
        if st.finished {
            this.done = true;
            return Poll::Ready(st.end.take().map(Err));
        }
        st.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        let _ = self.cmds.unbounded_send(Cmd::Remove {
            id: self.id,
            token: self.token,
        });
    }
}

struct Holder {
    token: u64,
    /// Stop keeping the lease for this handle at its first lapse.
    until_lapse: bool,
    slot: Arc<Slot>,
}

impl Drop for Holder {
    fn drop(&mut self) {
        // The task no longer speaks for this handle: nothing more comes
        // (the client closed, if no other end was set).
        self.slot.finish(Some(Error::Closed));
    }
}

/// The per-kind part of the client's keepalive stream task: the core's
/// keeper and the handles of each kept lease.
#[derive(Default)]
struct LeaseOwner {
    keeper: CoreKeeper,
    holders: HashMap<i64, Vec<Holder>>,
}

impl StreamOwner for LeaseOwner {
    type Cmd = Cmd;
    type Req = LeaseKeepAliveRequest;
    type Resp = LeaseKeepAliveResponse;
    const METHOD: etcdv3_proto::method::Method = LEASE_KEEP_ALIVE;

    fn handle_cmd(&mut self, _now: Instant, cmd: Cmd) {
        handle_cmd(&mut self.keeper, &mut self.holders, cmd);
    }

    fn is_done(&self) -> bool {
        self.keeper.is_empty()
    }

    fn handle_opened(&mut self, now: Instant) {
        // Renew every lease at once on the new stream.
        self.keeper.handle_stream_lost(now);
    }

    fn handle_lost(&mut self, now: Instant) {
        self.keeper.handle_stream_lost(now);
    }

    fn handle_message(&mut self, now: Instant, resp: LeaseKeepAliveResponse) {
        self.keeper.handle_response(now, resp);
    }

    fn poll_transmit(&mut self, now: Instant) -> Option<LeaseKeepAliveRequest> {
        self.keeper.poll_transmit(now)
    }

    fn verdict(&self, now: Instant) -> Verdict {
        Verdict::of_keepalive(&self.keeper, now)
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.keeper.handle_timeout(now);
    }

    fn poll_timeout(&self, open: bool) -> Option<Instant> {
        // Renewals are due only while a stream is up; deadlines always.
        if open {
            self.keeper.poll_timeout()
        } else {
            self.keeper.next_deadline()
        }
    }

    fn deliver(&mut self) {
        while let Some(ev) = self.keeper.poll_event() {
            match ev {
                LeaseEvent::Renewed { id, ttl } => {
                    let Some(valid_until) = self.keeper.valid_until(id) else {
                        continue;
                    };
                    for h in self.holders.get(&id).into_iter().flatten() {
                        h.slot.push(KeepAliveEvent::Renewed { ttl, valid_until });
                    }
                }
                LeaseEvent::MayHaveExpired { id } => {
                    let Some(valid_until) = self.keeper.valid_until(id) else {
                        continue;
                    };
                    let Some(hs) = self.holders.get_mut(&id) else {
                        continue;
                    };
                    for h in hs.iter() {
                        h.slot.push(KeepAliveEvent::MayHaveExpired { valid_until });
                        if h.until_lapse {
                            h.slot.finish(None);
                        }
                    }
                    hs.retain(|h| !h.until_lapse);
                    if hs.is_empty() {
                        self.holders.remove(&id);
                        self.keeper.remove(id);
                    }
                }
                LeaseEvent::Expired { id } => {
                    for h in self.holders.remove(&id).unwrap_or_default() {
                        h.slot.finish(Some(Error::LeaseExpired { id }));
                    }
                }
                LeaseEvent::GaveUp { id } => {
                    for h in self.holders.remove(&id).unwrap_or_default() {
                        h.slot.finish(Some(Error::LeaseNotRenewed { id }));
                    }
                }
            }
        }
    }

    fn fail(&mut self, err: &Error) {
        for (id, hs) in self.holders.drain() {
            self.keeper.remove(id);
            for h in hs {
                h.slot.finish(Some(err.clone()));
            }
        }
    }
}

fn handle_cmd(keeper: &mut CoreKeeper, holders: &mut HashMap<i64, Vec<Holder>>, cmd: Cmd) {
    match cmd {
        Cmd::Keep {
            id,
            ttl,
            renewed_at,
            token,
            until_lapse,
            slot,
        } => {
            keeper.keep(renewed_at, id, ttl);
            holders.entry(id).or_default().push(Holder {
                token,
                until_lapse,
                slot,
            });
        }
        Cmd::Remove { id, token } => {
            if let Some(hs) = holders.get_mut(&id) {
                hs.retain(|h| h.token != token);
                if hs.is_empty() {
                    holders.remove(&id);
                    keeper.remove(id);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_lease_expires_from_its_renewal_not_from_when_the_task_took_it() {
        // The renewal went out at t0; the task takes the command 3 s later
        // (a busy executor): the lease still expires at t0 + TTL.
        let t0 = Instant::now();
        let mut owner = LeaseOwner::default();
        owner.handle_cmd(
            t0 + Duration::from_secs(3),
            Cmd::Keep {
                id: 7,
                ttl: 5,
                renewed_at: t0,
                token: 1,
                until_lapse: false,
                slot: Arc::new(Slot::new(5, t0 + Duration::from_secs(5))),
            },
        );
        assert_eq!(owner.keeper.deadline(7), Some(t0 + Duration::from_secs(5)));
    }

    fn keep(owner: &mut LeaseOwner, t0: Instant, token: u64, until_lapse: bool) -> Arc<Slot> {
        let slot = Arc::new(Slot::new(3, t0 + Duration::from_secs(3)));
        owner.handle_cmd(
            t0,
            Cmd::Keep {
                id: 7,
                ttl: 3,
                renewed_at: t0,
                token,
                until_lapse,
                slot: slot.clone(),
            },
        );
        slot
    }

    /// One renewal round: send what is due at `now`, answer it at once.
    fn renew(owner: &mut LeaseOwner, now: Instant) {
        owner.handle_timeout(now);
        while let Some(req) = owner.poll_transmit(now) {
            owner.handle_message(
                now,
                LeaseKeepAliveResponse {
                    id: req.id,
                    ttl: 3,
                    ..Default::default()
                },
            );
        }
        owner.deliver();
    }

    /// Issue 17 §6: a handle nobody polls (a `LockGuard`'s keeper) holds
    /// O(1) items however many renewals happen; it used to hold one per
    /// renewal in an unbounded channel, forever.
    #[test]
    fn an_unpolled_handle_holds_at_most_two_items_after_many_renewals() {
        let t0 = Instant::now();
        let mut owner = LeaseOwner::default();
        owner.handle_opened(t0);
        let slot = keep(&mut owner, t0, 1, false);
        let mut now = t0;
        for _ in 0..10_000 {
            renew(&mut owner, now);
            now += Duration::from_secs(1);
        }
        {
            let st = slot.lock();
            assert_eq!(st.pending.len(), 1, "{:?}", st.pending);
            assert!(matches!(
                st.pending.front(),
                Some(KeepAliveEvent::Renewed { ttl: 3, .. })
            ));
        }
        // A lapse, then renewals again: the user still learns of the lapse
        // (and that the lease is alive now), in two items.
        owner.handle_lost(now);
        now += Duration::from_secs(3);
        owner.handle_timeout(now);
        owner.deliver();
        owner.handle_opened(now);
        for _ in 0..1_000 {
            renew(&mut owner, now);
            now += Duration::from_secs(1);
        }
        let st = slot.lock();
        assert_eq!(st.pending.len(), 2, "{:?}", st.pending);
        assert!(matches!(
            st.pending.front(),
            Some(KeepAliveEvent::MayHaveExpired { .. })
        ));
        assert!(matches!(
            st.pending.back(),
            Some(KeepAliveEvent::Renewed { .. })
        ));
        assert!(st.lapsed_at.is_some());
    }

    /// A recipe's handle (`until_lapse`) stops keeping the lease at the
    /// first lapse and never hears of a later renewal; a plain handle on
    /// the same lease goes on.
    #[test]
    fn a_holder_kept_until_lapse_never_resumes() {
        let t0 = Instant::now();
        let mut owner = LeaseOwner::default();
        owner.handle_opened(t0);
        let recipe = keep(&mut owner, t0, 1, true);
        let plain = keep(&mut owner, t0, 2, false);
        renew(&mut owner, t0);
        owner.handle_lost(t0);
        let lapse = t0 + Duration::from_secs(3);
        owner.handle_timeout(lapse);
        owner.deliver();
        owner.handle_opened(lapse);
        renew(&mut owner, lapse);
        let st = recipe.lock();
        assert!(st.finished && st.end.is_none(), "ends quietly");
        assert!(matches!(
            st.pending.back(),
            Some(KeepAliveEvent::MayHaveExpired { .. })
        ));
        assert_eq!(st.valid_until, t0 + Duration::from_secs(3), "frozen");
        drop(st);
        let st = plain.lock();
        assert!(!st.finished);
        assert_eq!(
            st.valid_until,
            lapse + Duration::from_secs(3),
            "alive again"
        );
        drop(st);
        assert!(owner.keeper.contains(7));
    }

    #[test]
    fn grant_options() {
        let o = LeaseGrantOptions::new()
            .with_id(7)
            .with_timeout(Duration::from_secs(1));
        assert_eq!(o.id, 7);
        assert_eq!(o.timeout, Some(Duration::from_secs(1)));
        assert_eq!(LeaseGrantOptions::default().id, 0);
    }
}
