//! Drive the sans-IO core by hand: events in, actions out, no IO at all.
//!
//! Two simulated etcd members stand in for the network. Member 1 is down
//! (every connect is refused); member 2 is up and keeps a tiny in-memory key
//! space that it serves with real gRPC frames and real prost messages. Time
//! is virtual: when the core has nothing for us to do, we jump the clock to
//! [`Core::poll_timeout`] and call [`Core::handle_timeout`].
//!
//! The run shows, in order: a put and a get that fail over past the dead
//! member; a put whose answer is lost (the core reports "outcome unknown"
//! and does not retry, although the member did apply it); a get whose answer
//! is lost (retried, succeeds); and a get against a member that went silent
//! (ends exactly at its deadline).
//!
//! ```text
//! cargo run -p etcdv3-core --example drive_by_hand
//! ```

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use etcdv3_core::endpoints::endpoint::Endpoint;
use etcdv3_core::machine::{
    Action, CallError, CallId, Config, Core, MemberStatus, Outcome, ResponseMeta,
};
use etcdv3_core::wire::codec::{self, Decoder};
use etcdv3_proto::etcdserverpb::{
    PutRequest, PutResponse, RangeRequest, RangeResponse, ResponseHeader,
};
use etcdv3_proto::method::{self, Method};
use etcdv3_proto::mvccpb::KeyValue;
use prost::Message;

/// How a simulated member behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Connections are refused.
    Down,
    /// Answers everything at once.
    Up,
    /// Accepts connections, never answers (a hung or cut-off member).
    Silent,
}

/// A fake etcd member: a key space and a revision counter.
struct Member {
    id: u64,
    address: &'static str,
    mode: Mode,
    /// Lose the next answer after applying the request (a connection reset
    /// between the member's work and our read).
    drop_next_answer: bool,
    revision: i64,
    store: BTreeMap<Vec<u8>, Vec<u8>>,
}

const RAFT_TERM: u64 = 3;

impl Member {
    fn new(id: u64, address: &'static str, mode: Mode) -> Self {
        Member {
            id,
            address,
            mode,
            drop_next_answer: false,
            revision: 1,
            store: BTreeMap::new(),
        }
    }

    fn header(&self) -> Option<ResponseHeader> {
        Some(ResponseHeader {
            cluster_id: 1,
            member_id: self.id,
            revision: self.revision,
            raft_term: RAFT_TERM,
        })
    }

    /// Serve one framed request; returns the framed answer.
    fn serve(&mut self, method: Method, request: Bytes) -> Bytes {
        let mut decoder = Decoder::new(codec::DEFAULT_MAX_DECODE_SIZE);
        decoder.push(request);
        let body = decoder.next_message().unwrap().unwrap();
        let max = codec::DEFAULT_MAX_ENCODE_SIZE;
        if method == method::KV_PUT {
            let req: PutRequest = codec::decode_message(body).unwrap();
            self.revision += 1;
            self.store.insert(req.key, req.value);
            codec::encode(
                &PutResponse {
                    header: self.header(),
                    ..Default::default()
                },
                max,
            )
        } else if method == method::KV_RANGE {
            let req: RangeRequest = codec::decode_message(body).unwrap();
            let kvs: Vec<KeyValue> = self
                .store
                .get(&req.key)
                .map(|value| KeyValue {
                    key: req.key.clone(),
                    value: value.clone(),
                    ..Default::default()
                })
                .into_iter()
                .collect();
            let count = kvs.len() as i64;
            codec::encode(
                &RangeResponse {
                    header: self.header(),
                    kvs,
                    count,
                    more: false,
                },
                max,
            )
        } else {
            unimplemented!("the fake member serves Put and Range only")
        }
        .unwrap()
    }
}

/// The "IO adapter": carries the core's actions out against the members and
/// feeds what happened back in.
struct Sim {
    core: Core,
    /// The virtual clock, and where it started.
    now: Instant,
    start: Instant,
    members: Vec<Member>,
    /// The framed request of each live call (re-sent on every attempt).
    requests: HashMap<CallId, Bytes>,
    /// The framed answer of each call's latest successful attempt.
    answers: HashMap<CallId, Bytes>,
}

