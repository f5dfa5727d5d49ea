//! The IO side: drives [`etcdv3_core::machine::Core`] over h2 connections.
//!
//! One mutex guards the core and the tables of connections and calls; it is
//! never held across an await. Whoever feeds the core an input (a call
//! future, a connection task, the timer task) drains its actions right
//! there ([`Shared::with_state`]): connections are spawned as tasks, sends
//! are handed to the waiting call future, which runs the h2 stream itself
//! (no task per call). Tasks are spawned and wakers woken only after the
//! lock is released: a runtime may poll a new task on the spot, and the
//! task may need the lock at once.

pub(crate) mod attempt;
pub(crate) mod call;
mod conn;
pub(crate) mod stream;
pub(crate) mod tasks;
#[cfg(feature = "tls")]
mod tls;

use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Poll, Waker};
use std::time::Instant;

use bytes::Bytes;
use etcdv3_core::endpoints::endpoint::{Endpoint, Scheme};
use etcdv3_core::machine::{Action, CallError, CallId, Cause, ConnId, Core, Event, IdMap};
use http::HeaderValue;

use crate::error::{Error, Result};
use crate::options::ClientOptions;
use crate::runtime::Runtime;

use conn::ConnCtl;

/// What a waiting call is told to do next.
pub(crate) enum Step {
    /// Run attempt `attempt` on this connection.
    Send {
        attempt: u32,
        conn: ConnId,
        target: Target,
    },
    /// The call is over; on success, whether the answer came back below the
    /// revision the client had seen (the core's `Event::StaleRead`).
    Done(
        std::result::Result<(), CallError>,
        Option<crate::options::StaleRead>,
    ),
}

/// Everything needed to put a request on a connection.
#[derive(Clone)]
pub(crate) struct Target {
    pub(crate) sender: h2::client::SendRequest<Bytes>,
    pub(crate) scheme: http::uri::Scheme,
    pub(crate) authority: http::uri::Authority,
    pub(crate) token: Option<HeaderValue>,
    /// The call the attempt belongs to (`None` for the core's probes).
    pub(crate) call: Option<CallId>,
}

#[derive(Default)]
pub(crate) struct Slot {
    waker: Option<Waker>,
    next: Option<Step>,
    /// The core marked the call's answer stale (`Event::StaleRead`, which
    /// comes with its `Complete`).
    stale: Option<crate::options::StaleRead>,
}

struct ConnEntry {
    sender: Option<h2::client::SendRequest<Bytes>>,
    ctl: Arc<ConnCtl>,
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
}

#[derive(Default)]
struct TimerCtl {
    deadline: Option<Instant>,
    waker: Option<Waker>,
    notified: bool,
}

pub(crate) struct State {
    pub(crate) core: Core,
    conns: IdMap<ConnId, ConnEntry>,
    calls: IdMap<CallId, Slot>,
    timer: TimerCtl,
    token: Option<HeaderValue>,
    closed: bool,
    wake: Vec<Waker>,
    /// Tasks to spawn once the lock is released (see the module docs).
    spawn: Vec<crate::runtime::BoxFuture<'static, ()>>,
    /// rustls' error of the last TLS rejection of each endpoint (as the
    /// core names it), for the calls' `Error::Tls::source`.
    #[cfg(feature = "tls")]
    pub(crate) tls_causes: std::collections::HashMap<String, crate::error::TlsCause>,
    /// The last connection failure of each endpoint (as the core names
    /// it): the text reported to the core and the error behind it, for the
    /// `source()` of the call errors whose text names it (see
    /// [`attach_cause`]). One entry per endpoint, replaced by the next
    /// failure.
    pub(crate) conn_causes: std::collections::HashMap<String, (String, Cause)>,
    /// The last failed token request: the text reported to the core and
    /// the error behind it.
    pub(crate) auth_cause: Option<(String, Cause)>,
}

