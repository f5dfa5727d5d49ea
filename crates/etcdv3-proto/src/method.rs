//! The gRPC method catalogue: every etcd v3 RPC with its path, shape and
//! retry class.
//!
//! Each RPC has one constant (e.g. [`KV_RANGE`]); [`ALL`] lists them and
//! [`by_path`] finds one by its `:path`. The retry class is per method and
//! conservative: `KV/Txn` and `Maintenance/Alarm` are classed as mutations
//! even though a txn without writes, or an alarm GET, could safely be
//! repeated; a caller that inspects the request may relax that.

/// How requests and responses flow on an RPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RpcShape {
    /// One request, one response.
    Unary,
    /// One request, a stream of responses (e.g. `Maintenance/Snapshot`).
    ServerStreaming,
    /// Streams both ways (e.g. `Watch/Watch`, `Lease/LeaseKeepAlive`).
    Bidirectional,
}

/// Whether an RPC may be sent again after an attempt whose outcome is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Idempotency {
    /// Reads and other calls with no side effect, or whose repetition is
    /// harmless: safe to retry on any endpoint.
    Repeatable,
    /// Calls that change state: retried only when the earlier attempt provably
    /// was not processed.
    Mutation,
}

/// One etcd v3 RPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Method {
    /// The HTTP/2 `:path`, e.g. `/etcdserverpb.KV/Range`.
    pub path: &'static str,
    /// Request/response flow.
    pub shape: RpcShape,
    /// Retry class.
    pub idempotency: Idempotency,
}

impl Method {
    /// Whether the call is safe to repeat after an unknown outcome.
    pub const fn is_repeatable(&self) -> bool {
        matches!(self.idempotency, Idempotency::Repeatable)
    }

    /// Whether the call is a stream (server-streaming or bidirectional).
    pub const fn is_streaming(&self) -> bool {
        !matches!(self.shape, RpcShape::Unary)
    }

    /// The fully qualified service name, e.g. `etcdserverpb.KV`.
    ///
    /// ```
    /// assert_eq!(etcdv3_proto::method::KV_RANGE.service(), "etcdserverpb.KV");
    /// ```
    pub fn service(&self) -> &'static str {
        let path = self.path.strip_prefix('/').unwrap_or(self.path);
        match path.rsplit_once('/') {
            Some((service, _)) => service,
            None => path,
        }
    }

    /// The bare method name, e.g. `Range`.
    ///
    /// ```
    /// assert_eq!(etcdv3_proto::method::KV_RANGE.name(), "Range");
    /// ```
    pub fn name(&self) -> &'static str {
        match self.path.rsplit_once('/') {
            Some((_, name)) => name,
            None => self.path,
        }
    }
}

// ------------------------------------------------------------ catalogue

/// `KV/Range`: read keys. Repeatable: no side effect.
pub const KV_RANGE: Method = Method {
    path: "/etcdserverpb.KV/Range",
    shape: RpcShape::Unary,
    idempotency: Idempotency::Repeatable,
};

/// `KV/Put`: write one key. Mutation: a repeat creates another revision.
pub const KV_PUT: Method = Method {
    path: "/etcdserverpb.KV/Put",
    shape: RpcShape::Unary,
    idempotency: Idempotency::Mutation,
};

/// `KV/DeleteRange`: delete keys. Mutation.
pub const KV_DELETE_RANGE: Method = Method {
    path: "/etcdserverpb.KV/DeleteRange",
    shape: RpcShape::Unary,
    idempotency: Idempotency::Mutation,
};

/// `KV/Txn`: guarded multi-operation transaction. Classed as a Mutation;
/// a client may treat a txn whose branches hold only ranges as repeatable.
pub const KV_TXN: Method = Method {
    path: "/etcdserverpb.KV/Txn",
    shape: RpcShape::Unary,
    idempotency: Idempotency::Mutation,
};

