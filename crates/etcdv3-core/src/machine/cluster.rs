//! The cluster view: periodic `Maintenance/Status` probes of connected
//! members, who leads at which raft term, which members are cut off (no
//! leader, or a stale term), and what a leader change means for the calls
//! in flight.

use std::time::Instant;

use super::calls::{may_get_stuck, CallState};
use super::conns::ConnState;
use super::timers::CallTimer;
use super::{Action, CallId, ConnId, Core, EndpointId, MemberStatus};
use crate::endpoints::health::HealthReason;
use crate::wire::status::{Code, Status};

/// What the probes found.
#[derive(Debug, Default)]
pub(super) struct ClusterView {
    pub(super) next_probe: Option<Instant>,
    /// The leader with the highest raft term any probe reported: (id, term).
    pub(super) leader: Option<(u64, u64)>,
    /// A probe round is wanted before `next_probe` (slow mutation, leader
    /// lost).
    pub(super) urgent_probe: bool,
    pub(super) last_round: Option<Instant>,
    /// Probes keep running until this instant after a failure was seen
    /// (a connection lost, an endpoint suspected).
    pub(super) watchful_until: Option<Instant>,
    /// When a probe last confirmed the term in `leader` (a member with a
    /// leader at that term or a newer one). A mutation sent while this is
    /// old went out without knowing the cluster's term (e.g. the first put
    /// after an idle spell): a newer term seen next says nothing about when
    /// the election happened, before the send or during it.
    pub(super) term_seen_at: Option<Instant>,
    /// The leader was seen to go: mutations wait for the next one.
    pub(super) election: Option<ElectionWait>,
    /// The mutations held by [`ClusterView::election`].
    pub(super) held: Vec<CallId>,
    /// Connections with an [`Action::CheckLeader`] unanswered.
    pub(super) checking: Vec<ConnId>,
    /// A mutation has been stuck for two stall timeouts: urgent probe
    /// rounds run at the election cadence until then.
    pub(super) fast_probes_until: Option<Instant>,
}

/// A leader the client saw go, and how long mutations wait for the next.
///
/// When the leader reports that it lost its leadership (an isolated leader
/// steps down once it misses a quorum for an election timeout; a probe
/// finds it leaderless, or it answers a call "no leader"), or the
/// member closes the client's connection (killed, stopped, removed), the
/// followers go on forwarding proposals to it until their own election
/// timeout runs out and they elect another. A mutation sent to a follower
/// meanwhile is forwarded to a leader that cannot take it: it hangs until
/// the client learns of the election and ends it "outcome unknown" (a
/// second unknown put per leader fault, and a longer gap). So mutations
/// wait instead, probes ask every member every
/// [`super::Config::election_probe_interval`], and the wait ends when a
/// member names a leader at a newer term (or another leader), when the old
/// leader answers as leader again, when another member answers a
/// linearizable read ([`Action::CheckLeader`], sent when the connection to
/// the leader broke or went silent: only the client's link to a live
/// leader was cut), or at `until` ([`super::Config::election_wait`]); not
/// when the last connection goes (it went with the leader): a mutation then
/// opens one and waits there.
#[derive(Debug, Clone, Copy)]
pub(super) struct ElectionWait {
    /// The member id of the leader that went, and its term.
    pub(super) deposed: u64,
    pub(super) term: u64,
    /// Held mutations go out by then, election or not.
    pub(super) until: Instant,
}

/// Half the age at which the client's knowledge of the cluster's term is
/// too old to judge a mutation lost by an election, when probes are off.
const TERM_FRESH_DEFAULT: std::time::Duration = std::time::Duration::from_secs(2);

/// How long probes keep running after a failure while no call is in flight.
const WATCHFUL_AFTER_FAILURE: std::time::Duration = std::time::Duration::from_secs(10);

