//! The simulated etcd cluster: members with a raft view (leader, term), a
//! shared committed key-value history, and the per-member faults the client
//! can run into.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Election timeout: how long followers take to notice a lost leader, and
/// how long an election takes.
pub const ELECTION_TIMEOUT: Duration = Duration::from_millis(1000);
/// etcd's request timeout (proposal or read-index that cannot complete).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// One member of the cluster.
#[derive(Debug, Clone)]
pub struct Member {
    /// `member_id` (index + 1).
    pub id: u64,
    /// Process running.
    pub up: bool,
    /// Process frozen (SIGSTOP): TCP open, nothing answered.
    pub hung: bool,
    /// Cut off from its peers (the client still reaches it).
    pub partitioned: bool,
    /// Leader as this member sees it (0: none).
    pub leader_view: u64,
    /// Raft term as this member sees it.
    pub term: u64,
    /// Revision of this member's applied state.
    pub rev: i64,
    /// Until when a restarted member has not rejoined yet.
    pub rejoin_at: Option<Instant>,
    /// When this member noticed it is cut off (partitioned/leader lost).
    pub lost_leader_at: Option<Instant>,
}

impl Member {
    /// Running and not frozen: it answers whatever reaches it.
    pub fn serving(&self) -> bool {
        self.up && !self.hung
    }

    /// Takes part in raft with the majority.
    pub fn available(&self) -> bool {
        self.up && !self.hung && !self.partitioned && self.rejoin_at.is_none()
    }
}

/// What a member does with a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// Success with the revision of the answer.
    Ok { rev: i64 },
    /// "etcdserver: no leader", nothing done.
    NoLeader,
    /// The request cannot complete (read index or proposal towards an
    /// unreachable leader): "request timed out" after the request timeout.
    /// Nothing applied.
    Timeout,
}

/// The cluster.
#[derive(Debug)]
pub struct Cluster {
    /// Members by index.
    pub members: Vec<Member>,
    /// Leader index, if the majority has one.
    pub leader: Option<usize>,
    /// Cluster term.
    pub term: u64,
    /// Committed revision.
    pub rev: i64,
    /// Applications per put (by call id).
    pub applied: HashMap<u64, u32>,
    /// Whether members use raft pre-vote (a cut-off member then keeps its
    /// term; without it, its term grows while it campaigns).
    pub prevote: bool,
    /// When an election is due (the leader was lost).
    pub election_at: Option<Instant>,
    /// Start of the current leaderless period, if any.
    pub leaderless_since: Option<Instant>,
    /// Finished leaderless periods.
    pub leaderless: Vec<(Instant, Instant)>,
}

impl Cluster {
    /// A healthy cluster of `n` members; member 0 leads at term 2.
    pub fn new(n: usize, prevote: bool) -> Cluster {
        let members = (0..n)
            .map(|i| Member {
                id: i as u64 + 1,
                up: true,
                hung: false,
                partitioned: false,
                leader_view: 1,
                term: 2,
                rev: 1,
                rejoin_at: None,
                lost_leader_at: None,
            })
            .collect();
        Cluster {
            members,
            leader: Some(0),
            term: 2,
            rev: 1,
            applied: HashMap::new(),
            prevote,
            election_at: None,
            leaderless_since: None,
            leaderless: Vec::new(),
        }
    }

    fn quorum(&self) -> bool {
        let avail = self.members.iter().filter(|m| m.available()).count();
        avail * 2 > self.members.len()
    }

    /// Whether member `m` can get a read index / commit a proposal now.
    pub fn can_commit_via(&self, m: usize) -> bool {
        let me = &self.members[m];
        match self.leader {
            Some(l) => {
                me.available()
                    && me.leader_view == self.members[l].id
                    && self.members[l].available()
                    && self.quorum()
            }
            None => false,
        }
    }

    /// Topology changed (crash, hang, partition, heal...): re-evaluate
    /// the leader. The leader is kept while it is available and has a
    /// quorum; otherwise an election is scheduled one election timeout
    /// later (followers keep believing in the old leader until then).
    pub fn topology_changed(&mut self, now: Instant) {
        let keep = self
            .leader
            .is_some_and(|l| self.members[l].available() && self.quorum());
        if !keep && self.leader.is_some() {
            self.leader = None;
            self.leaderless_since = Some(now);
        }
        if self.leader.is_none() && self.election_at.is_none() {
            self.election_at = Some(now + ELECTION_TIMEOUT);
        }
        // Cut-off members notice after an election timeout.
        for m in self.members.iter_mut() {
            if m.up && !m.hung && m.partitioned && m.lost_leader_at.is_none() {
                m.lost_leader_at = Some(now + ELECTION_TIMEOUT);
            }
        }
    }

    /// Next instant at which [`Cluster::tick`] has work.
    pub fn next_tick(&self) -> Option<Instant> {
        let mut next = self.election_at;
        for m in &self.members {
            for t in [m.rejoin_at, m.lost_leader_at].into_iter().flatten() {
                next = Some(next.map_or(t, |n: Instant| n.min(t)));
            }
        }
        next
    }

