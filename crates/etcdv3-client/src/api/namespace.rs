//! Namespaces: a view of the keyspace under a prefix.
//!
//! Every key and range end sent through a [`KvNamespace`] is prefixed, and
//! the prefix is removed from every key it returns (including previous
//! key-values and the responses inside transactions), with the semantics of
//! etcd's Go `namespace` package:
//!
//! * a key `k` becomes `prefix + k`;
//! * an empty range end stays empty (a single key);
//! * a range end of `"\0"` ("to the end of the keyspace") becomes the end of
//!   the prefix's own range, so from-key and all-keys reads stay inside the
//!   namespace; any other range end `e` becomes `prefix + e`.
//!
//! As in Go, an empty key with a prefix or from-key range selects the keys
//! strictly below the namespace (`prefix + "\0"` on), not a key equal to the
//! prefix itself.
//!
//! ```no_run
//! use etcdv3_client::api::{GetOptions, PutOptions};
//!
//! async fn demo(client: &etcdv3_client::Client) -> etcdv3_client::Result<()> {
//!     let tenant = client.namespaced("tenants/acme/");
//!     tenant.put("config", "{}", PutOptions::new()).await?; // writes tenants/acme/config
//!     let all = tenant.get("", GetOptions::new().with_prefix()).await?;
//!     assert!(all.kvs.iter().all(|kv| !kv.key.starts_with(b"tenants/")));
//!     Ok(())
//! }
//! ```

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;

use etcdv3_proto::etcdserverpb::{self as pb, request_op, response_op};
use etcdv3_proto::method;
use etcdv3_proto::mvccpb::KeyValue;
use etcdv3_proto::v3electionpb::{LeaderKey, LeaderResponse};

use super::kv::{
    call_options, prefix_range_end, DeleteOptions, DeleteRangeResponse, GetOptions, PutOptions,
    PutResponse, RangeResponse,
};
use super::lease::{LeaseTimeToLiveOptions, LeaseTimeToLiveResponse};
use super::txn::{Txn, TxnResponse};
use super::watch::{WatchEvent, WatchOptions, Watcher, WatcherId};
use super::watch_group::{GroupItem, WatchGroup};
use crate::client::Client;
use crate::error::Result;

/// A view of the KV keyspace under a prefix; see the [module](self) docs.
/// Cheap to clone; it holds a [`Client`] handle.
///
/// ```no_run
/// use etcdv3_client::api::{GetOptions, KvNamespace, PutOptions};
/// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
/// let tenant: KvNamespace = client.namespaced("tenants/acme/");
/// tenant.put("config", "v1", PutOptions::new()).await?;
/// // Stored as "tenants/acme/config", read back as "config".
/// let resp = tenant.get("config", GetOptions::new()).await?;
/// assert_eq!(resp.kvs[0].key, b"config");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct KvNamespace {
    client: Client,
    prefix: Vec<u8>,
}

impl Client {
    /// A view of the keyspace under `prefix`: keys are prefixed on the way
    /// out and un-prefixed on the way back. An empty prefix is the whole
    /// keyspace.
    ///
    /// ```no_run
    /// # fn demo(client: etcdv3_client::Client) {
    /// let tenant = client.namespaced("tenants/acme/");
    /// assert_eq!(tenant.prefix(), b"tenants/acme/");
    /// # }
    /// ```
    pub fn namespaced(&self, prefix: impl Into<Vec<u8>>) -> KvNamespace {
        // Inside this handle's own namespace, if it has one.
        let mut full = self.namespace().to_vec();
        full.extend(prefix.into());
        KvNamespace {
            client: self.without_namespace(),
            prefix: full,
        }
    }
}

