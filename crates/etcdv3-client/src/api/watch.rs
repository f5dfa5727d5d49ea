//! Watch: [`Client::watch`] and the [`Watcher`] stream.
//!
//! All watchers of a client share ONE gRPC `Watch` stream, owned by the
//! client's stream task for watches (started with the first watcher, ended
//! when the last one is gone; see `stream_task`). The task runs the sans-IO
//! [`WatchHub`]: when the stream fails (member down, partition, "no
//! leader", an expired token), a new one is opened when the core's stream
//! supervisor says (the core picks a healthy endpoint) and every watcher is
//! re-created from the revision after the last one it delivered, so no
//! event is lost or duplicated and events stay in revision order. If that
//! revision was compacted meanwhile, the watcher ends with
//! [`WatchEvent::Compacted`].
//!
//! Memory is bounded when a consumer falls behind: a watcher (or a
//! [`WatchGroup`](crate::api::WatchGroup)) holds at most
//! [`MAX_BUFFERED_BYTES`] of events not yet taken, plus one response. Past
//! that, the watcher is paused — its server watch cancelled, what arrives
//! dropped — and once its consumer has polled enough that it holds half the
//! limit or less, it is created again from the revision after the last one
//! it was handed: the
//! consumer still gets every revision exactly once and in order, only
//! later. If that revision was compacted meanwhile, the watcher ends with
//! [`WatchEvent::Compacted`] after the events it was handed. The decision is
//! the core's (`etcdv3_core::streams::watch`, "Slow consumers").

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use etcdv3_core::streams::watch::{delivery_cost, QueueId, WatchHub, WatcherIdBuildHasher};
use etcdv3_proto::etcdserverpb::{
    watch_create_request::FilterType, WatchCreateRequest, WatchRequest, WatchResponse,
};
use etcdv3_proto::method::WATCH_WATCH;
use futures_channel::{mpsc, oneshot};
use futures_core::Stream;

use crate::api::kv::KeyRange;
use crate::api::stream_task::{self, StreamOwner, Verdict};
use crate::api::watch_group::GroupShared;
use crate::client::KeepOpen;
use crate::error::{Error, Result};
use crate::transport::tasks::Lane;
use crate::Client;

pub use etcdv3_core::streams::watch::{WatchEvent, WatcherId, MAX_BUFFERED_BYTES};
pub use etcdv3_proto::mvccpb::{event::EventType, Event};

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
    pub(crate) timeout: Option<Duration>,
}

