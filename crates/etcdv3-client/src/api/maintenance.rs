//! The Maintenance service: status, alarms, defragmentation, hashes,
//! snapshots and leadership transfer.
//!
//! etcd answers most of these per member: the member that answers is the one
//! the client's balancer picks for the call, i.e. "some member" of the
//! endpoint set. To address one member in particular, use a client whose
//! endpoint set is that member alone.
//!
//! ```no_run
//! async fn demo(client: &etcdv3_client::Client) -> etcdv3_client::Result<()> {
//!     let st = client.status().await?;
//!     println!("member {:x}: version {}, leader {:x}, db {} bytes",
//!         st.header.map_or(0, |h| h.member_id), st.version, st.leader, st.db_size);
//!     Ok(())
//! }
//! ```

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use etcdv3_proto::etcdserverpb::{self as pb, alarm_request::AlarmAction};
use etcdv3_proto::method;

use crate::client::{CallOptions, Client, KeepOpen, ServerStream};
use crate::error::Result;

pub use etcdv3_proto::etcdserverpb::{
    AlarmMember, AlarmResponse, AlarmType, DefragmentResponse, HashKvResponse, HashResponse,
    MoveLeaderResponse, StatusResponse,
};

/// The chunks of a database snapshot, from [`Client::snapshot`]: a
/// `Stream` of `Result<Bytes>`. Concatenated in order, the chunks are the
/// member's backend database file (with a trailing SHA-256 checksum, as
/// written by etcd). The stream ends after the last chunk; an error ends it
/// early, and the partial snapshot must then be discarded. Dropping it
/// cancels the transfer.
///
/// ```no_run
/// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
/// let mut snap: etcdv3_client::api::Snapshot = client.snapshot().await?;
/// let mut db = Vec::new();
/// while let Some(chunk) = snap.next_chunk().await {
///     db.extend_from_slice(&chunk?);
/// }
/// std::fs::write("backup.db", db).ok();
/// # Ok(()) }
/// ```
pub struct Snapshot {
    /// Keeps the client open while this handle lives.
    _keep: KeepOpen,
    inner: ServerStream<pb::SnapshotResponse>,
    remaining: Option<u64>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("remaining", &self.remaining)
            .finish_non_exhaustive()
    }
}

impl Snapshot {
    /// The number of bytes the server said were left after the last chunk
    /// received (`None` before the first one).
    ///
    /// ```no_run
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let mut snap = client.snapshot().await?;
    /// assert_eq!(snap.remaining_bytes(), None);
    /// if let Some(first) = snap.next_chunk().await {
    ///     println!("{} bytes, {:?} to go", first?.len(), snap.remaining_bytes());
    /// }
    /// # Ok(()) }
    /// ```
    pub fn remaining_bytes(&self) -> Option<u64> {
        self.remaining
    }

    /// The next chunk, or `None` at the end: the same as the `Stream`
    /// implementation, for callers that do not use `futures`.
    ///
    /// ```no_run
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let mut snap = client.snapshot().await?;
    /// let mut size = 0;
    /// while let Some(chunk) = snap.next_chunk().await {
    ///     size += chunk?.len();
    /// }
    /// println!("snapshot of {size} bytes");
    /// # Ok(()) }
    /// ```
    pub async fn next_chunk(&mut self) -> Option<Result<Bytes>> {
        std::future::poll_fn(|cx| futures_core::Stream::poll_next(Pin::new(&mut *self), cx)).await
    }
}

impl futures_core::Stream for Snapshot {
    type Item = Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            match Pin::new(&mut this.inner).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(resp))) => {
                    this.remaining = Some(resp.remaining_bytes);
                    if resp.blob.is_empty() {
                        continue;
                    }
                    return Poll::Ready(Some(Ok(Bytes::from(resp.blob))));
                }
            }
        }
    }
}

