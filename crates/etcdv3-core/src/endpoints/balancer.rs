//! Balancer policies: which endpoint a call goes to.
//!
//! The balancer sees a slice of [`Candidate`]s, one per usable endpoint, each
//! with its health tier (0 best, see [`crate::endpoints::health::EndpointHealth::tier`]),
//! calls in flight and smoothed latency, and returns the index of the one to
//! use. Endpoints the call already tried are marked so that a retry goes
//! elsewhere while somewhere else exists.

use std::time::Duration;

use crate::util::rng::Rng;

/// Which balancing policy a client uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    /// One endpoint at a time: stay on it while it is healthy, switch on
    /// failure (the behaviour of etcd's Go client up to 3.3).
    Pinned,
    /// Rotate over the healthy endpoints per call (etcd's Go client 3.4+).
    RoundRobin,
    /// Pin-free: among the healthiest endpoints prefer the one with the fewest
    /// calls in flight and the lowest recent latency (two random choices).
    #[default]
    Adaptive,
}

/// One endpoint as the balancer sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// Caller's identifier for the endpoint (an index).
    pub id: usize,
    /// Health tier: 0 best, 4 worst.
    pub tier: u8,
    /// Calls in flight on the endpoint.
    pub in_flight: u32,
    /// Smoothed latency, if known.
    pub latency: Option<Duration>,
    /// Whether this call already tried the endpoint.
    pub tried: bool,
}

/// Balancer state: the policy and what it remembers between picks.
#[derive(Debug, Clone)]
pub struct Balancer {
    policy: Policy,
    pinned: Option<usize>,
    next: usize,
}

impl Balancer {
    /// A balancer with the given policy.
    pub fn new(policy: Policy) -> Self {
        Balancer {
            policy,
            pinned: None,
            next: 0,
        }
    }

    /// The policy in use.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// The endpoint the `Pinned` policy currently sticks to.
    pub fn pinned(&self) -> Option<usize> {
        self.pinned
    }

    /// Pick one candidate; returns its `id`, or `None` when `candidates` is
    /// empty. Untried candidates are preferred over tried ones, then lower
    /// tiers over higher, but any usable candidate beats one that is down
    /// (tier 4); the policy decides among the rest.
    ///
    /// ```
    /// use etcdv3_core::endpoints::balancer::{Balancer, Candidate, Policy};
    /// use etcdv3_core::util::rng::Rng;
    /// let mut b = Balancer::new(Policy::Adaptive);
    /// let c = |id, tier| Candidate { id, tier, in_flight: 0, latency: None, tried: false };
    /// let picked = b.pick(&[c(0, 4), c(1, 0), c(2, 2)], &mut Rng::new(7));
    /// assert_eq!(picked, Some(1));
    /// ```
    pub fn pick(&mut self, candidates: &[Candidate], rng: &mut Rng) -> Option<usize> {
        // A member that is down ranks after every live one, even one this
        // call already tried: once its backoff has run out (tier 3) a call
        // staked on reconnecting to it waits out a whole connect timeout if
        // it still hangs (a SIGSTOPped leader), while a live member that
        // answered `no leader` will serve the call once the election ends.
        let rank = |c: &Candidate| (c.tier >= 4, c.tier >= 3, c.tried, c.tier);
        let best = candidates.iter().map(rank).min()?;
        let is_best = |c: &&Candidate| rank(c) == best;
        match self.policy {
            Policy::Pinned => {
                if let Some(p) = self.pinned {
                    if candidates.iter().filter(is_best).any(|c| c.id == p) {
                        return Some(p);
                    }
                }
                let chosen = candidates.iter().find(is_best)?.id;
                self.pinned = Some(chosen);
                Some(chosen)
            }
            Policy::RoundRobin => {
                let count = candidates.iter().filter(is_best).count();
                let k = self.next % count.max(1);
                self.next = self.next.wrapping_add(1);
                candidates.iter().filter(is_best).nth(k).map(|c| c.id)
            }
            Policy::Adaptive => {
                let count = candidates.iter().filter(is_best).count();
                if count <= 2 {
                    return candidates
                        .iter()
                        .filter(is_best)
                        .min_by_key(|c| score(c))
                        .map(|c| c.id);
                }
                // Power of two choices: cheap, and spreads load without herding.
                let a = rng.gen_range(0..count as u64) as usize;
                let mut b = rng.gen_range(0..count as u64 - 1) as usize;
                if b >= a {
                    b += 1;
                }
                let ca = candidates.iter().filter(is_best).nth(a)?;
                let cb = candidates.iter().filter(is_best).nth(b)?;
                Some(if score(cb) < score(ca) { cb.id } else { ca.id })
            }
        }
    }

