//! A runtime-agnostic etcd v3 client over raw HTTP/2.
//!
//! The client drives the sans-IO [`etcdv3_core`] state machine over one h2
//! connection per endpoint. It is generic over a small [`Runtime`] trait;
//! `etcdv3-tokio` and `etcdv3-async-std` provide ready-made runtimes and a
//! `connect` function.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod client;
mod error;
mod options;
mod runtime;
mod sync;
mod transport;

pub mod api;
pub mod concurrency;

pub use client::{CallOptions, Client};
pub use error::{Error, Result};
pub use options::{ClientOptions, CoreConfig, Policy, TlsOptions};
pub use runtime::{BoxFuture, BoxIo, Io, Runtime};

pub use etcdv3_core as core;
pub use etcdv3_proto as proto;
