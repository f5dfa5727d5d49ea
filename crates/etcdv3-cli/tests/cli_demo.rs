//! `etcdv3ctl demo` runs to the end in under a minute with a report that
//! shows every fault and nothing lost, stops on Ctrl-C, and leaves no etcd
//! process or temp directory behind either way (needs `ETCD_BIN`).

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

const OURS: &str = env!("CARGO_BIN_EXE_etcdv3ctl");

/// One demo at a time: two clusters under load at once would measure each
/// other.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn etcd_bin() -> Option<String> {
    let bin = std::env::var("ETCD_BIN").ok().filter(|b| !b.is_empty());
    if bin.is_none() {
        eprintln!("NOTICE: ETCD_BIN is not set: the demo test is skipped");
    }
    bin
}

/// Every process whose command line names `dir` (an etcd of the demo's
/// cluster: its data dir is inside).
fn processes_under(dir: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(dir))
        })
        .collect()
}

fn assert_nothing_left(dir: &str) {
    assert!(dir.contains("etcdv3-testkit-"), "{dir}");
    assert!(!Path::new(dir).exists(), "{dir} left behind");
    assert_eq!(processes_under(dir), Vec::<u32>::new(), "etcd left running");
}

#[test]
fn demo_json_reports_every_fault_and_nothing_lost_within_a_minute() {
    let Some(etcd) = etcd_bin() else { return };
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let start = Instant::now();
    let out = Command::new(OURS)
        .args(["demo", "--json"])
        .env("ETCD_BIN", &etcd)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let took = start.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed: {stdout}\n{stderr}");
    assert!(took < Duration::from_secs(60), "demo took {took:?}");
    let r: Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"));

    // Every fault of the schedule, each undone without error: SIGKILL,
    // SIGSTOP and a peer cut, on the member in use and on the leader.
    let faults = r["faults"].as_array().unwrap();
    let seen: BTreeSet<(String, bool)> = faults
        .iter()
        .map(|f| {
            assert!(f["inject_error"].is_null(), "{f}");
            assert!(f["gap_ms"].as_u64().is_some(), "{f}");
            (
                f["fault"].as_str().unwrap().to_string(),
                f["target_role"] == "leader",
            )
        })
        .collect();
    let want: BTreeSet<(String, bool)> = ["SIGKILL", "SIGSTOP", "cut off from peers"]
        .iter()
        .flat_map(|f| [(f.to_string(), false), (f.to_string(), true)])
        .collect();
    assert_eq!(seen, want, "{r}");
    for f in faults.iter().filter(|f| f["target_role"] == "leader") {
        assert!(f["target_was_leader"].as_bool().unwrap(), "{f}");
    }

    // Every acknowledged write is there; the watch saw each once, in order.
    let w = &r["writes"];
    let acked = w["acknowledged"].as_u64().unwrap();
    assert!(acked > 100, "too little work: {w}");
    assert_eq!(w["acknowledged_present"].as_u64(), Some(acked), "{w}");
    assert_eq!(w["not_applied_but_present"], 0, "{w}");
    assert_eq!(r["lost"], 0);
    assert_eq!(r["reads"]["stale"], 0);
    let watch = &r["watch"];
    assert_eq!(watch["complete"], true, "{watch}");
    assert_eq!(watch["in_order"], true, "{watch}");
    assert_eq!(watch["missed"], 0, "{watch}");
    assert_eq!(watch["duplicates"], 0, "{watch}");
    assert_eq!(watch["expected"], w["read_back"], "{r}");
    // Outcome-unknown puts are counted, overall and per fault.
    let unknown = w["outcome_unknown"].as_u64().unwrap();
    let per_fault: u64 = faults
        .iter()
        .map(|f| f["outcome_unknown"].as_u64().unwrap())
        .sum();
    assert!(per_fault <= unknown, "{r}");
    assert!(w["outcome_unknown_applied"].as_u64().unwrap() <= unknown);
    assert_eq!(r["ok"], true, "{r}");

    // The live view went to stderr, one line a second (not a terminal).
    assert!(stderr.contains("ops/s"), "{stderr}");
    assert!(stderr.contains("SIGKILL leader"), "{stderr}");

    assert_nothing_left(r["cluster_dir"].as_str().unwrap());
}

#[test]
fn ctrl_c_stops_the_demo_and_everything_it_started() {
    let Some(etcd) = etcd_bin() else { return };
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut child = Command::new(OURS)
        .arg("demo")
        .env("ETCD_BIN", &etcd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    // Wait until the first fault is under way.
    let mut dir = None;
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|e| panic!("no fault line from the demo ({e})"));
        if let Some((_, d)) = line
            .strip_prefix("cluster: ")
            .and_then(|l| l.rsplit_once(" in "))
        {
            dir = Some(d.to_string());
        }
        if line.contains("SIGKILL") {
            break;
        }
    }
    let dir = dir.expect("the demo names its cluster directory");
    assert!(Path::new(&dir).is_dir());
    assert!(!processes_under(&dir).is_empty());
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let stopped = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(15),
            "demo still running 15 s after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(130), "{status}");
    assert_nothing_left(&dir);
}

#[test]
fn demo_without_an_etcd_binary_says_how_to_install_one() {
    let out = Command::new(OURS)
        .args(["demo", "--etcd", "/nonexistent/etcd"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/etcd"), "{stderr}");
    assert!(stderr.contains("scripts/install-etcd.sh"), "{stderr}");
}

#[test]
fn demo_refuses_endpoints() {
    let out = Command::new(OURS)
        .args(["--endpoints", "10.0.0.1:2379", "demo"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("own throwaway cluster"));
}