impl KvNamespace {
    /// The namespace's prefix.
    ///
    /// ```no_run
    /// # fn demo(client: etcdv3_client::Client) {
    /// assert_eq!(client.namespaced("app/").prefix(), b"app/");
    /// # }
    /// ```
    pub fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    /// The client underneath (not namespaced).
    ///
    /// ```no_run
    /// use etcdv3_client::api::LeaseGrantOptions;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let tenant = client.namespaced("tenants/acme/");
    /// // Lease calls other than time-to-live involve no keys: use the plain client.
    /// let lease = tenant.client().lease_grant(30, LeaseGrantOptions::new()).await?;
    /// # Ok(()) }
    /// ```
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// [`Client::watch`] inside the namespace: the key (or range) is
    /// prefixed, and the keys of the events (and their previous key-values)
    /// come back relative to the namespace.
    ///
    /// ```no_run
    /// use etcdv3_client::api::{WatchEvent, WatchOptions};
    /// use futures_util::StreamExt;
    /// async fn demo(client: &etcdv3_client::Client) -> etcdv3_client::Result<()> {
    ///     let tenant = client.namespaced("tenants/acme/");
    ///     let mut w = tenant.watch("", WatchOptions::new().with_prefix()).await?;
    ///     if let Some(WatchEvent::Events { events, .. }) = w.next().await.transpose()? {
    ///         println!("{:?}", events[0].kv); // key without "tenants/acme/"
    ///     }
    ///     Ok(())
    /// }
    /// ```
    pub async fn watch(
        &self,
        key: impl Into<Vec<u8>>,
        options: WatchOptions,
    ) -> Result<NamespaceWatcher> {
        let mut req = options.to_request(key.into())?;
        (req.key, req.range_end) = prefix_interval(&self.prefix, &req.key, &req.range_end);
        let inner = self.client.watch_request(req, options.timeout).await?;
        Ok(NamespaceWatcher {
            inner,
            prefix: self.prefix.clone(),
        })
    }

    /// [`Client::watch_group`] inside the namespace: every watcher added is
    /// prefixed, and the keys of the events come back relative to the
    /// namespace.
    ///
    /// ```no_run
    /// use etcdv3_client::api::{WatchEvent, WatchOptions};
    /// use futures_util::StreamExt;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let tenant = client.namespaced("tenants/acme/");
    /// let mut group = tenant.watch_group();
    /// group.add("jobs/", WatchOptions::new().with_prefix())?; // tenants/acme/jobs/...
    /// group.request_progress()?;
    /// while let Some((_, ev)) = group.next().await {
    ///     if let WatchEvent::Events { events, .. } = ev? {
    ///         println!("{:?}", events[0].kv); // key without "tenants/acme/"
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn watch_group(&self) -> NamespaceWatchGroup {
        NamespaceWatchGroup {
            inner: self.client.watch_group(),
            prefix: self.prefix.clone(),
        }
    }

    /// [`Client::watch_group_on_own_stream`] inside the namespace: a
    /// [`KvNamespace::watch_group`] whose watchers have a gRPC stream of
    /// their own.
    ///
    /// ```no_run
    /// use etcdv3_client::api::WatchOptions;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let tenant = client.namespaced("tenants/acme/");
    /// let group = tenant.watch_group_on_own_stream();
    /// group.add("jobs/", WatchOptions::new().with_prefix())?; // tenants/acme/jobs/...
    /// # Ok(()) }
    /// ```
    pub fn watch_group_on_own_stream(&self) -> NamespaceWatchGroup {
        NamespaceWatchGroup {
            inner: self.client.watch_group_on_own_stream(),
            prefix: self.prefix.clone(),
        }
    }

