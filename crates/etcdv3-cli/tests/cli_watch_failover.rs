//! `etcdv3ctl watch` survives SIGKILL of each member of a 3-member cluster
//! in turn: every event of the store shows up exactly once, in revision
//! order (needs `ETCD_BIN`).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use etcdv3_testkit::Cluster;
use serde_json::Value;

const OURS: &str = env!("CARGO_BIN_EXE_etcdv3ctl");

fn put(endpoints: &str, key: &str, value: &str) {
    // A put whose outcome is unknown may have applied: trying again only
    // adds a version, which the final check counts.
    for _ in 0..20 {
        let out = Command::new(OURS)
            .args(["--endpoints", endpoints, "put", key, value])
            .output()
            .unwrap();
        if out.status.success() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("put {key} never succeeded");
}

fn b64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            _ => 63,
        }
    };
    let bytes: Vec<u8> = s.bytes().filter(|c| *c != b'=').collect();
    let mut out = Vec::new();
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= val(*c) << (18 - 6 * i);
        }
        for i in 0..chunk.len().saturating_sub(1) {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}

#[test]
fn watch_survives_sigkill_of_each_member_with_every_event_once() {
    if std::env::var_os("ETCD_BIN").is_none() {
        eprintln!("NOTICE: ETCD_BIN is not set: the watch failover test is skipped");
        return;
    }
    let cluster = Cluster::start(3).unwrap();
    let endpoints = cluster.client_urls().join(",");
    let mut watch = Command::new(OURS)
        .args([
            "--endpoints",
            &endpoints,
            "-w",
            "json",
            "watch",
            "k/",
            "--prefix",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = watch.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // Let the watch start before the first write (it has no start revision).
    std::thread::sleep(Duration::from_millis(500));
    for i in 0..3 {
        for j in 0..4 {
            put(&endpoints, &format!("k/{i}-before-{j}"), "v");
        }
        cluster.kill(i).unwrap();
        for j in 0..4 {
            put(&endpoints, &format!("k/{i}-during-{j}"), "v");
        }
        cluster.restart(i).unwrap();
    }
    put(&endpoints, "k/end", "v");

    // Collect events until the sentinel arrives.
    let mut events: Vec<(String, i64)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !events.iter().any(|(k, _)| k == "k/end") {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            let _ = watch.kill();
            let out = watch.wait_with_output().unwrap();
            panic!(
                "the watch stopped delivering; got {events:?}; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let resp: Value = serde_json::from_str(&line).unwrap();
        for ev in resp["Events"].as_array().unwrap() {
            let key = String::from_utf8(b64_decode(ev["kv"]["key"].as_str().unwrap())).unwrap();
            events.push((key, ev["kv"]["mod_revision"].as_i64().unwrap()));
        }
    }
    let _ = watch.kill();
    let _ = watch.wait();

    // In revision order, no revision twice.
    for pair in events.windows(2) {
        assert!(
            pair[0].1 < pair[1].1,
            "out of order or repeated: {pair:?} in {events:?}"
        );
    }
    // Every version of every key, none missing.
    let out = Command::new(OURS)
        .args([
            "--endpoints",
            &endpoints,
            "-w",
            "json",
            "get",
            "k/",
            "--prefix",
        ])
        .output()
        .unwrap();
    let state: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut seen: BTreeMap<String, i64> = BTreeMap::new();
    for (k, _) in &events {
        *seen.entry(k.clone()).or_default() += 1;
    }
    let kvs = state["kvs"].as_array().unwrap();
    assert_eq!(kvs.len(), 25, "{state}");
    for kv in kvs {
        let key = String::from_utf8(b64_decode(kv["key"].as_str().unwrap())).unwrap();
        let version = kv["version"].as_i64().unwrap();
        assert_eq!(
            seen.get(&key),
            Some(&version),
            "events of {key}: {events:?}"
        );
    }
}

#[test]
fn base64_decodes() {
    assert_eq!(b64_decode("ay9lbmQ="), b"k/end");
    assert_eq!(b64_decode("Zm9v"), b"foo");
    assert_eq!(b64_decode("dw=="), b"w");
}
