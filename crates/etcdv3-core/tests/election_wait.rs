//! Mutations wait out an election once the leader is seen to go, instead of
//! going to a follower that still forwards to the old leader (where they
//! would be lost and end "outcome unknown": the second unknown put of a
//! leader fault, issue 17 §9). See `ElectionWait` in `machine/cluster.rs`.

use std::time::{Duration, Instant};

use etcdv3_core::endpoints::endpoint::Endpoint;
use etcdv3_core::machine::{
    Action, CallError, CallId, Config, ConnId, Core, EndpointId, MemberStatus, Outcome,
};
use etcdv3_proto::method::{KV_PUT, KV_RANGE};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn eps(n: usize) -> Vec<Endpoint> {
    (1..=n)
        .map(|i| Endpoint::parse(&format!("127.0.0.{i}:2379")).unwrap())
        .collect()
}

fn drain(core: &mut Core) -> Vec<Action> {
    std::iter::from_fn(|| core.poll_action()).collect()
}

fn sends(actions: &[Action]) -> Vec<(CallId, u32, ConnId)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send {
                call,
                attempt,
                conn,
            } => Some((*call, *attempt, *conn)),
            _ => None,
        })
        .collect()
}

fn completes(actions: &[Action]) -> Vec<(CallId, Result<(), CallError>)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Complete { call, result } => Some((*call, result.clone())),
            _ => None,
        })
        .collect()
}

fn probes(actions: &[Action]) -> Vec<(EndpointId, ConnId)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Probe { endpoint, conn } => Some((*endpoint, *conn)),
            _ => None,
        })
        .collect()
}

/// A 3-member client (default configuration: adaptive policy, probes on)
/// connected to every member, whose probes said member 1 (endpoint 0)
/// leads at term 5. Returns the core, the time, and the connection of each
/// endpoint.
fn connected(t0: Instant) -> (Core, Instant, Vec<ConnId>) {
    let mut core = Core::new(Config::default(), eps(3), 7);
    let mut conns = Vec::new();
    let now = t0;
    for i in 0..3 {
        let call = core.start_call_on(now, KV_RANGE, Some(now + ms(5_000)), EndpointId(i));
        let mut actions = drain(&mut core);
        for a in actions.clone() {
            if let Action::Connect { conn, .. } = a {
                conns.push(conn);
                core.handle_connected(now, conn);
                actions.extend(drain(&mut core));
            }
        }
        let sent = sends(&actions);
        assert_eq!(sent.len(), 1);
        core.handle_outcome(now, call, sent[0].1, Outcome::Success(None));
        drain(&mut core);
    }
    assert_eq!(conns.len(), 3, "every endpoint connected");
    let mut now = now;
    // A put in flight makes probes wanted; answer the first round.
    let put = core.start_call(now, KV_PUT, Some(now + ms(5_000)));
    let sent = sends(&drain(&mut core));
    now = answer_probes(&mut core, now, &[(1, 5), (1, 5), (1, 5)]);
    for (c, attempt, _) in sent {
        core.handle_outcome(now, c, attempt, Outcome::Success(None));
    }
    assert!(matches!(completes(&drain(&mut core))[..], [(c, Ok(()))] if c == put));
    (core, now, conns)
}

/// Step time by 10 ms until a probe round goes out (at most `limit`), then
/// answer each probe of endpoint `i` with `views[i]` = (leader, term).
/// Returns the time of the answers.
fn answer_probes(core: &mut Core, mut now: Instant, views: &[(u64, u64)]) -> Instant {
    for _ in 0..1_000 {
        let p = probes(&drain(core));
        if !p.is_empty() {
            for (ep, conn) in p {
                let (leader, raft_term) = views[ep.0];
                let st = MemberStatus {
                    member_id: ep.0 as u64 + 1,
                    leader,
                    raft_term,
                    revision: 10,
                };
                core.handle_probe_result(now, conn, Ok(st));
            }
            return now;
        }
        now += ms(10);
        core.handle_timeout(now);
    }
    panic!("no probe round within 10 s");
}

