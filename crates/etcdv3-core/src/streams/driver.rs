//! Every decision about one long-lived stream (watch, lease keepalive),
//! sans-IO: [`StreamDriver`].
//!
//! The owner of a stream — the client's stream task, or the simulation —
//! is a *pump*: it feeds the driver what happened on the wire
//! (`handle_*(now, ..)`), carries out the [`StreamAction`]s the driver hands
//! out ([`StreamDriver::poll_action`]) and wakes it at
//! [`StreamDriver::poll_timeout`]. The per-kind part (the [`WatchHub`] or
//! the [`LeaseKeeper`]: what to send, what to deliver) stays with the pump;
//! it only tells the driver its [`Verdict`] on the open stream.
//!
//! What the driver decides:
//!
//! - **when** a stream is (re)opened: its [`StreamSupervisor`] (a failed
//!   open or a stream that ended before its first message backs off; a
//!   working stream that breaks reopens at once, once per stable period);
//! - **how a stream the owner gives up on is ended**, so the
//!   [`Core`](crate::machine::Core) learns the right thing
//!   ([`CloseReason::outcome`]): a member without a leader is demoted, a
//!   member that leaves requests unanswered is suspected;
//! - **auth retry on a stream**: a stream refused for its token is reopened
//!   once with a fresh token (the new stream waits for it); refused again
//!   before a message arrived on the new one, the refusal is final and the
//!   owner's users are failed;
//! - **TLS failure fan-out**: an open that failed because every endpoint
//!   rejected the client's TLS setup fails every user at once (reopening
//!   cannot help) instead of leaving them until their deadline;
//! - **which requests owe an answer** ([`StreamAction::Owed`]: the core then
//!   notices a member that stops answering as quickly as for a unary call).
//!
//! # The pump's turn
//!
//! After each input, drain [`poll_action`](StreamDriver::poll_action) and
//! carry every action out before the next input. One turn of the pump is:
//!
//! 1. one input: [`handle_opened`](StreamDriver::handle_opened) /
//!    [`handle_open_failed`](StreamDriver::handle_open_failed),
//!    [`handle_message`](StreamDriver::handle_message),
//!    [`handle_ended`](StreamDriver::handle_ended),
//!    [`handle_timeout`](StreamDriver::handle_timeout), or a user command
//!    (the owner's business);
//! 2. with a stream open: [`handle_verdict`](StreamDriver::handle_verdict)
//!    with the owner's verdict;
//! 3. the owner's requests go out; a failed send is
//!    [`handle_ended`](StreamDriver::handle_ended)`(Failed)`, requests sent
//!    are [`handle_sent`](StreamDriver::handle_sent);
//! 4. the end of the turn: [`handle_wanted`](StreamDriver::handle_wanted)
//!    (`false` once the owner has no work left: the stream closes and the
//!    driver says [`StreamAction::Exit`]); only here is
//!    [`StreamAction::Open`] handed out.
//!
//! ```
//! use std::time::Instant;
//! use etcdv3_core::streams::{StreamAction, StreamConfig, StreamDriver, StreamEnd, Verdict};
//!
//! let t0 = Instant::now();
//! let mut d = StreamDriver::new(StreamConfig::default(), 7);
//! d.handle_wanted(t0, true);
//! assert_eq!(d.poll_action(), Some(StreamAction::Open));
//! d.handle_opened(t0);
//! d.handle_message(t0);
//! // The member refused the stream's work for want of a leader.
//! d.handle_verdict(t0, Verdict::NoLeader);
//! assert!(matches!(d.poll_action(), Some(StreamAction::Close(_))));
//! assert_eq!(d.poll_action(), Some(StreamAction::Lost));
//! assert_eq!(d.poll_action(), None);
//! // A refusal is a failure: the next stream waits a backoff.
//! d.handle_wanted(t0, true);
//! assert_eq!(d.poll_action(), None);
//! let at = d.poll_timeout().unwrap();
//! d.handle_timeout(at);
//! d.handle_wanted(at, true);
//! assert_eq!(d.poll_action(), Some(StreamAction::Open));
//! # let _ = StreamEnd::Failed;
//! ```
//!
//! [`WatchHub`]: crate::streams::watch::WatchHub
//! [`LeaseKeeper`]: crate::streams::lease::LeaseKeeper

