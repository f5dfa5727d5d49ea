//! The call table and the retry matrix: what the end of an attempt means for
//! its call. Every retry decision of the core is made in this file
//! (`on_attempt_end`, `on_status`, `retry`); docs/failure-semantics.md
//! describes the same matrix.
//!
//! | attempt ended with | repeatable call | mutation | member-targeted call |
//! |---|---|---|---|
//! | `NotSent`, `Refused` | retry | retry | retry, same member |
//! | `Status`, rejected before proposal | retry | retry | retry, same member |
//! | `Status`, final and changed nothing | error | error | error |
//! | `Status`, may have applied | retry | outcome unknown | outcome unknown (reads: retry, same member) |
//! | `Lost` (after it may have reached the server) | retry | outcome unknown | outcome unknown (reads: retry, same member) |
//! | refused token | refresh, retry once | refresh, retry once | refresh, retry once |
//! | `Success` below the revision seen (`fence.rs`) | linearizable: answer, fence reset; serializable: retry (at most `stale_read_retries`), then answer marked | answer (put, delete: fence reset) | answer, marked |
//!
//! An established stream's end is final for its call: the owner (the
//! stream supervisor) opens a new one. A retry goes at once to an endpoint
//! the call has not tried yet; when all were tried it waits the call's
//! jittered backoff; no retry is scheduled past the deadline.

use std::time::{Duration, Instant};

use etcdv3_proto::method::{self, Method};

use super::auth::is_auth_refresh;
use super::fence::Verdict;
use super::timers::CallTimer;
use super::{CallError, CallId, Cause, ConnId, Core, EndpointId, Event, Outcome, ReadKind};
use crate::endpoints::health::HealthReason;
use crate::util::backoff::Backoff;
use crate::wire::error::{classify, EtcdErrorKind, RetryScope};
use crate::wire::status::Status;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CallState {
    /// Waiting to be dispatched at `at` (backoff) — or right away.
    Queued { at: Instant },
    /// Waiting for a connection to come up.
    Connecting { conn: ConnId },
    /// Attempt in flight.
    InFlight {
        conn: ConnId,
        endpoint: EndpointId,
        sent_at: Instant,
    },
    /// An established stream.
    Streaming { conn: ConnId, endpoint: EndpointId },
    /// Waiting for a fresh auth token.
    AwaitingAuth,
}

impl CallState {
    pub(super) fn endpoint(self) -> Option<EndpointId> {
        match self {
            CallState::InFlight { endpoint, .. } | CallState::Streaming { endpoint, .. } => {
                Some(endpoint)
            }
            _ => None,
        }
    }

    fn on_conn(self, conn: ConnId) -> bool {
        matches!(self, CallState::InFlight { conn: c, .. } | CallState::Streaming { conn: c, .. } if c == conn)
    }
}

#[derive(Debug)]
pub(super) struct Call {
    pub(super) method: Method,
    pub(super) deadline: Option<Instant>,
    pub(super) state: CallState,
    pub(super) attempt: u32,
    pub(super) tried: Vec<EndpointId>,
    pub(super) backoff: Backoff,
    pub(super) auth_retried: bool,
    pub(super) last_error: Option<String>,
    /// The server error that caused the pending retry, if that is why the
    /// call is waiting: reported instead of a bare deadline error.
    pub(super) last_status: Option<(EndpointId, Status)>,
    /// The client's highest seen revision when the call started: a read
    /// answered from an older revision came from a member that is behind
    /// (or, for a quorum-confirmed answer, the history went back).
    pub(super) min_revision: i64,
    /// What the revision fence does with the call's answers (resolved from
    /// the method when the caller gave none, see `fence.rs`).
    pub(super) read: ReadKind,
    /// Answers below `min_revision` retried so far (bounded by
    /// `Config::stale_read_retries`).
    pub(super) stale_answers: u32,
    /// The last attempt's answer was below `min_revision` and a retry is
    /// pending: (who answered, at which revision). Handed over, marked, if
    /// the retry cannot happen.
    pub(super) stale: Option<(EndpointId, i64)>,
    /// The auth token generation the current attempt went out with.
    pub(super) token_gen: u64,
    /// The highest raft term the client knew when the current attempt went
    /// out: an election at a higher term may have lost it.
    pub(super) sent_term: u64,
    /// An established stream owes a reply to a request sent at this
    /// instant (see [`Core::handle_stream_sent`]).
    pub(super) owed_since: Option<Instant>,
    /// The member the call must run on: named by the caller, or, for a
    /// member-targeted method, the one its first attempt went to. Such a
    /// call never moves to another member.
    pub(super) bound: Option<EndpointId>,
    /// Armed timers, to disarm them when the call ends.
    pub(super) retry_at: Option<Instant>,
    pub(super) slow_at: Option<Instant>,
    /// The next attempt costs the retry budget nothing: it was paid for
    /// when the retry was decided, or the last attempt never reached a
    /// member (never sent, refused).
    pub(super) resend_paid: bool,
    /// The client closed the connection the current attempt (a mutation)
    /// is on, and why: the attempt's loss is reported with this reason
    /// rather than the transport's ("broken pipe").
    pub(super) closed_by_client: Option<String>,
}

