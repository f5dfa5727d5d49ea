//! The core's endpoint table (issue 17, section 6): a call bound to an
//! endpoint the core does not know ends with an error instead of a panic,
//! and the entries of removed endpoints are reclaimed, so a cluster whose
//! members are replaced again and again does not grow the table forever.

use std::time::{Duration, Instant};

use etcdv3_core::endpoint::Endpoint;
use etcdv3_core::machine::{Action, CallError, Config, Core, EndpointId};
use etcdv3_proto::method::MAINTENANCE_STATUS;

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
