//! When a long-lived stream is (re)opened: [`StreamSupervisor`], sans-IO.
//!
//! [`StreamSupervisor`] is sans-IO, in quinn-proto's shape: the owner of one
//! long-lived stream tells it what happened (`handle_*(now, ..)`) and asks
//! it what to do ([`StreamSupervisor::poll_open`], and when to wake it:
//! [`StreamSupervisor::poll_timeout`] / [`StreamSupervisor::handle_timeout`]).
//! Which endpoint a new stream goes to is the [`crate::machine::Core`]'s
//! business; the supervisor only decides *when* a new stream is opened.
//!
//! # Policy
//!
//! - A stream is opened when the owner has work for it
//!   ([`StreamSupervisor::handle_wanted`]) and none is open or being opened.
//! - A failed open, a stream that ended before delivering a single message
//!   and a stream the server refused work on
//!   ([`StreamSupervisor::handle_refused`], e.g. watches cancelled with "no
//!   leader") are *failures*: the next open waits a jittered exponential
//!   backoff ([`crate::util::backoff::Backoff`], seeded).
//! - A stream that delivered messages and then broke reopens at once — the
//!   first time. The allowance is spent until a stream has again delivered
//!   messages and stayed open for [`StreamConfig::stable_after`]; a stream
//!   that breaks before that backs off. So the reopen rate is bounded by the
//!   backoff whatever the server does: at most one immediate reopen per
//!   `stable_after`, every other open preceded by a backoff delay.
//! - The backoff is reset only by such a stable stream.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use etcdv3_core::streams::{StreamConfig, StreamSupervisor};
//!
//! let t0 = Instant::now();
//! let mut sup = StreamSupervisor::new(StreamConfig::default(), 7);
//! sup.handle_wanted(t0, true);
//! assert!(sup.poll_open(t0)); // open a stream now
//! sup.handle_open_failed(t0); // ... it failed: back off
//! assert!(!sup.poll_open(t0));
//! let at = sup.poll_timeout().unwrap();
//! assert!(at > t0 && at <= t0 + StreamConfig::default().backoff.max);
//! sup.handle_timeout(at);
//! assert!(sup.poll_open(at));
//! ```

use std::time::{Duration, Instant};

use crate::util::backoff::{Backoff, BackoffConfig};
use crate::util::rng::Rng;

/// Tunables of a [`StreamSupervisor`].
#[derive(Debug, Clone, PartialEq)]
pub struct StreamConfig {
    /// Delay before reopening after consecutive failures.
    pub backoff: BackoffConfig,
    /// How long a stream that delivered messages must stay open to count as
    /// stable: the backoff is reset and the next break may reopen at once.
    pub stable_after: Duration,
}

impl Default for StreamConfig {
    /// The backoff of [`crate::machine::Config::stream_backoff`]; stable
    /// after 1 s.
    fn default() -> Self {
        StreamConfig {
            backoff: crate::machine::Config::default().stream_backoff,
            stable_after: Duration::from_secs(1),
        }
    }
}

/// Where the supervised stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamState {
    /// No stream; one is opened as soon as it is wanted.
    Closed,
    /// The owner was told to open a stream and has not reported back.
    Opening,
    /// A stream is open.
    Open {
        /// When it opened.
        since: Instant,
        /// Whether it delivered at least one message.
        delivered: bool,
    },
    /// No stream; the next may be opened at `until`.
    BackingOff {
        /// End of the backoff delay.
        until: Instant,
    },
}

/// Decides when the one long-lived stream of its owner is (re)opened; see
/// the [module docs](self).
#[derive(Debug)]
pub struct StreamSupervisor {
    config: StreamConfig,
    backoff: Backoff,
    rng: Rng,
    state: StreamState,
    wanted: bool,
    /// A broken stream that had delivered messages may reopen at once.
    immediate: bool,
    opens: u64,
    failures: u64,
}

