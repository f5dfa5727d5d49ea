//! Classification of etcd errors: what a failed call's [`Status`] means, where
//! (if anywhere) it may be retried, and whether it may have been applied.
//!
//! etcd reports errors as a gRPC status whose message is one of a fixed set
//! of strings (`api/v3rpc/rpctypes/error.go` in etcd, plus a few server
//! errors that reach the wire unmapped with code `UNKNOWN`).
//! [`classify`] matches the message, with or without its `"etcdserver: "`
//! prefix, and falls back to the status code for messages it does not know
//! (transport errors, resets, deadlines). Matching is by message rather than
//! code because some codes changed between releases: `not capable`,
//! `rpc not supported for learner` and `cluster version not found during
//! downgrade` are `FAILED_PRECONDITION` in some releases and `UNAVAILABLE`
//! in others; `auth store is old`, `permission not given`, `ttl is 0`,
//! `watch canceled`, `request canceled` and `context deadline exceeded` only
//! exist in some releases.
//!
//! Two questions matter to the retry logic:
//!
//! * [`EtcdErrorKind::retry`]: may a retry help, and where? ([`RetryScope`]).
//!   This assumes the call is safe to repeat; for a mutation the caller must
//!   also check `may_have_applied`.
//! * [`EtcdErrorKind::may_have_applied`]: could the request have changed the
//!   cluster's state? `false` means etcd rejected it before proposing it to
//!   raft, or applied it as a no-op (auth and quota checks happen at apply
//!   time and change nothing); a mutation with such an error may be retried.
//!   `true` means the outcome is unknown.
//!
//! | kind | message (after `etcdserver: `) | code | retry | may have applied |
//! |---|---|---|---|---|
//! | `EmptyKey` | key is not provided | InvalidArgument | Never | no |
//! | `KeyNotFound` | key not found | InvalidArgument | Never | no |
//! | `ValueProvided` | value is provided | InvalidArgument | Never | no |
//! | `LeaseProvided` | lease is provided | InvalidArgument | Never | no |
//! | `TtlZero` | ttl is 0 | InvalidArgument | Never | no |
//! | `TooManyOps` | too many operations in txn request | InvalidArgument | Never | no |
//! | `DuplicateKey` | duplicate key given in txn request | InvalidArgument | Never | no |
//! | `Compacted` | mvcc: required revision has been compacted | OutOfRange | Never | no |
//! | `FutureRev` | mvcc: required revision is a future revision | OutOfRange | Never | no |
//! | `NoSpace` | mvcc: database space exceeded | ResourceExhausted | Never | no |
//! | `LeaseNotFound` | requested lease not found | NotFound | Never | no |
//! | `LeaseExist` | lease already exists | FailedPrecondition | Never | no |
//! | `LeaseTtlTooLarge` | too large lease TTL | OutOfRange | Never | no |
//! | `WatchCanceled` | watch canceled | Cancelled | Never | no |
//! | `MemberExist` | member ID already exist | FailedPrecondition | Never | no |
//! | `PeerUrlExist` | Peer URLs already exists | FailedPrecondition | Never | no |
//! | `MemberNotEnoughStarted` | re-configuration failed due to not enough started members | FailedPrecondition | Never | no |
//! | `MemberBadUrls` | given member URLs are invalid | InvalidArgument | Never | no |
//! | `MemberNotFound` | member not found | NotFound | Never | no |
//! | `MemberNotLearner` | can only promote a learner member | FailedPrecondition | Never | no |
//! | `LearnerNotReady` | can only promote a learner member which is in sync with leader | FailedPrecondition | Never | no |
//! | `TooManyLearners` | too many learner members in cluster | FailedPrecondition | Never | no |
//! | `RequestTooLarge` | request is too large | InvalidArgument | Never | no |
//! | `TooManyRequests` | too many requests | ResourceExhausted | OtherEndpoint (back off) | no |
//! | `RootUserNotExist` | root user does not exist | FailedPrecondition | Never | no |
//! | `RootRoleNotExist` | root user does not have root role | FailedPrecondition | Never | no |
//! | `UserAlreadyExist` | user name already exists | FailedPrecondition | Never | no |
//! | `UserEmpty` | user name is empty | InvalidArgument | Never | no |
//! | `UserNotFound` | user name not found | FailedPrecondition | Never | no |
//! | `RoleAlreadyExist` | role name already exists | FailedPrecondition | Never | no |
//! | `RoleNotFound` | role name not found | FailedPrecondition | Never | no |
//! | `RoleEmpty` | role name is empty | InvalidArgument | Never | no |
//! | `AuthFailed` | authentication failed, invalid user ID or password | InvalidArgument | Never | no |
//! | `PermissionNotGiven` | permission not given | InvalidArgument | Never | no |
//! | `PermissionDenied` | permission denied | PermissionDenied | Never | no |
//! | `RoleNotGranted` | role is not granted to the user | FailedPrecondition | Never | no |
//! | `PermissionNotGranted` | permission is not granted to the role | FailedPrecondition | Never | no |
//! | `AuthNotEnabled` | authentication is not enabled | FailedPrecondition | Never | no |
//! | `InvalidAuthToken` | invalid auth token | Unauthenticated | SameEndpoint (new token) | no |
//! | `InvalidAuthMgmt` | invalid auth management | InvalidArgument | Never | no |
//! | `AuthOldRevision` | revision of auth store is old | InvalidArgument | SameEndpoint (new token) | no |
//! | `NoLeader` | no leader | Unavailable | OtherEndpoint | no |
//! | `NotLeader` | not leader | FailedPrecondition | OtherEndpoint | no |
//! | `LeaderChanged` | leader changed | Unavailable | SameEndpoint | yes |
//! | `NotCapable` | not capable | Unavailable / FailedPrecondition | OtherEndpoint | no |
//! | `Stopped` | server stopped | Unavailable | OtherEndpoint | yes |
//! | `Timeout` | request timed out | Unavailable | OtherEndpoint | yes |
//! | `TimeoutDueToLeaderFail` | request timed out, possibly due to previous leader failure | Unavailable | SameEndpoint | yes |
//! | `TimeoutDueToConnectionLost` | request timed out, possibly due to connection lost | Unavailable | OtherEndpoint | yes |
//! | `TimeoutWaitAppliedIndex` | request timed out, waiting for the applied index took too long | Unavailable | OtherEndpoint | yes |
//! | `TimeoutLeaderTransfer` | request timed out, leader transfer took too long | Unknown | Never | yes |
//! | `Unhealthy` | unhealthy cluster | Unavailable | Never | no |
//! | `Corrupt` | corrupt cluster | DataLoss | Never | no |
//! | `NotSupportedForLearner` | rpc not supported for learner | Unavailable / FailedPrecondition | OtherEndpoint | no |
//! | `BadLeaderTransferee` | bad leader transferee | FailedPrecondition | Never | no |
//! | `ClusterVersionUnavailable` | cluster version not found during downgrade | Unavailable / FailedPrecondition | Never | no |
//! | `WrongDowngradeVersionFormat` | wrong downgrade target version format | InvalidArgument | Never | no |
//! | `InvalidDowngradeTargetVersion` | invalid downgrade target version | InvalidArgument | Never | no |
//! | `DowngradeInProcess` | cluster has a downgrade job in progress | FailedPrecondition | Never | no |
//! | `NoInflightDowngrade` | no inflight downgrade job | FailedPrecondition | Never | no |
//! | `UnknownMethod` | unknown method | Unknown | Never | no |
//! | `Cancelled` | request canceled / request cancelled, or code CANCELLED | Cancelled | Never | yes |
//! | `DeadlineExceeded` | context deadline exceeded, or code DEADLINE_EXCEEDED | DeadlineExceeded | Never | yes |
//! | `RefusedStream` | the stream was reset with REFUSED_STREAM | Unavailable | OtherEndpoint | no |
//! | `Unavailable` | any other message with code UNAVAILABLE (transport) | Unavailable | OtherEndpoint | yes |
//! | `Unauthenticated` | any other message with code UNAUTHENTICATED | Unauthenticated | SameEndpoint (new token) | no |
//! | `Unimplemented` | any other message with code UNIMPLEMENTED | Unimplemented | Never | no |
//! | `Other` | anything else | any | Never | yes |
//!
//! Notes on the judgements:
//!
//! * `no leader` is answered by the `hasleader` check (and by lease calls
//!   waiting for a leader) before anything is proposed.
//! * `too many requests` is answered when the member's applied index lags its
//!   committed index too far, before proposing; other members may be fine.
//! * `leader changed` comes from a linearizable read whose read-index was
//!   interrupted; reads are idempotent, but it is marked "may have applied"
//!   to stay conservative for any other path.
//! * `server stopped` and the `request timed out` family can be answered
//!   after the proposal was made; the outcome is unknown.
//! * Quota (`database space exceeded`), corruption and permission checks are
//!   made when an entry is applied, and a rejected entry changes nothing.
//!
//! ```
//! use etcdv3_core::wire::error::{classify, EtcdErrorKind, RetryScope};
//! use etcdv3_core::wire::status::{Code, Status};
//!
//! let kind = classify(&Status::new(Code::Unavailable, "etcdserver: no leader"));
//! assert_eq!(kind, EtcdErrorKind::NoLeader);
//! assert_eq!(kind.retry(), RetryScope::OtherEndpoint);
//! assert!(!kind.may_have_applied());
//! ```

