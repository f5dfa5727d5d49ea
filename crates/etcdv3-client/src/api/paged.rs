//! Paginated snapshots of large ranges: [`Client::get_paged`] and the
//! [`Paged`] stream.
//!
//! A range read page by page at ONE revision: the first page fixes the
//! revision (its header's), every later page is read at it, starting after
//! the last key of the page before. The pages together are a consistent
//! snapshot, never a mix of revisions, and each page stays under the
//! client's receive-size limit however large the range is (by count or by
//! bytes: [`PagedOptions`]).
//!
//! A page that fails is asked again at the same revision and key (each
//! page is a read the client already retries across members); after a few
//! failures in a row the stream yields the error and, polled again, goes on
//! from the same page. [`Paged::position`] and [`Client::get_paged_from`]
//! continue a read elsewhere. If the snapshot's revision is compacted
//! mid-read the stream ends with [`PageError::Compacted`]: start again.
//!
//! The decisions (revision, next key, page size, retry, stop) are the
//! core's [`Pager`]; this module only sends its requests.
//!
//! ```no_run
//! use etcdv3_client::api::PagedOptions;
//! use futures_util::StreamExt;
//! # async fn demo(client: etcdv3_client::Client) -> Result<(), etcdv3_client::api::PageError> {
//! let mut pages = client.get_paged("jobs/", PagedOptions::new().with_prefix().with_page_bytes(1 << 20));
//! while let Some(page) = pages.next().await {
//!     let page = page?;
//!     println!("{} keys at revision {}", page.kvs.len(), page.revision);
//! }
//! # Ok(()) }
//! ```

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use etcdv3_core::streams::pager::{
    PageFailure, PageRequest, PageSize, Pager, PagerAction, PagerConfig, PagerStop,
    DEFAULT_PAGE_BYTES,
};
use etcdv3_core::wire::error::EtcdErrorKind;
use futures_core::Stream;

pub use etcdv3_core::streams::pager::PagerPosition;

use crate::api::kv::{GetOptions, KeyRange, KeyValue, RangeResponse};
use crate::error::Error;
use crate::runtime::BoxFuture;
use crate::Client;

/// Options of [`Client::get_paged`]: the range (`with_prefix`,
/// `with_from_key`, `with_range_end`; the key alone by default), the page
/// size (1 MiB of key-values by default), the revision.
///
/// ```
/// use etcdv3_client::api::PagedOptions;
/// let opts = PagedOptions::new().with_prefix().with_page_count(500).with_revision(42);
/// assert_ne!(opts, PagedOptions::new());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PagedOptions {
    pub(crate) range: KeyRange,
    page_size: PageSize,
    revision: i64,
    keys_only: bool,
    timeout: Option<Duration>,
}

impl Default for PagedOptions {
    fn default() -> Self {
        PagedOptions {
            range: KeyRange::Single,
            page_size: PageSize::Bytes(DEFAULT_PAGE_BYTES),
            revision: 0,
            keys_only: false,
            timeout: None,
        }
    }
}

impl PagedOptions {
    /// The key alone, at the latest revision, pages of 1 MiB.
    ///
    /// ```
    /// use etcdv3_client::api::PagedOptions;
    /// assert_eq!(PagedOptions::new(), PagedOptions::default());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    key_range_setters!("Read", "etcdv3_client::api::PagedOptions::new()");

    /// At most `count` keys per page (fewer when that many would not fit
    /// under the receive-size limit).
    ///
    /// ```
    /// use etcdv3_client::api::PagedOptions;
    /// assert_ne!(PagedOptions::new().with_page_count(100), PagedOptions::new());
    /// ```
    pub fn with_page_count(mut self, count: u32) -> Self {
        self.page_size = PageSize::Count(count);
        self
    }

    /// About `bytes` of key-values per page (at most half the receive-size
    /// limit).
    ///
    /// ```
    /// use etcdv3_client::api::PagedOptions;
    /// assert_ne!(PagedOptions::new().with_page_bytes(64 << 10), PagedOptions::new());
    /// ```
    pub fn with_page_bytes(mut self, bytes: usize) -> Self {
        self.page_size = PageSize::Bytes(bytes);
        self
    }

    /// Read the snapshot at `revision` instead of the latest.
    ///
    /// ```
    /// use etcdv3_client::api::PagedOptions;
    /// assert_ne!(PagedOptions::new().with_revision(7), PagedOptions::new());
    /// ```
    pub fn with_revision(mut self, revision: i64) -> Self {
        self.revision = revision;
        self
    }

