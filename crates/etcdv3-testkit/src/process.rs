//! Process control: spawning etcd, waiting for health, SIGKILL / SIGSTOP / SIGCONT, restart.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;

/// The unix socket of a member built with [`crate::ClusterBuilder::unix_socket`], relative to
/// its member directory (etcd wants a `host:port`-shaped name, not a path).
pub(crate) const UNIX_SOCKET_NAME: &str = "localhost:2379";

use crate::gateway::body_healthy;
use crate::proxy::lock;
use crate::{ports, Cluster, TestkitError};

/// Log lines quoted in errors.
const LOG_TAIL_LINES: usize = 40;
/// How often startup is retried when etcd finds a chosen port taken by another process.
const PORT_RETRIES: usize = 3;

impl Cluster {
    /// Starts all members as a new cluster, retrying with fresh ports on a port clash.
    pub(crate) fn boot(&mut self) -> Result<(), TestkitError> {
        let all: Vec<usize> = (0..self.size()).collect();
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.token = format!("etcdv3-testkit-{:016x}", ports::random_u64());
            for &i in &all {
                self.spawn(i, "new")?;
            }
            match self.wait_healthy(&all, self.health_timeout) {
                Ok(()) => break,
                Err(e) if attempt < PORT_RETRIES && port_clash(&e) => {
                    for &i in &all {
                        self.stop_process(i);
                        let _ = fs::remove_dir_all(&self.slots[i].data_dir);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        let mut ids = Vec::with_capacity(self.size());
        for &i in &all {
            ids.push(self.member_status(i)?.member_id);
        }
        self.ids = ids;
        Ok(())
    }

    /// Picks fresh listener ports for member `i`, points its proxies at them and spawns etcd.
    pub(crate) fn spawn(&self, i: usize, state: &str) -> Result<(), TestkitError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(TestkitError::ShutDown);
        }
        let client_port = ports::reserve_port()?;
        let peer_port = ports::reserve_port()?;
        let control_port = if self.tls.is_some() {
            ports::reserve_port()?
        } else {
            0
        };
        let slot = &self.slots[i];
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&slot.log)?;
        writeln!(
            log,
            "=== etcdv3-testkit: starting {} ({state}) client 127.0.0.1:{client_port} \
             peer 127.0.0.1:{peer_port}{}",
            slot.name,
            if control_port != 0 {
                format!(" control 127.0.0.1:{control_port}")
            } else {
                String::new()
            }
        )?;
        let mut listen_client = if self.tls.is_some() {
            format!("https://127.0.0.1:{client_port},http://127.0.0.1:{control_port}")
        } else {
            format!("http://127.0.0.1:{client_port}")
        };
        let mut cmd = Command::new(&self.bin);
        if let Some(socket) = &slot.unix_socket {
            // A killed etcd leaves its socket behind: etcd 3.5 removes it before listening,
            // 3.4 fails with "address already in use".
            match fs::remove_file(socket) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
            if let Some(dir) = socket.parent() {
                cmd.current_dir(dir);
            }
            // `unixs` serves TLS on the socket (etcd ignores the certificate for `unix`).
            let scheme = if self.tls.is_some() { "unixs" } else { "unix" };
            listen_client.push_str(&format!(",{scheme}://{UNIX_SOCKET_NAME}"));
        }
        cmd.arg(format!("--name={}", slot.name))
            .arg(format!("--data-dir={}", slot.data_dir.display()))
            .arg(format!("--listen-client-urls={listen_client}"))
            .arg(format!(
                "--advertise-client-urls={}",
                std::iter::once(self.proxy_client_url(slot))
                    .chain(self.extra_advertised_client_urls.iter().cloned())
                    .collect::<Vec<_>>()
                    .join(",")
            ))
            .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"))
            .arg(format!(
                "--initial-advertise-peer-urls={}",
                slot.peer_proxy.url()
            ))
            .arg(format!("--initial-cluster={}", self.initial_cluster))
            .arg(format!("--initial-cluster-state={state}"))
            .arg(format!("--initial-cluster-token={}", self.token))
            .arg("--heartbeat-interval=100")
            .arg("--election-timeout=1000")
            .arg("--logger=zap");
        if self.version.at_least(3, 5) {
            // Tests only SIGKILL processes, which keeps the page cache: fsync buys nothing.
            cmd.arg("--unsafe-no-fsync");
        }
        if let Some(tls) = &self.tls {
            cmd.arg(format!("--cert-file={}", tls.files.server_cert.display()))
                .arg(format!("--key-file={}", tls.files.server_key.display()));
            // etcd requires client certificates as soon as it has a trusted CA (even
            // without --client-cert-auth), so the CA is only passed when they are wanted.
            if tls.client_cert_auth {
                cmd.arg("--client-cert-auth")
                    .arg(format!("--trusted-ca-file={}", tls.files.ca.display()));
            }
        }
        cmd.args(&self.extra_args);
        // etcd reads ETCD_* variables as flags (ETCD_BIN would be warned about, others could
        // change the configuration): start it with none.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("ETCD_") {
                cmd.env_remove(key);
            }
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|source| TestkitError::Spawn {
                bin: self.bin.clone(),
                source,
            })?;
        let peer_addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, peer_port));
        let client_addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, client_port));
        slot.client_proxy.set_upstream(client_addr);
        slot.peer_proxy.set_upstream(peer_addr);
        let mut procs = lock(&self.procs);
        if self.closed.load(Ordering::SeqCst) {
            // [`Cluster::shutdown`] ran while this process started: it must not outlive it.
            drop(procs);
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
            return Err(TestkitError::ShutDown);
        }
        self.net.set_pid(i, Some(child.id()));
        let p = &mut procs[i];
        p.child = Some(child);
        p.paused = false;
        p.client_port = client_port;
        p.peer_port = peer_port;
        p.control_port = control_port;
        Ok(())
    }

    /// SIGKILLs member `i`'s process if any (SIGCONT first if paused) and reaps it.
    pub(crate) fn stop_process(&self, i: usize) -> bool {
        let child = {
            let mut procs = lock(&self.procs);
            let p = &mut procs[i];
            let paused = std::mem::take(&mut p.paused);
            p.child.take().map(|c| (c, paused))
        };
        self.net.set_pid(i, None);
        let Some((mut child, paused)) = child else {
            return false;
        };
        if paused {
            let _ = signal(child.id(), Signal::SIGCONT);
        }
        let _ = signal(child.id(), Signal::SIGKILL);
        let _ = child.wait();
        true
    }

    /// Returns the exit status if member `i`'s process has exited.
    pub(crate) fn exited(&self, i: usize) -> Option<String> {
        let mut procs = lock(&self.procs);
        match procs[i].child.as_mut().map(Child::try_wait) {
            Some(Ok(Some(status))) => Some(status.to_string()),
            Some(Ok(None)) => None,
            Some(Err(e)) => Some(format!("wait failed: {e}")),
            None => Some("not running".into()),
        }
    }

    pub(crate) fn running_pid(&self, i: usize) -> Result<u32, TestkitError> {
        self.check(i)?;
        let procs = lock(&self.procs);
        if self.closed.load(Ordering::SeqCst) {
            return Err(TestkitError::ShutDown);
        }
        if procs[i].removed {
            return Err(TestkitError::Removed(i));
        }
        procs[i]
            .child
            .as_ref()
            .map(Child::id)
            .ok_or(TestkitError::NotRunning(i))
    }

    /// Waits until every member in `members` answers `/health` with `"health":"true"`.
    pub(crate) fn wait_healthy(
        &self,
        members: &[usize],
        timeout: Duration,
    ) -> Result<(), TestkitError> {
        let start = Instant::now();
        let mut pending: Vec<(usize, String)> =
            members.iter().map(|&i| (i, String::from("-"))).collect();
        loop {
            let mut still = Vec::new();
            for (i, _) in pending {
                if let Some(status) = self.exited(i) {
                    return Err(TestkitError::Exited {
                        member: i,
                        status,
                        log_tail: log_tail(&self.slots[i].log, LOG_TAIL_LINES),
                    });
                }
                match self.health_body(i) {
                    Ok(body) if body_healthy(&body) => {}
                    Ok(body) => still.push((i, body)),
                    Err(e) => still.push((i, e.to_string())),
                }
            }
            pending = still;
            let Some((member, last)) = pending.first() else {
                return Ok(());
            };
            if start.elapsed() >= timeout {
                return Err(TestkitError::HealthTimeout {
                    member: *member,
                    waited: start.elapsed(),
                    last: last.clone(),
                    log_tail: log_tail(&self.slots[*member].log, LOG_TAIL_LINES),
                });
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
    /// Waits up to `timeout` until member `i` is healthy.
    pub fn wait_member_healthy(&self, i: usize, timeout: Duration) -> Result<(), TestkitError> {
        self.running_pid(i)?;
        self.wait_healthy(&[i], timeout)
    }

    /// Kills member `i` with SIGKILL and reaps it. Its proxies stay; connections to them are
    /// accepted and then closed because nothing listens behind them.
    pub fn kill(&self, i: usize) -> Result<(), TestkitError> {
        self.running_pid(i)?;
        self.stop_process(i);
        Ok(())
    }

    /// Stops member `i` with SIGSTOP (it keeps its sockets; nothing answers).
    pub fn pause(&self, i: usize) -> Result<(), TestkitError> {
        let pid = self.running_pid(i)?;
        signal(pid, Signal::SIGSTOP)?;
        lock(&self.procs)[i].paused = true;
        wait_proc_state(pid, |s| s == 'T');
        Ok(())
    }

    /// Continues member `i` after [`Cluster::pause`] with SIGCONT.
    pub fn resume(&self, i: usize) -> Result<(), TestkitError> {
        let pid = self.running_pid(i)?;
        signal(pid, Signal::SIGCONT)?;
        lock(&self.procs)[i].paused = false;
        wait_proc_state(pid, |s| s != 'T');
        Ok(())
    }

    /// Starts member `i` again on its data dir (`--initial-cluster-state existing`, new
    /// listener ports behind the same proxies) and waits until it is healthy. A running
    /// member is SIGKILLed first. Fails with [`TestkitError::HealthTimeout`] if it cannot
    /// get healthy, e.g. while isolated or without a quorum.
    pub fn restart(&self, i: usize) -> Result<(), TestkitError> {
        self.check(i)?;
        if lock(&self.procs)[i].removed {
            return Err(TestkitError::Removed(i));
        }
        self.stop_process(i);
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.spawn(i, "existing")?;
            match self.wait_healthy(&[i], self.health_timeout) {
                Ok(()) => return Ok(()),
                Err(e) if attempt < PORT_RETRIES && port_clash(&e) => {
                    self.stop_process(i);
                }
                Err(e) => return Err(e),
            }
        }
    }
}

pub(crate) fn signal(pid: u32, sig: Signal) -> Result<(), TestkitError> {
    let name = sig.as_str();
    let raw = i32::try_from(pid).map_err(|_| TestkitError::Signal {
        signal: name,
        pid,
        source: nix::errno::Errno::ESRCH,
    })?;
    nix::sys::signal::kill(Pid::from_raw(raw), sig).map_err(|source| TestkitError::Signal {
        signal: name,
        pid,
        source,
    })
}

/// Polls `/proc/PID/stat` (up to 1 s) until the process state letter satisfies `ok`.
pub(crate) fn wait_proc_state(pid: u32, ok: impl Fn(char) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline {
        let state = fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                s.rsplit_once(')')
                    .and_then(|(_, rest)| rest.trim_start().chars().next())
            });
        match state {
            Some(s) if !ok(s) => thread::sleep(Duration::from_millis(5)),
            _ => return,
        }
    }
}

/// Whether a startup failed because etcd found a chosen port taken.
pub(crate) fn port_clash(e: &TestkitError) -> bool {
    match e {
        TestkitError::Exited { log_tail, .. } | TestkitError::HealthTimeout { log_tail, .. } => {
            log_tail.contains("address already in use")
        }
        _ => false,
    }
}

/// The last `lines` lines of the log file at `path` (or why it cannot be read).
pub(crate) fn log_tail(path: &Path, lines: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}
