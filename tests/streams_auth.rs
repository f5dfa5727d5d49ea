//! Watches on an auth-enabled cluster: the stream gets a token before it
//! opens, a token the server no longer knows is refreshed and the watcher
//! re-created without loss, and a real permission error ends the watcher
//! (after one refresh) instead of looping.
//!
//! `cargo test -p etcdv3-integration --test streams_auth`

use std::sync::Arc;
use std::time::Duration;

use etcdv3_client::api::{
    GetOptions, Permission, PutOptions, UserAddOptions, WatchEvent, WatchOptions, Watcher,
};
use etcdv3_client::{Client, ClientOptions, Code, Error, EtcdErrorKind};
use etcdv3_integration::runtime::TestRuntime;
use etcdv3_testkit::{Cluster, ClusterBuilder};
use futures_util::StreamExt;

/// A 1-member cluster with auth enabled and tokens that expire after 2 s
/// of disuse: `root`/`rootpw` may do anything, `alice`/`alicepw` may read
/// `a/` only.
async fn auth_cluster<R: TestRuntime>() -> Arc<Cluster> {
    let cluster = R::spawn_blocking(|| ClusterBuilder::new(1).auth_token_ttl(2).start())
        .await
        .expect("auth cluster");
    let cluster = Arc::new(cluster);
    let admin = R::connect(cluster.client_urls(), ClientOptions::default())
        .await
        .expect("admin client");
    admin
        .user_add("root", "rootpw", UserAddOptions::new())
        .await
        .expect("root");
    admin.user_grant_role("root", "root").await.expect("grant");
    admin
        .user_add("alice", "alicepw", UserAddOptions::new())
        .await
        .expect("alice");
    admin.role_add("reader").await.expect("role");
    admin
        .role_grant_permission("reader", Permission::read("a/").with_prefix())
        .await
        .expect("permission");
    admin
        .user_grant_role("alice", "reader")
        .await
        .expect("grant");
    admin.auth_enable().await.expect("enable");
    cluster
}

async fn user<R: TestRuntime>(cluster: &Cluster, name: &str, password: &str) -> Client {
    R::connect(
        cluster.client_urls(),
        ClientOptions::default()
            .with_timeout(Duration::from_secs(10))
            .with_user(name, password),
    )
    .await
    .expect("client")
}

/// The mod revisions of the next `n` events (progress skipped).
async fn revisions<R: TestRuntime>(w: &mut Watcher, n: usize) -> Vec<i64> {
    let mut out = Vec::new();
    while out.len() < n {
        match R::timeout(Duration::from_secs(15), w.next()).await {
            Ok(Some(Ok(WatchEvent::Events { events, .. }))) => out.extend(
                events
                    .iter()
                    .map(|e| e.kv.as_ref().map_or(0, |kv| kv.mod_revision)),
            ),
            Ok(Some(Ok(WatchEvent::Progress { .. }))) => {}
            other => panic!("expected events, got {other:?} after {out:?}"),
        }
    }
    out
}

async fn put(c: &Client, key: &str) -> i64 {
    c.put(key, "v", PutOptions::new())
        .await
        .unwrap_or_else(|e| panic!("put {key}: {e}"))
        .header
        .map_or(0, |h| h.revision)
}

async fn a_watch_as_the_first_call_with_credentials_receives_events<R: TestRuntime>() {
    let cluster = auth_cluster::<R>().await;
    let client = user::<R>(&cluster, "root", "rootpw").await;
    // Nothing before it: the stream itself must wait for a token.
    let mut w = client
        .watch("w/", WatchOptions::new().with_prefix())
        .await
        .unwrap_or_else(|e| panic!("first-call watch refused: {e}"));
    let writer = user::<R>(&cluster, "root", "rootpw").await;
    let mut want = Vec::new();
    for i in 0..3 {
        want.push(put(&writer, &format!("w/{i}")).await);
    }
    assert_eq!(revisions::<R>(&mut w, 3).await, want);
}

async fn a_watch_outlives_its_expired_token<R: TestRuntime>() {
    let cluster = auth_cluster::<R>().await;
    let client = user::<R>(&cluster, "root", "rootpw").await;
    let writer = user::<R>(&cluster, "root", "rootpw").await;
    let mut w = client
        .watch("t/", WatchOptions::new().with_prefix())
        .await
        .expect("watch");
    let mut want = vec![put(&writer, "t/before").await];
    assert_eq!(revisions::<R>(&mut w, 1).await, want);
    // The stream's token expires (nothing uses it: the server checks it
    // when a watch is created), then the stream breaks: the re-created
    // watch is refused with "permission denied" until the client gets a new
    // token.
    R::sleep(Duration::from_millis(3500)).await;
    let c = cluster.clone();
    let reset = R::spawn_blocking(move || c.reset_client(0))
        .await
        .expect("reset");
    assert!(reset > 0, "no connection to reset");
    // A writer whose connection the reset did not cut (a put in flight on
    // a reset connection is rightly reported as outcome unknown).
    let writer = user::<R>(&cluster, "root", "rootpw").await;
    for i in 0..3 {
        want.push(put(&writer, &format!("t/after/{i}")).await);
    }
    let got = revisions::<R>(&mut w, 3).await;
    assert_eq!(got, want[1..], "every revision after the restart, once");
}