use crate::wire::status::{Code, Status, REFUSED_STREAM_MESSAGE};

/// Prefix of every etcd server error message.
pub const ETCDSERVER_PREFIX: &str = "etcdserver: ";

/// Where a retry of a failed call may succeed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RetryScope {
    /// Retrying cannot help: the error is a definite answer to this request.
    Never,
    /// The member is fine and the condition is transient (or fixed by a new
    /// auth token): retry, on this endpoint or any other, after a backoff.
    SameEndpoint,
    /// This member cannot serve the request now: retry on another endpoint.
    OtherEndpoint,
}

#[derive(Clone, Copy)]
enum Applied {
    No,
    Maybe,
}

macro_rules! etcd_errors {
    ($(
        $(#[$doc:meta])*
        $variant:ident => $msg:literal, $code:ident, $retry:ident, $applied:ident;
    )*) => {
        /// The kind of an etcd error. See the [module documentation](self)
        /// for the message, code and retry judgement of every kind.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum EtcdErrorKind {
            $( $(#[$doc])* $variant, )*
            /// The stream was reset by the server with REFUSED_STREAM: the
            /// request was not processed.
            RefusedStream,
            /// Code `CANCELLED` with a message not listed above.
            Cancelled,
            /// Code `DEADLINE_EXCEEDED`, or the server's "context deadline
            /// exceeded".
            DeadlineExceeded,
            /// Code `UNAVAILABLE` with a message not listed above: a
            /// transport or proxy failure.
            Unavailable,
            /// Code `UNAUTHENTICATED` with a message not listed above.
            Unauthenticated,
            /// Code `UNIMPLEMENTED` (e.g. an RPC the server does not know).
            Unimplemented,
            /// Anything else.
            Other,
        }

        impl EtcdErrorKind {
            /// Every kind that has its own etcd error message, in the order of
            /// the module documentation's table.
            pub const KNOWN: &'static [EtcdErrorKind] = &[ $( EtcdErrorKind::$variant, )* ];

            /// The exact message etcd sends for this kind (prefix included),
            /// or `None` for the kinds recognised by status code only.
            pub fn message(self) -> Option<&'static str> {
                match self {
                    $( EtcdErrorKind::$variant => Some(concat!("etcdserver: ", $msg)), )*
                    _ => None,
                }
            }

            /// The status code etcd sends with this kind's message (for kinds
            /// whose code differs between releases, the newer one).
            pub fn code(self) -> Code {
                match self {
                    $( EtcdErrorKind::$variant => Code::$code, )*
                    EtcdErrorKind::RefusedStream => Code::Unavailable,
                    EtcdErrorKind::Cancelled => Code::Cancelled,
                    EtcdErrorKind::DeadlineExceeded => Code::DeadlineExceeded,
                    EtcdErrorKind::Unavailable => Code::Unavailable,
                    EtcdErrorKind::Unauthenticated => Code::Unauthenticated,
                    EtcdErrorKind::Unimplemented => Code::Unimplemented,
                    EtcdErrorKind::Other => Code::Unknown,
                }
            }

            /// Where a retry may succeed, assuming the call is safe to repeat.
            pub fn retry(&self) -> RetryScope {
                match self {
                    $( EtcdErrorKind::$variant => RetryScope::$retry, )*
                    EtcdErrorKind::RefusedStream => RetryScope::OtherEndpoint,
                    EtcdErrorKind::Cancelled => RetryScope::Never,
                    EtcdErrorKind::DeadlineExceeded => RetryScope::Never,
                    EtcdErrorKind::Unavailable => RetryScope::OtherEndpoint,
                    EtcdErrorKind::Unauthenticated => RetryScope::SameEndpoint,
                    EtcdErrorKind::Unimplemented => RetryScope::Never,
                    EtcdErrorKind::Other => RetryScope::Never,
                }
            }

            fn applied(self) -> Applied {
                match self {
                    $( EtcdErrorKind::$variant => Applied::$applied, )*
                    EtcdErrorKind::RefusedStream => Applied::No,
                    EtcdErrorKind::Cancelled => Applied::Maybe,
                    EtcdErrorKind::DeadlineExceeded => Applied::Maybe,
                    EtcdErrorKind::Unavailable => Applied::Maybe,
                    EtcdErrorKind::Unauthenticated => Applied::No,
                    EtcdErrorKind::Unimplemented => Applied::No,
                    EtcdErrorKind::Other => Applied::Maybe,
                }
            }
        }

        fn classify_message(msg: &str) -> Option<EtcdErrorKind> {
            match msg {
                $( $msg => Some(EtcdErrorKind::$variant), )*
                _ => None,
            }
        }
    };
}

etcd_errors! {
    /// `etcdserver: key is not provided`.
    EmptyKey => "key is not provided", InvalidArgument, Never, No;
    /// `etcdserver: key not found`.
    KeyNotFound => "key not found", InvalidArgument, Never, No;
    /// `etcdserver: value is provided`.
    ValueProvided => "value is provided", InvalidArgument, Never, No;
    /// `etcdserver: lease is provided`.
    LeaseProvided => "lease is provided", InvalidArgument, Never, No;
    /// `etcdserver: ttl is 0`.
    TtlZero => "ttl is 0", InvalidArgument, Never, No;
    /// `etcdserver: too many operations in txn request`.
    TooManyOps => "too many operations in txn request", InvalidArgument, Never, No;
    /// `etcdserver: duplicate key given in txn request`.
    DuplicateKey => "duplicate key given in txn request", InvalidArgument, Never, No;
    /// `etcdserver: mvcc: required revision has been compacted`.
    Compacted => "mvcc: required revision has been compacted", OutOfRange, Never, No;
    /// `etcdserver: mvcc: required revision is a future revision`.
    FutureRev => "mvcc: required revision is a future revision", OutOfRange, Never, No;
    /// `etcdserver: mvcc: database space exceeded` (the NOSPACE alarm).
    NoSpace => "mvcc: database space exceeded", ResourceExhausted, Never, No;
    /// `etcdserver: requested lease not found`.
    LeaseNotFound => "requested lease not found", NotFound, Never, No;
    /// `etcdserver: lease already exists`.
    LeaseExist => "lease already exists", FailedPrecondition, Never, No;
    /// `etcdserver: too large lease TTL`.
    LeaseTtlTooLarge => "too large lease TTL", OutOfRange, Never, No;
    /// `etcdserver: watch canceled`.
    WatchCanceled => "watch canceled", Cancelled, Never, No;
    /// `etcdserver: member ID already exist`.
    MemberExist => "member ID already exist", FailedPrecondition, Never, No;
    /// `etcdserver: Peer URLs already exists`.
    PeerUrlExist => "Peer URLs already exists", FailedPrecondition, Never, No;
    /// `etcdserver: re-configuration failed due to not enough started members`.
    MemberNotEnoughStarted => "re-configuration failed due to not enough started members", FailedPrecondition, Never, No;
    /// `etcdserver: given member URLs are invalid`.
    MemberBadUrls => "given member URLs are invalid", InvalidArgument, Never, No;
    /// `etcdserver: member not found`.
    MemberNotFound => "member not found", NotFound, Never, No;
    /// `etcdserver: can only promote a learner member`.
    MemberNotLearner => "can only promote a learner member", FailedPrecondition, Never, No;
    /// `etcdserver: can only promote a learner member which is in sync with leader`.
    LearnerNotReady => "can only promote a learner member which is in sync with leader", FailedPrecondition, Never, No;
    /// `etcdserver: too many learner members in cluster`.
    TooManyLearners => "too many learner members in cluster", FailedPrecondition, Never, No;
    /// `etcdserver: request is too large`.
    RequestTooLarge => "request is too large", InvalidArgument, Never, No;
    /// `etcdserver: too many requests`: the member's apply lags its commits.
    TooManyRequests => "too many requests", ResourceExhausted, OtherEndpoint, No;
    /// `etcdserver: root user does not exist`.
    RootUserNotExist => "root user does not exist", FailedPrecondition, Never, No;
    /// `etcdserver: root user does not have root role`.
    RootRoleNotExist => "root user does not have root role", FailedPrecondition, Never, No;
    /// `etcdserver: user name already exists`.
    UserAlreadyExist => "user name already exists", FailedPrecondition, Never, No;
    /// `etcdserver: user name is empty` (also: the token was lost).
    UserEmpty => "user name is empty", InvalidArgument, Never, No;
    /// `etcdserver: user name not found`.
    UserNotFound => "user name not found", FailedPrecondition, Never, No;
    /// `etcdserver: role name already exists`.
    RoleAlreadyExist => "role name already exists", FailedPrecondition, Never, No;
    /// `etcdserver: role name not found`.
    RoleNotFound => "role name not found", FailedPrecondition, Never, No;
    /// `etcdserver: role name is empty`.
    RoleEmpty => "role name is empty", InvalidArgument, Never, No;
    /// `etcdserver: authentication failed, invalid user ID or password`.
    AuthFailed => "authentication failed, invalid user ID or password", InvalidArgument, Never, No;
    /// `etcdserver: permission not given`.
    PermissionNotGiven => "permission not given", InvalidArgument, Never, No;
    /// `etcdserver: permission denied`.
    PermissionDenied => "permission denied", PermissionDenied, Never, No;
    /// `etcdserver: role is not granted to the user`.
    RoleNotGranted => "role is not granted to the user", FailedPrecondition, Never, No;
    /// `etcdserver: permission is not granted to the role`.
    PermissionNotGranted => "permission is not granted to the role", FailedPrecondition, Never, No;
    /// `etcdserver: authentication is not enabled`.
    AuthNotEnabled => "authentication is not enabled", FailedPrecondition, Never, No;
    /// `etcdserver: invalid auth token`: authenticate again and retry.
    InvalidAuthToken => "invalid auth token", Unauthenticated, SameEndpoint, No;
    /// `etcdserver: invalid auth management`.
    InvalidAuthMgmt => "invalid auth management", InvalidArgument, Never, No;
    /// `etcdserver: revision of auth store is old`: authenticate again and retry.
    AuthOldRevision => "revision of auth store is old", InvalidArgument, SameEndpoint, No;
    /// `etcdserver: no leader`.
    NoLeader => "no leader", Unavailable, OtherEndpoint, No;
    /// `etcdserver: not leader`.
    NotLeader => "not leader", FailedPrecondition, OtherEndpoint, No;
    /// `etcdserver: leader changed`.
    LeaderChanged => "leader changed", Unavailable, SameEndpoint, Maybe;
    /// `etcdserver: not capable`.
    NotCapable => "not capable", Unavailable, OtherEndpoint, No;
    /// `etcdserver: server stopped`.
    Stopped => "server stopped", Unavailable, OtherEndpoint, Maybe;
    /// `etcdserver: request timed out`.
    Timeout => "request timed out", Unavailable, OtherEndpoint, Maybe;
    /// `etcdserver: request timed out, possibly due to previous leader failure`.
    TimeoutDueToLeaderFail => "request timed out, possibly due to previous leader failure", Unavailable, SameEndpoint, Maybe;
    /// `etcdserver: request timed out, possibly due to connection lost`.
    TimeoutDueToConnectionLost => "request timed out, possibly due to connection lost", Unavailable, OtherEndpoint, Maybe;
    /// `etcdserver: request timed out, waiting for the applied index took too long`.
    TimeoutWaitAppliedIndex => "request timed out, waiting for the applied index took too long", Unavailable, OtherEndpoint, Maybe;
    /// `etcdserver: request timed out, leader transfer took too long`.
    TimeoutLeaderTransfer => "request timed out, leader transfer took too long", Unknown, Never, Maybe;
    /// `etcdserver: unhealthy cluster`.
    Unhealthy => "unhealthy cluster", Unavailable, Never, No;
    /// `etcdserver: corrupt cluster`.
    Corrupt => "corrupt cluster", DataLoss, Never, No;
    /// `etcdserver: rpc not supported for learner`.
    NotSupportedForLearner => "rpc not supported for learner", Unavailable, OtherEndpoint, No;
    /// `etcdserver: bad leader transferee`.
    BadLeaderTransferee => "bad leader transferee", FailedPrecondition, Never, No;
    /// `etcdserver: cluster version not found during downgrade`.
    ClusterVersionUnavailable => "cluster version not found during downgrade", Unavailable, Never, No;
    /// `etcdserver: wrong downgrade target version format`.
    WrongDowngradeVersionFormat => "wrong downgrade target version format", InvalidArgument, Never, No;
    /// `etcdserver: invalid downgrade target version`.
    InvalidDowngradeTargetVersion => "invalid downgrade target version", InvalidArgument, Never, No;
    /// `etcdserver: cluster has a downgrade job in progress`.
    DowngradeInProcess => "cluster has a downgrade job in progress", FailedPrecondition, Never, No;
    /// `etcdserver: no inflight downgrade job`.
    NoInflightDowngrade => "no inflight downgrade job", FailedPrecondition, Never, No;
    /// `etcdserver: unknown method`.
    UnknownMethod => "unknown method", Unknown, Never, No;
}

/// Messages that name an existing kind in other words (server-internal
/// spellings that can reach the wire, and older forms).
fn classify_alias(msg: &str) -> Option<EtcdErrorKind> {
    Some(match msg {
        "no space" => EtcdErrorKind::NoSpace,
        "database space exceeded" => EtcdErrorKind::NoSpace,
        "required revision has been compacted" => EtcdErrorKind::Compacted,
        "required revision is a future revision" => EtcdErrorKind::FutureRev,
        "lease not found" => EtcdErrorKind::LeaseNotFound,
        "request canceled" | "request cancelled" | "context canceled" => EtcdErrorKind::Cancelled,
        "context deadline exceeded" => EtcdErrorKind::DeadlineExceeded,
        REFUSED_STREAM_MESSAGE => EtcdErrorKind::RefusedStream,
        _ => return None,
    })
}

/// Classifies a failed call's status.
///
/// The message is matched exactly (after trimming whitespace), with or
/// without the `"etcdserver: "` prefix; unknown messages are classified by
/// [`classify_code_only`].
pub fn classify(status: &Status) -> EtcdErrorKind {
    let msg = status.message.trim();
    let bare = msg
        .strip_prefix(ETCDSERVER_PREFIX)
        .or_else(|| msg.strip_prefix("etcdserver:"))
        .map(str::trim_start)
        .unwrap_or(msg);
    classify_message(bare)
        .or_else(|| classify_alias(bare))
        .unwrap_or_else(|| classify_code_only(status.code))
}

/// The kind implied by a status code alone.
///
/// `CANCELLED`, `DEADLINE_EXCEEDED`, `UNAVAILABLE`, `UNAUTHENTICATED` and
/// `UNIMPLEMENTED` have their own kinds; everything else is
/// [`EtcdErrorKind::Other`].
pub fn classify_code_only(code: Code) -> EtcdErrorKind {
    match code {
        Code::Cancelled => EtcdErrorKind::Cancelled,
        Code::DeadlineExceeded => EtcdErrorKind::DeadlineExceeded,
        Code::Unavailable => EtcdErrorKind::Unavailable,
        Code::Unauthenticated => EtcdErrorKind::Unauthenticated,
        Code::Unimplemented => EtcdErrorKind::Unimplemented,
        _ => EtcdErrorKind::Other,
    }
}

impl EtcdErrorKind {
    /// Whether the request may have been applied (its outcome is unknown).
    ///
    /// `false` means it certainly changed nothing, so even a mutation may be
    /// retried (where [`retry`](Self::retry) allows).
    pub fn may_have_applied(&self) -> bool {
        matches!(self.applied(), Applied::Maybe)
    }

    /// Whether the outcome is definite: the request certainly changed
    /// nothing. Exactly `!self.may_have_applied()`.
    pub fn is_definite(&self) -> bool {
        !self.may_have_applied()
    }

    /// Whether the auth token was rejected (invalid, expired, or issued before
    /// the auth store changed): authenticate again, then retry once.
    pub fn is_invalid_token(&self) -> bool {
        matches!(
            self,
            EtcdErrorKind::InvalidAuthToken
                | EtcdErrorKind::AuthOldRevision
                | EtcdErrorKind::Unauthenticated
        )
    }

    /// Like [`is_invalid_token`](Self::is_invalid_token), plus `UserEmpty`,
    /// which the server returns when a call that needs a user carries no
    /// (valid) token: worth a fresh token when the client has credentials.
    pub fn suggests_reauthentication(&self) -> bool {
        self.is_invalid_token() || *self == EtcdErrorKind::UserEmpty
    }

    /// The status etcd sends for this kind, for kinds with their own message
    /// (useful to simulate a server).
    pub fn to_status(self) -> Option<Status> {
        self.message().map(|m| Status::new(self.code(), m))
    }
}

/// A refusal that is about the caller's token (see [`auth_refusal`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthRefusal {
    /// The token is invalid, expired, issued before the auth store changed,
    /// or missing ("user name is empty"): a fresh token cures it.
    Token,
    /// "permission denied": the user lacks the permission, or the token
    /// expired (etcd refuses the watches of a stream whose token expired
    /// so). Worth one fresh token on a stream; final for a unary call.
    Permission,
}