/// Step time by 10 ms for `span`, answering probes with `views`; returns
/// the sends seen and the time reached.
fn run_for(
    core: &mut Core,
    mut now: Instant,
    span: Duration,
    views: &[(u64, u64)],
) -> (Vec<(CallId, u32, ConnId)>, Instant) {
    let end = now + span;
    let mut seen = Vec::new();
    while now < end {
        now += ms(10);
        core.handle_timeout(now);
        let actions = drain(core);
        seen.extend(sends(&actions));
        for (ep, conn) in probes(&actions) {
            let (leader, raft_term) = views[ep.0];
            let st = MemberStatus {
                member_id: ep.0 as u64 + 1,
                leader,
                raft_term,
                revision: 10,
            };
            core.handle_probe_result(now, conn, Ok(st));
            seen.extend(sends(&drain(core)));
        }
    }
    (seen, now)
}

#[test]
fn a_put_after_the_leader_stepped_down_waits_for_the_new_leader() {
    let (mut core, now, conns) = connected(Instant::now());
    // A put goes to the leader (endpoint 0); a slow answer wants probes.
    let first = core.start_call(now, KV_PUT, Some(now + ms(5_000)));
    let s = sends(&drain(&mut core));
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].2, conns[0], "a mutation goes to the leader");
    // The leader, cut off from its peers, steps down; the followers still
    // follow it (their election timeout has not run out).
    let now = answer_probes(&mut core, now, &[(0, 5), (1, 5), (1, 5)]);
    let done = completes(&drain(&mut core));
    assert!(
        matches!(done[..], [(c, Err(CallError::OutcomeUnknown { .. }))] if c == first),
        "{done:?}"
    );
    // The next put is not sent to a follower that forwards to the old
    // leader (before: sent at once to endpoint 1 or 2).
    let second = core.start_call(now, KV_PUT, Some(now + ms(5_000)));
    let (seen, now) = run_for(&mut core, now, ms(800), &[(0, 5), (1, 5), (1, 5)]);
    assert!(
        seen.iter().all(|(c, _, _)| *c != second),
        "sent while the followers still follow the old leader: {seen:?}"
    );
    // Endpoint 1 wins the election at term 6: the put goes to it within
    // one fast probe round.
    assert_sent_to_new_leader(&mut core, now, second, conns[1]);
}

/// Endpoint 1 wins the election at term 6 (the others' probes say so):
/// `call` is sent to it, once, within one fast probe round (150 ms).
fn assert_sent_to_new_leader(core: &mut Core, now: Instant, call: CallId, leader: ConnId) {
    let (seen, _) = run_for(core, now, ms(150), &[(0, 5), (2, 6), (2, 6)]);
    let to: Vec<ConnId> = seen
        .iter()
        .filter(|(c, _, _)| *c == call)
        .map(|s| s.2)
        .collect();
    assert_eq!(to, vec![leader], "the put goes to the new leader at once");
}

#[test]
fn the_wait_for_an_election_is_bounded() {
    let (mut core, now, _) = connected(Instant::now());
    let first = core.start_call(now, KV_PUT, Some(now + ms(9_000)));
    drain(&mut core);
    let now = answer_probes(&mut core, now, &[(0, 5), (1, 5), (1, 5)]);
    let _ = first;
    drain(&mut core);
    let second = core.start_call(now, KV_PUT, Some(now + ms(9_000)));
    let wait = Config::default().election_wait;
    let views = [(0, 5), (1, 5), (1, 5)];
    let (seen, now) = run_for(&mut core, now, wait - ms(50), &views);
    assert!(seen.iter().all(|(c, _, _)| *c != second), "{seen:?}");
    // No election ever comes: the put goes out at the end of the wait.
    let (seen, _) = run_for(&mut core, now, ms(100), &views);
    assert!(
        seen.iter().any(|(c, _, _)| *c == second),
        "the put went out once the wait ended: {seen:?}"
    );
}