impl WatchOptions {
    /// Default options: the key alone, from the next revision.
    ///
    /// ```no_run
    /// use etcdv3_client::api::WatchOptions;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let w = client.watch("config", WatchOptions::new()).await?;
    /// # Ok(()) }
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    key_range_setters!("Watch", r#"etcdv3_client::api::WatchOptions::new()"#);

    /// Start at `revision` (history replay), instead of the next one.
    ///
    /// ```no_run
    /// use etcdv3_client::api::WatchOptions;
    /// # async fn demo(client: etcdv3_client::Client, last_seen: i64) -> etcdv3_client::Result<()> {
    /// // Resume after the last revision already processed.
    /// let w = client.watch("jobs/", WatchOptions::new().with_prefix().with_start_revision(last_seen + 1)).await?;
    /// # Ok(()) }
    /// ```
    pub fn with_start_revision(mut self, revision: i64) -> Self {
        self.start_revision = revision;
        self
    }

    /// Do not report puts.
    ///
    /// ```no_run
    /// use etcdv3_client::api::WatchOptions;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// // Deletions (and lease expiries) only.
    /// let w = client.watch("svc/", WatchOptions::new().with_prefix().with_no_put()).await?;
    /// # Ok(()) }
    /// ```
    pub fn with_no_put(mut self) -> Self {
        self.no_put = true;
        self
    }

    /// Do not report deletes.
    ///
    /// ```no_run
    /// use etcdv3_client::api::WatchOptions;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let w = client.watch("svc/", WatchOptions::new().with_prefix().with_no_delete()).await?;
    /// # Ok(()) }
    /// ```
    pub fn with_no_delete(mut self) -> Self {
        self.no_delete = true;
        self
    }

    /// Report each key's previous value with its events.
    ///
    /// ```no_run
    /// use etcdv3_client::api::{WatchEvent, WatchOptions};
    /// use futures_util::StreamExt;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let mut w = client.watch("cfg", WatchOptions::new().with_prev_kv()).await?;
    /// if let Some(WatchEvent::Events { events, .. }) = w.next().await.transpose()? {
    ///     println!("was {:?}", events[0].prev_kv.as_ref().map(|kv| &kv.value));
    /// }
    /// # Ok(()) }
    /// ```
    pub fn with_prev_kv(mut self) -> Self {
        self.prev_kv = true;
        self
    }

    /// Ask the server for periodic [`WatchEvent::Progress`] notifications
    /// while nothing happens.
    ///
    /// ```no_run
    /// use etcdv3_client::api::{WatchEvent, WatchOptions};
    /// use futures_util::StreamExt;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let mut w = client.watch("quiet/", WatchOptions::new().with_prefix().with_progress_notify()).await?;
    /// while let Some(ev) = w.next().await {
    ///     if let WatchEvent::Progress { revision } = ev? {
    ///         println!("up to date at {revision}");
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn with_progress_notify(mut self) -> Self {
        self.progress_notify = true;
        self
    }

    /// Let the server split large responses (they are reassembled before
    /// delivery).
    ///
    /// ```no_run
    /// use etcdv3_client::api::WatchOptions;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let w = client.watch("", WatchOptions::new().with_prefix().with_fragment()).await?;
    /// # Ok(()) }
    /// ```
    pub fn with_fragment(mut self) -> Self {
        self.fragment = true;
        self
    }

    /// How long [`Client::watch`] waits for the server to create the watcher
    /// (default: the client's request timeout).
    ///
    /// ```no_run
    /// use etcdv3_client::api::WatchOptions;
    /// use std::time::Duration;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let w = client.watch("k", WatchOptions::new().with_timeout(Duration::from_secs(2))).await?;
    /// # Ok(()) }
    /// ```
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

/// Where a [`Watcher`]'s events go: its own channel.
type Sink = (mpsc::UnboundedSender<Result<WatchEvent>>, Arc<Flow>);

/// A [`WatchGroup`](crate::api::WatchGroup) the task delivers to: found by
/// the hub queue its watchers are charged to (the hub names it with each
/// item), so the task keeps nothing per grouped watcher.
struct GroupSink {
    shared: Arc<GroupShared>,
    /// Its watchers the hub tracks: the entry goes when the last ends.
    watchers: usize,
}

/// What one consumer (a [`Watcher`] or a group) holds and took, shared
/// between it and the stream task: the core's hub decides on the counts
/// (see the module docs), the consumer only reports what it took.
#[derive(Debug)]
pub(crate) struct Flow {
    /// The hub's queue of the consumer.
    pub(crate) queue: QueueId,
    /// Cost ([`delivery_cost`]) of the items handed over and not taken.
    held: AtomicUsize,
    /// Cost taken and not reported to the hub yet.
    taken: AtomicUsize,
}

impl Flow {
    pub(crate) fn new(queue: QueueId) -> Flow {
        Flow {
            queue,
            held: AtomicUsize::new(0),
            taken: AtomicUsize::new(0),
        }
    }

    /// The task handed `item` to the consumer.
    pub(crate) fn handed(&self, item: &Result<WatchEvent>) {
        self.handed_cost(item_cost(item));
    }

    /// The task handed items costing `cost` to the consumer.
    pub(crate) fn handed_cost(&self, cost: usize) {
        self.held.fetch_add(cost, Ordering::Relaxed);
    }

    /// The consumer took `item`. True when the task must be told (nothing
    /// taken was pending a report: one report covers what is taken until
    /// the task reads it).
    pub(crate) fn took(&self, item: &Result<WatchEvent>) -> bool {
        self.took_cost(item_cost(item))
    }

    /// The consumer took items costing `cost`; see [`Flow::took`].
    pub(crate) fn took_cost(&self, cost: usize) -> bool {
        if cost == 0 {
            return false;
        }
        let _ = self
            .held
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |h| {
                Some(h.saturating_sub(cost))
            });
        self.taken.fetch_add(cost, Ordering::AcqRel) == 0
    }

    /// What the consumer took since the last call (the task reports it to
    /// the hub).
    fn report(&self) -> usize {
        self.taken.swap(0, Ordering::AcqRel)
    }

    /// Cost of what the consumer holds.
    pub(crate) fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }
}

/// What an item costs its consumer's queue: the hub's measure for events,
/// nothing for the client's own errors (the hub never counted them).
pub(crate) fn item_cost(item: &Result<WatchEvent>) -> usize {
    item.as_ref().map_or(0, delivery_cost)
}

