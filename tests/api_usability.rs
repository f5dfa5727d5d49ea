//! Issue 12, items 6 and 7 against a real cluster: builders instead of
//! `opts.core.*`, `Client::sync`, `update_user` at runtime, the old-cluster
//! check, namespaced watch and lease; responses and errors a caller can read
//! without importing core types.

use std::time::Duration;

use etcdv3_client::api::{
    Compare, CompareOp, GetOptions, LeaseGrantOptions, PutOptions, Txn, TxnOp, TxnOpResponse,
    UserAddOptions, WatchEvent, WatchOptions,
};
use etcdv3_client::prelude::*;
use etcdv3_client::{CallError, ClientOptions, Code, Error, EtcdErrorKind};
use etcdv3_integration::cluster;
use etcdv3_integration::runtime::TestRuntime;
use futures_util::StreamExt;

async fn next_events<R: TestRuntime, S>(w: &mut S) -> Vec<etcdv3_client::api::Event>
where
    S: futures_util::Stream<Item = etcdv3_client::Result<WatchEvent>> + Unpin,
{
    loop {
        let ev = R::timeout(Duration::from_secs(5), w.next())
            .await
            .expect("an event in time")
            .expect("stream open")
            .expect("no error");
        if let WatchEvent::Events { events, .. } = ev {
            return events;
        }
    }
}

async fn builders_sync_user_and_version<R: TestRuntime>() {
    let cluster = cluster::start::<R>(3).await;
    let urls = cluster.client_urls();

    // Builders for what needed `opts.core.*`, and the old-cluster check on
    // connect (3.2 or later passes).
    let opts = ClientOptions::default()
        .with_connect_timeout(Duration::from_secs(3))
        .with_keepalive(Duration::from_secs(5), Duration::from_secs(2))
        .with_stall_timeout(Duration::from_secs(3))
        .with_timeout(Duration::from_secs(10))
        .with_reject_old_cluster();
    assert_eq!(opts.core.connect_timeout, Duration::from_secs(3));
    let client = R::connect(&urls[..1], opts).await.expect("a 3.4+ cluster");
    let version = client.check_cluster_version(3, 4).await.unwrap();
    assert!(version.starts_with("3."), "{version}");
    let err = client.check_cluster_version(99, 0).await.unwrap_err();
    assert!(matches!(err, Error::OldCluster { .. }), "{err}");

    // `sync()` learns every member from the member list.
    assert_eq!(client.endpoint_states().len(), 1);
    let synced = client.sync().await.unwrap();
    let mut want = urls.clone();
    want.sort();
    let mut got = synced.clone();
    got.sort();
    assert_eq!(got, want);
    assert_eq!(client.endpoint_states().len(), 3);
    // After every member answered a status, the client says which member
    // serves each endpoint and which one leads, in its own types.
    let statuses = client.endpoint_status_all().await;
    assert!(statuses.iter().all(|s| s.result.is_ok()), "{statuses:?}");
    let states = client.endpoint_states();
    for (st, info) in statuses.iter().zip(&states) {
        assert_eq!(st.endpoint, info.endpoint);
        assert_eq!(info.member_id, st.member_id(), "{info:?}");
        assert_eq!(
            info.standing,
            etcdv3_client::Standing::Preferred,
            "{info:?}"
        );
    }
    let leader = statuses[0].result.as_ref().unwrap().leader;
    let leaders: Vec<_> = states.iter().filter(|e| e.is_leader).collect();
    assert!(
        leaders.iter().all(|e| e.member_id == Some(leader)) && leaders.len() == 1,
        "{states:?}"
    );

    // `update_user` at runtime: an anonymous client of a cluster with auth
    // on starts authenticating; wrong credentials change nothing.
    let admin = cluster::connect::<R>(&cluster).await;
    admin
        .user_add("root", "rootpw", UserAddOptions::new())
        .await
        .unwrap();
    admin.user_grant_role("root", "root").await.unwrap();
    admin.auth_enable().await.unwrap();
    let anon = cluster::connect::<R>(&cluster).await;
    let err = anon.get("u/k", GetOptions::new()).await.unwrap_err();
    assert!(!err.may_have_applied(), "{err}");
    let err = anon.update_user("root", "wrong").await.unwrap_err();
    assert_eq!(err.etcd_kind(), Some(&EtcdErrorKind::AuthFailed), "{err}");
    anon.update_user("root", "rootpw").await.unwrap();
    anon.put("u/k", "v", PutOptions::new()).await.unwrap();
    let got = anon.get("u/k", GetOptions::new()).await.unwrap();
    assert_eq!(got.kvs[0].value_str().unwrap(), "v");
    anon.auth_disable().await.unwrap();
}

