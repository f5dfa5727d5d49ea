//! The client's error type.

use etcdv3_core::codec::FrameError;
use etcdv3_core::endpoint::EndpointError;
use etcdv3_core::error::EtcdErrorKind;
use etcdv3_core::machine::CallError;
use etcdv3_core::status::{Code, Status};

/// Everything that can go wrong in a client call. Every variant says what
/// failed; server errors name the endpoint and the method.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The call failed; see [`CallError`] for the cases (server error,
    /// outcome unknown, deadline, no endpoints, auth).
    #[error(transparent)]
    Call(CallError),
    /// TLS failed in a way retrying will not fix (the server's certificate
    /// is not trusted, expired or not valid for the name; the server refused
    /// the client's certificate), on every endpoint the call could use.
    /// Nothing was sent. Endpoints that fail this way are left out for
    /// [`crate::CoreConfig::rejection_recheck`] while others are used.
    #[error("{method}: TLS with {endpoint} failed: {cause}")]
    Tls {
        /// The gRPC method path.
        method: &'static str,
        /// The endpoint that failed last.
        endpoint: String,
        /// What TLS reported (e.g. `invalid peer certificate: UnknownIssuer`).
        cause: String,
    },
    /// An endpoint could not be parsed.
    #[error(transparent)]
    InvalidEndpoint(#[from] EndpointError),
    /// The request is invalid and was not sent (e.g. an empty key).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A message could not be framed or decoded.
    #[error("{method}: {source}")]
    Frame {
        /// The gRPC method path.
        method: &'static str,
        /// What was wrong.
        #[source]
        source: FrameError,
    },
    /// The configuration is unusable (e.g. an `https` endpoint without TLS
    /// settings, an unreadable CA file).
    #[error("configuration: {0}")]
    Config(String),
    /// The client was shut down before the call was sent (or the call
    /// cannot have changed anything).
    #[error("the client is closed")]
    Closed,
    /// The client was shut down while a mutation was in flight: it may have
    /// been applied ([`Error::may_have_applied`] is `true`).
    #[error("the client was closed while {method} was in flight; it may have been applied")]
    ClosedInFlight {
        /// The gRPC method path.
        method: &'static str,
    },
    /// A watch was cancelled by the server (e.g. because its start revision
    /// was compacted; see the watch events for the compacted revision).
    #[error("watch cancelled: {reason}")]
    WatchCancelled {
        /// The reason the server gave.
        reason: String,
    },
    /// A call named a member ([`CallOptions::target`](crate::CallOptions::target))
    /// that is none of the client's endpoints (or, by id, that none of them
    /// answered as). Nothing was sent.
    #[error("unknown target: {target} is not one of the client's endpoints")]
    UnknownTarget {
        /// The target the call named.
        target: crate::client::Target,
    },
    /// The cluster is older than the client accepts
    /// ([`ClientOptions::reject_old_cluster`](crate::ClientOptions::reject_old_cluster)).
    #[error("old cluster: etcd {version} answered, {minimum} or later is required")]
    OldCluster {
        /// The newest version an endpoint reported (empty if none answered
        /// with one).
        version: String,
        /// The oldest version accepted.
        minimum: String,
    },
    /// A lease expired or was revoked while it was being kept alive.
    #[error("lease {id} expired")]
    LeaseExpired {
        /// The lease id.
        id: i64,
    },
}

impl Error {
    /// The gRPC status the server answered with, if this is a server error.
    pub fn status(&self) -> Option<&Status> {
        match self {
            Error::Call(CallError::Status { status, .. }) => Some(status),
            Error::Call(CallError::RetryBudgetSpent {
                status: Some(status),
                ..
            }) => Some(status),
            _ => None,
        }
    }

    /// The gRPC code of a server error.
    pub fn code(&self) -> Option<Code> {
        self.status().map(|s| s.code)
    }

    /// The etcd classification of a server error.
    pub fn etcd_kind(&self) -> Option<&EtcdErrorKind> {
        match self {
            Error::Call(CallError::Status { kind, .. }) => Some(kind),
            _ => None,
        }
    }

    /// Whether a mutation may have been applied although the call failed.
    /// `false` means it certainly was not.
    pub fn may_have_applied(&self) -> bool {
        match self {
            Error::Call(e) => e.may_have_applied(),
            Error::ClosedInFlight { .. } => true,
            _ => false,
        }
    }

    /// Whether the client was closed ([`Error::Closed`] or
    /// [`Error::ClosedInFlight`]).
    pub fn is_closed(&self) -> bool {
        matches!(self, Error::Closed | Error::ClosedInFlight { .. })
    }

    /// Whether the call ran out of time.
    pub fn is_deadline_exceeded(&self) -> bool {
        matches!(self, Error::Call(CallError::DeadlineExceeded { .. }))
    }

    /// Whether the call named a target the client does not know.
    pub fn is_unknown_target(&self) -> bool {
        matches!(self, Error::UnknownTarget { .. })
    }

    /// Whether the outcome of a mutation is unknown.
    pub fn is_outcome_unknown(&self) -> bool {
        matches!(self, Error::Call(CallError::OutcomeUnknown { .. }))
    }
}

impl From<CallError> for Error {
    fn from(e: CallError) -> Self {
        match e {
            // The client reports rejections for TLS failures only.
            CallError::Rejected {
                method,
                endpoint,
                cause,
            } => Error::Tls {
                method,
                endpoint,
                cause,
            },
            e => Error::Call(e),
        }
    }
}

/// Result with the client's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_in_flight_may_have_applied_and_closed_not() {
        let e = Error::ClosedInFlight {
            method: "/etcdserverpb.KV/Put",
        };
        assert!(e.may_have_applied());
        assert!(e.is_closed());
        assert!(e.to_string().contains("KV/Put"), "{e}");
        assert!(!Error::Closed.may_have_applied());
        assert!(Error::Closed.is_closed());
    }
}
