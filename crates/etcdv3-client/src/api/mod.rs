//! The typed etcd API, grouped by service. Every method is on [`crate::Client`].
