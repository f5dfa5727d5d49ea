//! What `etcdv3ctl demo` found: the report (serde, for `--json`), how it is
//! built from the workload's records, and how it is printed for people.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use etcdv3_failover::{WatchCheck, WriteCheck};
use etcdv3_testkit::fault::{fault_stats, ErrorClass, OpKind, OpRecord};
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
    /// Times the member answering the workload changed, over the whole run
    /// (`put_switches + read_switches`).
    pub endpoint_switches: usize,
    /// Times two consecutive successful puts were answered by different
    /// members.
    pub put_switches: usize,
    /// Same, for reads.
    pub read_switches: usize,
    /// What happened to the writes.
    pub writes: WriteCheck,
    /// What happened to the reads.
    pub reads: ReadReport,
    /// What the watch delivered.
    pub watch: WatchCheck,
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
    /// The member that answered most puts in the second before the fault.
    pub puts_served_before: Option<String>,
    /// The member that answered most puts in the last second of the window.
    pub puts_served_after: Option<String>,
    /// The member that answered most reads in the second before the fault.
    pub reads_served_before: Option<String>,
    /// The member that answered most reads in the last second of the window.
    pub reads_served_after: Option<String>,
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
    /// Times the answering member changed during the window
    /// (`put_switches + read_switches`).
    pub endpoint_switches: usize,
    /// Times consecutive puts were answered by different members in the window.
    pub put_switches: usize,
    /// Same, for reads.
    pub read_switches: usize,
    /// Failed calls during the window, by `op:kind`.
    pub errors: BTreeMap<String, usize>,
    /// Puts whose outcome was unknown during the window.
    pub outcome_unknown: usize,
    /// The fault could not be injected or undone: why.
    pub inject_error: Option<String>,
}

/// What happened to the reads.
#[derive(Debug, Default, Serialize)]
pub struct ReadReport {
    /// Gets that succeeded.
    pub ok: usize,
    /// Gets that did not see a put acknowledged before they started (must be 0).
    pub stale: usize,
}

