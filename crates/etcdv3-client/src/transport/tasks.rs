//! The state a client keeps for its background work, next to the core:
//! the inboxes of its stream tasks (run by `api::stream_task`), the seeds
//! of their sans-IO decision makers, and the client's id counters.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

use etcdv3_core::streams::watch::WatcherId;
use etcdv3_core::streams::StreamConfig;

/// The inboxes of a client's stream tasks, one per kind of stream and lane,
/// on the client's shared state.
pub(crate) struct Tasks {
    /// Each task's inbox (an `mpsc::UnboundedSender` of its commands), by
    /// the kind's type and the lane (see [`Lane`]): `api::stream_task`
    /// reads and replaces them.
    pub(crate) inboxes: Mutex<HashMap<(TypeId, Lane), Box<dyn Any + Send>>>,
    seed: AtomicU64,
    config: StreamConfig,
    /// The client's id counters (per client, not per process).
    pub(crate) ids: Ids,
}

/// Which task of a kind: every kind has its shared task on
/// [`Lane::SHARED`] (all `Watcher`s and the groups made by
/// `Client::watch_group`, all lease keepers); a group made by
/// `Client::watch_group_on_own_stream` has a lane (so a task, a hub and a
/// gRPC stream) of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Lane(u64);

impl Lane {
    /// The kind's shared task.
    pub(crate) const SHARED: Lane = Lane(0);
}

/// Id counters of one client: watcher ids (chosen by the client, not by a
/// task's hub: a `WatchGroup` hands an id out before the task saw the
/// request, and a task may be replaced between two watchers), lease keeper
/// tokens, session waiter ids.
#[derive(Debug)]
pub(crate) struct Ids {
    watcher: AtomicI64,
    lane: AtomicU64,
    keeper: AtomicU64,
    waiter: AtomicU64,
}

impl Ids {
    fn new() -> Ids {
        Ids {
            watcher: AtomicI64::new(1),
            lane: AtomicU64::new(1),
            keeper: AtomicU64::new(1),
            waiter: AtomicU64::new(0),
        }
    }

    /// The next watcher id (1, 2, ...; wraps to 1 past `i64::MAX`).
    pub(crate) fn next_watcher(&self) -> Option<WatcherId> {
        let n = self
            .watcher
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.checked_add(1).unwrap_or(1))
            })
            .unwrap_or_else(|n| n);
        WatcherId::new(n)
    }

    /// A lane no task of this client used yet (never [`Lane::SHARED`]).
    pub(crate) fn next_lane(&self) -> Lane {
        Lane(self.lane.fetch_add(1, Ordering::Relaxed).max(1))
    }

    /// The next lease keeper token.
    pub(crate) fn next_keeper(&self) -> u64 {
        self.keeper.fetch_add(1, Ordering::Relaxed)
    }

    /// The next session waiter id.
    pub(crate) fn next_waiter(&self) -> u64 {
        self.waiter.fetch_add(1, Ordering::Relaxed)
    }
}

impl Tasks {
    /// No task yet; `seed` derives the tasks' backoff jitter.
    pub(crate) fn new(seed: u64, config: StreamConfig) -> Tasks {
        Tasks {
            inboxes: Mutex::new(HashMap::new()),
            seed: AtomicU64::new(seed),
            config,
            ids: Ids::new(),
        }
    }
}

impl Tasks {
    /// The configuration of the tasks' stream drivers.
    pub(crate) fn stream_config(&self) -> &StreamConfig {
        &self.config
    }

    /// A seed for one sans-IO decision maker's jitter (a stream driver, a
    /// recipe's retry loop): each gets its own.
    pub(crate) fn next_seed(&self) -> u64 {
        self.seed
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_client_counts_its_own_ids() {
        let a = Ids::new();
        let b = Ids::new();
        assert_eq!(a.next_watcher().map(WatcherId::get), Some(1));
        assert_eq!(a.next_watcher().map(WatcherId::get), Some(2));
        // Another client's counter is its own (were process-wide statics).
        assert_eq!(b.next_watcher().map(WatcherId::get), Some(1));
        assert_eq!((a.next_keeper(), a.next_keeper()), (1, 2));
        assert_eq!(b.next_keeper(), 1);
        assert_eq!((a.next_waiter(), b.next_waiter()), (0, 0));
    }
}
