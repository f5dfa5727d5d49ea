//! The core's top level is its layers, and they import downward only: a
//! module may use its own layer and the layers below it in [`LAYERS`], never
//! one above. An upward import fails here, naming the file and line; so does
//! a file outside every layer (a new top-level module must say where it
//! sits).

use std::path::{Path, PathBuf};

/// From the bottom up. `lib.rs` (the module list) is above them all.
const LAYERS: &[&[&str]] = &[
    &["util"],
    &["wire"],
    &["endpoints"],
    &["machine"],
    &["streams"],
    // The fuzz targets' bodies drive every layer.
    &["fuzzing"],
];

fn layer(module: &str) -> Option<usize> {
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

fn ident(s: &str) -> String {
    s.trim()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// The top-level module names after each `crate::` in `code`, with the
/// (1-based) line each is on. A `crate::{..}` group may span lines.
fn crate_refs(code: &str) -> Vec<(usize, String)> {
    let mut refs = Vec::new();
    let mut at = 0;
    while let Some(i) = code[at..].find("crate::") {
        let start = at + i;
        at = start + "crate::".len();
        let line = code[..start].matches('\n').count() + 1;
        let rest = &code[at..];
        if let Some(group) = rest.strip_prefix('{') {
            // Only the heads of the group's top-level items are module names.
            let mut depth = 0usize;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        refs.push((line, ident(&item)));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 {
                    item.push(c);
                }
            }
            refs.push((line, ident(&item)));
        } else {
            refs.push((line, ident(rest)));
        }
    }
    refs.retain(|(_, name)| !name.is_empty());
    refs
}

/// The file's text with comment lines (and so doc comments) blanked, lines
/// kept in place.
fn code_of(text: &str) -> String {
    text.lines()
        .map(|l| {
            if l.trim_start().starts_with("//") {
                ""
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn upward_imports(src: &Path) -> Vec<String> {
    let mut all = Vec::new();
    files(src, &mut all);
    let mut bad = Vec::new();
    for path in all {
        let rel = path.strip_prefix(src).expect("under src");
        let top = rel
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .map(|s| s.trim_end_matches(".rs").to_string())
            .expect("module name");
        if top == "lib" {
            continue;
        }
        let Some(own) = layer(&top) else {
            bad.push(format!("{}: {top} is in no layer", rel.display()));
            continue;
        };
        let text = std::fs::read_to_string(&path).expect("read");
        for (line, name) in crate_refs(&code_of(&text)) {
            match layer(&name) {
                None => bad.push(format!(
                    "{}:{line}: {top} uses crate::{name}, in no layer",
                    rel.display()
                )),
                Some(theirs) if theirs > own => bad.push(format!(
                    "{}:{line}: {top} imports {name} (above it)",
                    rel.display()
                )),
                Some(_) => {}
            }
        }
    }
    bad
}

#[test]
fn core_layers_import_downward_only() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let bad = upward_imports(&src);
    assert!(bad.is_empty(), "upward imports:\n{}", bad.join("\n"));
}

#[test]
fn the_scan_sees_upward_and_grouped_imports() {
    let code = code_of(
        "use crate::util::rng::Rng;\n\
         // use crate::streams::watch; (a comment)\n\
         use crate::{\n    machine::Core,\n    wire::{codec, status},\n};\n",
    );
    assert_eq!(
        crate_refs(&code),
        vec![
            (1, "util".to_string()),
            (3, "machine".to_string()),
            (3, "wire".to_string())
        ]
    );
}
