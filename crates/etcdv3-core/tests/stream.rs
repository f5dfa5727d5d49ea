//! The stream supervisor: when a long-lived stream is (re)opened, with
//! explicit time.

use std::time::{Duration, Instant};

use etcdv3_core::streams::{StreamConfig, StreamState, StreamSupervisor};
use etcdv3_core::util::backoff::BackoffConfig;

fn config() -> StreamConfig {
    StreamConfig {
        backoff: BackoffConfig {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(2),
            multiplier: 2,
            jitter: 0.5,
        },
        stable_after: Duration::from_secs(1),
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Open a stream now (it must be wanted and allowed).
fn open(sup: &mut StreamSupervisor, now: Instant) {
    assert!(sup.poll_open(now), "expected an open at {:?}", sup.state());
    sup.handle_opened(now);
}

#[test]
fn nothing_opens_until_wanted_and_one_open_at_a_time() {
    let t0 = Instant::now();
    let mut sup = StreamSupervisor::new(config(), 1);
    assert!(!sup.wants_open(t0));
    assert!(!sup.poll_open(t0));
    sup.handle_wanted(t0, true);
    assert!(sup.wants_open(t0));
    assert!(sup.poll_open(t0));
    assert_eq!(sup.state(), StreamState::Opening);
    assert!(!sup.poll_open(t0), "a second open while one is in progress");
    sup.handle_opened(t0);
    assert!(!sup.poll_open(t0 + ms(10)));
    assert_eq!(sup.opens(), 1);
    assert_eq!(sup.poll_timeout(), None);
}

#[test]
fn a_failed_open_backs_off_within_the_configured_bounds() {
    let t0 = Instant::now();
    let cfg = config();
    let mut sup = StreamSupervisor::new(cfg.clone(), 2);
    sup.handle_wanted(t0, true);
    assert!(sup.poll_open(t0));
    sup.handle_open_failed(t0);
    let at = sup.poll_timeout().expect("a backoff timer");
    let delay = at - t0;
    assert!(delay >= cfg.backoff.min_delay() && delay <= cfg.backoff.initial);
    // Not before the timer...
    sup.handle_timeout(at - ms(1));
    assert!(!sup.poll_open(at - ms(1)));
    // ...but at it.
    sup.handle_timeout(at);
    assert!(sup.poll_open(at));
    assert_eq!(sup.failures(), 1);
}

#[test]
fn a_stream_lost_before_any_message_is_a_failure() {
    // The old watch task reopened at once after such a stream: a member that
    // accepts the stream and resets it at once got a tight reopen loop.
    let t0 = Instant::now();
    let mut sup = StreamSupervisor::new(config(), 3);
    sup.handle_wanted(t0, true);
    open(&mut sup, t0);
    sup.handle_lost(t0 + ms(5));
    assert!(!sup.poll_open(t0 + ms(5)), "reopened at once");
    assert!(matches!(sup.state(), StreamState::BackingOff { .. }));
    assert_eq!(sup.consecutive_failures(), 1);
}

#[test]
fn a_working_stream_reopens_at_once_the_first_time_then_backs_off() {
    let t0 = Instant::now();
    let mut sup = StreamSupervisor::new(config(), 4);
    sup.handle_wanted(t0, true);
    open(&mut sup, t0);
    sup.handle_message(t0 + ms(1));
    sup.handle_lost(t0 + ms(300));
    // First break after a delivered message: at once.
    let t1 = t0 + ms(300);
    open(&mut sup, t1);
    sup.handle_message(t1 + ms(1));
    // Breaks again before it was stable: backoff.
    sup.handle_lost(t1 + ms(50));
    assert!(!sup.poll_open(t1 + ms(50)));
    assert!(sup.poll_timeout().is_some());
}

#[test]
fn a_stable_stream_restores_the_immediate_reopen_and_resets_the_backoff() {
    let t0 = Instant::now();
    let cfg = config();
    let mut sup = StreamSupervisor::new(cfg.clone(), 5);
    sup.handle_wanted(t0, true);
    // Three failed opens: the backoff grows.
    let mut now = t0;
    for _ in 0..3 {
        assert!(sup.poll_open(now));
        sup.handle_open_failed(now);
        now = sup.poll_timeout().unwrap();
        sup.handle_timeout(now);
    }
    assert_eq!(sup.consecutive_failures(), 3);
    open(&mut sup, now);
    sup.handle_message(now + ms(10));
    // Stable: open with messages for `stable_after`.
    sup.handle_message(now + cfg.stable_after);
    assert_eq!(sup.consecutive_failures(), 0, "backoff reset");
    let lost_at = now + cfg.stable_after + ms(500);
    sup.handle_lost(lost_at);
    assert!(sup.poll_open(lost_at), "a stable stream reopens at once");
    sup.handle_open_failed(lost_at);
    let delay = sup.poll_timeout().unwrap() - lost_at;
    assert!(
        delay <= cfg.backoff.initial,
        "backoff restarted at the first step: {delay:?}"
    );
}

#[test]
fn a_refused_stream_is_a_failure_even_after_messages() {
    let t0 = Instant::now();
    let mut sup = StreamSupervisor::new(config(), 6);
    sup.handle_wanted(t0, true);
    open(&mut sup, t0);
    sup.handle_message(t0 + ms(1));
    sup.handle_refused(t0 + ms(2));
    assert!(!sup.poll_open(t0 + ms(2)));
    assert_eq!(sup.failures(), 1);
}

#[test]
fn nothing_reopens_while_not_wanted_and_a_close_is_no_failure() {
    let t0 = Instant::now();
    let mut sup = StreamSupervisor::new(config(), 7);
    sup.handle_wanted(t0, true);
    open(&mut sup, t0);
    sup.handle_wanted(t0 + ms(1), false);
    sup.handle_closed(t0 + ms(1));
    assert_eq!(sup.state(), StreamState::Closed);
    assert!(!sup.poll_open(t0 + ms(2)));
    assert_eq!(sup.failures(), 0);
    // A failed open while wanted, then unwanted: no timer to wake for.
    sup.handle_wanted(t0 + ms(3), true);
    assert!(sup.poll_open(t0 + ms(3)));
    sup.handle_open_failed(t0 + ms(3));
    assert!(sup.poll_timeout().is_some());
    sup.handle_wanted(t0 + ms(4), false);
    assert_eq!(sup.poll_timeout(), None);
}

#[test]
fn the_jitter_is_a_function_of_the_seed() {
    let run = |seed| {
        let t0 = Instant::now();
        let mut sup = StreamSupervisor::new(config(), seed);
        sup.handle_wanted(t0, true);
        let mut now = t0;
        let mut delays = Vec::new();
        for _ in 0..6 {
            assert!(sup.poll_open(now));
            sup.handle_open_failed(now);
            let at = sup.poll_timeout().unwrap();
            delays.push(at - now);
            now = at;
            sup.handle_timeout(now);
        }
        delays
    };
    assert_eq!(run(11), run(11));
    assert_ne!(run(11), run(12));
}

/// What a hostile or broken server does to every stream.
#[derive(Clone, Copy, Debug)]
enum Server {
    /// Refuses every open.
    RefusesOpens,
    /// Accepts, then resets the stream before any message.
    ResetsAtOnce,
    /// Sends one message, then resets the stream.
    OneMessageThenReset,
    /// Works for just under `stable_after`, then resets.
    AlmostStable,
}

/// Drive the supervisor for `run` of virtual time against `server` and
/// return the number of opens.
fn opens_against(server: Server, run: Duration, seed: u64) -> u64 {
    let cfg = config();
    let t0 = Instant::now();
    let mut sup = StreamSupervisor::new(cfg.clone(), seed);
    sup.handle_wanted(t0, true);
    let mut now = t0;
    while now < t0 + run {
        if sup.poll_open(now) {
            match server {
                Server::RefusesOpens => sup.handle_open_failed(now + ms(1)),
                Server::ResetsAtOnce => {
                    sup.handle_opened(now);
                    sup.handle_lost(now + ms(1));
                }
                Server::OneMessageThenReset => {
                    sup.handle_opened(now);
                    sup.handle_message(now + ms(1));
                    sup.handle_lost(now + ms(2));
                }
                Server::AlmostStable => {
                    sup.handle_opened(now);
                    sup.handle_message(now + ms(1));
                    now += cfg.stable_after - ms(10);
                    sup.handle_message(now);
                    sup.handle_lost(now);
                }
            }
            now += ms(2);
            continue;
        }
        match sup.poll_timeout() {
            Some(at) => {
                now = now.max(at);
                sup.handle_timeout(now);
            }
            None => panic!("{server:?}: no open and no timer at {:?}", now - t0),
        }
    }
    sup.opens()
}

#[test]
fn the_reopen_rate_is_bounded_by_the_backoff() {
    // 60 s against each kind of broken server. Once the backoff reached its
    // cap, each open costs at least min(max) = max - max*jitter = 1 s; the
    // ramp up to it (100, 200, ..., 1600 ms intervals) allows at most a
    // handful more. Without a backoff any of these would open thousands of
    // streams.
    let run = Duration::from_secs(60);
    for server in [
        Server::RefusesOpens,
        Server::ResetsAtOnce,
        Server::OneMessageThenReset,
        Server::AlmostStable,
    ] {
        for seed in 0..20 {
            let opens = opens_against(server, run, seed);
            assert!(
                opens <= 70,
                "{server:?} seed {seed}: {opens} opens in 60 s: reopen rate not bounded"
            );
            assert!(opens >= 20, "{server:?} seed {seed}: only {opens} opens");
        }
    }
}

// The watch hub's part of the stream's authentication: a watcher refused
// for its (expired) token is created again once on a new stream.
mod watch_auth {
    use etcdv3_core::streams::watch::{WatchEvent, WatchHub, WatcherId};
    use etcdv3_proto::etcdserverpb::{
        watch_request::RequestUnion, ResponseHeader, WatchCreateRequest, WatchResponse,
    };

    /// What etcd 3.5 puts in `cancel_reason`.
    const DENIED: &str = "rpc error: code = PermissionDenied desc = etcdserver: permission denied";

    fn created(id: WatcherId, rev: i64) -> WatchResponse {
        WatchResponse {
            header: Some(ResponseHeader {
                revision: rev,
                ..Default::default()
            }),
            watch_id: id.get(),
            created: true,
            ..Default::default()
        }
    }

    /// etcd's answer to a create it does not permit.
    fn refused(reason: &str) -> WatchResponse {
        WatchResponse {
            header: Some(ResponseHeader {
                revision: 5,
                ..Default::default()
            }),
            watch_id: -1,
            created: true,
            canceled: true,
            cancel_reason: reason.into(),
            ..Default::default()
        }
    }

    fn creates(hub: &mut WatchHub) -> usize {
        let mut n = 0;
        while let Some(r) = hub.poll_transmit() {
            if matches!(r.request_union, Some(RequestUnion::CreateRequest(_))) {
                n += 1;
            }
        }
        n
    }

    fn new_hub() -> (WatchHub, WatcherId) {
        let mut hub = WatchHub::new();
        let id = hub.add(WatchCreateRequest {
            key: b"k".to_vec(),
            ..Default::default()
        });
        assert_eq!(creates(&mut hub), 1);
        (hub, id)
    }

    #[test]
    fn first_refusal_waits_for_a_new_token_and_stream() {
        let (mut hub, id) = new_hub();
        hub.handle_response(refused(DENIED));
        assert!(hub.needs_auth_refresh());
        assert_eq!(hub.poll_event(), None, "the watcher must not end yet");
        assert!(hub.contains(id));
        assert_eq!(creates(&mut hub), 0, "not re-created on the old stream");
        hub.handle_stream_lost();
        assert!(!hub.needs_auth_refresh());
        assert_eq!(creates(&mut hub), 1, "re-created on the new stream");
        hub.handle_response(created(id, 6));
        assert_eq!(
            hub.poll_event(),
            Some((id, WatchEvent::Created { revision: 6 }))
        );
    }

    #[test]
    fn the_bare_message_counts_too() {
        let (mut hub, _) = new_hub();
        hub.handle_response(refused("etcdserver: permission denied"));
        assert!(hub.needs_auth_refresh());
    }

    #[test]
    fn refused_again_after_a_refresh_is_final() {
        let (mut hub, id) = new_hub();
        hub.handle_response(refused(DENIED));
        hub.handle_stream_lost();
        assert_eq!(creates(&mut hub), 1);
        hub.handle_response(refused(DENIED));
        assert!(!hub.needs_auth_refresh());
        assert_eq!(
            hub.poll_event(),
            Some((
                id,
                WatchEvent::Cancelled {
                    reason: DENIED.into()
                }
            ))
        );
        assert!(hub.is_empty());
    }

    #[test]
    fn without_credentials_the_refusal_is_final_at_once() {
        let (mut hub, id) = new_hub();
        hub.handle_response(refused("etcdserver: invalid auth token"));
        assert!(hub.needs_auth_refresh());
        hub.handle_auth_final();
        assert!(!hub.needs_auth_refresh());
        assert_eq!(
            hub.poll_event(),
            Some((
                id,
                WatchEvent::Cancelled {
                    reason: "etcdserver: invalid auth token".into()
                }
            ))
        );
    }

    #[test]
    fn a_watcher_created_again_may_be_retried_at_the_next_expiry() {
        let (mut hub, id) = new_hub();
        hub.handle_response(refused(DENIED));
        hub.handle_stream_lost();
        creates(&mut hub);
        hub.handle_response(created(id, 6));
        // Much later the token expires again and the stream is replaced
        // (e.g. the member went away): refused once more, still retried.
        hub.handle_stream_lost();
        creates(&mut hub);
        hub.handle_response(refused(DENIED));
        assert!(hub.needs_auth_refresh());
        assert!(hub.contains(id));
    }

    #[test]
    fn other_refusals_end_the_watcher_at_once() {
        let (mut hub, id) = new_hub();
        hub.handle_response(refused(
            "etcdserver: mvcc: required revision is a future revision",
        ));
        assert!(!hub.needs_auth_refresh());
        assert!(matches!(
            hub.poll_event(),
            Some((i, WatchEvent::Cancelled { .. })) if i == id
        ));
    }
}
