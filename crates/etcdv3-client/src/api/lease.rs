//! Lease: grant, revoke, time-to-live, list, and automatic keep-alive.
//!
//! [`Client::lease_keep_alive`] returns a [`LeaseKeeper`] handle; while it
//! lives, the lease is renewed at a third of its TTL through ONE
//! `LeaseKeepAlive` stream per client, owned by the client's stream task
//! for keepalives (see `stream_task`), which runs the sans-IO
//! [`etcdv3_core::lease::LeaseKeeper`]. If the stream fails, a new one is
//! opened when the core's stream supervisor says (on another endpoint if
//! need be) and every lease is renewed at once. Dropping the handle stops the renewals: the lease then
//! expires by itself after its TTL (call [`Client::lease_revoke`] to end it
//! at once).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use etcdv3_core::lease::{LeaseEvent, LeaseKeeper as CoreKeeper};
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
    /// println!("lease {:x} for {}s", lease.id, lease.ttl);
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
        self.unary(
            LEASE_REVOKE,
            &LeaseRevokeRequest { id },
            CallOptions::default(),
        )
        .await
    }

    /// The remaining and granted TTL of lease `id` (`ttl == -1` when it
    /// expired or does not exist), and its keys if `keys`.
    ///
    /// ```no_run
    /// # async fn demo(client: etcdv3_client::Client, lease: i64) -> etcdv3_client::Result<()> {
    /// let ttl = client.lease_time_to_live(lease, true).await?;
    /// println!("{}s of {}s left, {} keys", ttl.ttl, ttl.granted_ttl, ttl.keys.len());
    /// # Ok(()) }
    /// ```
    pub async fn lease_time_to_live(&self, id: i64, keys: bool) -> Result<LeaseTimeToLiveResponse> {
        self.unary(
            LEASE_TIME_TO_LIVE,
            &LeaseTimeToLiveRequest { id, keys },
            CallOptions::default(),
        )
        .await
    }

    /// Every lease of the cluster.
    ///
    /// ```no_run
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// for lease in client.lease_leases().await?.leases {
    ///     println!("lease {:x}", lease.id);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn lease_leases(&self) -> Result<LeaseLeasesResponse> {
        self.unary(LEASE_LEASES, &LeaseLeasesRequest {}, CallOptions::default())
            .await
    }

    /// Renew lease `id` once, on a short-lived keep-alive stream. Fails with
    /// [`Error::LeaseExpired`] when the lease no longer exists.
    ///
    /// ```no_run
    /// # async fn demo(client: etcdv3_client::Client, lease: i64) -> etcdv3_client::Result<()> {
    /// let renewed = client.keep_alive_once(lease).await?;
    /// assert!(renewed.ttl > 0);
    /// # Ok(()) }
    /// ```
    pub async fn keep_alive_once(&self, id: i64) -> Result<LeaseKeepAliveResponse> {
        self.keep_alive_once_at(id).await.map(|(resp, _)| resp)
    }

    /// [`Client::keep_alive_once`], and the instant the renewal was sent:
    /// the server restarted the lease's TTL no earlier than that.
    async fn keep_alive_once_at(&self, id: i64) -> Result<(LeaseKeepAliveResponse, Instant)> {
        let deadline = self.now() + self.shared.options.request_timeout;
        let mut sleep = self.runtime().sleep_until(deadline);
        let call = async {
            let mut stream = self
                .open_bidi::<LeaseKeepAliveRequest, LeaseKeepAliveResponse>(LEASE_KEEP_ALIVE)
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
        let (first, renewed_at) = self.keep_alive_once_at(id).await?;
        let ttl = Arc::new(AtomicI64::new(first.ttl));
        let token = self.shared.tasks.ids.next_keeper();
        let (sink, events) = mpsc::unbounded();
        let cmd = || Cmd::Keep {
            id,
            ttl: first.ttl,
            renewed_at,
            token,
            shared_ttl: ttl.clone(),
            sink: sink.clone(),
        };
        let mut cmds;
        loop {
            if self.is_closed() {
                return Err(Error::Closed);
            }
            cmds = stream_task::inbox(self, LeaseOwner::default);
            if cmds.unbounded_send(cmd()).is_ok() {
                break;
            }
        }
        drop(sink);
        Ok(LeaseKeeper {
            _keep: self.keep_open(),
            id,
            token,
            ttl,
            events,
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
        shared_ttl: Arc<AtomicI64>,
        sink: mpsc::UnboundedSender<Result<i64>>,
    },
    Remove {
        id: i64,
        token: u64,
    },
}

/// Keeps a lease alive while it lives; from [`Client::lease_keep_alive`].
///
/// It is a [`Stream`] of renewals: `Ok(ttl)` for each renewal, then
/// `Err(Error::LeaseExpired)` if the lease expires or is revoked (the
/// server answered TTL 0, or no renewal succeeded before the TTL ran out),
/// or `Err(Error::Closed)` when the client closes; then it ends. Polling it
/// is optional: renewals happen in the background either way.
///
/// Dropping it stops the renewals; the lease then expires after its TTL.
///
/// ```no_run
/// use futures_util::StreamExt;
/// # async fn demo(client: etcdv3_client::Client, lease: i64) -> etcdv3_client::Result<()> {
/// let mut keeper = client.lease_keep_alive(lease).await?;
/// while let Some(renewal) = keeper.next().await {
///     match renewal {
///         Ok(ttl) => println!("renewed for {ttl}s"),
///         Err(e) => return Err(e), // LeaseExpired or Closed
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
    ttl: Arc<AtomicI64>,
    events: mpsc::UnboundedReceiver<Result<i64>>,
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
        self.ttl.load(Ordering::Relaxed)
    }

    /// Wait until the lease expires (or is revoked): `Ok(())`. Fails with
    /// [`Error::Closed`] when the client closes first (the renewals stop
    /// then, so the lease will expire soon after).
    ///
    /// ```no_run
    /// # async fn demo(client: etcdv3_client::Client, lease: i64) -> etcdv3_client::Result<()> {
    /// let mut keeper = client.lease_keep_alive(lease).await?;
    /// keeper.expired().await?;
    /// println!("lease {:x} is gone", keeper.id());
    /// # Ok(()) }
    /// ```
    pub async fn expired(&mut self) -> Result<()> {
        loop {
            match std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await {
                Some(Ok(_)) => {}
                Some(Err(Error::LeaseExpired { .. })) | None => return Ok(()),
                Some(Err(e)) => return Err(e),
            }
        }
    }
}

