//! Software transactional memory: run a closure over etcd keys as one
//! atomic transaction, retried on conflict (Go's `concurrency.NewSTM`).
//!
//! The closure reads with [`Tx::get`] and writes with [`Tx::put`] and
//! [`Tx::delete`]; writes are buffered and committed in one etcd
//! transaction guarded by what the [`Isolation`] level requires of the
//! reads. When the guard fails (another writer got in between), the closure
//! runs again on fresh values.
//!
//! The closure is synchronous and must be free of side effects: it runs
//! once per attempt, and also again whenever it reads a key not fetched
//! yet (`tx.get(..)?` stops it with an [`Abort`] that tells [`run`] which
//! key to fetch; the next run finds the value). So a body that reads two
//! keys runs three times for one commit without conflict: name the keys
//! it reads up front with [`StmOptions::with_prefetch`] (Go's
//! `WithPrefetch`) and it runs once.
//!
//! Errors: [`run`] fails with the recipes' one error type,
//! [`concurrency::Error`](super::Error): a failed read or commit is
//! [`Error::Client`](super::Error::Client) (the client's
//! [`Error`](crate::Error)), the body's own error
//! [`Error::Aborted`](super::Error::Aborted). A function that runs a
//! transaction under a lock, next to plain client calls, returns
//! [`concurrency::Result`](super::Result) and uses `?` on all of them:
//!
//! ```no_run
//! use etcdv3_client::api::{GetOptions, LeaseGrantOptions};
//! use etcdv3_client::concurrency::stm::{self, Isolation};
//! use etcdv3_client::concurrency::{Mutex, Result, Session, SessionOptions};
//!
//! async fn settle(client: &etcdv3_client::Client) -> Result<i64> {
//!     let session = Session::new(client, SessionOptions::new()).await?; // recipe
//!     let guard = Mutex::new(&session, "locks/ledger").lock().await?; // recipe
//!     let seen = client.get("ledger/total", GetOptions::new()).await?.count; // client
//!     stm::run(client, Isolation::Serializable, |tx| {
//!         tx.put("ledger/total", seen.to_string());
//!         Ok(())
//!     })
//!     .await?; // transaction
//!     guard.unlock().await?;
//!     Ok(seen)
//! }
//! ```
//!
//! ```no_run
//! use etcdv3_client::concurrency::stm::{self, Isolation};
//!
//! async fn transfer(client: &etcdv3_client::Client) -> etcdv3_client::concurrency::Result<()> {
//!     stm::run(client, Isolation::Serializable, |tx| {
//!         let parse = |v: Option<Vec<u8>>| -> i64 {
//!             v.and_then(|v| String::from_utf8(v).ok()?.parse().ok()).unwrap_or(0)
//!         };
//!         let a = parse(tx.get("accounts/a")?);
//!         let b = parse(tx.get("accounts/b")?);
//!         tx.put("accounts/a", (a - 10).to_string());
//!         tx.put("accounts/b", (b + 10).to_string());
//!         Ok(())
//!     })
//!     .await
//! }
//! ```

use std::collections::{BTreeMap, BTreeSet};

use crate::api::{
    response_op::Response, Compare, CompareOp, DeleteOptions, GetOptions, KeyValue, PutOptions,
    Txn, TxnOp,
};
use crate::Client;

/// How much of the world a transaction may see change under it; Go's
/// levels, strongest first.
///
/// ```no_run
/// use etcdv3_client::concurrency::stm::{self, Isolation};
/// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::concurrency::Result<()> {
/// assert_eq!(Isolation::default(), Isolation::SerializableSnapshot);
/// // Read-committed: no conflict check, fine for blind writes.
/// stm::run(&client, Isolation::ReadCommitted, |tx| {
///     tx.put("last-seen", "now");
///     Ok(())
/// })
/// .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Isolation {
    /// Every read from one snapshot (the revision of the first read), and
    /// the commit fails if any key read or written changed since that
    /// snapshot. The default, as in Go.
    #[default]
    SerializableSnapshot,
    /// Every read from one snapshot (the revision of the first read); the
    /// commit fails if any key read changed since.
    Serializable,
    /// Each key is read once (later reads return the same value), possibly
    /// from different revisions; the commit fails if any key read changed
    /// since it was read.
    RepeatableReads,
    /// Reads see committed data, checked for nothing: the commit always
    /// applies. Not safe for read-modify-write.
    ReadCommitted,
}