    /// Return keys without values.
    ///
    /// ```
    /// use etcdv3_client::api::PagedOptions;
    /// assert_ne!(PagedOptions::new().with_keys_only(), PagedOptions::new());
    /// ```
    pub fn with_keys_only(mut self) -> Self {
        self.keys_only = true;
        self
    }

    /// Deadline of each page's read instead of the client's request timeout.
    ///
    /// ```
    /// use etcdv3_client::api::PagedOptions;
    /// use std::time::Duration;
    /// assert_ne!(PagedOptions::new().with_timeout(Duration::from_secs(2)), PagedOptions::new());
    /// ```
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

/// One page of a [`Paged`] read.
///
/// ```no_run
/// use etcdv3_client::api::PagedOptions;
/// use futures_util::StreamExt;
/// # async fn demo(client: etcdv3_client::Client) -> Result<(), etcdv3_client::api::PageError> {
/// let mut pages = client.get_paged("a/", PagedOptions::new().with_prefix());
/// if let Some(page) = pages.next().await.transpose()? {
///     println!("{} keys, {} more, at {}", page.kvs.len(), page.remaining, page.revision);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Page {
    /// The snapshot's revision (the same for every page of a read).
    pub revision: i64,
    /// The page's key-values, in key order.
    pub kvs: Vec<KeyValue>,
    /// Keys of the range after this page, at the snapshot's revision.
    pub remaining: i64,
}

/// The error of a [`Paged`] read.
///
/// ```no_run
/// use etcdv3_client::api::{PageError, PagedOptions};
/// use futures_util::StreamExt;
/// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
/// let mut pages = client.get_paged("a/", PagedOptions::new().with_prefix());
/// while let Some(page) = pages.next().await {
///     match page {
///         Ok(page) => println!("{} keys", page.kvs.len()),
///         Err(PageError::Compacted { revision, .. }) => println!("{revision} compacted: read again"),
///         Err(e) => return Err(e.into()),
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum PageError {
    /// The snapshot's revision was compacted during the read: the rest of
    /// it cannot be read. The stream ended.
    #[error("paged read at revision {revision}: the revision was compacted")]
    Compacted {
        /// The snapshot's revision.
        revision: i64,
        /// The server's answer.
        #[source]
        source: Error,
    },
    /// A page failed. If the stream is polled again it asks the page again
    /// (same revision, same key), unless the failure was final (then the
    /// stream ends after it).
    #[error(transparent)]
    Call(#[from] Error),
}

impl From<PageError> for Error {
    fn from(e: PageError) -> Error {
        match e {
            PageError::Compacted { source, .. } | PageError::Call(source) => source,
        }
    }
}

/// Which of the pager's failure classes `e` is.
pub(crate) fn classify(e: &Error) -> PageFailure {
    if e.etcd_kind() == Some(&EtcdErrorKind::Compacted) {
        return PageFailure::Compacted;
    }
    // A response larger than the receive limit is a malformed response the
    // call reports by text (`FrameError::TooLarge`'s).
    if e.to_string().contains("exceeds the limit of") {
        return PageFailure::TooLarge;
    }
    if e.status().is_some()
        || matches!(
            e,
            Error::Closed
                | Error::InvalidArgument(_)
                | Error::Config(_)
                | Error::UnknownTarget { .. }
                | Error::Tls { .. }
        )
    {
        return PageFailure::Fatal;
    }
    PageFailure::Transient
}

/// A paginated read: a [`Stream`] of [`Page`]s (see the module docs).
/// [`Paged::into_kvs`] streams the key-values one by one instead.
///
/// ```no_run
/// use etcdv3_client::api::PagedOptions;
/// use futures_util::StreamExt;
/// # async fn demo(client: etcdv3_client::Client) -> Result<(), etcdv3_client::api::PageError> {
/// let mut pages = client.get_paged("logs/", PagedOptions::new().with_prefix().with_page_count(500));
/// while let Some(page) = pages.next().await {
///     println!("{} keys", page?.kvs.len());
/// }
/// # Ok(()) }
/// ```
#[must_use = "a Paged read does nothing until polled"]
pub struct Paged {
    client: Client,
    pager: Pager,
    options: PagedOptions,
    in_flight: Option<BoxFuture<'static, Result<RangeResponse, Error>>>,
    last_error: Option<Error>,
    ended: bool,
}

impl std::fmt::Debug for Paged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Paged")
            .field("position", &self.pager.position())
            .field("pages", &self.pager.pages())
            .field("in_flight", &self.in_flight.is_some())
            .finish()
    }
}

