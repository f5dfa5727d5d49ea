//! Lease keep-alive scheduling over one `LeaseKeepAlive` stream.
//!
//! [`LeaseKeeper`] is sans-IO and reads no clock: every input takes the
//! current [`Instant`]. Each kept lease is renewed at a third of its TTL.
//!
//! The **local deadline** of a lease ([`LeaseKeeper::valid_until`]) is the
//! instant the last answered renewal was *sent* plus the TTL that answer
//! granted (the server restarts the TTL when it processes the request, which
//! is no earlier than that), so the keeper never believes a lease alive
//! longer than the server does. Responses on one stream come in request
//! order, so each response answers the oldest request still unanswered.
//!
//! What the keeper reports ([`LeaseEvent`]):
//!
//! * [`LeaseEvent::Renewed`]: the server answered a renewal with a TTL > 0;
//!   the lease is certainly alive until its new local deadline.
//! * [`LeaseEvent::MayHaveExpired`], **at** the local deadline when no
//!   renewal was answered in time (stream down, members unreachable): the
//!   server may have expired the lease by now, and another client may
//!   already hold what it guarded. Nothing is confirmed. The lease is still
//!   kept: a new leader renews every lease for a whole TTL when it takes
//!   over (etcd's lessor promotion), which is exactly when renewals go
//!   unanswered, so the keeper keeps renewing for one more TTL; an answer
//!   with TTL > 0 then reports [`LeaseEvent::Renewed`] again (alive again).
//!   Holders of ownership (sessions, locks, leaders) treat it as lost.
//! * [`LeaseEvent::Expired`]: **confirmed**: the server answered TTL 0 (the
//!   lease was revoked, expired, or never existed). No longer kept.
//! * [`LeaseEvent::GaveUp`]: no renewal was answered for a whole TTL past
//!   the local deadline: the keeper stops keeping the lease. Its expiry is
//!   still not confirmed by the server.
//!
//! TTLs from the server are not trusted to be sane: a TTL beyond
//! [`MAX_TTL`] (etcd's own limit is about 285 years; a hostile server may say
//! `i64::MAX`) is scheduled as [`MAX_TTL`], so no instant arithmetic can
//! overflow.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use etcdv3_core::streams::lease::{LeaseEvent, LeaseKeeper};
//! use etcdv3_proto::etcdserverpb::LeaseKeepAliveResponse;
//!
//! let t0 = Instant::now();
//! let mut k = LeaseKeeper::new();
//! k.keep(t0, 7, 9);
//! assert_eq!(k.poll_transmit(t0).map(|r| r.id), Some(7)); // renew at once
//! k.handle_response(t0, LeaseKeepAliveResponse { id: 7, ttl: 9, ..Default::default() });
//! assert_eq!(k.poll_event(), Some(LeaseEvent::Renewed { id: 7, ttl: 9 }));
//! assert_eq!(k.poll_timeout(), Some(t0 + Duration::from_secs(3))); // next renewal
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use etcdv3_proto::etcdserverpb::{LeaseKeepAliveRequest, LeaseKeepAliveResponse};

/// What happened to a kept lease (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseEvent {
    /// The server renewed the lease for `ttl` seconds: it is certainly alive
    /// until [`LeaseKeeper::valid_until`] (the renewal's send time + `ttl`).
    /// After [`MayHaveExpired`](LeaseEvent::MayHaveExpired) this means the
    /// lease is alive again (the server extended it meanwhile).
    Renewed {
        /// Lease id.
        id: i64,
        /// TTL in seconds granted by this renewal.
        ttl: i64,
    },
    /// The local deadline passed without an answered renewal: the lease
    /// **may have expired** on the server (not confirmed). Reported once,
    /// at the deadline; the lease is still kept and renewed until
    /// [`GaveUp`](LeaseEvent::GaveUp), and a later answer with TTL > 0
    /// reports [`Renewed`](LeaseEvent::Renewed) again.
    MayHaveExpired {
        /// Lease id.
        id: i64,
    },
    /// **Confirmed** expiry: the server answered TTL 0 (the lease was
    /// revoked, expired, or does not exist). It is no longer kept.
    Expired {
        /// Lease id.
        id: i64,
    },
    /// The keeper stopped keeping the lease: no renewal was answered for a
    /// whole TTL past its local deadline (see [`LeaseKeeper::gives_up_at`]).
    /// The server did not confirm the expiry. Always preceded by
    /// [`MayHaveExpired`](LeaseEvent::MayHaveExpired).
    GaveUp {
        /// Lease id.
        id: i64,
    },
}

