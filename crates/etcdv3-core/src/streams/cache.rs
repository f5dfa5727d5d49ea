//! A consistent cache of a key range: the decisions of keeping a local copy
//! of a prefix in sync with etcd.
//!
//! [`PrefixCache`] lists the range page by page at one revision (a
//! [`Pager`]), then watches it from the next revision and applies the
//! events. Its view is always the server's range at one revision
//! ([`PrefixCache::revision`]):
//!
//! - **List, then watch from the next revision.** The list's pages are a
//!   snapshot at one revision `L`; the watch starts at `L + 1`, so no event
//!   is missed or applied twice.
//! - **Re-list when the watch cannot go on.** A watch that ends with
//!   [`WatchEvent::Compacted`] (its history is gone: events were lost) or is
//!   cancelled by the server is replaced by a new list. Meanwhile the old
//!   view stays readable at its revision; the new one replaces it at once
//!   when its last page arrived, and the difference is emitted as changes.
//!   A snapshot compacted during the list is listed again from scratch.
//! - **Resume when it can.** A watch that merely failed to open (no
//!   endpoint, deadline) is opened again from the view's revision + 1 after
//!   [`CacheConfig::retry_delay`]; the view stays valid. (Across member
//!   failover the watch layer itself resumes; the cache sees nothing.)
//! - **Fresh revision on an idle range.** Events move the revision to their
//!   `mod_revision`. On a range nobody writes, the revision is moved by a
//!   *check*: one small read at the latest revision `P` of the range's keys
//!   modified after the view's revision `V` (`min_mod_revision = V + 1`,
//!   `limit 1`, keys only) that also reports how many keys the range holds
//!   at `P`. None modified and as many keys as the view holds means the
//!   range did not change in `(V, P]`: the view is the range at `P`. The
//!   cache checks every [`CacheConfig::progress_interval`] while idle, when
//!   a progress notification reports a newer revision, and at once (then
//!   every [`CacheConfig::progress_retry`]) while a reader waits for a
//!   revision above the view's ([`PrefixCache::want_revision`]). Progress
//!   notifications alone cannot move it: etcd 3.5.1 answers a progress
//!   request with the store's revision while a watcher that is catching up
//!   has not been sent the events below it (the real-cluster test found
//!   events skipped that way).
//! - **Bounded change stream.** Every change applied to the view is kept in
//!   a ring of at most [`CacheConfig::max_change_bytes`]; a reader that
//!   falls further behind gets [`ChangeRead::Lagged`] (re-read the view)
//!   instead of making the ring grow.
//!
//! No IO, no clock: time is an argument, the adapter runs the
//! [`CacheAction`]s and feeds back what happened.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::time::{Duration, Instant};

use etcdv3_proto::mvccpb::{event::EventType, KeyValue};
use prost::Message;

use crate::streams::pager::{PageFailure, PageRequest, Pager, PagerAction, PagerConfig, PagerStop};
use crate::streams::watch::WatchEvent;

/// Default [`CacheConfig::max_change_bytes`]: 4 MiB.
pub const MAX_CHANGE_BYTES: usize = 4 << 20;
/// Default [`CacheConfig::progress_interval`].
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(10);
/// Default [`CacheConfig::progress_retry`].
pub const PROGRESS_RETRY: Duration = Duration::from_millis(200);
/// Default [`CacheConfig::retry_delay`].
pub const RETRY_DELAY: Duration = Duration::from_millis(200);

/// The cache's policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// How the range is listed (page size, receive limit).
    pub pager: PagerConfig,
    /// The most bytes of changes kept for readers of the change stream.
    pub max_change_bytes: usize,
    /// How often an idle view asks for a progress notification.
    pub progress_interval: Duration,
    /// How soon a progress request nobody answered is sent again (etcd
    /// answers none while a watcher on the stream is catching up).
    pub progress_retry: Duration,
    /// The wait before a failed list page or watch is tried again.
    pub retry_delay: Duration,
}

