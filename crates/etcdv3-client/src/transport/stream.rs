//! Streaming calls: bidirectional (watch, lease keepalive) and
//! server-streaming (snapshot, election observe).

use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use etcdv3_core::machine::{CallId, EndpointId, Outcome};
use etcdv3_core::wire::codec::{self, Decoder};
use etcdv3_core::wire::status::{response_status, Code, Status};
use etcdv3_proto::method::Method;

use super::attempt::{self, classify_h2, AttemptOutput};
use super::call::{run_call_on, Attempted, Finished};
use super::{Shared, Target};
use crate::error::{Error, Result};

struct Parts {
    /// The endpoint the stream runs on, for errors the core does not make.
    endpoint: String,
    send: h2::SendStream<Bytes>,
    /// `Err` while the response headers are still to come (bidi streams).
    recv: std::result::Result<h2::RecvStream, h2::client::ResponseFuture>,
    headers: http::HeaderMap,
    status: http::StatusCode,
}

async fn open_attempt(
    target: Target,
    req: http::Request<()>,
    first: Option<Bytes>,
) -> Attempted<Parts> {
    let endpoint = format!("{}://{}", target.scheme, target.authority);
    let mut sender = match target.sender.ready().await {
        Ok(s) => s,
        Err(e) => return Attempted::Report(AttemptOutput::failed_h2(&e, false)),
    };
    let (response, mut send) = match sender.send_request(req, false) {
        Ok(x) => x,
        Err(e) => return Attempted::Report(AttemptOutput::failed_h2(&e, false)),
    };
    match first {
        Some(body) => {
            if let Err(e) = send.send_data(body, true) {
                return Attempted::Report(AttemptOutput::failed_h2(&e, true));
            }
        }
        // failover-helper fix: a bidirectional stream (watch, lease
        // keepalive) is established once its request HEADERS are out. etcd
        // (grpc-go) sends the response HEADERS only with the first response
        // message, which it sends only after the client's first request;
        // awaiting the response headers here deadlocked every watch and
        // keepalive stream (the owner sends its first request only after
        // `open` returns). The headers are awaited in `poll_message`.
        None => {
            return Attempted::Established(Parts {
                endpoint,
                send,
                recv: Err(response),
                headers: http::HeaderMap::new(),
                status: http::StatusCode::OK,
            })
        }
    }
    let response = match response.await {
        Ok(r) => r,
        Err(e) => return Attempted::Report(AttemptOutput::failed_h2(&e, true)),
    };
    let (parts, recv) = response.into_parts();
    if let Some(st) = Status::from_headers(&parts.headers) {
        // Trailers-only: the stream ended before it started. With OK it is
        // a stream of no messages: established, and ending at the first
        // read (reported to the core then, with its endpoint).
        if st.code != Code::Ok {
            return Attempted::Report(AttemptOutput::failed(Outcome::Status(st), false));
        }
    }
    if parts.status != http::StatusCode::OK {
        let st = response_status(parts.status, &parts.headers, None);
        return Attempted::Report(AttemptOutput::failed(Outcome::Status(st), false));
    }
    Attempted::Established(Parts {
        endpoint,
        send,
        recv: Ok(recv),
        headers: parts.headers,
        status: parts.status,
    })
}

/// Open a stream call; `first` is the single request of a server-streaming
/// call (sent with END_STREAM).
pub(crate) async fn open<Q, A>(
    shared: &Arc<Shared>,
    method: Method,
    first: Option<Bytes>,
    timeout: Option<Duration>,
) -> Result<BidiCall<Q, A>>
where
    Q: prost::Message,
    A: prost::Message + Default,
{
    let require_leader = shared.options.require_leader;
    open_on(shared, method, first, timeout, require_leader, None).await
}

