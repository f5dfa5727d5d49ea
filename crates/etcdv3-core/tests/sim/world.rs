//! One simulated run: the core, an adapter that executes its actions over a
//! simulated network against the simulated cluster, a random workload and a
//! random fault schedule, all driven by one seed, with the invariants
//! checked as the run goes.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::time::{Duration, Instant};

use etcdv3_core::endpoints::balancer::Policy;
use etcdv3_core::endpoints::endpoint::Endpoint;
use etcdv3_core::machine::{
    Action, CallError, CallId, Config, ConnId, Core, EndpointId, Event, MemberStatus, Outcome,
    ReadKind, ResponseMeta, MIN_PING_INTERVAL,
};
use etcdv3_core::util::rng::Rng;
use etcdv3_core::wire::error::classify;
use etcdv3_core::wire::status::{Code, Status, REFUSED_STREAM_MESSAGE};
use etcdv3_proto::method::{ELECTION_CAMPAIGN, KV_PUT, KV_RANGE, KV_TXN, LOCK_LOCK};

use crate::cluster::{Answer, Cluster, ELECTION_TIMEOUT, REQUEST_TIMEOUT};

#[path = "streams.rs"]
mod streams;

#[path = "leader.rs"]
mod leader;

pub use leader::{LEADER_FAULT_SLACK, LEADER_FAULT_UNKNOWNS};

use streams::{LeaseSide, SrvStream, StreamReq, StreamResp, WatchSide};

/// An attempt running slowly on a healthy member.
#[derive(Debug, Clone, Copy)]
struct SlowRun {
    conn: ConnId,
    attempt: u32,
    stream: u32,
    member: usize,
    /// The cluster's term when it started.
    term: u64,
    started: Instant,
    /// The highest term the client had been told of when it started.
    known_term: u64,
}

/// A large answer arriving over a slow link ([`FaultKind::SlowLink`]).
#[derive(Debug, Clone, Copy)]
struct SlowAnswer {
    conn: ConnId,
    attempt: u32,
    /// When its last byte arrives.
    end: Instant,
    /// When the member answered, and the cluster's term then.
    started: Instant,
    term: u64,
    /// Bytes of it reached the client (the core could know it arrives).
    flowing: bool,
}

/// Knobs of a run that are not drawn from the seed.
#[derive(Debug, Clone, Default)]
pub struct Opts {
    /// Record a replayable event log.
    pub log: bool,
    /// Members cut off from their peers answer reads from their own stale
    /// state while they still believe in their leader (as serializable
    /// reads do); the client must avoid them.
    pub stale_serve: bool,
    /// Do not check "no slow healthy call aborted" (to look at the other
    /// invariants on a core that still aborts slow calls).
    pub allow_slow_abort: bool,
    /// The adapter does not tell the core about parts of an answer
    /// (`Core::handle_call_progress`), as a client that only reports whole
    /// answers would: slow-link answers are then cut off (this shows the
    /// invariant can fail).
    pub no_call_progress: bool,
    /// Leader faults only (see [`World::plan_leader_faults`]), with a
    /// sequential writer held to the leader-fault invariant.
    pub leader_faults: bool,
    /// `Config::election_wait` zero: mutations are not held for an
    /// election (to show the leader-fault invariant bites without it).
    pub no_election_wait: bool,
    /// The answer to every fifth read is lost between the member and the
    /// core (as by an adapter that drops it), with nothing else wrong: the
    /// core, its pings answered, waits for it until the deadline. No
    /// excuse of the liveness check covers that (to show the check bites).
    pub lose_answers: bool,
}

/// What a run found.
#[derive(Debug, Default)]
pub struct Report {
    /// Invariant violations, in order.
    pub violations: Vec<String>,
    /// The event log (only with `Opts::log`).
    pub log: Vec<String>,
    /// Calls completed OK / with an error.
    pub ok: u32,
    /// Calls completed with an error.
    pub failed: u32,
    /// Puts that ended with "outcome unknown".
    pub unknown: u32,
    /// Events processed.
    pub events: u64,
    /// Calls the liveness rule required to succeed.
    pub must_succeed: u32,
    /// Per fault kind (index of [`FaultKind::ALL`]): calls (unary and
    /// stream) it touched: sent to the member while the fault was on, in
    /// flight there when it started, or refused because of it.
    pub fault_hits: [u32; FaultKind::ALL.len()],
    /// Unary calls the user cancelled.
    pub cancelled: u32,
    /// Attempts that ran slowly on a healthy member (long service time,
    /// lock or campaign waits).
    pub slow_calls: u32,
    /// Watch events delivered to watchers (each checked exactly-once and in
    /// order).
    pub watch_events: u64,
    /// Lease renewals received (each checked against the server's expiry).
    pub lease_renewals: u32,
    /// Leases reported as possibly expired at their local deadline.
    pub lease_lapses: u32,
    /// Leases reported alive again after that (a late answer with a TTL).
    pub lease_alive_again: u32,
    /// Stream calls opened (watch and keepalive, first opens and reopens).
    pub stream_opens: u32,
    /// Streams the core's stream driver closed on its owner's verdict:
    /// member without a leader, requests unanswered.
    pub stream_closes: [u32; 2],
    /// Large answers that arrived whole over a slow link (each checked not
    /// cut off nor re-sent while its bytes arrived).
    pub slow_link_answers: u32,
    /// Watchers paused because their slow consumer held the buffer limit
    /// (each checked bounded, then resumed without loss).
    pub watch_pauses: u32,
    /// Runs with a quiet gap longer than the idle timeout.
    pub long_runs: u32,
    /// Revision fence resets the core reported (`Event::FenceReset`).
    pub fence_resets: u32,
    /// Reads handed over marked stale (`Event::StaleRead`).
    pub stale_marked: u32,
    /// The leader faults the sequential writer went through (leader-fault
    /// runs only), each checked by [`World::check_leader_faults`].
    pub leader_faults: Vec<LeaderFaultStat>,
}

/// What one leader fault cost the sequential writer.
#[derive(Debug, Clone, Copy)]
pub struct LeaderFaultStat {
    /// Crash, Hang or Partition of the leader; `None` for the cluster's
    /// own leader change (a member that rejoined at a higher term, without
    /// pre-vote, deposed the leader).
    pub kind: Option<FaultKind>,
    /// From the fault to the cluster's next election, if there was one.
    pub election: Option<Duration>,
    /// The writer's longest put gap from the fault on (to the next leader
    /// fault or the writer's end).
    pub gap: Duration,
    /// The writer's puts that ended "outcome unknown" in that window.
    pub unknowns: u32,
}

/// The revision of a bogus response header ([`FaultKind::HugeRevision`]).
pub const HUGE_REVISION: i64 = i64::MAX / 4;

/// The faults a run draws from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FaultKind {
    /// The member's process dies (restarted at the fault's end).
    Crash,
    /// SIGSTOP: TCP open, nothing answered (not even pings).
    Hang,
    /// Every connection to the member is reset.
    Reset,
    /// The member sends GOAWAY on every connection.
    Goaway,
    /// Cut off from its peers (the client still reaches it).
    Partition,
    /// Lossy link: some messages delayed by up to 1.5 s.
    Degrade,
    /// Nothing from the member reaches the client.
    Blackhole,
    /// Some streams refused (REFUSED_STREAM).
    Refuse,
    /// "too many requests" for some puts.
    TooMany,
    /// Puts applied but answered "request timed out".
    TimeoutApplied,
    /// The auth token expires (cluster-wide).
    TokenExpiry,
    /// The member is removed from the endpoint set.
    Remove,
    /// Slow but healthy: every request takes 0.6-3 s (pings, probes and
    /// replication as usual).
    Slow,
    /// Answers pings (the HTTP/2 layer is fine) but no request: stuck apply
    /// loop.
    Mute,
    /// The whole cluster is restored from a snapshot taken earlier (same
    /// members, same URLs): every member restarts with the store back at the
    /// snapshot's revision, thousands of revisions (other clients' writes)
    /// lost. Runs with it have no watch owner (watchers cannot survive a
    /// history rewind, in etcd either).
    Restore,
    /// The member's next answer carries a response header with a huge
    /// revision (a bug, a hostile member).
    HugeRevision,
    /// The member's link to the client is slow (low bandwidth): a read
    /// answered meanwhile is large and its bytes arrive over seconds, and
    /// whatever the member sends on that connection meanwhile (PONGs,
    /// probe answers, other answers) waits behind what fills the socket
    /// buffers, longer than the ping timeout.
    SlowLink,
}

impl FaultKind {
    /// Every kind, in counter order.
    pub const ALL: [FaultKind; 17] = [
        FaultKind::Crash,
        FaultKind::Hang,
        FaultKind::Reset,
        FaultKind::Goaway,
        FaultKind::Partition,
        FaultKind::Degrade,
        FaultKind::Blackhole,
        FaultKind::Refuse,
        FaultKind::TooMany,
        FaultKind::TimeoutApplied,
        FaultKind::TokenExpiry,
        FaultKind::Remove,
        FaultKind::Slow,
        FaultKind::Mute,
        FaultKind::Restore,
        FaultKind::HugeRevision,
        FaultKind::SlowLink,
    ];

    fn idx(self) -> usize {
        FaultKind::ALL
            .iter()
            .position(|k| *k == self)
            .expect("listed")
    }
}

/// What a unary call of the workload does.
#[derive(Debug, Clone, Copy, PartialEq)]
enum CallKind {
    Read,
    /// A read the server takes seconds to serve (a big range).
    SlowRead,
    Put,
    Txn,
    /// Lock/Lock or Election/Campaign: applied on arrival, answered after a
    /// server-side wait of seconds.
    Wait {
        campaign: bool,
    },
}

#[derive(Debug, Clone)]
struct Fault {
    at: Instant,
    dur: Duration,
    kind: FaultKind,
    member: usize,
}