impl Stream for LeaseKeeper {
    type Item = Result<i64>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.events).poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(ttl))) => Poll::Ready(Some(Ok(ttl))),
            Poll::Ready(Some(Err(e))) => {
                this.done = true;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                this.done = true;
                Poll::Ready(Some(Err(Error::Closed)))
            }
        }
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
    ttl: Arc<AtomicI64>,
    sink: mpsc::UnboundedSender<Result<i64>>,
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
                    if let Some(hs) = self.holders.get_mut(&id) {
                        for h in hs.iter() {
                            h.ttl.store(ttl, Ordering::Relaxed);
                            let _ = h.sink.unbounded_send(Ok(ttl));
                        }
                    }
                }
                LeaseEvent::Expired { id } => {
                    for h in self.holders.remove(&id).unwrap_or_default() {
                        let _ = h.sink.unbounded_send(Err(Error::LeaseExpired { id }));
                    }
                }
            }
        }
    }

    fn fail(&mut self, err: &Error) {
        for (id, hs) in self.holders.drain() {
            self.keeper.remove(id);
            for h in hs {
                let _ = h.sink.unbounded_send(Err(err.clone()));
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
            shared_ttl,
            sink,
        } => {
            keeper.keep(renewed_at, id, ttl);
            holders.entry(id).or_default().push(Holder {
                token,
                ttl: shared_ttl,
                sink,
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
        let (sink, _events) = mpsc::unbounded();
        owner.handle_cmd(
            t0 + Duration::from_secs(3),
            Cmd::Keep {
                id: 7,
                ttl: 5,
                renewed_at: t0,
                token: 1,
                shared_ttl: Arc::new(AtomicI64::new(5)),
                sink,
            },
        );
        assert_eq!(owner.keeper.deadline(7), Some(t0 + Duration::from_secs(5)));
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
