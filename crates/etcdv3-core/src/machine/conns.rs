//! Connections: opening (one attempt per endpoint at a time, spaced by
//! `Config::connect_backoff`; redials while every member is down), closing,
//! draining on GOAWAY or endpoint removal,
//! and failing everything on a connection over when it breaks.

use std::time::Instant;

use super::calls::CallState;
use super::liveness::ConnTimers;
use super::{Action, CallId, ConnId, Core, EndpointId, Event};
use crate::endpoints::endpoint::Endpoint;
use crate::endpoints::health::HealthReason;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ConnState {
    Connecting,
    Ready,
    /// GOAWAY received or endpoint removed: no new calls; closed when empty.
    Draining,
}

#[derive(Debug)]
pub(super) struct Conn {
    pub(super) endpoint: EndpointId,
    pub(super) state: ConnState,
    /// Unary attempts (and streams not yet established) outstanding.
    pub(super) attempts: u32,
    /// Of `attempts`, those of calls that wait for their turn by design
    /// (`Lock`, `Campaign`): they owe no answer by any time. Such a
    /// connection gets keepalive pings (as one carrying streams) instead of
    /// stall checks, and causes no status probe: a caller waiting on a
    /// live member costs the cluster no RPC.
    pub(super) waits: u32,
    /// A waiting call went out and nothing was heard since: the member owes
    /// one sign of life (a pong will do) before its silence is expected.
    pub(super) wait_unverified: bool,
    /// Established long-lived streams.
    pub(super) streams: u32,
    /// Established streams that owe a reply (a request was sent on them
    /// and nothing arrived since).
    pub(super) owed: u32,
    /// A status probe is out on the connection.
    pub(super) probing: bool,
    /// Last time anything arrived on the connection (or, when it had
    /// nothing owed, the time something became owed).
    pub(super) last_heard: Instant,
    /// Since when the connection has had no work, if it has none now.
    pub(super) idle_since: Option<Instant>,
    pub(super) last_ping: Option<Instant>,
    /// The server surely holds a strike reset for the next ping: it wrote
    /// something after handling every PING sent (what arrived after the
    /// last PONG). See [`Core::heard_from`](super::Core).
    pub(super) reset_certain: bool,
    /// At most this many of etcd's ping strikes can be counted on the
    /// connection now (early pings sent without a certain reset since the
    /// last one sent with it).
    pub(super) strike_bound: u8,
    /// PINGs sent whose PONG has not arrived yet.
    pub(super) pongs_owed: u32,
    /// A liveness ping is out: nothing was heard while something was owed.
    pub(super) checking: bool,
    /// Every deadline of the connection, in one table.
    pub(super) timers: ConnTimers,
    /// When the connection was opened.
    pub(super) opened_at: Instant,
}

impl Conn {
    pub(super) fn busy(&self) -> bool {
        self.attempts > 0 || self.streams > 0 || self.probing
    }

    /// Whether the connection owes the client bytes: a unary attempt, a
    /// stream request or a probe is unanswered.
    pub(super) fn owes(&self) -> bool {
        self.owes_answer() || self.wait_unverified
    }

    /// Whether an answer is due that should have come by now if the member
    /// were well: a unary attempt that does not wait by design, a stream
    /// request, a probe. A silent connection that owes one is suspected.
    pub(super) fn owes_answer(&self) -> bool {
        self.attempts > self.waits || self.owed > 0 || self.probing
    }

    /// Whether the connection needs keepalive pings: it carries streams or
    /// calls that wait by design, whose silence is expected.
    pub(super) fn kept_alive(&self) -> bool {
        self.streams > 0 || self.waits > 0
    }
}

/// What a broken connection leaves to do, once every connection's state is
/// up to date.
pub(super) enum Orphan {
    /// The call waited for the connection; it never went out.
    Waiting(CallId, EndpointId, String),
    /// The call's attempt or stream was on the connection.
    OnConn(CallId, String),
}

impl Core {
    // ------------------------------------------------------------------ inputs

