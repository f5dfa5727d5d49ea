//! The one background task that owns a long-lived stream (watch, lease
//! keepalive) of a client.
//!
//! What differs per kind of stream — the sans-IO state (the core's
//! `WatchHub` or `LeaseKeeper`), what to send, what to deliver to users —
//! sits behind [`StreamOwner`]. Everything else is here, once: the select
//! loop, the core's [`StreamSupervisor`] deciding when a stream is
//! (re)opened, telling the core about requests that owe a reply
//! (`handle_stream_sent`), about refusals that demote the member ("no
//! leader") and about authentication refusals (`handle_auth_rejected`).
//! The task's inbox lives in the client's shared state ([`Tasks`]); the task
//! ends when its owner has nothing left to do or the client closes.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use etcdv3_core::machine::Outcome;
use etcdv3_core::status::{Code, Status};
use etcdv3_core::stream::{StreamConfig, StreamSupervisor};
use etcdv3_proto::method::Method;
use futures_channel::mpsc;
use futures_core::Stream;

use crate::client::BidiCall;
use crate::error::{Error, Result};
use crate::runtime::BoxFuture;
use crate::Client;

/// What the owner of a long-lived stream wants done after its last input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Keep the stream.
    Keep,
    /// The member refused the stream's work because it has no leader: the
    /// core demotes it (as it would after a unary "no leader") and the
    /// stream is replaced, after a backoff.
    NoLeader,
    /// A request was refused for its token: get a fresh one and replace the
    /// stream (see [`StreamOwner::handle_auth_final`] for when that is not
    /// possible).
    AuthRejected,
    /// Requests went unanswered too long on a member that answers pings
    /// (the owner's core part decided it): the core suspects the member and
    /// the stream is replaced at once.
    Unanswered,
}

/// The per-kind part of a stream task.
pub(crate) trait StreamOwner: Send + 'static {
    /// What users send to the task.
    type Cmd: Send + 'static;
    /// Requests on the stream.
    type Req: prost::Message + Send + 'static;
    /// Responses on the stream.
    type Resp: prost::Message + Default + Send + 'static;
    /// The gRPC method of the stream.
    const METHOD: Method;

    /// A user's command.
    fn handle_cmd(&mut self, now: Instant, cmd: Self::Cmd);
    /// Whether there is nothing left to do: the task ends.
    fn is_done(&self) -> bool;
    /// A new stream is open (nothing was sent on it yet).
    fn handle_opened(&mut self, now: Instant);
    /// The stream is gone.
    fn handle_lost(&mut self, now: Instant);
    /// A response arrived.
    fn handle_message(&mut self, now: Instant, resp: Self::Resp);
    /// What to do with the stream after the last input.
    fn verdict(&self, _now: Instant) -> Verdict {
        Verdict::Keep
    }
    /// After [`Verdict::AuthRejected`]: no fresh token will come (no
    /// credentials configured); the refused work ends for good.
    fn handle_auth_final(&mut self, _now: Instant) {}
    /// The next request to send on the open stream; every request owes the
    /// server's answer.
    fn poll_transmit(&mut self, now: Instant) -> Option<Self::Req>;
    /// Time passed.
    fn handle_timeout(&mut self, _now: Instant) {}
    /// When [`handle_timeout`](Self::handle_timeout) is due; `open`: whether
    /// a stream is open.
    fn poll_timeout(&self, _open: bool) -> Option<Instant> {
        None
    }
    /// Hand what happened to the users.
    fn deliver(&mut self);
    /// End every user's work with `err` (the client closed, or the stream
    /// is refused for good).
    fn fail(&mut self, err: &Error);
}

/// The inboxes of a client's stream tasks, one per kind of stream, on the
/// client's shared state.
pub(crate) struct Tasks {
    inboxes: Mutex<HashMap<TypeId, Box<dyn Any + Send>>>,
    seed: AtomicU64,
    config: StreamConfig,
}

