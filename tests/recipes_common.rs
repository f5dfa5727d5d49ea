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
