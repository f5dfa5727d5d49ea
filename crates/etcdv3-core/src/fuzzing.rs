//! Bodies of the fuzz targets in `fuzz/`, kept here so that the same code is
//! also run by `cargo test` (over generated inputs) and not only under
//! `cargo fuzz`. Each function panics when an invariant is broken and must
//! never panic otherwise, whatever its input.
//!
//! Not part of the stable API.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use crate::endpoints::endpoint::Endpoint;
use crate::wire::codec::{Decoder, FrameError};
use crate::wire::error::classify;
use crate::wire::status::{
    encode_grpc_timeout, parse_grpc_timeout, percent_decode, percent_decode_bytes, percent_encode,
    response_status, Status,
};

/// A cursor over fuzz input that hands out bytes and numbers, returning
/// zeros once the input is exhausted.
struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// Decodes `stream` in one piece, collecting messages until `None` or an
/// error.
fn decode_whole(max: usize, stream: &[u8]) -> (Vec<Bytes>, Option<FrameError>, Decoder) {
    let mut decoder = Decoder::new(max);
    decoder.push(Bytes::copy_from_slice(stream));
    let mut messages = Vec::new();
    loop {
        match decoder.next_message() {
            Ok(Some(m)) => messages.push(m),
            Ok(None) => return (messages, None, decoder),
            Err(e) => return (messages, Some(e), decoder),
        }
    }
}

/// Fuzz body for the frame decoder.
///
/// The first byte picks the message size limit; the rest alternates between
/// a chunk length byte and that many bytes of stream. Checks that the
/// messages and the error are exactly those of decoding the whole stream at
/// once, that no message exceeds the limit, that a failed decoder stays
/// failed, and that `finish` agrees with what is left buffered.
pub fn fuzz_decoder(data: &[u8]) {
    let mut input = Input { data };
    let max = match input.byte() % 4 {
        0 => 0,
        1 => 16,
        2 => 300,
        _ => 1 << 20,
    };
    let mut chunks: Vec<&[u8]> = Vec::new();
    while !input.is_empty() {
        let len = usize::from(input.byte());
        chunks.push(input.take(len));
    }
    let stream: Vec<u8> = chunks.concat();

    let mut decoder = Decoder::new(max);
    let mut messages = Vec::new();
    let mut error = None;
    let mut consumed = 0usize;
    let mut pushed = 0usize;
    'outer: for chunk in &chunks {
        decoder.push(Bytes::copy_from_slice(chunk));
        pushed += chunk.len();
        loop {
            match decoder.next_message() {
                Ok(Some(m)) => {
                    assert!(m.len() <= max, "message of {} bytes > max {max}", m.len());
                    consumed += crate::wire::codec::HEADER_LEN + m.len();
                    messages.push(m);
                }
                Ok(None) => break,
                Err(e) => {
                    error = Some(e);
                    break 'outer;
                }
            }
        }
        // Everything pushed is either returned or still buffered.
        assert_eq!(consumed + decoder.buffered_len(), pushed);
    }

    let (whole_messages, whole_error, whole) = decode_whole(max, &stream);
    assert_eq!(messages, whole_messages, "chunking changed the messages");
    match (&error, &whole_error) {
        (Some(a), Some(b)) => assert_eq!(a, b, "chunking changed the error"),
        (None, None) => {
            assert_eq!(decoder.buffered_len(), whole.buffered_len());
            match decoder.finish() {
                Ok(()) => assert_eq!(decoder.buffered_len(), 0),
                Err(FrameError::Truncated { buffered }) => {
                    assert!(buffered > 0);
                    assert_eq!(buffered, decoder.buffered_len());
                }
                Err(other) => panic!("finish returned {other:?} on a healthy decoder"),
            }
        }
        (a, b) => panic!("chunked error {a:?} vs whole-stream error {b:?}"),
    }
    if let Some(err) = error {
        // A failed decoder stays failed, whatever is pushed afterwards.
        decoder.push(Bytes::from_static(&[0, 0, 0, 0, 0]));
        assert_eq!(decoder.next_message(), Err(err.clone()));
        assert_eq!(decoder.finish(), Err(err));
    }
}

fn header_value(bytes: &[u8]) -> Option<HeaderValue> {
    HeaderValue::from_bytes(bytes).ok()
}

