//! Transactions: compare, then run one list of operations or the other,
//! atomically.
//!
//! ```no_run
//! use etcdv3_client::api::{Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp};
//!
//! async fn demo(client: &etcdv3_client::Client) -> etcdv3_client::Result<()> {
//!     // Create "lock" only if it does not exist yet.
//!     let txn = Txn::new()
//!         .when([Compare::create_revision("lock", CompareOp::Equal, 0)])
//!         .and_then([TxnOp::put("lock", "me", PutOptions::new())])
//!         .or_else([TxnOp::get("lock", GetOptions::new())]);
//!     let resp = client.txn(txn).await?;
//!     println!("acquired: {}", resp.succeeded);
//!     Ok(())
//! }
//! ```

use std::time::Duration;

use etcdv3_proto::etcdserverpb::{self as pb, compare, request_op};
use etcdv3_proto::method;

use super::kv::{call_options, DeleteOptions, GetOptions, KeyRange, PutOptions};
use crate::client::Client;
use crate::error::Result;

pub use etcdv3_proto::etcdserverpb::{response_op, ResponseOp, TxnResponse};

/// How a [`Compare`] relates the stored field to the given one.
///
/// ```
/// use etcdv3_client::api::{Compare, CompareOp};
/// let newer = Compare::mod_revision("k", CompareOp::Greater, 100);
/// assert_ne!(newer, Compare::mod_revision("k", CompareOp::Less, 100));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    /// Stored == given.
    Equal,
    /// Stored != given.
    NotEqual,
    /// Stored > given.
    Greater,
    /// Stored < given.
    Less,
}

impl CompareOp {
    fn to_pb(self) -> compare::CompareResult {
        match self {
            CompareOp::Equal => compare::CompareResult::Equal,
            CompareOp::NotEqual => compare::CompareResult::NotEqual,
            CompareOp::Greater => compare::CompareResult::Greater,
            CompareOp::Less => compare::CompareResult::Less,
        }
    }
}

/// One condition of a [`Txn`]: a field of a key (or of every key in a range)
/// compared with a value. A key that does not exist has version, create and
/// mod revision 0 and lease 0 (and compares false on its value).
///
/// ```no_run
/// use etcdv3_client::api::{Compare, CompareOp, PutOptions, Txn, TxnOp};
/// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
/// // Create "leader" only if it does not exist yet.
/// let txn = Txn::new()
///     .when([Compare::create_revision("leader", CompareOp::Equal, 0)])
///     .and_then([TxnOp::put("leader", "me", PutOptions::new())]);
/// let won = client.txn(txn).await?.succeeded;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compare {
    key: Vec<u8>,
    range: KeyRange,
    op: CompareOp,
    target: compare::TargetUnion,
}

impl Compare {
    fn new(key: impl Into<Vec<u8>>, op: CompareOp, target: compare::TargetUnion) -> Self {
        Compare {
            key: key.into(),
            range: KeyRange::Single,
            op,
            target,
        }
    }

    /// Compare the key's value.
    ///
    /// ```
    /// use etcdv3_client::api::{Compare, CompareOp};
    /// let unchanged = Compare::value("cfg", CompareOp::Equal, "v1");
    /// assert_ne!(unchanged, Compare::value("cfg", CompareOp::Equal, "v2"));
    /// ```
    pub fn value(key: impl Into<Vec<u8>>, op: CompareOp, value: impl Into<Vec<u8>>) -> Self {
        Self::new(key, op, compare::TargetUnion::Value(value.into()))
    }

    /// Compare the key's version (writes since creation; 0 if absent).
    ///
    /// ```
    /// use etcdv3_client::api::{Compare, CompareOp};
    /// // True only while "k" does not exist.
    /// let absent = Compare::version("k", CompareOp::Equal, 0);
    /// # let _ = absent;
    /// ```
    pub fn version(key: impl Into<Vec<u8>>, op: CompareOp, version: i64) -> Self {
        Self::new(key, op, compare::TargetUnion::Version(version))
    }

