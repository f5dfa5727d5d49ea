//! The composed machine with long-lived streams, authentication and slow
//! calls: regression tests for issue 10 (each failed on the tree before it).

use std::time::{Duration, Instant};

use etcdv3_core::endpoint::Endpoint;
use etcdv3_core::health::HealthState;
use etcdv3_core::machine::{Action, CallError, CallId, Config, ConnId, Core, Outcome};
use etcdv3_core::status::{Code, Status};
use etcdv3_proto::method::{AUTH_AUTHENTICATE, KV_PUT, KV_RANGE, LEASE_KEEP_ALIVE, WATCH_WATCH};

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

fn drain(core: &mut Core) -> Vec<Action> {
    std::iter::from_fn(|| core.poll_action()).collect()
}

/// Connect every `Connect` in `actions`; returns the actions that follow.
fn connect_all(core: &mut Core, now: Instant, actions: Vec<Action>) -> Vec<Action> {
    let mut out = Vec::new();
    for a in actions {
        if let Action::Connect { conn, .. } = a {
            core.handle_connected(now, conn);
            out.extend(drain(core));
        } else {
            out.push(a);
        }
    }
    out
}

fn connect_pending(core: &mut Core, now: Instant) -> Vec<Action> {
    let actions = drain(core);
    connect_all(core, now, actions)
}

fn send_of(actions: &[Action], call: CallId) -> Option<(u32, ConnId)> {
    actions.iter().find_map(|a| match a {
        Action::Send {
            call: c,
            attempt,
            conn,
        } if *c == call => Some((*attempt, *conn)),
        _ => None,
    })
}

/// Drive timers from `from` to `to` in `step`s, collecting actions.
fn run_until(core: &mut Core, from: Instant, to: Instant, step: Duration) -> Vec<Action> {
    let mut out = Vec::new();
    let mut now = from;
    while now <= to {
        if core.poll_timeout().is_some_and(|t| t <= now) {
            core.handle_timeout(now);
        }
        out.extend(drain(core));
        now += step;
    }
    out
}

#[test]
fn first_call_of_any_kind_waits_for_a_token_when_credentials_are_set() {
    let now = Instant::now();
    let mut core = Core::new(
        Config {
            authenticate: true,
            ..cfg()
        },
        eps(1),
        1,
    );
    let watch = core.start_call(now, WATCH_WATCH, None);
    let actions = drain(&mut core);
    assert!(
        actions.iter().any(|a| matches!(a, Action::Authenticate)),
        "a stream as first call must trigger authentication: {actions:?}"
    );
    assert!(send_of(&actions, watch).is_none(), "sent before the token");
    // The Authenticate call itself goes out at once.
    let auth = core.start_call(now, AUTH_AUTHENTICATE, Some(now + ms(1000)));
    let actions = connect_pending(&mut core, now);
    let (attempt, _) = send_of(&actions, auth).expect("authenticate is sent");
    core.handle_outcome(now, auth, attempt, Outcome::Success(None));
    core.handle_auth_result(now, Ok(()));
    assert_eq!(core.token_generation(), 1);
    let actions = drain(&mut core);
    assert!(
        send_of(&actions, watch).is_some(),
        "watch sent after the token"
    );
}

#[test]
fn late_rejection_of_a_replaced_token_starts_no_new_refresh() {
    let now = Instant::now();
    let mut core = Core::new(
        Config {
            authenticate: true,
            ..cfg()
        },
        eps(1),
        1,
    );
    core.handle_auth_result(now, Ok(()));
    let a = core.start_call(now, KV_RANGE, Some(now + ms(5000)));
    let b = core.start_call(now, KV_RANGE, Some(now + ms(5000)));
    let actions = connect_pending(&mut core, now);
    let (att_a, _) = send_of(&actions, a).unwrap();
    let (att_b, _) = send_of(&actions, b).unwrap();
    let invalid = || Status::new(Code::Unauthenticated, "etcdserver: invalid auth token");
    core.handle_outcome(now, a, att_a, Outcome::Status(invalid()));
    let actions = drain(&mut core);
    assert_eq!(
        actions
            .iter()
            .filter(|x| matches!(x, Action::Authenticate))
            .count(),
        1
    );
    core.handle_auth_result(now, Ok(()));
    let resent = drain(&mut core);
    assert!(send_of(&resent, a).is_some());
    // b was sent with the old token; its rejection arrives late.
    core.handle_outcome(now, b, att_b, Outcome::Status(invalid()));
    let actions = drain(&mut core);
    assert!(
        !actions.iter().any(|x| matches!(x, Action::Authenticate)),
        "no second refresh for a late rejection: {actions:?}"
    );
    assert!(
        send_of(&actions, b).is_some(),
        "b retried with the new token"
    );
}

