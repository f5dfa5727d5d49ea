//! A small seeded pseudo-random number generator.
//!
//! The core never draws from a global or OS random source: every random
//! decision (backoff jitter, endpoint shuffles) comes from an [`Rng`] seeded
//! at construction, so the same seed and inputs give the same outputs.
//!
//! The generator is xoshiro256** (Blackman and Vigna), with its state filled
//! from the seed by splitmix64. It is fast and statistically good, and not
//! cryptographically secure (it needs not be).
//!
//! ```
//! use etcdv3_core::util::rng::Rng;
//!
//! let mut a = Rng::new(42);
//! let mut b = Rng::new(42);
//! assert_eq!(a.next_u64(), b.next_u64());
//! let x = a.gen_range(10..20);
//! assert!((10..20).contains(&x));
//! ```

use std::ops::Range;

/// A deterministic pseudo-random number generator (xoshiro256**).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng {
    s: [u64; 4],
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Rng {
    /// A generator seeded with `seed`. Every seed (0 included) is fine.
    pub fn new(seed: u64) -> Rng {
        let mut sm = seed;
        let s = [
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
        ];
        // splitmix64 is a bijection of distinct counters, so the four words
        // cannot all be zero; keep the guarantee explicit anyway.
        if s == [0; 4] {
            return Rng { s: [1, 0, 0, 0] };
        }
        Rng { s }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// A uniformly distributed number in `range` (without modulo bias).
    /// An empty range returns `range.start`; it never panics.
    pub fn gen_range(&mut self, range: Range<u64>) -> u64 {
        if range.end <= range.start {
            return range.start;
        }
        let span = range.end - range.start;
        range.start + self.below(span)
    }

    /// Uniform in `0..span` for `span > 0` (Lemire's multiply-and-reject).
    fn below(&mut self, span: u64) -> u64 {
        let threshold = span.wrapping_neg() % span;
        loop {
            let m = u128::from(self.next_u64()) * u128::from(span);
            if (m as u64) >= threshold {
                return (m >> 64) as u64;
            }
        }
    }

    /// A uniformly distributed float in `[0, 1)` with 53 bits of precision.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// `true` with probability `p` (clamped to `[0, 1]`; NaN counts as 0).
    pub fn gen_bool(&mut self, p: f64) -> bool {
        self.next_f64() < p
    }

    /// A new generator seeded from this one, for a component that needs its
    /// own stream. Deterministic: the same parent state gives the same child.
    pub fn fork(&mut self) -> Rng {
        Rng::new(self.next_u64())
    }

    /// Shuffles `items` uniformly (Fisher-Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_for_a_seed() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        let xs: Vec<u64> = (0..100).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..100).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        let mut c = Rng::new(8);
        let zs: Vec<u64> = (0..100).map(|_| c.next_u64()).collect();
        assert_ne!(xs, zs);
    }

    #[test]
    fn matches_reference_vectors() {
        // xoshiro256** from state [1, 2, 3, 4] (the published test vector).
        let mut r = Rng { s: [1, 2, 3, 4] };
        let out: Vec<u64> = (0..6).map(|_| r.next_u64()).collect();
        assert_eq!(
            out,
            [
                11520,
                0,
                1509978240,
                1215971899390074240,
                1216172134540287360,
                607988272756665600
            ]
        );
        // splitmix64's first output for seed 0.
        let mut sm = 0u64;
        assert_eq!(splitmix64(&mut sm), 0xe220_a839_7b1d_cdaf);
    }

    #[test]
    fn gen_range_bounds_and_empty() {
        let mut r = Rng::new(1);
        for _ in 0..10_000 {
            let x = r.gen_range(5..9);
            assert!((5..9).contains(&x));
        }
        assert_eq!(r.gen_range(5..5), 5);
        #[allow(clippy::reversed_empty_ranges)]
        let reversed = r.gen_range(9..5);
        assert_eq!(reversed, 9);
        let x = r.gen_range(0..u64::MAX);
        assert!(x < u64::MAX);
    }

    #[test]
    fn gen_range_is_roughly_uniform() {
        let mut r = Rng::new(3);
        let mut counts = [0u32; 6];
        for _ in 0..60_000 {
            counts[r.gen_range(0..6) as usize] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn next_f64_in_unit_interval() {
        let mut r = Rng::new(4);
        let mut sum = 0.0;
        for _ in 0..10_000 {
            let x = r.next_f64();
            assert!((0.0..1.0).contains(&x));
            sum += x;
        }
        let mean = sum / 10_000.0;
        assert!((0.45..0.55).contains(&mean), "{mean}");
    }

    #[test]
    fn fork_is_deterministic_and_independent() {
        let mut a = Rng::new(9);
        let mut b = Rng::new(9);
        let mut fa = a.fork();
        let mut fb = b.fork();
        assert_eq!(fa.next_u64(), fb.next_u64());
        assert_eq!(a.next_u64(), b.next_u64());
        assert_ne!(fa, a);
    }

    #[test]
    fn shuffle_is_a_deterministic_permutation() {
        let mut a = Rng::new(11);
        let mut v: Vec<u32> = (0..50).collect();
        a.shuffle(&mut v);
        let mut sorted = v.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
        assert_ne!(v, sorted);
        let mut b = Rng::new(11);
        let mut w: Vec<u32> = (0..50).collect();
        b.shuffle(&mut w);
        assert_eq!(v, w);
        let mut empty: [u8; 0] = [];
        a.shuffle(&mut empty);
    }

    #[test]
    fn shuffle_reaches_every_permutation_of_three() {
        let mut r = Rng::new(5);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..600 {
            let mut v = [1, 2, 3];
            r.shuffle(&mut v);
            seen.insert(v);
        }
        assert_eq!(seen.len(), 6);
    }
}
