//! Concurrency recipes on top of the KV, lease and watch APIs, modelled on
//! Go clientv3's `concurrency` package: a [`Session`] (a lease kept alive in
//! the background), a [`Mutex`] and an [`Election`] on a session, and
//! software transactional memory ([`stm`]).
//!
//! The recipes use only the client's public calls (`txn`, `get`, `watch`,
//! `lease_*`), so their keys are ordinary etcd keys, compatible with Go's:
//! a lock or election named `n` owns the keys `n/<lease id in hex>`.
//!
//! ```no_run
//! use etcdv3_client::api::{PutOptions, Txn, TxnOp};
//! use etcdv3_client::concurrency::{Mutex, Session, SessionOptions};
//!
//! async fn demo(client: &etcdv3_client::Client) -> etcdv3_client::concurrency::Result<()> {
//!     let session = Session::new(client, SessionOptions::new().with_ttl(10)).await?;
//!     let mutex = Mutex::new(&session, "jobs/nightly");
//!     let guard = mutex.lock().await?;
//!     // Writes guarded by ownership: refused once the lock is lost.
//!     let txn = Txn::new()
//!         .when([guard.is_owner()])
//!         .and_then([TxnOp::put("jobs/nightly-state", "running", PutOptions::new())]);
//!     let written = client.txn(txn).await?.succeeded;
//!     println!("written while owner: {written}");
//!     guard.unlock().await?;
//!     session.close().await?;
//!     Ok(())
//! }
//! ```

mod election;
mod mutex;
mod session;
pub mod stm;

pub use election::{leader_of, observe, Election, Observe};
pub use mutex::{Mutex, MutexGuard};
pub use session::{Session, SessionDone, SessionEnd, SessionOptions};

use crate::api::{
    Compare, CompareOp, DeleteOptions, GetOptions, SortOrder, SortTarget, Txn, TxnOp, WatchEvent,
    WatchOptions,
};
use crate::Client;
use etcdv3_core::streams::{Retry, RetryConfig};
use etcdv3_proto::etcdserverpb::ResponseHeader;
use futures_util::StreamExt;