impl Client {
    /// The status of some member (the one the balancer picks): version,
    /// database size, leader, raft index and term, errors.
    ///
    /// ```no_run
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let st = client.status().await?;
    /// println!("etcd {} db {} bytes, leader {:x}, raft index {}", st.version, st.db_size, st.leader, st.raft_index);
    /// # Ok(()) }
    /// ```
    pub async fn status(&self) -> Result<StatusResponse> {
        self.status_with(CallOptions::default()).await
    }

    /// [`Client::status`] with per-call options (e.g. the member to ask,
    /// a timeout).
    ///
    /// ```no_run
    /// use etcdv3_client::{CallOptions, Target};
    /// use std::time::Duration;
    /// # async fn demo(client: etcdv3_client::Client, member: u64) -> etcdv3_client::Result<()> {
    /// let opts = CallOptions::new()
    ///     .with_target(Target::Member(member))
    ///     .with_timeout(Duration::from_secs(2));
    /// let st = client.status_with(opts).await?;
    /// println!("member {member:x}: raft index {}", st.raft_index);
    /// # Ok(()) }
    /// ```
    pub async fn status_with(&self, options: CallOptions) -> Result<StatusResponse> {
        self.unary(method::MAINTENANCE_STATUS, &pb::StatusRequest {}, options)
            .await
    }

    /// The alarms raised in the cluster (e.g. `NOSPACE` when the quota is
    /// exceeded).
    ///
    /// ```no_run
    /// use etcdv3_client::api::AlarmType;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let alarms = client.alarm_list().await?.alarms;
    /// let out_of_space = alarms.iter().any(|a| a.alarm == AlarmType::Nospace as i32);
    /// println!("NOSPACE raised: {out_of_space}");
    /// # Ok(()) }
    /// ```
    pub async fn alarm_list(&self) -> Result<AlarmResponse> {
        self.alarm_list_with(CallOptions::default()).await
    }

    /// [`Client::alarm_list`] with per-call options.
    ///
    /// ```no_run
    /// use etcdv3_client::CallOptions;
    /// use std::time::Duration;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let opts = CallOptions::new().with_timeout(Duration::from_secs(2));
    /// println!("{} alarms", client.alarm_list_with(opts).await?.alarms.len());
    /// # Ok(()) }
    /// ```
    pub async fn alarm_list_with(&self, options: CallOptions) -> Result<AlarmResponse> {
        let req = pb::AlarmRequest {
            action: AlarmAction::Get as i32,
            member_id: 0,
            alarm: AlarmType::None as i32,
        };
        self.unary(method::MAINTENANCE_ALARM, &req, options).await
    }

    /// Clear the alarm `alarm` raised by member `member_id`. The response
    /// lists the alarms that were cleared.
    ///
    /// ```no_run
    /// use etcdv3_client::api::AlarmType;
    /// # async fn demo(client: etcdv3_client::Client, member_id: u64) -> etcdv3_client::Result<()> {
    /// client.alarm_disarm(member_id, AlarmType::Nospace).await?;
    /// # Ok(()) }
    /// ```
    pub async fn alarm_disarm(&self, member_id: u64, alarm: AlarmType) -> Result<AlarmResponse> {
        self.alarm_disarm_with(member_id, alarm, CallOptions::default())
            .await
    }

    /// [`Client::alarm_disarm`] with per-call options.
    ///
    /// ```no_run
    /// use etcdv3_client::api::AlarmType;
    /// use etcdv3_client::CallOptions;
    /// use std::time::Duration;
    /// # async fn demo(client: etcdv3_client::Client, member_id: u64) -> etcdv3_client::Result<()> {
    /// let opts = CallOptions::new().with_timeout(Duration::from_secs(2));
    /// client.alarm_disarm_with(member_id, AlarmType::Nospace, opts).await?;
    /// # Ok(()) }
    /// ```
    pub async fn alarm_disarm_with(
        &self,
        member_id: u64,
        alarm: AlarmType,
        options: CallOptions,
    ) -> Result<AlarmResponse> {
        let req = pb::AlarmRequest {
            action: AlarmAction::Deactivate as i32,
            member_id,
            alarm: alarm as i32,
        };
        self.unary(method::MAINTENANCE_ALARM, &req, options).await
    }

