//! What `etcdv3ctl demo` found: the report (serde, for `--json`), how it is
//! built from the workload's records, and how it is printed for people.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use etcdv3_testkit::fault::{fault_stats, OpKind, OpRecord};
use serde::Serialize;

/// The whole report.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The etcd server version the cluster ran.
    pub etcd_version: String,
    /// The etcd binary used.
    pub etcd_bin: String,
    /// Number of members.
    pub members: usize,
    /// The cluster's temp directory (deleted at the end).
    pub cluster_dir: String,
    /// Wall time of the whole demo, cluster start to report.
    pub duration_ms: u64,
    /// One entry per injected fault, in order.
    pub faults: Vec<FaultReport>,
    /// Times the member answering the workload changed, over the whole run.
    pub endpoint_switches: usize,
    /// What happened to the writes.
    pub writes: WriteReport,
    /// What happened to the reads.
    pub reads: ReadReport,
    /// What the watch delivered.
    pub watch: WatchReport,
    /// Failed calls over the whole run by `op:kind` (e.g. `put:OutcomeUnknown`).
    pub errors: BTreeMap<String, usize>,
    /// Acknowledged writes missing at the end (must be 0).
    pub lost: usize,
    /// Every check passed: no acknowledged write lost, no stale read, the
    /// watch complete and in order, every fault injected.
    pub ok: bool,
    /// What failed, if anything.
    pub problems: Vec<String>,
}

/// One fault and what it cost.
#[derive(Debug, Serialize)]
pub struct FaultReport {
    /// What was done: `SIGKILL`, `SIGSTOP` or `cut off from peers`.
    pub fault: String,
    /// Whom it was done to: `member in use` or `leader`.
    pub target_role: String,
    /// The member's name (`m0`..).
    pub target: String,
    /// The target was the leader when the fault started.
    pub target_was_leader: bool,
    /// The leader before the fault, and after it was undone.
    pub leader_before: Option<String>,
    /// The leader after the fault was undone (and the tail ran).
    pub leader_after: Option<String>,
    /// The member that answered most calls in the second before the fault.
    pub served_before: Option<String>,
    /// The member that answered most calls in the last second of the window.
    pub served_after: Option<String>,
    /// How long the fault was held.
    pub hold_ms: u64,
    /// Longest time without any successful call, from the fault on.
    pub gap_ms: u64,
    /// Same, for puts alone.
    pub put_gap_ms: u64,
    /// Same, for gets alone.
    pub get_gap_ms: u64,
    /// Successful calls during the window.
    pub ok_calls: usize,
    /// Times the answering member changed during the window.
    pub endpoint_switches: usize,
    /// Failed calls during the window, by `op:kind`.
    pub errors: BTreeMap<String, usize>,
    /// Puts whose outcome was unknown during the window.
    pub outcome_unknown: usize,
    /// The fault could not be injected or undone: why.
    pub inject_error: Option<String>,
}

/// What happened to the puts.
#[derive(Debug, Default, Serialize)]
pub struct WriteReport {
    /// Puts the cluster acknowledged.
    pub acknowledged: usize,
    /// Of those, present at the end with the acknowledged revision.
    pub acknowledged_present: usize,
    /// Puts that ended with outcome unknown (may or may not have applied).
    pub outcome_unknown: usize,
    /// Of those, found applied at the end.
    pub outcome_unknown_applied: usize,
    /// Puts reported as certainly not applied.
    pub not_applied: usize,
    /// Of those, found in the store anyway (must be 0).
    pub not_applied_but_present: usize,
    /// Keys read back at the end.
    pub read_back: usize,
    /// Up to 10 acknowledged keys missing or at another revision.
    pub missing_examples: Vec<String>,
}

/// What happened to the reads.
#[derive(Debug, Default, Serialize)]
pub struct ReadReport {
    /// Gets that succeeded.
    pub ok: usize,
    /// Gets that did not see a put acknowledged before they started (must be 0).
    pub stale: usize,
}