/// The one rule for refusals about the token, used by unary calls (the
/// core refreshes the token on [`AuthRefusal::Token`] only), by streams
/// ended with such a status and by watches cancelled with such a reason
/// (both: a fresh token, once, on either kind). The message may be
/// wrapped as a gRPC error string ("rpc error: code = PermissionDenied desc
/// = etcdserver: permission denied", as etcd writes watch cancel reasons).
pub fn auth_refusal(status: &Status) -> Option<AuthRefusal> {
    let bare = status
        .message
        .split_once("desc = ")
        .map_or(status.message.as_str(), |(_, desc)| desc);
    let kind = if bare.len() == status.message.len() {
        classify(status)
    } else {
        classify(&Status::new(status.code, bare))
    };
    if kind.suggests_reauthentication() || bare.contains("user name is empty") {
        Some(AuthRefusal::Token)
    } else if kind == EtcdErrorKind::PermissionDenied {
        Some(AuthRefusal::Permission)
    } else {
        None
    }
}

/// [`auth_refusal`] of a watch's cancel reason (a message without a code).
pub fn auth_refusal_of_reason(reason: &str) -> Option<AuthRefusal> {
    auth_refusal(&Status::new(crate::wire::status::Code::Unknown, reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_is_optional() {
        let with = Status::new(Code::Unavailable, "etcdserver: leader changed");
        let without = Status::new(Code::Unavailable, "leader changed");
        assert_eq!(classify(&with), EtcdErrorKind::LeaderChanged);
        assert_eq!(classify(&without), EtcdErrorKind::LeaderChanged);
    }

    #[test]
    fn code_fallback() {
        let s = Status::new(Code::Unavailable, "connection reset");
        assert_eq!(classify(&s), EtcdErrorKind::Unavailable);
        let s = Status::new(Code::InvalidArgument, "etcdserver: something new");
        assert_eq!(classify(&s), EtcdErrorKind::Other);
    }
}