/// [`open`] with `require_leader` chosen by the caller, pinned to endpoint
/// `bound` when given.
pub(crate) async fn open_on<Q, A>(
    shared: &Arc<Shared>,
    method: Method,
    first: Option<Bytes>,
    timeout: Option<Duration>,
    require_leader: bool,
    bound: Option<EndpointId>,
) -> Result<BidiCall<Q, A>>
where
    Q: prost::Message,
    A: prost::Message + Default,
{
    let read = etcdv3_core::machine::ReadKind::Unspecified;
    // A snapshot (Maintenance) never asks for a leader.
    let require_leader = require_leader && etcdv3_core::machine::wants_leader(method, read);
    let make = |_attempt: u32, target: Target, left: Option<Duration>| {
        let req = attempt::request(&target, method, left, require_leader);
        let first = first.clone();
        async move {
            match req {
                Ok(req) => open_attempt(target, req, first).await,
                Err(e) => Attempted::Report(AttemptOutput::not_sent(e)),
            }
        }
    };
    match run_call_on(shared, method, timeout, bound, read, make).await? {
        (call, attempt, Finished::Stream(parts)) => Ok(BidiCall {
            shared: shared.clone(),
            call,
            attempt,
            method,
            endpoint: parts.endpoint,
            send: parts.send,
            recv: parts.recv,
            headers: parts.headers,
            status: parts.status,
            decoder: Decoder::new(shared.options.max_recv_message_size),
            max_send: shared.options.max_send_message_size,
            state: RecvState::Data,
            reported: false,
            auth_retry: None,
            batched: false,
            unreported: false,
            unreleased: 0,
            _types: PhantomData,
        }),
        // `open_attempt` never reports a success: a unary answer here is
        // impossible, and the call is over.
        (call, _, Finished::Message(..)) => {
            let err = shared.finish_stream(call);
            Err(match err {
                Some(Err(e)) => shared.call_error(e),
                _ => Error::Closed,
            })
        }
    }
}

/// Received bytes a batched stream (see [`BidiCall::batch_progress`])
/// gives back to the flow-control window at the latest, even within a
/// batch: far below the stream window the client advertises (2 MiB by
/// default), so the server does not wait for the end of a batch to send
/// more; the rest goes back when the batch ends.
const RELEASE_BATCH: usize = 16 << 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RecvState {
    Data,
    Trailers,
    Ended,
}

/// An established stream call: send requests of type `Q`, receive responses
/// of type `A`. Dropping it resets the stream (RST_STREAM CANCEL) and tells
/// the core.
pub(crate) struct BidiCall<Q, A> {
    shared: Arc<Shared>,
    call: CallId,
    attempt: u32,
    method: Method,
    endpoint: String,
    send: h2::SendStream<Bytes>,
    /// `Err` until the response headers arrived (see `open_attempt`).
    recv: std::result::Result<h2::RecvStream, h2::client::ResponseFuture>,
    headers: http::HeaderMap,
    status: http::StatusCode,
    decoder: Decoder,
    max_send: usize,
    state: RecvState,
    reported: bool,
    auth_retry: Option<bool>,
    /// Messages are reported to the core by [`BidiCall::report_progress`]
    /// (once per batch), not one by one (see [`BidiCall::batch_progress`]).
    batched: bool,
    /// A message arrived and the core has not heard of it yet.
    unreported: bool,
    /// Bytes received and not yet given back to the h2 flow-control window
    /// (batched like the progress report: each release takes h2's lock).
    unreleased: usize,
    _types: PhantomData<fn(Q) -> A>,
}

