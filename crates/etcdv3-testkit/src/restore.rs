//! Disaster recovery: `etcdctl snapshot save` of a member, and restoring the whole cluster
//! from such a snapshot (every member's data dir replaced, same names, peer URLs, initial
//! cluster and token), as operators do after losing data.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::process::log_tail;
use crate::{Cluster, TestkitError};

/// Log lines quoted in errors.
const LOG_TAIL_LINES: usize = 40;

impl Cluster {
    /// The `etcdctl` next to the etcd binary (etcd's release archives ship them together).
    pub fn etcdctl_bin(&self) -> PathBuf {
        self.bin.with_file_name("etcdctl")
    }

    /// Saves a snapshot of member `i`'s store to `path` (`etcdctl snapshot save` against the
    /// member's own listener). Plain-HTTP clusters only (a TLS cluster fails with
    /// [`TestkitError::Command`]).
    pub fn snapshot_save(&self, i: usize, path: &Path) -> Result<(), TestkitError> {
        self.running_pid(i)?;
        if self.tls.is_some() {
            return Err(TestkitError::Command {
                what: "etcdctl snapshot save".into(),
                detail: "TLS clusters are not supported".into(),
            });
        }
        let endpoint = self.member(i).direct_client_url();
        self.etcdctl(&[
            "snapshot".into(),
            "save".into(),
            path.display().to_string(),
            format!("--endpoints={endpoint}"),
        ])
    }

    /// Restores the whole cluster from `snapshot`, as an operator would after losing data:
    /// every member process is stopped (SIGKILL, by pid), each member's data dir is replaced
    /// by `etcdctl snapshot restore` with the member's name, peer URL (its proxy's), the
    /// initial cluster and the cluster token (so member ids and URLs stay the same), then
    /// every member is started again and the call waits until all are healthy. The store is
    /// back at the snapshot's revision; clients keep their URLs (the proxies stay).
    pub fn restore_from_snapshot(&self, snapshot: &Path) -> Result<(), TestkitError> {
        let all: Vec<usize> = (0..self.size()).collect();
        for &i in &all {
            self.stop_process(i);
        }
        for &i in &all {
            let slot = &self.slots[i];
            match fs::remove_dir_all(&slot.data_dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
            self.etcdctl(&[
                "snapshot".into(),
                "restore".into(),
                snapshot.display().to_string(),
                format!("--name={}", slot.name),
                format!("--data-dir={}", slot.data_dir.display()),
                format!("--initial-cluster={}", self.initial_cluster),
                format!("--initial-cluster-token={}", self.token),
                format!("--initial-advertise-peer-urls={}", slot.peer_proxy.url()),
            ])?;
        }
        for &i in &all {
            self.spawn(i, "existing")?;
        }
        self.wait_healthy(&all, self.health_timeout)
    }

    fn etcdctl(&self, args: &[String]) -> Result<(), TestkitError> {
        let bin = self.etcdctl_bin();
        let out_path = self.dir.join("etcdctl.log");
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&out_path)?;
        let mut cmd = Command::new(&bin);
        cmd.args(args);
        for (key, _) in std::env::vars_os() {
            let k = key.to_string_lossy();
            if k.starts_with("ETCD_") || k.starts_with("ETCDCTL_") {
                cmd.env_remove(key);
            }
        }
        let status = cmd
            .env("ETCDCTL_API", "3")
            .stdin(Stdio::null())
            .stdout(Stdio::from(out.try_clone()?))
            .stderr(Stdio::from(out))
            .status()
            .map_err(|source| TestkitError::Spawn {
                bin: bin.clone(),
                source,
            })?;
        if status.success() {
            Ok(())
        } else {
            Err(TestkitError::Command {
                what: format!("{} {}", bin.display(), args.join(" ")),
                detail: format!("{status}; output:\n{}", log_tail(&out_path, LOG_TAIL_LINES)),
            })
        }
    }
}