use std::collections::VecDeque;
use std::time::Instant;

use super::{StreamConfig, StreamSupervisor};
use crate::machine::Outcome;
use crate::streams::lease::LeaseKeeper;
use crate::streams::watch::WatchHub;
use crate::wire::status::{Code, Status};

/// What the owner of an open stream wants done with it, after its last
/// input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Keep the stream.
    Keep,
    /// The member refused the stream's work because it has no leader: the
    /// core demotes it (as after a unary "no leader") and the stream is
    /// replaced, after a backoff.
    NoLeader,
    /// A request was refused for its token: a fresh token is asked for and
    /// the stream replaced ([`StreamAction::RefreshToken`]).
    AuthRejected,
    /// Requests went unanswered too long on a member that answers pings:
    /// the core suspects the member and the stream is replaced at once.
    Unanswered,
}

impl Verdict {
    /// The verdict of a watch stream, from its hub.
    pub fn of_watch(hub: &WatchHub) -> Verdict {
        if hub.needs_new_stream() {
            Verdict::NoLeader
        } else if hub.needs_auth_refresh() {
            Verdict::AuthRejected
        } else {
            Verdict::Keep
        }
    }

    /// The verdict of a keepalive stream, from its keeper: the keeper
    /// decides when unanswered keep-alives put the leases at risk
    /// ([`LeaseKeeper::is_stuck`]). A lease past its local deadline
    /// ([`LeaseEvent::MayHaveExpired`](crate::streams::lease::LeaseEvent::MayHaveExpired))
    /// or given up is the keeper's news for its holders, not a verdict on
    /// the stream: the stream stays while it is not stuck (a late answer may
    /// still find the lease alive).
    pub fn of_keepalive(keeper: &LeaseKeeper, now: Instant) -> Verdict {
        if keeper.is_stuck(now) {
            Verdict::Unanswered
        } else {
            Verdict::Keep
        }
    }
}

/// How an open stream ended, as its pump saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// The server ended it with status OK.
    Finished,
    /// It broke, the server ended it with an error, or a send on it failed.
    Failed,
    /// The server ended it refusing its token
    /// ([`crate::wire::error::auth_refusal`]); `fresh_token`:
    /// [`Core::handle_auth_rejected`](crate::machine::Core::handle_auth_rejected)'s
    /// answer (asked while the call still existed): a new stream will carry
    /// a fresh token.
    AuthRefused {
        /// Whether a new stream will carry a fresh token.
        fresh_token: bool,
    },
}

/// How the pump ends a stream the driver closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The member has no leader: the core is told a "no leader" status, and
    /// demotes the member as after a unary "no leader".
    NoLeader,
    /// Requests went unanswered: the pump first tells
    /// [`Core::handle_stream_unanswered`](crate::machine::Core::handle_stream_unanswered),
    /// then the core is told the stream was lost.
    Unanswered,
    /// The stream is dropped (reset, the call cancelled): it was refused for
    /// its token (the new stream waits for the fresh token), or the owner
    /// has no work left.
    Drop,
}

impl CloseReason {
    /// The outcome the core is told for the stream's call (the stream is
    /// reset on the wire either way); `None`: cancel the call.
    pub fn outcome(self) -> Option<Outcome> {
        match self {
            CloseReason::NoLeader => Some(Outcome::Status(Status::new(
                Code::Unavailable,
                "etcdserver: no leader",
            ))),
            CloseReason::Unanswered => Some(Outcome::Lost(
                "requests on the stream went unanswered".into(),
            )),
            CloseReason::Drop => None,
        }
    }
}

