//! What travels on the wire and what it means: gRPC message framing, the
//! status of a finished call, and the classification of etcd's errors.
//!
//! - [`codec`]: gRPC length-prefixed message framing.
//! - [`status`]: gRPC status codes, [`status::Status`], and how to derive it
//!   from headers, trailers and resets; the `grpc-timeout` encoder.
//! - [`error`]: what an etcd error means: where it may be retried and
//!   whether it may have been applied.
//!
//! This layer imports nothing from the layers above it (see
//! `docs/architecture.md`).

pub mod codec;
pub mod error;
pub mod status;
