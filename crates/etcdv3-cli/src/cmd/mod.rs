//! One module per etcdctl command group.

pub mod auth;
pub mod check;
pub mod cluster;
pub mod concurrency;
pub mod endpoint;
pub mod kv;
pub mod lease;
pub mod maintenance;
pub mod mirror;
pub mod txn;
pub mod watch;

use crate::CliError;

/// The etcdctl release whose command line etcdv3ctl reproduces.
pub const ETCDCTL_VERSION: &str = "3.5.1";

/// `version`: etcdctl's two lines (whatever `-w` says, as etcdctl), naming
/// the etcdctl release etcdv3ctl stands in for, so that scripts looking for
/// `etcdctl version:` and `API version:` find them. `--version` prints
/// etcdv3ctl's own version.
pub fn version() -> Result<(), CliError> {
    println!("etcdctl version: {ETCDCTL_VERSION}\nAPI version: 3.5");
    Ok(())
}

/// Split `[key] [range_end]` positionals (bytes) as etcdctl does, with its
/// `ExitBadArgs` message when the count is wrong.
pub fn key_and_end(
    args: &[std::ffi::OsString],
    what: &str,
) -> Result<(Vec<u8>, Option<Vec<u8>>), CliError> {
    use crate::flags::os_bytes;
    match args {
        [key] => Ok((os_bytes(key), None)),
        [key, end] => Ok((os_bytes(key), Some(os_bytes(end)))),
        _ => Err(CliError::BadArgs(format!(
            "{what} command needs one argument as key and an optional argument as range_end"
        ))),
    }
}
