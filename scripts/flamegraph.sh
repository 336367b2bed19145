#!/usr/bin/env bash
# Records tachyon under a tachyon-bench workload and renders flamegraphs/WORKLOAD.svg.
#
#   scripts/flamegraph.sh WORKLOAD [extra tachyon-bench run args...]
#   e.g. scripts/flamegraph.sh pubsub --size 128
#
# Environment: SHARDS (default 2), DURATION seconds of load (default 8), FREQ sampling Hz
# (default 997), CALLGRAPH (default dwarf: the release build has no frame pointers, so `-g`
# alone (fp) truncates Rust stacks; set CALLGRAPH=fp for a lighter recording),
# SKIP_BUILD=1 to reuse target/release binaries, FOLDED_OUT=FILE to keep the folded stacks,
# SERVER_ARGS for more tachyon flags (e.g. "-c scripts/bench/auth-perms.conf"), NAME for the
# output file name (default WORKLOAD).
# Needs: perf (Debian: linux-perf), inferno (cargo install inferno).
set -euo pipefail
cd "$(dirname "$0")/.."

WORKLOAD="${1:?usage: scripts/flamegraph.sh WORKLOAD [tachyon-bench run args...]}"
shift
SHARDS="${SHARDS:-2}"
DURATION="${DURATION:-8}"
FREQ="${FREQ:-997}"
CALLGRAPH="${CALLGRAPH:-dwarf}"
export PATH="$HOME/.cargo/bin:$PATH"

find_perf() {
    if command -v perf >/dev/null && perf --version >/dev/null 2>&1; then
        command -v perf
        return
    fi
    # Debian's wrapper may fail when the running kernel differs; the real binaries are versioned.
    local p
    for p in /usr/bin/perf_* /usr/lib/linux-tools*/perf /usr/lib/linux-tools/*/perf; do
        if [ -x "$p" ]; then
            echo "$p"
            return
        fi
    done
    return 1
}

PERF="$(find_perf || true)"
if [ -z "$PERF" ]; then
    apt-get install -y linux-perf >&2
    PERF="$(find_perf)"
fi
if ! command -v inferno-flamegraph >/dev/null; then
    cargo install inferno --locked
fi

if [ -z "${SKIP_BUILD:-}" ]; then
    cargo build --release -p tachyon-server -p tachyon-bench
fi

WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

NAME="${NAME:-$WORKLOAD}"
# shellcheck disable=SC2086
target/release/tachyon -a 127.0.0.1 -p -1 --ports_file_dir "$WORK" --shards "$SHARDS" \
    ${SERVER_ARGS:-} >"$WORK/server.log" 2>&1 &
SERVER_PID=$!

PORTS_FILE="$WORK/tachyon_${SERVER_PID}.ports"
for _ in $(seq 100); do
    [ -s "$PORTS_FILE" ] && break
    sleep 0.1
done
URL="$(grep -o 'nats://[^"]*' "$PORTS_FILE" | head -n1 || true)"
if [ -z "$URL" ]; then
    echo "tachyon did not write its ports file; log:" >&2
    cat "$WORK/server.log" >&2
    exit 1
fi

"$PERF" record -e cpu-clock -F "$FREQ" --call-graph "$CALLGRAPH" -p "$SERVER_PID" \
    -o "$WORK/perf.data" 2>"$WORK/perf.log" &
PERF_PID=$!
sleep 0.5

BENCH=(target/release/tachyon-bench run "$WORKLOAD" --url "$URL" --duration "$DURATION" "$@")
echo "+ ${BENCH[*]}" >&2
"${BENCH[@]}"

kill -INT "$PERF_PID"
wait "$PERF_PID" || true

mkdir -p flamegraphs
"$PERF" script -i "$WORK/perf.data" 2>/dev/null \
    | inferno-collapse-perf >"$WORK/folded"
inferno-flamegraph --title "tachyon $WORKLOAD (shards=$SHARDS, ${DURATION}s, $* ${SERVER_ARGS:-})" \
    <"$WORK/folded" >"flamegraphs/$NAME.svg"
echo "wrote flamegraphs/$NAME.svg" >&2
if [ -n "${FOLDED_OUT:-}" ]; then
    cp "$WORK/folded" "$FOLDED_OUT"
fi

# Self time per frame (leaf of each stack), for the README's top-5 lines.
awk '{n=$NF; $NF=""; k=split($0, f, ";"); leaf=f[k]; sub(/ +$/, "", leaf); s[leaf]+=n; t+=n}
     END {for (l in s) printf "%6.2f%%  %s\n", 100*s[l]/t, l}' "$WORK/folded" \
    | sort -rn | head -n 15 >"flamegraphs/$NAME.top.txt"
# Which threads did the work: the kernel spreads connections over shards at random
# (SO_REUSEPORT), so a run may or may not exercise the cross-shard path.
awk '{n=$NF; split($1, f, ";"); s[f[1]]+=n; t+=n}
     END {for (k in s) printf "thread %s: %.1f%% of samples\n", k, 100*s[k]/t}' "$WORK/folded" \
    | sort >>"flamegraphs/$NAME.top.txt"
cat "flamegraphs/$NAME.top.txt" >&2