    /// [`Client::lease_time_to_live`] inside the namespace (Go's namespaced
    /// `Lease`): with `keys`, the lease's keys inside the namespace, relative
    /// to it; keys outside it are left out. Other lease calls do not involve
    /// keys: use them on [`KvNamespace::client`].
    ///
    /// ```no_run
    /// # async fn demo(client: etcdv3_client::Client, lease: i64) -> etcdv3_client::Result<()> {
    /// let tenant = client.namespaced("tenants/acme/");
    /// use etcdv3_client::api::LeaseTimeToLiveOptions;
    /// let ttl = tenant.lease_time_to_live(lease, LeaseTimeToLiveOptions::new().with_keys()).await?;
    /// // Only the lease's keys under "tenants/acme/", relative to it.
    /// println!("{:?}", ttl.keys);
    /// # Ok(()) }
    /// ```
    pub async fn lease_time_to_live(
        &self,
        id: i64,
        options: impl Into<LeaseTimeToLiveOptions>,
    ) -> Result<LeaseTimeToLiveResponse> {
        let mut resp = self.client.lease_time_to_live(id, options.into()).await?;
        resp.keys.retain(|k| k.starts_with(&self.prefix));
        for k in &mut resp.keys {
            strip_key(&self.prefix, k);
        }
        Ok(resp)
    }

    /// [`Client::get`] inside the namespace; returned keys are relative to it.
    ///
    /// ```no_run
    /// use etcdv3_client::api::GetOptions;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let tenant = client.namespaced("tenants/acme/");
    /// let all = tenant.get("", GetOptions::new().with_prefix()).await?;
    /// println!("{} keys in the namespace", all.count);
    /// # Ok(()) }
    /// ```
    pub async fn get(&self, key: impl Into<Vec<u8>>, options: GetOptions) -> Result<RangeResponse> {
        let mut req = options.build(key.into())?;
        if self.client.call_options().read == Some(crate::client::ReadConsistency::Serializable) {
            req.serializable = true;
        }
        prefix_range(&self.prefix, &mut req);
        let read = options.read_kind(req.serializable);
        let mut resp: RangeResponse = self
            .client
            .unary_read(method::KV_RANGE, &req, call_options(options.timeout), read)
            .await?
            .response;
        strip_range(&self.prefix, &mut resp);
        Ok(resp)
    }

    /// [`Client::put`] inside the namespace.
    ///
    /// ```no_run
    /// use etcdv3_client::api::PutOptions;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// client.namespaced("tenants/acme/").put("quota", "10", PutOptions::new()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn put(
        &self,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
        options: PutOptions,
    ) -> Result<PutResponse> {
        let mut req = options.build(key.into(), value.into())?;
        prefix_put(&self.prefix, &mut req);
        let mut resp: PutResponse = self
            .client
            .unary(method::KV_PUT, &req, call_options(options.timeout))
            .await?;
        strip_put(&self.prefix, &mut resp);
        Ok(resp)
    }

    /// [`Client::delete`] inside the namespace.
    ///
    /// ```no_run
    /// use etcdv3_client::api::DeleteOptions;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// // Deletes every key under "tenants/acme/", and nothing else.
    /// client.namespaced("tenants/acme/").delete("", DeleteOptions::new().with_prefix()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn delete(
        &self,
        key: impl Into<Vec<u8>>,
        options: DeleteOptions,
    ) -> Result<DeleteRangeResponse> {
        let mut req = options.build(key.into())?;
        prefix_delete(&self.prefix, &mut req);
        let mut resp: DeleteRangeResponse = self
            .client
            .unary(method::KV_DELETE_RANGE, &req, call_options(options.timeout))
            .await?;
        strip_delete(&self.prefix, &mut resp);
        Ok(resp)
    }

    /// [`Client::txn`] inside the namespace: compares and operations
    /// (nested transactions included) are prefixed, responses un-prefixed.
    ///
    /// ```no_run
    /// use etcdv3_client::api::{Compare, CompareOp, PutOptions, Txn, TxnOp};
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let tenant = client.namespaced("tenants/acme/");
    /// let txn = Txn::new()
    ///     .when([Compare::version("owner", CompareOp::Equal, 0)])
    ///     .and_then([TxnOp::put("owner", "me", PutOptions::new())]);
    /// let claimed = tenant.txn(txn).await?.succeeded;
    /// # Ok(()) }
    /// ```
    pub async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        let mut req = txn.build()?;
        prefix_txn(&self.prefix, &mut req);
        let mut resp: TxnResponse = self
            .client
            .unary(method::KV_TXN, &req, call_options(txn.timeout()))
            .await?;
        strip_txn(&self.prefix, &mut resp);
        Ok(resp)
    }
}

