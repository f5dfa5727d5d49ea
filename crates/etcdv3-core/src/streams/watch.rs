//! Many watchers multiplexed on one gRPC `Watch` stream, resumed across
//! stream failures with no event lost or duplicated.
//!
//! [`WatchHub`] is sans-IO: the caller owns the stream. It feeds the hub the
//! user's requests ([`WatchHub::add`], [`WatchHub::cancel`],
//! [`WatchHub::request_progress`]), the server's responses
//! ([`WatchHub::handle_response`]) and stream failures
//! ([`WatchHub::handle_stream_lost`]); it sends what
//! [`WatchHub::poll_transmit`] yields and hands what
//! [`WatchHub::poll_event`] yields to the watchers.
//!
//! # Resumption
//!
//! For each watcher the hub remembers the last revision it delivered: the
//! `mod_revision` of the last event, or the header revision of a progress
//! notification addressed to that watcher. When the stream is lost, every
//! live watcher is created again on the next stream from that revision + 1
//! (or from its own start revision, or from the revision the server reported
//! when it was first created if it watched "from now"), and events at or
//! below the last delivered revision are dropped, so each revision reaches a
//! watcher exactly once and in order.
//!
//! Broadcast progress responses (the answer to
//! [`WatchHub::request_progress`], `watch_id == -1`) are delivered to every
//! watcher as [`WatchEvent::Progress`] but do not move the resume point: etcd
//! 3.4 answers them without checking that every watcher caught up.
//!
//! # Slow consumers
//!
//! A watcher's consumer that stops taking events would otherwise make the
//! client buffer everything the server sends, without bound. With a
//! buffer limit ([`WatchHub::set_buffer_limit`]; the client uses
//! [`MAX_BUFFERED_BYTES`]) the hub counts what each consumer holds: every
//! item [`WatchHub::poll_event`] yields costs [`delivery_cost`] bytes
//! (about its memory), charged to the watcher's queue (its own, or a queue
//! shared by a group of watchers, [`WatchHub::add_to_queue`]) until the
//! driver reports it taken ([`WatchHub::handle_consumed`]). A response that
//! arrives for a watcher whose queue already holds the limit is dropped,
//! and so is every later one: the watcher is *paused* — its server watch is
//! cancelled, and the hub keeps the last revision it queued for the
//! consumer. Once the consumer has taken enough that its queue holds half
//! the limit or less, the watcher is created again on the stream from that
//! revision + 1, the same way a watcher is resumed after a stream failure:
//! no event is lost, none is delivered twice, order is kept. If that
//! revision was compacted meanwhile, the watcher ends with
//! [`WatchEvent::Compacted`], as after a failover. A queue therefore holds
//! at most the limit plus one response (itself bounded by the max receive
//! message size). No other etcd client bounds a slow watcher this way: they
//! buffer without bound (Go's clientv3) or block the shared stream.
//!
//! A watcher is re-created after a pause under a server watch id it never
//! used on that stream (see [`WatchHub::add_with_id`]): etcd buffers the
//! events of a just-cancelled watch that were still in flight and flushes
//! them to the next watch created under the same id.
//!
//! # Hostile input
//!
//! Revisions near `i64::MAX` saturate instead of wrapping (a watcher that
//! delivered revision `i64::MAX` resumes from `i64::MAX`, never from a
//! negative revision), and the events of a fragmented response are
//! reassembled up to [`WatchHub::max_fragment_bytes`] (by default
//! [`DEFAULT_MAX_DECODE_SIZE`](crate::wire::codec::DEFAULT_MAX_DECODE_SIZE), the
//! client's default max receive message size): a watcher whose fragments
//! grow past it ends with [`WatchEvent::Cancelled`] whose reason starts with
//! [`FRAGMENTS_TOO_LARGE`], and the hub asks the server to cancel it.
//!
//! # Leader loss
//!
//! With `hasleader` metadata a member that loses its leader cancels watches
//! with the reason "etcdserver: no leader". Such a cancel does not end the
//! watcher: it waits to be created again, and [`WatchHub::needs_new_stream`]
//! turns true so the driver drops the stream, calls
//! [`WatchHub::handle_stream_lost`] and opens a new one (on another member).
//!
//! # Authentication
//!
//! A stream carries the token it was opened with; etcd refuses a watch
//! create whose token expired with "permission denied". The first such
//! refusal of a watcher does not end it: it waits to be created again and
//! [`WatchHub::needs_auth_refresh`] turns true, so the driver gets a fresh
//! token and a new stream. Refused again after that (a real permission
//! error), the watcher ends with [`WatchEvent::Cancelled`]; so it does at
//! once when the driver has no credentials
//! ([`WatchHub::handle_auth_final`]). A watcher created again may be retried
//! once more later (the next token expiry).
//!
//! ```
//! use etcdv3_core::streams::watch::{WatchEvent, WatchHub};
//! use etcdv3_proto::etcdserverpb::{ResponseHeader, WatchCreateRequest, WatchResponse};
//!
//! let mut hub = WatchHub::new();
//! let id = hub.add(WatchCreateRequest { key: b"k".to_vec(), ..Default::default() });
//! let create = hub.poll_transmit().unwrap(); // send it on the stream
//! # let _ = create;
//! hub.handle_response(WatchResponse {
//!     header: Some(ResponseHeader { revision: 7, ..Default::default() }),
//!     watch_id: id.get(),
//!     created: true,
//!     ..Default::default()
//! });
//! assert_eq!(hub.poll_event(), Some((id, WatchEvent::Created { revision: 7 })));
//! ```

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

use etcdv3_proto::etcdserverpb::{
    watch_request, WatchCancelRequest, WatchCreateRequest, WatchProgressRequest, WatchRequest,
    WatchResponse,
};
use etcdv3_proto::mvccpb::Event;
use prost::Message;

/// Create requests sent and not answered yet, at most (see
/// [`WatchHub::poll_transmit`]). Deep enough that creation is pipelined
/// (one round trip per this many watchers), small enough to bound what the
/// transport buffers.
pub const MAX_CREATES_IN_FLIGHT: usize = 128;

/// The buffer limit the client gives its hub ([`WatchHub::set_buffer_limit`]):
/// what one watcher's consumer (or one group's) may hold, in bytes of
/// [`delivery_cost`], before the watcher is paused and later resumed from
/// its last queued revision (see the [module docs](self#slow-consumers)).
/// 4 MiB: about 20,000 small events; a consumer that keeps up never gets
/// near it.
pub const MAX_BUFFERED_BYTES: usize = 4 << 20;

/// What an item other than its events costs in [`delivery_cost`]: the
/// item itself and the queue node that carries it.
const ITEM_COST: usize = 64;

/// First server watch id the hub uses to re-create a paused watcher on the
/// same stream (then counting up): far above the ids watchers get (they
/// are handed out one by one from 1), so never one a watcher was created
/// under on that stream.
const ALIAS_BASE: i64 = 1 << 53;

/// What `event` costs its consumer's queue, in bytes: about the memory it
/// holds (each event's struct, keys and values, previous values included)
/// plus a fixed cost per item. The hub charges every item it yields by
/// this measure, and the driver reports what the consumer took by the same
/// measure ([`WatchHub::handle_consumed`]).
///
/// ```
/// use etcdv3_core::streams::watch::{delivery_cost, WatchEvent};
/// let small = delivery_cost(&WatchEvent::Progress { revision: 3 });
/// assert!(small > 0 && small < 128);
/// ```
pub fn delivery_cost(event: &WatchEvent) -> usize {
    match event {
        WatchEvent::Events { events, .. } => events.iter().fold(ITEM_COST, |acc, e| {
            let kv = |kv: &Option<etcdv3_proto::mvccpb::KeyValue>| {
                kv.as_ref().map_or(0, |kv| kv.key.len() + kv.value.len())
            };
            acc.saturating_add(std::mem::size_of::<Event>() + kv(&e.kv) + kv(&e.prev_kv))
        }),
        WatchEvent::Cancelled { reason } => ITEM_COST + reason.len(),
        _ => ITEM_COST,
    }
}