/// The longest TTL the keeper schedules with (one year): a longer TTL from
/// the server is kept alive as if it were this long (renewed every four
/// months, believed alive for a year after a renewal), which is never longer
/// than the server believes.
pub const MAX_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

/// Most send times remembered per lease while its requests go unanswered
/// (one is added per renewal interval, so a lease expires long before this
/// fills up). Past it, new sends are not remembered: the responses are then
/// matched with older send times, which only makes the deadline earlier.
const MAX_UNANSWERED: usize = 16;

#[derive(Debug, Clone)]
struct Kept {
    ttl: i64,
    next_renewal: Instant,
    deadline: Instant,
    /// [`LeaseEvent::MayHaveExpired`] was reported for the current deadline
    /// (cleared by a renewal that moves the deadline past the present).
    lapsed: bool,
    /// When each unanswered request was sent, oldest first.
    sent: VecDeque<Instant>,
}

impl Kept {
    /// The next instant the keeper must act for this lease on its own:
    /// the deadline (to report it), then the give-up instant.
    fn next_deadline(&self) -> Instant {
        if self.lapsed {
            give_up_at(self)
        } else {
            self.deadline
        }
    }
}

/// Renew after a third of the TTL, but not more often than every 100 ms.
fn renew_interval(ttl: i64) -> Duration {
    (ttl_duration(ttl) / 3).max(Duration::from_millis(100))
}

/// The TTL as a duration, clamped to `0..=MAX_TTL`.
fn ttl_duration(ttl: i64) -> Duration {
    Duration::from_secs(u64::try_from(ttl).unwrap_or(0)).min(MAX_TTL)
}

/// `at + d` without overflow: an instant that cannot be represented is
/// replaced by the latest one that can, searched by halving `d` (`d` is at
/// most [`MAX_TTL`], so this is only ever reached on exotic clocks).
fn later(at: Instant, d: Duration) -> Instant {
    let mut d = d;
    loop {
        if let Some(t) = at.checked_add(d) {
            return t;
        }
        if d.is_zero() {
            return at;
        }
        d /= 2;
    }
}

/// The local deadline of a renewal sent at `sent` and answered with `ttl`
/// seconds: until when the lease is certainly alive (TTLs clamped to
/// `0..=`[`MAX_TTL`], never overflowing).
pub fn valid_until(sent: Instant, ttl: i64) -> Instant {
    later(sent, ttl_duration(ttl))
}

/// The TTL (seconds) of a concurrency session's lease when its caller gives
/// none: 60, as Go's `concurrency.NewSession`. A holder learns of a lost
/// lease within this long of the last answered renewal.
pub const DEFAULT_SESSION_TTL: i64 = 60;

/// How long to keep trying to revoke a lease whose holder gave it up at its
/// local deadline (so that those waiting for what it guarded need not wait
/// for the server to expire it): one TTL. By then the server has expired
/// the lease by itself, even one a new leader extended when it took over.
pub fn revoke_window(ttl: i64) -> Duration {
    ttl_duration(ttl).max(MIN_STUCK_AFTER)
}

/// When the keeper stops renewing a lease nobody answered for. The local
/// deadline ([`LeaseKeeper::valid_until`]) is when the lease is *certainly*
/// alive until; at it the keeper reports [`LeaseEvent::MayHaveExpired`].
/// The server may also have extended the lease: a new leader renews every
/// lease for a whole TTL when it takes over (etcd's lessor promotion), which
/// is exactly when renewals go unanswered. So the keeper keeps renewing for
/// one more TTL, and reports [`LeaseEvent::GaveUp`] then (or
/// [`LeaseEvent::Expired`] at once when the server answers TTL 0).
fn give_up_at(k: &Kept) -> Instant {
    later(k.deadline, ttl_duration(k.ttl))
}

