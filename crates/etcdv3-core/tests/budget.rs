//! The retry budget (`etcdv3_core::util::budget`, `Config::retry_budget`): unit
//! tests through the core, and properties of the budget alone (against a
//! reference model) and of the core (re-sends never exceed the budget, and
//! a call ends for want of budget only when it is spent).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use etcdv3_core::endpoints::endpoint::Endpoint;
use etcdv3_core::machine::{Action, CallError, CallId, Config, Core, Event, Outcome};
use etcdv3_core::util::budget::{RetryBudget, RetryBudgetConfig};
use etcdv3_core::wire::status::{Code, Status, REFUSED_STREAM_MESSAGE};
use etcdv3_proto::method::{Method, KV_PUT, KV_RANGE};
use proptest::prelude::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn eps(n: usize) -> Vec<Endpoint> {
    (1..=n)
        .map(|i| Endpoint::parse(&format!("127.0.0.{i}:2379")).unwrap())
        .collect()
}

fn budget(ratio: f64, min_per_second: u32) -> RetryBudgetConfig {
    RetryBudgetConfig {
        ratio,
        min_per_second,
        window: Duration::from_secs(10),
    }
}

fn core_with(budget: Option<RetryBudgetConfig>, endpoints: usize) -> Core {
    let config = Config {
        probe_interval: None,
        retry_budget: budget,
        ..Config::default()
    };
    Core::new(config, eps(endpoints), 7)
}

/// Runs a core whose connections all come up at once and whose pings are
/// answered; attempts are answered by the test.
struct Harness {
    core: Core,
    now: Instant,
    /// Sends not yet answered: call -> attempt.
    pending: HashMap<CallId, u32>,
    done: HashMap<CallId, Result<(), CallError>>,
    sends: Vec<(CallId, u32)>,
    events: Vec<Event>,
}

impl Harness {
    fn new(core: Core) -> Harness {
        Harness {
            core,
            now: Instant::now(),
            pending: HashMap::new(),
            done: HashMap::new(),
            sends: Vec::new(),
            events: Vec::new(),
        }
    }

    fn pump(&mut self) {
        while let Some(a) = self.core.poll_action() {
            match a {
                Action::Connect { conn, .. } => self.core.handle_connected(self.now, conn),
                Action::Ping { conn } => self.core.handle_pong(self.now, conn),
                Action::Send { call, attempt, .. } => {
                    self.pending.insert(call, attempt);
                    self.sends.push((call, attempt));
                }
                Action::Complete { call, result } => {
                    self.pending.remove(&call);
                    assert!(
                        self.done.insert(call, result).is_none(),
                        "{call:?} completed twice"
                    );
                }
                _ => {}
            }
        }
        self.events
            .extend(std::iter::from_fn(|| self.core.poll_event()));
    }

    fn start(&mut self, method: Method) -> CallId {
        let id = self
            .core
            .start_call(self.now, method, Some(self.now + Duration::from_secs(30)));
        self.pump();
        id
    }

    fn answer(&mut self, call: CallId, outcome: Outcome) {
        let attempt = self.pending.remove(&call).expect("an attempt in flight");
        self.core.handle_outcome(self.now, call, attempt, outcome);
        self.pump();
    }

    /// Advance the clock, firing every timer due on the way.
    fn advance(&mut self, by: Duration) {
        let until = self.now + by;
        while let Some(t) = self.core.poll_timeout().filter(|t| *t <= until) {
            self.now = self.now.max(t);
            self.core.handle_timeout(self.now);
            self.pump();
        }
        self.now = until;
    }

    /// Advance the clock to the next timer and fire it.
    fn run_to_next_timer(&mut self) {
        if let Some(t) = self.core.poll_timeout() {
            self.now = self.now.max(t);
            self.core.handle_timeout(self.now);
            self.pump();
        }
    }