/// A [`Watcher`] inside a namespace; from [`KvNamespace::watch`]. Keys of
/// its events are relative to the namespace.
///
/// ```no_run
/// use etcdv3_client::api::{NamespaceWatcher, WatchOptions};
/// use futures_util::StreamExt;
/// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
/// let mut w: NamespaceWatcher = client.namespaced("tenants/acme/").watch("", WatchOptions::new().with_prefix()).await?;
/// while let Some(event) = w.next().await {
///     println!("{:?}", event?);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct NamespaceWatcher {
    inner: Watcher,
    prefix: Vec<u8>,
}

impl NamespaceWatcher {
    /// The client-side id of the watcher.
    ///
    /// ```no_run
    /// use etcdv3_client::api::WatchOptions;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let w = client.namespaced("app/").watch("k", WatchOptions::new()).await?;
    /// println!("watcher {:?}", w.id());
    /// # Ok(()) }
    /// ```
    pub fn id(&self) -> WatcherId {
        self.inner.id()
    }

    /// The store revision when the server created the watcher.
    ///
    /// ```no_run
    /// use etcdv3_client::api::WatchOptions;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let w = client.namespaced("app/").watch("k", WatchOptions::new()).await?;
    /// assert!(w.created_revision() > 0);
    /// # Ok(()) }
    /// ```
    pub fn created_revision(&self) -> i64 {
        self.inner.created_revision()
    }

    /// Ask the server for a progress notification
    /// ([`Watcher::request_progress`]).
    ///
    /// ```no_run
    /// use etcdv3_client::api::{WatchEvent, WatchOptions};
    /// use futures_util::StreamExt;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let mut w = client.namespaced("app/").watch("k", WatchOptions::new()).await?;
    /// w.request_progress()?;
    /// if let Some(WatchEvent::Progress { revision }) = w.next().await.transpose()? {
    ///     println!("caught up to {revision}");
    /// }
    /// # Ok(()) }
    /// ```
    pub fn request_progress(&self) -> Result<()> {
        self.inner.request_progress()
    }

    /// Cancel the watcher and wait until the server confirmed.
    ///
    /// ```no_run
    /// use etcdv3_client::api::WatchOptions;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let w = client.namespaced("app/").watch("k", WatchOptions::new()).await?;
    /// w.cancel().await?;
    /// # Ok(()) }
    /// ```
    pub async fn cancel(self) -> Result<()> {
        self.inner.cancel().await
    }
}

impl Stream for NamespaceWatcher {
    type Item = Result<WatchEvent>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        Pin::new(&mut this.inner)
            .poll_next(cx)
            .map(|item| item.map(|r| r.map(|ev| strip_event(&this.prefix, ev))))
    }
}

/// A [`WatchGroup`] inside a namespace; from [`KvNamespace::watch_group`].
/// Watchers added are prefixed; keys of its events are relative to the
/// namespace.
///
/// ```no_run
/// use etcdv3_client::api::{NamespaceWatchGroup, WatchOptions};
/// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
/// let group: NamespaceWatchGroup = client.namespaced("app/").watch_group();
/// let id = group.add("k", WatchOptions::new())?;
/// assert_eq!(group.live(), 1);
/// group.cancel(id)?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct NamespaceWatchGroup {
    inner: WatchGroup,
    prefix: Vec<u8>,
}