/// The queue a watcher's items are charged to (see the [module
/// docs](self#slow-consumers)): a watcher's own ([`QueueId::of`]), or one
/// named by the caller for a group of watchers (e.g. an id reserved from
/// the same source as watcher ids, so that it is no watcher's own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueId(i64);

impl QueueId {
    /// The queue of watcher `id` alone.
    ///
    /// ```
    /// use etcdv3_core::streams::watch::{QueueId, WatcherId};
    /// let id = WatcherId::new(7).unwrap();
    /// assert_eq!(QueueId::of(id), QueueId::new(7));
    /// ```
    pub fn of(id: WatcherId) -> QueueId {
        QueueId(id.0)
    }

    /// The queue named `n` (any number: only equality matters).
    pub fn new(n: i64) -> QueueId {
        QueueId(n)
    }
}

/// What one consumer holds, and who waits for it to catch up.
#[derive(Debug, Default)]
struct Queue {
    /// Cost of the items yielded and not reported taken.
    held: usize,
    /// Live watchers charged to the queue.
    watchers: usize,
    /// Watchers paused because the queue was full, in the order they
    /// paused (re-created in that order: the first to wait is the first
    /// served).
    paused: VecDeque<WatcherId>,
}

/// Start of the [`WatchEvent::Cancelled`] reason of a watcher whose
/// fragmented response grew past [`WatchHub::max_fragment_bytes`].
pub const FRAGMENTS_TOO_LARGE: &str = "watch response too large";

/// The client-side identity of a watcher, assigned by [`WatchHub::add`]
/// (always `>= 1`). It is also sent as the `watch_id` of the create request
/// (etcd 3.4+ honours client-chosen ids), but the hub does not rely on the
/// server echoing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WatcherId(i64);

impl WatcherId {
    /// The id `n`, for [`WatchHub::add_with_id`] (ids chosen outside the
    /// hub); `None` unless `n >= 1`.
    ///
    /// ```
    /// use etcdv3_core::streams::watch::WatcherId;
    /// assert_eq!(WatcherId::new(3).map(WatcherId::get), Some(3));
    /// assert!(WatcherId::new(0).is_none());
    /// ```
    pub fn new(n: i64) -> Option<WatcherId> {
        (n >= 1).then_some(WatcherId(n))
    }

    /// The numeric id.
    pub fn get(self) -> i64 {
        self.0
    }
}

/// Hashes a [`WatcherId`] with one multiplication (Fx-style): for maps
/// keyed by watcher ids ([`WatcherIdBuildHasher`]). Ids are chosen by the
/// client, dense and never by the server, so a keyed (DoS-resistant) hash
/// buys nothing there; maps keyed by server-chosen ids keep the std hasher.
///
/// ```
/// use std::collections::HashMap;
/// use etcdv3_core::streams::watch::{WatcherId, WatcherIdBuildHasher};
/// let mut m: HashMap<WatcherId, &str, WatcherIdBuildHasher> = HashMap::default();
/// m.insert(WatcherId::new(1).unwrap(), "a");
/// assert_eq!(m.get(&WatcherId::new(1).unwrap()), Some(&"a"));
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct WatcherIdHasher(u64);

const FX_K: u64 = 0x517c_c1b7_2722_0a95;

impl Hasher for WatcherIdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(FX_K);
        }
    }

    fn write_i64(&mut self, n: i64) {
        self.0 = (self.0.rotate_left(5) ^ n as u64).wrapping_mul(FX_K);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The `BuildHasher` of maps keyed by [`WatcherId`]; see [`WatcherIdHasher`].
pub type WatcherIdBuildHasher = BuildHasherDefault<WatcherIdHasher>;

type IdMap<V> = HashMap<WatcherId, V, WatcherIdBuildHasher>;

impl fmt::Display for WatcherId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What happened to a watcher.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchEvent {
    /// The server created the watcher (delivered once, not again when the
    /// watcher is re-created after a stream failure). `revision` is the
    /// store revision at creation.
    Created {
        /// Header revision of the creation response.
        revision: i64,
    },
    /// Events, in revision order (fragments already reassembled).
    Events {
        /// The events; never empty.
        events: Vec<Event>,
        /// Header revision of the response that carried them.
        revision: i64,
    },
    /// The watcher has seen everything up to `revision`.
    Progress {
        /// Header revision of the progress notification.
        revision: i64,
    },
    /// The watcher's start revision was compacted: events were lost. The
    /// watcher ended.
    Compacted {
        /// The revision the store was compacted at.
        compact_revision: i64,
    },
    /// The watcher ended: cancelled by the client, or by the server (then
    /// `reason` says why).
    Cancelled {
        /// The server's reason; empty for a client cancel.
        reason: String,
    },
}

impl WatchEvent {
    /// Whether this is the watcher's last event.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            WatchEvent::Compacted { .. } | WatchEvent::Cancelled { .. }
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Needs a create request; `queued` when one is in the transmit queue.
    Pending { queued: bool },
    /// Create request sent, no `created` response yet.
    Creating { cancel: bool },
    /// Created on the current stream under `server_id`.
    Active { server_id: i64 },
    /// Cancel request queued or sent for `server_id`.
    Cancelling { server_id: i64 },
    /// Its consumer's queue was full: no server watch; created again from
    /// the resume point once the consumer caught up.
    Paused,
}

/// A [`State`] stored apart: its variant (with the variant's flag) in one
/// byte and its server watch id next to it, so that the record has no
/// enum padding (see [`Watcher`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Pending,
    PendingQueued,
    Creating,
    CreatingCancel,
    Active,
    Cancelling,
    Paused,
}

/// One watcher, kept compact (10,000 of them on one client is a use the
/// benchmarks measure): what re-creating it needs, not a whole
/// `WatchCreateRequest`, in 64 bytes (one cache line's worth; the state's
/// variant and the flags share the record's last word); rare state
/// (fragments being reassembled, an authentication refusal, filters) lives
/// in side tables of the hub.
#[derive(Debug)]
struct Watcher {
    /// The key and the range end.
    span: KeySpan,
    /// With `from_now` false: the start revision the user asked for
    /// (`> 0`). With `from_now` true (the user asked for 0 or less, "from
    /// now"): the header revision of the first creation, [`NOT_CREATED`]
    /// before it (one field for both: an `Option` or a second field would
    /// cost 8 more bytes).
    start: i64,
    /// Last revision delivered (0: none).
    delivered: i64,
    /// The server watch id of [`Phase::Active`] and [`Phase::Cancelling`].
    server_id: i64,
    /// The queue its items are charged to.
    queue: QueueId,
    phase: Phase,
    from_now: bool,
    prev_kv: bool,
    progress_notify: bool,
    fragment: bool,
    announced: bool,
    /// Already re-created once after an authentication refusal.
    auth_retried: bool,
}

impl Watcher {
    /// The watcher for `request`; its filters (raw values, normally none)
    /// are kept apart by the hub.
    fn new(request: WatchCreateRequest, queue: QueueId) -> Watcher {
        let from_now = request.start_revision <= 0;
        Watcher {
            span: KeySpan::new(&request.key, &request.range_end),
            start: if from_now {
                NOT_CREATED
            } else {
                request.start_revision
            },
            delivered: 0,
            server_id: 0,
            queue,
            phase: Phase::PendingQueued,
            from_now,
            prev_kv: request.prev_kv,
            progress_notify: request.progress_notify,
            fragment: request.fragment,
            announced: false,
            auth_retried: false,
        }
    }

    fn state(&self) -> State {
        match self.phase {
            Phase::Pending => State::Pending { queued: false },
            Phase::PendingQueued => State::Pending { queued: true },
            Phase::Creating => State::Creating { cancel: false },
            Phase::CreatingCancel => State::Creating { cancel: true },
            Phase::Active => State::Active {
                server_id: self.server_id,
            },
            Phase::Cancelling => State::Cancelling {
                server_id: self.server_id,
            },
            Phase::Paused => State::Paused,
        }
    }

