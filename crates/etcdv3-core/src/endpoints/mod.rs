//! The cluster's endpoints: their addresses, their health, and which one a
//! call goes to.
//!
//! - [`endpoint`]: parsing `http://host:port`, `unix://path`, ... into an
//!   [`endpoint::Endpoint`].
//! - [`health`]: the per-endpoint health state machine (up, suspect, down
//!   with a backoff).
//! - [`balancer`]: the balancer policies that pick an endpoint among the
//!   usable ones.
//! - [`srv`]: the timing of DNS SRV discovery.
//!
//! Built on [`crate::util`]; used by [`crate::machine`].

pub mod balancer;
pub mod endpoint;
pub mod health;
pub mod srv;
