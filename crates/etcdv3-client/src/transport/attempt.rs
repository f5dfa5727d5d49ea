//! One attempt of a call on one h2 connection: request headers, the body,
//! and reading the response into an [`Outcome`].

use std::time::Duration;

use bytes::Bytes;
use etcdv3_core::codec::Decoder;
use etcdv3_core::machine::{Outcome, ResponseMeta};
use etcdv3_core::status::{encode_grpc_timeout, response_status, Code, Status};
use etcdv3_proto::method::Method;
use http::header::{HeaderName, CONTENT_TYPE, TE, USER_AGENT};
use http::{HeaderValue, Request};

use super::Target;

static USER_AGENT_VALUE: &str = concat!("etcdv3-rust/", env!("CARGO_PKG_VERSION"));
const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");
const HASLEADER: HeaderName = HeaderName::from_static("hasleader");
const TOKEN: HeaderName = HeaderName::from_static("token");

/// What one attempt produced.
pub(crate) struct AttemptOutput {
    pub(crate) outcome: Outcome,
    /// The response message (unary), when the attempt succeeded.
    pub(crate) message: Option<Bytes>,
    /// The server sent GOAWAY.
    pub(crate) goaway: bool,
}

impl AttemptOutput {
    /// The attempt never reached the wire.
    pub(crate) fn not_sent(why: String) -> Self {
        Self::failed(Outcome::NotSent(why), false)
    }

    /// The attempt failed with an h2 error.
    pub(crate) fn failed_h2(e: &h2::Error, sent: bool) -> Self {
        let (o, g) = classify_h2(e, sent);
        Self::failed(o, g)
    }

    pub(crate) fn failed(outcome: Outcome, goaway: bool) -> Self {
        AttemptOutput {
            outcome,
            message: None,
            goaway,
        }
    }
}

/// Build the request headers of a gRPC call.
pub(crate) fn request(
    target: &Target,
    method: Method,
    timeout: Option<Duration>,
    require_leader: bool,
) -> Result<Request<()>, String> {
    let uri = http::Uri::builder()
        .scheme(target.scheme.clone())
        .authority(target.authority.clone())
        .path_and_query(method.path)
        .build()
        .map_err(|e| format!("bad request uri: {e}"))?;
    let mut req = Request::new(());
    *req.method_mut() = http::Method::POST;
    *req.uri_mut() = uri;
    *req.version_mut() = http::Version::HTTP_2;
    let h = req.headers_mut();
    h.insert(TE, HeaderValue::from_static("trailers"));
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    h.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
    if let Some(t) = timeout {
        if let Ok(mut v) = HeaderValue::from_str(&encode_grpc_timeout(t)) {
            // A new value on (almost) every call: never worth a slot in the
            // HPACK dynamic table ("never indexed" literal).
            v.set_sensitive(true);
            h.insert(GRPC_TIMEOUT, v);
        }
    }
    if require_leader {
        h.insert(HASLEADER, HeaderValue::from_static("true"));
    }
    if let Some(token) = &target.token {
        h.insert(TOKEN, token.clone());
    }
    Ok(req)
}

/// Map an h2 error to what it says about whether the request was processed.
pub(crate) fn classify_h2(e: &h2::Error, sent: bool) -> (Outcome, bool) {
    let goaway = e.is_go_away() && e.is_remote();
    if e.reason() == Some(h2::Reason::REFUSED_STREAM) && e.is_remote() {
        return (Outcome::Refused(format!("stream refused: {e}")), goaway);
    }
    if !sent {
        return (Outcome::NotSent(e.to_string()), goaway);
    }
    (Outcome::Lost(e.to_string()), goaway)
}

/// Run a unary attempt to completion.
pub(crate) async fn unary(
    target: Target,
    req: Request<()>,
    body: Bytes,
    max_recv: usize,
) -> AttemptOutput {
    let mut sender = match target.sender.ready().await {
        Ok(s) => s,
        Err(e) => return AttemptOutput::failed_h2(&e, false),
    };
    let (response, mut send) = match sender.send_request(req, false) {
        Ok(x) => x,
        Err(e) => return AttemptOutput::failed_h2(&e, false),
    };
    if let Err(e) = send.send_data(body, true) {
        let (o, g) = classify_h2(&e, true);
        return AttemptOutput::failed(o, g);
    }
    let response = match response.await {
        Ok(r) => r,
        Err(e) => return AttemptOutput::failed_h2(&e, true),
    };
    let (parts, mut recv) = response.into_parts();
    if let Some(st) = Status::from_headers(&parts.headers) {
        // Trailers-only response.
        let outcome = if st.code == Code::Ok {
            Outcome::Lost("OK status without a response message".into())
        } else {
            Outcome::Status(st)
        };
        return AttemptOutput::failed(outcome, false);
    }
    if parts.status != http::StatusCode::OK {
        let st = response_status(parts.status, &parts.headers, None);
        return AttemptOutput::failed(Outcome::Status(st), false);
    }
    let mut decoder = Decoder::new(max_recv);
    let mut message = None;
    while let Some(chunk) = recv.data().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => return AttemptOutput::failed_h2(&e, true),
        };
        let _ = recv.flow_control().release_capacity(chunk.len());
        decoder.push(chunk);
        loop {
            match decoder.next_message() {
                Ok(Some(m)) => {
                    if message.is_none() {
                        message = Some(m);
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    return AttemptOutput::failed(
                        Outcome::Lost(format!("malformed response: {e}")),
                        false,
                    );
                }
            }
        }
    }
    let trailers = match recv.trailers().await {
        Ok(t) => t,
        Err(e) => return AttemptOutput::failed_h2(&e, true),
    };
    if let Err(e) = decoder.finish() {
        return AttemptOutput::failed(Outcome::Lost(format!("malformed response: {e}")), false);
    }
    let st = response_status(parts.status, &parts.headers, trailers.as_ref());
    if st.code != Code::Ok {
        return AttemptOutput::failed(Outcome::Status(st), false);
    }
    match message {
        Some(m) => AttemptOutput {
            outcome: Outcome::Success(response_meta(&m)),
            message: Some(m),
            goaway: false,
        },
        None => AttemptOutput::failed(
            Outcome::Lost("OK status without a response message".into()),
            false,
        ),
    }
}

/// Every etcd response carries its `ResponseHeader` as field 1; decode just
/// that (prost skips the rest) to learn about the member that answered.
pub(crate) fn response_meta(msg: &Bytes) -> Option<ResponseMeta> {
    #[derive(Clone, PartialEq, prost::Message)]
    struct HeaderOnly {
        #[prost(message, optional, tag = "1")]
        header: Option<etcdv3_proto::etcdserverpb::ResponseHeader>,
    }
    let h: HeaderOnly = prost::Message::decode(msg.clone()).ok()?;
    let h = h.header?;
    Some(ResponseMeta {
        member_id: h.member_id,
        raft_term: h.raft_term,
        revision: h.revision,
    })
}