    fn set_state(&mut self, state: State) {
        self.phase = match state {
            State::Pending { queued: false } => Phase::Pending,
            State::Pending { queued: true } => Phase::PendingQueued,
            State::Creating { cancel: false } => Phase::Creating,
            State::Creating { cancel: true } => Phase::CreatingCancel,
            State::Active { server_id } => {
                self.server_id = server_id;
                Phase::Active
            }
            State::Cancelling { server_id } => {
                self.server_id = server_id;
                Phase::Cancelling
            }
            State::Paused => Phase::Paused,
        };
    }

    /// The create request that (re)creates this watcher under server watch
    /// id `server_id`, from its resume point, with `filters`.
    fn create_request(&self, server_id: i64, filters: Vec<i32>) -> WatchCreateRequest {
        WatchCreateRequest {
            key: self.span.key().to_vec(),
            range_end: self.span.range_end().to_vec(),
            start_revision: self.resume_revision(),
            progress_notify: self.progress_notify,
            filters,
            prev_kv: self.prev_kv,
            watch_id: server_id,
            fragment: self.fragment,
        }
    }

    /// The highest revision this watcher already covers: events at or below
    /// it are not delivered (again).
    fn covered(&self) -> i64 {
        let mut rev = if self.from_now { -1 } else { self.start - 1 };
        if self.delivered > 0 {
            rev = rev.max(self.delivered);
        }
        if self.from_now && self.start != NOT_CREATED {
            rev = rev.max(self.start);
        }
        rev
    }

    /// The revision to (re)start from. Saturating: a hostile revision of
    /// `i64::MAX` must not wrap to a negative start revision (issue 10,
    /// bug 12).
    fn resume_revision(&self) -> i64 {
        self.covered().saturating_add(1)
    }
}

/// How far past its live records the [`WatcherTable`]'s window may reach
/// (empty slots at most twice the records plus this).
const SLAB_SLACK: usize = 64;

/// The hub's watchers by id: a slab (a window of slots indexed by `id -
/// base`) for the ids the hub and the client hand out — one by one,
/// increasing, never reused, so the live ones are dense — and a hash map
/// (the *spill*) for the rest. An event's watcher is one indexed load, not
/// a hash probe (no control bytes, one cache miss instead of two at
/// 10,000 watchers).
///
/// Ids from outside ([`WatchHub::add_with_id`]) may be anything `>= 1`:
/// an id that would leave the window more than half empty goes to the
/// spill, and a window that outgrows its records (a long-lived watcher at
/// the front, thousands of short-lived ones after it) hands its oldest
/// records over to the spill, so memory stays proportional to the live
/// watchers whatever the ids. A lookup falls back to the spill (when it
/// holds anything) for an id whose slot is empty or outside the window:
/// every lookup is checked, none panics.
#[derive(Debug, Default)]
struct WatcherTable {
    /// The id of `slots[0]`.
    base: i64,
    slots: VecDeque<Option<Watcher>>,
    /// Records in `slots`.
    in_slots: usize,
    spill: IdMap<Watcher>,
}

impl WatcherTable {
    /// `id`'s position in the window, if inside it.
    fn slot(&self, id: WatcherId) -> Option<usize> {
        let offset = i128::from(id.0) - i128::from(self.base);
        usize::try_from(offset)
            .ok()
            .filter(|&i| i < self.slots.len())
    }

    fn get(&self, id: &WatcherId) -> Option<&Watcher> {
        match self
            .slot(*id)
            .and_then(|i| self.slots.get(i))
            .and_then(Option::as_ref)
        {
            Some(w) => Some(w),
            None if self.spill.is_empty() => None,
            None => self.spill.get(id),
        }
    }

    fn get_mut(&mut self, id: &WatcherId) -> Option<&mut Watcher> {
        let slot = self.slot(*id);
        match slot
            .and_then(|i| self.slots.get_mut(i))
            .and_then(Option::as_mut)
        {
            Some(w) => Some(w),
            None if self.spill.is_empty() => None,
            None => self.spill.get_mut(id),
        }
    }

    fn contains_key(&self, id: &WatcherId) -> bool {
        self.get(id).is_some()
    }

    fn len(&self) -> usize {
        self.in_slots + self.spill.len()
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Most empty slots the window may hold with `records` records.
    fn max_window(records: usize) -> usize {
        records.saturating_mul(2).saturating_add(SLAB_SLACK)
    }

    /// Track `w` under `id`, which must not be tracked yet.
    fn insert(&mut self, id: WatcherId, w: Watcher) {
        if self.in_slots == 0 {
            self.slots.clear();
            self.base = id.0;
            self.slots.push_back(Some(w));
            self.in_slots = 1;
            return;
        }
        if let Some(i) = self.slot(id) {
            if let Some(slot) = self.slots.get_mut(i) {
                if slot.replace(w).is_none() {
                    self.in_slots += 1;
                }
            }
            return;
        }
        let records = self.in_slots + 1;
        let offset = i128::from(id.0) - i128::from(self.base);
        let len = self.slots.len() as i128;
        if offset >= len && offset - len <= (records + SLAB_SLACK) as i128 {
            // Past the end, near it: the usual case (the next id).
            while (self.slots.len() as i128) < offset {
                self.slots.push_back(None);
            }
            self.slots.push_back(Some(w));
            self.in_slots = records;
            // A window grown far past its records hands the oldest over.
            while self.slots.len() > Self::max_window(self.in_slots) {
                if let Some(Some(old)) = self.slots.pop_front() {
                    self.spill.insert(WatcherId(self.base), old);
                    self.in_slots -= 1;
                }
                self.base += 1;
            }
            self.trim();
        } else if offset < 0
            && -offset <= SLAB_SLACK as i128
            && self.slots.len() as i128 - offset <= Self::max_window(records) as i128
        {
            // Just before the window (ids handed out, added out of order).
            for _ in 1..-offset {
                self.slots.push_front(None);
            }
            self.slots.push_front(Some(w));
            self.base = id.0;
            self.in_slots = records;
        } else {
            self.spill.insert(id, w);
        }
    }

    fn remove(&mut self, id: &WatcherId) -> Option<Watcher> {
        if let Some(w) = self
            .slot(*id)
            .and_then(|i| self.slots.get_mut(i))
            .and_then(Option::take)
        {
            self.in_slots -= 1;
            self.trim();
            return Some(w);
        }
        if self.spill.is_empty() {
            None
        } else {
            self.spill.remove(id)
        }
    }

    /// Drop the empty slots at both ends (and the capacity of a window
    /// that shrank to a quarter or less).
    fn trim(&mut self) {
        while let Some(None) = self.slots.front() {
            self.slots.pop_front();
            self.base = self.base.saturating_add(1);
        }
        while let Some(None) = self.slots.back() {
            self.slots.pop_back();
        }
        if self.slots.capacity() > KEEP_QUEUE_CAPACITY
            && self.slots.capacity() / 4 > self.slots.len()
        {
            self.slots.shrink_to(self.slots.len() * 2);
        }
    }

    /// Every record with its id: the window's in id order, then the
    /// spill's in no order.
    fn iter(&self) -> impl Iterator<Item = (WatcherId, &Watcher)> + '_ {
        let base = self.base;
        self.slots
            .iter()
            .zip(0i64..)
            .filter_map(move |(w, i)| w.as_ref().map(|w| (WatcherId(base + i), w)))
            .chain(self.spill.iter().map(|(id, w)| (*id, w)))
    }
}

/// `Watcher::start` of a watcher from now before its first creation.
const NOT_CREATED: i64 = i64::MIN;

/// Bytes of key and range end together that a [`KeySpan`] keeps inline.
const INLINE_SPAN: usize = 21;

/// A watcher's key and range end in 24 bytes: inline when they are short
/// together (no allocation: at 10,000 watchers of 10-byte keys the key's
/// own allocation cost a fifth of the record's memory), else one boxed
/// slice holding both.
#[derive(Debug)]
enum KeySpan {
    Inline {
        /// Key, then range end, then unused bytes.
        buf: [u8; INLINE_SPAN],
        key_len: u8,
        end_len: u8,
    },
    Heap {
        /// Key, then range end.
        buf: Box<[u8]>,
        /// Length of the key (a key longer than `u32::MAX` bytes cannot be
        /// sent: the gRPC message size limits it far below).
        key_len: u32,
    },
}

