#!/bin/bash
# Core NATS latency on a server whose JetStream stream ingests at full speed: the `latency`
# workload (open loop, 5 000 msgs/s, 128 B, subject `lat`) alone, then while `js-async`
# (1 KiB, window 256, file storage) publishes 400 000 messages into a stream on the same
# server. Run with `--shards 1` for Tachyon so the stream and the core traffic share a shard.
# usage: scripts/js-isolation.sh NAME PORT BIN [ARGS...]
#   e.g. scripts/js-isolation.sh tachyon 14831 target/release/tachyon --shards 1
#        scripts/js-isolation.sh nats 14832 .venv/bin/nats-server
NAME=$1; PORT=$2; shift 2
D=$(mktemp -d)
"$@" -p $PORT -js -sd $D > $D/log 2>&1 &
SP=$!
sleep 0.7
B="${BENCH_BIN:-target/release/tachyon-bench}"
lat() { $B run latency --url nats://127.0.0.1:$PORT --rate 5000 --duration 4 --size 128 --subject lat 2>&1 | grep -oE "p50 [0-9.]+ +p90 [0-9.]+ +p99 [0-9.]+ +p99.9 [0-9.]+|FAILED.*"; }
echo "$NAME alone:        $(lat)"
$B run js-async --url nats://127.0.0.1:$PORT --msgs 400000 --size 1024 --window 256 > $D/js.txt 2>&1 &
JP=$!
sleep 0.5
echo "$NAME + ingest:     $(lat)"
wait $JP; grep -E "throughput" $D/js.txt | head -1
kill $SP; wait $SP 2>/dev/null; rm -rf $D