impl Sim {
    fn new(members: Vec<Member>) -> Self {
        let endpoints = members
            .iter()
            .map(|m| Endpoint::parse(m.address).unwrap())
            .collect();
        let start = Instant::now();
        Sim {
            core: Core::new(Config::default(), endpoints, 7),
            now: start,
            start,
            members,
            requests: HashMap::new(),
            answers: HashMap::new(),
        }
    }

    /// One unary call, start to end: what `Client::unary` does over h2.
    fn call<Q: Message, A: Message + Default>(
        &mut self,
        method: Method,
        request: &Q,
        timeout: Duration,
    ) -> Result<A, CallError> {
        println!("{} {} (timeout {timeout:?})", self.clock(), method.path);
        let frame = codec::encode(request, codec::DEFAULT_MAX_ENCODE_SIZE).unwrap();
        let call = self
            .core
            .start_call(self.now, method, Some(self.now + timeout));
        self.requests.insert(call, frame);
        let result = self.run_until_complete(call);
        self.requests.remove(&call);
        let answer = self.answers.remove(&call);
        result.map(|()| {
            // On `Complete { Ok }` the latest attempt's answer is the result.
            let mut decoder = Decoder::new(codec::DEFAULT_MAX_DECODE_SIZE);
            decoder.push(answer.unwrap());
            codec::decode_message(decoder.next_message().unwrap().unwrap()).unwrap()
        })
    }

    /// The driver loop: drain actions, log events, then sleep (here: jump the
    /// virtual clock) until the core's next timer.
    fn run_until_complete(&mut self, call: CallId) -> Result<(), CallError> {
        for _ in 0..10_000 {
            while let Some(action) = self.core.poll_action() {
                let done = self.perform(action, call);
                while let Some(event) = self.core.poll_event() {
                    println!("{}   event  {event:?}", self.clock());
                }
                if let Some(result) = done {
                    return result;
                }
            }
            let at = self.core.poll_timeout().unwrap();
            self.now = self.now.max(at);
            self.core.handle_timeout(self.now);
        }
        panic!("the call never completed");
    }

    /// Virtual time since the start, for the log.
    fn clock(&self) -> String {
        format!("[{:7.3}s]", (self.now - self.start).as_secs_f64())
    }

    fn member_at(&mut self, endpoint: &Endpoint) -> &mut Member {
        let address = endpoint.authority();
        self.members
            .iter_mut()
            .find(|m| m.address == address)
            .unwrap()
    }

    fn member_on(&mut self, conn: etcdv3_core::machine::ConnId) -> &mut Member {
        let id = self.core.conn_endpoint(conn).unwrap();
        let endpoint = self.core.endpoint(id).unwrap().clone();
        self.member_at(&endpoint)
    }

    /// Carry out one action; `Some` when it completes the call awaited.
    fn perform(&mut self, action: Action, awaited: CallId) -> Option<Result<(), CallError>> {
        let now = self.now;
        let t = self.clock();
        match action {
            Action::Connect { conn, target, .. } => {
                let mode = self.member_at(&target).mode;
                println!("{t}   action connect {target} -> {mode:?}");
                match mode {
                    Mode::Down => self
                        .core
                        .handle_connect_failed(now, conn, "connection refused"),
                    Mode::Up => self.core.handle_connected(now, conn),
                    // The handshake never completes; the core's connect
                    // timeout will fire.
                    Mode::Silent => {}
                }
            }
            Action::Close { conn } => println!("{t}   action close {conn:?}"),
            Action::Send {
                call,
                attempt,
                conn,
            } => {
                let method = self.core.call_method(call).unwrap();
                let request = self.requests[&call].clone();
                let member = self.member_on(conn);
                println!(
                    "{t}   action send attempt {attempt} to member {}",
                    member.id
                );
                if member.mode == Mode::Silent {
                    return None; // no answer, ever
                }
                let answer = member.serve(method, request);
                let lost = std::mem::take(&mut member.drop_next_answer);
                self.now += Duration::from_millis(1);
                let outcome = if lost {
                    println!("{t}   (the answer is lost on the way back)");
                    Outcome::Lost("connection reset by peer".into())
                } else {
                    // Any etcd response starts with its header (field 1), so
                    // decoding just the header out of the body works for all.
                    let meta = header_of(&answer).map(|h| ResponseMeta {
                        member_id: h.member_id,
                        raft_term: h.raft_term,
                        revision: h.revision,
                    });
                    self.answers.insert(call, answer);
                    Outcome::Success(meta)
                };
                self.core.handle_outcome(self.now, call, attempt, outcome);
            }
            Action::Ping { conn } => {
                println!("{t}   action ping {conn:?}");
                if self.member_on(conn).mode != Mode::Silent {
                    self.core.handle_pong(now, conn);
                }
            }
            Action::Probe { conn, .. } => {
                println!("{t}   action status probe on {conn:?}");
                let member = self.member_on(conn);
                if member.mode != Mode::Silent {
                    let status = MemberStatus {
                        member_id: member.id,
                        leader: 2,
                        raft_term: RAFT_TERM,
                        revision: member.revision,
                    };
                    self.core.handle_probe_result(now, conn, Ok(status));
                }
            }
            Action::CheckLeader { conn, .. } => {
                println!("{t}   action leader check on {conn:?}");
                if self.member_on(conn).mode != Mode::Silent {
                    self.core.handle_leader_check(now, conn, Ok(()));
                }
            }
            Action::Authenticate => self.core.handle_auth_result(now, Err("no user".into())),
            Action::Complete { call, result } => {
                println!("{t}   action complete {call:?}: {result:?}");
                if call == awaited {
                    return Some(result);
                }
            }
        }
        None
    }
}