/// The member (name) that answered most successful calls (of `kind`, or of
/// any kind) among `records` ending in `[from, until]`; `names` maps member
/// ids to names.
pub fn busiest(
    records: &[OpRecord],
    kind: Option<OpKind>,
    from: Instant,
    until: Instant,
    names: &HashMap<u64, String>,
) -> Option<String> {
    let mut counts: HashMap<u64, usize> = HashMap::new();
    for r in records
        .iter()
        .filter(|r| r.end >= from && r.end <= until && kind.is_none_or(|k| r.kind == k))
    {
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

/// How often consecutive successful calls of `kind` (by end time) were
/// answered by different members: the client sent that kind of call to
/// another member.
pub fn switches_of(records: &[OpRecord], kind: OpKind) -> usize {
    let mut ok: Vec<(Instant, u64)> = records
        .iter()
        .filter(|r| r.kind == kind)
        .filter_map(|r| r.result.as_ref().ok().map(|m| (r.end, *m)))
        .collect();
    ok.sort();
    ok.windows(2).filter(|w| w[0].1 != w[1].1).count()
}

/// [`switches_of`] puts plus reads.
pub fn switches(records: &[OpRecord]) -> usize {
    switches_of(records, OpKind::Put) + switches_of(records, OpKind::Get)
}

/// An error class as the demo counts it: every "other" client error is one
/// kind (`Other(client)`).
pub fn class_name(class: &ErrorClass) -> String {
    match class {
        ErrorClass::Other(_) => ErrorClass::Other("client".into()).to_string(),
        class => class.to_string(),
    }
}

/// `op:kind` counts of the failed calls among `records`.
pub fn error_counts(records: &[OpRecord]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in records {
        if let Err((class, _)) = &r.result {
            *out.entry(format!("{}:{}", r.kind, class_name(class)))
                .or_default() += 1;
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
    /// Member changes of consecutive puts.
    pub put_switches: usize,
    /// Member changes of consecutive reads.
    pub read_switches: usize,
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
        put_switches: switches_of(&inside, OpKind::Put),
        read_switches: switches_of(&inside, OpKind::Get),
        errors: error_counts(&inside),
    }
}

/// What the table's columns count, under it.
const LEGEND: [&str; 4] = [
    "gap, put gap, read gap: longest time without a successful call (any, put, read) from the fault until puts succeed again plus 0.7 s.",
    "puts on, reads on, leader: the member that answered most puts / reads (and the leader) in the second before the fault > in the last second after it.",
    "switches p/r: times two consecutive puts / reads were answered by different members. The client sends each call to the healthy member with the fewest",
    "  calls in flight and the lowest recent latency (two random choices), so calls also move between healthy members with no fault: most switches are that.",
];

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
        "{:<40} {:>7} {:>8} {:>9}  {:<8} {:<8} {:<8} {:>13}  {}",
        "fault",
        "gap",
        "put gap",
        "read gap",
        "puts on",
        "reads on",
        "leader",
        "switches p/r",
        "errors"
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
            "{:<40} {:>7} {:>8} {:>9}  {:<8} {:<8} {:<8} {:>13}  {}{}",
            what,
            ms(Duration::from_millis(f.gap_ms)),
            ms(Duration::from_millis(f.put_gap_ms)),
            ms(Duration::from_millis(f.get_gap_ms)),
            format!(
                "{}>{}",
                opt(&f.puts_served_before),
                opt(&f.puts_served_after)
            ),
            format!(
                "{}>{}",
                opt(&f.reads_served_before),
                opt(&f.reads_served_after)
            ),
            format!("{}>{}", opt(&f.leader_before), opt(&f.leader_after)),
            format!("{}/{}", f.put_switches, f.read_switches),
            errors,
            f.inject_error
                .as_ref()
                .map(|e| format!("  (injection failed: {e})"))
                .unwrap_or_default()
        ));
    }
    line(String::new());
    for legend in LEGEND {
        line(legend.to_string());
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
        "client:  {} endpoint switches ({} of puts, {} of reads); errors {}",
        r.endpoint_switches,
        r.put_switches,
        r.read_switches,
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
        assert_eq!(switches_of(&recs, OpKind::Put), 1);
        assert_eq!(switches_of(&recs, OpKind::Get), 2);
        assert_eq!(switches(&recs), 3);
        let w = window(
            &recs,
            b + Duration::from_millis(100),
            b + Duration::from_millis(1000),
        );
        assert_eq!(w.ok, 3);
        assert_eq!((w.put_switches, w.read_switches), (0, 1), "gets 2 -> 1");
        assert_eq!(w.gaps.0, Duration::from_millis(800));
        assert_eq!(w.errors.get("put:OutcomeUnknown"), Some(&1));
        let names: HashMap<u64, String> = [(1, "m0".into()), (2, "m1".into())].into();
        let at = |ms| b + Duration::from_millis(ms);
        assert_eq!(
            busiest(&recs, None, b, at(50), &names).as_deref(),
            Some("m0")
        );
        assert_eq!(
            busiest(&recs, None, at(800), at(955), &names).as_deref(),
            Some("m1")
        );
        assert_eq!(busiest(&recs, None, at(500), at(700), &names), None);
        // Puts and reads apart: the puts on m1, the reads last on m0.
        assert_eq!(
            busiest(&recs, Some(OpKind::Put), at(800), at(1000), &names).as_deref(),
            Some("m1")
        );
        assert_eq!(
            busiest(&recs, Some(OpKind::Get), at(955), at(1000), &names).as_deref(),
            Some("m0")
        );
        let other = ErrorClass::Other("connection refused".into());
        assert_eq!(class_name(&other), "Other(client)");
    }

    #[test]
    fn report_names_what_each_column_counts_and_what_a_switch_is() {
        let fault = FaultReport {
            fault: "SIGKILL".into(),
            target_role: "follower in use".into(),
            target: "m0".into(),
            target_was_leader: false,
            leader_before: Some("m2".into()),
            leader_after: Some("m2".into()),
            served_before: Some("m2".into()),
            served_after: Some("m2".into()),
            puts_served_before: Some("m2".into()),
            puts_served_after: Some("m2".into()),
            reads_served_before: Some("m0".into()),
            reads_served_after: Some("m1".into()),
            hold_ms: 2500,
            gap_ms: 20,
            put_gap_ms: 20,
            get_gap_ms: 900,
            ok_calls: 300,
            endpoint_switches: 13,
            put_switches: 1,
            read_switches: 12,
            errors: BTreeMap::new(),
            outcome_unknown: 0,
            inject_error: None,
        };
        let r = Report {
            etcd_version: "3.5.1".into(),
            etcd_bin: "etcd".into(),
            members: 3,
            cluster_dir: "/tmp/x".into(),
            duration_ms: 30_000,
            faults: vec![fault],
            endpoint_switches: 13,
            put_switches: 1,
            read_switches: 12,
            writes: WriteCheck::default(),
            reads: ReadReport::default(),
            watch: WatchCheck::default(),
            errors: BTreeMap::new(),
            lost: 0,
            ok: true,
            problems: Vec::new(),
        };
        let text = render(&r);
        let lines: Vec<&str> = text.lines().collect();
        let head = lines.iter().find(|l| l.starts_with("fault")).unwrap();
        for column in ["put gap", "read gap", "puts on", "reads on", "switches p/r"] {
            assert!(head.contains(column), "{head}");
        }
        let row = lines.iter().find(|l| l.starts_with("SIGKILL")).unwrap();
        assert!(row.contains("m2>m2    m0>m1"), "{row}");
        assert!(row.contains(" 1/12 "), "{row}");
        assert!(text.contains(
            "switches p/r: times two consecutive puts / reads were answered by different members"
        ));
        assert!(text.contains("13 endpoint switches (1 of puts, 12 of reads)"));
    }
}