impl NamespaceWatchGroup {
    /// Add a watcher on `key` (or a range) inside the namespace
    /// ([`WatchGroup::add`]).
    ///
    /// ```no_run
    /// use etcdv3_client::api::WatchOptions;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let group = client.namespaced("app/").watch_group();
    /// group.add("", WatchOptions::new().with_prefix())?; // every key under app/
    /// # Ok(()) }
    /// ```
    pub fn add(&self, key: impl Into<Vec<u8>>, options: WatchOptions) -> Result<WatcherId> {
        let mut req = options.to_request(key.into())?;
        (req.key, req.range_end) = prefix_interval(&self.prefix, &req.key, &req.range_end);
        self.inner.add_request(req)
    }

    /// Cancel one watcher ([`WatchGroup::cancel`]).
    ///
    /// ```no_run
    /// use etcdv3_client::api::WatchOptions;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let group = client.namespaced("app/").watch_group();
    /// let id = group.add("k", WatchOptions::new())?;
    /// group.cancel(id)?;
    /// # Ok(()) }
    /// ```
    pub fn cancel(&self, id: WatcherId) -> Result<()> {
        self.inner.cancel(id)
    }

    /// Ask for a progress notification ([`WatchGroup::request_progress`]).
    ///
    /// ```no_run
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// client.namespaced("app/").watch_group().request_progress()?;
    /// # Ok(()) }
    /// ```
    pub fn request_progress(&self) -> Result<()> {
        self.inner.request_progress()
    }

    /// Watchers not ended yet ([`WatchGroup::live`]).
    ///
    /// ```no_run
    /// # fn demo(client: etcdv3_client::Client) {
    /// assert_eq!(client.namespaced("app/").watch_group().live(), 0);
    /// # }
    /// ```
    pub fn live(&self) -> usize {
        self.inner.live()
    }

    /// Bytes of items waiting in the group ([`WatchGroup::buffered_bytes`]).
    ///
    /// ```no_run
    /// # fn demo(client: etcdv3_client::Client) {
    /// assert_eq!(client.namespaced("app/").watch_group().buffered_bytes(), 0);
    /// # }
    /// ```
    pub fn buffered_bytes(&self) -> usize {
        self.inner.buffered_bytes()
    }
}

impl Stream for NamespaceWatchGroup {
    type Item = GroupItem;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<GroupItem>> {
        let this = self.get_mut();
        Pin::new(&mut this.inner)
            .poll_next(cx)
            .map(|item| item.map(|(id, r)| (id, r.map(|ev| strip_event(&this.prefix, ev)))))
    }
}

/// A watch event with its keys relative to the namespace.
pub(crate) fn strip_event(prefix: &[u8], mut ev: WatchEvent) -> WatchEvent {
    if let WatchEvent::Events { events, .. } = &mut ev {
        for e in events {
            if let Some(kv) = &mut e.kv {
                strip_kv(prefix, kv);
            }
            if let Some(kv) = &mut e.prev_kv {
                strip_kv(prefix, kv);
            }
        }
    }
    ev
}

/// `(prefix + key, translated end)`.
pub(crate) fn prefix_interval(prefix: &[u8], key: &[u8], end: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut k = Vec::with_capacity(prefix.len() + key.len());
    k.extend_from_slice(prefix);
    k.extend_from_slice(key);
    let e = if end == [0] {
        prefix_range_end(prefix)
    } else if end.is_empty() {
        Vec::new()
    } else {
        let mut e = Vec::with_capacity(prefix.len() + end.len());
        e.extend_from_slice(prefix);
        e.extend_from_slice(end);
        e
    };
    (k, e)
}

fn prefix_key(prefix: &[u8], key: &mut Vec<u8>) {
    let mut k = Vec::with_capacity(prefix.len() + key.len());
    k.extend_from_slice(prefix);
    k.append(key);
    *key = k;
}

pub(crate) fn prefix_range(prefix: &[u8], req: &mut pb::RangeRequest) {
    (req.key, req.range_end) = prefix_interval(prefix, &req.key, &req.range_end);
}

pub(crate) fn prefix_put(prefix: &[u8], req: &mut pb::PutRequest) {
    prefix_key(prefix, &mut req.key);
}

