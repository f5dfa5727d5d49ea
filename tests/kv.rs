//! The typed KV, Txn, namespace, Cluster, Maintenance and Auth API against
//! real etcd clusters (etcd from `ETCD_BIN` or `PATH`).
//!
//! `cargo test -p etcdv3-integration --test kv`

use std::time::{Duration, Instant};

use etcdv3_client::api::{
    response_op, AlarmType, CompactOptions, Compare, CompareOp, DeleteOptions, GetOptions,
    MemberListOptions, Permission, PutOptions, SortOrder, SortTarget, Txn, TxnOp, UserAddOptions,
};
use etcdv3_client::core::wire::codec::FrameError;
use etcdv3_client::core::wire::error::EtcdErrorKind;
use etcdv3_client::{CallOptions, Client, ClientOptions, Error};
use etcdv3_integration::cluster::start;
use etcdv3_integration::runtime::TestRuntime;

async fn connect<R: TestRuntime>(urls: impl IntoIterator<Item = impl AsRef<str>>) -> Client {
    connect_with::<R>(urls, ClientOptions::default()).await
}

async fn connect_with<R: TestRuntime>(
    urls: impl IntoIterator<Item = impl AsRef<str>>,
    opts: ClientOptions,
) -> Client {
    R::connect(urls, opts.with_timeout(Duration::from_secs(10)))
        .await
        .unwrap()
}

fn kind(e: &Error) -> Option<EtcdErrorKind> {
    e.etcd_kind().copied()
}

fn keys(kvs: &[etcdv3_client::api::KeyValue]) -> Vec<String> {
    kvs.iter()
        .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
        .collect()
}

fn values(kvs: &[etcdv3_client::api::KeyValue]) -> Vec<String> {
    kvs.iter()
        .map(|kv| String::from_utf8_lossy(&kv.value).into_owned())
        .collect()
}

fn rev(h: &Option<etcdv3_client::api::ResponseHeader>) -> i64 {
    h.as_ref()
        .map(|h| h.revision)
        .expect("response without header")
}

/// Input errors are reported without a round trip: the client points at a
/// port where nothing listens, so any attempt to send would fail with a
/// connection error (or time out), not with these errors.
async fn invalid_input_fails_without_a_round_trip<R: TestRuntime>() {
    let client = connect::<R>(["http://127.0.0.1:9"]).await;
    let t0 = Instant::now();

    let e = client.get("", GetOptions::new()).await.unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    let e = client.put("", "v", PutOptions::new()).await.unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    let e = client.delete("", DeleteOptions::new()).await.unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    let e = client
        .txn(Txn::new().and_then([TxnOp::put("", "v", PutOptions::new())]))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    let e = client
        .txn(Txn::new().when([Compare::version("", CompareOp::Equal, 0)]))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    let e = client
        .namespaced("ns/")
        .get("", GetOptions::new())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    let e = client
        .user_add("", "pw", UserAddOptions::new())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    let e = client
        .role_grant_permission("r", Permission::read(""))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    let e = client
        .member_add(Vec::<String>::new(), false)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");

    // A value over the 2 MiB send limit is refused by the framing layer.
    let big = vec![b'x'; 2 * 1024 * 1024 + 1];
    let e = client.put("big", big, PutOptions::new()).await.unwrap_err();
    match &e {
        Error::Frame {
            method,
            source: FrameError::TooLarge { size, max },
        } => {
            assert_eq!(*method, "/etcdserverpb.KV/Put");
            assert!(size > max, "{size} <= {max}");
        }
        other => panic!("expected a TooLarge frame error, got {other:?}"),
    }
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "took {:?}",
        t0.elapsed()
    );
}

