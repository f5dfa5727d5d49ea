//! Identifiers, inputs and outputs of the composed state machine.

use std::time::Duration;

use crate::endpoints::endpoint::Endpoint;
use crate::endpoints::health::{HealthReason, HealthState};
use crate::wire::error::EtcdErrorKind;
use crate::wire::status::Status;

/// Identifies one user call (unary or stream) for its whole life, across
/// retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub u64);

/// Identifies one connection the adapter opened on the core's request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// An endpoint's id in the core's endpoint table: handed out in sequence,
/// never reused. Once a removed endpoint has nothing left on it (no
/// connection, no call), its entry is dropped and its id becomes unknown
/// ([`crate::machine::Core::endpoint`] gives `None`; a call bound to it ends
/// with [`CallError::NotAnEndpoint`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointId(pub usize);

/// What the caller (the IO adapter) must do next; drained with
/// [`crate::machine::Core::poll_action`].
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Open a connection to `target` (TCP, TLS if `https`, HTTP/2 handshake,
    /// then one PING answered) and report [`crate::machine::Core::handle_connected`]
    /// or [`crate::machine::Core::handle_connect_failed`].
    Connect {
        /// The new connection's id.
        conn: ConnId,
        /// Which endpoint.
        endpoint: EndpointId,
        /// Where to connect.
        target: Endpoint,
    },
    /// Close the connection; everything still on it is abandoned.
    Close {
        /// Which connection.
        conn: ConnId,
    },
    /// Send attempt `attempt` of `call` on `conn`. A previous attempt of the
    /// same call, if the adapter still holds one, must be dropped (reset).
    /// Report how it ended with [`crate::machine::Core::handle_outcome`].
    Send {
        /// Which call.
        call: CallId,
        /// Attempt number, starting at 1.
        attempt: u32,
        /// Connection to send it on.
        conn: ConnId,
    },
    /// Send an HTTP/2 PING on the connection and report the answer with
    /// [`crate::machine::Core::handle_pong`]. The core times it. An adapter
    /// may keep at most one PING unanswered per connection and drop one
    /// asked for meanwhile (h2 allows one user PING at a time): the PONG
    /// of the one out answers both.
    Ping {
        /// Which connection.
        conn: ConnId,
    },
    /// Send `Maintenance/Status` on the connection and report the answer
    /// with [`crate::machine::Core::handle_probe_result`].
    Probe {
        /// The endpoint probed.
        endpoint: EndpointId,
        /// Connection to use.
        conn: ConnId,
    },
    /// Ask the member whether it reaches a leader: send it a linearizable
    /// `KV/Range` of the single key `"\0"`, count only (`limit` 1), with
    /// the probe timeout, and report how it ended with
    /// [`crate::machine::Core::handle_leader_check`]. A member answers a
    /// linearizable read only once the leader confirmed its read index,
    /// so any answer (even a permission refusal, checked after that)
    /// proves the leader alive and reachable from it. Sent when the
    /// client lost its own connection to the leader, to tell a leader that
    /// is gone (mutations wait for the election) from a link that broke
    /// alone (they go through the followers at once).
    CheckLeader {
        /// The endpoint asked.
        endpoint: EndpointId,
        /// Connection to use.
        conn: ConnId,
    },
    /// Obtain a fresh auth token (`Auth/Authenticate`) and report it with
    /// [`crate::machine::Core::handle_auth_result`].
    Authenticate,
    /// The call is over: deliver the result to the user. On `Ok`, the
    /// response the adapter received for the last attempt is the answer
    /// (marked stale when an [`Event::StaleRead`] for the call came with
    /// it: see `machine/fence.rs`).
    Complete {
        /// Which call.
        call: CallId,
        /// Success, or why the call failed.
        result: Result<(), CallError>,
    },
}

/// How one attempt ended, as the adapter observed it.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// `grpc-status: 0`; with what the response header said, if decoded.
    Success(Option<ResponseMeta>),
    /// The server answered with a non-OK gRPC status.
    Status(Status),
    /// The request never reached the wire (the connection was gone before
    /// the HEADERS frame was written). Safe to retry, even a mutation.
    NotSent(String),
    /// The server provably did not process it: HTTP/2 `REFUSED_STREAM`, or
    /// the stream was above a GOAWAY's last-stream-id. Safe to retry.
    Refused(String),
    /// The request was sent and the stream or connection broke before an
    /// answer: the server may have processed it.
    Lost(String),
}

