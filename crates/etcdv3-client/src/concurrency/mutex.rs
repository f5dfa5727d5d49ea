//! [`Mutex`]: a distributed lock on a [`Session`], Go's algorithm.
//!
//! Each contender owns the key `name/<lease id in hex>`; the contender
//! whose key has the lowest create revision holds the lock. A contender
//! waits for the deletion of the key just before its own (in create
//! revision order), never for the holder alone, so a release wakes one
//! waiter, not all of them.

use futures_util::future::{select, Either};

use super::session::{KeyClaim, Session, SessionDone};
use super::{remove_key, still_owned, wait_deletes, Cleanup, Error, Result};
use crate::api::{
    response_op::Response, Compare, CompareOp, GetOptions, KeyValue, PutOptions, SortOrder,
    SortTarget, Txn, TxnOp, TxnResponse,
};
use etcdv3_proto::etcdserverpb::ResponseHeader;

/// A distributed lock on a session; see the module docs of
/// [`concurrency`](super) for an example.
///
/// One session holds a given mutex at most once: a second
/// [`lock`](Mutex::lock) through the same session waits for the first
/// guard to go, like any other contender (the two would otherwise share one
/// key).
///
/// ```no_run
/// use etcdv3_client::concurrency::{Mutex, Session, SessionOptions};
/// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::concurrency::Result<()> {
/// let session = Session::new(&client, SessionOptions::new()).await?;
/// let guard = Mutex::new(&session, "locks/db-migration").lock().await?;
/// // ... critical section ...
/// guard.unlock().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Mutex {
    session: Session,
    prefix: Vec<u8>,
    key: Vec<u8>,
}

