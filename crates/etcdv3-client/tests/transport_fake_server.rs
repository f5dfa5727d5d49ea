//! The client against scripted HTTP/2 servers on 127.0.0.1: GOAWAY with a
//! last-stream-id below an in-flight Put, closing the client with a Put in
//! flight, and a token refresh while calls keep going.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use etcdv3_client::api::{GetOptions, PutOptions};
use etcdv3_client::{Client, ClientOptions, Error};

mod common;
use common::Tokio;

fn client(url: &str, options: ClientOptions) -> Client {
    Client::new(Arc::new(Tokio), [url], options).unwrap()
}

// ---------------------------------------------------------------- raw frames

const HEADERS: u8 = 1;
const SETTINGS: u8 = 4;
const PING: u8 = 6;
const GOAWAY: u8 = 7;
const END_STREAM: u8 = 1;
const END_HEADERS: u8 = 4;

fn read_frame(s: &mut TcpStream) -> std::io::Result<(u8, u8, u32, Vec<u8>)> {
    let mut h = [0u8; 9];
    s.read_exact(&mut h)?;
    let len = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
    let id = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload)?;
    Ok((h[3], h[4], id, payload))
}

fn write_frame(s: &mut TcpStream, ty: u8, flags: u8, id: u32, payload: &[u8]) {
    let len = (payload.len() as u32).to_be_bytes();
    let mut f = vec![len[1], len[2], len[3], ty, flags];
    f.extend_from_slice(&id.to_be_bytes());
    f.extend_from_slice(payload);
    let _ = s.write_all(&f);
}

/// HPACK literal header field without indexing, literal name, no Huffman.
fn literal(out: &mut Vec<u8>, name: &str, value: &str) {
    out.push(0);
    out.push(name.len() as u8);
    out.extend_from_slice(name.as_bytes());
    out.push(value.len() as u8);
    out.extend_from_slice(value.as_bytes());
}

/// An OK gRPC answer with an empty message (a default `PutResponse`).
fn answer_ok(s: &mut TcpStream, id: u32) {
    let mut h = vec![0x88]; // :status 200 (static table)
    literal(&mut h, "content-type", "application/grpc");
    write_frame(s, HEADERS, END_HEADERS, id, &h);
    write_frame(s, 0, 0, id, &[0, 0, 0, 0, 0]);
    let mut t = Vec::new();
    literal(&mut t, "grpc-status", "0");
    write_frame(s, HEADERS, END_HEADERS | END_STREAM, id, &t);
}

fn goaway(s: &mut TcpStream, last: u32) {
    let mut p = last.to_be_bytes().to_vec();
    p.extend_from_slice(&0u32.to_be_bytes()); // NO_ERROR, as etcd's graceful stop
    write_frame(s, GOAWAY, 0, 0, &p);
}

/// What a scripted connection does at a request's HEADERS.
enum Script {
    /// GOAWAY with last-stream-id below the request, keep the connection.
    GoawayBelow,
    /// GOAWAY with last-stream-id = the request, then close the socket.
    GoawayAtThenClose,
    /// Close the socket, no GOAWAY (a member that died).
    Close,
    /// Never answer.
    Silent,
    /// Answer OK.
    Ok,
}

/// A server whose n-th connection follows `scripts[n]` (the last one for
/// any later connection). Counts the requests (HEADERS) it saw.
fn raw_server(scripts: Vec<Script>) -> (String, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let seen = requests.clone();
    let scripts = Arc::new(scripts);
    std::thread::spawn(move || {
        for (n, s) in l.incoming().enumerate() {
            let Ok(mut s) = s else { return };
            let scripts = scripts.clone();
            let seen = seen.clone();
            std::thread::spawn(move || {
                let script = &scripts[n.min(scripts.len() - 1)];
                let mut preface = [0u8; 24];
                if s.read_exact(&mut preface).is_err() {
                    return;
                }
                write_frame(&mut s, SETTINGS, 0, 0, &[]);
                while let Ok((ty, flags, id, payload)) = read_frame(&mut s) {
                    match ty {
                        SETTINGS if flags & 1 == 0 => write_frame(&mut s, SETTINGS, 1, 0, &[]),
                        PING if flags & 1 == 0 => write_frame(&mut s, PING, 1, 0, &payload),
                        HEADERS => {
                            seen.fetch_add(1, Ordering::SeqCst);
                            match script {
                                Script::GoawayBelow => goaway(&mut s, id.saturating_sub(2)),
                                Script::GoawayAtThenClose => {
                                    goaway(&mut s, id);
                                    let _ = s.shutdown(Shutdown::Both);
                                    return;
                                }
                                Script::Close => {
                                    let _ = s.shutdown(Shutdown::Both);
                                    return;
                                }
                                Script::Silent => {}
                                Script::Ok => answer_ok(&mut s, id),
                            }
                        }
                        _ => {}
                    }
                }
            });
        }
    });
    (url, requests)
}

