//! The composed state machine: where every call goes and what happens when
//! it fails.
//!
//! [`Core`] follows quinn-proto's shape:
//!
//! * inputs are `handle_*(now, ...)` methods and [`Core::start_call`] /
//!   [`Core::cancel_call`];
//! * outputs are drained with [`Core::poll_action`] (what the adapter must do)
//!   and [`Core::poll_event`] (what an operator may want to log);
//! * [`Core::poll_timeout`] says when [`Core::handle_timeout`] must be called.
//!
//! After every input, drain `poll_action` until it returns `None`, then wait
//! for the next input or the instant `poll_timeout` gives. Time only moves
//! forward through the `now` arguments; randomness comes from the seed given
//! to [`Core::new`], so a run is a pure function of its inputs.
//!
//! The module is split by concern; each file holds one part of `Core`:
//!
//! | file | what it decides |
//! |---|---|
//! | `calls.rs` | the call table and the retry matrix: what an attempt's end means for its call |
//! | `dispatch.rs` | which endpoint a call goes to, and sending it |
//! | `conns.rs` | connections: opening (one attempt per endpoint at a time, spaced; redials in a full outage), closing, draining, failing over |
//! | `liveness.rs` | each connection's timer table: connect, ping, stall check, keepalive, idle |
//! | `cluster.rs` | the cluster view: status probes, leaders and terms, stale members |
//! | `fence.rs` | the revision fence: serializable reads do not go back in revision, and no answer bricks reads |
//! | `auth.rs` | the auth token: when to fetch one, who waits for it |
//! | `timers.rs` | the call timer table: deadlines, retry backoffs, slow-mutation checks |
//!
//! ```
//! use std::time::{Duration, Instant};
//! use etcdv3_core::endpoints::endpoint::Endpoint;
//! use etcdv3_core::machine::{Action, Config, Core, Outcome};
//! use etcdv3_proto::method::KV_RANGE;
//!
//! let now = Instant::now();
//! let eps = vec![Endpoint::parse("127.0.0.1:2379").unwrap()];
//! let mut core = Core::new(Config::default(), eps, 42);
//! let call = core.start_call(now, KV_RANGE, Some(now + Duration::from_secs(5)));
//! // The core first asks for a connection...
//! let Some(Action::Connect { conn, .. }) = core.poll_action() else { panic!() };
//! core.handle_connected(now, conn);
//! // ...then for the call to be sent on it.
//! let Some(Action::Send { attempt, .. }) = core.poll_action() else { panic!() };
//! core.handle_outcome(now, call, attempt, Outcome::Success(None));
//! assert!(matches!(core.poll_action(), Some(Action::Complete { result: Ok(()), .. })));
//! ```

mod auth;
mod calls;
mod cluster;
mod config;
mod conns;
mod dispatch;
mod fence;
mod liveness;
mod timers;
mod types;

pub use calls::{is_member_targeted, wants_leader};
pub use config::{Config, DEFAULT_REQUEST_TIMEOUT, MIN_PING_INTERVAL, UNBOUNDED_WAIT};
pub use types::{
    Action, CallError, CallId, Cause, ConnId, EndpointId, EndpointState, Event, IdHasher, IdMap,
    MemberStatus, Outcome, ReadKind, ResponseMeta,
};

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use etcdv3_proto::method::Method;

use crate::endpoints::balancer::Balancer;
use crate::endpoints::endpoint::Endpoint;
use crate::endpoints::health::{EndpointHealth, HealthReason, HealthState};
use crate::util::rng::Rng;
use crate::wire::status::Status;

use calls::Call;
use conns::Conn;
use timers::CallTimers;

/// One endpoint in the table.
#[derive(Debug)]
struct Slot {
    endpoint: Endpoint,
    health: EndpointHealth,
    conn: Option<ConnId>,
    removed: bool,
    in_flight: u32,
    /// When a probe last reported this member's view (leader, term).
    viewed_at: Option<Instant>,
    /// The endpoint rejected the client for good (when, why): left out of
    /// picks until [`Config::rejection_recheck`] has passed.
    rejected: Option<(Instant, String)>,
    /// No connection attempt to the endpoint starts before this instant
    /// ([`Config::connect_backoff`]).
    connect_at: Option<Instant>,
    /// Spacing of connection attempts after failed ones; reset when one
    /// succeeds.
    connect_backoff: crate::util::backoff::Backoff,
    /// Every member is down and calls wait: reconnect at `connect_at`
    /// (and again after each failed attempt) until a member answers or no
    /// call waits any more.
    reconnect: bool,
}