/// State shared by the client handles and its background tasks.
pub(crate) struct Shared {
    pub(crate) runtime: Arc<dyn Runtime>,
    pub(crate) options: ClientOptions,
    state: Mutex<State>,
    /// The client's long-lived stream tasks (watch, lease keepalive).
    pub(crate) tasks: tasks::Tasks,
    #[cfg(feature = "tls")]
    tls: Option<tls::Connector>,
    status_probe: Bytes,
    /// The request of a leader check (`Action::CheckLeader`): a
    /// linearizable range of the key `"\0"`, count only.
    leader_check: Bytes,
    /// The credentials token refreshes use (from the options, replaced by
    /// `Client::update_user`).
    pub(crate) user: Mutex<Option<(String, String)>>,
    /// Endpoints whose failed handshake was already checked for a scheme
    /// mismatch and found not to be one (`conn::scheme_mismatch`): not
    /// checked again until a connection to them succeeds, so a member that
    /// keeps failing (an outage) costs one connection attempt per failure,
    /// not two.
    pub(crate) scheme_checked: Mutex<std::collections::HashSet<String>>,
    /// Wakers of handles that must notice [`Shared::close`] although
    /// nothing else would wake them (a `WatchGroup` with no live watcher
    /// gets no item to say so); see [`Shared::wake_on_close`].
    close_wakers: Mutex<Vec<Weak<futures_util::task::AtomicWaker>>>,
}

impl Shared {
    /// The client's error for a call's failure: a TLS rejection carries
    /// rustls' error as its `source()` when the handshake reported one; a
    /// failure whose text names a transport error carries that error
    /// (see [`attach_cause`]).
    pub(crate) fn call_error(&self, e: CallError) -> Error {
        self.call_error_with(e, None)
    }

    /// [`Shared::call_error`], given the call's last failed attempt.
    pub(crate) fn call_error_with(
        &self,
        mut e: CallError,
        attempt: Option<&(String, Cause)>,
    ) -> Error {
        let st = self.lock();
        let reports = attempt
            .into_iter()
            .chain(&st.auth_cause)
            .chain(st.conn_causes.values());
        attach_cause(&mut e, reports);
        #[cfg_attr(not(feature = "tls"), allow(unused_mut))]
        let mut err = Error::from(e);
        #[cfg(feature = "tls")]
        if let Error::Tls {
            endpoint, source, ..
        } = &mut err
        {
            *source = st.tls_causes.get(endpoint.as_str()).cloned();
        }
        err
    }

