//! Issue 17, section 4: waiting costs the cluster nothing. A `Lock` or
//! `Campaign` call waiting for its turn on a live member causes no status
//! probe (no RPC) and no Suspect transition; its connection gets keepalive
//! pings at etcd's allowed spacing, which still find a member that hangs.
//!
//! Before the fix one waiting Lock caused 30 pings, 30 Suspect transitions
//! and 31 Status probes in 60 s.

use std::time::{Duration, Instant};

use etcdv3_core::endpoints::endpoint::Endpoint;
use etcdv3_core::endpoints::health::HealthState;
use etcdv3_core::machine::{
    Action, CallError, CallId, Config, ConnId, Core, Event, MemberStatus, Outcome,
    MIN_PING_INTERVAL,
};
use etcdv3_proto::method::{Method, ELECTION_CAMPAIGN, KV_PUT, LOCK_LOCK};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn eps(n: usize) -> Vec<Endpoint> {
    (1..=n)
        .map(|i| Endpoint::parse(&format!("127.0.0.{i}:2379")).unwrap())
        .collect()
}

#[derive(Debug, Default)]
struct Cost {
    pings: Vec<Instant>,
    probes: usize,
    suspects: usize,
    completed: Vec<(CallId, Result<(), CallError>)>,
    closed: Vec<ConnId>,
}

/// Drive `core` from `from` to `to`: pings and probes are answered at once
/// unless `hung(now)`; nothing else is answered.
fn run(
    core: &mut Core,
    from: Instant,
    to: Instant,
    hung: impl Fn(Instant) -> bool,
    cost: &mut Cost,
) {
    let mut now = from;
    let mut sent: Vec<(CallId, u32, ConnId)> = Vec::new();
    loop {
        while let Some(a) = core.poll_action() {
            match a {
                Action::Send {
                    call,
                    attempt,
                    conn,
                } => sent.push((call, attempt, conn)),
                Action::Ping { conn } => {
                    cost.pings.push(now);
                    if !hung(now) {
                        core.handle_pong(now, conn);
                    }
                }
                Action::Probe { conn, .. } => {
                    cost.probes += 1;
                    if !hung(now) {
                        let st = MemberStatus {
                            member_id: 1,
                            leader: 1,
                            raft_term: 2,
                            revision: 3,
                        };
                        core.handle_probe_result(now, conn, Ok(st));
                    }
                }
                Action::Complete { call, result } => cost.completed.push((call, result)),
                Action::Close { conn } => {
                    cost.closed.push(conn);
                    // The adapter reports the attempts the connection took
                    // with it.
                    for (call, attempt, _) in sent.iter().filter(|s| s.2 == conn) {
                        core.handle_outcome(now, *call, *attempt, Outcome::Lost("closed".into()));
                    }
                    sent.retain(|s| s.2 != conn);
                }
                Action::Connect { conn, .. } => core.handle_connected(now, conn),
                _ => {}
            }
        }
        while let Some(e) = core.poll_event() {
            if let Event::HealthChanged {
                state: HealthState::Suspect,
                ..
            } = e
            {
                cost.suspects += 1;
            }
        }
        let Some(t) = core.poll_timeout().filter(|t| *t <= to) else {
            break;
        };
        now = t.max(now);
        core.handle_timeout(now);
    }
}

/// A client that put once (its connection is up), then waits with
/// `method` on a member that answers pings and probes.
fn waiting(method: Method) -> (Core, Instant, CallId, ConnId) {
    let t0 = Instant::now();
    let mut core = Core::new(Config::default(), eps(3), 1);
    let put = core.start_call(t0, KV_PUT, Some(t0 + ms(5000)));
    let mut conn = None;
    let mut attempt = 0;
    while let Some(a) = core.poll_action() {
        match a {
            Action::Connect { conn, .. } => core.handle_connected(t0, conn),
            Action::Send {
                attempt: a,
                conn: c,
                ..
            } => {
                attempt = a;
                conn = Some(c);
            }
            _ => {}
        }
    }
    let conn = conn.expect("the put is sent");
    core.handle_outcome(t0 + ms(2), put, attempt, Outcome::Success(None));
    // Let the start settle (a probe round while the put was in flight).
    let mut cost = Cost::default();
    let t1 = t0 + ms(20);
    run(&mut core, t0 + ms(2), t1, |_| false, &mut cost);
    let lock = core.start_call(t1, method, Some(t1 + Duration::from_secs(600)));
    (core, t1, lock, conn)
}