/// Fuzz body for status parsing.
///
/// Splits the input into a few header values (grpc-status, grpc-message, in
/// headers and in trailers), an HTTP status and an HTTP/2 reason code, then
/// runs every parser in [`crate::wire::status`], [`classify`] and
/// [`Endpoint::parse`] over them. Checks the precedence rules, that
/// percent-encoding round-trips, and that timeouts re-encode consistently.
pub fn fuzz_status(data: &[u8]) {
    let mut input = Input { data };
    let selector = input.byte();
    let http =
        StatusCode::from_u16(100 + (u16::from(input.byte()) << 8 | u16::from(input.byte())) % 900)
            .unwrap_or(StatusCode::OK);
    let http = if selector & 1 == 0 {
        StatusCode::OK
    } else {
        http
    };
    let reason = input.u32();

    let mut fields: Vec<&[u8]> = Vec::new();
    for _ in 0..4 {
        let len = usize::from(input.byte() % 64);
        fields.push(input.take(len));
    }
    let rest = input.take(usize::MAX);

    let mut headers = HeaderMap::new();
    let mut trailers = HeaderMap::new();
    let names = [
        HeaderName::from_static(crate::wire::status::GRPC_STATUS),
        HeaderName::from_static(crate::wire::status::GRPC_MESSAGE),
    ];
    for (i, field) in fields.iter().enumerate() {
        let Some(value) = header_value(field) else {
            continue;
        };
        let name = names[i % 2].clone();
        if i < 2 {
            if selector & 2 != 0 {
                headers.insert(name, value);
            }
        } else if selector & 4 != 0 {
            trailers.insert(name, value);
        }
    }

    let from_headers = Status::from_headers(&headers);
    let from_trailers = Status::from_headers(&trailers);
    let trailers_opt = if selector & 8 != 0 {
        Some(&trailers)
    } else {
        None
    };
    let status = response_status(http, &headers, trailers_opt);
    // Precedence.
    if let Some(s) = &from_headers {
        assert_eq!(&status, s);
    } else if let (Some(s), Some(_)) = (&from_trailers, trailers_opt) {
        assert_eq!(&status, s);
    } else if http != StatusCode::OK {
        assert_eq!(Some(&status), Status::from_http_status(http).as_ref());
    } else {
        assert_eq!(status.code, crate::wire::status::Code::Unknown);
    }
    let _ = status.to_string();
    let kind = classify(&status);
    let _ = (
        kind.retry(),
        kind.may_have_applied(),
        kind.is_invalid_token(),
    );

    let reset = Status::from_h2_reason(reason);
    assert!(!reset.message.is_empty());
    let _ = classify(&reset);

    // Percent-encoding of arbitrary text round-trips, and decoding arbitrary
    // bytes never fails.
    let text = String::from_utf8_lossy(rest);
    let encoded = percent_encode(&text);
    assert!(HeaderValue::from_str(&encoded).is_ok());
    assert_eq!(percent_decode(&encoded), text);
    let _ = percent_decode_bytes(rest);

    // Timeouts: whatever parses re-encodes to something that parses to the
    // same or a truncated value, in at most 8 digits.
    for field in fields.iter().chain(std::iter::once(&rest)) {
        let Ok(s) = std::str::from_utf8(field) else {
            continue;
        };
        if let Some(d) = parse_grpc_timeout(s) {
            let again = encode_grpc_timeout(d);
            assert!(again.len() <= 9, "{again}");
            // Our own encoding, not input: a failure here is the bug the
            // fuzz target exists to find.
            let back = parse_grpc_timeout(&again).expect("re-encoded timeout must parse");
            assert!(back <= d);
        }
        if let Ok(ep) = Endpoint::parse(s) {
            assert_eq!(Endpoint::parse(&ep.to_string()).as_ref(), Ok(&ep));
        }
    }
}