async fn kv_txn_compact_and_namespaces<R: TestRuntime>() {
    let cluster = start::<R>(3).await;
    let client = connect::<R>(cluster.client_urls()).await;

    // --- put / get
    let r1 = rev(&client
        .put("kv/a", "1", PutOptions::new())
        .await
        .unwrap()
        .header);
    client.put("kv/b", "2", PutOptions::new()).await.unwrap();
    client.put("kv/c", "3", PutOptions::new()).await.unwrap();

    let resp = client.get("kv/a", GetOptions::new()).await.unwrap();
    assert_eq!(
        (keys(&resp.kvs), values(&resp.kvs)),
        (vec!["kv/a".into()], vec!["1".into()])
    );
    assert_eq!(resp.kvs[0].mod_revision, r1);
    let resp = client.get("kv/none", GetOptions::new()).await.unwrap();
    assert!(resp.kvs.is_empty());
    assert_eq!(resp.count, 0);

    // serializable reads see the data too (from whichever member)
    let resp = client
        .get("kv/", GetOptions::new().with_prefix().with_serializable())
        .await;
    assert!(resp.is_ok(), "{resp:?}");

    // --- prefix, limit, sort, range_end, keys_only, count_only
    let resp = client
        .get("kv/", GetOptions::new().with_prefix())
        .await
        .unwrap();
    assert_eq!(keys(&resp.kvs), ["kv/a", "kv/b", "kv/c"]);
    assert_eq!(resp.count, 3);
    assert!(!resp.more);

    let resp = client
        .get("kv/", GetOptions::new().with_prefix().with_limit(2))
        .await
        .unwrap();
    assert_eq!(keys(&resp.kvs), ["kv/a", "kv/b"]);
    assert!(resp.more);
    assert_eq!(resp.count, 3);

    let resp = client
        .get(
            "kv/",
            GetOptions::new()
                .with_prefix()
                .with_sort(SortTarget::Key, SortOrder::Descend),
        )
        .await
        .unwrap();
    assert_eq!(keys(&resp.kvs), ["kv/c", "kv/b", "kv/a"]);
    let resp = client
        .get(
            "kv/",
            GetOptions::new()
                .with_prefix()
                .with_sort(SortTarget::Create, SortOrder::Descend)
                .with_limit(1),
        )
        .await
        .unwrap();
    assert_eq!(keys(&resp.kvs), ["kv/c"]);

    let resp = client
        .get("kv/a", GetOptions::new().with_range_end("kv/c"))
        .await
        .unwrap();
    assert_eq!(keys(&resp.kvs), ["kv/a", "kv/b"]);

    let resp = client
        .get("kv/", GetOptions::new().with_prefix().with_keys_only())
        .await
        .unwrap();
    assert_eq!(keys(&resp.kvs).len(), 3);
    assert!(resp.kvs.iter().all(|kv| kv.value.is_empty()));

    let resp = client
        .get("kv/", GetOptions::new().with_prefix().with_count_only())
        .await
        .unwrap();
    assert!(resp.kvs.is_empty());
    assert_eq!(resp.count, 3);

    let resp = client
        .get("kv/b", GetOptions::new().with_from_key())
        .await
        .unwrap();
    assert_eq!(keys(&resp.kvs)[..2], ["kv/b", "kv/c"]);

    // --- revisions
    let put = client
        .put("kv/a", "10", PutOptions::new().with_prev_kv())
        .await
        .unwrap();
    let r2 = rev(&put.header);
    let prev = put.prev_kv.expect("prev_kv asked for");
    assert_eq!(
        (prev.key.as_slice(), prev.value.as_slice()),
        (&b"kv/a"[..], &b"1"[..])
    );
    let old = client
        .get("kv/a", GetOptions::new().with_revision(r1))
        .await
        .unwrap();
    assert_eq!(values(&old.kvs), ["1"]);
    let new = client.get("kv/a", GetOptions::new()).await.unwrap();
    assert_eq!(values(&new.kvs), ["10"]);
    assert_eq!(new.kvs[0].version, 2);
    let recent = client
        .get(
            "kv/",
            GetOptions::new().with_prefix().with_min_mod_revision(r2),
        )
        .await
        .unwrap();
    assert_eq!(keys(&recent.kvs), ["kv/a"]);
    let early = client
        .get(
            "kv/",
            GetOptions::new().with_prefix().with_max_create_revision(r1),
        )
        .await
        .unwrap();
    assert_eq!(keys(&early.kvs), ["kv/a"]);

    // --- delete
    let del = client
        .delete("kv/b", DeleteOptions::new().with_prev_kv())
        .await
        .unwrap();
    assert_eq!(del.deleted, 1);
    assert_eq!(keys(&del.prev_kvs), ["kv/b"]);
    assert_eq!(values(&del.prev_kvs), ["2"]);
    let del = client.delete("kv/b", DeleteOptions::new()).await.unwrap();
    assert_eq!(del.deleted, 0);

    // --- txn: success branch
    let txn = Txn::new()
        .when([
            Compare::value("kv/a", CompareOp::Equal, "10"),
            Compare::version("kv/c", CompareOp::Equal, 1),
            Compare::create_revision("kv/missing", CompareOp::Equal, 0),
            Compare::mod_revision("kv/a", CompareOp::Equal, r2),
            Compare::lease("kv/a", CompareOp::Equal, 0),
            Compare::create_revision("kv/", CompareOp::Greater, 0).with_prefix(),
        ])
        .and_then([
            TxnOp::put("kv/t", "yes", PutOptions::new()),
            TxnOp::get("kv/a", GetOptions::new()),
        ])
        .or_else([TxnOp::put("kv/t", "no", PutOptions::new())]);
    let resp = client.txn(txn).await.unwrap();
    assert!(resp.succeeded);
    assert_eq!(resp.responses.len(), 2);
    assert!(matches!(
        resp.responses[0].response,
        Some(response_op::Response::ResponsePut(_))
    ));
    match &resp.responses[1].response {
        Some(response_op::Response::ResponseRange(r)) => assert_eq!(values(&r.kvs), ["10"]),
        other => panic!("unexpected {other:?}"),
    }
    let t = client.get("kv/t", GetOptions::new()).await.unwrap();
    assert_eq!(values(&t.kvs), ["yes"]);

    // --- txn: failure branch
    let txn = Txn::new()
        .when([Compare::value("kv/a", CompareOp::Equal, "nope")])
        .and_then([TxnOp::put("kv/t", "wrong", PutOptions::new())])
        .or_else([TxnOp::delete("kv/t", DeleteOptions::new().with_prev_kv())]);
    let resp = client.txn(txn).await.unwrap();
    assert!(!resp.succeeded);
    match &resp.responses[0].response {
        Some(response_op::Response::ResponseDeleteRange(d)) => {
            assert_eq!(d.deleted, 1);
            assert_eq!(values(&d.prev_kvs), ["yes"]);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(client
        .get("kv/t", GetOptions::new())
        .await
        .unwrap()
        .kvs
        .is_empty());

    // --- txn: nested
    let inner = Txn::new()
        .when([Compare::version("kv/n", CompareOp::Greater, 0)])
        .and_then([TxnOp::put("kv/n-inner", "exists", PutOptions::new())])
        .or_else([TxnOp::put("kv/n-inner", "absent", PutOptions::new())]);
    let resp = client
        .txn(Txn::new().and_then([TxnOp::txn(inner)]))
        .await
        .unwrap();
    assert!(resp.succeeded);
    match &resp.responses[0].response {
        Some(response_op::Response::ResponseTxn(t)) => assert!(!t.succeeded),
        other => panic!("unexpected {other:?}"),
    }
    let n = client.get("kv/n-inner", GetOptions::new()).await.unwrap();
    assert_eq!(values(&n.kvs), ["absent"]);

    // --- namespaces
    let ns1 = client.namespaced("ns1/");
    let ns2 = client.namespaced("ns2/");
    ns1.put("k", "one", PutOptions::new()).await.unwrap();
    ns1.put("j", "jay", PutOptions::new()).await.unwrap();
    ns2.put("k", "two", PutOptions::new()).await.unwrap();
    let r = ns1.get("k", GetOptions::new()).await.unwrap();
    assert_eq!(
        (keys(&r.kvs), values(&r.kvs)),
        (vec!["k".into()], vec!["one".into()])
    );
    let raw = client.get("ns1/k", GetOptions::new()).await.unwrap();
    assert_eq!(values(&raw.kvs), ["one"]);
    let all = ns1.get("", GetOptions::new().with_prefix()).await.unwrap();
    assert_eq!(keys(&all.kvs), ["j", "k"]);
    let from = ns1
        .get("k", GetOptions::new().with_from_key())
        .await
        .unwrap();
    assert_eq!(
        keys(&from.kvs),
        ["k"],
        "from-key must stay inside the namespace"
    );
    let put = ns2
        .put("k", "two!", PutOptions::new().with_prev_kv())
        .await
        .unwrap();
    assert_eq!(put.prev_kv.map(|kv| kv.key), Some(b"k".to_vec()));
    let txn = Txn::new()
        .when([Compare::value("k", CompareOp::Equal, "one")])
        .and_then([
            TxnOp::put("k2", "new", PutOptions::new()),
            TxnOp::get("", GetOptions::new().with_prefix()),
        ]);
    let resp = ns1.txn(txn).await.unwrap();
    assert!(resp.succeeded, "the compare must see ns1/k");
    match &resp.responses[1].response {
        Some(response_op::Response::ResponseRange(r)) => assert_eq!(keys(&r.kvs), ["j", "k", "k2"]),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        values(&client.get("ns1/k2", GetOptions::new()).await.unwrap().kvs),
        ["new"]
    );
    let del = ns1
        .delete("", DeleteOptions::new().with_from_key().with_prev_kv())
        .await
        .unwrap();
    assert_eq!(keys(&del.prev_kvs), ["j", "k", "k2"]);
    let left = ns2.get("", GetOptions::new().with_prefix()).await.unwrap();
    assert_eq!(
        (keys(&left.kvs), values(&left.kvs)),
        (vec!["k".into()], vec!["two!".into()])
    );

    // --- compaction
    let r3 = rev(&client
        .put("kv/compact", "x", PutOptions::new())
        .await
        .unwrap()
        .header);
    client
        .put("kv/compact", "y", PutOptions::new())
        .await
        .unwrap();
    client
        .compact(r3, CompactOptions::new().with_physical())
        .await
        .unwrap();
    let e = client
        .get("kv/a", GetOptions::new().with_revision(r3 - 1))
        .await
        .unwrap_err();
    assert_eq!(kind(&e), Some(EtcdErrorKind::Compacted), "{e:?}");
    let at = client
        .get("kv/compact", GetOptions::new().with_revision(r3))
        .await
        .unwrap();
    assert_eq!(values(&at.kvs), ["x"]);
    let e = client
        .get("kv/a", GetOptions::new().with_revision(r3 + 1_000_000))
        .await
        .unwrap_err();
    assert_eq!(kind(&e), Some(EtcdErrorKind::FutureRev), "{e:?}");
    // Compacting again at the same revision is refused as compacted.
    let e = client.compact(r3, CompactOptions::new()).await.unwrap_err();
    assert_eq!(kind(&e), Some(EtcdErrorKind::Compacted), "{e:?}");

    client
        .delete("", DeleteOptions::new().with_prefix())
        .await
        .unwrap();
    assert_eq!(
        client
            .get("", GetOptions::new().with_prefix().with_count_only())
            .await
            .unwrap()
            .count,
        0
    );
}

async fn cluster_and_maintenance<R: TestRuntime>() {
    let cluster = start::<R>(3).await;
    let client = connect::<R>(cluster.client_urls()).await;
    let mut ids = cluster.member_ids();
    ids.sort_unstable();

    // --- member list
    for opts in [
        MemberListOptions::new(),
        MemberListOptions::new().with_linearizable(),
    ] {
        let list = client.member_list(opts).await.unwrap();
        let mut got: Vec<u64> = list.members.iter().map(|m| m.id).collect();
        got.sort_unstable();
        assert_eq!(got, ids);
        assert!(list
            .members
            .iter()
            .all(|m| !m.is_learner && !m.peer_ur_ls.is_empty()));
    }

    // --- status
    let st = client.status().await.unwrap();
    assert!(!st.version.is_empty());
    assert!(
        ids.contains(&st.leader),
        "leader {:x} not in {ids:x?}",
        st.leader
    );
    assert!(ids.contains(&st.header.as_ref().unwrap().member_id));
    assert!(st.db_size > 0);

    // --- alarms, hash, defragment
    assert!(client.alarm_list().await.unwrap().alarms.is_empty());
    assert!(client.alarm_disarm_all().await.unwrap().alarms.is_empty());
    let r = client
        .alarm_disarm(ids[0], AlarmType::Nospace)
        .await
        .unwrap();
    assert!(r.alarms.is_empty());
    client.hash().await.unwrap();
    client.defragment().await.unwrap();

    // --- hash_kv agrees on every member at one revision
    for i in 0..20 {
        client
            .put(format!("hash/{i}"), "v", PutOptions::new())
            .await
            .unwrap();
    }
    let at = rev(&client
        .get("hash/0", GetOptions::new())
        .await
        .unwrap()
        .header);
    let mut hashes = Vec::new();
    for url in cluster.client_urls() {
        let one = connect::<R>([url.as_str()]).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        let h = loop {
            match one.hash_kv(at).await {
                Ok(h) => break h,
                // a follower that has not applied `at` yet
                Err(e)
                    if kind(&e) == Some(EtcdErrorKind::FutureRev) && Instant::now() < deadline =>
                {
                    R::sleep(Duration::from_millis(50)).await
                }
                Err(e) => panic!("hash_kv on {url}: {e}"),
            }
        };
        hashes.push(h.hash);
    }
    assert!(
        hashes.windows(2).all(|w| w[0] == w[1]),
        "hashes differ: {hashes:x?}"
    );
    let e = client.hash_kv(at + 1_000_000).await.unwrap_err();
    assert_eq!(kind(&e), Some(EtcdErrorKind::FutureRev), "{e:?}");

    // --- snapshot
    let mut snap = client.snapshot().await.unwrap();
    let mut size = 0usize;
    let mut chunks = 0;
    while let Some(chunk) = snap.next_chunk().await {
        let chunk = chunk.unwrap();
        assert!(!chunk.is_empty());
        size += chunk.len();
        chunks += 1;
    }
    assert!(size > 0 && chunks > 0);
    assert_eq!(snap.remaining_bytes(), Some(0));
    let mut bounded = client
        .snapshot_with(CallOptions::new().with_timeout(Duration::from_secs(30)))
        .await
        .unwrap();
    let mut size2 = 0usize;
    while let Some(chunk) = bounded.next_chunk().await {
        size2 += chunk.unwrap().len();
    }
    assert!(size2 > 0);

    // --- learner lifecycle (the learner is never started)
    // etcd refuses membership changes ("unhealthy cluster") until the leader
    // has been connected to every member for 5 s.
    let deadline = Instant::now() + Duration::from_secs(15);
    let added = loop {
        match client.member_add(["http://127.0.0.1:1"], true).await {
            Ok(r) => break r,
            Err(e) if kind(&e) == Some(EtcdErrorKind::Unhealthy) && Instant::now() < deadline => {
                R::sleep(Duration::from_millis(250)).await
            }
            Err(e) => panic!("member_add: {e}"),
        }
    };
    let learner = added.member.expect("member_add returns the member");
    assert!(learner.is_learner);
    assert_eq!(added.members.len(), 4);
    client
        .member_update(learner.id, ["http://127.0.0.1:2"])
        .await
        .unwrap();
    // etcd 3.5 answers a linearizable member list with the update applied;
    // etcd 3.4 has no linearizable member list (the field is ignored) and a
    // follower may answer before it applied the update: it must show it
    // within a moment.
    let linearizable = cluster.server_version().at_least(3, 5);
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let list = client
            .member_list(MemberListOptions::new().with_linearizable())
            .await
            .unwrap();
        let l = list.members.iter().find(|m| m.id == learner.id).unwrap();
        if linearizable || l.peer_ur_ls == ["http://127.0.0.1:2"] || Instant::now() >= deadline {
            assert_eq!(l.peer_ur_ls, ["http://127.0.0.1:2"]);
            break;
        }
        R::sleep(Duration::from_millis(50)).await;
    }
    let e = client.member_promote(learner.id).await.unwrap_err();
    assert_eq!(kind(&e), Some(EtcdErrorKind::LearnerNotReady), "{e:?}");
    let removed = client.member_remove(learner.id).await.unwrap();
    assert_eq!(removed.members.len(), 3);
    let e = client.member_remove(learner.id).await.unwrap_err();
    assert_eq!(kind(&e), Some(EtcdErrorKind::MemberNotFound), "{e:?}");

    // --- move leader, through a client of the leader alone
    let leader_id = client.status().await.unwrap().leader;
    let leader_idx = cluster
        .member_ids()
        .iter()
        .position(|&id| id == leader_id)
        .unwrap();
    let target = *ids.iter().find(|&&id| id != leader_id).unwrap();
    let to_leader = connect::<R>([cluster.member(leader_idx).client_url()]).await;
    to_leader.move_leader(target).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = to_leader.status().await.unwrap().leader;
        if now == target {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "leader is {now:x}, expected {target:x}"
        );
        R::sleep(Duration::from_millis(100)).await;
    }
    // Back to the old leader through the client of all members: members
    // that are not the leader refuse (not leader) and the call moves on to
    // another endpoint until it reaches the leader.
    client.move_leader(leader_id).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = client.status().await.unwrap().leader;
        if now == leader_id {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "leader is {now:x}, expected {leader_id:x}"
        );
        R::sleep(Duration::from_millis(100)).await;
    }
}

