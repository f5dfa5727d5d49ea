//! The sans-IO stream layer: every decision about a long-lived stream
//! (watch, lease keepalive), the per-kind state those streams carry, and the
//! recipes' retry loops.
//!
//! - [`StreamDriver`] holds every decision about one stream: when it is
//!   (re)opened, how a stream its owner gives up on is ended, auth retry on
//!   a stream, TLS failure fan-out (see [`driver`]).
//!   The client's stream task and the simulation are pumps around it.
//! - [`StreamSupervisor`] is the driver's reopen timing (see [`supervisor`]).
//! - [`Retry`] times the concurrency recipes' own loops (waiting for
//!   earlier lock owners, an election observer's reopen, background key
//!   removal).
//! - [`watch`]: many watchers multiplexed on one `Watch` stream
//!   ([`watch::WatchHub`]).
//! - [`lease`]: lease keep-alive scheduling ([`lease::LeaseKeeper`]).
//! - [`pager`] and [`cache`]: a range read page by page at one revision,
//!   and a prefix kept in sync by list-then-watch.
//!
//! The top layer of the crate: built on [`crate::machine`] and the layers
//! below it.

pub mod cache;
pub mod driver;
pub mod lease;
pub mod pager;
pub mod retry;
pub mod supervisor;
pub mod watch;

pub use driver::{CloseReason, FailCause, StreamAction, StreamDriver, StreamEnd, Verdict};
pub use retry::{Retry, RetryConfig};
pub use supervisor::{StreamConfig, StreamState, StreamSupervisor};
