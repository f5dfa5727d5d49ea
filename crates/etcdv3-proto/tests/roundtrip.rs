//! Wire-level tests of the generated messages and the method catalogue.

use std::collections::{BTreeMap, BTreeSet};

use etcdv3_proto::method::{self, by_path, Idempotency, Method, RpcShape, ALL};
use etcdv3_proto::{authpb, etcdserverpb, mvccpb, v3electionpb, v3lockpb};
use prost::{Message, Name};

/// Every message of `proto/` as "package.Name field_count", written by build.rs.
const MESSAGE_NAMES: &str = include_str!(concat!(env!("OUT_DIR"), "/message_names.txt"));

/// (full name, whether the message has fields)
type Seen = (String, bool);

/// Encodes a non-default message, decodes it back and compares.
fn check<M: Message + Name + Default + PartialEq + std::fmt::Debug>(msg: M) -> Seen {
    assert_ne!(
        msg,
        M::default(),
        "{} sample must not be the default",
        M::full_name()
    );
    let bytes = msg.encode_to_vec();
    assert!(!bytes.is_empty(), "{} encoded to nothing", M::full_name());
    assert_eq!(bytes.len(), msg.encoded_len());
    let back = M::decode(bytes.as_slice()).unwrap();
    assert_eq!(back, msg, "{} did not round-trip", M::full_name());
    // Length-delimited framing too (as used inside other messages).
    let delimited = msg.encode_length_delimited_to_vec();
    assert_eq!(
        M::decode_length_delimited(delimited.as_slice()).unwrap(),
        msg
    );
    (M::full_name(), true)
}

/// A message without fields: encodes to nothing and decodes from nothing.
fn check_empty<M: Message + Name + Default + PartialEq + std::fmt::Debug>() -> Seen {
    let msg = M::default();
    assert!(msg.encode_to_vec().is_empty());
    assert_eq!(M::decode(&[][..]).unwrap(), msg);
    // Unknown fields are skipped, as a newer server may send them.
    assert_eq!(M::decode(&[0x08, 0x01][..]).unwrap(), msg);
    (M::full_name(), false)
}

