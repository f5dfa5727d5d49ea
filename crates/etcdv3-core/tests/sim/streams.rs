//! Stream workloads of the simulation: a [`WatchHub`] and a [`LeaseKeeper`]
//! driven over the core's stream calls, and the server side of both
//! streams. Every decision about a stream (when it reopens, how a stream
//! given up on is ended, auth retry, which requests owe an answer) is the
//! core's [`StreamDriver`]'s, the one the client's stream task pumps: this
//! file is a pump around it, turn for turn as the client's
//! (`api/stream_task.rs`), with the verdicts the client's owners give
//! ([`Verdict::of_watch`], [`Verdict::of_keepalive`]).
//!
//! Invariants checked here:
//! * every watcher gets every revision exactly once and in order, across
//!   every fault (each commit is one event on a watched key, so the
//!   revisions a watcher sees must be consecutive), and has caught up when
//!   the workload ends;
//! * a watch consumer that stalls (the slow-consumer fault: it takes
//!   nothing for seconds) holds at most the hub's buffer limit plus one
//!   response, by the hub's count and by its own (they must agree), and its
//!   paused watchers still get every revision exactly once once it takes
//!   again;
//! * a lease is never believed alive past the server's expiry (the keeper's
//!   deadline is checked against the server's after every renewal);
//! * no holder is told it owns a lease past the server's expiry of it: a
//!   holder fed the keeper's events (alive after `Renewed`, not after
//!   `MayHaveExpired`, `Expired` or `GaveUp`) is checked after every step
//!   of the run against the server, which expires a lease one TTL after the
//!   last renewal it processed;
//! * streams are not reopened faster than the backoff allows.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use etcdv3_core::machine::{CallError, CallId, ConnId, Outcome};
use etcdv3_core::streams::lease::{LeaseEvent, LeaseKeeper};
use etcdv3_core::streams::watch::{delivery_cost, QueueId, WatchEvent, WatchHub, WatcherId};
use etcdv3_core::streams::{
    CloseReason, FailCause, StreamAction, StreamConfig, StreamDriver, StreamEnd, Verdict,
};
use etcdv3_core::util::rng::Rng;
use etcdv3_core::wire::error::auth_refusal;
use etcdv3_core::wire::status::{Code, Status, REFUSED_STREAM_MESSAGE};
use etcdv3_proto::etcdserverpb::{
    watch_request::RequestUnion, LeaseKeepAliveResponse, ResponseHeader, WatchCreateRequest,
    WatchRequest, WatchResponse,
};
use etcdv3_proto::method::{LEASE_KEEP_ALIVE, WATCH_WATCH};
use etcdv3_proto::mvccpb::{Event, KeyValue};

use super::{ms, Ev, FaultKind, World};
use crate::cluster::REQUEST_TIMEOUT;

/// Which stream owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OwnerKind {
    Watch,
    Lease,
}

/// A client message on a stream.
#[derive(Debug, Clone)]
pub enum StreamReq {
    Watch(WatchRequest),
    /// A keep-alive for this lease id.
    Lease(i64),
}

/// A server message on a stream.
#[derive(Debug, Clone)]
pub enum StreamResp {
    Watch(WatchResponse),
    Lease(LeaseKeepAliveResponse),
}

/// The server side of one stream call.
#[derive(Debug)]
pub struct SrvStream {
    kind: OwnerKind,
    call: CallId,
    attempt: u32,
    member: usize,
    /// Watchers: server id, next revision to send.
    watchers: Vec<(i64, i64)>,
    next_id: i64,
    /// Requests not processed yet (member frozen or muted).
    pending: VecDeque<StreamReq>,
    /// A request that cannot complete will end the stream.
    timeout_armed: bool,
    /// The server accepted the stream (a frozen member accepts it when it
    /// resumes: the request waits in the kernel's buffer).
    opened: bool,
    token: Option<u64>,
}

/// What every stream owner keeps.
#[derive(Debug)]
struct Owner {
    call: Option<CallId>,
    established: bool,
    /// Every decision about the stream: the core's driver, as the client's
    /// stream task uses it.
    driver: StreamDriver,
    /// The current call ended refused for its token: the core's answer to
    /// `handle_auth_rejected` (asked while the call existed, as the
    /// client's `BidiCall` does).
    auth_refused: Option<(CallId, bool)>,
    opens: Vec<Instant>,
    active: bool,
    storm_reported: bool,
}

impl Owner {
    fn new(config: StreamConfig, seed: u64) -> Owner {
        Owner {
            call: None,
            established: false,
            driver: StreamDriver::new(config, seed),
            auth_refused: None,
            opens: Vec::new(),
            active: false,
            storm_reported: false,
        }
    }
}

#[derive(Debug)]
struct WatchCheck {
    /// Start revision asked for (0: from now).
    start: i64,
    /// The next revision the watcher must see.
    expect: Option<i64>,
}

/// The watch owner: a hub, its stream and what each watcher must see.
#[derive(Debug)]
pub struct WatchSide {
    owner: Owner,
    hub: WatchHub,
    checks: BTreeMap<WatcherId, WatchCheck>,
    /// Items the hub yielded that the consumer has not taken yet.
    inbox: VecDeque<(WatcherId, WatchEvent)>,
    /// The hub's buffer limit (bytes of `delivery_cost`).
    limit: usize,
    /// When the consumer stalls and takes nothing (the slow-consumer fault).
    stalls: Vec<(Instant, Instant)>,
    /// Watchers seen paused (to count pauses once each).
    paused: BTreeSet<WatcherId>,
}