impl CacheConfig {
    /// Defaults, listing with `pager`.
    pub fn new(pager: PagerConfig) -> Self {
        CacheConfig {
            pager,
            max_change_bytes: MAX_CHANGE_BYTES,
            progress_interval: PROGRESS_INTERVAL,
            progress_retry: PROGRESS_RETRY,
            retry_delay: RETRY_DELAY,
        }
    }
}

/// What the adapter does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheAction {
    /// Read this list page; feed the answer to [`PrefixCache::handle_page`]
    /// or [`PrefixCache::handle_page_failure`].
    Fetch(PageRequest),
    /// Drop the current watcher (if any) and watch the range from
    /// `start_revision`; feed its events to
    /// [`PrefixCache::handle_watch_event`], a failure to open it or its end
    /// to [`PrefixCache::handle_watch_failed`].
    Watch {
        /// The first revision to watch.
        start_revision: i64,
    },
    /// Read the range's keys modified after `since`, at the latest
    /// revision, keys only, `limit 1` (`min_mod_revision = since + 1`);
    /// feed the answer to [`PrefixCache::handle_check`] (or
    /// [`PrefixCache::handle_check_failed`]).
    Check {
        /// The view's revision when the check was asked.
        since: i64,
    },
}

/// One change of the view.
#[derive(Debug, Clone, PartialEq)]
pub enum CacheChange {
    /// A key was created or changed (its `mod_revision` says when).
    Put(KeyValue),
    /// A key was deleted at `revision`.
    Delete {
        /// The key.
        key: Vec<u8>,
        /// The revision of the delete (for a difference found by a re-list:
        /// the new list's revision).
        revision: i64,
    },
    /// The range was listed again at `revision` (after a compaction or a
    /// watch the server ended); the changes just before this were the
    /// difference between the old view and the new list.
    Relisted {
        /// The new list's revision.
        revision: i64,
    },
}

impl CacheChange {
    fn cost(&self) -> usize {
        64 + match self {
            CacheChange::Put(kv) => kv.encoded_len(),
            CacheChange::Delete { key, .. } => key.len(),
            CacheChange::Relisted { .. } => 0,
        }
    }
}

/// What [`PrefixCache::changes_since`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum ChangeRead {
    /// The changes after the cursor (possibly none) and the cursor to read
    /// from next.
    Changes(Vec<CacheChange>, u64),
    /// Changes the reader had not read were dropped (it fell more than
    /// [`CacheConfig::max_change_bytes`] behind). Read the view again; go on
    /// from the returned cursor (the view's revision is `revision`).
    Lagged {
        /// The cursor to read from next.
        next: u64,
        /// The view's revision.
        revision: i64,
    },
}

/// Why the cache stopped for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStop {
    /// A list page failed in a way no retry fixes.
    ListFailed(PagerStop),
    /// The watch failed in a way no retry fixes (e.g. the client closed).
    WatchFailed,
}

#[derive(Debug, Clone)]
enum Phase {
    /// Listing; the old view (if any) is still served.
    Listing {
        pager: Pager,
        staged: BTreeMap<Vec<u8>, KeyValue>,
        retry_at: Option<Instant>,
    },
    /// The watch is to be opened (at `at`, or now).
    OpenWatch {
        at: Option<Instant>,
    },
    /// A watch is open (or being opened).
    Watching,
    Stopped(CacheStop),
}

/// The cache's state. See the module docs.
#[derive(Debug, Clone)]
pub struct PrefixCache {
    cfg: CacheConfig,
    key: Vec<u8>,
    range_end: Vec<u8>,
    view: BTreeMap<Vec<u8>, KeyValue>,
    revision: i64,
    ready: bool,
    phase: Phase,
    wanted: i64,
    progress_at: Option<Instant>,
    progress_in_flight: bool,
    changes: VecDeque<(u64, CacheChange, usize)>,
    change_bytes: usize,
    next_seq: u64,
    relists: u64,
}