/// The `header` field of any etcd response body.
fn header_of(frame: &Bytes) -> Option<ResponseHeader> {
    #[derive(Clone, PartialEq, Message)]
    struct HeaderOnly {
        #[prost(message, optional, tag = "1")]
        header: Option<ResponseHeader>,
    }
    let mut decoder = Decoder::new(codec::DEFAULT_MAX_DECODE_SIZE);
    decoder.push(frame.clone());
    let body = decoder.next_message().ok()??;
    codec::decode_message::<HeaderOnly>(body).ok()?.header
}

fn put(key: &str, value: &str) -> PutRequest {
    PutRequest {
        key: key.into(),
        value: value.into(),
        ..Default::default()
    }
}

fn get(key: &str) -> RangeRequest {
    RangeRequest {
        key: key.into(),
        ..Default::default()
    }
}

/// The whole scenario, with its checks.
fn run() {
    let mut sim = Sim::new(vec![
        Member::new(1, "127.0.0.1:2379", Mode::Down),
        Member::new(2, "127.0.0.2:2379", Mode::Up),
    ]);
    let second = Duration::from_secs(1);

    // 1. A put and a get go through although member 1 refuses connections.
    let resp: PutResponse = sim
        .call(method::KV_PUT, &put("greeting", "hello"), 5 * second)
        .unwrap();
    assert_eq!(resp.header.unwrap().revision, 2);
    let resp: RangeResponse = sim
        .call(method::KV_RANGE, &get("greeting"), 5 * second)
        .unwrap();
    assert_eq!(resp.kvs[0].value, b"hello");

    // 2. The answer to a put is lost: the member applied it, but the client
    //    cannot know. The core does not retry a mutation here; it says so.
    sim.members[1].drop_next_answer = true;
    let err = sim
        .call::<_, PutResponse>(method::KV_PUT, &put("greeting", "again"), 5 * second)
        .unwrap_err();
    assert!(err.may_have_applied(), "{err}");
    assert_eq!(sim.members[1].store[&b"greeting".to_vec()], b"again");

    // 3. The answer to a get is lost: reads are repeatable, so it is retried.
    sim.members[1].drop_next_answer = true;
    let resp: RangeResponse = sim
        .call(method::KV_RANGE, &get("greeting"), 5 * second)
        .unwrap();
    assert_eq!(resp.kvs[0].value, b"again");

    // 4. Member 2 goes silent: nothing answers, and the call ends at its
    //    deadline, not later (virtual time, so this takes no real time).
    sim.members[1].mode = Mode::Silent;
    let started = sim.now;
    let err = sim
        .call::<_, RangeResponse>(method::KV_RANGE, &get("greeting"), 2 * second)
        .unwrap_err();
    assert!(matches!(err, CallError::DeadlineExceeded { .. }), "{err}");
    assert_eq!(sim.now - started, 2 * second);
    println!(
        "done: {} call(s) still in progress",
        sim.core.calls_in_progress()
    );
    assert_eq!(sim.core.calls_in_progress(), 0);
}

fn main() {
    run();
}

#[test]
fn drive_by_hand() {
    run();
}