/// Calls that concern one member (its status, its database, its hash, its
/// snapshot): they run on the member they were sent to, never elsewhere.
/// `MoveLeader` is not among them: it must reach the leader, and a member
/// that is not answers "not leader" before doing anything, so it moves on
/// safely; [`Core::start_call_on`] still pins any call to a named member.
pub fn is_member_targeted(m: Method) -> bool {
    [
        method::MAINTENANCE_STATUS.path,
        method::MAINTENANCE_DEFRAGMENT.path,
        method::MAINTENANCE_HASH.path,
        method::MAINTENANCE_HASH_KV.path,
        method::MAINTENANCE_SNAPSHOT.path,
    ]
    .contains(&m.path)
}

/// Whether a call may ask for `hasleader` (a member without a leader then
/// refuses it at once, and the core tries another). Serializable reads and
/// `Maintenance` calls never do: they are served by the member alone (its
/// local state, its status, its hash, its snapshot) and must work while the
/// member has no leader; that is what they are for during an incident.
/// Every other call carries it when the client's `require_leader` is on.
pub fn wants_leader(m: Method, read: ReadKind) -> bool {
    let local_read = m.path == method::KV_RANGE.path
        && matches!(
            read,
            ReadKind::Serializable | ReadKind::SerializableUnfenced
        );
    !local_read && !m.path.starts_with("/etcdserverpb.Maintenance/")
}

/// Member-targeted calls that only read: re-sending one to the same member
/// after a lost connection is harmless.
fn is_targeted_read(m: Method) -> bool {
    [
        method::MAINTENANCE_STATUS.path,
        method::MAINTENANCE_HASH.path,
        method::MAINTENANCE_HASH_KV.path,
    ]
    .contains(&m.path)
}

/// Calls judged by the cluster's state once they are slow: a slow one
/// makes the core probe the members soon (a member that lost its leader or
/// fell behind cannot finish it). Lock and Campaign wait by design; streams
/// are judged by their owner.
pub(super) fn watched_when_slow(m: Method) -> bool {
    !m.is_streaming()
        && m.path != method::LOCK_LOCK.path
        && m.path != method::ELECTION_CAMPAIGN.path
}

/// Calls that wait for their turn by design (a `Lock` until the lock is
/// free, a `Campaign` until the leadership is won): their silence says
/// nothing about the member, so their connection is not owed an answer
/// once the member was heard from after they went out (see
/// `Conn::waits`).
pub(super) fn waits_by_design(m: Method) -> bool {
    m.path == method::LOCK_LOCK.path || m.path == method::ELECTION_CAMPAIGN.path
}

/// Mutations that can be left stuck behind a lost leader. Lock and
/// Campaign are excluded: they wait by design, for as long as it takes.
pub(super) fn may_get_stuck(m: Method) -> bool {
    !m.is_repeatable()
        && !m.is_streaming()
        && m.path != method::LOCK_LOCK.path
        && m.path != method::ELECTION_CAMPAIGN.path
}

impl Core {
    // ------------------------------------------------------------------ inputs

    /// Start a call of `method`, to end by `deadline` (`None`: no deadline,
    /// for long-lived streams). The core answers with `Connect`/`Send` and,
    /// eventually, exactly one `Complete` for it (unless cancelled).
    pub fn start_call(
        &mut self,
        now: Instant,
        method: Method,
        deadline: Option<Instant>,
    ) -> CallId {
        self.new_call(now, method, deadline, None, ReadKind::Unspecified)
    }