impl Mutex {
    /// The mutex `name` (its keys live under `name/`) for `session`.
    ///
    /// ```no_run
    /// use etcdv3_client::concurrency::{Mutex, Session, SessionOptions};
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::concurrency::Result<()> {
    /// let session = Session::new(&client, SessionOptions::new()).await?;
    /// let mutex = Mutex::new(&session, "locks/db-migration");
    /// # Ok(()) }
    /// ```
    pub fn new(session: &Session, name: impl Into<Vec<u8>>) -> Mutex {
        let mut prefix = name.into();
        prefix.push(b'/');
        let mut key = prefix.clone();
        key.extend_from_slice(format!("{:x}", session.lease_id()).as_bytes());
        Mutex {
            session: session.clone(),
            prefix,
            key,
        }
    }

    /// The key this session owns while it holds or waits for the lock.
    ///
    /// ```no_run
    /// use etcdv3_client::concurrency::{Mutex, Session, SessionOptions};
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::concurrency::Result<()> {
    /// let session = Session::new(&client, SessionOptions::new()).await?;
    /// let mutex = Mutex::new(&session, "locks/a");
    /// // "locks/a/<lease id in hex>", as Go names it.
    /// assert_eq!(mutex.key(), format!("locks/a/{:x}", session.lease_id()).as_bytes());
    /// # Ok(()) }
    /// ```
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The session the mutex runs on.
    ///
    /// ```no_run
    /// use etcdv3_client::concurrency::{Mutex, Session, SessionOptions};
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::concurrency::Result<()> {
    /// let session = Session::new(&client, SessionOptions::new()).await?;
    /// let mutex = Mutex::new(&session, "locks/a");
    /// assert_eq!(mutex.session().lease_id(), session.lease_id());
    /// # Ok(()) }
    /// ```
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Acquire the lock, waiting for every earlier contender to release it.
    /// Fails with [`Error::SessionExpired`] if the session ends first.
    ///
    /// Dropping the returned future while it waits gives up the place in the
    /// queue (the key is deleted in the background).
    ///
    /// ```no_run
    /// use etcdv3_client::concurrency::{Mutex, Session, SessionOptions};
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::concurrency::Result<()> {
    /// let session = Session::new(&client, SessionOptions::new()).await?;
    /// let guard = Mutex::new(&session, "locks/a").lock().await?;
    /// println!("holding with fencing token {}", guard.revision());
    /// # Ok(()) }
    /// ```
    pub async fn lock(&self) -> Result<MutexGuard> {
        if self.session.ended().is_some() {
            return Err(self.session.expired());
        }
        let claim = self.session.claim(&self.key).await;
        let client = self.session.client();
        let mut cleanup = Cleanup::new(client, &self.key, claim);
        let (revision, owner, mut header) = self.acquire().await?;
        cleanup.revision = Some(revision);
        if !owner {
            let wait = std::pin::pin!(wait_deletes(client, &self.prefix, revision - 1));
            match select(wait, self.session.done()).await {
                Either::Left((r, _)) => r?,
                Either::Right(_) => return Err(self.session.expired()),
            }
            // The session may have ended while we waited (our key is gone
            // then, and a later contender may hold the lock).
            match still_owned(&self.session, &self.key, revision).await? {
                Some(seen) => header = seen,
                None => return Err(self.session.expired()),
            }
        }
        Ok(self.guard(revision, cleanup, header))
    }

    /// Acquire the lock if no other contender holds it; fails at once with
    /// [`Error::Locked`] otherwise (without joining the queue).
    ///
    /// ```no_run
    /// use etcdv3_client::concurrency::{Error, Mutex, Session, SessionOptions};
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::concurrency::Result<()> {
    /// let session = Session::new(&client, SessionOptions::new()).await?;
    /// match Mutex::new(&session, "locks/a").try_lock().await {
    ///     Ok(guard) => guard.unlock().await?,
    ///     Err(Error::Locked) => println!("busy, try later"),
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn try_lock(&self) -> Result<MutexGuard> {
        if self.session.ended().is_some() {
            return Err(self.session.expired());
        }
        let claim = self.session.try_claim(&self.key).ok_or(Error::Locked)?;
        let client = self.session.client();
        let mut cleanup = Cleanup::new(client, &self.key, claim);
        let (revision, owner, header) = self.acquire().await?;
        cleanup.revision = Some(revision);
        if !owner {
            remove_key(client, &self.key, Some(revision)).await?;
            if let Some(claim) = cleanup.disarm() {
                drop(claim);
            }
            return Err(Error::Locked);
        }
        Ok(self.guard(revision, cleanup, header))
    }

    fn guard(&self, revision: i64, cleanup: Cleanup, header: Option<ResponseHeader>) -> MutexGuard {
        MutexGuard {
            session: self.session.clone(),
            key: self.key.clone(),
            revision,
            header,
            claim: cleanup.disarm(),
        }
    }

    /// Put our key (or find it), and read the holder: returns our key's
    /// create revision, whether we hold the lock, and the answer's header.
    async fn acquire(&self) -> Result<(i64, bool, Option<ResponseHeader>)> {
        let client = self.session.client();
        let owner = TxnOp::get(
            self.prefix.clone(),
            GetOptions::new()
                .with_prefix()
                .with_sort(SortTarget::Create, SortOrder::Ascend)
                .with_limit(1),
        );
        let txn = Txn::new()
            .when([Compare::create_revision(
                self.key.clone(),
                CompareOp::Equal,
                0,
            )])
            .and_then([
                TxnOp::put(
                    self.key.clone(),
                    Vec::new(),
                    PutOptions::new().with_lease(self.session.lease_id()),
                ),
                owner.clone(),
            ])
            .or_else([TxnOp::get(self.key.clone(), GetOptions::new()), owner]);
        let resp = client.txn(txn).await?;
        let revision = if resp.succeeded {
            resp.revision()
        } else {
            first_kv(&resp, 0)
                .map(|kv| kv.create_revision)
                .ok_or_else(|| unexpected("the lock key vanished inside a transaction"))?
        };
        let holder = first_kv(&resp, 1).map(|kv| kv.create_revision);
        let owner = holder.is_none() || holder == Some(revision);
        Ok((revision, owner, resp.header))
    }
}

fn unexpected(what: &str) -> Error {
    Error::Client(crate::Error::InvalidArgument(format!(
        "unexpected server answer: {what}"
    )))
}

/// The first key-value of the range response at `index` of a txn response.
pub(super) fn first_kv(resp: &TxnResponse, index: usize) -> Option<&KeyValue> {
    match resp.responses.get(index)?.response.as_ref()? {
        Response::ResponseRange(r) => r.kvs.first(),
        _ => None,
    }
}

/// A held [`Mutex`]. Dropping it releases the lock in the background;
/// [`unlock`](MutexGuard::unlock) releases it and reports the outcome.
///
/// Holding the guard does not prove the lock is still held: the session's
/// lease may expire (see [`lost`](MutexGuard::lost)). Guard writes with
/// [`is_owner`](MutexGuard::is_owner) in a transaction to make them safe.
///
/// ```no_run
/// use etcdv3_client::api::{PutOptions, Txn, TxnOp};
/// use etcdv3_client::concurrency::{Mutex, MutexGuard, Session, SessionOptions};
/// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::concurrency::Result<()> {
/// let session = Session::new(&client, SessionOptions::new()).await?;
/// let guard: MutexGuard = Mutex::new(&session, "locks/a").lock().await?;
/// let write = Txn::new()
///     .when([guard.is_owner()])
///     .and_then([TxnOp::put("protected", "x", PutOptions::new())]);
/// assert!(client.txn(write).await?.succeeded, "lock lost before the write");
/// guard.unlock().await?;
/// # Ok(()) }
/// ```
pub struct MutexGuard {
    session: Session,
    key: Vec<u8>,
    revision: i64,
    header: Option<ResponseHeader>,
    claim: Option<KeyClaim>,
}

impl std::fmt::Debug for MutexGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MutexGuard")
            .field("key", &String::from_utf8_lossy(&self.key))
            .field("revision", &self.revision)
            .finish_non_exhaustive()
    }
}

impl MutexGuard {
    /// The lock key.
    ///
    /// ```no_run
    /// use etcdv3_client::concurrency::{Mutex, Session, SessionOptions};
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::concurrency::Result<()> {
    /// let session = Session::new(&client, SessionOptions::new()).await?;
    /// let mutex = Mutex::new(&session, "locks/a");
    /// let guard = mutex.lock().await?;
    /// assert_eq!(guard.key(), mutex.key());
    /// # Ok(()) }
    /// ```
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The create revision of the lock key: grows with each new holder, a
    /// fencing token for the resources the lock protects.
    ///
    /// ```no_run
    /// use etcdv3_client::concurrency::{Mutex, Session, SessionOptions};
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::concurrency::Result<()> {
    /// let session = Session::new(&client, SessionOptions::new()).await?;
    /// let mutex = Mutex::new(&session, "locks/a");
    /// let first = mutex.lock().await?;
    /// let token = first.revision();
    /// first.unlock().await?;
    /// assert!(mutex.lock().await?.revision() > token);
    /// # Ok(()) }
    /// ```
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// The header of the answer that made this guard the holder (Go's
    /// `Mutex.Header()`): the transaction that created the lock key when
    /// the lock was free, else the read that confirmed it after the wait.
    /// Its revision is the store's revision when the lock was acquired.
    ///
    /// ```no_run
    /// use etcdv3_client::concurrency::{Mutex, Session, SessionOptions};
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::concurrency::Result<()> {
    /// let session = Session::new(&client, SessionOptions::new()).await?;
    /// let guard = Mutex::new(&session, "locks/a").lock().await?;
    /// let acquired_at = guard.header().map_or(0, |h| h.revision);
    /// assert!(acquired_at >= guard.revision());
    /// # Ok(()) }
    /// ```
    pub fn header(&self) -> Option<&ResponseHeader> {
        self.header.as_ref()
    }

    /// A condition that holds while this guard's ownership lasts: use it in
    /// [`Txn::when`] to make a write depend on still holding the lock.
    ///
    /// ```no_run
    /// use etcdv3_client::api::{DeleteOptions, Txn, TxnOp};
    /// use etcdv3_client::concurrency::{Mutex, Session, SessionOptions};
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::concurrency::Result<()> {
    /// let session = Session::new(&client, SessionOptions::new()).await?;
    /// let guard = Mutex::new(&session, "locks/a").lock().await?;
    /// let txn = Txn::new().when([guard.is_owner()]).and_then([TxnOp::delete("queue/head", DeleteOptions::new())]);
    /// client.txn(txn).await?;
    /// # Ok(()) }
    /// ```
    pub fn is_owner(&self) -> Compare {
        Compare::create_revision(self.key.clone(), CompareOp::Equal, self.revision)
    }

    /// The session the lock is held under.
    ///
    /// ```no_run
    /// use etcdv3_client::concurrency::{Mutex, Session, SessionOptions};
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::concurrency::Result<()> {
    /// let session = Session::new(&client, SessionOptions::new()).await?;
    /// let guard = Mutex::new(&session, "locks/a").lock().await?;
    /// assert_eq!(guard.session().lease_id(), session.lease_id());
    /// # Ok(()) }
    /// ```
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The instant until which this lock is **certainly** held: the
    /// session's [`Session::valid_until`] (its lease is certainly alive
    /// until then, so its key is not deleted and no other contender can
    /// hold the lock). Refuse to act on the lock past it: no round trip.
    ///
    /// ```no_run
    /// use std::time::Instant;
    /// use etcdv3_client::concurrency::{Mutex, Session, SessionOptions};
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::concurrency::Result<()> {
    /// let session = Session::new(&client, SessionOptions::new()).await?;
    /// let guard = Mutex::new(&session, "locks/a").lock().await?;
    /// if guard.valid_until() > Instant::now() {
    ///     println!("certainly the holder right now");
    /// }
    /// # Ok(()) }
    /// ```
    pub fn valid_until(&self) -> std::time::Instant {
        self.session.valid_until()
    }

    /// Resolves when the session ends: the lock is then lost, or may be
    /// ([`SessionEnd::DeadlinePassed`](super::SessionEnd::DeadlinePassed):
    /// the lease's local deadline passed unrenewed, resolved at that
    /// instant), or about to be (the client closed).
    ///
    /// ```no_run
    /// use etcdv3_client::concurrency::{Mutex, Session, SessionOptions};
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::concurrency::Result<()> {
    /// let session = Session::new(&client, SessionOptions::new()).await?;
    /// let guard = Mutex::new(&session, "locks/a").lock().await?;
    /// let why = guard.lost().await;
    /// println!("lock lost: {why:?}");
    /// # Ok(()) }
    /// ```
    pub fn lost(&self) -> SessionDone {
        self.session.done()
    }

    /// Release the lock (delete the lock key if it is still ours).
    ///
    /// ```no_run
    /// use etcdv3_client::concurrency::{Mutex, Session, SessionOptions};
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::concurrency::Result<()> {
    /// let session = Session::new(&client, SessionOptions::new()).await?;
    /// let guard = Mutex::new(&session, "locks/a").lock().await?;
    /// guard.unlock().await?;
    /// # Ok(()) }
    /// ```
    pub async fn unlock(mut self) -> Result<()> {
        let claim = self.claim.take();
        let r = remove_key(self.session.client(), &self.key, Some(self.revision)).await;
        drop(claim);
        match r {
            Ok(_) => Ok(()),
            Err(e) => {
                // Not known to be released: retry in the background.
                let _ = Cleanup {
                    client: self.session.client().clone(),
                    key: self.key.clone(),
                    revision: Some(self.revision),
                    claim: self.session.try_claim(&self.key),
                };
                Err(e.into())
            }
        }
    }
}

impl Drop for MutexGuard {
    fn drop(&mut self) {
        if let Some(claim) = self.claim.take() {
            let mut cleanup = Cleanup::new(self.session.client(), &self.key, claim);
            cleanup.revision = Some(self.revision);
        }
    }
}
