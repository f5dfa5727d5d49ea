//! The call timer table: every armed deadline, retry backoff and
//! slow-mutation check, ordered by instant. A call's timers are removed
//! when it ends, so the table holds only live calls' timers (a `Lock`
//! waiting for a year leaves nothing behind once it is cancelled).

use std::collections::BTreeSet;
use std::time::Instant;

use super::types::CallId;

/// What a call timer does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum CallTimer {
    /// The call's deadline.
    Deadline(CallId),
    /// The end of the call's retry backoff.
    Retry(CallId),
    /// A call has been in flight for `stall_timeout`: probe the members
    /// soon, to find a leader change or a partition that would leave it
    /// stuck.
    SlowCheck(CallId),
}

/// Armed call timers.
#[derive(Debug, Default)]
pub(super) struct CallTimers {
    armed: BTreeSet<(Instant, CallTimer)>,
}

impl CallTimers {
    /// Arm `timer` at `at`.
    pub(super) fn set(&mut self, at: Instant, timer: CallTimer) {
        self.armed.insert((at, timer));
    }

    /// Disarm `timer` armed at `at` (no-op when it is not armed).
    pub(super) fn stop(&mut self, at: Option<Instant>, timer: CallTimer) {
        if let Some(at) = at {
            self.armed.remove(&(at, timer));
        }
    }

    /// The earliest armed instant.
    pub(super) fn next(&self) -> Option<Instant> {
        self.armed.first().map(|(at, _)| *at)
    }

    /// Take the earliest timer due at `now`.
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<CallTimer> {
        match self.armed.first() {
            Some((at, _)) if *at <= now => self.armed.pop_first().map(|(_, t)| t),
            _ => None,
        }
    }

    /// Number of armed timers.
    pub(super) fn len(&self) -> usize {
        self.armed.len()
    }
}