/// `KV/Compact`: drop history below a revision. Mutation.
pub const KV_COMPACT: Method = Method {
    path: "/etcdserverpb.KV/Compact",
    shape: RpcShape::Unary,
    idempotency: Idempotency::Mutation,
};

/// `Watch/Watch`: the watch stream. Repeatable: watchers are re-created
/// from the last seen revision.
pub const WATCH_WATCH: Method = Method {
    path: "/etcdserverpb.Watch/Watch",
    shape: RpcShape::Bidirectional,
    idempotency: Idempotency::Repeatable,
};

/// `Lease/LeaseGrant`: create a lease. Mutation: a repeat may leak a lease.
pub const LEASE_GRANT: Method = Method {
    path: "/etcdserverpb.Lease/LeaseGrant",
    shape: RpcShape::Unary,
    idempotency: Idempotency::Mutation,
};

/// `Lease/LeaseRevoke`: end a lease and delete its keys. Mutation.
pub const LEASE_REVOKE: Method = Method {
    path: "/etcdserverpb.Lease/LeaseRevoke",
    shape: RpcShape::Unary,
    idempotency: Idempotency::Mutation,
};

/// `Lease/LeaseKeepAlive`: the keep-alive stream. Repeatable: renewing
/// twice is the same as renewing once.
pub const LEASE_KEEP_ALIVE: Method = Method {
    path: "/etcdserverpb.Lease/LeaseKeepAlive",
    shape: RpcShape::Bidirectional,
    idempotency: Idempotency::Repeatable,
};

/// `Lease/LeaseTimeToLive`: inspect a lease. Repeatable.
pub const LEASE_TIME_TO_LIVE: Method = Method {
    path: "/etcdserverpb.Lease/LeaseTimeToLive",
    shape: RpcShape::Unary,
    idempotency: Idempotency::Repeatable,
};

/// `Lease/LeaseLeases`: list leases. Repeatable.
pub const LEASE_LEASES: Method = Method {
    path: "/etcdserverpb.Lease/LeaseLeases",
    shape: RpcShape::Unary,
    idempotency: Idempotency::Repeatable,
};

/// `Cluster/MemberAdd`: add a member. Mutation.
pub const CLUSTER_MEMBER_ADD: Method = Method {
    path: "/etcdserverpb.Cluster/MemberAdd",
    shape: RpcShape::Unary,
    idempotency: Idempotency::Mutation,
};

/// `Cluster/MemberRemove`: remove a member. Mutation.
pub const CLUSTER_MEMBER_REMOVE: Method = Method {
    path: "/etcdserverpb.Cluster/MemberRemove",
    shape: RpcShape::Unary,
    idempotency: Idempotency::Mutation,
};

/// `Cluster/MemberUpdate`: change a member's peer URLs. Mutation.
pub const CLUSTER_MEMBER_UPDATE: Method = Method {
    path: "/etcdserverpb.Cluster/MemberUpdate",
    shape: RpcShape::Unary,
    idempotency: Idempotency::Mutation,
};

/// `Cluster/MemberList`: list members. Repeatable.
pub const CLUSTER_MEMBER_LIST: Method = Method {
    path: "/etcdserverpb.Cluster/MemberList",
    shape: RpcShape::Unary,
    idempotency: Idempotency::Repeatable,
};

/// `Cluster/MemberPromote`: make a learner a voter. Mutation.
pub const CLUSTER_MEMBER_PROMOTE: Method = Method {
    path: "/etcdserverpb.Cluster/MemberPromote",
    shape: RpcShape::Unary,
    idempotency: Idempotency::Mutation,
};

/// `Maintenance/Alarm`: get, raise or clear alarms. Classed as a Mutation
/// because ACTIVATE/DEACTIVATE change state; a GET alone is harmless to repeat.
pub const MAINTENANCE_ALARM: Method = Method {
    path: "/etcdserverpb.Maintenance/Alarm",
    shape: RpcShape::Unary,
    idempotency: Idempotency::Mutation,
};

