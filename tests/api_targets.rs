//! Issue 12, items 2, 3 and 5 against a real cluster: calls aimed at one
//! member (by endpoint or member id) run there and nowhere else, one
//! `CallOptions` convention scopes every method, and the handles a client
//! hands out keep it open after the `Client` value is gone.

use std::time::{Duration, Instant};

use etcdv3_client::api::{GetOptions, LeaseGrantOptions, PutOptions, WatchEvent, WatchOptions};
use etcdv3_client::{CallOptions, ClientOptions, Error, ReadConsistency, Target};
use etcdv3_integration::cluster;
use etcdv3_integration::runtime::TestRuntime;
use futures_util::StreamExt;

async fn member_targeted_maintenance_runs_on_the_named_member<R: TestRuntime>() {
    let cluster = cluster::start::<R>(3).await;
    let client = cluster::connect::<R>(&cluster).await;
    client.put("mt/a", "1", PutOptions::new()).await.unwrap();

    // By member id and by endpoint: each call answers from that member.
    for i in 0..3 {
        let id = cluster.member(i).id();
        let by_id = client.on(Target::Member(id)).status().await.unwrap();
        assert_eq!(by_id.header.unwrap().member_id, id, "member {i} by id");
        let url = cluster.member(i).client_url();
        let by_ep = client
            .on(Target::Endpoint(url.clone()))
            .status()
            .await
            .unwrap();
        assert_eq!(by_ep.header.unwrap().member_id, id, "member {i} by {url}");
        let hash = client.on(Target::Member(id)).hash_kv(0).await.unwrap();
        assert_eq!(hash.header.unwrap().member_id, id);
        // etcd answers Defragment and Alarm without a header: only check
        // they are served (the targeting is the same as for Status).
        client.on(Target::Member(id)).defragment().await.unwrap();
        let alarms = client.on(Target::Member(id)).alarm_list().await.unwrap();
        assert!(alarms.alarms.is_empty(), "{alarms:?}");
    }
    // A snapshot streamed from a named member.
    let mut snap = client
        .on(Target::Member(cluster.member(2).id()))
        .snapshot()
        .await
        .unwrap();
    let mut size = 0;
    while let Some(chunk) = snap.next().await {
        size += chunk.unwrap().len();
    }
    assert!(size > 0);

    // An unknown target is a typed error at once, nothing is sent.
    let started = Instant::now();
    let err = client
        .on(Target::Endpoint("http://127.0.0.1:1".into()))
        .status()
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::UnknownTarget { .. }),
        "unknown endpoint: {err}"
    );
    let err = client
        .on(Target::Member(0x1234))
        .get("mt/a", GetOptions::new())
        .await
        .unwrap_err();
    assert!(err.is_unknown_target(), "unknown member: {err}");
    assert!(started.elapsed() < Duration::from_secs(5));

    // A member that does not answer: the targeted call waits for it until
    // its deadline, it never moves to another member.
    let leader = cluster.wait_for_leader(Duration::from_secs(10)).unwrap();
    let follower = (leader + 1) % 3;
    let follower_id = cluster.member(follower).id();
    cluster.pause(follower).unwrap();
    let err = client
        .with_call_options(
            CallOptions::new()
                .with_target(Target::Member(follower_id))
                .with_timeout(Duration::from_millis(1500)),
        )
        .status()
        .await
        .expect_err("a paused member cannot answer");
    assert!(err.is_deadline_exceeded(), "{err}");

    // Status of every member in one call: the paused one fails, the others
    // answer, each for itself.
    let all = client
        .with_call_options(CallOptions::new().with_timeout(Duration::from_secs(2)))
        .endpoint_status_all()
        .await;
    assert_eq!(all.len(), 3);
    for (i, st) in all.iter().enumerate() {
        assert_eq!(st.endpoint, cluster.member(i).client_url());
        if i == follower {
            assert!(st.result.is_err(), "{st:?}");
        } else {
            assert_eq!(st.member_id(), Some(cluster.member(i).id()), "{st:?}");
        }
    }
    cluster.resume(follower).unwrap();

    // MoveLeader sent to the leader by id moves leadership to the other
    // follower (the one that was not paused).
    let leader_id = cluster.member(leader).id();
    let heir_id = cluster.member((leader + 2) % 3).id();
    client
        .with_call_options(
            CallOptions::new()
                .with_target(Target::Member(leader_id))
                .with_timeout(Duration::from_secs(10)),
        )
        .move_leader(heir_id)
        .await
        .unwrap();
    let st = client.on(Target::Member(heir_id)).status().await.unwrap();
    assert_eq!(st.leader, heir_id);
}

