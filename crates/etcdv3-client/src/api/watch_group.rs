//! Grouped watch: [`Client::watch_group`] and the [`WatchGroup`] stream.
//!
//! A [`Watcher`](crate::api::Watcher) is one stream per watcher: its own
//! channel, handle and wake-up per event. With thousands of watchers
//! consumed in one place that per-watcher machinery is most of the cost. A
//! [`WatchGroup`] is ONE stream of `(WatcherId, Result<WatchEvent>)` for any
//! number of watchers: they share the client's one watch stream task (the
//! same hub as every `Watcher`: exactly once, in order, re-created from the
//! last delivered revision after a failover), and what one pass of that
//! task yields for the group is handed over with one lock and one wake-up.
//! Creation is pipelined: [`WatchGroup::add`] returns the watcher's id at
//! once and [`WatchEvent::Created`] arrives on the stream later.
//! [`Client::watch_group_on_own_stream`] gives a group a task, hub and gRPC
//! stream of its own (a heavy fan-out then does not delay the client's
//! other watchers, which etcd serves one response at a time per stream).

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use etcdv3_proto::etcdserverpb::WatchCreateRequest;
use futures_core::Stream;
use futures_util::task::AtomicWaker;

use crate::api::watch::{
    item_cost, next_watcher_id, watch_inbox, Cmd, Flow, WatchEvent, WatchOptions, WatcherId,
};
use crate::client::KeepOpen;
use crate::error::{Error, Result};
use crate::transport::tasks::Lane;
use crate::Client;
use etcdv3_core::streams::watch::QueueId;

/// One item of a [`WatchGroup`]: which watcher, and what happened to it.
///
/// ```no_run
/// use etcdv3_client::api::{GroupItem, WatchEvent};
/// fn show(item: GroupItem) {
///     match item {
///         (id, Ok(WatchEvent::Events { events, .. })) => println!("{id}: {} events", events.len()),
///         (id, Ok(other)) => println!("{id}: {other:?}"),
///         (id, Err(e)) => println!("{id} ended: {e}"),
///     }
/// }
/// ```
pub type GroupItem = (WatcherId, Result<WatchEvent>);

/// Sends to a task that is gone are retried on a new task this many times.
const SEND_ATTEMPTS: usize = 3;

/// Many watchers, one [`Stream`] of `(WatcherId, Result<WatchEvent>)`.
///
/// Made by [`Client::watch_group`]. Each watcher's items come in order:
/// [`WatchEvent::Created`] first (or the watcher's end, e.g.
/// [`WatchEvent::Cancelled`] with the server's reason when it refuses the
/// watch), then its events, each revision exactly once, across endpoint
/// failures, until a terminal event ([`WatchEvent::Compacted`],
/// [`WatchEvent::Cancelled`]) or an error ends it. Items of different
/// watchers interleave as the server sends them.
///
/// When the client is closed, every watcher still live yields
/// `(id, Err(Error::Closed))` and the stream then ends (a group with no
/// live watcher ends at once: the close wakes it).
/// Dropping the group
/// cancels all its watchers on the server. Items wait in the group until it
/// is polled, at most [`MAX_BUFFERED_BYTES`](crate::api::MAX_BUFFERED_BYTES)
/// of them for the whole group (plus one response): a watcher whose
/// response arrives while the group holds that much is paused and resumed
/// where it stopped once the group was polled, without loss or duplicates
/// (see [`WatchGroup::buffered_bytes`] and the [watch module docs](crate::api::watch)).
///
/// ```no_run
/// use etcdv3_client::api::{WatchEvent, WatchGroup, WatchOptions};
/// use futures_util::StreamExt;
/// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
/// let mut group: WatchGroup = client.watch_group();
/// let a = group.add("svc/a", WatchOptions::new())?;
/// let b = group.add("svc/b/", WatchOptions::new().with_prefix())?;
/// while let Some((id, ev)) = group.next().await {
///     if let WatchEvent::Events { events, .. } = ev? {
///         let who = if id == a { "a" } else if id == b { "b" } else { "?" };
///         println!("{who}: {} events", events.len());
///     }
/// }
/// # Ok(()) }
/// ```
pub struct WatchGroup {
    /// Keeps the client open while the group lives.
    _keep: KeepOpen,
    client: Client,
    /// The stream task its watchers are on.
    lane: Lane,
    shared: Arc<GroupShared>,
    /// Items taken from the shared queue in one lock, handed out one by one.
    local: VecDeque<GroupItem>,
    /// Cost of the items of `local` handed out and not reported to the
    /// flow yet: reported once `local` is empty (one report per batch, not
    /// two atomic updates per item). Until then the hub counts them as
    /// held, which only ever delays resuming a paused watcher.
    taken: usize,
    ended: bool,
}