    /// Like [`Core::start_call`], for a call that must run on `endpoint`
    /// and nowhere else (maintenance of one member: status, defragment,
    /// hash, snapshot, move-leader). It waits for that member until its
    /// deadline; it is never moved to another. An `endpoint` that is not
    /// one of the core's (never added, or removed) ends the call at once
    /// with [`CallError::NotAnEndpoint`].
    pub fn start_call_on(
        &mut self,
        now: Instant,
        method: Method,
        deadline: Option<Instant>,
        endpoint: EndpointId,
    ) -> CallId {
        self.new_call(now, method, deadline, Some(endpoint), ReadKind::Unspecified)
    }

    /// [`Core::start_call`] (or, with `bound`, [`Core::start_call_on`]) for
    /// a call whose answers the revision fence must judge as `read` says: a
    /// `Range` the adapter knows to be linearizable, serializable, or
    /// serializable without the fence (see [`ReadKind`]).
    pub fn start_call_with(
        &mut self,
        now: Instant,
        method: Method,
        deadline: Option<Instant>,
        bound: Option<EndpointId>,
        read: ReadKind,
    ) -> CallId {
        self.new_call(now, method, deadline, bound, read)
    }

    fn new_call(
        &mut self,
        now: Instant,
        method: Method,
        deadline: Option<Instant>,
        bound: Option<EndpointId>,
        read: ReadKind,
    ) -> CallId {
        self.observe(now);
        let id = CallId(self.next_call);
        self.next_call += 1;
        self.calls.insert(
            id,
            Call {
                method,
                deadline,
                state: CallState::Queued { at: now },
                attempt: 0,
                tried: Vec::new(),
                backoff: Backoff::new(self.config.retry_backoff.clone()),
                auth_retried: false,
                last_error: None,
                last_status: None,
                min_revision: self.fence.max_revision,
                read: super::fence::resolve_kind(method, read),
                stale_answers: 0,
                stale: None,
                token_gen: 0,
                sent_term: 0,
                owed_since: None,
                bound,
                retry_at: None,
                slow_at: None,
                resend_paid: false,
                closed_by_client: None,
            },
        );
        if let Some(d) = deadline {
            self.timers.set(d, CallTimer::Deadline(id));
        }
        if deadline.is_some_and(|d| d <= now) {
            self.expire(id);
        } else {
            self.dispatch(now, id);
        }
        id
    }

    /// The user gave up on the call (its future or stream was dropped). No
    /// `Complete` follows; the adapter drops what it holds for the call.
    pub fn cancel_call(&mut self, now: Instant, call: CallId) {
        self.observe(now);
        if let Some(c) = self.calls.remove(&call) {
            self.forget(now, &c, call);
        }
    }

    /// A stream call's response headers arrived: the stream is established.
    /// From now on its end is final for the call (no retry here: the owner,
    /// e.g. the watch hub, resumes it with a new call).
    pub fn handle_stream_established(&mut self, now: Instant, call: CallId) {
        self.observe(now);
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let CallState::InFlight { conn, endpoint, .. } = c.state else {
            return;
        };
        c.state = CallState::Streaming { conn, endpoint };
        if let Some(k) = self.conns.get_mut(&conn) {
            k.attempts = k.attempts.saturating_sub(1);
            k.streams += 1;
        }
        // Not proof that the server sent anything: a bidirectional stream
        // counts as established once its request headers are out. Its first
        // message is (handle_stream_progress).
        self.rearm(now, conn);
        self.health_success(endpoint, None);
    }

    /// The owner of an established stream sent a request the server must
    /// answer (a watch create, cancel or progress request, a lease
    /// keepalive). Until a message arrives on the stream, its connection
    /// is watched like one carrying a unary call: nothing heard for
    /// `stall_timeout` sends a PING, and a PING left unanswered for
    /// `ping_timeout` closes the connection, which ends the stream.
    pub fn handle_stream_sent(&mut self, now: Instant, call: CallId) {
        self.observe(now);
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let CallState::Streaming { conn, .. } = c.state else {
            return;
        };
        if c.owed_since.is_some() {
            return;
        }
        c.owed_since = Some(now);
        self.owe(now, conn);
    }

