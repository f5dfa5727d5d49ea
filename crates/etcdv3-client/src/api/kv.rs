//! The KV service: get, put, delete and compact.
//!
//! ```no_run
//! use etcdv3_client::api::{DeleteOptions, GetOptions, PutOptions};
//!
//! async fn demo(client: &etcdv3_client::Client) -> etcdv3_client::Result<()> {
//!     client.put("app/a", "1", PutOptions::new()).await?;
//!     let resp = client.get("app/", GetOptions::new().with_prefix().with_limit(10)).await?;
//!     for kv in &resp.kvs {
//!         println!("{:?} = {:?}", kv.key, kv.value);
//!     }
//!     client.delete("app/", DeleteOptions::new().with_prefix()).await?;
//!     Ok(())
//! }
//! ```

use std::time::Duration;

use etcdv3_proto::etcdserverpb::{self as pb, range_request};
use etcdv3_proto::method;

use crate::client::{CallOptions, Client};
use crate::error::{Error, Result};

pub use etcdv3_proto::etcdserverpb::{
    CompactionResponse, DeleteRangeResponse, PutResponse, RangeResponse, ResponseHeader,
};
pub use etcdv3_proto::mvccpb::KeyValue;

/// The `range_end` that selects every key starting with `prefix`: the prefix
/// with its trailing `0xff` bytes removed and its last byte incremented. A
/// prefix made only of `0xff` bytes (or an empty one) has no such bound; the
/// result is then `"\0"`, which etcd reads as "to the end of the keyspace".
///
/// ```
/// use etcdv3_client::api::prefix_range_end;
/// assert_eq!(prefix_range_end(b"app/"), b"app0");
/// assert_eq!(prefix_range_end(b"a\xff"), b"b");
/// assert_eq!(prefix_range_end(b"\xff\xff"), b"\0");
/// ```
pub fn prefix_range_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(&last) = end.last() {
        if last < 0xff {
            if let Some(b) = end.last_mut() {
                *b = last + 1;
            }
            return end;
        }
        end.pop();
    }
    vec![0]
}

pub(crate) fn empty_key() -> Error {
    Error::InvalidArgument("key must not be empty".into())
}

/// Which keys a request covers, besides its key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum KeyRange {
    /// Only the key itself.
    #[default]
    Single,
    /// Every key starting with the key (all keys for an empty key).
    Prefix,
    /// Every key greater than or equal to the key (all keys for an empty key).
    FromKey,
    /// `[key, end)`; an empty end means the key alone.
    End(Vec<u8>),
}

impl KeyRange {
    /// The request's `(key, range_end)`. An empty key is allowed only for
    /// prefix and from-key ranges, where it means "all keys".
    pub(crate) fn resolve(&self, key: Vec<u8>) -> Result<(Vec<u8>, Vec<u8>)> {
        match self {
            KeyRange::Single => {
                if key.is_empty() {
                    return Err(empty_key());
                }
                Ok((key, Vec::new()))
            }
            KeyRange::Prefix => {
                if key.is_empty() {
                    return Ok((vec![0], vec![0]));
                }
                let end = prefix_range_end(&key);
                Ok((key, end))
            }
            KeyRange::FromKey => {
                let key = if key.is_empty() { vec![0] } else { key };
                Ok((key, vec![0]))
            }
            KeyRange::End(end) => {
                if key.is_empty() {
                    return Err(empty_key());
                }
                Ok((key, end.clone()))
            }
        }
    }
}

/// Order of the keys a get returns.
///
/// ```no_run
/// use etcdv3_client::api::{GetOptions, SortOrder, SortTarget};
/// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
/// // The ten most recently created keys under "jobs/".
/// let opts = GetOptions::new().with_prefix().with_limit(10).with_sort(SortTarget::Create, SortOrder::Descend);
/// let newest = client.get("jobs/", opts).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum SortOrder {
    /// The server's order (ascending by key).
    #[default]
    None,
    /// Ascending.
    Ascend,
    /// Descending.
    Descend,
}