    /// The connection is up (handshake done and one PING answered).
    pub fn handle_connected(&mut self, now: Instant, conn: ConnId) {
        self.observe(now);
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.state != ConnState::Connecting {
            return;
        }
        c.state = ConnState::Ready;
        c.last_heard = now;
        c.last_ping = Some(now);
        c.idle_since = Some(now);
        let ep = c.endpoint;
        let slot = &mut self.slots[ep.0];
        slot.rejected = None;
        slot.connect_backoff.reset();
        slot.reconnect = false;
        self.rearm(now, conn);
        let outage = !self.has_fresh_endpoint(now, &[]);
        self.health_success(ep, None);
        if self.slots[ep.0].removed {
            self.close_conn(conn);
        }
        // An election is awaited (the leader was seen to go while this
        // connection was being opened, e.g. it was the only one and went
        // with the leader): the member may still follow the old leader, so
        // mutations waiting for the connection are held like any other
        // (`ElectionWait`), and the member is asked whether it reaches a
        // leader (only the client's link to it may have broken).
        if self.cluster.election.is_some() {
            self.check_leader_elsewhere();
        }
        let waiting: Vec<CallId> = self.calls_where(|s| s == CallState::Connecting { conn });
        for id in waiting {
            if self.slots[ep.0].removed {
                self.queue_now(now, id);
            } else if !self.hold_for_election(now, id) {
                self.send(now, id, conn);
            }
        }
        if outage {
            // Calls waiting out an outage go to the member that came back,
            // now.
            let queued = self.calls_where(|s| matches!(s, CallState::Queued { .. }));
            for id in queued {
                if self.calls.get(&id).is_some_and(|c| c.retry_at.is_some()) {
                    self.queue_now(now, id);
                }
            }
        }
    }

    /// Connecting failed.
    pub fn handle_connect_failed(&mut self, now: Instant, conn: ConnId, reason: &str) {
        self.observe(now);
        let orphans =
            self.connection_failed(now, conn, HealthReason::ConnectFailed(reason.into()), false);
        self.adopt(now, orphans);
    }

    /// Connecting failed for a reason retrying will not fix until the
    /// configuration changes (the adapter's judgement: e.g. the server's TLS
    /// certificate is not trusted or not valid for the name, or the server
    /// refused the client's certificate). The endpoint is left out for
    /// [`super::Config::rejection_recheck`]; calls waiting for it go to
    /// other endpoints at once, and when every endpoint a call may use has
    /// rejected the client, the call fails at once with
    /// [`super::CallError::Rejected`] naming `reason` instead of retrying
    /// until its deadline.
    pub fn handle_connect_rejected(&mut self, now: Instant, conn: ConnId, reason: &str) {
        self.observe(now);
        if let Some(ep) = self.conns.get(&conn).map(|c| c.endpoint) {
            self.slots[ep.0].rejected = Some((now, reason.to_string()));
        }
        let orphans =
            self.connection_failed(now, conn, HealthReason::ConnectFailed(reason.into()), false);
        self.adopt(now, orphans);
    }

    /// An established connection closed or broke. Attempts on it are also
    /// reported one by one through [`Core::handle_outcome`] by the adapter;
    /// repeatable ones are re-sent at once regardless.
    pub fn handle_connection_closed(&mut self, now: Instant, conn: ConnId, reason: &str) {
        self.observe(now);
        let orphans = self.connection_failed(
            now,
            conn,
            HealthReason::ConnectionLost(reason.into()),
            false,
        );
        self.adopt(now, orphans);
    }

    /// The server sent GOAWAY (or the connection can take no new streams,
    /// e.g. its stream ids are used up): no new calls go on it; it is
    /// closed once the calls on it end, and the next call opens a new one.
    /// Streams the adapter knows were never processed (refused before they
    /// were sent) are reported as [`super::Outcome::Refused`] or
    /// [`super::Outcome::NotSent`]; a sent stream failed by the GOAWAY is
    /// reported [`super::Outcome::Lost`] unless the adapter can prove it was
    /// above the last-stream-id.
    pub fn handle_goaway(&mut self, now: Instant, conn: ConnId) {
        self.observe(now);
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        // A GOAWAY before the connection is up is a failed connect: the
        // calls waiting for it fail over now.
        if c.state == ConnState::Connecting {
            let orphans = self.connection_failed(
                now,
                conn,
                HealthReason::ConnectFailed("GOAWAY during connection setup".into()),
                true,
            );
            self.adopt(now, orphans);
            return;
        }
        c.state = ConnState::Draining;
        let ep = c.endpoint;
        if self.slots[ep.0].conn == Some(conn) {
            self.slots[ep.0].conn = None;
        }
        self.maybe_close_draining(conn);
    }

