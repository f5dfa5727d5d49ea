//! WatchHub: unit tests of each rule, and a property test against a
//! simulated server with a revision log, stream losses, fragmentation,
//! duplicate delivery after resume, leader-loss cancels and compaction.

use std::collections::{BTreeMap, VecDeque};

use etcdv3_core::streams::watch::{delivery_cost, QueueId, WatchEvent, WatchHub, WatcherId};
use etcdv3_proto::etcdserverpb::{
    watch_request::RequestUnion, ResponseHeader, WatchCreateRequest, WatchResponse,
};
use etcdv3_proto::mvccpb::{Event, KeyValue};
use proptest::prelude::*;

fn ev(key: &str, rev: i64) -> Event {
    Event {
        r#type: 0,
        kv: Some(KeyValue {
            key: key.as_bytes().to_vec(),
            mod_revision: rev,
            create_revision: rev,
            version: 1,
            value: b"v".to_vec(),
            lease: 0,
        }),
        prev_kv: None,
    }
}

fn header(rev: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        revision: rev,
        ..Default::default()
    })
}

fn created(id: i64, rev: i64) -> WatchResponse {
    WatchResponse {
        header: header(rev),
        watch_id: id,
        created: true,
        ..Default::default()
    }
}

fn events(id: i64, rev: i64, evs: Vec<Event>) -> WatchResponse {
    WatchResponse {
        header: header(rev),
        watch_id: id,
        events: evs,
        ..Default::default()
    }
}

fn create_of(req: Option<etcdv3_proto::etcdserverpb::WatchRequest>) -> WatchCreateRequest {
    match req.and_then(|r| r.request_union) {
        Some(RequestUnion::CreateRequest(c)) => c,
        other => panic!("expected a create, got {other:?}"),
    }
}

fn drain(hub: &mut WatchHub) -> Vec<(WatcherId, WatchEvent)> {
    std::iter::from_fn(|| hub.poll_event()).collect()
}

fn watch_key(hub: &mut WatchHub, key: &str, start: i64) -> WatcherId {
    hub.add(WatchCreateRequest {
        key: key.as_bytes().to_vec(),
        start_revision: start,
        ..Default::default()
    })
}

#[test]
fn ids_start_at_one_and_are_sent_as_watch_id() {
    let mut hub = WatchHub::new();
    let a = watch_key(&mut hub, "a", 0);
    let b = watch_key(&mut hub, "b", 0);
    assert_eq!(a.get(), 1);
    assert_eq!(b.get(), 2);
    assert_eq!(create_of(hub.poll_transmit()).watch_id, 1);
    let c = create_of(hub.poll_transmit());
    assert_eq!((c.watch_id, c.key.as_slice()), (2, &b"b"[..]));
    assert!(hub.poll_transmit().is_none());
}

