//! Watch: [`Client::watch`] and the [`Watcher`] stream.
//!
//! All watchers of a client share ONE gRPC `Watch` stream, owned by one
//! background task (started with the first watcher, ended when the last one
//! is gone). The task runs the sans-IO [`WatchHub`]: when the stream fails
//! (member down, partition, "no leader"), it opens a new one (the core picks
//! a healthy endpoint) and re-creates every watcher from the revision after
//! the last one it delivered, so no event is lost or duplicated and events
//! stay in revision order. If that revision was compacted meanwhile, the
//! watcher ends with [`WatchEvent::Compacted`].

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use etcdv3_core::watch::WatchHub;
use etcdv3_proto::etcdserverpb::{
    watch_create_request::FilterType, WatchCreateRequest, WatchRequest, WatchResponse,
};
use etcdv3_proto::method::WATCH_WATCH;
use futures_channel::{mpsc, oneshot};
use futures_core::Stream;

use crate::api::kv::KeyRange;
use crate::client::BidiCall;
use crate::error::{Error, Result};
use crate::runtime::BoxFuture;
use crate::transport::Shared;
use crate::Client;

pub use etcdv3_core::watch::{WatchEvent, WatcherId};
pub use etcdv3_proto::mvccpb::{event::EventType, Event};

/// A table of per-client background task inboxes, keyed by the client's
/// shared state (a client has no slot of its own for them).
pub(crate) type TaskTable<C> = Mutex<Vec<(Weak<Shared>, mpsc::UnboundedSender<C>)>>;

/// The inbox of `client`'s background task in `table`, spawning the task
/// with `start` when there is none (or the previous one ended).
pub(crate) fn task_inbox<C, F>(
    table: &TaskTable<C>,
    client: &Client,
    start: F,
) -> mpsc::UnboundedSender<C>
where
    F: FnOnce(mpsc::UnboundedReceiver<C>),
{
    let mut t = table.lock().unwrap_or_else(|p| p.into_inner());
    t.retain(|(w, tx)| w.strong_count() > 0 && !tx.is_closed());
    if let Some((_, tx)) = t
        .iter()
        .find(|(w, _)| std::ptr::eq(w.as_ptr(), Arc::as_ptr(&client.shared)))
    {
        return tx.clone();
    }
    let (tx, rx) = mpsc::unbounded();
    t.push((Arc::downgrade(&client.shared), tx.clone()));
    start(rx);
    tx
}

/// Delay before reopening a stream after `failures` failures in a row.
pub(crate) fn reopen_backoff(failures: u32) -> Duration {
    let ms = 50u64 << failures.min(6);
    Duration::from_millis(ms.min(2000))
}

/// Options of [`Client::watch`].
///
/// ```
/// use etcdv3_client::api::WatchOptions;
/// let opts = WatchOptions::new().with_prefix().with_prev_kv().with_start_revision(42);
/// # let _ = opts;
/// ```
#[derive(Debug, Clone, Default)]
pub struct WatchOptions {
    range: KeyRange,
    start_revision: i64,
    no_put: bool,
    no_delete: bool,
    prev_kv: bool,
    progress_notify: bool,
    fragment: bool,
    timeout: Option<Duration>,
}

impl WatchOptions {
    /// Default options: the key alone, from the next revision.
    pub fn new() -> Self {
        Self::default()
    }

    key_range_setters!("Watch");

    /// Start at `revision` (history replay), instead of the next one.
    pub fn with_start_revision(mut self, revision: i64) -> Self {
        self.start_revision = revision;
        self
    }

    /// Do not report puts.
    pub fn with_no_put(mut self) -> Self {
        self.no_put = true;
        self
    }

    /// Do not report deletes.
    pub fn with_no_delete(mut self) -> Self {
        self.no_delete = true;
        self
    }

    /// Report each key's previous value with its events.
    pub fn with_prev_kv(mut self) -> Self {
        self.prev_kv = true;
        self
    }

    /// Ask the server for periodic [`WatchEvent::Progress`] notifications
    /// while nothing happens.
    pub fn with_progress_notify(mut self) -> Self {
        self.progress_notify = true;
        self
    }

    /// Let the server split large responses (they are reassembled before
    /// delivery).
    pub fn with_fragment(mut self) -> Self {
        self.fragment = true;
        self
    }