/// What a recipe call can fail with.
///
/// ```no_run
/// use etcdv3_client::concurrency::{Error, Mutex, Session, SessionOptions};
/// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::concurrency::Result<()> {
/// let session = Session::new(&client, SessionOptions::new()).await?;
/// match Mutex::new(&session, "locks/a").try_lock().await {
///     Ok(guard) => guard.unlock().await?,
///     Err(Error::Locked) => println!("held elsewhere"),
///     Err(Error::SessionExpired { lease }) => println!("lease {lease:016x} ended"),
///     Err(e) => return Err(e),
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A client call failed.
    #[error(transparent)]
    Client(#[from] crate::Error),
    /// [`Mutex::try_lock`]: another session (or another guard of this
    /// session) holds the lock.
    #[error("the lock is held by another owner")]
    Locked,
    /// The session ended (its lease expired or was revoked, its local
    /// deadline passed unrenewed so it may have expired, or the session was
    /// closed) before or while the call waited.
    #[error("the session's lease {lease:016x} ended")]
    SessionExpired {
        /// The session's lease id.
        lease: i64,
    },
    /// [`Election::proclaim`]: this candidate is not (or no longer) the
    /// leader.
    #[error("not the leader of the election")]
    NotLeader,
    /// [`Election::leader`]: nobody leads the election.
    #[error("the election has no leader")]
    NoLeader,
    /// [`stm::run`]: the transaction body returned an error of its own
    /// (an [`stm::Abort`] from [`stm::Abort::msg`] or from `?` on any
    /// error); nothing was committed.
    ///
    /// ```no_run
    /// use etcdv3_client::concurrency::stm::{self, Abort, Isolation};
    /// use etcdv3_client::concurrency::Error;
    /// # async fn demo(client: etcdv3_client::Client) {
    /// let r = stm::run(&client, Isolation::default(), |_tx| -> Result<(), Abort> {
    ///     Err(Abort::msg("out of stock"))
    /// })
    /// .await;
    /// assert!(matches!(r, Err(Error::Aborted(why)) if why.to_string() == "out of stock"));
    /// # }
    /// ```
    #[error("the transaction body failed: {0}")]
    Aborted(std::sync::Arc<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// Whether a mutation may have been applied although the call failed
    /// (see [`crate::Error::may_have_applied`]).
    ///
    /// ```
    /// use etcdv3_client::concurrency::Error;
    /// assert!(!Error::Locked.may_have_applied());
    /// assert!(Error::Client(etcdv3_client::Error::ClosedInFlight { method: "/v3lockpb.Lock/Lock" }).may_have_applied());
    /// ```
    pub fn may_have_applied(&self) -> bool {
        match self {
            Error::Client(e) => e.may_have_applied(),
            _ => false,
        }
    }
}

/// Result with the recipes' [`Error`].
///
/// ```no_run
/// use etcdv3_client::concurrency::{leader_of, Result};
/// async fn current_leader(client: &etcdv3_client::Client) -> Result<Vec<u8>> {
///     Ok(leader_of(client, "scheduler").await?.value)
/// }
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Sleep on the client's runtime.
/// Delete `key` if it is still the incarnation created at `revision` (any
/// incarnation when `revision` is `None`). Returns whether it was deleted.
async fn remove_key(client: &Client, key: &[u8], revision: Option<i64>) -> crate::Result<bool> {
    let delete = TxnOp::delete(key.to_vec(), DeleteOptions::new());
    let txn = match revision {
        Some(rev) => Txn::new()
            .when([Compare::create_revision(
                key.to_vec(),
                CompareOp::Equal,
                rev,
            )])
            .and_then([delete]),
        None => Txn::new().and_then([delete]),
    };
    Ok(client.txn(txn).await?.succeeded)
}

/// Waits until every key under `prefix` created at or before `max_revision`
/// is deleted (Go's `waitDeletes`): repeatedly watches the newest such key
/// until it is deleted. Transient failures are retried (the caller keeps its
/// place in the queue); only a closed client ends the wait with an error.
async fn wait_deletes(client: &Client, prefix: &[u8], max_revision: i64) -> crate::Result<()> {
    let mut backoff = Backoff::recipe(client);
    loop {
        let opts = GetOptions::new()
            .with_prefix()
            .with_sort(SortTarget::Create, SortOrder::Descend)
            .with_limit(1)
            .with_max_create_revision(max_revision);
        let resp = match client.get(prefix.to_vec(), opts).await {
            Ok(r) => r,
            Err(e) if e.is_closed() => return Err(e),
            Err(e) => {
                tracing::debug!(error = %e, "waiting for earlier owners: read failed; retrying");
                backoff.wait(client).await;
                continue;
            }
        };
        let Some(kv) = resp.kvs.first() else {
            return Ok(());
        };
        let revision = resp.revision();
        match wait_delete(client, &kv.key, revision).await {
            Ok(()) => backoff.reset(),
            Err(e) if e.is_closed() => return Err(e),
            Err(e) => {
                tracing::debug!(error = %e, "waiting for earlier owners: watch failed; retrying");
                backoff.wait(client).await;
            }
        }
    }
}

/// Whether `key` still exists as the incarnation created at `revision`
/// (checked after a wait: the session may have ended meanwhile): `Some`
/// with the header of the read that saw it. Transient read failures are
/// retried while the session lives.
async fn still_owned(
    session: &Session,
    key: &[u8],
    revision: i64,
) -> Result<Option<Option<ResponseHeader>>> {
    let client = session.client();
    let mut backoff = Backoff::recipe(client);
    loop {
        match client.get(key.to_vec(), GetOptions::new()).await {
            Ok(resp) => {
                let owned = resp.kvs.first().map(|kv| kv.create_revision) == Some(revision);
                return Ok(owned.then_some(resp.header));
            }
            Err(e) if e.is_closed() => return Err(e.into()),
            Err(e) => {
                if session.ended().is_some() {
                    return Ok(None);
                }
                tracing::debug!(error = %e, "checking a recipe key failed; retrying");
                backoff.wait(client).await;
            }
        }
    }
}

/// Waits until `key` is deleted after `revision`. Returns `Ok` also when the
/// history was compacted: the caller reads again.
async fn wait_delete(client: &Client, key: &[u8], revision: i64) -> crate::Result<()> {
    let mut watcher = client
        .watch(
            key.to_vec(),
            WatchOptions::new()
                .with_start_revision(revision + 1)
                .with_no_put(),
        )
        .await?;
    while let Some(event) = watcher.next().await {
        match event? {
            WatchEvent::Events { .. } | WatchEvent::Compacted { .. } => return Ok(()),
            WatchEvent::Cancelled { reason } => {
                return Err(crate::Error::from_cancel_reason(reason))
            }
            WatchEvent::Created { .. } | WatchEvent::Progress { .. } => {}
        }
    }
    Err(crate::Error::Closed)
}

/// A recipe's retry loop. Its timing is the core's
/// ([`etcdv3_core::streams::Retry`]): this only sleeps until the instant the
/// core gives.
#[derive(Debug)]
struct Backoff {
    retry: Retry,
}

impl Backoff {
    /// A loop waiting on the cluster ([`RetryConfig::recipe`]).
    fn recipe(client: &Client) -> Backoff {
        Backoff::with(client, RetryConfig::recipe())
    }

    /// Background key removal ([`RetryConfig::cleanup`]).
    fn cleanup(client: &Client) -> Backoff {
        Backoff::with(client, RetryConfig::cleanup())
    }

    fn with(client: &Client, config: RetryConfig) -> Backoff {
        Backoff {
            retry: Retry::new(config, client.shared.tasks.next_seed()),
        }
    }

    /// An attempt failed: sleep until the next one; `false` when the loop
    /// gives up.
    async fn wait(&mut self, client: &Client) -> bool {
        match self.retry.handle_failure(client.now()) {
            Some(at) => {
                client.runtime().sleep_until(at).await;
                true
            }
            None => false,
        }
    }

    /// An attempt succeeded: the next failure waits the shortest delay.
    fn reset(&mut self) {
        self.retry.handle_success();
    }
}

struct Cleanup {
    client: Client,
    key: Vec<u8>,
    revision: Option<i64>,
    claim: Option<session::KeyClaim>,
}

impl Cleanup {
    fn new(client: &Client, key: &[u8], claim: session::KeyClaim) -> Cleanup {
        Cleanup {
            client: client.clone(),
            key: key.to_vec(),
            revision: None,
            claim: Some(claim),
        }
    }

    /// Keep the key: hand the claim to the new owner.
    fn disarm(mut self) -> Option<session::KeyClaim> {
        self.claim.take()
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        // Disarmed: the key has a new owner.
        let Some(claim) = self.claim.take() else {
            return;
        };
        if self.client.is_closed() {
            return;
        }
        let client = self.client.clone();
        let key = std::mem::take(&mut self.key);
        let revision = self.revision;
        self.client.spawn(async move {
            let mut backoff = Backoff::cleanup(&client);
            loop {
                match remove_key(&client, &key, revision).await {
                    Ok(_) => break,
                    Err(e) if e.is_closed() => break,
                    Err(e) => {
                        tracing::debug!(error = %e, "removing a recipe key failed");
                        if !backoff.wait(&client).await {
                            break;
                        }
                    }
                }
            }
            drop(claim);
        });
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn lease_ids_print_as_etcdctl_prints_them_in_every_error() {
        let id = 0x094d_77aa_9e38_260f;
        let hex = "lease 094d77aa9e38260f";
        for text in [
            crate::Error::LeaseExpired { id }.to_string(),
            crate::Error::LeaseNotRenewed { id }.to_string(),
            super::Error::SessionExpired { lease: id }.to_string(),
        ] {
            assert!(text.contains(hex), "{text}");
        }
    }
}
