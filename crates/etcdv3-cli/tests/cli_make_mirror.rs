//! `etcdv3ctl make-mirror` copies a prefix to another cluster and follows
//! its puts and deletes (needs `ETCD_BIN`).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use etcdv3_testkit::Cluster;

const OURS: &str = env!("CARGO_BIN_EXE_etcdv3ctl");

fn ctl(endpoint: &str, args: &[&str]) -> String {
    let out = Command::new(OURS)
        .arg("--endpoints")
        .arg(endpoint)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn make_mirror_copies_then_follows_a_prefix() {
    if std::env::var_os("ETCD_BIN").is_none() {
        eprintln!("NOTICE: ETCD_BIN is not set: the make-mirror test is skipped");
        return;
    }
    let src = Cluster::start(1).unwrap();
    let dst = Cluster::start(1).unwrap();
    let (s, d) = (src.member(0).client_url(), dst.member(0).client_url());
    ctl(&s, &["put", "a/1", "one"]);
    ctl(&s, &["put", "a/2", "two"]);
    ctl(&s, &["put", "b/1", "not mirrored"]);
    let mut mirror = Command::new(OURS)
        .args([
            "--endpoints",
            &s,
            "make-mirror",
            "--prefix",
            "a/",
            "--dest-prefix",
            "m/",
            &d,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // etcdctl's make-mirror, when present, mirrors the same prefix to e/.
    let etcdctl = std::env::var_os("ETCD_BIN")
        .map(|b| std::path::Path::new(&b).with_file_name("etcdctl"))
        .filter(|p| p.exists());
    let mut theirs = etcdctl.as_ref().map(|bin| {
        Command::new(bin)
            .args([
                "--endpoints",
                &s,
                "make-mirror",
                "--prefix",
                "a/",
                "--dest-prefix",
                "e/",
                &d,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    });
    // Changes after the start: a put, an overwrite and a delete.
    std::thread::sleep(Duration::from_millis(500));
    ctl(&s, &["put", "a/3", "three"]);
    ctl(&s, &["put", "a/1", "uno"]);
    ctl(&s, &["del", "a/2"]);
    let want = if theirs.is_some() {
        "e/1\nuno\ne/3\nthree\nm/1\nuno\nm/3\nthree\n"
    } else {
        "m/1\nuno\nm/3\nthree\n"
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = String::new();
    while Instant::now() < deadline {
        got = ctl(&d, &["get", "", "--from-key"]);
        if got == want {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if let Some(t) = theirs.as_mut() {
        let _ = t.kill();
        let _ = t.wait();
    }
    let _ = mirror.kill();
    let out = mirror.wait_with_output().unwrap();
    assert_eq!(
        got,
        want,
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