/// The lease owner: a keeper and its stream.
#[derive(Debug)]
pub struct LeaseSide {
    owner: Owner,
    keeper: LeaseKeeper,
    /// What the lease's holder was last told by the keeper's events: the
    /// lease is alive (it owns what the lease guards), or not.
    told_alive: BTreeMap<i64, bool>,
}

fn event(rev: i64) -> Event {
    Event {
        r#type: 0,
        kv: Some(KeyValue {
            key: format!("k{rev}").into_bytes(),
            create_revision: rev,
            mod_revision: rev,
            version: 1,
            value: b"v".to_vec(),
            lease: 0,
        }),
        prev_kv: None,
    }
}

fn header(rev: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        revision: rev,
        ..Default::default()
    })
}

impl World {
    // ------------------------------------------------------------ plan

    /// Most runs watch and keep leases alive.
    pub(super) fn plan_streams(&mut self) {
        if self.rng.gen_bool(0.7) {
            let t = self.base + ms(self.rng.gen_range(100..5000));
            self.at(t, Ev::OwnerStart(OwnerKind::Watch));
        }
        if self.rng.gen_bool(0.6) {
            let t = self.base + ms(self.rng.gen_range(100..5000));
            self.at(t, Ev::OwnerStart(OwnerKind::Lease));
        }
    }

    fn owner_mut(&mut self, kind: OwnerKind) -> Option<&mut Owner> {
        match kind {
            OwnerKind::Watch => self.watch.as_mut().map(|w| &mut w.owner),
            OwnerKind::Lease => self.lease.as_mut().map(|l| &mut l.owner),
        }
    }

    pub(super) fn owner_start(&mut self, kind: OwnerKind) {
        let now = self.now;
        match kind {
            OwnerKind::Watch => {
                let mut hub = WatchHub::new();
                let mut checks = BTreeMap::new();
                for _ in 0..self.rng.gen_range(1..4) {
                    // From now, or from a past revision (history first).
                    let start = if self.rng.gen_bool(0.5) {
                        0
                    } else {
                        let back = self.rng.gen_range(0..4) as i64;
                        (self.cluster.rev - back).max(2)
                    };
                    let id = hub.add(WatchCreateRequest {
                        key: b"k".to_vec(),
                        range_end: b"l".to_vec(),
                        start_revision: start,
                        ..Default::default()
                    });
                    checks.insert(
                        id,
                        WatchCheck {
                            start,
                            expect: None,
                        },
                    );
                }
                let driver_seed = self.rng.next_u64();
                // The consumer's stalls come from a generator of their own,
                // so the rest of the run draws what it drew before.
                let mut crng = Rng::new(driver_seed ^ 0x5_1011_c0de);
                let limit = crng.gen_range(200..4_000) as usize;
                hub.set_buffer_limit(Some(limit));
                let mut stalls = Vec::new();
                let end = self.fault_end.saturating_duration_since(now);
                for _ in 0..crng.gen_range(0..4) {
                    if end < ms(1_500) {
                        break;
                    }
                    let at = now + ms(crng.gen_range(0..end.as_millis() as u64 - 1_000));
                    let until = (at + ms(crng.gen_range(500..8_000))).min(self.fault_end);
                    stalls.push((at, until));
                    self.at(until, Ev::ConsumerWake);
                }
                let base = self.base;
                let shown: Vec<_> = stalls.iter().map(|(a, b)| (*a - base, *b - base)).collect();
                self.log(|| {
                    format!("watch owner starts: {checks:?}, limit {limit} B, consumer stalls {shown:?}")
                });
                self.watch = Some(WatchSide {
                    owner: Owner::new(self.stream_config(), driver_seed),
                    hub,
                    checks,
                    inbox: VecDeque::new(),
                    limit,
                    stalls,
                    paused: BTreeSet::new(),
                });
            }
            OwnerKind::Lease => {
                let mut keeper = LeaseKeeper::new();
                let mut told_alive = BTreeMap::new();
                for i in 0..self.rng.gen_range(1..3) {
                    let ttl = [2, 5, 10, 30][self.rng.gen_range(0..4) as usize];
                    let id = 100 + i as i64;
                    // Granted now: the server's TTL starts no earlier.
                    self.srv_leases
                        .insert(id, (now + Duration::from_secs(ttl as u64), ttl));
                    keeper.keep(now, id, ttl);
                    // The grant's answer: alive (until now + TTL).
                    told_alive.insert(id, true);
                }
                let leases: Vec<String> = self
                    .srv_leases
                    .iter()
                    .map(|(id, (exp, ttl))| {
                        format!("{id}: ttl {ttl} until +{:?}", *exp - self.base)
                    })
                    .collect();
                let leases = leases.join(", ");
                self.log(|| format!("lease owner starts: {leases}"));
                self.lease = Some(LeaseSide {
                    owner: Owner::new(self.stream_config(), self.rng.next_u64()),
                    keeper,
                    told_alive,
                });
            }
        }
        if let Some(o) = self.owner_mut(kind) {
            o.active = true;
        }
        self.owner_turn(kind);
    }

    fn stream_config(&self) -> StreamConfig {
        StreamConfig {
            backoff: self.core.config().stream_backoff.clone(),
            ..StreamConfig::default()
        }
    }

    fn open_stream(&mut self, kind: OwnerKind) {
        let now = self.now;
        let method = match kind {
            OwnerKind::Watch => WATCH_WATCH,
            OwnerKind::Lease => LEASE_KEEP_ALIVE,
        };
        let Some(o) = self.owner_mut(kind) else {
            return;
        };
        if !o.active || o.call.is_some() {
            return;
        }
        o.opens.push(now);
        // Reopen rate bounded by the backoff: never a storm.
        let recent = o
            .opens
            .iter()
            .filter(|t| **t + Duration::from_secs(1) > now)
            .count();
        let storm = recent > 8 && !o.storm_reported;
        if storm {
            o.storm_reported = true;
        }
        let call = self.core.start_call(now, method, None);
        if let Some(o) = self.owner_mut(kind) {
            o.call = Some(call);
            o.established = false;
        }
        self.owners.insert(call, kind);
        self.report.stream_opens += 1;
        self.log(|| format!("open {kind:?} stream as {call:?}"));
        if storm {
            self.violation(format!(
                "{kind:?} stream reopened {recent} times within 1 s"
            ));
        }
    }