impl PrefixCache {
    /// A cache of `[key, range_end)` (a non-empty `range_end`).
    pub fn new(key: Vec<u8>, range_end: Vec<u8>, cfg: CacheConfig) -> Self {
        let pager = Pager::new(key.clone(), range_end.clone(), 0, cfg.pager);
        PrefixCache {
            cfg,
            key,
            range_end,
            view: BTreeMap::new(),
            revision: 0,
            ready: false,
            phase: Phase::Listing {
                pager,
                staged: BTreeMap::new(),
                retry_at: None,
            },
            wanted: 0,
            progress_at: None,
            progress_in_flight: false,
            changes: VecDeque::new(),
            change_bytes: 0,
            next_seq: 0,
            relists: 0,
        }
    }

    /// What to do next at `now`, if anything.
    pub fn poll_action(&mut self, now: Instant) -> Option<CacheAction> {
        match &mut self.phase {
            Phase::Listing {
                pager, retry_at, ..
            } => {
                if retry_at.is_some_and(|at| now < at) {
                    return None;
                }
                if retry_at.take().is_some() {
                    pager.handle_resume();
                }
                match pager.poll_action() {
                    PagerAction::Fetch(req) => Some(CacheAction::Fetch(req)),
                    PagerAction::Wait | PagerAction::Done | PagerAction::Failed => None,
                    PagerAction::Stopped(stop) => {
                        self.phase = Phase::Stopped(CacheStop::ListFailed(stop));
                        None
                    }
                }
            }
            Phase::OpenWatch { at } => {
                if at.is_some_and(|at| now < at) {
                    return None;
                }
                self.phase = Phase::Watching;
                self.progress_in_flight = false;
                self.progress_at = Some(now + self.cfg.progress_interval);
                Some(CacheAction::Watch {
                    start_revision: self.revision + 1,
                })
            }
            Phase::Watching => {
                let due = self.progress_at.is_some_and(|at| now >= at);
                if due && !self.progress_in_flight {
                    self.progress_in_flight = true;
                    self.progress_at = None;
                    return Some(CacheAction::Check {
                        since: self.revision,
                    });
                }
                None
            }
            Phase::Stopped(_) => None,
        }
    }