/// Drive [`crate::machine::Core`] with an arbitrary sequence of inputs
/// decoded from `data` and check its invariants after every step:
///
/// * every call gets exactly one `Complete`, never after its deadline;
/// * a mutation is sent again only after its previous attempt was reported
///   not processed (`NotSent`/`Refused`) or rejected before proposal;
/// * `may_have_applied` of every error: false for reads; true for a
///   mutation whose last attempt was sent and not proven unprocessed (in
///   flight, `Lost`, or a status that may have applied);
/// * at most one non-draining connection per endpoint, and no `Connect` to a
///   removed endpoint (by the core's own [`EndpointId`]s, which a restored
///   endpoint gets anew);
/// * time never needs to go backwards and nothing panics.
///
/// Every map is ordered, so an input replays the same run.
///
/// `start` is the virtual time the run begins at (the core reads no clock;
/// the caller picks any instant).
///
/// [`EndpointId`]: crate::machine::EndpointId
pub fn fuzz_machine(start: std::time::Instant, data: &[u8]) {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use crate::machine::{Config, Core, MemberStatus, Outcome, ResponseMeta};
    use crate::wire::status::Code;
    use etcdv3_proto::method::{KV_PUT, KV_RANGE, KV_TXN, LEASE_KEEP_ALIVE, WATCH_WATCH};

    let mut input = Input { data };
    let all: Vec<Endpoint> = ["127.0.0.1:2379", "127.0.0.2:2379", "127.0.0.3:2379"]
        .iter()
        .filter_map(|e| Endpoint::parse(e).ok())
        .collect();
    let mut now = start;
    let seed = input.byte();
    let config = Config {
        authenticate: seed & 1 == 1,
        ..Config::default()
    };
    let mut core = Core::new(config, all.clone(), u64::from(seed));
    let mut seen = Seen::default();
    for _ in 0..200 {
        if input.data.is_empty() {
            break;
        }
        let op = input.byte() % 21;
        match op {
            0..=2 => {
                let (method, mutation) = match input.byte() % 5 {
                    0 => (KV_RANGE, false),
                    1 => (KV_PUT, true),
                    2 => (KV_TXN, true),
                    3 => (LEASE_KEEP_ALIVE, false),
                    _ => (WATCH_WATCH, false),
                };
                let deadline = if method.is_streaming() {
                    None
                } else {
                    Some(now + Duration::from_millis(50 + 20 * u64::from(input.byte())))
                };
                let id = core.start_call(now, method, deadline);
                seen.live.insert(id, (deadline, mutation));
            }
            3 => {
                if let Some(&c) = pick(&mut input, &seen.connecting) {
                    seen.connecting.retain(|x| *x != c);
                    seen.ready.push(c);
                    core.handle_connected(now, c);
                }
            }
            4 => {
                if let Some(&c) = pick(&mut input, &seen.connecting) {
                    seen.connecting.retain(|x| *x != c);
                    core.handle_connect_failed(now, c, "refused");
                }
            }
            5..=8 => {
                if seen.inflight.is_empty() {
                    continue;
                }
                let i = input.byte() as usize % seen.inflight.len();
                let (call, attempt, _) = seen.inflight.remove(i);
                let mutation = seen.live.get(&call).is_some_and(|(_, m)| *m);
                let outcome = match input.byte() % 6 {
                    0 | 1 => Outcome::Success(Some(ResponseMeta {
                        member_id: 1,
                        raft_term: 2,
                        revision: 3,
                    })),
                    2 => Outcome::NotSent("gone".into()),
                    3 => Outcome::Refused("refused".into()),
                    4 => Outcome::Lost("reset".into()),
                    _ => Outcome::Status(match input.byte() % 8 {
                        0 => Status::new(Code::Unavailable, "etcdserver: no leader"),
                        1 => Status::new(Code::Unavailable, "etcdserver: request timed out"),
                        2 => Status::new(Code::Unauthenticated, "etcdserver: invalid auth token"),
                        3 => Status::new(Code::Unknown, "response ended without grpc-status"),
                        4 => Status::new(Code::Cancelled, "context canceled"),
                        5 => Status::new(Code::Unavailable, "etcdserver: leader changed"),
                        6 => Status::new(Code::ResourceExhausted, "etcdserver: too many requests"),
                        _ => Status::new(
                            Code::OutOfRange,
                            "etcdserver: mvcc: required revision has been compacted",
                        ),
                    }),
                };
                let processed = match &outcome {
                    Outcome::Lost(_) => true,
                    Outcome::Status(s) => crate::wire::error::classify(s).may_have_applied(),
                    _ => false,
                };
                if mutation {
                    if processed {
                        seen.maybe_processed.insert(call);
                    }
                    seen.in_doubt.insert(call, processed);
                }
                core.handle_outcome(now, call, attempt, outcome);
            }
            9 => {
                if let Some(&c) = pick(&mut input, &seen.ready) {
                    seen.ready.retain(|x| *x != c);
                    core.handle_connection_closed(now, c, "eof");
                }
            }
            10 => {
                if let Some(&c) = pick(&mut input, &seen.ready) {
                    core.handle_goaway(now, c);
                }
            }
            11 => {
                if let Some(&c) = pick(&mut input, &seen.ready) {
                    core.handle_pong(now, c);
                    let leader = u64::from(input.byte() % 3);
                    core.handle_probe_result(
                        now,
                        c,
                        Ok(MemberStatus {
                            member_id: 1,
                            leader,
                            raft_term: u64::from(input.byte() % 4),
                            revision: 3,
                        }),
                    );
                }
            }
            12 => {
                let ok = input.byte() % 2 == 0;
                core.handle_auth_result(
                    now,
                    if ok {
                        Ok(())
                    } else {
                        Err("bad password".into())
                    },
                );
            }
            13 => {
                let n = seen.live.len().max(1);
                let k = input.byte() as usize % n;
                if let Some(&call) = seen.live.keys().nth(k) {
                    seen.live.remove(&call);
                    seen.done.insert(call);
                    seen.inflight.retain(|(c, _, _)| *c != call);
                    core.cancel_call(now, call);
                }
            }
            14 => {
                // Remove or restore an endpoint (by address; the core gives
                // a restored endpoint a new id).
                let i = input.byte() as usize % all.len();
                if seen.removed_addrs.contains(&i) {
                    seen.removed_addrs.retain(|x| *x != i);
                } else if seen.removed_addrs.len() + 1 < all.len() {
                    seen.removed_addrs.push(i);
                }
                let keep: Vec<Endpoint> = all
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| !seen.removed_addrs.contains(j))
                    .map(|(_, e)| e.clone())
                    .collect();
                let before: Vec<_> = core.endpoint_states().iter().map(|s| s.id).collect();
                core.set_endpoints(now, keep);
                let after: Vec<_> = core.endpoint_states().iter().map(|s| s.id).collect();
                for id in before {
                    if !after.contains(&id) {
                        seen.removed.insert(id, ());
                    }
                }
            }
            15 | 16 => {
                // A stream call's headers arrive, or a message on it.
                let streams: Vec<_> = seen
                    .inflight
                    .iter()
                    .filter(|(c, _, _)| seen.live.get(c).is_some_and(|(d, _)| d.is_none()))
                    .map(|(c, _, _)| *c)
                    .collect();
                if let Some(&call) = pick(&mut input, &streams) {
                    if op == 15 {
                        core.handle_stream_established(now, call);
                    } else {
                        core.handle_stream_progress(now, call);
                    }
                }
            }
            19 | 20 => {
                // The owner of a stream sent a request that owes an answer,
                // or the server refused the stream's token.
                let streams: Vec<_> = seen
                    .inflight
                    .iter()
                    .filter(|(c, _, _)| seen.live.get(c).is_some_and(|(d, _)| d.is_none()))
                    .map(|(c, _, _)| *c)
                    .collect();
                if let Some(&call) = pick(&mut input, &streams) {
                    if op == 19 {
                        core.handle_stream_sent(now, call);
                    } else {
                        let _ = core.handle_auth_rejected(now, call);
                    }
                }
            }
            17 => {
                // A revision seen elsewhere (e.g. on a watch stream),
                // hostile values included.
                let rev = match input.byte() % 4 {
                    0 => i64::MAX,
                    1 => -1,
                    _ => i64::from(input.byte()),
                };
                core.handle_revision_seen(rev);
            }
            _ => {
                // Advance time: to the next timeout, or by a chosen step.
                let step = Duration::from_millis(u64::from(input.byte()) * 10);
                let target = match core.poll_timeout() {
                    Some(t) if input.byte() % 2 == 0 => t.max(now),
                    _ => now + step,
                };
                // Fire every timer due before `target` at its own instant,
                // as an adapter would.
                let mut guard = 0;
                while let Some(t) = core.poll_timeout() {
                    guard += 1;
                    if t > target || guard > 1000 {
                        break;
                    }
                    now = t.max(now);
                    core.handle_timeout(now);
                    seen.drain(&mut core, now);
                }
                now = target.max(now);
                core.handle_timeout(now);
            }
        }
        seen.drain(&mut core, now);
        // No unary call may stay alive past its deadline once the core has
        // seen that time.
        if let Some(t) = core.poll_timeout() {
            if t <= now {
                core.handle_timeout(now);
                seen.drain(&mut core, now);
            }
        }
        for (call, (deadline, _)) in &seen.live {
            if let Some(d) = deadline {
                assert!(*d > now, "{call:?} still alive after its deadline");
            }
        }
        // At most one connection per endpoint is opening (draining ones
        // excluded: the core no longer counts them as the endpoint's).
        let mut per_ep: BTreeMap<crate::machine::EndpointId, usize> = BTreeMap::new();
        for c in seen.connecting.iter() {
            if let Some(e) = seen.conn_ep.get(c) {
                *per_ep.entry(*e).or_default() += 1;
            }
        }
        for (e, n) in per_ep {
            assert!(n <= 1, "{n} connections opening to endpoint {e:?}");
        }
    }
    // The rest of the input is ignored.
}

