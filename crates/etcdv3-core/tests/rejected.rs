//! Endpoints that reject the client for good (`Core::handle_connect_rejected`,
//! e.g. an untrusted TLS certificate): calls go elsewhere at once, and fail
//! at once with `CallError::Rejected` when every endpoint they may use
//! rejected the client, instead of retrying until their deadline.

use std::time::{Duration, Instant};

use etcdv3_core::endpoints::endpoint::Endpoint;
use etcdv3_core::machine::{Action, CallError, CallId, Config, ConnId, Core, EndpointId, Outcome};
use etcdv3_proto::method::{KV_PUT, KV_RANGE, MAINTENANCE_STATUS};

const CAUSE: &str = "invalid peer certificate: UnknownIssuer";

fn eps(n: usize) -> Vec<Endpoint> {
    (1..=n)
        .map(|i| Endpoint::parse(&format!("https://127.0.0.{i}:2379")).unwrap())
        .collect()
}

fn cfg() -> Config {
    Config {
        probe_interval: None,
        ..Config::default()
    }
}

/// What the fake adapter does with a `Connect`.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Answer {
    /// `handle_connect_rejected`.
    Reject,
    /// `handle_connect_failed` (a failure that may heal).
    Fail,
    /// `handle_connected`.
    Accept,
}

/// Everything the adapter saw while answering actions until the core was
/// quiet.
#[derive(Default, Debug)]
struct Seen {
    connects: Vec<EndpointId>,
    sends: Vec<(CallId, u32, ConnId)>,
    completes: Vec<(CallId, Result<(), CallError>)>,
}

/// Drain actions, answering each `Connect` with `answer(endpoint)`.
fn run(core: &mut Core, now: Instant, answer: impl Fn(EndpointId) -> Answer) -> Seen {
    let mut seen = Seen::default();
    while let Some(a) = core.poll_action() {
        match a {
            Action::Connect { conn, endpoint, .. } => {
                seen.connects.push(endpoint);
                match answer(endpoint) {
                    Answer::Reject => core.handle_connect_rejected(now, conn, CAUSE),
                    Answer::Fail => core.handle_connect_failed(now, conn, "connection refused"),
                    Answer::Accept => core.handle_connected(now, conn),
                }
            }
            Action::Send {
                call,
                attempt,
                conn,
            } => seen.sends.push((call, attempt, conn)),
            Action::Complete { call, result } => seen.completes.push((call, result)),
            _ => {}
        }
    }
    seen
}

fn assert_rejected(result: &Result<(), CallError>, method: &str) {
    match result {
        Err(
            e @ CallError::Rejected {
                method: m, cause, ..
            },
        ) => {
            assert_eq!(*m, method);
            assert_eq!(cause, CAUSE);
            assert!(!e.may_have_applied());
            assert!(e.to_string().contains("UnknownIssuer"), "{e}");
        }
        other => panic!("expected CallError::Rejected, got {other:?}"),
    }
}

#[test]
fn every_endpoint_rejected_fails_the_call_at_once() {
    let t0 = Instant::now();
    let mut core = Core::new(cfg(), eps(3), 1);
    let call = core.start_call(t0, KV_RANGE, Some(t0 + Duration::from_secs(10)));
    let seen = run(&mut core, t0, |_| Answer::Reject);
    // Each endpoint was tried once, then the call ended with the cause,
    // at the same instant: no backoff, no waiting for the deadline.
    let mut tried = seen.connects.clone();
    tried.sort();
    tried.dedup();
    assert_eq!(tried.len(), 3, "{seen:?}");
    assert_eq!(seen.connects.len(), 3, "{seen:?}");
    assert_eq!(seen.completes.len(), 1, "{seen:?}");
    assert_eq!(seen.completes[0].0, call);
    assert_rejected(&seen.completes[0].1, KV_RANGE.path);
    assert_eq!(core.calls_in_progress(), 0);
    assert_eq!(core.pending_timers(), 0);

    // A later call (a mutation too) fails at once without a new connection.
    let t1 = t0 + Duration::from_secs(1);
    let put = core.start_call(t1, KV_PUT, Some(t1 + Duration::from_secs(10)));
    let seen = run(&mut core, t1, |_| panic!("no connect while rejected"));
    assert!(seen.connects.is_empty(), "{seen:?}");
    assert_eq!(seen.completes.len(), 1);
    assert_eq!(seen.completes[0].0, put);
    assert_rejected(&seen.completes[0].1, KV_PUT.path);
}

