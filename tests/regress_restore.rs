//! Regression (issue 17, sections 2 and 5): reads after a restore from an
//! older snapshot, reads and status on a member without a leader, and the
//! auto-sync seeds as a lasting fallback.
//!
//! * `reads_come_back_after_a_restore_from_an_older_snapshot`: a 3-member
//!   cluster, a snapshot, 3,000 more revisions, then every member restored
//!   from the snapshot (same names and URLs). One client reads
//!   linearizably every 50 ms throughout. Before: every read failed ("
//!   answered at revision 2 but revision 3002 seen") for as long as the run
//!   lasted. Asserted: reads are back within 2 s of the cluster being
//!   healthy, and every read after that succeeds. etcd 3.5 (`etcdctl
//!   snapshot restore` of 3.5.1; skipped on older servers).
//! * `serializable_reads_and_status_answer_on_a_member_without_a_leader`:
//!   with `require_leader` on (the default), a serializable read and a
//!   status bound to a member cut off from its peers answer at once, the
//!   read marked stale (the member is behind a put the client saw). Before:
//!   `NoLeader` after about 2 s and 5 s (and a bound read below the
//!   revision seen was retried on its member until the deadline).
//! * `seeds_stay_a_fallback_when_no_advertised_endpoint_answers`: auto-sync
//!   replaced the seed endpoints by the advertised ones; when every
//!   advertised endpoint stops answering (blackholed), the seeds come back
//!   and reads go through them. Before: never.
//!
//! `ETCD_BIN=... cargo test -p etcdv3-integration --test regress_restore -- --nocapture`

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etcdv3_client::api::{GetOptions, PutOptions};
use etcdv3_client::{CallOptions, ClientOptions, ReadConsistency, Target};
use etcdv3_integration::cluster;
use etcdv3_integration::runtime::TestRuntime;
use etcdv3_testkit::Cluster;
use futures_util::StreamExt;

/// Revisions written after the snapshot.
const LOST_REVISIONS: usize = 3000;
/// Read interval of the reading client.
const READ_EVERY: Duration = Duration::from_millis(50);
/// How soon after the restored cluster is healthy reads must be back.
const BACK_WITHIN: Duration = Duration::from_secs(2);

/// One read of the loop: when it ended, and its revision or error.
type ReadRecord = (Instant, Result<i64, String>);