#[test]
fn a_leader_whose_connection_broke_alone_takes_the_waiting_put_once_it_answers() {
    let (mut core, now, conns) = connected(Instant::now());
    // The leader's connection breaks (the member closed it); the client
    // cannot tell yet whether the member is gone.
    core.handle_connection_closed(now, conns[0], "connection reset by peer");
    drain(&mut core);
    let put = core.start_call(now, KV_PUT, Some(now + ms(5_000)));
    let start = now;
    let mut now = now;
    let mut reconnected = None;
    let mut sent_to = None;
    for _ in 0..200 {
        now += ms(10);
        core.handle_timeout(now);
        let actions = drain(&mut core);
        for a in &actions {
            if let Action::Connect { conn, endpoint, .. } = a {
                if endpoint.0 == 0 {
                    reconnected = Some(*conn);
                    core.handle_connected(now, *conn);
                }
            }
        }
        let mut actions = actions;
        actions.extend(drain(&mut core));
        for (c, _, conn) in sends(&actions) {
            if c == put {
                sent_to = Some(conn);
            }
        }
        for (ep, conn) in probes(&actions) {
            // Still the leader, at the same term, and the followers agree.
            let st = MemberStatus {
                member_id: ep.0 as u64 + 1,
                leader: 1,
                raft_term: 5,
                revision: 10,
            };
            core.handle_probe_result(now, conn, Ok(st));
            for (c, _, conn) in sends(&drain(&mut core)) {
                if c == put {
                    sent_to = Some(conn);
                }
            }
        }
        if sent_to.is_some() {
            break;
        }
    }
    let reconnected = reconnected.expect("the old leader is reconnected while the put waits");
    assert_eq!(
        sent_to,
        Some(reconnected),
        "the put goes to the leader that answered"
    );
    assert!(
        now.duration_since(start) < ms(1_000),
        "released within a second, not at the end of the wait: {:?}",
        now.duration_since(start)
    );
}

#[test]
fn a_put_stuck_on_a_leader_cut_off_from_its_peers_ends_soon_after_the_election() {
    let (mut core, now, conns) = connected(Instant::now());
    let put = core.start_call(now, KV_PUT, Some(now + ms(9_000)));
    let s = sends(&drain(&mut core));
    assert_eq!(s[0].2, conns[0], "the put goes to the leader");
    // The leader, cut off from its peers, keeps answering probes as leader
    // (it has not noticed yet) and never answers the put.
    let isolated = [(1, 5), (1, 5), (1, 5)];
    let (_, now) = run_for(&mut core, now, ms(1_200), &isolated);
    assert_eq!(core.calls_in_progress(), 1, "the put is still in flight");
    // The followers elect endpoint 1 at term 6.
    let elected_at = now;
    let after = [(1, 5), (2, 6), (2, 6)];
    let mut now = now;
    let mut ended = None;
    while now < elected_at + ms(1_000) {
        now += ms(10);
        core.handle_timeout(now);
        let actions = drain(&mut core);
        let mut done = completes(&actions);
        for (ep, conn) in probes(&actions) {
            let (leader, raft_term) = after[ep.0];
            let st = MemberStatus {
                member_id: ep.0 as u64 + 1,
                leader,
                raft_term,
                revision: 10,
            };
            core.handle_probe_result(now, conn, Ok(st));
            done.extend(completes(&drain(&mut core)));
        }
        if let Some((_, r)) = done.into_iter().find(|(c, _)| *c == put) {
            ended = Some((now, r));
            break;
        }
    }
    let (at, result) = ended.expect("the stuck put ends once the election is known");
    assert!(
        matches!(result, Err(CallError::OutcomeUnknown { .. })),
        "{result:?}"
    );
    // Probes run at the election cadence (100 ms) once the put is stuck
    // for two stall timeouts; before, every stall timeout (500 ms).
    assert!(
        at.duration_since(elected_at) <= ms(150),
        "ended {:?} after the election",
        at.duration_since(elected_at)
    );
}

/// What [`drive`] saw.
#[derive(Default, Debug)]
struct Seen {
    sends: Vec<(CallId, u32, ConnId)>,
    done: Vec<(CallId, Result<(), CallError>)>,
    checks: Vec<(EndpointId, ConnId)>,
}