fn all_samples() -> Vec<Seen> {
    vec![
        check(mvccpb::KeyValue {
            key: vec![1u8, 0xff, 0x00],
            create_revision: -2007,
            mod_revision: -3007,
            version: -4007,
            value: vec![5u8, 0xff, 0x00],
            lease: -6007,
        }),
        check(mvccpb::Event {
            r#type: 1,
            kv: Some(mvccpb::KeyValue {
                key: vec![1u8, 0xff, 0x00],
                create_revision: -2007,
                mod_revision: -3007,
                version: -4007,
                value: vec![5u8, 0xff, 0x00],
                lease: -6007,
            }),
            prev_kv: Some(mvccpb::KeyValue {
                key: vec![1u8, 0xff, 0x00],
                create_revision: -2007,
                mod_revision: -3007,
                version: -4007,
                value: vec![5u8, 0xff, 0x00],
                lease: -6007,
            }),
        }),
        check(authpb::UserAddOptions { no_password: true }),
        check(authpb::User {
            name: vec![1u8, 0xff, 0x00],
            password: vec![2u8, 0xff, 0x00],
            roles: vec!["s3".to_string()],
            options: Some(authpb::UserAddOptions { no_password: true }),
        }),
        check(authpb::Permission {
            perm_type: 1,
            key: vec![2u8, 0xff, 0x00],
            range_end: vec![3u8, 0xff, 0x00],
        }),
        check(authpb::Role {
            name: vec![1u8, 0xff, 0x00],
            key_permission: vec![authpb::Permission {
                perm_type: 1,
                key: vec![2u8, 0xff, 0x00],
                range_end: vec![3u8, 0xff, 0x00],
            }],
        }),
        check(etcdserverpb::ResponseHeader {
            cluster_id: 1007,
            member_id: 2007,
            revision: -3007,
            raft_term: 4007,
        }),
        check(etcdserverpb::RangeRequest {
            key: vec![1u8, 0xff, 0x00],
            range_end: vec![2u8, 0xff, 0x00],
            limit: -3007,
            revision: -4007,
            sort_order: 1,
            sort_target: 1,
            serializable: true,
            keys_only: true,
            count_only: true,
            min_mod_revision: -10007,
            max_mod_revision: -11007,
            min_create_revision: -12007,
            max_create_revision: -13007,
        }),
        check(etcdserverpb::RangeResponse {
            header: Some(etcdserverpb::ResponseHeader {
                cluster_id: 1007,
                member_id: 2007,
                revision: -3007,
                raft_term: 4007,
            }),
            kvs: vec![mvccpb::KeyValue {
                key: vec![1u8, 0xff, 0x00],
                create_revision: -2007,
                mod_revision: -3007,
                version: -4007,
                value: vec![5u8, 0xff, 0x00],
                lease: -6007,
            }],
            more: true,
            count: -4007,
        }),
        check(etcdserverpb::PutRequest {
            key: vec![1u8, 0xff, 0x00],
            value: vec![2u8, 0xff, 0x00],
            lease: -3007,
            prev_kv: true,
            ignore_value: true,
            ignore_lease: true,
        }),
        check(etcdserverpb::PutResponse {
            header: Some(etcdserverpb::ResponseHeader {
                cluster_id: 1007,
                member_id: 2007,
                revision: -3007,
                raft_term: 4007,
            }),
            prev_kv: Some(mvccpb::KeyValue {
                key: vec![1u8, 0xff, 0x00],
                create_revision: -2007,
                mod_revision: -3007,
                version: -4007,
                value: vec![5u8, 0xff, 0x00],
                lease: -6007,
            }),
        }),
        check(etcdserverpb::DeleteRangeRequest {
            key: vec![1u8, 0xff, 0x00],
            range_end: vec![2u8, 0xff, 0x00],
            prev_kv: true,
        }),
        check(etcdserverpb::DeleteRangeResponse {
            header: Some(etcdserverpb::ResponseHeader {
                cluster_id: 1007,
                member_id: 2007,
                revision: -3007,
                raft_term: 4007,
            }),
            deleted: -2007,
            prev_kvs: vec![mvccpb::KeyValue {
                key: vec![1u8, 0xff, 0x00],
                create_revision: -2007,
                mod_revision: -3007,
                version: -4007,
                value: vec![5u8, 0xff, 0x00],
                lease: -6007,
            }],
        }),
        check(etcdserverpb::RequestOp {
            request: Some(etcdserverpb::request_op::Request::RequestRange(
                etcdserverpb::RangeRequest {
                    key: vec![1u8, 0xff, 0x00],
                    range_end: vec![2u8, 0xff, 0x00],
                    limit: -3007,
                    revision: -4007,
                    sort_order: 1,
                    sort_target: 1,
                    serializable: true,
                    keys_only: true,
                    count_only: true,
                    min_mod_revision: -10007,
                    max_mod_revision: -11007,
                    min_create_revision: -12007,
                    max_create_revision: -13007,
                },
            )),
        }),
        check(etcdserverpb::ResponseOp {
            response: Some(etcdserverpb::response_op::Response::ResponseRange(
                etcdserverpb::RangeResponse {
                    header: Some(etcdserverpb::ResponseHeader {
                        cluster_id: 1007,
                        member_id: 2007,
                        revision: -3007,
                        raft_term: 4007,
                    }),
                    kvs: vec![mvccpb::KeyValue {
                        key: vec![1u8, 0xff, 0x00],
                        create_revision: -2007,
                        mod_revision: -3007,
                        version: -4007,
                        value: vec![5u8, 0xff, 0x00],
                        lease: -6007,
                    }],
                    more: true,
                    count: -4007,
                },
            )),
        }),
        check(etcdserverpb::Compare {
            result: 1,
            target: 1,
            key: vec![3u8, 0xff, 0x00],
            range_end: vec![64u8, 0xff, 0x00],
            target_union: Some(etcdserverpb::compare::TargetUnion::Version(-4007)),
        }),
        check(etcdserverpb::TxnRequest {
            compare: vec![etcdserverpb::Compare {
                result: 1,
                target: 1,
                key: vec![3u8, 0xff, 0x00],
                range_end: vec![64u8, 0xff, 0x00],
                target_union: Some(etcdserverpb::compare::TargetUnion::Version(-4007)),
            }],
            success: vec![etcdserverpb::RequestOp {
                request: Some(etcdserverpb::request_op::Request::RequestRange(
                    etcdserverpb::RangeRequest {
                        key: vec![1u8, 0xff, 0x00],
                        range_end: vec![2u8, 0xff, 0x00],
                        limit: -3007,
                        revision: -4007,
                        sort_order: 1,
                        sort_target: 1,
                        serializable: true,
                        keys_only: true,
                        count_only: true,
                        min_mod_revision: -10007,
                        max_mod_revision: -11007,
                        min_create_revision: -12007,
                        max_create_revision: -13007,
                    },
                )),
            }],
            failure: vec![etcdserverpb::RequestOp {
                request: Some(etcdserverpb::request_op::Request::RequestRange(
                    etcdserverpb::RangeRequest {
                        key: vec![1u8, 0xff, 0x00],
                        range_end: vec![2u8, 0xff, 0x00],
                        limit: -3007,
                        revision: -4007,
                        sort_order: 1,
                        sort_target: 1,
                        serializable: true,
                        keys_only: true,
                        count_only: true,
                        min_mod_revision: -10007,
                        max_mod_revision: -11007,
                        min_create_revision: -12007,
                        max_create_revision: -13007,
                    },
                )),
            }],
        }),
        check(etcdserverpb::TxnResponse {
            header: Some(etcdserverpb::ResponseHeader {
                cluster_id: 1007,
                member_id: 2007,
                revision: -3007,
                raft_term: 4007,
            }),
            succeeded: true,
            responses: vec![etcdserverpb::ResponseOp {
                response: Some(etcdserverpb::response_op::Response::ResponseRange(
                    etcdserverpb::RangeResponse {
                        header: Some(etcdserverpb::ResponseHeader::default()),
                        kvs: vec![mvccpb::KeyValue::default()],
                        more: true,
                        count: -4007,
                    },
                )),
            }],
        }),
        check(etcdserverpb::CompactionRequest {
            revision: -1007,
            physical: true,
        }),
        check(etcdserverpb::CompactionResponse {
            header: Some(etcdserverpb::ResponseHeader {
                cluster_id: 1007,
                member_id: 2007,
                revision: -3007,
                raft_term: 4007,
            }),
        }),
        check(etcdserverpb::WatchRequest {
            request_union: Some(etcdserverpb::watch_request::RequestUnion::CreateRequest(
                etcdserverpb::WatchCreateRequest {
                    key: vec![1u8, 0xff, 0x00],
                    range_end: vec![2u8, 0xff, 0x00],
                    start_revision: -3007,
                    progress_notify: true,
                    filters: vec![1],
                    prev_kv: true,
                    watch_id: -7007,
                    fragment: true,
                },
            )),
        }),
        check(etcdserverpb::WatchCreateRequest {
            key: vec![1u8, 0xff, 0x00],
            range_end: vec![2u8, 0xff, 0x00],
            start_revision: -3007,
            progress_notify: true,
            filters: vec![1],
            prev_kv: true,
            watch_id: -7007,
            fragment: true,
        }),
        check(etcdserverpb::WatchCancelRequest { watch_id: -1007 }),
        check_empty::<etcdserverpb::WatchProgressRequest>(),
        check(etcdserverpb::WatchResponse {
            header: Some(etcdserverpb::ResponseHeader {
                cluster_id: 1007,
                member_id: 2007,
                revision: -3007,
                raft_term: 4007,
            }),
            watch_id: -2007,
            created: true,
            canceled: true,
            compact_revision: -5007,
            cancel_reason: "s6".to_string(),
            fragment: true,
            events: vec![mvccpb::Event {
                r#type: 1,
                kv: Some(mvccpb::KeyValue {
                    key: vec![1u8, 0xff, 0x00],
                    create_revision: -2007,
                    mod_revision: -3007,
                    version: -4007,
                    value: vec![5u8, 0xff, 0x00],
                    lease: -6007,
                }),
                prev_kv: Some(mvccpb::KeyValue {
                    key: vec![1u8, 0xff, 0x00],
                    create_revision: -2007,
                    mod_revision: -3007,
                    version: -4007,
                    value: vec![5u8, 0xff, 0x00],
                    lease: -6007,
                }),
            }],
        }),
        check(etcdserverpb::LeaseGrantRequest {
            ttl: -1007,
            id: -2007,
        }),
        check(etcdserverpb::LeaseGrantResponse {
            header: Some(etcdserverpb::ResponseHeader {
                cluster_id: 1007,
                member_id: 2007,
                revision: -3007,
                raft_term: 4007,
            }),
            id: -2007,
            ttl: -3007,
            error: "s4".to_string(),
        }),
        check(etcdserverpb::LeaseRevokeRequest { id: -1007 }),
        check(etcdserverpb::LeaseRevokeResponse {
            header: Some(etcdserverpb::ResponseHeader {
                cluster_id: 1007,
                member_id: 2007,
                revision: -3007,
                raft_term: 4007,
            }),
        }),
        check(etcdserverpb::LeaseCheckpoint {
            id: -1007,
            remaining_ttl: -2007,
        }),
        check(etcdserverpb::LeaseCheckpointRequest {
            checkpoints: vec![etcdserverpb::LeaseCheckpoint {
                id: -1007,
                remaining_ttl: -2007,
            }],
        }),
        check(etcdserverpb::LeaseCheckpointResponse {
            header: Some(etcdserverpb::ResponseHeader {
                cluster_id: 1007,
                member_id: 2007,
                revision: -3007,
                raft_term: 4007,
            }),
        }),
        check(etcdserverpb::LeaseKeepAliveRequest { id: -1007 }),
        check(etcdserverpb::LeaseKeepAliveResponse {
            header: Some(etcdserverpb::ResponseHeader {
                cluster_id: 1007,
                member_id: 2007,
                revision: -3007,
                raft_term: 4007,
            }),
            id: -2007,
            ttl: -3007,
        }),
        check(etcdserverpb::LeaseTimeToLiveRequest {
            id: -1007,
            keys: true,
        }),
        check(etcdserverpb::LeaseTimeToLiveResponse {
            header: Some(etcdserverpb::ResponseHeader {
                cluster_id: 1007,
                member_id: 2007,
                revision: -3007,
                raft_term: 4007,
            }),
            id: -2007,
            ttl: -3007,
            granted_ttl: -4007,
            keys: vec![vec![5u8, 0xff, 0x00]],
        }),
        check_empty::<etcdserverpb::LeaseLeasesRequest>(),
        check(etcdserverpb::LeaseStatus { id: -1007 }),
        check(etcdserverpb::LeaseLeasesResponse {
            header: Some(etcdserverpb::ResponseHeader {
                cluster_id: 1007,
                member_id: 2007,
                revision: -3007,
                raft_term: 4007,
            }),
            leases: vec![etcdserverpb::LeaseStatus { id: -1007 }],
        }),
        check(etcdserverpb::Member {
            id: 1007,
            name: "s2".to_string(),
            peer_ur_ls: vec!["s3".to_string()],
            client_ur_ls: vec!["s4".to_string()],
            is_learner: true,
        }),
        check(etcdserverpb::MemberAddRequest {
            peer_ur_ls: vec!["s1".to_string()],
            is_learner: true,
        }),
        check(etcdserverpb::MemberAddResponse {
            header: Some(etcdserverpb::ResponseHeader {
                cluster_id: 1007,
                member_id: 2007,
                revision: -3007,
                raft_term: 4007,
            }),
            member: Some(etcdserverpb::Member {
                id: 1007,
                name: "s2".to_string(),
                peer_ur_ls: vec!["s3".to_string()],
                client_ur_ls: vec!["s4".to_string()],
                is_learner: true,
            }),
            members: vec![etcdserverpb::Member {
                id: 1007,
                name: "s2".to_string(),
                peer_ur_ls: vec!["s3".to_string()],
                client_ur_ls: vec!["s4".to_string()],
                is_learner: true,
            }],
        }),
        check(etcdserverpb::MemberRemoveRequest { id: 1007 }),
        check(etcdserverpb::MemberRemoveResponse {
            header: Some(etcdserverpb::ResponseHeader {
                cluster_id: 1007,
                member_id: 2007,
                revision: -3007,
                raft_term: 4007,
            }),
            members: vec![etcdserverpb::Member {
                id: 1007,
                name: "s2".to_string(),
                peer_ur_ls: vec!["s3".to_string()],
                client_ur_ls: vec!["s4".to_string()],
                is_learner: true,
            }],
        }),
        check(etcdserverpb::MemberUpdateRequest {
            id: 1007,
            peer_ur_ls: vec!["s2".to_string()],
        }),
        check(etcdserverpb::MemberUpdateResponse {
            header: Some(etcdserverpb::ResponseHeader {
                cluster_id: 1007,
                member_id: 2007,
                revision: -3007,
                raft_term: 4007,
            }),
            members: vec![etcdserverpb::Member {
                id: 1007,
                name: "s2".to_string(),
                peer_ur_ls: vec!["s3".to_string()],
                client_ur_ls: vec!["s4".to_string()],
                is_learner: true,
            }],
        }),
        check(etcdserverpb::MemberListRequest { linearizable: true }),
        check(etcdserverpb::MemberListResponse {
            header: Some(etcdserverpb::ResponseHeader {
                cluster_id: 1007,
                member_id: 2007,
                revision: -3007,
                raft_term: 4007,
            }),
            members: vec![etcdserverpb::Member {
                id: 1007,
                name: "s2".to_string(),
                peer_ur_ls: vec!["s3".to_string()],
                client_ur_ls: vec!["s4".to_string()],
                is_learner: true,
            }],
        }),
        check(etcdserverpb::MemberPromoteRequest { id: 1007 }),
        check(etcdserverpb::MemberPromoteResponse {
            header: Some(etcdserverpb::ResponseHeader {
                cluster_id: 1007,
                member_id: 2007,
                revision: -3007,
                raft_term: 4007,
            }),
            members: vec![etcdserverpb::Member {
                id: 1007,
                name: "s2".to_string(),
                peer_ur_ls: vec!["s3".to_string()],
                client_ur_ls: vec!["s4".to_string()],
                is_learner: true,
            }],
        }),
        check_empty::<etcdserverpb::DefragmentRequest>(),
        check(etcdserverpb::DefragmentResponse {
            header: Some(etcdserverpb::ResponseHeader {
                cluster_id: 1007,
                member_id: 2007,
                revision: -3007,
                raft_term: 4007,
            }),
        }),
        check(etcdserverpb::MoveLeaderRequest { target_id: 1007 }),
        check(etcdserverpb::MoveLeaderResponse {
            header: Some(etcdserverpb::ResponseHeader {
                cluster_id: 1007,
                member_id: 2007,
                revision: -3007,
                raft_term: 4007,
            }),
        }),
        check(etcdserverpb::AlarmRequest {
            action: 1,
            member_id: 2007,
            alarm: 1,
        }),
        check(etcdserverpb::AlarmMember {
            member_id: 1007,
            alarm: 1,
        }),
        check(etcdserverpb::AlarmResponse {
            header: Some(etcdserverpb::ResponseHeader {
                cluster_id: 1007,
                member_id: 2007,
                revision: -3007,
                raft_term: 4007,
            }),
            alarms: vec![etcdserverpb::AlarmMember {
                member_id: 1007,
                alarm: 1,
            }],
        }),
        check(etcdserverpb::DowngradeRequest {
            action: 1,
            version: "s2".to_string(),
        }),
        check(etcdserverpb::DowngradeResponse {
            header: Some(etcdserverpb::ResponseHeader {
                cluster_id: 1007,
                member_id: 2007,
                revision: -3007,
                raft_term: 4007,
            }),
            version: "s2".to_string(),
        }),
        check(etcdserverpb::DowngradeVersionTestRequest {
            ver: "s1".to_string(),
        }),
        check_empty::<etcdserverpb::StatusRequest>(),
        check(etcdserverpb::StatusResponse {
            header: Some(etcdserverpb::ResponseHeader {
                cluster_id: 1007,
                member_id: 2007,
                revision: -3007,
                raft_term: 4007,
            }),
            version: "s2".to_string(),
            db_size: -3007,
            leader: 4007,
            raft_index: 5007,
            raft_term: 6007,
            raft_applied_index: 7007,
            errors: vec!["s8".to_string()],
            db_size_in_use: -9007,
            is_learner: true,
            storage_version: "s11".to_string(),
            db_size_quota: -12007,
            downgrade_info: Some(etcdserverpb::DowngradeInfo {
                enabled: true,
                target_version: "s2".to_string(),
            }),
        }),
        check(etcdserverpb::DowngradeInfo {
            enabled: true,
            target_version: "s2".to_string(),
        }),
        check_empty::<etcdserverpb::HashRequest>(),
        check(etcdserverpb::HashResponse {
            header: Some(etcdserverpb::ResponseHeader {
                cluster_id: 1007,
                member_id: 2007,
                revision: -3007,
                raft_term: 4007,
            }),
            hash: 2007,
        }),
        check(etcdserverpb::HashKvRequest { revision: -1007 }),
        check(etcdserverpb::HashKvResponse {
            header: Some(etcdserverpb::ResponseHeader {
                cluster_id: 1007,
                member_id: 2007,
                revision: -3007,
                raft_term: 4007,
            }),
            hash: 2007,
            compact_revision: -3007,
            hash_revision: -4007,
        }),
        check_empty::<etcdserverpb::SnapshotRequest>(),
        check(etcdserverpb::SnapshotResponse {
            header: Some(etcdserverpb::ResponseHeader {
                cluster_id: 1007,
                member_id: 2007,
                revision: -3007,
                raft_term: 4007,
            }),
            remaining_bytes: 2007,
            blob: vec![3u8, 0xff, 0x00],
            version: "s4".to_string(),
        }),
        check_empty::<etcdserverpb::AuthEnableRequest>(),
        check(etcdserverpb::AuthEnableResponse {
            header: Some(etcdserverpb::ResponseHeader {
                cluster_id: 1007,
                member_id: 2007,
                revision: -3007,
                raft_term: 4007,
            }),
        }),
        check_empty::<etcdserverpb::AuthDisableRequest>(),
        check(etcdserverpb::AuthDisableResponse {
            header: Some(etcdserverpb::ResponseHeader {
                cluster_id: 1007,
                member_id: 2007,
                revision: -3007,
                raft_term: 4007,
            }),
        }),
        check_empty::<etcdserverpb::AuthStatusRequest>(),
        check(etcdserverpb::AuthStatusResponse {
            header: Some(etcdserverpb::ResponseHeader {
                cluster_id: 1007,
                member_id: 2007,
                revision: -3007,
                raft_term: 4007,
            }),
            enabled: true,
            auth_revision: 3007,
        }),
        check(etcdserverpb::AuthenticateRequest {
            name: "s1".to_string(),
            password: "s2".to_string(),
        }),
        check(etcdserverpb::AuthenticateResponse {
            header: Some(etcdserverpb::ResponseHeader {
                cluster_id: 1007,
                member_id: 2007,
                revision: -3007,
                raft_term: 4007,
            }),
            token: "s2".to_string(),
        }),
        check(etcdserverpb::AuthUserAddRequest {
            name: "s1".to_string(),
            password: "s2".to_string(),
            options: Some(authpb::UserAddOptions { no_password: true }),
            hashed_password: "s4".to_string(),
        }),
        check(etcdserverpb::AuthUserAddResponse {
            header: Some(etcdserverpb::ResponseHeader {
                cluster_id: 1007,
                member_id: 2007,
                revision: -3007,
                raft_term: 4007,
            }),
        }),
        check(etcdserverpb::AuthUserGetRequest {
            name: "s1".to_string(),
        }),
        check(etcdserverpb::AuthUserGetResponse {
            header: Some(etcdserverpb::ResponseHeader {
                cluster_id: 1007,
                member_id: 2007,
                revision: -3007,
                raft_term: 4007,
            }),
            roles: vec!["s2".to_string()],
        }),
        check_empty::<etcdserverpb::AuthUserListRequest>(),
        check(etcdserverpb::AuthUserListResponse {
            header: Some(etcdserverpb::ResponseHeader {
                cluster_id: 1007,
                member_id: 2007,
                revision: -3007,
                raft_term: 4007,
            }),
            users: vec!["s2".to_string()],
        }),
        check(etcdserverpb::AuthUserDeleteRequest {
            name: "s1".to_string(),
        }),
        check(etcdserverpb::AuthUserDeleteResponse {
            header: Some(etcdserverpb::ResponseHeader {
                cluster_id: 1007,
                member_id: 2007,
                revision: -3007,
                raft_term: 4007,
            }),
        }),
        check(etcdserverpb::AuthUserChangePasswordRequest {
            name: "s1".to_string(),
            password: "s2".to_string(),
            hashed_password: "s3".to_string(),
        }),
        check(etcdserverpb::AuthUserChangePasswordResponse {
            header: Some(etcdserverpb::ResponseHeader {
                cluster_id: 1007,
                member_id: 2007,
                revision: -3007,
                raft_term: 4007,
            }),
        }),
        check(etcdserverpb::AuthUserGrantRoleRequest {
            user: "s1".to_string(),
            role: "s2".to_string(),
        }),
        check(etcdserverpb::AuthUserGrantRoleResponse {
            header: Some(etcdserverpb::ResponseHeader {
                cluster_id: 1007,
                member_id: 2007,
                revision: -3007,
                raft_term: 4007,
            }),
        }),
        check(etcdserverpb::AuthUserRevokeRoleRequest {
            name: "s1".to_string(),
            role: "s2".to_string(),
        }),
        check(etcdserverpb::AuthUserRevokeRoleResponse {
            header: Some(etcdserverpb::ResponseHeader {
                cluster_id: 1007,
                member_id: 2007,
                revision: -3007,
                raft_term: 4007,
            }),
        }),
        check(etcdserverpb::AuthRoleAddRequest {
            name: "s1".to_string(),
        }),
        check(etcdserverpb::AuthRoleAddResponse {
            header: Some(etcdserverpb::ResponseHeader {
                cluster_id: 1007,
                member_id: 2007,
                revision: -3007,
                raft_term: 4007,
            }),
        }),
        check(etcdserverpb::AuthRoleGetRequest {
            role: "s1".to_string(),
        }),
        check(etcdserverpb::AuthRoleGetResponse {
            header: Some(etcdserverpb::ResponseHeader {
                cluster_id: 1007,
                member_id: 2007,
                revision: -3007,
                raft_term: 4007,
            }),
            perm: vec![authpb::Permission {
                perm_type: 1,
                key: vec![2u8, 0xff, 0x00],
                range_end: vec![3u8, 0xff, 0x00],
            }],
        }),
        check_empty::<etcdserverpb::AuthRoleListRequest>(),
        check(etcdserverpb::AuthRoleListResponse {
            header: Some(etcdserverpb::ResponseHeader {
                cluster_id: 1007,
                member_id: 2007,
                revision: -3007,
                raft_term: 4007,
            }),
            roles: vec!["s2".to_string()],
        }),
        check(etcdserverpb::AuthRoleDeleteRequest {
            role: "s1".to_string(),
        }),
        check(etcdserverpb::AuthRoleDeleteResponse {
            header: Some(etcdserverpb::ResponseHeader {
                cluster_id: 1007,
                member_id: 2007,
                revision: -3007,
                raft_term: 4007,
            }),
        }),
        check(etcdserverpb::AuthRoleGrantPermissionRequest {
            name: "s1".to_string(),
            perm: Some(authpb::Permission {
                perm_type: 1,
                key: vec![2u8, 0xff, 0x00],
                range_end: vec![3u8, 0xff, 0x00],
            }),
        }),
        check(etcdserverpb::AuthRoleGrantPermissionResponse {
            header: Some(etcdserverpb::ResponseHeader {
                cluster_id: 1007,
                member_id: 2007,
                revision: -3007,
                raft_term: 4007,
            }),
        }),
        check(etcdserverpb::AuthRoleRevokePermissionRequest {
            role: "s1".to_string(),
            key: vec![2u8, 0xff, 0x00],
            range_end: vec![3u8, 0xff, 0x00],
        }),
        check(etcdserverpb::AuthRoleRevokePermissionResponse {
            header: Some(etcdserverpb::ResponseHeader {
                cluster_id: 1007,
                member_id: 2007,
                revision: -3007,
                raft_term: 4007,
            }),
        }),
        check(v3lockpb::LockRequest {
            name: vec![1u8, 0xff, 0x00],
            lease: -2007,
        }),
        check(v3lockpb::LockResponse {
            header: Some(etcdserverpb::ResponseHeader {
                cluster_id: 1007,
                member_id: 2007,
                revision: -3007,
                raft_term: 4007,
            }),
            key: vec![2u8, 0xff, 0x00],
        }),
        check(v3lockpb::UnlockRequest {
            key: vec![1u8, 0xff, 0x00],
        }),
        check(v3lockpb::UnlockResponse {
            header: Some(etcdserverpb::ResponseHeader {
                cluster_id: 1007,
                member_id: 2007,
                revision: -3007,
                raft_term: 4007,
            }),
        }),
        check(v3electionpb::CampaignRequest {
            name: vec![1u8, 0xff, 0x00],
            lease: -2007,
            value: vec![3u8, 0xff, 0x00],
        }),
        check(v3electionpb::CampaignResponse {
            header: Some(etcdserverpb::ResponseHeader {
                cluster_id: 1007,
                member_id: 2007,
                revision: -3007,
                raft_term: 4007,
            }),
            leader: Some(v3electionpb::LeaderKey {
                name: vec![1u8, 0xff, 0x00],
                key: vec![2u8, 0xff, 0x00],
                rev: -3007,
                lease: -4007,
            }),
        }),
        check(v3electionpb::LeaderKey {
            name: vec![1u8, 0xff, 0x00],
            key: vec![2u8, 0xff, 0x00],
            rev: -3007,
            lease: -4007,
        }),
        check(v3electionpb::LeaderRequest {
            name: vec![1u8, 0xff, 0x00],
        }),
        check(v3electionpb::LeaderResponse {
            header: Some(etcdserverpb::ResponseHeader {
                cluster_id: 1007,
                member_id: 2007,
                revision: -3007,
                raft_term: 4007,
            }),
            kv: Some(mvccpb::KeyValue {
                key: vec![1u8, 0xff, 0x00],
                create_revision: -2007,
                mod_revision: -3007,
                version: -4007,
                value: vec![5u8, 0xff, 0x00],
                lease: -6007,
            }),
        }),
        check(v3electionpb::ResignRequest {
            leader: Some(v3electionpb::LeaderKey {
                name: vec![1u8, 0xff, 0x00],
                key: vec![2u8, 0xff, 0x00],
                rev: -3007,
                lease: -4007,
            }),
        }),
        check(v3electionpb::ResignResponse {
            header: Some(etcdserverpb::ResponseHeader {
                cluster_id: 1007,
                member_id: 2007,
                revision: -3007,
                raft_term: 4007,
            }),
        }),
        check(v3electionpb::ProclaimRequest {
            leader: Some(v3electionpb::LeaderKey {
                name: vec![1u8, 0xff, 0x00],
                key: vec![2u8, 0xff, 0x00],
                rev: -3007,
                lease: -4007,
            }),
            value: vec![2u8, 0xff, 0x00],
        }),
        check(v3electionpb::ProclaimResponse {
            header: Some(etcdserverpb::ResponseHeader {
                cluster_id: 1007,
                member_id: 2007,
                revision: -3007,
                raft_term: 4007,
            }),
        }),
    ]
}