/// One element of `items`, chosen by the next input byte.
fn pick<'a, T>(input: &mut Input<'_>, items: &'a [T]) -> Option<&'a T> {
    let b = input.byte() as usize;
    items.get(b % items.len().max(1))
}

/// What the simulated adapter of [`fuzz_machine`] knows, and the checks it
/// makes on every action the core emits. Ordered collections only: an
/// input must replay the same run.
#[derive(Default)]
struct Seen {
    /// Live calls: deadline, and whether the call is a mutation.
    live: std::collections::BTreeMap<crate::machine::CallId, (Option<std::time::Instant>, bool)>,
    done: std::collections::BTreeSet<crate::machine::CallId>,
    /// (call, attempt, conn) of attempts in flight.
    inflight: Vec<(crate::machine::CallId, u32, crate::machine::ConnId)>,
    /// Mutations whose last attempt may have been processed.
    maybe_processed: std::collections::BTreeSet<crate::machine::CallId>,
    /// Mutations sent at least once: whether the last attempt may have been
    /// processed (sent and not reported, `Lost`, or a status that may have
    /// applied).
    in_doubt: std::collections::BTreeMap<crate::machine::CallId, bool>,
    connecting: Vec<crate::machine::ConnId>,
    ready: Vec<crate::machine::ConnId>,
    /// The core's endpoint id of each connection.
    conn_ep: std::collections::BTreeMap<crate::machine::ConnId, crate::machine::EndpointId>,
    /// Endpoint ids the core removed (never to be connected again).
    removed: std::collections::BTreeMap<crate::machine::EndpointId, ()>,
    /// Indices into the address list currently left out of the set.
    removed_addrs: Vec<usize>,
}

