//! Regression (issue 10, bug 3): watches on an auth-enabled cluster.
//!
//! 1. A client with credentials whose first call is a watch must
//!    authenticate before opening the stream, and receive events.
//! 2. After its token expired (the cluster's simple tokens live 2 s without
//!    use), the watch stream is lost (the member serving it is restarted)
//!    and reopened: the reopened stream needs a fresh token, and the
//!    watcher still delivers every event, exactly once, in order.
//!
//! `cargo test -p etcdv3-integration --test regress_auth_watch -- --nocapture`

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etcdv3_client::api::{PutOptions, UserAddOptions, WatchEvent, WatchOptions};
use etcdv3_client::ClientOptions;
use etcdv3_integration::runtime::{exclusive, TestRuntime, Tokio};
use etcdv3_testkit::ClusterBuilder;
use futures_util::StreamExt;

/// `--auth-token-ttl` of the cluster, seconds.
const TOKEN_TTL: u64 = 2;
/// How long events may take to arrive.
const DELIVERY: Duration = Duration::from_secs(15);

/// What the watcher delivered.
#[derive(Debug, Default)]
struct Seen {
    /// (mod_revision, key) of every event, in delivery order.
    events: Vec<(i64, String)>,
    /// Why the watcher ended, if it did.
    ended: Option<String>,
}

async fn collect(mut watcher: etcdv3_client::api::watch::Watcher, out: Arc<Mutex<Seen>>) {
    loop {
        let next = watcher.next().await;
        let mut seen = out.lock().unwrap();
        match next {
            Some(Ok(WatchEvent::Events { events, .. })) => {
                for e in events {
                    if let Some(kv) = e.kv {
                        seen.events.push((
                            kv.mod_revision,
                            String::from_utf8_lossy(&kv.key).into_owned(),
                        ));
                    }
                }
            }
            Some(Ok(WatchEvent::Progress { .. } | WatchEvent::Created { .. })) => {}
            Some(Ok(other)) => {
                seen.ended = Some(format!("watcher ended: {other:?}"));
                return;
            }
            Some(Err(e)) => {
                seen.ended = Some(format!("watcher failed: {e}"));
                return;
            }
            None => {
                seen.ended = Some("watcher stream ended".into());
                return;
            }
        }
    }
}

/// Waits until the watcher delivered every key of `expected` (or ended, or
/// `DELIVERY` passed); returns what is missing.
async fn wait_for<R: TestRuntime>(seen: &Mutex<Seen>, expected: &[(i64, String)]) -> Vec<String> {
    let start = Instant::now();
    loop {
        let missing: Vec<String> = {
            let s = seen.lock().unwrap();
            expected
                .iter()
                .filter(|e| !s.events.contains(e))
                .map(|(rev, key)| format!("{key}@{rev}"))
                .collect()
        };
        let ended = seen.lock().unwrap().ended.is_some();
        if missing.is_empty() || ended || start.elapsed() > DELIVERY {
            return missing;
        }
        R::sleep(Duration::from_millis(50)).await;
    }
}

async fn watches_authenticate_and_survive_token_expiry<R: TestRuntime>() {
    let cluster = Arc::new(
        R::spawn_blocking(|| ClusterBuilder::new(3).auth_token_ttl(TOKEN_TTL).start())
            .await
            .expect("start an auth cluster"),
    );
    let urls = cluster.client_urls();
    let admin = R::connect(&urls, ClientOptions::default())
        .await
        .expect("admin client");
    admin
        .user_add("root", "rootpw", UserAddOptions::new())
        .await
        .expect("add root");
    admin
        .user_grant_role("root", "root")
        .await
        .expect("grant root");
    admin.auth_enable().await.expect("enable auth");
    admin.close();
    let with_user = || {
        ClientOptions::default()
            .with_user("root", "rootpw")
            .with_timeout(Duration::from_secs(10))
    };

    // 1. The watch is the client's first call.
    let client = R::connect(&urls, with_user()).await.expect("client");
    let watcher = match R::timeout(
        Duration::from_secs(15),
        client.watch("w/", WatchOptions::new().with_prefix()),
    )
    .await
    {
        Ok(Ok(w)) => w,
        Ok(Err(e)) => panic!(
            "a watch as the first call of a client with credentials failed (bug 3: streams \
             never authenticate): {e}"
        ),
        Err(_) => panic!("a watch as the first call of a client with credentials hung"),
    };
    let seen = Arc::new(Mutex::new(Seen::default()));
    let collector = R::spawn(collect(watcher, seen.clone()));
    let writer = R::connect(&urls, with_user()).await.expect("writer");
    let mut expected = Vec::new();
    for i in 0..5 {
        let key = format!("w/first-{i}");
        let r = writer
            .put(key.clone(), "x", PutOptions::new())
            .await
            .expect("put");
        expected.push((r.header.map_or(0, |h| h.revision), key));
    }
    let missing = wait_for::<R>(&seen, &expected).await;
    assert!(
        missing.is_empty(),
        "the first-call watch did not deliver {missing:?} ({:?})",
        seen.lock().unwrap().ended
    );

    // 2. Let the watcher's token expire, then make the stream reopen.
    R::sleep(Duration::from_millis(TOKEN_TTL * 1000 + 1500)).await;
    let serving: Vec<usize> = client
        .endpoint_states()
        .iter()
        .filter(|s| s.in_flight > 0)
        .filter_map(|s| {
            let authority = s.endpoint.rsplit('/').next().unwrap_or_default();
            urls.iter().position(|u| u.ends_with(authority))
        })
        .collect();
    let c = cluster.clone();
    let how = R::spawn_blocking(move || match serving[..] {
        [i] => c
            .restart(i)
            .map(|()| format!("restarted m{i}, the member serving the watch"))
            .map_err(|e| e.to_string()),
        _ => {
            let n: usize = (0..c.size()).map(|i| c.reset_client(i).unwrap_or(0)).sum();
            Ok(format!(
                "reset all {n} client connections (serving member unknown: {serving:?})"
            ))
        }
    })
    .await
    .expect("restarting the serving member");
    eprintln!("[auth-watch] {how}");
    for i in 0..5 {
        let key = format!("w/after-{i}");
        let r = writer
            .put(key.clone(), "y", PutOptions::new())
            .await
            .expect("put after the reconnect");
        expected.push((r.header.map_or(0, |h| h.revision), key));
        R::sleep(Duration::from_millis(100)).await;
    }
    let missing = wait_for::<R>(&seen, &expected).await;
    let s = std::mem::take(&mut *seen.lock().unwrap());
    assert!(
        s.ended.is_none() && missing.is_empty(),
        "after its token expired and its stream was reopened, the watcher {} and missed \
         {missing:?} (bug 3: stream reconnects never refresh the token)",
        s.ended.as_deref().unwrap_or("kept running")
    );
    let mut sorted = s.events.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        sorted, s.events,
        "events duplicated or out of order: {:?}",
        s.events
    );
    client.close();
    writer.close();
    drop(collector);
    R::spawn_blocking(move || drop(cluster)).await;
}

#[test]
fn watches_authenticate_and_survive_token_expiry_tokio() {
    let _exclusive = exclusive();
    Tokio::block_on(watches_authenticate_and_survive_token_expiry::<Tokio>());
}