async fn call_options_scope_every_method<R: TestRuntime>() {
    let cluster = cluster::start::<R>(3).await;
    let client = cluster::connect::<R>(&cluster).await;
    client.put("co/a", "1", PutOptions::new()).await.unwrap();

    // A scoped deadline applies to methods without options of their own;
    // a request's own timeout wins over it.
    let hurried =
        client.with_call_options(CallOptions::new().with_timeout(Duration::from_nanos(1)));
    let err = hurried.status().await.unwrap_err();
    assert!(err.is_deadline_exceeded(), "{err}");
    let err = hurried.lease_leases().await.unwrap_err();
    assert!(err.is_deadline_exceeded(), "{err}");
    let got = hurried
        .get(
            "co/a",
            GetOptions::new().with_timeout(Duration::from_secs(5)),
        )
        .await
        .unwrap();
    assert_eq!(got.kvs[0].value, b"1");

    // Cut a follower off from its peers: it loses its leader. A
    // serializable read without `require_leader` on it still answers, from
    // its local state; a linearizable one with `require_leader` fails.
    let leader = cluster.wait_for_leader(Duration::from_secs(10)).unwrap();
    let cut = (leader + 1) % 3;
    let url = cluster.member(cut).client_url();
    cluster.isolate(cut).unwrap();
    let start = Instant::now();
    while cluster.member_status(cut).map(|s| s.leader).unwrap_or(1) != 0 {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "never lost its leader"
        );
        R::sleep(Duration::from_millis(100)).await;
    }
    let local = client.with_call_options(
        CallOptions::new()
            .with_target(Target::Endpoint(url.clone()))
            .with_read(ReadConsistency::Serializable)
            .with_require_leader(false)
            .with_timeout(Duration::from_secs(3)),
    );
    let got = local.get("co/a", GetOptions::new()).await.unwrap();
    assert_eq!(got.kvs[0].value, b"1");
    assert_eq!(
        got.header.unwrap().member_id,
        cluster.member(cut).id(),
        "served by the isolated member"
    );
    let strict = client.with_call_options(
        CallOptions::new()
            .with_target(Target::Endpoint(url))
            .with_read(ReadConsistency::Linearizable)
            .with_require_leader(true)
            .with_timeout(Duration::from_secs(3)),
    );
    let err = strict.get("co/a", GetOptions::new()).await.unwrap_err();
    assert!(!err.may_have_applied(), "{err}");
    cluster.heal(cut).unwrap();
}

async fn handles_outlive_the_client_value<R: TestRuntime>() {
    let cluster = cluster::start::<R>(1).await;
    let writer = cluster::connect::<R>(&cluster).await;
    let urls = cluster.client_urls();

    // A watcher from a temporary client keeps receiving events.
    let mut watcher = R::connect(&urls, ClientOptions::default())
        .await
        .unwrap()
        .watch("ho/k", WatchOptions::new())
        .await
        .unwrap();
    R::sleep(Duration::from_millis(300)).await;
    writer.put("ho/k", "v1", PutOptions::new()).await.unwrap();
    let ev = R::timeout(Duration::from_secs(5), watcher.next())
        .await
        .expect("an event in time")
        .expect("stream open")
        .expect("not an error");
    match ev {
        WatchEvent::Events { events, .. } => {
            assert_eq!(events[0].kv.as_ref().unwrap().value, b"v1")
        }
        other => panic!("unexpected {other:?}"),
    }

    // A lease keeper from a temporary client keeps the lease alive past
    // its TTL.
    let keeper = {
        let temp = R::connect(&urls, ClientOptions::default()).await.unwrap();
        let lease = temp.lease_grant(2, LeaseGrantOptions::new()).await.unwrap();
        temp.lease_keep_alive(lease.id).await.unwrap()
    };
    R::sleep(Duration::from_secs(4)).await;
    let ttl = writer.lease_time_to_live(keeper.id(), false).await.unwrap();
    assert!(ttl.ttl > 0, "lease expired: {ttl:?}");

    // A lock guard from a temporary client keeps holding the lock.
    let guard = R::connect(&urls, ClientOptions::default())
        .await
        .unwrap()
        .lock_with_lease("ho/lock", 2)
        .await
        .unwrap();
    R::sleep(Duration::from_secs(4)).await;
    let held = writer.get(guard.key(), GetOptions::new()).await.unwrap();
    assert_eq!(held.count, 1, "the lock key is still there");
    guard.unlock().await.unwrap();

    // `close()` still ends every handle at once.
    let client = R::connect(&urls, ClientOptions::default()).await.unwrap();
    let mut w = client.watch("ho/x", WatchOptions::new()).await.unwrap();
    client.close();
    let end = R::timeout(Duration::from_secs(5), w.next())
        .await
        .expect("ends in time");
    assert!(matches!(end, Some(Err(Error::Closed))), "{end:?}");
    drop(watcher);
    drop(keeper);
}