impl std::fmt::Debug for WatchGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchGroup")
            .field("live", &self.shared.lock().live)
            .finish_non_exhaustive()
    }
}

/// What a group and the client's watch stream task share.
pub(crate) struct GroupShared {
    queue: Mutex<GroupQueue>,
    /// Woken by the stream task (items) and by the client's close.
    waker: Arc<AtomicWaker>,
    /// The group handle was dropped: its watchers are being cancelled and
    /// nothing more is delivered.
    dropped: AtomicBool,
    /// What the group holds and took: all its watchers share one queue in
    /// the hub.
    pub(crate) flow: Arc<Flow>,
}

struct GroupQueue {
    items: VecDeque<GroupItem>,
    /// Watchers added and not taken by the stream task yet. Adding 10,000
    /// watchers fills one vector and sends one command, instead of 10,000
    /// commands whose short-lived allocations, interleaved with the
    /// watchers' long-lived ones, would stay in the process's memory.
    adds: Vec<(WatcherId, WatchCreateRequest)>,
    /// Watchers added and not ended yet (their last item not queued).
    live: usize,
}

impl GroupShared {
    fn lock(&self) -> MutexGuard<'_, GroupQueue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The watchers added since the last call.
    pub(crate) fn take_adds(&self) -> Vec<(WatcherId, WatchCreateRequest)> {
        std::mem::take(&mut self.lock().adds)
    }

    pub(crate) fn is_dropped(&self) -> bool {
        self.dropped.load(Ordering::Acquire)
    }

    /// Hand `items` to the group, `ended` of which end their watcher, with
    /// one lock and one wake-up. The batch's buffer itself becomes the queue
    /// when the consumer took everything before (the usual case): no copy,
    /// and no queue keeps the capacity of the largest batch ever seen.
    pub(crate) fn push_batch(&self, items: Vec<GroupItem>, ended: usize) {
        if items.is_empty() {
            return;
        }
        self.flow
            .handed_cost(items.iter().map(|(_, item)| item_cost(item)).sum());
        {
            let mut q = self.lock();
            if q.items.is_empty() {
                q.items = VecDeque::from(items);
            } else {
                q.items.extend(items);
            }
            q.live = q.live.saturating_sub(ended);
        }
        self.waker.wake();
    }
}

impl WatchGroup {
    /// Add a watcher on `key` (or a range, see [`WatchOptions`]) and return
    /// its id at once, without waiting for the server: its
    /// [`WatchEvent::Created`] (or its refusal) comes on the stream.
    /// [`WatchOptions::with_timeout`] does not apply here.
    ///
    /// Fails at once with [`Error::InvalidArgument`] for invalid input (an
    /// empty key without a prefix or range, a negative start revision) and
    /// with [`Error::Closed`] when the client is closed.
    ///
    /// ```no_run
    /// use etcdv3_client::api::WatchOptions;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let group = client.watch_group();
    /// let ids = (0..1000)
    ///     .map(|i| group.add(format!("jobs/{i}"), WatchOptions::new()))
    ///     .collect::<etcdv3_client::Result<Vec<_>>>()?;
    /// assert_eq!(ids.len(), 1000);
    /// assert!(group.add("", WatchOptions::new()).is_err()); // empty key
    /// # Ok(()) }
    /// ```
    pub fn add(&self, key: impl Into<Vec<u8>>, options: WatchOptions) -> Result<WatcherId> {
        let request = options.to_request(key.into())?;
        self.add_request(request)
    }

    /// [`WatchGroup::add`] with the wire request built.
    pub(crate) fn add_request(&self, request: WatchCreateRequest) -> Result<WatcherId> {
        if self.client.is_closed() {
            return Err(Error::Closed);
        }
        let id = next_watcher_id(&self.client)?;
        let first = {
            let mut q = self.shared.lock();
            q.live += 1;
            q.adds.push((id, request));
            q.adds.len() == 1
        };
        // The list was empty: the task hears of it (later adds join the
        // list until the task takes it). Commands sent after this one
        // (a cancel of this id) reach the task after it.
        if first && self.send(Cmd::GroupAdds(self.shared.clone())).is_err() {
            // Closed: this add fails, and adds that joined the list
            // meanwhile (other threads) end with the error.
            let others: Vec<GroupItem> = {
                let mut q = self.shared.lock();
                q.live = q.live.saturating_sub(1);
                std::mem::take(&mut q.adds)
                    .into_iter()
                    .filter(|(a, _)| *a != id)
                    .map(|(a, _)| (a, Err(Error::Closed)))
                    .collect()
            };
            let n = others.len();
            self.shared.push_batch(others, n);
            return Err(Error::Closed);
        }
        Ok(id)
    }

