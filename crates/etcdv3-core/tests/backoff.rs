//! Tests of the clock-free backoff.

use std::time::Duration;

use etcdv3_core::util::backoff::{Backoff, BackoffConfig};
use etcdv3_core::util::rng::Rng;
use proptest::prelude::*;

#[test]
fn reset_returns_to_initial() {
    let mut b = Backoff::new(BackoffConfig::default());
    let mut rng = Rng::new(1);
    for _ in 0..5 {
        b.next_delay(&mut rng);
    }
    assert_eq!(b.attempts(), 5);
    assert_eq!(b.current_interval(), Duration::from_millis(800));
    b.reset();
    assert_eq!(b.attempts(), 0);
    assert_eq!(b.current_interval(), Duration::from_millis(25));
    let d = b.next_delay(&mut rng);
    assert!(
        d >= Duration::from_micros(12_500) && d <= Duration::from_millis(25),
        "{d:?}"
    );
}

#[test]
fn same_seed_same_delays() {
    let run = |seed| {
        let mut b = Backoff::new(BackoffConfig::default());
        let mut rng = Rng::new(seed);
        (0..20).map(|_| b.next_delay(&mut rng)).collect::<Vec<_>>()
    };
    assert_eq!(run(5), run(5));
    assert_ne!(run(5), run(6));
}

#[test]
fn jitter_actually_varies_delays() {
    let mut rng = Rng::new(2);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..50 {
        let mut b = Backoff::new(BackoffConfig::default());
        seen.insert(b.next_delay(&mut rng));
    }
    assert!(seen.len() > 40, "only {} distinct delays", seen.len());
}

#[test]
fn no_overflow_for_huge_attempt_counts() {
    let config = BackoffConfig {
        initial: Duration::from_secs(1),
        max: Duration::MAX,
        multiplier: u32::MAX,
        jitter: 1.0,
    };
    let mut b = Backoff::new(config);
    let mut rng = Rng::new(3);
    for _ in 0..100 {
        let d = b.next_delay(&mut rng);
        assert!(d <= Duration::MAX);
    }
    assert_eq!(b.current_interval(), Duration::MAX);

    let mut b = Backoff::new(BackoffConfig::default());
    for _ in 0..1_000_000 {
        b.next_delay(&mut rng);
    }
    assert_eq!(b.current_interval(), Duration::from_secs(1));
    assert_eq!(b.attempts(), 1_000_000);
}

#[test]
fn degenerate_configs() {
    let mut rng = Rng::new(4);
    // initial above max: capped at max.
    let mut b = Backoff::new(BackoffConfig {
        initial: Duration::from_secs(10),
        max: Duration::from_secs(1),
        multiplier: 2,
        jitter: 0.0,
    });
    assert_eq!(b.next_delay(&mut rng), Duration::from_secs(1));
    // multiplier 0 behaves as 1; NaN jitter as 0.
    let mut b = Backoff::new(BackoffConfig {
        initial: Duration::from_millis(5),
        max: Duration::from_secs(1),
        multiplier: 0,
        jitter: f64::NAN,
    });
    assert_eq!(b.next_delay(&mut rng), Duration::from_millis(5));
    assert_eq!(b.next_delay(&mut rng), Duration::from_millis(5));
    // Zero initial gives zero delays.
    let mut b = Backoff::new(BackoffConfig {
        initial: Duration::ZERO,
        ..BackoffConfig::default()
    });
    assert_eq!(b.next_delay(&mut rng), Duration::ZERO);
}

fn config_strategy() -> impl Strategy<Value = BackoffConfig> {
    (
        0u64..5_000_000_000,
        0u64..100_000_000_000,
        0u32..10,
        -0.5f64..1.5,
    )
        .prop_map(|(initial, max, multiplier, jitter)| BackoffConfig {
            initial: Duration::from_nanos(initial),
            max: Duration::from_nanos(max),
            multiplier,
            jitter,
        })
}

proptest! {
    #[test]
    fn delays_within_documented_bounds(config in config_strategy(), seed in any::<u64>(), n in 1usize..80) {
        let mut b = Backoff::new(config.clone());
        let mut rng = Rng::new(seed);
        let (min, max) = (config.min_delay(), config.max_delay());
        let j = config.jitter.clamp(0.0, 1.0);
        let mut prev_interval = Duration::ZERO;
        for _ in 0..n {
            let interval = b.current_interval();
            prop_assert!(interval >= prev_interval, "interval shrank");
            prop_assert!(interval <= config.max);
            prev_interval = interval;
            let (lo, hi) = b.delay_bounds();
            let d = b.next_delay(&mut rng);
            prop_assert!(lo <= d && d <= hi, "{:?} not in [{:?}, {:?}]", d, lo, hi);
            prop_assert!(min <= d && d <= max, "{:?} not in [{:?}, {:?}]", d, min, max);
            prop_assert_eq!(hi, interval);
            // Independent check of the jitter bound (1 ns slack for quantisation).
            let floor = interval.as_secs_f64() * (1.0 - j) - 1e-9;
            prop_assert!(d.as_secs_f64() >= floor - 1e-9 * interval.as_secs_f64(), "{:?} below {}", d, floor);
        }
    }

    #[test]
    fn interval_follows_geometric_growth(initial_ms in 1u64..100, mult in 1u32..5, steps in 0u32..20) {
        let config = BackoffConfig {
            initial: Duration::from_millis(initial_ms),
            max: Duration::from_secs(60),
            multiplier: mult,
            jitter: 0.5,
        };
        let mut b = Backoff::new(config);
        let mut rng = Rng::new(0);
        for _ in 0..steps {
            b.next_delay(&mut rng);
        }
        let expected = (u128::from(initial_ms) * u128::from(mult).pow(steps)).min(60_000);
        prop_assert_eq!(b.current_interval().as_millis(), expected);
    }
}