impl Isolation {
    fn snapshot(self) -> bool {
        matches!(
            self,
            Isolation::SerializableSnapshot | Isolation::Serializable
        )
    }
}

/// Stops a transaction body: a read that needs a round trip (handled by
/// [`run`]), or an error of the caller's (`?` on any error converts it).
///
/// ```no_run
/// use etcdv3_client::concurrency::stm::{self, Isolation};
/// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::concurrency::Result<()> {
/// stm::run(&client, Isolation::default(), |tx| {
///     // `?` on a read that needs a fetch, or on any error (converted to Abort).
///     let n: i64 = String::from_utf8(tx.get("counter")?.unwrap_or_default())?.parse().unwrap_or(0);
///     tx.put("counter", (n + 1).to_string());
///     Ok(())
/// })
/// .await
/// # }
/// ```
pub struct Abort(AbortKind);

enum AbortKind {
    Fetch,
    User(Box<dyn std::error::Error + Send + Sync>),
}

impl std::fmt::Debug for Abort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            AbortKind::Fetch => f.write_str("Abort(fetch)"),
            AbortKind::User(e) => write!(f, "Abort({e})"),
        }
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for Abort {
    fn from(e: E) -> Self {
        Abort(AbortKind::User(Box::new(e)))
    }
}

impl Abort {
    /// Stop the transaction with a message: [`run`] returns
    /// [`Error::Aborted`](super::Error::Aborted) and commits nothing.
    ///
    /// ```no_run
    /// use etcdv3_client::concurrency::stm::{self, Abort, Isolation};
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::concurrency::Result<()> {
    /// stm::run(&client, Isolation::default(), |tx| {
    ///     let stock: i64 = tx.get("stock")?.and_then(|v| String::from_utf8(v).ok()?.parse().ok()).unwrap_or(0);
    ///     if stock == 0 {
    ///         return Err(Abort::msg("out of stock"));
    ///     }
    ///     tx.put("stock", (stock - 1).to_string());
    ///     Ok(())
    /// })
    /// .await
    /// # }
    /// ```
    pub fn msg(message: impl Into<String>) -> Abort {
        Abort(AbortKind::User(message.into().into()))
    }
}

/// A read: the key-value (or its absence) and the revision it reflects.
#[derive(Debug, Clone)]
struct Read {
    kv: Option<KeyValue>,
}

#[derive(Debug, Clone)]
enum Write {
    /// A value, and the lease to attach it to (0: none).
    Put(Vec<u8>, i64),
    Delete,
}

/// The transaction a [`run`] closure works on.
///
/// ```no_run
/// use etcdv3_client::concurrency::stm::{self, Isolation, Tx};
/// fn swap(tx: &mut Tx) -> Result<(), stm::Abort> {
///     let a = tx.get("a")?.unwrap_or_default();
///     let b = tx.get("b")?.unwrap_or_default();
///     tx.put("a", b);
///     tx.put("b", a);
///     Ok(())
/// }
/// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::concurrency::Result<()> {
/// stm::run(&client, Isolation::Serializable, swap).await
/// # }
/// ```
#[derive(Debug)]
pub struct Tx {
    isolation: Isolation,
    reads: BTreeMap<Vec<u8>, Read>,
    writes: BTreeMap<Vec<u8>, Write>,
    /// The snapshot revision of the snapshot levels (set by the first read).
    snapshot: Option<i64>,
    /// Keys the body asked for and that are not fetched yet.
    missing: BTreeSet<Vec<u8>>,
}

impl Tx {
    fn new(isolation: Isolation) -> Tx {
        Tx {
            isolation,
            reads: BTreeMap::new(),
            writes: BTreeMap::new(),
            snapshot: None,
            missing: BTreeSet::new(),
        }
    }

