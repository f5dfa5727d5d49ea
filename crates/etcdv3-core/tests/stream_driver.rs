//! The stream driver: every decision about a long-lived stream (reopen
//! timing, how a stream given up on ends, auth retry, TLS fan-out), and the
//! recipes' retry timing, with explicit time.

use std::time::{Duration, Instant};

use etcdv3_core::machine::Outcome;
use etcdv3_core::streams::{
    CloseReason, FailCause, Retry, RetryConfig, StreamAction, StreamConfig, StreamDriver,
    StreamEnd, Verdict,
};
use etcdv3_core::util::backoff::BackoffConfig;
use etcdv3_core::wire::error::{auth_refusal, auth_refusal_of_reason, AuthRefusal};
use etcdv3_core::wire::status::{Code, Status};

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

fn actions(d: &mut StreamDriver) -> Vec<StreamAction> {
    std::iter::from_fn(|| d.poll_action()).collect()
}

/// A driver with a stream open that delivered a message, at `t`.
fn working(t: Instant) -> StreamDriver {
    let mut d = StreamDriver::new(config(), 3);
    d.handle_wanted(t, true);
    assert_eq!(actions(&mut d), [StreamAction::Open]);
    d.handle_opened(t);
    d.handle_message(t);
    assert!(d.is_open());
    assert_eq!(actions(&mut d), []);
    d
}

#[test]
fn a_stream_opens_only_at_the_end_of_a_turn_and_one_at_a_time() {
    let t0 = Instant::now();
    let mut d = StreamDriver::new(config(), 1);
    d.handle_timeout(t0);
    assert_eq!(actions(&mut d), []);
    d.handle_wanted(t0, true);
    assert_eq!(actions(&mut d), [StreamAction::Open]);
    d.handle_wanted(t0, true);
    assert_eq!(actions(&mut d), [], "one open at a time");
    d.handle_opened(t0);
    d.handle_wanted(t0, true);
    assert_eq!(actions(&mut d), []);
}

#[test]
fn a_working_stream_that_breaks_reopens_at_once_and_tells_the_owner() {
    let t0 = Instant::now();
    let mut d = working(t0);
    d.handle_ended(t0 + ms(10), StreamEnd::Failed);
    assert_eq!(actions(&mut d), [StreamAction::Lost]);
    d.handle_wanted(t0 + ms(10), true);
    assert_eq!(actions(&mut d), [StreamAction::Open]);
}

#[test]
fn a_token_refusal_reopens_once_then_fails_the_users() {
    let t0 = Instant::now();
    let mut d = working(t0);
    d.handle_ended(t0, StreamEnd::AuthRefused { fresh_token: true });
    assert_eq!(actions(&mut d), [StreamAction::Lost]);
    d.handle_wanted(t0, true);
    assert_eq!(actions(&mut d), [StreamAction::Open]);
    d.handle_opened(t0);
    // Refused again before a message arrived: final.
    d.handle_ended(t0, StreamEnd::AuthRefused { fresh_token: true });
    assert_eq!(
        actions(&mut d),
        [StreamAction::Lost, StreamAction::Fail(FailCause::Refused)]
    );

    // A message on the new stream makes the next refusal worth a retry.
    let mut d = working(t0);
    d.handle_ended(t0, StreamEnd::AuthRefused { fresh_token: true });
    actions(&mut d);
    let t1 = t0 + ms(5);
    d.handle_wanted(t1, true);
    assert_eq!(actions(&mut d), [StreamAction::Open]);
    d.handle_opened(t1);
    d.handle_message(t1);
    d.handle_ended(t1, StreamEnd::AuthRefused { fresh_token: true });
    assert_eq!(actions(&mut d), [StreamAction::Lost]);

    // Without credentials (no fresh token): final at once.
    let mut d = working(t0);
    d.handle_ended(t0, StreamEnd::AuthRefused { fresh_token: false });
    assert_eq!(
        actions(&mut d),
        [StreamAction::Lost, StreamAction::Fail(FailCause::Refused)]
    );
}