impl<Q, A> BidiCall<Q, A>
where
    Q: prost::Message,
    A: prost::Message + Default,
{
    /// Whether the stream ended refused for its token: `Some(true)` when a
    /// new stream will carry a fresh token (see
    /// `Core::handle_auth_rejected`), `Some(false)` when the refusal is
    /// final (no credentials); `None` for other ends.
    pub(crate) fn auth_retry(&self) -> Option<bool> {
        self.auth_retry
    }

    /// From now on, messages received are reported to the core (the
    /// stream is alive, its requests answered) by
    /// [`report_progress`](Self::report_progress), which the owner calls
    /// after each batch it takes: one core lock per batch instead of one
    /// per message (10,000 watchers make hundreds of messages per turn).
    pub(crate) fn batch_progress(&mut self) {
        self.batched = true;
    }

    /// Tell the core that messages arrived since the last report (see
    /// [`batch_progress`](Self::batch_progress)), and give what they
    /// occupied back to the flow-control window.
    pub(crate) fn report_progress(&mut self) {
        self.release();
        if std::mem::take(&mut self.unreported) {
            let call = self.call;
            self.shared
                .with_state(|st, now| st.core.handle_stream_progress(now, call));
        }
    }

    /// Give the bytes received since the last release back to the
    /// stream's flow-control window.
    fn release(&mut self) {
        let n = std::mem::take(&mut self.unreleased);
        if let (true, Ok(recv)) = (n > 0, &mut self.recv) {
            let _ = recv.flow_control().release_capacity(n);
        }
    }

    /// The core's id of the call.
    pub(crate) fn call_id(&self) -> CallId {
        self.call
    }

    /// The endpoint the stream runs on.
    pub(crate) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Queue one request on the stream. A failure ends the stream (and is
    /// reported to the core).
    pub(crate) fn send(&mut self, msg: &Q) -> Result<()> {
        let body = codec::encode(msg, self.max_send).map_err(|source| Error::Frame {
            method: self.method.path,
            source,
        })?;
        if let Err(e) = self.send.send_data(body, false) {
            let (outcome, _) = classify_h2(&e, true);
            return match self.ended(outcome) {
                Poll::Ready(Err(e)) => Err(e),
                _ => Err(self.stream_ended(e.to_string())),
            };
        }
        Ok(())
    }

    /// End the stream with `outcome` as seen by its owner (e.g. the server
    /// refused its work with "no leader"): the core hears of it, the h2
    /// stream is reset when dropped.
    pub(crate) fn end(&mut self, outcome: Outcome) {
        if self.state != RecvState::Ended {
            self.send.send_reset(h2::Reason::CANCEL);
        }
        let _ = self.ended(outcome);
    }

    fn stream_ended(&self, cause: String) -> Error {
        Error::Call(etcdv3_core::machine::CallError::StreamEnded {
            method: self.method.path,
            endpoint: self.endpoint.clone(),
            cause,
        })
    }

    /// Half-close: no more requests.
    pub(crate) fn close_send(&mut self) {
        let _ = self.send.send_data(Bytes::new(), true);
    }

    /// The next response; `Ok(None)` when the server ended the stream with
    /// OK status.
    pub(crate) async fn message(&mut self) -> Result<Option<A>> {
        std::future::poll_fn(|cx| self.poll_message(cx)).await
    }

    /// Tell the core how the stream ended and take the call's result (and
    /// its slot) back: `None` if it was reported already.
    fn report(
        &mut self,
        outcome: Outcome,
    ) -> Option<Option<std::result::Result<(), etcdv3_core::machine::CallError>>> {
        if self.reported {
            return None;
        }
        self.reported = true;
        let (call, attempt) = (self.call, self.attempt);
        let auth = matches!(&outcome, Outcome::Status(s) if etcdv3_core::wire::error::auth_refusal(s).is_some());
        let retry = self.shared.with_state(|st, now| {
            // Told while the call still exists: the core compares the token
            // the stream was opened with to the current one.
            let retry = auth && st.core.handle_auth_rejected(now, call);
            st.core.handle_outcome(now, call, attempt, outcome);
            retry
        });
        self.auth_retry = auth.then_some(retry);
        Some(self.shared.finish_stream(call))
    }

    fn ended(&mut self, outcome: Outcome) -> Poll<Result<Option<A>>> {
        // What arrived before the end is heard of first.
        self.report_progress();
        self.state = RecvState::Ended;
        let fallback = match &outcome {
            Outcome::Success(_) => None,
            Outcome::Status(status) => Some(Error::Call(etcdv3_core::machine::CallError::Status {
                method: self.method.path,
                endpoint: self.endpoint.clone(),
                kind: etcdv3_core::wire::error::classify(status),
                status: status.clone(),
            })),
            Outcome::NotSent(e) | Outcome::Refused(e) | Outcome::Lost(e) => {
                Some(self.stream_ended(e.clone()))
            }
        };
        // The core's verdict names the endpoint and is what every other
        // call reports; it may have ended the call earlier (its connection
        // closed), in which case that earlier result is the one returned.
        Poll::Ready(match self.report(outcome) {
            Some(Some(Ok(()))) => Ok(None),
            Some(Some(Err(e))) => Err(self.shared.call_error(e)),
            _ => fallback.map_or(Ok(None), Err),
        })
    }

    /// Poll for the next response.
    pub(crate) fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<A>>> {
        // failover-helper fix: first wait for the response headers of a
        // bidi stream (see `open_attempt`), checking them like a unary call.
        if let (Err(response), RecvState::Data) = (&mut self.recv, self.state) {
            let response = match std::future::Future::poll(Pin::new(response), cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(r)) => r,
                Poll::Ready(Err(e)) => {
                    let (o, _) = classify_h2(&e, true);
                    return self.ended(o);
                }
            };
            let (parts, recv) = response.into_parts();
            if let Some(st) = Status::from_headers(&parts.headers) {
                let outcome = if st.code == Code::Ok {
                    Outcome::Success(None)
                } else {
                    Outcome::Status(st)
                };
                return self.ended(outcome);
            }
            if parts.status != http::StatusCode::OK {
                let st = response_status(parts.status, &parts.headers, None);
                return self.ended(Outcome::Status(st));
            }
            self.recv = Ok(recv);
            self.headers = parts.headers;
            self.status = parts.status;
        }
        let Ok(recv) = &mut self.recv else {
            return Poll::Ready(Ok(None));
        };
        loop {
            match self.decoder.next_message() {
                Ok(Some(m)) => {
                    self.unreported = true;
                    if !self.batched {
                        self.report_progress();
                    }
                    return Poll::Ready(codec::decode_message::<A>(m).map(Some).map_err(
                        |source| Error::Frame {
                            method: self.method.path,
                            source,
                        },
                    ));
                }
                Ok(None) => {}
                Err(e) => return self.ended(Outcome::Lost(format!("malformed response: {e}"))),
            }
            match self.state {
                RecvState::Ended => return Poll::Ready(Ok(None)),
                RecvState::Data => match recv.poll_data(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Some(Ok(chunk))) => {
                        self.unreleased += chunk.len();
                        self.decoder.push(chunk);
                        if !self.batched || self.unreleased >= RELEASE_BATCH {
                            let n = std::mem::take(&mut self.unreleased);
                            let _ = recv.flow_control().release_capacity(n);
                        }
                    }
                    Poll::Ready(Some(Err(e))) => {
                        let (o, _) = classify_h2(&e, true);
                        return self.ended(o);
                    }
                    Poll::Ready(None) => self.state = RecvState::Trailers,
                },
                RecvState::Trailers => {
                    let trailers = match recv.poll_trailers(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Ok(t)) => t,
                        Poll::Ready(Err(e)) => {
                            let (o, _) = classify_h2(&e, true);
                            return self.ended(o);
                        }
                    };
                    if let Err(e) = self.decoder.finish() {
                        return self.ended(Outcome::Lost(format!("malformed response: {e}")));
                    }
                    let st = response_status(self.status, &self.headers, trailers.as_ref());
                    let outcome = if st.code == Code::Ok {
                        Outcome::Success(None)
                    } else {
                        Outcome::Status(st)
                    };
                    return self.ended(outcome);
                }
            }
        }
    }
}

impl<Q, A> Drop for BidiCall<Q, A> {
    fn drop(&mut self) {
        if !self.reported {
            self.send.send_reset(h2::Reason::CANCEL);
            // Forgets the call's slot too.
            self.shared.cancel(self.call);
        }
    }
}

/// The responses of a server-streaming call, as a `Stream`.
pub(crate) struct ServerStream<A> {
    call: BidiCall<(), A>,
    done: bool,
}

impl<A: prost::Message + Default> ServerStream<A> {
    pub(crate) fn new(call: BidiCall<(), A>) -> Self {
        ServerStream { call, done: false }
    }
}

impl<A: prost::Message + Default> futures_core::Stream for ServerStream<A> {
    type Item = Result<A>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        match this.call.poll_message(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(Some(m))) => Poll::Ready(Some(Ok(m))),
            Poll::Ready(Ok(None)) => {
                this.done = true;
                Poll::Ready(None)
            }
            Poll::Ready(Err(e)) => {
                this.done = true;
                Poll::Ready(Some(Err(e)))
            }
        }
    }
}
