//! Integration tests against a real etcd: `ETCD_BIN=/path/to/etcd cargo test -p etcdv3-testkit`
//! (default: `etcd` on PATH). Each test starts its own cluster; they may run in parallel.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use etcdv3_testkit::{Cluster, ClusterBuilder, TestkitError};

/// `127.0.0.1:PORT` of an `http://127.0.0.1:PORT` URL.
fn host(url: &str) -> &str {
    url.strip_prefix("http://").unwrap()
}

fn send_get(stream: &mut TcpStream, path: &str) -> io::Result<()> {
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes())
}

/// Reads a whole `Connection: close` response, failing on read timeout.
fn read_response(stream: &mut TcpStream, timeout: Duration) -> io::Result<String> {
    stream.set_read_timeout(Some(timeout))?;
    let mut out = Vec::new();
    stream.read_to_end(&mut out)?;
    if out.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "empty response",
        ));
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// `GET path` on a fresh raw TCP connection to `url`.
fn raw_get(url: &str, path: &str, timeout: Duration) -> io::Result<String> {
    let mut s = TcpStream::connect(host(url))?;
    send_get(&mut s, path)?;
    read_response(&mut s, timeout)
}

fn post(url: &str, path: &str, body: &str) -> String {
    let mut s = TcpStream::connect(host(url)).unwrap();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    read_response(&mut s, Duration::from_secs(5)).unwrap()
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn healthy_via_proxy(url: &str) -> bool {
    raw_get(url, "/health", Duration::from_secs(3))
        .map(|r| r.contains("\"health\":\"true\""))
        .unwrap_or(false)
}

fn eventually(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(100));
    }
}

fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

fn assert_cleaned_up(pids: &[u32], dir: &Path) {
    for &pid in pids {
        assert!(
            !process_exists(pid),
            "etcd pid {pid} still exists after drop"
        );
    }
    assert!(!dir.exists(), "{} still exists after drop", dir.display());
}

#[test]
fn single_member_serves_through_proxies_and_cleans_up() {
    let c = Cluster::start(1).unwrap();
    let v = c.server_version();
    assert_eq!(v.major, 3);
    let urls = c.client_urls();
    assert_eq!(urls.len(), 1);
    let m = c.member(0);
    assert_eq!(m.name(), "m0");
    assert_eq!(urls[0], m.client_url());
    assert_ne!(m.client_url(), m.direct_client_url());
    assert!(m.data_dir().starts_with(c.dir()) && m.data_dir().is_dir());
    assert!(healthy_via_proxy(&urls[0]));

    // The member advertises its proxy URLs.
    let list = post(&urls[0], "/v3/cluster/member/list", "{}");
    assert!(list.contains(&format!("\"{}\"", m.client_url())), "{list}");
    assert!(list.contains(&format!("\"{}\"", m.peer_url())), "{list}");

    let st = c.member_status(0).unwrap();
    assert_eq!(st.member_id, c.member_ids()[0]);
    assert_eq!(st.member_id, m.id());
    assert_eq!(st.leader, st.member_id);
    assert!(st.raft_term >= 1);
    assert_eq!(st.version, v.to_string());
    assert_eq!(c.leader(), Some(0));
    assert!(c.health(0).unwrap());
    assert!(m.log_path().is_file());

    let pid = m.pid().unwrap();
    assert!(process_exists(pid));
    let dir = c.dir().to_path_buf();
    drop(c);
    assert_cleaned_up(&[pid], &dir);
}

