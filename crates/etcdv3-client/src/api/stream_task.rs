//! The one background task that owns a long-lived stream (watch, lease
//! keepalive) of a client: a pump around the core's
//! `etcdv3_core::streams::StreamDriver`.
//!
//! What differs per kind of stream — the sans-IO state (the core's
//! `WatchHub` or `LeaseKeeper`), what to send, what to deliver to users —
//! sits behind [`StreamOwner`]. Every decision about the stream (when it is
//! (re)opened, how a stream given up on is ended, auth retry, TLS failure
//! fan-out, which requests owe an answer) is the driver's; this task only
//! feeds it what happened on the wire and carries its actions out, in the
//! turn order the driver's docs give. The task's inbox lives in the
//! client's shared state (`transport::tasks::Tasks`); the task ends when its owner has
//! nothing left to do or the client closes.

use std::any::TypeId;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use etcdv3_core::streams::{CloseReason, FailCause, StreamAction, StreamDriver, StreamEnd};
use etcdv3_proto::method::Method;
use futures_channel::mpsc;
use futures_core::Stream;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::runtime::BoxFuture;
use crate::transport::stream::BidiCall;
use crate::transport::tasks::Lane;

pub(crate) use etcdv3_core::streams::Verdict;

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
    /// Responses that arrived together, in order (`batch` is left empty).
    fn handle_messages(&mut self, now: Instant, batch: &mut Vec<Self::Resp>) {
        for resp in batch.drain(..) {
            self.handle_message(now, resp);
        }
    }
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

/// The inbox of `client`'s task for streams of kind `O`, spawning the task
/// (with the owner `make` builds) when there is none or the previous one
/// ended. A send may still fail when the task ends right then: callers
/// retry with a new inbox.
pub(crate) fn inbox<O: StreamOwner>(
    client: &Client,
    lane: Lane,
    make: impl FnOnce() -> O,
) -> mpsc::UnboundedSender<O::Cmd> {
    let tasks = &client.shared.tasks;
    let mut inboxes = tasks.inboxes.lock().unwrap_or_else(|p| p.into_inner());
    let key = (TypeId::of::<O>(), lane);
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
    let seed = tasks.next_seed();
    let driver = StreamDriver::new(tasks.stream_config().clone(), seed);
    let task = run(client.background(), lane, make(), rx, driver);
    // Spawned without the inboxes' lock: a runtime may poll the task inline.
    drop(inboxes);
    client.spawn(task);
    tx
}

/// The task of kind `O` on `lane` has nothing left to do: close its inbox
/// and take the commands sent before the close. If there are any, a fresh
/// inbox for the same task replaces the closed one before the inboxes' lock
/// is released, so no command is lost and later commands reach this task
/// after these; if there are none, the closed inbox leaves the table (a
/// group's own lane is not used again once its task ended).
fn close_inbox<O: StreamOwner>(
    client: &Client,
    lane: Lane,
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
    let key = (TypeId::of::<O>(), lane);
    if !raced.is_empty() {
        let (tx, rx) = mpsc::unbounded();
        inboxes.insert(key, Box::new(tx));
        *cmds = rx;
    } else if inboxes
        .get(&key)
        .and_then(|b| b.downcast_ref::<mpsc::UnboundedSender<O::Cmd>>())
        .is_some_and(|tx| tx.is_closed())
    {
        // Ours (a newer task's inbox would be open).
        inboxes.remove(&key);
    }
    raced
}

/// Messages already received that one loop turn takes at most, so that one
/// `deliver` hands them over together (one wake-up per batch, not per
/// message) while commands and timers still get a turn between batches.
/// (32 instead cost as much CPU per event at 10,000 watchers.)
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

/// What a stream task holds: the owner, the core's driver, and the IO.
struct Pump<O: StreamOwner> {
    client: Client,
    owner: O,
    driver: StreamDriver,
    stream: Option<OwnedStream<O>>,
    opening: Option<BoxFuture<'static, Result<OwnedStream<O>>>>,
    /// The messages of one turn (empty between turns; kept for its
    /// capacity).
    batch: Vec<O::Resp>,
}

