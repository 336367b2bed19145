#!/usr/bin/env bash
# Issue 4's cost check: the same tachyon binary, open vs. with users + permissions
# (scripts/bench/auth-perms.conf, every message permission-checked) and HTTP monitoring on,
# rounds alternating. The first server is the configured one, so the ratio column reads
# "configured / open": >= 0.95 msgs/s means the features cost less than 5 %.
# Both run one shard: with several, the kernel places publisher and subscriber on the same or
# on different shards at random, a bigger swing (~20 %) than what is measured here.
# Writes bench-results/auth-report.{json,html,md,txt}.
#
# Environment: ROUNDS (default 3), MSGS (default 300000), TACHYON_BIN.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${ROUNDS:-3}"
MSGS="${MSGS:-300000}"
TACHYON_BIN="${TACHYON_BIN:-target/release/tachyon}"

cargo build --release -p tachyon-bench
if [ -z "${SKIP_TACHYON_BUILD:-}" ]; then
    cargo build --release -p tachyon-server
fi

mkdir -p bench-results
target/release/tachyon-bench compare \
    --server "tachyon-auth-mon=$TACHYON_BIN --shards 1 -c scripts/bench/auth-perms.conf" \
    --server "tachyon-open=$TACHYON_BIN --shards 1" \
    --workloads pubsub,fanout,reqrep \
    --sizes 16,128,1024 \
    --rounds "$ROUNDS" \
    --msgs "$MSGS" \
    --reqrep-msgs 5000 \
    --json bench-results/auth-report.json \
    --html bench-results/auth-report.html \
    --md bench-results/auth-report.md \
    ${EXTRA:-} | tee bench-results/auth-report.txt
