//! The failover and consistency suites' helpers. The fault schedule, operation
//! records, statistics and history checks live in [`etcdv3_testkit::fault`]
//! (shared with the benchmark and `etcdv3ctl demo`) and are re-exported here;
//! only [`classify`], which needs the client's error type, is defined here.

use etcdv3_client::core::machine::CallError;
use etcdv3_client::Error;

pub use etcdv3_testkit::fault::*;

/// Classifies a client error.
pub fn classify(e: &Error) -> ErrorClass {
    if e.is_deadline_exceeded() {
        return ErrorClass::DeadlineExceeded;
    }
    if e.is_outcome_unknown() {
        return ErrorClass::OutcomeUnknown;
    }
    if let Some(code) = e.code() {
        return ErrorClass::Status(format!("{code:?}"));
    }
    match e {
        Error::Call(CallError::NoEndpoints { .. }) => ErrorClass::NoEndpoints,
        other => ErrorClass::Other(other.to_string()),
    }
}
