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
