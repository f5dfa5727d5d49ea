//! The revision fence: a client's reads never go back in revision.
//!
//! The core remembers the highest store revision any response (or watch
//! event) showed this client. A `Range` answered below the revision the
//! client had already seen when the read started came from a member that is
//! behind (cut off, or lagging): it is retried, on a member not tried yet
//! if there is one, else after the retry backoff (a lagging member catches
//! up, a cut-off one is avoided once others answer), until its deadline. A
//! stale answer is never handed to the caller, unless the call was bound to
//! that member by the caller.

use std::time::Instant;

use etcdv3_proto::method::{Method, KV_RANGE};

use super::{CallId, Core};

/// The highest revision seen.
#[derive(Debug, Default)]
pub(super) struct Fence {
    pub(super) max_revision: i64,
}

impl Core {
    /// Record a revision the client observed elsewhere (e.g. in a watch
    /// event), so later reads are fenced by it too.
    pub fn handle_revision_seen(&mut self, revision: i64) {
        self.fence.max_revision = self.fence.max_revision.max(revision);
    }

    /// The highest store revision this client has seen in a response.
    pub fn max_revision(&self) -> i64 {
        self.fence.max_revision
    }

    /// Whether a `Range` answered at `revision` came from a member behind
    /// the client (for a call bound to one member: and another endpoint
    /// may be asked instead).
    pub(super) fn is_stale_read(
        &self,
        now: Instant,
        call: CallId,
        method: Method,
        revision: i64,
    ) -> bool {
        if method.path != KV_RANGE.path || revision <= 0 {
            return false;
        }
        let Some(c) = self.calls.get(&call) else {
            return false;
        };
        revision < c.min_revision && (c.bound.is_none() || self.has_fresh_endpoint(now, &c.tried))
    }
}