fn oneof_samples() -> Vec<Seen> {
    vec![
        check(etcdserverpb::RequestOp {
            request: Some(etcdserverpb::request_op::Request::RequestRange(
                etcdserverpb::RangeRequest {
                    key: vec![1u8, 0xff, 0x00],
                    range_end: vec![2u8, 0xff, 0x00],
                    limit: -3007,
                    revision: -4007,
                    sort_order: 1,
                    sort_target: 1,
                    serializable: true,
                    keys_only: true,
                    count_only: true,
                    min_mod_revision: -10007,
                    max_mod_revision: -11007,
                    min_create_revision: -12007,
                    max_create_revision: -13007,
                },
            )),
        }),
        check(etcdserverpb::RequestOp {
            request: Some(etcdserverpb::request_op::Request::RequestPut(
                etcdserverpb::PutRequest {
                    key: vec![1u8, 0xff, 0x00],
                    value: vec![2u8, 0xff, 0x00],
                    lease: -3007,
                    prev_kv: true,
                    ignore_value: true,
                    ignore_lease: true,
                },
            )),
        }),
        check(etcdserverpb::RequestOp {
            request: Some(etcdserverpb::request_op::Request::RequestDeleteRange(
                etcdserverpb::DeleteRangeRequest {
                    key: vec![1u8, 0xff, 0x00],
                    range_end: vec![2u8, 0xff, 0x00],
                    prev_kv: true,
                },
            )),
        }),
        check(etcdserverpb::RequestOp {
            request: Some(etcdserverpb::request_op::Request::RequestTxn(
                etcdserverpb::TxnRequest {
                    compare: vec![etcdserverpb::Compare {
                        result: 1,
                        target: 1,
                        key: vec![3u8, 0xff, 0x00],
                        range_end: vec![64u8, 0xff, 0x00],
                        target_union: Some(etcdserverpb::compare::TargetUnion::Version(-4007)),
                    }],
                    success: vec![etcdserverpb::RequestOp {
                        request: Some(etcdserverpb::request_op::Request::RequestRange(
                            etcdserverpb::RangeRequest::default(),
                        )),
                    }],
                    failure: vec![etcdserverpb::RequestOp {
                        request: Some(etcdserverpb::request_op::Request::RequestRange(
                            etcdserverpb::RangeRequest::default(),
                        )),
                    }],
                },
            )),
        }),
        check(etcdserverpb::ResponseOp {
            response: Some(etcdserverpb::response_op::Response::ResponseRange(
                etcdserverpb::RangeResponse {
                    header: Some(etcdserverpb::ResponseHeader {
                        cluster_id: 1007,
                        member_id: 2007,
                        revision: -3007,
                        raft_term: 4007,
                    }),
                    kvs: vec![mvccpb::KeyValue {
                        key: vec![1u8, 0xff, 0x00],
                        create_revision: -2007,
                        mod_revision: -3007,
                        version: -4007,
                        value: vec![5u8, 0xff, 0x00],
                        lease: -6007,
                    }],
                    more: true,
                    count: -4007,
                },
            )),
        }),
        check(etcdserverpb::ResponseOp {
            response: Some(etcdserverpb::response_op::Response::ResponsePut(
                etcdserverpb::PutResponse {
                    header: Some(etcdserverpb::ResponseHeader {
                        cluster_id: 1007,
                        member_id: 2007,
                        revision: -3007,
                        raft_term: 4007,
                    }),
                    prev_kv: Some(mvccpb::KeyValue {
                        key: vec![1u8, 0xff, 0x00],
                        create_revision: -2007,
                        mod_revision: -3007,
                        version: -4007,
                        value: vec![5u8, 0xff, 0x00],
                        lease: -6007,
                    }),
                },
            )),
        }),
        check(etcdserverpb::ResponseOp {
            response: Some(etcdserverpb::response_op::Response::ResponseDeleteRange(
                etcdserverpb::DeleteRangeResponse {
                    header: Some(etcdserverpb::ResponseHeader {
                        cluster_id: 1007,
                        member_id: 2007,
                        revision: -3007,
                        raft_term: 4007,
                    }),
                    deleted: -2007,
                    prev_kvs: vec![mvccpb::KeyValue {
                        key: vec![1u8, 0xff, 0x00],
                        create_revision: -2007,
                        mod_revision: -3007,
                        version: -4007,
                        value: vec![5u8, 0xff, 0x00],
                        lease: -6007,
                    }],
                },
            )),
        }),
        check(etcdserverpb::ResponseOp {
            response: Some(etcdserverpb::response_op::Response::ResponseTxn(
                etcdserverpb::TxnResponse {
                    header: Some(etcdserverpb::ResponseHeader {
                        cluster_id: 1007,
                        member_id: 2007,
                        revision: -3007,
                        raft_term: 4007,
                    }),
                    succeeded: true,
                    responses: vec![etcdserverpb::ResponseOp {
                        response: Some(etcdserverpb::response_op::Response::ResponseRange(
                            etcdserverpb::RangeResponse::default(),
                        )),
                    }],
                },
            )),
        }),
        check(etcdserverpb::Compare {
            target_union: Some(etcdserverpb::compare::TargetUnion::Version(-4007)),
            ..Default::default()
        }),
        check(etcdserverpb::Compare {
            target_union: Some(etcdserverpb::compare::TargetUnion::CreateRevision(-5007)),
            ..Default::default()
        }),
        check(etcdserverpb::Compare {
            target_union: Some(etcdserverpb::compare::TargetUnion::ModRevision(-6007)),
            ..Default::default()
        }),
        check(etcdserverpb::Compare {
            target_union: Some(etcdserverpb::compare::TargetUnion::Value(vec![
                7u8, 0xff, 0x00,
            ])),
            ..Default::default()
        }),
        check(etcdserverpb::Compare {
            target_union: Some(etcdserverpb::compare::TargetUnion::Lease(-8007)),
            ..Default::default()
        }),
        check(etcdserverpb::WatchRequest {
            request_union: Some(etcdserverpb::watch_request::RequestUnion::CreateRequest(
                etcdserverpb::WatchCreateRequest {
                    key: vec![1u8, 0xff, 0x00],
                    range_end: vec![2u8, 0xff, 0x00],
                    start_revision: -3007,
                    progress_notify: true,
                    filters: vec![1],
                    prev_kv: true,
                    watch_id: -7007,
                    fragment: true,
                },
            )),
        }),
        check(etcdserverpb::WatchRequest {
            request_union: Some(etcdserverpb::watch_request::RequestUnion::CancelRequest(
                etcdserverpb::WatchCancelRequest { watch_id: -1007 },
            )),
        }),
        check(etcdserverpb::WatchRequest {
            request_union: Some(etcdserverpb::watch_request::RequestUnion::ProgressRequest(
                etcdserverpb::WatchProgressRequest {},
            )),
        }),
    ]
}

