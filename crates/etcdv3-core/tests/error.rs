//! Tests of etcd error classification.

use std::collections::HashSet;

use etcdv3_core::wire::error::{classify, classify_code_only, EtcdErrorKind, RetryScope};
use etcdv3_core::wire::status::{Code, Status};
use proptest::prelude::*;

/// Every message in etcd's `api/v3rpc/rpctypes/error.go` (across releases),
/// plus server errors that reach the wire unmapped, written out here
/// independently of the table in `error.rs`.
const ETCD_MESSAGES: &[(&str, Code)] = &[
    ("etcdserver: key is not provided", Code::InvalidArgument),
    ("etcdserver: key not found", Code::InvalidArgument),
    ("etcdserver: value is provided", Code::InvalidArgument),
    ("etcdserver: lease is provided", Code::InvalidArgument),
    ("etcdserver: ttl is 0", Code::InvalidArgument),
    (
        "etcdserver: too many operations in txn request",
        Code::InvalidArgument,
    ),
    (
        "etcdserver: duplicate key given in txn request",
        Code::InvalidArgument,
    ),
    (
        "etcdserver: mvcc: required revision has been compacted",
        Code::OutOfRange,
    ),
    (
        "etcdserver: mvcc: required revision is a future revision",
        Code::OutOfRange,
    ),
    (
        "etcdserver: mvcc: database space exceeded",
        Code::ResourceExhausted,
    ),
    ("etcdserver: requested lease not found", Code::NotFound),
    ("etcdserver: lease already exists", Code::FailedPrecondition),
    ("etcdserver: too large lease TTL", Code::OutOfRange),
    ("etcdserver: watch canceled", Code::Cancelled),
    (
        "etcdserver: member ID already exist",
        Code::FailedPrecondition,
    ),
    (
        "etcdserver: Peer URLs already exists",
        Code::FailedPrecondition,
    ),
    (
        "etcdserver: re-configuration failed due to not enough started members",
        Code::FailedPrecondition,
    ),
    (
        "etcdserver: given member URLs are invalid",
        Code::InvalidArgument,
    ),
    ("etcdserver: member not found", Code::NotFound),
    (
        "etcdserver: can only promote a learner member",
        Code::FailedPrecondition,
    ),
    (
        "etcdserver: can only promote a learner member which is in sync with leader",
        Code::FailedPrecondition,
    ),
    (
        "etcdserver: too many learner members in cluster",
        Code::FailedPrecondition,
    ),
    ("etcdserver: request is too large", Code::InvalidArgument),
    ("etcdserver: too many requests", Code::ResourceExhausted),
    (
        "etcdserver: root user does not exist",
        Code::FailedPrecondition,
    ),
    (
        "etcdserver: root user does not have root role",
        Code::FailedPrecondition,
    ),
    (
        "etcdserver: user name already exists",
        Code::FailedPrecondition,
    ),
    ("etcdserver: user name is empty", Code::InvalidArgument),
    ("etcdserver: user name not found", Code::FailedPrecondition),
    (
        "etcdserver: role name already exists",
        Code::FailedPrecondition,
    ),
    ("etcdserver: role name not found", Code::FailedPrecondition),
    ("etcdserver: role name is empty", Code::InvalidArgument),
    (
        "etcdserver: authentication failed, invalid user ID or password",
        Code::InvalidArgument,
    ),
    ("etcdserver: permission not given", Code::InvalidArgument),
    ("etcdserver: permission denied", Code::PermissionDenied),
    (
        "etcdserver: role is not granted to the user",
        Code::FailedPrecondition,
    ),
    (
        "etcdserver: permission is not granted to the role",
        Code::FailedPrecondition,
    ),
    (
        "etcdserver: authentication is not enabled",
        Code::FailedPrecondition,
    ),
    ("etcdserver: invalid auth token", Code::Unauthenticated),
    ("etcdserver: invalid auth management", Code::InvalidArgument),
    (
        "etcdserver: revision of auth store is old",
        Code::InvalidArgument,
    ),
    ("etcdserver: no leader", Code::Unavailable),
    ("etcdserver: not leader", Code::FailedPrecondition),
    ("etcdserver: leader changed", Code::Unavailable),
    ("etcdserver: not capable", Code::FailedPrecondition),
    ("etcdserver: server stopped", Code::Unavailable),
    ("etcdserver: request timed out", Code::Unavailable),
    (
        "etcdserver: request timed out, possibly due to previous leader failure",
        Code::Unavailable,
    ),
    (
        "etcdserver: request timed out, possibly due to connection lost",
        Code::Unavailable,
    ),
    (
        "etcdserver: request timed out, waiting for the applied index took too long",
        Code::Unavailable,
    ),
    (
        "etcdserver: request timed out, leader transfer took too long",
        Code::Unknown,
    ),
    ("etcdserver: unhealthy cluster", Code::Unavailable),
    ("etcdserver: corrupt cluster", Code::DataLoss),
    (
        "etcdserver: rpc not supported for learner",
        Code::FailedPrecondition,
    ),
    (
        "etcdserver: bad leader transferee",
        Code::FailedPrecondition,
    ),
    (
        "etcdserver: cluster version not found during downgrade",
        Code::FailedPrecondition,
    ),
    (
        "etcdserver: wrong downgrade target version format",
        Code::InvalidArgument,
    ),
    (
        "etcdserver: invalid downgrade target version",
        Code::InvalidArgument,
    ),
    (
        "etcdserver: cluster has a downgrade job in progress",
        Code::FailedPrecondition,
    ),
    (
        "etcdserver: no inflight downgrade job",
        Code::FailedPrecondition,
    ),
    ("etcdserver: unknown method", Code::Unknown),
];