async fn reads_come_back_after_a_restore_from_an_older_snapshot<R: TestRuntime>() {
    let cluster = Arc::new(cluster::start::<R>(3).await);
    if !cluster.server_version().at_least(3, 5) || !cluster.etcdctl_bin().is_file() {
        eprintln!(
            "SKIPPED: needs etcd 3.5 and its etcdctl next to it (server {}, etcdctl {})",
            cluster.server_version(),
            cluster.etcdctl_bin().display()
        );
        return;
    }
    let client = cluster::connect::<R>(&cluster).await;
    let base = cluster::put_rev::<R>(&client, "rs/k", "before").await;
    let snap = cluster.dir().join("restore.db");
    {
        let (c, p) = (cluster.clone(), snap.clone());
        R::spawn_blocking(move || c.snapshot_save(0, &p))
            .await
            .expect("etcdctl snapshot save");
    }
    // 3,000 more revisions, 64 puts at a time.
    let started = Instant::now();
    let writes = futures_util::stream::iter(0..LOST_REVISIONS)
        .map(|i| {
            let c = client.clone();
            async move {
                c.put(format!("rs/lost/{i:05}"), "x", PutOptions::new())
                    .await
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await;
    let failed = writes.iter().filter(|w| w.is_err()).count();
    assert_eq!(failed, 0, "puts failed on a healthy cluster");
    let seen = client
        .get("rs/k", GetOptions::new())
        .await
        .expect("a read before the restore")
        .header
        .expect("header")
        .revision;
    assert!(
        seen >= base + LOST_REVISIONS as i64,
        "{seen} < {base} + 3000"
    );
    eprintln!(
        "{} more revisions in {:?} (revision {seen})",
        LOST_REVISIONS,
        started.elapsed()
    );

    let stop = Arc::new(AtomicBool::new(false));
    let records: Arc<Mutex<Vec<ReadRecord>>> = Arc::default();
    let reader = {
        let (client, stop, records) = (client.clone(), stop.clone(), records.clone());
        R::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let r = client
                    .get(
                        "rs/k",
                        GetOptions::new().with_timeout(Duration::from_secs(1)),
                    )
                    .await;
                let rec = r
                    .map(|resp| resp.header.map_or(0, |h| h.revision))
                    .map_err(|e| e.to_string());
                records.lock().unwrap().push((Instant::now(), rec));
                R::sleep(READ_EVERY).await;
            }
        })
    };
    R::sleep(Duration::from_millis(300)).await;
    let restore_started = Instant::now();
    {
        let (c, p) = (cluster.clone(), snap.clone());
        R::spawn_blocking(move || c.restore_from_snapshot(&p))
            .await
            .expect("restoring every member from the snapshot");
    }
    let healthy = Instant::now();
    R::sleep(Duration::from_secs(6)).await;
    stop.store(true, Ordering::Relaxed);
    reader.await;

    let records = records.lock().unwrap().clone();
    let after: Vec<&ReadRecord> = records.iter().filter(|(t, _)| *t >= healthy).collect();
    let first_ok = after
        .iter()
        .find(|(_, r)| r.as_ref().is_ok_and(|rev| *rev < seen))
        .map(|(t, _)| *t);
    let errors_before_ok: Vec<&String> = after
        .iter()
        .take_while(|(t, _)| Some(*t) != first_ok)
        .filter_map(|(_, r)| r.as_ref().err())
        .collect();
    let (ok, err) = after.iter().fold((0, 0), |(o, e), (_, r)| match r {
        Ok(_) => (o + 1, e),
        Err(_) => (o, e + 1),
    });
    eprintln!(
        "restore took {:?}; after healthy: {ok} ok, {err} errors; first restored read {:?} after healthy; errors before it: {:?}",
        healthy - restore_started,
        first_ok.map(|t| t - healthy),
        errors_before_ok.iter().take(3).collect::<Vec<_>>()
    );
    let Some(first_ok) = first_ok else {
        panic!(
            "no read succeeded in the 6 s after the restored cluster was healthy ({err} errors, last {:?})",
            after.last()
        );
    };
    assert!(
        first_ok - healthy <= BACK_WITHIN,
        "reads back {:?} after the cluster was healthy (> {BACK_WITHIN:?})",
        first_ok - healthy
    );
    let late_errors: Vec<&ReadRecord> = after
        .iter()
        .filter(|(t, r)| *t > first_ok && r.is_err())
        .copied()
        .collect();
    assert!(
        late_errors.is_empty(),
        "reads failed after they were back: {late_errors:?}"
    );
    // The value is the snapshot's: the history really went back.
    let v = client.get("rs/k", GetOptions::new()).await.expect("read");
    assert_eq!(v.kvs[0].value, b"before");
    assert!(client
        .get("rs/lost/00000", GetOptions::new())
        .await
        .expect("read")
        .kvs
        .is_empty());
}

async fn serializable_reads_and_status_answer_on_a_member_without_a_leader<R: TestRuntime>() {
    let cluster = cluster::start::<R>(3).await;
    let client = cluster::connect::<R>(&cluster).await;
    assert!(client.options().require_leader, "the default");
    client.put("nl/a", "1", PutOptions::new()).await.unwrap();
    let leader = cluster.wait_for_leader(Duration::from_secs(10)).unwrap();
    let cut = (leader + 1) % 3;
    let url = cluster.member(cut).client_url();
    // Everyone has applied the put before the member is cut off.
    for i in 0..3 {
        let on = client.on(Target::Endpoint(cluster.member(i).client_url()));
        for _ in 0..50 {
            let got = on
                .with_call_options(
                    CallOptions::new()
                        .with_target(Target::Endpoint(cluster.member(i).client_url()))
                        .with_read(ReadConsistency::Serializable),
                )
                .get("nl/a", GetOptions::new())
                .await;
            if got.is_ok_and(|r| !r.kvs.is_empty()) {
                break;
            }
            R::sleep(Duration::from_millis(100)).await;
        }
    }
    cluster.isolate(cut).unwrap();
    let start = Instant::now();
    while cluster.member_status(cut).map(|s| s.leader).unwrap_or(1) != 0 {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "never lost its leader"
        );
        R::sleep(Duration::from_millis(100)).await;
    }
    // The majority moves on: the client sees a revision the cut-off member
    // does not have.
    let seen = cluster::put_rev::<R>(&client, "nl/b", "2").await;
    let member = client.with_call_options(
        CallOptions::new()
            .with_target(Target::Endpoint(url.clone()))
            .with_read(ReadConsistency::Serializable)
            .with_timeout(Duration::from_secs(4)),
    );
    let t = Instant::now();
    let got = member.get_checked("nl/a", GetOptions::new()).await;
    let read_took = t.elapsed();
    let t = Instant::now();
    let status = member.status().await;
    let status_took = t.elapsed();
    let t = Instant::now();
    let all = client.endpoint_status_all().await;
    let all_took = t.elapsed();
    let strict = client
        .with_call_options(
            CallOptions::new()
                .with_target(Target::Endpoint(url.clone()))
                .with_read(ReadConsistency::Linearizable)
                .with_timeout(Duration::from_secs(4)),
        )
        .get("nl/a", GetOptions::new())
        .await;
    cluster.heal(cut).unwrap();
    eprintln!("serializable read {read_took:?}, status {status_took:?}, all statuses {all_took:?}");
    let got = got.expect("a serializable read on a member without a leader");
    // A read bound to one member gets that member's answer, marked as older
    // than what the client has seen (before: retried there until its
    // deadline).
    let stale = got.stale.expect("marked: the member is behind the client");
    assert!(
        stale.answered < seen && stale.seen >= seen,
        "{stale:?} vs {seen}"
    );
    let got = got.response;
    assert_eq!(got.kvs[0].value, b"1");
    assert_eq!(got.header.unwrap().member_id, cluster.member(cut).id());
    assert!(read_took < Duration::from_secs(1), "{read_took:?}");
    let status = status.expect("the status of a member without a leader");
    assert_eq!(status.leader, 0, "it has no leader");
    assert!(status_took < Duration::from_secs(1), "{status_took:?}");
    assert!(
        all.iter().all(|s| s.result.is_ok()),
        "every member answers its status: {all:?}"
    );
    // A linearizable read still asks for a leader and fails at once.
    let err = strict.expect_err("a linearizable read on a member without a leader");
    assert!(!err.may_have_applied(), "{err}");
}

