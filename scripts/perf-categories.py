#!/usr/bin/env python3
"""Share the samples of a watch-scale child's perf profile out into
categories (docs/benchmarks.md, "Grouped watch", "Where the CPU time goes,
by category").

    WS_PERF_DIR=DIR WS_PERF_CALLGRAPH=dwarf,16384 throughput-bench --only watch-scale ...
    perf script -i DIR/perf.VARIANT.PID.data -F ip,sym,dso --no-inline > v.txt
    scripts/perf-categories.py US_PER_EVENT v.txt

US_PER_EVENT is the run's client CPU per event (the table's column): each
category's share of the samples times it gives µs per event. A sample goes
to kernel / glibc malloc+free / glibc mem* by its leaf; any other sample to
the first frame, from the leaf outwards, of a known crate (generic frames
of core, alloc, std, bytes... are skipped, so bytes' work for prost counts
as prost's, for h2 as h2's). Also printed: the leaves of etcdv3's and
etcd-client's own code and the callers of malloc.
"""
import collections
import re
import sys

LEAF = [
    ("kernel", lambda s, d: d.startswith("[kernel")),
    ("glibc malloc/free", lambda s, d: "libc.so" in d
     and re.search(r"malloc|free|unlink_chunk|_int_|consolidate|realloc|tcache|alloc_perturb", s)),
    ("glibc memcpy/memmove/memcmp", lambda s, d: "libc.so" in d and re.search(r"mem(move|cpy|cmp|set)", s)),
]
CRATE = [
    ("the bench consumer", lambda s: re.search(r"etcdv3_bench::", s)),
    ("prost decode", lambda s: not s.startswith("core::ptr::drop_in_place")
     and re.search(r"prost::|etcdv3_proto::|etcd_client::rpc::pb::|ProstDecoder|etcdv3_core::wire::codec::decode_message", s)),
    ("h2", lambda s: re.search(r"\bh2::", s)),
    ("etcdv3 own", lambda s: re.search(r"etcdv3_core::|etcdv3_client::", s)),
    ("etcd-client own (etcd-client, tonic, hyper, tower, http-body)",
     lambda s: re.search(r"etcd_client::|tonic|hyper|tower|http_body", s)),
    ("tokio, futures, mio", lambda s: re.search(r"tokio::|futures_|mio::|atomic_waker", s)),
]
ORDER = [n for n, _ in LEAF] + [n for n, _ in CRATE] + ["other"]


def frame(line):
    m = re.match(r"^[0-9a-f]+ (.*) \((.*)\)$", line)
    return (m.group(1), m.group(2)) if m else (line, "")


def main():
    us = float(sys.argv[1])
    text = open(sys.argv[2]).read()
    cats, leaves, callers = collections.Counter(), collections.defaultdict(collections.Counter), collections.Counter()
    for block in text.split("\n\n"):
        frames = [frame(l.strip()) for l in block.splitlines() if l.strip()]
        if not frames:
            continue
        leaf, dso = frames[0]
        cat = next((n for n, f in LEAF if f(leaf, dso)), None)
        if cat is None:
            cat = next((n for s, _ in frames for n, f in CRATE if f(s)), "other")
        cats[cat] += 1
        leaves[cat][leaf] += 1
        if cat == "glibc malloc/free":
            who = next((s for s, d in frames[1:] if "libc.so" not in d and not re.match(
                r"^(<?core::|<?alloc::|std::|<?bytes::|hashbrown|__rust|__rdl)", s)), "?")
            callers[who] += 1
    total = sum(cats.values())
    print(f"samples {total}")
    for c in ORDER:
        print(f"  {c:64s} {100 * cats[c] / total:5.1f}%  {us * cats[c] / total:.3f} us/event")
    for c in ("etcdv3 own", "etcd-client own (etcd-client, tonic, hyper, tower, http-body)"):
        if cats[c]:
            print(f"leaves of {c}:")
            for s, n in leaves[c].most_common(10):
                print(f"  {us * n / total:.3f} {s}")
    print("callers of malloc/free:")
    for s, n in callers.most_common(6):
        print(f"  {us * n / total:.3f} {s[:120]}")


if __name__ == "__main__":
    main()