#[test]
fn three_members_kill_restart_pause_resume() {
    let c = ClusterBuilder::new(3).auth_token_ttl(30).start().unwrap();
    let ids = c.member_ids();
    assert_eq!(ids.len(), 3);
    assert!(ids.iter().all(|&id| id != 0));
    assert!(c.wait_for_leader(Duration::from_secs(5)).is_ok());
    for i in 0..3 {
        assert!(healthy_via_proxy(&c.member(i).client_url()), "member {i}");
    }

    // kill: the process is gone, its client URL stops answering, the rest keeps a leader.
    let old_pid = c.member(1).pid().unwrap();
    c.kill(1).unwrap();
    assert_eq!(c.member(1).pid(), None);
    assert!(!process_exists(old_pid));
    assert!(raw_get(&c.member(1).client_url(), "/health", Duration::from_secs(2)).is_err());
    assert!(matches!(c.kill(1), Err(TestkitError::NotRunning(1))));
    assert!(c.wait_for_leader(Duration::from_secs(10)).unwrap() != 1);

    // restart: same member id, healthy again through the same proxy URL.
    c.restart(1).unwrap();
    let new_pid = c.member(1).pid().unwrap();
    assert_ne!(new_pid, old_pid);
    assert!(healthy_via_proxy(&c.member(1).client_url()));
    assert_eq!(c.member_status(1).unwrap().member_id, ids[1]);
    assert_eq!(c.member_ids(), ids);

    // pause: requests hang (no answer within the timeout) until resume.
    c.pause(2).unwrap();
    assert!(c.member(2).is_paused());
    let e = raw_get(&c.member(2).client_url(), "/health", Duration::from_secs(1)).unwrap_err();
    assert!(is_timeout(&e), "{e:?}");
    c.resume(2).unwrap();
    assert!(!c.member(2).is_paused());
    eventually(
        "member 2 healthy after resume",
        Duration::from_secs(10),
        || healthy_via_proxy(&c.member(2).client_url()),
    );

    // Drop kills a paused process too.
    c.pause(0).unwrap();
    let pids: Vec<u32> = (0..3).map(|i| c.member(i).pid().unwrap()).collect();
    let dir = c.dir().to_path_buf();
    drop(c);
    assert_cleaned_up(&pids, &dir);
}

#[test]
fn blackhole_and_reset_client() {
    let c = Cluster::start(1).unwrap();
    let url = c.member(0).client_url();

    // A connection opened before the blackhole, and one opened during it.
    let mut before = TcpStream::connect(host(&url)).unwrap();
    c.blackhole_client(0).unwrap();
    send_get(&mut before, "/health").unwrap();
    let e = read_response(&mut before, Duration::from_secs(1)).unwrap_err();
    assert!(is_timeout(&e), "{e:?}");
    let mut during = TcpStream::connect(host(&url)).unwrap(); // accepted, then hangs
    send_get(&mut during, "/health").unwrap();
    let e = read_response(&mut during, Duration::from_secs(1)).unwrap_err();
    assert!(is_timeout(&e), "{e:?}");
    // The member itself is fine.
    assert!(c.health(0).unwrap());

    c.unblackhole_client(0).unwrap();
    // Held requests go through once the path is back, and new ones work.
    for s in [&mut before, &mut during] {
        let r = read_response(s, Duration::from_secs(5)).unwrap();
        assert!(r.contains("\"health\":\"true\""), "{r}");
    }
    assert!(healthy_via_proxy(&url));

    // reset: open connections get a RST.
    drop((before, during));
    eventually("old connections closed", Duration::from_secs(5), || {
        c.member(0).client_connections() == 0
    });
    let mut idle = TcpStream::connect(host(&url)).unwrap();
    eventually("proxy sees the connection", Duration::from_secs(5), || {
        c.member(0).client_connections() == 1
    });
    assert_eq!(c.reset_client(0).unwrap(), 1);
    assert_eq!(c.member(0).client_connections(), 0);
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 16];
    let e = idle.read(&mut buf).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e:?}");
    assert!(healthy_via_proxy(&url));
}

#[test]
fn isolating_the_leader_elects_a_new_one_and_heal_rejoins() {
    let c = Cluster::start(3).unwrap();
    let old = c.wait_for_leader(Duration::from_secs(5)).unwrap();
    let term0 = c.member_status(old).unwrap().raft_term;
    let ids = c.member_ids();

    c.isolate(old).unwrap();
    let start = Instant::now();
    let new = loop {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no new leader after isolating m{old}"
        );
        if let Some(l) = c.leader() {
            if l != old {
                break l;
            }
        }
        thread::sleep(Duration::from_millis(100));
    };
    let new_term = c.member_status(new).unwrap().raft_term;
    assert!(new_term > term0, "term {new_term} not above {term0}");
    // Both remaining members follow the new leader.
    for i in (0..3).filter(|&i| i != old) {
        eventually("followers agree", Duration::from_secs(5), || {
            c.member_status(i)
                .map(|s| s.leader == ids[new])
                .unwrap_or(false)
        });
    }
    // The isolated member still answers its clients, but knows it is cut off.
    let iso_url = c.member(old).client_url();
    eventually("isolated member unhealthy", Duration::from_secs(10), || {
        raw_get(&iso_url, "/health", Duration::from_secs(5))
            .map(|r| r.contains("\"health\":\"false\""))
            .unwrap_or(false)
    });
    let st = c.member_status(old).unwrap();
    assert!(
        st.leader != ids[new] || st.raft_term < new_term,
        "isolated member follows the new leader: {st:?}"
    );

    c.heal(old).unwrap();
    eventually("isolated member rejoins", Duration::from_secs(15), || {
        let Some(l) = c.leader() else { return false };
        healthy_via_proxy(&iso_url)
            && c.member_status(old)
                .map(|s| s.leader == ids[l])
                .unwrap_or(false)
    });
}