#[test]
fn every_etcd_message_has_its_own_kind() {
    let mut seen = HashSet::new();
    for (msg, code) in ETCD_MESSAGES {
        let kind = classify(&Status::new(*code, *msg));
        assert_ne!(kind, EtcdErrorKind::Other, "{msg}");
        assert!(EtcdErrorKind::KNOWN.contains(&kind), "{msg} -> {kind:?}");
        assert!(
            seen.insert(kind),
            "{msg} shares {kind:?} with another message"
        );
        assert_eq!(kind.message(), Some(*msg));
        // Without the prefix, and with a different code, the kind is the same.
        let bare = msg.strip_prefix("etcdserver: ").unwrap();
        assert_eq!(classify(&Status::new(Code::Unknown, bare)), kind, "{bare}");
    }
    assert_eq!(
        seen.len(),
        EtcdErrorKind::KNOWN.len(),
        "table and test disagree"
    );
}

#[test]
fn to_status_round_trips() {
    for kind in EtcdErrorKind::KNOWN {
        let status = kind.to_status().unwrap();
        assert_eq!(classify(&status), *kind);
    }
    assert_eq!(EtcdErrorKind::Other.to_status(), None);
}

#[test]
fn retry_and_applied_judgements() {
    use EtcdErrorKind as K;
    use RetryScope::*;
    let table = [
        (K::NoLeader, OtherEndpoint, false),
        (K::NotCapable, OtherEndpoint, false),
        (K::Stopped, OtherEndpoint, true),
        (K::TooManyRequests, OtherEndpoint, false),
        (K::LeaderChanged, SameEndpoint, true),
        (K::Timeout, OtherEndpoint, true),
        (K::TimeoutDueToLeaderFail, SameEndpoint, true),
        (K::TimeoutDueToConnectionLost, OtherEndpoint, true),
        (K::TimeoutWaitAppliedIndex, OtherEndpoint, true),
        (K::Compacted, Never, false),
        (K::FutureRev, Never, false),
        (K::KeyNotFound, Never, false),
        (K::EmptyKey, Never, false),
        (K::LeaseNotFound, Never, false),
        (K::PermissionDenied, Never, false),
        (K::InvalidAuthToken, SameEndpoint, false),
        (K::AuthOldRevision, SameEndpoint, false),
        (K::RequestTooLarge, Never, false),
        (K::TooManyOps, Never, false),
        (K::DuplicateKey, Never, false),
        (K::RefusedStream, OtherEndpoint, false),
        (K::Unavailable, OtherEndpoint, true),
        (K::DeadlineExceeded, Never, true),
        (K::Cancelled, Never, true),
        (K::Other, Never, true),
    ];
    for (kind, retry, applied) in table {
        assert_eq!(kind.retry(), retry, "{kind:?}");
        assert_eq!(kind.may_have_applied(), applied, "{kind:?}");
        assert_eq!(kind.is_definite(), !applied, "{kind:?}");
    }
}

