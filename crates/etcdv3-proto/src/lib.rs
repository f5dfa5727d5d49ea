//! etcd v3 API wire types generated from `proto/` with prost, and the gRPC
//! method catalogue.
//!
//! The modules mirror the protobuf packages of etcd's API:
//! [`etcdserverpb`] (KV, Watch, Lease, Cluster, Maintenance, Auth),
//! [`mvccpb`] (stored key-values and watch events), [`authpb`] (users, roles,
//! permissions), [`v3lockpb`] (the Lock service) and [`v3electionpb`] (the
//! Election service). Only messages are generated; RPCs are described by
//! [`method`] and carried by the client's own gRPC framing.
//!
//! ```
//! use etcdv3_proto::etcdserverpb::RangeRequest;
//! use prost::Message;
//!
//! let req = RangeRequest { key: b"a".to_vec(), ..Default::default() };
//! let bytes = req.encode_to_vec();
//! assert_eq!(bytes, [0x0a, 0x01, b'a']);
//! assert_eq!(RangeRequest::decode(bytes.as_slice()).unwrap(), req);
//! ```
//!
//! Every response that carries a header says the revision, member and raft
//! term it was answered at directly (`revision()`, `member_id()`,
//! `raft_term()`; 0 when the header is missing):
//!
//! ```
//! use etcdv3_proto::etcdserverpb::{PutResponse, ResponseHeader};
//! let resp = PutResponse {
//!     header: Some(ResponseHeader { revision: 7, member_id: 3, ..Default::default() }),
//!     ..Default::default()
//! };
//! assert_eq!((resp.revision(), resp.member_id()), (7, 3));
//! assert_eq!(PutResponse::default().revision(), 0);
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod method;

pub use prost;

/// Package `etcdserverpb`: the KV, Watch, Lease, Cluster, Maintenance and
/// Auth services' messages.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod etcdserverpb {
    include!(concat!(env!("OUT_DIR"), "/etcdserverpb.rs"));
}

/// Package `mvccpb`: stored key-values and watch events.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod mvccpb {
    include!(concat!(env!("OUT_DIR"), "/mvccpb.rs"));
}

/// Package `authpb`: users, roles and permissions.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod authpb {
    include!(concat!(env!("OUT_DIR"), "/authpb.rs"));
}

/// Package `v3lockpb`: messages of the Lock service.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod v3lockpb {
    include!(concat!(env!("OUT_DIR"), "/v3lockpb.rs"));
}

/// Package `v3electionpb`: messages of the Election service.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod v3electionpb {
    include!(concat!(env!("OUT_DIR"), "/v3electionpb.rs"));
}

/// Adds `revision()`, `member_id()` and `raft_term()` to responses that
/// carry a [`etcdserverpb::ResponseHeader`].
macro_rules! header_accessors {
    ($($ty:path),+ $(,)?) => {
        $(
            impl $ty {
                /// The revision of the key-value store when the server
                /// answered (its header's; 0 without a header).
                pub fn revision(&self) -> i64 {
                    self.header.as_ref().map_or(0, |h| h.revision)
                }

                /// The id of the member that answered (its header's; 0
                /// without a header).
                pub fn member_id(&self) -> u64 {
                    self.header.as_ref().map_or(0, |h| h.member_id)
                }

                /// The raft term of the member that answered (its
                /// header's; 0 without a header).
                pub fn raft_term(&self) -> u64 {
                    self.header.as_ref().map_or(0, |h| h.raft_term)
                }
            }
        )+
    };
}

// Every response with a header (see the crate docs).
header_accessors!(
    etcdserverpb::RangeResponse,
    etcdserverpb::PutResponse,
    etcdserverpb::DeleteRangeResponse,
    etcdserverpb::TxnResponse,
    etcdserverpb::CompactionResponse,
    etcdserverpb::WatchResponse,
    etcdserverpb::LeaseGrantResponse,
    etcdserverpb::LeaseRevokeResponse,
    etcdserverpb::LeaseCheckpointResponse,
    etcdserverpb::LeaseKeepAliveResponse,
    etcdserverpb::LeaseTimeToLiveResponse,
    etcdserverpb::LeaseLeasesResponse,
    etcdserverpb::MemberAddResponse,
    etcdserverpb::MemberRemoveResponse,
    etcdserverpb::MemberUpdateResponse,
    etcdserverpb::MemberListResponse,
    etcdserverpb::MemberPromoteResponse,
    etcdserverpb::DefragmentResponse,
    etcdserverpb::MoveLeaderResponse,
    etcdserverpb::AlarmResponse,
    etcdserverpb::DowngradeResponse,
    etcdserverpb::StatusResponse,
    etcdserverpb::HashResponse,
    etcdserverpb::HashKvResponse,
    etcdserverpb::SnapshotResponse,
    etcdserverpb::AuthEnableResponse,
    etcdserverpb::AuthDisableResponse,
    etcdserverpb::AuthStatusResponse,
    etcdserverpb::AuthenticateResponse,
    etcdserverpb::AuthUserAddResponse,
    etcdserverpb::AuthUserGetResponse,
    etcdserverpb::AuthUserListResponse,
    etcdserverpb::AuthUserDeleteResponse,
    etcdserverpb::AuthUserChangePasswordResponse,
    etcdserverpb::AuthUserGrantRoleResponse,
    etcdserverpb::AuthUserRevokeRoleResponse,
    etcdserverpb::AuthRoleAddResponse,
    etcdserverpb::AuthRoleGetResponse,
    etcdserverpb::AuthRoleListResponse,
    etcdserverpb::AuthRoleDeleteResponse,
    etcdserverpb::AuthRoleGrantPermissionResponse,
    etcdserverpb::AuthRoleRevokePermissionResponse,
    v3electionpb::CampaignResponse,
    v3electionpb::LeaderResponse,
    v3electionpb::ResignResponse,
    v3electionpb::ProclaimResponse,
    v3lockpb::LockResponse,
    v3lockpb::UnlockResponse,
);