async fn namespaces_and_readable_responses<R: TestRuntime>() {
    let cluster = cluster::start::<R>(1).await;
    let client = cluster::connect::<R>(&cluster).await;
    let ns = client.namespaced("ns/");

    // A namespaced watch: keys come back relative to the namespace.
    let mut w = ns
        .watch("a", WatchOptions::new().with_prefix().with_prev_kv())
        .await
        .unwrap();
    client
        .put("other/a1", "x", PutOptions::new())
        .await
        .unwrap();
    client.put("ns/a1", "1", PutOptions::new()).await.unwrap();
    let events = next_events::<R, _>(&mut w).await;
    let kv = events[0].kv.as_ref().unwrap();
    assert_eq!(kv.key_str().unwrap(), "a1");
    assert!(events[0].is_put() && events[0].is_create());
    client.delete("ns/a1", Default::default()).await.unwrap();
    let events = next_events::<R, _>(&mut w).await;
    assert!(events[0].is_delete(), "{:?}", events[0].kind());
    assert_eq!(events[0].prev_kv.as_ref().unwrap().key_lossy(), "a1");

    // Progress inside the namespace.
    w.request_progress().unwrap();

    // A namespaced watch group: watchers added are prefixed, keys come
    // back relative; progress requests work through it.
    let mut group = ns.watch_group();
    let id = group.add("g/", WatchOptions::new().with_prefix()).unwrap();
    client
        .put("g/x", "outside", PutOptions::new())
        .await
        .unwrap();
    client
        .put("ns/g/x", "inside", PutOptions::new())
        .await
        .unwrap();
    group.request_progress().unwrap();
    let events = loop {
        let (who, ev) = R::timeout(Duration::from_secs(5), group.next())
            .await
            .expect("a group item in time")
            .expect("group open");
        if let WatchEvent::Events { events, .. } = ev.unwrap() {
            assert_eq!(who, id);
            break events;
        }
    };
    let kv = events[0].kv.as_ref().unwrap();
    assert_eq!(
        (kv.key_str().unwrap(), kv.value_str().unwrap()),
        ("g/x", "inside")
    );

    // A namespaced client: the recipes built on it (Session, Mutex,
    // Election, STM) and its watches run inside the namespace.
    {
        use etcdv3_client::concurrency::{stm, Election, Mutex, Session, SessionOptions};
        let tenant = client.with_namespace("tenant/");
        let mut tw = tenant
            .watch("", WatchOptions::new().with_prefix())
            .await
            .unwrap();
        let session = Session::new(&tenant, SessionOptions::new().with_ttl(10))
            .await
            .unwrap();
        let guard = Mutex::new(&session, "locks/a").lock().await.unwrap();
        assert!(guard.key().starts_with(b"locks/a/"), "{guard:?}");
        let mut election = Election::new(&session, "elect");
        election.campaign("me").await.unwrap();
        let leader = election.leader().await.unwrap();
        assert!(leader.key.starts_with(b"elect/"), "{leader:?}");
        assert_eq!(leader.value, b"me");
        stm::run(&tenant, stm::Isolation::default(), |tx| {
            let n = tx.get("counter")?.map_or(0, |v| v.len());
            tx.put("counter", "x".repeat(n + 1));
            Ok(())
        })
        .await
        .unwrap();
        // Everything was stored under the prefix, nothing outside it.
        let raw = client
            .get("tenant/", GetOptions::new().with_prefix().with_keys_only())
            .await
            .unwrap();
        let keys: Vec<String> = raw
            .kvs
            .iter()
            .map(|kv| kv.key_lossy().into_owned())
            .collect();
        assert_eq!(keys.len(), 3, "{keys:?}");
        assert!(
            keys.iter().any(|k| k.starts_with("tenant/locks/a/")),
            "{keys:?}"
        );
        assert!(
            keys.iter().any(|k| k.starts_with("tenant/elect/")),
            "{keys:?}"
        );
        assert!(keys.contains(&"tenant/counter".to_string()), "{keys:?}");
        for bare in ["locks/", "elect/", "counter"] {
            let outside = client
                .get(bare, GetOptions::new().with_prefix())
                .await
                .unwrap();
            assert_eq!(outside.count, 0, "{bare} written outside the namespace");
        }
        // The namespaced watch saw the lock key, relative to the namespace.
        let events = next_events::<R, _>(&mut tw).await;
        let first = events[0].kv.as_ref().unwrap();
        assert!(
            first.key.starts_with(b"locks/a/"),
            "{:?}",
            first.key_lossy()
        );
        guard.unlock().await.unwrap();
    }

    // A namespaced lease view: only the namespace's keys, relative.
    let lease = client
        .lease_grant(30, LeaseGrantOptions::new())
        .await
        .unwrap();
    ns.put("leased", "1", PutOptions::new().with_lease(lease.id))
        .await
        .unwrap();
    client
        .put("other/leased", "1", PutOptions::new().with_lease(lease.id))
        .await
        .unwrap();
    let ttl = ns.lease_time_to_live(lease.id, true).await.unwrap();
    assert_eq!(ttl.keys, vec![b"leased".to_vec()]);

    // Transaction results as a typed enum.
    let resp = client
        .txn(
            Txn::new()
                .when([Compare::version("t/k", CompareOp::Equal, 0)])
                .and_then([
                    TxnOp::put("t/k", "v", PutOptions::new()),
                    TxnOp::get("t/k", GetOptions::new()),
                ]),
        )
        .await
        .unwrap();
    assert!(resp.succeeded);
    match resp.op_responses().as_slice() {
        [TxnOpResponse::Put(_), TxnOpResponse::Get(g)] => {
            assert_eq!(g.kvs[0].value_str().unwrap(), "v")
        }
        other => panic!("unexpected results {other:?}"),
    }

    // Errors matched with the client crate's own names.
    let err = client.lease_revoke(0x7fff_0000).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::NotFound), "{err}");
    match &err {
        Error::Call(CallError::Status { kind, .. }) => {
            assert_eq!(kind, &EtcdErrorKind::LeaseNotFound)
        }
        other => panic!("unexpected {other}"),
    }
}

etcdv3_integration::runtime_tests!(
    builders_sync_user_and_version,
    namespaces_and_readable_responses,
);
