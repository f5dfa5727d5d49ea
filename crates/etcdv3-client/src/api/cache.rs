//! A consistent cache of a prefix (or range): [`Client::cache`] and
//! [`Cache`].
//!
//! The cache lists the range page by page at one revision, watches it from
//! the next revision and applies the events, so its view always equals the
//! server's range at the revision it reports ([`Cache::revision`]). It
//! re-lists by itself when the watch is compacted ([`WatchEvent::Compacted`]:
//! events were lost) or cancelled by the server, reopens a watch that failed
//! from its revision + 1, and survives failover as watches do (the watch
//! layer resumes on another member). Reads are local: [`Cache::get`] and
//! [`Cache::list`] answer with the revision of the view they read.
//!
//! On an idle range the revision is kept fresh (a small check read, asked
//! every few seconds, on progress notifications and while a reader waits),
//! so [`Cache::wait_for_revision`] answers "a view at least as new as R"
//! (read-your-writes after a put at R). [`Cache::changes`] streams every
//! change applied to the view; a reader that falls more than
//! [`CacheOptions::with_max_change_bytes`] behind gets
//! [`CacheEvent::Lagged`] instead of growing memory.
//!
//! The decisions are the core's [`PrefixCache`]
//! (`etcdv3_core::streams::cache`); this module only runs its requests on a
//! background task.
//!
//! [`WatchEvent::Compacted`]: crate::api::WatchEvent::Compacted
//!
//! ```no_run
//! use etcdv3_client::api::{CacheOptions, PutOptions};
//! # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
//! let cache = client.cache("config/", CacheOptions::new().with_prefix()).await?;
//! let written = client.put("config/a", "1", PutOptions::new()).await?;
//! let revision = written.header.map_or(0, |h| h.revision);
//! cache.wait_for_revision(revision).await?;
//! let a = cache.get("config/a");
//! println!("{:?} at revision {}", a.value.map(|kv| kv.value), a.revision);
//! # Ok(()) }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use etcdv3_core::streams::cache::{
    CacheAction, CacheChange, CacheConfig, ChangeRead, PrefixCache, MAX_CHANGE_BYTES,
};
use etcdv3_core::streams::pager::{PageSize, PagerConfig, DEFAULT_PAGE_BYTES};
use futures_core::Stream;

use crate::api::kv::{GetOptions, KeyRange, KeyValue, RangeResponse};
use crate::api::paged::classify;
use crate::api::watch::{WatchEvent, WatchOptions, Watcher};
use crate::error::{Error, Result};
use crate::runtime::BoxFuture;
use crate::Client;

/// Options of [`Client::cache`]: the range (`with_prefix`, `with_from_key`,
/// `with_range_end`; the key alone by default), the list's page size, the
/// change stream's bound and how often an idle view refreshes its revision.
///
/// ```
/// use etcdv3_client::api::CacheOptions;
/// let opts = CacheOptions::new().with_prefix().with_max_change_bytes(1 << 20);
/// assert_ne!(opts, CacheOptions::new());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheOptions {
    pub(crate) range: KeyRange,
    page_size: PageSize,
    max_change_bytes: usize,
    progress_interval: Option<Duration>,
}

impl Default for CacheOptions {
    fn default() -> Self {
        CacheOptions {
            range: KeyRange::Single,
            page_size: PageSize::Bytes(DEFAULT_PAGE_BYTES),
            max_change_bytes: MAX_CHANGE_BYTES,
            progress_interval: None,
        }
    }
}

impl CacheOptions {
    /// The key alone; lists in pages of 1 MiB; 4 MiB of changes kept.
    ///
    /// ```
    /// use etcdv3_client::api::CacheOptions;
    /// assert_eq!(CacheOptions::new(), CacheOptions::default());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    key_range_setters!("Cache", "etcdv3_client::api::CacheOptions::new()");

    /// List in pages of at most `count` keys.
    ///
    /// ```
    /// use etcdv3_client::api::CacheOptions;
    /// assert_ne!(CacheOptions::new().with_page_count(100), CacheOptions::new());
    /// ```
    pub fn with_page_count(mut self, count: u32) -> Self {
        self.page_size = PageSize::Count(count);
        self
    }