    /// Answer `call`'s attempts with `outcome` until it ends or `limit`
    /// attempts were answered (retries wait their backoff).
    fn fail_until_done(&mut self, call: CallId, outcome: &Outcome, limit: usize) {
        let mut answered = 0;
        while answered < limit && !self.done.contains_key(&call) {
            if self.pending.contains_key(&call) {
                self.answer(call, outcome.clone());
                answered += 1;
            } else if self.core.poll_timeout().is_some() {
                self.run_to_next_timer();
            } else {
                return;
            }
        }
    }
}

fn busy() -> Outcome {
    Outcome::Status(Status::new(
        Code::ResourceExhausted,
        "etcdserver: too many requests",
    ))
}

#[test]
fn retries_stop_when_the_budget_is_spent_and_the_call_ends_with_its_last_error() {
    // Floor 10 per 10 s window, no share of traffic: ten re-sends in all.
    let mut h = Harness::new(core_with(Some(budget(0.0, 1)), 1));
    let call = h.start(KV_RANGE);
    h.fail_until_done(call, &busy(), 100);
    let attempts = h.sends.iter().filter(|(c, _)| *c == call).count();
    assert_eq!(attempts, 11, "first attempt + 10 re-sends");
    match &h.done[&call] {
        Err(CallError::RetryBudgetSpent {
            method,
            status: Some(s),
            cause,
            ..
        }) => {
            assert_eq!(*method, KV_RANGE.path);
            assert_eq!(s.message, "etcdserver: too many requests");
            assert!(cause.contains("too many requests"), "{cause}");
        }
        other => panic!("expected RetryBudgetSpent, got {other:?}"),
    }
    assert!(h
        .events
        .iter()
        .any(|e| matches!(e, Event::RetryBudgetSpent { call: c, .. } if *c == call)));
    // The budget is spent for the whole client: the next call that fails
    // is not retried either.
    let second = h.start(KV_RANGE);
    h.answer(second, Outcome::Lost("connection reset".into()));
    assert!(
        matches!(&h.done[&second], Err(CallError::RetryBudgetSpent { status: None, cause, .. }) if cause == "connection reset"),
        "{:?}",
        h.done[&second]
    );
    // Calls that need no retry are not affected.
    let third = h.start(KV_RANGE);
    h.answer(third, Outcome::Success(None));
    assert!(h.done[&third].is_ok());
}

#[test]
fn without_a_budget_retries_go_on_until_the_deadline() {
    let mut h = Harness::new(core_with(None, 1));
    let call = h.start(KV_RANGE);
    h.fail_until_done(call, &busy(), 60);
    assert!(!h.done.contains_key(&call));
    assert!(h.sends.len() > 11);
}

#[test]
fn first_attempts_earn_retries() {
    // 20 % of 50 first attempts = 10 re-sends, no floor.
    let mut h = Harness::new(core_with(Some(budget(0.2, 0)), 1));
    for _ in 0..50 {
        let c = h.start(KV_RANGE);
        h.answer(c, Outcome::Success(None));
    }
    let calls: Vec<CallId> = (0..20).map(|_| h.start(KV_RANGE)).collect();
    for c in &calls {
        h.answer(*c, Outcome::Lost("reset".into()));
    }
    while calls
        .iter()
        .any(|c| !h.done.contains_key(c) && !h.pending.contains_key(c))
    {
        h.run_to_next_timer();
    }
    // 70 first attempts by now: 14 re-sends allowed, 6 calls end.
    let spent = calls
        .iter()
        .filter(|c| matches!(h.done.get(c), Some(Err(CallError::RetryBudgetSpent { .. }))))
        .count();
    assert_eq!(spent, 6);
    assert_eq!(h.sends.len(), 50 + 20 + 14);
}