#[test]
fn an_open_rejected_by_every_endpoint_fails_the_users_at_once() {
    let t0 = Instant::now();
    let mut d = StreamDriver::new(config(), 1);
    d.handle_wanted(t0, true);
    actions(&mut d);
    d.handle_open_failed(t0, false);
    assert_eq!(actions(&mut d), [], "an ordinary failure only backs off");
    let at = d.poll_timeout().expect("backoff");
    assert!(at > t0);
    d.handle_timeout(at);
    d.handle_wanted(at, true);
    assert_eq!(actions(&mut d), [StreamAction::Open]);
    d.handle_open_failed(at, true);
    assert_eq!(actions(&mut d), [StreamAction::Fail(FailCause::Rejected)]);
}

#[test]
fn a_member_without_leader_is_demoted_and_the_stream_replaced_after_a_backoff() {
    let t0 = Instant::now();
    let mut d = working(t0);
    d.handle_verdict(t0, Verdict::Keep);
    assert_eq!(actions(&mut d), []);
    d.handle_verdict(t0, Verdict::NoLeader);
    assert_eq!(
        actions(&mut d),
        [
            StreamAction::Close(CloseReason::NoLeader),
            StreamAction::Lost
        ]
    );
    match CloseReason::NoLeader.outcome() {
        Some(Outcome::Status(s)) => {
            assert_eq!(s.code, Code::Unavailable);
            assert_eq!(
                etcdv3_core::wire::error::classify(&s),
                etcdv3_core::wire::error::EtcdErrorKind::NoLeader
            );
        }
        other => panic!("a no-leader close must tell the core a status: {other:?}"),
    }
    d.handle_wanted(t0, true);
    assert_eq!(actions(&mut d), [], "a refusal backs off");
    assert!(d.poll_timeout().is_some());
}

#[test]
fn unanswered_requests_end_the_stream_as_lost_and_it_reopens_at_once() {
    let t0 = Instant::now();
    let mut d = working(t0);
    d.handle_verdict(t0, Verdict::Unanswered);
    assert_eq!(
        actions(&mut d),
        [
            StreamAction::Close(CloseReason::Unanswered),
            StreamAction::Lost
        ]
    );
    assert!(matches!(
        CloseReason::Unanswered.outcome(),
        Some(Outcome::Lost(_))
    ));
    d.handle_wanted(t0, true);
    assert_eq!(actions(&mut d), [StreamAction::Open]);
}

#[test]
fn a_request_refused_for_its_token_asks_the_core_then_replaces_or_keeps_the_stream() {
    let t0 = Instant::now();
    let mut d = working(t0);
    d.handle_verdict(t0, Verdict::AuthRejected);
    assert_eq!(actions(&mut d), [StreamAction::RefreshToken]);
    d.handle_auth_answer(t0, true);
    assert_eq!(
        actions(&mut d),
        [StreamAction::Close(CloseReason::Drop), StreamAction::Lost]
    );
    assert_eq!(CloseReason::Drop.outcome(), None);

    let mut d = working(t0);
    d.handle_verdict(t0, Verdict::AuthRejected);
    assert_eq!(actions(&mut d), [StreamAction::RefreshToken]);
    d.handle_auth_answer(t0, false);
    assert_eq!(actions(&mut d), [StreamAction::AuthFinal]);
    assert!(d.is_open(), "the stream stays for the other watchers");
}

#[test]
fn requests_sent_owe_an_answer_only_on_an_open_stream() {
    let t0 = Instant::now();
    let mut d = working(t0);
    d.handle_sent(t0);
    assert_eq!(actions(&mut d), [StreamAction::Owed]);
    d.handle_ended(t0, StreamEnd::Finished);
    actions(&mut d);
    d.handle_sent(t0);
    assert_eq!(actions(&mut d), []);
}