/// Step time by 10 ms for `span`: probes of endpoint `i` are answered with
/// `probe(i)` (none: silent), leader checks with `check(i)` (none: no
/// answer yet), pings never (the members in these tests answer no ping:
/// the leader is silent, the others' connections are idle anyway).
fn drive(
    core: &mut Core,
    mut now: Instant,
    span: Duration,
    in_flight: &[(CallId, u32, ConnId)],
    probe: impl Fn(usize) -> Option<(u64, u64)>,
    check: impl Fn(usize) -> Option<bool>,
) -> (Seen, Instant) {
    let end = now + span;
    let mut seen = Seen::default();
    while now < end {
        now += ms(10);
        core.handle_timeout(now);
        let mut queue = drain(core);
        while !queue.is_empty() {
            let mut next = Vec::new();
            for a in queue {
                match a {
                    Action::Send {
                        call,
                        attempt,
                        conn,
                    } => seen.sends.push((call, attempt, conn)),
                    Action::Complete { call, result } => seen.done.push((call, result)),
                    Action::Probe { endpoint, conn } => {
                        if let Some((leader, raft_term)) = probe(endpoint.0) {
                            let st = MemberStatus {
                                member_id: endpoint.0 as u64 + 1,
                                leader,
                                raft_term,
                                revision: 10,
                            };
                            core.handle_probe_result(now, conn, Ok(st));
                        }
                    }
                    Action::CheckLeader { endpoint, conn } => {
                        seen.checks.push((endpoint, conn));
                        if let Some(reached) = check(endpoint.0) {
                            let r = if reached {
                                Ok(())
                            } else {
                                Err(etcdv3_core::wire::status::Status::new(
                                    etcdv3_core::wire::status::Code::Unavailable,
                                    "etcdserver: leader changed",
                                ))
                            };
                            core.handle_leader_check(now, conn, r);
                        }
                    }
                    Action::Ping { conn } if conn.0 != 1 => core.handle_pong(now, conn),
                    Action::Close { conn } => {
                        // The adapter reports the attempts on a closed
                        // connection as lost.
                        let lost: Vec<(CallId, u32)> = seen
                            .sends
                            .iter()
                            .filter(|s| s.2 == conn)
                            .map(|s| (s.0, s.1))
                            .chain(in_flight.iter().filter(|s| s.2 == conn).map(|s| (s.0, s.1)))
                            .collect();
                        for (call, attempt) in lost {
                            core.handle_outcome(now, call, attempt, Outcome::Lost("closed".into()));
                        }
                    }
                    _ => {}
                }
                next.extend(drain(core));
            }
            queue = next;
        }
    }
    (seen, now)
}

/// The leader (endpoint 0) goes silent with a put in flight; the client
/// closes the silent connection. Returns the core, the time it was closed
/// (the put ended "outcome unknown"), and the connections.
fn leader_goes_silent() -> (Core, Instant, Vec<ConnId>, Vec<(EndpointId, ConnId)>) {
    let (mut core, now, conns) = connected(Instant::now());
    assert_eq!(conns[0].0, 1, "drive() treats conn 1 as the leader's");
    let put = core.start_call(now, KV_PUT, Some(now + ms(9_000)));
    let s = sends(&drain(&mut core));
    assert_eq!(s[0].2, conns[0]);
    let views = |i: usize| (i != 0).then_some((1, 5));
    let mut now = now;
    let mut checks = Vec::new();
    for _ in 0..300 {
        let (seen, t) = drive(&mut core, now, ms(10), &s, views, |_| None);
        now = t;
        checks.extend(seen.checks);
        let ended = seen
            .done
            .iter()
            .any(|(c, r)| *c == put && matches!(r, Err(CallError::OutcomeUnknown { .. })));
        if ended {
            return (core, now, conns, checks);
        }
    }
    panic!("the put on the silent leader never ended");
}

