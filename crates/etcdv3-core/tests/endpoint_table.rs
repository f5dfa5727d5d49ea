//! The core's endpoint table (issue 17, section 6): a call bound to an
//! endpoint the core does not know ends with an error instead of a panic,
//! and the entries of removed endpoints are reclaimed, so a cluster whose
//! members are replaced again and again does not grow the table forever.

use std::time::{Duration, Instant};

use etcdv3_core::endpoints::endpoint::Endpoint;
use etcdv3_core::machine::{Action, CallError, Config, Core, EndpointId, Outcome};
use etcdv3_proto::method::{KV_RANGE, MAINTENANCE_STATUS};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn ep(i: usize) -> Endpoint {
    Endpoint::parse(&format!("127.0.{}.{}:2379", i / 250, i % 250 + 1)).unwrap()
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

#[test]
fn a_call_bound_to_an_unknown_endpoint_ends_with_an_error() {
    let t0 = Instant::now();
    let mut core = Core::new(cfg(), vec![ep(0), ep(1)], 1);
    let c = core.start_call_on(t0, MAINTENANCE_STATUS, Some(t0 + ms(1000)), EndpointId(7));
    let acts = drain(&mut core);
    assert!(
        matches!(
            acts.as_slice(),
            [Action::Complete { call, result: Err(CallError::NotAnEndpoint { endpoint, .. }) }]
                if *call == c && endpoint == "endpoint #7"
        ),
        "{acts:?}"
    );
    assert_eq!(core.calls_in_progress(), 0);
}

#[test]
fn a_call_bound_to_a_removed_endpoint_ends_with_an_error() {
    let t0 = Instant::now();
    let mut core = Core::new(cfg(), vec![ep(0), ep(1)], 1);
    core.set_endpoints(t0, vec![ep(1)]);
    let c = core.start_call_on(t0, MAINTENANCE_STATUS, Some(t0 + ms(1000)), EndpointId(0));
    let acts = drain(&mut core);
    assert!(
        acts.iter().any(|a| matches!(
            a,
            Action::Complete { call, result: Err(CallError::NotAnEndpoint { .. }) } if *call == c
        )),
        "{acts:?}"
    );
}

/// Connect what the core asks to connect and answer every send at once.
fn serve(core: &mut Core, now: Instant) {
    for _ in 0..20 {
        let acts = drain(core);
        if acts.is_empty() {
            return;
        }
        for a in acts {
            match a {
                Action::Connect { conn, .. } => core.handle_connected(now, conn),
                Action::Send { call, attempt, .. } => {
                    core.handle_outcome(now, call, attempt, Outcome::Success(None))
                }
                _ => {}
            }
        }
    }
}

/// Endpoint ids the core still knows, among the first `n`.
fn known(core: &Core, n: usize) -> Vec<usize> {
    (0..n)
        .filter(|&i| core.endpoint(EndpointId(i)).is_some())
        .collect()
}

/// An auto-synced cluster whose members are replaced again and again (new
/// addresses each time, as pods get): the table keeps the live endpoints
/// only, ids are never reused, and a stale id is an error.
#[test]
fn replaced_members_do_not_grow_the_endpoint_table() {
    let t0 = Instant::now();
    let mut core = Core::new(cfg(), vec![ep(0), ep(1), ep(2)], 1);
    let mut live = vec![ep(0), ep(1), ep(2)];
    let mut now = t0;
    for round in 0..1_000 {
        now += ms(10);
        // Every member serves a read (each gets a connection).
        for _ in 0..3 {
            core.start_call(now, KV_RANGE, Some(now + ms(1000)));
            serve(&mut core, now);
        }
        live[round % 3] = ep(3 + round);
        core.set_endpoints(now, live.clone());
        serve(&mut core, now);
    }
    core.handle_timeout(now + ms(10));
    let ids = known(&core, 1_003);
    assert!(
        ids.len() <= 6,
        "{} endpoints known after 1,000 replacements: {:?}...",
        ids.len(),
        &ids[..ids.len().min(10)]
    );
    assert!(core.endpoint_slots() <= 6, "{}", core.endpoint_slots());
    assert_eq!(core.endpoint_states().len(), 3);
    // The live ones kept their ids; the first ids are gone for good.
    let states = core.endpoint_states();
    let mut want: Vec<usize> = vec![1_000, 1_001, 1_002];
    let mut got: Vec<usize> = states.iter().map(|s| s.id.0).collect();
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got, want);
    let c = core.start_call_on(now, MAINTENANCE_STATUS, Some(now + ms(100)), EndpointId(0));
    assert!(drain(&mut core).iter().any(|a| matches!(
        a,
        Action::Complete { call, result: Err(CallError::NotAnEndpoint { .. }) } if *call == c
    )));
}

/// A removed endpoint with a call still on it keeps its entry until the
/// call ended; then the entry goes.
#[test]
fn a_removed_endpoint_keeps_its_entry_while_a_call_is_on_it() {
    let t0 = Instant::now();
    let mut core = Core::new(cfg(), vec![ep(0)], 1);
    let read = core.start_call(t0, KV_RANGE, Some(t0 + ms(5000)));
    let mut attempt = None;
    for _ in 0..5 {
        for a in drain(&mut core) {
            match a {
                Action::Connect { conn, .. } => core.handle_connected(t0, conn),
                Action::Send {
                    call, attempt: n, ..
                } if call == read => attempt = Some(n),
                _ => {}
            }
        }
    }
    let attempt = attempt.expect("the read was sent");
    core.set_endpoints(t0, vec![ep(1)]);
    core.handle_timeout(t0 + ms(1));
    assert!(core.endpoint(EndpointId(0)).is_some(), "busy: kept");
    core.handle_outcome(t0 + ms(2), read, attempt, Outcome::Success(None));
    drain(&mut core);
    core.handle_timeout(t0 + ms(3));
    assert!(core.endpoint(EndpointId(0)).is_none(), "idle: reclaimed");
    assert_eq!(known(&core, 2), vec![1]);
}
