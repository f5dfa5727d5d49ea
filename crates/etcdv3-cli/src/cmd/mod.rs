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

use crate::flags::WriteOut;
use crate::output::print_json;
use crate::{CliError, Ctx};

/// `version`: etcdv3ctl's version and the etcd API version it speaks.
pub fn version(ctx: &Ctx) -> Result<(), CliError> {
    let version = env!("CARGO_PKG_VERSION");
    if ctx.printer.format == WriteOut::Json {
        #[derive(serde::Serialize)]
        struct Version<'a> {
            etcdctl: &'a str,
            api: &'a str,
        }
        // etcdctl prints plain text for `version -w json` too; a JSON object
        // is more useful to scripts.
        return print_json(&Version {
            etcdctl: version,
            api: "3.5",
        });
    }
    println!("etcdv3ctl version: {version}\nAPI version: 3.5");
    Ok(())
}

/// Split `[key] [range_end]` positionals as etcdctl does, with its
/// `ExitBadArgs` message when the count is wrong.
pub fn key_and_end(args: &[String], what: &str) -> Result<(String, Option<String>), CliError> {
    match args {
        [key] => Ok((key.clone(), None)),
        [key, end] => Ok((key.clone(), Some(end.clone()))),
        _ => Err(CliError::BadArgs(format!(
            "{what} command needs one argument as key and an optional argument as range_end"
        ))),
    }
}