async fn option_less_methods_take_call_options_through_with_variants<R: TestRuntime>() {
    use etcdv3_client::api::{AlarmType, LockOptions};
    let cluster = cluster::start::<R>(1).await;
    let client = cluster::connect::<R>(&cluster).await;
    let id = cluster.member(0).id();
    let lease = client
        .lease_grant(30, LeaseGrantOptions::new())
        .await
        .unwrap()
        .id;
    let lock = client.lock("with/lock", LockOptions::new()).await.unwrap();

    // The options reach every call: a target that is none of the
    // client's endpoints fails each one before anything is sent.
    let nowhere = || CallOptions::new().with_target(Target::Endpoint("http://127.0.0.1:1".into()));
    let unknown = |what: &str, r: Result<(), Error>| {
        assert!(
            matches!(r, Err(Error::UnknownTarget { .. })),
            "{what}: {r:?}"
        );
    };
    unknown("status", client.status_with(nowhere()).await.map(drop));
    unknown("hash", client.hash_with(nowhere()).await.map(drop));
    unknown("hash_kv", client.hash_kv_with(0, nowhere()).await.map(drop));
    unknown(
        "alarm_list",
        client.alarm_list_with(nowhere()).await.map(drop),
    );
    let disarm = client.alarm_disarm_with(id, AlarmType::Nospace, nowhere());
    unknown("alarm_disarm", disarm.await.map(drop));
    unknown(
        "move_leader",
        client.move_leader_with(id, nowhere()).await.map(drop),
    );
    unknown(
        "lease_leases",
        client.lease_leases_with(nowhere()).await.map(drop),
    );
    unknown(
        "lease_revoke",
        client.lease_revoke_with(lease, nowhere()).await.map(drop),
    );
    let unlock = client.unlock_with(lock.key.clone(), nowhere());
    unknown("unlock", unlock.await.map(drop));
    let renew = client.keep_alive_once_with(lease, nowhere());
    unknown("keep_alive_once", renew.await.map(drop));
    // The plain method follows the handle's options, like every call.
    let scoped = client.with_call_options(nowhere());
    unknown(
        "scoped keep_alive_once",
        scoped.keep_alive_once(lease).await.map(drop),
    );

    // And with options that can be met, they do their work.
    let here = || {
        CallOptions::new()
            .with_target(Target::Member(id))
            .with_timeout(Duration::from_secs(10))
    };
    let status = client.status_with(here()).await.unwrap();
    assert_eq!(status.header.unwrap().member_id, id);
    assert!(client.hash_kv_with(0, here()).await.unwrap().hash != 0);
    let leases = client.lease_leases_with(here()).await.unwrap().leases;
    assert!(leases.iter().any(|l| l.id == lease), "{leases:?}");
    let renewed = client.keep_alive_once_with(lease, here()).await.unwrap();
    assert!(renewed.ttl > 0, "{renewed:?}");
    client.lease_revoke_with(lease, here()).await.unwrap();
    let leases = client.lease_leases().await.unwrap().leases;
    assert!(!leases.iter().any(|l| l.id == lease), "{leases:?}");
    client.unlock_with(lock.key.clone(), here()).await.unwrap();
    let held = client.get(lock.key, GetOptions::new()).await.unwrap().count;
    assert_eq!(held, 0);
}

etcdv3_integration::runtime_tests!(
    option_less_methods_take_call_options_through_with_variants,
    member_targeted_maintenance_runs_on_the_named_member,
    call_options_scope_every_method,
    handles_outlive_the_client_value,
);
