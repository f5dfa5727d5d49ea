//! Paginated snapshots of a key range: the decisions of reading a large range
//! page by page at ONE revision.
//!
//! A [`Pager`] reads `[key, range_end)` as a series of `Range` requests:
//! the first at the latest revision (or at the revision the caller gave),
//! every later one at the first page's revision, each starting right after
//! the last key of the page before. The pages together are a consistent
//! snapshot: never a mix of revisions.
//!
//! The page size is a count of keys or a budget of bytes
//! ([`PageSize`]); either way a page is kept under the receive-size limit:
//! the pager remembers the largest key-value it has read and asks for at
//! most `budget / largest` keys, and the first page asks for at most
//! [`PagerConfig::first_page_count`] (nothing is known of the sizes yet).
//! A page that came back too large for the receive limit is asked again
//! with half the count.
//!
//! A failed page is asked again at the same revision and the same key
//! (reads are idempotent), up to [`PagerConfig::page_retries`] times in a
//! row; past that the pager stops with [`PagerAction::Failed`] and can be
//! re-armed with [`Pager::handle_resume`] (the position is kept). If the
//! snapshot's revision was compacted, no retry can help: the pager ends with
//! [`PagerStop::Compacted`].
//!
//! No IO, no clock: the adapter sends the [`PageRequest`]s
//! [`Pager::poll_action`] returns and feeds back what happened.
//!
//! ```
//! use etcdv3_core::streams::pager::{Pager, PagerAction, PagerConfig, PageSize};
//! use etcdv3_proto::mvccpb::KeyValue;
//!
//! let cfg = PagerConfig::new(PageSize::Count(2), 64 << 20);
//! let mut p = Pager::new(b"a".to_vec(), b"z".to_vec(), 0, cfg);
//! let kv = |k: &str| KeyValue { key: k.into(), ..Default::default() };
//! let PagerAction::Fetch(first) = p.poll_action() else { panic!() };
//! assert_eq!((first.revision, first.limit), (0, 2));
//! p.handle_page(7, &[kv("a"), kv("b")], true);
//! let PagerAction::Fetch(second) = p.poll_action() else { panic!() };
//! assert_eq!((second.key, second.revision), (b"b\0".to_vec(), 7));
//! p.handle_page(9, &[kv("c")], false);
//! assert_eq!(p.poll_action(), PagerAction::Done);
//! ```

use etcdv3_proto::mvccpb::KeyValue;
use prost::Message;

/// How large a page is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageSize {
    /// At most this many keys per page (fewer if that many would not fit
    /// under the receive limit).
    Count(u32),
    /// About this many bytes of key-values per page (capped at half the
    /// receive limit).
    Bytes(usize),
}

/// The pager's policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PagerConfig {
    /// The page size asked for.
    pub page_size: PageSize,
    /// The client's receive-size limit in bytes: no page is asked to be
    /// larger than half of it.
    pub max_recv: usize,
    /// The most keys the first page asks for, before any size is known.
    pub first_page_count: u32,
    /// The most keys any page asks for.
    pub max_page_count: u32,
    /// How many times in a row a failed page is asked again before the
    /// pager reports the failure.
    pub page_retries: u32,
}

/// Default [`PagerConfig::first_page_count`]: with etcd's largest request
/// (1.5 MiB by default) a 16-key first page stays under 25 MiB.
pub const FIRST_PAGE_COUNT: u32 = 16;
/// Default [`PagerConfig::max_page_count`].
pub const MAX_PAGE_COUNT: u32 = 10_000;
/// Default [`PagerConfig::page_retries`].
pub const PAGE_RETRIES: u32 = 3;
/// Default page size: 1 MiB of key-values.
pub const DEFAULT_PAGE_BYTES: usize = 1 << 20;

impl PagerConfig {
    /// `page_size` under a receive limit of `max_recv` bytes, with the
    /// default first-page count, page cap and retries.
    pub fn new(page_size: PageSize, max_recv: usize) -> Self {
        PagerConfig {
            page_size,
            max_recv,
            first_page_count: FIRST_PAGE_COUNT,
            max_page_count: MAX_PAGE_COUNT,
            page_retries: PAGE_RETRIES,
        }
    }