async fn seeds_stay_a_fallback_when_no_advertised_endpoint_answers<R: TestRuntime>() {
    let cluster: Cluster = cluster::start::<R>(3).await;
    // The seeds: the members' own listeners, which they do not advertise.
    let seeds: Vec<String> = (0..3)
        .map(|i| cluster.member(i).direct_client_url())
        .collect();
    let advertised = cluster.client_urls();
    let client = R::connect(
        &seeds,
        ClientOptions::default()
            .with_timeout(Duration::from_secs(2))
            .with_auto_sync(Duration::from_millis(300)),
    )
    .await
    .unwrap();
    client.put("sf/a", "1", PutOptions::new()).await.unwrap();
    let in_use = |c: &etcdv3_client::Client| -> Vec<String> {
        let mut v: Vec<String> = c
            .endpoint_states()
            .into_iter()
            .map(|s| s.endpoint.to_string())
            .collect();
        v.sort();
        v
    };
    // Reads through the advertised endpoints make them answer; the seeds go.
    let start = Instant::now();
    let mut want = advertised.clone();
    want.sort();
    while in_use(&client) != want {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "seeds never replaced by the advertised endpoints: {:?}",
            in_use(&client)
        );
        let _ = client.get("sf/a", GetOptions::new()).await;
        R::sleep(Duration::from_millis(100)).await;
    }
    // Every advertised endpoint stops answering; the members are fine.
    for i in 0..3 {
        cluster.blackhole_client(i).unwrap();
    }
    let cut = Instant::now();
    let mut back = None;
    while cut.elapsed() < Duration::from_secs(20) {
        let r = client
            .get(
                "sf/a",
                GetOptions::new().with_timeout(Duration::from_secs(1)),
            )
            .await;
        if r.is_ok() {
            back = Some(cut.elapsed());
            break;
        }
        R::sleep(Duration::from_millis(100)).await;
    }
    let endpoints = in_use(&client);
    for i in 0..3 {
        cluster.unblackhole_client(i).unwrap();
    }
    eprintln!("reads back through the seeds after {back:?}; endpoints {endpoints:?}");
    assert!(
        back.is_some(),
        "no read in 20 s with every advertised endpoint dead; endpoints {endpoints:?}"
    );
    assert!(
        seeds.iter().any(|s| endpoints.contains(s)),
        "the seeds are back: {endpoints:?}"
    );
}

etcdv3_integration::runtime_tests!(
    exclusive: reads_come_back_after_a_restore_from_an_older_snapshot
);
etcdv3_integration::runtime_tests!(
    serializable_reads_and_status_answer_on_a_member_without_a_leader,
    seeds_stay_a_fallback_when_no_advertised_endpoint_answers
);
