//! TLS clusters against a real etcd: `ETCD_BIN=/path/to/etcd cargo test -p etcdv3-testkit
//! --test tls` (default: `etcd` on PATH). The client side of TLS is tested end to end in the
//! integration suite (`tests/tls.rs` of the workspace).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use etcdv3_testkit::{Cluster, ClusterBuilder};

/// Sends a plain-HTTP `GET /health` to `url`'s host and returns whatever comes back.
fn plain_get_health(url: &str) -> String {
    let host = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .unwrap();
    let mut s = TcpStream::connect(host).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn plain_cluster_has_no_tls() {
    let c = Cluster::start(1).unwrap();
    assert!(c.tls_files().is_none());
    assert!(!c.client_cert_auth());
    assert!(c.client_urls()[0].starts_with("http://"));
    assert!(c.member(0).direct_client_url().starts_with("http://"));
}

#[test]
fn tls_cluster_serves_https_and_stays_manageable() {
    let c = ClusterBuilder::new(3).client_tls(true).start().unwrap();
    let files = c.tls_files().expect("TLS files");
    assert!(!c.client_cert_auth());
    for p in [
        &files.ca,
        &files.client_cert,
        &files.client_key,
        &files.server_cert,
        &files.server_key,
        &files.foreign_ca,
        &files.foreign_client_cert,
        &files.foreign_client_key,
    ] {
        assert!(
            p.starts_with(c.dir()),
            "{} outside the cluster dir",
            p.display()
        );
        assert!(p.is_file(), "{} missing", p.display());
    }
    for (i, url) in c.client_urls().iter().enumerate() {
        assert!(url.starts_with("https://127.0.0.1:"), "{url}");
        assert_eq!(url, &c.member(i).client_url());
        // Plain HTTP on the TLS port is refused by the TLS server (Go answers 400 or
        // closes); it must not be a healthy answer.
        for u in [url.clone(), c.member(i).direct_client_url()] {
            assert!(u.starts_with("https://"), "{u}");
            let answer = plain_get_health(&u);
            assert!(!answer.contains("\"health\":\"true\""), "{u}: {answer}");
        }
    }
    // The testkit's own management still works over its plain side listener.
    let leader = c.wait_for_leader(Duration::from_secs(10)).unwrap();
    assert_eq!(c.member_ids().len(), 3);
    assert!(c.health(leader).unwrap());
    let victim = (leader + 1) % 3;
    c.kill(victim).unwrap();
    c.restart(victim).unwrap();
    assert!(c.health(victim).unwrap());
    assert!(c.member(victim).client_url().starts_with("https://"));
}

#[test]
fn client_cert_auth_implies_tls() {
    let c = ClusterBuilder::new(1)
        .client_cert_auth(true)
        .start()
        .unwrap();
    assert!(c.client_cert_auth());
    assert!(c.tls_files().is_some());
    assert!(c.client_urls()[0].starts_with("https://"));
    assert!(c.health(0).unwrap());
    assert!(c.member_status(0).is_ok());
    assert!(c.dir().join("tls").join("ca.pem").is_file());
}

#[test]
fn builder_switches() {
    // Turning TLS off again also turns client certificates off (no etcd needed: a bad
    // binary fails before anything starts, so only the builder logic runs here).
    let b = ClusterBuilder::new(1)
        .client_cert_auth(true)
        .client_tls(false);
    let dbg = format!("{b:?}");
    assert!(
        dbg.contains("client_tls: false") && dbg.contains("client_cert_auth: false"),
        "{dbg}"
    );
}
