//! [`Session`]: a lease kept alive in the background while the program
//! lives, the liveness token of locks and election candidacies.
//!
//! What a session knows about its lease, and when:
//!
//! * While it is alive, the lease is **certainly** alive on the server until
//!   [`Session::valid_until`]: the send time of the last answered renewal +
//!   the TTL it granted. Whatever is held under the session (a [`Mutex`]
//!   guard, an [`Election`] leadership) is safe to act on until then.
//! * When that instant passes with no renewal answered, the session ends
//!   with [`SessionEnd::DeadlinePassed`] **at** that instant (Go's
//!   `Session.Done()` closes there too): the server *may* have expired the
//!   lease, deleted its keys, and handed the locks to other sessions; or it
//!   may still hold the lease (not confirmed either way). The session stops
//!   renewing and never resumes: it revokes the lease in the background
//!   once a member answers (for at most one TTL), so that waiters need not
//!   wait for the server to expire it.
//! * [`SessionEnd::Expired`] is the **confirmed** end: the server answered
//!   that the lease no longer exists (revoked or expired); its keys are
//!   deleted.
//!
//! [`Mutex`]: super::Mutex
//! [`Election`]: super::Election

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex, MutexGuard as StdMutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use futures_channel::oneshot;
use futures_core::Stream;
use futures_util::future::{select, Either};

use super::{Error, Result};
use crate::api::lease::Slot;
use crate::api::{KeepAliveEvent, LeaseGrantOptions, LeaseKeeper};
use crate::Client;

/// Options of [`Session::new`].
///
/// ```
/// use etcdv3_client::concurrency::SessionOptions;
/// assert_eq!(SessionOptions::new(), SessionOptions::default());
/// assert_ne!(SessionOptions::new().with_ttl(10), SessionOptions::new());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionOptions {
    ttl: i64,
    lease: Option<i64>,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            ttl: SessionOptions::DEFAULT_TTL,
            lease: None,
        }
    }
}

impl SessionOptions {
    /// The TTL of a new session's lease when none is given: 60 s, as in Go.
    ///
    /// ```
    /// use etcdv3_client::concurrency::SessionOptions;
    /// assert_eq!(SessionOptions::DEFAULT_TTL, 60);
    /// assert_eq!(SessionOptions::new().with_ttl(SessionOptions::DEFAULT_TTL), SessionOptions::new());
    /// ```
    pub const DEFAULT_TTL: i64 = etcdv3_core::streams::lease::DEFAULT_SESSION_TTL;