#[test]
fn requests_that_never_reached_a_member_are_re_sent_for_free() {
    let mut h = Harness::new(core_with(Some(budget(0.0, 0)), 2));
    let put = h.start(KV_PUT);
    h.fail_until_done(put, &Outcome::Refused(REFUSED_STREAM_MESSAGE.into()), 5);
    h.fail_until_done(put, &Outcome::NotSent("connection closed".into()), 5);
    assert!(!h.done.contains_key(&put), "still retrying");
    while !h.pending.contains_key(&put) {
        h.run_to_next_timer();
    }
    assert_eq!(h.sends.len(), 11);
    h.answer(put, Outcome::Success(None));
    assert!(h.done[&put].is_ok());
}

#[test]
fn no_leader_refusals_are_re_sent_for_free() {
    // During an election every member answers "no leader" at once (the
    // `hasleader` check) without doing any work: a busy client's calls must
    // ride the election out, not end for want of budget.
    let mut h = Harness::new(core_with(Some(budget(0.0, 0)), 2));
    let no_leader = Outcome::Status(Status::new(Code::Unavailable, "etcdserver: no leader"));
    let put = h.start(KV_PUT);
    h.fail_until_done(put, &no_leader, 8);
    assert!(!h.done.contains_key(&put), "ended: {:?}", h.done.get(&put));
    while !h.pending.contains_key(&put) {
        h.run_to_next_timer();
    }
    h.answer(put, Outcome::Success(None));
    assert!(h.done[&put].is_ok());
    assert_eq!(h.sends.len(), 9, "first attempt + 8 free re-sends");
    // Any other retryable answer is charged: with no budget it ends at once.
    let get = h.start(KV_RANGE);
    h.answer(get, busy());
    assert!(matches!(
        h.done[&get],
        Err(CallError::RetryBudgetSpent { .. })
    ));
}

#[test]
fn a_mutation_that_may_have_applied_is_still_outcome_unknown() {
    let mut h = Harness::new(core_with(Some(budget(0.0, 0)), 1));
    let put = h.start(KV_PUT);
    h.answer(put, Outcome::Lost("reset".into()));
    assert!(matches!(
        h.done[&put],
        Err(CallError::OutcomeUnknown { .. })
    ));
}

#[test]
fn a_spent_budget_refills_as_the_window_slides() {
    let mut h = Harness::new(core_with(Some(budget(0.0, 1)), 1));
    let call = h.start(KV_RANGE);
    h.fail_until_done(call, &busy(), 100);
    assert!(matches!(
        h.done[&call],
        Err(CallError::RetryBudgetSpent { .. })
    ));
    h.advance(Duration::from_secs(11));
    let next = h.start(KV_RANGE);
    h.answer(next, Outcome::Lost("reset".into()));
    assert!(!h.done.contains_key(&next), "to be re-sent");
    h.run_to_next_timer();
    h.answer(next, Outcome::Success(None));
    assert!(h.done[&next].is_ok());
}

#[test]
fn the_default_config_has_the_documented_budget() {
    let b = Config::default().retry_budget.expect("on by default");
    assert_eq!(b, budget(0.2, 10));
    assert_eq!(b.floor(), 100);
    assert_eq!(b.allowance(1000), 300);
}

// ------------------------------------------------------------- properties