impl Paged {
    /// The snapshot's revision (0 until the first page arrived).
    ///
    /// ```no_run
    /// use etcdv3_client::api::PagedOptions;
    /// use futures_util::StreamExt;
    /// # async fn demo(client: etcdv3_client::Client) -> Result<(), etcdv3_client::api::PageError> {
    /// let mut pages = client.get_paged("a/", PagedOptions::new().with_prefix());
    /// pages.next().await.transpose()?;
    /// println!("reading at {}", pages.revision());
    /// # Ok(()) }
    /// ```
    pub fn revision(&self) -> i64 {
        self.pager.revision()
    }

    /// Where the read is: [`Client::get_paged_from`] reads on from there
    /// (at the same revision).
    ///
    /// ```no_run
    /// use etcdv3_client::api::PagedOptions;
    /// use futures_util::StreamExt;
    /// # async fn demo(client: etcdv3_client::Client) -> Result<(), etcdv3_client::api::PageError> {
    /// let mut pages = client.get_paged("a/", PagedOptions::new().with_prefix());
    /// pages.next().await.transpose()?;
    /// let rest = client.get_paged_from(pages.position(), PagedOptions::new());
    /// # Ok(()) }
    /// ```
    pub fn position(&self) -> PagerPosition {
        self.pager.position()
    }

    /// The key-values one by one, in key order, instead of pages.
    ///
    /// ```no_run
    /// use etcdv3_client::api::PagedOptions;
    /// use futures_util::StreamExt;
    /// # async fn demo(client: etcdv3_client::Client) -> Result<(), etcdv3_client::api::PageError> {
    /// let mut kvs = client.get_paged("a/", PagedOptions::new().with_prefix()).into_kvs();
    /// while let Some(kv) = kvs.next().await {
    ///     println!("{:?}", kv?.key);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn into_kvs(self) -> PagedKvs {
        PagedKvs {
            pages: self,
            buffered: VecDeque::new(),
        }
    }

    fn fetch(&self, req: PageRequest) -> BoxFuture<'static, Result<RangeResponse, Error>> {
        let client = self.client.clone();
        let mut opts = GetOptions::new()
            .with_range_end(req.range_end)
            .with_revision(req.revision)
            .with_limit(req.limit);
        if self.options.keys_only {
            opts = opts.with_keys_only();
        }
        if let Some(t) = self.options.timeout {
            opts = opts.with_timeout(t);
        }
        Box::pin(async move { client.get(req.key, opts).await })
    }
}

impl Stream for Paged {
    type Item = Result<Page, PageError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(fut) = this.in_flight.as_mut() {
                let answer = match fut.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(a) => a,
                };
                this.in_flight = None;
                match answer {
                    Ok(resp) => {
                        let header = resp.header.as_ref().map_or(0, |h| h.revision);
                        this.pager.handle_page(header, &resp.kvs, resp.more);
                        let remaining = resp.count - resp.kvs.len() as i64;
                        return Poll::Ready(Some(Ok(Page {
                            revision: this.pager.revision(),
                            kvs: resp.kvs,
                            remaining: remaining.max(0),
                        })));
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, position = ?this.pager.position(), "page failed");
                        this.pager.handle_failure(classify(&e));
                        this.last_error = Some(e);
                    }
                }
            }
            let stop = match this.pager.poll_action() {
                PagerAction::Fetch(req) => {
                    this.in_flight = Some(this.fetch(req));
                    continue;
                }
                PagerAction::Wait | PagerAction::Done => return Poll::Ready(None),
                PagerAction::Failed => {
                    this.pager.handle_resume();
                    let e = this.last_error.take().unwrap_or(Error::Closed);
                    return Poll::Ready(Some(Err(PageError::Call(e))));
                }
                PagerAction::Stopped(stop) => stop,
            };
            if this.ended {
                return Poll::Ready(None);
            }
            this.ended = true;
            let source = this.last_error.take().unwrap_or(Error::Closed);
            return Poll::Ready(Some(Err(match stop {
                PagerStop::Compacted { revision } => PageError::Compacted { revision, source },
                PagerStop::TooLarge | PagerStop::Fatal => PageError::Call(source),
            })));
        }
    }
}