/// What an etcd `ResponseHeader` says about the member that answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ResponseMeta {
    /// `member_id` of the answering member.
    pub member_id: u64,
    /// `raft_term`.
    pub raft_term: u64,
    /// `revision`.
    pub revision: i64,
}

/// What the revision fence does with a call's answers (see
/// `machine/fence.rs`). Given to [`crate::machine::Core::start_call_with`];
/// the other ways to start a call leave it [`ReadKind::Unspecified`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadKind {
    /// Decided by the method: a `Range` is fenced as
    /// [`ReadKind::Serializable`] (the core cannot see the request), a `Put`
    /// or `DeleteRange` answer is quorum-confirmed
    /// ([`ReadKind::Linearizable`]); other answers only raise the fence.
    #[default]
    Unspecified,
    /// A quorum-confirmed answer (a linearizable `Range`): never stale. One
    /// below the revision seen means the cluster's history went back: the
    /// fence is reset ([`Event::FenceReset`]) and the answer handed over.
    Linearizable,
    /// A serializable `Range`, served from the answering member's state: an
    /// answer below the revision seen is retried, at most
    /// [`crate::machine::Config::stale_read_retries`] times, then handed
    /// over marked ([`Event::StaleRead`]).
    Serializable,
    /// A serializable `Range` whose caller takes any revision (opted out of
    /// the fence): the first answer is handed over, marked with
    /// [`Event::StaleRead`] when it is below the revision seen.
    SerializableUnfenced,
}

/// What a `Maintenance/Status` probe returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemberStatus {
    /// The member's id.
    pub member_id: u64,
    /// Leader id as this member sees it; 0 means no leader.
    pub leader: u64,
    /// Raft term.
    pub raft_term: u64,
    /// Current revision.
    pub revision: i64,
}