/// `Maintenance/Status`: one member's status. Repeatable.
pub const MAINTENANCE_STATUS: Method = Method {
    path: "/etcdserverpb.Maintenance/Status",
    shape: RpcShape::Unary,
    idempotency: Idempotency::Repeatable,
};

/// `Maintenance/Defragment`: compact a member's backend file. Repeatable:
/// harmless to run again.
pub const MAINTENANCE_DEFRAGMENT: Method = Method {
    path: "/etcdserverpb.Maintenance/Defragment",
    shape: RpcShape::Unary,
    idempotency: Idempotency::Repeatable,
};

/// `Maintenance/Hash`: hash of the whole backend. Repeatable.
pub const MAINTENANCE_HASH: Method = Method {
    path: "/etcdserverpb.Maintenance/Hash",
    shape: RpcShape::Unary,
    idempotency: Idempotency::Repeatable,
};

/// `Maintenance/HashKV`: hash of the keys up to a revision. Repeatable.
pub const MAINTENANCE_HASH_KV: Method = Method {
    path: "/etcdserverpb.Maintenance/HashKV",
    shape: RpcShape::Unary,
    idempotency: Idempotency::Repeatable,
};

/// `Maintenance/Snapshot`: stream a backend snapshot. Repeatable.
pub const MAINTENANCE_SNAPSHOT: Method = Method {
    path: "/etcdserverpb.Maintenance/Snapshot",
    shape: RpcShape::ServerStreaming,
    idempotency: Idempotency::Repeatable,
};

/// `Maintenance/MoveLeader`: transfer leadership. Mutation.
pub const MAINTENANCE_MOVE_LEADER: Method = Method {
    path: "/etcdserverpb.Maintenance/MoveLeader",
    shape: RpcShape::Unary,
    idempotency: Idempotency::Mutation,
};

/// `Maintenance/Downgrade`: validate, enable or cancel a downgrade (etcd
/// 3.5+). Mutation.
pub const MAINTENANCE_DOWNGRADE: Method = Method {
    path: "/etcdserverpb.Maintenance/Downgrade",
    shape: RpcShape::Unary,
    idempotency: Idempotency::Mutation,
};

/// `Auth/AuthEnable`: turn authentication on. Mutation.
pub const AUTH_ENABLE: Method = Method {
    path: "/etcdserverpb.Auth/AuthEnable",
    shape: RpcShape::Unary,
    idempotency: Idempotency::Mutation,
};

/// `Auth/AuthDisable`: turn authentication off. Mutation.
pub const AUTH_DISABLE: Method = Method {
    path: "/etcdserverpb.Auth/AuthDisable",
    shape: RpcShape::Unary,
    idempotency: Idempotency::Mutation,
};

/// `Auth/AuthStatus`: whether auth is on, and the auth revision (etcd
/// 3.5+). Repeatable.
pub const AUTH_STATUS: Method = Method {
    path: "/etcdserverpb.Auth/AuthStatus",
    shape: RpcShape::Unary,
    idempotency: Idempotency::Repeatable,
};

/// `Auth/Authenticate`: trade a name and password for a token. Repeatable:
/// it only issues a token.
pub const AUTH_AUTHENTICATE: Method = Method {
    path: "/etcdserverpb.Auth/Authenticate",
    shape: RpcShape::Unary,
    idempotency: Idempotency::Repeatable,
};

/// `Auth/UserAdd`: create a user. Mutation.
pub const AUTH_USER_ADD: Method = Method {
    path: "/etcdserverpb.Auth/UserAdd",
    shape: RpcShape::Unary,
    idempotency: Idempotency::Mutation,
};

/// `Auth/UserGet`: a user's roles. Repeatable.
pub const AUTH_USER_GET: Method = Method {
    path: "/etcdserverpb.Auth/UserGet",
    shape: RpcShape::Unary,
    idempotency: Idempotency::Repeatable,
};

