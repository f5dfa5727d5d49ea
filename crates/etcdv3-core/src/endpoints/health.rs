//! Per-endpoint health: a small state machine fed by call outcomes,
//! connection events, pings and status probes.
//!
//! An endpoint is in one of three states:
//!
//! * [`HealthState::Up`]: usable (also the initial state: an endpoint that was
//!   never tried is assumed usable).
//! * [`HealthState::Suspect`]: something looks wrong (a stalled connection,
//!   no leader, a stale raft term); used only when nothing better exists.
//! * [`HealthState::Down`]: a connection failed or died; not used before
//!   `retry_at` unless every other endpoint is down too. The wait grows with
//!   consecutive failures (jittered backoff) and is forgotten the moment the
//!   endpoint answers again, so a returning member is used at once.

use std::time::{Duration, Instant};

use crate::util::backoff::{Backoff, BackoffConfig};
use crate::util::rng::Rng;

/// How long a latency sample informs the balancer.
pub const LATENCY_MAX_AGE: Duration = Duration::from_secs(5);

/// Coarse health of one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthState {
    /// Usable.
    Up,
    /// Usable only as a last resort.
    Suspect,
    /// Failed; avoided until `retry_at`.
    Down {
        /// When the endpoint may be tried again.
        retry_at: Instant,
    },
}

/// Why an endpoint's health changed; carried in events for observability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthReason {
    /// A call or connection succeeded.
    Answered,
    /// Connecting failed.
    ConnectFailed(String),
    /// An established connection was lost.
    ConnectionLost(String),
    /// A keepalive ping went unanswered.
    PingTimeout,
    /// Calls on the connection made no progress for too long.
    Stalled,
    /// The member reported it has no leader.
    NoLeader,
    /// The member's raft term is behind the others'.
    StaleTerm,
    /// A status probe failed.
    ProbeFailed(String),
    /// A read was answered from an older revision than the client had seen.
    BehindRevision {
        /// Revision of the answer.
        answered: i64,
        /// Revision the client had already seen.
        seen: i64,
    },
}

/// Health record of one endpoint.
#[derive(Debug, Clone)]
pub struct EndpointHealth {
    state: HealthState,
    backoff: Backoff,
    latency: Option<Duration>,
    latency_at: Option<Instant>,
    leader: Option<u64>,
    raft_term: u64,
    revision: i64,
    member_id: Option<u64>,
    no_leader: bool,
    stale: bool,
    consecutive_failures: u32,
}

impl EndpointHealth {
    /// A fresh record: `Up`, with no latency sample.
    pub fn new(backoff: BackoffConfig) -> Self {
        EndpointHealth {
            state: HealthState::Up,
            backoff: Backoff::new(backoff),
            latency: None,
            latency_at: None,
            leader: None,
            raft_term: 0,
            revision: 0,
            member_id: None,
            no_leader: false,
            stale: false,
            consecutive_failures: 0,
        }
    }

    /// Current state.
    pub fn state(&self) -> HealthState {
        self.state
    }

    /// Smoothed latency of successful calls (1/8 EWMA), if any was seen.
    pub fn latency(&self) -> Option<Duration> {
        self.latency
    }

    /// Leader id last reported by this member (0 or `None`: no leader known).
    pub fn leader(&self) -> Option<u64> {
        self.leader
    }

    /// Raft term last reported by this member.
    pub fn raft_term(&self) -> u64 {
        self.raft_term
    }

    /// Highest revision this member reported.
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// The member id this endpoint reported in a response header.
    pub fn member_id(&self) -> Option<u64> {
        self.member_id
    }

    /// Consecutive failures since the last success.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// Whether the member reported it has no leader.
    pub fn has_no_leader(&self) -> bool {
        self.no_leader
    }

    /// Whether the member's term was found behind the cluster's.
    pub fn is_stale(&self) -> bool {
        self.stale
    }

    /// Selection tier at `now`: 0 is best. Tier 0: up with a leader; 1: up
    /// but suspect signals (no leader/stale); 2: suspect; 3: down but its
    /// retry time has come; 4: down.
    pub fn tier(&self, now: Instant) -> u8 {
        match self.state {
            HealthState::Up if !(self.no_leader || self.stale) => 0,
            HealthState::Up => 1,
            HealthState::Suspect => 2,
            HealthState::Down { retry_at } if retry_at <= now => 3,
            HealthState::Down { .. } => 4,
        }
    }

    /// Smoothed latency, if a sample is younger than [`LATENCY_MAX_AGE`] at
    /// `now`: an endpoint that got no calls for a while is judged afresh
    /// rather than by an old, possibly load-inflated, estimate.
    pub fn fresh_latency(&self, now: Instant) -> Option<Duration> {
        match self.latency_at {
            Some(at) if now.saturating_duration_since(at) <= LATENCY_MAX_AGE => self.latency,
            _ => None,
        }
    }