    /// A message arrived on a stream call (liveness of its connection).
    pub fn handle_stream_progress(&mut self, now: Instant, call: CallId) {
        self.observe(now);
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let conn = match c.state {
            CallState::Streaming { conn, .. } | CallState::InFlight { conn, .. } => conn,
            _ => return,
        };
        if c.owed_since.take().is_some() {
            self.repaid(conn);
        }
        self.heard_from(now, conn);
    }

    /// The owner of an established stream gave up waiting for answers to
    /// its requests although the member answers pings (a lease keep-alive
    /// held by a follower whose leader hangs): the member cannot serve the
    /// stream's work now. It is suspected, so the next stream goes
    /// elsewhere, and the stream call ends (`Complete` with
    /// [`CallError::StreamEnded`]); the owner drops its stream.
    pub fn handle_stream_unanswered(&mut self, now: Instant, call: CallId) {
        self.observe(now);
        let Some(CallState::Streaming { endpoint, .. }) = self.calls.get(&call).map(|c| c.state)
        else {
            return;
        };
        self.health_suspect(endpoint, HealthReason::Stalled);
        let why = format!(
            "{}: requests on the stream went unanswered",
            self.slots[endpoint.0].endpoint
        );
        self.on_attempt_end(now, call, Outcome::Lost(why));
    }

    /// Attempt `attempt` of `call` ended with `outcome`. Reports for an
    /// attempt that is no longer current are ignored.
    pub fn handle_outcome(&mut self, now: Instant, call: CallId, attempt: u32, outcome: Outcome) {
        self.observe(now);
        if self.calls.get(&call).is_some_and(|c| c.attempt == attempt) {
            self.on_attempt_end(now, call, outcome);
        }
    }

    // ------------------------------------------------------ the retry matrix

    /// The current attempt (or stream) of `id` ended with `outcome`.
    pub(super) fn on_attempt_end(&mut self, now: Instant, id: CallId, outcome: Outcome) {
        let Some(c) = self.calls.get(&id) else {
            return;
        };
        let (conn, endpoint, sent_at, streaming) = match c.state {
            CallState::InFlight {
                conn,
                endpoint,
                sent_at,
            } => (conn, endpoint, Some(sent_at), false),
            CallState::Streaming { conn, endpoint } => (conn, endpoint, None, true),
            _ => return,
        };
        let method = c.method;
        let bound = c.bound.is_some();
        let closed_by_client = self
            .calls
            .get_mut(&id)
            .and_then(|c| c.closed_by_client.take());
        self.release_attempt(now, id, conn, endpoint, streaming);
        // Headers or data from the server (an answer, a status) prove it
        // alive and reset etcd's ping strikes; a refusal (RST_STREAM,
        // GOAWAY) does neither.
        if matches!(outcome, Outcome::Success(_) | Outcome::Status(_)) {
            self.heard_from(now, conn);
        }
        if streaming {
            let result = match outcome {
                Outcome::Success(_) => Ok(()),
                Outcome::Status(status) => {
                    if classify(&status) == EtcdErrorKind::NoLeader {
                        // A member that refuses a stream for want of a
                        // leader is demoted like one refusing a unary call,
                        // so the reopened stream goes elsewhere.
                        self.slots[endpoint.0].health.on_no_leader();
                        self.health_suspect(endpoint, HealthReason::NoLeader);
                        self.refused_for_no_leader(now, endpoint);
                    }
                    Err(self.status_error(method, endpoint, status))
                }
                Outcome::NotSent(e) | Outcome::Refused(e) | Outcome::Lost(e) => {
                    Err(CallError::StreamEnded {
                        method: method.path,
                        endpoint: self.slots[endpoint.0].endpoint.to_string(),
                        cause: e,
                    })
                }
            };
            self.complete(id, result);
            return;
        }
        if let Some(c) = self.calls.get_mut(&id) {
            c.stale = None;
        }
        match outcome {
            Outcome::Success(meta) => {
                let latency = sent_at.map(|s| now.saturating_duration_since(s));
                let verdict = match meta {
                    Some(m) => self.judge_answer(id, endpoint, m.revision),
                    None => Verdict::Accept,
                };
                if let (Verdict::Retry { seen }, Some(m)) = (verdict, meta) {
                    self.health_suspect(
                        endpoint,
                        HealthReason::BehindRevision {
                            answered: m.revision,
                            seen,
                        },
                    );
                    let why = format!(
                        "{} answered at revision {} but revision {seen} was already seen",
                        self.slots[endpoint.0].endpoint, m.revision
                    );
                    if let Some(c) = self.calls.get_mut(&id) {
                        c.last_status = None;
                    }
                    self.retry(now, id, Some(endpoint), why);
                    return;
                }
                self.health_success(endpoint, latency);
                if let Some(m) = meta {
                    self.slots[endpoint.0].health.on_member_view(
                        m.member_id,
                        None,
                        m.raft_term,
                        m.revision,
                    );
                }
                match (verdict, meta) {
                    (Verdict::Stale { .. }, Some(m)) => {
                        self.hand_over_stale(id, endpoint, m.revision)
                    }
                    _ => self.complete(id, Ok(())),
                }
            }
            Outcome::Status(status) => self.on_status(now, id, endpoint, status),
            Outcome::NotSent(e) | Outcome::Refused(e) => {
                if let Some(c) = self.calls.get_mut(&id) {
                    c.last_status = None;
                    // The member never saw it: re-sending adds no load.
                    c.resend_paid = true;
                }
                self.retry(now, id, Some(endpoint), e);
            }
            Outcome::Lost(e) => {
                if let Some(c) = self.calls.get_mut(&id) {
                    c.last_status = None;
                }
                let e = closed_by_client.unwrap_or(e);
                let repeat = if bound {
                    is_targeted_read(method)
                } else {
                    method.is_repeatable()
                };
                if repeat {
                    self.retry(now, id, Some(endpoint), e);
                } else {
                    self.outcome_unknown(id, endpoint, e);
                }
            }
        }
    }

