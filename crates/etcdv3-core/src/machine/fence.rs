//! The revision fence: a client's serializable reads do not go back in
//! revision, and no answer can brick reads.
//!
//! The core remembers the highest store revision any response (or watch
//! event, [`Core::handle_revision_seen`]) showed this client, and each call
//! remembers that revision as it was when the call started (`seen`). What
//! happens to an answer below `seen` depends on the call's [`ReadKind`]:
//!
//! * **Quorum-confirmed answers** ([`ReadKind::Linearizable`]: a
//!   linearizable `Range`; by default also `Put` and `DeleteRange`) are never
//!   stale: etcd serves them only once the member applied everything the
//!   leader had committed. One below `seen` means the cluster's history went
//!   back (restored from an older snapshot, or `seen` came from a bogus
//!   header): the fence is **reset** to the answer's revision (every live
//!   call's `seen` too), [`Event::FenceReset`] is emitted, and the answer is
//!   handed over.
//! * **Serializable reads** ([`ReadKind::Serializable`], and a `Range`
//!   started without a kind: the core cannot see the request) are the ones
//!   the fence guards. One answered below `seen` came from a member that is
//!   behind (cut off, or lagging): it is retried, on a member not tried yet
//!   if there is one, else after the retry backoff, at most
//!   [`Config::stale_read_retries`](super::Config::stale_read_retries)
//!   times. Then, or when the next retry would pass the deadline or find the
//!   retry budget spent, the last answer is handed over **marked**: an
//!   [`Event::StaleRead`] for the call is emitted in the same input as its
//!   `Complete { Ok }`. Such an answer does not raise or lower the fence.
//! * **Opted-out reads** ([`ReadKind::SerializableUnfenced`]) and **reads
//!   bound to one member** ([`Core::start_call_on`]) get the first answer,
//!   whatever its revision, marked with [`Event::StaleRead`] when it is
//!   below `seen`.
//! * Other calls' answers only raise the fence.
//!
//! So no answer, not even one header with a huge revision, makes reads fail:
//! a linearizable read resets the fence at once, a serializable read costs
//! at most `stale_read_retries` extra attempts and is then handed over
//! marked.

use etcdv3_proto::method::{Method, KV_DELETE_RANGE, KV_PUT, KV_RANGE};

use super::{CallId, Core, EndpointId, Event, ReadKind};

/// The highest revision seen.
#[derive(Debug, Default)]
pub(super) struct Fence {
    pub(super) max_revision: i64,
}

/// What the fence makes of one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Hand it over (the fence was raised, or reset, as the answer says).
    Accept,
    /// A serializable read from a member behind the client: ask again.
    Retry {
        /// The revision the client had seen when the call started.
        seen: i64,
    },
    /// Hand it over, marked as below the revision seen.
    Stale {
        /// The revision the client had seen when the call started.
        seen: i64,
    },
}

/// The kind a call started without one is treated as.
pub(super) fn resolve_kind(method: Method, kind: ReadKind) -> ReadKind {
    match kind {
        ReadKind::Unspecified if method.path == KV_RANGE.path => ReadKind::Serializable,
        ReadKind::Unspecified
            if method.path == KV_PUT.path || method.path == KV_DELETE_RANGE.path =>
        {
            ReadKind::Linearizable
        }
        k => k,
    }
}

impl Core {
    /// Record a revision the client observed elsewhere (e.g. in a watch
    /// event), so later reads are fenced by it too.
    pub fn handle_revision_seen(&mut self, revision: i64) {
        self.fence.max_revision = self.fence.max_revision.max(revision);
    }

    /// The highest store revision this client has seen in a response (since
    /// the last [`Event::FenceReset`]).
    pub fn max_revision(&self) -> i64 {
        self.fence.max_revision
    }

    /// Judge the answer `call` got from `endpoint` at `revision`, updating
    /// the fence (raise or reset) and queueing the fence's events.
    pub(super) fn judge_answer(
        &mut self,
        call: CallId,
        endpoint: EndpointId,
        revision: i64,
    ) -> Verdict {
        let retries = self.config.stale_read_retries;
        let Some(c) = self.calls.get_mut(&call) else {
            return Verdict::Accept;
        };
        let seen = c.min_revision;
        if revision <= 0 || c.read == ReadKind::Unspecified {
            // No revision, or a call the fence does not judge.
            if revision > 0 {
                self.fence.max_revision = self.fence.max_revision.max(revision);
            }
            return Verdict::Accept;
        }
        if revision >= seen {
            self.fence.max_revision = self.fence.max_revision.max(revision);
            return Verdict::Accept;
        }
        match c.read {
            ReadKind::Linearizable => {
                // Confirmed by a quorum below what was seen: the history
                // went back. Believe the cluster.
                let before = self.fence.max_revision;
                self.fence.max_revision = revision;
                for other in self.calls.values_mut() {
                    other.min_revision = other.min_revision.min(revision);
                }
                self.events.push_back(Event::FenceReset {
                    call,
                    endpoint,
                    answered: revision,
                    seen: before,
                });
                Verdict::Accept
            }
            ReadKind::Serializable if c.bound.is_none() && c.stale_answers < retries => {
                c.stale_answers += 1;
                c.stale = Some((endpoint, revision));
                Verdict::Retry { seen }
            }
            _ => Verdict::Stale { seen },
        }
    }

    /// Hand over the call's last answer, below the revision seen when it
    /// started, marked with [`Event::StaleRead`].
    pub(super) fn hand_over_stale(&mut self, call: CallId, endpoint: EndpointId, answered: i64) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        self.events.push_back(Event::StaleRead {
            call,
            endpoint,
            answered,
            seen: c.min_revision,
        });
        self.complete(call, Ok(()));
    }

    /// A serializable read waiting to be retried after a stale answer, whose
    /// retry would end it without an answer (its deadline passes, the retry
    /// budget is spent): hand that stale answer over, marked, instead of
    /// failing the read. Returns whether it did.
    pub(super) fn settle_stale(&mut self, call: CallId) -> bool {
        match self.calls.get(&call).and_then(|c| c.stale) {
            Some((endpoint, answered)) => {
                self.hand_over_stale(call, endpoint, answered);
                true
            }
            None => false,
        }
    }
}