/// Keeps leases alive; see the [module docs](self).
#[derive(Debug, Default)]
pub struct LeaseKeeper {
    leases: BTreeMap<i64, Kept>,
    events: VecDeque<LeaseEvent>,
    /// When the oldest keep-alive still unanswered on the current stream
    /// was sent (cleared by any answer and by a new stream).
    unanswered_since: Option<Instant>,
}

/// The shortest wait for a keep-alive answer before the stream counts as
/// stuck, whatever the TTL.
pub const MIN_STUCK_AFTER: Duration = Duration::from_millis(500);

impl LeaseKeeper {
    /// A keeper with no lease.
    pub fn new() -> Self {
        LeaseKeeper::default()
    }

    /// Keep lease `id`, granted (or last renewed) for `ttl` seconds, alive.
    /// `now` should be the instant the grant (or last renewal) request was
    /// sent: the local deadline is `now + ttl`. The first renewal is due at
    /// once. Keeping a lease that is already kept changes nothing.
    pub fn keep(&mut self, now: Instant, id: i64, ttl: i64) {
        self.leases.entry(id).or_insert(Kept {
            ttl,
            next_renewal: now,
            deadline: later(now, ttl_duration(ttl)),
            lapsed: false,
            sent: VecDeque::new(),
        });
    }

    /// Stop keeping lease `id` (it then expires on the server by itself).
    pub fn remove(&mut self, id: i64) {
        self.leases.remove(&id);
    }

    /// Whether lease `id` is kept.
    pub fn contains(&self, id: i64) -> bool {
        self.leases.contains_key(&id)
    }

    /// Whether no lease is kept: the stream may be closed.
    pub fn is_empty(&self) -> bool {
        self.leases.is_empty()
    }

    /// Number of kept leases.
    pub fn len(&self) -> usize {
        self.leases.len()
    }

    /// The last TTL known for lease `id`.
    pub fn ttl(&self, id: i64) -> Option<i64> {
        self.leases.get(&id).map(|k| k.ttl)
    }

    /// The local expiry deadline of lease `id`: the same instant as
    /// [`valid_until`](Self::valid_until).
    pub fn deadline(&self, id: i64) -> Option<Instant> {
        self.valid_until(id)
    }

    /// The instant until which lease `id` is **certainly** alive on the
    /// server: the send time of the last answered renewal plus the TTL that
    /// answer granted. Past it the lease may have expired (the keeper then
    /// reports [`LeaseEvent::MayHaveExpired`]). A fencing view without a
    /// round trip: act on what the lease guards only while `now` is before
    /// it. `None` when the lease is not kept.
    pub fn valid_until(&self, id: i64) -> Option<Instant> {
        self.leases.get(&id).map(|k| k.deadline)
    }

    /// Whether the local deadline of lease `id` passed without a renewal
    /// (reported as [`LeaseEvent::MayHaveExpired`] and not renewed since).
    pub fn may_have_expired(&self, id: i64) -> bool {
        self.leases.get(&id).is_some_and(|k| k.lapsed)
    }

    /// When the keeper gives lease `id` up if no renewal is answered: one
    /// TTL past its local deadline ([`LeaseEvent::GaveUp`]).
    pub fn gives_up_at(&self, id: i64) -> Option<Instant> {
        self.leases.get(&id).map(give_up_at)
    }

