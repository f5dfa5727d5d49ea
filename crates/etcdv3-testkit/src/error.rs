//! The testkit's error type.

use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong while starting or driving a test cluster.
#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    /// No etcd binary: [`ClusterBuilder::etcd_bin`](crate::ClusterBuilder::etcd_bin) or
    /// `ETCD_BIN` named no executable file, or [`find_etcd`](crate::find_etcd) found none.
    #[error(
        "etcd binary not found ({searched}); run scripts/install-etcd.sh (or set ETCD_BIN to an etcd server binary)"
    )]
    BinaryNotFound {
        /// Where the testkit looked.
        searched: String,
    },
    /// `etcd --version` did not run or printed no recognisable version.
    #[error("cannot determine the version of {bin}: {detail}")]
    Version {
        /// The binary that was asked.
        bin: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// A cluster needs at least one member.
    #[error("invalid cluster size {0}: need at least one member")]
    InvalidSize(usize),
    /// A member index outside `0..size`.
    #[error("no member {index} (cluster has {size} members)")]
    NoSuchMember {
        /// The index asked for.
        index: usize,
        /// How many members the cluster has.
        size: usize,
    },
    /// The operation needs a running member process.
    #[error("member {0} is not running")]
    NotRunning(usize),
    /// The member was removed from the cluster with [`Cluster::remove_member`](crate::Cluster::remove_member).
    #[error("member {0} was removed from the cluster")]
    Removed(usize),
    /// [`Cluster::shutdown`](crate::Cluster::shutdown) ran: the cluster starts no process.
    #[error("the cluster was shut down")]
    ShutDown,
    /// Spawning the etcd process failed.
    #[error("cannot spawn {bin}: {source}")]
    Spawn {
        /// The binary that was started.
        bin: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// An etcd process exited while the testkit waited for it to become healthy.
    #[error("etcd member {member} exited ({status}) during startup; log tail:\n{log_tail}")]
    Exited {
        /// The member index.
        member: usize,
        /// How it exited.
        status: String,
        /// The last lines of the member's log file.
        log_tail: String,
    },
    /// A member did not report `"health":"true"` on `/health` in time.
    #[error(
        "etcd member {member} not healthy after {waited:?} (last answer: {last}); log tail:\n{log_tail}"
    )]
    HealthTimeout {
        /// The member index.
        member: usize,
        /// How long the testkit waited.
        waited: Duration,
        /// The last `/health` answer or connection error.
        last: String,
        /// The last lines of the member's log file.
        log_tail: String,
    },
    /// Waiting for some other condition (e.g. a leader) timed out.
    #[error("timed out after {waited:?} waiting for {what}")]
    Timeout {
        /// What was waited for.
        what: String,
        /// How long.
        waited: Duration,
    },
    /// An HTTP call to an etcd member (JSON gateway or `/health`) failed or answered badly.
    #[error("HTTP {path} on member {member}: {detail}")]
    Http {
        /// The member that was asked.
        member: usize,
        /// The request path.
        path: String,
        /// What went wrong (status line and body, or the I/O error).
        detail: String,
    },
    /// Sending a signal to a member process failed.
    #[error("signal {signal} to pid {pid}: {source}")]
    Signal {
        /// The signal's name.
        signal: &'static str,
        /// The process id.
        pid: u32,
        /// The OS error.
        source: nix::errno::Errno,
    },
    /// A helper command (`etcdctl`) failed.
    #[error("{what}: {detail}")]
    Command {
        /// The command.
        what: String,
        /// Its exit status and output.
        detail: String,
    },
    /// Generating the certificates of a TLS cluster failed.
    #[error("TLS certificate generation: {0}")]
    Certificate(String),
    /// Any other I/O error (temp dir, sockets, log files).
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}