/// The error behind a [`CallError`]'s text, as the adapter saw it (an
/// `std::io::Error`, an `h2::Error`, a TLS library's error) or the server's
/// [`Status`]: the call error's `source()`.
///
/// The core is sans-IO and never sees a transport error, only the text the
/// adapter reports, so it leaves this slot empty for transport failures;
/// the adapter fills it before handing the error out (the client attaches
/// the error whose text the call error names). It dereferences to the
/// error itself, and on purpose does not implement `Error`: the call
/// error's `source()` is the cause itself, so `downcast_ref` on it finds
/// the `std::io::Error` directly.
///
/// ```
/// use etcdv3_core::machine::{CallError, Cause};
/// let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
/// let e = CallError::DeadlineExceeded {
///     method: "/etcdserverpb.KV/Range",
///     attempts: 0,
///     last_error: format!("connect to http://127.0.0.1:1 failed: {refused}"),
///     may_have_applied: false,
///     source: Some(Cause::new(refused)),
/// };
/// let io = std::error::Error::source(&e).and_then(|s| s.downcast_ref::<std::io::Error>());
/// assert_eq!(io.map(|e| e.kind()), Some(std::io::ErrorKind::ConnectionRefused));
/// ```
#[derive(Clone)]
pub struct Cause(std::sync::Arc<dyn std::error::Error + Send + Sync + 'static>);

impl Cause {
    /// Wraps `error`.
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> Cause {
        Cause(std::sync::Arc::new(error))
    }

    /// The error.
    pub fn get(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }
}

impl std::ops::Deref for Cause {
    type Target = dyn std::error::Error + Send + Sync + 'static;

    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

impl std::fmt::Debug for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Two causes are equal when they are the same error (clones of one
/// `Cause`) or say the same thing (errors have no equality of their own:
/// two refusals with one status, built apart, compare equal).
impl PartialEq for Cause {
    fn eq(&self, other: &Cause) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0) || self.0.to_string() == other.0.to_string()
    }
}

/// Why a call failed. Every variant names the method; the ones tied to a
/// server name the endpoint. The variants whose text names a failure carry
/// its error as their `source()` when the adapter filled the slot
/// ([`Cause`]).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    /// The server answered with an error that is final for this call.
    #[error("{method} on {endpoint}: {status}")]
    Status {
        /// The gRPC method path.
        method: &'static str,
        /// The endpoint that answered.
        endpoint: String,
        /// The status the server sent (also the error's `source()`).
        #[source]
        status: Status,
        /// Its etcd classification.
        kind: EtcdErrorKind,
    },
    /// A mutation was sent and its fate is unknown: it may or may not have
    /// been applied. It was not retried, so it was applied at most once.
    #[error("{method} on {endpoint}: outcome unknown, the request may have been applied: {cause}")]
    OutcomeUnknown {
        /// The gRPC method path.
        method: &'static str,
        /// The endpoint it was sent to.
        endpoint: String,
        /// What broke.
        cause: String,
        /// The error `cause` names (an `std::io::Error`, an `h2::Error`),
        /// when the adapter attached it: the error's `source()`.
        #[source]
        source: Option<Cause>,
    },
    /// The deadline passed before the call succeeded.
    #[error("{method}: deadline exceeded after {attempts} attempt(s); last error: {last_error}")]
    DeadlineExceeded {
        /// The gRPC method path.
        method: &'static str,
        /// Attempts made.
        attempts: u32,
        /// The last failure seen, or "none".
        last_error: String,
        /// Whether a mutation attempt was in flight when time ran out, so it
        /// may have been applied.
        may_have_applied: bool,
        /// The error `last_error` names (e.g. the `std::io::Error` of a
        /// refused connect), when the adapter attached it: the error's
        /// `source()`.
        #[source]
        source: Option<Cause>,
    },
    /// The client has no endpoint to send to.
    #[error("{method}: no endpoints configured")]
    NoEndpoints {
        /// The gRPC method path.
        method: &'static str,
    },
    /// Refreshing the auth token failed.
    #[error("{method}: authentication failed: {cause}")]
    Auth {
        /// The gRPC method path.
        method: &'static str,
        /// Why.
        cause: String,
        /// The server's refusal, when it refused the credentials (a wrong
        /// password, an unknown user: [`EtcdErrorKind::AuthFailed`]); `None`
        /// when no answer came ([`crate::machine::Core::handle_auth_result`]).
        refusal: Option<(Status, EtcdErrorKind)>,
        /// The error's `source()`: the refusal's status, or the error
        /// `cause` names when no answer came and the adapter attached it.
        #[source]
        source: Option<Cause>,
    },
    /// Every endpoint the call may use rejected the client for a reason
    /// retrying will not fix (the adapter said so with
    /// [`crate::machine::Core::handle_connect_rejected`], e.g. a TLS
    /// certificate that is not trusted or not valid for the name). Nothing
    /// was sent.
    #[error("{method}: {endpoint} rejected the connection (retrying will not help until the configuration changes): {cause}")]
    Rejected {
        /// The gRPC method path.
        method: &'static str,
        /// The endpoint that rejected the client last.
        endpoint: String,
        /// Why, as the adapter reported it.
        cause: String,
    },
    /// The call needed a retry and the client's retry budget was spent
    /// (`Config::retry_budget`): the cluster is failing or overloaded, and
    /// re-sending would add load. It ended with the failure of its last
    /// attempt, which did not apply it (a mutation whose outcome is unknown
    /// is never retried, so never ends this way).
    #[error("{method} on {endpoint}: not retried, the client's retry budget is spent: {cause}")]
    RetryBudgetSpent {
        /// The gRPC method path.
        method: &'static str,
        /// The endpoint of the last attempt.
        endpoint: String,
        /// How the last attempt failed.
        cause: String,
        /// The server's status, when the last attempt failed with one.
        status: Option<Status>,
        /// The error's `source()`: the status, or the error `cause` names
        /// (an `std::io::Error`, an `h2::Error`) when the adapter attached
        /// it.
        #[source]
        source: Option<Cause>,
    },
    /// The call must run on one endpoint
    /// ([`crate::machine::Core::start_call_on`]) that is not one of the
    /// client's endpoints: it was never added, or it was removed (e.g. by
    /// a member-list sync). Nothing was sent.
    #[error("{method}: {endpoint} is not one of the client's endpoints (unknown or removed)")]
    NotAnEndpoint {
        /// The gRPC method path.
        method: &'static str,
        /// The endpoint's address when the core still knows it, else its
        /// id (`endpoint #N`).
        endpoint: String,
    },
    /// An established stream ended.
    #[error("{method} stream on {endpoint} ended: {cause}")]
    StreamEnded {
        /// The gRPC method path.
        method: &'static str,
        /// The endpoint the stream was on.
        endpoint: String,
        /// How it ended.
        cause: String,
    },
}

