#!/bin/bash
# Core NATS latency on a server while a cold stream is read back: a KV bucket of KEYS values
# (1 KiB each, file storage) is written and kept, the server is stopped, the page cache dropped
# (when this runs as root), the server restarted on the same store, and then every key is read
# with direct gets (kv-get, window 1 per reader, READERS readers) while the `latency` workload
# (open loop, 5 000 msgs/s, 128 B) runs on the same server. Run Tachyon with `--shards 1` so the
# stream and the core traffic share a shard.
# usage: scripts/js-cold-read.sh NAME PORT BIN [ARGS...]
#   e.g. scripts/js-cold-read.sh tachyon 14841 target/release/tachyon --shards 1
#        scripts/js-cold-read.sh nats 14842 .venv/bin/nats-server
set -u
NAME=$1; PORT=$2; shift 2
KEYS=${KEYS:-200000}; READERS=${READERS:-4}
D=$(mktemp -d)
B="${BENCH_BIN:-target/release/tachyon-bench}"
URL=nats://127.0.0.1:$PORT
start() { "$@" -p $PORT -js -sd $D > $D/log 2>&1 & SP=$!; sleep 1; }
stop() { kill $SP; wait $SP 2>/dev/null; }
lat() { $B run latency --url $URL --rate 5000 --duration 4 --size 128 --subject lat 2>&1 | grep -oE "p50 [0-9.]+ +p90 [0-9.]+ +p99 [0-9.]+ +p99.9 [0-9.]+|FAILED.*"; }
start "$@"
$B run kv-get --url $URL --keys $KEYS --msgs 1 --size 1024 --stream-use keep > $D/load.txt 2>&1 \
  || { echo "$NAME: loading failed"; cat $D/load.txt; stop; rm -rf $D; exit 1; }
stop
sync
if [ -w /proc/sys/vm/drop_caches ]; then echo 3 > /proc/sys/vm/drop_caches; CACHE="page cache dropped"; else CACHE="page cache kept (not root)"; fi
start "$@"
# The binaries' own pages came back from disk too: one unmeasured run first.
lat > /dev/null
echo "$NAME alone ($CACHE): $(lat)"
$B run kv-get --url $URL --keys $KEYS --msgs $KEYS --pub $READERS --size 1024 --stream-use reuse --stall-timeout 30 > $D/read.txt 2>&1 &
RP=$!
sleep 0.3
echo "$NAME + cold read:  $(lat)"
wait $RP; grep -E "throughput|FAILED|error" $D/read.txt | head -2
stop; rm -rf $D