impl<O: StreamOwner> Pump<O> {
    /// Carry out the driver's actions; `err`: the error of the input just
    /// fed (the users get it when the driver fails them). `true` when the
    /// driver exited.
    fn drain(&mut self, now: Instant, err: Option<&Error>) -> bool {
        let mut exit = false;
        while let Some(action) = self.driver.poll_action() {
            match action {
                StreamAction::Open => {
                    let c = self.client.clone();
                    self.opening = Some(Box::pin(async move {
                        c.open_bidi::<O::Req, O::Resp>(O::METHOD).await
                    }));
                }
                StreamAction::Close(reason) => {
                    let Some(mut s) = self.stream.take() else {
                        continue;
                    };
                    tracing::debug!(endpoint = s.endpoint(), ?reason, "stream: closing");
                    if reason == CloseReason::Unanswered {
                        let call = s.call_id();
                        self.client
                            .shared
                            .with_state(|st, now| st.core.handle_stream_unanswered(now, call));
                    }
                    if let Some(outcome) = reason.outcome() {
                        s.end(outcome);
                    }
                }
                StreamAction::RefreshToken => {
                    let call = self.stream.as_ref().map(|s| s.call_id());
                    let fresh = call.is_some_and(|call| {
                        self.client
                            .shared
                            .with_state(|st, now| st.core.handle_auth_rejected(now, call))
                    });
                    tracing::debug!(fresh, "stream: a request was refused for its token");
                    self.driver.handle_auth_answer(now, fresh);
                }
                StreamAction::Owed => {
                    if let Some(call) = self.stream.as_ref().map(|s| s.call_id()) {
                        self.client
                            .shared
                            .with_state(|st, now| st.core.handle_stream_sent(now, call));
                    }
                }
                StreamAction::Lost => self.owner.handle_lost(now),
                StreamAction::AuthFinal => self.owner.handle_auth_final(now),
                StreamAction::Fail(cause) => {
                    let e = match (cause, err) {
                        (FailCause::Closed, _) | (_, None) => Error::Closed,
                        (_, Some(e)) => e.clone(),
                    };
                    tracing::debug!(?cause, error = %e, "stream: failing its users");
                    self.owner.fail(&e);
                }
                StreamAction::Exit => exit = true,
            }
        }
        exit
    }
}

/// How a stream that returned `end` ended, for the driver.
fn end_of<O: StreamOwner>(
    stream: Option<&OwnedStream<O>>,
    end: &Result<Option<O::Resp>>,
) -> StreamEnd {
    match (end, stream.and_then(|s| s.auth_retry())) {
        (Err(_), Some(fresh_token)) => StreamEnd::AuthRefused { fresh_token },
        (Err(_), None) => StreamEnd::Failed,
        (Ok(_), _) => StreamEnd::Finished,
    }
}