fn proto_messages() -> BTreeMap<String, usize> {
    MESSAGE_NAMES
        .lines()
        .map(|line| {
            let (name, count) = line.split_once(' ').unwrap();
            (name.to_string(), count.parse().unwrap())
        })
        .collect()
}

#[test]
fn every_message_round_trips() {
    let samples = all_samples();
    let messages = proto_messages();
    assert!(
        messages.len() > 100,
        "message list looks short: {}",
        messages.len()
    );
    let covered: BTreeMap<String, bool> = samples.iter().cloned().collect();
    assert_eq!(covered.len(), samples.len(), "a message is sampled twice");
    for (name, fields) in &messages {
        let has_fields = covered
            .get(name)
            .unwrap_or_else(|| panic!("no round-trip sample for {name}"));
        assert_eq!(
            *has_fields,
            *fields > 0,
            "{name}: empty/non-empty check mismatch"
        );
    }
    for name in covered.keys() {
        assert!(messages.contains_key(name), "{name} is not in proto/");
    }
}

#[test]
fn every_oneof_variant_round_trips() {
    let samples = oneof_samples();
    // RequestOp 4, ResponseOp 4, Compare 5, WatchRequest 3.
    assert_eq!(samples.len(), 16);
}

// ------------------------------------------------------------ field numbers

