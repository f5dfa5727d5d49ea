//! `--discovery-srv` / `-d`, `--discovery-srv-name`, `--insecure-discovery`:
//! etcdv3ctl and etcdctl 3.5 find a real cluster through SRV records that a
//! small authoritative DNS server (the testkit's) serves on a loopback
//! address, port 53.
//!
//! Both tools read their nameserver from `/etc/resolv.conf` (etcdctl has no
//! other way), which this test never touches: each command runs in a
//! private mount namespace (`unshare --mount`) where a resolv.conf naming the
//! test's server is bind-mounted over it, seen by that process alone. That
//! takes root (and `unshare`); elsewhere the test prints a notice and
//! passes, as it does without etcdctl.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use etcdv3_testkit::dns::{SrvServer, SrvTarget};
use etcdv3_testkit::Cluster;

const OURS: &str = env!("CARGO_BIN_EXE_etcdv3ctl");

fn etcdctl() -> Option<PathBuf> {
    let bin = std::env::var_os("ETCD_BIN")?;
    let ctl = Path::new(&bin).with_file_name("etcdctl");
    ctl.exists().then_some(ctl)
}

struct Out {
    stdout: String,
    stderr: String,
    code: i32,
}

/// Runs `bin args` with `resolv` as its /etc/resolv.conf.
fn run(resolv: &Path, bin: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
    let out = Command::new("unshare")
        .args([
            "--mount",
            "sh",
            "-c",
            r#"mount --bind "$0" /etc/resolv.conf && exec "$@""#,
        ])
        .arg(resolv)
        .arg(bin)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("unshare");
    Out {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        code: out.status.code().unwrap_or(-1),
    }
}

/// Whether commands can get a private resolv.conf here.
fn can_unshare(resolv: &Path) -> bool {
    run(resolv, Path::new("true"), &[], &[]).code == 0
}

/// A port nobody listens on.
fn refused_endpoint() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    format!("http://{addr}")
}

#[test]
fn discovery_srv_matches_etcdctl() {
    let Some(ctl) = etcdctl() else {
        eprintln!("cli_discovery: no etcdctl next to ETCD_BIN; skipped");
        return;
    };
    let cluster = Cluster::start(1).expect("cluster");
    let endpoint = cluster.client_urls()[0].clone();
    let port: u16 = endpoint.rsplit(':').next().unwrap().parse().unwrap();
    let target = |port| SrvTarget {
        priority: 0,
        weight: 1,
        port,
        target: "m0.example.test".into(),
    };
    // A loopback address of this process's own (all of 127/8 is loopback
    // on Linux), port 53: resolv.conf names no port.
    let pid = std::process::id();
    let ip = format!("127.{}.{}.53", 100 + (pid >> 8) % 100, pid % 250 + 1);
    let server = match SrvServer::start(
        format!("{ip}:53").parse().unwrap(),
        vec![
            ("_etcd-client._tcp.example.test".into(), vec![target(port)]),
            (
                "_etcd-client-prod._tcp.example.test".into(),
                vec![target(port)],
            ),
        ],
        // The target's address, from the same server (both tools resolve it
        // through the private resolv.conf).
        vec![("m0.example.test".into(), std::net::Ipv4Addr::LOCALHOST)],
    ) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cli_discovery: cannot serve DNS on {ip}:53 ({e}); skipped");
            return;
        }
    };
    let dir = std::env::temp_dir().join(format!("etcdv3-cli-discovery-{pid}"));
    std::fs::create_dir_all(&dir).unwrap();
    // Removed however the test ends.
    struct RemoveDir(PathBuf);
    impl Drop for RemoveDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _cleanup = RemoveDir(dir.clone());
    let resolv = dir.join("resolv.conf");
    std::fs::write(&resolv, format!("nameserver {ip}\n")).unwrap();
    if !can_unshare(&resolv) {
        eprintln!(
            "cli_discovery: no private mount namespace here (root and unshare needed); skipped"
        );
        return;
    }
    let ours = Path::new(OURS);
    let dead = refused_endpoint();
    let both = |args: &[&str], env: &[(&str, &str)]| {
        (run(&resolv, &ctl, args, env), run(&resolv, ours, args, env))
    };

    // The records, not the dead --endpoints, lead to the cluster.
    let (theirs, mine) = both(
        &["--endpoints", &dead, "-d", "example.test", "put", "k", "v"],
        &[],
    );
    assert_eq!(
        (theirs.code, theirs.stdout.as_str()),
        (0, "OK\n"),
        "{}",
        theirs.stderr
    );
    assert_eq!(
        (mine.code, mine.stdout.as_str()),
        (0, "OK\n"),
        "{}",
        mine.stderr
    );
    for args in [
        &[
            "--endpoints",
            &dead,
            "--discovery-srv",
            "example.test",
            "get",
            "k",
        ][..],
        &[
            "--endpoints",
            &dead,
            "-d",
            "example.test",
            "--discovery-srv-name",
            "prod",
            "get",
            "k",
        ],
        &[
            "--endpoints",
            &dead,
            "--discovery-srv=example.test",
            "-w",
            "fields",
            "member",
            "list",
        ],
    ] {
        let (theirs, mine) = both(args, &[]);
        assert_eq!(theirs.code, 0, "etcdctl {args:?}: {}", theirs.stderr);
        assert_eq!(
            (mine.code, &mine.stdout, &mine.stderr),
            (theirs.code, &theirs.stdout, &theirs.stderr),
            "{args:?}"
        );
    }
    let (theirs, mine) = both(
        &["--endpoints", &dead, "get", "k"],
        &[("ETCDCTL_DISCOVERY_SRV", "example.test")],
    );
    assert_eq!(theirs.stdout, "k\nv\n", "{}", theirs.stderr);
    assert_eq!((mine.code, &mine.stdout), (theirs.code, &theirs.stdout));

    // Insecure records dropped: a line on stderr, --endpoints used.
    let (theirs, mine) = both(
        &[
            "--endpoints",
            &endpoint,
            "-d",
            "example.test",
            "--insecure-discovery=false",
            "get",
            "k",
        ],
        &[],
    );
    let line =
        format!("ignoring discovered insecure endpoint \"http://m0.example.test.:{port}\"\n");
    assert_eq!(
        (theirs.code, &theirs.stdout, &theirs.stderr),
        (0, &"k\nv\n".to_string(), &line)
    );
    assert_eq!(
        (mine.code, &mine.stdout, &mine.stderr),
        (0, &theirs.stdout, &line)
    );

    // No records: etcdctl's error, exit 1.
    let (theirs, mine) = both(&["-d", "nowhere.test", "get", "k"], &[]);
    let error = format!(
        "Error: dns lookup errors: lookup _etcd-client-ssl._tcp.nowhere.test on {ip}:53: no such host and lookup _etcd-client._tcp.nowhere.test on {ip}:53: no such host\n"
    );
    assert_eq!((theirs.code, &theirs.stderr), (1, &error));
    assert_eq!(
        (mine.code, &mine.stdout, &mine.stderr),
        (1, &theirs.stdout, &error)
    );
    assert!(server.queries() >= 12, "{} questions", server.queries());
    drop(server);
}