    /// Forget the pinned endpoint (e.g. it was removed).
    pub fn unpin(&mut self, id: usize) {
        if self.pinned == Some(id) {
            self.pinned = None;
        }
    }
}

/// Expected cost of sending one more call: (in flight + 1) x latency, in
/// microseconds; unknown latency counts as 1 ms so that new endpoints get
/// tried.
fn score(c: &Candidate) -> u128 {
    let lat = c.latency.map_or(1000, |l| l.as_micros().max(1));
    (c.in_flight as u128 + 1) * lat
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(id: usize, tier: u8, in_flight: u32, ms: u64) -> Candidate {
        Candidate {
            id,
            tier,
            in_flight,
            latency: Some(Duration::from_millis(ms)),
            tried: false,
        }
    }

    #[test]
    fn pinned_sticks_until_its_tier_drops() {
        let mut b = Balancer::new(Policy::Pinned);
        let mut rng = Rng::new(1);
        let mut cs = vec![c(0, 0, 0, 1), c(1, 0, 0, 1), c(2, 0, 0, 1)];
        assert_eq!(b.pick(&cs, &mut rng), Some(0));
        cs[0].in_flight = 100;
        assert_eq!(b.pick(&cs, &mut rng), Some(0));
        cs[0].tier = 4;
        assert_eq!(b.pick(&cs, &mut rng), Some(1));
        cs[0].tier = 0;
        assert_eq!(b.pick(&cs, &mut rng), Some(1), "stays on the new pin");
    }

    #[test]
    fn round_robin_rotates_over_best_tier() {
        let mut b = Balancer::new(Policy::RoundRobin);
        let mut rng = Rng::new(1);
        let cs = vec![c(0, 0, 0, 1), c(1, 3, 0, 1), c(2, 0, 0, 1)];
        let picks: Vec<_> = (0..4).map(|_| b.pick(&cs, &mut rng).unwrap()).collect();
        assert_eq!(picks, vec![0, 2, 0, 2]);
    }

    #[test]
    fn adaptive_prefers_less_loaded_and_faster() {
        let mut b = Balancer::new(Policy::Adaptive);
        let mut rng = Rng::new(1);
        let cs = vec![c(0, 0, 10, 1), c(1, 0, 0, 1)];
        assert_eq!(b.pick(&cs, &mut rng), Some(1));
        let cs = vec![c(0, 0, 0, 50), c(1, 0, 0, 1)];
        assert_eq!(b.pick(&cs, &mut rng), Some(1));
        // With many candidates, the slowest one is never picked.
        let cs = vec![c(0, 0, 0, 1), c(1, 0, 0, 1), c(2, 0, 0, 900), c(3, 0, 0, 1)];
        for _ in 0..200 {
            assert_ne!(b.pick(&cs, &mut rng), Some(2));
        }
    }

    #[test]
    fn untried_beats_tried_even_if_worse() {
        let mut b = Balancer::new(Policy::Adaptive);
        let mut rng = Rng::new(1);
        let mut cs = vec![c(0, 0, 0, 1), c(1, 2, 0, 1)];
        cs[0].tried = true;
        assert_eq!(b.pick(&cs, &mut rng), Some(1));
    }

    #[test]
    fn empty_gives_none() {
        let mut b = Balancer::new(Policy::RoundRobin);
        assert_eq!(b.pick(&[], &mut Rng::new(1)), None);
    }
}