impl SortOrder {
    fn to_pb(self) -> range_request::SortOrder {
        match self {
            SortOrder::None => range_request::SortOrder::None,
            SortOrder::Ascend => range_request::SortOrder::Ascend,
            SortOrder::Descend => range_request::SortOrder::Descend,
        }
    }
}

/// The field a get sorts by.
///
/// ```
/// use etcdv3_client::api::{GetOptions, SortOrder, SortTarget};
/// let by_value = GetOptions::new().with_sort(SortTarget::Value, SortOrder::Ascend);
/// assert_ne!(by_value, GetOptions::new());
/// assert_eq!(SortTarget::default(), SortTarget::Key);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum SortTarget {
    /// The key.
    #[default]
    Key,
    /// The key's version (number of writes since creation).
    Version,
    /// The revision at which the key was created.
    Create,
    /// The revision at which the key was last modified.
    Mod,
    /// The value.
    Value,
}

impl SortTarget {
    fn to_pb(self) -> range_request::SortTarget {
        match self {
            SortTarget::Key => range_request::SortTarget::Key,
            SortTarget::Version => range_request::SortTarget::Version,
            SortTarget::Create => range_request::SortTarget::Create,
            SortTarget::Mod => range_request::SortTarget::Mod,
            SortTarget::Value => range_request::SortTarget::Value,
        }
    }
}

/// Options of [`Client::get`]. `GetOptions::new()` (or `Default`) reads one
/// key, linearizably, at the latest revision.
///
/// ```no_run
/// use etcdv3_client::api::GetOptions;
/// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
/// let count = client.get("app/", GetOptions::new().with_prefix().with_count_only()).await?.count;
/// println!("{count} keys under app/");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GetOptions {
    pub(crate) range: KeyRange,
    limit: i64,
    revision: i64,
    sort_order: SortOrder,
    sort_target: SortTarget,
    serializable: bool,
    unfenced: bool,
    keys_only: bool,
    count_only: bool,
    min_mod_revision: i64,
    max_mod_revision: i64,
    min_create_revision: i64,
    max_create_revision: i64,
    pub(crate) timeout: Option<Duration>,
}

impl GetOptions {
    /// Read one key, linearizably, at the latest revision.
    ///
    /// ```
    /// use etcdv3_client::api::GetOptions;
    /// assert_eq!(GetOptions::new(), GetOptions::default());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    key_range_setters!("Read", r#"etcdv3_client::api::GetOptions::new()"#);

    /// Return at most `limit` keys (0: no limit). `more` in the response
    /// tells whether more keys matched.
    ///
    /// ```
    /// use etcdv3_client::api::GetOptions;
    /// assert_ne!(GetOptions::new().with_prefix().with_limit(100), GetOptions::new().with_prefix());
    /// ```
    pub fn with_limit(mut self, limit: i64) -> Self {
        self.limit = limit;
        self
    }

    /// Read at this revision (0: the latest). Fails with
    /// [`EtcdErrorKind::Compacted`](etcdv3_core::wire::error::EtcdErrorKind::Compacted)
    /// when the revision was compacted and
    /// [`EtcdErrorKind::FutureRev`](etcdv3_core::wire::error::EtcdErrorKind::FutureRev)
    /// when it does not exist yet.
    ///
    /// ```no_run
    /// use etcdv3_client::api::GetOptions;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// // The key as it was at revision 42.
    /// let old = client.get("config", GetOptions::new().with_revision(42)).await?;
    /// # Ok(()) }
    /// ```
    pub fn with_revision(mut self, revision: i64) -> Self {
        self.revision = revision;
        self
    }

