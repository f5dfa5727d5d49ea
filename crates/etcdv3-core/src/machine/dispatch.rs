//! Where a call goes: the endpoint pick and the send.

use std::time::Instant;

use super::calls::{is_member_targeted, waits_by_design, watched_when_slow, CallState};
use super::conns::ConnState;
use super::timers::CallTimer;
use super::{Action, CallError, CallId, ConnId, Core, EndpointId};
use crate::endpoints::balancer::{Candidate, Policy};

impl Core {
    /// Pick an endpoint for the call and send it, or connect first.
    pub(super) fn dispatch(&mut self, now: Instant, id: CallId) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        if let Some((endpoint, cause)) = self.rejection_of(now, call.bound) {
            let method = call.method.path;
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
        if self.needs_token(call.method) {
            self.await_token(id);
            return;
        }
        if self.hold_for_election(now, id) {
            return;
        }
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let recheck = self.config.rejection_recheck;
        let candidates: Vec<Candidate> = self
            .slots
            .enumerate()
            .filter(|(i, s)| {
                !s.removed && call.bound.is_none_or(|b| b.0 == *i) && !s.is_rejected(now, recheck)
            })
            .map(|(i, s)| Candidate {
                id: i,
                tier: s.health.tier(now),
                in_flight: s.in_flight,
                latency: s.health.fresh_latency(now),
                tried: call.tried.contains(&EndpointId(i)),
            })
            .collect();
        // Adaptive: a mutation goes straight to the leader when it is among
        // the best candidates, saving the follower's forwarding hop.
        let to_leader = if self.balancer.policy() == Policy::Adaptive
            && !call.method.is_repeatable()
            && call.bound.is_none()
        {
            self.leader_endpoint().filter(|l| {
                let rank = |c: &Candidate| (c.tier >= 4, c.tier >= 3, c.tried, c.tier);
                let best = candidates.iter().map(rank).min();
                candidates
                    .iter()
                    .any(|c| c.id == l.0 && Some(rank(c)) == best && c.tier == 0)
            })
        } else {
            None
        };
        // Every endpoint the call may use is down (some perhaps past their
        // backoff): a full outage.
        let outage = !candidates.is_empty() && candidates.iter().all(|c| c.tier >= 3);
        let pick = match to_leader {
            Some(l) => Some(l.0),
            None => self.balancer.pick(&candidates, &mut self.rng),
        };
        let Some(pick) = pick else {
            let method = call.method.path;
            let err = match call.bound {
                // Removed, or never known: an error, not a panic.
                Some(ep) => CallError::NotAnEndpoint {
                    method,
                    endpoint: self
                        .slots
                        .get(ep.0)
                        .map_or_else(|| format!("endpoint #{}", ep.0), |s| s.endpoint.to_string()),
                },
                None => CallError::NoEndpoints { method },
            };
            self.complete(id, Err(err));
            return;
        };
        if outage && call.bound.is_none() {
            // Every endpoint is down: try them all, so whichever member
            // answers first is used; each at its connection spacing, and
            // again at that spacing while the outage lasts and calls wait
            // (`run_reconnects`), however many calls wait.
            for i in self.slots.ids() {
                if i != pick
                    && !self.slots[i].removed
                    && self.slots[i].conn.is_none()
                    && !self.slots[i].is_rejected(now, recheck)
                {
                    if self.may_connect(now, EndpointId(i)) {
                        self.open_conn(now, EndpointId(i));
                    } else {
                        self.slots[i].reconnect = true;
                    }
                }
            }
        } else {
            // A down member whose backoff has run out ranks after every live
            // one (a call staked on reconnecting to a hung member would wait
            // out a whole connect timeout), so it is reconnected beside the
            // call instead, and takes calls once it answers. Only calls
            // trigger this: an idle client opens nothing.
            let waking: Vec<usize> = candidates
                .iter()
                .filter(|c| c.tier == 3 && c.id != pick && self.slots[c.id].conn.is_none())
                .map(|c| c.id)
                .filter(|&i| self.may_connect(now, EndpointId(i)))
                .collect();
            for i in waking {
                self.open_conn(now, EndpointId(i));
            }
        }
        let ep = EndpointId(pick);
        match self.slots[pick]
            .conn
            .and_then(|c| self.conns.get(&c).map(|k| (c, k.state)))
        {
            Some((conn, ConnState::Ready)) => self.send(now, id, conn),
            Some((conn, ConnState::Connecting)) => {
                if let Some(c) = self.calls.get_mut(&id) {
                    c.state = CallState::Connecting { conn };
                }
            }
            _ if self.may_connect(now, ep) => {
                let conn = self.open_conn(now, ep);
                if let Some(c) = self.calls.get_mut(&id) {
                    c.state = CallState::Connecting { conn };
                }
            }
            _ => {
                // The endpoint was tried a moment ago: the call waits for
                // its next attempt (in a full outage, made by
                // `run_reconnects`; a member that answers meanwhile takes
                // the call at once, see `handle_connected`).
                let at = self.slots[pick].connect_at.unwrap_or(now);
                if outage {
                    self.slots[pick].reconnect = true;
                }
                if let Some(c) = self.calls.get_mut(&id) {
                    c.state = CallState::Queued { at };
                    let old = c.retry_at.replace(at);
                    self.timers.stop(old, CallTimer::Retry(id));
                    self.timers.set(at, CallTimer::Retry(id));
                }
            }
        }
    }

    /// Put the call's next attempt on `conn`.
    pub(super) fn send(&mut self, now: Instant, id: CallId, conn: ConnId) {
        let Some(k) = self.conns.get(&conn) else {
            self.queue_now(now, id);
            return;
        };
        let ep = k.endpoint;
        let token_gen = self.auth.token_gen;
        let term = self.send_term(now);
        let stall = self.config.stall_timeout;
        let Some(c) = self.calls.get_mut(&id) else {
            return;
        };
        c.attempt += 1;
        c.resend_paid = false;
        c.token_gen = token_gen;
        c.sent_term = term;
        if !c.tried.contains(&ep) {
            c.tried.push(ep);
        }
        if c.bound.is_none() && is_member_targeted(c.method) {
            // Maintenance of one member stays on the member it reached.
            c.bound = Some(ep);
        }
        c.state = CallState::InFlight {
            conn,
            endpoint: ep,
            sent_at: now,
        };
        let attempt = c.attempt;
        if attempt == 1 {
            if let Some(budget) = self.budget.as_mut() {
                budget.deposit(now);
            }
        }
        let waits = waits_by_design(c.method);
        if watched_when_slow(c.method) {
            let at = now + stall;
            let old = c.slow_at.replace(at);
            self.timers.stop(old, CallTimer::SlowCheck(id));
            self.timers.set(at, CallTimer::SlowCheck(id));
        }
        self.slots[ep.0].in_flight += 1;
        self.attempt_started(now, conn, waits);
        self.actions.push_back(Action::Send {
            call: id,
            attempt,
            conn,
        });
    }
}
