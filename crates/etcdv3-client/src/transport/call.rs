//! Unary calls, run by the caller's own task, plus the core's internal
//! calls (status probes, authentication).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use etcdv3_core::machine::{CallId, ConnId, EndpointId, MemberStatus, Outcome, ReadKind};
use etcdv3_core::wire::status::{Code, Status};
use etcdv3_proto::etcdserverpb::{AuthenticateRequest, AuthenticateResponse, StatusResponse};
use etcdv3_proto::method::{Method, AUTH_AUTHENTICATE};
use http::HeaderValue;

use super::attempt::{self, AttemptOutput};
use super::{Shared, Step, Target};
use crate::error::{Error, Result};
use crate::options::StaleRead;

/// Cancels the call in the core if the caller drops the future early.
struct CallGuard<'a> {
    shared: &'a Arc<Shared>,
    call: CallId,
    done: bool,
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.shared.cancel(self.call);
        }
    }
}

/// How an attempt ended, from the attempt runner's point of view.
pub(crate) enum Attempted<T> {
    /// Report this to the core (which then completes or retries the call).
    Report(AttemptOutput),
    /// A stream was established: the call now belongs to its owner.
    Established(T),
}

/// What [`run_call_on`] ends with.
pub(crate) enum Finished<T> {
    /// A unary call succeeded with this response message (marked when it
    /// came back below the revision the client had seen).
    Message(Bytes, Option<StaleRead>),
    /// A stream call was established.
    Stream(T),
}

/// Drive one call through the core: start it, run each attempt the core asks
/// for with `make(attempt, target)`, report outcomes, and return when the core
/// completes it (or, for a stream, when it is established). Dropping the
/// returned future cancels the call. With `bound`, the call is pinned to
/// that endpoint (the core's `start_call_on`: it never moves to another
/// member); `read` tells the core's revision fence what kind of read it is.
pub(crate) async fn run_call_on<T, F, Fut>(
    shared: &Arc<Shared>,
    method: Method,
    timeout: Option<Duration>,
    bound: Option<EndpointId>,
    read: ReadKind,
    mut make: F,
) -> Result<(CallId, u32, Finished<T>)>
where
    F: FnMut(u32, Target, Option<Duration>) -> Fut,
    Fut: Future<Output = Attempted<T>> + Send + 'static,
    T: Send + 'static,
{
    let (call, deadline) = shared.with_state(|st, now| {
        if st.is_closed() {
            return Err(Error::Closed);
        }
        let deadline = timeout.map(|t| now + t);
        let id = st.core.start_call_with(now, method, deadline, bound, read);
        Shared::new_slot(st, id);
        Ok((id, deadline))
    })?;
    let mut guard = CallGuard {
        shared,
        call,
        done: false,
    };
    let mut current: Option<(u32, ConnId, Pin<Box<Fut>>)> = None;
    let mut answer: Option<Bytes> = None;
    // The last failed attempt's report and the error behind it.
    let mut last_cause: Option<(String, etcdv3_core::machine::Cause)> = None;
    let result = std::future::poll_fn(|cx| loop {
        let step = {
            let mut st = shared.lock();
            if st.is_closed() {
                // A mutation whose attempt is out may have reached the server.
                return Poll::Ready(Err(if current.is_some() && !method.is_repeatable() {
                    Error::ClosedInFlight {
                        method: method.path,
                    }
                } else {
                    Error::Closed
                }));
            }
            Shared::poll_step(&mut st, call, cx.waker())
        };
        match step {
            Some(Step::Done(Ok(()), stale)) => {
                return Poll::Ready(match answer.take() {
                    Some(m) => Ok((0, Finished::Message(m, stale))),
                    None => Err(Error::Call(etcdv3_core::machine::CallError::StreamEnded {
                        method: method.path,
                        endpoint: String::new(),
                        cause: "completed without a response".into(),
                    })),
                })
            }
            Some(Step::Done(Err(e), _)) => {
                return Poll::Ready(Err(shared.call_error_with(e, last_cause.as_ref())))
            }
            Some(Step::Send {
                attempt,
                conn,
                target,
            }) => {
                let left = deadline.map(|d| d.saturating_duration_since(shared.runtime.now()));
                current = Some((attempt, conn, Box::pin(make(attempt, target, left))));
                continue;
            }
            None => {}
        }
        let Some((attempt, conn, fut)) = current.as_mut() else {
            return Poll::Pending;
        };
        let Poll::Ready(out) = fut.as_mut().poll(cx) else {
            return Poll::Pending;
        };
        let (attempt, conn) = (*attempt, *conn);
        current = None;
        match out {
            Attempted::Established(value) => {
                shared.with_state(|st, now| st.core.handle_stream_established(now, call));
                return Poll::Ready(Ok((attempt, Finished::Stream(value))));
            }
            Attempted::Report(out) => {
                if out.message.is_some() {
                    answer = out.message;
                }
                if let (
                    Some(cause),
                    Outcome::NotSent(text) | Outcome::Refused(text) | Outcome::Lost(text),
                ) = (out.cause, &out.outcome)
                {
                    last_cause = Some((text.clone(), cause));
                }
                shared.with_state(|st, now| {
                    if out.goaway {
                        st.core.handle_goaway(now, conn);
                    }
                    st.core.handle_outcome(now, call, attempt, out.outcome);
                });
            }
        }
    })
    .await;
    match result {
        Ok((attempt, finished)) => {
            // A finished unary call is gone from the core; an established
            // stream stays registered until its owner reports its end.
            guard.done = true;
            Ok((call, attempt, finished))
        }
        Err(e) => {
            guard.done = true;
            shared.cancel(call);
            Err(e)
        }
    }
}

