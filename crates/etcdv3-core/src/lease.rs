//! Lease keep-alive scheduling over one `LeaseKeepAlive` stream.
//!
//! [`LeaseKeeper`] is sans-IO and reads no clock: every input takes the
//! current [`Instant`]. Each kept lease is renewed at a third of its TTL;
//! a lease the server answers with TTL 0 (revoked or already expired) is
//! reported expired, and so is one left unanswered for a whole TTL past its
//! local deadline (stream down, server unreachable): a new leader renews
//! every lease for a TTL when it takes over, so a lease past its local
//! deadline may still be alive and is renewed until then.
//!
//! The local deadline of a lease is computed from the time the keep-alive
//! request a response answers was sent (the server restarts the TTL when it
//! processes the request, which is no earlier than that), so the keeper never
//! believes a lease alive longer than the server does. Responses on one
//! stream come in request order, so each response answers the oldest request
//! still unanswered.
//!
//! TTLs from the server are not trusted to be sane: a TTL beyond
//! [`MAX_TTL`] (etcd's own limit is about 285 years; a hostile server may say
//! `i64::MAX`) is scheduled as [`MAX_TTL`], so no instant arithmetic can
//! overflow.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use etcdv3_core::lease::{LeaseEvent, LeaseKeeper};
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

/// What happened to a kept lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseEvent {
    /// The server renewed the lease for `ttl` seconds.
    Renewed {
        /// Lease id.
        id: i64,
        /// TTL in seconds granted by this renewal.
        ttl: i64,
    },
    /// The lease expired (the server answered TTL 0), or the keeper gave it
    /// up: no renewal was answered for a whole TTL past its local deadline.
    /// It is no longer kept. (Until when the lease is *certainly* alive:
    /// [`LeaseKeeper::deadline`].)
    Expired {
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
    /// When each unanswered request was sent, oldest first.
    sent: VecDeque<Instant>,
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

/// When the keeper stops renewing a lease nobody answered for. The local
/// deadline ([`LeaseKeeper::deadline`]) is when the lease is *certainly*
/// alive until; past it the lease *may* have expired, but the server may
/// also have extended it: a new leader renews every lease for a whole TTL
/// when it takes over (etcd's lessor promotion), which is exactly when
/// renewals go unanswered. Giving up at the local deadline killed leases the
/// server still held; the keeper keeps renewing for one more TTL, and
/// reports the lease expired then, or at once when the server answers TTL 0.
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

    /// The local expiry deadline of lease `id`.
    pub fn deadline(&self, id: i64) -> Option<Instant> {
        self.leases.get(&id).map(|k| k.deadline)
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
        self.events.push_back(LeaseEvent::Renewed {
            id: resp.id,
            ttl: resp.ttl,
        });
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
            .map(|k| k.next_renewal.min(give_up_at(k)))
            .chain(self.stuck_at())
            .min()
    }

    /// The earliest instant a lease is given up: what a driver without a
    /// stream waits for (renewals cannot be sent then).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.leases.values().map(give_up_at).min()
    }

    /// Report the leases given up as expired: no answer for a whole TTL past
    /// their local deadline (one TTL after it, see `give_up_at`).
    pub fn handle_timeout(&mut self, now: Instant) {
        let expired: Vec<i64> = self
            .leases
            .iter()
            .filter(|(_, k)| give_up_at(k) <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            self.leases.remove(&id);
            self.events.push_back(LeaseEvent::Expired { id });
        }
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<LeaseEvent> {
        self.events.pop_front()
    }
}