#[test]
fn range_request_key_is_field_1() {
    let req = etcdserverpb::RangeRequest {
        key: b"a".to_vec(),
        ..Default::default()
    };
    assert_eq!(req.encode_to_vec(), [0x0a, 0x01, b'a']);
}

#[test]
fn range_request_serializable_is_field_7() {
    let req = etcdserverpb::RangeRequest {
        serializable: true,
        ..Default::default()
    };
    assert_eq!(req.encode_to_vec(), [7 << 3, 0x01]);
    let req = etcdserverpb::RangeRequest {
        count_only: true,
        ..Default::default()
    };
    assert_eq!(req.encode_to_vec(), [9 << 3, 0x01]);
    let req = etcdserverpb::RangeRequest {
        max_create_revision: 2,
        ..Default::default()
    };
    assert_eq!(req.encode_to_vec(), [13 << 3, 0x02]);
}

#[test]
fn put_request_prev_kv_is_field_4() {
    let req = etcdserverpb::PutRequest {
        prev_kv: true,
        ..Default::default()
    };
    assert_eq!(req.encode_to_vec(), [4 << 3, 0x01]);
    let req = etcdserverpb::PutRequest {
        lease: 5,
        ignore_lease: true,
        ..Default::default()
    };
    assert_eq!(req.encode_to_vec(), [3 << 3, 0x05, 6 << 3, 0x01]);
}

