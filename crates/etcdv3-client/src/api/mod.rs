//! The typed etcd API, grouped by service. Every method is on [`crate::Client`].

/// `with_prefix`, `with_from_key` and `with_range_end` for an options type
/// with a `range: KeyRange` field; `$verb` starts each doc sentence, `$new`
/// (an expression building the type, as source text) is used in each
/// setter's doc example.
macro_rules! key_range_setters {
    ($verb:literal, $new:literal) => {
        #[doc = concat!($verb, " every key starting with the key (all keys for an empty key).")]
        #[doc = ""]
        #[doc = "```"]
        #[doc = concat!("let plain = ", $new, ";")]
        #[doc = concat!("let ranged = ", $new, ".with_prefix();")]
        #[doc = "assert_ne!(format!(\"{ranged:?}\"), format!(\"{plain:?}\"));"]
        #[doc = "```"]
        pub fn with_prefix(mut self) -> Self {
            self.range = $crate::api::kv::KeyRange::Prefix;
            self
        }

        #[doc = concat!($verb, " every key greater than or equal to the key (all keys for an empty key).")]
        #[doc = ""]
        #[doc = "```"]
        #[doc = concat!("let plain = ", $new, ";")]
        #[doc = concat!("let ranged = ", $new, ".with_from_key();")]
        #[doc = "assert_ne!(format!(\"{ranged:?}\"), format!(\"{plain:?}\"));"]
        #[doc = "```"]
        pub fn with_from_key(mut self) -> Self {
            self.range = $crate::api::kv::KeyRange::FromKey;
            self
        }

        #[doc = concat!($verb, " the keys in `[key, end)`; `\"\\0\"` as end means every key from the key on, an empty end the key alone.")]
        #[doc = ""]
        #[doc = "```"]
        #[doc = concat!("let plain = ", $new, ";")]
        #[doc = concat!("let ranged = ", $new, ".with_range_end(\"z\");")]
        #[doc = "assert_ne!(format!(\"{ranged:?}\"), format!(\"{plain:?}\"));"]
        #[doc = "```"]
        pub fn with_range_end(mut self, end: impl Into<Vec<u8>>) -> Self {
            self.range = $crate::api::kv::KeyRange::End(end.into());
            self
        }
    };
}

pub mod auth;
pub mod cache;
pub mod cluster;
pub mod election;
pub mod kv;
pub mod lease;
pub mod lock;
pub mod maintenance;
pub mod namespace;
pub mod paged;
pub mod readable;
pub(crate) mod stream_task;
pub mod txn;
pub mod watch;
pub mod watch_group;

pub use auth::{Permission, PermissionType, UserAddOptions};
pub use cache::{Cache, CacheChanges, CacheEvent, CacheOptions, CacheRead};
pub use cluster::{Member, MemberAddOptions, MemberListOptions};
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
    KeepAliveEvent, LeaseGrantOptions, LeaseGrantResponse, LeaseKeepAliveResponse, LeaseKeeper,
    LeaseLeasesResponse, LeaseRevokeResponse, LeaseStatus, LeaseTimeToLiveOptions,
    LeaseTimeToLiveResponse,
};
pub use lock::{LockGuard, LockOptions, LockResponse, UnlockResponse};
pub use maintenance::{AlarmMember, AlarmType, Snapshot};
pub use namespace::{KvNamespace, NamespaceWatchGroup, NamespaceWatcher};
pub use paged::{Page, PageError, Paged, PagedKvs, PagedOptions, PagerPosition};
pub use readable::{EventExt, KeyValueExt, TxnOpResponse, TxnResponseExt};
pub use txn::{response_op, Compare, CompareOp, ResponseOp, Txn, TxnOp, TxnResponse};
pub use watch::{
    Event, EventType, WatchEvent, WatchOptions, Watcher, WatcherId, MAX_BUFFERED_BYTES,
};
pub use watch_group::{GroupItem, WatchGroup};