    fn on_status(&mut self, now: Instant, id: CallId, ep: EndpointId, status: Status) {
        let kind = classify(&status);
        let Some(c) = self.calls.get(&id) else {
            return;
        };
        let method = c.method;
        let repeatable = if c.bound.is_some() {
            is_targeted_read(method)
        } else {
            method.is_repeatable()
        };
        if is_auth_refresh(&status) {
            if !self.on_token_refused(now, id, &status) {
                // Refused again with a fresh token: final.
                let err = self.status_error(method, ep, status);
                self.complete(id, Err(err));
            }
            return;
        }
        if kind == EtcdErrorKind::NoLeader {
            self.slots[ep.0].health.on_no_leader();
            self.health_suspect(ep, HealthReason::NoLeader);
            self.refused_for_no_leader(now, ep);
            // A member without a leader refuses before doing any work (the
            // `hasleader` check): re-sending it costs the cluster nothing, and
            // during an election every call in flight gets this answer, so
            // charging the budget would fail a busy client's calls in a
            // routine leader change.
            if let Some(c) = self.calls.get_mut(&id) {
                c.resend_paid = true;
            }
        }
        let scope = kind.retry();
        let may_have_applied = kind.may_have_applied();
        if scope != RetryScope::Never && (repeatable || !may_have_applied) {
            if let Some(c) = self.calls.get_mut(&id) {
                c.last_status = Some((ep, status.clone()));
            }
            self.retry(now, id, Some(ep), status.to_string());
        } else if !repeatable && may_have_applied {
            // Whatever the code, a mutation answered with an error that does
            // not prove it changed nothing (Unknown, Cancelled, a leader
            // transfer timeout, ...) has an unknown outcome.
            self.outcome_unknown(id, ep, status.to_string());
        } else {
            let err = self.status_error(method, ep, status);
            self.complete(id, Err(err));
        }
    }

    pub(super) fn outcome_unknown(&mut self, id: CallId, ep: EndpointId, cause: String) {
        let Some(c) = self.calls.get(&id) else {
            return;
        };
        let method = c.method.path;
        self.events.push_back(Event::OutcomeUnknown {
            call: id,
            method,
            endpoint: ep,
        });
        let endpoint = self.slots[ep.0].endpoint.to_string();
        self.complete(
            id,
            Err(CallError::OutcomeUnknown {
                method,
                endpoint,
                cause,
                source: None,
            }),
        );
    }