impl KeySpan {
    fn new(key: &[u8], range_end: &[u8]) -> KeySpan {
        let total = key.len().saturating_add(range_end.len());
        match (u8::try_from(key.len()), u8::try_from(range_end.len())) {
            (Ok(key_len), Ok(end_len)) if total <= INLINE_SPAN => {
                let mut buf = [0; INLINE_SPAN];
                buf[..key.len()].copy_from_slice(key);
                buf[key.len()..total].copy_from_slice(range_end);
                KeySpan::Inline {
                    buf,
                    key_len,
                    end_len,
                }
            }
            _ => KeySpan::Heap {
                buf: [key, range_end].concat().into_boxed_slice(),
                key_len: u32::try_from(key.len()).unwrap_or(u32::MAX),
            },
        }
    }

    fn key(&self) -> &[u8] {
        match self {
            KeySpan::Inline { buf, key_len, .. } => &buf[..usize::from(*key_len)],
            KeySpan::Heap { buf, key_len } => {
                &buf[..usize::try_from(*key_len)
                    .unwrap_or(usize::MAX)
                    .min(buf.len())]
            }
        }
    }

    fn range_end(&self) -> &[u8] {
        match self {
            KeySpan::Inline {
                buf,
                key_len,
                end_len,
            } => {
                let start = usize::from(*key_len);
                &buf[start..start + usize::from(*end_len)]
            }
            KeySpan::Heap { buf, key_len } => {
                &buf[usize::try_from(*key_len)
                    .unwrap_or(usize::MAX)
                    .min(buf.len())..]
            }
        }
    }
}

/// Fragments of one watcher's response received so far.
#[derive(Debug, Default)]
struct Fragments {
    events: Vec<Event>,
    /// Encoded size of `events`.
    bytes: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Create(WatcherId),
    Cancel(WatcherId),
    /// Cancel a server watch whose watcher already ended locally.
    CancelServer(i64),
    Progress,
}

/// Watchers multiplexed on one `Watch` stream; see the [module
/// docs](self).
#[derive(Debug)]
pub struct WatchHub {
    next_id: i64,
    /// A slab by id (see [`WatcherTable`]): an event's watcher is one
    /// indexed load at 10,000 watchers (a B-tree walk, then a hash probe,
    /// missed the cache twice per response). Iterated only on rare paths,
    /// always in id order ([`Self::ids`]) so that replays stay
    /// deterministic.
    watchers: WatcherTable,
    /// Fragments received so far, per watcher with a fragmented response
    /// under way.
    fragments: IdMap<Fragments>,
    /// The create request's filters of watchers that have any.
    filters: IdMap<Box<[i32]>>,
    /// Watchers refused for authentication since their last creation,
    /// waiting for a fresh token: the refusal's reason.
    auth_refused: IdMap<String>,
    /// Server watch id -> watcher, for the current stream, where the server
    /// did not keep the hub's id (see `WatchHub::handle_response`).
    by_server: HashMap<i64, WatcherId>,
    /// Creates sent and not answered yet, in order.
    creating: VecDeque<WatcherId>,
    ops: VecDeque<Op>,
    /// What [`WatchHub::poll_delivery`] yields: each item with the queue
    /// its watcher is charged to (the consumer it goes to).
    events: VecDeque<(WatcherId, QueueId, WatchEvent)>,
    new_stream: bool,
    max_fragment_bytes: usize,
    /// A watcher was refused for authentication and waits for a new token.
    auth_refresh: bool,
    /// What a consumer may hold (`None`: no accounting).
    buffer_limit: Option<usize>,
    /// Per consumer queue, while a limit is set and the queue has watchers.
    /// Looked up twice per response (is it full, charge it): hashed like
    /// watcher ids (queue ids are the client's too).
    queues: HashMap<QueueId, Queue, WatcherIdBuildHasher>,
    /// Watchers paused on the current stream and re-created since: the
    /// server watch id their next create uses (see `ALIAS_BASE`).
    aliases: IdMap<i64>,
    /// The next server watch id of a re-created paused watcher.
    next_alias: i64,
}

impl Default for WatchHub {
    fn default() -> Self {
        WatchHub {
            next_id: 0,
            watchers: WatcherTable::default(),
            fragments: IdMap::default(),
            filters: IdMap::default(),
            auth_refused: IdMap::default(),
            by_server: HashMap::new(),
            creating: VecDeque::new(),
            ops: VecDeque::new(),
            events: VecDeque::new(),
            new_stream: false,
            max_fragment_bytes: crate::wire::codec::DEFAULT_MAX_DECODE_SIZE,
            auth_refresh: false,
            buffer_limit: None,
            queues: HashMap::default(),
            aliases: IdMap::default(),
            next_alias: ALIAS_BASE,
        }
    }
}

/// Queues above this capacity are freed once empty: creating 10,000
/// watchers at once fills them, and keeping that capacity would cost more
/// than the watchers themselves.
const KEEP_QUEUE_CAPACITY: usize = 256;

fn release_if_large<T>(queue: &mut VecDeque<T>) {
    if queue.is_empty() && queue.capacity() > KEEP_QUEUE_CAPACITY {
        *queue = VecDeque::new();
    }
}

/// Route server watch id `server_id` to watcher `id` (created under it) in
/// `by_server`. The usual case, the server keeping the hub's id, needs no
/// entry (see `WatchHub::handle_response`): no table lookup per event and no memory
/// per watcher.
fn add_route(by_server: &mut HashMap<i64, WatcherId>, server_id: i64, id: WatcherId) {
    if server_id == id.0 {
        by_server.remove(&server_id);
    } else {
        by_server.insert(server_id, id);
    }
}

/// Charge `event` to `queue` (with a buffer `limit`): the hub's fields
/// taken apart, so the hot path of `handle_response` can charge while it
/// holds a watcher's record.
fn charge(
    queues: &mut HashMap<QueueId, Queue, WatcherIdBuildHasher>,
    limit: Option<usize>,
    queue: QueueId,
    event: &WatchEvent,
) {
    if limit.is_some() {
        if let Some(q) = queues.get_mut(&queue) {
            q.held = q.held.saturating_add(delivery_cost(event));
        }
    }
}

/// Whether the consumer of `queue` holds the `limit` already: the next
/// response for one of its watchers pauses it. A consumer that holds
/// nothing always gets the next response, whatever the limit (a limit
/// below one response must not stop a watcher for good).
fn queue_full(
    queues: &HashMap<QueueId, Queue, WatcherIdBuildHasher>,
    limit: Option<usize>,
    queue: QueueId,
) -> bool {
    match limit {
        Some(limit) => queues
            .get(&queue)
            .is_some_and(|q| q.held > 0 && q.held >= limit),
        None => false,
    }
}

/// An event's revision (0 without a key-value).
fn revision_of(e: &Event) -> i64 {
    e.kv.as_ref().map_or(0, |kv| kv.mod_revision)
}

/// The events of `events` that `w` has not delivered yet (a resumed watch
/// may repeat some), with `w`'s delivered revision advanced to the last of
/// them; `None` when nothing is new.
fn advance_past(w: &mut Watcher, mut events: Vec<Event>) -> Option<Vec<Event>> {
    let floor = w.covered();
    if events.iter().any(|e| revision_of(e) <= floor) {
        events.retain(|e| revision_of(e) > floor);
    }
    let last = events
        .iter()
        .filter_map(|e| e.kv.as_ref().map(|kv| kv.mod_revision))
        .max()?;
    w.delivered = last;
    Some(events)
}

fn header_revision(resp: &WatchResponse) -> i64 {
    resp.header.as_ref().map(|h| h.revision).unwrap_or(0)
}

fn is_leader_loss(reason: &str) -> bool {
    let r = reason.to_ascii_lowercase();
    r.contains("no leader") || r.contains("leader changed")
}

/// A cancel reason that a fresh token may cure: etcd refuses a watch whose
/// stream token expired with "permission denied".
fn is_auth_refusal(reason: &str) -> bool {
    crate::wire::error::auth_refusal_of_reason(reason).is_some()
}