#[test]
fn token_errors() {
    assert!(EtcdErrorKind::InvalidAuthToken.is_invalid_token());
    assert!(EtcdErrorKind::AuthOldRevision.is_invalid_token());
    assert!(!EtcdErrorKind::PermissionDenied.is_invalid_token());
    assert!(!EtcdErrorKind::UserEmpty.is_invalid_token());
    assert!(EtcdErrorKind::UserEmpty.suggests_reauthentication());
    assert!(!EtcdErrorKind::AuthFailed.suggests_reauthentication());
}

#[test]
fn code_only_fallbacks() {
    let transport = Status::new(
        Code::Unavailable,
        "connection closed before message completed",
    );
    assert_eq!(classify(&transport), EtcdErrorKind::Unavailable);
    assert_eq!(
        classify(&Status::new(Code::DeadlineExceeded, "")),
        EtcdErrorKind::DeadlineExceeded
    );
    assert_eq!(
        classify(&Status::new(
            Code::DeadlineExceeded,
            "context deadline exceeded"
        )),
        EtcdErrorKind::DeadlineExceeded
    );
    assert_eq!(
        classify(&Status::new(Code::Cancelled, "context canceled")),
        EtcdErrorKind::Cancelled
    );
    assert_eq!(
        classify(&Status::new(
            Code::Cancelled,
            "etcdserver: request canceled"
        )),
        EtcdErrorKind::Cancelled
    );
    assert_eq!(
        classify(&Status::new(Code::Unimplemented, "unknown service")),
        EtcdErrorKind::Unimplemented
    );
    assert_eq!(
        classify(&Status::new(Code::Internal, "etcdserver: brand new error")),
        EtcdErrorKind::Other
    );
    assert_eq!(
        classify_code_only(Code::Unauthenticated),
        EtcdErrorKind::Unauthenticated
    );
    assert_eq!(classify_code_only(Code::Ok), EtcdErrorKind::Other);
    // A reset with REFUSED_STREAM is recognised.
    assert_eq!(
        classify(&Status::from_h2_reason(0x7)),
        EtcdErrorKind::RefusedStream
    );
    assert_eq!(
        classify(&Status::from_h2_reason(0x8)),
        EtcdErrorKind::Cancelled
    );
}

#[test]
fn tolerant_of_whitespace_and_aliases() {
    assert_eq!(
        classify(&Status::new(
            Code::Unavailable,
            "  etcdserver: no leader \n"
        )),
        EtcdErrorKind::NoLeader
    );
    assert_eq!(
        classify(&Status::new(Code::Unknown, "etcdserver:no leader")),
        EtcdErrorKind::NoLeader
    );
    assert_eq!(
        classify(&Status::new(
            Code::OutOfRange,
            "required revision has been compacted"
        )),
        EtcdErrorKind::Compacted
    );
    assert_eq!(
        classify(&Status::new(Code::Unknown, "etcdserver: no space")),
        EtcdErrorKind::NoSpace
    );
    assert_eq!(
        classify(&Status::new(Code::NotFound, "lease not found")),
        EtcdErrorKind::LeaseNotFound
    );
    // Near misses are not matched.
    assert_eq!(
        classify(&Status::new(
            Code::InvalidArgument,
            "etcdserver: no leader yet"
        )),
        EtcdErrorKind::Other
    );
}

proptest! {
    #[test]
    fn classify_never_panics(code in any::<i32>(), msg in any::<String>()) {
        let kind = classify(&Status::new(Code::from_i32(code), msg));
        let _ = (kind.retry(), kind.may_have_applied(), kind.code(), kind.message());
    }

    #[test]
    fn unknown_messages_fall_back_to_code(code in 0i32..=16, msg in "[a-z ]{0,30}x") {
        let code = Code::from_i32(code);
        prop_assert_eq!(classify(&Status::new(code, msg)), classify_code_only(code));
    }
}