async fn auth_management_and_enable<R: TestRuntime>() {
    let cluster = start::<R>(1).await;
    let urls = cluster.client_urls();
    let client = connect::<R>(&urls).await;
    // AuthStatus exists from etcd 3.5 on; 3.4 answers UNIMPLEMENTED.
    let has_auth_status = cluster.server_version().at_least(3, 5);
    if has_auth_status {
        assert!(!client.auth_status().await.unwrap().enabled);
    } else {
        let err = client.auth_status().await.unwrap_err();
        assert_eq!(
            err.code(),
            Some(etcdv3_client::core::wire::status::Code::Unimplemented),
            "{err}"
        );
    }

    // --- roles
    client.role_add("reader").await.unwrap();
    client
        .role_grant_permission("reader", Permission::read("data/").with_prefix())
        .await
        .unwrap();
    client
        .role_grant_permission("reader", Permission::read_write("scratch"))
        .await
        .unwrap();
    let perms = client.role_get("reader").await.unwrap().perm;
    assert_eq!(perms.len(), 2);
    let data = perms.iter().find(|p| p.key == b"data/").unwrap();
    assert_eq!(data.range_end, b"data0");
    assert_eq!(
        data.perm_type(),
        etcdv3_client::proto::authpb::permission::Type::Read
    );
    client
        .role_revoke_permission("reader", Permission::read("scratch"))
        .await
        .unwrap();
    assert_eq!(client.role_get("reader").await.unwrap().perm.len(), 1);
    assert!(client
        .role_list()
        .await
        .unwrap()
        .roles
        .contains(&"reader".to_string()));
    let e = client.role_add("reader").await.unwrap_err();
    assert_eq!(kind(&e), Some(EtcdErrorKind::RoleAlreadyExist), "{e:?}");

    // --- users
    client
        .user_add("alice", "pw1", UserAddOptions::new())
        .await
        .unwrap();
    client.user_grant_role("alice", "reader").await.unwrap();
    assert_eq!(client.user_get("alice").await.unwrap().roles, ["reader"]);
    assert!(client
        .user_list()
        .await
        .unwrap()
        .users
        .contains(&"alice".to_string()));
    client.user_change_password("alice", "pw2").await.unwrap();
    client
        .user_add("bob", "", UserAddOptions::new().with_no_password())
        .await
        .unwrap();
    client.user_revoke_role("alice", "reader").await.unwrap();
    assert!(client.user_get("alice").await.unwrap().roles.is_empty());
    client.user_grant_role("alice", "reader").await.unwrap();
    client.user_delete("bob").await.unwrap();
    let e = client.user_get("bob").await.unwrap_err();
    assert_eq!(kind(&e), Some(EtcdErrorKind::UserNotFound), "{e:?}");
    let e = client.authenticate("alice", "pw2").await.unwrap_err();
    assert_eq!(kind(&e), Some(EtcdErrorKind::AuthNotEnabled), "{e:?}");

    // --- enabling needs root
    let e = client.auth_enable().await.unwrap_err();
    assert_eq!(kind(&e), Some(EtcdErrorKind::RootUserNotExist), "{e:?}");
    client.put("data/x", "1", PutOptions::new()).await.unwrap();
    client
        .user_add("root", "rootpw", UserAddOptions::new())
        .await
        .unwrap();
    client.user_grant_role("root", "root").await.unwrap();
    client.auth_enable().await.unwrap();

    let root = connect_with::<R>(&urls, ClientOptions::default().with_user("root", "rootpw")).await;
    let alice = connect_with::<R>(&urls, ClientOptions::default().with_user("alice", "pw2")).await;
    if has_auth_status {
        assert!(root.auth_status().await.unwrap().enabled);
    }
    let token = root.authenticate("alice", "pw2").await.unwrap().token;
    assert!(!token.is_empty());
    let e = root.authenticate("alice", "wrong").await.unwrap_err();
    assert_eq!(kind(&e), Some(EtcdErrorKind::AuthFailed), "{e:?}");

    // without credentials, reads are refused
    assert!(client.get("data/x", GetOptions::new()).await.is_err());
    // alice may read data/ but not write it
    let r = alice.get("data/x", GetOptions::new()).await.unwrap();
    assert_eq!(values(&r.kvs), ["1"]);
    let e = alice
        .put("data/x", "2", PutOptions::new())
        .await
        .unwrap_err();
    assert_eq!(kind(&e), Some(EtcdErrorKind::PermissionDenied), "{e:?}");
    let e = alice.get("other", GetOptions::new()).await.unwrap_err();
    assert_eq!(kind(&e), Some(EtcdErrorKind::PermissionDenied), "{e:?}");
    root.put("data/x", "2", PutOptions::new()).await.unwrap();

    // --- clean up: disable auth
    root.auth_disable().await.unwrap();
    if has_auth_status {
        assert!(!client.auth_status().await.unwrap().enabled);
    }
    client.user_delete("alice").await.unwrap();
    client.role_delete("reader").await.unwrap();
    let users = client.user_list().await.unwrap().users;
    assert_eq!(users, ["root"]);
}

etcdv3_integration::runtime_tests!(
    invalid_input_fails_without_a_round_trip,
    kv_txn_compact_and_namespaces,
    cluster_and_maintenance,
    auth_management_and_enable,
);