#[test]
fn a_leader_cut_from_the_client_alone_is_proved_alive_by_a_follower_read() {
    let (mut core, now, conns, checks) = leader_goes_silent();
    assert_eq!(
        checks.iter().map(|c| c.0 .0).collect::<Vec<_>>(),
        vec![1, 2],
        "each follower is asked, not the silent leader"
    );
    // The next put waits while the checks are out...
    let put = core.start_call(now, KV_PUT, Some(now + ms(5_000)));
    let views = |i: usize| (i != 0).then_some((1, 5));
    let (seen, now) = drive(&mut core, now, ms(50), &[], views, |_| None);
    assert!(seen.sends.iter().all(|s| s.0 != put), "{seen:?}");
    // ...until a follower's linearizable read answers: only the client's
    // link to the leader was cut, the leader lives, the put goes through a
    // follower at once.
    core.handle_leader_check(now, checks[0].1, Ok(()));
    let mut seen = Seen::default();
    seen.sends.extend(sends(&drain(&mut core)));
    let to: Vec<ConnId> = seen
        .sends
        .iter()
        .filter(|s| s.0 == put)
        .map(|s| s.2)
        .collect();
    assert_eq!(to.len(), 1, "{seen:?}");
    assert!(to[0] == conns[1] || to[0] == conns[2], "{to:?}");
}

#[test]
fn a_paused_leader_makes_the_next_put_wait_for_the_election() {
    let (mut core, now, conns, _) = leader_goes_silent();
    // The leader is paused: the followers' reads wait (no answer), they
    // still follow it for a while.
    let put = core.start_call(now, KV_PUT, Some(now + ms(5_000)));
    let old = |i: usize| (i != 0).then_some((1, 5));
    let (seen, now) = drive(&mut core, now, ms(600), &[], old, |_| None);
    assert!(
        seen.sends.iter().all(|s| s.0 != put),
        "the put was forwarded toward the paused leader: {seen:?}"
    );
    assert!(
        seen.checks.iter().all(|e| e.0 .0 != 0),
        "no check on the silent leader"
    );
    // Endpoint 2 wins the election at term 6.
    let new = |i: usize| (i != 0).then_some((3, 6));
    let (seen, _) = drive(&mut core, now, ms(150), &[], new, |_| None);
    // To the new leader, or to a member that follows it (the first probe
    // answer of the new term ends the wait).
    let to: Vec<ConnId> = seen
        .sends
        .iter()
        .filter(|s| s.0 == put)
        .map(|s| s.2)
        .collect();
    assert_eq!(to.len(), 1, "the put goes out once: {seen:?}");
    assert_ne!(to[0], conns[0], "not to the paused leader");
}

/// A pinned client whose one connection, to the leader (endpoint 0), has
/// carried a put while a probe said who leads (`views`): the core, the
/// time, that connection.
fn pinned_to_the_leader(views: &[(u64, u64)]) -> (Core, Instant, ConnId) {
    let config = Config {
        policy: etcdv3_core::endpoints::balancer::Policy::Pinned,
        ..Config::default()
    };
    let mut core = Core::new(config, eps(3), 7);
    let now = Instant::now();
    let first = core.start_call(now, KV_PUT, Some(now + ms(5_000)));
    let mut conn0 = None;
    for a in drain(&mut core) {
        if let Action::Connect { conn, endpoint, .. } = a {
            assert_eq!(endpoint, EndpointId(0));
            conn0 = Some(conn);
            core.handle_connected(now, conn);
        }
    }
    let conn0 = conn0.expect("a connection");
    let sent = sends(&drain(&mut core));
    assert_eq!(sent.len(), 1);
    let now = answer_probes(&mut core, now, views);
    core.handle_outcome(now, first, sent[0].1, Outcome::Success(None));
    assert!(matches!(completes(&drain(&mut core))[..], [(c, Ok(()))] if c == first));
    (core, now, conn0)
}