impl CallError {
    /// Whether the request may have been applied (only ever true for
    /// mutations).
    pub fn may_have_applied(&self) -> bool {
        match self {
            CallError::OutcomeUnknown { .. } => true,
            CallError::DeadlineExceeded {
                may_have_applied, ..
            } => *may_have_applied,
            _ => false,
        }
    }
}

/// Something an operator may want to know; drained with
/// [`crate::machine::Core::poll_event`] and typically turned into `tracing`
/// events by the adapter.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// An endpoint's health changed.
    HealthChanged {
        /// Which endpoint.
        endpoint: EndpointId,
        /// New state.
        state: HealthState,
        /// Why.
        reason: HealthReason,
    },
    /// A call is retried.
    Retry {
        /// Which call.
        call: CallId,
        /// The gRPC method path.
        method: &'static str,
        /// Endpoint of the failed attempt, if it reached one.
        from: Option<EndpointId>,
        /// Why.
        reason: String,
        /// Wait before the next attempt.
        delay: Duration,
    },
    /// A call needed a retry and the retry budget was spent: it ended with
    /// [`CallError::RetryBudgetSpent`] instead (a sign of overload or of a
    /// failing cluster).
    RetryBudgetSpent {
        /// Which call.
        call: CallId,
        /// The gRPC method path.
        method: &'static str,
    },
    /// A quorum-confirmed answer (a linearizable read, a put, a delete) came
    /// back below the revision the client had already seen: the cluster's
    /// history went back (restored from an older snapshot, or the revision
    /// seen came from a bogus response header). The revision fence was reset
    /// to `answered` and the answer handed over. Worth a warning.
    FenceReset {
        /// The call whose answer showed it.
        call: CallId,
        /// The endpoint that answered.
        endpoint: EndpointId,
        /// The answer's revision: the fence's new value.
        answered: i64,
        /// The fence's value before the reset.
        seen: i64,
    },
    /// A read was handed over with an answer below the revision the client
    /// had seen when it started: a serializable read after its bounded
    /// retries (or when its deadline or the retry budget left no retry), a
    /// read bound to one member, or one opted out of the fence. Emitted in
    /// the same input as the call's `Complete { Ok }`, before it: the
    /// adapter marks that call's answer as stale.
    StaleRead {
        /// Which call.
        call: CallId,
        /// The endpoint that answered.
        endpoint: EndpointId,
        /// The answer's revision.
        answered: i64,
        /// The revision the client had seen when the call started.
        seen: i64,
    },
    /// A mutation's outcome is unknown and was reported to the caller.
    OutcomeUnknown {
        /// Which call.
        call: CallId,
        /// The gRPC method path.
        method: &'static str,
        /// Where it was sent.
        endpoint: EndpointId,
    },
}

/// Per-endpoint state for observability
/// ([`crate::machine::Core::endpoint_states`]).
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointState {
    /// Which endpoint.
    pub id: EndpointId,
    /// Its address.
    pub endpoint: Endpoint,
    /// Health.
    pub health: HealthState,
    /// Selection tier (0 best).
    pub tier: u8,
    /// Calls in flight.
    pub in_flight: u32,
    /// Smoothed latency.
    pub latency: Option<Duration>,
    /// Leader as last reported (0: none).
    pub leader: Option<u64>,
    /// Raft term as last reported.
    pub raft_term: u64,
    /// Whether a connection is open or opening.
    pub connected: bool,
}

/// A hasher for the core's sequential ids ([`CallId`], [`ConnId`]): one
/// multiply (Fibonacci hashing) instead of SipHash. The ids are minted by the
/// core, never taken from the network, so flooding resistance buys nothing;
/// and unlike `RandomState` it makes iteration order, and so every run,
/// reproducible.
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// A `HashMap` keyed by core ids, hashed with [`IdHasher`].
pub type IdMap<K, V> = std::collections::HashMap<K, V, std::hash::BuildHasherDefault<IdHasher>>;