    /// Sort the result by `target` in `order`.
    ///
    /// ```
    /// use etcdv3_client::api::{GetOptions, SortOrder, SortTarget};
    /// let newest_first = GetOptions::new().with_sort(SortTarget::Mod, SortOrder::Descend);
    /// assert_ne!(newest_first, GetOptions::new());
    /// ```
    pub fn with_sort(mut self, target: SortTarget, order: SortOrder) -> Self {
        self.sort_target = target;
        self.sort_order = order;
        self
    }

    /// Serve the read from the local member's state without consulting the
    /// leader: faster, possibly stale.
    ///
    /// ```no_run
    /// use etcdv3_client::api::GetOptions;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let maybe_stale = client.get("config", GetOptions::new().with_serializable()).await?;
    /// # Ok(()) }
    /// ```
    pub fn with_serializable(mut self) -> Self {
        self.serializable = true;
        self
    }

    /// For a serializable read: take the first answer, whatever its
    /// revision, instead of retrying an answer below the revision this client
    /// has already seen on other members (the revision fence; see
    /// [`StaleRead`](crate::StaleRead)). [`Client::get_checked`] still marks
    /// such an answer. No effect on linearizable reads, which etcd confirms
    /// with a quorum.
    ///
    /// ```
    /// use etcdv3_client::api::GetOptions;
    /// let fastest = GetOptions::new().with_serializable().without_revision_fence();
    /// assert_ne!(fastest, GetOptions::new().with_serializable());
    /// ```
    pub fn without_revision_fence(mut self) -> Self {
        self.unfenced = true;
        self
    }

    /// Return keys without values.
    ///
    /// ```no_run
    /// use etcdv3_client::api::GetOptions;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let resp = client.get("app/", GetOptions::new().with_prefix().with_keys_only()).await?;
    /// assert!(resp.kvs.iter().all(|kv| kv.value.is_empty()));
    /// # Ok(()) }
    /// ```
    pub fn with_keys_only(mut self) -> Self {
        self.keys_only = true;
        self
    }

    /// Return only the count of matching keys.
    ///
    /// ```no_run
    /// use etcdv3_client::api::GetOptions;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let resp = client.get("app/", GetOptions::new().with_prefix().with_count_only()).await?;
    /// assert!(resp.kvs.is_empty());
    /// println!("{} keys", resp.count);
    /// # Ok(()) }
    /// ```
    pub fn with_count_only(mut self) -> Self {
        self.count_only = true;
        self
    }

    /// Only keys modified at or after this revision.
    ///
    /// ```
    /// use etcdv3_client::api::GetOptions;
    /// assert_ne!(GetOptions::new().with_min_mod_revision(10), GetOptions::new());
    /// ```
    pub fn with_min_mod_revision(mut self, revision: i64) -> Self {
        self.min_mod_revision = revision;
        self
    }

    /// Only keys modified at or before this revision.
    ///
    /// ```
    /// use etcdv3_client::api::GetOptions;
    /// assert_ne!(GetOptions::new().with_max_mod_revision(10), GetOptions::new());
    /// ```
    pub fn with_max_mod_revision(mut self, revision: i64) -> Self {
        self.max_mod_revision = revision;
        self
    }

    /// Only keys created at or after this revision.
    ///
    /// ```
    /// use etcdv3_client::api::GetOptions;
    /// assert_ne!(GetOptions::new().with_min_create_revision(10), GetOptions::new());
    /// ```
    pub fn with_min_create_revision(mut self, revision: i64) -> Self {
        self.min_create_revision = revision;
        self
    }

    /// Only keys created at or before this revision.
    ///
    /// ```
    /// use etcdv3_client::api::GetOptions;
    /// assert_ne!(GetOptions::new().with_max_create_revision(10), GetOptions::new());
    /// ```
    pub fn with_max_create_revision(mut self, revision: i64) -> Self {
        self.max_create_revision = revision;
        self
    }