/// Sim seed 2000000 (leader faults): a pinned client, connected to the
/// leader alone, lost that connection with the leader (killed). The next
/// put had no connection to wait on, so it opened one to a follower and
/// was sent the moment it came up (the hold applied only while a
/// connection was up), to a member still forwarding to the dead leader: a
/// second outcome-unknown put. It waits for the election like any other.
#[test]
fn a_put_that_opened_a_connection_during_an_election_waits_for_it() {
    let views = [(1, 5), (1, 5), (1, 5)];
    let (mut core, mut now, conn0) = pinned_to_the_leader(&views);
    // A put in flight on the leader when it is killed: outcome unknown.
    let second = core.start_call(now, KV_PUT, Some(now + ms(5_000)));
    let sent = sends(&drain(&mut core));
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].2, conn0);
    now += ms(5);
    core.handle_connection_closed(now, conn0, "connection reset (member crashed)");
    drain(&mut core);
    core.handle_outcome(
        now,
        second,
        sent[0].1,
        Outcome::Lost("connection closed".into()),
    );
    let done = completes(&drain(&mut core));
    assert!(
        matches!(done[..], [(c, Err(CallError::OutcomeUnknown { .. }))] if c == second),
        "{done:?}"
    );
    // The next put opens a connection to a follower.
    now += ms(10);
    let third = core.start_call(now, KV_PUT, Some(now + ms(5_000)));
    put_waits_on_its_new_connection(&mut core, now, Vec::new(), third, &views);
}

/// Answer the connection attempts (endpoint 0, the old leader, refuses;
/// the first to another member comes up) until the waiting put `put` has a
/// connection; then the put must wait while the followers still follow the
/// old leader (`views`), and go out once they name a new one at term 6.
fn put_waits_on_its_new_connection(
    core: &mut Core,
    mut now: Instant,
    mut pending: Vec<Action>,
    put: CallId,
    views: &[(u64, u64)],
) {
    let mut seen = Vec::new();
    let mut new_conn = None;
    for _ in 0..50 {
        let mut actions = std::mem::take(&mut pending);
        actions.extend(drain(core));
        seen.extend(sends(&actions));
        for a in actions {
            if let Action::Connect { conn, endpoint, .. } = a {
                if endpoint != EndpointId(0) && new_conn.is_none() {
                    new_conn = Some(conn);
                    core.handle_connected(now, conn);
                } else {
                    core.handle_connect_failed(now, conn, "connection refused");
                }
            }
        }
        if new_conn.is_some() {
            break;
        }
        now += ms(10);
        core.handle_timeout(now);
    }
    assert!(new_conn.is_some(), "no connection opened for the put");
    seen.extend(sends(&drain(core)));
    // The followers still follow the old leader (their election timeout
    // runs): the put waits (before: sent at once on the new connection).
    let (more, now) = run_for(core, now, ms(500), views);
    seen.extend(more);
    assert!(
        seen.iter().all(|(c, _, _)| *c != put),
        "sent while the followers still follow the old leader: {seen:?}"
    );
    // A new leader at term 6: the put goes out within a fast probe round.
    let (seen, _) = run_for(core, now, ms(150), &[(1, 5), (2, 6), (2, 6)]);
    assert!(
        seen.iter().any(|(c, _, _)| *c == put),
        "the put did not go out once the new leader was known: {seen:?}"
    );
}

/// Sim seed 2000011 (leader faults): the leader stepped down (a member
/// rejoined at a higher term) and answered a put "no leader" before any
/// probe saw it leaderless. That answer already recorded the member as
/// leaderless, so the next probe saw no change and no election was
/// awaited: the put was re-sent to the followers (which forward to the old
/// leader until their election), and a put sent just after the election
/// was failed "outcome unknown" by the news of it. The leader's own "no
/// leader" answer starts the wait like a probe finding it so.
#[test]
fn a_no_leader_answer_from_the_leader_makes_mutations_wait_for_the_election() {
    let (mut core, now, conns) = connected(Instant::now());
    let put = core.start_call(now, KV_PUT, Some(now + ms(5_000)));
    let s = sends(&drain(&mut core));
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].2, conns[0], "a mutation goes to the leader");
    let now = now + ms(5);
    core.handle_outcome(
        now,
        put,
        s[0].1,
        Outcome::Status(etcdv3_core::wire::status::Status::new(
            etcdv3_core::wire::status::Code::Unavailable,
            "etcdserver: no leader",
        )),
    );
    let mut seen = sends(&drain(&mut core));
    // The followers still follow the old leader: the put waits (before:
    // re-sent to a follower at once).
    let (more, now) = run_for(&mut core, now, ms(600), &[(0, 5), (1, 5), (1, 5)]);
    seen.extend(more);
    assert!(
        seen.iter().all(|(c, _, _)| *c != put),
        "re-sent while the followers still follow the old leader: {seen:?}"
    );
    // Endpoint 1 wins the election at term 6: the put goes to it.
    assert_sent_to_new_leader(&mut core, now, put, conns[1]);
}

