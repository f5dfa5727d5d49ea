//! Each connection's timer table, in one place (quinn-proto's shape): the
//! deadlines are set here from the connection's state by [`Core::rearm`],
//! [`Conn::next_timer`] reads the table for `poll_timeout`, and
//! [`Core::fire_conn_timers`] acts on the entries that are due. Nothing
//! computes a deadline twice.
//!
//! What a stall means: the peer stopped answering, not that a call is
//! slow. A connection that owes the client bytes (a unary attempt, a stream
//! request, a probe) and from which nothing was heard for `stall_timeout`
//! gets a liveness PING (new calls avoid the endpoint meanwhile). A PONG
//! proves the member alive: the slow call keeps running there, nothing is
//! re-sent, and the next check waits until etcd's ping policy allows
//! another ping. A PING unanswered for `ping_timeout` closes the
//! connection: everything on it fails over.
//!
//! Calls that wait for their turn by design (`Lock`, `Campaign`) owe no
//! answer by any time: once the member was heard from after one went out
//! (one liveness PING after `stall_timeout`, without suspecting the
//! member), their connection gets keepalive pings like one carrying
//! streams (every `keepalive_interval`, etcd's ping policy allows one
//! every 5 s while a stream is open) and no stall check, and they cause
//! no status probe.

use std::time::{Duration, Instant};

use super::calls::CallState;
use super::conns::{Conn, ConnState, Orphan};
use super::{Action, CallId, ConnId, Core, MIN_PING_INTERVAL};
use crate::endpoints::health::HealthReason;
use crate::wire::status::{Code, Status};

/// Added to [`MIN_PING_INTERVAL`] between two pings that must not count as
/// a strike: the server measures the interval between arrivals, and a ping
/// sent exactly 5 s after the previous one arrives less than 5 s after it
/// whenever the previous one took longer on the way (the simulation's seed
/// 1000434 drew three such strikes on a connection to a muted member: a
/// GOAWAY `too_many_pings`).
const PING_SPACING_MARGIN: Duration = Duration::from_millis(500);

/// Strikes early pings may cost without a certain reset (etcd sends GOAWAY
/// `too_many_pings` on the third; one is left for pings spaced
/// [`MIN_PING_INTERVAL`] + [`PING_SPACING_MARGIN`] apart that arrive
/// closer than 5 s, delayed unequally on the way).
const EARLY_STRIKES: u8 = 1;

/// The deadlines of one connection.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct ConnTimers {
    /// The connection attempt times out.
    pub(super) connect: Option<Instant>,
    /// The PING that is out goes unanswered.
    pub(super) ping: Option<Instant>,
    /// The status probe that is out goes unanswered.
    pub(super) probe: Option<Instant>,
    /// Check whether the peer still answers (it owes bytes).
    pub(super) check: Option<Instant>,
    /// Keepalive PING of a connection carrying streams.
    pub(super) keepalive: Option<Instant>,
    /// Close the connection, idle since long enough.
    pub(super) idle: Option<Instant>,
}

impl ConnTimers {
    fn all(&self) -> [Option<Instant>; 6] {
        [
            self.connect,
            self.ping,
            self.probe,
            self.check,
            self.keepalive,
            self.idle,
        ]
    }
}

impl Conn {
    /// The connection's earliest deadline.
    pub(super) fn next_timer(&self) -> Option<Instant> {
        self.timers.all().into_iter().flatten().min()
    }

    /// When a ping may be sent without upsetting etcd's ping policy: as
    /// soon as needed when the server surely forgives it, or when it may
    /// cost at most one strike (etcd tolerates two; the other one is left
    /// for arrivals bunched up by the network); else
    /// [`MIN_PING_INTERVAL`] (plus a margin) after the previous one.
    fn ping_allowed_at(&self) -> Instant {
        match self.last_ping {
            Some(p) if !self.reset_certain && self.strike_bound >= EARLY_STRIKES => {
                p + MIN_PING_INTERVAL + PING_SPACING_MARGIN
            }
            _ => self.last_heard,
        }
    }
}

impl Core {
    /// The answer to an `Action::Ping` arrived.
    pub fn handle_pong(&mut self, now: Instant, conn: ConnId) {
        self.observe(now);
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.timers.ping = None;
        // PINGs are answered in order, and the adapters keep at most one
        // unanswered (one asked for meanwhile is dropped, see
        // `Action::Ping`): after a PONG none is owed. Counting down instead
        // would leave a dropped PING owed for good, and the connection's
        // early pings uncertain for its whole life.
        c.pongs_owed = 0;
        c.last_heard = c.last_heard.max(now);
        // The member is alive: calls waiting there for their turn wait
        // quietly from now on.
        c.wait_unverified = false;
        let was_checking = std::mem::replace(&mut c.checking, false);
        let ep = c.endpoint;
        self.rearm(now, conn);
        if was_checking {
            self.health_success(ep, None);
        }
    }

    /// Bytes of the response of unary call `call` arrived, before the whole
    /// answer did (a large range on a slow link: under ~50 Mbit/s a 5 MiB
    /// window takes longer than the ping timeout to drain, and a PONG waits
    /// behind it). The member is alive: its connection counts as heard
    /// from, and a liveness PING out on it no longer decides its fate (the
    /// answer arriving is the proof a PONG would have been). Call it for
    /// each chunk that leaves the answer incomplete; a whole answer is
    /// reported with [`Core::handle_outcome`].
    pub fn handle_call_progress(&mut self, now: Instant, call: CallId) {
        self.observe(now);
        if let Some(CallState::InFlight { conn, .. }) = self.calls.get(&call).map(|c| c.state) {
            self.heard_from(now, conn);
        }
    }

