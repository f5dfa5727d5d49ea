//! Lock: the etcd `v3lock` service, and a leased lock guard.
//!
//! A lock is a key under `name/` owned by whoever created it first; the
//! server answers [`Client::lock`] once every earlier owner is gone. The
//! lock key is attached to a lease if one is given: when the lease expires
//! (its holder crashed or stopped renewing), the lock is released. **Without
//! a lease the lock is held until [`Client::unlock`]**, even if the holder
//! dies. [`Client::lock_with_lease`] grants a lease, keeps it alive and
//! returns a [`LockGuard`]: the safe default.
//!
//! On a namespaced client ([`Client::with_namespace`]) the lock name is
//! prefixed on the way out, the key the server answers comes back without
//! the prefix, and [`Client::unlock`] prefixes it again: two namespaces
//! hold locks of the same name independently.

use std::time::Duration;

use etcdv3_core::machine::UNBOUNDED_WAIT;
use etcdv3_proto::method::{LOCK_LOCK, LOCK_UNLOCK};
use etcdv3_proto::v3lockpb::{LockRequest, UnlockRequest};

use crate::api::lease::{LeaseGrantOptions, LeaseKeeper};
use crate::api::namespace::{prefixed, strip_key};
use crate::client::CallOptions;
use crate::error::{Error, Result};
use crate::Client;

pub use etcdv3_proto::v3lockpb::{LockResponse, UnlockResponse};

/// Options of [`Client::lock`].
///
/// ```
/// use etcdv3_client::api::LockOptions;
/// use std::time::Duration;
/// let opts = LockOptions::new().with_lease(0x42).with_timeout(Duration::from_secs(5));
/// assert_ne!(opts, LockOptions::new());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LockOptions {
    lease: i64,
    timeout: Option<Duration>,
}

impl LockOptions {
    /// Default options: no lease, wait as long as it takes.
    ///
    /// ```
    /// assert_eq!(etcdv3_client::api::LockOptions::new(), Default::default());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Attach the lock key to this lease: the lock is released when the
    /// lease ends.
    ///
    /// ```no_run
    /// use etcdv3_client::api::LockOptions;
    /// # async fn demo(client: etcdv3_client::Client, lease: i64) -> etcdv3_client::Result<()> {
    /// let lock = client.lock("jobs/nightly", LockOptions::new().with_lease(lease)).await?;
    /// assert!(lock.key.starts_with(b"jobs/nightly/"));
    /// # Ok(()) }
    /// ```
    pub fn with_lease(mut self, lease: i64) -> Self {
        self.lease = lease;
        self
    }

    /// Give up waiting after `timeout`. Note that the server may still
    /// grant the lock after the client gave up; with a lease it is then
    /// released when the lease expires.
    ///
    /// ```no_run
    /// use etcdv3_client::api::LockOptions;
    /// use std::time::Duration;
    /// # async fn demo(client: etcdv3_client::Client, lease: i64) -> etcdv3_client::Result<()> {
    /// let opts = LockOptions::new().with_lease(lease).with_timeout(Duration::from_secs(5));
    /// match client.lock("jobs/nightly", opts).await {
    ///     Ok(lock) => client.unlock(lock.key).await.map(drop)?,
    ///     Err(e) => println!("not acquired within 5s: {e}"),
    /// }
    /// # Ok(()) }
    /// ```
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

impl Client {
    /// Acquire the lock `name`, waiting until every earlier holder released
    /// it. The response's `key` identifies this ownership: pass it to
    /// [`Client::unlock`].
    ///
    /// Without [`LockOptions::with_lease`] the lock is held until unlocked.
    ///
    /// ```no_run
    /// use etcdv3_client::api::{LeaseGrantOptions, LockOptions};
    ///
    /// async fn demo(client: &etcdv3_client::Client) -> etcdv3_client::Result<()> {
    ///     let lease = client.lease_grant(10, LeaseGrantOptions::new()).await?;
    ///     let _keeper = client.lease_keep_alive(lease.id).await?;
    ///     let lock = client.lock("jobs/nightly", LockOptions::new().with_lease(lease.id)).await?;
    ///     // ... critical section ...
    ///     client.unlock(lock.key).await?;
    ///     Ok(())
    /// }
    /// ```
    pub async fn lock(
        &self,
        name: impl Into<Vec<u8>>,
        options: LockOptions,
    ) -> Result<LockResponse> {
        let name = name.into();
        if name.is_empty() {
            return Err(Error::InvalidArgument("lock name must not be empty".into()));
        }
        let ns = self.namespace();
        let req = LockRequest {
            name: prefixed(ns, name),
            lease: options.lease,
        };
        let timeout = options
            .timeout
            .or(self.call_options().timeout)
            .unwrap_or(UNBOUNDED_WAIT);
        let opts = CallOptions::new().with_timeout(timeout);
        let mut resp: LockResponse = self.unary(LOCK_LOCK, &req, opts).await?;
        strip_key(ns, &mut resp.key);
        Ok(resp)
    }