impl WatchHub {
    /// An empty hub.
    pub fn new() -> Self {
        WatchHub::default()
    }

    /// An empty hub that reassembles fragmented responses up to
    /// `max_fragment_bytes` (pass the client's max receive message size).
    pub fn with_max_fragment_bytes(max_fragment_bytes: usize) -> Self {
        WatchHub {
            max_fragment_bytes,
            ..WatchHub::default()
        }
    }

    /// The most bytes (protobuf-encoded events) one fragmented response
    /// may reassemble to; see the [module docs](self#hostile-input).
    pub fn max_fragment_bytes(&self) -> usize {
        self.max_fragment_bytes
    }

    /// Add a watcher. Its create request is queued for
    /// [`poll_transmit`](Self::poll_transmit); `request.watch_id` is replaced
    /// by the hub's id.
    pub fn add(&mut self, request: WatchCreateRequest) -> WatcherId {
        self.next_id = self.next_id.saturating_add(1);
        let id = WatcherId(self.next_id);
        self.insert(id, request, QueueId::of(id));
        id
    }

    /// [`add`](Self::add) under an id chosen by the caller (e.g. handed to
    /// the user before the hub saw the request). Returns `false`, and adds
    /// nothing, when `id` is already tracked. Later [`add`](Self::add)s pick
    /// ids above every id seen; a caller mixing both must not choose an id
    /// the hub may already have handed out.
    ///
    /// ```
    /// use etcdv3_core::streams::watch::{WatchHub, WatcherId};
    /// use etcdv3_proto::etcdserverpb::WatchCreateRequest;
    ///
    /// let mut hub = WatchHub::new();
    /// let id = WatcherId::new(40).unwrap();
    /// let req = WatchCreateRequest { key: b"k".to_vec(), ..Default::default() };
    /// assert!(hub.add_with_id(id, req.clone()));
    /// assert!(!hub.add_with_id(id, req.clone()));
    /// assert_eq!(hub.add(req).get(), 41);
    /// ```
    pub fn add_with_id(&mut self, id: WatcherId, request: WatchCreateRequest) -> bool {
        self.add_to_queue(id, request, QueueId::of(id))
    }

    /// [`add_with_id`](Self::add_with_id), charging the watcher's items to
    /// `queue` (shared with other watchers: a group consumed in one place;
    /// see the [module docs](self#slow-consumers)) instead of its own.
    ///
    /// ```
    /// use etcdv3_core::streams::watch::{QueueId, WatchHub, WatcherId};
    /// use etcdv3_proto::etcdserverpb::WatchCreateRequest;
    ///
    /// let mut hub = WatchHub::new();
    /// hub.set_buffer_limit(Some(1 << 20));
    /// let group = QueueId::new(100);
    /// for n in 1..=2 {
    ///     let req = WatchCreateRequest { key: vec![b'a' + n as u8], ..Default::default() };
    ///     assert!(hub.add_to_queue(WatcherId::new(n).unwrap(), req, group));
    /// }
    /// assert_eq!(hub.buffered(group), 0);
    /// ```
    pub fn add_to_queue(
        &mut self,
        id: WatcherId,
        request: WatchCreateRequest,
        queue: QueueId,
    ) -> bool {
        if self.watchers.contains_key(&id) {
            return false;
        }
        self.next_id = self.next_id.max(id.0);
        self.insert(id, request, queue);
        true
    }

    fn insert(&mut self, id: WatcherId, mut request: WatchCreateRequest, queue: QueueId) {
        if !request.filters.is_empty() {
            let filters = std::mem::take(&mut request.filters);
            self.filters.insert(id, filters.into_boxed_slice());
        }
        if self.buffer_limit.is_some() {
            self.queues.entry(queue).or_default().watchers += 1;
        }
        self.watchers.insert(id, Watcher::new(request, queue));
        self.ops.push_back(Op::Create(id));
    }

    /// Bound what each consumer may hold to `limit` bytes of
    /// [`delivery_cost`] (`None`, the default: no bound, no accounting);
    /// see the [module docs](self#slow-consumers). With a limit, the
    /// driver must report what consumers take
    /// ([`handle_consumed`](Self::handle_consumed)), or their watchers
    /// stay paused. Items yielded before the call are not counted.
    pub fn set_buffer_limit(&mut self, limit: Option<usize>) {
        self.buffer_limit = limit;
        if limit.is_none() {
            // No accounting: paused watchers are created again at once.
            for q in std::mem::take(&mut self.queues).into_values() {
                for id in q.paused {
                    if let Some(w) = self.watchers.get_mut(&id) {
                        if w.state() == State::Paused {
                            w.set_state(State::Pending { queued: true });
                            self.ops.push_back(Op::Create(id));
                        }
                    }
                }
            }
            return;
        }
        if self.queues.is_empty() {
            for (_, w) in self.watchers.iter() {
                self.queues.entry(w.queue).or_default().watchers += 1;
            }
        }
    }

    /// The buffer limit in force.
    pub fn buffer_limit(&self) -> Option<usize> {
        self.buffer_limit
    }

    /// The consumer of `queue` took items costing `cost` bytes (the sum of
    /// their [`delivery_cost`]). When its queue then holds half the limit
    /// or less, its paused watchers are created again from their resume
    /// points (in the order they paused). Unknown queues are ignored.
    pub fn handle_consumed(&mut self, queue: QueueId, cost: usize) {
        let Some(limit) = self.buffer_limit else {
            return;
        };
        let Some(q) = self.queues.get_mut(&queue) else {
            return;
        };
        q.held = q.held.saturating_sub(cost);
        if q.held > limit / 2 || q.paused.is_empty() {
            return;
        }
        let paused = std::mem::take(&mut q.paused);
        for id in paused {
            let Some(w) = self.watchers.get_mut(&id) else {
                continue;
            };
            if w.state() != State::Paused {
                continue;
            }
            w.set_state(State::Pending { queued: true });
            // Not the id the cancelled server watch had on this stream.
            self.aliases.insert(id, self.next_alias);
            self.next_alias = self.next_alias.saturating_add(1);
            self.ops.push_back(Op::Create(id));
        }
    }

    /// What the consumer of `queue` holds, as far as the hub knows: the
    /// cost of the items yielded for it and not reported taken (0 without
    /// a buffer limit).
    pub fn buffered(&self, queue: QueueId) -> usize {
        self.queues.get(&queue).map_or(0, |q| q.held)
    }

    /// Whether watcher `id` is paused, waiting for its consumer to catch
    /// up (see the [module docs](self#slow-consumers)).
    pub fn is_paused(&self, id: WatcherId) -> bool {
        self.watchers
            .get(&id)
            .is_some_and(|w| w.state() == State::Paused)
    }

    /// Queue `event` for watcher `id` (charged to `queue`).
    fn push_event(&mut self, id: WatcherId, queue: QueueId, event: WatchEvent) {
        charge(&mut self.queues, self.buffer_limit, queue, &event);
        self.events.push_back((id, queue, event));
    }

    /// Pause active watcher `id`: its server watch is cancelled (what
    /// arrives for it meanwhile is dropped) and it waits for its consumer.
    fn pause(&mut self, id: WatcherId) {
        let Some(w) = self.watchers.get_mut(&id) else {
            return;
        };
        let State::Active { server_id } = w.state() else {
            return;
        };
        if self.by_server.get(&server_id) == Some(&id) {
            self.by_server.remove(&server_id);
        }
        w.set_state(State::Paused);
        let queue = w.queue;
        self.fragments.remove(&id);
        self.ops.push_back(Op::CancelServer(server_id));
        if let Some(q) = self.queues.get_mut(&queue) {
            q.paused.push_back(id);
        }
    }