#[derive(Debug, Clone)]
enum Ev {
    Start(usize),
    ConnectArrive(ConnId),
    ConnectDone(ConnId, bool),
    ReqArrive {
        conn: ConnId,
        call: CallId,
        attempt: u32,
        stream: u32,
        token: Option<u64>,
    },
    /// The user gives up on unary call #idx.
    UserCancel(usize),
    /// A stream call's request (HEADERS) reaches the server.
    StreamOpenArrive {
        conn: ConnId,
        call: CallId,
        attempt: u32,
        stream: u32,
        token: Option<u64>,
    },
    /// The server's response headers of a stream call reach the client.
    StreamHeaders {
        conn: ConnId,
        call: CallId,
        attempt: u32,
    },
    /// A message of the client on an open stream reaches the server.
    StreamReqArrive {
        conn: ConnId,
        stream: u32,
        req: Box<StreamReq>,
    },
    /// A message of the server on a stream reaches the client.
    StreamResp {
        conn: ConnId,
        call: CallId,
        attempt: u32,
        resp: Box<StreamResp>,
    },
    /// The server ended a stream with a status (reaches the client).
    StreamEnd {
        conn: ConnId,
        call: CallId,
        attempt: u32,
        outcome: Outcome,
    },
    /// A server-side stream request that cannot complete times out.
    SrvStreamTimeout {
        conn: ConnId,
        stream: u32,
    },
    /// A stream owner's reopen backoff ended.
    Reopen(streams::OwnerKind),
    /// A stream owner starts (adds its watchers / leases).
    OwnerStart(streams::OwnerKind),
    /// A stream message produced late (a follower's watch events, a
    /// replication lag after the leader's) is written to the connection
    /// now. Until then HTTP/2 does not hold the answers of other streams
    /// behind it (sim seed 2001696: a put's answer waited 300 ms behind a
    /// lagging follower's watch creation); from then on it is in the
    /// connection's one FIFO (a PONG written later arrives later).
    StreamWrite(ConnId, Box<Ev>),
    /// A slow watch consumer's stall ends: it takes what it holds.
    ConsumerWake,
    /// The workload is over: the owners check, then end their streams.
    OwnersStop,
    CancelArrive {
        conn: ConnId,
        stream: u32,
    },
    ServerAnswer {
        conn: ConnId,
        call: CallId,
        attempt: u32,
        stream: u32,
        outcome: Outcome,
    },
    Reply {
        conn: ConnId,
        call: CallId,
        attempt: u32,
        outcome: Outcome,
    },
    PingArrive(ConnId),
    Pong(ConnId),
    ProbeArrive(ConnId),
    ProbeReply(ConnId, MemberStatus),
    /// A leader check (a linearizable read) reaches the member.
    CheckArrive(ConnId),
    /// Its answer: whether the member reached a leader.
    CheckReply(ConnId, bool),
    ClientCloseArrive(ConnId),
    Broken(ConnId, &'static str),
    GoawayArrive(ConnId, u32),
    ServerClose(ConnId),
    AuthDone,
    Report(CallId, u32, Outcome),
    FaultStart(usize),
    FaultEnd(usize),
    /// The snapshot a later restore goes back to is taken; other clients
    /// then write thousands of revisions.
    Snapshot,
    /// Bytes of a large answer on a slow link reach the client; at `end`
    /// the last of them (the answer is whole).
    Chunk {
        conn: ConnId,
        call: CallId,
        attempt: u32,
        end: Instant,
        outcome: Box<Outcome>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum ConnSt {
    Connecting,
    Open,
    Dead,
}

#[derive(Debug)]
struct SimConn {
    member: usize,
    endpoint: EndpointId,
    st: ConnSt,
    draining: bool,
    /// The server's side exists and is alive.
    server_alive: bool,
    next_stream: u32,
    /// Highest stream id the server received.
    server_max_stream: u32,
    goaway_last: Option<u32>,
    server_streams: HashSet<u32>,
    /// Per-direction FIFO: no delivery before the previous one (one TCP
    /// connection: stream messages included, once written).
    last_to_server: Instant,
    last_to_client: Instant,
    /// When the server writes its last stream message produced so far (a
    /// follower's watch events are produced a replication lag late: they
    /// go out in order, and HTTP/2 does not hold the answers of other
    /// streams behind data not written yet: sim seed 2001696, a put's
    /// answer waited 300 ms behind a lagging follower's watch creation).
    last_stream_written: Instant,
    // Server-side ping policy (grpc-go keepalive enforcement).
    last_ping_at: Option<Instant>,
    strikes: u32,
    reset_strikes: bool,
    /// Requests a muted member holds open (grpc-go counts them as active
    /// streams for its ping policy).
    held_open: u32,
    /// Client-side ping times (for the spacing statistics).
    pings: Vec<Instant>,
    /// A large answer crosses a slow link until then: what else the server
    /// sends meanwhile waits `queued` behind it (socket buffers).
    slow_until: Instant,
    /// Until when what the server writes now arrives too late for a PONG
    /// written behind it to beat the client's ping timeout (the FIFO holds
    /// data delayed by a blackhole, a lossy link, overlapping faults).
    late_until: Instant,
    queued: Duration,
}

#[derive(Debug)]
struct CallRec {
    kind: CallKind,
    put: bool,
    cancelled: bool,
    /// Longest service time an attempt of it got on the server.
    service: Duration,
    /// An attempt went to a member that answered pings but no requests:
    /// waiting for it until the deadline is correct, so liveness does not
    /// apply.
    excused: bool,
    start: Instant,
    deadline: Instant,
    done: Option<(Instant, Result<(), CallError>)>,
    /// Revision floor: the highest revision of any op completed before the
    /// call started.
    floor: i64,
    /// Revision of the answer held for the current attempt.
    answer_rev: Option<i64>,
    /// Last outcome reported to the core: (attempt, provably unprocessed).
    last_report: Option<(u32, bool)>,
    attempts: u32,
    /// The history epoch (restores so far) when the call started.
    epoch: u32,
    /// The core handed the answer over marked stale (`Event::StaleRead`).
    marked_stale: bool,
    /// A put of the sequential writer (leader-fault runs).
    writer: bool,
}

/// A run in progress.
pub struct World {
    opts: Opts,
    rng: Rng,
    base: Instant,
    now: Instant,
    core: Core,
    cluster: Cluster,
    n: usize,
    addrs: Vec<Endpoint>,
    latency: Vec<Duration>,
    queue: BinaryHeap<Reverse<(Instant, u64)>>,
    evs: HashMap<u64, Ev>,
    seq: u64,
    conns: HashMap<ConnId, SimConn>,
    held: HashMap<CallId, (ConnId, u32, u32)>,
    calls: Vec<CallRec>,
    by_id: HashMap<CallId, usize>,
    faults: Vec<Fault>,
    active: HashMap<usize, Vec<FaultKind>>,
    removed_ids: HashSet<EndpointId>,
    removed_members: HashSet<usize>,
    ep_member: HashMap<EndpointId, usize>,
    bad: Vec<Vec<(Instant, Instant)>>,
    global_bad: Vec<(Instant, Instant)>,
    token_epoch: u64,
    /// The token the client holds (the epoch it was issued in).
    client_token: Option<u64>,
    auth: bool,
    auth_pending: bool,
    report_on_close: bool,
    fault_end: Instant,
    max_completed_rev: i64,
    /// Requests that reached a frozen member: (member, conn, call, attempt,
    /// stream, token epoch).
    backlog: Vec<(usize, ConnId, CallId, u32, u32, Option<u64>)>,
    report: Report,
    /// Extra delay of a follower's answers and watch events (replication
    /// lag), per member.
    lag: Vec<Duration>,
    /// Attempts running slowly on a healthy member.
    slow_runs: HashMap<CallId, SlowRun>,
    /// Answers arriving over a slow link.
    slow_answers: HashMap<CallId, SlowAnswer>,
    /// The highest raft term the client was told of (probe results and
    /// response headers handed to the core).
    client_term: u64,
    /// Fault kinds (bitmask over `FaultKind::ALL`) that touched each call.
    hits: HashMap<CallId, u32>,
    /// Stream calls -> their owner.
    owners: HashMap<CallId, streams::OwnerKind>,
    watch: Option<WatchSide>,
    lease: Option<LeaseSide>,
    /// Server side of the stream calls, by (connection, stream id).
    srv_streams: std::collections::BTreeMap<(ConnId, u32), SrvStream>,
    /// Server-side leases: id -> (expiry, ttl in seconds).
    srv_leases: std::collections::BTreeMap<i64, (Instant, i64)>,
    /// End of the workload (the stream owners stop then).
    workload_end: Instant,
    /// Run on past the idle timeout at the end and check that nothing is
    /// left behind (one seed in eight: it costs two minutes of probes).
    idle_check: bool,
    /// When elections happened.
    elections: Vec<Instant>,
    /// Pings that reached a frozen member: (member, conn).
    ping_backlog: Vec<(usize, ConnId)>,
    /// A restore is planned: (snapshot taken at, restored at).
    restore: Option<(Instant, Instant)>,
    /// The revision of the snapshot, once taken.
    snapshot_rev: Option<i64>,
    /// Restores so far: answers of different epochs are not comparable.
    history_epoch: u32,
    /// Members whose next answer carries [`HUGE_REVISION`].
    bogus: HashSet<usize>,
    /// Connection attempts of the last second, per endpoint (at most
    /// [`MAX_CONNECTS_PER_SECOND`], however many calls wait).
    recent_connects: HashMap<EndpointId, std::collections::VecDeque<Instant>>,
    /// Calls the core holds in flight, as the adapter knows them (sent, no
    /// outcome reported yet, stream not established): attempt, and whether
    /// the call waits for its turn by design (Lock, Campaign).
    core_in_flight: HashMap<CallId, (u32, bool)>,
    /// The last time an endpoint was reported down or suspect.
    trouble_at: Option<Instant>,
    /// The last time a call that does not wait by design left flight.
    other_left_at: Option<Instant>,
    /// Faults (indices into `faults`) aimed at whichever member leads when
    /// they start (leader-fault runs).
    leader_targets: HashSet<usize>,
    /// Leader faults as they started: (at, kind, member).
    leader_fault_log: Vec<(Instant, FaultKind, usize)>,
    /// The sequential writer starts no put after this (leader-fault runs).
    writer_end: Option<Instant>,
}

/// The most connection attempts to one endpoint in any second
/// (`Config::connect_backoff`: 100-180 ms apart after a failure).
const MAX_CONNECTS_PER_SECOND: usize = 10;

/// How long a large answer takes to cross a slow link
/// ([`FaultKind::SlowLink`]).
const SLOW_LINK_TRANSFER: std::ops::Range<Duration> =
    Duration::from_millis(1500)..Duration::from_millis(5000);

/// How long what a member sends meanwhile waits behind such an answer (the
/// socket buffers): longer than the ping timeout.
const SLOW_LINK_QUEUE: std::ops::Range<Duration> =
    Duration::from_millis(1000)..Duration::from_millis(2500);

impl SimConn {
    /// The earliest instant something the server sends now reaches the
    /// client: behind a slow-link answer, what fills the socket buffers
    /// drains first.
    fn behind_slow_answer(&self, now: Instant) -> Instant {
        if self.slow_until > now {
            now + self.queued.min(self.slow_until - now)
        } else {
            now
        }
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

impl World {
    /// Set up the run for `seed`.
    pub fn new(seed: u64, opts: Opts) -> World {
        let mut rng = Rng::new(seed);
        let base = Instant::now();
        let n = if rng.gen_bool(0.6) { 3 } else { 5 };
        let policy = match rng.gen_range(0..10) {
            0..=5 => Policy::Adaptive,
            6..=7 => Policy::RoundRobin,
            _ => Policy::Pinned,
        };
        let auth = rng.gen_bool(0.3);
        let mut config = Config {
            policy,
            authenticate: auth,
            ..Config::default()
        };
        if opts.no_election_wait {
            config.election_wait = Duration::ZERO;
        }
        let addrs: Vec<Endpoint> = (1..=n)
            .map(|i| Endpoint::parse(&format!("127.0.0.{i}:2379")).unwrap())
            .collect();
        let latency = (0..n)
            .map(|_| Duration::from_micros(rng.gen_range(300..6000)))
            .collect();
        let core = Core::new(config, addrs.clone(), rng.next_u64());
        let prevote = rng.gen_bool(0.5);
        let report_on_close = rng.gen_bool(0.8);
        let lag = (0..n)
            .map(|_| {
                if rng.gen_bool(0.2) {
                    ms(rng.gen_range(50..400))
                } else {
                    Duration::from_micros(rng.gen_range(0..20_000))
                }
            })
            .collect();
        let mut w = World {
            opts,
            rng,
            base,
            now: base,
            core,
            cluster: Cluster::new(n, prevote),
            n,
            addrs,
            latency,
            queue: BinaryHeap::new(),
            evs: HashMap::new(),
            seq: 0,
            conns: HashMap::new(),
            held: HashMap::new(),
            calls: Vec::new(),
            by_id: HashMap::new(),
            faults: Vec::new(),
            active: HashMap::new(),
            removed_ids: HashSet::new(),
            removed_members: HashSet::new(),
            ep_member: HashMap::new(),
            bad: vec![Vec::new(); n],
            global_bad: Vec::new(),
            token_epoch: 0,
            // With credentials, the client has no token until the core asks
            // for one (before the first call).
            client_token: if auth { None } else { Some(0) },
            auth,
            auth_pending: false,
            report_on_close,
            fault_end: base,
            max_completed_rev: 0,
            backlog: Vec::new(),
            report: Report::default(),
            lag,
            slow_runs: HashMap::new(),
            slow_answers: HashMap::new(),
            client_term: 0,
            hits: HashMap::new(),
            owners: HashMap::new(),
            watch: None,
            lease: None,
            srv_streams: std::collections::BTreeMap::new(),
            srv_leases: std::collections::BTreeMap::new(),
            workload_end: base,
            idle_check: seed % 8 == 0,
            elections: Vec::new(),
            ping_backlog: Vec::new(),
            restore: None,
            snapshot_rev: None,
            history_epoch: 0,
            bogus: HashSet::new(),
            recent_connects: HashMap::new(),
            core_in_flight: HashMap::new(),
            trouble_at: None,
            other_left_at: None,
            leader_targets: HashSet::new(),
            leader_fault_log: Vec::new(),
            writer_end: None,
        };
        w.log(|| {
            format!("seed {seed}: {n} members, {policy:?}, prevote {prevote}, auth {auth}, report_on_close {report_on_close}")
        });
        w.plan();
        w
    }

    fn log(&mut self, f: impl FnOnce() -> String) {
        if self.opts.log {
            let t = self.now - self.base;
            let line = format!("[{:>9.3}s] {}", t.as_secs_f64(), f());
            self.report.log.push(line);
        }
    }

    fn violation(&mut self, what: String) {
        let t = self.now - self.base;
        let line = format!("at {:.3}s: {what}", t.as_secs_f64());
        self.log(|| format!("VIOLATION {line}"));
        if self.report.violations.len() < 20 {
            self.report.violations.push(line);
        }
    }

    fn at(&mut self, t: Instant, ev: Ev) {
        let s = self.seq;
        self.seq += 1;
        self.evs.insert(s, ev);
        self.queue.push(Reverse((t, s)));
    }

    /// One-way latency on member `m`'s link, with loss-induced delays when
    /// the link is degraded.
    fn lat(&mut self, m: usize) -> Duration {
        let base = self.latency[m];
        let jitter = Duration::from_micros(self.rng.gen_range(0..500));
        let mut d = base + jitter;
        if self.has(m, FaultKind::Degrade) && self.rng.gen_bool(0.3) {
            d += ms(self.rng.gen_range(200..1500));
        }
        d
    }

    fn has(&self, m: usize, k: FaultKind) -> bool {
        self.active.get(&m).is_some_and(|v| v.contains(&k))
    }

    fn blackholed(&self, m: usize) -> bool {
        self.has(m, FaultKind::Blackhole)
    }

    /// When the blackhole on member `m`'s link ends, if one is active.
    fn blackhole_end(&self, m: usize) -> Option<Instant> {
        if !self.blackholed(m) {
            return None;
        }
        self.faults
            .iter()
            .filter(|f| f.member == m && f.kind == FaultKind::Blackhole)
            .filter(|f| f.at <= self.now)
            .map(|f| f.at + f.dur)
            .max()
    }

    // ----------------------------------------------------------- planning

    fn plan(&mut self) {
        let fault_window = ms(self.rng.gen_range(15_000..40_000));
        self.fault_end = self.base + fault_window;
        let n_faults = if self.opts.leader_faults {
            0
        } else {
            self.rng.gen_range(2..14) as usize
        };
        let mut kinds = vec![
            FaultKind::Crash,
            FaultKind::Hang,
            FaultKind::Reset,
            FaultKind::Goaway,
            FaultKind::Partition,
            FaultKind::Degrade,
            FaultKind::Blackhole,
            FaultKind::Refuse,
            FaultKind::TooMany,
            FaultKind::TimeoutApplied,
            FaultKind::Remove,
            FaultKind::Slow,
            FaultKind::Mute,
            FaultKind::SlowLink,
        ];
        if self.auth {
            kinds.push(FaultKind::TokenExpiry);
        }
        for _ in 0..n_faults {
            let kind = kinds[self.rng.gen_range(0..kinds.len() as u64) as usize];
            let member = self.rng.gen_range(0..self.n as u64) as usize;
            let start = ms(self.rng.gen_range(500..fault_window.as_millis() as u64));
            let dur = match kind {
                FaultKind::Reset | FaultKind::Goaway | FaultKind::TokenExpiry => Duration::ZERO,
                _ => ms(self.rng.gen_range(300..12_000)),
            };
            let at = self.base + start;
            let end = (at + dur).min(self.fault_end);
            let dur = end.saturating_duration_since(at);
            self.faults.push(Fault {
                at,
                dur,
                kind,
                member,
            });
        }
        // Revision faults: a restore from a snapshot taken earlier, a bogus
        // header with a huge revision.
        let half = fault_window.as_millis() as u64 / 2;
        if !self.opts.leader_faults && self.rng.gen_bool(0.3) {
            let snap = self.base + ms(self.rng.gen_range(500..half));
            let at = snap + ms(self.rng.gen_range(1000..half));
            self.restore = Some((snap, at));
            self.at(snap, Ev::Snapshot);
            self.faults.push(Fault {
                at,
                dur: Duration::ZERO,
                kind: FaultKind::Restore,
                member: 0,
            });
        }
        if !self.opts.leader_faults && self.rng.gen_bool(0.3) {
            let at = self.base + ms(self.rng.gen_range(500..fault_window.as_millis() as u64));
            let member = self.rng.gen_range(0..self.n as u64) as usize;
            self.faults.push(Fault {
                at,
                dur: Duration::ZERO,
                kind: FaultKind::HugeRevision,
                member,
            });
        }
        if self.opts.leader_faults {
            self.plan_leader_faults(fault_window);
        }
        for i in 0..self.faults.len() {
            let f = self.faults[i].clone();
            self.at(f.at, Ev::FaultStart(i));
            if !f.dur.is_zero() {
                self.at(f.at + f.dur, Ev::FaultEnd(i));
            }
            if self.leader_targets.contains(&i) {
                // Its member is known when it starts (`aim_at_leader`).
                continue;
            }
            // Liveness bookkeeping: the member is bad from the fault until
            // it had time to recover (a restarted member rejoins later).
            let tail = match f.kind {
                FaultKind::Crash => ms(600),
                FaultKind::Partition | FaultKind::Hang | FaultKind::Mute => {
                    ELECTION_TIMEOUT + ms(500)
                }
                // The last large answer drains after the fault.
                FaultKind::SlowLink => SLOW_LINK_TRANSFER.end + SLOW_LINK_QUEUE.end,
                _ => ms(100),
            };
            if f.kind == FaultKind::Restore {
                // Every member restarts.
                self.global_bad.push((f.at, f.at + ms(600)));
            } else if f.kind == FaultKind::HugeRevision {
                // Must cost no call anything.
            } else if f.kind == FaultKind::TokenExpiry {
                self.global_bad.push((f.at, f.at + ms(500)));
            } else {
                self.bad[f.member].push((f.at, f.at + f.dur + tail));
            }
        }
        // Workload: reads, puts, txns, slow reads, lock/campaign waits, with
        // deadlines, some cancelled by the user, during the faults and in
        // the quiet period after them; in some runs a second batch after a
        // gap longer than the idle timeout.
        let n_calls = self.rng.gen_range(25..75) as usize;
        let horizon = fault_window + ms(15_000);
        let mut starts: Vec<Duration> = (0..n_calls)
            .map(|_| ms(self.rng.gen_range(200..horizon.as_millis() as u64)))
            .collect();
        if self.rng.gen_bool(0.05) {
            self.report.long_runs += 1;
            let gap = horizon + ms(self.rng.gen_range(125_000..200_000));
            for _ in 0..self.rng.gen_range(4..12) {
                starts.push(gap + ms(self.rng.gen_range(0..10_000)));
            }
        }
        starts.sort();
        for s in starts {
            let kind = match self.rng.gen_range(0..100) {
                0..=49 => CallKind::Read,
                50..=74 => CallKind::Put,
                75..=84 => CallKind::Txn,
                85..=91 => CallKind::SlowRead,
                _ => CallKind::Wait {
                    campaign: self.rng.gen_bool(0.5),
                },
            };
            let put = !matches!(kind, CallKind::Read | CallKind::SlowRead);
            // Slow calls get room for their service time.
            let timeout = match kind {
                CallKind::SlowRead | CallKind::Wait { .. } => ms(self.rng.gen_range(7_000..14_000)),
                _ => ms(self.rng.gen_range(300..10_000)),
            };
            let start = self.base + s;
            let cancel_at = self
                .rng
                .gen_bool(0.08)
                .then(|| start + ms(self.rng.gen_range(1..timeout.as_millis() as u64)));
            self.calls.push(CallRec {
                kind,
                put,
                cancelled: false,
                service: Duration::ZERO,
                excused: false,
                start,
                deadline: start + timeout,
                done: None,
                floor: 0,
                answer_rev: None,
                last_report: None,
                attempts: 0,
                epoch: 0,
                marked_stale: false,
                writer: false,
            });
            let idx = self.calls.len() - 1;
            self.at(start, Ev::Start(idx));
            if let Some(t) = cancel_at {
                self.at(t, Ev::UserCancel(idx));
            }
        }
        self.workload_end = self
            .calls
            .iter()
            .map(|c| c.deadline)
            .max()
            .unwrap_or(self.base);
        if self.opts.leader_faults {
            self.plan_writer();
        }
        self.plan_streams();
    }

    // ----------------------------------------------------------- main loop

    /// Run to the end and check the final invariants.
    pub fn run(mut self) -> Report {
        // The stream owners stop a few seconds after the last deadline;
        // the run ends a little later.
        let owners_stop = self.workload_end + ms(3000);
        self.at(owners_stop, Ev::OwnersStop);
        let end = owners_stop + ms(2000);
        self.run_until(end, true);
        self.finish();
        if !self.idle_check {
            return self.report;
        }
        // Bounded state: once every call has ended and the connections had
        // time to go idle, the core holds no call, no connection and no
        // timer.
        let idle = self.core.config().idle_timeout + ms(10_000);
        let stop = self.now + idle;
        self.run_until(stop, false);
        let (calls, conns, timers, timer) = (
            self.core.calls_in_progress(),
            self.core.open_connections(),
            self.core.pending_timers(),
            self.core.poll_timeout(),
        );
        if calls != 0 || conns != 0 || timers != 0 || timer.is_some() {
            let timer = timer.map(|t| t.saturating_duration_since(self.now));
            self.violation(format!(
                "state left behind after every call ended and {idle:?} idle: {calls} call(s), {conns} connection(s), {timers} timer(s), next in {timer:?}"
            ));
        }
        // Removed endpoints (member removal faults) leave no entry behind.
        let (slots, live) = (
            self.core.endpoint_slots(),
            self.core.endpoint_states().len(),
        );
        if slots != live {
            self.violation(format!(
                "the endpoint table holds {slots} entries for {live} endpoints after {idle:?} idle"
            ));
        }
        self.report
    }

    /// Process events and timers up to `end` (with `early`, stop as soon as
    /// every call is done and nothing is pending before `end`).
    fn run_until(&mut self, end: Instant, early: bool) {
        let mut same_instant = 0u32;
        // A core timer that stays due after `handle_timeout` (an adapter
        // would spin on it): reported once, then ignored until it changes.
        let mut stuck: Option<Instant> = None;
        loop {
            let next_ev = self.queue.peek().map(|Reverse((t, _))| *t);
            let next_timer = self.core.poll_timeout().filter(|t| Some(*t) != stuck);
            let next_raft = self.cluster.next_tick();
            let next_owner = self.owner_timeout();
            let next = [next_ev, next_timer, next_raft, next_owner]
                .into_iter()
                .flatten()
                .min();
            let Some(next) = next else { break };
            if next > end {
                break;
            }
            // A timer may fall due in the past (an input armed it late):
            // handle it now, as an adapter would.
            let next = next.max(self.now);
            if next == self.now {
                same_instant += 1;
                if same_instant > 5000 {
                    if next_timer == Some(next) || next_timer.is_some_and(|t| t < self.now) {
                        stuck = next_timer;
                        same_instant = 0;
                        if !self.report.violations.iter().any(|v| v.contains("spins")) {
                            self.violation(format!(
                                "core timer at +{:?} stays due after handle_timeout: the adapter spins",
                                next_timer.map(|t| t - self.base)
                            ));
                        }
                        continue;
                    }
                    self.violation(format!(
                        "livelock: no progress in time (event {:?}, core timer {:?}, raft {:?}, owner {:?})",
                        next_ev.map(|t| t - self.base),
                        next_timer.map(|t| t - self.base),
                        next_raft.map(|t| t - self.base),
                        next_owner.map(|t| t - self.base)
                    ));
                    break;
                }
            } else {
                same_instant = 0;
            }
            self.now = next;
            self.report.events += 1;
            if next_raft == Some(next) {
                let pick = self.rng.next_u64();
                let term = self.cluster.term;
                let changes = self.cluster.tick(next, pick);
                if self.cluster.term != term {
                    self.elections.push(next);
                }
                for c in changes {
                    self.log(|| c);
                }
                self.sync_streams();
                continue;
            }
            if next_ev == Some(next) {
                let Some(Reverse((_, s))) = self.queue.pop() else {
                    break;
                };
                let ev = self.evs.remove(&s).expect("event");
                self.handle(ev);
            } else if next_owner == Some(next) {
                self.owner_tick();
            } else {
                self.core.handle_timeout(next);
            }
            self.drain();
            self.sync_streams();
            self.check_lease_holders();
            if early
                && self.all_done()
                && self.owners.is_empty()
                && self.queue.iter().all(|Reverse((t, _))| *t > end)
            {
                break;
            }
        }
    }

    fn all_done(&self) -> bool {
        self.calls.iter().all(|c| c.done.is_some() || c.cancelled)
    }

    fn finish(&mut self) {
        for i in 0..self.calls.len() {
            if self.calls[i].done.is_none() && !self.calls[i].cancelled {
                let c = &self.calls[i];
                let what = format!(
                    "call #{i} ({}) started at {:.3}s never completed (deadline {:.3}s)",
                    if c.put { "put" } else { "read" },
                    (c.start - self.base).as_secs_f64(),
                    (c.deadline - self.base).as_secs_f64()
                );
                self.violation(what);
            }
        }
        // Puts: a definite failure means it did not happen; OK means once.
        for i in 0..self.calls.len() {
            let c = &self.calls[i];
            if !c.put {
                continue;
            }
            let applied = self.cluster.applied.get(&(i as u64)).copied().unwrap_or(0);
            let what = match &c.done {
                Some((_, Ok(()))) if applied != 1 => {
                    Some(format!("put #{i} succeeded but applied {applied} times"))
                }
                Some((_, Err(e))) if !e.may_have_applied() && applied != 0 => Some(format!(
                    "put #{i} failed definitely ({e}) but was applied {applied} times"
                )),
                _ if applied > 1 => Some(format!("put #{i} applied {applied} times")),
                _ => None,
            };
            if let Some(w) = what {
                self.violation(w);
            }
        }
        self.check_liveness();
        self.check_leader_faults();
        for bits in self.hits.values() {
            for (i, n) in self.report.fault_hits.iter_mut().enumerate() {
                if bits & (1 << i) != 0 {
                    *n += 1;
                }
            }
        }
    }

    /// Calls that had a healthy member available for long enough must
    /// succeed; so must every call in the quiet period after the faults.
    fn check_liveness(&mut self) {
        let detection = ms(2200) * (self.n as u32 - 1) + ms(1000);
        let warmup = ms(6000);
        let quiet = self.fault_end + ms(6000);
        for i in 0..self.calls.len() {
            let c = &self.calls[i];
            let Some((_, result)) = &c.done else {
                continue;
            };
            // A call that waited on a member answering pings but no
            // requests, or that was served slowly with too little time
            // left to go elsewhere, may fail.
            // A slow call on a member that stops answering is found by a
            // ping, and pings are spaced by etcd's 5 s minimum: up to about
            // 6 s per member.
            let slow_detection = ms(7000) * (self.n as u32 - 1);
            if c.excused
                || c.service > ms(500)
                    && (self.opts.allow_slow_abort
                        || c.deadline - c.start < c.service + slow_detection)
            {
                continue;
            }
            let long_enough = c.deadline - c.start >= detection;
            let (a, b) = (c.start.checked_sub(warmup).unwrap_or(self.base), c.deadline);
            let globally_ok = !self
                .cluster
                .leaderless_during(c.start - ms(1000).min(c.start - self.base), b)
                && !self
                    .global_bad
                    .iter()
                    .any(|&(s, e)| s <= b && e + ms(1000) >= c.start);
            let good_member =
                (0..self.n).any(|m| !self.bad[m].iter().any(|&(s, e)| s <= b && e >= a));
            let in_quiet = c.start >= quiet;
            let must_succeed = in_quiet && c.deadline - c.start >= ms(1000)
                || (!c.put && long_enough && globally_ok && good_member);
            if must_succeed {
                self.report.must_succeed += 1;
            }
            if let (true, Err(e)) = (must_succeed, result) {
                let what = format!(
                    "call #{i} ({}) [{:.3}s..{:.3}s] failed although a healthy member was reachable{}: {e}",
                    if c.put { "put" } else { "read" },
                    (c.start - self.base).as_secs_f64(),
                    (c.deadline - self.base).as_secs_f64(),
                    if in_quiet { " (quiet period)" } else { "" },
                );
                let what = match self.restore {
                    Some((_, at)) if c.start >= at && !c.put => format!(
                        "{what} [reads must never fail for good after a restore from an older revision]"
                    ),
                    _ => what,
                };
                self.violation(what);
            }
        }
    }

    // --------------------------------------------------------- adapter

    fn drain(&mut self) {
        let mut guard = 0;
        loop {
            // A call's `StaleRead` comes before its `Complete`.
            self.take_events();
            let Some(a) = self.core.poll_action() else {
                break;
            };
            guard += 1;
            if guard > 100_000 {
                self.violation("runaway action stream".into());
                return;
            }
            self.action(a);
        }
        self.take_events();
    }

    fn take_events(&mut self) {
        while let Some(ev) = self.core.poll_event() {
            match ev {
                Event::StaleRead {
                    call,
                    answered,
                    seen,
                    ..
                } => {
                    self.report.stale_marked += 1;
                    self.log(|| format!("stale read {call:?}: revision {answered} < {seen}"));
                    if let Some(&idx) = self.by_id.get(&call) {
                        self.calls[idx].marked_stale = true;
                    }
                }
                Event::FenceReset { answered, seen, .. } => {
                    self.report.fence_resets += 1;
                    self.log(|| format!("fence reset: {seen} -> {answered}"));
                }
                Event::HealthChanged { state, .. }
                    if state != etcdv3_core::endpoints::health::HealthState::Up =>
                {
                    self.trouble_at = Some(self.now);
                }
                _ => {}
            }
        }
    }

    /// `call`'s attempt (any, or `attempt`) is no longer in flight.
    fn left_flight(&mut self, call: CallId, attempt: Option<u32>) {
        let Some(&(a, waits)) = self.core_in_flight.get(&call) else {
            return;
        };
        if attempt.is_none_or(|x| x == a) {
            self.core_in_flight.remove(&call);
            if !waits {
                self.other_left_at = Some(self.now);
            }
        }
    }

    /// No RPC is caused by calls waiting for their turn (Lock, Campaign) on
    /// live members (issue 17, section 4): a status probe while nothing
    /// else is in flight, every member is up, and no fault, election or
    /// trouble happened for a while, is a violation.
    fn check_probe_cause(&mut self) {
        const CALM: Duration = Duration::from_secs(12);
        let now = self.now;
        let waits = self.core_in_flight.values().filter(|(_, w)| *w).count();
        let others = self.core_in_flight.len() - waits;
        if waits == 0 || others > 0 {
            return;
        }
        let faulty = self
            .faults
            .iter()
            .any(|f| f.at <= now && now < f.at + f.dur + CALM);
        let elected = self.elections.last().is_some_and(|e| now < *e + CALM);
        let troubled = self.trouble_at.is_some_and(|t| now < t + CALM);
        // A round asked for by a slow call that just ended may still run.
        let recent_other = self.other_left_at.is_some_and(|t| now < t + ms(1000));
        let all_up = self
            .core
            .endpoint_states()
            .iter()
            .all(|s| s.health == etcdv3_core::endpoints::health::HealthState::Up);
        if !faulty && !elected && !troubled && !recent_other && all_up {
            self.violation(format!(
                "status probe while only {waits} waiting Lock/Campaign call(s) were in flight on live members"
            ));
        }
    }

    fn action(&mut self, a: Action) {
        let now = self.now;
        match a {
            Action::Connect {
                conn,
                endpoint,
                target,
            } => {
                let member = self
                    .addrs
                    .iter()
                    .position(|x| *x == target)
                    .expect("known address");
                self.log(|| format!("Connect {conn:?} -> {endpoint:?} (m{})", member + 1));
                self.ep_member.insert(endpoint, member);
                if self.removed_ids.contains(&endpoint) {
                    self.violation(format!("Connect to removed endpoint {endpoint:?}"));
                }
                let others = self
                    .conns
                    .values()
                    .filter(|c| c.endpoint == endpoint && c.st != ConnSt::Dead && !c.draining)
                    .count();
                if others > 0 {
                    self.violation(format!(
                        "second connection to {endpoint:?} while one is open"
                    ));
                }
                // Connection attempts per endpoint are bounded, whatever
                // the number of waiting calls (issue 17, section 3).
                let recent = self.recent_connects.entry(endpoint).or_default();
                while recent.front().is_some_and(|t| *t + ms(1000) <= now) {
                    recent.pop_front();
                }
                recent.push_back(now);
                if recent.len() > MAX_CONNECTS_PER_SECOND {
                    let n = recent.len();
                    self.violation(format!(
                        "{n} connection attempts to {endpoint:?} within a second"
                    ));
                }
                self.conns.insert(
                    conn,
                    SimConn {
                        member,
                        endpoint,
                        st: ConnSt::Connecting,
                        draining: false,
                        server_alive: false,
                        next_stream: 1,
                        server_max_stream: 0,
                        goaway_last: None,
                        server_streams: HashSet::new(),
                        last_to_server: now,
                        last_to_client: now,
                        last_stream_written: now,
                        last_ping_at: None,
                        strikes: 0,
                        reset_strikes: false,
                        held_open: 0,
                        pings: Vec::new(),
                        slow_until: now,
                        late_until: now,
                        queued: Duration::ZERO,
                    },
                );
                let d = self.lat(member);
                self.at(now + d, Ev::ConnectArrive(conn));
            }
            Action::Close { conn } => {
                self.log(|| format!("Close {conn:?}"));
                let mut on: Vec<CallId> = self
                    .slow_runs
                    .iter()
                    .filter(|(_, r)| r.conn == conn)
                    .map(|(c, _)| *c)
                    .collect();
                on.sort();
                for call in on {
                    self.check_slow_abort(call, "its connection was closed");
                }
                let mut on: Vec<CallId> = self
                    .slow_answers
                    .iter()
                    .filter(|(_, a)| a.conn == conn)
                    .map(|(c, _)| *c)
                    .collect();
                on.sort();
                for call in on {
                    self.check_slow_answer_cut(call, "its connection was closed");
                }
                let Some(c) = self.conns.get_mut(&conn) else {
                    return;
                };
                let was = c.st;
                c.st = ConnSt::Dead;
                let member = c.member;
                if was != ConnSt::Dead {
                    let d = self.lat(member);
                    self.send_to_server(conn, d, Ev::ClientCloseArrive(conn));
                }
                self.abandon_held(conn, self.report_on_close);
            }
            Action::Send {
                call,
                attempt,
                conn,
            } => {
                let waits = self
                    .by_id
                    .get(&call)
                    .is_some_and(|i| matches!(self.calls[*i].kind, CallKind::Wait { .. }));
                self.core_in_flight.insert(call, (attempt, waits));
                if attempt > 1 {
                    self.check_slow_abort(call, "it was sent again");
                    self.check_slow_answer_cut(call, "it was sent again");
                }
                self.mark_hits_at_send(call, conn);
                if self.owners.contains_key(&call) {
                    self.stream_send(call, attempt, conn);
                    return;
                }
                let idx = self.by_id[&call];
                self.log(|| format!("Send #{idx} attempt {attempt} on {conn:?}"));
                self.calls[idx].attempts += 1;
                self.calls[idx].answer_rev = None;
                let ep = self.conns.get(&conn).map(|c| c.endpoint);
                if ep.is_none_or(|e| self.removed_ids.contains(&e)) {
                    self.violation(format!("Send #{idx} on {conn:?} to removed/unknown {ep:?}"));
                }
                if self.calls[idx].put && attempt > 1 {
                    match self.calls[idx].last_report {
                        Some((a, true)) if a + 1 == attempt => {}
                        other => self.violation(format!(
                            "put #{idx} re-sent (attempt {attempt}) without proof the previous attempt was not processed (last report {other:?})"
                        )),
                    }
                }
                // Drop the previous attempt, wherever it is.
                if let Some((old_conn, _, stream)) = self.held.remove(&call) {
                    if let Some(m) = self.conns.get(&old_conn).map(|c| c.member) {
                        if self.conns[&old_conn].st == ConnSt::Open {
                            let d = self.lat(m);
                            self.send_to_server(
                                old_conn,
                                d,
                                Ev::CancelArrive {
                                    conn: old_conn,
                                    stream,
                                },
                            );
                        }
                    }
                }
                let Some((stream, token, d)) = self.put_on_wire(call, attempt, conn) else {
                    return;
                };
                self.send_to_server(
                    conn,
                    d,
                    Ev::ReqArrive {
                        conn,
                        call,
                        attempt,
                        stream,
                        token,
                    },
                );
            }
            Action::Ping { conn } => {
                self.log(|| format!("Ping {conn:?}"));
                let Some(c) = self.conns.get_mut(&conn) else {
                    return;
                };
                c.pings.push(now);
                if c.st == ConnSt::Open {
                    let m = c.member;
                    let d = self.lat(m);
                    self.send_to_server(conn, d, Ev::PingArrive(conn));
                }
            }
            Action::Probe { conn, .. } => {
                self.log(|| format!("Probe {conn:?}"));
                self.check_probe_cause();
                if let Some(c) = self.conns.get(&conn) {
                    if c.st == ConnSt::Open {
                        let m = c.member;
                        let d = self.lat(m);
                        self.send_to_server(conn, d, Ev::ProbeArrive(conn));
                    }
                }
            }
            Action::CheckLeader { conn, .. } => {
                self.log(|| format!("CheckLeader {conn:?}"));
                if let Some(c) = self.conns.get(&conn) {
                    if c.st == ConnSt::Open {
                        let m = c.member;
                        let d = self.lat(m);
                        self.send_to_server(conn, d, Ev::CheckArrive(conn));
                    }
                }
            }
            Action::Authenticate => {
                self.log(|| "Authenticate".into());
                if self.auth_pending {
                    self.violation("second Authenticate while one is pending".into());
                }
                self.auth_pending = true;
                let d = ms(self.rng.gen_range(2..40));
                // The token issued is of the epoch current when the
                // request reaches the server (about now).
                self.at(now + d, Ev::AuthDone);
            }
            Action::Complete { call, result } => {
                self.left_flight(call, None);
                if let Err(e) = &result {
                    if now < self.call_deadline(call) {
                        self.check_slow_abort(call, &format!("it failed: {e}"));
                        self.check_slow_answer_cut(call, &format!("it failed: {e}"));
                    }
                }
                self.slow_runs.remove(&call);
                self.slow_answers.remove(&call);
                if let Some(kind) = self.owners.remove(&call) {
                    self.stream_completed(kind, call, result);
                    return;
                }
                let idx = self.by_id[&call];
                if self.calls[idx].cancelled {
                    self.violation(format!("call #{idx} completed after the user cancelled it"));
                    return;
                }
                self.log(|| format!("Complete #{idx}: {result:?}"));
                self.held.remove(&call);
                if self.calls[idx].done.is_some() {
                    self.violation(format!("call #{idx} completed twice"));
                    return;
                }
                if now > self.calls[idx].deadline {
                    let late = now - self.calls[idx].deadline;
                    self.violation(format!("call #{idx} completed {late:?} after its deadline"));
                }
                let c = &self.calls[idx];
                match &result {
                    Ok(()) => {
                        self.report.ok += 1;
                        match c.answer_rev {
                            Some(rev) => {
                                let (put, floor, marked) = (c.put, c.floor, c.marked_stale);
                                let same_history = c.epoch == self.history_epoch;
                                if !put && rev < floor && same_history && !marked {
                                    self.violation(format!(
                                        "read #{idx} saw revision {rev} after revision {floor} was already observed (not marked stale)"
                                    ));
                                }
                                if marked && !self.opts.stale_serve {
                                    self.violation(format!(
                                        "linearizable read #{idx} handed over marked stale (revision {rev})"
                                    ));
                                }
                                if same_history && rev < HUGE_REVISION && !marked {
                                    self.max_completed_rev = self.max_completed_rev.max(rev);
                                }
                            }
                            None => self.violation(format!("call #{idx} OK without an answer")),
                        }
                    }
                    Err(e) => {
                        self.report.failed += 1;
                        if matches!(e, CallError::OutcomeUnknown { .. }) {
                            self.report.unknown += 1;
                        }
                        if !c.put && e.may_have_applied() {
                            self.violation(format!("read #{idx} reported as may-have-applied"));
                        }
                    }
                }
                self.calls[idx].done = Some((now, result));
                if self.calls[idx].writer {
                    self.writer_next();
                }
            }
        }
    }

    /// Put attempt `attempt` of `call` on a new HTTP/2 stream of `conn`:
    /// its stream id, the token it carries and the link latency; `None`
    /// (reported as not sent) when the connection is gone.
    pub(super) fn put_on_wire(
        &mut self,
        call: CallId,
        attempt: u32,
        conn: ConnId,
    ) -> Option<(u32, Option<u64>, Duration)> {
        let open = self.conns.get(&conn).is_some_and(|c| c.st == ConnSt::Open);
        if !open {
            let now = self.now;
            self.at(
                now,
                Ev::Report(call, attempt, Outcome::NotSent("connection is gone".into())),
            );
            return None;
        }
        let c = self.conns.get_mut(&conn).expect("conn");
        let stream = c.next_stream;
        c.next_stream += 2;
        let member = c.member;
        self.held.insert(call, (conn, attempt, stream));
        let token = self.client_token;
        Some((stream, token, self.lat(member)))
    }

    fn send_to_server(&mut self, conn: ConnId, d: Duration, ev: Ev) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let t = (self.now + d).max(c.last_to_server);
        c.last_to_server = t;
        self.at(t, ev);
    }

    fn send_to_client(&mut self, conn: ConnId, ev: Ev) {
        let Some(m) = self.conns.get(&conn).map(|c| c.member) else {
            return;
        };
        // A blackholed link delays, it does not lose: TCP retransmits what
        // was sent once the link is back (if the connection still exists).
        let from = match self.blackhole_end(m) {
            Some(end) => end.max(self.now),
            None => self.now,
        };
        let d = self.lat(m);
        let now = self.now;
        let ping_timeout = self.core.config().ping_timeout;
        let c = self.conns.get_mut(&conn).expect("conn");
        let t = (from + d)
            .max(c.last_to_client)
            .max(c.behind_slow_answer(now));
        c.last_to_client = t;
        if t > now + ping_timeout - ms(100) {
            c.late_until = c.late_until.max(t);
        }
        self.at(t, ev);
    }

    /// The adapter gives up the attempts it holds on `conn`; with `report`,
    /// each is reported lost (the h2 streams failed with the connection).
    fn abandon_held(&mut self, conn: ConnId, report: bool) {
        let mut on: Vec<(CallId, u32)> = self
            .held
            .iter()
            .filter(|(_, (c, _, _))| *c == conn)
            .map(|(call, (_, a, _))| (*call, *a))
            .collect();
        on.sort();
        for (call, attempt) in on {
            self.held.remove(&call);
            if report {
                self.at(
                    self.now,
                    Ev::Report(call, attempt, Outcome::Lost("connection closed".into())),
                );
            }
        }
    }

    fn report_outcome(&mut self, call: CallId, attempt: u32, outcome: Outcome) {
        self.left_flight(call, Some(attempt));
        if let Outcome::Success(Some(meta)) = &outcome {
            self.client_term = self.client_term.max(meta.raft_term);
        }
        if self.owners.contains_key(&call) {
            self.log(|| format!("Outcome stream {call:?} attempt {attempt}: {outcome:?}"));
            self.core.handle_outcome(self.now, call, attempt, outcome);
            return;
        }
        let Some(&idx) = self.by_id.get(&call) else {
            return;
        };
        let clear = match &outcome {
            Outcome::NotSent(_) | Outcome::Refused(_) => true,
            Outcome::Status(s) => !classify(s).may_have_applied(),
            _ => false,
        };
        self.log(|| format!("Outcome #{idx} attempt {attempt}: {outcome:?}"));
        self.calls[idx].last_report = Some((attempt, clear));
        self.core.handle_outcome(self.now, call, attempt, outcome);
    }

    // ----------------------------------------------------------- events

    fn handle(&mut self, ev: Ev) {
        let now = self.now;
        if let Ev::ServerAnswer { conn, .. } = &ev {
            let member = self.conns.get(conn).map(|c| c.member);
            if member.is_some_and(|m| self.cluster.members[m].up && self.cluster.members[m].hung) {
                // A stopped process sends its answer when it resumes (the
                // stream stays open on the server meanwhile).
                self.at(now + ms(10), ev);
                return;
            }
        }
        match ev {
            Ev::Start(idx) => {
                let c = &self.calls[idx];
                let method = match c.kind {
                    CallKind::Read | CallKind::SlowRead => KV_RANGE,
                    CallKind::Put => KV_PUT,
                    CallKind::Txn => KV_TXN,
                    CallKind::Wait { campaign: false } => LOCK_LOCK,
                    CallKind::Wait { campaign: true } => ELECTION_CAMPAIGN,
                };
                let deadline = c.deadline;
                self.calls[idx].floor = self.max_completed_rev;
                self.calls[idx].epoch = self.history_epoch;
                // Reads are linearizable, unless members serve stale
                // state (what serializable reads do).
                let read = match (method == KV_RANGE, self.opts.stale_serve) {
                    (false, _) => ReadKind::Unspecified,
                    (true, false) => ReadKind::Linearizable,
                    (true, true) => ReadKind::Serializable,
                };
                let id = self
                    .core
                    .start_call_with(now, method, Some(deadline), None, read);
                self.by_id.insert(id, idx);
                self.log(|| {
                    format!(
                        "Start #{idx} {} deadline +{:?} as {id:?}",
                        if method.is_repeatable() {
                            "read"
                        } else {
                            "put"
                        },
                        deadline - now
                    )
                });
            }
            Ev::ConnectArrive(conn) => {
                let Some(c) = self.conns.get(&conn) else {
                    return;
                };
                if c.st != ConnSt::Connecting {
                    return;
                }
                let m = c.member;
                let member = &self.cluster.members[m];
                if self.blackholed(m) || (member.up && member.hung) {
                    return; // SYN or handshake swallowed: the core times out
                }
                let ok = member.up;
                if ok {
                    let c = self.conns.get_mut(&conn).expect("conn");
                    c.server_alive = true;
                    c.last_ping_at = Some(now); // the handshake ping
                }
                self.send_to_client(conn, Ev::ConnectDone(conn, ok));
            }
            Ev::ConnectDone(conn, ok) => {
                let Some(c) = self.conns.get_mut(&conn) else {
                    return;
                };
                if c.st != ConnSt::Connecting {
                    return;
                }
                if ok && c.server_alive {
                    c.st = ConnSt::Open;
                    self.log(|| format!("connected {conn:?}"));
                    self.core.handle_connected(now, conn);
                } else {
                    c.st = ConnSt::Dead;
                    self.log(|| format!("connect failed {conn:?}"));
                    self.core
                        .handle_connect_failed(now, conn, "connection refused");
                }
            }
            Ev::ReqArrive {
                conn,
                call,
                attempt,
                stream,
                token,
            } => self.server_request(conn, call, attempt, stream, token, false),
            Ev::CancelArrive { conn, stream } => {
                self.srv_streams.remove(&(conn, stream));
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.server_streams.remove(&stream);
                }
            }
            Ev::ServerAnswer {
                conn,
                call,
                attempt,
                stream,
                outcome,
            } => {
                let Some(c) = self.conns.get_mut(&conn) else {
                    return;
                };
                if !c.server_alive || !c.server_streams.remove(&stream) {
                    return;
                }
                let m = c.member;
                if self
                    .slow_runs
                    .get(&call)
                    .is_some_and(|r| r.attempt == attempt)
                {
                    self.slow_runs.remove(&call);
                }
                if !self.cluster.members[m].serving() {
                    return;
                }
                if matches!(outcome, Outcome::Success(_) | Outcome::Status(_)) {
                    self.conns.get_mut(&conn).expect("conn").reset_strikes = true;
                }
                let large = self.by_id.get(&call).is_some_and(|&i| {
                    matches!(self.calls[i].kind, CallKind::Read | CallKind::SlowRead)
                });
                if large && self.has(m, FaultKind::SlowLink) {
                    if let Outcome::Success(_) = outcome {
                        self.start_slow_answer(conn, call, attempt, outcome);
                        return;
                    }
                }
                self.send_to_client(
                    conn,
                    Ev::Reply {
                        conn,
                        call,
                        attempt,
                        outcome,
                    },
                );
            }
            Ev::Reply {
                conn,
                call,
                attempt,
                outcome,
            } => {
                let open = self.conns.get(&conn).is_some_and(|c| c.st == ConnSt::Open);
                if !open
                    || !self
                        .held
                        .get(&call)
                        .is_some_and(|h| h.0 == conn && h.1 == attempt)
                {
                    return;
                }
                if self.opts.lose_answers {
                    if let Some(&idx) = self.by_id.get(&call) {
                        if self.calls[idx].kind == CallKind::Read && idx % 5 == 0 {
                            return;
                        }
                    }
                }
                self.held.remove(&call);
                if let Outcome::Success(Some(meta)) = &outcome {
                    if let Some(&idx) = self.by_id.get(&call) {
                        self.calls[idx].answer_rev = Some(meta.revision);
                    }
                }
                self.report_outcome(call, attempt, outcome);
            }
            Ev::Report(call, attempt, outcome) => self.report_outcome(call, attempt, outcome),
            Ev::UserCancel(idx) => {
                let c = &self.calls[idx];
                if c.done.is_some() || c.cancelled {
                    return;
                }
                let Some(call) = self.by_id.iter().find(|(_, i)| **i == idx).map(|(c, _)| *c)
                else {
                    return;
                };
                self.log(|| format!("user cancels #{idx}"));
                self.calls[idx].cancelled = true;
                self.report.cancelled += 1;
                self.slow_runs.remove(&call);
                self.slow_answers.remove(&call);
                self.left_flight(call, None);
                self.core.cancel_call(now, call);
                self.drop_held(call);
            }
            Ev::StreamOpenArrive {
                conn,
                call,
                attempt,
                stream,
                token,
            } => self.srv_stream_open(conn, call, attempt, stream, token),
            Ev::StreamHeaders {
                conn,
                call,
                attempt,
            } => {
                if self.current(call, conn, attempt) {
                    // Established: the core no longer counts it in flight.
                    self.left_flight(call, None);
                }
                self.stream_headers(conn, call, attempt)
            }
            Ev::StreamReqArrive { conn, stream, req } => self.srv_stream_req(conn, stream, *req),
            Ev::StreamResp {
                conn,
                call,
                attempt,
                resp,
            } => self.stream_resp(conn, call, attempt, *resp),
            Ev::StreamEnd {
                conn,
                call,
                attempt,
                outcome,
            } => {
                if self.current(call, conn, attempt) {
                    self.held.remove(&call);
                    if let Outcome::Status(s) = &outcome {
                        self.stream_end_status(call, s);
                    }
                    self.report_outcome(call, attempt, outcome);
                }
            }
            Ev::SrvStreamTimeout { conn, stream } => self.srv_stream_timeout(conn, stream),
            Ev::Reopen(kind) => self.owner_reopen(kind),
            Ev::OwnerStart(streams::OwnerKind::Watch) if self.restore.is_some() => {}
            Ev::OwnerStart(kind) => self.owner_start(kind),
            Ev::Snapshot => self.take_snapshot(),
            Ev::Chunk {
                conn,
                call,
                attempt,
                end,
                outcome,
            } => self.slow_chunk(conn, call, attempt, end, *outcome),
            Ev::StreamWrite(conn, ev) => self.stream_write(conn, *ev),
            Ev::ConsumerWake => self.consumer_wake(),
            Ev::OwnersStop => self.owners_stop(),
            Ev::PingArrive(conn) => {
                let Some(c) = self.conns.get_mut(&conn) else {
                    return;
                };
                let m = c.member;
                if c.server_alive && self.cluster.members[m].up && self.cluster.members[m].hung {
                    // Buffered by the kernel: answered when the process
                    // resumes (if the connection still exists then).
                    self.ping_backlog.push((m, conn));
                    return;
                }
                if !c.server_alive || !self.cluster.members[m].serving() {
                    return;
                }
                // grpc-go's keepalive enforcement with etcd's settings
                // (MinTime 5 s, PermitWithoutStream false, 2 strikes).
                if c.reset_strikes {
                    c.reset_strikes = false;
                    c.strikes = 0;
                } else if c.server_streams.is_empty() && c.held_open == 0 {
                    if c.last_ping_at.is_some() {
                        c.strikes += 1;
                    }
                } else if c.last_ping_at.is_some_and(|p| now < p + MIN_PING_INTERVAL) {
                    c.strikes += 1;
                }
                c.last_ping_at = Some(now);
                if c.strikes > 2 {
                    let strikes = c.strikes;
                    self.violation(format!(
                        "server would send GOAWAY too_many_pings on {conn:?} ({strikes} strikes)"
                    ));
                    self.conns.get_mut(&conn).expect("conn").strikes = 0;
                }
                self.send_to_client(conn, Ev::Pong(conn));
            }
            Ev::Pong(conn) => {
                if self.conns.get(&conn).is_some_and(|c| c.st == ConnSt::Open) {
                    self.core.handle_pong(now, conn);
                }
            }
            Ev::ProbeArrive(conn) => {
                let Some(c) = self.conns.get_mut(&conn) else {
                    return;
                };
                let m = c.member;
                if !c.server_alive || !self.cluster.members[m].serving() {
                    return;
                }
                if self.has(m, FaultKind::Mute) {
                    // A request like any other: not answered, but its
                    // stream is open on the server.
                    self.conns.get_mut(&conn).expect("conn").held_open += 1;
                    return;
                }
                let c = self.conns.get_mut(&conn).expect("conn");
                c.reset_strikes = true;
                let me = &self.cluster.members[m];
                let st = MemberStatus {
                    member_id: me.id,
                    leader: me.leader_view,
                    raft_term: me.term,
                    revision: me.rev,
                };
                self.send_to_client(conn, Ev::ProbeReply(conn, st));
            }
            Ev::ProbeReply(conn, st) => {
                if self.conns.get(&conn).is_some_and(|c| c.st == ConnSt::Open) {
                    self.log(|| format!("probe {conn:?}: {st:?}"));
                    self.client_term = self.client_term.max(st.raft_term);
                    self.core.handle_probe_result(now, conn, Ok(st));
                }
            }
            Ev::CheckArrive(conn) => {
                let Some(c) = self.conns.get(&conn) else {
                    return;
                };
                let m = c.member;
                if !c.server_alive
                    || !self.cluster.members[m].serving()
                    || self.has(m, FaultKind::Mute)
                {
                    return;
                }
                // A linearizable read: answered once the leader confirmed
                // the read index; "no leader" at once; else it waits (for
                // the probe timeout, in the client: no answer here).
                let reply = match self.cluster.read(m, false) {
                    Answer::Ok { .. } => true,
                    Answer::NoLeader => false,
                    _ => return,
                };
                // An answer (headers, data or a status): grpc-go resets
                // the ping strikes when it writes one.
                self.conns.get_mut(&conn).expect("conn").reset_strikes = true;
                self.send_to_client(conn, Ev::CheckReply(conn, reply));
            }
            Ev::CheckReply(conn, reached) => {
                if self.conns.get(&conn).is_some_and(|c| c.st == ConnSt::Open) {
                    self.log(|| format!("leader check {conn:?}: reached {reached}"));
                    let result = if reached {
                        Ok(())
                    } else {
                        Err(Status::new(Code::Unavailable, "etcdserver: no leader"))
                    };
                    self.core.handle_leader_check(now, conn, result);
                }
            }
            Ev::ClientCloseArrive(conn) => {
                self.srv_streams.retain(|(c, _), _| *c != conn);
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.server_alive = false;
                    c.server_streams.clear();
                }
            }
            Ev::Broken(conn, why) => {
                let Some(c) = self.conns.get_mut(&conn) else {
                    return;
                };
                let was = c.st;
                c.st = ConnSt::Dead;
                match was {
                    ConnSt::Dead => {}
                    ConnSt::Connecting => {
                        self.log(|| format!("{conn:?} broken while connecting: {why}"));
                        self.core.handle_connect_failed(now, conn, why);
                    }
                    ConnSt::Open => {
                        self.log(|| format!("{conn:?} broken: {why}"));
                        self.core.handle_connection_closed(now, conn, why);
                        self.drain();
                        self.abandon_held(conn, true);
                    }
                }
            }
            Ev::GoawayArrive(conn, last) => {
                let Some(c) = self.conns.get_mut(&conn) else {
                    return;
                };
                if c.st != ConnSt::Open {
                    return;
                }
                c.draining = true;
                self.log(|| format!("GOAWAY {conn:?} last stream {last}"));
                self.core.handle_goaway(now, conn);
                self.drain();
                let mut above: Vec<(CallId, u32)> = self
                    .held
                    .iter()
                    .filter(|(_, (c, _, s))| *c == conn && *s > last)
                    .map(|(call, (_, a, _))| (*call, *a))
                    .collect();
                above.sort();
                for (call, attempt) in above {
                    self.held.remove(&call);
                    self.report_outcome(
                        call,
                        attempt,
                        Outcome::Refused("above GOAWAY last-stream-id".into()),
                    );
                    self.drain();
                }
            }
            Ev::ServerClose(conn) => {
                self.srv_streams.retain(|(c, _), _| *c != conn);
                if let Some(c) = self.conns.get_mut(&conn) {
                    if c.server_alive {
                        c.server_alive = false;
                        c.server_streams.clear();
                        self.send_to_client(
                            conn,
                            Ev::Broken(conn, "closed by server after GOAWAY"),
                        );
                    }
                }
            }
            Ev::AuthDone => {
                self.auth_pending = false;
                self.client_token = Some(self.token_epoch);
                self.log(|| "auth done".into());
                self.core.handle_auth_result(now, Ok(()));
            }
            Ev::FaultStart(i) => self.fault_start(i),
            Ev::FaultEnd(i) => self.fault_end_ev(i),
        }
    }

    fn server_request(
        &mut self,
        conn: ConnId,
        call: CallId,
        attempt: u32,
        stream: u32,
        token: Option<u64>,
        from_backlog: bool,
    ) {
        let now = self.now;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let m = c.member;
        if !c.server_alive && !from_backlog {
            return;
        }
        if c.goaway_last.is_some_and(|l| stream > l) {
            return; // not processed; the client gets Refused from GOAWAY
        }
        c.server_max_stream = c.server_max_stream.max(stream);
        if !self.cluster.members[m].up {
            return;
        }
        if self.cluster.members[m].hung || self.has(m, FaultKind::Mute) {
            // Buffered in the kernel (or stuck behind the apply loop, its
            // stream open on the server); processed on resume.
            if !self.cluster.members[m].hung {
                self.conns.get_mut(&conn).expect("conn").held_open += 1;
                // Sent before the member went mute, arrived after: waiting
                // for it until the deadline is as correct as for a call
                // sent to it while mute (the core cannot tell the two
                // apart; `regression_seed_1899_read_sent_just_before_its_member_went_mute`).
                if let Some(&idx) = self.by_id.get(&call) {
                    self.calls[idx].excused = true;
                }
            }
            self.backlog.push((m, conn, call, attempt, stream, token));
            return;
        }
        let c = self.conns.get_mut(&conn).expect("conn");
        c.server_streams.insert(stream);
        let Some(&idx) = self.by_id.get(&call) else {
            return;
        };
        if self.calls[idx].cancelled {
            return;
        }
        let put = self.calls[idx].put;
        let kind = self.calls[idx].kind;
        // Service time: slow reads and lock/campaign waits take seconds on
        // a healthy member, as does everything on a slow member.
        let mut service = match kind {
            CallKind::SlowRead => ms(self.rng.gen_range(800..4000)),
            CallKind::Wait { .. } => ms(self.rng.gen_range(1000..6000)),
            _ => ms(self.rng.gen_range(0..3)),
        };
        if self.has(m, FaultKind::Slow) {
            service += ms(self.rng.gen_range(600..3000));
        }
        if self.cluster.leader != Some(m) && !put {
            // A follower serves a linearizable read once it applied the
            // read index: its replication lag.
            service += self.lag[m];
        }
        let mut delay = service;
        let token_ok = !self.auth || token.is_some_and(|t| t >= self.token_epoch);
        let outcome = if self.has(m, FaultKind::Refuse) && self.rng.gen_bool(0.5) {
            Outcome::Refused(REFUSED_STREAM_MESSAGE.into())
        } else if !token_ok {
            self.hit(call, FaultKind::TokenExpiry);
            Outcome::Status(Status::new(
                Code::Unauthenticated,
                "etcdserver: invalid auth token",
            ))
        } else if put && self.has(m, FaultKind::TooMany) && self.rng.gen_bool(0.6) {
            Outcome::Status(Status::new(
                Code::ResourceExhausted,
                "etcdserver: too many requests",
            ))
        } else {
            let answer = if put {
                self.cluster.put(m, idx as u64)
            } else {
                self.cluster.read(m, self.opts.stale_serve)
            };
            let me = &self.cluster.members[m];
            match answer {
                Answer::Ok { rev } => {
                    if put && self.has(m, FaultKind::TimeoutApplied) && self.rng.gen_bool(0.5) {
                        delay += ms(self.rng.gen_range(100..3000));
                        Outcome::Status(Status::new(
                            Code::Unavailable,
                            "etcdserver: request timed out",
                        ))
                    } else {
                        let (id, term) = (me.id, me.term);
                        let revision = if self.bogus.remove(&m) {
                            self.hit(call, FaultKind::HugeRevision);
                            self.log(|| format!("m{} answers #{idx} with a huge revision", m + 1));
                            HUGE_REVISION
                        } else {
                            rev
                        };
                        Outcome::Success(Some(ResponseMeta {
                            member_id: id,
                            raft_term: term,
                            revision,
                        }))
                    }
                }
                Answer::NoLeader => {
                    Outcome::Status(Status::new(Code::Unavailable, "etcdserver: no leader"))
                }
                Answer::Timeout => {
                    delay += REQUEST_TIMEOUT;
                    Outcome::Status(Status::new(
                        Code::Unavailable,
                        "etcdserver: request timed out",
                    ))
                }
            }
        };
        if let Outcome::Refused(_) = outcome {
            self.conns
                .get_mut(&conn)
                .expect("conn")
                .server_streams
                .remove(&stream);
            self.send_to_client(
                conn,
                Ev::Reply {
                    conn,
                    call,
                    attempt,
                    outcome,
                },
            );
            return;
        }
        if let Some(&n) = self.cluster.applied.get(&(idx as u64)) {
            if n > 1 {
                self.violation(format!("put #{idx} applied {n} times"));
            }
        }
        if matches!(outcome, Outcome::Success(_)) && delay >= ms(500) {
            self.calls[idx].service = self.calls[idx].service.max(delay);
            if self.cluster.leader.is_some() && self.cluster.members[m].available() {
                // Slow on a healthy member: the core must let it run.
                self.report.slow_calls += 1;
                let term = self.cluster.term;
                let run = SlowRun {
                    conn,
                    attempt,
                    stream,
                    member: m,
                    term,
                    started: now,
                    known_term: self.client_term,
                };
                self.slow_runs.insert(call, run);
            }
        }
        self.at(
            now + delay,
            Ev::ServerAnswer {
                conn,
                call,
                attempt,
                stream,
                outcome,
            },
        );
    }

    // ------------------------------------------------- invariant helpers

    /// Record that fault `kind` touched `call`.
    fn hit(&mut self, call: CallId, kind: FaultKind) {
        *self.hits.entry(call).or_default() |= 1 << kind.idx();
    }

    /// At a Send on `conn`: the faults on at its member touch the call; a
    /// call sent to a member that answers no request is excused from
    /// liveness.
    fn mark_hits_at_send(&mut self, call: CallId, conn: ConnId) {
        let Some(m) = self.conns.get(&conn).map(|c| c.member) else {
            return;
        };
        let kinds: Vec<FaultKind> = self.active.get(&m).cloned().unwrap_or_default();
        for k in kinds {
            self.hit(call, k);
        }
        if self.has(m, FaultKind::Mute)
            || self.has(m, FaultKind::Slow)
            || self.has(m, FaultKind::SlowLink)
        {
            if let Some(&idx) = self.by_id.get(&call) {
                self.calls[idx].excused = true;
            }
        }
    }

    /// The deadline of unary call `call` (streams have none).
    fn call_deadline(&self, call: CallId) -> Instant {
        self.by_id
            .get(&call)
            .map_or(self.now + Duration::from_secs(365 * 86_400), |&i| {
                self.calls[i].deadline
            })
    }

    /// Whether the member of `conn` is healthy and answers pings: up, not
    /// frozen, not muted, its link neither blackholed nor lossy, in the
    /// majority.
    fn answers_pings(&self, conn: ConnId) -> bool {
        let Some(c) = self.conns.get(&conn) else {
            return false;
        };
        let m = c.member;
        // A lossy link holds up what follows (TCP retransmits) for up to
        // 1.5 s after the fault ends.
        let now = self.now;
        let lossy = self.faults.iter().any(|f| {
            f.member == m
                && f.kind == FaultKind::Degrade
                && f.at <= now
                && now <= f.at + f.dur + ms(1600)
        });
        // A ping lost in a blackhole is found unanswered a ping timeout
        // after it went out, which may be just after the blackhole ended.
        let ping_timeout = self.core.config().ping_timeout;
        // So is one a stopped process could not answer: its PONG leaves
        // when the process resumes, a latency after that.
        let blackholed_lately = self.faults.iter().any(|f| {
            f.member == m
                && matches!(f.kind, FaultKind::Blackhole | FaultKind::Hang)
                && f.at <= now
                && now <= f.at + f.dur + ping_timeout + ms(100)
        });
        // A PONG waits behind a slow link's data (`FaultKind::SlowLink`):
        // only the bytes of a live call's answer tell the core the member is
        // alive meanwhile, and a slow call may have none.
        let slow_link_lately = now < c.slow_until + ping_timeout + ms(100);
        // Whatever held up the link to the client (a blackhole and a lossy
        // link at once: the delay drawn during the loss counts from the
        // blackhole's end), a PONG queued behind data that arrives later
        // than the ping timeout is found late (sim seed 1008287).
        let late_lately = now < c.late_until + ping_timeout + ms(100);
        c.server_alive
            && self.cluster.members[m].available()
            && !self.blackholed(m)
            && !blackholed_lately
            && !lossy
            && !slow_link_lately
            && !late_lately
            && !self.has(m, FaultKind::Hang)
    }

    /// No slow healthy call aborted: `call` is being re-sent or failed
    /// (`what`); that is a violation while its first copy still runs on a
    /// member that answers pings, under the same leader, before the
    /// deadline.
    fn check_slow_abort(&mut self, call: CallId, what: &str) {
        let Some(&SlowRun {
            conn,
            attempt,
            stream,
            member: m,
            term,
            started,
            known_term: known,
        }) = self.slow_runs.get(&call)
        else {
            return;
        };
        // The client learns of an election from probes, up to a probe
        // interval and a half later (longer when the link to the members it
        // probes is lossy or they are down): a mutation sent in that window
        // may be ended as "stuck behind the previous leader" on stale
        // knowledge. So may one sent while the client had not been told of
        // the cluster's term yet: it cannot tell whether the call reached
        // its member before or after the election.
        let recent_election =
            self.elections.iter().any(|&e| e + ms(3000) > started) || known < term;
        let running = self
            .conns
            .get(&conn)
            .is_some_and(|c| c.server_streams.contains(&stream));
        // Rejoining members may disrupt the leader without a term change of
        // the cluster yet.
        let same_leader = self.cluster.term == term
            && self.cluster.leader.is_some()
            && self.cluster.leaderless_since.is_none();
        if running
            && same_leader
            && !recent_election
            && !self.opts.allow_slow_abort
            && self.answers_pings(conn)
            && self.now < self.call_deadline(call)
        {
            let name = self
                .by_id
                .get(&call)
                .map_or(format!("{call:?}"), |i| format!("#{i}"));
            self.violation(format!(
                "slow healthy call {name} aborted: {what} while attempt {attempt} still runs on m{} which answers pings",
                m + 1
            ));
        }
        self.slow_runs.remove(&call);
    }

    /// Member `m`'s read answer crosses its slow link: the first bytes
    /// arrive after the latency, then a chunk every 50-300 ms for 1.5-5 s,
    /// and what the member sends on `conn` meanwhile waits behind them.
    fn start_slow_answer(&mut self, conn: ConnId, call: CallId, attempt: u32, outcome: Outcome) {
        let Some(m) = self.conns.get(&conn).map(|c| c.member) else {
            return;
        };
        let transfer = ms(self.rng.gen_range(
            SLOW_LINK_TRANSFER.start.as_millis() as u64..SLOW_LINK_TRANSFER.end.as_millis() as u64,
        ));
        let queued = ms(self.rng.gen_range(
            SLOW_LINK_QUEUE.start.as_millis() as u64..SLOW_LINK_QUEUE.end.as_millis() as u64,
        ));
        let d = self.lat(m);
        let now = self.now;
        let c = self.conns.get_mut(&conn).expect("conn");
        // Its frames interleave with those of answers already crossing the
        // link (HTTP/2 streams): behind the socket buffers, not behind them.
        let first = c.behind_slow_answer(now) + d;
        let end = first + transfer;
        c.slow_until = c.slow_until.max(end);
        c.queued = queued;
        self.hit(call, FaultKind::SlowLink);
        self.log(|| {
            format!(
                "m{} answers {call:?} attempt {attempt} over a slow link: +{:?}..+{:?}",
                m + 1,
                first - now,
                end - now
            )
        });
        self.slow_answers.insert(
            call,
            SlowAnswer {
                conn,
                attempt,
                end,
                started: now,
                term: self.cluster.term,
                flowing: false,
            },
        );
        let outcome = Box::new(outcome);
        self.at(
            first,
            Ev::Chunk {
                conn,
                call,
                attempt,
                end,
                outcome,
            },
        );
    }

    /// Bytes of a slow-link answer arrive: the adapter tells the core
    /// (`handle_call_progress`, as the client does for each DATA frame of
    /// an incomplete answer); the last ones complete the answer.
    fn slow_chunk(
        &mut self,
        conn: ConnId,
        call: CallId,
        attempt: u32,
        end: Instant,
        outcome: Outcome,
    ) {
        let now = self.now;
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let m = c.member;
        let member = &self.cluster.members[m];
        if !c.server_alive || !member.up {
            // The sender is gone: the rest never comes.
            if self
                .slow_answers
                .get(&call)
                .is_some_and(|a| a.attempt == attempt)
            {
                self.slow_answers.remove(&call);
            }
            return;
        }
        // A stopped process or a blackholed link holds the rest back.
        let resume = if member.hung {
            Some(now + ms(10))
        } else {
            self.blackhole_end(m)
        };
        if let Some(at) = resume {
            let end = end + (at - now);
            if let Some(a) = self.slow_answers.get_mut(&call) {
                if a.attempt == attempt {
                    a.end = end;
                }
            }
            if let Some(c) = self.conns.get_mut(&conn) {
                c.slow_until = c.slow_until.max(end);
            }
            let outcome = Box::new(outcome);
            self.at(
                at,
                Ev::Chunk {
                    conn,
                    call,
                    attempt,
                    end,
                    outcome,
                },
            );
            return;
        }
        if now >= end {
            if self
                .slow_answers
                .get(&call)
                .is_some_and(|a| a.attempt == attempt)
            {
                self.slow_answers.remove(&call);
                if self.current(call, conn, attempt) {
                    self.report.slow_link_answers += 1;
                }
            }
            self.handle(Ev::Reply {
                conn,
                call,
                attempt,
                outcome,
            });
            return;
        }
        if !self.current(call, conn, attempt) {
            // The client reset the stream: the server stops sending, what
            // is in the socket buffers still drains.
            if self
                .slow_answers
                .get(&call)
                .is_some_and(|a| a.attempt == attempt)
            {
                self.slow_answers.remove(&call);
            }
            if let Some(c) = self.conns.get_mut(&conn) {
                c.slow_until = c.slow_until.min(now + c.queued);
            }
            return;
        }
        if let Some(a) = self.slow_answers.get_mut(&call) {
            a.flowing |= a.attempt == attempt;
        }
        if !self.opts.no_call_progress {
            self.core.handle_call_progress(now, call);
        }
        let next = (now + ms(self.rng.gen_range(50..300))).min(end);
        let outcome = Box::new(outcome);
        self.at(
            next,
            Ev::Chunk {
                conn,
                call,
                attempt,
                end,
                outcome,
            },
        );
    }

    /// No answer cut off while it arrives: `call` is being re-sent, failed
    /// or its connection closed (`what`) while the bytes of its answer
    /// still arrive from a member that is up, over a link that is slow but
    /// neither blackholed nor lossy, before its deadline.
    fn check_slow_answer_cut(&mut self, call: CallId, what: &str) {
        let Some(&SlowAnswer {
            conn,
            attempt,
            end,
            started,
            term,
            flowing,
        }) = self.slow_answers.get(&call)
        else {
            return;
        };
        self.slow_answers.remove(&call);
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let m = c.member;
        let now = self.now;
        // Loss on the link stalls what follows (TCP retransmits); so does a
        // blackhole, for a ping timeout after it ends.
        let ping_timeout = self.core.config().ping_timeout;
        let stalled = self.faults.iter().any(|f| {
            f.member == m
                && matches!(f.kind, FaultKind::Degrade | FaultKind::Blackhole)
                && f.at <= now
                && now <= f.at + f.dur + ping_timeout + ms(1600)
        });
        let arriving = c.server_alive && self.cluster.members[m].serving() && now < end;
        // What the member sends besides the answer arrives late: a status
        // probe answered before an election may reach the client after it
        // and make the member look stale (its old term), and the client
        // learns of an election from probes up to a probe interval and a
        // half later. Re-sending a read then is the core's right call.
        let same_leader = self.cluster.term == term
            && self.cluster.leader.is_some()
            && self.cluster.leaderless_since.is_none()
            && !self.elections.iter().any(|&e| e + ms(3000) > started);
        // Nor is it wrong when the member lost its leader meanwhile (cut off
        // from its peers): what the client hears of that comes late too.
        let cut_off = self.faults.iter().any(|f| {
            f.member == m
                && f.kind == FaultKind::Partition
                && f.at <= now
                && f.at + f.dur + SLOW_LINK_QUEUE.end + ms(1500) >= started
        });
        if flowing
            && arriving
            && !stalled
            && same_leader
            && !cut_off
            && now < self.call_deadline(call)
        {
            let name = self
                .by_id
                .get(&call)
                .map_or(format!("{call:?}"), |i| format!("#{i}"));
            self.violation(format!(
                "slow-link answer of {name} cut off: {what} while the bytes of attempt {attempt} still arrive from m{} (until +{:?})",
                m + 1,
                end - now
            ));
        }
    }

    /// The adapter drops what it holds for `call` (user cancel).
    fn drop_held(&mut self, call: CallId) {
        if let Some((conn, _, stream)) = self.held.remove(&call) {
            if let Some(m) = self.conns.get(&conn).map(|c| c.member) {
                if self.conns[&conn].st == ConnSt::Open {
                    let d = self.lat(m);
                    self.send_to_server(conn, d, Ev::CancelArrive { conn, stream });
                }
            }
        }
    }

    /// Whether attempt `attempt` of `call` on `conn` is what the adapter
    /// holds for it.
    fn current(&self, call: CallId, conn: ConnId, attempt: u32) -> bool {
        self.conns.get(&conn).is_some_and(|c| c.st == ConnSt::Open)
            && self
                .held
                .get(&call)
                .is_some_and(|h| h.0 == conn && h.1 == attempt)
    }

    // ----------------------------------------------------------- faults

    fn conns_of(&self, m: usize) -> Vec<ConnId> {
        let mut v: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.member == m && c.st != ConnSt::Dead)
            .map(|(id, _)| *id)
            .collect();
        v.sort();
        v
    }

    /// The member's side of every connection dies; the client notices after
    /// the link latency (never, when the link is blackholed).
    fn reset_conns(&mut self, m: usize, why: &'static str) {
        for conn in self.conns_of(m) {
            self.srv_streams.retain(|(c, _), _| *c != conn);
            let c = self.conns.get_mut(&conn).expect("conn");
            let was_alive = c.server_alive || c.st == ConnSt::Connecting;
            c.server_alive = false;
            c.server_streams.clear();
            if was_alive {
                self.send_to_client(conn, Ev::Broken(conn, why));
            }
        }
    }

    fn fault_start(&mut self, i: usize) {
        if self.leader_targets.contains(&i) {
            self.aim_at_leader(i);
        }
        let f = self.faults[i].clone();
        let m = f.member;
        let now = self.now;
        self.log(|| format!("FAULT start {:?} m{} for {:?}", f.kind, m + 1, f.dur));
        self.active.entry(m).or_default().push(f.kind);
        // Every call in flight on the member is touched by the fault.
        let mut on: Vec<CallId> = self
            .held
            .iter()
            .filter(|(_, (c, _, _))| self.conns.get(c).is_some_and(|c| c.member == m))
            .map(|(call, _)| *call)
            .collect();
        on.sort();
        if f.kind != FaultKind::TokenExpiry {
            for call in on {
                self.hit(call, f.kind);
            }
        }
        match f.kind {
            FaultKind::Crash => {
                if self.cluster.members[m].up {
                    self.cluster.members[m].up = false;
                    self.cluster.members[m].hung = false;
                    self.backlog.retain(|b| b.0 != m);
                    self.ping_backlog.retain(|b| b.0 != m);
                    self.reset_conns(m, "connection reset (member crashed)");
                    self.cluster.topology_changed(now);
                }
            }
            FaultKind::Hang => {
                if self.cluster.members[m].up {
                    self.cluster.members[m].hung = true;
                    self.cluster.topology_changed(now);
                }
            }
            FaultKind::Reset => {
                self.reset_conns(m, "connection reset by peer");
                self.remove_active(m, f.kind);
            }
            FaultKind::Goaway => {
                for conn in self.conns_of(m) {
                    let c = self.conns.get_mut(&conn).expect("conn");
                    if !c.server_alive || c.goaway_last.is_some() {
                        continue;
                    }
                    let last = c.server_max_stream;
                    c.goaway_last = Some(last);
                    self.send_to_client(conn, Ev::GoawayArrive(conn, last));
                    let d = ms(self.rng.gen_range(500..4000));
                    self.at(now + d, Ev::ServerClose(conn));
                }
                self.remove_active(m, f.kind);
            }
            FaultKind::Partition => {
                self.cluster.members[m].partitioned = true;
                self.cluster.topology_changed(now);
            }
            FaultKind::TokenExpiry => {
                self.token_epoch += 1;
                self.remove_active(m, f.kind);
            }
            FaultKind::Remove => {
                self.removed_members.insert(m);
                self.apply_endpoint_set();
            }
            FaultKind::Restore => {
                self.restore_cluster();
                self.remove_active(m, f.kind);
            }
            FaultKind::HugeRevision => {
                self.bogus.insert(m);
                self.remove_active(m, f.kind);
            }
            FaultKind::Degrade
            | FaultKind::Blackhole
            | FaultKind::Refuse
            | FaultKind::TooMany
            | FaultKind::TimeoutApplied
            | FaultKind::Slow
            | FaultKind::SlowLink
            | FaultKind::Mute => {}
        }
    }

    /// The snapshot a planned restore goes back to: taken now; then other
    /// clients write thousands of revisions.
    fn take_snapshot(&mut self) {
        let rev = self.cluster.rev;
        self.snapshot_rev = Some(rev);
        let more = self.rng.gen_range(100..3000) as i64;
        self.cluster.rev += more;
        let now_rev = self.cluster.rev;
        for m in self.cluster.members.iter_mut().filter(|m| m.available()) {
            m.rev = now_rev;
        }
        self.log(|| format!("snapshot at revision {rev}; others write up to {now_rev}"));
    }

    /// Every member restarts from the snapshot: the history goes back.
    fn restore_cluster(&mut self) {
        let Some(rev) = self.snapshot_rev else {
            return;
        };
        let before = self.cluster.rev;
        self.log(|| format!("RESTORE: revision {before} -> {rev}"));
        self.cluster.rev = rev;
        for m in self.cluster.members.iter_mut() {
            m.rev = rev;
        }
        self.history_epoch += 1;
        self.max_completed_rev = rev;
        // Every call not done yet lives through the restore.
        let live: Vec<CallId> = self
            .by_id
            .iter()
            .filter(|(_, &i)| self.calls[i].done.is_none())
            .map(|(c, _)| *c)
            .collect();
        for call in live {
            self.hit(call, FaultKind::Restore);
        }
        for m in 0..self.n {
            if self.cluster.members[m].serving() {
                self.backlog.retain(|b| b.0 != m);
                self.ping_backlog.retain(|b| b.0 != m);
                self.reset_conns(m, "connection reset (member restarted from a snapshot)");
            }
        }
    }

    fn remove_active(&mut self, m: usize, k: FaultKind) {
        if let Some(v) = self.active.get_mut(&m) {
            if let Some(p) = v.iter().position(|x| *x == k) {
                v.remove(p);
            }
        }
    }

    fn fault_end_ev(&mut self, i: usize) {
        let f = self.faults[i].clone();
        let m = f.member;
        let now = self.now;
        self.log(|| format!("FAULT end {:?} m{}", f.kind, m + 1));
        self.remove_active(m, f.kind);
        if self.has(m, f.kind) {
            return; // an overlapping fault of the same kind is still on
        }
        match f.kind {
            FaultKind::Crash if !self.cluster.members[m].up => {
                let me = &mut self.cluster.members[m];
                me.up = true;
                me.leader_view = 0;
                me.rejoin_at = Some(now + ms(300));
            }
            FaultKind::Hang | FaultKind::Mute
                if f.kind == FaultKind::Mute || self.cluster.members[m].hung =>
            {
                if f.kind == FaultKind::Hang {
                    self.cluster.members[m].hung = false;
                    self.cluster.rejoin(m, now);
                    self.cluster.topology_changed(now);
                }
                if self.cluster.members[m].hung || self.has(m, FaultKind::Mute) {
                    return;
                }
                let pings: Vec<ConnId> = self
                    .ping_backlog
                    .iter()
                    .filter(|b| b.0 == m)
                    .map(|b| b.1)
                    .collect();
                self.ping_backlog.retain(|b| b.0 != m);
                for conn in pings {
                    self.handle(Ev::PingArrive(conn));
                }
                let backlog: Vec<_> = self.backlog.iter().filter(|b| b.0 == m).copied().collect();
                self.backlog.retain(|b| b.0 != m);
                for (_, conn, call, attempt, stream, token) in backlog {
                    self.server_request(conn, call, attempt, stream, token, true);
                }
            }
            FaultKind::Partition => {
                self.cluster.members[m].partitioned = false;
                self.cluster.members[m].lost_leader_at = None;
                self.cluster.rejoin(m, now);
                self.cluster.topology_changed(now);
            }
            FaultKind::Remove => {
                self.removed_members.remove(&m);
                self.apply_endpoint_set();
            }
            _ => {}
        }
    }

    /// Tell the core the endpoint set (all members but the removed ones,
    /// never empty) and note which endpoint ids went away.
    fn apply_endpoint_set(&mut self) {
        let mut keep: Vec<Endpoint> = (0..self.n)
            .filter(|m| !self.removed_members.contains(m))
            .map(|m| self.addrs[m].clone())
            .collect();
        if keep.is_empty() {
            keep.push(self.addrs[0].clone());
        }
        let before: HashSet<EndpointId> =
            self.core.endpoint_states().iter().map(|s| s.id).collect();
        self.log(|| {
            format!(
                "set_endpoints {:?}",
                keep.iter().map(|e| e.to_string()).collect::<Vec<_>>()
            )
        });
        self.core.set_endpoints(self.now, keep);
        let after: HashSet<EndpointId> = self.core.endpoint_states().iter().map(|s| s.id).collect();
        for gone in before.difference(&after) {
            self.removed_ids.insert(*gone);
            for c in self.conns.values_mut() {
                if c.endpoint == *gone {
                    c.draining = true;
                }
            }
        }
        let _ = &self.ep_member;
    }
}
