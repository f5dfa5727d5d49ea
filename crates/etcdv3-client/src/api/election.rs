//! Election: the etcd `v3election` service.
//!
//! Candidates [`campaign`](Client::campaign) for an election `name` with a
//! lease; the oldest candidate is the leader. The leader announces values
//! with [`proclaim`](Client::proclaim) and steps down with
//! [`resign`](Client::resign) (or when its lease expires). Anyone can read
//! the current [`leader`](Client::leader) or [`observe`](Client::observe)
//! every change.
//!
//! On a namespaced client ([`Client::with_namespace`]) the election name
//! is prefixed on the way out and the keys in the answers (the
//! [`LeaderKey`]'s name and key, the leader's key-value) come back without
//! the prefix; `proclaim` and `resign` prefix the leader key again.

use std::pin::Pin;
use std::task::{Context, Poll};

use etcdv3_core::machine::UNBOUNDED_WAIT;
use etcdv3_proto::method::{
    ELECTION_CAMPAIGN, ELECTION_LEADER, ELECTION_OBSERVE, ELECTION_PROCLAIM, ELECTION_RESIGN,
};
use etcdv3_proto::v3electionpb::{CampaignRequest, LeaderRequest, ProclaimRequest, ResignRequest};
use futures_core::Stream;

use crate::api::namespace::{prefix_leader, prefixed, strip_leader, strip_leader_kv};
use crate::client::{CallOptions, KeepOpen, ServerStream};
use crate::error::{Error, Result};
use crate::Client;

pub use etcdv3_proto::v3electionpb::{
    CampaignResponse, LeaderKey, LeaderResponse, ProclaimResponse, ResignResponse,
};

fn check_name(name: &[u8]) -> Result<()> {
    if name.is_empty() {
        return Err(Error::InvalidArgument(
            "election name must not be empty".into(),
        ));
    }
    Ok(())
}

impl Client {
    /// Campaign in election `name` with `value`, under `lease` (the
    /// candidacy ends with the lease). Waits until this candidate is the
    /// leader; the response's `leader` key is what
    /// [`proclaim`](Client::proclaim) and [`resign`](Client::resign) take.
    ///
    /// ```no_run
    /// use etcdv3_client::api::LeaseGrantOptions;
    ///
    /// async fn demo(client: &etcdv3_client::Client) -> etcdv3_client::Result<()> {
    ///     let lease = client.lease_grant(10, LeaseGrantOptions::new()).await?;
    ///     let _keeper = client.lease_keep_alive(lease.id).await?;
    ///     let won = client.campaign("scheduler", "node-1", lease.id).await?;
    ///     let me = won.leader.unwrap_or_default();
    ///     client.proclaim(me.clone(), "node-1 (busy)").await?;
    ///     client.resign(me).await?;
    ///     Ok(())
    /// }
    /// ```
    pub async fn campaign(
        &self,
        name: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
        lease: i64,
    ) -> Result<CampaignResponse> {
        let name = name.into();
        check_name(&name)?;
        let ns = self.namespace();
        let req = CampaignRequest {
            name: prefixed(ns, name),
            lease,
            value: value.into(),
        };
        // A campaign waits for as long as it takes unless the handle's
        // options bound it.
        let timeout = self.call_options().timeout.unwrap_or(UNBOUNDED_WAIT);
        let opts = CallOptions::new().with_timeout(timeout);
        let mut resp: CampaignResponse = self.unary(ELECTION_CAMPAIGN, &req, opts).await?;
        if let Some(leader) = &mut resp.leader {
            strip_leader(ns, leader);
        }
        Ok(resp)
    }