    pub(crate) fn new(
        runtime: Arc<dyn Runtime>,
        endpoints: Vec<Endpoint>,
        options: ClientOptions,
    ) -> Result<Arc<Shared>> {
        let needs_tls = endpoints.iter().any(|e| e.is_tls());
        #[cfg(feature = "tls")]
        let tls = match (&options.tls, needs_tls) {
            (Some(t), _) => Some(tls::Connector::new(t)?),
            (None, true) => {
                return Err(Error::Config(
                    "an https:// endpoint needs TLS options (ClientOptions::with_tls)".into(),
                ))
            }
            (None, false) => None,
        };
        #[cfg(not(feature = "tls"))]
        if needs_tls {
            return Err(Error::Config(
                "an https:// endpoint needs the `tls` feature of etcdv3-client".into(),
            ));
        }
        let seed = options.seed.unwrap_or_else(clock_seed);
        let mut config = options.core.clone();
        // With credentials, every call (streams included) waits for a token.
        config.authenticate |= options.user.is_some();
        let core = Core::new(config, endpoints, seed);
        let status_probe = etcdv3_core::wire::codec::encode(
            &etcdv3_proto::etcdserverpb::StatusRequest {},
            etcdv3_core::wire::codec::DEFAULT_MAX_ENCODE_SIZE,
        )
        .map_err(|source| Error::Frame {
            method: etcdv3_proto::method::MAINTENANCE_STATUS.path,
            source,
        })?;
        let leader_check = etcdv3_core::wire::codec::encode(
            &etcdv3_proto::etcdserverpb::RangeRequest {
                key: vec![0],
                limit: 1,
                count_only: true,
                ..Default::default()
            },
            etcdv3_core::wire::codec::DEFAULT_MAX_ENCODE_SIZE,
        )
        .map_err(|source| Error::Frame {
            method: etcdv3_proto::method::KV_RANGE.path,
            source,
        })?;
        let tasks = tasks::Tasks::new(
            seed.rotate_left(17) ^ 0x5354_5245_414d,
            etcdv3_core::streams::StreamConfig {
                backoff: options.core.stream_backoff.clone(),
                ..Default::default()
            },
        );
        let user = Mutex::new(options.user.clone());
        let shared = Arc::new(Shared {
            user,
            scheme_checked: Mutex::new(std::collections::HashSet::new()),
            close_wakers: Mutex::new(Vec::new()),
            runtime,
            tasks,
            options,
            state: Mutex::new(State {
                core,
                conns: IdMap::default(),
                calls: IdMap::default(),
                timer: TimerCtl::default(),
                token: None,
                closed: false,
                wake: Vec::new(),
                spawn: Vec::new(),
                #[cfg(feature = "tls")]
                tls_causes: std::collections::HashMap::new(),
                conn_causes: std::collections::HashMap::new(),
                auth_cause: None,
            }),
            #[cfg(feature = "tls")]
            tls,
            status_probe,
            leader_check,
        });
        let timer = shared.clone();
        shared
            .runtime
            .spawn(Box::pin(async move { timer_task(timer).await }));
        Ok(shared)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock would be a bug in this crate; the
        // state is still consistent enough to shut down, so recover it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Run `f` on the state, then carry out the core's actions, then spawn
    /// the tasks they need and wake whoever they concern (outside the
    /// lock: a runtime may poll a new task inline, and it may lock the
    /// state at once).
    pub(crate) fn with_state<R>(self: &Arc<Self>, f: impl FnOnce(&mut State, Instant) -> R) -> R {
        let now = self.runtime.now();
        let (r, wake, spawn) = {
            let mut st = self.lock();
            let r = f(&mut st, now);
            self.drive(&mut st);
            (
                r,
                std::mem::take(&mut st.wake),
                std::mem::take(&mut st.spawn),
            )
        };
        for task in spawn {
            self.runtime.spawn(task);
        }
        for w in wake {
            w.wake();
        }
        r
    }

    /// Carry out the core's actions. Called with the lock held: tasks go to
    /// `st.spawn`, never to the runtime directly.
    fn drive(self: &Arc<Self>, st: &mut State) {
        while let Some(action) = st.core.poll_action() {
            match action {
                Action::Connect { conn, target, .. } => self.start_conn(st, conn, target),
                Action::Close { conn } => {
                    if let Some(entry) = st.conns.remove(&conn) {
                        entry.ctl.close();
                    }
                }
                Action::Send {
                    call,
                    attempt,
                    conn,
                } => {
                    // The token request itself goes without one: etcd
                    // rejects a stale token before looking at the request.
                    let is_auth = st
                        .core
                        .call_method(call)
                        .is_some_and(|m| m.path == etcdv3_proto::method::AUTH_AUTHENTICATE.path);
                    let token = if is_auth { None } else { st.token.clone() };
                    let target = st.conns.get(&conn).and_then(|c| {
                        c.sender.clone().map(|sender| Target {
                            sender,
                            scheme: c.scheme.clone(),
                            authority: c.authority.clone(),
                            token,
                            call: Some(call),
                        })
                    });
                    match (target, st.calls.get_mut(&call)) {
                        (Some(target), Some(slot)) => {
                            slot.next = Some(Step::Send {
                                attempt,
                                conn,
                                target,
                            });
                            if let Some(w) = slot.waker.take() {
                                st.wake.push(w);
                            }
                        }
                        (None, Some(_)) => {
                            let now = self.runtime.now();
                            st.core.handle_outcome(
                                now,
                                call,
                                attempt,
                                etcdv3_core::machine::Outcome::NotSent(
                                    "connection not ready".into(),
                                ),
                            );
                        }
                        (_, None) => {
                            let now = self.runtime.now();
                            st.core.cancel_call(now, call);
                        }
                    }
                }
                Action::Ping { conn } => {
                    if let Some(c) = st.conns.get(&conn) {
                        c.ctl.ping();
                    }
                }
                Action::Probe { conn, .. } => {
                    if let Some(target) = st.side_target(conn) {
                        let shared = self.clone();
                        st.spawn.push(Box::pin(
                            async move { call::probe(shared, conn, target).await },
                        ));
                    }
                }
                Action::CheckLeader { conn, .. } => {
                    if let Some(target) = st.side_target(conn) {
                        let shared = self.clone();
                        st.spawn.push(Box::pin(async move {
                            call::check_leader(shared, conn, target).await
                        }));
                    }
                }
                Action::Authenticate => {
                    let shared = self.clone();
                    st.spawn
                        .push(Box::pin(async move { call::authenticate(shared).await }));
                }
                Action::Complete { call, result } => {
                    if let Some(slot) = st.calls.get_mut(&call) {
                        slot.next = Some(Step::Done(result, None));
                        if let Some(w) = slot.waker.take() {
                            st.wake.push(w);
                        }
                    }
                }
            }
        }
        while let Some(event) = st.core.poll_event() {
            log_event(&st.core, &event);
            if let Event::StaleRead {
                call,
                endpoint,
                answered,
                seen,
            } = event
            {
                let endpoint = st
                    .core
                    .endpoint(endpoint)
                    .map(|e| e.to_string())
                    .unwrap_or_default();
                if let Some(slot) = st.calls.get_mut(&call) {
                    slot.stale = Some(crate::options::StaleRead {
                        endpoint,
                        answered,
                        seen,
                    });
                }
            }
        }
        let next = st.core.poll_timeout();
        if let Some(n) = next {
            if st.timer.deadline.is_none_or(|d| n < d) {
                st.timer.deadline = Some(n);
                st.timer.notified = true;
                if let Some(w) = st.timer.waker.take() {
                    st.wake.push(w);
                }
            }
        }
    }

    fn start_conn(self: &Arc<Self>, st: &mut State, conn: ConnId, target: Endpoint) {
        let scheme = match target.scheme() {
            Scheme::Http | Scheme::Unix => http::uri::Scheme::HTTP,
            Scheme::Https | Scheme::Unixs => http::uri::Scheme::HTTPS,
        };
        let authority = match http::uri::Authority::try_from(target.authority().as_str()) {
            Ok(a) => a,
            Err(e) => {
                let now = self.runtime.now();
                st.core.handle_connect_failed(
                    now,
                    conn,
                    &format!("bad authority {}: {e}", target.authority()),
                );
                return;
            }
        };
        let ctl = Arc::new(ConnCtl::default());
        st.conns.insert(
            conn,
            ConnEntry {
                sender: None,
                ctl: ctl.clone(),
                scheme,
                authority,
            },
        );
        let shared = self.clone();
        st.spawn.push(Box::pin(async move {
            conn::run(shared, conn, target, ctl).await
        }));
    }

    /// Register a new call slot.
    pub(crate) fn new_slot(st: &mut State, call: CallId) {
        st.calls.insert(call, Slot::default());
    }

    /// Take the call's next step, or register `waker` to hear of it.
    pub(crate) fn poll_step(st: &mut State, call: CallId, waker: &Waker) -> Option<Step> {
        let slot = st.calls.get_mut(&call)?;
        match slot.next.take() {
            Some(Step::Done(result, _)) => {
                let stale = st.calls.remove(&call).and_then(|s| s.stale);
                Some(Step::Done(result, stale))
            }
            Some(step) => Some(step),
            None => {
                if !slot.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
                    slot.waker = Some(waker.clone());
                }
                None
            }
        }
    }

