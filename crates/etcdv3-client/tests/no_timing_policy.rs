//! The client holds no timing policy: every timeout, backoff, retry delay
//! and default duration lives in etcdv3-core (its `Config`, or a named
//! constant there), and the client only pumps. A `Duration` made from a
//! literal in `src/` (outside comments and `#[cfg(test)]` modules) fails
//! here, naming the file and line, unless [`ALLOWED`] lists it with a reason.

use std::path::{Path, PathBuf};

/// (file under `src/`, text of the line) of the durations the client may
/// make itself, each with why it is not policy. Empty: every one moved to
/// the core.
const ALLOWED: &[(&str, &str, &str)] = &[];

/// What makes a duration out of a literal.
const MAKERS: &[&str] = &[
    "Duration::from_secs",
    "Duration::from_millis",
    "Duration::from_micros",
    "Duration::from_nanos",
    "Duration::from_secs_f32",
    "Duration::from_secs_f64",
    "Duration::new(",
    "Duration::MAX",
];

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The lines of `text` that make a duration: (1-based line, line). Comment
/// lines (doc examples included) are skipped, and so is everything from a
/// `#[cfg(test)]` on (the unit tests close each file).
fn durations(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.trim_start();
        if code.starts_with("#[cfg(test)]") {
            break;
        }
        if code.starts_with("//") {
            continue;
        }
        if MAKERS.iter().any(|m| code.contains(m)) {
            found.push((n + 1, code.to_string()));
        }
    }
    found
}

#[test]
fn the_client_makes_no_duration_of_its_own() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&src, &mut all);
    all.sort();
    let mut bad = Vec::new();
    for path in all {
        let rel = path
            .strip_prefix(&src)
            .expect("under src")
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(&path).expect("read");
        for (n, line) in durations(&text) {
            let allowed = ALLOWED
                .iter()
                .any(|(file, l, _why)| *file == rel && line.contains(l));
            if !allowed {
                bad.push(format!("{rel}:{n}: {line}"));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "timing decided in the client (move it to etcdv3-core's Config or a named core constant):\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_scan_sees_durations_in_code_only() {
    let text = "\
/// `Duration::from_secs(1)` in a doc comment\n\
const T: Duration = Duration::from_millis(5);\n\
    // Duration::from_secs(2) in a comment\n\
let d = std::time::Duration::new(1, 0);\n\
#[cfg(test)]\n\
mod tests { const U: Duration = Duration::from_secs(3); }\n";
    let found = durations(text);
    assert_eq!(
        found.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        vec![2, 4]
    );
}