    /// Cancel a watcher. No event is delivered for it any more except a
    /// final [`WatchEvent::Cancelled`] with an empty reason, once the server
    /// confirmed (or at once when the server never knew it). Unknown ids are
    /// ignored.
    pub fn cancel(&mut self, id: WatcherId) {
        let Some(w) = self.watchers.get_mut(&id) else {
            return;
        };
        match w.state() {
            State::Pending { .. } | State::Paused => self.finish(
                id,
                WatchEvent::Cancelled {
                    reason: String::new(),
                },
            ),
            State::Creating { .. } => w.set_state(State::Creating { cancel: true }),
            State::Active { server_id } => {
                w.set_state(State::Cancelling { server_id });
                self.fragments.remove(&id);
                self.ops.push_back(Op::Cancel(id));
            }
            State::Cancelling { .. } => {}
        }
    }

    /// Ask the server for a progress notification (answered to every
    /// watcher as [`WatchEvent::Progress`]).
    pub fn request_progress(&mut self) {
        if !self.ops.contains(&Op::Progress) {
            self.ops.push_back(Op::Progress);
        }
    }

    /// Number of watchers the hub still tracks (including those being
    /// cancelled).
    pub fn len(&self) -> usize {
        self.watchers.len()
    }

    /// Whether the hub tracks no watcher: the stream may be closed.
    pub fn is_empty(&self) -> bool {
        self.watchers.is_empty()
    }

    /// Whether `id` is still tracked.
    pub fn contains(&self, id: WatcherId) -> bool {
        self.watchers.contains_key(&id)
    }

    /// The last revision delivered to `id` (0 if none), the resume point.
    pub fn last_delivered(&self, id: WatcherId) -> Option<i64> {
        self.watchers.get(&id).map(|w| w.delivered)
    }

    /// Whether the server cancelled watchers because its member lost the
    /// leader: the driver should drop the stream, call
    /// [`handle_stream_lost`](Self::handle_stream_lost) and open a new stream,
    /// preferably on another member.
    pub fn needs_new_stream(&self) -> bool {
        self.new_stream
    }

    /// Whether a watcher was refused for authentication for the first time
    /// since it was last created (see the [module docs](self)): the driver
    /// should get a fresh token and then drop the stream, call
    /// [`handle_stream_lost`](Self::handle_stream_lost) and open a new one —
    /// or, without credentials, call
    /// [`handle_auth_final`](Self::handle_auth_final).
    pub fn needs_auth_refresh(&self) -> bool {
        self.auth_refresh
    }

    /// No fresh token will come: every watcher waiting for one ends with
    /// [`WatchEvent::Cancelled`] and the server's reason.
    pub fn handle_auth_final(&mut self) {
        self.auth_refresh = false;
        let refused: Vec<(WatcherId, String)> = self
            .ids()
            .into_iter()
            .filter_map(|id| {
                let reason = self.auth_refused.get(&id)?.clone();
                Some((id, reason))
            })
            .collect();
        for (id, reason) in refused {
            self.finish(id, WatchEvent::Cancelled { reason });
        }
    }

    /// Put a watcher refused for authentication back to "needs a create on
    /// a new stream", once.
    fn park_for_auth(&mut self, id: WatcherId, reason: String) {
        let Some(w) = self.watchers.get_mut(&id) else {
            return;
        };
        if let State::Active { server_id } = w.state() {
            if self.by_server.get(&server_id) == Some(&id) {
                self.by_server.remove(&server_id);
            }
        }
        self.fragments.remove(&id);
        w.set_state(State::Pending { queued: false });
        w.auth_retried = true;
        self.auth_refused.insert(id, reason);
        self.auth_refresh = true;
    }

    /// The next request to send on the current stream.
    ///
    /// At most [`MAX_CREATES_IN_FLIGHT`] create requests are unanswered at a
    /// time: the next create (and what was queued after it) waits for an
    /// answer, so that adding 10,000 watchers at once does not buffer
    /// 10,000 requests in the transport (whose buffers then stay allocated).
    pub fn poll_transmit(&mut self) -> Option<WatchRequest> {
        while let Some(&op) = self.ops.front() {
            if let Op::Create(id) = op {
                let sendable = self
                    .watchers
                    .get(&id)
                    .is_some_and(|w| w.state() == (State::Pending { queued: true }));
                if sendable && self.creating.len() >= MAX_CREATES_IN_FLIGHT {
                    return None;
                }
            }
            self.ops.pop_front();
            let union = match op {
                Op::Progress => {
                    watch_request::RequestUnion::ProgressRequest(WatchProgressRequest {})
                }
                Op::Create(id) => {
                    let Some(w) = self.watchers.get_mut(&id) else {
                        continue;
                    };
                    if w.state() != (State::Pending { queued: true }) {
                        continue;
                    }
                    w.set_state(State::Creating { cancel: false });
                    self.fragments.remove(&id);
                    let filters = self.filters.get(&id).map_or_else(Vec::new, |f| f.to_vec());
                    let server_id = self.aliases.get(&id).copied().unwrap_or(id.0);
                    let req = w.create_request(server_id, filters);
                    self.creating.push_back(id);
                    watch_request::RequestUnion::CreateRequest(req)
                }
                Op::Cancel(id) => {
                    let Some(w) = self.watchers.get(&id) else {
                        continue;
                    };
                    let State::Cancelling { server_id } = w.state() else {
                        continue;
                    };
                    watch_request::RequestUnion::CancelRequest(WatchCancelRequest {
                        watch_id: server_id,
                    })
                }
                Op::CancelServer(server_id) => {
                    watch_request::RequestUnion::CancelRequest(WatchCancelRequest {
                        watch_id: server_id,
                    })
                }
            };
            return Some(WatchRequest {
                request_union: Some(union),
            });
        }
        release_if_large(&mut self.ops);
        None
    }

    /// The next event for a watcher.
    pub fn poll_event(&mut self) -> Option<(WatcherId, WatchEvent)> {
        self.poll_delivery().map(|(id, _, event)| (id, event))
    }

    /// [`poll_event`](Self::poll_event) with the queue the watcher is
    /// charged to ([`add_to_queue`](Self::add_to_queue)): a driver that
    /// names a consumer by its queue (a group of watchers consumed in one
    /// place) finds where the item goes without a table of its own per
    /// watcher.
    ///
    /// ```
    /// use etcdv3_core::streams::watch::{QueueId, WatchEvent, WatchHub, WatcherId};
    /// use etcdv3_proto::etcdserverpb::{WatchCreateRequest, WatchResponse};
    ///
    /// let mut hub = WatchHub::new();
    /// let (id, group) = (WatcherId::new(1).unwrap(), QueueId::new(-1));
    /// hub.add_to_queue(id, WatchCreateRequest { key: b"k".to_vec(), ..Default::default() }, group);
    /// hub.poll_transmit();
    /// hub.handle_response(WatchResponse { watch_id: 1, created: true, ..Default::default() });
    /// assert_eq!(hub.poll_delivery(), Some((id, group, WatchEvent::Created { revision: 0 })));
    /// ```
    pub fn poll_delivery(&mut self) -> Option<(WatcherId, QueueId, WatchEvent)> {
        let event = self.events.pop_front();
        if event.is_none() {
            release_if_large(&mut self.events);
        }
        event
    }

    /// How many items [`poll_delivery`](Self::poll_delivery) has waiting
    /// (a driver may size its buffers for them at once).
    pub fn queued(&self) -> usize {
        self.events.len()
    }

    /// The queue watcher `id` is charged to, while the hub tracks it.
    pub fn queue_of(&self, id: WatcherId) -> Option<QueueId> {
        self.watchers.get(&id).map(|w| w.queue)
    }

    /// The watchers charged to `queue` that the hub still tracks, in id
    /// order (e.g. to cancel a whole group).
    ///
    /// ```
    /// use etcdv3_core::streams::watch::{QueueId, WatchHub, WatcherId};
    /// use etcdv3_proto::etcdserverpb::WatchCreateRequest;
    ///
    /// let mut hub = WatchHub::new();
    /// let group = QueueId::new(-1);
    /// for n in [3, 1] {
    ///     let req = WatchCreateRequest { key: b"k".to_vec(), ..Default::default() };
    ///     hub.add_to_queue(WatcherId::new(n).unwrap(), req, group);
    /// }
    /// let ids: Vec<i64> = hub.ids_in_queue(group).into_iter().map(WatcherId::get).collect();
    /// assert_eq!(ids, [1, 3]);
    /// ```
    pub fn ids_in_queue(&self, queue: QueueId) -> Vec<WatcherId> {
        let mut ids: Vec<WatcherId> = self
            .watchers
            .iter()
            .filter(|(_, w)| w.queue == queue)
            .map(|(id, _)| id)
            .collect();
        ids.sort_unstable();
        ids
    }