#[test]
fn failures_that_may_heal_are_still_retried_until_the_deadline() {
    // The contrast: the same outage reported as ordinary connect failures
    // keeps the call waiting (it may heal).
    let t0 = Instant::now();
    let mut core = Core::new(cfg(), eps(3), 1);
    let _call = core.start_call(t0, KV_RANGE, Some(t0 + Duration::from_secs(10)));
    let seen = run(&mut core, t0, |_| Answer::Fail);
    assert!(seen.completes.is_empty(), "{seen:?}");
    assert_eq!(core.calls_in_progress(), 1);
}

#[test]
fn a_rejected_endpoint_is_skipped_while_others_work() {
    let t0 = Instant::now();
    let mut core = Core::new(cfg(), eps(2), 7);
    let deadline = Some(t0 + Duration::from_secs(10));
    let call = core.start_call(t0, KV_RANGE, deadline);
    // Whichever endpoint is tried first rejects; the other accepts.
    let first = std::cell::Cell::new(None);
    let seen = run(&mut core, t0, |ep| {
        if first.get().is_none() {
            first.set(Some(ep));
        }
        if Some(ep) == first.get() {
            Answer::Reject
        } else {
            Answer::Accept
        }
    });
    let bad = first.get().unwrap();
    assert_eq!(seen.connects.len(), 2, "{seen:?}");
    assert_eq!(
        seen.sends.len(),
        1,
        "the call went to the other endpoint at once"
    );
    assert!(seen.completes.is_empty());
    let (_, attempt, conn) = seen.sends[0];
    assert_ne!(core.conn_endpoint(conn), Some(bad));
    core.handle_outcome(t0, call, attempt, Outcome::Success(None));
    let seen = run(&mut core, t0, |_| Answer::Accept);
    assert!(matches!(seen.completes.as_slice(), [(_, Ok(()))]));

    // Many later calls: none tries the rejected endpoint again.
    for i in 0..20 {
        let t = t0 + Duration::from_millis(100 * i);
        let c = core.start_call(t, KV_RANGE, Some(t + Duration::from_secs(10)));
        let seen = run(&mut core, t, |ep| {
            panic!("connect to {ep:?} while one connection is open")
        });
        let (_, attempt, conn) = seen.sends[0];
        assert_ne!(core.conn_endpoint(conn), Some(bad));
        core.handle_outcome(t, c, attempt, Outcome::Success(None));
        run(&mut core, t, |_| Answer::Accept);
    }

    // A call that targets the rejected member fails at once, even though
    // another member works: it is never moved.
    let t = t0 + Duration::from_secs(3);
    let status = core.start_call_on(
        t,
        MAINTENANCE_STATUS,
        Some(t + Duration::from_secs(10)),
        bad,
    );
    let seen = run(&mut core, t, |_| panic!("no connect"));
    assert_eq!(seen.completes.len(), 1, "{seen:?}");
    assert_eq!(seen.completes[0].0, status);
    assert_rejected(&seen.completes[0].1, MAINTENANCE_STATUS.path);
}