    /// Keep at most `bytes` of changes for [`Cache::changes`] readers; one
    /// further behind gets [`CacheEvent::Lagged`].
    ///
    /// ```
    /// use etcdv3_client::api::CacheOptions;
    /// assert_ne!(CacheOptions::new().with_max_change_bytes(1024), CacheOptions::new());
    /// ```
    pub fn with_max_change_bytes(mut self, bytes: usize) -> Self {
        self.max_change_bytes = bytes;
        self
    }

    /// Check this often that an idle range did not change (default 10 s),
    /// so [`Cache::revision`] follows the store's: one read of the range's
    /// keys modified since the view's revision (`limit 1`, keys only). The
    /// answer is small, but etcd reads the whole range to filter it: on a
    /// very large range, check less often.
    ///
    /// ```
    /// use etcdv3_client::api::CacheOptions;
    /// use std::time::Duration;
    /// assert_ne!(CacheOptions::new().with_progress_interval(Duration::from_secs(1)), CacheOptions::new());
    /// ```
    pub fn with_progress_interval(mut self, interval: Duration) -> Self {
        self.progress_interval = Some(interval);
        self
    }
}

/// A local read of a [`Cache`]: the value and the revision of the view it
/// was read from.
///
/// ```no_run
/// use etcdv3_client::api::CacheOptions;
/// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
/// let cache = client.cache("svc/", CacheOptions::new().with_prefix()).await?;
/// let all = cache.list();
/// println!("{} services at revision {}", all.value.len(), all.revision);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CacheRead<T> {
    /// What was read.
    pub value: T,
    /// The revision of the view: the server's range at this revision holds
    /// exactly what the cache holds.
    pub revision: i64,
}

/// One item of [`Cache::changes`].
///
/// ```no_run
/// use etcdv3_client::api::{CacheEvent, CacheOptions};
/// use futures_util::StreamExt;
/// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
/// let cache = client.cache("svc/", CacheOptions::new().with_prefix()).await?;
/// let mut changes = cache.changes();
/// while let Some(change) = changes.next().await {
///     match change? {
///         CacheEvent::Put(kv) => println!("{:?} = {:?}", kv.key, kv.value),
///         CacheEvent::Delete { key, .. } => println!("{key:?} deleted"),
///         CacheEvent::Relisted { revision } => println!("listed again at {revision}"),
///         CacheEvent::Lagged { revision } => println!("fell behind: re-read the view at {revision}"),
///         _ => {}
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum CacheEvent {
    /// A key was created or changed (its `mod_revision` says when).
    Put(KeyValue),
    /// A key was deleted at `revision`.
    Delete {
        /// The key.
        key: Vec<u8>,
        /// The delete's revision (after a re-list: the new list's).
        revision: i64,
    },
    /// The range was listed again at `revision` (after a compaction or a
    /// watch the server ended); the events just before it were the
    /// difference between the old view and the new list.
    Relisted {
        /// The new list's revision.
        revision: i64,
    },
    /// Changes this reader had not read were dropped (it fell behind by
    /// more than the bound). Read the view again ([`Cache::list`]); the
    /// stream goes on with the changes after `revision`.
    Lagged {
        /// The view's revision when the reader was found behind.
        revision: i64,
    },
}

impl From<CacheChange> for CacheEvent {
    fn from(c: CacheChange) -> Self {
        match c {
            CacheChange::Put(kv) => CacheEvent::Put(kv),
            CacheChange::Delete { key, revision } => CacheEvent::Delete { key, revision },
            CacheChange::Relisted { revision } => CacheEvent::Relisted { revision },
        }
    }
}

struct Inner {
    core: PrefixCache,
    /// Readers waiting for a revision or a change.
    waiters: Vec<Waker>,
    /// The background task.
    pump: Option<Waker>,
    /// Why the cache stopped.
    error: Option<Error>,
    /// Every `Cache` handle was dropped.
    dropped: bool,
    /// The highest revision a reader waits for.
    wanted: i64,
}