/// Run a unary call: the core picks endpoints and decides retries; the
/// caller's future runs each attempt's h2 stream itself.
pub(crate) async fn unary(
    shared: &Arc<Shared>,
    method: Method,
    body: Bytes,
    timeout: Duration,
) -> Result<Bytes> {
    unary_with_leader(shared, method, body, timeout, shared.options.require_leader).await
}

/// [`unary`], with `require_leader` chosen by the caller instead of the
/// options (auto-sync must never learn the members from a member without a
/// leader).
pub(crate) async fn unary_with_leader(
    shared: &Arc<Shared>,
    method: Method,
    body: Bytes,
    timeout: Duration,
    require_leader: bool,
) -> Result<Bytes> {
    unary_on(shared, method, body, timeout, require_leader, None).await
}

/// [`unary_with_leader`], pinned to endpoint `bound` when given.
pub(crate) async fn unary_on(
    shared: &Arc<Shared>,
    method: Method,
    body: Bytes,
    timeout: Duration,
    require_leader: bool,
    bound: Option<EndpointId>,
) -> Result<Bytes> {
    let read = ReadKind::Unspecified;
    unary_read(shared, method, body, timeout, require_leader, bound, read)
        .await
        .map(|(m, _)| m)
}

/// [`unary_on`] for a call the core's revision fence judges as `read`:
/// the answer, and whether it came back below the revision the client had
/// seen.
pub(crate) async fn unary_read(
    shared: &Arc<Shared>,
    method: Method,
    body: Bytes,
    timeout: Duration,
    require_leader: bool,
    bound: Option<EndpointId>,
    read: ReadKind,
) -> Result<(Bytes, Option<StaleRead>)> {
    // Serializable reads and Maintenance calls never ask for a leader.
    let require_leader = require_leader && etcdv3_core::machine::wants_leader(method, read);
    let max_recv = shared.options.max_recv_message_size;
    let make = |_attempt: u32, target: Target, left: Option<Duration>| {
        let req = attempt::request(&target, method, left, require_leader);
        let body = body.clone();
        let shared = shared.clone();
        async move {
            // Bytes of a large answer arriving prove the member alive.
            let call = target.call;
            let progress = move || {
                if let Some(call) = call {
                    shared.with_state(|st, now| st.core.handle_call_progress(now, call));
                }
            };
            match req {
                Ok(req) => Attempted::<()>::Report(
                    attempt::unary(target, req, body, max_recv, progress).await,
                ),
                Err(e) => Attempted::Report(AttemptOutput::not_sent(e)),
            }
        }
    };
    match run_call_on(shared, method, Some(timeout), bound, read, make).await? {
        (_, _, Finished::Message(m, stale)) => Ok((m, stale)),
        (_, _, Finished::Stream(())) => Err(Error::Closed),
    }
}