    /// How long [`Client::watch`] waits for the server to create the watcher
    /// (default: the client's request timeout).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    pub(crate) fn to_request(&self, key: Vec<u8>) -> Result<WatchCreateRequest> {
        let (key, range_end) = self.range.resolve(key)?;
        if self.start_revision < 0 {
            return Err(Error::InvalidArgument(
                "start revision must not be negative".into(),
            ));
        }
        let mut filters = Vec::new();
        if self.no_put {
            filters.push(FilterType::Noput as i32);
        }
        if self.no_delete {
            filters.push(FilterType::Nodelete as i32);
        }
        Ok(WatchCreateRequest {
            key,
            range_end,
            start_revision: self.start_revision,
            progress_notify: self.progress_notify,
            filters,
            prev_kv: self.prev_kv,
            watch_id: 0,
            fragment: self.fragment,
        })
    }
}

type Sink = mpsc::UnboundedSender<Result<WatchEvent>>;

pub(crate) enum Cmd {
    Add {
        request: WatchCreateRequest,
        sink: Sink,
        reply: oneshot::Sender<WatcherId>,
    },
    Cancel(WatcherId),
    Progress,
}

static WATCH_TASKS: TaskTable<Cmd> = Mutex::new(Vec::new());

/// One watcher: a [`Stream`] of its events.
///
/// The first event, [`WatchEvent::Created`], was already consumed by
/// [`Client::watch`] (see [`Watcher::created_revision`]). The stream ends
/// after [`WatchEvent::Compacted`] or [`WatchEvent::Cancelled`]; it yields
/// `Err(Error::Closed)` (then ends) when the client is closed.
///
/// Dropping a `Watcher` cancels it on the server. Events are buffered
/// without bound until the watcher is polled: poll it promptly.
#[derive(Debug)]
pub struct Watcher {
    id: WatcherId,
    created_revision: i64,
    events: mpsc::UnboundedReceiver<Result<WatchEvent>>,
    cmds: mpsc::UnboundedSender<Cmd>,
    pending: Option<WatchEvent>,
    done: bool,
}

impl std::fmt::Debug for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cmd::Add { .. } => f.write_str("Add"),
            Cmd::Cancel(id) => write!(f, "Cancel({id})"),
            Cmd::Progress => f.write_str("Progress"),
        }
    }
}

impl Watcher {
    /// The client-side id of this watcher (also its `watch_id` on etcd 3.4+).
    pub fn id(&self) -> WatcherId {
        self.id
    }

    /// The store revision when the server created the watcher: a watcher
    /// without a start revision reports every event after it.
    pub fn created_revision(&self) -> i64 {
        self.created_revision
    }

    /// Ask the server for a [`WatchEvent::Progress`] notification (sent to
    /// every watcher of the client).
    pub fn request_progress(&self) -> Result<()> {
        self.cmds
            .unbounded_send(Cmd::Progress)
            .map_err(|_| Error::Closed)
    }

    /// Cancel the watcher and wait until the server confirmed. Events that
    /// arrive meanwhile are discarded.
    pub async fn cancel(mut self) -> Result<()> {
        if self.done || self.pending.as_ref().is_some_and(WatchEvent::is_terminal) {
            self.done = true;
            return Ok(());
        }
        self.cmds
            .unbounded_send(Cmd::Cancel(self.id))
            .map_err(|_| Error::Closed)?;
        loop {
            match std::future::poll_fn(|cx| Pin::new(&mut self.events).poll_next(cx)).await {
                Some(Ok(e)) if e.is_terminal() => break,
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                None => break,
            }
        }
        self.done = true;
        Ok(())
    }
}

impl Stream for Watcher {
    type Item = Result<WatchEvent>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(e) = this.pending.take() {
            this.done = e.is_terminal();
            return Poll::Ready(Some(Ok(e)));
        }
        if this.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.events).poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(e))) => {
                if e.is_terminal() {
                    this.done = true;
                }
                Poll::Ready(Some(Ok(e)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.done = true;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                // The task ended without a final event: the client closed.
                this.done = true;
                Poll::Ready(Some(Err(Error::Closed)))
            }
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.cmds.unbounded_send(Cmd::Cancel(self.id));
        }
    }
}