#[test]
fn no_work_left_closes_the_stream_and_exits_for_good() {
    let t0 = Instant::now();
    let mut d = working(t0);
    d.handle_wanted(t0, false);
    assert_eq!(
        actions(&mut d),
        [StreamAction::Close(CloseReason::Drop), StreamAction::Exit]
    );
    assert!(d.is_exited());
    d.handle_wanted(t0, true);
    assert_eq!(actions(&mut d), []);
    assert_eq!(d.poll_timeout(), None);

    let mut d = working(t0);
    d.handle_client_closed(t0);
    assert_eq!(
        actions(&mut d),
        [StreamAction::Fail(FailCause::Closed), StreamAction::Exit]
    );
}

#[test]
fn reopens_stay_bounded_by_the_backoff_whatever_the_server_does() {
    // A server that accepts every stream and breaks it at once, after one
    // message: at most one immediate reopen per stable period.
    let t0 = Instant::now();
    let mut d = StreamDriver::new(config(), 9);
    let mut now = t0;
    let mut opens = 0;
    while now < t0 + Duration::from_secs(10) {
        d.handle_timeout(now);
        d.handle_wanted(now, true);
        if actions(&mut d).contains(&StreamAction::Open) {
            opens += 1;
            d.handle_opened(now);
            d.handle_message(now);
            d.handle_ended(now, StreamEnd::Failed);
            actions(&mut d);
        }
        now = d.poll_timeout().unwrap_or(now + ms(1)).max(now + ms(1));
    }
    // 2 s max backoff (jitter 0.5: at least 1 s) over 10 s.
    assert!(opens <= 16, "{opens} opens in 10 s");
}

#[test]
fn recipe_retries_wait_50ms_doubling_to_1s_and_reset_on_success() {
    let t0 = Instant::now();
    let mut r = Retry::new(RetryConfig::recipe(), 1);
    let waits: Vec<Duration> = (0..8)
        .map(|_| r.handle_failure(t0).expect("never gives up") - t0)
        .collect();
    assert_eq!(
        waits,
        [50, 100, 200, 400, 800, 1000, 1000, 1000].map(ms).to_vec()
    );
    r.handle_success();
    assert_eq!(r.handle_failure(t0), Some(t0 + ms(50)));
    let mut c = Retry::new(RetryConfig::cleanup(), 1);
    assert_eq!((0..20).filter_map(|_| c.handle_failure(t0)).count(), 7);
}

#[test]
fn one_rule_for_refusals_about_the_token() {
    let st = |code, msg: &str| Status::new(code, msg);
    for s in [
        st(Code::Unauthenticated, "etcdserver: invalid auth token"),
        st(Code::Unauthenticated, "some proxy said no"),
        st(Code::InvalidArgument, "etcdserver: user name is empty"),
        st(Code::Unknown, "etcdserver: revision of auth store is old"),
    ] {
        assert_eq!(auth_refusal(&s), Some(AuthRefusal::Token), "{s:?}");
    }
    assert_eq!(
        auth_refusal(&st(Code::PermissionDenied, "etcdserver: permission denied")),
        Some(AuthRefusal::Permission)
    );
    assert_eq!(
        auth_refusal_of_reason(
            "rpc error: code = PermissionDenied desc = etcdserver: permission denied"
        ),
        Some(AuthRefusal::Permission)
    );
    assert_eq!(
        auth_refusal_of_reason(
            "rpc error: code = Unauthenticated desc = etcdserver: invalid auth token"
        ),
        Some(AuthRefusal::Token)
    );
    for s in [
        st(Code::Unavailable, "etcdserver: no leader"),
        st(
            Code::FailedPrecondition,
            "etcdserver: authentication failed, invalid user ID or password",
        ),
    ] {
        assert_eq!(auth_refusal(&s), None, "{s:?}");
    }
    assert_eq!(
        auth_refusal_of_reason("etcdserver: mvcc: required revision has been compacted"),
        None
    );
}
