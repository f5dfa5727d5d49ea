//! Issue 17, section 3: a full outage costs the recovering cluster little.
//! While every member is down, connection attempts per endpoint stay
//! bounded (at most one in flight, at most 10 a second) whatever the number
//! of waiting calls, and a member that comes back is still used within
//! 0.2 s.
//!
//! Before the fix each waiting call's retry reopened every endpoint: 31
//! connects/s with 1 waiting call, 1,222/s with 100, 2,018/s with 1,000
//! (30,615/s when refusal was instant).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use etcdv3_core::endpoints::endpoint::Endpoint;
use etcdv3_core::machine::{Action, CallId, Config, ConnId, Core, EndpointId};
use etcdv3_proto::method::{KV_PUT, KV_RANGE};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn eps(n: usize) -> Vec<Endpoint> {
    (1..=n)
        .map(|i| Endpoint::parse(&format!("127.0.0.{i}:2379")).unwrap())
        .collect()
}

fn cfg() -> Config {
    Config {
        probe_interval: None,
        ..Config::default()
    }
}

/// How the members behave while they are down.
#[derive(Clone, Copy, Debug)]
enum Down {
    /// The connection is refused after this long.
    RefusedAfter(Duration),
    /// The connection is refused at once: the adapter reports the failure
    /// while it drains the `Connect`.
    RefusedInstantly,
}

/// What a run saw.
#[derive(Debug, Default)]
struct Seen {
    /// Connection attempt start times, per endpoint.
    connects: BTreeMap<EndpointId, Vec<Instant>>,
    /// Most attempts in flight to one endpoint at once.
    max_in_flight: usize,
    /// When each call was first sent.
    sent: HashMap<CallId, Instant>,
}

impl Seen {
    fn total(&self) -> usize {
        self.connects.values().map(Vec::len).sum()
    }

    /// Most attempts to one endpoint within any window of `w`.
    fn max_in_window(&self, w: Duration) -> usize {
        let mut best = 0;
        for times in self.connects.values() {
            let mut lo = 0;
            for hi in 0..times.len() {
                while times[hi] - times[lo] >= w {
                    lo += 1;
                }
                best = best.max(hi - lo + 1);
            }
        }
        best
    }
}

/// Run `core` from `t0` to `end`: every member refuses connections until
/// `back_at` (as `down` says), then accepts them after 2 ms. Calls sent
/// are recorded, never answered.
fn run(core: &mut Core, t0: Instant, end: Instant, back_at: Instant, down: Down) -> Seen {
    let mut seen = Seen::default();
    let mut in_flight: HashMap<ConnId, EndpointId> = HashMap::new();
    // Pending adapter answers: (when, conn, connected?).
    let mut pending: Vec<(Instant, ConnId, bool)> = Vec::new();
    let mut now = t0;
    loop {
        // Drain, answering instant refusals inline.
        while let Some(a) = core.poll_action() {
            match a {
                Action::Connect { conn, endpoint, .. } => {
                    seen.connects.entry(endpoint).or_default().push(now);
                    in_flight.insert(conn, endpoint);
                    let n = in_flight.values().filter(|e| **e == endpoint).count();
                    seen.max_in_flight = seen.max_in_flight.max(n);
                    if now >= back_at {
                        pending.push((now + ms(2), conn, true));
                    } else {
                        match down {
                            Down::RefusedAfter(d) => pending.push((now + d, conn, false)),
                            Down::RefusedInstantly => {
                                in_flight.remove(&conn);
                                core.handle_connect_failed(now, conn, "connection refused");
                            }
                        }
                    }
                }
                Action::Send { call, .. } => {
                    seen.sent.entry(call).or_insert(now);
                }
                Action::Close { conn } => {
                    in_flight.remove(&conn);
                }
                _ => {}
            }
        }
        let next_io = pending.iter().map(|p| p.0).min();
        let Some(next) = [next_io, core.poll_timeout()].into_iter().flatten().min() else {
            break;
        };
        if next > end {
            break;
        }
        now = next.max(now);
        if let Some(i) = pending.iter().position(|p| p.0 <= now) {
            let (_, conn, ok) = pending.swap_remove(i);
            in_flight.remove(&conn);
            if ok {
                core.handle_connected(now, conn);
            } else {
                core.handle_connect_failed(now, conn, "connection refused");
            }
        } else {
            core.handle_timeout(now);
        }
    }
    seen
}

/// `waiting` calls wait out a 10 s full outage of 3 members.
fn outage(waiting: usize, down: Down) -> (Seen, Vec<CallId>, Instant) {
    let t0 = Instant::now();
    let mut core = Core::new(cfg(), eps(3), 7);
    let calls: Vec<CallId> = (0..waiting)
        .map(|i| {
            let m = if i % 2 == 0 { KV_PUT } else { KV_RANGE };
            core.start_call(t0, m, Some(t0 + Duration::from_secs(60)))
        })
        .collect();
    let back_at = t0 + Duration::from_secs(10);
    let seen = run(&mut core, t0, back_at + ms(500), back_at, down);
    (seen, calls, back_at)
}