#[test]
fn watch_create_request_watch_id_is_field_7() {
    let req = etcdserverpb::WatchCreateRequest {
        watch_id: 5,
        ..Default::default()
    };
    assert_eq!(req.encode_to_vec(), [7 << 3, 0x05]);
    let req = etcdserverpb::WatchCreateRequest {
        start_revision: 3,
        fragment: true,
        ..Default::default()
    };
    assert_eq!(req.encode_to_vec(), [3 << 3, 0x03, 8 << 3, 0x01]);
    // filters are a packed repeated enum: field 5, length-delimited.
    let req = etcdserverpb::WatchCreateRequest {
        filters: vec![etcdserverpb::watch_create_request::FilterType::Nodelete as i32],
        ..Default::default()
    };
    assert_eq!(req.encode_to_vec(), [5 << 3 | 2, 0x01, 0x01]);
}

#[test]
fn watch_request_union_tags() {
    let req = etcdserverpb::WatchRequest {
        request_union: Some(etcdserverpb::watch_request::RequestUnion::ProgressRequest(
            etcdserverpb::WatchProgressRequest {},
        )),
    };
    assert_eq!(req.encode_to_vec(), [3 << 3 | 2, 0x00]);
    let req = etcdserverpb::WatchRequest {
        request_union: Some(etcdserverpb::watch_request::RequestUnion::CancelRequest(
            etcdserverpb::WatchCancelRequest { watch_id: 9 },
        )),
    };
    assert_eq!(req.encode_to_vec(), [2 << 3 | 2, 0x02, 1 << 3, 0x09]);
}

