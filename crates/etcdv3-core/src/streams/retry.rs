//! When a recipe's loop tries again: [`Retry`], sans-IO.
//!
//! The concurrency recipes (a lock waiting for earlier owners, an election
//! observer reopening its watch, a key removed in the background after its
//! owner went away) run loops of their own around ordinary calls. How long
//! such a loop waits after a failure, and when it gives up, is decided
//! here; the loop only reads its clock, asks, and sleeps until the instant
//! it is given.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use etcdv3_core::streams::{Retry, RetryConfig};
//!
//! let t0 = Instant::now();
//! let mut retry = Retry::new(RetryConfig::cleanup(), 1);
//! let mut waits = Vec::new();
//! while let Some(at) = retry.handle_failure(t0) {
//!     waits.push(at - t0);
//! }
//! // 8 attempts: 7 waits, 50 ms doubling up to 1 s.
//! assert_eq!(waits.len(), 7);
//! assert_eq!(waits[0], Duration::from_millis(50));
//! assert_eq!(waits[6], Duration::from_secs(1));
//! ```

use std::time::{Duration, Instant};

use crate::util::backoff::{Backoff, BackoffConfig};
use crate::util::rng::Rng;

/// Tunables of a [`Retry`].
#[derive(Debug, Clone, PartialEq)]
pub struct RetryConfig {
    /// The wait after consecutive failures.
    pub backoff: BackoffConfig,
    /// Attempts after which the loop gives up (`None`: never).
    pub max_attempts: Option<u32>,
}

impl RetryConfig {
    /// A recipe waiting on the cluster (earlier lock owners, an election's
    /// leader, a key's owner): 50 ms doubling to 1 s, without jitter, for
    /// as long as the caller waits.
    pub fn recipe() -> RetryConfig {
        RetryConfig {
            backoff: BackoffConfig {
                initial: Duration::from_millis(50),
                max: Duration::from_secs(1),
                multiplier: 2,
                jitter: 0.0,
            },
            max_attempts: None,
        }
    }

    /// A recipe key removed in the background after its owner went away:
    /// as [`recipe`](Self::recipe), at most 8 attempts (the key's lease
    /// removes it anyway when it expires).
    pub fn cleanup() -> RetryConfig {
        RetryConfig {
            max_attempts: Some(8),
            ..RetryConfig::recipe()
        }
    }
}

impl Default for RetryConfig {
    /// [`RetryConfig::recipe`].
    fn default() -> Self {
        RetryConfig::recipe()
    }
}

/// The timing of one retry loop; see the [module docs](self).
#[derive(Debug)]
pub struct Retry {
    config: RetryConfig,
    backoff: Backoff,
    rng: Rng,
    attempts: u32,
}

impl Retry {
    /// A loop that has not failed yet; `seed` drives the jitter, if any.
    pub fn new(config: RetryConfig, seed: u64) -> Retry {
        Retry {
            backoff: Backoff::new(config.backoff.clone()),
            config,
            rng: Rng::new(seed),
            attempts: 0,
        }
    }

    /// An attempt failed at `now`: the instant of the next attempt, or
    /// `None` when the loop gives up.
    pub fn handle_failure(&mut self, now: Instant) -> Option<Instant> {
        self.attempts = self.attempts.saturating_add(1);
        if self
            .config
            .max_attempts
            .is_some_and(|max| self.attempts >= max)
        {
            return None;
        }
        let delay = self.backoff.next_delay(&mut self.rng);
        Some(now.checked_add(delay).unwrap_or(now))
    }

    /// An attempt succeeded: the next failure waits the shortest delay
    /// again (the attempt count of [`RetryConfig::max_attempts`] is not
    /// reset: it bounds the loop's whole life).
    pub fn handle_success(&mut self) {
        self.backoff.reset();
    }

    /// Attempts that failed so far.
    pub fn failures(&self) -> u32 {
        self.attempts
    }
}