    /// A call or connection succeeded at `now`: the endpoint is up at once,
    /// its backoff forgotten. `latency` feeds the EWMA when given (and
    /// replaces an estimate older than [`LATENCY_MAX_AGE`]).
    /// Returns true when the state changed.
    pub fn on_success(&mut self, now: Instant, latency: Option<Duration>) -> bool {
        if let Some(sample) = latency {
            self.latency = Some(match self.fresh_latency(now) {
                None => sample,
                Some(old) => (old * 7 + sample) / 8,
            });
            self.latency_at = Some(now);
        }
        self.consecutive_failures = 0;
        self.backoff.reset();
        let changed = self.state != HealthState::Up;
        self.state = HealthState::Up;
        changed
    }

    /// The endpoint failed (connect failure, connection lost, ping timeout):
    /// it goes down for a jittered backoff that grows with consecutive
    /// failures. Returns true when the state changed.
    pub fn on_failure(&mut self, now: Instant, rng: &mut Rng) -> bool {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        let delay = self.backoff.next_delay(rng);
        let was_down = matches!(self.state, HealthState::Down { .. });
        self.state = HealthState::Down {
            retry_at: now + delay,
        };
        !was_down
    }

    /// Something looks wrong but the endpoint may still work. Returns true
    /// when the state changed.
    pub fn on_suspect(&mut self) -> bool {
        if self.state == HealthState::Up {
            self.state = HealthState::Suspect;
            true
        } else {
            false
        }
    }

    /// The member answered "no leader".
    pub fn on_no_leader(&mut self) {
        self.no_leader = true;
        self.leader = Some(0);
    }

    /// A response header or status probe reported the member's view.
    /// `leader` of 0 means no leader.
    pub fn on_member_view(
        &mut self,
        member_id: u64,
        leader: Option<u64>,
        raft_term: u64,
        revision: i64,
    ) {
        if member_id != 0 {
            self.member_id = Some(member_id);
        }
        if let Some(l) = leader {
            self.leader = Some(l);
            self.no_leader = l == 0;
        }
        if raft_term > 0 {
            self.raft_term = raft_term;
        }
        self.revision = self.revision.max(revision);
    }

    /// Mark whether the member's term is behind the cluster's.
    pub fn set_stale(&mut self, stale: bool) {
        self.stale = stale;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> BackoffConfig {
        BackoffConfig {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(2),
            multiplier: 2,
            jitter: 0.0,
        }
    }

    #[test]
    fn failure_then_success_returns_at_once() {
        let now = Instant::now();
        let mut rng = Rng::new(1);
        let mut h = EndpointHealth::new(cfg());
        assert_eq!(h.tier(now), 0);
        assert!(h.on_failure(now, &mut rng));
        assert_eq!(h.tier(now), 4);
        assert_eq!(h.tier(now + Duration::from_secs(5)), 3);
        assert!(h.on_success(now, Some(Duration::from_millis(2))));
        assert_eq!(h.tier(now), 0);
        assert_eq!(h.consecutive_failures(), 0);
    }

    #[test]
    fn failures_grow_the_down_time() {
        let now = Instant::now();
        let mut rng = Rng::new(1);
        let mut h = EndpointHealth::new(cfg());
        h.on_failure(now, &mut rng);
        let HealthState::Down { retry_at: first } = h.state() else {
            panic!("not down")
        };
        h.on_failure(now, &mut rng);
        let HealthState::Down { retry_at: second } = h.state() else {
            panic!("not down")
        };
        assert!(second > first);
    }

    #[test]
    fn no_leader_and_stale_demote_tier() {
        let now = Instant::now();
        let mut h = EndpointHealth::new(cfg());
        h.on_no_leader();
        assert_eq!(h.tier(now), 1);
        h.on_member_view(7, Some(3), 5, 10);
        assert_eq!(h.tier(now), 0);
        h.set_stale(true);
        assert_eq!(h.tier(now), 1);
        assert!(h.on_suspect());
        assert_eq!(h.tier(now), 2);
    }

    #[test]
    fn latency_is_smoothed() {
        let now = Instant::now();
        let mut h = EndpointHealth::new(cfg());
        h.on_success(now, Some(Duration::from_millis(8)));
        h.on_success(now, Some(Duration::from_millis(16)));
        assert_eq!(h.latency(), Some(Duration::from_millis(9)));
        // An old estimate is not used, and is replaced by the next sample.
        let later = now + LATENCY_MAX_AGE + Duration::from_secs(1);
        assert_eq!(h.fresh_latency(later), None);
        h.on_success(later, Some(Duration::from_millis(1)));
        assert_eq!(h.fresh_latency(later), Some(Duration::from_millis(1)));
    }
}
