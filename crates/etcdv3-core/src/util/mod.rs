//! Small utilities the other layers build on; they import nothing else from
//! the crate but each other.
//!
//! - [`rng`]: the seeded pseudo-random generator every random decision draws
//!   from.
//! - [`backoff`]: clock-free exponential backoff with jitter.
//! - [`budget`]: the client's retry budget (retries as a bounded fraction of
//!   first attempts).

pub mod backoff;
pub mod budget;
pub mod rng;