/// The next watcher id of `client` (its shared state's counter: see
/// `stream_task::Ids`).
pub(crate) fn next_watcher_id(client: &Client) -> Result<WatcherId> {
    client
        .shared
        .tasks
        .ids
        .next_watcher()
        .ok_or_else(|| Error::InvalidArgument("watcher ids exhausted".into()))
}

pub(crate) enum Cmd {
    Add {
        id: WatcherId,
        request: WatchCreateRequest,
        sink: mpsc::UnboundedSender<Result<WatchEvent>>,
        flow: Arc<Flow>,
        reply: oneshot::Sender<WatcherId>,
    },
    /// A consumer took items (its flow says how much).
    Consumed(Arc<Flow>),
    /// A group has new watchers (ids already handed out) waiting in its
    /// list of adds: one command per batch of adds, not per watcher.
    GroupAdds(Arc<GroupShared>),
    /// Cancel a group's watcher (ignored unless it belongs to the group).
    GroupCancel(Arc<GroupShared>, WatcherId),
    /// The group handle was dropped: cancel all its watchers.
    GroupDrop(Arc<GroupShared>),
    Cancel(WatcherId),
    Progress,
}

/// One watcher: a [`Stream`] of its events.
///
/// The first event, [`WatchEvent::Created`], was already consumed by
/// [`Client::watch`] (see [`Watcher::created_revision`]). The stream ends
/// after [`WatchEvent::Compacted`] or [`WatchEvent::Cancelled`]; it yields
/// `Err(Error::Closed)` (then ends) when the client is closed.
///
/// Dropping a `Watcher` cancels it on the server. Events wait in the
/// watcher until it is polled, at most [`MAX_BUFFERED_BYTES`] of them (plus
/// one response): a watcher that falls further behind is paused and later
/// resumed where it stopped, without loss or duplicates (see the [module
/// docs](self) and [`Watcher::buffered_bytes`]).
///
/// ```no_run
/// use etcdv3_client::api::{WatchEvent, WatchOptions, Watcher};
/// use futures_util::StreamExt;
/// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
/// let mut w: Watcher = client.watch("cfg/", WatchOptions::new().with_prefix()).await?;
/// while let Some(ev) = w.next().await {
///     match ev? {
///         WatchEvent::Events { events, revision } => println!("{} events at {revision}", events.len()),
///         WatchEvent::Compacted { compact_revision } => println!("restart from {compact_revision}"),
///         _ => {}
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Watcher {
    /// Keeps the client open while this handle lives.
    _keep: KeepOpen,
    id: WatcherId,
    created_revision: i64,
    events: mpsc::UnboundedReceiver<Result<WatchEvent>>,
    cmds: mpsc::UnboundedSender<Cmd>,
    flow: Arc<Flow>,
    pending: Option<WatchEvent>,
    done: bool,
    /// The namespace whose prefix comes off the events' keys
    /// ([`Client::with_namespace`]).
    strip: Option<Arc<[u8]>>,
}

impl std::fmt::Debug for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cmd::Add { .. } => f.write_str("Add"),
            Cmd::GroupAdds(_) => f.write_str("GroupAdds"),
            Cmd::GroupCancel(_, id) => write!(f, "GroupCancel({id})"),
            Cmd::GroupDrop(_) => f.write_str("GroupDrop"),
            Cmd::Cancel(id) => write!(f, "Cancel({id})"),
            Cmd::Consumed(flow) => write!(f, "Consumed({:?})", flow.queue),
            Cmd::Progress => f.write_str("Progress"),
        }
    }
}

impl Watcher {
    /// The client-side id of this watcher (also its `watch_id` on etcd 3.4+).
    ///
    /// ```no_run
    /// use etcdv3_client::api::WatchOptions;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let a = client.watch("a", WatchOptions::new()).await?;
    /// let b = client.watch("b", WatchOptions::new()).await?;
    /// assert_ne!(a.id(), b.id());
    /// # Ok(()) }
    /// ```
    pub fn id(&self) -> WatcherId {
        self.id
    }

    /// The store revision when the server created the watcher: a watcher
    /// without a start revision reports every event after it.
    ///
    /// ```no_run
    /// use etcdv3_client::api::{GetOptions, WatchOptions};
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// // Read, then watch from exactly after the read: no change is missed.
    /// let snapshot = client.get("cfg/", GetOptions::new().with_prefix()).await?;
    /// let rev = snapshot.revision();
    /// let w = client.watch("cfg/", WatchOptions::new().with_prefix().with_start_revision(rev + 1)).await?;
    /// println!("watching since {}", w.created_revision());
    /// # Ok(()) }
    /// ```
    pub fn created_revision(&self) -> i64 {
        self.created_revision
    }