    /// The byte budget of one page.
    fn budget(&self) -> usize {
        let cap = (self.max_recv / 2).max(1);
        match self.page_size {
            PageSize::Count(_) => cap,
            PageSize::Bytes(b) => b.clamp(1, cap),
        }
    }

    fn count_cap(&self) -> u32 {
        let n = match self.page_size {
            PageSize::Count(n) => n,
            PageSize::Bytes(_) => self.max_page_count,
        };
        n.clamp(1, self.max_page_count.max(1))
    }
}

/// One `Range` request to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// First key of the page.
    pub key: Vec<u8>,
    /// End of the whole range (exclusive; `"\0"` means the end of the
    /// keyspace).
    pub range_end: Vec<u8>,
    /// The snapshot's revision; 0 for the first page (read the latest).
    pub revision: i64,
    /// The most keys to return.
    pub limit: i64,
}

/// Why a page failed, as the adapter classifies its error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageFailure {
    /// The server said the revision was compacted.
    Compacted,
    /// The response was larger than the receive limit.
    TooLarge,
    /// Anything a retry may fix (deadline, no endpoint, connection lost).
    Transient,
    /// Anything a retry will not fix (permission denied, invalid request).
    Fatal,
}

/// Why the pager stopped for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PagerStop {
    /// The snapshot's revision was compacted during the read.
    Compacted {
        /// The snapshot's revision.
        revision: i64,
    },
    /// A page of a single key-value is larger than the receive limit.
    TooLarge,
    /// The adapter reported a failure no retry will fix.
    Fatal,
}

/// What the adapter does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PagerAction {
    /// Send this request and feed the answer to [`Pager::handle_page`] or
    /// [`Pager::handle_failure`].
    Fetch(PageRequest),
    /// A request is in flight: wait for its answer.
    Wait,
    /// The last page failed [`PagerConfig::page_retries`] times in a row
    /// with transient failures: report the last error. The position is
    /// kept; [`Pager::handle_resume`] asks the page again.
    Failed,
    /// The pager stopped for good.
    Stopped(PagerStop),
    /// Every page was read.
    Done,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Ready,
    InFlight,
    Failed,
    Stopped(PagerStop),
    Done,
}

/// Where a pager is: enough to start another pager that reads the rest of
/// the same snapshot ([`Pager::resume`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PagerPosition {
    /// The next key to read.
    pub next_key: Vec<u8>,
    /// End of the range.
    pub range_end: Vec<u8>,
    /// The snapshot's revision (0 while no page was read).
    pub revision: i64,
}

/// The state of one paginated read. See the module docs.
#[derive(Debug, Clone)]
pub struct Pager {
    cfg: PagerConfig,
    next_key: Vec<u8>,
    range_end: Vec<u8>,
    revision: i64,
    state: State,
    limit: u32,
    largest: usize,
    failures: u32,
    pages: u64,
    kvs: u64,
}

impl Pager {
    /// A pager over `[key, range_end)` at `revision` (0: the latest, fixed
    /// by the first page).
    pub fn new(key: Vec<u8>, range_end: Vec<u8>, revision: i64, cfg: PagerConfig) -> Self {
        let limit = cfg.count_cap().min(cfg.first_page_count.max(1));
        Pager {
            cfg,
            next_key: key,
            range_end,
            revision: revision.max(0),
            state: State::Ready,
            limit,
            largest: 0,
            failures: 0,
            pages: 0,
            kvs: 0,
        }
    }

    /// A pager that reads on from `position` (e.g. one taken after a
    /// failure, or by another process).
    pub fn resume(position: PagerPosition, cfg: PagerConfig) -> Self {
        Pager::new(
            position.next_key,
            position.range_end,
            position.revision,
            cfg,
        )
    }