    /// Default options: a new lease of [`Self::DEFAULT_TTL`] seconds.
    ///
    /// ```
    /// use etcdv3_client::concurrency::SessionOptions;
    /// assert_eq!(SessionOptions::new(), SessionOptions::default().with_ttl(60));
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// The TTL (seconds) of the session's new lease: how long after the
    /// program stops renewing it (crash, partition) its locks are released.
    ///
    /// ```no_run
    /// use etcdv3_client::concurrency::{Session, SessionOptions};
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::concurrency::Result<()> {
    /// // Locks of a crashed process are released 10 s after it stops renewing.
    /// let session = Session::new(&client, SessionOptions::new().with_ttl(10)).await?;
    /// assert_eq!(session.ttl(), 10);
    /// # Ok(()) }
    /// ```
    pub fn with_ttl(mut self, ttl: i64) -> Self {
        self.ttl = ttl;
        self
    }

    /// Use this existing lease instead of granting one (e.g. to resume a
    /// session after a restart). It is kept alive, and revoked on close.
    ///
    /// ```no_run
    /// use etcdv3_client::concurrency::{Session, SessionOptions};
    /// # async fn demo(client: etcdv3_client::Client, saved_lease: i64) -> etcdv3_client::concurrency::Result<()> {
    /// let session = Session::new(&client, SessionOptions::new().with_lease(saved_lease)).await?;
    /// assert_eq!(session.lease_id(), saved_lease);
    /// # Ok(()) }
    /// ```
    pub fn with_lease(mut self, lease: i64) -> Self {
        self.lease = Some(lease);
        self
    }
}

/// Why a session ended; the output of [`Session::done`].
///
/// ```no_run
/// use etcdv3_client::concurrency::{Session, SessionEnd, SessionOptions};
/// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::concurrency::Result<()> {
/// let session = Session::new(&client, SessionOptions::new()).await?;
/// match session.done().await {
///     SessionEnd::DeadlinePassed => println!("lease may be lost: stop working"),
///     SessionEnd::Expired => println!("lease lost: stop working"),
///     SessionEnd::Closed => println!("closed on purpose"),
///     SessionEnd::ClientClosed => println!("client closed"),
///     _ => {}
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionEnd {
    /// **Confirmed**: the server answered that the lease no longer exists
    /// (it expired or was revoked). Its keys are deleted: every lock and
    /// leadership held under it is gone, and may belong to others.
    Expired,
    /// The lease's local deadline ([`Session::valid_until`]) passed with no
    /// renewal answered (members unreachable, or too slow): the lease **may
    /// have expired** on the server, and its locks and leadership may
    /// already belong to other sessions. Not confirmed: the server may also
    /// still hold it. Reported at the deadline; the session stops renewing
    /// and revokes the lease in the background once a member answers.
    DeadlinePassed,
    /// The session was closed ([`Session::close`], [`Session::orphan`], or
    /// the last handle dropped).
    Closed,
    /// The client was closed: renewals stopped, the lease will expire.
    ClientClosed,
    /// The keep-alive stream was refused for good (e.g. TLS or
    /// authentication failures): renewals stopped, the lease will expire
    /// (it is still alive until [`Session::valid_until`]).
    KeepAliveFailed,
}

/// A lease kept alive in the background by the client's keep-alive task,
/// until the session is closed or dropped: the liveness of a [`Mutex`]
/// owner or an [`Election`] candidate.
///
/// Cheap to clone; clones share the lease. When the last clone (including
/// those held by mutexes and elections) is dropped, the lease is revoked in
/// the background (best effort: otherwise it expires after its TTL).
///
/// [`Mutex`]: super::Mutex
/// [`Election`]: super::Election
///
/// ```no_run
/// use etcdv3_client::concurrency::{Session, SessionEnd, SessionOptions};
///
/// async fn demo(client: &etcdv3_client::Client) -> etcdv3_client::concurrency::Result<()> {
///     let session = Session::new(client, SessionOptions::new().with_ttl(5)).await?;
///     println!("lease {:016x}", session.lease_id());
///     // Elsewhere: learn that the lease is lost.
///     let end: SessionEnd = session.done().await;
///     println!("session ended: {end:?}");
///     Ok(())
/// }
/// ```
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("lease", &self.inner.lease)
            .field("ttl", &self.inner.ttl)
            .finish_non_exhaustive()
    }
}

struct Inner {
    client: Client,
    lease: i64,
    ttl: i64,
    state: Arc<DoneState>,
    /// The keeper's view of the lease (until when it is certainly alive).
    slot: Arc<Slot>,
    /// Stops the keep-alive task (dropping it does too).
    stop: StdMutex<Option<oneshot::Sender<()>>>,
    /// Closed or orphaned: nothing to revoke on drop.
    finished: AtomicBool,
    /// Keys of this session that a guard or a pending call owns, with the
    /// callers waiting for them.
    claims: StdMutex<HashMap<Vec<u8>, Vec<oneshot::Sender<()>>>>,
}

#[derive(Default)]
struct DoneState {
    inner: StdMutex<(Option<SessionEnd>, HashMap<u64, Waker>)>,
    /// When the session ended.
    ended_at: StdMutex<Option<Instant>>,
}

impl DoneState {
    fn lock(&self) -> StdMutexGuard<'_, (Option<SessionEnd>, HashMap<u64, Waker>)> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The session ended at `at`, for `end` (the first end sticks).
    fn finish(&self, end: SessionEnd, at: Instant) {
        let wakers = {
            let mut st = self.lock();
            if st.0.is_some() {
                return;
            }
            st.0 = Some(end);
            *lock(&self.ended_at) = Some(at);
            std::mem::take(&mut st.1)
        };
        for w in wakers.into_values() {
            w.wake();
        }
    }

    fn end(&self) -> Option<SessionEnd> {
        self.lock().0
    }
}