#[test]
fn stream_auth_rejection_refreshes_once_per_generation() {
    let now = Instant::now();
    let mut core = Core::new(
        Config {
            authenticate: true,
            ..cfg()
        },
        eps(1),
        1,
    );
    core.handle_auth_result(now, Ok(()));
    let w = core.start_call(now, WATCH_WATCH, None);
    let actions = connect_pending(&mut core, now);
    send_of(&actions, w).unwrap();
    core.handle_stream_established(now, w);
    assert!(core.handle_auth_rejected(now, w));
    assert!(drain(&mut core)
        .iter()
        .any(|x| matches!(x, Action::Authenticate)));
    assert!(core.handle_auth_rejected(now, w));
    assert!(drain(&mut core).is_empty(), "one refresh at a time");
    let mut plain = Core::new(cfg(), eps(1), 1);
    let w = plain.start_call(now, WATCH_WATCH, None);
    assert!(!plain.handle_auth_rejected(now, w), "no credentials: final");
}

/// Bug 6: a connection carrying only a keepalive stream is checked as soon
/// as a keepalive goes unanswered, not by the 10 s keepalive ping.
#[test]
fn hung_member_holding_only_a_stream_is_found_in_about_1_3_s() {
    let t0 = Instant::now();
    let mut core = Core::new(cfg(), eps(2), 1);
    let k = core.start_call(t0, LEASE_KEEP_ALIVE, None);
    let actions = connect_pending(&mut core, t0);
    let (attempt, _) = send_of(&actions, k).unwrap();
    core.handle_stream_established(t0, k);
    let t1 = t0 + ms(3000);
    core.handle_stream_sent(t1, k);
    let actions = run_until(&mut core, t1, t1 + ms(2000), ms(10));
    let done = actions.iter().position(|a| {
        matches!(a, Action::Complete { call, result: Err(CallError::StreamEnded { .. }) } if *call == k)
    });
    assert!(
        done.is_some(),
        "the stream must end within 2 s of an unanswered keepalive: {actions:?}"
    );
    assert!(actions.iter().any(|a| matches!(a, Action::Ping { .. })));
    let _ = attempt;
}

#[test]
fn a_stream_that_is_answered_is_not_checked() {
    let t0 = Instant::now();
    let mut core = Core::new(cfg(), eps(1), 1);
    let k = core.start_call(t0, LEASE_KEEP_ALIVE, None);
    let actions = connect_pending(&mut core, t0);
    send_of(&actions, k).unwrap();
    core.handle_stream_established(t0, k);
    let mut now = t0;
    for _ in 0..20 {
        now += ms(1500);
        core.handle_stream_sent(now, k);
        let acts = run_until(&mut core, now, now + ms(100), ms(50));
        assert!(acts.is_empty(), "{acts:?}");
        core.handle_stream_progress(now + ms(100), k);
    }
}

#[test]
fn stream_refused_with_no_leader_demotes_the_member() {
    let now = Instant::now();
    let mut core = Core::new(cfg(), eps(2), 1);
    let w = core.start_call(now, WATCH_WATCH, None);
    let actions = connect_pending(&mut core, now);
    let (attempt, conn) = send_of(&actions, w).unwrap();
    core.handle_stream_established(now, w);
    let ep = core.conn_endpoint(conn).unwrap();
    core.handle_outcome(
        now,
        w,
        attempt,
        Outcome::Status(Status::new(Code::Unavailable, "etcdserver: no leader")),
    );
    let st = core
        .endpoint_states()
        .into_iter()
        .find(|s| s.id == ep)
        .unwrap();
    assert!(st.tier > 0, "demoted: {st:?}");
    let _ = HealthState::Up;
    // The reopened stream goes to the other member.
    let w2 = core.start_call(now, WATCH_WATCH, None);
    let actions = connect_pending(&mut core, now);
    let (_, conn2) = send_of(&actions, w2).unwrap();
    assert_ne!(core.conn_endpoint(conn2), Some(ep));
    let _ = KV_PUT;
}