fn check_quiet(method: Method) {
    let (mut core, t1, lock, _) = waiting(method);
    let mut cost = Cost::default();
    let end = t1 + Duration::from_secs(60);
    run(&mut core, t1, end, |_| false, &mut cost);
    eprintln!(
        "{}: in 60 s {} pings, {} Suspect transitions, {} status probes",
        method.path,
        cost.pings.len(),
        cost.suspects,
        cost.probes
    );
    assert_eq!(cost.probes, 0, "status probes caused by a waiting call");
    assert_eq!(cost.suspects, 0, "Suspect transitions of a live member");
    assert!(
        cost.pings.len() <= 8,
        "{} pings in 60 s for one waiting call",
        cost.pings.len()
    );
    // etcd's ping policy: after the first one, pings at least 5 s apart.
    for w in cost.pings.windows(2).skip(1) {
        assert!(
            w[1] - w[0] >= MIN_PING_INTERVAL,
            "pings {:?} apart",
            w[1] - w[0]
        );
    }
    assert!(
        cost.completed.is_empty(),
        "the waiting call ended: {:?}",
        cost.completed
    );
    assert_eq!(core.call_endpoint(lock), core.call_endpoint(lock));
}

#[test]
fn a_waiting_lock_costs_no_probe_and_no_suspicion() {
    check_quiet(LOCK_LOCK);
}

#[test]
fn a_waiting_campaign_costs_no_probe_and_no_suspicion() {
    check_quiet(ELECTION_CAMPAIGN);
}

/// The member holding a waiting Lock hangs after the Lock was verified:
/// the keepalive ping finds it (within the keepalive interval and the ping
/// timeout) and the Lock ends as outcome unknown.
#[test]
fn a_member_that_hangs_under_a_waiting_lock_is_still_found() {
    let (mut core, t1, lock, conn) = waiting(LOCK_LOCK);
    let mut cost = Cost::default();
    let hang_at = t1 + Duration::from_secs(20);
    run(
        &mut core,
        t1,
        t1 + Duration::from_secs(40),
        |now| now >= hang_at,
        &mut cost,
    );
    let config = Config::default();
    assert!(
        cost.closed.contains(&conn),
        "the hung connection was not closed"
    );
    let (_, result) = cost
        .completed
        .iter()
        .find(|(c, _)| *c == lock)
        .expect("the lock ended");
    assert!(
        matches!(result, Err(CallError::OutcomeUnknown { .. })),
        "{result:?}"
    );
    let found = cost.pings.iter().find(|p| **p >= hang_at).copied().unwrap();
    let took = found + config.ping_timeout - hang_at;
    eprintln!("a member hung under a waiting lock found after {took:?}");
    assert!(
        took <= config.keepalive_interval + config.ping_timeout,
        "found after {took:?}"
    );
}

/// A Lock sent to a member that is already hung is found as fast as any
/// call: one liveness ping after the stall timeout.
#[test]
fn a_lock_sent_to_a_hung_member_is_found_at_once() {
    let (mut core, t1, lock, _) = waiting(LOCK_LOCK);
    let mut cost = Cost::default();
    run(
        &mut core,
        t1,
        t1 + Duration::from_secs(5),
        |_| true,
        &mut cost,
    );
    let config = Config::default();
    let first = cost.pings.first().copied().expect("a liveness ping");
    assert!(
        first - t1 <= config.stall_timeout + ms(10),
        "pinged after {:?}",
        first - t1
    );
    assert!(
        cost.completed.iter().any(|(c, _)| *c == lock),
        "the lock on a hung member did not end in 5 s"
    );
}

