#!/usr/bin/env bash
# The project's test command (the README names it; .ci/run runs it).
#
# Checks formatting and lints, then runs the whole workspace's tests against
# etcd 3.5, and the real-cluster suites again against etcd 3.4. The etcd
# servers are installed by scripts/install-etcd.sh when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

eval "$(bash scripts/install-etcd.sh)"
echo "etcd 3.4: $ETCD34"
echo "etcd 3.5: $ETCD35"

echo "== the core depends on no runtime or HTTP/2 library"
if cargo tree -p etcdv3-core -e normal --prefix none | grep -E '^(tokio|async-std|smol|async-io|h2|hyper|tonic|mio) '; then
    echo "etcdv3-core must not depend on the crates above" >&2
    exit 1
fi

echo "== rustfmt"
cargo fmt --all -- --check

echo "== clippy"
cargo clippy --workspace --all-targets -- -D warnings
# The smol runtime and its tests are behind a feature nothing else enables.
cargo clippy -p etcdv3-async-std --all-features --all-targets -- -D warnings
cargo clippy -p etcdv3-client --features test-util --all-targets -- -D warnings
cargo clippy -p etcdv3-client --features tls-native-roots --all-targets -- -D warnings

echo "== rustdoc (every link resolves; no broken docs)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --workspace
# Every public item of etcdv3-client has a doc example (the examples run with
# the doctests below; the crate's edition 2024 merges them into one binary).
"${PYTHON:-python3}" scripts/doc-coverage.py

echo "== tests (etcd 3.5)"
ETCD_BIN="$ETCD35" cargo test --workspace
# tests/runtimes.rs (async-std, smol) needs the `smol` feature.
ETCD_BIN="$ETCD35" cargo test -p etcdv3-async-std --all-features --test runtimes
# tests/stream_ids.rs needs the client's `test-util` feature (h2 `unstable`).
ETCD_BIN="$ETCD35" cargo test -p etcdv3-client --features test-util --test stream_ids
# TlsOptions::with_native_roots (the system's trust store) is behind a feature.
cargo test -p etcdv3-client --features tls-native-roots --lib tls

echo "== real-cluster suites (etcd 3.4; tokio variants: the async-std ones ran above)"
ETCD_BIN="$ETCD34" cargo test -p etcdv3-testkit
# The suites that measure the client's own cost and timing (connection
# attempts in an outage, RPCs of a waiting lock or an idle client, a slow
# link, slow reads, an idle watch on a hung member: 2 minutes of waiting)
# ran against 3.5 above; the server's version does not change what they
# measure, so the 3.4 pass runs every other suite.
cost_only="regress_idle_cost regress_idle_watch_hang regress_outage_connects regress_slow_link regress_slow_reads regress_wait_cost"
suites=()
for f in tests/*.rs; do
    name=$(basename "$f" .rs)
    # recipes_common.rs is a module of the recipe suites, not a suite.
    [[ "$name" == recipes_common ]] && continue
    [[ " $cost_only " == *" $name "* ]] && continue
    suites+=(--test "$name")
done
ETCD_BIN="$ETCD34" cargo test -p etcdv3-integration "${suites[@]}" -- tokio