fn opts() -> ClientOptions {
    let mut o = ClientOptions::default().with_timeout(Duration::from_secs(5));
    // No status probes: the servers count every request they see.
    o.core.probe_interval = None;
    o
}

#[tokio::test]
async fn read_above_goaway_last_stream_id_is_retried_on_a_new_connection() {
    let (url, requests) = raw_server(vec![Script::GoawayBelow, Script::Ok]);
    let c = client(&url, opts());
    let r = c.get("k", GetOptions::new()).await;
    assert!(r.is_ok(), "the refused Range must be retried: {r:?}");
    assert_eq!(
        requests.load(Ordering::SeqCst),
        2,
        "sent once per connection"
    );
}

#[tokio::test]
async fn put_failed_by_goaway_after_it_was_sent_is_never_sent_twice() {
    // h2 cannot tell a stream above the GOAWAY's last-stream-id from one
    // below it that broke with the connection: the Put is reported as
    // outcome unknown, never re-sent.
    let (url, requests) = raw_server(vec![Script::GoawayBelow, Script::Ok]);
    let c = client(&url, opts());
    let e = c.put("k", "v", PutOptions::new()).await.unwrap_err();
    assert!(e.is_outcome_unknown() && e.may_have_applied(), "{e}");
    assert_eq!(requests.load(Ordering::SeqCst), 1, "sent once");
}

#[tokio::test]
async fn put_below_goaway_last_stream_id_then_connection_lost_is_unknown() {
    let (url, _) = raw_server(vec![Script::GoawayAtThenClose, Script::Ok]);
    let c = client(&url, opts());
    let e = c.put("k", "v", PutOptions::new()).await.unwrap_err();
    assert!(e.is_outcome_unknown(), "{e}");
    assert!(e.may_have_applied(), "{e}");
}

#[tokio::test]
async fn put_lost_with_its_connection_chains_to_the_io_error() {
    // The member went away with the put in flight: outcome unknown, and
    // the transport's error is down the source() chain, typed.
    let (url, requests) = raw_server(vec![Script::Close, Script::Ok]);
    let c = client(&url, opts());
    let e = c.put("k", "v", PutOptions::new()).await.unwrap_err();
    assert!(e.is_outcome_unknown(), "{e}");
    assert_eq!(requests.load(Ordering::SeqCst), 1, "sent once");
    let io = std::iter::successors(Some(&e as &(dyn std::error::Error + 'static)), |e| {
        e.source()
    })
    .find_map(|s| s.downcast_ref::<std::io::Error>());
    let Some(io) = io else {
        panic!("no io::Error under {e}");
    };
    // The error's text names the cause it carries.
    assert!(e.to_string().contains(&io.to_string()), "{e} / {io}");
}

#[tokio::test]
async fn close_with_a_put_in_flight_may_have_applied() {
    let (url, requests) = raw_server(vec![Script::Silent]);
    let c = client(&url, opts());
    let put = tokio::spawn({
        let c = c.clone();
        async move { c.put("k", "v", PutOptions::new()).await }
    });
    let t0 = Instant::now();
    while requests.load(Ordering::SeqCst) == 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "the Put never arrived"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    c.close();
    let e = put.await.unwrap().unwrap_err();
    assert!(
        matches!(e, Error::ClosedInFlight { .. }) && e.may_have_applied(),
        "{e:?}"
    );
    // A call after the close never went out.
    let e = c.get("k", GetOptions::new()).await.unwrap_err();
    assert!(matches!(e, Error::Closed) && !e.may_have_applied(), "{e:?}");
}

// ------------------------------------------------------------ token refresh

/// Requests as an h2 server saw them: (path, token).
#[derive(Default)]
struct AuthServer {
    seen: Mutex<Vec<(String, Option<String>)>>,
    authenticates: AtomicUsize,
}

fn grpc_frame(msg: &impl prost::Message) -> Bytes {
    let body = msg.encode_to_vec();
    let mut f = vec![0u8];
    f.extend_from_slice(&(body.len() as u32).to_be_bytes());
    f.extend_from_slice(&body);
    Bytes::from(f)
}

impl AuthServer {
    /// Authenticate #1 answers `t1` at once, later ones `t<n>` after 400 ms.
    /// A Put without a token: "user name is empty"; with `t1` after the first
    /// `t1` Put: "invalid auth token"; otherwise OK.
    async fn handle(
        &self,
        req: http::Request<h2::RecvStream>,
        mut respond: h2::server::SendResponse<Bytes>,
    ) {
        let path = req.uri().path().to_string();
        let token = req
            .headers()
            .get("token")
            .map(|v| v.to_str().unwrap().to_string());
        if path.ends_with("Cluster/MemberList") {
            // Recorded with its `hasleader` header in place of a token.
            let hasleader = req
                .headers()
                .get("hasleader")
                .map(|v| v.to_str().unwrap().to_string());
            self.seen.lock().unwrap().push((path, hasleader));
            let resp = http::Response::builder()
                .header("content-type", "application/grpc")
                .header("grpc-status", "14")
                .header("grpc-message", "etcdserver: no leader")
                .body(())
                .unwrap();
            let _ = respond.send_response(resp, true);
            return;
        }
        let t1_puts = {
            let mut seen = self.seen.lock().unwrap();
            seen.push((path.clone(), token.clone()));
            seen.iter()
                .filter(|(p, t)| p.ends_with("KV/Put") && t.as_deref() == Some("t1"))
                .count()
        };
        let (status, message, body) = if path.ends_with("Auth/Authenticate") {
            let n = self.authenticates.fetch_add(1, Ordering::SeqCst) + 1;
            if n > 1 {
                tokio::time::sleep(Duration::from_millis(400)).await;
            }
            let resp = etcdv3_client::proto::etcdserverpb::AuthenticateResponse {
                token: format!("t{n}"),
                ..Default::default()
            };
            ("0", "", Some(grpc_frame(&resp)))
        } else {
            match token.as_deref() {
                None => ("3", "etcdserver: user name is empty", None),
                Some("t1") if t1_puts > 1 => ("16", "etcdserver: invalid auth token", None),
                Some(_) => (
                    "0",
                    "",
                    Some(grpc_frame(
                        &etcdv3_client::proto::etcdserverpb::PutResponse::default(),
                    )),
                ),
            }
        };
        let resp = http::Response::builder()
            .header("content-type", "application/grpc")
            .body(())
            .unwrap();
        let Ok(mut send) = respond.send_response(resp, false) else {
            return;
        };
        if let Some(b) = body {
            let _ = send.send_data(b, false);
        }
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", status.parse().unwrap());
        if !message.is_empty() {
            trailers.insert("grpc-message", message.parse().unwrap());
        }
        let _ = send.send_trailers(trailers);
    }
}

async fn auth_server() -> (String, Arc<AuthServer>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let state = Arc::new(AuthServer::default());
    let st = state.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            let st = st.clone();
            tokio::spawn(async move {
                let Ok(mut conn) = h2::server::handshake(tcp).await else {
                    return;
                };
                while let Some(Ok((req, respond))) = conn.accept().await {
                    let st = st.clone();
                    tokio::spawn(async move { st.handle(req, respond).await });
                }
            });
        }
    });
    (url, state)
}