#[test]
fn remove_member_shrinks_the_cluster() {
    let c = Cluster::start(3).unwrap();
    // Removing the leader is the harder case: the rest must elect a new one.
    let victim = c.wait_for_leader(Duration::from_secs(5)).unwrap();
    let removed_id = c.member_ids()[victim];
    let pid = c.member(victim).pid().unwrap();
    c.remove_member(victim).unwrap();
    assert_eq!(c.member(victim).pid(), None);
    assert!(!process_exists(pid));
    assert!(matches!(c.kill(victim), Err(TestkitError::Removed(v)) if v == victim));
    assert!(matches!(
        c.remove_member(victim),
        Err(TestkitError::Removed(_))
    ));
    let rest: Vec<usize> = (0..3).filter(|&i| i != victim).collect();
    let list = post(
        &c.member(rest[0]).client_url(),
        "/v3/cluster/member/list",
        "{}",
    );
    assert!(!list.contains(&format!("\"{removed_id}\"")), "{list}");
    for &i in &rest {
        assert!(
            list.contains(&format!("\"{}\"", c.member_ids()[i])),
            "{list}"
        );
    }
    let l = c.wait_for_leader(Duration::from_secs(10)).unwrap();
    assert_ne!(l, victim);
    for &i in &rest {
        eventually("remaining member healthy", Duration::from_secs(10), || {
            healthy_via_proxy(&c.member(i).client_url())
        });
    }
}

/// Every etcd process whose command line names `dir` (its data dir is inside).
fn etcd_processes_under(dir: &Path) -> Vec<u32> {
    let needle = dir.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&needle))
        })
        .collect()
}

#[test]
fn shutdown_through_a_shared_reference_wins_over_a_concurrent_restart() {
    let c = std::sync::Arc::new(Cluster::start(1).unwrap());
    let dir = c.dir().to_path_buf();
    let pid = c.member(0).pid().unwrap();
    // Another thread restarts the member over and over, as a fault schedule
    // would, while the owner shuts the cluster down.
    let restarter = {
        let c = c.clone();
        thread::spawn(move || loop {
            if let Err(e) = c.restart(0) {
                return e;
            }
        })
    };
    thread::sleep(Duration::from_millis(700));
    c.shutdown();
    assert!(c.is_shut_down());
    // The restart loop ends (with ShutDown, or the error of the start that
    // the shutdown cut short).
    let _err = restarter.join().unwrap();
    assert_cleaned_up(&[pid], &dir);
    assert_eq!(etcd_processes_under(&dir), Vec::<u32>::new());
    assert!(matches!(c.restart(0), Err(TestkitError::ShutDown)));
    assert!(matches!(c.kill(0), Err(TestkitError::ShutDown)));
    c.shutdown(); // idempotent
    drop(c);
    assert_eq!(etcd_processes_under(&dir), Vec::<u32>::new());
}

#[test]
fn drop_during_panic_cleans_up() {
    let (tx, rx) = std::sync::mpsc::channel();
    let result = std::panic::catch_unwind(move || {
        let c = Cluster::start(1).unwrap();
        tx.send((c.member(0).pid().unwrap(), c.dir().to_path_buf()))
            .unwrap();
        panic!("test panic with a live cluster");
    });
    assert!(result.is_err());
    let (pid, dir) = rx.recv().unwrap();
    assert_cleaned_up(&[pid], &dir);
}

#[test]
fn missing_binary_names_the_path() {
    let e = ClusterBuilder::new(1)
        .etcd_bin("/no/such/etcd")
        .start()
        .unwrap_err();
    assert!(matches!(e, TestkitError::BinaryNotFound { .. }), "{e}");
    assert!(e.to_string().contains("/no/such/etcd"), "{e}");
}

#[test]
fn bad_flag_reports_the_log_tail() {
    let e = ClusterBuilder::new(1)
        .arg("--no-such-flag-for-etcd")
        .start()
        .unwrap_err();
    match &e {
        TestkitError::Exited { log_tail, .. } => {
            assert!(log_tail.contains("no-such-flag-for-etcd"), "{e}")
        }
        other => panic!("unexpected error {other}"),
    }
}