/// The endpoint table: slots by [`EndpointId`], in id order. Ids are handed
/// out in sequence and never reused; the slot of a removed endpoint is
/// dropped once nothing refers to it any more ([`Core::reclaim_slots`]), so
/// a cluster whose members are replaced again and again (auto-sync) does
/// not grow the table forever. Reclaiming runs when an input is fully
/// handled (the adapter drained [`Core::poll_action`]), never in the middle
/// of one, so no code path loses a slot it is still working on. Indexing by an id whose slot is gone is a
/// bug (every id the core indexes with comes from a live connection or
/// call, which keep their slot); ids from outside are looked up with
/// [`SlotTable::get`].
#[derive(Debug, Default)]
struct SlotTable {
    /// `(id, slot)`, ids ascending.
    slots: Vec<(usize, Slot)>,
    next_id: usize,
    /// Removed slots still in the table (reclaiming has work to do).
    removed: usize,
}

impl SlotTable {
    fn position(&self, id: usize) -> Option<usize> {
        self.slots.binary_search_by_key(&id, |(i, _)| *i).ok()
    }

    fn get(&self, id: usize) -> Option<&Slot> {
        self.position(id).map(|p| &self.slots[p].1)
    }

    fn get_mut(&mut self, id: usize) -> Option<&mut Slot> {
        self.position(id).map(|p| &mut self.slots[p].1)
    }

    /// Add a slot under the next id.
    fn push(&mut self, slot: Slot) -> usize {
        let id = self.next_id;
        self.next_id += 1;
        self.slots.push((id, slot));
        id
    }

    /// Every slot, in id order.
    fn iter(&self) -> impl Iterator<Item = &Slot> {
        self.slots.iter().map(|(_, s)| s)
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = &mut Slot> {
        self.slots.iter_mut().map(|(_, s)| s)
    }

    /// Every `(id, slot)`, in id order.
    fn enumerate(&self) -> impl Iterator<Item = (usize, &Slot)> {
        self.slots.iter().map(|(i, s)| (*i, s))
    }

    /// Every id, in order.
    fn ids(&self) -> Vec<usize> {
        self.slots.iter().map(|(i, _)| *i).collect()
    }

    /// Slots in the table (removed ones not reclaimed yet included).
    fn len(&self) -> usize {
        self.slots.len()
    }
}

impl std::ops::Index<usize> for SlotTable {
    type Output = Slot;