#[test]
fn watch_response_fields_decode_from_server_bytes() {
    // header{revision=4}, watch_id=2, created=true, events=[{type=DELETE}]
    let bytes = [
        0x0a,
        0x02,
        3 << 3,
        0x04,
        2 << 3,
        0x02,
        3 << 3,
        0x01,
        11 << 3 | 2,
        0x02,
        0x08,
        0x01,
    ];
    let resp = etcdserverpb::WatchResponse::decode(&bytes[..]).unwrap();
    assert_eq!(resp.header.unwrap().revision, 4);
    assert_eq!(resp.watch_id, 2);
    assert!(resp.created);
    assert_eq!(resp.events.len(), 1);
    assert_eq!(resp.events[0].r#type(), mvccpb::event::EventType::Delete);
}

#[test]
fn compare_range_end_is_field_64() {
    let cmp = etcdserverpb::Compare {
        range_end: b"z".to_vec(),
        ..Default::default()
    };
    // tag 64, wire type 2 = 514 = varint [0x82, 0x04]
    assert_eq!(cmp.encode_to_vec(), [0x82, 0x04, 0x01, b'z']);
    let cmp = etcdserverpb::Compare {
        target_union: Some(etcdserverpb::compare::TargetUnion::Lease(1)),
        ..Default::default()
    };
    assert_eq!(cmp.encode_to_vec(), [8 << 3, 0x01]);
}

#[test]
fn lease_and_header_field_numbers() {
    let req = etcdserverpb::LeaseGrantRequest { ttl: 10, id: 7 };
    assert_eq!(req.encode_to_vec(), [1 << 3, 10, 2 << 3, 7]);
    let hdr = etcdserverpb::ResponseHeader {
        revision: 1,
        raft_term: 2,
        ..Default::default()
    };
    assert_eq!(hdr.encode_to_vec(), [3 << 3, 1, 4 << 3, 2]);
    let kv = mvccpb::KeyValue {
        lease: 1,
        ..Default::default()
    };
    assert_eq!(kv.encode_to_vec(), [6 << 3, 1]);
    let ttl = etcdserverpb::LeaseTimeToLiveResponse {
        granted_ttl: 3,
        ..Default::default()
    };
    assert_eq!(ttl.encode_to_vec(), [4 << 3, 3]);
}

#[test]
fn status_and_member_field_numbers() {
    let st = etcdserverpb::StatusResponse {
        leader: 1,
        raft_term: 2,
        is_learner: true,
        ..Default::default()
    };
    assert_eq!(st.encode_to_vec(), [4 << 3, 1, 6 << 3, 2, 10 << 3, 1]);
    let m = etcdserverpb::Member {
        is_learner: true,
        client_ur_ls: vec!["u".into()],
        ..Default::default()
    };
    assert_eq!(m.encode_to_vec(), [4 << 3 | 2, 1, b'u', 5 << 3, 1]);
    let alarm = etcdserverpb::AlarmRequest {
        action: etcdserverpb::alarm_request::AlarmAction::Deactivate as i32,
        alarm: etcdserverpb::AlarmType::Nospace as i32,
        ..Default::default()
    };
    assert_eq!(alarm.encode_to_vec(), [1 << 3, 2, 3 << 3, 1]);
}

#[test]
fn lock_and_election_field_numbers() {
    let lock = v3lockpb::LockRequest {
        lease: 3,
        ..Default::default()
    };
    assert_eq!(lock.encode_to_vec(), [2 << 3, 3]);
    let key = v3electionpb::LeaderKey {
        rev: 4,
        ..Default::default()
    };
    assert_eq!(key.encode_to_vec(), [3 << 3, 4]);
    let perm = authpb::Permission {
        range_end: b"b".to_vec(),
        ..Default::default()
    };
    assert_eq!(perm.encode_to_vec(), [3 << 3 | 2, 1, b'b']);
}

// ------------------------------------------------------------ method catalogue

fn path_is_well_formed(path: &str) -> bool {
    // ^/[a-z0-9]+\.[A-Za-z]+/[A-Za-z]+$
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    let Some((service, name)) = rest.split_once('/') else {
        return false;
    };
    let Some((pkg, svc)) = service.split_once('.') else {
        return false;
    };
    !pkg.is_empty()
        && pkg
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && !svc.is_empty()
        && svc.bytes().all(|b| b.is_ascii_alphabetic())
        && !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphabetic())
}

