//! The client's error type.

use etcdv3_core::endpoints::endpoint::EndpointError;
use etcdv3_core::machine::CallError;
use etcdv3_core::wire::codec::FrameError;
use etcdv3_core::wire::error::EtcdErrorKind;
use etcdv3_core::wire::status::{Code, Status};

/// Everything that can go wrong in a client call. Every variant says what
/// failed; server errors name the endpoint and the method.
///
/// Causes chain through [`std::error::Error::source`]: a server refusal to
/// its [`Status`], a TLS failure to rustls' error (`TlsCause`), and a
/// failure whose text names a transport error (a refused connect, a
/// connection reset, a peer that does not speak HTTP/2: the
/// [`CallError`]'s `last_error` or `cause`) to that `std::io::Error` or
/// `h2::Error` (through the [`Cause`](crate::Cause) slot the client
/// fills; h2's IO errors are handed over as the `std::io::Error` itself).
///
/// ```no_run
/// use etcdv3_client::api::GetOptions;
/// # async fn demo(client: etcdv3_client::Client) {
/// if let Err(e) = client.get("k", GetOptions::new()).await {
///     let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&e);
///     while let Some(c) = cause {
///         if let Some(io) = c.downcast_ref::<std::io::Error>() {
///             println!("IO error: {:?}", io.kind());
///         }
///         cause = c.source();
///     }
/// }
/// # }
/// ```
///
/// ```no_run
/// use etcdv3_client::{Error, EtcdErrorKind};
/// use etcdv3_client::api::GetOptions;
/// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
/// match client.get("k", GetOptions::new().with_revision(1)).await {
///     Ok(resp) => println!("{} keys", resp.count),
///     Err(e) if e.etcd_kind() == Some(&EtcdErrorKind::Compacted) => println!("revision 1 is compacted"),
///     Err(Error::Closed) => println!("client closed"),
///     Err(e) => return Err(e),
/// }
/// # Ok(()) }
/// ```
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
        /// rustls' error, when the TLS handshake reported one (the error's
        /// `source()`; `None` when the refusal came later, as text only).
        #[cfg(feature = "tls")]
        #[source]
        source: Option<TlsCause>,
    },
    /// The endpoint's scheme does not match what the member speaks: an
    /// `https://` (or `unixs://`) endpoint whose member serves plaintext,
    /// or an `http://` (or `unix://`) endpoint whose member serves TLS, on
    /// every endpoint the call could use. Nothing was sent; the call fails
    /// at once instead of at its deadline, since retrying cannot help until
    /// the endpoint is written with the other scheme. Endpoints that fail
    /// this way are left out for [`crate::CoreConfig::rejection_recheck`]
    /// while others are used.
    ///
    /// ```
    /// use etcdv3_client::Error;
    /// let e = Error::SchemeMismatch {
    ///     method: "/etcdserverpb.KV/Put",
    ///     endpoint: "http://127.0.0.1:2379".into(),
    ///     cause: "the member speaks TLS: write the endpoint as https://".into(),
    /// };
    /// assert!(e.to_string().contains("speaks TLS"));
    /// assert!(!e.may_have_applied());
    /// ```
    #[error("{method}: {endpoint}: {cause}")]
    SchemeMismatch {
        /// The gRPC method path.
        method: &'static str,
        /// The endpoint that failed last, as the client writes it.
        endpoint: String,
        /// What the member speaks, and the scheme to use.
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
    /// The server refused a watch with a gRPC status (e.g. permission
    /// denied on the key range): typed like a call's refusal,
    /// [`Error::status`], [`Error::code`] and [`Error::etcd_kind`] say
    /// which. A cancellation without a status stays
    /// [`Error::WatchCancelled`] ([`Error::from_cancel_reason`] tells them
    /// apart).
    ///
    /// ```
    /// use etcdv3_client::{Code, Error, EtcdErrorKind};
    /// let e = Error::from_cancel_reason(
    ///     "rpc error: code = PermissionDenied desc = etcdserver: permission denied",
    /// );
    /// assert!(matches!(e, Error::WatchRefused { .. }));
    /// assert_eq!(e.etcd_kind(), Some(&EtcdErrorKind::PermissionDenied));
    /// assert_eq!(e.code(), Some(Code::PermissionDenied));
    /// ```
    #[error("watch refused: {status}")]
    WatchRefused {
        /// The status the server gave as the cancel reason (also the
        /// error's `source()`).
        #[source]
        status: Status,
        /// Its etcd classification.
        kind: EtcdErrorKind,
    },
    /// A call named a member ([`CallOptions::target`](crate::CallOptions::target))
    /// that is none of the client's endpoints (or, by id, that none of them
    /// answered as). Nothing was sent.
    #[error("unknown target: {target} is not one of the client's endpoints")]
    UnknownTarget {
        /// The target the call named.
        target: crate::options::Target,
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
    /// A lease expired or was revoked while it was being kept alive (lease
    /// ids print in hex, 16 digits, as etcdctl prints them, in every error
    /// and trace of this crate):
    /// **confirmed** by the server (it answered TTL 0, or the lease does
    /// not exist).
    #[error("lease {id:016x} expired")]
    LeaseExpired {
        /// The lease id.
        id: i64,
    },
    /// The keeper gave a lease up: no renewal was answered for a whole TTL
    /// past its local deadline (members unreachable). The lease has most
    /// likely expired, but the server did not confirm it.
    #[error("lease {id:016x} not renewed for a TTL past its deadline: given up")]
    LeaseNotRenewed {
        /// The lease id.
        id: i64,
    },
}

impl Error {
    /// The error for a watch the server cancelled with `reason` (a
    /// [`WatchEvent::Cancelled`](crate::api::WatchEvent::Cancelled)
    /// reason): [`Error::WatchRefused`] when the reason is a gRPC status
    /// (etcd writes `rpc error: code = PermissionDenied desc = ...`),
    /// else [`Error::WatchCancelled`].
    ///
    /// ```
    /// use etcdv3_client::Error;
    /// let e = Error::from_cancel_reason("some reason");
    /// assert!(matches!(e, Error::WatchCancelled { .. }));
    /// assert_eq!(e.code(), None);
    /// ```
    pub fn from_cancel_reason(reason: impl Into<String>) -> Error {
        let reason = reason.into();
        match parse_go_status(&reason) {
            Some(status) => {
                let kind = etcdv3_core::wire::error::classify(&status);
                Error::WatchRefused { status, kind }
            }
            None => Error::WatchCancelled { reason },
        }
    }

    /// The gRPC status the server answered with, if this is a server error.
    ///
    /// ```no_run
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// if let Err(e) = client.user_get("nobody").await {
    ///     if let Some(status) = e.status() {
    ///         println!("server said {:?}: {}", status.code, status.message);
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn status(&self) -> Option<&Status> {
        match self {
            Error::Call(CallError::Status { status, .. }) => Some(status),
            Error::Call(CallError::RetryBudgetSpent {
                status: Some(status),
                ..
            }) => Some(status),
            Error::Call(CallError::Auth {
                refusal: Some((status, _)),
                ..
            }) => Some(status),
            Error::WatchRefused { status, .. } => Some(status),
            _ => None,
        }
    }

    /// The gRPC code of a server error.
    ///
    /// ```no_run
    /// use etcdv3_client::Code;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// match client.user_get("nobody").await {
    ///     Err(e) if e.code() == Some(Code::FailedPrecondition) => println!("no such user"),
    ///     other => { other?; }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn code(&self) -> Option<Code> {
        self.status().map(|s| s.code)
    }

    /// The etcd classification of a server error.
    ///
    /// ```no_run
    /// use etcdv3_client::EtcdErrorKind;
    /// use etcdv3_client::api::GetOptions;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// if let Err(e) = client.get("k", GetOptions::new().with_revision(1)).await {
    ///     if e.etcd_kind() == Some(&EtcdErrorKind::Compacted) {
    ///         println!("revision 1 is compacted: read at a later one");
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn etcd_kind(&self) -> Option<&EtcdErrorKind> {
        match self {
            Error::Call(CallError::Status { kind, .. }) => Some(kind),
            Error::Call(CallError::Auth {
                refusal: Some((_, kind)),
                ..
            }) => Some(kind),
            Error::WatchRefused { kind, .. } => Some(kind),
            _ => None,
        }
    }

    /// The coarse class the project's fault tests and benchmarks count
    /// errors by (feature `testkit`).
    ///
    /// ```
    /// use etcdv3_client::Error;
    /// use etcdv3_testkit::fault::ErrorClass;
    /// assert_eq!(Error::Closed.class(), ErrorClass::Other("the client is closed".into()));
    /// ```
    #[cfg(feature = "testkit")]
    pub fn class(&self) -> etcdv3_testkit::fault::ErrorClass {
        use etcdv3_testkit::fault::ErrorClass;
        if self.is_deadline_exceeded() {
            return ErrorClass::DeadlineExceeded;
        }
        if self.is_outcome_unknown() {
            return ErrorClass::OutcomeUnknown;
        }
        if let Some(code) = self.code() {
            return ErrorClass::Status(format!("{code:?}"));
        }
        match self {
            Error::Call(CallError::NoEndpoints { .. }) => ErrorClass::NoEndpoints,
            other => ErrorClass::Other(other.to_string()),
        }
    }

    /// Whether a mutation may have been applied although the call failed.
    /// `false` means it certainly was not.
    ///
    /// ```
    /// use etcdv3_client::Error;
    /// assert!(!Error::Closed.may_have_applied());
    /// assert!(Error::ClosedInFlight { method: "/etcdserverpb.KV/Put" }.may_have_applied());
    /// ```
    pub fn may_have_applied(&self) -> bool {
        match self {
            Error::Call(e) => e.may_have_applied(),
            Error::ClosedInFlight { .. } => true,
            _ => false,
        }
    }

    /// Whether the client was closed ([`Error::Closed`] or
    /// [`Error::ClosedInFlight`]).
    ///
    /// ```
    /// use etcdv3_client::Error;
    /// assert!(Error::Closed.is_closed());
    /// assert!(!Error::InvalidArgument("empty key".into()).is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        matches!(self, Error::Closed | Error::ClosedInFlight { .. })
    }

    /// Whether the call ran out of time.
    ///
    /// ```
    /// use etcdv3_client::{CallError, Error};
    /// let late = Error::Call(CallError::DeadlineExceeded {
    ///     method: "/etcdserverpb.KV/Range",
    ///     attempts: 3,
    ///     last_error: "none".into(),
    ///     may_have_applied: false,
    ///     source: None,
    /// });
    /// assert!(late.is_deadline_exceeded());
    /// assert!(!Error::Closed.is_deadline_exceeded());
    /// ```
    pub fn is_deadline_exceeded(&self) -> bool {
        matches!(self, Error::Call(CallError::DeadlineExceeded { .. }))
    }

    /// Whether the call named a target the client does not know.
    ///
    /// ```
    /// use etcdv3_client::{Error, Target};
    /// let e = Error::UnknownTarget { target: Target::Member(7) };
    /// assert!(e.is_unknown_target());
    /// ```
    pub fn is_unknown_target(&self) -> bool {
        matches!(self, Error::UnknownTarget { .. })
    }

    /// Whether the outcome of a mutation is unknown.
    ///
    /// ```no_run
    /// use etcdv3_client::api::PutOptions;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// match client.put("k", "v", PutOptions::new()).await {
    ///     Err(e) if e.is_outcome_unknown() => println!("the put may or may not have happened: read back"),
    ///     other => { other?; }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn is_outcome_unknown(&self) -> bool {
        matches!(self, Error::Call(CallError::OutcomeUnknown { .. }))
    }
}