    fn finish(&mut self, id: WatcherId, event: WatchEvent) {
        if let Some(w) = self.watchers.remove(&id) {
            if let State::Active { server_id } | State::Cancelling { server_id } = w.state() {
                if self.by_server.get(&server_id) == Some(&id) {
                    self.by_server.remove(&server_id);
                }
            }
            self.creating.retain(|c| *c != id);
            self.fragments.remove(&id);
            self.filters.remove(&id);
            self.auth_refused.remove(&id);
            self.aliases.remove(&id);
            self.push_event(id, w.queue, event);
            if let Some(q) = self.queues.get_mut(&w.queue) {
                q.watchers = q.watchers.saturating_sub(1);
                if q.watchers == 0 {
                    self.queues.remove(&w.queue);
                }
            }
        }
    }

    /// Put a watcher back to "needs a create on a new stream" after the
    /// server dropped it because of leader loss.
    fn park(&mut self, id: WatcherId) {
        if let Some(w) = self.watchers.get_mut(&id) {
            if let State::Active { server_id } | State::Cancelling { server_id } = w.state() {
                if self.by_server.get(&server_id) == Some(&id) {
                    self.by_server.remove(&server_id);
                }
            }
            self.fragments.remove(&id);
            match w.state() {
                State::Cancelling { .. } | State::Creating { cancel: true } => {
                    self.finish(
                        id,
                        WatchEvent::Cancelled {
                            reason: String::new(),
                        },
                    );
                }
                _ => {
                    w.set_state(State::Pending { queued: false });
                    self.new_stream = true;
                }
            }
        }
    }

    /// Read the records of the watchers that `responses` (received
    /// together, about to be fed to [`handle_response`](Self::handle_response)
    /// in order) go to, all in one pass: the loads do not depend on each
    /// other, so their cache misses overlap, where feeding the responses
    /// one by one waits for one record at a time between two decodes. At
    /// 10,000 watchers the record is cold when its event comes (the
    /// profile in docs/benchmarks.md, "Grouped watch"). A hint: the hub's
    /// state does not change, and skipping it changes nothing but time.
    pub fn prefetch(&self, responses: &[WatchResponse]) {
        let mut seen = 0u8;
        for resp in responses {
            if resp.created || resp.events.is_empty() {
                continue;
            }
            let (_, id) = self.route(resp.watch_id);
            if let Some(w) = self.watchers.get(&id) {
                seen ^= w.phase as u8;
            }
        }
        std::hint::black_box(seen);
    }

    /// The watcher a server watch id names: its explicit route (`Some`),
    /// or else the watcher whose own id it is.
    fn route(&self, watch_id: i64) -> (Option<WatcherId>, WatcherId) {
        let routed = if self.by_server.is_empty() {
            None
        } else {
            self.by_server.get(&watch_id).copied()
        };
        (routed, routed.unwrap_or(WatcherId(watch_id)))
    }

    /// Every watcher's id, in order.
    fn ids(&self) -> Vec<WatcherId> {
        let mut ids: Vec<WatcherId> = self.watchers.iter().map(|(id, _)| id).collect();
        ids.sort_unstable();
        ids
    }

    /// Feed one response from the stream.
    ///
    /// Responses that match no watcher (late events of a cancelled watcher,
    /// an unexpected `created`) are ignored.
    pub fn handle_response(&mut self, resp: WatchResponse) {
        let rev = header_revision(&resp);
        if resp.created {
            self.handle_created(resp, rev);
            return;
        }
        if resp.watch_id == -1 && resp.events.is_empty() && !resp.canceled {
            // Broadcast progress answer (not to paused watchers: they have
            // not seen everything up to it).
            for id in self.ids() {
                if let Some(w) = self
                    .watchers
                    .get(&id)
                    .filter(|w| matches!(w.state(), State::Active { .. }))
                {
                    let queue = w.queue;
                    self.push_event(id, queue, WatchEvent::Progress { revision: rev });
                }
            }
            return;
        }
        // The watcher created on the current stream under this server
        // watch id: an explicit route, or else the watcher whose own id it
        // is (etcd 3.4+ keeps the id the hub sends), if it was created
        // under it. One probe of the watcher table for the usual response:
        // the record found here is used to the end.
        let (routed, id) = self.route(resp.watch_id);
        let Some(w) = self.watchers.get_mut(&id) else {
            return;
        };
        if routed.is_none()
            && !matches!(w.state(), State::Active { server_id: s } | State::Cancelling { server_id: s }
                if s == resp.watch_id)
        {
            return;
        }
        if resp.canceled || resp.compact_revision > 0 {
            self.handle_cancel(id, resp);
            return;
        }
        if !matches!(w.state(), State::Active { .. }) {
            // Being cancelled: nothing more is delivered.
            return;
        }
        let queue = w.queue;
        if queue_full(&self.queues, self.buffer_limit, queue) {
            // The consumer is behind: this response and what follows are
            // dropped; the watcher resumes after the last revision queued.
            self.pause(id);
            return;
        }
        let pending = if self.fragments.is_empty() {
            None
        } else {
            self.fragments
                .get(&id)
                .filter(|f| !f.events.is_empty())
                .map(|f| f.bytes)
        };
        if !resp.fragment && pending.is_none() && !resp.events.is_empty() {
            // The common case: the response's own events, not copied.
            if let Some(events) = advance_past(w, resp.events) {
                self.push_event(
                    id,
                    queue,
                    WatchEvent::Events {
                        events,
                        revision: rev,
                    },
                );
            }
            return;
        }
        let events = if resp.fragment || pending.is_some() {
            // Fix (issue 10, bug 12): reassembly is bounded; a watcher whose
            // fragments outgrow the limit ends instead of growing without
            // bound. (A whole response was already bounded by the decoder.)
            let size: usize = resp
                .events
                .iter()
                .map(Message::encoded_len)
                .fold(pending.unwrap_or(0), usize::saturating_add);
            if size > self.max_fragment_bytes {
                let reason = format!(
                    "{FRAGMENTS_TOO_LARGE}: fragments of {size} bytes exceed the limit of {} bytes",
                    self.max_fragment_bytes
                );
                self.drop_too_large(id, reason);
                return;
            }
            if resp.fragment {
                let f = self.fragments.entry(id).or_default();
                f.events.extend(resp.events);
                f.bytes = size;
                return;
            }
            let mut events = self
                .fragments
                .remove(&id)
                .map(|f| f.events)
                .unwrap_or_default();
            events.extend(resp.events);
            events
        } else {
            // The common case: the response's own events, not copied.
            resp.events
        };
        let Some(w) = self.watchers.get_mut(&id) else {
            return;
        };
        if events.is_empty() {
            // Progress notification addressed to this watcher.
            if rev > w.delivered {
                w.delivered = rev;
            }
            self.push_event(id, queue, WatchEvent::Progress { revision: rev });
            return;
        }
        let Some(events) = advance_past(w, events) else {
            return;
        };
        self.push_event(
            id,
            queue,
            WatchEvent::Events {
                events,
                revision: rev,
            },
        );
    }

    /// End watcher `id` (active on the server) whose fragmented response
    /// grew too large, and ask the server to cancel it.
    fn drop_too_large(&mut self, id: WatcherId, reason: String) {
        if let Some(State::Active { server_id }) = self.watchers.get(&id).map(|w| w.state()) {
            self.ops.push_back(Op::CancelServer(server_id));
        }
        self.finish(id, WatchEvent::Cancelled { reason });
    }