fn lock<T>(m: &StdMutex<T>) -> StdMutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Session {
    /// Start a session: grant a lease (or adopt the one given) and keep it
    /// alive in the background.
    ///
    /// ```no_run
    /// use etcdv3_client::concurrency::{Session, SessionOptions};
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::concurrency::Result<()> {
    /// let session = Session::new(&client, SessionOptions::new()).await?;
    /// assert!(session.ended().is_none());
    /// # Ok(()) }
    /// ```
    pub async fn new(client: &Client, options: SessionOptions) -> Result<Session> {
        let (lease, granted) = match options.lease {
            Some(id) => (id, false),
            None => {
                if options.ttl <= 0 {
                    return Err(crate::Error::InvalidArgument(
                        "session TTL must be positive".into(),
                    )
                    .into());
                }
                let resp = client
                    .lease_grant(options.ttl, LeaseGrantOptions::new())
                    .await?;
                (resp.id, true)
            }
        };
        let keeper = match client.keep_lease(lease, true).await {
            Ok(k) => k,
            Err(e) => {
                if granted {
                    let _ = client.lease_revoke(lease).await;
                }
                return Err(e.into());
            }
        };
        let ttl = keeper.ttl();
        let slot = keeper.slot();
        let state = Arc::new(DoneState::default());
        let (stop, stopped) = oneshot::channel();
        client.spawn(keep(client.clone(), keeper, stopped, state.clone()));
        Ok(Session {
            inner: Arc::new(Inner {
                client: client.clone(),
                lease,
                ttl,
                state,
                slot,
                stop: StdMutex::new(Some(stop)),
                finished: AtomicBool::new(false),
                claims: StdMutex::new(HashMap::new()),
            }),
        })
    }

    /// The session's lease id.
    ///
    /// ```no_run
    /// use etcdv3_client::api::PutOptions;
    /// use etcdv3_client::concurrency::{Session, SessionOptions};
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::concurrency::Result<()> {
    /// let session = Session::new(&client, SessionOptions::new()).await?;
    /// // A key that lives as long as the session.
    /// client.put("workers/w1", "up", PutOptions::new().with_lease(session.lease_id())).await?;
    /// # Ok(()) }
    /// ```
    pub fn lease_id(&self) -> i64 {
        self.inner.lease
    }

    /// The lease's TTL in seconds, as granted.
    ///
    /// ```no_run
    /// use etcdv3_client::concurrency::{Session, SessionOptions};
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::concurrency::Result<()> {
    /// let session = Session::new(&client, SessionOptions::new()).await?;
    /// assert_eq!(session.ttl(), SessionOptions::DEFAULT_TTL);
    /// # Ok(()) }
    /// ```
    pub fn ttl(&self) -> i64 {
        self.inner.ttl
    }

    /// The instant until which the session's lease is **certainly** alive
    /// on the server (the send time of the last answered renewal + its
    /// TTL): a fencing view without a round trip. Everything held under the
    /// session is safe to act on before it, and only then. It never moves
    /// past the first local deadline that passed unrenewed, nor past the
    /// instant the session ended.
    ///
    /// ```no_run
    /// use std::time::{Duration, Instant};
    /// use etcdv3_client::concurrency::{Session, SessionOptions};
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::concurrency::Result<()> {
    /// let session = Session::new(&client, SessionOptions::new().with_ttl(10)).await?;
    /// if session.valid_until() > Instant::now() + Duration::from_secs(1) {
    ///     println!("the lease is ours for at least another second");
    /// }
    /// # Ok(()) }
    /// ```
    pub fn valid_until(&self) -> Instant {
        let slot = &self.inner.slot;
        let until = slot.lapsed_at().unwrap_or_else(|| slot.valid_until());
        match *lock(&self.inner.state.ended_at) {
            Some(at) => until.min(at),
            None => until,
        }
    }

    /// The client the session runs on.
    ///
    /// ```no_run
    /// use etcdv3_client::concurrency::{Session, SessionOptions};
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::concurrency::Result<()> {
    /// let session = Session::new(&client, SessionOptions::new()).await?;
    /// let ttl = session.client().lease_time_to_live(session.lease_id(), false).await?.ttl;
    /// assert!(ttl > 0);
    /// # Ok(()) }
    /// ```
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// A future that resolves when the session ends, saying why. Any
    /// number of them may wait.
    ///
    /// ```no_run
    /// use etcdv3_client::concurrency::{Session, SessionOptions};
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::concurrency::Result<()> {
    /// let session = Session::new(&client, SessionOptions::new()).await?;
    /// let end = session.done().await;
    /// println!("session over: {end:?}");
    /// # Ok(()) }
    /// ```
    pub fn done(&self) -> SessionDone {
        SessionDone {
            id: self.client().shared.tasks.ids.next_waiter(),
            state: self.inner.state.clone(),
        }
    }

    /// How the session ended, or `None` while it is alive.
    ///
    /// ```no_run
    /// use etcdv3_client::concurrency::{Session, SessionEnd, SessionOptions};
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::concurrency::Result<()> {
    /// let session = Session::new(&client, SessionOptions::new()).await?;
    /// session.close().await?;
    /// assert_eq!(session.ended(), Some(SessionEnd::Closed));
    /// # Ok(()) }
    /// ```
    pub fn ended(&self) -> Option<SessionEnd> {
        self.inner.state.end()
    }

    /// Stop renewing and revoke the lease: every lock and candidacy held
    /// under it ends at once. Affects every clone of the session.
    ///
    /// ```no_run
    /// use etcdv3_client::concurrency::{Session, SessionOptions};
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::concurrency::Result<()> {
    /// let session = Session::new(&client, SessionOptions::new()).await?;
    /// let lease = session.lease_id();
    /// session.close().await?;
    /// assert_eq!(client.lease_time_to_live(lease, false).await?.ttl, -1);
    /// # Ok(()) }
    /// ```
    pub async fn close(&self) -> Result<()> {
        self.stop_keeping();
        self.inner
            .client
            .lease_revoke(self.inner.lease)
            .await
            .map(|_| ())
            .map_err(Error::from)
    }

    /// Stop renewing the lease without revoking it: it expires after its
    /// TTL (Go's `Orphan`). Affects every clone of the session.
    ///
    /// ```no_run
    /// use etcdv3_client::concurrency::{Session, SessionOptions};
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::concurrency::Result<()> {
    /// let session = Session::new(&client, SessionOptions::new()).await?;
    /// let lease = session.lease_id(); // saved, to resume with `with_lease` after a restart
    /// session.orphan();
    /// # Ok(()) }
    /// ```
    pub fn orphan(&self) {
        self.stop_keeping();
    }

    fn stop_keeping(&self) {
        self.inner.finished.store(true, Ordering::SeqCst);
        lock(&self.inner.stop).take();
        self.inner
            .state
            .finish(SessionEnd::Closed, self.inner.client.now());
    }

    /// The error of a call that found the session ended.
    pub(super) fn expired(&self) -> Error {
        Error::SessionExpired {
            lease: self.inner.lease,
        }
    }

    /// Claim `key` for one owner of this session, waiting while another
    /// owner (a guard, a pending call, a cleanup) has it.
    pub(super) async fn claim(&self, key: &[u8]) -> KeyClaim {
        loop {
            let wait = {
                let mut claims = lock(&self.inner.claims);
                match claims.get_mut(key) {
                    None => {
                        claims.insert(key.to_vec(), Vec::new());
                        return KeyClaim {
                            inner: self.inner.clone(),
                            key: key.to_vec(),
                        };
                    }
                    Some(waiters) => {
                        let (tx, rx) = oneshot::channel();
                        waiters.push(tx);
                        rx
                    }
                }
            };
            let _ = wait.await;
        }
    }

    /// Claim `key` if no other owner of this session has it.
    pub(super) fn try_claim(&self, key: &[u8]) -> Option<KeyClaim> {
        let mut claims = lock(&self.inner.claims);
        if claims.contains_key(key) {
            return None;
        }
        claims.insert(key.to_vec(), Vec::new());
        Some(KeyClaim {
            inner: self.inner.clone(),
            key: key.to_vec(),
        })
    }
}

/// Renews the lease until it is lost (or may be) or the session stops it.
async fn keep(
    client: Client,
    mut keeper: LeaseKeeper,
    mut stop: oneshot::Receiver<()>,
    state: Arc<DoneState>,
) {
    let end = loop {
        let next = std::future::poll_fn(|cx| Pin::new(&mut keeper).poll_next(cx));
        match select(std::pin::pin!(next), &mut stop).await {
            Either::Left((Some(Ok(KeepAliveEvent::Renewed { .. })), _)) => {}
            Either::Left((Some(Ok(_)), _)) => break SessionEnd::DeadlinePassed,
            Either::Left((Some(Err(crate::Error::LeaseExpired { .. })), _)) => {
                break SessionEnd::Expired
            }
            Either::Left((Some(Err(crate::Error::LeaseNotRenewed { .. })), _)) => {
                break SessionEnd::DeadlinePassed
            }
            Either::Left((Some(Err(e)), _)) if e.is_closed() => break SessionEnd::ClientClosed,
            Either::Left((Some(Err(e)), _)) => {
                tracing::debug!(error = %e, "session keep-alive ended");
                break SessionEnd::KeepAliveFailed;
            }
            Either::Left((None, _)) => break SessionEnd::ClientClosed,
            Either::Right(_) => break SessionEnd::Closed,
        }
    };
    let lease = keeper.id();
    let ttl = keeper.ttl();
    drop(keeper);
    state.finish(end, client.now());
    if end == SessionEnd::DeadlinePassed && !client.is_closed() {
        // Those waiting for what the session held need not wait for the
        // server to expire the lease: revoke it as soon as a member
        // answers, for as long as that can still help.
        let window = etcdv3_core::streams::lease::revoke_window(ttl);
        match client.lease_revoke_within(lease, window).await {
            Ok(_) => {
                tracing::debug!(lease = %format_args!("{lease:016x}"), "revoked a session's lease past its deadline")
            }
            Err(e) => {
                tracing::debug!(lease = %format_args!("{lease:016x}"), error = %e, "revoking a session's lease past its deadline failed; it expires")
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        lock(&self.stop).take();
        self.state.finish(SessionEnd::Closed, self.client.now());
        if self.finished.load(Ordering::SeqCst) || self.client.is_closed() {
            return;
        }
        let client = self.client.clone();
        let lease = self.lease;
        self.client.spawn(async move {
            if let Err(e) = client.lease_revoke(lease).await {
                tracing::debug!(lease = %format_args!("{lease:016x}"), error = %e, "revoking a dropped session's lease failed; it will expire");
            }
        });
    }
}

/// One owner's hold on a key of the session (see [`Session::claim`]).
pub(super) struct KeyClaim {
    inner: Arc<Inner>,
    key: Vec<u8>,
}

impl Drop for KeyClaim {
    fn drop(&mut self) {
        let waiters = lock(&self.inner.claims).remove(&self.key);
        for w in waiters.into_iter().flatten() {
            let _ = w.send(());
        }
    }
}

/// The future of [`Session::done`]: resolves with why the session ended.
///
/// ```no_run
/// use etcdv3_client::concurrency::{Session, SessionDone, SessionOptions};
/// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::concurrency::Result<()> {
/// let session = Session::new(&client, SessionOptions::new()).await?;
/// let done: SessionDone = session.done();
/// let end = done.await;
/// # Ok(()) }
/// ```
pub struct SessionDone {
    id: u64,
    state: Arc<DoneState>,
}

impl std::fmt::Debug for SessionDone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionDone").finish_non_exhaustive()
    }
}

impl Future for SessionDone {
    type Output = SessionEnd;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<SessionEnd> {
        let mut st = self.state.lock();
        if let Some(end) = st.0 {
            return Poll::Ready(end);
        }
        st.1.insert(self.id, cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for SessionDone {
    fn drop(&mut self) {
        // A dropped waiter leaves no waker behind (sessions live long).
        self.state.lock().1.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Wake;

    struct Count(std::sync::atomic::AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn done_wakes_every_waiter_once_and_forgets_dropped_ones() {
        let state = Arc::new(DoneState::default());
        let count = Arc::new(Count(Default::default()));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let ids = std::cell::Cell::new(0);
        let waiter = |state: &Arc<DoneState>| SessionDone {
            id: ids.replace(ids.get() + 1),
            state: state.clone(),
        };
        let mut a = waiter(&state);
        let mut b = waiter(&state);
        for _ in 0..3 {
            assert!(Pin::new(&mut a).poll(&mut cx).is_pending());
            assert!(Pin::new(&mut b).poll(&mut cx).is_pending());
        }
        assert_eq!(state.lock().1.len(), 2, "one waker per waiter");
        drop(b);
        assert_eq!(state.lock().1.len(), 1, "a dropped waiter is forgotten");
        state.finish(SessionEnd::Expired, Instant::now());
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(
            Pin::new(&mut a).poll(&mut cx),
            Poll::Ready(SessionEnd::Expired)
        );
        // The first end sticks.
        state.finish(SessionEnd::Closed, Instant::now());
        assert_eq!(state.end(), Some(SessionEnd::Expired));
        let mut late = waiter(&state);
        assert_eq!(
            Pin::new(&mut late).poll(&mut cx),
            Poll::Ready(SessionEnd::Expired)
        );
    }
}