impl StreamSupervisor {
    /// A supervisor with no stream, not wanted yet; `seed` drives the
    /// backoff jitter.
    pub fn new(config: StreamConfig, seed: u64) -> Self {
        StreamSupervisor {
            backoff: Backoff::new(config.backoff.clone()),
            config,
            rng: Rng::new(seed),
            state: StreamState::Closed,
            wanted: false,
            immediate: true,
            opens: 0,
            failures: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &StreamConfig {
        &self.config
    }

    /// Where the stream is.
    pub fn state(&self) -> StreamState {
        self.state
    }

    /// Whether the owner has work for a stream (watchers, leases, an
    /// observer). Without work nothing is opened; an open stream stays
    /// until the owner closes it ([`handle_closed`](Self::handle_closed)).
    pub fn handle_wanted(&mut self, now: Instant, wanted: bool) {
        self.wanted = wanted;
        self.handle_timeout(now);
    }

    /// Whether a stream should be opened now (without committing to it).
    pub fn wants_open(&self, now: Instant) -> bool {
        self.wanted
            && match self.state {
                StreamState::Closed => true,
                StreamState::BackingOff { until } => until <= now,
                StreamState::Opening | StreamState::Open { .. } => false,
            }
    }

    /// `true` when the owner must start opening a stream now; the
    /// supervisor then waits for [`handle_opened`](Self::handle_opened) or
    /// [`handle_open_failed`](Self::handle_open_failed).
    pub fn poll_open(&mut self, now: Instant) -> bool {
        if !self.wants_open(now) {
            return false;
        }
        self.state = StreamState::Opening;
        self.opens += 1;
        true
    }

    /// The stream is open (for a bidirectional stream: its request headers
    /// are out).
    pub fn handle_opened(&mut self, now: Instant) {
        if self.state == StreamState::Opening {
            self.state = StreamState::Open {
                since: now,
                delivered: false,
            };
        }
    }

    /// Opening the stream failed (the core gave up on the call).
    pub fn handle_open_failed(&mut self, now: Instant) {
        if self.state == StreamState::Opening {
            self.fail(now);
        }
    }

    /// A message arrived on the stream.
    pub fn handle_message(&mut self, now: Instant) {
        if let StreamState::Open { since, .. } = self.state {
            self.state = StreamState::Open {
                since,
                delivered: true,
            };
            self.check_stable(now, since);
        }
    }

    /// The stream broke or the server ended it.
    pub fn handle_lost(&mut self, now: Instant) {
        match self.state {
            StreamState::Open { since, delivered } => {
                if delivered {
                    self.check_stable(now, since);
                }
                if delivered && self.immediate {
                    self.immediate = false;
                    self.state = StreamState::Closed;
                } else {
                    self.fail(now);
                }
            }
            // A stream lost while being opened is a failed open.
            StreamState::Opening => self.fail(now),
            StreamState::Closed | StreamState::BackingOff { .. } => {}
        }
    }

    /// The server refused the stream's work (e.g. watches cancelled with
    /// "no leader") and the owner drops it: a failure even when it had
    /// delivered messages.
    pub fn handle_refused(&mut self, now: Instant) {
        match self.state {
            StreamState::Open { .. } | StreamState::Opening => self.fail(now),
            StreamState::Closed | StreamState::BackingOff { .. } => {}
        }
    }

    /// The owner closed the stream on purpose (no work left). Not a
    /// failure.
    pub fn handle_closed(&mut self, now: Instant) {
        if let StreamState::Open { since, delivered } = self.state {
            if delivered {
                self.check_stable(now, since);
            }
        }
        if matches!(self.state, StreamState::Open { .. } | StreamState::Opening) {
            self.state = StreamState::Closed;
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called (the end
    /// of a backoff delay), if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            StreamState::BackingOff { until } if self.wanted => Some(until),
            _ => None,
        }
    }

    /// The instant [`poll_timeout`](Self::poll_timeout) gave has come.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let StreamState::BackingOff { until } = self.state {
            if until <= now {
                self.state = StreamState::Closed;
            }
        }
    }

    /// Streams opened so far ([`poll_open`](Self::poll_open) said `true`).
    pub fn opens(&self) -> u64 {
        self.opens
    }

    /// Failures so far (each one delayed the next open).
    pub fn failures(&self) -> u64 {
        self.failures
    }

    /// Consecutive failures since the last stable stream.
    pub fn consecutive_failures(&self) -> u32 {
        self.backoff.attempts()
    }

    fn check_stable(&mut self, now: Instant, since: Instant) {
        if now.saturating_duration_since(since) >= self.config.stable_after {
            self.backoff.reset();
            self.immediate = true;
        }
    }

    fn fail(&mut self, now: Instant) {
        self.failures += 1;
        let delay = self.backoff.next_delay(&mut self.rng);
        // An `Instant` that cannot hold the delay (a hostile config): do not
        // panic, the delay then ends at once.
        let until = now.checked_add(delay).unwrap_or(now);
        self.state = StreamState::BackingOff { until };
    }
}