    /// Compare the revision at which the key was created (0 if absent).
    ///
    /// ```
    /// use etcdv3_client::api::{Compare, CompareOp};
    /// let same_incarnation = Compare::create_revision("lock/a", CompareOp::Equal, 42);
    /// # let _ = same_incarnation;
    /// ```
    pub fn create_revision(key: impl Into<Vec<u8>>, op: CompareOp, revision: i64) -> Self {
        Self::new(key, op, compare::TargetUnion::CreateRevision(revision))
    }

    /// Compare the revision at which the key was last modified (0 if absent).
    ///
    /// ```
    /// use etcdv3_client::api::{Compare, CompareOp};
    /// // Optimistic concurrency: nobody wrote "k" since we read it at revision 7.
    /// let untouched = Compare::mod_revision("k", CompareOp::Equal, 7);
    /// # let _ = untouched;
    /// ```
    pub fn mod_revision(key: impl Into<Vec<u8>>, op: CompareOp, revision: i64) -> Self {
        Self::new(key, op, compare::TargetUnion::ModRevision(revision))
    }

    /// Compare the key's lease id (0 if none).
    ///
    /// ```
    /// use etcdv3_client::api::{Compare, CompareOp};
    /// let mine = Compare::lease("svc/node-1", CompareOp::Equal, 0x1234);
    /// # let _ = mine;
    /// ```
    pub fn lease(key: impl Into<Vec<u8>>, op: CompareOp, lease: i64) -> Self {
        Self::new(key, op, compare::TargetUnion::Lease(lease))
    }

    key_range_setters!(
        "Apply the comparison to",
        r#"etcdv3_client::api::Compare::version("k", etcdv3_client::api::CompareOp::Greater, 0)"#
    );