#[tokio::test]
async fn calls_during_a_token_refresh_keep_the_old_token() {
    let (url, server) = auth_server().await;
    let c = client(&url, opts().with_user("root", "pw"));
    // Gets the first token (t1) and succeeds with it.
    c.put("a", "1", PutOptions::new()).await.unwrap();
    // t1 is now refused: this Put starts a refresh that takes 400 ms.
    let b = tokio::spawn({
        let c = c.clone();
        async move { c.put("b", "1", PutOptions::new()).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Started while the refresh runs.
    c.put("c", "1", PutOptions::new()).await.unwrap();
    b.await.unwrap().unwrap();
    let seen = server.seen.lock().unwrap().clone();
    let tokenless_puts = seen
        .iter()
        .filter(|(p, t)| p.ends_with("KV/Put") && t.is_none())
        .count();
    assert!(
        tokenless_puts <= 1,
        "only a Put before the first token may go without one: {seen:?}"
    );
    assert!(
        seen.iter()
            .filter(|(p, _)| p.ends_with("Auth/Authenticate"))
            .all(|(_, t)| t.is_none()),
        "Authenticate must carry no token: {seen:?}"
    );
    assert!(server.authenticates.load(Ordering::SeqCst) >= 2, "{seen:?}");
}

#[tokio::test]
async fn auto_sync_asks_only_a_member_with_a_leader() {
    let (url, server) = auth_server().await;
    let mut options = opts().with_auto_sync(Duration::from_millis(20));
    // Even when the user's calls do not require a leader.
    options.require_leader = false;
    let c = client(&url, options);
    let t0 = Instant::now();
    let lists = loop {
        let lists: Vec<_> = server
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p.ends_with("Cluster/MemberList"))
            .cloned()
            .collect();
        if !lists.is_empty() {
            break lists;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "no member list asked"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(
        lists.iter().all(|(_, l)| l.as_deref() == Some("true")),
        "{lists:?}"
    );
    // The refused sync left the endpoints alone.
    let states = c.endpoint_states();
    assert_eq!(states.len(), 1);
    assert_eq!(states[0].endpoint.to_string(), url);
}