/// Sim seed 2000059 (leader faults): a follower's answer to a leader check
/// ended the wait while the client still knew only the old term (the
/// election had come and gone); the puts sent next were answered at the new
/// term, and the first probe to name it ended the put in flight "outcome
/// unknown" as if it had been sent before the election.
#[test]
fn a_put_sent_after_a_leader_check_ended_the_wait_survives_the_news_of_the_new_term() {
    let (mut core, now, conns) = connected(Instant::now());
    // The leader's connection breaks: the wait starts, the followers are
    // asked whether they reach a leader.
    core.handle_connection_closed(now, conns[0], "connection reset (member crashed)");
    let checks: Vec<ConnId> = drain(&mut core)
        .iter()
        .filter_map(|a| match a {
            Action::CheckLeader { conn, .. } => Some(*conn),
            _ => None,
        })
        .collect();
    assert!(!checks.is_empty(), "no leader check sent");
    // One answers: a leader (elected meanwhile, at term 6) is alive.
    let now = now + ms(20);
    core.handle_leader_check(now, checks[0], Ok(()));
    drain(&mut core);
    let put = core.start_call(now, KV_PUT, Some(now + ms(5_000)));
    let s = sends(&drain(&mut core));
    assert!(
        s.iter().any(|(c, _, _)| *c == put),
        "the put goes out once a follower answered: {s:?}"
    );
    // The next probe round names the new leader at term 6 while the put
    // is in flight: it was sent under that term, nothing lost it.
    let now = answer_probes(&mut core, now, &[(0, 5), (2, 6), (2, 6)]);
    let done = completes(&drain(&mut core));
    assert!(
        done.iter().all(|(c, _)| *c != put),
        "the put sent after the election was ended by the news of it: {done:?}"
    );
    let _ = now;
}

/// Sim seed 2002943 (leader faults): a pinned client's only connection,
/// to the leader, went silent (the leader paused) and was closed at the
/// ping timeout; the probe round run in the same instant found no
/// connection up and ended the wait at once, so the next puts went to a
/// follower still forwarding to the paused leader. The wait lasts until a
/// member names the new leader (or it runs out).
#[test]
fn the_wait_outlives_the_silent_leader_connection_it_started_on() {
    let views = [(1, 5), (1, 5), (1, 5)];
    let (mut core, mut now, conn0) = pinned_to_the_leader(&views);
    // A put in flight on the leader when it pauses: nothing answers, not
    // even pings, until the client closes the silent connection.
    let second = core.start_call(now, KV_PUT, Some(now + ms(9_000)));
    drain(&mut core);
    let mut pending = Vec::new();
    for _ in 0..300 {
        now += ms(10);
        core.handle_timeout(now);
        let actions = drain(&mut core);
        if actions
            .iter()
            .any(|a| matches!(a, Action::Close { conn } if *conn == conn0))
        {
            pending = actions;
            break;
        }
    }
    assert!(!pending.is_empty(), "the silent connection was not closed");
    let _ = second;
    // The next put: a connection to a follower comes up.
    let third = core.start_call(now, KV_PUT, Some(now + ms(5_000)));
    put_waits_on_its_new_connection(&mut core, now, pending, third, &views);
}