    /// When [`PrefixCache::poll_action`] has something to do next without
    /// an input.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Listing { retry_at, .. } => *retry_at,
            Phase::OpenWatch { at } => *at,
            Phase::Watching => self.progress_at,
            Phase::Stopped(_) => None,
        }
    }

    fn progress_wait(&self) -> Duration {
        if self.wanted > self.revision {
            self.cfg.progress_retry
        } else {
            self.cfg.progress_interval
        }
    }

    /// A list page arrived (see [`Pager::handle_page`]).
    pub fn handle_page(&mut self, header_revision: i64, kvs: &[KeyValue], more: bool) {
        let Phase::Listing { pager, staged, .. } = &mut self.phase else {
            return;
        };
        pager.handle_page(header_revision, kvs, more);
        for kv in kvs {
            staged.insert(kv.key.clone(), kv.clone());
        }
        if !pager.is_done() {
            return;
        }
        let revision = pager.revision();
        let staged = std::mem::take(staged);
        self.install(staged, revision);
    }

    /// The list page in flight failed (classified as for the pager).
    pub fn handle_page_failure(&mut self, now: Instant, failure: PageFailure) {
        let Phase::Listing {
            pager, retry_at, ..
        } = &mut self.phase
        else {
            return;
        };
        pager.handle_failure(failure);
        if pager.is_failed() {
            *retry_at = Some(now + self.cfg.retry_delay);
        }
        match pager.stopped() {
            // The snapshot was compacted: list again from the latest.
            Some(PagerStop::Compacted { .. }) => self.start_list(),
            Some(stop) => self.phase = Phase::Stopped(CacheStop::ListFailed(stop)),
            None => {}
        }
    }

    /// An event of the watcher opened for the last [`CacheAction::Watch`].
    pub fn handle_watch_event(&mut self, now: Instant, event: &WatchEvent) {
        if !matches!(self.phase, Phase::Watching) {
            return;
        }
        match event {
            WatchEvent::Created { .. } => {}
            WatchEvent::Events { events, .. } => {
                // A response holds every event of its revisions (a txn or
                // a range delete makes several at one revision).
                let base = self.revision;
                for e in events {
                    let Some(kv) = e.kv.as_ref() else { continue };
                    if kv.mod_revision <= base {
                        continue;
                    }
                    self.revision = kv.mod_revision;
                    let change = if e.r#type() == EventType::Delete {
                        self.view.remove(&kv.key);
                        CacheChange::Delete {
                            key: kv.key.clone(),
                            revision: kv.mod_revision,
                        }
                    } else {
                        self.view.insert(kv.key.clone(), kv.clone());
                        CacheChange::Put(kv.clone())
                    };
                    self.push_change(change);
                }
            }
            WatchEvent::Progress { revision } => {
                // A hint only (see the module docs): check soon.
                if *revision > self.revision && !self.progress_in_flight {
                    let soon = now + self.cfg.progress_retry;
                    self.progress_at = Some(self.progress_at.map_or(soon, |at| at.min(soon)));
                }
            }
            WatchEvent::Compacted { .. } | WatchEvent::Cancelled { .. } => self.start_list(),
        }
    }

    /// The answer to [`CacheAction::Check`]: `header_revision` is the
    /// read's revision, `modified` whether it returned a key, `count` the
    /// range's number of keys at that revision.
    pub fn handle_check(
        &mut self,
        now: Instant,
        since: i64,
        header_revision: i64,
        modified: bool,
        count: i64,
    ) {
        if !matches!(self.phase, Phase::Watching) || !self.progress_in_flight {
            return;
        }
        self.progress_in_flight = false;
        let unchanged = !modified && usize::try_from(count).ok() == Some(self.view.len());
        // Events applied meanwhile make the answer about an older view.
        if unchanged && since == self.revision {
            self.revision = self.revision.max(header_revision);
        }
        self.progress_at = Some(now + self.progress_wait());
    }

    /// The check's read failed: try again later.
    pub fn handle_check_failed(&mut self, now: Instant) {
        if !self.progress_in_flight {
            return;
        }
        self.progress_in_flight = false;
        if matches!(self.phase, Phase::Watching) {
            self.progress_at = Some(now + self.cfg.retry_delay.max(self.progress_wait()));
        }
    }

    /// The watch could not be opened, or it ended with an error. `fatal`:
    /// no retry will help (the client is closed).
    pub fn handle_watch_failed(&mut self, now: Instant, fatal: bool) {
        if !matches!(self.phase, Phase::Watching) {
            return;
        }
        self.phase = if fatal {
            Phase::Stopped(CacheStop::WatchFailed)
        } else {
            Phase::OpenWatch {
                at: Some(now + self.cfg.retry_delay),
            }
        };
    }

    /// A reader waits for the view to reach `revision`: ask for progress
    /// now if the view is behind it.
    pub fn want_revision(&mut self, now: Instant, revision: i64) {
        if revision <= self.wanted {
            return;
        }
        self.wanted = revision;
        if revision > self.revision && !self.progress_in_flight {
            self.progress_at = Some(now);
        }
    }

    fn start_list(&mut self) {
        self.relists += 1;
        self.progress_in_flight = false;
        self.phase = Phase::Listing {
            pager: Pager::new(self.key.clone(), self.range_end.clone(), 0, self.cfg.pager),
            staged: BTreeMap::new(),
            retry_at: None,
        };
    }

    fn install(&mut self, new: BTreeMap<Vec<u8>, KeyValue>, revision: i64) {
        if self.ready {
            let mut diff = Vec::new();
            for (k, kv) in &new {
                if self.view.get(k).map(|old| old.mod_revision) != Some(kv.mod_revision) {
                    diff.push(CacheChange::Put(kv.clone()));
                }
            }
            for k in self.view.keys() {
                if !new.contains_key(k) {
                    diff.push(CacheChange::Delete {
                        key: k.clone(),
                        revision,
                    });
                }
            }
            for c in diff {
                self.push_change(c);
            }
            self.push_change(CacheChange::Relisted { revision });
        }
        self.view = new;
        self.revision = revision;
        self.ready = true;
        self.phase = Phase::OpenWatch { at: None };
    }

    fn push_change(&mut self, change: CacheChange) {
        let cost = change.cost();
        self.changes.push_back((self.next_seq, change, cost));
        self.next_seq += 1;
        self.change_bytes += cost;
        while self.change_bytes > self.cfg.max_change_bytes {
            match self.changes.pop_front() {
                Some((_, _, c)) => self.change_bytes -= c,
                None => break,
            }
        }
    }

    /// Whether the first list completed (before, the view is empty at
    /// revision 0).
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// Why the cache stopped, if it did.
    pub fn stopped(&self) -> Option<CacheStop> {
        match self.phase {
            Phase::Stopped(s) => Some(s),
            _ => None,
        }
    }

    /// The revision the view is at: it equals the server's range at it.
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// How many times the range was listed again.
    pub fn relists(&self) -> u64 {
        self.relists
    }

    /// The key's value in the view.
    pub fn get(&self, key: &[u8]) -> Option<&KeyValue> {
        self.view.get(key)
    }

    /// Every key-value of the view in `[from, to)` (`to` empty: to the end
    /// of the view), in key order.
    pub fn range(&self, from: &[u8], to: &[u8]) -> impl Iterator<Item = &KeyValue> {
        let upper = if to.is_empty() {
            Bound::Unbounded
        } else {
            Bound::Excluded(to.to_vec())
        };
        self.view
            .range((Bound::Included(from.to_vec()), upper))
            .map(|(_, kv)| kv)
    }

    /// Keys in the view.
    pub fn len(&self) -> usize {
        self.view.len()
    }

    /// Whether the view holds no key.
    pub fn is_empty(&self) -> bool {
        self.view.is_empty()
    }

    /// The cursor of a reader that starts reading changes now.
    pub fn change_cursor(&self) -> u64 {
        self.next_seq
    }

    /// Bytes of changes held for readers (at most
    /// [`CacheConfig::max_change_bytes`]).
    pub fn change_bytes(&self) -> usize {
        self.change_bytes
    }

    /// The changes after `cursor` (see [`ChangeRead`]).
    pub fn changes_since(&self, cursor: u64) -> ChangeRead {
        let first = self.changes.front().map_or(self.next_seq, |c| c.0);
        if cursor < first {
            return ChangeRead::Lagged {
                next: self.next_seq,
                revision: self.revision,
            };
        }
        let skip = usize::try_from(cursor - first).unwrap_or(usize::MAX);
        let out = self
            .changes
            .iter()
            .skip(skip)
            .map(|(_, c, _)| c.clone())
            .collect();
        ChangeRead::Changes(out, self.next_seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::streams::pager::PageSize;
    use etcdv3_proto::mvccpb::Event;

    fn kv(k: &str, v: &str, rev: i64) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: v.into(),
            mod_revision: rev,
            ..Default::default()
        }
    }

    fn put(k: &str, v: &str, rev: i64) -> Event {
        Event {
            r#type: EventType::Put as i32,
            kv: Some(kv(k, v, rev)),
            prev_kv: None,
        }
    }

    fn del(k: &str, rev: i64) -> Event {
        Event {
            r#type: EventType::Delete as i32,
            kv: Some(kv(k, "", rev)),
            prev_kv: None,
        }
    }

    fn cache(max_change_bytes: usize) -> PrefixCache {
        let mut cfg = CacheConfig::new(PagerConfig::new(PageSize::Count(2), 1 << 20));
        cfg.max_change_bytes = max_change_bytes;
        PrefixCache::new(b"p/".to_vec(), b"p0".to_vec(), cfg)
    }

    /// Lists `kvs` in pages of two, the first page's header at `rev + 5`;
    /// returns the watch's start.
    fn list(c: &mut PrefixCache, now: Instant, kvs: &[KeyValue], rev: i64) -> i64 {
        let mut rest = kvs;
        loop {
            match c.poll_action(now) {
                Some(CacheAction::Fetch(req)) => {
                    // Later pages at the first page's header revision.
                    assert!(req.revision == 0 || req.revision == rev + 5);
                    let n = rest.len().min(2);
                    c.handle_page(rev + 5, &rest[..n], rest.len() > 2);
                    rest = &rest[n..];
                }
                Some(CacheAction::Watch { start_revision }) => return start_revision,
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    fn events(evs: Vec<Event>) -> WatchEvent {
        WatchEvent::Events {
            events: evs,
            revision: 0,
        }
    }

    #[test]
    fn lists_at_one_revision_then_watches_from_the_next() {
        let now = Instant::now();
        let mut c = cache(1 << 20);
        assert!(!c.is_ready());
        let start = list(
            &mut c,
            now,
            &[kv("p/a", "1", 2), kv("p/b", "1", 3), kv("p/c", "1", 4)],
            10,
        );
        // The first page's header revision (rev + 5 in `list`) is the snapshot's.
        assert_eq!((start, c.revision(), c.len()), (16, 15, 3));
        let cursor = c.change_cursor();
        c.handle_watch_event(now, &events(vec![put("p/d", "1", 16), del("p/a", 17)]));
        assert_eq!(c.revision(), 17);
        assert!(c.get(b"p/a").is_none() && c.get(b"p/d").is_some());
        let ChangeRead::Changes(ch, next) = c.changes_since(cursor) else {
            panic!()
        };
        assert_eq!(ch.len(), 2);
        assert_eq!(c.changes_since(next), ChangeRead::Changes(vec![], next));
    }

    #[test]
    fn every_event_of_one_revision_is_applied() {
        let now = Instant::now();
        let mut c = cache(1 << 20);
        list(&mut c, now, &[kv("p/a", "1", 2), kv("p/b", "1", 3)], 5);
        c.handle_watch_event(now, &events(vec![del("p/a", 11), del("p/b", 11)]));
        assert!(c.is_empty(), "a range delete removes every key");
        assert_eq!(c.revision(), 11);
    }

    #[test]
    fn compaction_relists_and_emits_the_difference() {
        let now = Instant::now();
        let mut c = cache(1 << 20);
        list(&mut c, now, &[kv("p/a", "1", 2), kv("p/b", "1", 3)], 5);
        let cursor = c.change_cursor();
        c.handle_watch_event(
            now,
            &WatchEvent::Compacted {
                compact_revision: 30,
            },
        );
        // The old view is still served while listing.
        assert_eq!((c.revision(), c.len()), (10, 2));
        let start = list(&mut c, now, &[kv("p/b", "2", 31), kv("p/c", "1", 32)], 35);
        assert_eq!((start, c.revision(), c.relists()), (41, 40, 1));
        let ChangeRead::Changes(ch, _) = c.changes_since(cursor) else {
            panic!()
        };
        assert_eq!(
            ch,
            vec![
                CacheChange::Put(kv("p/b", "2", 31)),
                CacheChange::Put(kv("p/c", "1", 32)),
                CacheChange::Delete {
                    key: b"p/a".to_vec(),
                    revision: 40
                },
                CacheChange::Relisted { revision: 40 },
            ]
        );
    }

    #[test]
    fn a_compacted_list_starts_again_and_a_failed_watch_resumes() {
        let now = Instant::now();
        let mut c = cache(1 << 20);
        let Some(CacheAction::Fetch(_)) = c.poll_action(now) else {
            panic!()
        };
        c.handle_page(9, &[kv("p/a", "1", 2), kv("p/b", "1", 3)], true);
        let Some(CacheAction::Fetch(req)) = c.poll_action(now) else {
            panic!()
        };
        assert_eq!(req.revision, 9);
        c.handle_page_failure(now, PageFailure::Compacted);
        let Some(CacheAction::Fetch(req)) = c.poll_action(now) else {
            panic!()
        };
        assert_eq!((req.revision, req.key), (0, b"p/".to_vec()));
        c.handle_page(12, &[kv("p/a", "1", 2)], false);
        assert_eq!(
            c.poll_action(now),
            Some(CacheAction::Watch { start_revision: 13 })
        );
        c.handle_watch_failed(now, false);
        assert_eq!(c.poll_action(now), None);
        let later = now + RETRY_DELAY;
        assert_eq!(c.poll_timeout(), Some(later));
        assert_eq!(
            c.poll_action(later),
            Some(CacheAction::Watch { start_revision: 13 })
        );
        c.handle_watch_failed(later, true);
        assert_eq!(c.stopped(), Some(CacheStop::WatchFailed));
    }

    #[test]
    fn an_idle_view_moves_on_a_check_not_on_a_progress_notification() {
        let now = Instant::now();
        let mut c = cache(1 << 20);
        list(&mut c, now, &[kv("p/a", "1", 2)], 5);
        assert_eq!(c.revision(), 10);
        assert_eq!(c.poll_action(now), None);
        // A progress notification says 20: events up to 20 may still be in
        // flight (etcd 3.5.1), so it only asks for a check.
        c.handle_watch_event(now, &WatchEvent::Progress { revision: 20 });
        assert_eq!(c.revision(), 10);
        c.want_revision(now, 20);
        assert_eq!(c.poll_action(now), Some(CacheAction::Check { since: 10 }));
        assert_eq!(c.poll_action(now), None, "one check at a time");
        // The range changed in (10, 20]: not moved; checked again later.
        c.handle_check(now, 10, 20, true, 1);
        assert_eq!(c.revision(), 10);
        let again = now + PROGRESS_RETRY;
        assert_eq!(c.poll_timeout(), Some(again));
        c.handle_watch_event(now, &events(vec![put("p/z", "1", 19)]));
        assert_eq!(c.poll_action(again), Some(CacheAction::Check { since: 19 }));
        // An answer about an older view counts for nothing.
        c.handle_check(again, 10, 21, false, 2);
        assert_eq!(c.revision(), 19);
        assert_eq!(
            c.poll_action(again + PROGRESS_RETRY),
            Some(CacheAction::Check { since: 19 })
        );
        // Nothing modified after 19 and two keys, as the view: at 21.
        c.handle_check(again, 19, 21, false, 2);
        assert_eq!(c.revision(), 21);
        // Idle: the next check only after the interval.
        assert_eq!(c.poll_action(again), None);
        assert_eq!(c.poll_timeout(), Some(again + PROGRESS_INTERVAL));
    }

    #[test]
    fn a_reader_that_falls_behind_is_told_it_lagged() {
        let now = Instant::now();
        let mut c = cache(1000);
        list(&mut c, now, &[], 5);
        let cursor = c.change_cursor();
        for i in 0..100 {
            c.handle_watch_event(now, &events(vec![put("p/k", "v", 11 + i)]));
        }
        assert!(c.change_bytes() <= 1000);
        match c.changes_since(cursor) {
            ChangeRead::Lagged { next, revision } => {
                assert_eq!((next, revision), (c.change_cursor(), 110));
            }
            other => panic!("{other:?}"),
        }
    }
}