impl Tasks {
    /// No task yet; `seed` derives the tasks' backoff jitter.
    pub(crate) fn new(seed: u64, config: StreamConfig) -> Tasks {
        Tasks {
            inboxes: Mutex::new(HashMap::new()),
            seed: AtomicU64::new(seed),
            config,
        }
    }
}

/// The inbox of `client`'s task for streams of kind `O`, spawning the task
/// (with the owner `make` builds) when there is none or the previous one
/// ended. A send may still fail when the task ends right then: callers
/// retry with a new inbox.
pub(crate) fn inbox<O: StreamOwner>(
    client: &Client,
    make: impl FnOnce() -> O,
) -> mpsc::UnboundedSender<O::Cmd> {
    let tasks = &client.shared.tasks;
    let mut inboxes = tasks.inboxes.lock().unwrap_or_else(|p| p.into_inner());
    let key = TypeId::of::<O>();
    if let Some(tx) = inboxes
        .get(&key)
        .and_then(|b| b.downcast_ref::<mpsc::UnboundedSender<O::Cmd>>())
    {
        if !tx.is_closed() {
            return tx.clone();
        }
    }
    let (tx, rx) = mpsc::unbounded();
    inboxes.insert(key, Box::new(tx.clone()));
    let seed = tasks
        .seed
        .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
    let supervisor = StreamSupervisor::new(tasks.config.clone(), seed);
    let task = run(client.background(), make(), rx, supervisor);
    // Spawned without the inboxes' lock: a runtime may poll the task inline.
    drop(inboxes);
    client.spawn(task);
    tx
}

/// The task of kind `O` has nothing left to do: close its inbox and take the
/// commands sent before the close. If there are any, a fresh inbox for the
/// same task replaces the closed one before the inboxes' lock is released,
/// so no command is lost and later commands reach this task after these.
fn close_inbox<O: StreamOwner>(
    client: &Client,
    cmds: &mut mpsc::UnboundedReceiver<O::Cmd>,
) -> Vec<O::Cmd> {
    let mut inboxes = client
        .shared
        .tasks
        .inboxes
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    cmds.close();
    let mut raced = Vec::new();
    while let Ok(cmd) = cmds.try_recv() {
        raced.push(cmd);
    }
    if !raced.is_empty() {
        let (tx, rx) = mpsc::unbounded();
        inboxes.insert(TypeId::of::<O>(), Box::new(tx));
        *cmds = rx;
    }
    raced
}

/// Messages already received that one loop turn takes at most, so that one
/// `deliver` hands them over together (one wake-up per batch, not per
/// message) while commands and timers still get a turn between batches.
const MAX_MESSAGES_PER_TURN: usize = 256;

type OwnedStream<O> = BidiCall<<O as StreamOwner>::Req, <O as StreamOwner>::Resp>;

// One transient value per loop turn, never stored: its size does not matter.
#[allow(clippy::large_enum_variant)]
enum Input<O: StreamOwner> {
    Cmd(Option<O::Cmd>),
    Msg(Result<Option<O::Resp>>),
    Opened(Result<OwnedStream<O>>),
    Timer,
}