    /// Replace the endpoint set (e.g. after a member-list sync). Endpoints
    /// not in `endpoints` are removed: their idle connections closed at once,
    /// busy ones drained; they are never picked again, and their entries
    /// are dropped once nothing refers to them (here or on a later
    /// [`Core::handle_timeout`]), so their ids become unknown.
    pub fn set_endpoints(&mut self, now: Instant, endpoints: Vec<Endpoint>) {
        self.observe(now);
        for i in self.slots.ids() {
            if self.slots[i].removed || endpoints.contains(&self.slots[i].endpoint) {
                continue;
            }
            self.slots[i].removed = true;
            self.slots.removed += 1;
            self.balancer.unpin(i);
            let Some(conn) = self.slots[i].conn.take() else {
                continue;
            };
            let Some(c) = self.conns.get_mut(&conn) else {
                continue;
            };
            if c.state == ConnState::Connecting {
                self.close_conn(conn);
                let waiting = self.calls_where(|s| s == CallState::Connecting { conn });
                for id in waiting {
                    self.queue_now(now, id);
                }
            } else {
                c.state = ConnState::Draining;
                self.maybe_close_draining(conn);
            }
        }
        for ep in endpoints {
            if !self.slots.iter().any(|s| !s.removed && s.endpoint == ep) {
                self.add_endpoint(ep);
            }
        }
        self.reclaim_slots();
    }

    // --------------------------------------------------------------- internals

    /// Whether a connection attempt to `ep` may start at `now`
    /// ([`super::Config::connect_backoff`]).
    pub(super) fn may_connect(&self, now: Instant, ep: EndpointId) -> bool {
        self.slots[ep.0].connect_at.is_none_or(|t| t <= now)
    }

    /// Whether no endpoint is up: every one is down (or rejected, or
    /// removed). Calls then wait, and the endpoints are reconnected at
    /// their connection spacing so that a member that comes back is found
    /// at once.
    pub(super) fn full_outage(&self, now: Instant) -> bool {
        let recheck = self.config.rejection_recheck;
        !self
            .slots
            .iter()
            .any(|s| !s.removed && !s.is_rejected(now, recheck) && s.health.tier(now) <= 2)
    }

    /// When the next full-outage reconnect is due, if one is armed.
    pub(super) fn next_reconnect_at(&self) -> Option<Instant> {
        self.slots
            .iter()
            .filter(|s| s.reconnect && s.conn.is_none() && !s.removed)
            .filter_map(|s| s.connect_at.or(self.last_now))
            .min()
    }

    /// Reconnect the endpoints whose full-outage reconnect is due, while
    /// the outage lasts and calls that may use them wait; disarm the
    /// others. One attempt per endpoint at a time, spaced by
    /// [`super::Config::connect_backoff`], however many calls wait.
    pub(super) fn run_reconnects(&mut self, now: Instant) {
        let recheck = self.config.rejection_recheck;
        for i in self.slots.ids() {
            let s = &self.slots[i];
            if !s.reconnect || s.conn.is_some() || s.connect_at.is_some_and(|t| t > now) {
                continue;
            }
            let wanted = !s.removed
                && !s.is_rejected(now, recheck)
                && self.full_outage(now)
                && self.calls.values().any(|c| {
                    matches!(
                        c.state,
                        CallState::Queued { .. } | CallState::Connecting { .. }
                    ) && c.bound.is_none_or(|b| b.0 == i)
                });
            if wanted {
                self.open_conn(now, EndpointId(i));
            } else {
                self.slots[i].reconnect = false;
            }
        }
    }