/// The stream task: a pump around the core's [`StreamDriver`], which makes
/// every decision; one stream of kind `O` at a time.
async fn run<O: StreamOwner>(
    client: Client,
    lane: Lane,
    owner: O,
    mut cmds: mpsc::UnboundedReceiver<O::Cmd>,
    driver: StreamDriver,
) {
    let mut p = Pump {
        client,
        owner,
        driver,
        stream: None,
        opening: None,
        batch: Vec::new(),
    };
    let mut timer: Option<(Instant, BoxFuture<'static, ()>)> = None;
    let mut cmds_open = true;
    // Run one loop turn without waiting for an input (commands were taken
    // outside the turn's usual place).
    let mut kick = false;
    // The end of the stream, met while taking a batch of messages: the
    // next turn's input.
    let mut stashed: Option<Result<Option<O::Resp>>> = None;
    loop {
        let input = std::future::poll_fn(|cx| {
            if std::mem::take(&mut kick) {
                return Poll::Ready(Input::Timer);
            }
            // (Stale if that stream was dropped meanwhile.)
            if let (Some(m), true) = (stashed.take(), p.stream.is_some()) {
                return Poll::Ready(Input::Msg(m));
            }
            if cmds_open {
                if let Poll::Ready(c) = Pin::new(&mut cmds).poll_next(cx) {
                    return Poll::Ready(Input::<O>::Cmd(c));
                }
            }
            if let Some(s) = p.stream.as_mut() {
                if let Poll::Ready(m) = s.poll_message(cx) {
                    return Poll::Ready(Input::Msg(m));
                }
            }
            if let Some(o) = p.opening.as_mut() {
                if let Poll::Ready(r) = o.as_mut().poll(cx) {
                    p.opening = None;
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
        let now = p.client.now();
        match input {
            Input::Cmd(None) => cmds_open = false,
            Input::Cmd(Some(cmd)) => p.owner.handle_cmd(now, cmd),
            Input::Msg(Ok(Some(resp))) => {
                p.driver.handle_message(now);
                p.batch.push(resp);
                // Take what else already arrived. Polling with a no-op
                // waker is fine: a `Pending` here is followed by the real
                // poll at the top of the loop before the task sleeps.
                let mut cx = Context::from_waker(Waker::noop());
                for _ in 1..MAX_MESSAGES_PER_TURN {
                    let Some(s) = p.stream.as_mut() else { break };
                    match s.poll_message(&mut cx) {
                        Poll::Ready(Ok(Some(resp))) => p.batch.push(resp),
                        Poll::Ready(end) => {
                            stashed = Some(end);
                            break;
                        }
                        Poll::Pending => break,
                    }
                }
                // The owner sees the turn's messages together (the watch
                // hub loads their watchers' records in one pass).
                p.owner.handle_messages(now, &mut p.batch);
                // The core hears of the batch once (the stream is alive).
                if let Some(s) = p.stream.as_mut() {
                    s.report_progress();
                }
            }
            Input::Msg(end) => {
                let ended = p.stream.take();
                let how = end_of::<O>(ended.as_ref(), &end);
                match &end {
                    Err(e) => {
                        tracing::debug!(method = O::METHOD.path, error = %e, ?how, "stream failed")
                    }
                    Ok(_) => tracing::debug!(method = O::METHOD.path, "stream ended by the server"),
                }
                p.driver.handle_ended(now, how);
                p.drain(now, end.as_ref().err());
            }
            Input::Opened(Ok(mut s)) => {
                s.batch_progress();
                p.stream = Some(s);
                p.driver.handle_opened(now);
                p.owner.handle_opened(now);
            }
            Input::Opened(Err(e)) => {
                tracing::debug!(method = O::METHOD.path, error = %e, "opening a stream failed");
                // Every endpoint rejected the client's TLS setup (or its
                // scheme): reopening cannot help.
                let rejected = matches!(e, Error::Tls { .. } | Error::SchemeMismatch { .. });
                p.driver.handle_open_failed(now, rejected);
                p.drain(now, Some(&e));
            }
            Input::Timer => p.driver.handle_timeout(now),
        }
        // Take every command that is ready before deciding anything.
        while cmds_open {
            match cmds.try_recv() {
                Ok(cmd) => p.owner.handle_cmd(now, cmd),
                Err(mpsc::TryRecvError::Closed) => cmds_open = false,
                Err(mpsc::TryRecvError::Empty) => break,
            }
        }
        if p.client.is_closed() {
            // Commands that raced in are failed with the rest, not dropped
            // (a group's watcher has no reply channel to notice a drop).
            cmds.close();
            while let Ok(cmd) = cmds.try_recv() {
                p.owner.handle_cmd(now, cmd);
            }
            p.driver.handle_client_closed(now);
            p.drain(now, None);
            p.owner.deliver();
            return;
        }
        if p.stream.is_some() {
            let verdict = p.owner.verdict(now);
            p.driver.handle_verdict(now, verdict);
            p.drain(now, None);
        }
        p.owner.handle_timeout(now);
        if let Some(s) = p.stream.as_mut() {
            let mut sent = false;
            let mut failed = None;
            while let Some(req) = p.owner.poll_transmit(now) {
                if let Err(e) = s.send(&req) {
                    tracing::debug!(method = O::METHOD.path, error = %e, "sending on a stream failed");
                    failed = Some(e);
                    break;
                }
                sent = true;
            }
            if let Some(e) = failed {
                let ended = p.stream.take();
                let how = end_of::<O>(ended.as_ref(), &Err(e.clone()));
                p.driver.handle_ended(now, how);
                p.drain(now, Some(&e));
            } else if sent {
                // The member owes answers: if it stops answering, the core
                // finds out (ping) as quickly as for a unary call.
                p.driver.handle_sent(now);
                p.drain(now, None);
            }
        }
        p.owner.deliver();
        if p.owner.is_done() {
            let raced = close_inbox::<O>(&p.client, lane, &mut cmds);
            if raced.is_empty() {
                p.driver.handle_wanted(now, false);
                if p.drain(now, None) {
                    return;
                }
            }
            // Commands raced in before the close: this task goes on (on a
            // fresh inbox) and handles them in order, in the next turn.
            for cmd in raced {
                p.owner.handle_cmd(now, cmd);
            }
            cmds_open = true;
            kick = true;
        }
        p.driver.handle_wanted(now, true);
        p.drain(now, None);
        let next = [
            p.driver.poll_timeout(),
            p.owner.poll_timeout(p.stream.is_some()),
        ]
        .into_iter()
        .flatten()
        .min();
        match (next, &timer) {
            (Some(at), Some((cur, _))) if *cur == at => {}
            (Some(at), _) => timer = Some((at, p.client.runtime().sleep_until(at))),
            (None, _) => timer = None,
        }
    }
}