/// `Auth/UserList`: list users. Repeatable.
pub const AUTH_USER_LIST: Method = Method {
    path: "/etcdserverpb.Auth/UserList",
    shape: RpcShape::Unary,
    idempotency: Idempotency::Repeatable,
};

/// `Auth/UserDelete`: delete a user. Mutation.
pub const AUTH_USER_DELETE: Method = Method {
    path: "/etcdserverpb.Auth/UserDelete",
    shape: RpcShape::Unary,
    idempotency: Idempotency::Mutation,
};

/// `Auth/UserChangePassword`: set a user's password. Mutation.
pub const AUTH_USER_CHANGE_PASSWORD: Method = Method {
    path: "/etcdserverpb.Auth/UserChangePassword",
    shape: RpcShape::Unary,
    idempotency: Idempotency::Mutation,
};

/// `Auth/UserGrantRole`: give a user a role. Mutation.
pub const AUTH_USER_GRANT_ROLE: Method = Method {
    path: "/etcdserverpb.Auth/UserGrantRole",
    shape: RpcShape::Unary,
    idempotency: Idempotency::Mutation,
};

/// `Auth/UserRevokeRole`: take a role from a user. Mutation.
pub const AUTH_USER_REVOKE_ROLE: Method = Method {
    path: "/etcdserverpb.Auth/UserRevokeRole",
    shape: RpcShape::Unary,
    idempotency: Idempotency::Mutation,
};

/// `Auth/RoleAdd`: create a role. Mutation.
pub const AUTH_ROLE_ADD: Method = Method {
    path: "/etcdserverpb.Auth/RoleAdd",
    shape: RpcShape::Unary,
    idempotency: Idempotency::Mutation,
};

/// `Auth/RoleGet`: a role's permissions. Repeatable.
pub const AUTH_ROLE_GET: Method = Method {
    path: "/etcdserverpb.Auth/RoleGet",
    shape: RpcShape::Unary,
    idempotency: Idempotency::Repeatable,
};

/// `Auth/RoleList`: list roles. Repeatable.
pub const AUTH_ROLE_LIST: Method = Method {
    path: "/etcdserverpb.Auth/RoleList",
    shape: RpcShape::Unary,
    idempotency: Idempotency::Repeatable,
};

/// `Auth/RoleDelete`: delete a role. Mutation.
pub const AUTH_ROLE_DELETE: Method = Method {
    path: "/etcdserverpb.Auth/RoleDelete",
    shape: RpcShape::Unary,
    idempotency: Idempotency::Mutation,
};

/// `Auth/RoleGrantPermission`: add a key permission to a role. Mutation.
pub const AUTH_ROLE_GRANT_PERMISSION: Method = Method {
    path: "/etcdserverpb.Auth/RoleGrantPermission",
    shape: RpcShape::Unary,
    idempotency: Idempotency::Mutation,
};

/// `Auth/RoleRevokePermission`: remove a key permission from a role.
/// Mutation.
pub const AUTH_ROLE_REVOKE_PERMISSION: Method = Method {
    path: "/etcdserverpb.Auth/RoleRevokePermission",
    shape: RpcShape::Unary,
    idempotency: Idempotency::Mutation,
};

/// `Lock/Lock`: wait for and take a named lock. Mutation: it creates an
/// ownership key.
pub const LOCK_LOCK: Method = Method {
    path: "/v3lockpb.Lock/Lock",
    shape: RpcShape::Unary,
    idempotency: Idempotency::Mutation,
};

/// `Lock/Unlock`: release a lock. Mutation.
pub const LOCK_UNLOCK: Method = Method {
    path: "/v3lockpb.Lock/Unlock",
    shape: RpcShape::Unary,
    idempotency: Idempotency::Mutation,
};

