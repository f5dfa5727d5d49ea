//! The client's modules import downward only: each module may use the
//! modules below it in [`LAYERS`] (and its own layer's), never one above.
//! A cycle (today's or a new one) fails here, naming the file and line.

use std::path::{Path, PathBuf};

/// From the bottom up. `lib.rs` (the re-exports) is above them all.
const LAYERS: &[&[&str]] = &[
    &["runtime", "options"],
    &["error"],
    &["transport"],
    &["client"],
    &["sync"],
    &["connect"],
    &["api"],
    &["concurrency"],
];

/// Names re-exported at the crate root, by the module that defines them.
const ROOT_NAMES: &[(&str, &str)] = &[
    ("Client", "client"),
    ("CallOptions", "client"),
    ("Checked", "client"),
    ("EndpointStatus", "client"),
    ("ReadConsistency", "client"),
    ("Error", "error"),
    ("Result", "error"),
    ("ClientOptions", "options"),
    ("CoreConfig", "options"),
    ("Policy", "options"),
    ("StaleRead", "options"),
    ("Target", "options"),
    ("TlsOptions", "options"),
    ("BoxFuture", "runtime"),
    ("BoxIo", "runtime"),
    ("Io", "runtime"),
    ("Runtime", "runtime"),
];

fn layer(module: &str) -> Option<usize> {
    let module = ROOT_NAMES
        .iter()
        .find(|(name, _)| *name == module)
        .map_or(module, |(_, m)| *m);
    LAYERS.iter().position(|l| l.contains(&module))
}

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

/// The names after each `crate::` in a line of code.
fn crate_refs(line: &str) -> Vec<String> {
    let mut refs = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                refs.push(name);
            }
        } else {
            refs.push(
                rest.chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect(),
            );
        }
    }
    refs
}

#[test]
fn client_modules_import_downward_only() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&src, &mut all);
    let mut bad = Vec::new();
    for path in all {
        let rel = path.strip_prefix(&src).expect("under src");
        let top = rel
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .map(|s| s.trim_end_matches(".rs").to_string())
            .expect("module name");
        if top == "lib" {
            continue;
        }
        let own = layer(&top).unwrap_or_else(|| panic!("{top}: not in LAYERS"));
        let text = std::fs::read_to_string(&path).expect("read");
        for (n, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for name in crate_refs(line) {
                let Some(theirs) = layer(&name) else {
                    continue; // re-exported dependencies (core, proto, rustls)
                };
                if theirs > own {
                    bad.push(format!(
                        "{}:{}: {top} imports {name} (above it)",
                        rel.display(),
                        n + 1
                    ));
                }
            }
        }
    }
    assert!(bad.is_empty(), "upward imports:\n{}", bad.join("\n"));
}