    /// Clear every raised alarm (list, then disarm each). The response lists
    /// the alarms that were cleared.
    ///
    /// ```no_run
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let cleared = client.alarm_disarm_all().await?.alarms;
    /// println!("cleared {} alarms", cleared.len());
    /// assert!(client.alarm_list().await?.alarms.is_empty());
    /// # Ok(()) }
    /// ```
    pub async fn alarm_disarm_all(&self) -> Result<AlarmResponse> {
        let list = self.alarm_list().await?;
        let mut out = AlarmResponse {
            header: list.header,
            alarms: Vec::new(),
        };
        for a in list.alarms {
            let resp = self.alarm_disarm(a.member_id, a.alarm()).await?;
            out.header = resp.header;
            out.alarms.extend(resp.alarms);
        }
        Ok(out)
    }

    /// Defragment the backend database of some member (the one the balancer
    /// picks), releasing the space freed by compaction. This blocks that
    /// member for the duration; on a large database it can take longer than
    /// the request timeout: see [`Client::defragment_with`].
    ///
    /// ```no_run
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// client.defragment().await?;
    /// # Ok(()) }
    /// ```
    pub async fn defragment(&self) -> Result<DefragmentResponse> {
        self.defragment_with(CallOptions::default()).await
    }

    /// [`Client::defragment`] with per-call options (e.g. a longer timeout).
    ///
    /// ```no_run
    /// use etcdv3_client::{CallOptions, Target};
    /// use std::time::Duration;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// // Defragment one named member, allowing it five minutes.
    /// let opts = CallOptions::new()
    ///     .with_target(Target::Endpoint("http://127.0.0.1:2379".into()))
    ///     .with_timeout(Duration::from_secs(300));
    /// client.defragment_with(opts).await?;
    /// # Ok(()) }
    /// ```
    pub async fn defragment_with(&self, options: CallOptions) -> Result<DefragmentResponse> {
        self.unary(
            method::MAINTENANCE_DEFRAGMENT,
            &pb::DefragmentRequest {},
            options,
        )
        .await
    }

    /// The hash of some member's whole backend database (for corruption
    /// checks; prefer [`Client::hash_kv`]).
    ///
    /// ```no_run
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// println!("backend hash {:x}", client.hash().await?.hash);
    /// # Ok(()) }
    /// ```
    pub async fn hash(&self) -> Result<HashResponse> {
        self.hash_with(CallOptions::default()).await
    }

    /// [`Client::hash`] with per-call options (e.g. the member to ask).
    ///
    /// ```no_run
    /// use etcdv3_client::{CallOptions, Target};
    /// # async fn demo(client: etcdv3_client::Client, member: u64) -> etcdv3_client::Result<()> {
    /// let opts = CallOptions::new().with_target(Target::Member(member));
    /// println!("backend hash {:x}", client.hash_with(opts).await?.hash);
    /// # Ok(()) }
    /// ```
    pub async fn hash_with(&self, options: CallOptions) -> Result<HashResponse> {
        self.unary(method::MAINTENANCE_HASH, &pb::HashRequest {}, options)
            .await
    }