/// One request of the client's own (`method` with the pre-encoded `body`)
/// on a connection, with the probe timeout: the answer's message, or the
/// status it failed with.
async fn side_request(
    shared: &Shared,
    target: Target,
    method: Method,
    body: Bytes,
) -> Result<Option<Bytes>, Status> {
    let timeout = shared.options.core.probe_timeout;
    let req = attempt::request(&target, method, Some(timeout), false)
        .map_err(|e| Status::new(Code::Internal, e))?;
    let out = attempt::unary(
        target,
        req,
        body,
        shared.options.max_recv_message_size,
        || {},
    )
    .await;
    match out.outcome {
        Outcome::Success(_) => Ok(out.message),
        Outcome::Status(s) => Err(s),
        other => Err(Status::new(Code::Unavailable, format!("{other:?}"))),
    }
}

/// A `Maintenance/Status` probe on one connection for partition detection.
pub(crate) async fn probe(shared: Arc<Shared>, conn: ConnId, target: Target) {
    let body = shared.status_probe.clone();
    let answer = side_request(
        &shared,
        target,
        etcdv3_proto::method::MAINTENANCE_STATUS,
        body,
    )
    .await;
    let result = answer.and_then(|m| {
        let m =
            m.ok_or_else(|| Status::new(Code::Internal, "a status answer without a message"))?;
        let r = etcdv3_core::wire::codec::decode_message::<StatusResponse>(m)
            .map_err(|e| Status::new(Code::Internal, e.to_string()))?;
        let h = r.header.unwrap_or_default();
        Ok(MemberStatus {
            member_id: h.member_id,
            leader: r.leader,
            raft_term: r.raft_term,
            revision: h.revision,
        })
    });
    shared.with_state(|st, now| st.core.handle_probe_result(now, conn, result));
}

/// Ask a member whether it reaches a leader (`Action::CheckLeader`): a
/// linearizable count-only read of one key, with the probe timeout; the
/// core judges the answer.
pub(crate) async fn check_leader(shared: Arc<Shared>, conn: ConnId, target: Target) {
    let body = shared.leader_check.clone();
    let result = side_request(&shared, target, etcdv3_proto::method::KV_RANGE, body)
        .await
        .map(|_| ());
    shared.with_state(|st, now| st.core.handle_leader_check(now, conn, result));
}

/// Fetch a fresh token with the configured user and password.
pub(crate) async fn authenticate(shared: Arc<Shared>) {
    let user = shared
        .user
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let result = match user {
        None => Err("the server wants authentication but no user is configured".to_string()),
        Some((name, password)) => {
            // The old token stays in use until the new one arrives: calls sent
            // meanwhile carry it (the Authenticate request itself carries
            // none, see `Shared::drive`).
            let req = AuthenticateRequest { name, password };
            match etcdv3_core::wire::codec::encode(&req, shared.options.max_send_message_size) {
                Err(e) => Err(e.to_string()),
                Ok(body) => {
                    let timeout = shared.options.request_timeout;
                    match unary(&shared, AUTH_AUTHENTICATE, body, timeout).await {
                        Err(e) => match e.status() {
                            // Refused by the server: the calls waiting for
                            // the token get its status and etcd kind.
                            Some(status) => {
                                let (cause, status) = (e.to_string(), status.clone());
                                shared.with_state(|st, now| {
                                    st.core.handle_auth_refused(now, cause, status)
                                });
                                return;
                            }
                            None => {
                                let cause = e.to_string();
                                if let Some(source) = super::cause_of(&e) {
                                    shared.with_state(|st, _| {
                                        st.auth_cause = Some((cause.clone(), source))
                                    });
                                }
                                Err(cause)
                            }
                        },
                        Ok(msg) => {
                            match etcdv3_core::wire::codec::decode_message::<AuthenticateResponse>(
                                msg,
                            ) {
                                Err(e) => Err(e.to_string()),
                                Ok(r) => match HeaderValue::from_str(&r.token) {
                                    Ok(v) => {
                                        shared.set_token(Some(v));
                                        Ok(())
                                    }
                                    Err(e) => Err(format!("unusable token: {e}")),
                                },
                            }
                        }
                    }
                }
            }
        }
    };
    shared.with_state(|st, now| st.core.handle_auth_result(now, result));
}