    /// Something arrived on `conn` from the server (a response or part of
    /// one, a stream message, a probe answer): it is alive. A PING still
    /// out no longer times the connection out: data behind which its PONG
    /// may be queued just proved the peer alive.
    ///
    /// etcd's server (grpc-go, `handlePing`) forgives the first ping that
    /// arrives after it wrote headers or data: strikes back to 0, that ping
    /// not checked; one reset, consumed by the next ping whatever its
    /// spacing. What arrives after the PONG of every PING sent was written
    /// after the server handled them: the next ping is surely forgiven
    /// (`reset_certain`). What arrives while a PONG is owed may have been
    /// written before that ping arrived, which then consumed the reset; an
    /// early ping on it may be a strike, counted in `strike_bound` (the
    /// simulation's seed 11996 drew two strikes that way over a lossy link,
    /// and a third from a bunched-up arrival: GOAWAY `too_many_pings`).
    pub(super) fn heard_from(&mut self, now: Instant, conn: ConnId) {
        let Some(k) = self.conns.get_mut(&conn) else {
            return;
        };
        k.last_heard = k.last_heard.max(now);
        if k.pongs_owed == 0 {
            k.reset_certain = true;
        }
        k.timers.ping = None;
        k.wait_unverified = false;
        let was_checking = std::mem::replace(&mut k.checking, false);
        let ep = k.endpoint;
        self.rearm(now, conn);
        if was_checking {
            self.health_success(ep, None);
        }
    }

    /// Set the connection's derived deadlines from its state: the single
    /// place they are computed.
    pub(super) fn rearm(&mut self, _now: Instant, conn: ConnId) {
        let stall = self.config.stall_timeout;
        // Never closer than a liveness check may follow a ping: an idle
        // connection's pings must not reach the server less than 5 s apart.
        let keepalive = self
            .config
            .keepalive_interval
            .max(MIN_PING_INTERVAL + PING_SPACING_MARGIN);
        let idle_timeout = self.config.idle_timeout;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.state == ConnState::Connecting {
            return;
        }
        c.timers.connect = None;
        let no_ping = c.timers.ping.is_none();
        c.timers.check = (c.owes() && no_ping && !c.checking)
            .then(|| (c.last_heard + stall).max(c.ping_allowed_at()));
        c.timers.keepalive = (c.kept_alive() && no_ping).then(|| {
            let heard = c.last_ping.map_or(c.last_heard, |p| p.max(c.last_heard));
            heard + keepalive
        });
        c.timers.idle = if c.busy() {
            None
        } else {
            c.idle_since.map(|i| i + idle_timeout)
        };
    }

    /// Act on the connection's due deadlines. Returns the calls a broken
    /// connection left behind, for the caller to retry once every
    /// connection's timers ran.
    pub(super) fn fire_conn_timers(&mut self, now: Instant, conn: ConnId) -> Vec<Orphan> {
        let Some(k) = self.conns.get(&conn) else {
            return Vec::new();
        };
        let due = |t: Option<Instant>| t.is_some_and(|t| t <= now);
        let t = k.timers;
        if due(t.connect) {
            let why = HealthReason::ConnectFailed("connect timeout".into());
            return self.connection_failed(now, conn, why, true);
        }
        if due(t.ping) {
            return self.connection_failed(now, conn, HealthReason::PingTimeout, true);
        }
        if due(t.probe) {
            let timed_out = Status::new(Code::DeadlineExceeded, "status probe timed out");
            self.handle_probe_result(now, conn, Err(timed_out));
        }
        if due(t.check) {
            let stall = self.config.stall_timeout;
            if let Some(k) = self.conns.get(&conn) {
                if k.owes() && now >= k.last_heard + stall && now >= k.ping_allowed_at() {
                    let ep = k.endpoint;
                    // Only a connection owing an answer is suspected; one
                    // whose waiting calls merely need a sign of life is
                    // just pinged (a Lock waiting for its turn is silent
                    // by design).
                    let suspect = k.owes_answer();
                    self.send_ping(now, conn, true);
                    if suspect {
                        self.health_suspect(ep, HealthReason::Stalled);
                    }
                }
            }
        }
        if due(t.keepalive)
            && self
                .conns
                .get(&conn)
                .is_some_and(|k| k.timers.ping.is_none())
        {
            self.send_ping(now, conn, false);
        }
        if due(t.idle) && self.conns.get(&conn).is_some_and(|k| !k.busy()) {
            self.close_conn(conn);
            return Vec::new();
        }
        self.rearm(now, conn);
        Vec::new()
    }

    /// Send a PING; `liveness`: because the peer owes bytes and is silent.
    fn send_ping(&mut self, now: Instant, conn: ConnId, liveness: bool) {
        let timeout = self.config.ping_timeout;
        let Some(k) = self.conns.get_mut(&conn) else {
            return;
        };
        // Surely forgiven: no strike left. Else an early one may be a
        // strike. Either way it consumes the reset the server may hold:
        // only what the server writes after handling it earns another.
        if std::mem::take(&mut k.reset_certain) {
            k.strike_bound = 0;
        } else if k.last_ping.is_some_and(|p| now < p + MIN_PING_INTERVAL) {
            k.strike_bound = k.strike_bound.saturating_add(1);
        }
        k.last_ping = Some(now);
        k.pongs_owed = k.pongs_owed.saturating_add(1);
        k.timers.ping = Some(now + timeout);
        k.checking |= liveness;
        self.rearm(now, conn);
        self.actions.push_back(Action::Ping { conn });
    }
}
