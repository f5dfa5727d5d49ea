//! Clock-free exponential backoff with jitter.
//!
//! [`Backoff`] never reads a clock: it only answers "how long to wait before
//! the next attempt", and the caller adds that to its own `now` to arm a
//! timer. Randomness comes from the caller's seeded [`Rng`].
//!
//! # Exact bounds
//!
//! Let `initial' = min(initial, max)`, `m = max(multiplier, 1)` and
//! `j = jitter` clamped to `[0, 1]` (NaN counts as 0), quantised to a
//! multiple of 2⁻³². The *interval* of attempt `n` (counting from 0) is
//! `min(initial' × mⁿ, max)`, computed without overflow. The delay returned
//! for that attempt is uniformly drawn from
//!
//! ```text
//! [interval − ⌊interval × j⌋, interval]     (in whole nanoseconds)
//! ```
//!
//! so every delay lies in
//! [`[config.min_delay(), config.max_delay()]`](BackoffConfig::min_delay),
//! that is `[initial' − ⌊initial' × j⌋, max]`. With the default
//! configuration (25 ms, 1 s, ×2, jitter 0.5) delays are 12.5–25 ms, then
//! 25–50 ms, … and finally 0.5–1 s.
//!
//! ```
//! use std::time::Duration;
//! use etcdv3_core::util::backoff::{Backoff, BackoffConfig};
//! use etcdv3_core::util::rng::Rng;
//!
//! let config = BackoffConfig::default();
//! let mut backoff = Backoff::new(config.clone());
//! let mut rng = Rng::new(1);
//! for _ in 0..100 {
//!     let delay = backoff.next_delay(&mut rng);
//!     assert!(delay >= config.min_delay() && delay <= config.max_delay());
//! }
//! assert_eq!(backoff.current_interval(), Duration::from_secs(1));
//! backoff.reset();
//! assert_eq!(backoff.attempts(), 0);
//! ```

use std::time::Duration;

use crate::util::rng::Rng;

/// Parameters of a [`Backoff`].
#[derive(Clone, Debug, PartialEq)]
pub struct BackoffConfig {
    /// The interval of the first attempt.
    pub initial: Duration,
    /// The largest interval.
    pub max: Duration,
    /// Factor by which the interval grows per attempt (0 is treated as 1).
    pub multiplier: u32,
    /// Fraction of the interval, in `0..=1`, that may be subtracted at
    /// random (values outside are clamped; NaN means 0).
    pub jitter: f64,
}

impl Default for BackoffConfig {
    /// 25 ms initial, 1 s max, ×2 per attempt, jitter 0.5.
    fn default() -> Self {
        BackoffConfig {
            initial: Duration::from_millis(25),
            max: Duration::from_secs(1),
            multiplier: 2,
            jitter: 0.5,
        }
    }
}

const JITTER_ONE: u128 = 1 << 32;

impl BackoffConfig {
    fn effective_initial(&self) -> Duration {
        self.initial.min(self.max)
    }

    fn effective_multiplier(&self) -> u32 {
        self.multiplier.max(1)
    }

    /// The jitter as a fixed-point fraction of 2³², in `0..=2³²`.
    fn jitter_fixed(&self) -> u128 {
        if self.jitter.is_nan() || self.jitter <= 0.0 {
            0
        } else if self.jitter >= 1.0 {
            JITTER_ONE
        } else {
            // In (0, 2^32): the product is finite and below 2^32.
            (self.jitter * JITTER_ONE as f64).round() as u128
        }
    }

    /// The most that is subtracted from `interval` by jitter.
    fn max_reduction(&self, interval: Duration) -> u128 {
        (interval.as_nanos() * self.jitter_fixed()) >> 32
    }

    /// The smallest delay a [`Backoff`] with this configuration can return.
    pub fn min_delay(&self) -> Duration {
        let initial = self.effective_initial();
        duration_from_nanos(initial.as_nanos() - self.max_reduction(initial))
    }

    /// The largest delay a [`Backoff`] with this configuration can return
    /// (`max`).
    pub fn max_delay(&self) -> Duration {
        self.max
    }
}

fn duration_from_nanos(nanos: u128) -> Duration {
    const NANOS_PER_SEC: u128 = 1_000_000_000;
    let secs = u64::try_from(nanos / NANOS_PER_SEC).unwrap_or(u64::MAX);
    // The remainder is below 10^9 and fits in u32.
    Duration::new(secs, (nanos % NANOS_PER_SEC) as u32)
}

/// Exponential backoff state: the number of attempts so far and the next
/// interval. See the [module documentation](self) for the exact bounds.
#[derive(Clone, Debug)]
pub struct Backoff {
    config: BackoffConfig,
    attempts: u32,
    interval: Duration,
}

impl Backoff {
    /// A backoff at its first attempt.
    pub fn new(config: BackoffConfig) -> Backoff {
        let interval = config.effective_initial();
        Backoff {
            config,
            attempts: 0,
            interval,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &BackoffConfig {
        &self.config
    }

    /// The delay to wait before the next attempt; advances to the next
    /// attempt (the interval grows by the multiplier, up to `max`).
    pub fn next_delay(&mut self, rng: &mut Rng) -> Duration {
        let interval = self.interval;
        let max_reduction = self.config.max_reduction(interval);
        let reduction = if max_reduction == 0 {
            0
        } else if let Ok(bound) = u64::try_from(max_reduction + 1) {
            u128::from(rng.gen_range(0..bound))
        } else {
            // Astronomically long intervals: float precision is plenty.
            ((max_reduction as f64 * rng.next_f64()) as u128).min(max_reduction)
        };
        self.attempts = self.attempts.saturating_add(1);
        self.interval = interval
            .checked_mul(self.config.effective_multiplier())
            .map_or(self.config.max, |next| next.min(self.config.max));
        duration_from_nanos(interval.as_nanos() - reduction)
    }

    /// The bounds `[low, high]` of the delay the next call to
    /// [`next_delay`](Self::next_delay) returns.
    pub fn delay_bounds(&self) -> (Duration, Duration) {
        let reduction = self.config.max_reduction(self.interval);
        (
            duration_from_nanos(self.interval.as_nanos() - reduction),
            self.interval,
        )
    }

    /// Back to the first attempt (after a success).
    pub fn reset(&mut self) {
        self.attempts = 0;
        self.interval = self.config.effective_initial();
    }

    /// The number of delays handed out since creation or the last reset
    /// (saturating at `u32::MAX`).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The interval (before jitter) of the next delay.
    pub fn current_interval(&self) -> Duration {
        self.interval
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_sequence_of_intervals() {
        let mut b = Backoff::new(BackoffConfig::default());
        let mut rng = Rng::new(0);
        let mut intervals = Vec::new();
        for _ in 0..8 {
            intervals.push(b.current_interval().as_millis());
            b.next_delay(&mut rng);
        }
        assert_eq!(intervals, [25, 50, 100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.attempts(), 8);
        assert_eq!(
            BackoffConfig::default().min_delay(),
            Duration::from_micros(12_500)
        );
    }

    #[test]
    fn no_jitter_is_exact() {
        let config = BackoffConfig {
            jitter: 0.0,
            ..BackoffConfig::default()
        };
        let mut b = Backoff::new(config);
        let mut rng = Rng::new(0);
        assert_eq!(b.next_delay(&mut rng), Duration::from_millis(25));
        assert_eq!(b.next_delay(&mut rng), Duration::from_millis(50));
    }
}
