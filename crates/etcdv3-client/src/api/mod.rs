//! The typed etcd API, grouped by service. Every method is on [`crate::Client`].

pub mod auth;
pub mod cluster;
pub mod election;
pub mod kv;
pub mod lease;
pub mod lock;
pub mod maintenance;
pub mod namespace;
pub mod txn;
pub mod watch;

pub use auth::{Permission, PermissionType, UserAddOptions};
pub use cluster::{Member, MemberListOptions};
pub use election::{
    CampaignResponse, LeaderKey, LeaderResponse, LeaderStream, ProclaimResponse, ResignResponse,
};
pub use etcdv3_proto::etcdserverpb::{
    AlarmResponse, AuthenticateResponse, CompactionResponse, DeleteRangeResponse, HashKvResponse,
    MemberListResponse, PutResponse, RangeResponse, ResponseHeader, StatusResponse,
};
pub use kv::{
    prefix_range_end, CompactOptions, DeleteOptions, GetOptions, KeyValue, PutOptions, SortOrder,
    SortTarget,
};
pub use lease::{
    LeaseGrantOptions, LeaseGrantResponse, LeaseKeepAliveResponse, LeaseKeeper,
    LeaseLeasesResponse, LeaseRevokeResponse, LeaseStatus, LeaseTimeToLiveResponse,
};
pub use lock::{LockGuard, LockOptions, LockResponse, UnlockResponse};
pub use maintenance::{AlarmMember, AlarmType, Snapshot};
pub use namespace::KvNamespace;
pub use txn::{response_op, Compare, CompareOp, ResponseOp, Txn, TxnOp, TxnResponse};
pub use watch::{Event, EventType, WatchEvent, WatchOptions, Watcher, WatcherId};