    /// Schedule another attempt: at once when an untried usable endpoint
    /// exists, else after the call's backoff; never past the deadline.
    /// While no endpoint at all is usable (a full outage), the wait is
    /// capped at `outage_retry`, so a member that comes back is used at
    /// once.
    pub(super) fn retry(
        &mut self,
        now: Instant,
        id: CallId,
        from: Option<EndpointId>,
        reason: String,
    ) {
        let Some(c) = self.calls.get(&id) else {
            return;
        };
        if let Some((endpoint, cause)) = self.rejection_of(now, c.bound) {
            // Retrying cannot help: every endpoint the call may use
            // rejected the client for good.
            let method = c.method.path;
            self.complete(
                id,
                Err(CallError::Rejected {
                    method,
                    endpoint,
                    cause,
                }),
            );
            return;
        }
        let fresh = c.bound.is_none() && self.has_fresh_endpoint(now, &c.tried);
        let outage = !self.has_fresh_endpoint(now, &[]) || !self.has_serving_endpoint(now);
        let Some(c) = self.calls.get_mut(&id) else {
            return;
        };
        c.last_error = Some(reason.clone());
        let delay = if fresh {
            Duration::ZERO
        } else {
            c.tried.clear();
            let d = c.backoff.next_delay(&mut self.rng);
            if outage {
                d.min(self.config.outage_retry)
            } else {
                d
            }
        };
        let at = now + delay;
        let method = c.method.path;
        if c.deadline.is_some_and(|d| at >= d) {
            self.expire(id);
            return;
        }
        if c.attempt > 0 && !c.resend_paid {
            // A re-send of a request a member may have worked on: it is
            // paid from the client's retry budget, or not made.
            if let Some(budget) = self.budget.as_mut() {
                if !budget.try_withdraw(now) {
                    self.budget_spent(id, from, reason);
                    return;
                }
            }
            c.resend_paid = true;
        }
        self.events.push_back(Event::Retry {
            call: id,
            method,
            from,
            reason,
            delay,
        });
        c.state = CallState::Queued { at };
        if delay.is_zero() {
            self.dispatch(now, id);
        } else {
            let old = c.retry_at.replace(at);
            self.timers.stop(old, CallTimer::Retry(id));
            self.timers.set(at, CallTimer::Retry(id));
        }
    }

    /// The call needs a re-send and the retry budget is spent: it ends with
    /// its last attempt's failure.
    fn budget_spent(&mut self, id: CallId, from: Option<EndpointId>, cause: String) {
        if self.settle_stale(id) {
            return;
        }
        let Some(c) = self.calls.get(&id) else {
            return;
        };
        let method = c.method.path;
        let status = c.last_status.as_ref().map(|(_, s)| s.clone());
        let source = status.clone().map(Cause::new);
        let endpoint = from
            .and_then(|ep| self.slots.get(ep.0))
            .map_or_else(|| "none".to_string(), |s| s.endpoint.to_string());
        self.events
            .push_back(Event::RetryBudgetSpent { call: id, method });
        self.complete(
            id,
            Err(CallError::RetryBudgetSpent {
                method,
                endpoint,
                cause,
                status,
                source,
            }),
        );
    }

    /// An attempt was lost with its connection (closed, or its ping went
    /// unanswered): the same as the adapter reporting `Lost` for it.
    pub(super) fn attempt_lost(&mut self, now: Instant, id: CallId, why: String) {
        self.on_attempt_end(now, id, Outcome::Lost(why));
    }

    pub(super) fn fire_call_timer(&mut self, now: Instant, timer: CallTimer) {
        match timer {
            CallTimer::Deadline(id) => {
                if self
                    .calls
                    .get(&id)
                    .is_some_and(|c| c.deadline.is_some_and(|d| d <= now))
                {
                    self.expire(id);
                }
            }
            CallTimer::Retry(id) => {
                let Some(c) = self.calls.get_mut(&id) else {
                    return;
                };
                c.retry_at = None;
                if let CallState::Queued { at } = c.state {
                    if at <= now {
                        self.dispatch(now, id);
                    }
                }
            }
            CallTimer::SlowCheck(id) => {
                let stall = self.config.stall_timeout;
                let Some(c) = self.calls.get_mut(&id) else {
                    return;
                };
                c.slow_at = None;
                let slow = matches!(c.state, CallState::InFlight { sent_at, .. }
                    if sent_at + stall <= now);
                if slow {
                    // Judge a slow mutation by the cluster's state: probe
                    // now, and again while it stays stuck; once it is stuck
                    // for two stall timeouts (an election may be under way:
                    // a leader cut off from its peers answers nothing
                    // until it steps down), at the election cadence, so
                    // the news of a new leader ends it at once.
                    let stuck = matches!(c.state, CallState::InFlight { sent_at, .. }
                        if sent_at + stall * 2 <= now);
                    let fast = self.config.election_probe_interval;
                    let at = now + if stuck { fast } else { stall };
                    c.slow_at = Some(at);
                    self.timers.set(at, CallTimer::SlowCheck(id));
                    self.cluster.urgent_probe = true;
                    if stuck {
                        self.cluster.fast_probes_until = Some(now + fast * 2);
                    }
                }
            }
        }
    }