    /// An established stream call ended and its owner reported the outcome:
    /// forget the call's slot and return the result the core completed it
    /// with, if it did.
    pub(crate) fn finish_stream(&self, call: CallId) -> Option<std::result::Result<(), CallError>> {
        match self.lock().calls.remove(&call)?.next {
            Some(Step::Done(result, _)) => Some(result),
            _ => None,
        }
    }

    /// Calls with a slot in the table (for leak tests).
    pub(crate) fn call_slots(&self) -> usize {
        self.lock().calls.len()
    }

    /// Forget a call the user dropped.
    pub(crate) fn cancel(self: &Arc<Self>, call: CallId) {
        self.with_state(|st, now| {
            if st.calls.remove(&call).is_some() {
                st.core.cancel_call(now, call);
            }
        });
    }

    pub(crate) fn endpoint_states(&self) -> Vec<etcdv3_core::machine::EndpointState> {
        self.lock().core.endpoint_states()
    }

    pub(crate) fn set_endpoints(self: &Arc<Self>, endpoints: Vec<Endpoint>) -> Result<()> {
        #[cfg(feature = "tls")]
        if endpoints.iter().any(|e| e.is_tls()) && self.tls.is_none() {
            return Err(Error::Config(
                "an https:// endpoint needs TLS options (ClientOptions::with_tls)".into(),
            ));
        }
        self.with_state(|st, now| st.core.set_endpoints(now, endpoints));
        Ok(())
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Wake `waker` when the client closes (a handle made after the close
    /// checks `is_closed` itself). Held
    /// weakly: a handle that goes away needs no unregistering, and its
    /// entry is dropped at the next registration.
    pub(crate) fn wake_on_close(&self, waker: &Arc<futures_util::task::AtomicWaker>) {
        let mut list = self.close_wakers.lock().unwrap_or_else(|p| p.into_inner());
        list.retain(|w| w.strong_count() > 0);
        list.push(Arc::downgrade(waker));
    }

    /// Close everything: connections, timer, pending calls.
    pub(crate) fn close(&self) {
        self.close_state();
        // After `closed` is set: a handle woken here sees it.
        let wakers =
            std::mem::take(&mut *self.close_wakers.lock().unwrap_or_else(|p| p.into_inner()));
        for w in wakers.iter().filter_map(Weak::upgrade) {
            w.wake();
        }
    }

    fn close_state(&self) {
        let wake = {
            let mut st = self.lock();
            if st.closed {
                return;
            }
            st.closed = true;
            for (_, c) in st.conns.drain() {
                c.ctl.close();
            }
            let mut wake: Vec<Waker> = st
                .calls
                .values_mut()
                .filter_map(|s| s.waker.take())
                .collect();
            if let Some(w) = st.timer.waker.take() {
                wake.push(w);
            }
            st.timer.notified = true;
            wake
        };
        for w in wake {
            w.wake();
        }
    }

    pub(crate) fn set_token(&self, token: Option<HeaderValue>) {
        self.lock().token = token;
    }
}

impl State {
    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    /// Where a request of the client's own (a status probe, a leader
    /// check) goes on `conn`, if it is up: no call of the user's.
    fn side_target(&self, conn: ConnId) -> Option<Target> {
        self.conns.get(&conn).and_then(|c| {
            c.sender.clone().map(|sender| Target {
                sender,
                scheme: c.scheme.clone(),
                authority: c.authority.clone(),
                token: self.token.clone(),
                call: None,
            })
        })
    }

    /// Record that a connection is ready to carry requests.
    fn conn_ready(&mut self, conn: ConnId, sender: h2::client::SendRequest<Bytes>) -> bool {
        match self.conns.get_mut(&conn) {
            Some(c) => {
                c.sender = Some(sender);
                true
            }
            None => false,
        }
    }

    fn conn_gone(&mut self, conn: ConnId) {
        self.conns.remove(&conn);
    }
}

/// Fill the empty `source()` slot of `e` with the transport error its text
/// names. The core reports failures as text built around what the client
/// told it (`connect to X failed: <what the client reported>`, or the
/// attempt's report verbatim), so the error behind the text is the first
/// of `reports` (a report to the core and the error behind it) that ends
/// the text: the caller passes the call's own last attempt first, then the
/// last token request, then each endpoint's last connection failure. A text built by the core alone (a silent
/// connection the client closed, a deadline with no failure) matches none
/// and keeps no source, rather than a stale or unrelated one.
fn attach_cause<'a>(e: &mut CallError, reports: impl IntoIterator<Item = &'a (String, Cause)>) {
    let (text, slot) = match e {
        CallError::OutcomeUnknown { cause, source, .. }
        | CallError::RetryBudgetSpent { cause, source, .. }
        | CallError::Auth { cause, source, .. } => (cause.as_str(), source),
        CallError::DeadlineExceeded {
            last_error, source, ..
        } => (last_error.as_str(), source),
        _ => return,
    };
    if slot.is_some() {
        return;
    }
    *slot = reports
        .into_iter()
        .find(|(reported, _)| !reported.is_empty() && text.ends_with(reported.as_str()))
        .map(|(_, cause)| cause.clone());
}

/// The error behind an h2 failure: the `std::io::Error` when h2 failed on
/// IO (h2's own error does not chain to it), else h2's error.
pub(crate) fn h2_cause(e: h2::Error) -> Cause {
    if e.is_io() {
        let text = e.to_string();
        Cause::new(e.into_io().unwrap_or_else(|| std::io::Error::other(text)))
    } else {
        Cause::new(e)
    }
}

/// The typed error a client [`Error`] carries in its `source()` slot (the
/// call error's [`Cause`]), to pass on to an error built from it.
pub(crate) fn cause_of(e: &Error) -> Option<Cause> {
    match e {
        Error::Call(
            CallError::OutcomeUnknown { source, .. }
            | CallError::RetryBudgetSpent { source, .. }
            | CallError::Auth { source, .. }
            | CallError::DeadlineExceeded { source, .. },
        ) => source.clone(),
        _ => None,
    }
}

/// The connection's IO as h2 sees it: the same stream, reporting no
/// vectored writes. h2 copies a DATA frame into its write buffer only when
/// it is smaller than a threshold (256 bytes with vectored IO, 1 KiB
/// without); a larger one is chained and must be written before any other
/// frame is accepted, so every put of a 256-byte value cost a `writev` of
/// its own. Without vectored IO, requests up to 1 KiB from many streams are
/// copied into one buffer and go out in one `write` (see
/// docs/benchmarks.md); a frame of 1 KiB or more costs two writes instead
/// of one `writev`.
pub(crate) struct Coalescing(pub(crate) crate::runtime::BoxIo);

impl tokio::io::AsyncRead for Coalescing {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Coalescing {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        false
    }
}

/// Wakes the core's timers: sleeps until the core's next deadline, or until
/// an input moved that deadline earlier.
async fn timer_task(shared: Arc<Shared>) {
    loop {
        let open = shared.with_state(|st, now| {
            if st.closed {
                return false;
            }
            st.core.handle_timeout(now);
            st.timer.deadline = None;
            true
        });
        if !open {
            return;
        }
        // with_state drove the core and may have recorded the next deadline.
        // With none, sleep until an input sets one (`drive` notifies: no
        // deadline recorded counts as later than any).
        let next = {
            let mut st = shared.lock();
            let next = st.core.poll_timeout();
            st.timer.deadline = next;
            // `drive` saw no deadline recorded and flagged a notification for
            // this very `next`; clear it here, or the loop never sleeps (and
            // never yields to other tasks on a single-threaded executor).
            st.timer.notified = false;
            next
        };
        let mut sleep = next.map(|at| shared.runtime.sleep_until(at));
        std::future::poll_fn(|cx| {
            {
                let mut st = shared.lock();
                if st.timer.notified || st.closed {
                    return Poll::Ready(());
                }
                st.timer.waker = Some(cx.waker().clone());
            }
            match sleep.as_mut() {
                Some(s) => s.as_mut().poll(cx),
                None => Poll::Pending,
            }
        })
        .await;
    }
}

fn log_event(core: &Core, event: &Event) {
    match event {
        Event::HealthChanged {
            endpoint,
            state,
            reason,
        } => {
            let ep = core
                .endpoint(*endpoint)
                .map(|e| e.to_string())
                .unwrap_or_default();
            tracing::info!(endpoint = %ep, ?state, ?reason, "endpoint health changed");
        }
        Event::Retry {
            call,
            method,
            from,
            reason,
            delay,
        } => {
            let ep = from
                .and_then(|f| core.endpoint(f))
                .map(|e| e.to_string())
                .unwrap_or_default();
            tracing::debug!(call = call.0, method, from = %ep, %reason, ?delay, "retrying call");
        }
        Event::RetryBudgetSpent { call, method } => {
            tracing::warn!(
                call = call.0,
                method,
                "retry budget spent: call not retried"
            );
        }
        Event::FenceReset {
            call,
            endpoint,
            answered,
            seen,
        } => {
            let ep = core
                .endpoint(*endpoint)
                .map(|e| e.to_string())
                .unwrap_or_default();
            tracing::warn!(
                call = call.0,
                endpoint = %ep,
                answered,
                seen,
                "the cluster's history went back (restored from an older snapshot?): a quorum-confirmed answer is below the revision already seen; the revision fence is reset"
            );
        }
        Event::StaleRead {
            call,
            endpoint,
            answered,
            seen,
        } => {
            let ep = core
                .endpoint(*endpoint)
                .map(|e| e.to_string())
                .unwrap_or_default();
            tracing::debug!(call = call.0, endpoint = %ep, answered, seen, "read handed over below the revision seen (marked stale)");
        }
        Event::OutcomeUnknown {
            call,
            method,
            endpoint,
        } => {
            let ep = core
                .endpoint(*endpoint)
                .map(|e| e.to_string())
                .unwrap_or_default();
            tracing::warn!(call = call.0, method, endpoint = %ep, "mutation outcome unknown");
        }
    }
}

/// A seed for the core's randomness when the user gave none. The client
/// (unlike the core) may read clocks.
fn clock_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0x5eed);
    nanos ^ (std::process::id() as u64).rotate_left(32)
}

