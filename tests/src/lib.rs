//! Shared bodies of the integration suite.

pub mod cluster;
pub mod failover_support;
pub mod runtime;