    /// A turn of the owner with no input of its own (after its stream
    /// ended: the end of the turn may reopen it).
    pub(super) fn owner_reopen(&mut self, kind: OwnerKind) {
        self.owner_turn(kind);
    }

    /// The core sends (attempt `attempt` of) stream call `call` on `conn`.
    pub(super) fn stream_send(&mut self, call: CallId, attempt: u32, conn: ConnId) {
        self.log(|| format!("Send stream {call:?} attempt {attempt} on {conn:?}"));
        self.drop_held(call);
        let Some((stream, token, d)) = self.put_on_wire(call, attempt, conn) else {
            return;
        };
        self.send_to_server(
            conn,
            d,
            Ev::StreamOpenArrive {
                conn,
                call,
                attempt,
                stream,
                token,
            },
        );
    }

    // ------------------------------------------------------ server side

    pub(super) fn srv_stream_open(
        &mut self,
        conn: ConnId,
        call: CallId,
        attempt: u32,
        stream: u32,
        token: Option<u64>,
    ) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let m = c.member;
        if !c.server_alive || c.goaway_last.is_some_and(|l| stream > l) {
            return;
        }
        c.server_max_stream = c.server_max_stream.max(stream);
        if !self.cluster.members[m].up {
            return;
        }
        let kind = match self.owners.get(&call) {
            Some(k) => *k,
            None => return,
        };
        self.conns
            .get_mut(&conn)
            .expect("conn")
            .server_streams
            .insert(stream);
        self.srv_streams.insert(
            (conn, stream),
            SrvStream {
                kind,
                call,
                attempt,
                member: m,
                watchers: Vec::new(),
                next_id: 1000,
                pending: VecDeque::new(),
                timeout_armed: false,
                opened: false,
                token,
            },
        );
        if self.cluster.members[m].serving() {
            self.srv_stream_accept((conn, stream));
        }
    }

    /// The server takes up a stream: refuses it, rejects its token, or
    /// answers its headers.
    fn srv_stream_accept(&mut self, key: (ConnId, u32)) {
        let Some(s) = self.srv_streams.get_mut(&key) else {
            return;
        };
        s.opened = true;
        let (m, call, attempt, token) = (s.member, s.call, s.attempt, s.token);
        let conn = key.0;
        let token_ok = !self.auth || token.is_some_and(|t| t >= self.token_epoch);
        let refused = self.has(m, FaultKind::Refuse) && self.rng.gen_bool(0.5);
        if refused {
            self.srv_streams.remove(&key);
            if let Some(c) = self.conns.get_mut(&conn) {
                c.server_streams.remove(&key.1);
            }
            self.send_to_client_after(
                conn,
                Duration::ZERO,
                Ev::StreamEnd {
                    conn,
                    call,
                    attempt,
                    outcome: Outcome::Refused(REFUSED_STREAM_MESSAGE.into()),
                },
            );
            return;
        }
        if !token_ok {
            self.hit(call, FaultKind::TokenExpiry);
            self.end_srv_stream(
                key,
                Status::new(Code::Unauthenticated, "etcdserver: invalid auth token"),
            );
            return;
        }
        self.send_to_client_after(
            conn,
            Duration::ZERO,
            Ev::StreamHeaders {
                conn,
                call,
                attempt,
            },
        );
    }

    pub(super) fn srv_stream_req(&mut self, conn: ConnId, stream: u32, req: StreamReq) {
        if let Some(s) = self.srv_streams.get_mut(&(conn, stream)) {
            s.pending.push_back(req);
        }
    }

    pub(super) fn srv_stream_timeout(&mut self, conn: ConnId, stream: u32) {
        if self.srv_streams.contains_key(&(conn, stream)) {
            self.end_srv_stream(
                (conn, stream),
                Status::new(Code::Unavailable, "etcdserver: request timed out"),
            );
        }
    }

    fn end_srv_stream(&mut self, key: (ConnId, u32), status: Status) {
        let Some(s) = self.srv_streams.remove(&key) else {
            return;
        };
        if let Some(c) = self.conns.get_mut(&key.0) {
            c.server_streams.remove(&key.1);
        }
        self.send_to_client_after(
            key.0,
            Duration::ZERO,
            Ev::StreamEnd {
                conn: key.0,
                call: s.call,
                attempt: s.attempt,
                outcome: Outcome::Status(status),
            },
        );
    }

    /// Send `resp` on stream `key`, after the member's replication lag
    /// when it is a follower.
    fn srv_send(&mut self, key: (ConnId, u32), resp: StreamResp) {
        let Some(s) = self.srv_streams.get(&key) else {
            return;
        };
        let (call, attempt, m) = (s.call, s.attempt, s.member);
        let lag = if self.cluster.leader == Some(m) {
            Duration::ZERO
        } else {
            self.lag[m]
        };
        let ev = Ev::StreamResp {
            conn: key.0,
            call,
            attempt,
            resp: Box::new(resp),
        };
        self.send_to_client_after(key.0, lag, ev);
    }

    /// The servers do what is due on their streams: process requests,
    /// push watch events up to what each member applied, end streams of
    /// members that lost their leader.
    pub(super) fn sync_streams(&mut self) {
        if self.srv_streams.is_empty() {
            return;
        }
        let now = self.now;
        let keys: Vec<(ConnId, u32)> = self.srv_streams.keys().copied().collect();
        for key in keys {
            let Some(s) = self.srv_streams.get(&key) else {
                continue;
            };
            let m = s.member;
            let kind = s.kind;
            if !self.conns.get(&key.0).is_some_and(|c| c.server_alive) {
                self.srv_streams.remove(&key);
                continue;
            }
            if !self.cluster.members[m].serving() {
                continue;
            }
            if !s.opened {
                self.srv_stream_accept(key);
                if !self.srv_streams.contains_key(&key) {
                    continue;
                }
            }
            let me = &self.cluster.members[m];
            if self.has(m, FaultKind::Mute) {
                continue;
            }
            if kind == OwnerKind::Watch && me.leader_view == 0 {
                // etcd ends the streams of a member without a leader
                // (clients send `hasleader`), or cancels their watches
                // with "no leader" (the owner then replaces the stream).
                let watchers = self.srv_streams.get(&key).map_or(0, |s| s.watchers.len());
                if watchers > 0 && self.rng.gen_bool(0.5) {
                    self.srv_cancel_watches(key, "etcdserver: no leader");
                } else {
                    self.end_srv_stream(
                        key,
                        Status::new(Code::Unavailable, "etcdserver: no leader"),
                    );
                }
                continue;
            }
            while let Some(req) = self
                .srv_streams
                .get_mut(&key)
                .and_then(|s| s.pending.pop_front())
            {
                match req {
                    StreamReq::Watch(r) => self.srv_watch_req(key, r),
                    StreamReq::Lease(id) => {
                        if !self.srv_lease_req(key, id) {
                            break;
                        }
                    }
                }
            }
            if kind == OwnerKind::Watch {
                self.srv_push_events(key);
            }
        }
        let _ = now;
    }

    /// The server cancels every watch of stream `key` with `reason`; the
    /// stream stays.
    fn srv_cancel_watches(&mut self, key: (ConnId, u32), reason: &str) {
        let Some(s) = self.srv_streams.get_mut(&key) else {
            return;
        };
        let rev = self.cluster.members[s.member].rev;
        let ids: Vec<i64> = s.watchers.drain(..).map(|w| w.0).collect();
        for id in ids {
            self.srv_send(
                key,
                StreamResp::Watch(WatchResponse {
                    header: header(rev),
                    watch_id: id,
                    canceled: true,
                    cancel_reason: reason.into(),
                    ..Default::default()
                }),
            );
        }
    }

    fn srv_watch_req(&mut self, key: (ConnId, u32), req: WatchRequest) {
        let Some(s) = self.srv_streams.get_mut(&key) else {
            return;
        };
        let rev = self.cluster.members[s.member].rev;
        let resp = match req.request_union {
            Some(RequestUnion::CreateRequest(c)) => {
                let id = if c.watch_id > 0 {
                    c.watch_id
                } else {
                    s.next_id += 1;
                    s.next_id
                };
                let start = if c.start_revision <= 0 {
                    rev + 1
                } else {
                    c.start_revision
                };
                s.watchers.push((id, start));
                let m = s.member;
                self.log(|| {
                    format!(
                        "m{} creates watch {id} from {} (asked {}), at revision {rev}",
                        m + 1,
                        start,
                        c.start_revision
                    )
                });
                WatchResponse {
                    header: header(rev),
                    watch_id: id,
                    created: true,
                    ..Default::default()
                }
            }
            Some(RequestUnion::CancelRequest(c)) => {
                s.watchers.retain(|w| w.0 != c.watch_id);
                WatchResponse {
                    header: header(rev),
                    watch_id: c.watch_id,
                    canceled: true,
                    ..Default::default()
                }
            }
            Some(RequestUnion::ProgressRequest(_)) => WatchResponse {
                header: header(rev),
                watch_id: -1,
                ..Default::default()
            },
            None => return,
        };
        self.srv_send(key, StreamResp::Watch(resp));
    }

    /// A keep-alive at the member; false when it cannot be served now
    /// (the stream ends or will time out).
    fn srv_lease_req(&mut self, key: (ConnId, u32), id: i64) -> bool {
        let now = self.now;
        let Some(s) = self.srv_streams.get_mut(&key) else {
            return false;
        };
        let m = s.member;
        if self.cluster.can_commit_via(m) {
            let ttl = match self.srv_leases.get_mut(&id) {
                Some((exp, ttl)) if *exp > now => {
                    *exp = (*exp).max(now + Duration::from_secs(*ttl as u64));
                    *ttl
                }
                _ => 0,
            };
            self.srv_send(
                key,
                StreamResp::Lease(LeaseKeepAliveResponse {
                    header: header(self.cluster.rev),
                    id,
                    ttl,
                }),
            );
            return true;
        }
        if self.cluster.members[m].leader_view == 0 {
            self.end_srv_stream(key, Status::new(Code::Unavailable, "etcdserver: no leader"));
            return false;
        }
        // The leader is unreachable: the renewal times out.
        if !s.timeout_armed {
            s.timeout_armed = true;
            self.at(
                now + REQUEST_TIMEOUT,
                Ev::SrvStreamTimeout {
                    conn: key.0,
                    stream: key.1,
                },
            );
        }
        false
    }

    fn srv_push_events(&mut self, key: (ConnId, u32)) {
        let Some(s) = self.srv_streams.get(&key) else {
            return;
        };
        let visible = self.cluster.members[s.member].rev;
        let watchers = s.watchers.clone();
        for (i, (id, next)) in watchers.into_iter().enumerate() {
            // Revision 1 is the initial state: events start at 2.
            let next = next.max(2);
            if next > visible {
                continue;
            }
            let last = visible.min(next + 15);
            let events: Vec<Event> = (next..=last).map(event).collect();
            if events.len() >= 2 && self.rng.gen_bool(0.25) {
                let cut = self.rng.gen_range(1..events.len() as u64) as usize;
                let (a, b) = events.split_at(cut);
                for (part, fragment) in [(a, true), (b, false)] {
                    self.srv_send(
                        key,
                        StreamResp::Watch(WatchResponse {
                            header: header(visible),
                            watch_id: id,
                            events: part.to_vec(),
                            fragment,
                            ..Default::default()
                        }),
                    );
                }
            } else {
                self.srv_send(
                    key,
                    StreamResp::Watch(WatchResponse {
                        header: header(visible),
                        watch_id: id,
                        events,
                        ..Default::default()
                    }),
                );
            }
            if let Some(s) = self.srv_streams.get_mut(&key) {
                s.watchers[i].1 = last + 1;
            }
        }
    }

    // ------------------------------------------------------ client side

    pub(super) fn stream_headers(&mut self, conn: ConnId, call: CallId, attempt: u32) {
        if !self.current(call, conn, attempt) {
            return;
        }
        let now = self.now;
        let Some(&kind) = self.owners.get(&call) else {
            return;
        };
        self.core.handle_stream_established(now, call);
        let Some(o) = self.owner_mut(kind).filter(|o| o.call == Some(call)) else {
            return;
        };
        o.established = true;
        o.driver.handle_opened(now);
        if let Some(l) = self.lease.as_mut().filter(|_| kind == OwnerKind::Lease) {
            // A new stream: every lease is renewed at once (the client's
            // `LeaseOwner::handle_opened`).
            l.keeper.handle_stream_lost(now);
        }
        self.owner_turn(kind);
    }

    pub(super) fn stream_resp(
        &mut self,
        conn: ConnId,
        call: CallId,
        attempt: u32,
        resp: StreamResp,
    ) {
        if !self.current(call, conn, attempt) {
            return;
        }
        let now = self.now;
        self.core.handle_stream_progress(now, call);
        let kind = match resp {
            StreamResp::Watch(_) => OwnerKind::Watch,
            StreamResp::Lease(_) => OwnerKind::Lease,
        };
        if let Some(o) = self.owner_mut(kind) {
            o.driver.handle_message(now);
        }
        match resp {
            StreamResp::Watch(r) => {
                if let Some(w) = self.watch.as_mut() {
                    w.hub.handle_response(r);
                }
            }
            StreamResp::Lease(r) => {
                if let Some(l) = self.lease.as_mut() {
                    l.keeper.handle_response(now, r);
                }
            }
        }
        self.owner_turn(kind);
    }

    /// Stream call `call` is about to end with `status` (reported to the
    /// core next): a refusal for its token is told to the core while the
    /// call still exists, as the client's `BidiCall` does.
    pub(super) fn stream_end_status(&mut self, call: CallId, status: &Status) {
        if auth_refusal(status).is_none() {
            return;
        }
        let now = self.now;
        let fresh = self.core.handle_auth_rejected(now, call);
        if !fresh {
            self.violation(format!(
                "stream {call:?} refused for its token, but the core says the refusal is final"
            ));
        }
        let Some(&kind) = self.owners.get(&call) else {
            return;
        };
        // Only the end of an established stream ends the call; before, the
        // core retries the open with the fresh token itself.
        if let Some(o) = self
            .owner_mut(kind)
            .filter(|o| o.established && o.call == Some(call))
        {
            o.auth_refused = Some((call, fresh));
        }
    }

    /// The rest of a turn of the owner, after its input (the client's
    /// stream task, in the same order): the verdict on the open stream, the
    /// owner's timers, its requests, what it delivers, and the end of the
    /// turn (reopen, or exit once there is nothing left to do).
    fn owner_turn(&mut self, kind: OwnerKind) {
        let now = self.now;
        if kind == OwnerKind::Watch {
            // The consumer takes first (the client's `Cmd::Consumed`, an
            // input of the turn): what it takes may resume paused
            // watchers, whose creates go out in this turn.
            let _ = self.check_watch_events();
        }
        let verdict = match kind {
            OwnerKind::Watch => self
                .watch
                .as_ref()
                .filter(|w| w.owner.driver.is_open())
                .map(|w| Verdict::of_watch(&w.hub)),
            OwnerKind::Lease => self
                .lease
                .as_ref()
                .filter(|l| l.owner.driver.is_open())
                .map(|l| Verdict::of_keepalive(&l.keeper, now)),
        };
        if let Some(v) = verdict {
            if v != Verdict::Keep {
                self.log(|| format!("{kind:?} stream verdict {v:?}"));
            }
            if let Some(o) = self.owner_mut(kind) {
                o.driver.handle_verdict(now, v);
            }
            self.drain_owner(kind);
        }
        if let Some(l) = self.lease.as_mut().filter(|_| kind == OwnerKind::Lease) {
            l.keeper.handle_timeout(now);
        }
        self.owner_transmit(kind);
        match kind {
            OwnerKind::Watch => {
                // What the consumer takes now is reported back: a turn of
                // its own (a resumed watcher's create goes out then).
                if self.check_watch_events() {
                    self.at(now, Ev::ConsumerWake);
                }
            }
            OwnerKind::Lease => self.check_lease_events(),
        }
        let done = match kind {
            OwnerKind::Watch => self.watch.as_ref().is_some_and(|w| w.hub.is_empty()),
            OwnerKind::Lease => self.lease.as_ref().is_some_and(|l| l.keeper.is_empty()),
        };
        let Some(o) = self.owner_mut(kind) else {
            return;
        };
        if o.driver.is_exited() {
            return;
        }
        let wanted = o.active && !done;
        o.driver.handle_wanted(now, wanted);
        self.drain_owner(kind);
    }

    /// Send what the owner has to send on its open stream.
    fn owner_transmit(&mut self, kind: OwnerKind) {
        let now = self.now;
        let Some(call) = self
            .owner_mut(kind)
            .filter(|o| o.driver.is_open())
            .and_then(|o| o.call)
        else {
            return;
        };
        let Some(&(conn, _, stream)) = self.held.get(&call) else {
            return;
        };
        let mut out: Vec<StreamReq> = Vec::new();
        match kind {
            OwnerKind::Watch => {
                if let Some(w) = self.watch.as_mut() {
                    while let Some(r) = w.hub.poll_transmit() {
                        out.push(StreamReq::Watch(r));
                    }
                }
            }
            OwnerKind::Lease => {
                if let Some(l) = self.lease.as_mut() {
                    while let Some(r) = l.keeper.poll_transmit(now) {
                        out.push(StreamReq::Lease(r.id));
                    }
                }
            }
        }
        if out.is_empty() {
            return;
        }
        for req in out {
            if let Some(m) = self.conns.get(&conn).map(|c| c.member) {
                let d = self.lat(m);
                let req = Box::new(req);
                self.send_to_server(conn, d, Ev::StreamReqArrive { conn, stream, req });
            }
        }
        if let Some(o) = self.owner_mut(kind) {
            o.driver.handle_sent(now);
        }
        self.drain_owner(kind);
    }

    /// Carry out the driver's actions, as the client's stream task does.
    fn drain_owner(&mut self, kind: OwnerKind) {
        let now = self.now;
        loop {
            let Some(o) = self.owner_mut(kind) else {
                return;
            };
            let Some(action) = o.driver.poll_action() else {
                return;
            };
            let call = o.call;
            match action {
                StreamAction::Open => self.open_stream(kind),
                StreamAction::Close(reason) => self.close_stream(kind, reason),
                StreamAction::RefreshToken => {
                    let fresh = call.is_some_and(|c| self.core.handle_auth_rejected(now, c));
                    self.log(|| format!("{kind:?} stream refused for its token: fresh {fresh}"));
                    if let Some(o) = self.owner_mut(kind) {
                        o.driver.handle_auth_answer(now, fresh);
                    }
                }
                StreamAction::Owed => {
                    if let Some(c) = call {
                        self.core.handle_stream_sent(now, c);
                    }
                }
                StreamAction::Lost => match kind {
                    OwnerKind::Watch => {
                        if let Some(w) = self.watch.as_mut() {
                            w.hub.handle_stream_lost();
                        }
                    }
                    OwnerKind::Lease => {
                        if let Some(l) = self.lease.as_mut() {
                            l.keeper.handle_stream_lost(now);
                        }
                    }
                },
                StreamAction::AuthFinal => {
                    if let Some(w) = self.watch.as_mut().filter(|_| kind == OwnerKind::Watch) {
                        w.hub.handle_auth_final();
                    }
                }
                StreamAction::Fail(cause) => {
                    // Credentials are configured whenever a server checks
                    // tokens: nothing is refused for good here.
                    if cause != FailCause::Closed {
                        self.violation(format!("{kind:?} stream's users failed: {cause:?}"));
                    }
                }
                StreamAction::Exit => {
                    let Some(o) = self.owner_mut(kind) else {
                        return;
                    };
                    o.active = false;
                    // A stream still being opened is dropped with the
                    // client's task (its call cancelled).
                    if let Some(c) = o.call.take() {
                        o.established = false;
                        self.log(|| format!("drop {kind:?} stream {c:?} being opened"));
                        self.owners.remove(&c);
                        self.slow_runs.remove(&c);
                        self.core.cancel_call(now, c);
                        self.drop_held(c);
                    }
                }
            }
        }
    }

    /// The driver ends the open stream: reset on the wire, the core told
    /// what `reason` says (as the client's `BidiCall::end`, or a drop).
    fn close_stream(&mut self, kind: OwnerKind, reason: CloseReason) {
        let now = self.now;
        let Some(o) = self.owner_mut(kind) else {
            return;
        };
        let Some(call) = o.call.take() else {
            return;
        };
        o.established = false;
        self.log(|| format!("close {kind:?} stream {call:?}: {reason:?}"));
        match reason {
            CloseReason::NoLeader => self.report.stream_closes[0] += 1,
            CloseReason::Unanswered => self.report.stream_closes[1] += 1,
            CloseReason::Drop => {}
        }
        self.slow_runs.remove(&call);
        if reason == CloseReason::Unanswered {
            self.core.handle_stream_unanswered(now, call);
        }
        let attempt = self.held.get(&call).map(|h| h.1);
        self.drop_held(call);
        match (reason.outcome(), attempt) {
            // The core completes the call; that `Complete` is ignored (the
            // owner holds the call no more).
            (Some(outcome), Some(attempt)) => self.report_outcome(call, attempt, outcome),
            _ => {
                self.owners.remove(&call);
                self.core.cancel_call(now, call);
            }
        }
    }

    /// A stalled watch consumer's stall ended, or the consumer reported
    /// what it took: it takes what it holds (and resumed watchers are
    /// created again).
    pub(super) fn consumer_wake(&mut self) {
        self.owner_turn(OwnerKind::Watch);
    }

    /// Hand what the hub yields to the consumer, check what it holds, and
    /// unless it is stalled let it take everything (checking each watcher's
    /// revisions).
    ///
    /// True when the consumer took something: the client's consumer then
    /// reports it (`Cmd::Consumed`), which gives the task a turn of its own.
    fn check_watch_events(&mut self) -> bool {
        let now = self.now;
        let Some(w) = self.watch.as_mut() else {
            return false;
        };
        let mut bad = Vec::new();
        while let Some(item) = w.hub.poll_event() {
            w.inbox.push_back(item);
        }
        // Bounded memory: per watcher, what the consumer holds is what the
        // hub counts, and its events stay within the limit plus one
        // response (events are queued only below the limit).
        let mut held: BTreeMap<WatcherId, (usize, usize, usize)> = BTreeMap::new();
        for (id, e) in &w.inbox {
            let h = held.entry(*id).or_default();
            let cost = delivery_cost(e);
            h.0 += cost;
            if matches!(e, WatchEvent::Events { .. }) {
                h.1 += cost;
                h.2 = h.2.max(cost);
            }
        }
        let mut pauses = 0;
        for &id in w.checks.keys() {
            let (all, events, biggest) = held.get(&id).copied().unwrap_or_default();
            let counted = w.hub.buffered(QueueId::of(id));
            if w.hub.contains(id) && counted != all {
                bad.push(format!(
                    "watcher {id}: the hub counts {counted} bytes held, the consumer holds {all}"
                ));
            }
            if events > w.limit + biggest {
                bad.push(format!(
                    "watcher {id}: its consumer holds {events} bytes of events, limit {} (+ one response of {biggest})",
                    w.limit
                ));
            }
            if w.hub.is_paused(id) {
                pauses += u32::from(w.paused.insert(id));
            } else {
                w.paused.remove(&id);
            }
        }
        let stalled = w.stalls.iter().any(|(a, b)| *a <= now && now < *b);
        let mut delivered = 0u64;
        let mut took = false;
        while let Some((id, ev)) = if stalled { None } else { w.inbox.pop_front() } {
            took = true;
            w.hub.handle_consumed(QueueId::of(id), delivery_cost(&ev));
            let Some(chk) = w.checks.get_mut(&id) else {
                bad.push(format!("event for unknown watcher {id}: {ev:?}"));
                continue;
            };
            match ev {
                WatchEvent::Created { revision } => {
                    if chk.expect.is_some() {
                        bad.push(format!("watcher {id} created twice"));
                    }
                    chk.expect = Some(if chk.start <= 0 {
                        revision + 1
                    } else {
                        chk.start
                    });
                }
                WatchEvent::Events { events, .. } => {
                    for e in events {
                        let r = e.kv.as_ref().map_or(0, |kv| kv.mod_revision);
                        match chk.expect {
                            Some(x) if x == r => chk.expect = Some(r + 1),
                            other => bad.push(format!(
                                "watcher {id} got revision {r}, expected {other:?} (lost, duplicated or out of order)"
                            )),
                        }
                        delivered += 1;
                    }
                }
                WatchEvent::Progress { .. } => {}
                other => {
                    bad.push(format!("watcher {id} ended: {other:?}"));
                    w.checks.remove(&id);
                }
            }
        }
        self.report.watch_events += delivered;
        self.report.watch_pauses += pauses;
        if pauses > 0 {
            self.log(|| format!("{pauses} watcher(s) paused: the consumer holds the limit"));
        }
        for b in bad {
            self.violation(b);
        }
        took
    }

    fn check_lease_events(&mut self) {
        let now = self.now;
        let Some(l) = self.lease.as_mut() else { return };
        let mut renewed = 0;
        let mut log = Vec::new();
        while let Some(ev) = l.keeper.poll_event() {
            match ev {
                LeaseEvent::Renewed { id, .. } => {
                    renewed += 1;
                    if l.told_alive.insert(id, true) == Some(false) {
                        self.report.lease_alive_again += 1;
                        log.push(format!("lease {id} alive again"));
                    }
                }
                LeaseEvent::Expired { id } => {
                    l.told_alive.insert(id, false);
                    log.push(format!("lease {id} expired"))
                }
                LeaseEvent::MayHaveExpired { id } => {
                    l.told_alive.insert(id, false);
                    self.report.lease_lapses += 1;
                    log.push(format!("lease {id} may have expired"))
                }
                LeaseEvent::GaveUp { id } => {
                    l.told_alive.insert(id, false);
                    log.push(format!("lease {id} given up"))
                }
            }
        }
        // Never believed alive past the server's expiry.
        let mut bad = Vec::new();
        for (&id, &(exp, _)) in &self.srv_leases {
            if let Some(d) = l.keeper.deadline(id) {
                if d > exp {
                    bad.push(format!(
                        "lease {id} believed alive until +{:?} but the server expires it at +{:?}",
                        d - self.base,
                        exp - self.base
                    ));
                }
            }
        }
        self.report.lease_renewals += renewed;
        for line in log {
            self.log(|| line);
        }
        for b in bad {
            self.violation(b);
        }
        let _ = now;
    }

    /// No holder is told it owns a lease past the server's expiry of it
    /// (checked after every step of the run: a holder told "alive" while
    /// the server already expired the lease could act as the owner of what
    /// another client may hold by now).
    pub(super) fn check_lease_holders(&mut self) {
        let now = self.now;
        let Some(l) = self.lease.as_ref().filter(|l| l.owner.active) else {
            return;
        };
        let mut bad = Vec::new();
        for (&id, &alive) in &l.told_alive {
            let Some(&(exp, _)) = self.srv_leases.get(&id) else {
                continue;
            };
            if alive && now > exp {
                bad.push(format!(
                    "lease {id}'s holder is told it is alive at +{:?}, but the server expired it at +{:?} (keeper deadline +{:?})",
                    now - self.base,
                    exp - self.base,
                    l.keeper.valid_until(id).map(|d| d - self.base)
                ));
            }
        }
        for b in bad {
            self.violation(b);
        }
    }

    /// The core completed stream call `call`.
    pub(super) fn stream_completed(
        &mut self,
        kind: OwnerKind,
        call: CallId,
        result: Result<(), CallError>,
    ) {
        let now = self.now;
        self.log(|| format!("{kind:?} stream {call:?} ended: {result:?}"));
        self.drop_held(call);
        let Some(o) = self.owner_mut(kind) else {
            return;
        };
        // A stream the driver closed: its end was decided then.
        if o.call != Some(call) {
            return;
        }
        o.call = None;
        let auth = o.auth_refused.take().filter(|(c, _)| *c == call);
        if std::mem::take(&mut o.established) {
            let end = match (&result, auth) {
                (Ok(()), _) => StreamEnd::Finished,
                (Err(_), Some((_, fresh_token))) => StreamEnd::AuthRefused { fresh_token },
                (Err(_), None) => StreamEnd::Failed,
            };
            o.driver.handle_ended(now, end);
        } else {
            let rejected = matches!(result, Err(CallError::Rejected { .. }));
            o.driver.handle_open_failed(now, rejected);
        }
        self.drain_owner(kind);
        // The rest of the turn (it may reopen), as its own event.
        self.at(now, Ev::Reopen(kind));
    }

    /// When an owner must run: its driver's timer (a reopen backoff), the
    /// keeper's (renewals while its stream is up, local expiry always).
    pub(super) fn owner_timeout(&self) -> Option<Instant> {
        let owners = [
            self.watch.as_ref().map(|w| &w.owner),
            self.lease.as_ref().map(|l| &l.owner),
        ];
        let driver = owners
            .into_iter()
            .flatten()
            .filter(|o| o.active)
            .filter_map(|o| o.driver.poll_timeout())
            .min();
        let keeper = self
            .lease
            .as_ref()
            .filter(|l| l.owner.active)
            .and_then(|l| {
                if l.owner.driver.is_open() {
                    l.keeper.poll_timeout()
                } else {
                    l.keeper.next_deadline()
                }
            });
        [driver, keeper].into_iter().flatten().min()
    }

    pub(super) fn owner_tick(&mut self) {
        let now = self.now;
        for kind in [OwnerKind::Watch, OwnerKind::Lease] {
            let due = self
                .owner_mut(kind)
                .is_some_and(|o| o.driver.poll_timeout().is_some_and(|t| t <= now));
            if due {
                if let Some(o) = self.owner_mut(kind) {
                    o.driver.handle_timeout(now);
                }
                if kind == OwnerKind::Watch {
                    self.owner_turn(kind);
                }
            }
        }
        self.owner_turn(OwnerKind::Lease);
    }

    /// The workload is over: watchers must have caught up; then the owners
    /// end their streams.
    pub(super) fn owners_stop(&mut self) {
        let quiet_for = self.now.saturating_duration_since(self.fault_end);
        let rev = self.cluster.rev;
        if let Some(w) = self.watch.as_mut() {
            let mut bad = Vec::new();
            if quiet_for > Duration::from_secs(10) {
                for (id, chk) in &w.checks {
                    if chk.expect != Some(rev + 1) {
                        bad.push(format!(
                            "watcher {id} has not caught up {quiet_for:?} after the faults: next {:?}, committed {rev}",
                            chk.expect
                        ));
                    }
                }
            }
            w.owner.active = false;
            let ids: Vec<WatcherId> = w.checks.keys().copied().collect();
            for id in ids {
                w.hub.cancel(id);
            }
            for b in bad {
                self.violation(b);
            }
            self.owner_stop(OwnerKind::Watch);
        }
        if let Some(l) = self.lease.as_mut() {
            l.owner.active = false;
            let ids: Vec<i64> = self.srv_leases.keys().copied().collect();
            for id in ids {
                l.keeper.remove(id);
            }
            // The holders are done with their leases.
            l.told_alive.clear();
            self.owner_stop(OwnerKind::Lease);
        }
    }

    /// The owner has nothing left to do: the driver closes its stream and
    /// exits.
    fn owner_stop(&mut self, kind: OwnerKind) {
        let now = self.now;
        if let Some(o) = self.owner_mut(kind) {
            o.driver.handle_wanted(now, false);
        }
        self.drain_owner(kind);
    }

    /// Like `send_to_client`, `extra` later (FIFO kept). Data on a stream
    /// is never lost while its connection lives (TCP retransmits): across a
    /// blackhole it arrives when the link heals.
    fn send_to_client_after(&mut self, conn: ConnId, extra: Duration, ev: Ev) {
        let now = self.now;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        // Written in the order produced, `extra` from now at the earliest.
        let at = (now + extra).max(c.last_stream_written);
        c.last_stream_written = at;
        if at > now {
            self.at(at, Ev::StreamWrite(conn, Box::new(ev)));
        } else {
            self.stream_write(conn, ev);
        }
    }

    /// The server writes a stream message (produced now) to the
    /// connection: one FIFO with everything else it writes there (answers,
    /// PONGs), as on the wire (one TCP connection). Headers or data (a
    /// message, a status in trailers) reset grpc-go's ping strikes when
    /// written (`setResetPingStrikes`, the `onWrite` of its header and data
    /// frames); a refusal (RST_STREAM) does not.
    pub(super) fn stream_write(&mut self, conn: ConnId, ev: Ev) {
        let data = matches!(
            ev,
            Ev::StreamResp { .. }
                | Ev::StreamEnd {
                    outcome: Outcome::Status(_),
                    ..
                }
        );
        if let Some(c) = self.conns.get_mut(&conn) {
            if data {
                c.reset_strikes = true;
            }
        }
        self.send_to_client(conn, ev);
    }
}
