//! The client's retry budget: retries may add at most a fraction of the
//! load the caller asked for, plus a small floor.
//!
//! Under overload, a client that re-sends every failed or slow request turns
//! a saturated cluster into a collapsing one: each refusal or timeout adds a
//! request. [`RetryBudget`] bounds that per client, the way Finagle's
//! `RetryBudget` does (gRPC's retry throttling is the same idea as a token
//! bucket). Over a sliding window (10 s by default) the client may re-send
//!
//! ```text
//! ⌊ratio × first attempts in the window⌋ + ⌊min_per_second × window⌋
//! ```
//!
//! requests, minus the re-sends already made in that window. The defaults,
//! 20 % and 10 per second, mean:
//!
//! * at saturation retries add at most 20 % to the cluster's load, so
//!   goodput stays flat instead of falling as retries crowd out first
//!   attempts;
//! * a busy client still fails over whole: a member crash orphans the calls
//!   in flight on it, about a third of them with three members, far less
//!   than 20 % of ten seconds of traffic;
//! * a quiet client (one call a minute) can still retry: the floor gives it
//!   100 re-sends per window, enough for every call in flight during any
//!   failover a small client sees.
//!
//! The window is counted in ten slots; a slot's counts leave the window
//! whole, so the window is between 0.9 and 1 times its length. Time is an
//! argument: the budget never reads a clock.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use etcdv3_core::util::budget::{RetryBudget, RetryBudgetConfig};
//!
//! let now = Instant::now();
//! let mut budget = RetryBudget::new(RetryBudgetConfig {
//!     ratio: 0.2,
//!     min_per_second: 0,
//!     window: Duration::from_secs(10),
//! });
//! for _ in 0..10 {
//!     budget.deposit(now);
//! }
//! assert!(budget.try_withdraw(now));
//! assert!(budget.try_withdraw(now));
//! assert!(!budget.try_withdraw(now)); // 20 % of 10 first attempts: 2
//! // Ten seconds later those first attempts have left the window.
//! budget.deposit(now + Duration::from_secs(11));
//! assert!(!budget.try_withdraw(now + Duration::from_secs(11)));
//! ```

use std::time::{Duration, Instant};

/// Parameters of a [`RetryBudget`].
#[derive(Debug, Clone, PartialEq)]
pub struct RetryBudgetConfig {
    /// Re-sends allowed per first attempt in the window (0.2: one retry per
    /// five calls). Negative or NaN counts as 0.
    pub ratio: f64,
    /// Re-sends allowed per second of the window whatever the traffic, so a
    /// client with little traffic can still fail over.
    pub min_per_second: u32,
    /// How far back first attempts and re-sends are counted. Below 10 ms it
    /// counts as 10 ms.
    pub window: Duration,
}

impl Default for RetryBudgetConfig {
    fn default() -> Self {
        RetryBudgetConfig {
            ratio: 0.2,
            min_per_second: 10,
            window: Duration::from_secs(10),
        }
    }
}

impl RetryBudgetConfig {
    /// The re-sends allowed per window with no traffic at all.
    pub fn floor(&self) -> u64 {
        let window = self.window.max(MIN_WINDOW);
        let n = u128::from(self.min_per_second) * window.as_nanos() / 1_000_000_000;
        n.min(u128::from(u64::MAX)) as u64
    }

    /// The re-sends allowed in a window that saw `first_attempts` first
    /// attempts.
    pub fn allowance(&self, first_attempts: u64) -> u64 {
        let ratio = if self.ratio.is_nan() || self.ratio < 0.0 {
            0.0
        } else {
            self.ratio
        };
        let share = (first_attempts as f64 * ratio).floor();
        let share = if share >= u64::MAX as f64 {
            u64::MAX
        } else {
            share as u64
        };
        share.saturating_add(self.floor())
    }
}

const SLOTS: usize = 10;
const MIN_WINDOW: Duration = Duration::from_millis(10);

/// A sliding-window retry budget (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct RetryBudget {
    config: RetryBudgetConfig,
    slot_len: Duration,
    /// The instant slot 0 began: the first instant the budget was given.
    origin: Option<Instant>,
    /// The number (since `origin`) of the newest slot.
    head: u64,
    /// First attempts per slot, indexed by slot number modulo [`SLOTS`].
    deposits: [u64; SLOTS],
    /// Re-sends per slot.
    withdrawals: [u64; SLOTS],
}

impl RetryBudget {
    /// An empty budget: only the floor is available.
    pub fn new(config: RetryBudgetConfig) -> Self {
        let slot_len = config.window.max(MIN_WINDOW) / SLOTS as u32;
        RetryBudget {
            config,
            slot_len,
            origin: None,
            head: 0,
            deposits: [0; SLOTS],
            withdrawals: [0; SLOTS],
        }
    }