/// The stream task: one stream of kind `O` at a time, reopened when the
/// supervisor says.
async fn run<O: StreamOwner>(
    client: Client,
    mut owner: O,
    mut cmds: mpsc::UnboundedReceiver<O::Cmd>,
    mut sup: StreamSupervisor,
) {
    let shared = client.shared.clone();
    let mut stream: Option<OwnedStream<O>> = None;
    let mut opening: Option<BoxFuture<'static, Result<OwnedStream<O>>>> = None;
    let mut timer: Option<(Instant, BoxFuture<'static, ()>)> = None;
    let mut cmds_open = true;
    // Run one loop turn without waiting for an input (commands were taken
    // outside the turn's usual place).
    let mut kick = false;
    // The end of the stream, met while taking a batch of messages: the
    // next turn's input.
    let mut stashed: Option<Result<Option<O::Resp>>> = None;
    // A stream ended by an authentication refusal was replaced; refused
    // again before a message arrived on the new one, the refusal is final.
    let mut auth_retried = false;
    loop {
        let input = std::future::poll_fn(|cx| {
            if std::mem::take(&mut kick) {
                return Poll::Ready(Input::Timer);
            }
            // (Stale if that stream was dropped meanwhile.)
            if let (Some(m), true) = (stashed.take(), stream.is_some()) {
                return Poll::Ready(Input::Msg(m));
            }
            if cmds_open {
                if let Poll::Ready(c) = Pin::new(&mut cmds).poll_next(cx) {
                    return Poll::Ready(Input::<O>::Cmd(c));
                }
            }
            if let Some(s) = stream.as_mut() {
                if let Poll::Ready(m) = s.poll_message(cx) {
                    return Poll::Ready(Input::Msg(m));
                }
            }
            if let Some(o) = opening.as_mut() {
                if let Poll::Ready(r) = o.as_mut().poll(cx) {
                    opening = None;
                    return Poll::Ready(Input::Opened(r));
                }
            }
            if let Some((_, t)) = timer.as_mut() {
                if t.as_mut().poll(cx).is_ready() {
                    timer = None;
                    return Poll::Ready(Input::Timer);
                }
            }
            Poll::Pending
        })
        .await;
        let now = client.now();
        match input {
            Input::Cmd(None) => cmds_open = false,
            Input::Cmd(Some(cmd)) => owner.handle_cmd(now, cmd),
            Input::Msg(Ok(Some(resp))) => {
                sup.handle_message(now);
                auth_retried = false;
                owner.handle_message(now, resp);
                // Take what else already arrived. Polling with a no-op
                // waker is fine: a `Pending` here is followed by the real
                // poll at the top of the loop before the task sleeps.
                let mut cx = Context::from_waker(Waker::noop());
                for _ in 1..MAX_MESSAGES_PER_TURN {
                    let Some(s) = stream.as_mut() else { break };
                    match s.poll_message(&mut cx) {
                        Poll::Ready(Ok(Some(resp))) => owner.handle_message(now, resp),
                        Poll::Ready(end) => {
                            stashed = Some(end);
                            break;
                        }
                        Poll::Pending => break,
                    }
                }
            }
            Input::Msg(end) => {
                let ended = stream.take();
                owner.handle_lost(now);
                match end {
                    Err(e) if ended.as_ref().and_then(|s| s.auth_retry()).is_some() => {
                        let retry = !auth_retried
                            && ended.as_ref().and_then(|s| s.auth_retry()) == Some(true);
                        if retry {
                            tracing::debug!(error = %e, "stream refused for its token, reopening");
                            auth_retried = true;
                            sup.handle_lost(now);
                        } else {
                            tracing::debug!(error = %e, "stream refused for good");
                            sup.handle_refused(now);
                            owner.fail(&e);
                        }
                    }
                    Err(e) => {
                        tracing::debug!(method = O::METHOD.path, error = %e, "stream failed");
                        sup.handle_lost(now);
                    }
                    Ok(_) => {
                        tracing::debug!(method = O::METHOD.path, "stream ended by the server");
                        sup.handle_lost(now);
                    }
                }
            }
            Input::Opened(Ok(s)) => {
                sup.handle_opened(now);
                owner.handle_opened(now);
                stream = Some(s);
            }
            Input::Opened(Err(e)) => {
                tracing::debug!(method = O::METHOD.path, error = %e, "opening a stream failed");
                sup.handle_open_failed(now);
                // Every endpoint rejected the client's TLS setup (or its
                // scheme): reopening cannot help, so the users hear why
                // now, not at their deadline.
                if matches!(e, Error::Tls { .. } | Error::SchemeMismatch { .. }) {
                    owner.fail(&e);
                }
            }
            Input::Timer => {}
        }
        // Take every command that is ready before deciding anything.
        while cmds_open {
            match cmds.try_recv() {
                Ok(cmd) => owner.handle_cmd(now, cmd),
                Err(mpsc::TryRecvError::Closed) => cmds_open = false,
                Err(mpsc::TryRecvError::Empty) => break,
            }
        }
        if client.is_closed() {
            // Commands that raced in are failed with the rest, not dropped
            // (a group's watcher has no reply channel to notice a drop).
            cmds.close();
            while let Ok(cmd) = cmds.try_recv() {
                owner.handle_cmd(now, cmd);
            }
            owner.fail(&Error::Closed);
            owner.deliver();
            return;
        }
        if let Some(mut s) = stream.take() {
            match owner.verdict(now) {
                Verdict::Keep => stream = Some(s),
                Verdict::NoLeader => {
                    tracing::debug!(
                        endpoint = s.endpoint(),
                        "stream: member has no leader, reopening"
                    );
                    // The core demotes the member as after a unary "no
                    // leader", so the next stream goes elsewhere.
                    s.end(Outcome::Status(Status::new(
                        Code::Unavailable,
                        "etcdserver: no leader",
                    )));
                    sup.handle_refused(now);
                    owner.handle_lost(now);
                }
                Verdict::Unanswered => {
                    let call = s.call_id();
                    tracing::debug!(
                        endpoint = s.endpoint(),
                        "stream: requests unanswered, reopening elsewhere"
                    );
                    shared.with_state(|st, now| st.core.handle_stream_unanswered(now, call));
                    s.end(Outcome::Lost(
                        "requests on the stream went unanswered".into(),
                    ));
                    sup.handle_lost(now);
                    owner.handle_lost(now);
                }
                Verdict::AuthRejected => {
                    let call = s.call_id();
                    let retry =
                        shared.with_state(|st, now| st.core.handle_auth_rejected(now, call));
                    tracing::debug!(
                        endpoint = s.endpoint(),
                        retry,
                        "stream: a request was refused for its token"
                    );
                    if retry {
                        // The new stream waits for the fresh token.
                        drop(s);
                        sup.handle_lost(now);
                        owner.handle_lost(now);
                    } else {
                        owner.handle_auth_final(now);
                        stream = Some(s);
                    }
                }
            }
        }
        owner.handle_timeout(now);
        if let Some(s) = stream.as_mut() {
            let mut sent = false;
            while let Some(req) = owner.poll_transmit(now) {
                if let Err(e) = s.send(&req) {
                    tracing::debug!(method = O::METHOD.path, error = %e, "sending on a stream failed");
                    stream = None;
                    sup.handle_lost(now);
                    owner.handle_lost(now);
                    break;
                }
                sent = true;
            }
            if let (true, Some(s)) = (sent, stream.as_ref()) {
                // The member owes answers: if it stops answering, the core
                // finds out (ping) as quickly as for a unary call.
                let call = s.call_id();
                shared.with_state(|st, now| st.core.handle_stream_sent(now, call));
            }
        }
        owner.deliver();
        if owner.is_done() {
            let raced = close_inbox::<O>(&client, &mut cmds);
            if raced.is_empty() {
                if stream.take().is_some() {
                    sup.handle_closed(now);
                }
                return;
            }
            // Commands raced in before the close: this task goes on (on a
            // fresh inbox) and handles them in order, in the next turn.
            for cmd in raced {
                owner.handle_cmd(now, cmd);
            }
            cmds_open = true;
            kick = true;
        }
        sup.handle_wanted(now, true);
        if stream.is_none() && opening.is_none() && sup.poll_open(now) {
            let c = client.clone();
            opening = Some(Box::pin(async move {
                c.open_bidi::<O::Req, O::Resp>(O::METHOD).await
            }));
        }
        let next = [sup.poll_timeout(), owner.poll_timeout(stream.is_some())]
            .into_iter()
            .flatten()
            .min();
        match (next, &timer) {
            (Some(at), Some((cur, _))) if *cur == at => {}
            (Some(at), _) => timer = Some((at, client.runtime().sleep_until(at))),
            (None, _) => timer = None,
        }
    }
}
