//! The Cluster service: membership.
//!
//! ```no_run
//! use etcdv3_client::api::MemberListOptions;
//!
//! async fn demo(client: &etcdv3_client::Client) -> etcdv3_client::Result<()> {
//!     for m in client.member_list(MemberListOptions::new()).await?.members {
//!         println!("{:x} {} {:?} learner={}", m.id, m.name, m.client_ur_ls, m.is_learner);
//!     }
//!     Ok(())
//! }
//! ```

use std::time::Duration;

use etcdv3_proto::etcdserverpb as pb;
use etcdv3_proto::method;

use super::kv::call_options;
use crate::client::{CallOptions, Client};
use crate::error::{Error, Result};

pub use etcdv3_proto::etcdserverpb::{
    Member, MemberAddResponse, MemberListResponse, MemberPromoteResponse, MemberRemoveResponse,
    MemberUpdateResponse,
};

/// Options of [`Client::member_list`].
///
/// ```
/// use etcdv3_client::api::MemberListOptions;
/// assert_ne!(MemberListOptions::new().with_linearizable(), MemberListOptions::new());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemberListOptions {
    linearizable: bool,
    timeout: Option<Duration>,
}

impl MemberListOptions {
    /// The member's local view of the membership (served without a round
    /// of consensus, possibly stale).
    ///
    /// ```
    /// assert_eq!(etcdv3_client::api::MemberListOptions::new(), Default::default());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Ask for a linearizable member list (etcd 3.5+; older servers ignore
    /// the flag and answer from their local view).
    ///
    /// ```no_run
    /// use etcdv3_client::api::MemberListOptions;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let members = client.member_list(MemberListOptions::new().with_linearizable()).await?;
    /// println!("{} members", members.members.len());
    /// # Ok(()) }
    /// ```
    pub fn with_linearizable(mut self) -> Self {
        self.linearizable = true;
        self
    }

    /// Deadline of this call instead of the client's request timeout.
    ///
    /// ```
    /// use etcdv3_client::api::MemberListOptions;
    /// use std::time::Duration;
    /// let opts = MemberListOptions::new().with_timeout(Duration::from_secs(2));
    /// assert_ne!(opts, MemberListOptions::new());
    /// ```
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

/// Options of [`Client::member_add`]: a voting member by default.
/// `From<bool>` (`true`: a learner) keeps `member_add(urls, true)` working.
///
/// ```
/// use etcdv3_client::api::MemberAddOptions;
/// assert_eq!(MemberAddOptions::from(true), MemberAddOptions::new().with_learner());
/// assert_ne!(MemberAddOptions::new(), MemberAddOptions::new().with_learner());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemberAddOptions {
    learner: bool,
}

impl MemberAddOptions {
    /// A voting member.
    ///
    /// ```
    /// assert_eq!(etcdv3_client::api::MemberAddOptions::new(), Default::default());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Add the member as a learner (non-voting, to be promoted later; etcd
    /// 3.4+).
    ///
    /// ```no_run
    /// use etcdv3_client::api::MemberAddOptions;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// client.member_add(["http://10.0.0.4:2380"], MemberAddOptions::new().with_learner()).await?;
    /// # Ok(()) }
    /// ```
    pub fn with_learner(mut self) -> Self {
        self.learner = true;
        self
    }
}

impl From<bool> for MemberAddOptions {
    fn from(learner: bool) -> Self {
        MemberAddOptions { learner }
    }
}

fn peer_urls<I, S>(urls: I) -> Result<Vec<String>>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let urls: Vec<String> = urls.into_iter().map(Into::into).collect();
    if urls.is_empty() {
        return Err(Error::InvalidArgument(
            "at least one peer URL is required".into(),
        ));
    }
    if urls.iter().any(|u| u.trim().is_empty()) {
        return Err(Error::InvalidArgument("peer URLs must not be empty".into()));
    }
    Ok(urls)
}