async fn a_real_permission_error_ends_the_watch_after_one_refresh<R: TestRuntime>() {
    let cluster = auth_cluster::<R>().await;
    let alice = user::<R>(&cluster, "alice", "alicepw").await;
    // Allowed: a/ ...
    let _ok = alice
        .watch("a/", WatchOptions::new().with_prefix())
        .await
        .expect("alice may watch a/");
    // ... refused: b/ (after one token refresh, not in a loop).
    let refused = R::timeout(
        Duration::from_secs(15),
        alice.watch("b/", WatchOptions::new().with_prefix()),
    )
    .await
    .expect("the refusal must come, not a retry loop");
    match refused {
        Err(e @ Error::WatchRefused { .. }) => {
            assert_eq!(e.etcd_kind(), Some(&EtcdErrorKind::PermissionDenied), "{e}");
            assert_eq!(e.code(), Some(Code::PermissionDenied), "{e}");
            assert!(e.to_string().contains("permission denied"), "{e}");
        }
        other => panic!("expected WatchRefused, got {other:?}"),
    }
}

/// Everything the process traced (every level, every crate: h2 and rustls
/// included), from the first call on; one subscriber for the whole binary.
fn captured_traces() -> String {
    use std::sync::{Mutex, Once};
    static LOG: Mutex<Vec<u8>> = Mutex::new(Vec::new());
    static INIT: Once = Once::new();
    struct Capture;
    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            LOG.lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    INIT.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing_subscriber::filter::LevelFilter::TRACE)
            .with_ansi(false)
            .with_writer(|| Capture)
            .try_init();
    });
    String::from_utf8_lossy(&LOG.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
}

/// Whether `text` holds something shaped like an etcd simple token (16
/// ASCII letters, a dot, the auth index).
fn has_simple_token(text: &str) -> Option<&str> {
    let b = text.as_bytes();
    let mut run = 0;
    for (i, c) in b.iter().enumerate() {
        if c.is_ascii_alphabetic() {
            run += 1;
            continue;
        }
        let starts_run = i < run + 1 || !b[i - run - 1].is_ascii_alphanumeric();
        if run == 16 && *c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit) && starts_run {
            return Some(&text[i - 16..(i + 4).min(text.len())]);
        }
        run = 0;
    }
    None
}

/// No password or token in anything the client prints: the options'
/// `{:?}` (as a service logs its configuration), the errors of a wrong
/// password, of a refused put and of a refused watch (`Display` and
/// `{:?}`), and every trace event of every level.
async fn no_password_or_token_in_options_errors_or_traces<R: TestRuntime>() {
    captured_traces();
    let cluster = auth_cluster::<R>().await;
    let options = ClientOptions::default()
        .with_timeout(Duration::from_secs(10))
        .with_user("alice", "alicepw");
    let mut printed = vec![format!("{options:?}"), format!("{options:#?}")];
    let alice = R::connect(cluster.client_urls(), options)
        .await
        .expect("alice");
    let token = alice
        .authenticate("alice", "alicepw")
        .await
        .expect("token")
        .token;
    assert!(
        has_simple_token(&token).is_some(),
        "a simple token: {token}"
    );
    alice
        .get("a/x", GetOptions::new())
        .await
        .expect("alice reads a/");
    let refused = alice
        .put("b/x", "v", PutOptions::new())
        .await
        .expect_err("alice may not write b/");
    printed.push(format!("{refused} {refused:?}"));
    let refused = alice
        .watch("b/", WatchOptions::new().with_prefix())
        .await
        .expect_err("alice may not watch b/");
    printed.push(format!("{refused} {refused:?}"));
    let wrong = ClientOptions::default()
        .with_timeout(Duration::from_secs(5))
        .with_user("alice", "wrong-secret");
    printed.push(format!("{wrong:?}"));
    let failed = match R::connect(cluster.client_urls(), wrong).await {
        Ok(c) => c
            .get("a/x", GetOptions::new())
            .await
            .expect_err("a wrong password is refused"),
        Err(e) => e,
    };
    printed.push(format!("{failed} {failed:?}"));
    // A wrong password is typed like any refusal.
    assert_eq!(
        failed.etcd_kind(),
        Some(&EtcdErrorKind::AuthFailed),
        "{failed:?}"
    );
    assert_eq!(failed.code(), Some(Code::InvalidArgument), "{failed:?}");
    printed.push(captured_traces());
    assert!(
        printed.last().is_some_and(|t| t.contains("TRACE")),
        "traces captured"
    );
    for text in &printed {
        for secret in ["alicepw", "wrong-secret", token.as_str()] {
            assert!(!text.contains(secret), "{secret:?} printed in: {text}");
        }
        assert_eq!(has_simple_token(text), None, "a token printed in: {text}");
    }
}

etcdv3_integration::runtime_tests!(
    no_password_or_token_in_options_errors_or_traces,
    a_watch_as_the_first_call_with_credentials_receives_events,
    a_watch_outlives_its_expired_token,
    a_real_permission_error_ends_the_watch_after_one_refresh,
);