    /// The value of `key` (`None` when absent), as this transaction sees it
    /// (its own writes included). Returns `Err` when the key must be
    /// fetched first: pass it on with `?`.
    ///
    /// ```no_run
    /// use etcdv3_client::concurrency::stm::{self, Isolation};
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::concurrency::Result<()> {
    /// let value = stm::run(&client, Isolation::default(), |tx| {
    ///     tx.put("k", "mine");
    ///     // Reads see the transaction's own writes.
    ///     Ok(tx.get("k")?)
    /// })
    /// .await?;
    /// assert_eq!(value.as_deref(), Some(&b"mine"[..]));
    /// # Ok(()) }
    /// ```
    pub fn get(&mut self, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>, Abort> {
        let key = key.as_ref();
        if let Some(w) = self.writes.get(key) {
            return Ok(match w {
                Write::Put(v, _) => Some(v.clone()),
                Write::Delete => None,
            });
        }
        Ok(self.read(key)?.map(|kv| kv.value.clone()))
    }

    /// The modification revision of `key` as read by this transaction (0
    /// when absent); ignores this transaction's own writes.
    ///
    /// ```no_run
    /// use etcdv3_client::concurrency::stm::{self, Isolation};
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::concurrency::Result<()> {
    /// let rev = stm::run(&client, Isolation::default(), |tx| tx.rev("k")).await?;
    /// println!("k last modified at revision {rev} (0: absent)");
    /// # Ok(()) }
    /// ```
    pub fn rev(&mut self, key: impl AsRef<[u8]>) -> Result<i64, Abort> {
        Ok(self.read(key.as_ref())?.map_or(0, |kv| kv.mod_revision))
    }

    fn read(&mut self, key: &[u8]) -> Result<Option<&KeyValue>, Abort> {
        match self.reads.get(key) {
            Some(r) => Ok(r.kv.as_ref()),
            None => {
                self.missing.insert(key.to_vec());
                Err(Abort(AbortKind::Fetch))
            }
        }
    }

    /// Write `value` to `key` at commit.
    ///
    /// ```no_run
    /// use etcdv3_client::concurrency::stm::{self, Isolation};
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::concurrency::Result<()> {
    /// stm::run(&client, Isolation::default(), |tx| {
    ///     tx.put("greeting", "hello");
    ///     Ok(())
    /// })
    /// .await
    /// # }
    /// ```
    pub fn put(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.writes.insert(key.into(), Write::Put(value.into(), 0));
    }

    /// Write `value` to `key` at commit, attached to `lease` (Go's
    /// `stm.Put(key, val, v3.WithLease(id))`): the key goes when the lease
    /// ends.
    ///
    /// ```no_run
    /// use etcdv3_client::concurrency::stm::{self, Isolation};
    /// # async fn demo(client: etcdv3_client::Client, lease: i64) -> etcdv3_client::concurrency::Result<()> {
    /// stm::run(&client, Isolation::default(), |tx| {
    ///     if tx.get("leader")?.is_none() {
    ///         tx.put_with_lease("leader", "me", lease);
    ///     }
    ///     Ok(())
    /// })
    /// .await
    /// # }
    /// ```
    pub fn put_with_lease(
        &mut self,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
        lease: i64,
    ) {
        self.writes
            .insert(key.into(), Write::Put(value.into(), lease));
    }

    /// Delete `key` at commit.
    ///
    /// ```no_run
    /// use etcdv3_client::concurrency::stm::{self, Isolation};
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::concurrency::Result<()> {
    /// stm::run(&client, Isolation::default(), |tx| {
    ///     if tx.get("job/done")?.is_some() {
    ///         tx.delete("job/claim");
    ///     }
    ///     Ok(())
    /// })
    /// .await
    /// # }
    /// ```
    pub fn delete(&mut self, key: impl Into<Vec<u8>>) {
        self.writes.insert(key.into(), Write::Delete);
    }

    /// Fetch the keys the last run of the body asked for.
    async fn fetch(&mut self, client: &Client) -> crate::Result<()> {
        for key in std::mem::take(&mut self.missing) {
            let mut opts = GetOptions::new();
            match (self.isolation.snapshot(), self.snapshot) {
                // Later snapshot reads: at the snapshot (linearizable, so
                // that a lagging member cannot answer "future revision").
                (true, Some(rev)) => opts = opts.with_revision(rev),
                // The first snapshot read is linearizable: it fixes the
                // snapshot.
                (true, None) => {}
                // Go reads these from the member at hand; the commit's
                // guard (or the level) makes that safe.
                (false, _) => opts = opts.with_serializable(),
            }
            let resp = client.get(key.clone(), opts).await?;
            if self.isolation.snapshot() && self.snapshot.is_none() {
                self.snapshot = resp.header.as_ref().map(|h| h.revision);
            }
            let kv = resp.kvs.into_iter().next();
            self.reads.insert(key, Read { kv });
        }
        Ok(())
    }

    /// The commit's guard: what must not have changed.
    fn guard(&self) -> Vec<Compare> {
        if self.isolation == Isolation::ReadCommitted {
            return Vec::new();
        }
        // Exactly the version read: a change or a deletion since fails it
        // (comparing `mod_revision < read revision + 1`, as Go does, misses
        // a deletion).
        let mut cmps: Vec<Compare> = self
            .reads
            .iter()
            .map(|(key, r)| {
                let rev = r.kv.as_ref().map_or(0, |kv| kv.mod_revision);
                Compare::mod_revision(key.clone(), CompareOp::Equal, rev)
            })
            .collect();
        if self.isolation == Isolation::SerializableSnapshot {
            if let Some(snapshot) = self.snapshot {
                cmps.extend(
                    self.writes
                        .keys()
                        .filter(|k| !self.reads.contains_key(*k))
                        .map(|k| Compare::mod_revision(k.clone(), CompareOp::Less, snapshot + 1)),
                );
            }
        }
        cmps
    }

    /// Commit the writes under the guard. On a conflict, the failure branch
    /// reads every key read again (Go's prefetch), at one revision: the
    /// next run starts from those values.
    async fn commit(&mut self, client: &Client) -> crate::Result<bool> {
        let writes = self.writes.iter().map(|(k, w)| match w {
            Write::Put(v, lease) => {
                let opts = match *lease {
                    0 => PutOptions::new(),
                    lease => PutOptions::new().with_lease(lease),
                };
                TxnOp::put(k.clone(), v.clone(), opts)
            }
            Write::Delete => TxnOp::delete(k.clone(), DeleteOptions::new()),
        });
        let keys: Vec<Vec<u8>> = self.reads.keys().cloned().collect();
        let rereads = keys
            .iter()
            .map(|k| TxnOp::get(k.clone(), GetOptions::new()));
        let txn = Txn::new()
            .when(self.guard())
            .and_then(writes)
            .or_else(rereads);
        let resp = client.txn(txn).await?;
        if resp.succeeded {
            return Ok(true);
        }
        self.reads.clear();
        self.writes.clear();
        self.snapshot = resp.header.as_ref().map(|h| h.revision);
        for (key, op) in keys.into_iter().zip(resp.responses) {
            if let Some(Response::ResponseRange(r)) = op.response {
                self.reads.insert(
                    key,
                    Read {
                        kv: r.kvs.into_iter().next(),
                    },
                );
            }
        }
        Ok(false)
    }
}

/// Run `body` as one serializable (per `isolation`) transaction, retrying
/// it on conflict until it commits. Returns what the successful run of the
/// body returned.
///
/// The body may run many times (see the [module docs](self)); it must not
/// have side effects besides its `tx` calls. Fails when a read or the
/// commit fails (no retry then: a commit with an unknown outcome is not run
/// again, [`Error::may_have_applied`](super::Error::may_have_applied) says
/// so) or when the body returns an error of its own
/// ([`Error::Aborted`](super::Error::Aborted)).
///
/// ```no_run
/// use etcdv3_client::concurrency::stm::{self, Isolation};
/// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::concurrency::Result<()> {
/// // A linearizable counter: concurrent runs never lose an increment.
/// let next = stm::run(&client, Isolation::SerializableSnapshot, |tx| {
///     let n: i64 = tx.get("counter")?.and_then(|v| String::from_utf8(v).ok()?.parse().ok()).unwrap_or(0);
///     tx.put("counter", (n + 1).to_string());
///     Ok(n + 1)
/// })
/// .await?;
/// println!("counter is now {next}");
/// # Ok(()) }
/// ```
pub async fn run<T, F>(client: &Client, isolation: Isolation, body: F) -> super::Result<T>
where
    F: FnMut(&mut Tx) -> Result<T, Abort>,
{
    run_with(client, StmOptions::new().with_isolation(isolation), body).await
}

/// Options of [`run_with`]: the isolation level and the keys to read
/// before the body first runs.
///
/// ```
/// use etcdv3_client::concurrency::stm::{Isolation, StmOptions};
/// let opts = StmOptions::new()
///     .with_isolation(Isolation::Serializable)
///     .with_prefetch(["accounts/a", "accounts/b"]);
/// assert_ne!(opts, StmOptions::new());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StmOptions {
    isolation: Isolation,
    prefetch: Vec<Vec<u8>>,
}

impl StmOptions {
    /// The default isolation ([`Isolation::SerializableSnapshot`]), no
    /// prefetch.
    ///
    /// ```
    /// use etcdv3_client::concurrency::stm::StmOptions;
    /// assert_eq!(StmOptions::new(), StmOptions::default());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// The isolation level.
    ///
    /// ```
    /// use etcdv3_client::concurrency::stm::{Isolation, StmOptions};
    /// let opts = StmOptions::new().with_isolation(Isolation::RepeatableReads);
    /// assert_ne!(opts, StmOptions::new());
    /// ```
    pub fn with_isolation(mut self, isolation: Isolation) -> Self {
        self.isolation = isolation;
        self
    }

    /// Read these keys before the body first runs (Go's `WithPrefetch`):
    /// a body that reads only them runs once per attempt instead of once
    /// more per key.
    ///
    /// ```no_run
    /// use etcdv3_client::concurrency::stm::{self, StmOptions};
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::concurrency::Result<()> {
    /// let opts = StmOptions::new().with_prefetch(["accounts/a", "accounts/b"]);
    /// stm::run_with(&client, opts, |tx| {
    ///     let (a, b) = (tx.get("accounts/a")?, tx.get("accounts/b")?); // no round trip
    ///     tx.put("accounts/a", b.unwrap_or_default());
    ///     tx.put("accounts/b", a.unwrap_or_default());
    ///     Ok(())
    /// })
    /// .await
    /// # }
    /// ```
    pub fn with_prefetch<I, K>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = K>,
        K: Into<Vec<u8>>,
    {
        self.prefetch.extend(keys.into_iter().map(Into::into));
        self
    }
}

/// [`run`] with [`StmOptions`] (isolation, prefetch).
///
/// ```no_run
/// use etcdv3_client::concurrency::stm::{self, Isolation, StmOptions};
/// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::concurrency::Result<()> {
/// let opts = StmOptions::new().with_isolation(Isolation::Serializable).with_prefetch(["counter"]);
/// stm::run_with(&client, opts, |tx| {
///     let n: i64 = tx.get("counter")?.and_then(|v| String::from_utf8(v).ok()?.parse().ok()).unwrap_or(0);
///     tx.put("counter", (n + 1).to_string());
///     Ok(())
/// })
/// .await
/// # }
/// ```
pub async fn run_with<T, F>(client: &Client, options: StmOptions, mut body: F) -> super::Result<T>
where
    F: FnMut(&mut Tx) -> Result<T, Abort>,
{
    let mut tx = Tx::new(options.isolation);
    if !options.prefetch.is_empty() {
        tx.missing.extend(options.prefetch);
        tx.fetch(client).await?;
    }
    loop {
        tx.writes.clear();
        tx.missing.clear();
        let out = body(&mut tx);
        if !tx.missing.is_empty() {
            // Even if the body swallowed the `Abort`: it ran without a value.
            if let Err(Abort(AbortKind::User(e))) = out {
                return Err(super::Error::Aborted(e.into()));
            }
            tx.fetch(client).await?;
            continue;
        }
        match out {
            Ok(value) => {
                if tx.commit(client).await? {
                    return Ok(value);
                }
            }
            Err(Abort(AbortKind::User(e))) => return Err(super::Error::Aborted(e.into())),
            // A fetch abort with nothing missing cannot happen; run again.
            Err(Abort(AbortKind::Fetch)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: &str, mod_revision: i64) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: value.into(),
            mod_revision,
            create_revision: mod_revision,
            ..Default::default()
        }
    }

    #[test]
    fn reads_abort_until_fetched_and_writes_shadow_reads() {
        let mut tx = Tx::new(Isolation::Serializable);
        assert!(tx.get("a").is_err());
        assert_eq!(tx.missing.len(), 1);
        tx.reads.insert(
            b"a".to_vec(),
            Read {
                kv: Some(kv("a", "1", 5)),
            },
        );
        assert_eq!(tx.get("a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(tx.rev("a").unwrap(), 5);
        tx.put("a", "2");
        assert_eq!(tx.get("a").unwrap(), Some(b"2".to_vec()));
        tx.delete("a");
        assert_eq!(tx.get("a").unwrap(), None);
        // Writes do not hide the read revision.
        assert_eq!(tx.rev("a").unwrap(), 5);
    }

    #[test]
    fn guards_follow_the_isolation_level() {
        let setup = |iso| {
            let mut tx = Tx::new(iso);
            tx.snapshot = Some(9);
            tx.reads.insert(
                b"r".to_vec(),
                Read {
                    kv: Some(kv("r", "1", 7)),
                },
            );
            tx.reads.insert(b"gone".to_vec(), Read { kv: None });
            tx.put("r", "2");
            tx.put("w", "x");
            tx
        };
        let exact = |k: &str, rev| Compare::mod_revision(k, CompareOp::Equal, rev);
        let rr = setup(Isolation::RepeatableReads).guard();
        assert_eq!(rr, vec![exact("gone", 0), exact("r", 7)]);
        assert_eq!(setup(Isolation::Serializable).guard(), rr);
        let snap = setup(Isolation::SerializableSnapshot).guard();
        assert_eq!(
            snap,
            vec![
                exact("gone", 0),
                exact("r", 7),
                Compare::mod_revision("w", CompareOp::Less, 10)
            ]
        );
        assert!(setup(Isolation::ReadCommitted).guard().is_empty());
    }

    #[test]
    fn user_errors_convert_with_question_mark() {
        fn body() -> Result<(), Abort> {
            let _n: i64 = "x".parse()?;
            Ok(())
        }
        let Err(Abort(AbortKind::User(e))) = body() else {
            panic!("expected a user abort");
        };
        assert!(e.to_string().contains("invalid digit"), "{e}");
        assert!(matches!(Abort::msg("stop").0, AbortKind::User(_)));
    }
}
