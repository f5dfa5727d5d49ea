#!/usr/bin/env python3
"""List public items of etcdv3-client whose doc comment has no example.

A public item is a `pub fn`/`pub async fn`/`pub struct`/`pub enum`/
`pub trait`/`pub type`/`pub const` (not `pub(crate)`), or a method declared
in a `pub trait`, in crates/etcdv3-client/src outside the private
`transport` module and `api/stream_task.rs`, and outside `#[cfg(test)]`
modules. Its doc comment (the `///` or `#[doc = ..]` lines above it) must
contain a fenced code block (```). Exits 1 and lists the offenders when any
lacks one.
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent / "crates/etcdv3-client/src"
SKIP = {"transport", "stream_task.rs"}
ITEM = re.compile(
    r"^\s*pub\s+(?:const\s+|async\s+|unsafe\s+)*(fn|struct|enum|trait|type|const)\s+(\w+)"
)
TRAIT_FN = re.compile(r"^\s*(?:async\s+)?fn\s+(\w+)")


def scan(path):
    missing = []
    doc = []
    trait_depth = None  # brace depth at which the current pub trait's body sits
    depth = 0
    lines = path.read_text().splitlines()
    for no, line in enumerate(lines, 1):
        s = line.strip()
        if s.startswith("#[cfg(test)]"):
            break  # test modules sit at the end of each file
        if s.startswith("///") or s.startswith("#[doc ="):
            doc.append(s)
            continue
        if s.startswith("#[") or s.startswith("//") or not s:
            # attributes and plain comments keep the pending doc block
            if not s:
                doc = []
            continue
        m = ITEM.match(line)
        name = None
        if m:
            name = f"{m.group(1)} {m.group(2)}"
        elif trait_depth is not None and depth == trait_depth:
            t = TRAIT_FN.match(line)
            if t:
                name = f"fn {t.group(1)} (trait method)"
        if name and not any("```" in d for d in doc):
            missing.append(f"{path.relative_to(ROOT)}:{no}: {name}")
        if m and m.group(1) == "trait":
            trait_depth = depth + 1
        depth += line.count("{") - line.count("}")
        if trait_depth is not None and depth < trait_depth:
            trait_depth = None
        doc = []
    return missing


def main():
    missing = []
    for path in sorted(ROOT.rglob("*.rs")):
        if SKIP & set(path.relative_to(ROOT).parts):
            continue
        missing += scan(path)
    for m in missing:
        print(m)
    if missing:
        print(f"{len(missing)} public items of etcdv3-client have no example", file=sys.stderr)
        return 1
    print("every public item of etcdv3-client has an example")
    return 0


if __name__ == "__main__":
    sys.exit(main())