    /// Deadline of this call instead of the client's request timeout
    /// (ignored inside a transaction).
    ///
    /// ```
    /// use etcdv3_client::api::GetOptions;
    /// use std::time::Duration;
    /// assert_ne!(GetOptions::new().with_timeout(Duration::from_millis(500)), GetOptions::new());
    /// ```
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// What the client's revision fence makes of the answer to this read.
    pub(crate) fn read_kind(&self, serializable: bool) -> etcdv3_core::machine::ReadKind {
        use etcdv3_core::machine::ReadKind;
        match (serializable, self.unfenced) {
            (false, _) => ReadKind::Linearizable,
            (true, false) => ReadKind::Serializable,
            (true, true) => ReadKind::SerializableUnfenced,
        }
    }

    /// The wire request for `key`.
    pub(crate) fn build(&self, key: Vec<u8>) -> Result<pb::RangeRequest> {
        let (key, range_end) = self.range.resolve(key)?;
        Ok(pb::RangeRequest {
            key,
            range_end,
            limit: self.limit,
            revision: self.revision,
            sort_order: self.sort_order.to_pb() as i32,
            sort_target: self.sort_target.to_pb() as i32,
            serializable: self.serializable,
            keys_only: self.keys_only,
            count_only: self.count_only,
            min_mod_revision: self.min_mod_revision,
            max_mod_revision: self.max_mod_revision,
            min_create_revision: self.min_create_revision,
            max_create_revision: self.max_create_revision,
        })
    }
}

/// Options of [`Client::put`].
///
/// ```no_run
/// use etcdv3_client::api::PutOptions;
/// # async fn demo(client: etcdv3_client::Client, lease: i64) -> etcdv3_client::Result<()> {
/// client.put("svc/node-1", "10.0.0.1:8080", PutOptions::new().with_lease(lease)).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutOptions {
    lease: i64,
    prev_kv: bool,
    ignore_value: bool,
    ignore_lease: bool,
    pub(crate) timeout: Option<Duration>,
}

impl PutOptions {
    /// A plain put.
    ///
    /// ```
    /// use etcdv3_client::api::PutOptions;
    /// assert_eq!(PutOptions::new(), PutOptions::default());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Attach the key to this lease: it is deleted when the lease expires.
    ///
    /// ```
    /// use etcdv3_client::api::PutOptions;
    /// assert_ne!(PutOptions::new().with_lease(0x1234), PutOptions::new());
    /// ```
    pub fn with_lease(mut self, lease: i64) -> Self {
        self.lease = lease;
        self
    }

    /// Return the key-value as it was before the put.
    ///
    /// ```no_run
    /// use etcdv3_client::api::PutOptions;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let prev = client.put("k", "v2", PutOptions::new().with_prev_kv()).await?.prev_kv;
    /// println!("was {:?}", prev.map(|kv| kv.value));
    /// # Ok(()) }
    /// ```
    pub fn with_prev_kv(mut self) -> Self {
        self.prev_kv = true;
        self
    }

    /// Keep the current value (update only the lease); the key must exist
    /// and the value given to `put` must be empty.
    ///
    /// ```no_run
    /// use etcdv3_client::api::PutOptions;
    /// # async fn demo(client: etcdv3_client::Client, lease: i64) -> etcdv3_client::Result<()> {
    /// // Move "k" to another lease without touching its value.
    /// client.put("k", "", PutOptions::new().with_lease(lease).with_ignore_value()).await?;
    /// # Ok(()) }
    /// ```
    pub fn with_ignore_value(mut self) -> Self {
        self.ignore_value = true;
        self
    }

    /// Keep the current lease (update only the value); the key must exist
    /// and no lease may be given.
    ///
    /// ```no_run
    /// use etcdv3_client::api::PutOptions;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// // Change the value of a leased key and keep it on its lease.
    /// client.put("svc/node-1", "10.0.0.2:8080", PutOptions::new().with_ignore_lease()).await?;
    /// # Ok(()) }
    /// ```
    pub fn with_ignore_lease(mut self) -> Self {
        self.ignore_lease = true;
        self
    }