impl Client {
    /// The cluster's members. By default the answering member's local view
    /// (see [`MemberListOptions::with_linearizable`]).
    ///
    /// ```no_run
    /// use etcdv3_client::api::MemberListOptions;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// for m in client.member_list(MemberListOptions::new()).await?.members {
    ///     println!("{:x} {} {:?}", m.id, m.name, m.client_ur_ls);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn member_list(&self, options: MemberListOptions) -> Result<MemberListResponse> {
        let linearizable = options.linearizable
            || self.call_options().read == Some(crate::client::ReadConsistency::Linearizable);
        let req = pb::MemberListRequest { linearizable };
        self.unary(
            method::CLUSTER_MEMBER_LIST,
            &req,
            call_options(options.timeout),
        )
        .await
    }

    /// Add a member reachable at `peer_urls`, as a learner (a non-voting
    /// member that can later be promoted; etcd 3.4+) or as a voting member.
    /// The new member must then be started with the returned membership.
    ///
    /// ```no_run
    /// use etcdv3_client::api::MemberAddOptions;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let learner = MemberAddOptions::new().with_learner();
    /// let added = client.member_add(["http://10.0.0.4:2380"], learner).await?;
    /// let id = added.member.map(|m| m.id).unwrap_or_default();
    /// println!("added learner {id:x}");
    /// # Ok(()) }
    /// ```
    pub async fn member_add<I, S>(
        &self,
        peer_urls: I,
        options: impl Into<MemberAddOptions>,
    ) -> Result<MemberAddResponse>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let req = pb::MemberAddRequest {
            peer_ur_ls: self::peer_urls(peer_urls)?,
            is_learner: options.into().learner,
        };
        self.unary(method::CLUSTER_MEMBER_ADD, &req, CallOptions::default())
            .await
    }

    /// Remove the member with this id.
    ///
    /// ```no_run
    /// # async fn demo(client: etcdv3_client::Client, id: u64) -> etcdv3_client::Result<()> {
    /// let left = client.member_remove(id).await?;
    /// assert!(left.members.iter().all(|m| m.id != id));
    /// # Ok(()) }
    /// ```
    pub async fn member_remove(&self, id: u64) -> Result<MemberRemoveResponse> {
        let req = pb::MemberRemoveRequest { id };
        self.unary(method::CLUSTER_MEMBER_REMOVE, &req, CallOptions::default())
            .await
    }

    /// Change the peer URLs of the member with this id.
    ///
    /// ```no_run
    /// # async fn demo(client: etcdv3_client::Client, id: u64) -> etcdv3_client::Result<()> {
    /// client.member_update(id, ["http://10.0.0.5:2380"]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn member_update<I, S>(&self, id: u64, peer_urls: I) -> Result<MemberUpdateResponse>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let req = pb::MemberUpdateRequest {
            id,
            peer_ur_ls: self::peer_urls(peer_urls)?,
        };
        self.unary(method::CLUSTER_MEMBER_UPDATE, &req, CallOptions::default())
            .await
    }

    /// Promote a learner that has caught up with the leader to a voting
    /// member (etcd 3.4+).
    ///
    /// ```no_run
    /// # async fn demo(client: etcdv3_client::Client, learner_id: u64) -> etcdv3_client::Result<()> {
    /// client.member_promote(learner_id).await?;
    /// # Ok(()) }
    /// ```
    pub async fn member_promote(&self, id: u64) -> Result<MemberPromoteResponse> {
        let req = pb::MemberPromoteRequest { id };
        self.unary(method::CLUSTER_MEMBER_PROMOTE, &req, CallOptions::default())
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_urls_are_validated() {
        assert_eq!(
            peer_urls(["http://a:2380", "http://b:2380"]).unwrap(),
            vec!["http://a:2380".to_string(), "http://b:2380".to_string()]
        );
        assert!(matches!(
            peer_urls(Vec::<String>::new()),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            peer_urls(["http://a:2380", " "]),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn member_list_options() {
        let o = MemberListOptions::new();
        assert!(!o.linearizable);
        let o = o.with_linearizable().with_timeout(Duration::from_secs(1));
        assert!(o.linearizable);
        assert_eq!(o.timeout, Some(Duration::from_secs(1)));
    }
}
