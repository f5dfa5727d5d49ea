//! [`Election`]: leader election on a [`Session`], Go's algorithm, and
//! [`observe`]: a stream of the leaders that survives failover.
//!
//! Each candidate owns the key `name/<lease id in hex>`, whose value is its
//! proclamation; the candidate with the lowest create revision leads. The
//! leader changes only when the leader's key is deleted (resign, lease
//! expiry), which is what [`observe`] follows.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use futures_util::future::{select, Either};
use futures_util::StreamExt;

use super::mutex::first_kv;
use super::session::{KeyClaim, Session};
use super::{remove_key, still_owned, wait_deletes, Backoff, Cleanup, Error, Result};
use crate::api::{
    Compare, CompareOp, EventType, GetOptions, KeyValue, PutOptions, SortOrder, SortTarget, Txn,
    TxnOp, WatchEvent, WatchOptions, Watcher,
};
use crate::error::Error as ClientError;
use crate::Client;

/// A candidate's side of the election `name` on a session.
///
/// ```no_run
/// use etcdv3_client::concurrency::{Election, Session, SessionOptions};
///
/// async fn demo(client: &etcdv3_client::Client) -> etcdv3_client::concurrency::Result<()> {
///     let session = Session::new(client, SessionOptions::new().with_ttl(10)).await?;
///     let mut election = Election::new(&session, "scheduler");
///     election.campaign("node-1").await?; // waits until elected
///     election.proclaim("node-1 (busy)").await?;
///     election.resign().await?;
///     Ok(())
/// }
/// ```
///
/// Dropping an `Election` that leads (or campaigns) resigns in the
/// background.
#[derive(Debug)]
pub struct Election {
    session: Session,
    prefix: Vec<u8>,
    key: Vec<u8>,
    leadership: Option<Leadership>,
}

struct Leadership {
    revision: i64,
    claim: KeyClaim,
}

impl std::fmt::Debug for Leadership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leadership")
            .field("revision", &self.revision)
            .finish_non_exhaustive()
    }
}

fn prefix_of(name: impl Into<Vec<u8>>) -> Vec<u8> {
    let mut prefix = name.into();
    prefix.push(b'/');
    prefix
}

fn first_created() -> GetOptions {
    GetOptions::new()
        .with_prefix()
        .with_sort(SortTarget::Create, SortOrder::Ascend)
        .with_limit(1)
}