/// The budget's decisions equal a plain model: a list of every deposit and
/// withdrawal with its slot, summed over the last ten slots.
fn model_allows(log: &[(u64, bool)], head: u64, config: &RetryBudgetConfig) -> bool {
    let in_window = |slot: u64| slot + 10 > head;
    let deposits = log.iter().filter(|(s, d)| *d && in_window(*s)).count() as u64;
    let withdrawals = log.iter().filter(|(s, d)| !*d && in_window(*s)).count() as u64;
    config.allowance(deposits) > withdrawals
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn budget_matches_its_model(
        ratio in prop_oneof![Just(0.0), Just(0.1), Just(0.2), Just(0.5), Just(1.0)],
        floor in 0u32..4,
        steps in proptest::collection::vec((0u64..2_500, any::<bool>()), 1..400),
    ) {
        let config = budget(ratio, floor);
        let mut b = RetryBudget::new(config.clone());
        let start = Instant::now();
        let mut t = start;
        let mut t0 = None;
        let mut log: Vec<(u64, bool)> = Vec::new();
        for (gap_ms, deposit) in steps {
            t += ms(gap_ms);
            // The budget's slots count from the first instant it is given.
            let slot = (t - *t0.get_or_insert(t)).as_millis() as u64 / 1000;
            if deposit {
                b.deposit(t);
                log.push((slot, true));
            } else {
                let allowed = model_allows(&log, slot, &config);
                prop_assert_eq!(b.try_withdraw(t), allowed);
                if allowed {
                    log.push((slot, false));
                }
            }
        }
    }

    /// Through the core, over runs shorter than 0.9 of the window (so
    /// nothing leaves it): paid re-sends never exceed the allowance of the
    /// first attempts made so far, and a call ends for want of budget only
    /// when the budget is exactly spent.
    #[test]
    fn core_re_sends_stay_within_the_budget(
        seed in any::<u64>(),
        ratio in prop_oneof![Just(0.0), Just(0.2), Just(0.5)],
        floor in 0u32..3,
        steps in proptest::collection::vec((0u8..4, 0u8..7, 0u64..40), 1..200),
    ) {
        let config = budget(ratio, floor);
        let core = Core::new(
            Config { probe_interval: None, retry_budget: Some(config.clone()), ..Config::default() },
            eps(3),
            seed,
        );
        let mut h = Harness::new(core);
        let start = h.now;
        let mut first = 0u64;
        let mut paid = 0u64;
        // The last outcome reported per call: whether it was free to re-send.
        let mut free: HashMap<CallId, bool> = HashMap::new();
        let mut checked_sends = 0;
        let mut checked_events = 0;
        let mut checked_done: Vec<CallId> = Vec::new();
        for (what, outcome, gap) in steps {
            if h.now + ms(gap) < start + Duration::from_millis(8_500) {
                h.advance(ms(gap));
            }
            match what {
                0 => { h.start(KV_RANGE); }
                1 => { h.start(KV_PUT); }
                _ => {
                    let mut pending: Vec<CallId> = h.pending.keys().copied().collect();
                    pending.sort();
                    if let Some(call) = pending.get(usize::from(outcome) % pending.len().max(1)).copied() {
                        let o = match outcome {
                            0 => Outcome::Success(None),
                            1 => Outcome::Lost("reset".into()),
                            2 => Outcome::NotSent("closed".into()),
                            3 => Outcome::Refused(REFUSED_STREAM_MESSAGE.into()),
                            4 => busy(),
                            5 => Outcome::Status(Status::new(Code::Unavailable, "etcdserver: no leader")),
                            _ => Outcome::Status(Status::new(Code::Unavailable, "etcdserver: request timed out")),
                        };
                        // Never reached a member, or a member without a
                        // leader refused it before doing any work.
                        free.insert(call, matches!(o, Outcome::NotSent(_) | Outcome::Refused(_)) || outcome == 5);
                        h.answer(call, o);
                    }
                }
            }
            // Account for this step: first attempts by their sends, paid
            // re-sends by the retries the core decided (charged then, sent
            // at once or after a backoff).
            for (_, attempt) in &h.sends[checked_sends..] {
                if *attempt == 1 {
                    first += 1;
                }
            }
            checked_sends = h.sends.len();
            for e in &h.events[checked_events..] {
                if let Event::Retry { call, .. } = e {
                    if !free.get(call).copied().unwrap_or(false) {
                        paid += 1;
                    }
                }
            }
            checked_events = h.events.len();
            prop_assert!(paid <= config.allowance(first), "paid {} first {}", paid, first);
            let mut ended: Vec<CallId> = h.done.keys().copied().filter(|c| !checked_done.contains(c)).collect();
            ended.sort();
            for call in ended {
                checked_done.push(call);
                if matches!(h.done[&call], Err(CallError::RetryBudgetSpent { .. })) {
                    prop_assert_eq!(paid, config.allowance(first), "ended with budget left");
                }
            }
        }
    }
}