#[test]
fn a_rejection_is_rechecked_after_the_configured_interval() {
    let t0 = Instant::now();
    let config = Config {
        rejection_recheck: Duration::from_secs(30),
        ..cfg()
    };
    let mut core = Core::new(config, eps(1), 3);
    core.start_call(t0, KV_RANGE, Some(t0 + Duration::from_secs(10)));
    let seen = run(&mut core, t0, |_| Answer::Reject);
    assert_eq!(seen.connects.len(), 1);
    assert_eq!(seen.completes.len(), 1);

    // Before the recheck interval: no new connection.
    let t1 = t0 + Duration::from_secs(29);
    core.start_call(t1, KV_RANGE, Some(t1 + Duration::from_secs(10)));
    let seen = run(&mut core, t1, |_| panic!("no connect before the recheck"));
    assert_rejected(&seen.completes[0].1, KV_RANGE.path);

    // After it (say the certificate was replaced): one connection is tried,
    // it works, and the endpoint is in use again.
    let t2 = t0 + Duration::from_secs(31);
    let call = core.start_call(t2, KV_RANGE, Some(t2 + Duration::from_secs(10)));
    let seen = run(&mut core, t2, |_| Answer::Accept);
    assert_eq!(seen.connects.len(), 1, "{seen:?}");
    assert_eq!(seen.sends.len(), 1, "{seen:?}");
    let (_, attempt, _) = seen.sends[0];
    core.handle_outcome(t2, call, attempt, Outcome::Success(None));
    let seen = run(&mut core, t2, |_| Answer::Accept);
    assert!(matches!(seen.completes.as_slice(), [(_, Ok(()))]));

    // A success cleared the rejection: if the connection later breaks in
    // an ordinary way, calls wait and retry instead of failing fast.
    let t3 = t2 + Duration::from_secs(1);
    let call = core.start_call(t3, KV_RANGE, Some(t3 + Duration::from_secs(10)));
    let seen = run(&mut core, t3, |_| Answer::Accept);
    let (_, _, conn) = seen.sends[0];
    core.handle_connection_closed(t3, conn, "reset by peer");
    let seen = run(&mut core, t3, |_| Answer::Fail);
    assert!(seen.completes.is_empty(), "{seen:?}");
    assert!(core.call_deadline(call).is_some());
}

#[test]
fn with_credentials_the_call_reports_the_rejection_not_an_auth_failure() {
    use etcdv3_proto::method::AUTH_AUTHENTICATE;
    let t0 = Instant::now();
    let config = Config {
        authenticate: true,
        ..cfg()
    };
    let mut core = Core::new(config, eps(2), 5);
    let call = core.start_call(t0, KV_RANGE, Some(t0 + Duration::from_secs(10)));
    assert!(
        std::iter::from_fn(|| core.poll_action()).any(|a| a == Action::Authenticate),
        "the call waits for a token first"
    );
    // The adapter's token request meets the rejection on every endpoint.
    let auth = core.start_call(t0, AUTH_AUTHENTICATE, Some(t0 + Duration::from_secs(10)));
    let seen = run(&mut core, t0, |_| Answer::Reject);
    assert_eq!(seen.completes.len(), 1, "{seen:?}");
    assert_eq!(seen.completes[0].0, auth);
    assert_rejected(&seen.completes[0].1, AUTH_AUTHENTICATE.path);
    core.handle_auth_result(t0, Err(format!("{:?}", seen.completes[0].1)));
    let seen = run(&mut core, t0, |_| panic!("no connect"));
    assert_eq!(seen.completes.len(), 1, "{seen:?}");
    assert_eq!(seen.completes[0].0, call);
    assert_rejected(&seen.completes[0].1, KV_RANGE.path);

    // A later call fails at once without asking for a token.
    let t1 = t0 + Duration::from_secs(1);
    let later = core.start_call(t1, KV_RANGE, Some(t1 + Duration::from_secs(10)));
    let actions: Vec<Action> = std::iter::from_fn(|| core.poll_action()).collect();
    assert_eq!(actions.len(), 1, "{actions:?}");
    match &actions[0] {
        Action::Complete { call, result } => {
            assert_eq!(*call, later);
            assert_rejected(result, KV_RANGE.path);
        }
        other => panic!("expected Complete, got {other:?}"),
    }
}
