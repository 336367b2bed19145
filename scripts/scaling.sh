#!/usr/bin/env bash
# Shard scaling: Tachyon at 1, 2, 4, 8 and 14 shards against nats-server 2.15 and 2.9, on the
# shapes that can spread over shards (independent pairs, many publishers) and on fan-in.
# Meant for a many-core machine (the README's 16-core table); writes bench-results/scaling-*.txt.
# Environment: TACHYON_BIN, BENCH_BIN, NATS_BIN, NATS29_BIN, M (message-count multiplier).
set -u
cd "$(dirname "$0")/.."
TACHYON_BIN="${TACHYON_BIN:-target/release/tachyon}"
BENCH_BIN="${BENCH_BIN:-target/release/tachyon-bench}"
NATS_BIN="${NATS_BIN:-.venv/bin/nats-server}"
NATS29_BIN="${NATS29_BIN:-/usr/sbin/nats-server}"
M="${M:-1}"
OUT="${OUT:-bench-results}"
mkdir -p "$OUT"
S=()
for n in 1 2 4 8 14; do S+=(--server "t$n=$TACHYON_BIN --shards $n"); done
S+=(--server "nats215=$NATS_BIN")
[ -x "$NATS29_BIN" ] && S+=(--server "nats29=$NATS29_BIN")
S+=(--under-test 5)
run() {
    name=$1
    shift
    timeout 300 "$BENCH_BIN" compare "${S[@]}" --rounds 2 "$@" > "$OUT/scaling-$name.txt" 2>&1
    echo "$name rc=$?"
}
run pub8x16     --workloads pub   --sizes 16   --pub 8 --sub 0 --msgs $((16000000 * M))
run pairs4x16   --workloads pairs --sizes 16   --pub 4 --sub 4 --msgs $((4000000 * M))
run pairs8x16   --workloads pairs --sizes 16   --pub 8 --sub 8 --msgs $((8000000 * M))
run pairs8x1k   --workloads pairs --sizes 1024 --pub 8 --sub 8 --msgs $((2000000 * M))
run fanin32x128 --workloads fanin --sizes 128  --pub 32 --sub 1 --msgs $((4000000 * M))
run fanin8x1k   --workloads fanin --sizes 1024 --pub 8 --sub 1 --msgs $((2000000 * M))
for f in "$OUT"/scaling-*.txt; do
    echo "== $f"
    grep -E "^(pub|pairs|fanin) " "$f"
done