/// `Election/Campaign`: wait to become leader. Mutation: it creates a
/// candidacy key.
pub const ELECTION_CAMPAIGN: Method = Method {
    path: "/v3electionpb.Election/Campaign",
    shape: RpcShape::Unary,
    idempotency: Idempotency::Mutation,
};

/// `Election/Proclaim`: publish a new leader value. Mutation.
pub const ELECTION_PROCLAIM: Method = Method {
    path: "/v3electionpb.Election/Proclaim",
    shape: RpcShape::Unary,
    idempotency: Idempotency::Mutation,
};

/// `Election/Leader`: the current leader's value. Repeatable.
pub const ELECTION_LEADER: Method = Method {
    path: "/v3electionpb.Election/Leader",
    shape: RpcShape::Unary,
    idempotency: Idempotency::Repeatable,
};

/// `Election/Observe`: stream leader values. Repeatable.
pub const ELECTION_OBSERVE: Method = Method {
    path: "/v3electionpb.Election/Observe",
    shape: RpcShape::ServerStreaming,
    idempotency: Idempotency::Repeatable,
};

/// `Election/Resign`: give up leadership. Mutation.
pub const ELECTION_RESIGN: Method = Method {
    path: "/v3electionpb.Election/Resign",
    shape: RpcShape::Unary,
    idempotency: Idempotency::Mutation,
};

/// Every RPC of every service, in service order.
pub const ALL: &[Method] = &[
    KV_RANGE,
    KV_PUT,
    KV_DELETE_RANGE,
    KV_TXN,
    KV_COMPACT,
    WATCH_WATCH,
    LEASE_GRANT,
    LEASE_REVOKE,
    LEASE_KEEP_ALIVE,
    LEASE_TIME_TO_LIVE,
    LEASE_LEASES,
    CLUSTER_MEMBER_ADD,
    CLUSTER_MEMBER_REMOVE,
    CLUSTER_MEMBER_UPDATE,
    CLUSTER_MEMBER_LIST,
    CLUSTER_MEMBER_PROMOTE,
    MAINTENANCE_ALARM,
    MAINTENANCE_STATUS,
    MAINTENANCE_DEFRAGMENT,
    MAINTENANCE_HASH,
    MAINTENANCE_HASH_KV,
    MAINTENANCE_SNAPSHOT,
    MAINTENANCE_MOVE_LEADER,
    MAINTENANCE_DOWNGRADE,
    AUTH_ENABLE,
    AUTH_DISABLE,
    AUTH_STATUS,
    AUTH_AUTHENTICATE,
    AUTH_USER_ADD,
    AUTH_USER_GET,
    AUTH_USER_LIST,
    AUTH_USER_DELETE,
    AUTH_USER_CHANGE_PASSWORD,
    AUTH_USER_GRANT_ROLE,
    AUTH_USER_REVOKE_ROLE,
    AUTH_ROLE_ADD,
    AUTH_ROLE_GET,
    AUTH_ROLE_LIST,
    AUTH_ROLE_DELETE,
    AUTH_ROLE_GRANT_PERMISSION,
    AUTH_ROLE_REVOKE_PERMISSION,
    LOCK_LOCK,
    LOCK_UNLOCK,
    ELECTION_CAMPAIGN,
    ELECTION_PROCLAIM,
    ELECTION_LEADER,
    ELECTION_OBSERVE,
    ELECTION_RESIGN,
];

/// Looks up a method by its HTTP/2 `:path`, e.g. `/etcdserverpb.KV/Range`.
///
/// ```
/// use etcdv3_proto::method::{by_path, KV_RANGE};
///
/// assert_eq!(by_path("/etcdserverpb.KV/Range"), Some(KV_RANGE));
/// assert_eq!(by_path("/etcdserverpb.KV/Nope"), None);
/// ```
pub fn by_path(path: &str) -> Option<Method> {
    ALL.iter().find(|m| m.path == path).copied()
}