impl Election {
    /// The election `name` (its keys live under `name/`) for `session`.
    ///
    /// ```no_run
    /// use etcdv3_client::concurrency::{Election, Session, SessionOptions};
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::concurrency::Result<()> {
    /// let session = Session::new(&client, SessionOptions::new()).await?;
    /// let election = Election::new(&session, "scheduler");
    /// assert!(!election.is_leader());
    /// # Ok(()) }
    /// ```
    pub fn new(session: &Session, name: impl Into<Vec<u8>>) -> Election {
        let prefix = prefix_of(name);
        let mut key = prefix.clone();
        key.extend_from_slice(format!("{:x}", session.lease_id()).as_bytes());
        Election {
            session: session.clone(),
            prefix,
            key,
            leadership: None,
        }
    }

    /// This candidate's key (the leader key while it leads).
    ///
    /// ```no_run
    /// use etcdv3_client::concurrency::{Election, Session, SessionOptions};
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::concurrency::Result<()> {
    /// let session = Session::new(&client, SessionOptions::new()).await?;
    /// let election = Election::new(&session, "scheduler");
    /// assert_eq!(election.key(), format!("scheduler/{:x}", session.lease_id()).as_bytes());
    /// # Ok(()) }
    /// ```
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The create revision of the leader key while this candidate leads.
    ///
    /// ```no_run
    /// use etcdv3_client::concurrency::{Election, Session, SessionOptions};
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::concurrency::Result<()> {
    /// let session = Session::new(&client, SessionOptions::new()).await?;
    /// let mut election = Election::new(&session, "scheduler");
    /// assert_eq!(election.revision(), None);
    /// election.campaign("node-1").await?;
    /// println!("leading since revision {:?}", election.revision());
    /// # Ok(()) }
    /// ```
    pub fn revision(&self) -> Option<i64> {
        self.leadership.as_ref().map(|l| l.revision)
    }

    /// Whether this candidate won, has not resigned, and its session has
    /// not ended. Once the session ended (its lease's local deadline passed
    /// unrenewed, or the lease is gone) this is `false` for good: the
    /// leadership is lost, or may be, and is never resumed. For a fencing
    /// view see [`valid_until`](Election::valid_until).
    ///
    /// ```no_run
    /// use etcdv3_client::concurrency::{Election, Session, SessionOptions};
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::concurrency::Result<()> {
    /// let session = Session::new(&client, SessionOptions::new()).await?;
    /// let mut election = Election::new(&session, "scheduler");
    /// election.campaign("node-1").await?;
    /// assert!(election.is_leader());
    /// election.resign().await?;
    /// assert!(!election.is_leader());
    /// # Ok(()) }
    /// ```
    pub fn is_leader(&self) -> bool {
        self.leadership.is_some() && self.session.ended().is_none()
    }

    /// While this candidate leads: the instant until which its leadership
    /// is **certainly** held (the session's [`Session::valid_until`]: its
    /// lease, and with it the leader key, is certainly alive until then).
    /// Leadership is lost, or may be, when the session ends
    /// ([`Session::done`]); past this instant do not act as the leader.
    /// `None` when not leading.
    ///
    /// ```no_run
    /// use std::time::Instant;
    /// use etcdv3_client::concurrency::{Election, Session, SessionOptions};
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::concurrency::Result<()> {
    /// let session = Session::new(&client, SessionOptions::new()).await?;
    /// let mut election = Election::new(&session, "scheduler");
    /// election.campaign("node-1").await?;
    /// if election.valid_until().is_some_and(|t| t > Instant::now()) {
    ///     println!("certainly the leader right now");
    /// }
    /// # Ok(()) }
    /// ```
    pub fn valid_until(&self) -> Option<std::time::Instant> {
        self.leadership.as_ref().map(|_| self.session.valid_until())
    }

    /// A condition that holds while this candidate's leadership lasts, for
    /// [`Txn::when`]; `None` when not leading.
    ///
    /// ```no_run
    /// use etcdv3_client::api::{PutOptions, Txn, TxnOp};
    /// use etcdv3_client::concurrency::{Election, Session, SessionOptions};
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::concurrency::Result<()> {
    /// let session = Session::new(&client, SessionOptions::new()).await?;
    /// let mut election = Election::new(&session, "scheduler");
    /// election.campaign("node-1").await?;
    /// if let Some(still_leader) = election.is_leader_compare() {
    ///     let txn = Txn::new().when([still_leader]).and_then([TxnOp::put("plan", "v2", PutOptions::new())]);
    ///     client.txn(txn).await?;
    /// }
    /// # Ok(()) }
    /// ```
    pub fn is_leader_compare(&self) -> Option<Compare> {
        self.leadership
            .as_ref()
            .map(|l| Compare::create_revision(self.key.clone(), CompareOp::Equal, l.revision))
    }

    /// The session the candidacy runs on.
    ///
    /// ```no_run
    /// use etcdv3_client::concurrency::{Election, Session, SessionOptions};
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::concurrency::Result<()> {
    /// let session = Session::new(&client, SessionOptions::new()).await?;
    /// let election = Election::new(&session, "scheduler");
    /// assert_eq!(election.session().lease_id(), session.lease_id());
    /// # Ok(()) }
    /// ```
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Run for leader with `value`, waiting until elected. Already leading:
    /// proclaims `value`. Fails with [`Error::SessionExpired`] if the
    /// session ends first. Dropping the future while it waits withdraws the
    /// candidacy (in the background).
    ///
    /// ```no_run
    /// use etcdv3_client::concurrency::{Election, Session, SessionOptions};
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::concurrency::Result<()> {
    /// let session = Session::new(&client, SessionOptions::new()).await?;
    /// let mut election = Election::new(&session, "scheduler");
    /// election.campaign("node-1").await?; // returns once elected
    /// # Ok(()) }
    /// ```
    pub async fn campaign(&mut self, value: impl Into<Vec<u8>>) -> Result<()> {
        let value = value.into();
        if self.session.ended().is_some() {
            return Err(self.session.expired());
        }
        if self.leadership.is_some() {
            return self.proclaim(value).await;
        }
        let claim = self.session.claim(&self.key).await;
        let client = self.session.client();
        let mut cleanup = Cleanup::new(client, &self.key, claim);
        let txn = Txn::new()
            .when([Compare::create_revision(
                self.key.clone(),
                CompareOp::Equal,
                0,
            )])
            .and_then([TxnOp::put(
                self.key.clone(),
                value.clone(),
                PutOptions::new().with_lease(self.session.lease_id()),
            )])
            .or_else([TxnOp::get(self.key.clone(), GetOptions::new())]);
        let resp = client.txn(txn).await?;
        let revision = if resp.succeeded {
            resp.revision()
        } else {
            let kv = first_kv(&resp, 0).ok_or_else(|| {
                Error::Client(ClientError::InvalidArgument(
                    "unexpected server answer: the candidate key vanished inside a transaction"
                        .into(),
                ))
            })?;
            let revision = kv.create_revision;
            if kv.value != value {
                self.put_guarded(revision, value).await?;
            }
            revision
        };
        cleanup.revision = Some(revision);
        let wait = std::pin::pin!(wait_deletes(client, &self.prefix, revision - 1));
        match select(wait, self.session.done()).await {
            Either::Left((r, _)) => r?,
            Either::Right(_) => return Err(self.session.expired()),
        }
        if still_owned(&self.session, &self.key, revision)
            .await?
            .is_none()
        {
            return Err(self.session.expired());
        }
        if let Some(claim) = cleanup.disarm() {
            self.leadership = Some(Leadership { revision, claim });
        }
        Ok(())
    }

    async fn put_guarded(&self, revision: i64, value: Vec<u8>) -> Result<bool> {
        let txn = Txn::new()
            .when([Compare::create_revision(
                self.key.clone(),
                CompareOp::Equal,
                revision,
            )])
            .and_then([TxnOp::put(
                self.key.clone(),
                value,
                PutOptions::new().with_lease(self.session.lease_id()),
            )]);
        Ok(self.session.client().txn(txn).await?.succeeded)
    }

    /// As the leader, announce `value` to observers. Fails with
    /// [`Error::NotLeader`] when not leading (any more: also once the
    /// session ended, even if the leader key still exists).
    ///
    /// ```no_run
    /// use etcdv3_client::concurrency::{Election, Error, Session, SessionOptions};
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::concurrency::Result<()> {
    /// let session = Session::new(&client, SessionOptions::new()).await?;
    /// let mut election = Election::new(&session, "scheduler");
    /// assert!(matches!(election.proclaim("x").await, Err(Error::NotLeader)));
    /// election.campaign("node-1").await?;
    /// election.proclaim("node-1, 3 jobs").await?;
    /// # Ok(()) }
    /// ```
    pub async fn proclaim(&mut self, value: impl Into<Vec<u8>>) -> Result<()> {
        let Some(revision) = self.revision() else {
            return Err(Error::NotLeader);
        };
        if !self.is_leader() {
            // The session ended: leadership is lost or may be, and is not
            // resumed even if the leader key still exists.
            return Err(Error::NotLeader);
        }
        if self.put_guarded(revision, value.into()).await? {
            Ok(())
        } else {
            self.leadership = None;
            Err(Error::NotLeader)
        }
    }

    /// Step down (delete the leader key if it is still ours). Not leading:
    /// does nothing.
    ///
    /// ```no_run
    /// use etcdv3_client::concurrency::{Election, Session, SessionOptions};
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::concurrency::Result<()> {
    /// let session = Session::new(&client, SessionOptions::new()).await?;
    /// let mut election = Election::new(&session, "scheduler");
    /// election.campaign("node-1").await?;
    /// election.resign().await?;
    /// # Ok(()) }
    /// ```
    pub async fn resign(&mut self) -> Result<()> {
        let Some(leadership) = self.leadership.take() else {
            return Ok(());
        };
        let client = self.session.client();
        match remove_key(client, &self.key, Some(leadership.revision)).await {
            Ok(_) => Ok(()),
            Err(e) => {
                // Not known to be removed: retry in the background.
                let mut cleanup = Cleanup::new(client, &self.key, leadership.claim);
                cleanup.revision = Some(leadership.revision);
                Err(e.into())
            }
        }
    }

    /// The current leader's key-value (its value is the last
    /// proclamation); [`Error::NoLeader`] when nobody leads.
    ///
    /// ```no_run
    /// use etcdv3_client::concurrency::{Election, Session, SessionOptions};
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::concurrency::Result<()> {
    /// let session = Session::new(&client, SessionOptions::new()).await?;
    /// let mut election = Election::new(&session, "scheduler");
    /// election.campaign("node-1").await?;
    /// assert_eq!(election.leader().await?.value, b"node-1");
    /// # Ok(()) }
    /// ```
    pub async fn leader(&self) -> Result<KeyValue> {
        leader(self.session.client(), &self.prefix).await
    }

    /// The leaders from the first poll on; see [`observe`].
    ///
    /// ```no_run
    /// use etcdv3_client::concurrency::{Election, Session, SessionOptions};
    /// use futures_util::StreamExt;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::concurrency::Result<()> {
    /// let session = Session::new(&client, SessionOptions::new()).await?;
    /// let election = Election::new(&session, "scheduler");
    /// let mut leaders = election.observe();
    /// while let Some(kv) = leaders.next().await {
    ///     println!("leader now: {:?}", kv?.value);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn observe(&self) -> Observe {
        Observe::new(self.session.client(), self.prefix.clone())
    }
}

impl Drop for Election {
    fn drop(&mut self) {
        if let Some(leadership) = self.leadership.take() {
            let mut cleanup = Cleanup::new(self.session.client(), &self.key, leadership.claim);
            cleanup.revision = Some(leadership.revision);
        }
    }
}

async fn leader(client: &Client, prefix: &[u8]) -> Result<KeyValue> {
    let resp = client.get(prefix.to_vec(), first_created()).await?;
    resp.kvs.into_iter().next().ok_or(Error::NoLeader)
}

/// The current leader of election `name` without a session;
/// [`Error::NoLeader`] when nobody leads.
///
/// ```no_run
/// use etcdv3_client::concurrency::{leader_of, Error};
/// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::concurrency::Result<()> {
/// match leader_of(&client, "scheduler").await {
///     Ok(kv) => println!("led by {:?}", kv.value),
///     Err(Error::NoLeader) => println!("nobody leads"),
///     Err(e) => return Err(e),
/// }
/// # Ok(()) }
/// ```
pub async fn leader_of(client: &Client, name: impl Into<Vec<u8>>) -> Result<KeyValue> {
    leader(client, &prefix_of(name)).await
}

/// Every leader of election `name`, without a session: the current one
/// (if any) when the stream is first polled, then each proclamation and each
/// new leader, as a [`Stream`] of the leader's key-value.
///
/// The stream survives member failures and reconnects: it is built from
/// reads at exact revisions and watches that resume after the last revision
/// seen, so it never skips a leader (a leader that came and went while the
/// stream was reconnecting is still reported) and never reports one twice.
/// Only a compaction of the revisions it still needs makes it skip, to the
/// current leader. It ends after `Err` when the client is closed.
///
/// ```no_run
/// use futures_util::StreamExt;
///
/// async fn demo(client: &etcdv3_client::Client) -> etcdv3_client::concurrency::Result<()> {
///     let mut leaders = etcdv3_client::concurrency::observe(client, "scheduler");
///     while let Some(leader) = leaders.next().await {
///         let kv = leader?;
///         println!("leader {:?} says {:?}", kv.key, kv.value);
///     }
///     Ok(())
/// }
/// ```
pub fn observe(client: &Client, name: impl Into<Vec<u8>>) -> Observe {
    Observe::new(client, prefix_of(name))
}

/// The stream of [`observe`] and [`Election::observe`].
///
/// ```no_run
/// use etcdv3_client::concurrency::{observe, Observe};
/// use futures_util::StreamExt;
/// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::concurrency::Result<()> {
/// let mut leaders: Observe = observe(&client, "scheduler");
/// if let Some(first) = leaders.next().await {
///     println!("current leader: {:?}", first?.key);
/// }
/// # Ok(()) }
/// ```
pub struct Observe {
    inner: Pin<Box<dyn Stream<Item = Result<KeyValue>> + Send>>,
}

impl std::fmt::Debug for Observe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observe").finish_non_exhaustive()
    }
}

impl Stream for Observe {
    type Item = Result<KeyValue>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().inner.as_mut().poll_next(cx)
    }
}

/// Where the observer is in the election's history.
enum Phase {
    /// Read the leader as of this revision (0: the latest).
    Resolve(i64),
    /// Follow the leader `key` from revision `from` on (its proclamations
    /// and its deletion).
    Follow {
        key: Vec<u8>,
        from: i64,
        watcher: Option<Watcher>,
    },
    /// Nobody leads as of `from - 1`: wait for the first candidate.
    WaitFirst { from: i64, watcher: Option<Watcher> },
    /// The client closed; the error was delivered.
    Done,
}

struct ObserveState {
    client: Client,
    prefix: Vec<u8>,
    phase: Phase,
    queue: VecDeque<KeyValue>,
    /// (key, create revision, mod revision) of the last leader value
    /// delivered: the same value is never delivered twice.
    last: Option<(Vec<u8>, i64, i64)>,
    backoff: Backoff,
}

impl Observe {
    fn new(client: &Client, prefix: Vec<u8>) -> Observe {
        let state = ObserveState {
            client: client.clone(),
            prefix,
            phase: Phase::Resolve(0),
            queue: VecDeque::new(),
            last: None,
            backoff: Backoff::recipe(client),
        };
        let stream = futures_util::stream::unfold(state, |mut st| async move {
            let item = st.next().await?;
            Some((item, st))
        });
        Observe {
            inner: Box::pin(stream),
        }
    }
}

impl ObserveState {
    fn deliver(&mut self, kv: KeyValue) {
        let id = (kv.key.clone(), kv.create_revision, kv.mod_revision);
        if self.last.as_ref() != Some(&id) {
            self.last = Some(id);
            self.queue.push_back(kv);
        }
    }

    /// A transient failure: wait, then re-read the state as of the last
    /// revision fully seen (the watch resumes from there).
    async fn retry(&mut self, error: &ClientError, seen: i64) -> Option<Result<KeyValue>> {
        if error.is_closed() {
            self.phase = Phase::Done;
            return Some(Err(Error::Client(error.clone())));
        }
        tracing::debug!(error = %error, "election observer: retrying");
        self.phase = Phase::Resolve(seen);
        // (`recipe` loops never give up: the observer keeps following.)
        self.backoff.wait(&self.client).await;
        None
    }

    async fn next(&mut self) -> Option<Result<KeyValue>> {
        loop {
            if let Some(kv) = self.queue.pop_front() {
                return Some(Ok(kv));
            }
            match std::mem::replace(&mut self.phase, Phase::Done) {
                Phase::Done => return None,
                Phase::Resolve(revision) => {
                    let opts = first_created().with_revision(revision);
                    match self.client.get(self.prefix.clone(), opts).await {
                        Ok(resp) => {
                            self.backoff.reset();
                            let as_of = if revision > 0 {
                                revision
                            } else {
                                resp.revision()
                            };
                            match resp.kvs.into_iter().next() {
                                Some(kv) => {
                                    self.phase = Phase::Follow {
                                        key: kv.key.clone(),
                                        from: as_of + 1,
                                        watcher: None,
                                    };
                                    self.deliver(kv);
                                }
                                None => {
                                    self.phase = Phase::WaitFirst {
                                        from: as_of + 1,
                                        watcher: None,
                                    }
                                }
                            }
                        }
                        Err(e)
                            if e.etcd_kind()
                                == Some(&crate::core::wire::error::EtcdErrorKind::Compacted) =>
                        {
                            tracing::warn!("election observer: revision {revision} was compacted; continuing from the latest");
                            self.phase = Phase::Resolve(0);
                        }
                        Err(e) => {
                            if let Some(item) = self.retry(&e, revision).await {
                                return Some(item);
                            }
                        }
                    }
                }
                Phase::Follow { key, from, watcher } => {
                    let mut watcher = match watcher {
                        Some(w) => w,
                        None => {
                            let opts = WatchOptions::new().with_start_revision(from);
                            match self.client.watch(key.clone(), opts).await {
                                Ok(w) => w,
                                Err(e) => {
                                    if let Some(item) = self.retry(&e, from - 1).await {
                                        return Some(item);
                                    }
                                    continue;
                                }
                            }
                        }
                    };
                    let mut from = from;
                    match watcher.next().await {
                        Some(Ok(WatchEvent::Events { events, .. })) => {
                            for ev in events {
                                let delete = ev.r#type() == EventType::Delete;
                                let Some(kv) = ev.kv else { continue };
                                if delete {
                                    // The leader is gone: who leads right after?
                                    self.phase = Phase::Resolve(kv.mod_revision);
                                    break;
                                }
                                from = kv.mod_revision + 1;
                                self.deliver(kv);
                            }
                            if matches!(self.phase, Phase::Done) {
                                self.phase = Phase::Follow {
                                    key,
                                    from,
                                    watcher: Some(watcher),
                                };
                            }
                        }
                        Some(Ok(WatchEvent::Created { .. } | WatchEvent::Progress { .. })) => {
                            self.phase = Phase::Follow {
                                key,
                                from,
                                watcher: Some(watcher),
                            };
                        }
                        Some(Ok(WatchEvent::Compacted { .. })) => {
                            tracing::warn!(
                                "election observer: history compacted; continuing from the latest"
                            );
                            self.phase = Phase::Resolve(0);
                        }
                        Some(Ok(WatchEvent::Cancelled { reason })) => {
                            let e = ClientError::from_cancel_reason(reason);
                            if let Some(item) = self.retry(&e, from - 1).await {
                                return Some(item);
                            }
                        }
                        Some(Err(e)) => {
                            if let Some(item) = self.retry(&e, from - 1).await {
                                return Some(item);
                            }
                        }
                        None => {
                            if let Some(item) = self.retry(&ClientError::Closed, from - 1).await {
                                return Some(item);
                            }
                        }
                    }
                }
                Phase::WaitFirst { from, watcher } => {
                    let mut watcher = match watcher {
                        Some(w) => w,
                        None => {
                            let opts = WatchOptions::new()
                                .with_prefix()
                                .with_start_revision(from)
                                .with_no_delete();
                            match self.client.watch(self.prefix.clone(), opts).await {
                                Ok(w) => w,
                                Err(e) => {
                                    if let Some(item) = self.retry(&e, from - 1).await {
                                        return Some(item);
                                    }
                                    continue;
                                }
                            }
                        }
                    };
                    match watcher.next().await {
                        Some(Ok(WatchEvent::Events { events, .. })) => {
                            match events.iter().find_map(|ev| ev.kv.as_ref()) {
                                // The first candidate leads from its creation on.
                                Some(kv) => self.phase = Phase::Resolve(kv.mod_revision),
                                None => {
                                    self.phase = Phase::WaitFirst {
                                        from,
                                        watcher: Some(watcher),
                                    }
                                }
                            }
                        }
                        Some(Ok(WatchEvent::Created { .. } | WatchEvent::Progress { .. })) => {
                            self.phase = Phase::WaitFirst {
                                from,
                                watcher: Some(watcher),
                            };
                        }
                        Some(Ok(WatchEvent::Compacted { .. })) => {
                            self.phase = Phase::Resolve(0);
                        }
                        Some(Ok(WatchEvent::Cancelled { reason })) => {
                            let e = ClientError::from_cancel_reason(reason);
                            if let Some(item) = self.retry(&e, from - 1).await {
                                return Some(item);
                            }
                        }
                        Some(Err(e)) => {
                            if let Some(item) = self.retry(&e, from - 1).await {
                                return Some(item);
                            }
                        }
                        None => {
                            if let Some(item) = self.retry(&ClientError::Closed, from - 1).await {
                                return Some(item);
                            }
                        }
                    }
                }
            }
        }
    }
}