    /// As the leader identified by `leader`, announce a new `value`.
    ///
    /// ```no_run
    /// # async fn demo(client: etcdv3_client::Client, lease: i64) -> etcdv3_client::Result<()> {
    /// let me = client.campaign("scheduler", "node-1", lease).await?.leader.unwrap_or_default();
    /// client.proclaim(me, "node-1, draining").await?;
    /// # Ok(()) }
    /// ```
    pub async fn proclaim(
        &self,
        mut leader: LeaderKey,
        value: impl Into<Vec<u8>>,
    ) -> Result<ProclaimResponse> {
        prefix_leader(self.namespace(), &mut leader);
        let req = ProclaimRequest {
            leader: Some(leader),
            value: value.into(),
        };
        self.unary(ELECTION_PROCLAIM, &req, CallOptions::default())
            .await
    }

    /// The current leader of election `name` (its key-value: the key
    /// identifies the leader, the value is its last proclamation).
    ///
    /// ```no_run
    /// use etcdv3_client::prelude::*;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// if let Some(kv) = client.leader("scheduler").await?.kv {
    ///     println!("leader says {}", kv.value_lossy());
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn leader(&self, name: impl Into<Vec<u8>>) -> Result<LeaderResponse> {
        let name = name.into();
        check_name(&name)?;
        let ns = self.namespace();
        let name = prefixed(ns, name);
        let mut resp: LeaderResponse = self
            .unary(
                ELECTION_LEADER,
                &LeaderRequest { name },
                CallOptions::default(),
            )
            .await?;
        strip_leader_kv(ns, &mut resp);
        Ok(resp)
    }

    /// Every leader of election `name` from now on (the current one first,
    /// then each change and proclamation), as a stream.
    ///
    /// ```no_run
    /// use futures_util::StreamExt;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let mut leaders = client.observe("scheduler").await?;
    /// while let Some(resp) = leaders.next().await {
    ///     println!("leader: {:?}", resp?.kv.map(|kv| kv.value));
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn observe(&self, name: impl Into<Vec<u8>>) -> Result<LeaderStream> {
        let name = name.into();
        check_name(&name)?;
        let name = prefixed(self.namespace(), name);
        let inner = self
            .server_stream(
                ELECTION_OBSERVE,
                &LeaderRequest { name },
                CallOptions::default(),
            )
            .await?;
        Ok(LeaderStream {
            inner,
            namespace: self.namespace().to_vec(),
            _keep: self.keep_open(),
        })
    }

    /// Step down as the leader identified by `leader`.
    ///
    /// ```no_run
    /// # async fn demo(client: etcdv3_client::Client, lease: i64) -> etcdv3_client::Result<()> {
    /// let me = client.campaign("scheduler", "node-1", lease).await?.leader.unwrap_or_default();
    /// client.resign(me).await?;
    /// # Ok(()) }
    /// ```
    pub async fn resign(&self, mut leader: LeaderKey) -> Result<ResignResponse> {
        prefix_leader(self.namespace(), &mut leader);
        let req = ResignRequest {
            leader: Some(leader),
        };
        self.unary(ELECTION_RESIGN, &req, CallOptions::default())
            .await
    }
}

/// The leaders of an election; from [`Client::observe`]. Ends when the
/// server ends the stream; dropping it cancels the observation.
///
/// ```no_run
/// use futures_util::StreamExt;
/// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
/// let mut leaders: etcdv3_client::api::LeaderStream = client.observe("scheduler").await?;
/// if let Some(first) = leaders.next().await {
///     println!("current leader: {:?}", first?.kv);
/// }
/// # Ok(()) }
/// ```
pub struct LeaderStream {
    inner: ServerStream<LeaderResponse>,
    /// The namespace of the client that observes: stripped from the
    /// leaders' keys.
    namespace: Vec<u8>,
    /// Keeps the client open while this handle lives.
    _keep: KeepOpen,
}

impl std::fmt::Debug for LeaderStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderStream").finish_non_exhaustive()
    }
}

impl Stream for LeaderStream {
    type Item = Result<LeaderResponse>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        Pin::new(&mut this.inner).poll_next(cx).map(|item| {
            item.map(|r| {
                r.map(|mut resp| {
                    strip_leader_kv(&this.namespace, &mut resp);
                    resp
                })
            })
        })
    }
}