/// Why the owner's users are failed ([`StreamAction::Fail`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailCause {
    /// The stream was refused for its token for good: the users get the
    /// error that ended it.
    Refused,
    /// Opening failed because every endpoint rejected the client (TLS): the
    /// users get the error of that open.
    Rejected,
    /// The client closed.
    Closed,
}

/// What the pump must do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamAction {
    /// Open a new stream; report [`StreamDriver::handle_opened`] or
    /// [`StreamDriver::handle_open_failed`].
    Open,
    /// End the open stream as [`CloseReason`] says; the driver counts it
    /// gone.
    Close(CloseReason),
    /// The open stream's request was refused for its token: call
    /// [`Core::handle_auth_rejected`](crate::machine::Core::handle_auth_rejected)
    /// for its call and hand the answer to
    /// [`StreamDriver::handle_auth_answer`] before anything else.
    RefreshToken,
    /// The requests just sent owe an answer: call
    /// [`Core::handle_stream_sent`](crate::machine::Core::handle_stream_sent)
    /// for the stream's call.
    Owed,
    /// Tell the owner its stream is gone (what was in flight must be sent
    /// again on the next one).
    Lost,
    /// No fresh token will come (no credentials): the owner ends the work
    /// refused for its token, for good. The stream stays.
    AuthFinal,
    /// End every user's work.
    Fail(FailCause),
    /// The driver is done: the pump stops (the owner had no work left, or
    /// the client closed).
    Exit,
}

/// Whether the pump holds a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    None,
    Opening,
    Open,
}

/// The decisions about one long-lived stream; see the [module
/// docs](self).
#[derive(Debug)]
pub struct StreamDriver {
    sup: StreamSupervisor,
    link: Link,
    /// The last stream was replaced after a token refusal; refused again
    /// before a message arrived on the new one, the refusal is final.
    auth_retried: bool,
    /// A [`StreamAction::RefreshToken`] is out, not answered yet.
    awaiting_auth: bool,
    exited: bool,
    actions: VecDeque<StreamAction>,
}

impl StreamDriver {
    /// A driver with no stream; `seed` drives the reopen backoff's jitter.
    pub fn new(config: StreamConfig, seed: u64) -> Self {
        StreamDriver {
            sup: StreamSupervisor::new(config, seed),
            link: Link::None,
            auth_retried: false,
            awaiting_auth: false,
            exited: false,
            actions: VecDeque::new(),
        }
    }

    /// The supervisor deciding when streams open (its counters).
    pub fn supervisor(&self) -> &StreamSupervisor {
        &self.sup
    }

    /// Whether a stream is open (opened, not ended nor closed since).
    pub fn is_open(&self) -> bool {
        self.link == Link::Open
    }

    /// Whether the driver said [`StreamAction::Exit`].
    pub fn is_exited(&self) -> bool {
        self.exited
    }