#[cfg(test)]
mod tests {
    use super::Coalescing;
    use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};

    #[test]
    fn a_call_error_carries_the_error_its_text_names_and_no_other() {
        use super::{attach_cause, Cause};
        use etcdv3_core::machine::CallError;
        use std::io::{Error as IoError, ErrorKind};
        let refused = "connect to http://127.0.0.1:1: Connection refused (os error 111)";
        let reset = "stream error received: connection reset";
        let reports = [
            (
                reset.to_string(),
                Cause::new(IoError::from(ErrorKind::ConnectionReset)),
            ),
            (
                refused.to_string(),
                Cause::new(IoError::from(ErrorKind::ConnectionRefused)),
            ),
        ];
        let kind = |e: &CallError| {
            std::error::Error::source(e)
                .and_then(|s| s.downcast_ref::<IoError>())
                .map(IoError::kind)
        };
        // The core's decorated text ends with the client's report.
        let mut late = CallError::DeadlineExceeded {
            method: "/etcdserverpb.KV/Range",
            attempts: 0,
            last_error: format!("connect to http://127.0.0.1:1 failed: {refused}"),
            may_have_applied: false,
            source: None,
        };
        attach_cause(&mut late, &reports);
        assert_eq!(kind(&late), Some(ErrorKind::ConnectionRefused));
        let mut lost = CallError::OutcomeUnknown {
            method: "/etcdserverpb.KV/Put",
            endpoint: "http://127.0.0.1:1".into(),
            cause: reset.into(),
            source: None,
        };
        attach_cause(&mut lost, &reports);
        assert_eq!(kind(&lost), Some(ErrorKind::ConnectionReset));
        // A text the core wrote alone (the client closed a silent
        // connection) names none of them: no source, not the "broken pipe".
        let mut closed = CallError::OutcomeUnknown {
            method: "/etcdserverpb.KV/Put",
            endpoint: "http://127.0.0.1:1".into(),
            cause: "the client closed a silent connection to http://127.0.0.1:1".into(),
            source: None,
        };
        attach_cause(&mut closed, &reports);
        assert_eq!(
            std::error::Error::source(&closed).map(|s| s.to_string()),
            None
        );
        // A source already there (a refusal's status) is kept.
        let status = etcdv3_core::wire::status::Status::new(
            etcdv3_core::wire::status::Code::ResourceExhausted,
            "etcdserver: too many requests",
        );
        let mut spent = CallError::RetryBudgetSpent {
            method: "/etcdserverpb.KV/Range",
            endpoint: "http://127.0.0.1:1".into(),
            cause: reset.into(),
            status: Some(status.clone()),
            source: Some(Cause::new(status.clone())),
        };
        attach_cause(&mut spent, &reports);
        let kept = std::error::Error::source(&spent)
            .and_then(|s| s.downcast_ref::<etcdv3_core::wire::status::Status>());
        assert_eq!(kept, Some(&status));
    }

    #[test]
    fn coalescing_io_passes_bytes_both_ways_and_reports_no_vectored_writes() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let (a, mut b) = tokio::io::duplex(64);
            let mut c = Coalescing(Box::new(a));
            // What h2 reads to pick its copy threshold (1 KiB without).
            assert!(!c.is_write_vectored());
            c.write_all(b"request").await.unwrap();
            c.flush().await.unwrap();
            let mut buf = [0u8; 7];
            b.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"request");
            b.write_all(b"answer").await.unwrap();
            let mut buf = [0u8; 6];
            c.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"answer");
            c.shutdown().await.unwrap();
            assert_eq!(b.read(&mut buf).await.unwrap(), 0);
        });
    }
}