struct Shared {
    inner: Mutex<Inner>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Dropping the last one stops the background task.
struct Handle {
    shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        let mut inner = self.shared.lock();
        inner.dropped = true;
        if let Some(w) = inner.pump.take() {
            w.wake();
        }
    }
}

/// A consistent local cache of a range (see the [module docs](crate::api::cache)).
/// Cloning it shares the cache; the background task ends when the last
/// clone is dropped or the client is closed.
///
/// ```no_run
/// use etcdv3_client::api::CacheOptions;
/// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
/// let cache = client.cache("svc/", CacheOptions::new().with_prefix()).await?;
/// let shared = cache.clone();
/// assert_eq!(shared.revision(), cache.revision());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Cache {
    handle: Arc<Handle>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.handle.shared.lock();
        f.debug_struct("Cache")
            .field("revision", &inner.core.revision())
            .field("keys", &inner.core.len())
            .field("relists", &inner.core.relists())
            .finish()
    }
}

impl Cache {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.handle.shared.lock()
    }

    /// The revision the view is at.
    ///
    /// ```no_run
    /// use etcdv3_client::api::CacheOptions;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let cache = client.cache("svc/", CacheOptions::new().with_prefix()).await?;
    /// println!("at {}", cache.revision());
    /// # Ok(()) }
    /// ```
    pub fn revision(&self) -> i64 {
        self.lock().core.revision()
    }

    /// The key's key-value in the view (`None`: the range holds no such key
    /// at the revision).
    ///
    /// ```no_run
    /// use etcdv3_client::api::CacheOptions;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let cache = client.cache("svc/", CacheOptions::new().with_prefix()).await?;
    /// if let Some(kv) = cache.get("svc/a").value {
    ///     println!("{:?}", kv.value);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn get(&self, key: impl AsRef<[u8]>) -> CacheRead<Option<KeyValue>> {
        let inner = self.lock();
        CacheRead {
            value: inner.core.get(key.as_ref()).cloned(),
            revision: inner.core.revision(),
        }
    }

    /// Every key-value of the view, in key order.
    ///
    /// ```no_run
    /// use etcdv3_client::api::CacheOptions;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let cache = client.cache("svc/", CacheOptions::new().with_prefix()).await?;
    /// for kv in cache.list().value {
    ///     println!("{:?}", kv.key);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn list(&self) -> CacheRead<Vec<KeyValue>> {
        self.list_range("", "")
    }

    /// The key-values of the view in `[from, to)` (`to` empty: to the end),
    /// in key order.
    ///
    /// ```no_run
    /// use etcdv3_client::api::CacheOptions;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let cache = client.cache("svc/", CacheOptions::new().with_prefix()).await?;
    /// let some = cache.list_range("svc/a", "svc/m");
    /// # Ok(()) }
    /// ```
    pub fn list_range(
        &self,
        from: impl AsRef<[u8]>,
        to: impl AsRef<[u8]>,
    ) -> CacheRead<Vec<KeyValue>> {
        let inner = self.lock();
        CacheRead {
            value: inner
                .core
                .range(from.as_ref(), to.as_ref())
                .cloned()
                .collect(),
            revision: inner.core.revision(),
        }
    }

    /// How many times the range was listed again (after compactions or
    /// watches the server ended).
    ///
    /// ```no_run
    /// use etcdv3_client::api::CacheOptions;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let cache = client.cache("svc/", CacheOptions::new().with_prefix()).await?;
    /// println!("{} re-lists", cache.relists());
    /// # Ok(()) }
    /// ```
    pub fn relists(&self) -> u64 {
        self.lock().core.relists()
    }

    /// Bytes of changes held for [`Cache::changes`] readers (at most the
    /// bound of [`CacheOptions::with_max_change_bytes`]).
    ///
    /// ```no_run
    /// use etcdv3_client::api::CacheOptions;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let cache = client.cache("svc/", CacheOptions::new().with_prefix()).await?;
    /// assert!(cache.change_bytes() <= 4 << 20);
    /// # Ok(()) }
    /// ```
    pub fn change_bytes(&self) -> usize {
        self.lock().core.change_bytes()
    }

    /// Wait until the view is at `revision` or later (e.g. the revision of a
    /// put: read your own write); returns the view's revision. On an idle
    /// range this takes a check read (a round trip). Fails if the cache
    /// stopped (the client closed).
    ///
    /// ```no_run
    /// use etcdv3_client::api::{CacheOptions, PutOptions};
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let cache = client.cache("svc/", CacheOptions::new().with_prefix()).await?;
    /// let rev = client.put("elsewhere", "x", PutOptions::new()).await?.header.map_or(0, |h| h.revision);
    /// assert!(cache.wait_for_revision(rev).await? >= rev);
    /// # Ok(()) }
    /// ```
    pub async fn wait_for_revision(&self, revision: i64) -> Result<i64> {
        let mut asked = false;
        std::future::poll_fn(|cx| {
            let mut inner = self.lock();
            let at = inner.core.revision();
            if at >= revision {
                return Poll::Ready(Ok(at));
            }
            if let Some(e) = &inner.error {
                return Poll::Ready(Err(e.clone()));
            }
            if !asked {
                asked = true;
                inner.wanted = inner.wanted.max(revision);
                if let Some(w) = inner.pump.take() {
                    w.wake();
                }
            }
            inner.waiters.push(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// Every change applied to the view from now on, as a stream (bounded:
    /// see [`CacheEvent::Lagged`]). It ends with the cache's error if the
    /// cache stops.
    ///
    /// ```no_run
    /// use etcdv3_client::api::{CacheEvent, CacheOptions};
    /// use futures_util::StreamExt;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let cache = client.cache("svc/", CacheOptions::new().with_prefix()).await?;
    /// let mut changes = cache.changes();
    /// if let Some(CacheEvent::Put(kv)) = changes.next().await.transpose()? {
    ///     println!("{:?} changed", kv.key);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn changes(&self) -> CacheChanges {
        let cursor = self.lock().core.change_cursor();
        CacheChanges {
            cache: self.clone(),
            cursor,
            pending: std::collections::VecDeque::new(),
            ended: false,
        }
    }
}

/// The stream of [`Cache::changes`].
///
/// ```no_run
/// use etcdv3_client::api::CacheOptions;
/// use futures_util::StreamExt;
/// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
/// let cache = client.cache("svc/", CacheOptions::new().with_prefix()).await?;
/// let mut changes = cache.changes();
/// while let Some(change) = changes.next().await {
///     println!("{:?}", change?);
/// }
/// # Ok(()) }
/// ```
#[must_use = "streams do nothing unless polled"]
#[derive(Debug)]
pub struct CacheChanges {
    cache: Cache,
    cursor: u64,
    pending: std::collections::VecDeque<CacheEvent>,
    ended: bool,
}

impl Stream for CacheChanges {
    type Item = Result<CacheEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Some(e) = this.pending.pop_front() {
            return Poll::Ready(Some(Ok(e)));
        }
        if this.ended {
            return Poll::Ready(None);
        }
        let mut inner = this.cache.lock();
        match inner.core.changes_since(this.cursor) {
            ChangeRead::Lagged { next, revision } => {
                this.cursor = next;
                return Poll::Ready(Some(Ok(CacheEvent::Lagged { revision })));
            }
            ChangeRead::Changes(changes, next) => {
                this.cursor = next;
                this.pending
                    .extend(changes.into_iter().map(CacheEvent::from));
            }
        }
        if let Some(e) = this.pending.pop_front() {
            return Poll::Ready(Some(Ok(e)));
        }
        if let Some(e) = &inner.error {
            this.ended = true;
            return Poll::Ready(Some(Err(e.clone())));
        }
        inner.waiters.push(cx.waker().clone());
        Poll::Pending
    }
}

/// The background task: runs the core's actions, feeds back the answers.
struct Pump {
    client: Client,
    shared: Arc<Shared>,
    key: Vec<u8>,
    range_end: Vec<u8>,
    fetch: Option<BoxFuture<'static, Result<RangeResponse>>>,
    opening: Option<BoxFuture<'static, Result<Watcher>>>,
    watcher: Option<Watcher>,
    sleep: Option<(Instant, BoxFuture<'static, ()>)>,
    check: Option<(i64, BoxFuture<'static, Result<RangeResponse>>)>,
    last_error: Option<Error>,
}

/// Whether a watch error is final: the client closed, or the server
/// refused the watch itself.
fn watch_fatal(e: &Error) -> bool {
    matches!(e, Error::Closed | Error::InvalidArgument(_)) || e.status().is_some()
}

impl Pump {
    /// One round: feed every answer that is ready, run every action due.
    /// Whether anything happened.
    fn step(&mut self, cx: &mut Context<'_>, inner: &mut Inner) -> bool {
        let now = self.client.now();
        let mut progressed = false;
        inner.core.want_revision(now, inner.wanted);
        if let Some(f) = self.fetch.as_mut() {
            if let Poll::Ready(answer) = f.as_mut().poll(cx) {
                self.fetch = None;
                progressed = true;
                match answer {
                    Ok(resp) => {
                        let rev = resp.header.as_ref().map_or(0, |h| h.revision);
                        inner.core.handle_page(rev, &resp.kvs, resp.more);
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "cache: list page failed");
                        inner.core.handle_page_failure(now, classify(&e));
                        self.last_error = Some(e);
                    }
                }
            }
        }
        if let Some(f) = self.opening.as_mut() {
            if let Poll::Ready(opened) = f.as_mut().poll(cx) {
                self.opening = None;
                progressed = true;
                match opened {
                    Ok(w) => self.watcher = Some(w),
                    Err(e) => {
                        tracing::debug!(error = %e, "cache: watch failed to open");
                        inner.core.handle_watch_failed(now, watch_fatal(&e));
                        self.last_error = Some(e);
                    }
                }
            }
        }
        if let Some((since, f)) = self.check.as_mut() {
            if let Poll::Ready(answer) = f.as_mut().poll(cx) {
                let since = *since;
                self.check = None;
                progressed = true;
                match answer {
                    Ok(resp) => {
                        let rev = resp.header.as_ref().map_or(0, |h| h.revision);
                        let modified = !resp.kvs.is_empty();
                        inner
                            .core
                            .handle_check(now, since, rev, modified, resp.count);
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "cache: revision check failed");
                        inner.core.handle_check_failed(now);
                    }
                }
            }
        }
        while let Some(w) = self.watcher.as_mut() {
            match Pin::new(w).poll_next(cx) {
                Poll::Pending => break,
                Poll::Ready(Some(Ok(ev))) => {
                    progressed = true;
                    let terminal = matches!(
                        ev,
                        WatchEvent::Compacted { .. } | WatchEvent::Cancelled { .. }
                    );
                    inner.core.handle_watch_event(now, &ev);
                    if terminal {
                        self.watcher = None;
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    progressed = true;
                    self.watcher = None;
                    inner.core.handle_watch_failed(now, watch_fatal(&e));
                    self.last_error = Some(e);
                }
                Poll::Ready(None) => {
                    progressed = true;
                    self.watcher = None;
                    inner.core.handle_watch_failed(now, false);
                }
            }
        }
        while let Some(action) = inner.core.poll_action(now) {
            progressed = true;
            match action {
                CacheAction::Fetch(req) => {
                    let client = self.client.clone();
                    let opts = GetOptions::new()
                        .with_range_end(req.range_end)
                        .with_revision(req.revision)
                        .with_limit(req.limit);
                    self.fetch = Some(Box::pin(async move { client.get(req.key, opts).await }));
                }
                CacheAction::Watch { start_revision } => {
                    self.watcher = None;
                    let client = self.client.clone();
                    let key = self.key.clone();
                    let opts = WatchOptions::new()
                        .with_range_end(self.range_end.clone())
                        .with_start_revision(start_revision)
                        .with_progress_notify();
                    self.opening = Some(Box::pin(async move { client.watch(key, opts).await }));
                }
                CacheAction::Check { since } => {
                    let client = self.client.clone();
                    let key = self.key.clone();
                    let opts = GetOptions::new()
                        .with_range_end(self.range_end.clone())
                        .with_keys_only()
                        .with_min_mod_revision(since + 1)
                        .with_limit(1);
                    let read = Box::pin(async move { client.get(key, opts).await });
                    self.check = Some((since, read));
                }
            }
        }
        match inner.core.poll_timeout() {
            Some(at) => {
                if self.sleep.as_ref().map(|(t, _)| *t) != Some(at) {
                    self.sleep = Some((at, self.client.runtime().sleep_until(at)));
                }
                if let Some((_, s)) = self.sleep.as_mut() {
                    if s.as_mut().poll(cx).is_ready() {
                        self.sleep = None;
                        progressed = true;
                    }
                }
            }
            None => self.sleep = None,
        }
        progressed
    }
}

impl Future for Pump {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let shared = this.shared.clone();
        let mut inner = shared.lock();
        loop {
            inner.pump = Some(cx.waker().clone());
            if inner.dropped {
                return Poll::Ready(());
            }
            let before = (
                inner.core.revision(),
                inner.core.change_cursor(),
                inner.core.is_ready(),
            );
            let progressed = this.step(cx, &mut inner);
            if let Some(stop) = inner.core.stopped() {
                let e = this.last_error.take().unwrap_or(Error::Closed);
                tracing::debug!(?stop, error = %e, "cache stopped");
                inner.error = Some(e);
            }
            let after = (
                inner.core.revision(),
                inner.core.change_cursor(),
                inner.core.is_ready(),
            );
            if before != after || inner.error.is_some() {
                for w in inner.waiters.drain(..) {
                    w.wake();
                }
            }
            if inner.error.is_some() {
                return Poll::Ready(());
            }
            if !progressed {
                return Poll::Pending;
            }
        }
    }
}

impl Client {
    /// A consistent local cache of a range (see [`CacheOptions`] and the
    /// [module docs](crate::api::cache)). Returns once the first list is in
    /// place; the cache then follows the range on a background task.
    ///
    /// ```no_run
    /// use etcdv3_client::api::CacheOptions;
    /// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
    /// let cache = client.cache("config/", CacheOptions::new().with_prefix()).await?;
    /// let view = cache.list();
    /// println!("{} keys at revision {}", view.value.len(), view.revision);
    /// # Ok(()) }
    /// ```
    pub async fn cache(&self, key: impl Into<Vec<u8>>, options: CacheOptions) -> Result<Cache> {
        let (key, range_end) = options.range.resolve(key.into())?;
        let range_end = if range_end.is_empty() {
            let mut end = key.clone();
            end.push(0);
            end
        } else {
            range_end
        };
        let pager = PagerConfig::new(options.page_size, self.options().max_recv_message_size);
        let mut cfg = CacheConfig::new(pager);
        cfg.max_change_bytes = options.max_change_bytes;
        if let Some(i) = options.progress_interval {
            cfg.progress_interval = i;
        }
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                core: PrefixCache::new(key.clone(), range_end.clone(), cfg),
                waiters: Vec::new(),
                pump: None,
                error: None,
                dropped: false,
                wanted: 0,
            }),
        });
        let cache = Cache {
            handle: Arc::new(Handle {
                shared: shared.clone(),
            }),
        };
        self.spawn(Pump {
            client: self.clone(),
            shared,
            key,
            range_end,
            fetch: None,
            opening: None,
            watcher: None,
            sleep: None,
            check: None,
            last_error: None,
        });
        std::future::poll_fn(|cx| {
            let mut inner = cache.lock();
            if inner.core.is_ready() {
                return Poll::Ready(Ok(()));
            }
            if let Some(e) = &inner.error {
                return Poll::Ready(Err(e.clone()));
            }
            inner.waiters.push(cx.waker().clone());
            Poll::Pending
        })
        .await?;
        Ok(cache)
    }
}
