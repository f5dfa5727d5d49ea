//! The sans-IO core of the etcdv3 client.
//!
//! Nothing here performs IO, reads a clock, spawns a thread or draws from a
//! global random number generator: time is an [`std::time::Instant`] argument
//! and randomness comes from a seed. See `docs/architecture.md`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod backoff;
pub mod balancer;
pub mod budget;
pub mod cache;
pub mod codec;
pub mod endpoint;
pub mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod health;
pub mod lease;
pub mod machine;
pub mod pager;
pub mod rng;
pub mod status;
pub mod stream;
pub mod watch;