#[test]
fn created_then_events_then_resume_from_last_plus_one() {
    let mut hub = WatchHub::new();
    let a = watch_key(&mut hub, "a", 0);
    assert_eq!(create_of(hub.poll_transmit()).start_revision, 0);
    hub.handle_response(created(a.get(), 10));
    hub.handle_response(events(a.get(), 12, vec![ev("a", 11), ev("a", 12)]));
    let got = drain(&mut hub);
    assert_eq!(got[0], (a, WatchEvent::Created { revision: 10 }));
    match &got[1].1 {
        WatchEvent::Events { events, revision } => {
            assert_eq!(events.len(), 2);
            assert_eq!(*revision, 12);
        }
        e => panic!("{e:?}"),
    }
    assert_eq!(hub.last_delivered(a), Some(12));
    hub.handle_stream_lost();
    let re = create_of(hub.poll_transmit());
    assert_eq!(re.start_revision, 13);
    assert_eq!(re.watch_id, a.get());
    // Created is not announced twice; replayed events are dropped.
    hub.handle_response(created(a.get(), 15));
    hub.handle_response(events(a.get(), 15, vec![ev("a", 12), ev("a", 14)]));
    let got = drain(&mut hub);
    assert_eq!(got.len(), 1);
    match &got[0].1 {
        WatchEvent::Events { events, .. } => {
            assert_eq!(events.len(), 1);
            assert_eq!(events[0].kv.as_ref().unwrap().mod_revision, 14);
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn watch_from_now_resumes_after_creation_revision() {
    let mut hub = WatchHub::new();
    let a = watch_key(&mut hub, "a", 0);
    hub.poll_transmit();
    hub.handle_response(created(a.get(), 41));
    hub.handle_stream_lost();
    assert_eq!(create_of(hub.poll_transmit()).start_revision, 42);
}

#[test]
fn explicit_start_revision_is_kept_until_something_is_delivered() {
    let mut hub = WatchHub::new();
    let a = watch_key(&mut hub, "a", 5);
    assert_eq!(create_of(hub.poll_transmit()).start_revision, 5);
    hub.handle_response(created(a.get(), 41));
    hub.handle_stream_lost();
    assert_eq!(create_of(hub.poll_transmit()).start_revision, 5);
    // A progress notification below a future start revision does not
    // move the resume point below it.
    let mut hub = WatchHub::new();
    let b = watch_key(&mut hub, "b", 100);
    hub.poll_transmit();
    hub.handle_response(created(b.get(), 41));
    hub.handle_response(events(b.get(), 50, vec![]));
    assert!(matches!(
        drain(&mut hub).last(),
        Some((_, WatchEvent::Progress { revision: 50 }))
    ));
    hub.handle_stream_lost();
    assert_eq!(create_of(hub.poll_transmit()).start_revision, 100);
}

#[test]
fn own_progress_moves_resume_point_broadcast_does_not() {
    let mut hub = WatchHub::new();
    let a = watch_key(&mut hub, "a", 0);
    hub.poll_transmit();
    hub.handle_response(created(a.get(), 3));
    hub.request_progress();
    assert!(matches!(
        hub.poll_transmit().and_then(|r| r.request_union),
        Some(RequestUnion::ProgressRequest(_))
    ));
    hub.handle_response(events(-1, 9, vec![]));
    assert_eq!(
        drain(&mut hub).last(),
        Some(&(a, WatchEvent::Progress { revision: 9 }))
    );
    assert_eq!(hub.last_delivered(a), Some(0));
    hub.handle_response(events(a.get(), 7, vec![]));
    assert_eq!(hub.last_delivered(a), Some(7));
    hub.handle_stream_lost();
    assert_eq!(create_of(hub.poll_transmit()).start_revision, 8);
}

#[test]
fn fragments_are_reassembled() {
    let mut hub = WatchHub::new();
    let a = watch_key(&mut hub, "a", 0);
    hub.poll_transmit();
    hub.handle_response(created(a.get(), 1));
    drain(&mut hub);
    let mut f1 = events(a.get(), 4, vec![ev("a", 2), ev("a", 3)]);
    f1.fragment = true;
    hub.handle_response(f1);
    assert!(
        hub.poll_event().is_none(),
        "nothing before the last fragment"
    );
    hub.handle_response(events(a.get(), 4, vec![ev("a", 4)]));
    match hub.poll_event() {
        Some((id, WatchEvent::Events { events, .. })) => {
            assert_eq!(id, a);
            let revs: Vec<i64> = events
                .iter()
                .map(|e| e.kv.as_ref().unwrap().mod_revision)
                .collect();
            assert_eq!(revs, vec![2, 3, 4]);
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn partial_fragments_are_discarded_on_stream_loss() {
    let mut hub = WatchHub::new();
    let a = watch_key(&mut hub, "a", 0);
    hub.poll_transmit();
    hub.handle_response(created(a.get(), 1));
    drain(&mut hub);
    let mut f1 = events(a.get(), 4, vec![ev("a", 2)]);
    f1.fragment = true;
    hub.handle_response(f1);
    hub.handle_stream_lost();
    assert_eq!(create_of(hub.poll_transmit()).start_revision, 2);
    hub.handle_response(created(a.get(), 4));
    hub.handle_response(events(a.get(), 4, vec![ev("a", 2), ev("a", 3)]));
    match hub.poll_event() {
        Some((_, WatchEvent::Events { events, .. })) => assert_eq!(events.len(), 2),
        e => panic!("{e:?}"),
    }
}

#[test]
fn compaction_ends_the_watcher() {
    let mut hub = WatchHub::new();
    let a = watch_key(&mut hub, "a", 2);
    hub.poll_transmit();
    hub.handle_response(created(a.get(), 10));
    hub.handle_response(WatchResponse {
        header: header(10),
        watch_id: a.get(),
        canceled: true,
        compact_revision: 6,
        ..Default::default()
    });
    let got = drain(&mut hub);
    assert_eq!(
        got.last(),
        Some(&(
            a,
            WatchEvent::Compacted {
                compact_revision: 6
            }
        ))
    );
    assert!(!hub.contains(a));
    assert!(hub.is_empty());
    hub.handle_stream_lost();
    assert!(hub.poll_transmit().is_none());
}

#[test]
fn server_cancel_ends_the_watcher_with_reason() {
    let mut hub = WatchHub::new();
    let a = watch_key(&mut hub, "a", 0);
    hub.poll_transmit();
    hub.handle_response(WatchResponse {
        header: header(3),
        watch_id: -1,
        created: true,
        canceled: true,
        cancel_reason: "etcdserver: permission denied".into(),
        ..Default::default()
    });
    // A refusal a fresh token may cure waits for the driver's verdict
    // (tests/stream.rs covers the retry); without credentials it is final.
    assert!(hub.needs_auth_refresh());
    hub.handle_auth_final();
    assert_eq!(
        drain(&mut hub),
        vec![(
            a,
            WatchEvent::Cancelled {
                reason: "etcdserver: permission denied".into()
            }
        )]
    );
    assert!(hub.is_empty());
}

#[test]
fn leader_loss_cancel_parks_the_watcher_and_asks_for_a_new_stream() {
    let mut hub = WatchHub::new();
    let a = watch_key(&mut hub, "a", 0);
    let b = watch_key(&mut hub, "b", 0);
    hub.poll_transmit();
    hub.poll_transmit();
    hub.handle_response(created(a.get(), 5));
    hub.handle_response(created(b.get(), 5));
    hub.handle_response(events(a.get(), 6, vec![ev("a", 6)]));
    drain(&mut hub);
    assert!(!hub.needs_new_stream());
    hub.handle_response(WatchResponse {
        header: header(6),
        watch_id: a.get(),
        canceled: true,
        cancel_reason: "etcdserver: no leader".into(),
        ..Default::default()
    });
    assert!(hub.needs_new_stream());
    assert!(hub.poll_event().is_none(), "the watcher does not end");
    assert!(hub.contains(a));
    assert!(
        hub.poll_transmit().is_none(),
        "not re-created on the same stream"
    );
    hub.handle_stream_lost();
    assert!(!hub.needs_new_stream());
    let r1 = create_of(hub.poll_transmit());
    let r2 = create_of(hub.poll_transmit());
    assert_eq!((r1.watch_id, r1.start_revision), (a.get(), 7));
    assert_eq!((r2.watch_id, r2.start_revision), (b.get(), 6));
}

#[test]
fn cancel_before_send_ends_at_once_and_sends_nothing() {
    let mut hub = WatchHub::new();
    let a = watch_key(&mut hub, "a", 0);
    hub.cancel(a);
    assert_eq!(
        drain(&mut hub),
        vec![(
            a,
            WatchEvent::Cancelled {
                reason: String::new()
            }
        )]
    );
    assert!(hub.poll_transmit().is_none());
}

#[test]
fn cancel_while_creating_sends_cancel_after_created() {
    let mut hub = WatchHub::new();
    let a = watch_key(&mut hub, "a", 0);
    hub.poll_transmit();
    hub.cancel(a);
    assert!(hub.poll_transmit().is_none());
    hub.handle_response(created(a.get(), 2));
    assert!(
        hub.poll_event().is_none(),
        "no Created for a cancelled watcher"
    );
    match hub.poll_transmit().and_then(|r| r.request_union) {
        Some(RequestUnion::CancelRequest(c)) => assert_eq!(c.watch_id, a.get()),
        other => panic!("{other:?}"),
    }
    hub.handle_response(events(a.get(), 3, vec![ev("a", 3)]));
    assert!(
        hub.poll_event().is_none(),
        "events after cancel are dropped"
    );
    hub.handle_response(WatchResponse {
        header: header(3),
        watch_id: a.get(),
        canceled: true,
        ..Default::default()
    });
    assert_eq!(
        drain(&mut hub),
        vec![(
            a,
            WatchEvent::Cancelled {
                reason: String::new()
            }
        )]
    );
    assert!(hub.is_empty());
}

#[test]
fn cancelling_watchers_end_on_stream_loss() {
    let mut hub = WatchHub::new();
    let a = watch_key(&mut hub, "a", 0);
    hub.poll_transmit();
    hub.handle_response(created(a.get(), 2));
    drain(&mut hub);
    hub.cancel(a);
    hub.poll_transmit();
    hub.handle_stream_lost();
    assert_eq!(
        drain(&mut hub),
        vec![(
            a,
            WatchEvent::Cancelled {
                reason: String::new()
            }
        )]
    );
    assert!(hub.poll_transmit().is_none());
}

#[test]
fn server_assigned_ids_are_matched_in_order() {
    // etcd before 3.4 ignores the client's watch_id and numbers from 0.
    let mut hub = WatchHub::new();
    let a = watch_key(&mut hub, "a", 0);
    let b = watch_key(&mut hub, "b", 0);
    hub.poll_transmit();
    hub.poll_transmit();
    hub.handle_response(created(0, 1));
    hub.handle_response(created(1, 1));
    hub.handle_response(events(1, 2, vec![ev("b", 2)]));
    hub.handle_response(events(0, 3, vec![ev("a", 3)]));
    let got: Vec<(WatcherId, bool)> = drain(&mut hub)
        .into_iter()
        .map(|(id, e)| (id, matches!(e, WatchEvent::Events { .. })))
        .collect();
    assert_eq!(got, vec![(a, false), (b, false), (b, true), (a, true)]);
}

/// `prefetch` is a hint: a batch prefetched then fed gives exactly what the
/// same batch fed alone gives (routed server ids, a watcher's own id, an
/// unknown id, a creation, a progress broadcast, a cancel).
#[test]
fn prefetch_changes_nothing_but_time() {
    let run = |prefetch: bool| {
        let mut hub = WatchHub::new();
        watch_key(&mut hub, "a", 0);
        watch_key(&mut hub, "b", 0);
        let c = watch_key(&mut hub, "c", 0);
        hub.poll_transmit();
        hub.poll_transmit();
        hub.poll_transmit();
        // Server-assigned ids (etcd before 3.4): a and b are routed.
        let batches = vec![
            vec![created(0, 1), created(1, 1), created(c.get(), 1)],
            vec![
                events(1, 2, vec![ev("b", 2)]),
                events(0, 3, vec![ev("a", 3)]),
                events(99, 4, vec![ev("z", 4)]),
                events(c.get(), 4, vec![ev("c", 4)]),
                WatchResponse {
                    header: header(5),
                    watch_id: -1,
                    ..Default::default()
                },
                WatchResponse {
                    header: header(6),
                    watch_id: 1,
                    canceled: true,
                    cancel_reason: "gone".into(),
                    ..Default::default()
                },
                events(0, 7, vec![ev("a", 7)]),
            ],
        ];
        for batch in batches {
            if prefetch {
                hub.prefetch(&batch);
            }
            for resp in batch {
                hub.handle_response(resp);
            }
        }
        let got: Vec<String> = drain(&mut hub)
            .into_iter()
            .map(|(id, e)| format!("{id:?} {e:?}"))
            .collect();
        assert!(got.len() >= 8, "{got:?}");
        (got, hub.poll_transmit())
    };
    assert_eq!(run(true), run(false));
}

#[test]
fn pending_progress_request_survives_stream_loss() {
    let mut hub = WatchHub::new();
    hub.request_progress();
    hub.request_progress();
    hub.handle_stream_lost();
    assert!(matches!(
        hub.poll_transmit().and_then(|r| r.request_union),
        Some(RequestUnion::ProgressRequest(_))
    ));
    assert!(hub.poll_transmit().is_none(), "requests are coalesced");
}

// ------------------------------------------------ slow consumers (issue 17)

fn cancel_of(req: Option<etcdv3_proto::etcdserverpb::WatchRequest>) -> i64 {
    match req.and_then(|r| r.request_union) {
        Some(RequestUnion::CancelRequest(c)) => c.watch_id,
        other => panic!("expected a cancel, got {other:?}"),
    }
}

/// A consumer that takes nothing while 2,000 revisions are written: what
/// it holds stays within the limit plus one response, the watcher is
/// paused (its server watch cancelled), and once the consumer caught up it
/// is created again from the revision after the last one queued, under a
/// server id not used before on the stream; every revision reaches the
/// consumer exactly once, in order.
#[test]
fn a_slow_consumer_holds_at_most_the_limit_and_loses_nothing() {
    const LIMIT: usize = 16 << 10;
    const LAST: i64 = 2001;
    let mut hub = WatchHub::new();
    hub.set_buffer_limit(Some(LIMIT));
    let a = watch_key(&mut hub, "a", 0);
    let q = QueueId::of(a);
    assert_eq!(create_of(hub.poll_transmit()).watch_id, a.get());
    hub.handle_response(created(a.get(), 1));
    let mut server_id = a.get();
    // What the consumer holds (yielded, not taken) and what it took.
    let mut inbox: VecDeque<WatchEvent> = VecDeque::new();
    let mut got: Vec<i64> = Vec::new();
    let mut next = 2; // next revision the server sends
    let mut pauses = 0;
    let mut most = 0;
    let one_response = delivery_cost(&WatchEvent::Events {
        events: vec![ev("a", 1)],
        revision: 1,
    });
    let mut rounds = 0;
    while got.len() < (LAST - 1) as usize {
        rounds += 1;
        assert!(rounds < 1000, "no progress: got {}", got.len());
        // The server sends everything written (one event per response)
        // while its watch lives; the consumer takes nothing meanwhile.
        while next <= LAST && !hub.is_paused(a) {
            hub.handle_response(events(server_id, next, vec![ev("a", next)]));
            next += 1;
            inbox.extend(drain(&mut hub).into_iter().map(|(_, e)| e));
            let held: usize = inbox.iter().map(delivery_cost).sum();
            assert_eq!(hub.buffered(q), held, "the hub's count is exact");
            most = most.max(held);
        }
        let paused = hub.is_paused(a);
        if paused {
            pauses += 1;
            assert_eq!(cancel_of(hub.poll_transmit()), server_id);
            // Responses still in flight for the cancelled watch are dropped.
            hub.handle_response(events(server_id, next, vec![ev("a", next)]));
            assert!(drain(&mut hub).is_empty());
        }
        // The consumer catches up, a few items at a time.
        let resume_from = got.last().copied().unwrap_or(1)
            + inbox
                .iter()
                .map(|e| match e {
                    WatchEvent::Events { events, .. } => events.len() as i64,
                    _ => 0,
                })
                .sum::<i64>()
            + 1;
        while let Some(e) = inbox.pop_front() {
            hub.handle_consumed(q, delivery_cost(&e));
            if let WatchEvent::Events { events, .. } = e {
                got.extend(events.iter().map(|e| e.kv.as_ref().unwrap().mod_revision));
            }
            if hub.buffered(q) > LIMIT / 2 {
                assert!(hub.poll_transmit().is_none(), "resumed too early");
            }
        }
        if paused {
            assert!(!hub.is_paused(a));
            let re = create_of(hub.poll_transmit());
            assert_eq!(
                re.start_revision, resume_from,
                "resumes after the last queued"
            );
            assert!(re.watch_id != a.get() && re.watch_id != server_id);
            server_id = re.watch_id;
            hub.handle_response(created(server_id, next - 1));
            // The server replays from the resume point.
            next = resume_from;
        }
    }
    assert_eq!(
        got,
        (2..=LAST).collect::<Vec<_>>(),
        "exactly once, in order"
    );
    assert!(
        pauses >= 10,
        "the consumer was behind often: {pauses} pauses"
    );
    assert!(
        most <= LIMIT + one_response,
        "held {most} bytes, limit {LIMIT} + one response {one_response}"
    );
    assert!(most >= LIMIT, "the limit was reached: {most}");
}

/// A watcher paused while its history is compacted ends with `Compacted`
/// when it resumes, after the consumer got everything queued before.
#[test]
fn a_paused_watcher_whose_history_was_compacted_ends_compacted() {
    let mut hub = WatchHub::new();
    hub.set_buffer_limit(Some(1));
    let a = watch_key(&mut hub, "a", 0);
    hub.poll_transmit();
    hub.handle_response(created(a.get(), 1));
    let first = drain(&mut hub);
    assert_eq!(first, vec![(a, WatchEvent::Created { revision: 1 })]);
    // The Created item already fills the queue (limit 1 byte).
    hub.handle_response(events(a.get(), 2, vec![ev("a", 2)]));
    assert!(hub.is_paused(a));
    assert_eq!(cancel_of(hub.poll_transmit()), a.get());
    // A stream loss meanwhile does not re-create it: it waits for its consumer.
    hub.handle_stream_lost();
    assert!(hub.poll_transmit().is_none());
    hub.handle_consumed(QueueId::of(a), delivery_cost(&first[0].1));
    let re = create_of(hub.poll_transmit());
    assert_eq!(re.start_revision, 2);
    hub.handle_response(created(re.watch_id, 9));
    hub.handle_response(WatchResponse {
        header: header(9),
        watch_id: re.watch_id,
        canceled: true,
        compact_revision: 5,
        ..Default::default()
    });
    assert_eq!(
        drain(&mut hub),
        vec![(
            a,
            WatchEvent::Compacted {
                compact_revision: 5
            }
        )]
    );
    assert!(!hub.contains(a));
}

/// Watchers sharing one queue (a group) are bounded together, resume in the
/// order they paused, and a paused watcher cancelled by the user ends at
/// once.
#[test]
fn a_group_queue_bounds_its_watchers_together() {
    let mut hub = WatchHub::new();
    hub.set_buffer_limit(Some(2_000));
    let g = QueueId::new(1_000);
    let ids: Vec<WatcherId> = (1..=3)
        .map(|n| {
            let id = WatcherId::new(n).unwrap();
            let req = WatchCreateRequest {
                key: format!("k{n}").into_bytes(),
                ..Default::default()
            };
            assert!(hub.add_to_queue(id, req, g));
            id
        })
        .collect();
    for id in &ids {
        create_of(hub.poll_transmit());
        hub.handle_response(created(id.get(), 1));
    }
    let mut held: Vec<(WatcherId, WatchEvent)> = drain(&mut hub);
    let mut rev = 1;
    // Each response goes to the next watcher until all three are paused.
    while ids.iter().any(|id| !hub.is_paused(*id)) {
        rev += 1;
        assert!(rev < 100);
        let id = ids[(rev % 3) as usize];
        if hub.is_paused(id) {
            continue;
        }
        hub.handle_response(events(id.get(), rev, vec![ev("k", rev)]));
        held.extend(drain(&mut hub));
    }
    let total: usize = held.iter().map(|(_, e)| delivery_cost(e)).sum();
    assert_eq!(hub.buffered(g), total);
    assert!(total <= 2_000 + 400);
    let order: Vec<i64> = std::iter::from_fn(|| hub.poll_transmit())
        .map(|r| cancel_of(Some(r)))
        .collect();
    assert_eq!(order.len(), 3);
    hub.cancel(WatcherId::new(order[1]).unwrap());
    assert!(matches!(
        drain(&mut hub).as_slice(),
        [(_, WatchEvent::Cancelled { .. })]
    ));
    hub.handle_consumed(g, total);
    let resumed: Vec<String> = std::iter::from_fn(|| hub.poll_transmit())
        .map(|r| String::from_utf8(create_of(Some(r)).key).unwrap())
        .collect();
    assert_eq!(
        resumed,
        vec![format!("k{}", order[0]), format!("k{}", order[2])],
        "first paused, first resumed; the cancelled one stays gone"
    );
}

/// Without a limit (the default) nothing is counted and nothing pauses.
#[test]
fn without_a_limit_nothing_pauses() {
    let mut hub = WatchHub::new();
    assert_eq!(hub.buffer_limit(), None);
    let a = watch_key(&mut hub, "a", 0);
    hub.poll_transmit();
    hub.handle_response(created(a.get(), 1));
    for r in 2..5_000 {
        hub.handle_response(events(a.get(), r, vec![ev("a", r)]));
    }
    assert!(!hub.is_paused(a));
    assert_eq!(hub.buffered(QueueId::of(a)), 0);
    assert_eq!(drain(&mut hub).len(), 4_999);
}

// ---------------------------------------------------------------------
// Simulation
// ---------------------------------------------------------------------

const KEYS: [&str; 3] = ["a", "b", "c"];

/// (key, range_end) of the watcher kinds the simulation uses.
fn range_of(kind: u8) -> (Vec<u8>, Vec<u8>) {
    match kind % 3 {
        0 => (b"a".to_vec(), Vec::new()),
        1 => (b"a".to_vec(), b"c".to_vec()),
        _ => (vec![0], vec![0]),
    }
}

fn matches_range(key: &[u8], start: &[u8], end: &[u8]) -> bool {
    if end.is_empty() {
        key == start
    } else if end == [0] {
        key >= start
    } else {
        key >= start && key < end
    }
}

#[derive(Debug, Clone)]
enum Act {
    Write {
        key: u8,
        second: Option<u8>,
    },
    Add {
        kind: u8,
        back: Option<u8>,
    },
    Cancel(u8),
    Deliver {
        w: u8,
        span: u8,
        fragment: bool,
    },
    Flush(u8),
    Notify(u8),
    RequestProgress,
    Lose,
    LeaderLoss(u8),
    Compact(u8),
    /// The consumers take this many items each (with a buffer limit).
    Consume(u8),
}

fn act() -> impl Strategy<Value = Act> {
    prop_oneof![
        4 => (0u8..3, proptest::option::of(0u8..3)).prop_map(|(key, second)| Act::Write { key, second }),
        2 => (0u8..3, proptest::option::of(0u8..6)).prop_map(|(kind, back)| Act::Add { kind, back }),
        1 => any::<u8>().prop_map(Act::Cancel),
        5 => (any::<u8>(), 1u8..5, any::<bool>()).prop_map(|(w, span, fragment)| Act::Deliver { w, span, fragment }),
        5 => (1u8..5).prop_map(Act::Flush),
        1 => any::<u8>().prop_map(Act::Notify),
        1 => Just(Act::RequestProgress),
        1 => Just(Act::Lose),
        1 => any::<u8>().prop_map(Act::LeaderLoss),
        1 => (0u8..4).prop_map(Act::Compact),
        3 => (0u8..4).prop_map(Act::Consume),
    ]
}

struct ServerWatcher {
    id: i64,
    key: Vec<u8>,
    end: Vec<u8>,
    next: i64,
    /// The revision the client asked for (before any replay).
    requested: i64,
}

struct Stream {
    /// The server numbers watchers itself (etcd < 3.4).
    auto_ids: bool,
    next_auto: i64,
    /// Resumed creates start this many revisions early (a server replaying
    /// history it should not).
    replay: i64,
    watchers: Vec<ServerWatcher>,
    outbox: VecDeque<WatchResponse>,
}

struct Sim {
    /// log[r - 1]: the events of revision r.
    log: Vec<Vec<Event>>,
    compacted: i64,
    stream: Stream,
    streams_made: u64,
    hub: WatchHub,
    /// Client-side record per watcher.
    clients: BTreeMap<WatcherId, Client>,
    /// The hub's buffer limit: consumers then take items only on
    /// `Act::Consume` (slow consumers).
    limit: Option<usize>,
}

#[derive(Default)]
struct Client {
    key: Vec<u8>,
    end: Vec<u8>,
    start: i64,
    created_rev: Option<i64>,
    got: Vec<(i64, Vec<u8>)>,
    created_count: usize,
    terminal: Option<WatchEvent>,
    cancelled_by_user: bool,
    /// Items yielded by the hub and not taken by the consumer yet.
    inbox: VecDeque<WatchEvent>,
}

impl Sim {
    fn new() -> Self {
        Sim::with_limit(None)
    }

    fn with_limit(limit: Option<usize>) -> Self {
        let mut hub = WatchHub::new();
        hub.set_buffer_limit(limit);
        Sim {
            log: Vec::new(),
            compacted: 0,
            stream: Sim::make_stream(0),
            streams_made: 1,
            hub,
            clients: BTreeMap::new(),
            limit,
        }
    }

    fn make_stream(n: u64) -> Stream {
        Stream {
            auto_ids: n % 2 == 1,
            next_auto: 0,
            replay: (n % 3) as i64,
            watchers: Vec::new(),
            outbox: VecDeque::new(),
        }
    }

    fn rev(&self) -> i64 {
        self.log.len() as i64
    }

    fn pump_requests(&mut self) {
        while let Some(req) = self.hub.poll_transmit() {
            let rev = self.rev();
            match req.request_union {
                Some(RequestUnion::CreateRequest(c)) => {
                    let id = if self.stream.auto_ids {
                        self.stream.next_auto += 1;
                        self.stream.next_auto - 1
                    } else {
                        c.watch_id
                    };
                    assert!(
                        self.stream.watchers.iter().all(|w| w.id != id),
                        "duplicate watch id {id}"
                    );
                    self.stream.outbox.push_back(created(id, rev));
                    if c.start_revision > 0 && c.start_revision <= self.compacted {
                        self.stream.outbox.push_back(WatchResponse {
                            header: header(rev),
                            watch_id: id,
                            canceled: true,
                            compact_revision: self.compacted,
                            ..Default::default()
                        });
                        continue;
                    }
                    let next = if c.start_revision > 0 {
                        (c.start_revision - self.stream.replay)
                            .max(self.compacted + 1)
                            .max(1)
                    } else {
                        rev + 1
                    };
                    self.stream.watchers.push(ServerWatcher {
                        id,
                        key: c.key,
                        end: c.range_end,
                        next,
                        requested: if c.start_revision > 0 {
                            c.start_revision
                        } else {
                            rev + 1
                        },
                    });
                }
                Some(RequestUnion::CancelRequest(c)) => {
                    self.stream.watchers.retain(|w| w.id != c.watch_id);
                    self.stream.outbox.push_back(WatchResponse {
                        header: header(rev),
                        watch_id: c.watch_id,
                        canceled: true,
                        ..Default::default()
                    });
                }
                Some(RequestUnion::ProgressRequest(_)) => {
                    self.stream.outbox.push_back(events(-1, rev, vec![]));
                }
                None => panic!("empty request"),
            }
        }
    }

    fn pump_events(&mut self) {
        while let Some((id, e)) = self.hub.poll_event() {
            if self.limit.is_none() {
                self.take(id, e);
                continue;
            }
            let c = self
                .clients
                .get_mut(&id)
                .expect("event for an unknown watcher");
            c.inbox.push_back(e);
        }
        if let Some(limit) = self.limit {
            // What a live watcher's consumer holds is what the hub counts,
            // and at most the limit plus one response.
            for (id, c) in &self.clients {
                if !self.hub.contains(*id) {
                    continue;
                }
                let held: usize = c.inbox.iter().map(delivery_cost).sum();
                assert_eq!(self.hub.buffered(QueueId::of(*id)), held, "{id}");
                // Events are queued only below the limit (Created, an
                // answer to a progress request and the end are small and
                // never held back).
                let events = c
                    .inbox
                    .iter()
                    .filter(|e| matches!(e, WatchEvent::Events { .. }));
                let biggest = events.clone().map(delivery_cost).max().unwrap_or(0);
                let in_events: usize = events.map(delivery_cost).sum();
                assert!(
                    in_events <= limit + biggest,
                    "{id}: holds {in_events} bytes of events, limit {limit}"
                );
            }
        }
    }

    /// The consumer of each watcher takes up to `n` items.
    fn consume(&mut self, n: usize) {
        let ids: Vec<WatcherId> = self.clients.keys().copied().collect();
        for id in ids {
            for _ in 0..n {
                let Some(e) = self.clients.get_mut(&id).and_then(|c| c.inbox.pop_front()) else {
                    break;
                };
                self.hub.handle_consumed(QueueId::of(id), delivery_cost(&e));
                self.take(id, e);
            }
        }
    }

    /// The consumer takes `e`.
    fn take(&mut self, id: WatcherId, e: WatchEvent) {
        {
            let c = self
                .clients
                .get_mut(&id)
                .expect("event for an unknown watcher");
            assert!(c.terminal.is_none(), "event after the end: {e:?}");
            match e {
                WatchEvent::Created { revision } => {
                    assert!(c.got.is_empty());
                    c.created_count += 1;
                    c.created_rev = Some(revision);
                }
                WatchEvent::Events { events, .. } => {
                    assert!(!events.is_empty());
                    assert_eq!(c.created_count, 1);
                    for e in events {
                        let kv = e.kv.unwrap();
                        c.got.push((kv.mod_revision, kv.key));
                    }
                }
                WatchEvent::Progress { .. } => {}
                e @ (WatchEvent::Compacted { .. } | WatchEvent::Cancelled { .. }) => {
                    assert!(!self.hub.contains(id));
                    c.terminal = Some(e);
                }
            }
        }
    }

    fn lose(&mut self) {
        self.streams_made += 1;
        self.stream = Sim::make_stream(self.streams_made);
        self.hub.handle_stream_lost();
    }

    fn pick_server(&self, n: u8) -> Option<usize> {
        if self.stream.watchers.is_empty() {
            None
        } else {
            Some(n as usize % self.stream.watchers.len())
        }
    }

    fn deliver(&mut self, i: usize, span: i64, fragment: bool) {
        let rev = self.rev();
        let compacted = self.compacted;
        let w = &mut self.stream.watchers[i];
        if w.next <= compacted && w.requested > compacted {
            // Only replayed (already delivered) history was compacted.
            w.next = compacted + 1;
        }
        if w.next <= compacted {
            let id = w.id;
            self.stream.watchers.remove(i);
            self.stream.outbox.push_back(WatchResponse {
                header: header(rev),
                watch_id: id,
                canceled: true,
                compact_revision: compacted,
                ..Default::default()
            });
            return;
        }
        let upto = rev.min(w.next + span - 1);
        let mut evs = Vec::new();
        for r in w.next..=upto {
            for e in &self.log[(r - 1) as usize] {
                if matches_range(&e.kv.as_ref().unwrap().key, &w.key, &w.end) {
                    evs.push(e.clone());
                }
            }
        }
        w.next = upto.max(w.next - 1) + 1;
        if evs.is_empty() {
            return;
        }
        let id = w.id;
        if fragment && evs.len() > 1 {
            let n = evs.len();
            for (k, e) in evs.into_iter().enumerate() {
                let mut r = events(id, rev, vec![e]);
                r.fragment = k + 1 < n;
                self.stream.outbox.push_back(r);
            }
        } else {
            self.stream.outbox.push_back(events(id, rev, evs));
        }
    }

    fn step(&mut self, a: &Act) {
        match a {
            Act::Write { key, second } => {
                let r = self.rev() + 1;
                let mut v = vec![ev(KEYS[*key as usize], r)];
                if let Some(k2) = second {
                    v.push(ev(KEYS[*k2 as usize], r));
                }
                self.log.push(v);
            }
            Act::Add { kind, back } => {
                let (key, end) = range_of(*kind);
                let start = back
                    .map(|b| (self.rev() - b as i64 + 1).max(1))
                    .unwrap_or(0);
                let id = self.hub.add(WatchCreateRequest {
                    key: key.clone(),
                    range_end: end.clone(),
                    start_revision: start,
                    ..Default::default()
                });
                self.clients.insert(
                    id,
                    Client {
                        key,
                        end,
                        start,
                        ..Default::default()
                    },
                );
            }
            Act::Cancel(n) => {
                let live: Vec<WatcherId> = self
                    .clients
                    .iter()
                    .filter(|(id, c)| {
                        // (An end already queued for a slow consumer ends it.)
                        c.terminal.is_none() && !c.cancelled_by_user && self.hub.contains(**id)
                    })
                    .map(|(id, _)| *id)
                    .collect();
                if !live.is_empty() {
                    let id = live[*n as usize % live.len()];
                    self.clients.get_mut(&id).unwrap().cancelled_by_user = true;
                    self.hub.cancel(id);
                }
            }
            Act::Deliver { w, span, fragment } => {
                if let Some(i) = self.pick_server(*w) {
                    self.deliver(i, *span as i64, *fragment);
                }
            }
            Act::Flush(n) => {
                for _ in 0..*n {
                    if let Some(r) = self.stream.outbox.pop_front() {
                        self.hub.handle_response(r);
                    }
                }
            }
            Act::Notify(n) => {
                let rev = self.rev();
                if let Some(i) = self.pick_server(*n) {
                    let w = &self.stream.watchers[i];
                    if w.next > rev {
                        self.stream.outbox.push_back(events(w.id, rev, vec![]));
                    }
                }
            }
            Act::RequestProgress => self.hub.request_progress(),
            Act::Lose => self.lose(),
            Act::LeaderLoss(n) => {
                let rev = self.rev();
                if let Some(i) = self.pick_server(*n) {
                    let w = self.stream.watchers.remove(i);
                    self.stream.outbox.push_back(WatchResponse {
                        header: header(rev),
                        watch_id: w.id,
                        canceled: true,
                        cancel_reason: "etcdserver: no leader".into(),
                        ..Default::default()
                    });
                }
            }
            Act::Compact(back) => {
                let c = (self.rev() - *back as i64).max(self.compacted);
                self.compacted = c;
            }
            Act::Consume(n) => self.consume(*n as usize),
        }
        if self.hub.needs_new_stream() {
            self.lose();
        }
        self.pump_requests();
        self.pump_events();
    }

    /// No more faults: deliver everything.
    fn settle(&mut self) {
        for _ in 0..1000 {
            if self.hub.needs_new_stream() {
                self.lose();
            }
            self.pump_requests();
            self.consume(usize::MAX);
            self.pump_requests();
            let rev = self.rev();
            for i in 0..self.stream.watchers.len() {
                if i < self.stream.watchers.len() {
                    self.deliver(i, rev + 1, false);
                }
            }
            while let Some(r) = self.stream.outbox.pop_front() {
                self.hub.handle_response(r);
            }
            self.pump_requests();
            self.pump_events();
            self.consume(usize::MAX);
            let rev = self.rev();
            let quiet = self.stream.outbox.is_empty()
                && self.stream.watchers.iter().all(|w| w.next > rev)
                && !self.hub.needs_new_stream()
                && self.hub.len() == self.stream.watchers.len();
            if quiet {
                return;
            }
        }
        panic!("the simulation did not settle");
    }

    fn expected(&self, c: &Client) -> Vec<(i64, Vec<u8>)> {
        let from = if c.start > 0 {
            c.start
        } else {
            match c.created_rev {
                Some(r) => r + 1,
                None => return Vec::new(),
            }
        };
        let mut out = Vec::new();
        for r in from..=self.rev() {
            for e in &self.log[(r - 1) as usize] {
                let kv = e.kv.as_ref().unwrap();
                if matches_range(&kv.key, &c.key, &c.end) {
                    out.push((kv.mod_revision, kv.key.clone()));
                }
            }
        }
        out
    }

    fn check(&self) {
        for (id, c) in &self.clients {
            let want = self.expected(c);
            assert!(c.created_count <= 1, "{id}: Created twice");
            match &c.terminal {
                None => {
                    assert!(!c.cancelled_by_user, "{id}: cancel never confirmed");
                    assert!(self.hub.contains(*id));
                    assert_eq!(
                        c.got, want,
                        "{id}: live watcher must have every event exactly once"
                    );
                }
                Some(WatchEvent::Compacted { compact_revision }) => {
                    assert!(!c.cancelled_by_user);
                    assert!(
                        want.starts_with(&c.got),
                        "{id}: delivered events are a prefix"
                    );
                    let first = if c.start > 0 {
                        c.start
                    } else {
                        c.created_rev.map(|r| r + 1).unwrap_or(0)
                    };
                    let resume = c.got.last().map(|(r, _)| r + 1).unwrap_or(first);
                    assert!(
                        resume <= *compact_revision,
                        "{id}: compacted although resume {resume} > {compact_revision}"
                    );
                }
                Some(WatchEvent::Cancelled { reason }) => {
                    assert!(
                        c.cancelled_by_user,
                        "{id}: unexpected server cancel {reason}"
                    );
                    assert!(reason.is_empty());
                    assert!(
                        want.starts_with(&c.got),
                        "{id}: delivered events are a prefix"
                    );
                }
                Some(e) => panic!("non-terminal recorded as terminal: {e:?}"),
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn every_watcher_gets_every_revision_exactly_once_in_order(acts in proptest::collection::vec(act(), 1..120)) {
        let mut sim = Sim::new();
        for a in &acts {
            sim.step(a);
        }
        sim.settle();
        sim.check();
    }

    /// The same with slow consumers: a limit of a few items, consumers
    /// that take items only now and then. Paused and resumed watchers
    /// still get every revision exactly once, in order, and never hold
    /// more than the limit plus one response.
    #[test]
    fn slow_consumers_hold_little_and_still_get_every_revision_once(
        acts in proptest::collection::vec(act(), 1..160),
        limit in 0usize..1_200,
    ) {
        let mut sim = Sim::with_limit(Some(limit));
        for a in &acts {
            sim.step(a);
        }
        sim.settle();
        sim.check();
    }
}

// ------------------------------------------------ hostile input (bug 12)

fn frag(id: i64, rev: i64, evs: Vec<Event>) -> WatchResponse {
    WatchResponse {
        fragment: true,
        ..events(id, rev, evs)
    }
}

/// Bug 12 (issue 10): a revision of `i64::MAX` used to overflow
/// `delivered + 1` (a panic in debug builds, a re-create from
/// `i64::MIN` in release builds). The hub resumes from `i64::MAX`.
#[test]
fn revision_at_i64_max_does_not_wrap_the_resume_point() {
    let mut hub = WatchHub::new();
    let a = watch_key(&mut hub, "a", 0);
    create_of(hub.poll_transmit());
    hub.handle_response(created(a.get(), 5));
    hub.handle_response(events(a.get(), i64::MAX, vec![ev("a", i64::MAX)]));
    assert_eq!(hub.last_delivered(a), Some(i64::MAX));
    // More events at the same (hostile) revision are not delivered twice.
    hub.handle_response(events(a.get(), i64::MAX, vec![ev("a", i64::MAX)]));
    let got = drain(&mut hub);
    assert_eq!(got.len(), 2, "{got:?}");
    hub.handle_stream_lost();
    let re = create_of(hub.poll_transmit());
    assert_eq!(re.start_revision, i64::MAX);

    // Watching "from now", created at i64::MAX: same.
    let mut hub = WatchHub::new();
    let b = watch_key(&mut hub, "b", 0);
    create_of(hub.poll_transmit());
    hub.handle_response(created(b.get(), i64::MAX));
    hub.handle_stream_lost();
    assert_eq!(create_of(hub.poll_transmit()).start_revision, i64::MAX);
}

/// Bug 12 (issue 10): fragments are reassembled up to the configured limit;
/// past it the watcher ends with a `Cancelled` naming the cause, the server
/// is asked to cancel it, and nothing more is buffered or delivered for it.
#[test]
fn fragment_reassembly_is_capped_and_ends_the_watcher() {
    use etcdv3_core::streams::watch::FRAGMENTS_TOO_LARGE;
    use prost::Message;
    let one = ev("a", 11).encoded_len();
    let mut hub = WatchHub::with_max_fragment_bytes(one * 3);
    assert_eq!(hub.max_fragment_bytes(), one * 3);
    let a = watch_key(&mut hub, "a", 0);
    let b = watch_key(&mut hub, "b", 0);
    create_of(hub.poll_transmit());
    create_of(hub.poll_transmit());
    hub.handle_response(created(a.get(), 10));
    hub.handle_response(created(b.get(), 10));
    drain(&mut hub);
    // Exactly at the limit: reassembled and delivered.
    hub.handle_response(frag(a.get(), 13, vec![ev("a", 11), ev("a", 12)]));
    hub.handle_response(events(a.get(), 13, vec![ev("a", 13)]));
    match drain(&mut hub).as_slice() {
        [(id, WatchEvent::Events { events, .. })] => {
            assert_eq!((*id, events.len()), (a, 3));
        }
        other => panic!("{other:?}"),
    }
    // One event more: the watcher ends.
    for r in 14..17 {
        hub.handle_response(frag(a.get(), 20, vec![ev("a", r)]));
    }
    assert!(hub.poll_event().is_none(), "still within the limit");
    hub.handle_response(frag(a.get(), 20, vec![ev("a", 17)]));
    match drain(&mut hub).as_slice() {
        [(id, WatchEvent::Cancelled { reason })] => {
            assert_eq!(*id, a);
            assert!(reason.starts_with(FRAGMENTS_TOO_LARGE), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(!hub.contains(a));
    match hub.poll_transmit().and_then(|r| r.request_union) {
        Some(RequestUnion::CancelRequest(c)) => assert_eq!(c.watch_id, a.get()),
        other => panic!("expected a cancel, got {other:?}"),
    }
    // Later fragments for it are ignored; the other watcher is unaffected.
    hub.handle_response(frag(a.get(), 20, vec![ev("a", 18)]));
    hub.handle_response(events(b.get(), 21, vec![ev("b", 21)]));
    match drain(&mut hub).as_slice() {
        [(id, WatchEvent::Events { .. })] => assert_eq!(*id, b),
        other => panic!("{other:?}"),
    }
    assert_eq!(hub.len(), 1);
}

#[test]
fn default_fragment_limit_is_the_default_max_receive_size() {
    assert_eq!(
        WatchHub::new().max_fragment_bytes(),
        etcdv3_core::wire::codec::DEFAULT_MAX_DECODE_SIZE
    );
}

#[test]
fn creates_in_flight_are_bounded_and_later_requests_wait_their_turn() {
    use etcdv3_core::streams::watch::MAX_CREATES_IN_FLIGHT;
    let mut hub = WatchHub::new();
    let n = MAX_CREATES_IN_FLIGHT + 5;
    let ids: Vec<WatcherId> = (0..n)
        .map(|i| watch_key(&mut hub, &format!("k{i}"), 0))
        .collect();
    hub.request_progress();
    let sent: Vec<i64> = std::iter::from_fn(|| hub.poll_transmit())
        .map(|r| create_of(Some(r)).watch_id)
        .collect();
    assert_eq!(sent, (1..=MAX_CREATES_IN_FLIGHT as i64).collect::<Vec<_>>());
    // One answer frees one place, in order.
    hub.handle_response(created(1, 10));
    assert_eq!(
        create_of(hub.poll_transmit()).watch_id,
        MAX_CREATES_IN_FLIGHT as i64 + 1
    );
    assert!(hub.poll_transmit().is_none());
    // Creates of watchers cancelled meanwhile do not count nor wait.
    for id in &ids[MAX_CREATES_IN_FLIGHT + 1..] {
        hub.cancel(*id);
    }
    match hub.poll_transmit().and_then(|r| r.request_union) {
        Some(RequestUnion::ProgressRequest(_)) => {}
        other => panic!("expected the progress request, got {other:?}"),
    }
    assert!(hub.poll_transmit().is_none());
}

#[test]
fn ids_chosen_by_the_caller_are_used_and_not_handed_out_again() {
    let mut hub = WatchHub::new();
    let id = WatcherId::new(7).unwrap();
    let req = WatchCreateRequest {
        key: b"k".to_vec(),
        filters: vec![1],
        ..Default::default()
    };
    assert!(hub.add_with_id(id, req.clone()));
    assert!(!hub.add_with_id(id, req.clone()), "an id in use is refused");
    let sent = create_of(hub.poll_transmit());
    assert_eq!((sent.watch_id, sent.filters), (7, vec![1]));
    assert_eq!(watch_key(&mut hub, "b", 0).get(), 8);
    assert_eq!(WatcherId::new(0), None);
}