    /// The next keep-alive request due at `now`, if any. Call repeatedly
    /// until `None` while a stream is up. A request that goes unanswered is
    /// sent again after another renewal interval.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<LeaseKeepAliveRequest> {
        let (id, k) = self
            .leases
            .iter_mut()
            .find(|(_, k)| k.next_renewal <= now)?;
        k.next_renewal = later(now, renew_interval(k.ttl));
        if k.sent.len() < MAX_UNANSWERED {
            k.sent.push_back(now);
        }
        self.unanswered_since.get_or_insert(now);
        Some(LeaseKeepAliveRequest { id: *id })
    }

    /// Feed one keep-alive response. It answers the oldest request of that
    /// lease still unanswered on this stream: the renewal counts from the
    /// instant that request was sent. Responses for leases not kept, and
    /// renewals that answer no request sent on this stream, are ignored.
    pub fn handle_response(&mut self, now: Instant, resp: LeaseKeepAliveResponse) {
        self.unanswered_since = None;
        let Some(k) = self.leases.get_mut(&resp.id) else {
            return;
        };
        if resp.ttl <= 0 {
            self.leases.remove(&resp.id);
            self.events.push_back(LeaseEvent::Expired { id: resp.id });
            return;
        }
        // Fix (issue 10, bug 11): the renewal starts when the request it
        // answers was sent, for every response, not only the first one after
        // a quiet period.
        let Some(sent) = k.sent.pop_front() else {
            return;
        };
        let since = sent.min(now);
        k.ttl = resp.ttl;
        k.deadline = later(since, ttl_duration(resp.ttl));
        k.next_renewal = later(now, renew_interval(resp.ttl));
        if k.deadline > now {
            k.lapsed = false;
            self.events.push_back(LeaseEvent::Renewed {
                id: resp.id,
                ttl: resp.ttl,
            });
        } else if !k.lapsed {
            // An answer so late that the TTL it granted is already over:
            // the lease may have expired since the server renewed it.
            k.lapsed = true;
            self.events
                .push_back(LeaseEvent::MayHaveExpired { id: resp.id });
        }
    }

    /// The stream failed: requests in flight are lost; every lease is
    /// renewed as soon as a new stream is up (the next
    /// [`poll_transmit`](Self::poll_transmit)).
    pub fn handle_stream_lost(&mut self, now: Instant) {
        self.unanswered_since = None;
        for k in self.leases.values_mut() {
            k.next_renewal = now;
            k.sent.clear();
        }
    }

    /// When the current stream counts as stuck: a keep-alive has gone
    /// unanswered for a whole renewal interval (at least
    /// [`MIN_STUCK_AFTER`]), so the next renewal is due and the last one
    /// never came back. A member that answers pings can still hold
    /// keep-alives that long (a follower forwarding them to a leader that
    /// hangs): the owner then replaces the stream, on another member if it
    /// can, before the leases run out.
    pub fn stuck_at(&self) -> Option<Instant> {
        let since = self.unanswered_since?;
        let interval = self.leases.values().map(|k| renew_interval(k.ttl)).min()?;
        Some(since + interval.max(MIN_STUCK_AFTER))
    }

    /// Whether the current stream is stuck at `now` (see
    /// [`stuck_at`](Self::stuck_at)).
    pub fn is_stuck(&self, now: Instant) -> bool {
        self.stuck_at().is_some_and(|t| t <= now)
    }

    /// When [`handle_timeout`](Self::handle_timeout) (and
    /// [`poll_transmit`](Self::poll_transmit)) must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.leases
            .values()
            .map(|k| k.next_renewal.min(k.next_deadline()))
            .chain(self.stuck_at())
            .min()
    }

    /// The earliest instant the keeper must report something on its own (a
    /// local deadline not yet reported, or a lease given up): what a driver
    /// without a stream waits for (renewals cannot be sent then).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.leases.values().map(Kept::next_deadline).min()
    }

    /// Report the leases whose local deadline passed
    /// ([`LeaseEvent::MayHaveExpired`], once per lapse) and give up those
    /// unanswered for a whole TTL past it ([`LeaseEvent::GaveUp`]).
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut gave_up = Vec::new();
        for (id, k) in self.leases.iter_mut() {
            if !k.lapsed && k.deadline <= now {
                k.lapsed = true;
                self.events
                    .push_back(LeaseEvent::MayHaveExpired { id: *id });
            }
            if give_up_at(k) <= now {
                gave_up.push(*id);
            }
        }
        for id in gave_up {
            self.leases.remove(&id);
            self.events.push_back(LeaseEvent::GaveUp { id });
        }
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<LeaseEvent> {
        self.events.pop_front()
    }
}