    /// Release the lock owned through `key` (from [`LockResponse::key`]).
    ///
    /// ```no_run
    /// use etcdv3_client::api::LockOptions;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let lock = client.lock("jobs/nightly", LockOptions::new()).await?;
    /// client.unlock(lock.key).await?;
    /// # Ok(()) }
    /// ```
    pub async fn unlock(&self, key: impl Into<Vec<u8>>) -> Result<UnlockResponse> {
        self.unlock_with(key, CallOptions::default()).await
    }

    /// [`Client::unlock`] with per-call options (e.g. a timeout).
    ///
    /// ```no_run
    /// use etcdv3_client::api::LockOptions;
    /// use etcdv3_client::CallOptions;
    /// use std::time::Duration;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let lock = client.lock("jobs/nightly", LockOptions::new()).await?;
    /// let opts = CallOptions::new().with_timeout(Duration::from_secs(2));
    /// client.unlock_with(lock.key, opts).await?;
    /// # Ok(()) }
    /// ```
    pub async fn unlock_with(
        &self,
        key: impl Into<Vec<u8>>,
        options: CallOptions,
    ) -> Result<UnlockResponse> {
        let key = key.into();
        if key.is_empty() {
            return Err(Error::InvalidArgument("key must not be empty".into()));
        }
        let key = prefixed(self.namespace(), key);
        self.unary(LOCK_UNLOCK, &UnlockRequest { key }, options)
            .await
    }

    /// Acquire the lock `name` under a new lease of `ttl` seconds that is
    /// kept alive while the returned guard lives. Release it with
    /// [`LockGuard::unlock`]; dropping the guard revokes the lease in the
    /// background (releasing the lock), and if that fails the lock is
    /// released when the lease expires, `ttl` seconds later at most.
    ///
    /// ```no_run
    /// async fn demo(client: &etcdv3_client::Client) -> etcdv3_client::Result<()> {
    ///     let guard = client.lock_with_lease("jobs/nightly", 10).await?;
    ///     // ... critical section ...
    ///     guard.unlock().await?;
    ///     Ok(())
    /// }
    /// ```
    pub async fn lock_with_lease(&self, name: impl Into<Vec<u8>>, ttl: i64) -> Result<LockGuard> {
        let name = name.into();
        if name.is_empty() {
            return Err(Error::InvalidArgument("lock name must not be empty".into()));
        }
        let lease = self.lease_grant(ttl, LeaseGrantOptions::new()).await?;
        let keeper = match self.keep_lease(lease.id, true).await {
            Ok(k) => k,
            Err(e) => {
                let _ = self.lease_revoke(lease.id).await;
                return Err(e);
            }
        };
        match self
            .lock(name, LockOptions::new().with_lease(lease.id))
            .await
        {
            Ok(resp) => Ok(LockGuard {
                client: self.clone(),
                header: resp.header,
                key: resp.key,
                keeper: Some(keeper),
                released: false,
            }),
            Err(e) => {
                drop(keeper);
                let _ = self.lease_revoke(lease.id).await;
                Err(e)
            }
        }
    }
}

/// A lock held under a kept-alive lease; from [`Client::lock_with_lease`].
///
/// ```no_run
/// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
/// let guard: etcdv3_client::api::LockGuard = client.lock_with_lease("jobs/nightly", 10).await?;
/// println!("holding {:?} under lease {:016x}", guard.key(), guard.lease_id());
/// guard.unlock().await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct LockGuard {
    client: Client,
    header: Option<etcdv3_proto::etcdserverpb::ResponseHeader>,
    key: Vec<u8>,
    keeper: Option<LeaseKeeper>,
    released: bool,
}

