#!/usr/bin/env bash
# A/B of two Tachyon builds with the shard placement of each run known. On 2 shards a run's
# figure depends mostly on whether its connections landed on one shard or on both (the kernel
# places them), so an A/B that mixes placements measures luck. Each build runs the workload
# RUNS times against its own server with `-D`; the shards of the run's connections come from
# the debug line "cid:N - served by shard S" (builds since 34c6172 log it), and the means are
# grouped by placement: "one" (every connection on one shard) or "spread".
# Usage: scripts/placed-ab.sh A_BIN B_BIN WORKLOAD RUNS [server args, e.g. --shards 2 --migrate off]
# Environment: BENCH_BIN, MSGS (default 2000000), SIZE (default 16).
set -u
A=$1; B=$2; W=$3; N=$4; shift 4
BENCH_BIN="${BENCH_BIN:-target/release/tachyon-bench}"
MSGS="${MSGS:-2000000}"; SIZE="${SIZE:-16}"
LOG=$(mktemp -d)
trap 'rm -rf "$LOG"' EXIT
one_build() {
    local name=$1 bin=$2 log="$LOG/$1.log"
    shift 2
    "$bin" -p -1 --ports_file_dir "$LOG" -D "$@" > "$log" 2>&1 &
    local pid=$!
    local port=""
    for _ in $(seq 50); do
        port=$(grep -ho '127.0.0.1:[0-9]*' "$LOG"/*"$pid"*.ports 2>/dev/null | head -1 | cut -d: -f2)
        [ -n "$port" ] && break
        sleep 0.1
    done
    [ -n "$port" ] || { echo "$name: server did not start" >&2; kill $pid; return 1; }
    for _ in $(seq "$N"); do
        local before; before=$(wc -l < "$log")
        local r; r=$("$BENCH_BIN" run "$W" --url "nats://127.0.0.1:$port" --msgs "$MSGS" --size "$SIZE" 2>&1 \
            | awk '/throughput/ {print $2}')
        local shards; shards=$(tail -n +$((before + 1)) "$log" | grep -o "served by shard [0-9]*" \
            | awk '{print $4}' | sort -u | wc -l)
        local where=spread; [ "$shards" -le 1 ] && where=one
        echo "$name $where ${r:-0}"
    done
    kill $pid
    wait $pid 2>/dev/null
}
ARGS=("$@")
for _ in 1 2; do
    one_build A "$A" "${ARGS[@]}"
    one_build B "$B" "${ARGS[@]}"
done | awk '{k=$1" "$2; s[k]+=$3; n[k]++}
    END {for (k in s) printf "%s runs=%d mean=%.2fM msgs/s\n", k, n[k], s[k]/n[k]/1e6}' | sort