pub(crate) fn prefix_delete(prefix: &[u8], req: &mut pb::DeleteRangeRequest) {
    (req.key, req.range_end) = prefix_interval(prefix, &req.key, &req.range_end);
}

fn prefix_ops(prefix: &[u8], ops: &mut [pb::RequestOp]) {
    for op in ops {
        match &mut op.request {
            Some(request_op::Request::RequestRange(r)) => prefix_range(prefix, r),
            Some(request_op::Request::RequestPut(r)) => prefix_put(prefix, r),
            Some(request_op::Request::RequestDeleteRange(r)) => prefix_delete(prefix, r),
            Some(request_op::Request::RequestTxn(t)) => prefix_txn(prefix, t),
            None => {}
        }
    }
}

pub(crate) fn prefix_txn(prefix: &[u8], req: &mut pb::TxnRequest) {
    for c in &mut req.compare {
        (c.key, c.range_end) = prefix_interval(prefix, &c.key, &c.range_end);
    }
    prefix_ops(prefix, &mut req.success);
    prefix_ops(prefix, &mut req.failure);
}

/// `prefix + name`: a lock or election name inside the namespace (the
/// server's Lock and Election services keep their keys under the name).
pub(crate) fn prefixed(prefix: &[u8], mut name: Vec<u8>) -> Vec<u8> {
    if !prefix.is_empty() {
        prefix_key(prefix, &mut name);
    }
    name
}

/// A leader key the namespace handed out, as the server knows it.
pub(crate) fn prefix_leader(prefix: &[u8], leader: &mut LeaderKey) {
    if !prefix.is_empty() {
        prefix_key(prefix, &mut leader.name);
        prefix_key(prefix, &mut leader.key);
    }
}

/// A leader key from the server, relative to the namespace.
pub(crate) fn strip_leader(prefix: &[u8], leader: &mut LeaderKey) {
    strip_key(prefix, &mut leader.name);
    strip_key(prefix, &mut leader.key);
}

/// An election's leader (`Leader`, `Observe` answers), relative to the
/// namespace.
pub(crate) fn strip_leader_kv(prefix: &[u8], resp: &mut LeaderResponse) {
    if let Some(kv) = &mut resp.kv {
        strip_kv(prefix, kv);
    }
}

pub(crate) fn strip_key(prefix: &[u8], key: &mut Vec<u8>) {
    if key.starts_with(prefix) {
        key.drain(..prefix.len());
    }
}

fn strip_kv(prefix: &[u8], kv: &mut KeyValue) {
    strip_key(prefix, &mut kv.key);
}

pub(crate) fn strip_range(prefix: &[u8], resp: &mut RangeResponse) {
    for kv in &mut resp.kvs {
        strip_kv(prefix, kv);
    }
}

pub(crate) fn strip_put(prefix: &[u8], resp: &mut PutResponse) {
    if let Some(kv) = &mut resp.prev_kv {
        strip_kv(prefix, kv);
    }
}

pub(crate) fn strip_delete(prefix: &[u8], resp: &mut DeleteRangeResponse) {
    for kv in &mut resp.prev_kvs {
        strip_kv(prefix, kv);
    }
}