    fn index(&self, id: usize) -> &Slot {
        match self.position(id) {
            Some(p) => &self.slots[p].1,
            None => panic!("endpoint {id} is not in the table"),
        }
    }
}

impl std::ops::IndexMut<usize> for SlotTable {
    fn index_mut(&mut self, id: usize) -> &mut Slot {
        match self.position(id) {
            Some(p) => &mut self.slots[p].1,
            None => panic!("endpoint {id} is not in the table"),
        }
    }
}

impl Slot {
    /// Whether the endpoint is left out because it rejected the client.
    fn is_rejected(&self, now: Instant, recheck: Duration) -> bool {
        self.rejected
            .as_ref()
            .is_some_and(|(at, _)| now < *at + recheck)
    }
}

/// The composed sans-IO state machine. See the [module docs](self).
#[derive(Debug)]
pub struct Core {
    config: Config,
    rng: Rng,
    balancer: Balancer,
    slots: SlotTable,
    conns: IdMap<ConnId, Conn>,
    calls: IdMap<CallId, Call>,
    timers: CallTimers,
    actions: VecDeque<Action>,
    events: VecDeque<Event>,
    next_call: u64,
    next_conn: u64,
    last_now: Option<Instant>,
    auth: auth::AuthState,
    cluster: cluster::ClusterView,
    fence: fence::Fence,
    /// Re-sends allowed (`Config::retry_budget`); `None`: unlimited.
    budget: Option<crate::util::budget::RetryBudget>,
}

impl Core {
    /// A core for `endpoints` (duplicates are dropped), with randomness
    /// drawn from `seed`.
    pub fn new(config: Config, endpoints: Vec<Endpoint>, seed: u64) -> Self {
        let mut core = Core {
            balancer: Balancer::new(config.policy),
            budget: config
                .retry_budget
                .clone()
                .map(crate::util::budget::RetryBudget::new),
            config,
            rng: Rng::new(seed),
            slots: SlotTable::default(),
            conns: IdMap::default(),
            calls: IdMap::default(),
            timers: CallTimers::default(),
            actions: VecDeque::new(),
            events: VecDeque::new(),
            next_call: 1,
            next_conn: 1,
            last_now: None,
            auth: auth::AuthState::default(),
            cluster: cluster::ClusterView::default(),
            fence: fence::Fence::default(),
        };
        for ep in endpoints {
            core.add_endpoint(ep);
        }
        core
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    // ----------------------------------------------------------------- getters

    /// The address of an endpoint.
    pub fn endpoint(&self, id: EndpointId) -> Option<&Endpoint> {
        self.slots.get(id.0).map(|s| &s.endpoint)
    }

    /// The endpoint a connection belongs to.
    pub fn conn_endpoint(&self, conn: ConnId) -> Option<EndpointId> {
        self.conns.get(&conn).map(|c| c.endpoint)
    }

    /// The endpoint a call's current attempt or stream runs on, if any.
    pub fn call_endpoint(&self, call: CallId) -> Option<EndpointId> {
        self.calls.get(&call).and_then(|c| c.state.endpoint())
    }

    /// The method of a live call.
    pub fn call_method(&self, call: CallId) -> Option<Method> {
        self.calls.get(&call).map(|c| c.method)
    }

    /// The deadline of a live call.
    pub fn call_deadline(&self, call: CallId) -> Option<Instant> {
        self.calls.get(&call).and_then(|c| c.deadline)
    }

    /// Number of live calls.
    pub fn calls_in_progress(&self) -> usize {
        self.calls.len()
    }

    /// Number of armed call timers (deadlines, retry backoffs, slow checks).
    /// Zero once every call has ended: finished calls leave nothing behind.
    pub fn pending_timers(&self) -> usize {
        self.timers.len()
    }

    /// Number of open or opening connections.
    pub fn open_connections(&self) -> usize {
        self.conns.len()
    }

    /// Entries in the endpoint table: the endpoints, plus removed ones that
    /// still have a connection draining or a call referring to them (their
    /// entries are dropped once nothing does).
    pub fn endpoint_slots(&self) -> usize {
        self.slots.len()
    }

    /// The endpoint whose answers last named `member_id` as the member
    /// that answered (learned from response headers and probes), if any.
    /// For calls aimed at a member by id ([`Core::start_call_on`]).
    pub fn endpoint_of_member(&self, member_id: u64) -> Option<EndpointId> {
        self.slots
            .enumerate()
            .find(|(_, s)| !s.removed && s.health.member_id() == Some(member_id))
            .map(|(i, _)| EndpointId(i))
    }

    /// The member id endpoint `id` answered with, once it answered.
    pub fn member_of_endpoint(&self, id: EndpointId) -> Option<u64> {
        self.slots
            .get(id.0)
            .filter(|s| !s.removed)
            .and_then(|s| s.health.member_id())
    }

    /// Per-endpoint state, for operators: why a call went where it went.
    pub fn endpoint_states(&self) -> Vec<EndpointState> {
        let now = self.last_now;
        self.slots
            .enumerate()
            .filter(|(_, s)| !s.removed)
            .map(|(i, s)| EndpointState {
                id: EndpointId(i),
                endpoint: s.endpoint.clone(),
                health: s.health.state(),
                tier: now.map_or(0, |n| s.health.tier(n)),
                in_flight: s.in_flight,
                latency: s.health.latency(),
                leader: s.health.leader(),
                raft_term: s.health.raft_term(),
                connected: s.conn.is_some(),
            })
            .collect()
    }

    // ----------------------------------------------------------------- outputs

    /// The next thing the adapter must do, if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        let action = self.actions.pop_front();
        if action.is_none() {
            // The input is fully handled: no code of it holds an endpoint
            // id any more, so removed endpoints left idle can go.
            self.reclaim_slots();
        }
        action
    }

    /// The next event worth logging, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Core::handle_timeout`] must be called next (it may be called
    /// earlier; spurious calls are harmless). The minimum of the call timer
    /// table, every connection's timer table and the probe schedule: the
    /// same tables [`Core::handle_timeout`] fires from.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let conns = self.conns.values().filter_map(Conn::next_timer);
        let probe = self.next_probe_at();
        self.timers
            .next()
            .into_iter()
            .chain(conns)
            .chain(self.next_reconnect_at())
            .chain(probe)
            .min()
    }

