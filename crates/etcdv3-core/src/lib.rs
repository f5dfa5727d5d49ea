//! The sans-IO core of the etcdv3 client.
//!
//! Nothing here performs IO, reads a clock, spawns a thread or draws from a
//! global random number generator: time is an [`std::time::Instant`] argument
//! and randomness comes from a seed. See `docs/architecture.md`.
//!
//! The modules are layers, from the bottom up; each imports only the layers
//! below it (`tests/layers.rs` checks it):
//!
//! 1. [`util`]: seeded randomness, backoff, the retry budget.
//! 2. [`wire`]: gRPC framing, status, etcd error classification.
//! 3. [`endpoints`]: endpoint addresses, per-endpoint health, balancing.
//! 4. [`machine`]: [`machine::Core`], where every call goes and what happens
//!    when it fails.
//! 5. [`streams`]: long-lived streams (driver, watch hub, lease keeper),
//!    paged reads, the prefix cache, the recipes' retry loops.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod endpoints;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod machine;
pub mod streams;
pub mod util;
pub mod wire;