/// rustls' error behind an [`Error::Tls`] (its `source()`), shared and
/// cheap to clone; its own `source()` is the rustls error, so chain
/// walkers find it too.
///
/// ```no_run
/// use etcdv3_client::{rustls, Error, TlsCause};
/// use etcdv3_client::api::PutOptions;
/// # async fn demo(client: etcdv3_client::Client) {
/// if let Err(e) = client.put("k", "v", PutOptions::new()).await {
///     let tls = std::error::Error::source(&e).and_then(|s| s.downcast_ref::<TlsCause>());
///     if let Some(rustls::Error::InvalidCertificate(why)) = tls.map(TlsCause::get) {
///         println!("the server's certificate: {why:?}");
///     }
/// }
/// # }
/// ```
#[cfg(feature = "tls")]
#[derive(Debug, Clone)]
pub struct TlsCause(std::sync::Arc<crate::rustls::Error>);

#[cfg(feature = "tls")]
impl TlsCause {
    pub(crate) fn new(e: crate::rustls::Error) -> TlsCause {
        TlsCause(std::sync::Arc::new(e))
    }

    /// The rustls error.
    ///
    /// ```no_run
    /// use etcdv3_client::TlsCause;
    /// # fn demo(e: etcdv3_client::Error) {
    /// if let Some(tls) = std::error::Error::source(&e).and_then(|s| s.downcast_ref::<TlsCause>()) {
    ///     println!("rustls: {:?}", tls.get());
    /// }
    /// # }
    /// ```
    pub fn get(&self) -> &crate::rustls::Error {
        &self.0
    }
}