    /// Advance timers to `now`: connection timers (connect and ping
    /// timeouts, stall checks, keepalive pings, idle closes) first, so that
    /// the retries they cause see up-to-date endpoint health; then the
    /// reconnects of a full outage; then call timers (deadlines, backoffs,
    /// slow-mutation checks); then probes.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.observe(now);
        let mut ids: Vec<ConnId> = self.conns.keys().copied().collect();
        ids.sort();
        let mut lost = Vec::new();
        for conn in ids {
            // Acting on one deadline may make another due (a probe that
            // timed out leaves an idle connection to close): run until the
            // connection has nothing due, so `poll_timeout` never returns
            // an instant already handled.
            for _ in 0..4 {
                lost.extend(self.fire_conn_timers(now, conn));
                let due = self.conns.get(&conn).and_then(Conn::next_timer);
                if due.is_none_or(|t| t > now) {
                    break;
                }
            }
        }
        self.adopt(now, lost);
        self.run_reconnects(now);
        while let Some(timer) = self.timers.pop_due(now) {
            self.fire_call_timer(now, timer);
        }
        self.run_probes(now);
        self.reclaim_slots();
    }

    // --------------------------------------------------------------- internals

    fn observe(&mut self, now: Instant) {
        self.last_now = Some(match self.last_now {
            Some(prev) if prev > now => prev,
            _ => now,
        });
    }

    fn add_endpoint(&mut self, endpoint: Endpoint) {
        if self
            .slots
            .iter()
            .any(|s| !s.removed && s.endpoint == endpoint)
        {
            return;
        }
        self.slots.push(Slot {
            endpoint,
            health: EndpointHealth::new(self.config.endpoint_backoff.clone()),
            conn: None,
            removed: false,
            in_flight: 0,
            viewed_at: None,
            rejected: None,
            connect_at: None,
            connect_backoff: crate::util::backoff::Backoff::new(
                self.config.connect_backoff.clone(),
            ),
            reconnect: false,
        });
    }

    /// Drop the slots of removed endpoints that nothing refers to any more:
    /// no connection, no call bound to it, on it or holding its last
    /// status (a call's list of endpoints tried only compares ids). Their
    /// ids are never handed out again.
    pub(super) fn reclaim_slots(&mut self) {
        if self.slots.removed == 0 {
            return;
        }
        let mut idle: Vec<usize> = self
            .slots
            .enumerate()
            .filter(|(_, s)| s.removed && s.conn.is_none() && s.in_flight == 0)
            .map(|(i, _)| i)
            .collect();
        idle.retain(|&i| {
            let ep = EndpointId(i);
            !self.conns.values().any(|c| c.endpoint == ep)
                && !self.calls.values().any(|c| {
                    c.bound == Some(ep)
                        || c.state.endpoint() == Some(ep)
                        || c.last_status.as_ref().is_some_and(|(e, _)| *e == ep)
                })
        });
        if idle.is_empty() {
            return;
        }
        self.slots.slots.retain(|(i, _)| !idle.contains(i));
        self.slots.removed -= idle.len();
    }

    /// Whether an endpoint not yet tried by the call could take it now.
    fn has_fresh_endpoint(&self, now: Instant, tried: &[EndpointId]) -> bool {
        let recheck = self.config.rejection_recheck;
        self.slots.enumerate().any(|(i, s)| {
            !s.removed
                && !tried.contains(&EndpointId(i))
                && !s.is_rejected(now, recheck)
                && s.health.tier(now) < 3
        })
    }

    /// Whether some endpoint is up and has a leader (tier 0 or 1): when none
    /// is (every member down, or the live ones answered `no leader` during an
    /// election), retries wait only [`Config::outage_retry`], so the first
    /// member to serve again is found at once.
    fn has_serving_endpoint(&self, now: Instant) -> bool {
        self.slots
            .iter()
            .any(|s| !s.removed && s.health.tier(now) <= 1)
    }

    /// When every endpoint the call may use has rejected the client for
    /// good: the error the call ends with (naming the latest rejection).
    fn rejection_of(&self, now: Instant, bound: Option<EndpointId>) -> Option<(String, String)> {
        let recheck = self.config.rejection_recheck;
        let mut usable = self
            .slots
            .enumerate()
            .filter(|(i, s)| !s.removed && bound.is_none_or(|b| b.0 == *i))
            .peekable();
        usable.peek()?;
        let mut latest: Option<(Instant, String, String)> = None;
        for (_, s) in usable {
            if !s.is_rejected(now, recheck) {
                return None;
            }
            if let Some((at, cause)) = &s.rejected {
                if latest.as_ref().is_none_or(|(l, _, _)| at >= l) {
                    latest = Some((*at, s.endpoint.to_string(), cause.clone()));
                }
            }
        }
        latest.map(|(_, ep, cause)| (ep, cause))
    }

    fn health_success(&mut self, ep: EndpointId, latency: Option<Duration>) {
        let now = self.last_now;
        if now.is_some_and(|now| self.slots[ep.0].health.on_success(now, latency)) {
            self.events.push_back(Event::HealthChanged {
                endpoint: ep,
                state: HealthState::Up,
                reason: HealthReason::Answered,
            });
        }
    }

    fn health_suspect(&mut self, ep: EndpointId, reason: HealthReason) {
        if let Some(now) = self.last_now {
            self.stay_watchful(now);
        }
        if self.slots[ep.0].health.on_suspect() {
            self.events.push_back(Event::HealthChanged {
                endpoint: ep,
                state: HealthState::Suspect,
                reason,
            });
        }
    }

    fn status_error(&self, method: Method, ep: EndpointId, status: Status) -> CallError {
        let kind = crate::wire::error::classify(&status);
        CallError::Status {
            method: method.path,
            endpoint: self.slots[ep.0].endpoint.to_string(),
            status,
            kind,
        }
    }
}