#[test]
fn path_checker_rejects_bad_paths() {
    assert!(path_is_well_formed("/etcdserverpb.KV/Range"));
    for bad in [
        "etcdserverpb.KV/Range",
        "/etcdserverpb/Range",
        "/Etcd.KV/Range",
        "/a.B/C/D",
        "/a.B/",
        "/a.B/C1",
    ] {
        assert!(!path_is_well_formed(bad), "{bad}");
    }
}

#[test]
fn catalogue_paths_are_unique_well_formed_and_found() {
    let mut paths = BTreeSet::new();
    for m in ALL {
        assert!(paths.insert(m.path), "duplicate path {}", m.path);
        assert!(path_is_well_formed(m.path), "bad path {}", m.path);
        assert_eq!(by_path(m.path), Some(*m));
        assert_eq!(format!("/{}/{}", m.service(), m.name()), m.path);
    }
    assert_eq!(by_path("/etcdserverpb.KV/range"), None);
    assert_eq!(by_path(""), None);
}

/// Reads `rpc Name(stream? Req) returns (stream? Resp)` lines from `proto/`.
fn proto_rpcs() -> BTreeMap<String, RpcShape> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = [
        "etcdserverpb/rpc.proto",
        "v3lockpb/v3lock.proto",
        "v3electionpb/v3election.proto",
    ];
    let mut rpcs = BTreeMap::new();
    for file in files {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let mut package = "";
        let mut service = "";
        for line in text.lines().map(str::trim) {
            if let Some(p) = line.strip_prefix("package ") {
                package = p.trim_end_matches(';');
            } else if let Some(s) = line.strip_prefix("service ") {
                service = s.trim_end_matches('{').trim();
            } else if let Some(r) = line.strip_prefix("rpc ") {
                let (name, sig) = r.split_once('(').unwrap();
                let (req, resp) = sig.split_once("returns").unwrap();
                let shape = match (
                    req.starts_with("stream "),
                    resp.trim().starts_with("(stream "),
                ) {
                    (false, false) => RpcShape::Unary,
                    (false, true) => RpcShape::ServerStreaming,
                    (true, true) => RpcShape::Bidirectional,
                    (true, false) => panic!("client streaming rpc {name}"),
                };
                rpcs.insert(format!("/{package}.{service}/{name}"), shape);
            }
        }
    }
    rpcs
}

#[test]
fn catalogue_matches_proto_services() {
    let rpcs = proto_rpcs();
    assert_eq!(rpcs.len(), 48);
    let catalogue: BTreeMap<String, RpcShape> =
        ALL.iter().map(|m| (m.path.to_string(), m.shape)).collect();
    assert_eq!(catalogue, rpcs);
}

#[test]
fn retry_classes() {
    use Idempotency::{Mutation, Repeatable};
    let expect: &[(Method, Idempotency)] = &[
        (method::KV_RANGE, Repeatable),
        (method::KV_PUT, Mutation),
        (method::KV_DELETE_RANGE, Mutation),
        (method::KV_TXN, Mutation),
        (method::KV_COMPACT, Mutation),
        (method::WATCH_WATCH, Repeatable),
        (method::LEASE_GRANT, Mutation),
        (method::LEASE_REVOKE, Mutation),
        (method::LEASE_KEEP_ALIVE, Repeatable),
        (method::LEASE_TIME_TO_LIVE, Repeatable),
        (method::LEASE_LEASES, Repeatable),
        (method::CLUSTER_MEMBER_ADD, Mutation),
        (method::CLUSTER_MEMBER_REMOVE, Mutation),
        (method::CLUSTER_MEMBER_UPDATE, Mutation),
        (method::CLUSTER_MEMBER_LIST, Repeatable),
        (method::CLUSTER_MEMBER_PROMOTE, Mutation),
        (method::MAINTENANCE_ALARM, Mutation),
        (method::MAINTENANCE_STATUS, Repeatable),
        (method::MAINTENANCE_DEFRAGMENT, Repeatable),
        (method::MAINTENANCE_HASH, Repeatable),
        (method::MAINTENANCE_HASH_KV, Repeatable),
        (method::MAINTENANCE_SNAPSHOT, Repeatable),
        (method::MAINTENANCE_MOVE_LEADER, Mutation),
        (method::MAINTENANCE_DOWNGRADE, Mutation),
        (method::AUTH_ENABLE, Mutation),
        (method::AUTH_DISABLE, Mutation),
        (method::AUTH_STATUS, Repeatable),
        (method::AUTH_AUTHENTICATE, Repeatable),
        (method::AUTH_USER_ADD, Mutation),
        (method::AUTH_USER_GET, Repeatable),
        (method::AUTH_USER_LIST, Repeatable),
        (method::AUTH_USER_DELETE, Mutation),
        (method::AUTH_USER_CHANGE_PASSWORD, Mutation),
        (method::AUTH_USER_GRANT_ROLE, Mutation),
        (method::AUTH_USER_REVOKE_ROLE, Mutation),
        (method::AUTH_ROLE_ADD, Mutation),
        (method::AUTH_ROLE_GET, Repeatable),
        (method::AUTH_ROLE_LIST, Repeatable),
        (method::AUTH_ROLE_DELETE, Mutation),
        (method::AUTH_ROLE_GRANT_PERMISSION, Mutation),
        (method::AUTH_ROLE_REVOKE_PERMISSION, Mutation),
        (method::LOCK_LOCK, Mutation),
        (method::LOCK_UNLOCK, Mutation),
        (method::ELECTION_CAMPAIGN, Mutation),
        (method::ELECTION_PROCLAIM, Mutation),
        (method::ELECTION_LEADER, Repeatable),
        (method::ELECTION_OBSERVE, Repeatable),
        (method::ELECTION_RESIGN, Mutation),
    ];
    assert_eq!(expect.len(), ALL.len());
    for (m, class) in expect {
        assert_eq!(m.idempotency, *class, "{}", m.path);
        assert_eq!(m.is_repeatable(), *class == Repeatable);
    }
    assert!(method::WATCH_WATCH.is_streaming());
    assert!(method::MAINTENANCE_SNAPSHOT.is_streaming());
    assert!(!method::KV_RANGE.is_streaming());
    assert_eq!(method::LEASE_KEEP_ALIVE.shape, RpcShape::Bidirectional);
    assert_eq!(method::ELECTION_OBSERVE.shape, RpcShape::ServerStreaming);
}