impl LockGuard {
    /// The lock key (unique to this ownership).
    ///
    /// ```no_run
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let guard = client.lock_with_lease("jobs/nightly", 10).await?;
    /// assert!(guard.key().starts_with(b"jobs/nightly/"));
    /// # Ok(()) }
    /// ```
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The header of the Lock response that granted the lock (no extra
    /// read needed for the revision it was granted at).
    ///
    /// ```no_run
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let guard = client.lock_with_lease("jobs/nightly", 10).await?;
    /// let member = guard.header().map(|h| h.member_id);
    /// println!("granted by member {member:x?}");
    /// # Ok(()) }
    /// ```
    pub fn header(&self) -> Option<&etcdv3_proto::etcdserverpb::ResponseHeader> {
        self.header.as_ref()
    }

    /// The revision the lock was granted at (the Lock response's): a
    /// fencing token, larger for every later holder of the lock, since
    /// each is granted only after the previous holder's key was deleted.
    /// Resources the lock protects can refuse writes carrying a token
    /// lower than one they have seen.
    ///
    /// ```no_run
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let first = client.lock_with_lease("jobs/nightly", 10).await?;
    /// let token = first.revision();
    /// first.unlock().await?;
    /// assert!(client.lock_with_lease("jobs/nightly", 10).await?.revision() > token);
    /// # Ok(()) }
    /// ```
    pub fn revision(&self) -> i64 {
        self.header.as_ref().map_or(0, |h| h.revision)
    }

    /// The lease the lock is attached to.
    ///
    /// ```no_run
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let guard = client.lock_with_lease("jobs/nightly", 10).await?;
    /// let ttl = client.lease_time_to_live(guard.lease_id(), false).await?.ttl;
    /// assert!(ttl > 0);
    /// # Ok(()) }
    /// ```
    pub fn lease_id(&self) -> i64 {
        self.keeper.as_ref().map(LeaseKeeper::id).unwrap_or(0)
    }

    /// The keep-alive handle of the lease. It stops renewing at the lease's
    /// first [`KeepAliveEvent::MayHaveExpired`](crate::api::KeepAliveEvent::MayHaveExpired)
    /// (the lock may be lost from then on: the guard never resumes it) and
    /// its stream ends after that item. It holds at most two items however
    /// long nobody polls it.
    ///
    /// ```no_run
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let guard = client.lock_with_lease("jobs/nightly", 10).await?;
    /// if let Some(keeper) = guard.keeper() {
    ///     println!("lease TTL {}s", keeper.ttl());
    /// }
    /// # Ok(()) }
    /// ```
    pub fn keeper(&self) -> Option<&LeaseKeeper> {
        self.keeper.as_ref()
    }

    /// The keep-alive handle of the lease, to wait on
    /// ([`LeaseKeeper::expired`]); see [`LockGuard::keeper`].
    ///
    /// ```no_run
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let mut guard = client.lock_with_lease("jobs/nightly", 10).await?;
    /// if let Some(keeper) = guard.keeper_mut() {
    ///     // Resolves when the lease, and with it the lock, is (or may be) lost.
    ///     keeper.expired().await?;
    /// }
    /// # Ok(()) }
    /// ```
    pub fn keeper_mut(&mut self) -> Option<&mut LeaseKeeper> {
        self.keeper.as_mut()
    }

    /// The instant until which the lock is **certainly** held: its lease is
    /// certainly alive until then (the send time of the last answered
    /// renewal + its TTL). It never moves past the first local deadline
    /// that passed unrenewed. Refuse to act on the lock past it.
    ///
    /// ```no_run
    /// use std::time::Instant;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let guard = client.lock_with_lease("jobs/nightly", 10).await?;
    /// if guard.valid_until() > Instant::now() {
    ///     println!("certainly the holder right now");
    /// }
    /// # Ok(()) }
    /// ```
    pub fn valid_until(&self) -> std::time::Instant {
        match &self.keeper {
            Some(k) => k.lapsed_at().unwrap_or_else(|| k.valid_until()),
            None => self.client.now(),
        }
    }

    /// Resolves when the lock is lost or may be: at the lease's local
    /// deadline if no renewal was answered by then, or when the server
    /// confirms the lease's end. `Err(Error::Closed)` if the client closes
    /// first.
    ///
    /// ```no_run
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let mut guard = client.lock_with_lease("jobs/nightly", 10).await?;
    /// guard.lost().await?;
    /// println!("stop: the lock may belong to someone else now");
    /// # Ok(()) }
    /// ```
    pub async fn lost(&mut self) -> Result<()> {
        match self.keeper.as_mut() {
            Some(k) if k.lapsed_at().is_none() => k.expired().await,
            _ => Ok(()),
        }
    }

    /// Release the lock and revoke its lease.
    ///
    /// ```no_run
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let guard = client.lock_with_lease("jobs/nightly", 10).await?;
    /// guard.unlock().await?;
    /// # Ok(()) }
    /// ```
    pub async fn unlock(mut self) -> Result<()> {
        self.released = true;
        let lease = self.lease_id();
        self.keeper = None;
        let unlocked = self.client.unlock(std::mem::take(&mut self.key)).await;
        let revoked = self.client.lease_revoke(lease).await;
        unlocked?;
        revoked.map(|_| ())
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if self.released || self.client.is_closed() {
            return;
        }
        let lease = self.lease_id();
        self.keeper = None;
        let client = self.client.clone();
        self.client.spawn(async move {
            if let Err(e) = client.lease_revoke(lease).await {
                tracing::debug!(lease = %format_args!("{lease:016x}"), error = %e, "revoking a dropped lock's lease failed; it will expire");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_options() {
        let o = LockOptions::new()
            .with_lease(3)
            .with_timeout(Duration::from_secs(2));
        assert_eq!(o.lease, 3);
        assert_eq!(o.timeout, Some(Duration::from_secs(2)));
        assert_eq!(LockOptions::default().lease, 0);
    }
}