    /// Deadline of this call instead of the client's request timeout
    /// (ignored inside a transaction).
    ///
    /// ```
    /// use etcdv3_client::api::PutOptions;
    /// use std::time::Duration;
    /// assert_ne!(PutOptions::new().with_timeout(Duration::from_secs(1)), PutOptions::new());
    /// ```
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The wire request.
    pub(crate) fn build(&self, key: Vec<u8>, value: Vec<u8>) -> Result<pb::PutRequest> {
        if key.is_empty() {
            return Err(empty_key());
        }
        if self.ignore_value && !value.is_empty() {
            return Err(Error::InvalidArgument(
                "a value was given to a put with ignore_value".into(),
            ));
        }
        if self.ignore_lease && self.lease != 0 {
            return Err(Error::InvalidArgument(
                "a lease was given to a put with ignore_lease".into(),
            ));
        }
        Ok(pb::PutRequest {
            key,
            value,
            lease: self.lease,
            prev_kv: self.prev_kv,
            ignore_value: self.ignore_value,
            ignore_lease: self.ignore_lease,
        })
    }
}

/// Options of [`Client::delete`]. `DeleteOptions::new()` deletes one key.
///
/// ```no_run
/// use etcdv3_client::api::DeleteOptions;
/// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
/// let deleted = client.delete("tmp/", DeleteOptions::new().with_prefix()).await?.deleted;
/// println!("deleted {deleted} keys");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteOptions {
    pub(crate) range: KeyRange,
    prev_kv: bool,
    pub(crate) timeout: Option<Duration>,
}

impl DeleteOptions {
    /// Delete one key.
    ///
    /// ```
    /// use etcdv3_client::api::DeleteOptions;
    /// assert_eq!(DeleteOptions::new(), DeleteOptions::default());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    key_range_setters!("Delete", r#"etcdv3_client::api::DeleteOptions::new()"#);

    /// Return the deleted key-values.
    ///
    /// ```no_run
    /// use etcdv3_client::api::DeleteOptions;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let gone = client.delete("k", DeleteOptions::new().with_prev_kv()).await?.prev_kvs;
    /// assert!(gone.len() <= 1);
    /// # Ok(()) }
    /// ```
    pub fn with_prev_kv(mut self) -> Self {
        self.prev_kv = true;
        self
    }

    /// Deadline of this call instead of the client's request timeout
    /// (ignored inside a transaction).
    ///
    /// ```
    /// use etcdv3_client::api::DeleteOptions;
    /// use std::time::Duration;
    /// assert_ne!(DeleteOptions::new().with_timeout(Duration::from_secs(1)), DeleteOptions::new());
    /// ```
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The wire request for `key`.
    pub(crate) fn build(&self, key: Vec<u8>) -> Result<pb::DeleteRangeRequest> {
        let (key, range_end) = self.range.resolve(key)?;
        Ok(pb::DeleteRangeRequest {
            key,
            range_end,
            prev_kv: self.prev_kv,
        })
    }
}

/// Options of [`Client::compact`].
///
/// ```
/// use etcdv3_client::api::CompactOptions;
/// assert_eq!(CompactOptions::new(), CompactOptions::default());
/// assert_ne!(CompactOptions::new().with_physical(), CompactOptions::new());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompactOptions {
    physical: bool,
    timeout: Option<Duration>,
}

impl CompactOptions {
    /// A compaction that returns once it is scheduled.
    ///
    /// ```
    /// assert_eq!(etcdv3_client::api::CompactOptions::new(), Default::default());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Return only once the compacted entries are removed from the backend
    /// database.
    ///
    /// ```no_run
    /// use etcdv3_client::api::CompactOptions;
    /// # async fn demo(client: etcdv3_client::Client, revision: i64) -> etcdv3_client::Result<()> {
    /// client.compact(revision, CompactOptions::new().with_physical()).await?;
    /// # Ok(()) }
    /// ```
    pub fn with_physical(mut self) -> Self {
        self.physical = true;
        self
    }

