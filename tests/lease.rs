//! Lease against real etcd (etcd from `ETCD_BIN` or `PATH`).
//!
//! `cargo test -p etcdv3-integration --test lease`

use std::sync::Arc;
use std::time::{Duration, Instant};

use etcdv3_client::api::{GetOptions, LeaseGrantOptions, PutOptions};
use etcdv3_client::{Client, Error};
use etcdv3_integration::cluster::{connect, start};
use etcdv3_integration::runtime::TestRuntime;
use futures_util::StreamExt;

async fn exists(c: &Client, key: &str) -> bool {
    c.get(key, GetOptions::new()).await.unwrap().count == 1
}

async fn grant_ttl_leases_revoke<R: TestRuntime>() {
    let cluster = start::<R>(1).await;
    let c = connect::<R>(&cluster).await;
    let l = c.lease_grant(60, LeaseGrantOptions::new()).await.unwrap();
    assert!(l.id > 0);
    assert_eq!(l.ttl, 60);
    let chosen = c
        .lease_grant(60, LeaseGrantOptions::new().with_id(0x1234))
        .await
        .unwrap();
    assert_eq!(chosen.id, 0x1234);

    c.put("a", "1", PutOptions::new().with_lease(l.id))
        .await
        .unwrap();
    c.put("b", "2", PutOptions::new().with_lease(l.id))
        .await
        .unwrap();
    let ttl = c.lease_time_to_live(l.id, true).await.unwrap();
    assert_eq!(ttl.granted_ttl, 60);
    assert!(ttl.ttl > 50 && ttl.ttl <= 60, "{}", ttl.ttl);
    let mut keys = ttl.keys.clone();
    keys.sort();
    assert_eq!(keys, vec![b"a".to_vec(), b"b".to_vec()]);

    let ids: Vec<i64> = c
        .lease_leases()
        .await
        .unwrap()
        .leases
        .iter()
        .map(|s| s.id)
        .collect();
    assert!(ids.contains(&l.id) && ids.contains(&0x1234), "{ids:?}");

    c.lease_revoke(l.id).await.unwrap();
    assert!(!exists(&c, "a").await);
    assert!(!exists(&c, "b").await);
    assert_eq!(c.lease_time_to_live(l.id, false).await.unwrap().ttl, -1);
    let e = c.keep_alive_once(l.id).await.unwrap_err();
    assert!(
        matches!(e, Error::LeaseExpired { id } if id == l.id),
        "{e:?}"
    );
    let e = c.lease_keep_alive(l.id).await.unwrap_err();
    assert!(matches!(e, Error::LeaseExpired { .. }), "{e:?}");
    assert!(matches!(
        c.lease_grant(0, LeaseGrantOptions::new()).await,
        Err(Error::InvalidArgument(_))
    ));
}

async fn keep_alive_keeps_a_key_past_its_ttl_and_drop_lets_it_expire<R: TestRuntime>() {
    let cluster = start::<R>(1).await;
    let c = connect::<R>(&cluster).await;
    let l = c.lease_grant(2, LeaseGrantOptions::new()).await.unwrap();
    c.put("alive", "1", PutOptions::new().with_lease(l.id))
        .await
        .unwrap();
    let mut keeper = c.lease_keep_alive(l.id).await.unwrap();
    assert_eq!(keeper.id(), l.id);
    assert_eq!(keeper.ttl(), 2);
    let t0 = Instant::now();
    let mut renewals = 0;
    while t0.elapsed() < Duration::from_secs(5) {
        match R::timeout(Duration::from_secs(2), keeper.next()).await {
            Ok(Some(Ok(ttl))) => {
                assert_eq!(ttl, 2);
                renewals += 1;
            }
            other => panic!("expected a renewal, got {other:?}"),
        }
    }
    assert!(renewals >= 5, "renewed every ~TTL/3: {renewals}");
    assert!(exists(&c, "alive").await, "kept past its 2 s TTL");

    drop(keeper);
    R::sleep(Duration::from_secs(4)).await;
    assert!(!exists(&c, "alive").await, "expired once no longer kept");
}

async fn keeper_reports_revocation<R: TestRuntime>() {
    let cluster = start::<R>(1).await;
    let c = connect::<R>(&cluster).await;
    let l = c.lease_grant(3, LeaseGrantOptions::new()).await.unwrap();
    let mut keeper = c.lease_keep_alive(l.id).await.unwrap();
    // A second handle on the same lease shares the renewals.
    let mut second = c.lease_keep_alive(l.id).await.unwrap();
    c.lease_revoke(l.id).await.unwrap();
    R::timeout(Duration::from_secs(5), keeper.expired())
        .await
        .expect("expiry noticed within a renewal interval")
        .unwrap();
    R::timeout(Duration::from_secs(5), second.expired())
        .await
        .unwrap()
        .unwrap();
    assert!(keeper.next().await.is_none());
}

async fn keep_alive_survives_a_member_restart<R: TestRuntime>() {
    let cluster = Arc::new(start::<R>(3).await);
    let c = connect::<R>(&cluster).await;
    let l = c.lease_grant(4, LeaseGrantOptions::new()).await.unwrap();
    c.put("survivor", "1", PutOptions::new().with_lease(l.id))
        .await
        .unwrap();
    let _keeper = c.lease_keep_alive(l.id).await.unwrap();
    for i in 0..3 {
        let cl = cluster.clone();
        R::spawn_blocking(move || cl.restart(i)).await.unwrap();
    }
    R::sleep(Duration::from_secs(5)).await;
    assert!(exists(&c, "survivor").await);
}

etcdv3_integration::runtime_tests!(
    grant_ttl_leases_revoke,
    keep_alive_keeps_a_key_past_its_ttl_and_drop_lets_it_expire,
    keeper_reports_revocation,
    keep_alive_survives_a_member_restart,
);