impl Seen {
    /// Carry out the core's actions, checking each.
    fn drain(&mut self, core: &mut crate::machine::Core, now: std::time::Instant) {
        use crate::machine::Action;
        while let Some(action) = core.poll_action() {
            match action {
                Action::Connect { conn, endpoint, .. } => {
                    assert!(
                        !self.removed.contains_key(&endpoint),
                        "connect to removed endpoint {endpoint:?}"
                    );
                    self.conn_ep.insert(conn, endpoint);
                    self.connecting.push(conn);
                }
                Action::Close { conn } => {
                    self.connecting.retain(|c| *c != conn);
                    self.ready.retain(|c| *c != conn);
                }
                Action::Send {
                    call,
                    attempt,
                    conn,
                } => {
                    assert!(
                        !self.maybe_processed.contains(&call),
                        "mutation {call:?} re-sent after an attempt that may have been processed"
                    );
                    if self.live.get(&call).is_some_and(|(_, m)| *m) {
                        self.in_doubt.insert(call, true);
                    }
                    self.inflight.retain(|(c, _, _)| *c != call);
                    self.inflight.push((call, attempt, conn));
                }
                Action::Complete { call, result } => {
                    assert!(self.done.insert(call), "{call:?} completed twice");
                    let live = self.live.remove(&call);
                    if let Some((Some(d), _)) = live {
                        assert!(now <= d, "{call:?} completed after its deadline");
                    }
                    let mutation = live.is_some_and(|(_, m)| m);
                    if let Err(e) = &result {
                        if !mutation {
                            assert!(
                                !e.may_have_applied(),
                                "{call:?} is not a mutation but may have applied: {e}"
                            );
                        } else if self.in_doubt.get(&call).copied().unwrap_or(false) {
                            assert!(
                                e.may_have_applied(),
                                "mutation {call:?} may have been processed but its error says it was not: {e}"
                            );
                        }
                    }
                    self.inflight.retain(|(c, _, _)| *c != call);
                }
                Action::Ping { .. }
                | Action::Probe { .. }
                | Action::CheckLeader { .. }
                | Action::Authenticate => {}
            }
        }
    }
}