    /// About how many bytes of events wait in this watcher, not polled yet
    /// (the measure of [`MAX_BUFFERED_BYTES`]): a lag gauge. It stays
    /// within the limit plus one response however far behind the consumer
    /// is (see the [module docs](self)).
    ///
    /// ```no_run
    /// use etcdv3_client::api::{WatchOptions, MAX_BUFFERED_BYTES};
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let w = client.watch("jobs/", WatchOptions::new().with_prefix()).await?;
    /// if w.buffered_bytes() > MAX_BUFFERED_BYTES / 2 {
    ///     println!("the consumer of {} is falling behind", w.id());
    /// }
    /// # Ok(()) }
    /// ```
    pub fn buffered_bytes(&self) -> usize {
        self.flow.held()
    }

    /// Account for `item` taken from the channel: the stream task hears of
    /// it when the hub may be waiting for it.
    fn took(&self, item: &Result<WatchEvent>) {
        if self.flow.took(item) {
            let _ = self.cmds.unbounded_send(Cmd::Consumed(self.flow.clone()));
        }
    }

    /// Ask the server for a [`WatchEvent::Progress`] notification (sent to
    /// every watcher of the client).
    ///
    /// ```no_run
    /// use etcdv3_client::api::{WatchEvent, WatchOptions};
    /// use futures_util::StreamExt;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let mut w = client.watch("k", WatchOptions::new()).await?;
    /// w.request_progress()?;
    /// if let Some(WatchEvent::Progress { revision }) = w.next().await.transpose()? {
    ///     println!("caught up to {revision}");
    /// }
    /// # Ok(()) }
    /// ```
    pub fn request_progress(&self) -> Result<()> {
        self.cmds
            .unbounded_send(Cmd::Progress)
            .map_err(|_| Error::Closed)
    }

    /// Cancel the watcher and wait until the server confirmed. Events that
    /// arrive meanwhile are discarded.
    ///
    /// ```no_run
    /// use etcdv3_client::api::WatchOptions;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let w = client.watch("k", WatchOptions::new()).await?;
    /// w.cancel().await?;
    /// # Ok(()) }
    /// ```
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
        let next = Pin::new(&mut this.events).poll_next(cx);
        if let Poll::Ready(Some(item)) = &next {
            this.took(item);
        }
        match next {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(e))) => {
                if e.is_terminal() {
                    this.done = true;
                }
                let e = match &this.strip {
                    Some(ns) => super::namespace::strip_event(ns, e),
                    None => e,
                };
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
    /// Fails with [`Error::WatchRefused`] when the server refuses the
    /// watch with a status (e.g. permission denied: its
    /// [`Error::etcd_kind`] is `PermissionDenied`), or
    /// [`Error::WatchCancelled`] with the server's reason otherwise.
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
        let mut request = options.to_request(key.into())?;
        let ns = self.namespace();
        if ns.is_empty() {
            return self.watch_request(request, options.timeout).await;
        }
        (request.key, request.range_end) =
            super::namespace::prefix_interval(ns, &request.key, &request.range_end);
        let mut watcher = self.watch_request(request, options.timeout).await?;
        watcher.strip = Some(ns.into());
        watcher.pending = watcher
            .pending
            .take()
            .map(|ev| super::namespace::strip_event(ns, ev));
        Ok(watcher)
    }

    /// [`Client::watch`] with the wire request built (namespaces rewrite
    /// its keys first).
    pub(crate) async fn watch_request(
        &self,
        request: WatchCreateRequest,
        timeout: Option<Duration>,
    ) -> Result<Watcher> {
        let timeout = timeout
            .or(self.call_options().timeout)
            .unwrap_or(self.shared.options.request_timeout);
        let deadline = self.now() + timeout;
        let (mut watcher, mut sleep) = loop {
            if self.is_closed() {
                return Err(Error::Closed);
            }
            let cmds = watch_inbox(self, Lane::SHARED);
            let (sink, events) = mpsc::unbounded();
            let (reply, id) = oneshot::channel();
            let wid = next_watcher_id(self)?;
            let flow = Arc::new(Flow::new(QueueId::of(wid)));
            let add = Cmd::Add {
                id: wid,
                request: request.clone(),
                sink,
                flow: flow.clone(),
                reply,
            };
            if cmds.unbounded_send(add).is_err() {
                continue;
            }
            // The task may end right now (its last watcher went away): then
            // the reply is dropped and we start over with a new task.
            if let Ok(id) = id.await {
                let watcher = Watcher {
                    _keep: self.keep_open(),
                    id,
                    created_revision: 0,
                    events,
                    cmds,
                    flow,
                    pending: None,
                    done: false,
                    strip: None,
                };
                break (watcher, self.runtime().sleep_until(deadline));
            }
        };
        let first = std::future::poll_fn(|cx| {
            if let Poll::Ready(e) = Pin::new(&mut watcher.events).poll_next(cx) {
                if let Some(item) = &e {
                    watcher.took(item);
                }
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
                Err(Error::from_cancel_reason(reason))
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
                    source: None,
                },
            )),
        }
    }
}

