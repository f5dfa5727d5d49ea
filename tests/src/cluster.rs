//! Starting a test cluster and a client on it, the same way in every suite.

use std::time::Duration;

use etcdv3_client::{Client, ClientOptions, Target};
use etcdv3_testkit::Cluster;

use crate::runtime::TestRuntime;

/// Start a `size`-member etcd cluster without blocking the runtime.
pub async fn start<R: TestRuntime>(size: usize) -> Cluster {
    R::spawn_blocking(move || Cluster::start(size))
        .await
        .unwrap_or_else(|e| panic!("starting a {size}-member etcd cluster: {e}"))
}

/// A client on every member of `cluster`, with a 10 s call deadline.
pub async fn connect<R: TestRuntime>(cluster: &Cluster) -> Client {
    R::connect(
        cluster.client_urls(),
        ClientOptions::default().with_timeout(Duration::from_secs(10)),
    )
    .await
    .unwrap_or_else(|e| panic!("connecting to {:?}: {e}", cluster.client_urls()))
}

/// Put `k` = `v` and return the revision the put created, through faults:
/// a put that fails (e.g. outcome unknown: the leader changed while it was
/// in flight) is read back and repeated only if it did not apply, up to 50
/// times, 100 ms apart. The value must be one `k` has not held before, so
/// that finding it means this put applied.
pub async fn put_rev<R: TestRuntime>(c: &Client, k: &str, v: &str) -> i64 {
    for _ in 0..50 {
        match c.put(k, v, etcdv3_client::api::PutOptions::new()).await {
            Ok(resp) => return resp.header.expect("response header").revision,
            Err(e) if !e.may_have_applied() && !e.is_deadline_exceeded() => {
                eprintln!("put {k}: {e}; again");
            }
            Err(e) => {
                let read = c.get(k, etcdv3_client::api::GetOptions::new()).await;
                if let Some(kv) = read.ok().and_then(|r| r.kvs.into_iter().next()) {
                    if kv.value == v.as_bytes() {
                        return kv.mod_revision;
                    }
                }
                eprintln!("put {k}: {e}; not applied, again");
            }
        }
        R::sleep(Duration::from_millis(100)).await;
    }
    panic!("put {k} failed 50 times");
}

/// What each member holds once the cluster is quiet: `(member id, applied
/// raft index, revision, hash of the key-value store up to that revision)`.
pub type MemberState = (u64, u64, i64, u32);

/// Checks that the members did not diverge: once every member has applied
/// the same raft index, they must hold the same revision and the same
/// key-value hash. A client cannot cause a divergence (each member applies
/// the same raft log); etcd 3.5.0-3.5.2 can, when a member is SIGKILLed
/// while applying (etcd-io/etcd#13766: the consistent index was saved apart
/// from the data, so the restarted member skips an entry). A diverged member
/// evaluates a txn's compares on other data than its peers, and a client
/// talking to it sees answers the rest of the cluster never gave, so a
/// suite's client-side assertions cannot be judged on such a run.
///
/// `Ok` with the states when they agree, `Err` with a description when they
/// diverged (or did not settle within 20 s).
pub async fn members_agree<R: TestRuntime>(
    cluster: &Cluster,
    client: &Client,
) -> Result<Vec<MemberState>, String> {
    let mut last = Vec::new();
    for _ in 0..200 {
        let mut states = Vec::new();
        for url in cluster.client_urls() {
            let on = client.on(Target::Endpoint(url.clone()));
            let Ok(st) = on.status().await else { break };
            let rev = st.header.as_ref().map_or(0, |h| h.revision);
            let Ok(h) = on.hash_kv(rev).await else { break };
            states.push((
                st.header.as_ref().map_or(0, |h| h.member_id),
                st.raft_applied_index,
                rev,
                h.hash,
            ));
        }
        if states.len() == cluster.size() && states.iter().all(|s| s.1 == states[0].1) {
            return if states
                .iter()
                .all(|s| (s.2, s.3) == (states[0].2, states[0].3))
            {
                Ok(states)
            } else {
                Err(format!(
                    "members diverged at applied index {}: (member, applied, revision, hash) {states:x?}",
                    states[0].1
                ))
            };
        }
        last = states;
        R::sleep(Duration::from_millis(100)).await;
    }
    Err(format!(
        "members did not reach one applied index within 20 s: {last:x?}"
    ))
}

/// Runs `scenario` (one run on a fresh cluster, `Err` from [`members_agree`]
/// when etcd diverged) until a run is judged: a run on which etcd itself
/// diverged is repeated, and one clean run of three is needed.
pub async fn judged_run<R, F, Fut>(mut scenario: F)
where
    R: TestRuntime,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let mut diverged = Vec::new();
    for _ in 0..3 {
        match scenario().await {
            Ok(()) => return,
            Err(e) => {
                eprintln!("{}: run not judged: {e}", R::NAME);
                diverged.push(e);
            }
        }
    }
    panic!("etcd diverged on every run: {diverged:?}");
}

/// RPCs each member of `cluster` has started so far (etcd's
/// `grpc_server_started_total`), of `method` only (e.g. `"Range"`) or of
/// every method.
pub fn rpcs_started(cluster: &Cluster, method: Option<&str>) -> Vec<f64> {
    let labels: Vec<(&str, &str)> = method.map(|m| ("grpc_method", m)).into_iter().collect();
    (0..cluster.size())
        .map(|i| {
            let text = cluster
                .metrics(i)
                .unwrap_or_else(|e| panic!("metrics of m{i}: {e}"));
            etcdv3_testkit::metric_sum(&text, "grpc_server_started_total", &labels)
        })
        .collect()
}