#[cfg(feature = "tls")]
impl std::fmt::Display for TlsCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(feature = "tls")]
impl std::error::Error for TlsCause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// How the transport marks the rejection of an endpoint whose scheme does
/// not match what its member speaks (the core hands the text back as the
/// rejection's cause); every other rejection is a TLS failure.
pub(crate) const SCHEME_MISMATCH: &str = "scheme mismatch: ";

impl From<CallError> for Error {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Rejected {
                method,
                endpoint,
                cause,
            } if cause.starts_with(SCHEME_MISMATCH) => Error::SchemeMismatch {
                method,
                endpoint,
                cause: cause[SCHEME_MISMATCH.len()..].to_string(),
            },
            // The client reports rejections for TLS failures and scheme
            // mismatches only.
            CallError::Rejected {
                method,
                endpoint,
                cause,
            } => Error::Tls {
                method,
                endpoint,
                cause,
                #[cfg(feature = "tls")]
                source: None,
            },
            e => Error::Call(e),
        }
    }
}

/// The status in a Go gRPC error's text (`rpc error: code = NotFound desc
/// = ...`, as etcd writes a watch's cancel reason).
fn parse_go_status(text: &str) -> Option<Status> {
    let rest = text.strip_prefix("rpc error: code = ")?;
    let (name, message) = rest.split_once(" desc = ")?;
    let code = Code::ALL.into_iter().find(|c| format!("{c:?}") == name)?;
    Some(Status {
        code,
        message: message.to_string(),
    })
}

