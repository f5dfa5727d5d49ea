//! LeaseKeeper with explicit time.

use std::time::{Duration, Instant};

use etcdv3_core::streams::lease::{LeaseEvent, LeaseKeeper};
use etcdv3_proto::etcdserverpb::LeaseKeepAliveResponse;

fn resp(id: i64, ttl: i64) -> LeaseKeepAliveResponse {
    LeaseKeepAliveResponse {
        id,
        ttl,
        ..Default::default()
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn transmits(k: &mut LeaseKeeper, now: Instant) -> Vec<i64> {
    std::iter::from_fn(|| k.poll_transmit(now))
        .map(|r| r.id)
        .collect()
}

#[test]
fn first_renewal_is_immediate_then_every_third_of_ttl() {
    let t0 = Instant::now();
    let mut k = LeaseKeeper::new();
    k.keep(t0, 1, 30);
    assert_eq!(k.poll_timeout(), Some(t0));
    assert_eq!(transmits(&mut k, t0), vec![1]);
    k.handle_response(t0, resp(1, 30));
    assert_eq!(k.poll_event(), Some(LeaseEvent::Renewed { id: 1, ttl: 30 }));
    assert_eq!(k.poll_timeout(), Some(t0 + secs(10)));
    assert!(transmits(&mut k, t0 + secs(9)).is_empty());
    assert_eq!(transmits(&mut k, t0 + secs(10)), vec![1]);
    assert_eq!(k.deadline(1), Some(t0 + secs(30)));
}

#[test]
fn ttl_from_the_server_replaces_the_granted_one() {
    let t0 = Instant::now();
    let mut k = LeaseKeeper::new();
    k.keep(t0, 1, 30);
    transmits(&mut k, t0);
    k.handle_response(t0, resp(1, 6));
    assert_eq!(k.ttl(1), Some(6));
    assert_eq!(k.poll_timeout(), Some(t0 + secs(2)));
}

#[test]
fn zero_ttl_means_expired_and_stops_keeping() {
    let t0 = Instant::now();
    let mut k = LeaseKeeper::new();
    k.keep(t0, 5, 10);
    transmits(&mut k, t0);
    k.handle_response(t0, resp(5, 0));
    assert_eq!(k.poll_event(), Some(LeaseEvent::Expired { id: 5 }));
    assert!(!k.contains(5));
    assert!(k.is_empty());
    assert_eq!(k.poll_timeout(), None);
    assert!(transmits(&mut k, t0 + secs(100)).is_empty());
}

#[test]
fn deadline_passing_without_renewal_expires() {
    let t0 = Instant::now();
    let mut k = LeaseKeeper::new();
    k.keep(t0, 5, 9);
    transmits(&mut k, t0);
    k.handle_response(t0, resp(5, 9));
    k.poll_event();
    // Renewals are sent but never answered.
    for s in [3, 6] {
        k.handle_timeout(t0 + secs(s));
        assert_eq!(transmits(&mut k, t0 + secs(s)), vec![5]);
        assert_eq!(k.poll_event(), None);
    }
    k.handle_timeout(t0 + secs(8));
    assert_eq!(k.poll_event(), None, "not before the deadline");
    assert_eq!(k.deadline(5), Some(t0 + secs(9)));
    k.handle_timeout(t0 + secs(9));
    assert_eq!(k.poll_event(), Some(LeaseEvent::MayHaveExpired { id: 5 }));
    // Past the local deadline the lease may be gone, or extended by a new
    // leader (which renews every lease for a TTL when it takes over): the
    // keeper keeps trying for one more TTL before giving up.
    k.handle_timeout(t0 + secs(17));
    assert_eq!(k.poll_event(), None, "still renewing after the deadline");
    assert!(k.contains(5));
    k.handle_timeout(t0 + secs(18));
    assert_eq!(k.poll_event(), Some(LeaseEvent::GaveUp { id: 5 }));
    assert!(k.is_empty());
}

/// Issue 17: a lease whose renewals go unanswered is reported as possibly
/// expired AT its local deadline (send time of the last answered renewal +
/// TTL), not one TTL later: the server may expire it at the deadline and
/// another client may own what it guarded from then on.
#[test]
fn may_have_expired_is_reported_at_the_local_deadline_not_a_ttl_later() {
    let t0 = Instant::now();
    let mut k = LeaseKeeper::new();
    k.keep(t0, 5, 5);
    assert_eq!(transmits(&mut k, t0), vec![5]);
    let sent = t0 + Duration::from_millis(1700);
    k.handle_timeout(sent);
    assert_eq!(transmits(&mut k, sent), vec![5]);
    k.handle_response(sent + Duration::from_millis(300), resp(5, 5));
    // The first request's answer came late: the last answered renewal is
    // the one sent at t0, then the one sent at `sent`.
    k.handle_response(sent + Duration::from_millis(400), resp(5, 5));
    while k.poll_event().is_some() {}
    assert_eq!(k.valid_until(5), Some(sent + secs(5)));
    // From now on nothing is answered (cut off from every member).
    let mut now = sent + Duration::from_millis(400);
    let mut reported = None;
    while now < sent + secs(20) {
        // Drive the keeper as a driver does: at each poll_timeout.
        now = k.poll_timeout().expect("a lease is kept").max(now);
        k.handle_timeout(now);
        while k.poll_transmit(now).is_some() {}
        while let Some(ev) = k.poll_event() {
            if ev == (LeaseEvent::MayHaveExpired { id: 5 }) && reported.is_none() {
                reported = Some(now);
            }
        }
        if reported.is_some() {
            break;
        }
        now += Duration::from_millis(1);
    }
    // Driven at least every millisecond: reported within one step of the
    // deadline, not before it.
    let reported = reported.expect("reported");
    assert!(reported >= sent + secs(5), "not before the local deadline");
    assert!(
        reported <= sent + secs(5) + Duration::from_millis(1),
        "reported {:?} after the local deadline",
        reported - (sent + secs(5))
    );
    assert!(k.may_have_expired(5));
    assert!(k.contains(5), "still renewed after the deadline");
    assert!(
        k.poll_transmit(sent + secs(7)).is_some(),
        "renewals go on past the deadline"
    );
    assert_eq!(k.gives_up_at(5), Some(sent + secs(10)));
}

/// Issue 17: after the local deadline a plain keeper keeps renewing; a new
/// leader that extended the lease answers TTL > 0: the keeper says the
/// lease is alive again, certainly until the answered request's send time
/// + TTL.
#[test]
fn a_late_answer_with_a_ttl_makes_the_lease_alive_again() {
    let t0 = Instant::now();
    let mut k = LeaseKeeper::new();
    k.keep(t0, 5, 6);
    transmits(&mut k, t0);
    k.handle_response(t0, resp(5, 6));
    assert_eq!(k.poll_event(), Some(LeaseEvent::Renewed { id: 5, ttl: 6 }));
    k.handle_stream_lost(t0 + secs(1));
    k.handle_timeout(t0 + secs(6));
    assert_eq!(k.poll_event(), Some(LeaseEvent::MayHaveExpired { id: 5 }));
    k.handle_timeout(t0 + secs(7));
    assert_eq!(k.poll_event(), None, "reported once per lapse");
    // A new stream: renewed at once, answered 1 s later with TTL 6.
    let t = t0 + secs(8);
    k.handle_stream_lost(t);
    assert_eq!(transmits(&mut k, t), vec![5]);
    k.handle_response(t + secs(1), resp(5, 6));
    assert_eq!(k.poll_event(), Some(LeaseEvent::Renewed { id: 5, ttl: 6 }));
    assert!(!k.may_have_expired(5));
    assert_eq!(k.valid_until(5), Some(t + secs(6)));
    // A second lapse is reported again.
    k.handle_stream_lost(t + secs(2));
    k.handle_timeout(t + secs(6));
    assert_eq!(k.poll_event(), Some(LeaseEvent::MayHaveExpired { id: 5 }));
}

/// An answer that arrives after the whole TTL it grants is over says the
/// lease existed when the server processed it, not that it is alive now.
#[test]
fn an_answer_older_than_its_ttl_does_not_make_the_lease_alive() {
    let t0 = Instant::now();
    let mut k = LeaseKeeper::new();
    k.keep(t0, 5, 3);
    assert_eq!(transmits(&mut k, t0), vec![5]);
    k.handle_response(t0 + secs(4), resp(5, 3));
    assert_eq!(k.poll_event(), Some(LeaseEvent::MayHaveExpired { id: 5 }));
    assert!(k.may_have_expired(5));
    k.handle_timeout(t0 + secs(4));
    assert_eq!(k.poll_event(), None);
}

#[test]
fn zero_ttl_after_the_deadline_confirms_the_expiry() {
    let t0 = Instant::now();
    let mut k = LeaseKeeper::new();
    k.keep(t0, 5, 3);
    transmits(&mut k, t0);
    k.handle_timeout(t0 + secs(3));
    assert_eq!(k.poll_event(), Some(LeaseEvent::MayHaveExpired { id: 5 }));
    assert_eq!(transmits(&mut k, t0 + secs(3)), vec![5]);
    k.handle_response(t0 + secs(4), resp(5, 0));
    assert_eq!(k.poll_event(), Some(LeaseEvent::Expired { id: 5 }));
    assert!(k.is_empty());
}

#[test]
fn deadline_counts_from_the_oldest_unanswered_request() {
    let t0 = Instant::now();
    let mut k = LeaseKeeper::new();
    k.keep(t0, 1, 9);
    transmits(&mut k, t0);
    k.handle_response(t0 + secs(2), resp(1, 9));
    // The server may have restarted the TTL as early as t0.
    assert_eq!(k.deadline(1), Some(t0 + secs(9)));
    assert_eq!(k.poll_timeout(), Some(t0 + secs(5)));
}

#[test]
fn stream_loss_renews_everything_at_once() {
    let t0 = Instant::now();
    let mut k = LeaseKeeper::new();
    k.keep(t0, 1, 30);
    k.keep(t0, 2, 60);
    assert_eq!(transmits(&mut k, t0), vec![1, 2]);
    k.handle_response(t0, resp(1, 30));
    k.handle_response(t0, resp(2, 60));
    let t1 = t0 + secs(1);
    assert!(transmits(&mut k, t1).is_empty());
    k.handle_stream_lost(t1);
    assert_eq!(k.poll_timeout(), Some(t1));
    assert_eq!(transmits(&mut k, t1), vec![1, 2]);
    // Deadlines are unchanged by the loss itself.
    assert_eq!(k.deadline(1), Some(t0 + secs(30)));
    // Without a stream, the next thing to report is the earliest local
    // deadline (the lease may have expired from then on).
    assert_eq!(k.next_deadline(), Some(t0 + secs(30)));
}

#[test]
fn removed_lease_is_not_renewed_and_late_responses_are_ignored() {
    let t0 = Instant::now();
    let mut k = LeaseKeeper::new();
    k.keep(t0, 1, 30);
    transmits(&mut k, t0);
    k.remove(1);
    k.handle_response(t0, resp(1, 30));
    assert_eq!(k.poll_event(), None);
    k.handle_timeout(t0 + secs(100));
    assert_eq!(k.poll_event(), None);
    assert!(transmits(&mut k, t0 + secs(100)).is_empty());
}

#[test]
fn keep_twice_does_not_reset_the_schedule() {
    let t0 = Instant::now();
    let mut k = LeaseKeeper::new();
    k.keep(t0, 1, 30);
    transmits(&mut k, t0);
    k.handle_response(t0, resp(1, 30));
    k.keep(t0 + secs(1), 1, 30);
    assert_eq!(k.len(), 1);
    assert_eq!(k.poll_timeout(), Some(t0 + secs(10)));
}

#[test]
fn unanswered_request_is_resent_after_an_interval() {
    let t0 = Instant::now();
    let mut k = LeaseKeeper::new();
    k.keep(t0, 1, 3);
    assert_eq!(transmits(&mut k, t0), vec![1]);
    assert!(transmits(&mut k, t0 + Duration::from_millis(999)).is_empty());
    assert_eq!(transmits(&mut k, t0 + secs(1)), vec![1]);
}

/// Bug 11 (issue 10): with two requests unanswered (the first one late, the
/// second sent after a renewal interval), each answer renews from the
/// instant its own request was sent. The second answer used to count from
/// its arrival, so the keeper believed the lease alive after the server
/// let it expire.
#[test]
fn every_answer_renews_from_its_own_send_time() {
    let t0 = Instant::now();
    let mut k = LeaseKeeper::new();
    k.keep(t0, 1, 9);
    assert_eq!(transmits(&mut k, t0), vec![1]);
    // Unanswered for a renewal interval: sent again at t0 + 3 s.
    assert_eq!(transmits(&mut k, t0 + secs(3)), vec![1]);
    k.handle_response(t0 + secs(4), resp(1, 9));
    assert_eq!(k.poll_event(), Some(LeaseEvent::Renewed { id: 1, ttl: 9 }));
    assert_eq!(k.deadline(1), Some(t0 + secs(9)));
    // The answer to the second request arrives 5 s after it was sent: the
    // server restarted the TTL no earlier than t0 + 3 s.
    k.handle_response(t0 + secs(8), resp(1, 9));
    assert_eq!(k.poll_event(), Some(LeaseEvent::Renewed { id: 1, ttl: 9 }));
    assert_eq!(k.deadline(1), Some(t0 + secs(12)));
    // The next request, answered at once, renews from its send time.
    let t = t0 + secs(11);
    assert_eq!(transmits(&mut k, t), vec![1]);
    k.handle_response(t + Duration::from_millis(500), resp(1, 9));
    assert_eq!(k.deadline(1), Some(t + secs(9)));
}

/// An answer that matches no request sent on the current stream (the
/// stream was replaced in between) does not extend the deadline.
#[test]
fn answers_to_requests_of_a_lost_stream_do_not_renew() {
    let t0 = Instant::now();
    let mut k = LeaseKeeper::new();
    k.keep(t0, 1, 9);
    transmits(&mut k, t0);
    k.handle_response(t0, resp(1, 9));
    k.poll_event();
    assert_eq!(transmits(&mut k, t0 + secs(3)), vec![1]);
    k.handle_stream_lost(t0 + secs(4));
    k.handle_response(t0 + secs(5), resp(1, 9));
    assert_eq!(k.poll_event(), None);
    assert_eq!(k.deadline(1), Some(t0 + secs(9)));
}

/// Bug 12 (issue 10): a TTL near `i64::MAX` from a hostile server used to
/// overflow `Instant + Duration` and panic; it is scheduled as `MAX_TTL`.
#[test]
fn huge_ttl_is_clamped_not_a_panic() {
    use etcdv3_core::streams::lease::MAX_TTL;
    let t0 = Instant::now();
    let mut k = LeaseKeeper::new();
    k.keep(t0, 1, i64::MAX);
    assert_eq!(k.deadline(1), Some(t0 + MAX_TTL));
    assert_eq!(transmits(&mut k, t0), vec![1]);
    k.handle_response(t0, resp(1, i64::MAX));
    assert_eq!(
        k.poll_event(),
        Some(LeaseEvent::Renewed {
            id: 1,
            ttl: i64::MAX
        })
    );
    assert_eq!(k.ttl(1), Some(i64::MAX));
    assert_eq!(k.deadline(1), Some(t0 + MAX_TTL));
    assert_eq!(k.poll_timeout(), Some(t0 + MAX_TTL / 3));
    // Negative and huge values in between never panic either.
    for ttl in [i64::MAX - 1, 1 << 62, u32::MAX as i64 * 1000, -1, i64::MIN] {
        let mut k = LeaseKeeper::new();
        k.keep(t0, 2, ttl);
        transmits(&mut k, t0);
        k.handle_response(t0, resp(2, ttl));
        k.handle_timeout(t0 + secs(1));
        let _ = k.poll_timeout();
    }
}
