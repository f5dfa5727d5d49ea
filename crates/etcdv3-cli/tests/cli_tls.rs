//! `etcdv3ctl` against a TLS cluster (needs `ETCD_BIN`): `--cacert`,
//! `--insecure-skip-tls-verify`, and a wrong CA failing at once with the cause.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use etcdv3_testkit::ClusterBuilder;

const OURS: &str = env!("CARGO_BIN_EXE_etcdv3ctl");

fn ctl(endpoint: &str, flags: &[&str], args: &[&str]) -> Output {
    Command::new(OURS)
        .arg("--endpoints")
        .arg(endpoint)
        .args(flags)
        .args(args)
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn insecure_skip_tls_verify_and_cacert_against_a_tls_cluster() {
    if std::env::var_os("ETCD_BIN").is_none() {
        eprintln!("NOTICE: ETCD_BIN is not set: the TLS CLI test is skipped");
        return;
    }
    let cluster = ClusterBuilder::new(1).client_tls(true).start().unwrap();
    let files = cluster.tls_files().unwrap();
    let ep = cluster.member(0).client_url();
    assert!(ep.starts_with("https://"), "{ep}");
    let skip = ["--insecure-skip-tls-verify"];

    // No CA, verification skipped: works.
    ok(&ctl(&ep, &skip, &["put", "tls/cli", "skipped"]));
    assert_eq!(
        ok(&ctl(&ep, &skip, &["get", "tls/cli"])),
        "tls/cli\nskipped\n"
    );
    // As etcdctl: a schemeless endpoint with --insecure-transport=false.
    let bare = ep.trim_start_matches("https://");
    assert_eq!(
        ok(&ctl(
            bare,
            &["--insecure-transport=false", "--insecure-skip-tls-verify"],
            &["get", "tls/cli", "--print-value-only"]
        )),
        "skipped\n"
    );
    // The environment variable works the same.
    let out = Command::new(OURS)
        .args(["--endpoints", &ep, "get", "tls/cli", "--print-value-only"])
        .env("ETCDCTL_INSECURE_SKIP_TLS_VERIFY", "true")
        .output()
        .unwrap();
    assert_eq!(ok(&out), "skipped\n");

    // The right CA: works without skipping.
    let ca = files.ca.to_str().unwrap();
    assert_eq!(
        ok(&ctl(&ep, &["--cacert", ca], &["get", "tls/cli"])),
        "tls/cli\nskipped\n"
    );

    // A CA that did not sign the server's certificate: fails at once (well
    // within the 5 s command timeout), naming the cause.
    let foreign = files.foreign_ca.to_str().unwrap();
    let started = Instant::now();
    let out = ctl(&ep, &["--cacert", foreign], &["get", "tls/cli"]);
    let elapsed = started.elapsed();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("UnknownIssuer"), "{err}");
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}: {err}");

    // The same wrong CA with verification skipped: works.
    assert_eq!(
        ok(&ctl(
            &ep,
            &["--cacert", foreign, "--insecure-skip-tls-verify"],
            &["get", "tls/cli", "--print-value-only"]
        )),
        "skipped\n"
    );
}