fn check_bounded(waiting: usize, down: Down) {
    let (seen, calls, back_at) = outage(waiting, down);
    let outage_secs = 10.0;
    let during: usize = seen
        .connects
        .values()
        .map(|v| v.iter().filter(|t| **t < back_at).count())
        .sum();
    let rate = during as f64 / outage_secs;
    eprintln!(
        "{waiting} waiting call(s), {down:?}: {during} connection attempts in 10 s ({rate:.1}/s, \
         {} total); at most {} per endpoint in any second; at most {} in flight per endpoint",
        seen.total(),
        seen.max_in_window(Duration::from_secs(1)),
        seen.max_in_flight,
    );
    assert_eq!(
        seen.max_in_flight, 1,
        "more than one connection attempt in flight to one endpoint"
    );
    assert!(
        seen.max_in_window(Duration::from_secs(1)) <= 10,
        "{} connection attempts to one endpoint within a second ({waiting} waiting calls)",
        seen.max_in_window(Duration::from_secs(1))
    );
    assert!(
        rate <= 30.0,
        "{rate:.1} connection attempts/s to 3 members ({waiting} waiting calls)"
    );
    // The members were tried all along: each at least 4 times a second.
    for (ep, times) in &seen.connects {
        let n = times.iter().filter(|t| **t < back_at).count();
        assert!(n >= 40, "{ep:?} tried only {n} times in 10 s");
    }
    // Once back, every waiting call is sent within 0.2 s.
    for call in calls {
        let sent = seen.sent.get(&call).copied();
        assert!(
            sent.is_some_and(|t| t - back_at <= ms(200)),
            "call {call:?} sent {:?} after the members came back",
            sent.map(|t| t - back_at)
        );
    }
}

#[test]
fn one_waiting_call_makes_a_bounded_number_of_connection_attempts() {
    check_bounded(1, Down::RefusedAfter(ms(1)));
}

#[test]
fn a_hundred_waiting_calls_make_no_more_connection_attempts_than_one() {
    check_bounded(100, Down::RefusedAfter(ms(1)));
}

#[test]
fn a_thousand_waiting_calls_make_no_more_connection_attempts_than_one() {
    check_bounded(1000, Down::RefusedAfter(ms(1)));
}

#[test]
fn instant_refusals_are_bounded_too() {
    check_bounded(1, Down::RefusedInstantly);
    check_bounded(1000, Down::RefusedInstantly);
}

/// A member that hangs on connect holds its one attempt until the connect
/// timeout; the others keep being tried at their own spacing.
#[test]
fn a_hung_connect_is_the_only_attempt_to_its_member() {
    let t0 = Instant::now();
    let mut core = Core::new(cfg(), eps(2), 3);
    for _ in 0..50 {
        core.start_call(t0, KV_RANGE, Some(t0 + Duration::from_secs(30)));
    }
    let end = t0 + Duration::from_secs(6);
    let mut now = t0;
    let mut connects: BTreeMap<EndpointId, Vec<Instant>> = BTreeMap::new();
    let mut open: HashMap<ConnId, EndpointId> = HashMap::new();
    let mut refuse: Vec<(Instant, ConnId)> = Vec::new();
    loop {
        while let Some(a) = core.poll_action() {
            if let Action::Connect { conn, endpoint, .. } = a {
                assert!(
                    !open.values().any(|e| *e == endpoint),
                    "second attempt to {endpoint:?} while one is in flight"
                );
                open.insert(conn, endpoint);
                connects.entry(endpoint).or_default().push(now);
                // Endpoint 0 hangs (the core times it out); 1 refuses.
                if endpoint == EndpointId(1) {
                    refuse.push((now + ms(1), conn));
                }
            }
            if let Action::Close { conn } = a {
                open.remove(&conn);
            }
        }
        let next = [refuse.iter().map(|r| r.0).min(), core.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        let Some(next) = next.filter(|t| *t <= end) else {
            break;
        };
        now = next.max(now);
        if let Some(i) = refuse.iter().position(|r| r.0 <= now) {
            let (_, conn) = refuse.swap_remove(i);
            open.remove(&conn);
            core.handle_connect_failed(now, conn, "connection refused");
        } else {
            core.handle_timeout(now);
            // A timed-out connect is closed by the core (Action::Close).
        }
    }
    let hung = connects.get(&EndpointId(0)).map_or(0, Vec::len);
    let refusing = connects.get(&EndpointId(1)).map_or(0, Vec::len);
    eprintln!("hung member: {hung} attempts in 6 s; refusing member: {refusing}");
    // 2 s connect timeout, then the spacing: 3 attempts in 6 s.
    assert!(hung <= 3, "{hung} attempts to the hung member in 6 s");
    assert!(
        (20..=60).contains(&refusing),
        "{refusing} attempts to the refusing member in 6 s"
    );
}