    /// Run raft timers due at `now`. Returns a description of what changed.
    pub fn tick(&mut self, now: Instant, pick: u64) -> Vec<String> {
        let mut log = Vec::new();
        for i in 0..self.members.len() {
            if self.members[i].rejoin_at.is_some_and(|t| t <= now) {
                self.members[i].rejoin_at = None;
                log.push(format!("m{} rejoined", i + 1));
                self.rejoin(i, now);
                self.topology_changed(now);
            }
            let m = &mut self.members[i];
            if m.lost_leader_at.is_some_and(|t| t <= now) {
                if m.partitioned && m.up && !m.hung {
                    m.leader_view = 0;
                    if !self.prevote {
                        m.term += 1;
                    }
                    m.lost_leader_at = Some(now + ELECTION_TIMEOUT);
                    log.push(format!("m{} cut off: no leader, term {}", i + 1, m.term));
                } else {
                    m.lost_leader_at = None;
                }
            }
        }
        if self.election_at.is_some_and(|t| t <= now) {
            self.election_at = None;
            let avail: Vec<usize> = (0..self.members.len())
                .filter(|&i| self.members[i].available())
                .collect();
            let max_term = self.members.iter().map(|m| m.term).max().unwrap_or(0);
            if self.quorum() && !avail.is_empty() {
                let l = avail[(pick % avail.len() as u64) as usize];
                self.term = self.term.max(max_term) + 1;
                self.leader = Some(l);
                if let Some(since) = self.leaderless_since.take() {
                    self.leaderless.push((since, now));
                }
                let lid = self.members[l].id;
                for &i in &avail {
                    let m = &mut self.members[i];
                    m.leader_view = lid;
                    m.term = self.term;
                    m.rev = self.rev;
                }
                log.push(format!("m{} elected leader, term {}", l + 1, self.term));
            } else {
                for &i in &avail {
                    let m = &mut self.members[i];
                    m.leader_view = 0;
                    if !self.prevote {
                        m.term += 1;
                    }
                }
                self.election_at = Some(now + ELECTION_TIMEOUT);
                log.push("election failed: no quorum".to_string());
            }
        }
        log
    }

    /// Member `i` is back with the majority at `now`: it follows the
    /// current leader (catching up its state), or waits for the next
    /// election.
    pub fn rejoin(&mut self, i: usize, now: Instant) {
        let m = &self.members[i];
        if !m.available() {
            return;
        }
        match self.leader {
            Some(l) if self.members[i].term <= self.term => {
                let lid = self.members[l].id;
                let (term, rev) = (self.term, self.rev);
                let m = &mut self.members[i];
                m.leader_view = lid;
                m.term = term;
                m.rev = rev;
                m.lost_leader_at = None;
            }
            Some(_) => {
                // A higher term (no pre-vote) disrupts the leader: a
                // leaderless period like any other (the liveness rule and
                // the leader-fault invariant count it).
                self.leader = None;
                self.leaderless_since = Some(now);
                for m in self.members.iter_mut().filter(|m| m.available()) {
                    m.leader_view = 0;
                }
                self.election_at = None;
            }
            None => {
                let m = &mut self.members[i];
                m.leader_view = 0;
                m.lost_leader_at = None;
            }
        }
    }

    /// A linearizable read at member `m`.
    pub fn read(&self, m: usize, stale_serve: bool) -> Answer {
        let me = &self.members[m];
        if me.leader_view == 0 {
            return Answer::NoLeader;
        }
        if self.can_commit_via(m) {
            return Answer::Ok { rev: self.rev };
        }
        if stale_serve && me.partitioned {
            // A member that still believes in its leader answers from its
            // own (stale) state, as a serializable read would.
            return Answer::Ok { rev: me.rev };
        }
        Answer::Timeout
    }

    /// A put (by call id) at member `m`.
    pub fn put(&mut self, m: usize, call: u64) -> Answer {
        if self.members[m].leader_view == 0 {
            return Answer::NoLeader;
        }
        if !self.can_commit_via(m) {
            return Answer::Timeout;
        }
        self.apply(call);
        Answer::Ok { rev: self.rev }
    }

    /// Commit a put: bump the revision everywhere in the majority.
    pub fn apply(&mut self, call: u64) {
        self.rev += 1;
        *self.applied.entry(call).or_insert(0) += 1;
        let rev = self.rev;
        for m in self.members.iter_mut().filter(|m| m.available()) {
            m.rev = rev;
        }
    }

    /// Whether the cluster is leaderless at `t` (for the liveness check).
    pub fn leaderless_during(&self, a: Instant, b: Instant) -> bool {
        self.leaderless.iter().any(|&(s, e)| s <= b && e >= a)
            || self.leaderless_since.is_some_and(|s| s <= b)
    }
}