/// A hub that bounds what each consumer holds to [`MAX_BUFFERED_BYTES`].
fn new_hub() -> WatchHub {
    let mut hub = WatchHub::new();
    hub.set_buffer_limit(Some(MAX_BUFFERED_BYTES));
    hub
}

/// The inbox of `client`'s watch stream task on `lane` (started if none
/// runs): each lane's task has its own hub and gRPC stream.
pub(crate) fn watch_inbox(client: &Client, lane: Lane) -> mpsc::UnboundedSender<Cmd> {
    stream_task::inbox(client, lane, || WatchOwner::new(client.background()))
}

/// The per-kind part of the client's watch stream task: the hub and the
/// watchers' event sinks.
struct WatchOwner {
    client: Client,
    hub: WatchHub,
    /// The [`Watcher`]s' channels (a watcher charged to its own queue).
    sinks: HashMap<WatcherId, Sink, WatcherIdBuildHasher>,
    /// The groups, by their hub queue (few entries: one per group).
    groups: HashMap<QueueId, GroupSink, WatcherIdBuildHasher>,
    /// Events for one group gathered during a `deliver` pass, handed over
    /// with one lock and one wake-up.
    batch: GroupBatch,
    /// The highest header revision received since the last `deliver`.
    seen_revision: i64,
}

impl WatchOwner {
    fn new(client: Client) -> Self {
        WatchOwner {
            client,
            hub: new_hub(),
            sinks: HashMap::default(),
            groups: HashMap::default(),
            batch: GroupBatch::default(),
            seen_revision: 0,
        }
    }
}

impl StreamOwner for WatchOwner {
    type Cmd = Cmd;
    type Req = WatchRequest;
    type Resp = WatchResponse;
    const METHOD: etcdv3_proto::method::Method = WATCH_WATCH;

    fn handle_cmd(&mut self, _now: Instant, cmd: Cmd) {
        self.take_cmd(cmd);
    }

    fn is_done(&self) -> bool {
        self.hub.is_empty()
    }

    fn handle_opened(&mut self, _now: Instant) {}

    fn handle_lost(&mut self, _now: Instant) {
        self.hub.handle_stream_lost();
    }

    fn handle_message(&mut self, _now: Instant, resp: WatchResponse) {
        if let Some(h) = &resp.header {
            self.seen_revision = self.seen_revision.max(h.revision);
        }
        self.hub.handle_response(resp);
    }

    fn handle_messages(&mut self, now: Instant, batch: &mut Vec<WatchResponse>) {
        // The records of the batch's watchers, loaded together (their
        // cache misses overlap) before the responses are fed one by one.
        self.hub.prefetch(batch);
        for resp in batch.drain(..) {
            self.handle_message(now, resp);
        }
    }

    fn verdict(&self, _now: Instant) -> Verdict {
        Verdict::of_watch(&self.hub)
    }

    fn handle_auth_final(&mut self, _now: Instant) {
        self.hub.handle_auth_final();
    }

    fn poll_transmit(&mut self, _now: Instant) -> Option<WatchRequest> {
        self.hub.poll_transmit()
    }

    fn deliver(&mut self) {
        self.deliver_events();
    }

    fn fail(&mut self, err: &Error) {
        // What the hub yielded already goes first (a watcher whose end is
        // among it gets that end, not the error).
        self.deliver_events();
        let mut sinks: Vec<(WatcherId, Sink)> = self.sinks.drain().collect();
        sinks.sort_unstable_by_key(|(id, _)| *id);
        for (_, (s, _)) in sinks {
            let _ = s.unbounded_send(Err(err.clone()));
        }
        let mut groups: Vec<(QueueId, GroupSink)> = self.groups.drain().collect();
        groups.sort_unstable_by_key(|(q, _)| std::cmp::Reverse(*q));
        for (queue, g) in groups {
            for id in self.hub.ids_in_queue(queue) {
                self.batch.push(&g.shared, id, Err(err.clone()), true);
            }
        }
        self.batch.flush();
        self.hub = new_hub();
    }
}

