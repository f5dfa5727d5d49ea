//! The composed machine with long-lived streams, authentication and slow
//! calls: regression tests for issue 10 (each failed on the tree before it).

use std::time::{Duration, Instant};

use etcdv3_core::endpoints::endpoint::Endpoint;
use etcdv3_core::endpoints::health::HealthState;
use etcdv3_core::machine::{Action, CallError, CallId, Config, ConnId, Core, Outcome};
use etcdv3_core::wire::status::{Code, Status};
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

/// One endpoint, credentials configured.
fn auth_core() -> Core {
    let config = Config {
        authenticate: true,
        ..cfg()
    };
    Core::new(config, eps(1), 1)
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
    let mut core = auth_core();
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
    let mut core = auth_core();
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
    let mut core = auth_core();
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

/// Bug 2: maintenance of one member never moves to another member.
#[test]
fn defragment_is_never_moved_to_another_member() {
    use etcdv3_proto::method::MAINTENANCE_DEFRAGMENT;
    let t0 = Instant::now();
    let mut core = Core::new(cfg(), eps(3), 1);
    let d = core.start_call(t0, MAINTENANCE_DEFRAGMENT, Some(t0 + ms(60_000)));
    let actions = connect_pending(&mut core, t0);
    let (attempt, conn) = send_of(&actions, d).unwrap();
    let ep = core.conn_endpoint(conn).unwrap();
    // Silent for long (defragmenting) on a member that answers pings:
    // nothing moves.
    let mut now = t0;
    while now < t0 + ms(3000) {
        now += ms(10);
        if core.poll_timeout().is_some_and(|t| t <= now) {
            core.handle_timeout(now);
        }
        for a in drain(&mut core) {
            match a {
                Action::Ping { conn } => core.handle_pong(now + ms(1), conn),
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    // The connection breaks: the defragment may have run; it is not re-sent.
    core.handle_connection_closed(t0 + ms(3000), conn, "reset");
    core.handle_outcome(t0 + ms(3000), d, attempt, Outcome::Lost("reset".into()));
    let acts = drain(&mut core);
    assert!(
        acts.iter().all(|a| !matches!(a, Action::Send { .. })),
        "never re-sent: {acts:?}"
    );
    assert!(
        acts.iter().any(|a| matches!(a, Action::Complete { call, result: Err(e) } if *call == d && e.may_have_applied())),
        "{acts:?}"
    );
    // A call named to a member waits for that member only.
    let s = core.start_call_on(
        t0 + ms(3000),
        etcdv3_proto::method::MAINTENANCE_STATUS,
        Some(t0 + ms(8000)),
        ep,
    );
    let acts = drain(&mut core);
    for a in &acts {
        if let Action::Connect { endpoint, .. } = a {
            assert_eq!(*endpoint, ep, "{acts:?}");
        }
    }
    let _ = s;
}

/// Bug 5: any error on a mutation after it may have reached the server says
/// so.
#[test]
fn mutation_errors_after_send_may_have_applied() {
    let t0 = Instant::now();
    for status in [
        Status::new(Code::Unknown, "stream ended without grpc-status"),
        Status::new(Code::Cancelled, "context canceled"),
        Status::new(
            Code::Unknown,
            "etcdserver: request timed out, leader transfer took too long",
        ),
    ] {
        let mut core = Core::new(cfg(), eps(1), 1);
        let p = core.start_call(t0, KV_PUT, Some(t0 + ms(5000)));
        let actions = connect_pending(&mut core, t0);
        let (attempt, _) = send_of(&actions, p).unwrap();
        core.handle_outcome(t0, p, attempt, Outcome::Status(status.clone()));
        let acts = drain(&mut core);
        assert!(
            acts.iter().any(|a| matches!(a, Action::Complete { call, result: Err(e) } if *call == p && e.may_have_applied())),
            "{status:?}: {acts:?}"
        );
    }
    // A definite refusal stays definite.
    let mut core = Core::new(cfg(), eps(1), 1);
    let p = core.start_call(t0, KV_PUT, Some(t0 + ms(5000)));
    let actions = connect_pending(&mut core, t0);
    let (attempt, _) = send_of(&actions, p).unwrap();
    core.handle_outcome(
        t0,
        p,
        attempt,
        Outcome::Status(Status::new(
            Code::NotFound,
            "etcdserver: requested lease not found",
        )),
    );
    let acts = drain(&mut core);
    assert!(
        acts.iter().any(|a| matches!(a, Action::Complete { call, result: Err(e) } if *call == p && !e.may_have_applied())),
        "{acts:?}"
    );
}

/// Bug 12 (timers part): a finished call leaves no timer behind.
#[test]
fn finished_calls_leave_no_timers() {
    use etcdv3_proto::method::LOCK_LOCK;
    let t0 = Instant::now();
    let mut core = Core::new(cfg(), eps(1), 1);
    let year = Duration::from_secs(365 * 24 * 3600);
    let lock = core.start_call(t0, LOCK_LOCK, Some(t0 + year));
    let read = core.start_call(t0, KV_RANGE, Some(t0 + ms(5000)));
    let actions = connect_pending(&mut core, t0);
    let (ra, _) = send_of(&actions, read).unwrap();
    assert!(core.pending_timers() >= 2);
    core.handle_outcome(t0 + ms(5), read, ra, Outcome::Success(None));
    core.cancel_call(t0 + ms(6), lock);
    drain(&mut core);
    assert_eq!(core.calls_in_progress(), 0);
    assert_eq!(core.pending_timers(), 0, "timers of finished calls pruned");
}

/// Bug 9: the instant `poll_timeout` gives is one `handle_timeout` acts
/// on: handling it never leaves the same instant due again (no spinning),
/// e.g. an idle close while a probe is in flight.
#[test]
fn handle_timeout_at_poll_timeout_always_moves_on() {
    let t0 = Instant::now();
    let config = Config {
        probe_interval: Some(Duration::from_secs(2)),
        probe_timeout: Duration::from_millis(1500),
        probe_when_idle: true,
        idle_timeout: Duration::from_secs(3),
        ..Config::default()
    };
    let mut core = Core::new(config, eps(2), 1);
    let r = core.start_call(t0, KV_RANGE, Some(t0 + ms(5000)));
    let actions = connect_pending(&mut core, t0);
    let (a, _) = send_of(&actions, r).unwrap();
    core.handle_outcome(t0, r, a, Outcome::Success(None));
    drain(&mut core);
    let mut now = t0;
    let mut wakeups = 0;
    let mut probe_sent = None;
    let mut checked = false;
    while now < t0 + Duration::from_secs(20) {
        let Some(t) = core.poll_timeout() else { break };
        assert!(t >= now, "timer in the past");
        now = t;
        core.handle_timeout(now);
        wakeups += 1;
        // Probes are never answered (they time out), pings are.
        for a in drain(&mut core) {
            match a {
                Action::Probe { .. } => probe_sent = Some(now),
                Action::Ping { conn } => {
                    // A silent probe-only connection is checked before the
                    // probe times out.
                    checked |= probe_sent.is_some_and(|p| now - p < ms(1500));
                    core.handle_pong(now, conn);
                }
                _ => {}
            }
        }
        if let Some(next) = core.poll_timeout() {
            assert!(
                next > now,
                "timer due again at once: spin at {:?}",
                now - t0
            );
        }
    }
    assert!(wakeups < 100, "{wakeups} wake-ups in 20 s");
    assert!(checked, "a probe-only connection gets liveness checks");
}

/// Bug 14: after a full outage, a member that answers again is used within
/// about 0.2 s by calls that were waiting.
#[test]
fn after_a_full_outage_a_returning_member_is_used_at_once() {
    let t0 = Instant::now();
    let mut core = Core::new(cfg(), eps(3), 1);
    let p = core.start_call(t0, KV_PUT, Some(t0 + Duration::from_secs(60)));
    let mut now = t0;
    let back_at = t0 + Duration::from_secs(5);
    let mut sent_at = None;
    while now < t0 + Duration::from_secs(10) && sent_at.is_none() {
        for a in drain(&mut core) {
            match a {
                Action::Connect { conn, .. } if now < back_at => {
                    core.handle_connect_failed(now, conn, "connection refused")
                }
                Action::Connect { conn, .. } => core.handle_connected(now + ms(2), conn),
                Action::Send { call, .. } if call == p => sent_at = Some(now),
                _ => {}
            }
        }
        now += ms(5);
        if core.poll_timeout().is_some_and(|t| t <= now) {
            core.handle_timeout(now);
        }
    }
    let sent_at = sent_at.expect("the put goes out once members are back");
    assert!(
        sent_at - back_at <= ms(200),
        "sent {:?} after the members came back",
        sent_at - back_at
    );
}

/// A keep-alive stream held by a member that answers pings but not the
/// keep-alives (a follower forwarding them to a leader that hangs) counts
/// as stuck after one renewal interval; the core then suspects the member
/// and ends the stream, and the reopened one goes elsewhere.
#[test]
fn unanswered_keepalives_move_the_stream_to_another_member() {
    use etcdv3_core::streams::lease::LeaseKeeper;
    let t0 = Instant::now();
    let mut keeper = LeaseKeeper::new();
    keeper.keep(t0, 7, 6);
    assert!(keeper.poll_transmit(t0).is_some());
    assert!(!keeper.is_stuck(t0 + ms(1900)));
    assert_eq!(keeper.stuck_at(), Some(t0 + ms(2000)));
    assert!(keeper.is_stuck(t0 + ms(2000)));
    keeper.handle_stream_lost(t0 + ms(2000));
    assert!(
        !keeper.is_stuck(t0 + ms(5000)),
        "a new stream starts afresh"
    );

    let mut core = Core::new(cfg(), eps(2), 1);
    let k = core.start_call(t0, LEASE_KEEP_ALIVE, None);
    let actions = connect_pending(&mut core, t0);
    let (_, conn) = send_of(&actions, k).unwrap();
    let ep = core.conn_endpoint(conn).unwrap();
    core.handle_stream_established(t0, k);
    core.handle_stream_unanswered(t0 + ms(2000), k);
    let acts = drain(&mut core);
    assert!(
        acts.iter().any(|a| matches!(a, Action::Complete { call, result: Err(CallError::StreamEnded { .. }) } if *call == k)),
        "{acts:?}"
    );
    let k2 = core.start_call(t0 + ms(2000), LEASE_KEEP_ALIVE, None);
    let actions = connect_pending(&mut core, t0 + ms(2000));
    let (_, conn2) = send_of(&actions, k2).unwrap();
    assert_ne!(core.conn_endpoint(conn2), Some(ep));
}

/// Issue 13, item 5: an idle client (a watch open, nothing else) starts no
/// periodic RPC: no status probe in a minute; keepalive pings only, at
/// etcd's allowed spacing or wider.
#[test]
fn an_idle_watch_costs_the_cluster_no_rpc() {
    let t0 = Instant::now();
    let mut core = Core::new(Config::default(), eps(3), 1);
    let w = core.start_call(t0, WATCH_WATCH, None);
    let actions = connect_pending(&mut core, t0);
    send_of(&actions, w).unwrap();
    core.handle_stream_established(t0, w);
    core.handle_stream_sent(t0, w);
    core.handle_stream_progress(t0 + ms(5), w);
    // Whatever the first instants brought, count the next minute.
    let mut now = t0 + ms(5);
    let (mut probes, mut pings) = (0, 0);
    while now < t0 + Duration::from_secs(61) {
        let Some(t) = core.poll_timeout() else { break };
        now = t.max(now);
        core.handle_timeout(now);
        for a in drain(&mut core) {
            match a {
                Action::Probe { conn, .. } => {
                    probes += 1;
                    core.handle_probe_result(
                        now,
                        conn,
                        Ok(etcdv3_core::machine::MemberStatus {
                            member_id: 1,
                            leader: 1,
                            raft_term: 2,
                            revision: 3,
                        }),
                    );
                }
                Action::Ping { conn } => {
                    pings += 1;
                    core.handle_pong(now, conn);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert!(probes <= 1, "{probes} status probes in a minute while idle");
    assert!(pings <= 7, "{pings} pings in a minute");
    // A call in flight brings probes back.
    let r = core.start_call(now, KV_RANGE, Some(now + ms(10_000)));
    drain(&mut core);
    let mut seen = false;
    let end = now + ms(2500);
    while now < end && !seen {
        let Some(t) = core.poll_timeout() else { break };
        now = t;
        core.handle_timeout(now);
        seen = drain(&mut core)
            .iter()
            .any(|a| matches!(a, Action::Probe { .. }));
    }
    assert!(seen, "probes run while a call is in flight");
    let _ = r;
}

/// A member that restarted is at a new term; a mutation sent to it on the
/// new connection (which only came up once it served again) is not stuck
/// behind the old leader: the election news does not end it.
#[test]
fn a_put_to_a_restarted_member_is_not_ended_by_its_new_term() {
    use etcdv3_core::machine::MemberStatus;
    let t0 = Instant::now();
    let config = Config {
        probe_when_idle: true,
        ..Config::default()
    };
    let mut core = Core::new(config, eps(1), 1);
    let r = core.start_call(t0, KV_RANGE, Some(t0 + ms(5000)));
    let actions = connect_pending(&mut core, t0);
    let (a, conn) = send_of(&actions, r).unwrap();
    core.handle_outcome(t0, r, a, Outcome::Success(None));
    core.handle_timeout(t0);
    let view = |term| MemberStatus {
        member_id: 1,
        leader: 1,
        raft_term: term,
        revision: 5,
    };
    for act in drain(&mut core) {
        if let Action::Probe { conn, .. } = act {
            core.handle_probe_result(t0, conn, Ok(view(2)));
        }
    }
    // The member restarts: the connection breaks, a new one comes up.
    core.handle_connection_closed(t0 + ms(100), conn, "reset");
    let t1 = t0 + ms(1500);
    let p = core.start_call(t1, KV_PUT, Some(t1 + ms(5000)));
    let mut now = t1;
    let mut sent = None;
    for _ in 0..50 {
        for act in drain(&mut core) {
            match act {
                Action::Connect { conn, .. } => core.handle_connected(now, conn),
                Action::Send { call, .. } if call == p => sent = Some(now),
                Action::Probe { conn, .. } => core.handle_probe_result(now, conn, Ok(view(3))),
                Action::Complete { call, result } if call == p => {
                    panic!("the put ended: {result:?}")
                }
                _ => {}
            }
        }
        now += ms(20);
        if core.poll_timeout().is_some_and(|t| t <= now) {
            core.handle_timeout(now);
        }
    }
    assert!(sent.is_some(), "the put went out");
    assert_eq!(core.calls_in_progress(), 1, "the put still runs");
}