    /// Open a connection to `ep` (the caller checked
    /// [`Core::may_connect`]).
    pub(super) fn open_conn(&mut self, now: Instant, ep: EndpointId) -> ConnId {
        let conn = ConnId(self.next_conn);
        self.next_conn += 1;
        let timers = ConnTimers {
            connect: Some(now + self.config.connect_timeout),
            ..ConnTimers::default()
        };
        self.conns.insert(
            conn,
            Conn {
                endpoint: ep,
                state: ConnState::Connecting,
                attempts: 0,
                waits: 0,
                wait_unverified: false,
                streams: 0,
                owed: 0,
                probing: false,
                last_heard: now,
                idle_since: None,
                last_ping: None,
                reset_certain: false,
                strike_bound: 0,
                pongs_owed: 0,
                checking: false,
                timers,
                opened_at: now,
            },
        );
        self.slots[ep.0].conn = Some(conn);
        self.actions.push_back(Action::Connect {
            conn,
            endpoint: ep,
            target: self.slots[ep.0].endpoint.clone(),
        });
        conn
    }

    /// An attempt went out on `conn`; `waits`: of a call that waits for its
    /// turn by design.
    pub(super) fn attempt_started(&mut self, now: Instant, conn: ConnId, waits: bool) {
        if let Some(k) = self.conns.get_mut(&conn) {
            if !k.owes() {
                // Silence counts from now, not from the last answer.
                k.last_heard = k.last_heard.max(now);
            }
            k.attempts += 1;
            if waits {
                k.waits += 1;
                k.wait_unverified = true;
            }
            k.idle_since = None;
        }
        self.rearm(now, conn);
    }

    /// A stream on `conn` now owes a reply.
    pub(super) fn owe(&mut self, now: Instant, conn: ConnId) {
        if let Some(k) = self.conns.get_mut(&conn) {
            if !k.owes() {
                k.last_heard = k.last_heard.max(now);
            }
            k.owed += 1;
        }
        self.rearm(now, conn);
    }

    /// A stream on `conn` got the reply it was owed.
    pub(super) fn repaid(&mut self, conn: ConnId) {
        if let Some(k) = self.conns.get_mut(&conn) {
            k.owed = k.owed.saturating_sub(1);
        }
    }

    /// The bookkeeping of an attempt or stream that left `conn`.
    pub(super) fn detach_attempt(
        &mut self,
        now: Instant,
        conn: ConnId,
        ep: EndpointId,
        streaming: bool,
        owed: bool,
        waits: bool,
    ) {
        if let Some(k) = self.conns.get_mut(&conn) {
            if owed {
                k.owed = k.owed.saturating_sub(1);
            }
            if waits {
                k.waits = k.waits.saturating_sub(1);
                if k.waits == 0 {
                    k.wait_unverified = false;
                }
            }
            if streaming {
                k.streams = k.streams.saturating_sub(1);
            } else {
                k.attempts = k.attempts.saturating_sub(1);
            }
            if !k.busy() {
                k.idle_since = Some(now);
            }
        }
        if let Some(s) = self.slots.get_mut(ep.0) {
            s.in_flight = s.in_flight.saturating_sub(1);
        }
        self.rearm(now, conn);
        self.maybe_close_draining(conn);
    }