    /// Cancel watcher `id` of this group. Its last item,
    /// [`WatchEvent::Cancelled`] with an empty reason, comes on the stream
    /// once the server confirmed (or at once if the create was not sent
    /// yet); events that arrive meanwhile are not delivered, and a watcher
    /// cancelled before the server created it never reports
    /// [`WatchEvent::Created`]. Ids that are not this group's live watchers
    /// are ignored.
    ///
    /// ```no_run
    /// use etcdv3_client::api::{WatchEvent, WatchOptions};
    /// use futures_util::StreamExt;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let mut group = client.watch_group();
    /// let id = group.add("k", WatchOptions::new())?;
    /// group.cancel(id)?;
    /// while let Some((who, ev)) = group.next().await {
    ///     if who == id && matches!(ev?, WatchEvent::Cancelled { .. }) {
    ///         break;
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn cancel(&self, id: WatcherId) -> Result<()> {
        self.send(Cmd::GroupCancel(self.shared.clone(), id))
    }

    /// Ask the server for a [`WatchEvent::Progress`] notification (sent to
    /// every watcher on this group's gRPC stream, so to each of this
    /// group's: with [`Client::watch_group`], also to the client's other
    /// watchers on the shared stream).
    ///
    /// ```no_run
    /// use etcdv3_client::api::{WatchEvent, WatchOptions};
    /// use futures_util::StreamExt;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let mut group = client.watch_group();
    /// group.add("k", WatchOptions::new())?;
    /// group.request_progress()?;
    /// while let Some((_, ev)) = group.next().await {
    ///     if let WatchEvent::Progress { revision } = ev? {
    ///         println!("caught up to {revision}");
    ///         break;
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn request_progress(&self) -> Result<()> {
        self.send(Cmd::Progress)
    }

    /// Watchers added to this group that have not ended yet (their last
    /// item not handed to the stream).
    ///
    /// ```no_run
    /// use etcdv3_client::api::WatchOptions;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let group = client.watch_group();
    /// group.add("a", WatchOptions::new())?;
    /// group.add("b", WatchOptions::new())?;
    /// assert_eq!(group.live(), 2);
    /// # Ok(()) }
    /// ```
    pub fn live(&self) -> usize {
        self.shared.lock().live
    }

    /// About how many bytes of items wait in the group, not polled yet
    /// (the measure of [`MAX_BUFFERED_BYTES`](crate::api::MAX_BUFFERED_BYTES),
    /// for all its watchers together): a lag gauge that stays within the
    /// limit plus one response however far behind the consumer is.
    ///
    /// ```no_run
    /// use etcdv3_client::api::{WatchOptions, MAX_BUFFERED_BYTES};
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let group = client.watch_group();
    /// group.add("jobs/", WatchOptions::new().with_prefix())?;
    /// assert!(group.buffered_bytes() <= MAX_BUFFERED_BYTES);
    /// # Ok(()) }
    /// ```
    pub fn buffered_bytes(&self) -> usize {
        self.shared.flow.held()
    }

    fn send(&self, mut cmd: Cmd) -> Result<()> {
        if self.client.is_closed() {
            return Err(Error::Closed);
        }
        for _ in 0..SEND_ATTEMPTS {
            match watch_inbox(&self.client, self.lane).unbounded_send(cmd) {
                Ok(()) => return Ok(()),
                Err(e) => cmd = e.into_inner(),
            }
        }
        Err(Error::Closed)
    }
}

impl Stream for WatchGroup {
    type Item = GroupItem;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<GroupItem>> {
        let this = self.get_mut();
        let mut registered = false;
        loop {
            if let Some(item) = this.local.pop_front() {
                this.taken += item_cost(&item.1);
                if this.local.is_empty() {
                    // The batch's buffer goes now, not when the next batch
                    // replaces it (the same one free): an idle group keeps
                    // no buffer the size of its last batch.
                    this.local = VecDeque::new();
                    if this.shared.flow.took_cost(std::mem::take(&mut this.taken)) {
                        // The hub may wait for this to resume a paused watcher.
                        let _ = this.send(Cmd::Consumed(this.shared.flow.clone()));
                    }
                }
                return Poll::Ready(Some(item));
            }
            if this.ended {
                return Poll::Ready(None);
            }
            {
                // One lock: the items and the count of live watchers must
                // be read together, or the last items (one `Err(Closed)`
                // per live watcher after a close) could be pushed between
                // the two reads and lost.
                let mut q = this.shared.lock();
                if !q.items.is_empty() {
                    this.local = std::mem::take(&mut q.items);
                    continue;
                }
                if q.live == 0 && this.client.is_closed() {
                    this.ended = true;
                    return Poll::Ready(None);
                }
            }
            if registered {
                return Poll::Pending;
            }
            this.shared.waker.register(cx.waker());
            registered = true;
        }
    }
}