    /// The hash of some member's key-value history up to `revision` (0: the
    /// latest). Members that agree on the history return the same hash for
    /// the same revision and compact revision.
    ///
    /// ```no_run
    /// use etcdv3_client::Target;
    /// # async fn demo(client: etcdv3_client::Client, a: u64, b: u64, rev: i64) -> etcdv3_client::Result<()> {
    /// // Two members that agree on the history up to `rev` report the same hash.
    /// let ha = client.on(Target::Member(a)).hash_kv(rev).await?.hash;
    /// let hb = client.on(Target::Member(b)).hash_kv(rev).await?.hash;
    /// if ha != hb {
    ///     println!("members {a:x} and {b:x} diverge");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn hash_kv(&self, revision: i64) -> Result<HashKvResponse> {
        self.hash_kv_with(revision, CallOptions::default()).await
    }

    /// [`Client::hash_kv`] with per-call options (e.g. the member to ask).
    ///
    /// ```no_run
    /// use etcdv3_client::{CallOptions, Target};
    /// # async fn demo(client: etcdv3_client::Client, member: u64, rev: i64) -> etcdv3_client::Result<()> {
    /// let opts = CallOptions::new().with_target(Target::Member(member));
    /// println!("history hash {:x}", client.hash_kv_with(rev, opts).await?.hash);
    /// # Ok(()) }
    /// ```
    pub async fn hash_kv_with(
        &self,
        revision: i64,
        options: CallOptions,
    ) -> Result<HashKvResponse> {
        let req = pb::HashKvRequest { revision };
        self.unary(method::MAINTENANCE_HASH_KV, &req, options).await
    }

    /// Stream a snapshot of some member's backend database.
    ///
    /// ```no_run
    /// use futures_util::StreamExt;
    /// async fn demo(client: &etcdv3_client::Client) -> etcdv3_client::Result<()> {
    ///     let mut snap = client.snapshot().await?;
    ///     let mut size = 0;
    ///     while let Some(chunk) = snap.next().await {
    ///         size += chunk?.len();
    ///     }
    ///     println!("{size} bytes");
    ///     Ok(())
    /// }
    /// ```
    pub async fn snapshot(&self) -> Result<Snapshot> {
        self.snapshot_with(CallOptions::default()).await
    }

    /// [`Client::snapshot`] with per-call options. Without a timeout (the
    /// default for snapshots) the transfer has no deadline, as a large
    /// database takes long to send: drop the [`Snapshot`] to cancel it. A
    /// timeout bounds the whole transfer, not only its start.
    ///
    /// ```no_run
    /// use etcdv3_client::{CallOptions, Target};
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let from = CallOptions::new().with_target(Target::Endpoint("http://127.0.0.1:2379".into()));
    /// let mut snap = client.snapshot_with(from).await?;
    /// while let Some(chunk) = snap.next_chunk().await {
    ///     chunk?;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn snapshot_with(&self, options: CallOptions) -> Result<Snapshot> {
        let inner = self
            .server_stream(
                method::MAINTENANCE_SNAPSHOT,
                &pb::SnapshotRequest {},
                options,
            )
            .await?;
        Ok(Snapshot {
            _keep: self.keep_open(),
            inner,
            remaining: None,
        })
    }

    /// Transfer leadership to the member `target_id`. Only the leader can
    /// do this; a member that is not the leader refuses with
    /// [`EtcdErrorKind::NotLeader`](etcdv3_core::wire::error::EtcdErrorKind::NotLeader),
    /// and the call is then tried on another endpoint.
    ///
    /// ```no_run
    /// use etcdv3_client::api::MemberListOptions;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let leader = client.status().await?.leader;
    /// let members = client.member_list(MemberListOptions::new()).await?.members;
    /// if let Some(other) = members.iter().find(|m| m.id != leader) {
    ///     client.move_leader(other.id).await?;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn move_leader(&self, target_id: u64) -> Result<MoveLeaderResponse> {
        self.move_leader_with(target_id, CallOptions::default())
            .await
    }

    /// [`Client::move_leader`] with per-call options (e.g. a timeout).
    ///
    /// ```no_run
    /// use etcdv3_client::CallOptions;
    /// use std::time::Duration;
    /// # async fn demo(client: etcdv3_client::Client, member: u64) -> etcdv3_client::Result<()> {
    /// let opts = CallOptions::new().with_timeout(Duration::from_secs(10));
    /// client.move_leader_with(member, opts).await?;
    /// # Ok(()) }
    /// ```
    pub async fn move_leader_with(
        &self,
        target_id: u64,
        options: CallOptions,
    ) -> Result<MoveLeaderResponse> {
        let req = pb::MoveLeaderRequest { target_id };
        self.unary(method::MAINTENANCE_MOVE_LEADER, &req, options)
            .await
    }
}