    pub(crate) fn build(&self) -> Result<pb::Compare> {
        let (key, range_end) = self.range.resolve(self.key.clone())?;
        let target = match self.target {
            compare::TargetUnion::Version(_) => compare::CompareTarget::Version,
            compare::TargetUnion::CreateRevision(_) => compare::CompareTarget::Create,
            compare::TargetUnion::ModRevision(_) => compare::CompareTarget::Mod,
            compare::TargetUnion::Value(_) => compare::CompareTarget::Value,
            compare::TargetUnion::Lease(_) => compare::CompareTarget::Lease,
        };
        Ok(pb::Compare {
            result: self.op.to_pb() as i32,
            target: target as i32,
            key,
            range_end,
            target_union: Some(self.target.clone()),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum OpKind {
    Get(Vec<u8>, GetOptions),
    Put(Vec<u8>, Vec<u8>, PutOptions),
    Delete(Vec<u8>, DeleteOptions),
    Txn(Txn),
}

/// One operation of a [`Txn`]. Per-call timeouts in the options are ignored
/// here; the transaction's own applies.
///
/// ```
/// use etcdv3_client::api::{DeleteOptions, GetOptions, PutOptions, Txn, TxnOp};
/// let move_key = Txn::new().and_then([
///     TxnOp::get("old", GetOptions::new()),
///     TxnOp::put("new", "v", PutOptions::new()),
///     TxnOp::delete("old", DeleteOptions::new()),
/// ]);
/// assert_ne!(move_key, Txn::new());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnOp(OpKind);

impl TxnOp {
    /// Read, like [`Client::get`].
    ///
    /// ```
    /// use etcdv3_client::api::{GetOptions, TxnOp};
    /// assert_ne!(TxnOp::get("a", GetOptions::new()), TxnOp::get("b", GetOptions::new()));
    /// ```
    pub fn get(key: impl Into<Vec<u8>>, options: GetOptions) -> Self {
        TxnOp(OpKind::Get(key.into(), options))
    }

    /// Write, like [`Client::put`].
    ///
    /// ```
    /// use etcdv3_client::api::{PutOptions, TxnOp};
    /// assert_ne!(TxnOp::put("k", "1", PutOptions::new()), TxnOp::put("k", "2", PutOptions::new()));
    /// ```
    pub fn put(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>, options: PutOptions) -> Self {
        TxnOp(OpKind::Put(key.into(), value.into(), options))
    }

    /// Delete, like [`Client::delete`].
    ///
    /// ```
    /// use etcdv3_client::api::{DeleteOptions, TxnOp};
    /// let clear = TxnOp::delete("tmp/", DeleteOptions::new().with_prefix());
    /// assert_ne!(clear, TxnOp::delete("tmp/", DeleteOptions::new()));
    /// ```
    pub fn delete(key: impl Into<Vec<u8>>, options: DeleteOptions) -> Self {
        TxnOp(OpKind::Delete(key.into(), options))
    }

    /// A nested transaction (etcd 3.3+). Its response is a
    /// [`response_op::Response::ResponseTxn`].
    ///
    /// ```
    /// use etcdv3_client::api::{PutOptions, Txn, TxnOp};
    /// let inner = Txn::new().and_then([TxnOp::put("k", "v", PutOptions::new())]);
    /// let outer = Txn::new().and_then([TxnOp::txn(inner)]);
    /// assert_ne!(outer, Txn::new());
    /// ```
    pub fn txn(txn: Txn) -> Self {
        TxnOp(OpKind::Txn(txn))
    }

    pub(crate) fn build(&self) -> Result<pb::RequestOp> {
        let request = match &self.0 {
            OpKind::Get(key, o) => request_op::Request::RequestRange(o.build(key.clone())?),
            OpKind::Put(key, value, o) => {
                request_op::Request::RequestPut(o.build(key.clone(), value.clone())?)
            }
            OpKind::Delete(key, o) => {
                request_op::Request::RequestDeleteRange(o.build(key.clone())?)
            }
            OpKind::Txn(t) => request_op::Request::RequestTxn(t.build()?),
        };
        Ok(pb::RequestOp {
            request: Some(request),
        })
    }
}

/// A transaction: if every [`Compare`] holds, run the `and_then`
/// operations, otherwise the `or_else` operations; all in one revision.
///
/// Sent with [`Client::txn`]. A transaction is a mutation: when its outcome
/// is unknown it is never retried, even if it only reads.
///
/// ```no_run
/// use etcdv3_client::api::{Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp};
/// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
/// let txn = Txn::new()
///     .when([Compare::value("state", CompareOp::Equal, "idle")])
///     .and_then([TxnOp::put("state", "busy", PutOptions::new())])
///     .or_else([TxnOp::get("state", GetOptions::new())]);
/// let resp = client.txn(txn).await?;
/// println!("switched to busy: {}", resp.succeeded);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Txn {
    compare: Vec<Compare>,
    success: Vec<TxnOp>,
    failure: Vec<TxnOp>,
    timeout: Option<Duration>,
}

impl Txn {
    /// An empty transaction (no conditions: the `and_then` branch runs).
    ///
    /// ```
    /// use etcdv3_client::api::Txn;
    /// assert_eq!(Txn::new(), Txn::default());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Add conditions (all must hold).
    ///
    /// ```
    /// use etcdv3_client::api::{Compare, CompareOp, Txn};
    /// let guarded = Txn::new().when([Compare::version("k", CompareOp::Greater, 0)]);
    /// assert_ne!(guarded, Txn::new());
    /// ```
    pub fn when(mut self, compares: impl IntoIterator<Item = Compare>) -> Self {
        self.compare.extend(compares);
        self
    }

    /// Add operations to run when the conditions hold.
    ///
    /// ```
    /// use etcdv3_client::api::{PutOptions, Txn, TxnOp};
    /// let txn = Txn::new().and_then([TxnOp::put("k", "v", PutOptions::new())]);
    /// assert_ne!(txn, Txn::new());
    /// ```
    pub fn and_then(mut self, ops: impl IntoIterator<Item = TxnOp>) -> Self {
        self.success.extend(ops);
        self
    }

    /// Add operations to run when a condition fails.
    ///
    /// ```
    /// use etcdv3_client::api::{GetOptions, Txn, TxnOp};
    /// let txn = Txn::new().or_else([TxnOp::get("k", GetOptions::new())]);
    /// assert_ne!(txn, Txn::new());
    /// ```
    pub fn or_else(mut self, ops: impl IntoIterator<Item = TxnOp>) -> Self {
        self.failure.extend(ops);
        self
    }

    /// Deadline of this call instead of the client's request timeout
    /// (ignored for a nested transaction).
    ///
    /// ```
    /// use etcdv3_client::api::Txn;
    /// use std::time::Duration;
    /// assert_ne!(Txn::new().with_timeout(Duration::from_secs(1)), Txn::new());
    /// ```
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The wire request. Fails on an empty key anywhere in the transaction.
    pub(crate) fn build(&self) -> Result<pb::TxnRequest> {
        let compare = self
            .compare
            .iter()
            .map(Compare::build)
            .collect::<Result<Vec<_>>>()?;
        Ok(pb::TxnRequest {
            compare,
            success: self
                .success
                .iter()
                .map(TxnOp::build)
                .collect::<Result<_>>()?,
            failure: self
                .failure
                .iter()
                .map(TxnOp::build)
                .collect::<Result<_>>()?,
        })
    }

    pub(crate) fn timeout(&self) -> Option<Duration> {
        self.timeout
    }
}

impl Client {
    /// Run a transaction. The core treats it as a mutation: it is retried
    /// only when it provably was not processed.
    ///
    /// ```no_run
    /// use etcdv3_client::api::{response_op, Compare, CompareOp, PutOptions, Txn, TxnOp};
    /// async fn demo(client: &etcdv3_client::Client) -> etcdv3_client::Result<()> {
    ///     let txn = Txn::new()
    ///         .when([Compare::value("cfg/version", CompareOp::Equal, "1")])
    ///         .and_then([TxnOp::put("cfg/version", "2", PutOptions::new().with_prev_kv())]);
    ///     let resp = client.txn(txn).await?;
    ///     for op in &resp.responses {
    ///         if let Some(response_op::Response::ResponsePut(put)) = &op.response {
    ///             println!("previous: {:?}", put.prev_kv);
    ///         }
    ///     }
    ///     Ok(())
    /// }
    /// ```
    pub async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        let mut req = txn.build()?;
        let ns = self.namespace();
        if ns.is_empty() {
            return self
                .unary(method::KV_TXN, &req, call_options(txn.timeout()))
                .await;
        }
        super::namespace::prefix_txn(ns, &mut req);
        let mut resp: TxnResponse = self
            .unary(method::KV_TXN, &req, call_options(txn.timeout()))
            .await?;
        super::namespace::strip_txn(ns, &mut resp);
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn compare_targets() {
        let c = Compare::value("k", CompareOp::Equal, "v").build().unwrap();
        assert_eq!(c.target(), compare::CompareTarget::Value);
        assert_eq!(c.result(), compare::CompareResult::Equal);
        assert_eq!(
            c.target_union,
            Some(compare::TargetUnion::Value(b"v".to_vec()))
        );
        assert!(c.range_end.is_empty());

        let c = Compare::version("k", CompareOp::Greater, 2)
            .build()
            .unwrap();
        assert_eq!(c.target(), compare::CompareTarget::Version);
        assert_eq!(c.result(), compare::CompareResult::Greater);
        assert_eq!(c.target_union, Some(compare::TargetUnion::Version(2)));

        let c = Compare::create_revision("k", CompareOp::Less, 3)
            .build()
            .unwrap();
        assert_eq!(c.target(), compare::CompareTarget::Create);
        assert_eq!(c.result(), compare::CompareResult::Less);

        let c = Compare::mod_revision("k", CompareOp::NotEqual, 4)
            .build()
            .unwrap();
        assert_eq!(c.target(), compare::CompareTarget::Mod);
        assert_eq!(c.result(), compare::CompareResult::NotEqual);
        assert_eq!(c.target_union, Some(compare::TargetUnion::ModRevision(4)));

        let c = Compare::lease("k", CompareOp::Equal, 5).build().unwrap();
        assert_eq!(c.target(), compare::CompareTarget::Lease);
        assert_eq!(c.target_union, Some(compare::TargetUnion::Lease(5)));
    }

    #[test]
    fn compare_ranges() {
        let c = Compare::value("a/", CompareOp::Equal, "v")
            .with_prefix()
            .build()
            .unwrap();
        assert_eq!(
            (c.key.as_slice(), c.range_end.as_slice()),
            (&b"a/"[..], &b"a0"[..])
        );
        let c = Compare::version("", CompareOp::Equal, 0)
            .with_prefix()
            .build()
            .unwrap();
        assert_eq!(
            (c.key.as_slice(), c.range_end.as_slice()),
            (&b"\0"[..], &b"\0"[..])
        );
        let c = Compare::version("m", CompareOp::Equal, 0)
            .with_from_key()
            .build()
            .unwrap();
        assert_eq!(c.range_end, b"\0");
        let c = Compare::version("a", CompareOp::Equal, 0)
            .with_range_end("c")
            .build()
            .unwrap();
        assert_eq!(c.range_end, b"c");
        assert!(matches!(
            Compare::version("", CompareOp::Equal, 0).build(),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn txn_builds_branches_in_order() {
        let inner = Txn::new()
            .when([Compare::version("x", CompareOp::Equal, 0)])
            .and_then([TxnOp::put("x", "1", PutOptions::new())]);
        let req = Txn::new()
            .when([Compare::value("k", CompareOp::Equal, "v")])
            .when([Compare::version("j", CompareOp::Equal, 1)])
            .and_then([
                TxnOp::put("a", "1", PutOptions::new().with_prev_kv()),
                TxnOp::get("b", GetOptions::new().with_prefix()),
            ])
            .and_then([TxnOp::txn(inner)])
            .or_else([TxnOp::delete("c", DeleteOptions::new().with_prev_kv())])
            .build()
            .unwrap();
        assert_eq!(req.compare.len(), 2);
        assert_eq!(req.compare[1].key, b"j");
        assert_eq!(req.success.len(), 3);
        match &req.success[0].request {
            Some(request_op::Request::RequestPut(p)) => {
                assert_eq!(
                    (p.key.as_slice(), p.value.as_slice(), p.prev_kv),
                    (&b"a"[..], &b"1"[..], true)
                )
            }
            other => panic!("unexpected {other:?}"),
        }
        match &req.success[1].request {
            Some(request_op::Request::RequestRange(r)) => assert_eq!(r.range_end, b"c"),
            other => panic!("unexpected {other:?}"),
        }
        match &req.success[2].request {
            Some(request_op::Request::RequestTxn(t)) => {
                assert_eq!(t.compare.len(), 1);
                assert_eq!(t.success.len(), 1);
                assert!(t.failure.is_empty());
            }
            other => panic!("unexpected {other:?}"),
        }
        match &req.failure[0].request {
            Some(request_op::Request::RequestDeleteRange(d)) => assert!(d.prev_kv),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn txn_rejects_empty_keys_anywhere() {
        let t = Txn::new().and_then([TxnOp::put("", "v", PutOptions::new())]);
        assert!(matches!(t.build(), Err(Error::InvalidArgument(_))));
        let nested = Txn::new().or_else([TxnOp::get("", GetOptions::new())]);
        let t = Txn::new().and_then([TxnOp::txn(nested)]);
        assert!(matches!(t.build(), Err(Error::InvalidArgument(_))));
        let t = Txn::new().when([Compare::value("", CompareOp::Equal, "")]);
        assert!(t.build().is_err());
        assert!(Txn::new().build().is_ok());
    }
}