/// What the watch delivered.
#[derive(Debug, Default, Serialize)]
pub struct WatchReport {
    /// Put events delivered.
    pub events: usize,
    /// Keys in the store at the end (each must have been delivered once).
    pub expected: usize,
    /// Keys in the store that the watch never delivered.
    pub missed: usize,
    /// Events delivered more than once.
    pub duplicates: usize,
    /// Events whose revision was not above the previous one.
    pub out_of_order: usize,
    /// Every key delivered exactly once.
    pub complete: bool,
    /// Revisions strictly increasing.
    pub in_order: bool,
    /// The watch ended or failed: why.
    pub ended: Option<String>,
}

/// The member (name) that answered most successful calls among `records`
/// ending in `[from, until]`; `names` maps member ids to names.
pub fn busiest(
    records: &[OpRecord],
    from: Instant,
    until: Instant,
    names: &HashMap<u64, String>,
) -> Option<String> {
    let mut counts: HashMap<u64, usize> = HashMap::new();
    for r in records.iter().filter(|r| r.end >= from && r.end <= until) {
        if let Ok(m) = r.result {
            *counts.entry(m).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .max_by_key(|&(m, c)| (c, std::cmp::Reverse(m)))
        .map(|(m, _)| name_of(names, m))
}

/// `m{i}` for a known member id, the id in hex otherwise.
pub fn name_of(names: &HashMap<u64, String>, id: u64) -> String {
    names.get(&id).cloned().unwrap_or_else(|| format!("{id:x}"))
}

/// How often consecutive successful calls of one kind (puts, gets; by end
/// time) were answered by different members: the client moved that kind of
/// call to another member.
pub fn switches(records: &[OpRecord]) -> usize {
    [OpKind::Put, OpKind::Get]
        .into_iter()
        .map(|kind| {
            let mut ok: Vec<(Instant, u64)> = records
                .iter()
                .filter(|r| r.kind == kind)
                .filter_map(|r| r.result.as_ref().ok().map(|m| (r.end, *m)))
                .collect();
            ok.sort();
            ok.windows(2).filter(|w| w[0].1 != w[1].1).count()
        })
        .sum()
}

/// `op:kind` counts of the failed calls among `records`.
pub fn error_counts(records: &[OpRecord]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in records {
        if let Err((class, _)) = &r.result {
            *out.entry(format!("{}:{class}", r.kind)).or_default() += 1;
        }
    }
    out
}

/// What one fault window measured, without the fields only the caller knows.
pub struct Window {
    /// Longest gaps (any, put, get).
    pub gaps: (Duration, Duration, Duration),
    /// Successful calls.
    pub ok: usize,
    /// Member changes.
    pub switches: usize,
    /// Failed calls by `op:kind`.
    pub errors: BTreeMap<String, usize>,
}

/// Measures the records that ended in `[fault_at, until]`.
pub fn window(records: &[OpRecord], fault_at: Instant, until: Instant) -> Window {
    let inside: Vec<OpRecord> = records
        .iter()
        .filter(|r| r.end >= fault_at && r.end <= until)
        .cloned()
        .collect();
    let stats = fault_stats(&inside, fault_at, until);
    Window {
        gaps: (
            stats.longest_gap,
            stats.longest_put_gap,
            stats.longest_get_gap,
        ),
        ok: stats.ok,
        switches: switches(&inside),
        errors: error_counts(&inside),
    }
}

/// Checks the watch's deliveries `(revision, key)` against the store's final
/// content `key -> mod_revision`.
pub fn check_watch(
    delivered: &[(i64, String)],
    store: &HashMap<String, i64>,
    ended: Option<String>,
) -> WatchReport {
    let out_of_order = delivered.windows(2).filter(|w| w[1].0 <= w[0].0).count();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (_, key) in delivered {
        *seen.entry(key.as_str()).or_default() += 1;
    }
    let duplicates = seen.values().map(|n| n.saturating_sub(1)).sum();
    let missed = store
        .keys()
        .filter(|k| !seen.contains_key(k.as_str()))
        .count();
    let wrong_revision = delivered
        .iter()
        .filter(|(rev, key)| store.get(key).is_some_and(|r| r != rev))
        .count();
    WatchReport {
        events: delivered.len(),
        expected: store.len(),
        missed,
        duplicates,
        out_of_order,
        complete: missed == 0 && duplicates == 0 && wrong_revision == 0 && ended.is_none(),
        in_order: out_of_order == 0,
        ended,
    }
}

/// Checks the puts against the store's final content `key -> mod_revision`.
pub fn check_writes(
    acked: &HashMap<String, i64>,
    unknown: &[String],
    not_applied: &[String],
    store: &HashMap<String, i64>,
) -> WriteReport {
    let mut missing: Vec<String> = acked
        .iter()
        .filter(|(k, rev)| store.get(*k) != Some(rev))
        .map(|(k, rev)| match store.get(k) {
            Some(found) => format!("{k} (acknowledged at {rev}, found at {found})"),
            None => format!("{k} (acknowledged at {rev}, absent)"),
        })
        .collect();
    missing.sort();
    let lost = missing.len();
    missing.truncate(10);
    WriteReport {
        acknowledged: acked.len(),
        acknowledged_present: acked.len() - lost,
        outcome_unknown: unknown.len(),
        outcome_unknown_applied: unknown.iter().filter(|k| store.contains_key(*k)).count(),
        not_applied: not_applied.len(),
        not_applied_but_present: not_applied
            .iter()
            .filter(|k| store.contains_key(*k))
            .count(),
        read_back: store.len(),
        missing_examples: missing,
    }
}

fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

fn opt(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("-")
}

/// The report as text for people.
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line(String::new());
    line(format!(
        "etcdv3ctl demo: {} members of etcd {} on 127.0.0.1, {:.1} s",
        r.members,
        r.etcd_version,
        r.duration_ms as f64 / 1000.0
    ));
    line(String::new());
    line(format!(
        "{:<46} {:>7} {:>9} {:>8}  {:<9} {:<9} {}",
        "fault", "gap", "put gap", "switches", "served", "leader", "errors"
    ));
    for f in &r.faults {
        let what = format!(
            "{} {} ({}{})",
            f.fault,
            f.target_role,
            f.target,
            if f.target_was_leader && f.target_role != "leader" {
                ", leader"
            } else {
                ""
            }
        );
        let errors = if f.errors.is_empty() {
            "none".to_string()
        } else {
            f.errors
                .iter()
                .map(|(k, n)| format!("{k}={n}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        line(format!(
            "{:<46} {:>7} {:>9} {:>8}  {:<9} {:<9} {}{}",
            what,
            ms(Duration::from_millis(f.gap_ms)),
            ms(Duration::from_millis(f.put_gap_ms)),
            f.endpoint_switches,
            format!("{}>{}", opt(&f.served_before), opt(&f.served_after)),
            format!("{}>{}", opt(&f.leader_before), opt(&f.leader_after)),
            errors,
            f.inject_error
                .as_ref()
                .map(|e| format!("  (injection failed: {e})"))
                .unwrap_or_default()
        ));
    }
    line(String::new());
    let w = &r.writes;
    line(format!(
        "writes:  {} acknowledged, {} present at the end ({} lost); {} outcome unknown ({} applied); {} certainly not applied ({} present)",
        w.acknowledged,
        w.acknowledged_present,
        r.lost,
        w.outcome_unknown,
        w.outcome_unknown_applied,
        w.not_applied,
        w.not_applied_but_present
    ));
    line(format!(
        "reads:   {} ok, {} stale",
        r.reads.ok, r.reads.stale
    ));
    let wa = &r.watch;
    line(format!(
        "watch:   {} events for {} keys: {}, {} ({} missed, {} duplicated){}",
        wa.events,
        wa.expected,
        if wa.complete {
            "complete"
        } else {
            "INCOMPLETE"
        },
        if wa.in_order {
            "in order"
        } else {
            "OUT OF ORDER"
        },
        wa.missed,
        wa.duplicates,
        wa.ended
            .as_ref()
            .map(|e| format!("; {e}"))
            .unwrap_or_default()
    ));
    line(format!(
        "client:  {} endpoint switches; errors {}",
        r.endpoint_switches,
        if r.errors.is_empty() {
            "none".to_string()
        } else {
            r.errors
                .iter()
                .map(|(k, n)| format!("{k}={n}"))
                .collect::<Vec<_>>()
                .join(" ")
        }
    ));
    line(String::new());
    if r.ok {
        line(
            "OK: every acknowledged write is there, the watch saw every write once and in order."
                .into(),
        );
    } else {
        line(format!("FAILED: {}", r.problems.join("; ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use etcdv3_testkit::fault::ErrorClass;

    fn rec(base: Instant, kind: OpKind, end_ms: u64, member: Option<u64>) -> OpRecord {
        OpRecord {
            kind,
            start: base + Duration::from_millis(end_ms.saturating_sub(5)),
            end: base + Duration::from_millis(end_ms),
            result: member.ok_or((ErrorClass::OutcomeUnknown, "x".into())),
        }
    }

    #[test]
    fn windows_count_switches_gaps_and_errors() {
        let b = Instant::now();
        let recs = vec![
            rec(b, OpKind::Put, 10, Some(1)),
            rec(b, OpKind::Get, 20, Some(1)),
            rec(b, OpKind::Put, 600, None),
            rec(b, OpKind::Put, 900, Some(2)),
            rec(b, OpKind::Get, 950, Some(2)),
            rec(b, OpKind::Get, 960, Some(1)),
        ];
        // Puts 1 -> 2, gets 1 -> 2 -> 1.
        assert_eq!(switches(&recs), 3);
        let w = window(
            &recs,
            b + Duration::from_millis(100),
            b + Duration::from_millis(1000),
        );
        assert_eq!(w.ok, 3);
        assert_eq!(w.switches, 1, "gets 2 -> 1");
        assert_eq!(w.gaps.0, Duration::from_millis(800));
        assert_eq!(w.errors.get("put:OutcomeUnknown"), Some(&1));
        let names: HashMap<u64, String> = [(1, "m0".into()), (2, "m1".into())].into();
        assert_eq!(
            busiest(&recs, b, b + Duration::from_millis(50), &names).as_deref(),
            Some("m0")
        );
        assert_eq!(
            busiest(
                &recs,
                b + Duration::from_millis(800),
                b + Duration::from_millis(955),
                &names
            )
            .as_deref(),
            Some("m1")
        );
        assert_eq!(
            busiest(
                &recs,
                b + Duration::from_millis(500),
                b + Duration::from_millis(700),
                &names
            ),
            None
        );
    }

    #[test]
    fn watch_and_write_checks_find_every_kind_of_problem() {
        let store: HashMap<String, i64> =
            [("a".into(), 2), ("b".into(), 3), ("c".into(), 4)].into();
        let good = vec![(2, "a".to_string()), (3, "b".into()), (4, "c".into())];
        let w = check_watch(&good, &store, None);
        assert!(w.complete && w.in_order, "{w:?}");
        let missed = &good[..2];
        let w = check_watch(missed, &store, None);
        assert!(!w.complete && w.missed == 1, "{w:?}");
        let dup = vec![
            (2, "a".to_string()),
            (3, "b".into()),
            (3, "b".into()),
            (4, "c".into()),
        ];
        let w = check_watch(&dup, &store, None);
        assert!(!w.complete && !w.in_order && w.duplicates == 1, "{w:?}");
        let w = check_watch(&good, &store, Some("ended".into()));
        assert!(!w.complete);

        let acked: HashMap<String, i64> = [("a".into(), 2), ("b".into(), 9)].into();
        let r = check_writes(&acked, &["c".into(), "x".into()], &["c".into()], &store);
        assert_eq!(r.acknowledged, 2);
        assert_eq!(r.acknowledged_present, 1);
        assert_eq!(r.missing_examples.len(), 1);
        assert_eq!(r.outcome_unknown_applied, 1);
        assert_eq!(r.not_applied_but_present, 1);
    }
}
