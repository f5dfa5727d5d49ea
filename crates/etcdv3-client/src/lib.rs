//! A runtime-agnostic etcd v3 client over raw HTTP/2.
//!
//! The client drives the sans-IO [`etcdv3_core`] state machine over one h2
//! connection per endpoint. It is generic over a small [`Runtime`] trait;
//! `etcdv3-tokio` and `etcdv3-async-std` provide ready-made runtimes and a
//! `connect` function.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod client;
mod connect;
mod discovery;
mod error;
mod options;
mod runtime;
mod sync;
mod transport;

pub mod api;
pub mod concurrency;

/// The extension traits that make responses readable
/// (`kv.key_str()`, `event.kind()`, `txn.op_responses()`), in one import:
/// `use etcdv3_client::prelude::*;`.
pub mod prelude {
    pub use crate::api::{EventExt, KeyValueExt, TxnResponseExt};
}

pub use client::{
    CallOptions, Checked, Client, EndpointInfo, EndpointStatus, ReadConsistency, Standing,
};
pub use discovery::{discover_srv, Discovered, SrvRecord};
#[cfg(feature = "tls")]
pub use error::TlsCause;
pub use error::{Error, Result};
pub use options::{ClientOptions, CoreConfig, Policy, SrvDiscovery, StaleRead, Target, TlsOptions};
pub use runtime::{BoxFuture, BoxIo, Io, Runtime};

pub use etcdv3_core::machine::CallError;
/// What a caller matches an [`Error`] on, without naming `etcdv3_core`:
/// [`Error::Call`] holds a [`CallError`]; a server error's gRPC [`Status`]
/// and [`Code`], and its etcd classification ([`EtcdErrorKind`]).
pub use etcdv3_core::machine::Cause;
pub use etcdv3_core::wire::error::EtcdErrorKind;
pub use etcdv3_core::wire::status::{Code, Status};

pub use etcdv3_core as core;
pub use etcdv3_proto as proto;
/// The rustls this crate uses (for [`TlsOptions::with_client_config`]).
#[cfg(feature = "tls")]
pub use tokio_rustls::rustls;