    fn handle_created(&mut self, resp: WatchResponse, rev: i64) {
        let Some(id) = self.creating.pop_front() else {
            return;
        };
        if self.creating.is_empty() {
            release_if_large(&mut self.creating);
        }
        let Some(w) = self.watchers.get_mut(&id) else {
            return;
        };
        let cancel_requested = matches!(w.state(), State::Creating { cancel: true });
        if resp.canceled || resp.compact_revision > 0 {
            if cancel_requested {
                // The user's cancel is what the watcher ends with.
                self.finish(
                    id,
                    WatchEvent::Cancelled {
                        reason: String::new(),
                    },
                );
                return;
            }
            // Creation refused (or immediately compacted).
            w.set_state(State::Active {
                server_id: resp.watch_id,
            });
            self.handle_cancel(id, resp);
            return;
        }
        add_route(&mut self.by_server, resp.watch_id, id);
        if cancel_requested {
            w.set_state(State::Cancelling {
                server_id: resp.watch_id,
            });
            self.ops.push_back(Op::Cancel(id));
            return;
        }
        w.set_state(State::Active {
            server_id: resp.watch_id,
        });
        w.auth_retried = false;
        if w.from_now && w.start == NOT_CREATED && w.delivered == 0 {
            w.start = rev;
        }
        if !w.announced {
            w.announced = true;
            let queue = w.queue;
            self.push_event(id, queue, WatchEvent::Created { revision: rev });
        }
    }

    fn handle_cancel(&mut self, id: WatcherId, resp: WatchResponse) {
        let Some(w) = self.watchers.get(&id) else {
            return;
        };
        let user_cancel = matches!(
            w.state(),
            State::Cancelling { .. } | State::Creating { cancel: true }
        );
        if resp.compact_revision > 0 && !user_cancel {
            self.finish(
                id,
                WatchEvent::Compacted {
                    compact_revision: resp.compact_revision,
                },
            );
        } else if user_cancel {
            self.finish(
                id,
                WatchEvent::Cancelled {
                    reason: String::new(),
                },
            );
        } else if is_leader_loss(&resp.cancel_reason) {
            self.park(id);
        } else if !w.auth_retried && is_auth_refusal(&resp.cancel_reason) {
            self.park_for_auth(id, resp.cancel_reason);
        } else {
            self.finish(
                id,
                WatchEvent::Cancelled {
                    reason: resp.cancel_reason,
                },
            );
        }
    }

    /// The stream failed or was closed: every live watcher is created again
    /// on the next stream from its resume point (see the [module
    /// docs](self)); watchers being cancelled end. Call before sending on the
    /// new stream.
    pub fn handle_stream_lost(&mut self) {
        self.by_server.clear();
        self.fragments.clear();
        self.auth_refused.clear();
        self.aliases.clear();
        self.creating.clear();
        self.new_stream = false;
        self.auth_refresh = false;
        let progress = self.ops.contains(&Op::Progress);
        self.ops.clear();
        for id in self.ids() {
            let Some(w) = self.watchers.get_mut(&id) else {
                continue;
            };
            match w.state() {
                State::Cancelling { .. } | State::Creating { cancel: true } => {
                    self.finish(
                        id,
                        WatchEvent::Cancelled {
                            reason: String::new(),
                        },
                    );
                }
                // Waits for its consumer, not for a stream.
                State::Paused => {}
                _ => {
                    w.set_state(State::Pending { queued: true });
                    self.ops.push_back(Op::Create(id));
                }
            }
        }
        if progress {
            self.ops.push_back(Op::Progress);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_spans_round_trip() {
        let long = vec![b'k'; 40];
        let cases: [(&[u8], &[u8]); 6] = [
            (b"k", b""),
            (b"ws/k/00042", b""),
            (b"app/", b"app0"),
            (b"\0", b"\0"),
            (&long, b""),
            (b"0123456789", b"01234567890"),
        ];
        for (key, end) in cases {
            let s = KeySpan::new(key, end);
            assert_eq!((s.key(), s.range_end()), (key, end));
        }
        assert!(matches!(
            KeySpan::new(b"ws/k/00042", b""),
            KeySpan::Inline { .. }
        ));
        assert!(matches!(KeySpan::new(&long, b""), KeySpan::Heap { .. }));
    }

    /// The record is what 10,000 watchers cost (docs/benchmarks.md,
    /// "Grouped watch"): it must not grow by accident, and a slab slot
    /// (`Option`) costs no more than the record.
    #[test]
    fn watcher_record_stays_compact() {
        assert_eq!(std::mem::size_of::<KeySpan>(), 24);
        assert!(
            std::mem::size_of::<Watcher>() <= 64,
            "{}",
            std::mem::size_of::<Watcher>()
        );
        assert_eq!(
            std::mem::size_of::<Option<Watcher>>(),
            std::mem::size_of::<Watcher>()
        );
    }

    fn record(n: u8) -> Watcher {
        let req = WatchCreateRequest {
            key: vec![n],
            ..Default::default()
        };
        Watcher::new(req, QueueId::new(0))
    }

    /// Checks `table` against `model` (id -> key byte): every tracked id
    /// found, untracked ids around them not, `len` and `iter` agree, and
    /// the window holds no more than its bound of empty slots.
    fn check(table: &WatcherTable, model: &std::collections::BTreeMap<i64, u8>) {
        assert_eq!(table.len(), model.len());
        for (&id, &key) in model {
            let w = table.get(&WatcherId(id)).expect("tracked id found");
            assert_eq!(w.span.key(), [key]);
        }
        for probe in [1, 2, 63, 64, 65, 1000, i64::MAX - 1, i64::MAX] {
            assert_eq!(
                table.get(&WatcherId(probe)).is_some(),
                model.contains_key(&probe),
                "{probe}"
            );
        }
        let mut seen: Vec<i64> = table.iter().map(|(id, _)| id.0).collect();
        seen.sort_unstable();
        assert_eq!(seen, model.keys().copied().collect::<Vec<_>>());
        assert!(table.slots.len() <= WatcherTable::max_window(table.in_slots) + 1);
        assert!(table.slots.front().is_none_or(Option::is_some));
        assert!(table.slots.back().is_none_or(Option::is_some));
    }

    /// The slab keeps every record whatever the ids: dense and increasing
    /// (the usual case), out of order, far apart (ids from outside, up to
    /// `i64::MAX`), a long-lived watcher ahead of thousands of short-lived
    /// ones; unknown ids are not found (no panic), and memory stays
    /// proportional to the records.
    #[test]
    fn watcher_table_keeps_every_record() {
        let mut table = WatcherTable::default();
        let mut model = std::collections::BTreeMap::new();
        let add =
            |table: &mut WatcherTable, model: &mut std::collections::BTreeMap<i64, u8>, id: i64| {
                let key = (id % 251) as u8;
                assert!(!table.contains_key(&WatcherId(id)));
                table.insert(WatcherId(id), record(key));
                model.insert(id, key);
            };
        for id in 1..=300 {
            add(&mut table, &mut model, id);
        }
        assert!(table.spill.is_empty(), "dense ids stay in the slab");
        check(&table, &model);
        // Out of order just before the window, and far away.
        for id in (200..=300).step_by(7) {
            assert_eq!(
                table.remove(&WatcherId(id)).map(|w| w.span.key()[0]),
                model.remove(&id)
            );
        }
        for id in 1..=150 {
            assert!(table.remove(&WatcherId(id)).is_some());
            model.remove(&id);
        }
        check(&table, &model);
        for id in [140, 100, i64::MAX, 1 << 40, 2, 1] {
            add(&mut table, &mut model, id);
            check(&table, &model);
        }
        assert!(table.remove(&WatcherId(99)).is_none());
        assert!(table.remove(&WatcherId(i64::MAX - 1)).is_none());
        // A long-lived watcher, then many short-lived ones after it.
        for id in 301..20_000 {
            add(&mut table, &mut model, id);
            if id > 310 {
                assert!(table.remove(&WatcherId(id - 10)).is_some());
                model.remove(&(id - 10));
            }
        }
        check(&table, &model);
        assert!(table.slots.capacity() < 4096, "{}", table.slots.capacity());
        for id in model.keys().copied().collect::<Vec<_>>() {
            assert!(table.remove(&WatcherId(id)).is_some());
        }
        model.clear();
        check(&table, &model);
        assert!(table.is_empty());
    }
}