impl Core {
    /// A status probe answered (or failed).
    pub fn handle_probe_result(
        &mut self,
        now: Instant,
        conn: ConnId,
        result: Result<MemberStatus, Status>,
    ) {
        self.observe(now);
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if !std::mem::replace(&mut c.probing, false) {
            return;
        }
        c.timers.probe = None;
        if !c.busy() && c.idle_since.is_none() {
            c.idle_since = Some(now);
        }
        let ep = c.endpoint;
        match result {
            Ok(st) => {
                self.heard_from(now, conn);
                let before = self.slots[ep.0].health.leader();
                let viewed_before = self.slots[ep.0].viewed_at.replace(now);
                self.on_leader_view(now, ep, before, viewed_before, st);
                self.slots[ep.0].health.on_member_view(
                    st.member_id,
                    Some(st.leader),
                    st.raft_term,
                    st.revision,
                );
                self.recompute_staleness();
                // Reads in flight on a member this probe just found cut off
                // from the majority (a stale term, e.g. an isolated old
                // leader) cannot finish. Only fresh news counts: an old view
                // of another member may predate its recovery.
                if self.slots[ep.0].health.is_stale() {
                    self.resend_reads(now, ep, "the member is behind the cluster's raft term");
                }
                if st.leader != 0 {
                    self.health_success(ep, None);
                } else {
                    self.health_suspect(ep, HealthReason::NoLeader);
                }
                let over = self.cluster.election.is_some_and(|w| {
                    st.leader != 0
                        && (st.raft_term > w.term
                            || st.leader != w.deposed
                            || st.member_id == w.deposed)
                });
                if over {
                    self.end_election_wait(now);
                }
            }
            Err(status) => {
                self.rearm(now, conn);
                if status.code == Code::Unavailable {
                    self.slots[ep.0].health.on_no_leader();
                }
                self.health_suspect(ep, HealthReason::ProbeFailed(status.to_string()));
            }
        }
        self.maybe_close_draining(conn);
    }

    /// A failure was seen: keep probing for a while even without calls.
    pub(super) fn stay_watchful(&mut self, now: Instant) {
        self.cluster.watchful_until = Some(now + WATCHFUL_AFTER_FAILURE);
    }

    /// Whether probes are worth their cost now. An idle client costs the
    /// cluster nothing: probes run only while unary calls are in flight
    /// (calls waiting for their turn by design, `Lock` and `Campaign`, do
    /// not count: waiting costs the cluster no RPC), while a slow call
    /// wants the cluster's state, and for a while after a failure. An idle
    /// watch needs none: a member that loses its leader cancels the watch
    /// ("no leader", thanks to `hasleader`), and keepalive pings prove the
    /// connection.
    fn probes_wanted(&self) -> bool {
        self.config.probe_when_idle
            || self.cluster.urgent_probe
            || self.cluster.election.is_some()
            || self.conns.values().any(|c| c.attempts > c.waits)
            || self
                .cluster
                .watchful_until
                .zip(self.last_now)
                .is_some_and(|(until, now)| now < until)
    }

    /// The spacing of urgent probe rounds: fast while an election is
    /// awaited or a mutation is stuck, else half the stall timeout.
    fn urgent_spacing(&self) -> std::time::Duration {
        let stuck = self
            .cluster
            .fast_probes_until
            .zip(self.last_now)
            .is_some_and(|(until, now)| now < until);
        if self.cluster.election.is_some() || stuck {
            self.config.election_probe_interval
        } else {
            self.config.stall_timeout / 2
        }
    }

    /// When the next probe round is due, if probes are on, wanted and a
    /// connection is up.
    pub(super) fn next_probe_at(&self) -> Option<Instant> {
        self.config.probe_interval?;
        if !self.probes_wanted() || !self.conns.values().any(|c| c.state == ConnState::Ready) {
            return None;
        }
        // A round skipped while probes were not wanted is due now, not in
        // the past.
        let regular = match (self.cluster.next_probe, self.last_now) {
            (Some(p), Some(n)) => Some(p.max(n)),
            (p, n) => p.or(n),
        };
        let urgent = if self.cluster.urgent_probe || self.cluster.election.is_some() {
            let earliest = self.cluster.last_round.map(|t| t + self.urgent_spacing());
            match (earliest, self.last_now) {
                (Some(e), Some(n)) => Some(e.max(n)),
                (e, n) => e.or(n),
            }
        } else {
            None
        };
        regular.into_iter().chain(urgent).min()
    }