impl Client {
    /// Watch `key` (or a range, see [`WatchOptions`]). Returns once the
    /// server created the watcher: every change after
    /// [`Watcher::created_revision`] (or from the start revision) will be
    /// reported, exactly once and in order, across endpoint failures.
    ///
    /// Fails with [`Error::WatchCancelled`] when the server refuses the
    /// watch (e.g. permission denied).
    ///
    /// ```no_run
    /// use etcdv3_client::api::{WatchEvent, WatchOptions};
    /// use futures_util::StreamExt;
    ///
    /// async fn demo(client: &etcdv3_client::Client) -> etcdv3_client::Result<()> {
    ///     let mut watcher = client.watch("config/", WatchOptions::new().with_prefix()).await?;
    ///     while let Some(event) = watcher.next().await {
    ///         if let WatchEvent::Events { events, .. } = event? {
    ///             for e in events {
    ///                 println!("{:?}", e.kv);
    ///             }
    ///         }
    ///     }
    ///     Ok(())
    /// }
    /// ```
    pub async fn watch(&self, key: impl Into<Vec<u8>>, options: WatchOptions) -> Result<Watcher> {
        let request = options.to_request(key.into())?;
        let timeout = options
            .timeout
            .unwrap_or(self.shared.options.request_timeout);
        let deadline = self.now() + timeout;
        let (mut watcher, mut sleep) = loop {
            if self.is_closed() {
                return Err(Error::Closed);
            }
            let cmds = task_inbox(&WATCH_TASKS, self, |rx| {
                let bg = self.background();
                self.spawn(watch_task(bg, rx));
            });
            let (sink, events) = mpsc::unbounded();
            let (reply, id) = oneshot::channel();
            let add = Cmd::Add {
                request: request.clone(),
                sink,
                reply,
            };
            if cmds.unbounded_send(add).is_err() {
                continue;
            }
            // The task may end right now (its last watcher went away): then
            // the reply is dropped and we start over with a new task.
            if let Ok(id) = id.await {
                let watcher = Watcher {
                    id,
                    created_revision: 0,
                    events,
                    cmds,
                    pending: None,
                    done: false,
                };
                break (watcher, self.runtime().sleep_until(deadline));
            }
        };
        let first = std::future::poll_fn(|cx| {
            if let Poll::Ready(e) = Pin::new(&mut watcher.events).poll_next(cx) {
                return Poll::Ready(Some(e));
            }
            sleep.as_mut().poll(cx).map(|()| None)
        })
        .await;
        match first {
            Some(Some(Ok(WatchEvent::Created { revision }))) => {
                watcher.created_revision = revision;
                Ok(watcher)
            }
            Some(Some(Ok(WatchEvent::Cancelled { reason }))) => {
                watcher.done = true;
                Err(Error::WatchCancelled { reason })
            }
            Some(Some(Ok(other))) => {
                // E.g. compacted at creation: hand it over as the first event.
                watcher.pending = Some(other);
                Ok(watcher)
            }
            Some(Some(Err(e))) => {
                watcher.done = true;
                Err(e)
            }
            Some(None) => {
                watcher.done = true;
                Err(Error::Closed)
            }
            None => Err(Error::Call(
                etcdv3_core::machine::CallError::DeadlineExceeded {
                    method: WATCH_WATCH.path,
                    attempts: 1,
                    last_error: "the server did not create the watcher in time".into(),
                    may_have_applied: false,
                },
            )),
        }
    }
}

enum Input {
    Cmd(Option<Cmd>),
    Msg(Result<Option<WatchResponse>>),
    Opened(Result<BidiCall<WatchRequest, WatchResponse>>),
    Slept,
}

type Opening = BoxFuture<'static, Result<BidiCall<WatchRequest, WatchResponse>>>;