    /// Deadline of this call instead of the client's request timeout.
    ///
    /// ```
    /// use etcdv3_client::api::CompactOptions;
    /// use std::time::Duration;
    /// assert_ne!(CompactOptions::new().with_timeout(Duration::from_secs(30)), CompactOptions::new());
    /// ```
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

pub(crate) fn call_options(timeout: Option<Duration>) -> CallOptions {
    CallOptions {
        timeout,
        ..CallOptions::default()
    }
}

impl Client {
    /// Read a key, or a range of keys (see [`GetOptions`]).
    ///
    /// Fails with [`Error::InvalidArgument`] without a round trip when the
    /// key is empty and no prefix or from-key range is asked for.
    ///
    /// ```no_run
    /// use etcdv3_client::api::{GetOptions, SortOrder, SortTarget};
    /// async fn demo(client: &etcdv3_client::Client) -> etcdv3_client::Result<()> {
    ///     let resp = client
    ///         .get("svc/", GetOptions::new().with_prefix().with_sort(SortTarget::Mod, SortOrder::Descend))
    ///         .await?;
    ///     println!("{} keys", resp.count);
    ///     Ok(())
    /// }
    /// ```
    pub async fn get(&self, key: impl Into<Vec<u8>>, options: GetOptions) -> Result<RangeResponse> {
        Ok(self.get_checked(key, options).await?.response)
    }

    /// [`Client::get`], and whether the answer came back below the revision
    /// this client had already seen when the read started
    /// ([`Checked::stale`](crate::Checked)): a serializable read whose
    /// members all stayed behind for the fence's few retries, a read bound
    /// to one member ([`CallOptions::target`]), or one opted out of the
    /// fence ([`GetOptions::without_revision_fence`]). Linearizable reads
    /// are never marked.
    ///
    /// ```no_run
    /// use etcdv3_client::api::GetOptions;
    /// async fn demo(client: &etcdv3_client::Client) -> etcdv3_client::Result<()> {
    ///     let read = client.get_checked("k", GetOptions::new().with_serializable()).await?;
    ///     match read.stale {
    ///         None => println!("{} keys", read.response.count),
    ///         Some(s) => println!("{} is behind: revision {} < {}", s.endpoint, s.answered, s.seen),
    ///     }
    ///     Ok(())
    /// }
    /// ```
    pub async fn get_checked(
        &self,
        key: impl Into<Vec<u8>>,
        options: GetOptions,
    ) -> Result<crate::Checked<RangeResponse>> {
        let mut req = options.build(key.into())?;
        // A scope's serializable reads apply unless the request says more.
        if self.call_options().read == Some(crate::client::ReadConsistency::Serializable) {
            req.serializable = true;
        }
        let ns = self.namespace();
        if !ns.is_empty() {
            super::namespace::prefix_range(ns, &mut req);
        }
        let read = options.read_kind(req.serializable);
        let mut resp: crate::Checked<RangeResponse> = self
            .unary_read(method::KV_RANGE, &req, call_options(options.timeout), read)
            .await?;
        if !ns.is_empty() {
            super::namespace::strip_range(ns, &mut resp.response);
        }
        Ok(resp)
    }

    /// Write a key. A put is a mutation: when its outcome is unknown it is
    /// not retried and the error says so ([`Error::is_outcome_unknown`]).
    ///
    /// ```no_run
    /// use etcdv3_client::api::PutOptions;
    /// async fn demo(client: &etcdv3_client::Client) -> etcdv3_client::Result<()> {
    ///     let resp = client.put("k", "v", PutOptions::new().with_prev_kv()).await?;
    ///     if let Some(prev) = resp.prev_kv {
    ///         println!("replaced {:?}", prev.value);
    ///     }
    ///     Ok(())
    /// }
    /// ```
    pub async fn put(
        &self,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
        options: PutOptions,
    ) -> Result<PutResponse> {
        let mut req = options.build(key.into(), value.into())?;
        let ns = self.namespace();
        if ns.is_empty() {
            return self
                .unary(method::KV_PUT, &req, call_options(options.timeout))
                .await;
        }
        super::namespace::prefix_put(ns, &mut req);
        let mut resp: PutResponse = self
            .unary(method::KV_PUT, &req, call_options(options.timeout))
            .await?;
        super::namespace::strip_put(ns, &mut resp);
        Ok(resp)
    }