    /// Start a probe round if one is due.
    pub(super) fn run_probes(&mut self, now: Instant) {
        let Some(interval) = self.config.probe_interval else {
            return;
        };
        // The wait ends when it ran out, not when no connection is up (the
        // leader's was the only one and went with it): a mutation then
        // opens a connection, and is held there once it is up (sim seed
        // 2002943: the wait ended at the ping timeout that closed the
        // leader's connection, and the next puts went to a follower still
        // forwarding to the paused leader).
        if self.cluster.election.is_some_and(|w| now >= w.until) {
            self.end_election_wait(now);
        }
        if !self.probes_wanted() {
            return;
        }
        if self.cluster.election.is_some() {
            self.reconnect_for_election(now);
        }
        let spacing = self.urgent_spacing();
        let urgent = (self.cluster.urgent_probe || self.cluster.election.is_some())
            && self.cluster.last_round.is_none_or(|t| now >= t + spacing);
        if matches!(self.cluster.next_probe, Some(at) if at > now) && !urgent {
            return;
        }
        self.cluster.urgent_probe = false;
        self.cluster.last_round = Some(now);
        self.cluster.next_probe = Some(now + interval);
        let timeout = self.config.probe_timeout;
        let mut ready: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, k)| k.state == ConnState::Ready && !k.probing)
            .map(|(id, _)| *id)
            .collect();
        ready.sort();
        for conn in ready {
            let Some(k) = self.conns.get_mut(&conn) else {
                continue;
            };
            if !k.owes() {
                k.last_heard = k.last_heard.max(now);
            }
            k.probing = true;
            k.timers.probe = Some(now + timeout);
            let endpoint = k.endpoint;
            self.rearm(now, conn);
            self.actions.push_back(Action::Probe { endpoint, conn });
        }
    }

    /// A probe of `ep` answered `st`; `before` is the leader it reported
    /// last time. A member that lost or changed its leader, or an election
    /// (a higher term) anywhere, leaves mutations proposed through the old
    /// leader stuck until etcd's own request timeout: end them now with
    /// "outcome unknown" instead of holding the caller until its deadline.
    fn on_leader_view(
        &mut self,
        now: Instant,
        ep: EndpointId,
        before: Option<u64>,
        viewed_before: Option<Instant>,
        st: MemberStatus,
    ) {
        match before {
            Some(prev) if prev != 0 && st.leader == 0 => {
                self.fail_stuck_mutations(now, Some(ep), None, "the member lost its leader");
                if self.cluster.leader.is_some_and(|(l, _)| l == st.member_id) {
                    // The leader itself stepped down: an election follows.
                    self.await_election(now);
                }
            }
            // Only a change at a term newer than the one known when a
            // mutation went out can have lost it, and an old view of this
            // member from before a reconnect says nothing about mutations
            // sent on a connection opened since: the change may well have
            // come before them.
            Some(prev) if prev != 0 && prev != st.leader => {
                let fresh_conns = self.conns_opened_since(ep, viewed_before);
                self.fail_stuck_mutations_but(
                    now,
                    Some(ep),
                    Some(st.raft_term),
                    &fresh_conns,
                    "the member's leader changed",
                );
            }
            _ => {}
        }
        if st.leader == 0 {
            // A member without a leader cannot finish a linearizable read:
            // its copy waits, doing no work, until a leader is back. Reads
            // in flight there go elsewhere now.
            self.resend_reads(now, ep, "the member has no leader");
        }
        if st.leader != 0 {
            match self.cluster.leader {
                // Any election (a higher term), even one the same member
                // won again after a restart, may have lost the proposals
                // forwarded to the previous term's leader.
                Some((_, term)) if st.raft_term > term => {
                    self.cluster.leader = Some((st.leader, st.raft_term));
                    // Mutations on a connection to the reporting member
                    // opened since it was last seen at an older term (it
                    // restarted: the connection only came up once it was
                    // serving again, in its new term) were sent in the new
                    // term: they are not stuck behind the old leader.
                    let fresh_conns = self.conns_opened_since(ep, viewed_before);
                    self.fail_stuck_mutations_but(
                        now,
                        None,
                        Some(st.raft_term),
                        &fresh_conns,
                        "a new leader was elected",
                    );
                }
                Some((_, term)) if st.raft_term < term => {}
                _ => self.cluster.leader = Some((st.leader, st.raft_term)),
            }
            if self
                .cluster
                .leader
                .is_some_and(|(_, term)| st.raft_term >= term)
            {
                self.cluster.term_seen_at = Some(now);
            }
        }
    }

    /// The leader was seen to go: hold mutations until the next one is
    /// known (see [`ElectionWait`]).
    pub(super) fn await_election(&mut self, now: Instant) {
        let Some((deposed, term)) = self.cluster.leader else {
            return;
        };
        if self.cluster.election.is_some_and(|w| w.deposed == deposed) {
            return;
        }
        self.cluster.election = Some(ElectionWait {
            deposed,
            term,
            until: now + self.config.election_wait,
        });
        self.cluster.urgent_probe = true;
    }

    /// Member `ep` answered a call "no leader". When it is the member the
    /// probes named leader, it stepped down (cut off from its peers, or
    /// deposed by a member that rejoined at a higher term): an election
    /// follows, and mutations wait for it as when a probe finds the leader
    /// so. (The probe that comes next sees no change any more: the answer
    /// already recorded the member as leaderless.)
    pub(super) fn refused_for_no_leader(&mut self, now: Instant, ep: EndpointId) {
        if self.is_leader_endpoint(ep) {
            self.await_election(now);
        }
    }

    /// Ask every other connected member whether it reaches a leader
    /// ([`Action::CheckLeader`]), once per connection at a time.
    pub(super) fn check_leader_elsewhere(&mut self) {
        let Some(w) = self.cluster.election else {
            return;
        };
        let mut ready: Vec<(ConnId, EndpointId)> = self
            .conns
            .iter()
            .filter(|(id, k)| k.state == ConnState::Ready && !self.cluster.checking.contains(id))
            .filter(|(_, k)| self.slots[k.endpoint.0].health.member_id() != Some(w.deposed))
            .map(|(id, k)| (*id, k.endpoint))
            .collect();
        ready.sort();
        for (conn, endpoint) in ready {
            self.cluster.checking.push(conn);
            self.actions
                .push_back(Action::CheckLeader { endpoint, conn });
        }
    }

    /// A leader check ([`Action::CheckLeader`]) ended: `Ok` when the member
    /// answered the read, else the status it failed with. An answer, or a
    /// refusal etcd makes only after the read index (permission denied, an
    /// invalid token), proves the member reaches a live leader: mutations
    /// waiting for an election go out.
    pub fn handle_leader_check(&mut self, now: Instant, conn: ConnId, result: Result<(), Status>) {
        self.observe(now);
        let Some(i) = self.cluster.checking.iter().position(|c| *c == conn) else {
            return;
        };
        self.cluster.checking.swap_remove(i);
        let reached = match &result {
            Ok(()) => true,
            Err(s) => matches!(
                s.code,
                Code::PermissionDenied | Code::Unauthenticated | Code::InvalidArgument
            ),
        };
        if reached && self.cluster.election.is_some() {
            // A leader is alive, at a term the client does not know (an
            // election may have come and gone): mutations sent from now on
            // go out under the cluster's current term, so the news of that
            // term, which the next probe round brings, must not end them as
            // 'outcome unknown' (sim seed 2000059). The term is unknown
            // until a probe names it.
            self.cluster.term_seen_at = None;
            self.cluster.urgent_probe = true;
            self.end_election_wait(now);
        }
    }

    /// Until when a mutation dispatched at `now` is held for an election,
    /// if one is awaited.
    /// Only while some connection is up: with none, no probe can tell of
    /// the election, so the call opens one, and is held there once it is up
    /// (`handle_connected`, which also sends the member a leader check).
    pub(super) fn election_hold(&self, now: Instant) -> Option<Instant> {
        let until = self.cluster.election.map(|w| w.until)?;
        let ready = self.conns.values().any(|c| c.state == ConnState::Ready);
        (now < until && ready).then_some(until)
    }

    /// The leader was seen to go: a mutation sent to a follower now would
    /// be forwarded to it and lost; it waits for the next leader (see
    /// [`ElectionWait`]). Whether call `id` (a mutation not bound to a
    /// member) is held so.
    pub(super) fn hold_for_election(&mut self, now: Instant, id: CallId) -> bool {
        let Some(c) = self.calls.get(&id) else {
            return false;
        };
        if c.bound.is_some() || !may_get_stuck(c.method) {
            return false;
        }
        let Some(until) = self.election_hold(now) else {
            return false;
        };
        if let Some(c) = self.calls.get_mut(&id) {
            c.state = CallState::Queued { at: until };
            let old = c.retry_at.replace(until);
            self.timers.stop(old, CallTimer::Retry(id));
            self.timers.set(until, CallTimer::Retry(id));
        }
        if !self.cluster.held.contains(&id) {
            self.cluster.held.push(id);
        }
        true
    }

    /// The election is over (or the wait is): the held mutations go out.
    fn end_election_wait(&mut self, now: Instant) {
        self.cluster.election = None;
        self.cluster.checking.clear();
        for id in std::mem::take(&mut self.cluster.held) {
            if matches!(
                self.calls.get(&id).map(|c| c.state),
                Some(CallState::Queued { .. })
            ) {
                self.queue_now(now, id);
            }
        }
    }

    /// While an election is awaited, members without a connection are
    /// reconnected at their connection spacing once their down backoff ran
    /// out, so the old leader can say
    /// it still leads and the new one can be probed.
    fn reconnect_for_election(&mut self, now: Instant) {
        let recheck = self.config.rejection_recheck;
        for i in self.slots.ids() {
            let s = &self.slots[i];
            // A member still in its down backoff (tier 4) waits it out.
            if s.removed
                || s.conn.is_some()
                || s.is_rejected(now, recheck)
                || s.health.tier(now) > 3
            {
                continue;
            }
            if self.may_connect(now, EndpointId(i)) {
                self.open_conn(now, EndpointId(i));
            }
        }
    }

    /// The connections to `ep` opened after `viewed` (all of them when the
    /// member was never viewed).
    fn conns_opened_since(&self, ep: EndpointId, viewed: Option<Instant>) -> Vec<ConnId> {
        self.conns
            .iter()
            .filter(|(_, k)| k.endpoint == ep && viewed.is_none_or(|v| k.opened_at > v))
            .map(|(id, _)| *id)
            .collect()
    }

    /// Re-send the repeatable unary calls in flight on `ep` elsewhere.
    fn resend_reads(&mut self, now: Instant, ep: EndpointId, why: &str) {
        let reads: Vec<CallId> = self
            .calls_where(|s| matches!(s, CallState::InFlight { endpoint, .. } if endpoint == ep));
        for id in reads {
            let Some(c) = self.calls.get(&id) else {
                continue;
            };
            if c.method.is_repeatable() && !c.method.is_streaming() && c.bound.is_none() {
                let cause = format!("{}: {why}", self.slots[ep.0].endpoint);
                self.attempt_lost(now, id, cause);
            }
        }
    }

    /// End mutations in flight (on `only`, or anywhere) that were sent
    /// before `now` (and, with `term`, while the client knew only older
    /// terms) with "outcome unknown".
    pub(super) fn fail_stuck_mutations(
        &mut self,
        now: Instant,
        only: Option<EndpointId>,
        term: Option<u64>,
        why: &str,
    ) {
        self.fail_stuck_mutations_but(now, only, term, &[], why);
    }

    /// [`Core::fail_stuck_mutations`], sparing those on the connections
    /// `spared`.
    fn fail_stuck_mutations_but(
        &mut self,
        now: Instant,
        only: Option<EndpointId>,
        term: Option<u64>,
        spared: &[ConnId],
        why: &str,
    ) {
        let mut stuck: Vec<(CallId, EndpointId)> = self
            .calls
            .iter()
            .filter_map(|(id, c)| match c.state {
                CallState::InFlight {
                    endpoint,
                    sent_at,
                    conn,
                } if may_get_stuck(c.method)
                    && sent_at < now
                    && term.is_none_or(|t| c.sent_term < t)
                    && !spared.contains(&conn)
                    && only.is_none_or(|o| o == endpoint) =>
                {
                    Some((*id, endpoint))
                }
                _ => None,
            })
            .collect();
        stuck.sort();
        for (id, ep) in stuck {
            self.outcome_unknown(id, ep, format!("{why} while the request was in flight"));
        }
    }

    /// The raft term a mutation sent at `now` goes out under, as far as the
    /// client knows it: the known term when a probe confirmed it lately
    /// (within two probe intervals), else `u64::MAX`: an election the client
    /// learns of next may have happened before the send, so it does not
    /// prove the mutation lost (the call keeps its real outcome, or its
    /// deadline; sim seed 1287: the first put after an idle spell that
    /// spanned a restore was failed as 'outcome unknown' by the news of the
    /// term the restored cluster had been in all along).
    pub(super) fn send_term(&self, now: Instant) -> u64 {
        let fresh = self.config.probe_interval.unwrap_or(TERM_FRESH_DEFAULT) * 2;
        match (self.cluster.leader, self.cluster.term_seen_at) {
            (Some((_, term)), Some(at)) if now.saturating_duration_since(at) <= fresh => term,
            _ => u64::MAX,
        }
    }

    /// The endpoint of the member the probes last reported as leader.
    pub(super) fn leader_endpoint(&self) -> Option<EndpointId> {
        let (leader, _) = self.cluster.leader?;
        self.slots
            .enumerate()
            .find(|(_, s)| !s.removed && s.health.member_id() == Some(leader))
            .map(|(i, _)| EndpointId(i))
    }

    pub(super) fn is_leader_endpoint(&self, ep: EndpointId) -> bool {
        self.slots[ep.0]
            .health
            .member_id()
            .is_some_and(|m| self.cluster.leader.is_some_and(|(l, _)| l == m))
    }

    /// Members whose raft term is behind the highest term seen, and who
    /// follow a different leader than the member at that term, are stale
    /// (cut off from the majority).
    fn recompute_staleness(&mut self) {
        // Only members that follow a leader set the reference term. A member
        // cut off from its peers without pre-vote keeps campaigning, so its
        // term grows while it has no leader; taking it as the reference made
        // every healthy member look stale.
        let best = self
            .slots
            .iter()
            .filter(|s| !s.removed && s.health.leader().is_some_and(|l| l != 0))
            .max_by_key(|s| s.health.raft_term())
            .map(|s| (s.health.raft_term(), s.health.leader()));
        let Some((term, leader)) = best else {
            return;
        };
        for s in self.slots.iter_mut().filter(|s| !s.removed) {
            let stale = s.health.raft_term() > 0
                && s.health.raft_term() < term
                && s.health.leader() != leader;
            s.health.set_stale(stale);
        }
    }
}