    /// The configuration.
    pub fn config(&self) -> &RetryBudgetConfig {
        &self.config
    }

    /// A first attempt went out at `now`.
    pub fn deposit(&mut self, now: Instant) {
        let i = self.advance(now);
        self.deposits[i] = self.deposits[i].saturating_add(1);
    }

    /// Take one re-send from the budget at `now`: true if there was one
    /// (the re-send may go out), false if the budget is spent.
    pub fn try_withdraw(&mut self, now: Instant) -> bool {
        let i = self.advance(now);
        if self.balance_at(now) == 0 {
            return false;
        }
        self.withdrawals[i] = self.withdrawals[i].saturating_add(1);
        true
    }

    /// Re-sends still allowed at `now`.
    pub fn balance_at(&mut self, now: Instant) -> u64 {
        self.advance(now);
        let deposits = self.deposits.iter().fold(0u64, |a, d| a.saturating_add(*d));
        let withdrawals = self
            .withdrawals
            .iter()
            .fold(0u64, |a, w| a.saturating_add(*w));
        self.config.allowance(deposits).saturating_sub(withdrawals)
    }

    /// Move the window to `now` (earlier instants count as the newest
    /// slot) and return the newest slot's index.
    fn advance(&mut self, now: Instant) -> usize {
        let origin = *self.origin.get_or_insert(now);
        let slot = (now.saturating_duration_since(origin).as_nanos()
            / self.slot_len.as_nanos().max(1)) as u64;
        if slot > self.head {
            let stale = (slot - self.head).min(SLOTS as u64);
            for k in 1..=stale {
                let i = ((self.head + k) % SLOTS as u64) as usize;
                self.deposits[i] = 0;
                self.withdrawals[i] = 0;
            }
            self.head = slot;
        }
        (self.head % SLOTS as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(ratio: f64, min_per_second: u32) -> RetryBudgetConfig {
        RetryBudgetConfig {
            ratio,
            min_per_second,
            window: Duration::from_secs(10),
        }
    }

    #[test]
    fn floor_alone_allows_min_per_second_times_window() {
        let now = Instant::now();
        let mut b = RetryBudget::new(cfg(0.2, 10));
        let granted = (0..150).filter(|_| b.try_withdraw(now)).count();
        assert_eq!(granted, 100);
    }

    #[test]
    fn ratio_of_first_attempts_is_added_to_the_floor() {
        let now = Instant::now();
        let mut b = RetryBudget::new(cfg(0.2, 1));
        for _ in 0..1000 {
            b.deposit(now);
        }
        assert_eq!(b.balance_at(now), 200 + 10);
        let granted = (0..1000).filter(|_| b.try_withdraw(now)).count();
        assert_eq!(granted, 210);
        assert_eq!(b.balance_at(now), 0);
    }

    #[test]
    fn spent_budget_recovers_as_the_window_slides() {
        let t0 = Instant::now();
        let mut b = RetryBudget::new(cfg(0.0, 1));
        assert_eq!((0..20).filter(|_| b.try_withdraw(t0)).count(), 10);
        // 9.999 s later the re-sends of t0 are still in the window.
        assert!(!b.try_withdraw(t0 + Duration::from_millis(9_999)));
        // Once their slot has left it, the floor is whole again.
        assert_eq!(b.balance_at(t0 + Duration::from_secs(10)), 10);
    }

    #[test]
    fn a_long_silence_clears_every_slot() {
        let t0 = Instant::now();
        let mut b = RetryBudget::new(cfg(1.0, 0));
        for i in 0..10 {
            b.deposit(t0 + Duration::from_secs(i));
        }
        assert_eq!(b.balance_at(t0 + Duration::from_secs(9)), 10);
        assert_eq!(b.balance_at(t0 + Duration::from_secs(3600)), 0);
    }

    #[test]
    fn odd_configurations_do_not_panic() {
        let now = Instant::now();
        for c in [
            RetryBudgetConfig {
                ratio: f64::NAN,
                min_per_second: 0,
                window: Duration::ZERO,
            },
            RetryBudgetConfig {
                ratio: -1.0,
                min_per_second: u32::MAX,
                window: Duration::MAX,
            },
            RetryBudgetConfig {
                ratio: f64::INFINITY,
                min_per_second: 1,
                window: Duration::from_nanos(1),
            },
        ] {
            let mut b = RetryBudget::new(c);
            b.deposit(now);
            let _ = b.try_withdraw(now + Duration::from_secs(1));
        }
    }
}