    /// The next thing to do.
    pub fn poll_action(&mut self) -> Option<StreamAction> {
        self.actions.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) is due (the end of a
    /// reopen backoff).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.exited {
            return None;
        }
        self.sup.poll_timeout()
    }

    /// The instant [`poll_timeout`](Self::poll_timeout) gave has come. A
    /// stream, if due, is opened at the end of the turn
    /// ([`handle_wanted`](Self::handle_wanted)).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.sup.handle_timeout(now);
    }

    /// The stream asked for by [`StreamAction::Open`] is open (for a
    /// bidirectional stream: its request headers are out).
    pub fn handle_opened(&mut self, now: Instant) {
        if self.link != Link::Opening {
            return;
        }
        self.link = Link::Open;
        self.sup.handle_opened(now);
    }

    /// Opening failed; `rejected`: every endpoint the stream may use
    /// rejected the client (TLS), so reopening cannot help and the users
    /// hear why now, not at their deadline.
    pub fn handle_open_failed(&mut self, now: Instant, rejected: bool) {
        if self.link != Link::Opening {
            return;
        }
        self.link = Link::None;
        self.sup.handle_open_failed(now);
        if rejected {
            self.actions
                .push_back(StreamAction::Fail(FailCause::Rejected));
        }
    }

    /// A message arrived on the open stream.
    pub fn handle_message(&mut self, now: Instant) {
        if self.link != Link::Open {
            return;
        }
        self.sup.handle_message(now);
        self.auth_retried = false;
    }

    /// The open stream ended (see [`StreamEnd`]); the pump holds it no more.
    pub fn handle_ended(&mut self, now: Instant, end: StreamEnd) {
        if self.link != Link::Open {
            return;
        }
        self.link = Link::None;
        self.awaiting_auth = false;
        self.actions.push_back(StreamAction::Lost);
        match end {
            StreamEnd::AuthRefused { fresh_token } if fresh_token && !self.auth_retried => {
                // Once: the new stream waits for the fresh token.
                self.auth_retried = true;
                self.sup.handle_lost(now);
            }
            StreamEnd::AuthRefused { .. } => {
                self.sup.handle_refused(now);
                self.actions
                    .push_back(StreamAction::Fail(FailCause::Refused));
            }
            StreamEnd::Failed | StreamEnd::Finished => self.sup.handle_lost(now),
        }
    }

    /// The owner's verdict on the open stream, after its last input.
    pub fn handle_verdict(&mut self, now: Instant, verdict: Verdict) {
        if self.link != Link::Open || self.awaiting_auth {
            return;
        }
        match verdict {
            Verdict::Keep => {}
            Verdict::NoLeader => {
                self.close(CloseReason::NoLeader);
                self.sup.handle_refused(now);
            }
            Verdict::Unanswered => {
                self.close(CloseReason::Unanswered);
                self.sup.handle_lost(now);
            }
            Verdict::AuthRejected => {
                self.awaiting_auth = true;
                self.actions.push_back(StreamAction::RefreshToken);
            }
        }
    }

    /// The answer to [`StreamAction::RefreshToken`]: `fresh_token` when a
    /// new stream will carry a fresh token (the stream is replaced),
    /// `false` when none will come (the refused work ends for good).
    pub fn handle_auth_answer(&mut self, now: Instant, fresh_token: bool) {
        if !std::mem::take(&mut self.awaiting_auth) || self.link != Link::Open {
            return;
        }
        if fresh_token {
            self.close(CloseReason::Drop);
            self.sup.handle_lost(now);
        } else {
            self.actions.push_back(StreamAction::AuthFinal);
        }
    }

    /// The owner sent requests on the open stream; each owes an answer.
    pub fn handle_sent(&mut self, _now: Instant) {
        if self.link == Link::Open {
            self.actions.push_back(StreamAction::Owed);
        }
    }

    /// The client closed: every user's work ends, the driver exits.
    pub fn handle_client_closed(&mut self, _now: Instant) {
        if self.exited {
            return;
        }
        self.actions
            .push_back(StreamAction::Fail(FailCause::Closed));
        self.exit();
    }

    /// The end of the pump's turn: whether the owner has work for a
    /// stream. With work, a stream is opened when none is open and the
    /// supervisor allows it ([`StreamAction::Open`]); without, the stream
    /// (if open) is closed, not as a failure, and the driver exits.
    pub fn handle_wanted(&mut self, now: Instant, wanted: bool) {
        if self.exited {
            return;
        }
        if !wanted {
            if self.link == Link::Open {
                self.sup.handle_closed(now);
                self.actions
                    .push_back(StreamAction::Close(CloseReason::Drop));
            }
            self.link = Link::None;
            self.exit();
            return;
        }
        self.sup.handle_wanted(now, true);
        if self.link == Link::None && self.sup.poll_open(now) {
            self.link = Link::Opening;
            self.actions.push_back(StreamAction::Open);
        }
    }

    fn close(&mut self, reason: CloseReason) {
        self.link = Link::None;
        self.actions.push_back(StreamAction::Close(reason));
        self.actions.push_back(StreamAction::Lost);
    }

    fn exit(&mut self) {
        self.exited = true;
        self.actions.push_back(StreamAction::Exit);
    }
}