    /// What to do next. Returns [`PagerAction::Fetch`] once per page (then
    /// [`PagerAction::Wait`] until its answer is handled).
    pub fn poll_action(&mut self) -> PagerAction {
        match &self.state {
            State::Ready => {
                self.state = State::InFlight;
                PagerAction::Fetch(PageRequest {
                    key: self.next_key.clone(),
                    range_end: self.range_end.clone(),
                    revision: self.revision,
                    limit: i64::from(self.limit),
                })
            }
            State::InFlight => PagerAction::Wait,
            State::Failed => PagerAction::Failed,
            State::Stopped(s) => PagerAction::Stopped(*s),
            State::Done => PagerAction::Done,
        }
    }

    /// A page arrived: `header_revision` is its header's revision (the
    /// snapshot's revision for the first page), `kvs` its key-values in key
    /// order, `more` whether keys remain past them.
    pub fn handle_page(&mut self, header_revision: i64, kvs: &[KeyValue], more: bool) {
        if self.state != State::InFlight {
            return;
        }
        if self.revision == 0 {
            self.revision = header_revision;
        }
        self.failures = 0;
        self.pages += 1;
        self.kvs += kvs.len() as u64;
        for kv in kvs {
            self.largest = self.largest.max(kv.encoded_len());
        }
        match kvs.last() {
            Some(last) if more => {
                let mut next = last.key.clone();
                next.push(0);
                self.next_key = next;
                self.limit = self.next_limit();
                self.state = State::Ready;
            }
            _ => self.state = State::Done,
        }
    }

    /// The page in flight failed.
    pub fn handle_failure(&mut self, failure: PageFailure) {
        if self.state != State::InFlight {
            return;
        }
        self.state = match failure {
            PageFailure::Compacted if self.revision > 0 => State::Stopped(PagerStop::Compacted {
                revision: self.revision,
            }),
            // Compacted without a revision of ours: the caller's own
            // revision is 0 only for the latest, which cannot be compacted.
            PageFailure::Compacted | PageFailure::Fatal => State::Stopped(PagerStop::Fatal),
            PageFailure::TooLarge if self.limit <= 1 => State::Stopped(PagerStop::TooLarge),
            PageFailure::TooLarge => {
                self.limit = (self.limit / 2).max(1);
                State::Ready
            }
            PageFailure::Transient => {
                self.failures += 1;
                if self.failures > self.cfg.page_retries {
                    State::Failed
                } else {
                    State::Ready
                }
            }
        };
    }

    /// After [`PagerAction::Failed`]: ask the same page again.
    pub fn handle_resume(&mut self) {
        if self.state == State::Failed {
            self.failures = 0;
            self.state = State::Ready;
        }
    }

    /// Where the pager is.
    pub fn position(&self) -> PagerPosition {
        PagerPosition {
            next_key: self.next_key.clone(),
            range_end: self.range_end.clone(),
            revision: self.revision,
        }
    }

    /// Whether every page was read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Whether the last page failed too often ([`PagerAction::Failed`]).
    pub fn is_failed(&self) -> bool {
        self.state == State::Failed
    }

    /// Why the pager stopped for good, if it did.
    pub fn stopped(&self) -> Option<PagerStop> {
        match self.state {
            State::Stopped(s) => Some(s),
            _ => None,
        }
    }

    /// The snapshot's revision (0 until the first page arrived).
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// Pages read so far.
    pub fn pages(&self) -> u64 {
        self.pages
    }

    /// Key-values read so far.
    pub fn kvs(&self) -> u64 {
        self.kvs
    }

    /// The largest key-value read so far, as encoded on the wire.
    pub fn largest_kv(&self) -> usize {
        self.largest
    }