/// Issue 17, section 4: bytes arriving for a unary call prove the member
/// alive. A 30 MB range on a slow link arrives over seconds, and a PING
/// sent meanwhile is answered only once the data queued before its PONG
/// has drained: the connection must not be closed as silent, the read not
/// re-sent.
#[test]
fn bytes_of_a_large_answer_prove_the_member_alive() {
    use etcdv3_proto::method::KV_RANGE;
    let t0 = Instant::now();
    let mut core = Core::new(Config::default(), eps(3), 1);
    let read = core.start_call(t0, KV_RANGE, Some(t0 + Duration::from_secs(60)));
    let mut send = None;
    while let Some(a) = core.poll_action() {
        match a {
            Action::Connect { conn, .. } => core.handle_connected(t0, conn),
            Action::Send { attempt, conn, .. } => send = Some((attempt, conn)),
            _ => {}
        }
    }
    let (attempt, conn) = send.expect("the read is sent");
    // The answer takes 8 s: the first bytes arrive after 700 ms (the
    // member worked on the range first; a liveness PING went out at
    // 500 ms), then a chunk every 100 ms. PONGs are held until the whole
    // answer is through (queued behind it).
    let done_at = t0 + Duration::from_secs(8);
    let mut now = t0;
    let mut chunk_at = t0 + ms(700);
    let mut pings = Vec::new();
    let mut closed = false;
    let mut resent = false;
    while now < done_at {
        let next = core.poll_timeout().map_or(chunk_at, |t| t.min(chunk_at));
        now = next.max(now);
        if now >= chunk_at {
            core.handle_call_progress(now, read);
            chunk_at += ms(100);
        } else {
            core.handle_timeout(now);
        }
        while let Some(a) = core.poll_action() {
            match a {
                Action::Ping { conn } => pings.push((now, conn)),
                Action::Close { conn: c } if c == conn => closed = true,
                Action::Send { call, .. } if call == read => resent = true,
                _ => {}
            }
        }
    }
    assert!(
        !closed,
        "the connection was closed while the answer arrived"
    );
    assert!(!resent, "the read was re-sent while its answer arrived");
    for (_, c) in &pings {
        core.handle_pong(done_at, *c);
    }
    core.handle_outcome(done_at, read, attempt, Outcome::Success(None));
    let ok = std::iter::from_fn(|| core.poll_action())
        .any(|a| matches!(a, Action::Complete { call, result: Ok(()) } if call == read));
    assert!(ok, "the read completes with its answer");
    eprintln!("{} pings while a slow answer arrived", pings.len());
}

/// Keepalive pings of an idle stream are never closer than 5.5 s, even
/// with `keepalive_interval` set to etcd's 5 s minimum: a ping delayed on
/// the way would otherwise make the next one arrive early, and etcd's
/// server answers a third early ping with GOAWAY `too_many_pings`.
#[test]
fn keepalive_pings_keep_a_margin_over_etcds_ping_policy() {
    use etcdv3_proto::method::WATCH_WATCH;
    let t0 = Instant::now();
    let config = Config {
        keepalive_interval: Duration::from_secs(5),
        probe_interval: None,
        ..Config::default()
    };
    let mut core = Core::new(config, eps(1), 1);
    let w = core.start_call(t0, WATCH_WATCH, None);
    while let Some(a) = core.poll_action() {
        if let Action::Connect { conn, .. } = a {
            core.handle_connected(t0, conn);
        }
    }
    core.handle_stream_established(t0, w);
    let mut cost = Cost::default();
    run(
        &mut core,
        t0,
        t0 + Duration::from_secs(60),
        |_| false,
        &mut cost,
    );
    assert!(cost.pings.len() >= 9, "{} pings in 60 s", cost.pings.len());
    for p in cost.pings.windows(2) {
        assert!(
            p[1] - p[0] >= MIN_PING_INTERVAL + ms(500),
            "keepalive pings {:?} apart",
            p[1] - p[0]
        );
    }
}