impl Drop for WatchGroup {
    fn drop(&mut self) {
        self.shared.dropped.store(true, Ordering::Release);
        if self.shared.lock().live > 0 && !self.client.is_closed() {
            let _ = self.send(Cmd::GroupDrop(self.shared.clone()));
        }
    }
}

/// A fresh hub queue for a group: negative, so never a watcher's own
/// (watcher ids are positive).
fn next_group_queue() -> QueueId {
    static NEXT: AtomicI64 = AtomicI64::new(-1);
    QueueId::new(NEXT.fetch_sub(1, Ordering::Relaxed))
}

impl Client {
    /// A new, empty [`WatchGroup`]: one stream for many watchers, added
    /// with [`WatchGroup::add`] (no server round trip per watcher). The
    /// group shares the client's watch stream with every other watcher and
    /// keeps the client open while it lives.
    ///
    /// ```no_run
    /// use etcdv3_client::api::{WatchEvent, WatchOptions};
    /// use futures_util::StreamExt;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let mut group = client.watch_group();
    /// let keys: Vec<String> = (0..10_000).map(|i| format!("k/{i}")).collect();
    /// let mut key_of = std::collections::HashMap::new();
    /// for k in &keys {
    ///     key_of.insert(group.add(k.as_str(), WatchOptions::new())?, k);
    /// }
    /// while let Some((id, ev)) = group.next().await {
    ///     if let WatchEvent::Events { events, .. } = ev? {
    ///         println!("{}: {} events", key_of[&id], events.len());
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn watch_group(&self) -> WatchGroup {
        self.new_watch_group(Lane::SHARED)
    }

    /// A new, empty [`WatchGroup`] whose watchers have a gRPC watch stream
    /// of their own, on the same connection (like the Go client's
    /// `clientv3.NewWatcher`): what the server sends them does not queue
    /// behind the other watchers' events. etcd sends one stream's responses
    /// one at a time, so a stream that carries a heavy fan-out (one put
    /// seen by thousands of watchers) delays every other watcher on it;
    /// give such fan-outs, or groups whose latency matters, a stream each.
    /// The stream is opened with the group's first watcher and ended when
    /// its last watcher ends; failover, resume and flow control are those
    /// of [`Client::watch_group`]. Each such group costs the member one more
    /// watch stream: do not make one per watcher.
    ///
    /// ```no_run
    /// use etcdv3_client::api::WatchOptions;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// // Ten groups of 100 watchers on one hot key: ten gRPC streams, as
    /// // etcd's `benchmark watch-latency --streams 10` runs them.
    /// let groups: Vec<_> = (0..10)
    ///     .map(|_| {
    ///         let g = client.watch_group_on_own_stream();
    ///         for _ in 0..100 {
    ///             g.add("hot", WatchOptions::new().with_prev_kv())?;
    ///         }
    ///         Ok(g)
    ///     })
    ///     .collect::<etcdv3_client::Result<_>>()?;
    /// # drop(groups);
    /// # Ok(()) }
    /// ```
    pub fn watch_group_on_own_stream(&self) -> WatchGroup {
        self.new_watch_group(self.shared.tasks.ids.next_lane())
    }

    fn new_watch_group(&self, lane: Lane) -> WatchGroup {
        let waker = Arc::new(AtomicWaker::new());
        // A group with no live watcher gets no item when the client
        // closes: the close itself wakes it, so it ends then.
        self.shared.wake_on_close(&waker);
        WatchGroup {
            _keep: self.keep_open(),
            client: self.background(),
            lane,
            shared: Arc::new(GroupShared {
                queue: Mutex::new(GroupQueue {
                    items: VecDeque::new(),
                    adds: Vec::new(),
                    live: 0,
                }),
                waker: waker.clone(),
                dropped: AtomicBool::new(false),
                flow: Arc::new(Flow::new(next_group_queue())),
            }),
            local: VecDeque::new(),
            taken: 0,
            ended: false,
        }
    }
}
