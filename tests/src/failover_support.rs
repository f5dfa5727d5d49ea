//! The failover and consistency suites' helpers. The fault schedule, operation
//! records, statistics and history checks live in [`etcdv3_testkit::fault`]
//! (shared with the benchmark and `etcdv3ctl demo`) and are re-exported here.
//! Client errors are classified by `etcdv3_client::Error::class` (the
//! client's `testkit` feature).

pub use etcdv3_testkit::fault::*;