    // ------------------------------------------------------------- bookkeeping

    pub(super) fn calls_where(&self, pred: impl Fn(CallState) -> bool) -> Vec<CallId> {
        let mut ids: Vec<CallId> = self
            .calls
            .iter()
            .filter(|(_, c)| pred(c.state))
            .map(|(id, _)| *id)
            .collect();
        ids.sort();
        ids
    }

    /// Calls with an attempt or stream on `conn`.
    pub(super) fn calls_on(&self, conn: ConnId) -> Vec<CallId> {
        self.calls_where(|s| s.on_conn(conn))
    }

    /// Undo the bookkeeping of the call's current attempt or stream; the
    /// call goes back to `Queued`.
    fn release_attempt(
        &mut self,
        now: Instant,
        id: CallId,
        conn: ConnId,
        ep: EndpointId,
        streaming: bool,
    ) {
        let mut owed = false;
        let mut waits = false;
        if let Some(c) = self.calls.get_mut(&id) {
            owed = c.owed_since.take().is_some();
            waits = !streaming && waits_by_design(c.method);
            c.state = CallState::Queued { at: now };
            let old = c.slow_at.take();
            self.timers.stop(old, CallTimer::SlowCheck(id));
        }
        self.detach_attempt(now, conn, ep, streaming, owed, waits);
    }

    /// Drop the call's timers and its attempt's bookkeeping.
    fn forget(&mut self, now: Instant, c: &Call, id: CallId) {
        self.timers.stop(c.deadline, CallTimer::Deadline(id));
        self.timers.stop(c.retry_at, CallTimer::Retry(id));
        self.timers.stop(c.slow_at, CallTimer::SlowCheck(id));
        match c.state {
            CallState::InFlight { conn, endpoint, .. } => {
                self.detach_attempt(now, conn, endpoint, false, false, waits_by_design(c.method))
            }
            CallState::Streaming { conn, endpoint } => {
                self.detach_attempt(now, conn, endpoint, true, c.owed_since.is_some(), false)
            }
            _ => {}
        }
    }

    pub(super) fn complete(&mut self, id: CallId, result: Result<(), CallError>) {
        if let Some(c) = self.calls.remove(&id) {
            if let Some(now) = self.last_now {
                self.forget(now, &c, id);
            }
            self.actions
                .push_back(super::Action::Complete { call: id, result });
        }
    }

    pub(super) fn expire(&mut self, id: CallId) {
        let Some(c) = self.calls.get(&id) else {
            return;
        };
        let waiting = !matches!(
            c.state,
            CallState::InFlight { .. } | CallState::Streaming { .. }
        );
        if waiting && self.settle_stale(id) {
            return;
        }
        let Some(c) = self.calls.get(&id) else {
            return;
        };
        let in_flight_mutation = !c.method.is_repeatable()
            && matches!(
                c.state,
                CallState::InFlight { .. } | CallState::Streaming { .. }
            );
        let waiting = !matches!(
            c.state,
            CallState::InFlight { .. } | CallState::Streaming { .. }
        );
        if let (true, Some((ep, status))) = (waiting, c.last_status.clone()) {
            // The call ran out of time retrying a server error (e.g. "not
            // leader" with a single endpoint): report that error, typed.
            let err = self.status_error(c.method, ep, status);
            self.complete(id, Err(err));
            return;
        }
        let err = CallError::DeadlineExceeded {
            method: c.method.path,
            attempts: c.attempt,
            last_error: c.last_error.clone().unwrap_or_else(|| "none".to_string()),
            may_have_applied: in_flight_mutation,
            source: None,
        };
        self.complete(id, Err(err));
    }

    pub(super) fn queue_now(&mut self, now: Instant, id: CallId) {
        if let Some(c) = self.calls.get_mut(&id) {
            c.state = CallState::Queued { at: now };
            self.dispatch(now, id);
        }
    }
}