impl WatchOwner {
    fn take_cmd(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Add {
                id,
                request,
                sink,
                flow,
                reply,
            } => {
                if !self.hub.add_to_queue(id, request, flow.queue) {
                    return; // Not possible with fresh ids; the caller retries.
                }
                if reply.send(id).is_err() {
                    self.hub.cancel(id);
                } else {
                    self.sinks.insert(id, (sink, flow));
                }
            }
            Cmd::Consumed(flow) => self.hub.handle_consumed(flow.queue, flow.report()),
            Cmd::GroupAdds(group) => {
                let adds = group.take_adds();
                if group.is_dropped() {
                    return;
                }
                let queue = group.flow.queue;
                let mut added = 0;
                for (id, request) in adds {
                    if self.hub.add_to_queue(id, request, queue) {
                        added += 1;
                    }
                }
                if added > 0 {
                    self.groups
                        .entry(queue)
                        .or_insert_with(|| GroupSink {
                            shared: group.clone(),
                            watchers: 0,
                        })
                        .watchers += added;
                }
            }
            Cmd::GroupCancel(group, id) => {
                if self.hub.queue_of(id) == Some(group.flow.queue) {
                    self.hub.cancel(id);
                }
            }
            Cmd::GroupDrop(group) => {
                for id in self.hub.ids_in_queue(group.flow.queue) {
                    self.hub.cancel(id);
                }
            }
            Cmd::Cancel(id) => self.hub.cancel(id),
            Cmd::Progress => self.hub.request_progress(),
        }
    }

    fn deliver_events(&mut self) {
        if self.seen_revision > 0 {
            // Reads issued after a user saw these events must not see an
            // older revision: told once per batch, before handing them over.
            self.client
                .note_revision(std::mem::take(&mut self.seen_revision));
        }
        // One allocation for the pass's items, not a doubling per push.
        self.batch.reserve(self.hub.queued());
        while let Some((id, queue, event)) = self.hub.poll_delivery() {
            let terminal = event.is_terminal();
            let gone = if queue == QueueId::of(id) {
                let gone = match self.sinks.get(&id) {
                    Some((s, flow)) => {
                        let item = Ok(event);
                        flow.handed(&item);
                        s.unbounded_send(item).is_err()
                    }
                    None => true,
                };
                if terminal {
                    self.sinks.remove(&id);
                }
                gone
            } else {
                // A group's watcher: the group is found by its queue in a
                // table of one entry per group.
                let gone = match self.groups.get_mut(&queue) {
                    Some(g) => {
                        if terminal {
                            g.watchers = g.watchers.saturating_sub(1);
                        }
                        if g.shared.is_dropped() {
                            true
                        } else {
                            self.batch.push(&g.shared, id, Ok(event), terminal);
                            false
                        }
                    }
                    None => true,
                };
                if terminal && self.groups.get(&queue).is_some_and(|g| g.watchers == 0) {
                    self.groups.remove(&queue);
                }
                gone
            };
            if gone && !terminal {
                self.hub.cancel(id);
            }
        }
        self.batch.flush();
    }
}

/// Items for one group, gathered until the events of another group come
/// or the `deliver` pass ends (with one group, one flush per pass).
#[derive(Default)]
struct GroupBatch {
    group: Option<Arc<GroupShared>>,
    items: Vec<(WatcherId, Result<WatchEvent>)>,
    /// How many of `items` end their watcher.
    ended: usize,
}

impl GroupBatch {
    /// About `n` items will come in this pass.
    fn reserve(&mut self, n: usize) {
        self.items.reserve(n);
    }

    fn push(&mut self, g: &Arc<GroupShared>, id: WatcherId, item: Result<WatchEvent>, ends: bool) {
        if !self.group.as_ref().is_some_and(|cur| Arc::ptr_eq(cur, g)) {
            self.flush();
            self.group = Some(g.clone());
        }
        self.items.push((id, item));
        self.ended += usize::from(ends);
    }

    fn flush(&mut self) {
        let items = std::mem::take(&mut self.items);
        if let Some(g) = self.group.take() {
            g.push_batch(items, self.ended);
        }
        self.ended = 0;
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
}