    /// Delete a key, or a range of keys (see [`DeleteOptions`]).
    ///
    /// ```no_run
    /// use etcdv3_client::api::DeleteOptions;
    /// async fn demo(client: &etcdv3_client::Client) -> etcdv3_client::Result<()> {
    ///     let resp = client.delete("tmp/", DeleteOptions::new().with_prefix()).await?;
    ///     println!("deleted {}", resp.deleted);
    ///     Ok(())
    /// }
    /// ```
    pub async fn delete(
        &self,
        key: impl Into<Vec<u8>>,
        options: DeleteOptions,
    ) -> Result<DeleteRangeResponse> {
        let mut req = options.build(key.into())?;
        let ns = self.namespace();
        if ns.is_empty() {
            return self
                .unary(method::KV_DELETE_RANGE, &req, call_options(options.timeout))
                .await;
        }
        super::namespace::prefix_delete(ns, &mut req);
        let mut resp: DeleteRangeResponse = self
            .unary(method::KV_DELETE_RANGE, &req, call_options(options.timeout))
            .await?;
        super::namespace::strip_delete(ns, &mut resp);
        Ok(resp)
    }

    /// Discard the history of every key before `revision`. Reads at older
    /// revisions then fail with
    /// [`EtcdErrorKind::Compacted`](etcdv3_core::wire::error::EtcdErrorKind::Compacted).
    ///
    /// ```no_run
    /// use etcdv3_client::api::{CompactOptions, GetOptions};
    /// async fn demo(client: &etcdv3_client::Client) -> etcdv3_client::Result<()> {
    ///     let rev = client.get("k", GetOptions::new()).await?.revision();
    ///     client.compact(rev, CompactOptions::new().with_physical()).await?;
    ///     Ok(())
    /// }
    /// ```
    pub async fn compact(
        &self,
        revision: i64,
        options: CompactOptions,
    ) -> Result<CompactionResponse> {
        let req = pb::CompactionRequest {
            revision,
            physical: options.physical,
        };
        self.unary(method::KV_COMPACT, &req, call_options(options.timeout))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_rules() {
        assert_eq!(prefix_range_end(b"a"), b"b");
        assert_eq!(prefix_range_end(b"abc"), b"abd");
        assert_eq!(prefix_range_end(b"a\xff\xff"), b"b");
        assert_eq!(prefix_range_end(b"a\xfe"), b"a\xff");
        assert_eq!(prefix_range_end(b"\xff"), b"\0");
        assert_eq!(prefix_range_end(b""), b"\0");
        assert_eq!(prefix_range_end(b"\0"), b"\x01");
    }

    #[test]
    fn get_single_key() {
        let req = GetOptions::new().build(b"k".to_vec()).unwrap();
        assert_eq!(req.key, b"k");
        assert!(req.range_end.is_empty());
        assert!(matches!(
            GetOptions::new().build(Vec::new()),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn get_ranges() {
        let req = GetOptions::new()
            .with_prefix()
            .build(b"a/".to_vec())
            .unwrap();
        assert_eq!(
            (req.key.as_slice(), req.range_end.as_slice()),
            (&b"a/"[..], &b"a0"[..])
        );
        let req = GetOptions::new().with_prefix().build(Vec::new()).unwrap();
        assert_eq!(
            (req.key.as_slice(), req.range_end.as_slice()),
            (&b"\0"[..], &b"\0"[..])
        );
        let req = GetOptions::new()
            .with_from_key()
            .build(b"m".to_vec())
            .unwrap();
        assert_eq!(
            (req.key.as_slice(), req.range_end.as_slice()),
            (&b"m"[..], &b"\0"[..])
        );
        let req = GetOptions::new().with_from_key().build(Vec::new()).unwrap();
        assert_eq!(
            (req.key.as_slice(), req.range_end.as_slice()),
            (&b"\0"[..], &b"\0"[..])
        );
        let req = GetOptions::new()
            .with_range_end("z")
            .build(b"a".to_vec())
            .unwrap();
        assert_eq!(
            (req.key.as_slice(), req.range_end.as_slice()),
            (&b"a"[..], &b"z"[..])
        );
        assert!(GetOptions::new()
            .with_range_end("z")
            .build(Vec::new())
            .is_err());
    }

    #[test]
    fn get_fields() {
        let req = GetOptions::new()
            .with_limit(5)
            .with_revision(7)
            .with_sort(SortTarget::Mod, SortOrder::Descend)
            .with_serializable()
            .with_keys_only()
            .with_count_only()
            .with_min_mod_revision(1)
            .with_max_mod_revision(2)
            .with_min_create_revision(3)
            .with_max_create_revision(4)
            .build(b"k".to_vec())
            .unwrap();
        assert_eq!(req.limit, 5);
        assert_eq!(req.revision, 7);
        assert_eq!(req.sort_target(), range_request::SortTarget::Mod);
        assert_eq!(req.sort_order(), range_request::SortOrder::Descend);
        assert!(req.serializable && req.keys_only && req.count_only);
        assert_eq!(
            (
                req.min_mod_revision,
                req.max_mod_revision,
                req.min_create_revision,
                req.max_create_revision
            ),
            (1, 2, 3, 4)
        );
        let d = GetOptions::new().build(b"k".to_vec()).unwrap();
        assert_eq!(d.sort_order(), range_request::SortOrder::None);
        assert!(!d.serializable);
    }

    #[test]
    fn put_fields_and_validation() {
        let req = PutOptions::new()
            .with_lease(9)
            .with_prev_kv()
            .build(b"k".to_vec(), b"v".to_vec())
            .unwrap();
        assert_eq!(
            (req.lease, req.prev_kv, req.value.as_slice()),
            (9, true, &b"v"[..])
        );
        assert!(matches!(
            PutOptions::new().build(Vec::new(), b"v".to_vec()),
            Err(Error::InvalidArgument(_))
        ));
        assert!(PutOptions::new()
            .with_ignore_value()
            .build(b"k".to_vec(), b"v".to_vec())
            .is_err());
        let req = PutOptions::new()
            .with_ignore_value()
            .build(b"k".to_vec(), Vec::new())
            .unwrap();
        assert!(req.ignore_value);
        assert!(PutOptions::new()
            .with_ignore_lease()
            .with_lease(3)
            .build(b"k".to_vec(), b"v".to_vec())
            .is_err());
        let req = PutOptions::new()
            .with_ignore_lease()
            .build(b"k".to_vec(), b"v".to_vec())
            .unwrap();
        assert!(req.ignore_lease);
    }

    #[test]
    fn delete_fields() {
        let req = DeleteOptions::new()
            .with_prefix()
            .with_prev_kv()
            .build(b"p".to_vec())
            .unwrap();
        assert_eq!(
            (req.key.as_slice(), req.range_end.as_slice(), req.prev_kv),
            (&b"p"[..], &b"q"[..], true)
        );
        assert!(DeleteOptions::new().build(Vec::new()).is_err());
        let req = DeleteOptions::new()
            .with_from_key()
            .build(Vec::new())
            .unwrap();
        assert_eq!(
            (req.key.as_slice(), req.range_end.as_slice()),
            (&b"\0"[..], &b"\0"[..])
        );
    }
}