/// The per-client watch task: owns the stream and the hub.
async fn watch_task(client: Client, mut cmds: mpsc::UnboundedReceiver<Cmd>) {
    let mut hub = WatchHub::new();
    let mut sinks: HashMap<WatcherId, Sink> = HashMap::new();
    let mut stream: Option<BidiCall<WatchRequest, WatchResponse>> = None;
    let mut opening: Option<Opening> = None;
    let mut sleep: Option<BoxFuture<'static, ()>> = None;
    let mut failures: u32 = 0;
    let mut cmds_open = true;
    loop {
        let input = std::future::poll_fn(|cx| {
            if cmds_open {
                if let Poll::Ready(c) = Pin::new(&mut cmds).poll_next(cx) {
                    return Poll::Ready(Input::Cmd(c));
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
            if let Some(z) = sleep.as_mut() {
                if z.as_mut().poll(cx).is_ready() {
                    sleep = None;
                    return Poll::Ready(Input::Slept);
                }
            }
            Poll::Pending
        })
        .await;
        let mut lost = false;
        match input {
            Input::Cmd(None) => cmds_open = false,
            Input::Cmd(Some(cmd)) => handle_cmd(&mut hub, &mut sinks, cmd),
            Input::Msg(Ok(Some(resp))) => {
                failures = 0;
                if let Some(h) = &resp.header {
                    // Reads after this must not see an older revision.
                    client.note_revision(h.revision);
                }
                hub.handle_response(resp);
            }
            Input::Msg(Ok(None)) => {
                tracing::debug!("watch stream ended by the server");
                lost = true;
            }
            Input::Msg(Err(e)) => {
                tracing::debug!(error = %e, "watch stream failed");
                lost = true;
            }
            Input::Opened(Ok(s)) => stream = Some(s),
            Input::Opened(Err(e)) => {
                tracing::debug!(error = %e, "opening the watch stream failed");
                failures += 1;
                sleep = Some(
                    client
                        .runtime()
                        .sleep_until(client.now() + reopen_backoff(failures)),
                );
            }
            Input::Slept => {}
        }
        // Take every command that is ready before deciding anything.
        while cmds_open {
            match cmds.try_recv() {
                Ok(cmd) => handle_cmd(&mut hub, &mut sinks, cmd),
                Err(mpsc::TryRecvError::Closed) => cmds_open = false,
                Err(mpsc::TryRecvError::Empty) => break,
            }
        }
        if client.is_closed() {
            for (_, s) in sinks.drain() {
                let _ = s.unbounded_send(Err(Error::Closed));
            }
            cmds.close();
            return;
        }
        if hub.needs_new_stream() && stream.is_some() {
            tracing::debug!("watch stream: member lost its leader, reopening");
            lost = true;
            failures += 1;
        }
        if let Some(s) = stream.as_mut() {
            if !lost {
                while let Some(req) = hub.poll_transmit() {
                    if let Err(e) = s.send(&req) {
                        tracing::debug!(error = %e, "sending on the watch stream failed");
                        lost = true;
                        break;
                    }
                }
            }
        }
        if lost {
            stream = None;
            hub.handle_stream_lost();
            if failures > 0 {
                sleep = Some(
                    client
                        .runtime()
                        .sleep_until(client.now() + reopen_backoff(failures)),
                );
            }
        }
        deliver(&mut hub, &mut sinks);
        if hub.is_empty() {
            // Last watcher gone: end. Commands that raced in are dropped
            // (their senders retry with a new task).
            cmds.close();
            return;
        }
        if stream.is_none() && opening.is_none() && sleep.is_none() {
            let c = client.clone();
            opening = Some(Box::pin(async move {
                c.open_bidi::<WatchRequest, WatchResponse>(WATCH_WATCH)
                    .await
            }));
        }
    }
}

fn handle_cmd(hub: &mut WatchHub, sinks: &mut HashMap<WatcherId, Sink>, cmd: Cmd) {
    match cmd {
        Cmd::Add {
            request,
            sink,
            reply,
        } => {
            let id = hub.add(request);
            if reply.send(id).is_err() {
                hub.cancel(id);
            } else {
                sinks.insert(id, sink);
            }
        }
        Cmd::Cancel(id) => hub.cancel(id),
        Cmd::Progress => hub.request_progress(),
    }
}

fn deliver(hub: &mut WatchHub, sinks: &mut HashMap<WatcherId, Sink>) {
    while let Some((id, event)) = hub.poll_event() {
        let terminal = event.is_terminal();
        let gone = match sinks.get(&id) {
            Some(s) => s.unbounded_send(Ok(event)).is_err(),
            None => true,
        };
        if terminal {
            sinks.remove(&id);
        } else if gone {
            hub.cancel(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_to_request() {
        let r = WatchOptions::new()
            .with_prefix()
            .with_start_revision(5)
            .with_no_put()
            .with_no_delete()
            .with_prev_kv()
            .with_progress_notify()
            .with_fragment()
            .to_request(b"app/".to_vec())
            .unwrap();
        assert_eq!(r.key, b"app/");
        assert_eq!(r.range_end, b"app0");
        assert_eq!(r.start_revision, 5);
        assert_eq!(
            r.filters,
            vec![FilterType::Noput as i32, FilterType::Nodelete as i32]
        );
        assert!(r.prev_kv && r.progress_notify && r.fragment);
        assert_eq!(r.watch_id, 0);
    }

    #[test]
    fn empty_keys() {
        assert!(matches!(
            WatchOptions::new().to_request(Vec::new()),
            Err(Error::InvalidArgument(_))
        ));
        let all = WatchOptions::new()
            .with_prefix()
            .to_request(Vec::new())
            .unwrap();
        assert_eq!((all.key, all.range_end), (vec![0], vec![0]));
        let from = WatchOptions::new()
            .with_from_key()
            .to_request(b"m".to_vec())
            .unwrap();
        assert_eq!((from.key, from.range_end), (b"m".to_vec(), vec![0]));
        let range = WatchOptions::new()
            .with_range_end("z")
            .to_request(b"a".to_vec())
            .unwrap();
        assert_eq!(range.range_end, b"z");
        assert!(WatchOptions::new()
            .with_start_revision(-1)
            .to_request(b"a".to_vec())
            .is_err());
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(reopen_backoff(0), Duration::from_millis(50));
        assert_eq!(reopen_backoff(1), Duration::from_millis(100));
        assert_eq!(reopen_backoff(30), Duration::from_millis(2000));
    }
}