pub(crate) fn strip_txn(prefix: &[u8], resp: &mut TxnResponse) {
    for op in &mut resp.responses {
        match &mut op.response {
            Some(response_op::Response::ResponseRange(r)) => strip_range(prefix, r),
            Some(response_op::Response::ResponsePut(r)) => strip_put(prefix, r),
            Some(response_op::Response::ResponseDeleteRange(r)) => strip_delete(prefix, r),
            Some(response_op::Response::ResponseTxn(t)) => strip_txn(prefix, t),
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::txn::{Compare, CompareOp, TxnOp};

    fn kv(key: &[u8]) -> KeyValue {
        KeyValue {
            key: key.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn interval_rules() {
        let p = b"ns/";
        assert_eq!(
            prefix_interval(p, b"k", b""),
            (b"ns/k".to_vec(), Vec::new())
        );
        assert_eq!(
            prefix_interval(p, b"a", b"c"),
            (b"ns/a".to_vec(), b"ns/c".to_vec())
        );
        assert_eq!(
            prefix_interval(p, b"a", b"\0"),
            (b"ns/a".to_vec(), b"ns0".to_vec())
        );
        // A prefix of only 0xff bytes has no end of its own: the keyspace's.
        assert_eq!(
            prefix_interval(b"\xff", b"a", b"\0"),
            (b"\xffa".to_vec(), b"\0".to_vec())
        );
        // An empty prefix changes nothing.
        assert_eq!(
            prefix_interval(b"", b"a", b"\0"),
            (b"a".to_vec(), b"\0".to_vec())
        );
        assert_eq!(
            prefix_interval(b"", b"a", b"b"),
            (b"a".to_vec(), b"b".to_vec())
        );
    }

    #[test]
    fn get_requests_are_prefixed() {
        let p = b"ns/";
        let mut r = GetOptions::new().build(b"k".to_vec()).unwrap();
        prefix_range(p, &mut r);
        assert_eq!(
            (r.key.as_slice(), r.range_end.as_slice()),
            (&b"ns/k"[..], &b""[..])
        );

        let mut r = GetOptions::new()
            .with_prefix()
            .build(b"a".to_vec())
            .unwrap();
        prefix_range(p, &mut r);
        assert_eq!(
            (r.key.as_slice(), r.range_end.as_slice()),
            (&b"ns/a"[..], &b"ns/b"[..])
        );

        // All keys of the namespace.
        let mut r = GetOptions::new().with_prefix().build(Vec::new()).unwrap();
        prefix_range(p, &mut r);
        assert_eq!(
            (r.key.as_slice(), r.range_end.as_slice()),
            (&b"ns/\0"[..], &b"ns0"[..])
        );

        let mut r = GetOptions::new()
            .with_from_key()
            .build(b"m".to_vec())
            .unwrap();
        prefix_range(p, &mut r);
        assert_eq!(
            (r.key.as_slice(), r.range_end.as_slice()),
            (&b"ns/m"[..], &b"ns0"[..])
        );
    }

    #[test]
    fn delete_and_put_are_prefixed() {
        let mut d = DeleteOptions::new()
            .with_range_end("z")
            .build(b"a".to_vec())
            .unwrap();
        prefix_delete(b"p", &mut d);
        assert_eq!(
            (d.key.as_slice(), d.range_end.as_slice()),
            (&b"pa"[..], &b"pz"[..])
        );
        let mut p = PutOptions::new()
            .build(b"k".to_vec(), b"v".to_vec())
            .unwrap();
        prefix_put(b"p/", &mut p);
        assert_eq!(
            (p.key.as_slice(), p.value.as_slice()),
            (&b"p/k"[..], &b"v"[..])
        );
    }

    #[test]
    fn txn_requests_are_prefixed_recursively() {
        let nested = Txn::new()
            .when([Compare::version("n", CompareOp::Equal, 0).with_prefix()])
            .or_else([TxnOp::delete("d", DeleteOptions::new())]);
        let mut req = Txn::new()
            .when([
                Compare::value("k", CompareOp::Equal, "v"),
                Compare::version("r", CompareOp::Equal, 0).with_from_key(),
            ])
            .and_then([TxnOp::put("a", "1", PutOptions::new()), TxnOp::txn(nested)])
            .or_else([TxnOp::get("g", GetOptions::new())])
            .build()
            .unwrap();
        prefix_txn(b"x/", &mut req);
        assert_eq!(req.compare[0].key, b"x/k");
        assert!(req.compare[0].range_end.is_empty());
        assert_eq!(req.compare[1].key, b"x/r");
        assert_eq!(req.compare[1].range_end, b"x0");
        match &req.success[0].request {
            Some(request_op::Request::RequestPut(p)) => assert_eq!(p.key, b"x/a"),
            other => panic!("unexpected {other:?}"),
        }
        match &req.success[1].request {
            Some(request_op::Request::RequestTxn(t)) => {
                assert_eq!(t.compare[0].key, b"x/n");
                assert_eq!(t.compare[0].range_end, b"x/o");
                match &t.failure[0].request {
                    Some(request_op::Request::RequestDeleteRange(d)) => assert_eq!(d.key, b"x/d"),
                    other => panic!("unexpected {other:?}"),
                }
            }
            other => panic!("unexpected {other:?}"),
        }
        match &req.failure[0].request {
            Some(request_op::Request::RequestRange(r)) => assert_eq!(r.key, b"x/g"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn responses_are_stripped() {
        let p = b"ns/";
        let mut r = RangeResponse {
            kvs: vec![kv(b"ns/a"), kv(b"ns/b/c")],
            ..Default::default()
        };
        strip_range(p, &mut r);
        assert_eq!(r.kvs[0].key, b"a");
        assert_eq!(r.kvs[1].key, b"b/c");

        let mut put = PutResponse {
            prev_kv: Some(kv(b"ns/k")),
            ..Default::default()
        };
        strip_put(p, &mut put);
        assert_eq!(put.prev_kv.unwrap().key, b"k");

        let mut del = DeleteRangeResponse {
            prev_kvs: vec![kv(b"ns/x")],
            ..Default::default()
        };
        strip_delete(p, &mut del);
        assert_eq!(del.prev_kvs[0].key, b"x");

        // A key outside the namespace (cannot come from etcd) is left alone.
        let mut r = RangeResponse {
            kvs: vec![kv(b"other")],
            ..Default::default()
        };
        strip_range(p, &mut r);
        assert_eq!(r.kvs[0].key, b"other");
    }

    #[test]
    fn txn_responses_are_stripped_recursively() {
        let p = b"t/";
        let inner = TxnResponse {
            responses: vec![pb::ResponseOp {
                response: Some(response_op::Response::ResponseDeleteRange(
                    DeleteRangeResponse {
                        prev_kvs: vec![kv(b"t/deep")],
                        ..Default::default()
                    },
                )),
            }],
            ..Default::default()
        };
        let mut resp = TxnResponse {
            succeeded: true,
            responses: vec![
                pb::ResponseOp {
                    response: Some(response_op::Response::ResponseRange(RangeResponse {
                        kvs: vec![kv(b"t/r")],
                        ..Default::default()
                    })),
                },
                pb::ResponseOp {
                    response: Some(response_op::Response::ResponsePut(PutResponse {
                        prev_kv: Some(kv(b"t/p")),
                        ..Default::default()
                    })),
                },
                pb::ResponseOp {
                    response: Some(response_op::Response::ResponseTxn(inner)),
                },
            ],
            ..Default::default()
        };
        strip_txn(p, &mut resp);
        let keys: Vec<Vec<u8>> = resp
            .responses
            .iter()
            .flat_map(|op| match &op.response {
                Some(response_op::Response::ResponseRange(r)) => {
                    r.kvs.iter().map(|k| k.key.clone()).collect::<Vec<_>>()
                }
                Some(response_op::Response::ResponsePut(r)) => {
                    r.prev_kv.iter().map(|k| k.key.clone()).collect()
                }
                Some(response_op::Response::ResponseTxn(t)) => match &t.responses[0].response {
                    Some(response_op::Response::ResponseDeleteRange(d)) => {
                        d.prev_kvs.iter().map(|k| k.key.clone()).collect()
                    }
                    _ => Vec::new(),
                },
                _ => Vec::new(),
            })
            .collect();
        assert_eq!(keys, vec![b"r".to_vec(), b"p".to_vec(), b"deep".to_vec()]);
    }
}