/// The key-values of a [`Paged`] read one by one ([`Paged::into_kvs`]).
///
/// ```no_run
/// use etcdv3_client::api::PagedOptions;
/// use futures_util::StreamExt;
/// # async fn demo(client: etcdv3_client::Client) -> Result<(), etcdv3_client::api::PageError> {
/// let mut kvs = client.get_paged("logs/", PagedOptions::new().with_prefix()).into_kvs();
/// while let Some(kv) = kvs.next().await {
///     println!("{:?}", kv?.key);
/// }
/// # Ok(()) }
/// ```
#[must_use = "a PagedKvs read does nothing until polled"]
#[derive(Debug)]
pub struct PagedKvs {
    pages: Paged,
    buffered: VecDeque<KeyValue>,
}

impl PagedKvs {
    /// The snapshot's revision (0 until the first page arrived).
    ///
    /// ```no_run
    /// use etcdv3_client::api::PagedOptions;
    /// use futures_util::StreamExt;
    /// # async fn demo(client: etcdv3_client::Client) -> Result<(), etcdv3_client::api::PageError> {
    /// let mut kvs = client.get_paged("a/", PagedOptions::new().with_prefix()).into_kvs();
    /// kvs.next().await.transpose()?;
    /// println!("reading at {}", kvs.revision());
    /// # Ok(()) }
    /// ```
    pub fn revision(&self) -> i64 {
        self.pages.revision()
    }
}

impl Stream for PagedKvs {
    type Item = Result<KeyValue, PageError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(kv) = this.buffered.pop_front() {
                return Poll::Ready(Some(Ok(kv)));
            }
            match Pin::new(&mut this.pages).poll_next(cx) {
                Poll::Ready(Some(Ok(page))) => this.buffered.extend(page.kvs),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl Client {
    /// Read a range page by page at one revision (see [`PagedOptions`] and
    /// the [module docs](crate::api::paged)). Nothing is sent until the
    /// stream is polled.
    ///
    /// ```no_run
    /// use etcdv3_client::api::PagedOptions;
    /// use futures_util::StreamExt;
    /// # async fn demo(client: etcdv3_client::Client) -> Result<(), etcdv3_client::api::PageError> {
    /// let mut kvs = client.get_paged("", PagedOptions::new().with_prefix().with_page_count(1000)).into_kvs();
    /// let mut n = 0;
    /// while let Some(kv) = kvs.next().await {
    ///     kv?;
    ///     n += 1;
    /// }
    /// println!("{n} keys at revision {}", kvs.revision());
    /// # Ok(()) }
    /// ```
    pub fn get_paged(&self, key: impl Into<Vec<u8>>, options: PagedOptions) -> Paged {
        let (key, range_end) = match options.range.resolve(key.into()) {
            Ok(r) => r,
            Err(e) => return self.failed_paged(e, options),
        };
        // A single key reads as the range [key, key\0).
        let range_end = if range_end.is_empty() {
            let mut end = key.clone();
            end.push(0);
            end
        } else {
            range_end
        };
        let cfg = PagerConfig::new(options.page_size, self.options().max_recv_message_size);
        let pager = Pager::new(key, range_end, options.revision, cfg);
        self.paged(pager, options)
    }

    /// Read on from `position` ([`Paged::position`]), at its revision, with
    /// `options`' page size (its range and revision are not used).
    ///
    /// ```no_run
    /// use etcdv3_client::api::PagedOptions;
    /// use futures_util::StreamExt;
    /// # async fn demo(client: etcdv3_client::Client) -> Result<(), etcdv3_client::api::PageError> {
    /// let mut pages = client.get_paged("a/", PagedOptions::new().with_prefix());
    /// pages.next().await.transpose()?;
    /// let position = pages.position();
    /// drop(pages);
    /// let mut rest = client.get_paged_from(position, PagedOptions::new());
    /// while let Some(page) = rest.next().await {
    ///     page?;
    /// }
    /// # Ok(()) }
    /// ```
    pub fn get_paged_from(&self, position: PagerPosition, options: PagedOptions) -> Paged {
        let cfg = PagerConfig::new(options.page_size, self.options().max_recv_message_size);
        self.paged(Pager::resume(position, cfg), options)
    }

    fn paged(&self, pager: Pager, options: PagedOptions) -> Paged {
        Paged {
            client: self.clone(),
            pager,
            options,
            in_flight: None,
            last_error: None,
            ended: false,
        }
    }

    fn failed_paged(&self, e: Error, options: PagedOptions) -> Paged {
        let cfg = PagerConfig::new(options.page_size, self.options().max_recv_message_size);
        let mut pager = Pager::new(vec![0], vec![0], 0, cfg);
        let _ = pager.poll_action();
        pager.handle_failure(PageFailure::Fatal);
        let mut paged = self.paged(pager, options);
        paged.last_error = Some(e);
        paged
    }
}