/// Result with the client's [`Error`].
///
/// ```
/// fn parse_ttl(s: &str) -> etcdv3_client::Result<i64> {
///     s.parse().map_err(|_| etcdv3_client::Error::InvalidArgument(format!("bad ttl {s:?}")))
/// }
/// assert_eq!(parse_ttl("10").ok(), Some(10));
/// assert!(parse_ttl("ten").is_err());
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_refusals_chain_to_their_status() {
        use std::error::Error as _;
        let status = Status {
            code: Code::NotFound,
            message: "etcdserver: requested lease not found".into(),
        };
        let e = Error::Call(CallError::Status {
            method: "/etcdserverpb.Lease/LeaseRevoke",
            endpoint: "http://127.0.0.1:2379".into(),
            status: status.clone(),
            kind: etcdv3_core::wire::error::classify(&status),
        });
        let source = e.source().and_then(|s| s.downcast_ref::<Status>());
        assert_eq!(source, Some(&status), "{e}");
        let e = Error::from_cancel_reason(
            "rpc error: code = PermissionDenied desc = etcdserver: permission denied",
        );
        let source = e.source().and_then(|s| s.downcast_ref::<Status>());
        assert_eq!(source.map(|s| s.code), Some(Code::PermissionDenied), "{e}");
    }

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