    /// The connection is gone (or must go, when `close` is set): mark the
    /// endpoint down and hand back the calls it leaves behind. The caller
    /// retries them with [`Core::adopt`] once every connection's state is
    /// up to date (a pick must not see half-updated health).
    pub(super) fn connection_failed(
        &mut self,
        now: Instant,
        conn: ConnId,
        reason: HealthReason,
        close: bool,
    ) -> Vec<Orphan> {
        let Some(k) = self.conns.remove(&conn) else {
            return Vec::new();
        };
        self.stay_watchful(now);
        if close {
            self.actions.push_back(Action::Close { conn });
        }
        let ep = k.endpoint;
        if self.slots[ep.0].conn == Some(conn) {
            self.slots[ep.0].conn = None;
        }
        let next = if k.state == ConnState::Connecting {
            // A failed attempt: the next one waits a jittered delay, so a
            // refusing member is asked at most a few times a second.
            now + self.slots[ep.0].connect_backoff.next_delay(&mut self.rng)
        } else {
            // A connection that broke: the next attempt may start at once,
            // unless this one was opened moments ago (a member that accepts
            // connections and drops them is not asked more often than
            // one refusing them).
            k.opened_at + self.config.connect_backoff.min_delay()
        };
        let slot = &mut self.slots[ep.0];
        slot.connect_at = Some(slot.connect_at.map_or(next, |t| t.max(next)));
        if self.slots[ep.0].health.on_failure(now, &mut self.rng) {
            self.events.push_back(Event::HealthChanged {
                endpoint: ep,
                state: self.slots[ep.0].health.state(),
                reason: reason.clone(),
            });
        }
        if self.is_leader_endpoint(ep) {
            // Mutations in flight elsewhere were forwarded to this leader.
            // Losing the client's own connection to it does not prove the
            // leader gone (a link can break alone): look at the cluster at
            // once; an election (a higher term) ends them as outcome
            // unknown, a leader still in place lets them finish.
            self.cluster.urgent_probe = true;
            // The connection broke or went silent: if the member is gone
            // (killed, paused, removed), the followers forward to it until
            // they elect another leader, so mutations wait for that
            // election; if only the link broke, a follower's linearizable
            // read proves the leader alive and ends the wait at once.
            if matches!(
                reason,
                HealthReason::ConnectionLost(_) | HealthReason::PingTimeout
            ) {
                self.await_election(now);
                self.check_leader_elsewhere();
            }
        }
        let why = match &reason {
            HealthReason::ConnectFailed(e) => {
                format!("connect to {} failed: {e}", self.slots[ep.0].endpoint)
            }
            HealthReason::ConnectionLost(e) => {
                format!("connection to {} lost: {e}", self.slots[ep.0].endpoint)
            }
            HealthReason::PingTimeout => format!(
                "the client closed a silent connection to {}: a liveness ping went unanswered for {:?}",
                self.slots[ep.0].endpoint, self.config.ping_timeout
            ),
            other => format!("{}: {other:?}", self.slots[ep.0].endpoint),
        };
        let mut orphans: Vec<Orphan> = self
            .calls_where(|s| s == CallState::Connecting { conn })
            .into_iter()
            .map(|id| Orphan::Waiting(id, ep, why.clone()))
            .collect();
        // Repeatable attempts and streams on it end now; mutations wait for
        // the adapter's per-attempt report (or their deadline).
        for id in self.calls_on(conn) {
            let Some(c) = self.calls.get_mut(&id) else {
                continue;
            };
            if c.method.is_repeatable() || matches!(c.state, CallState::Streaming { .. }) {
                orphans.push(Orphan::OnConn(id, why.clone()));
            } else if close {
                // Its loss, which the adapter reports next, is the client's
                // doing: say so rather than the transport's "broken pipe".
                c.closed_by_client = Some(why.clone());
            }
        }
        orphans
    }

    /// Retry what a broken connection left behind.
    pub(super) fn adopt(&mut self, now: Instant, orphans: Vec<Orphan>) {
        for o in orphans {
            match o {
                Orphan::Waiting(id, ep, why) => self.retry(now, id, Some(ep), why),
                Orphan::OnConn(id, why) => self.attempt_lost(now, id, why),
            }
        }
    }

    pub(super) fn close_conn(&mut self, conn: ConnId) {
        if let Some(k) = self.conns.remove(&conn) {
            if self.slots[k.endpoint.0].conn == Some(conn) {
                self.slots[k.endpoint.0].conn = None;
            }
            self.actions.push_back(Action::Close { conn });
        }
    }

    pub(super) fn maybe_close_draining(&mut self, conn: ConnId) {
        if let Some(k) = self.conns.get(&conn) {
            if k.state == ConnState::Draining && !k.busy() {
                self.close_conn(conn);
            }
        }
    }
}