    fn next_limit(&self) -> u32 {
        let by_bytes = self.cfg.budget() / self.largest.max(1);
        let by_bytes = u32::try_from(by_bytes).unwrap_or(u32::MAX).max(1);
        by_bytes.min(self.cfg.count_cap())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(k: &str, v: usize) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: vec![b'x'; v],
            ..Default::default()
        }
    }

    /// A pager over `[a, z)` at the latest revision, one key per page.
    fn one_per_page() -> Pager {
        Pager::new(
            b"a".into(),
            b"z".into(),
            0,
            PagerConfig::new(PageSize::Count(1), 1 << 20),
        )
    }

    fn fetch(p: &mut Pager) -> PageRequest {
        match p.poll_action() {
            PagerAction::Fetch(r) => r,
            other => panic!("expected a fetch, got {other:?}"),
        }
    }

    #[test]
    fn later_pages_read_at_the_first_pages_revision() {
        let mut p = Pager::new(
            b"a".into(),
            b"z".into(),
            0,
            PagerConfig::new(PageSize::Count(2), 1 << 20),
        );
        assert_eq!(fetch(&mut p).revision, 0);
        assert_eq!(p.poll_action(), PagerAction::Wait);
        p.handle_page(10, &[kv("a", 1), kv("b", 1)], true);
        let r = fetch(&mut p);
        assert_eq!(
            (r.key.as_slice(), r.revision, r.limit),
            (&b"b\0"[..], 10, 2)
        );
        p.handle_page(12, &[kv("c", 1), kv("d", 1)], true);
        assert_eq!(fetch(&mut p).revision, 10);
        p.handle_page(15, &[], false);
        assert_eq!(p.poll_action(), PagerAction::Done);
        assert_eq!((p.pages(), p.kvs(), p.revision()), (3, 4, 10));
    }

    #[test]
    fn byte_pages_fit_the_budget_and_the_receive_limit() {
        let mut p = Pager::new(
            b"a".into(),
            b"z".into(),
            0,
            PagerConfig::new(PageSize::Bytes(10_000), 1 << 20),
        );
        assert_eq!(fetch(&mut p).limit, i64::from(FIRST_PAGE_COUNT));
        p.handle_page(3, &[kv("a", 990)], true);
        let limit = fetch(&mut p).limit;
        let largest = p.largest_kv() as i64;
        assert!(
            limit * largest <= 10_000 && (limit + 1) * largest > 10_000,
            "{limit} x {largest}"
        );
        // A count page still stays under half the receive limit.
        let mut p = Pager::new(
            b"a".into(),
            b"z".into(),
            0,
            PagerConfig::new(PageSize::Count(5000), 100_000),
        );
        fetch(&mut p);
        p.handle_page(3, &[kv("a", 10_000)], true);
        let limit = fetch(&mut p).limit;
        assert!(limit * p.largest_kv() as i64 <= 50_000, "{limit}");
    }

    #[test]
    fn too_large_halves_then_stops_at_one() {
        let mut p = Pager::new(
            b"a".into(),
            b"z".into(),
            5,
            PagerConfig::new(PageSize::Count(4), 1 << 20),
        );
        assert_eq!(fetch(&mut p).limit, 4);
        p.handle_failure(PageFailure::TooLarge);
        assert_eq!(fetch(&mut p).limit, 2);
        p.handle_failure(PageFailure::TooLarge);
        assert_eq!(fetch(&mut p).limit, 1);
        p.handle_failure(PageFailure::TooLarge);
        assert_eq!(p.poll_action(), PagerAction::Stopped(PagerStop::TooLarge));
    }

    #[test]
    fn transient_failures_retry_the_same_page_then_fail_and_resume() {
        let mut p = one_per_page();
        fetch(&mut p);
        p.handle_page(8, &[kv("a", 1)], true);
        let want = fetch(&mut p);
        for _ in 0..PAGE_RETRIES {
            p.handle_failure(PageFailure::Transient);
            assert_eq!(fetch(&mut p), want);
        }
        p.handle_failure(PageFailure::Transient);
        assert_eq!(p.poll_action(), PagerAction::Failed);
        p.handle_resume();
        assert_eq!(fetch(&mut p), want);
        // Another pager picks up at the same place and revision.
        let mut q = Pager::resume(p.position(), PagerConfig::new(PageSize::Count(1), 1 << 20));
        assert_eq!(fetch(&mut q), want);
    }

    #[test]
    fn compaction_of_the_snapshot_stops_with_its_revision() {
        let mut p = one_per_page();
        fetch(&mut p);
        p.handle_page(8, &[kv("a", 1)], true);
        fetch(&mut p);
        p.handle_failure(PageFailure::Compacted);
        assert_eq!(
            p.poll_action(),
            PagerAction::Stopped(PagerStop::Compacted { revision: 8 })
        );
    }
}
