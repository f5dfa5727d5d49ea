//! Shared by the `recipes_*` suites: fault schedules on a 3-member cluster.
//! Included with `#[path]`; not a test target of its own.

use std::sync::Arc;
use std::time::Duration;

use etcdv3_client::api::GetOptions;
use etcdv3_client::Client;
use etcdv3_integration::runtime::TestRuntime;
use etcdv3_testkit::Cluster;

/// A fault on one member, undone after a hold time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL the raft leader, restart it.
    KillLeader,
    /// SIGSTOP the raft leader, SIGCONT it.
    PauseLeader,
    /// SIGKILL the member the probe client talks to, restart it.
    KillUsed,
    /// SIGSTOP the member the probe client talks to, SIGCONT it.
    PauseUsed,
}

/// Every fault, in the order the suites inject them.
pub const ALL: [Fault; 4] = [
    Fault::KillLeader,
    Fault::PauseUsed,
    Fault::KillUsed,
    Fault::PauseLeader,
];

/// The cluster index of the member `probe` is using now (the member that
/// answers its reads).
async fn used_member(cluster: &Cluster, probe: &Client) -> Option<usize> {
    let resp = probe
        .get("recipes/probe", GetOptions::new().with_serializable())
        .await
        .ok()?;
    let id = resp.header?.member_id;
    cluster.member_ids().iter().position(|m| *m == id)
}

/// Injects `faults` one after the other, each held for `hold`, with `gap`
/// of calm in between. Returns what was done, for messages.
pub async fn inject<R: TestRuntime>(
    cluster: Arc<Cluster>,
    probe: Client,
    faults: &[Fault],
    hold: Duration,
    gap: Duration,
) -> Vec<String> {
    let mut done = Vec::new();
    for &fault in faults {
        R::sleep(gap).await;
        let c = cluster.clone();
        let leader = R::spawn_blocking(move || c.wait_for_leader(Duration::from_secs(10)))
            .await
            .expect("a leader before the fault");
        let target = match fault {
            Fault::KillLeader | Fault::PauseLeader => leader,
            Fault::KillUsed | Fault::PauseUsed => used_member(&cluster, &probe)
                .await
                .unwrap_or((leader + 1) % cluster.size()),
        };
        done.push(format!("{fault:?} m{target} (leader m{leader})"));
        let c = cluster.clone();
        R::spawn_blocking(move || match fault {
            Fault::KillLeader | Fault::KillUsed => {
                c.kill(target).expect("kill");
                std::thread::sleep(hold);
                c.restart(target).expect("restart");
            }
            Fault::PauseLeader | Fault::PauseUsed => {
                c.pause(target).expect("pause");
                std::thread::sleep(hold);
                c.resume(target).expect("resume");
            }
        })
        .await;
    }
    done
}

/// Starts a 3-member cluster (shared with the fault injector).
pub async fn start3<R: TestRuntime>() -> Arc<Cluster> {
    Arc::new(etcdv3_integration::cluster::start::<R>(3).await)
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
/// diverged (or did not settle within 10 s).
pub async fn members_agree<R: TestRuntime>(
    cluster: &Cluster,
    client: &Client,
) -> Result<Vec<MemberState>, String> {
    use etcdv3_client::Target;
    let mut last = Vec::new();
    for _ in 0..100 {
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
        "members did not reach one applied index within 10 s: {last:x?}"
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
