#!/usr/bin/env bash
# The standard comparison: every workload at 16 B, 128 B and 1 KiB against
# tachyon and the reference nats-servers, servers alternating round by round.
# Writes bench-results/report.{json,html,md} (and report.txt, the terminal table).
# Sized to finish in well under 10 minutes on 2 shared cores.
#
# Environment: ROUNDS (default 3), MSGS per throughput run (default 1000000: at millions of
# msgs/s a shorter run is tens of ms, where 10 ms CPU ticks and start-up dominate),
# TACHYON_BIN, NATS_BIN, NATS29_BIN to override the binaries, EXTRA for more flags,
# SHARDS1=0 to leave out the second Tachyon configuration (`--shards 1`, under test too: on a
# 2-core host the load generator takes a core, and one shard is Tachyon's per-core figure).
#
# Then the JetStream section (about 1.5 to 2 minutes on 2 cores): js-pub, js-async, kv-put,
# kv-get and js-consume (a pull consumer, batches of 100, acking each) at 16 B and 1 KiB, file
# storage, every server started with `-js -sd <fresh dir>`, against
# nats-server at its default (fsync every 2 min) and at `sync_interval: always` (fsync before
# every ack, as Tachyon does by default). Writes bench-results/report-js.{json,html,md,txt}.
# JS=0 leaves it out, JS_ONLY=1 runs only it; JS_MSGS per js-async/kv-put/kv-get run (default
# 10000), JS_PUB_MSGS per js-pub run (default 1000), JS_EXTRA for more flags.
#
# Then the consumer section (CONSUMERS=0 leaves it out; about 4 minutes on 2 cores): js-consume
# (pull, batches of 100 and of 1000), js-push, js-ordered (an ordered consumer replaying 1 M
# stored messages; REPLAY_MSGS) and kv-watch (4 watchers while one writer puts new keys)
# against nats-server 2.15 and 2.9 at their defaults. Writes
# bench-results/report-consumers{,-batch1000}.{json,html,md,txt}; `JS_ONLY=1 JS=0 WS=0 LEAF=0 ROUTE=0 GO=0` runs only it.
#
# Then the WebSocket section (WS=0 leaves it out; about 1 minute on 2 cores): ws-pubsub (one
# publisher, one subscriber, both on the websocket port, masked binary frames) and ws-deflate
# (the same with permessage-deflate) at 16 B and 1 KiB, WS_MSGS per run (default MSGS), every
# server given a `websocket { port: -1, no_tls: true, compression: true }` block. Writes
# bench-results/report-ws.{json,html,md,txt}; `JS_ONLY=1 JS=0 CONSUMERS=0 LEAF=0 ROUTE=0 GO=0` runs only it.
#
# Then the leafnode section (LEAF=0 leaves it out; under a minute on 2 cores): leaf-fanin (8
# publishers on the server under test, a leaf of a fresh nats-server 2.15 hub, one subscriber
# on the hub; LEAF_MSGS per run, default MSGS), 16 B and 1 KiB, against nats-server 2.15 and
# 2.9 as the leaf. Writes bench-results/report-leaf.{json,html,md,txt};
# `JS_ONLY=1 JS=0 CONSUMERS=0 WS=0 ROUTE=0 GO=0` runs only it.
#
# Then the route section (ROUTE=0 leaves it out; under a minute on 2 cores): route-fanin (8
# publishers on the server under test, routed to a fresh nats-server 2.15 peer in cluster
# "bench", one subscriber on the peer; ROUTE_MSGS per run, default MSGS), 16 B and 1 KiB,
# against nats-server 2.15 and 2.9 in the same place. Writes bench-results/report-route.*;
# `JS_ONLY=1 JS=0 CONSUMERS=0 WS=0 LEAF=0 GO=0` runs only it.
#
# Then the Go client section (GO=0 leaves it out; needs target/natsbench from
# `scripts/setup.sh --bench`): pubsub, fanin, queue and reqrep at 16 B and 1 KiB with the
# official Go client (nats.go) as the load generator, as `nats bench` is. Writes
# bench-results/report-go.{json,html,md,txt}; `JS_ONLY=1 JS=0 CONSUMERS=0 WS=0 LEAF=0 ROUTE=0` runs only it.
# Then the telemetry fan-in with it: MANY_PUBS (default 500) nats.go publishers, 100 subjects
# each, into one nats.go subscriber on `telemetry.>`, 128 B, MANY_MSGS (default 2 000 000) in
# all, then the same with a raw-protocol subscriber. Writes bench-results/report-go-many{,-raw}.*.
# Then the Go section pinned (GO_PINNED=0 leaves it out): servers on the last CPU, the Go
# client on the others, with nats.go and with raw subscribers, and the Go client's own ceiling
# against the harness's no-cost sink/source, then the telemetry fan-in the same way. Writes
# bench-results/report-go-pinned{,-raw}.* and report-go-many-pinned{,-raw}.*.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${ROUNDS:-3}"
MSGS="${MSGS:-1000000}"
TACHYON_BIN="${TACHYON_BIN:-target/release/tachyon}"
NATS_BIN="${NATS_BIN:-.venv/bin/nats-server}"
NATS29_BIN="${NATS29_BIN:-}"
if [ -z "$NATS29_BIN" ]; then
    for b in /usr/sbin/nats-server /usr/bin/nats-server; do
        if [ -x "$b" ]; then
            NATS29_BIN="$b"
            break
        fi
    done
fi

if [ ! -x "$NATS_BIN" ]; then
    scripts/setup-reference.sh
fi

cargo build --release -p tachyon-bench
if [ -z "${SKIP_TACHYON_BUILD:-}" ]; then
    cargo build --release -p tachyon-server || echo "tachyon build failed; comparing the references only" >&2
fi

servers=()
under_test=1
if [ -x "$TACHYON_BIN" ]; then
    servers+=(--server "tachyon=$TACHYON_BIN")
    if [ "${SHARDS1:-1}" != 0 ]; then
        servers+=(--server "tachyon-1shard=$TACHYON_BIN --shards 1")
        under_test=2
    fi
else
    echo "no tachyon binary at $TACHYON_BIN; the first reference stands in as 'under test'" >&2
fi
servers+=(--server "nats=$NATS_BIN")
if [ -n "$NATS29_BIN" ] && [ -x "$NATS29_BIN" ]; then
    servers+=(--server "nats29=$NATS29_BIN")
fi

mkdir -p bench-results
rc=0
if [ "${JS_ONLY:-0}" != 1 ]; then
    # shellcheck disable=SC2086
    target/release/tachyon-bench compare "${servers[@]}" --under-test "$under_test" \
        --workloads pub,pubsub,fanout,fanin,queue,reqrep,latency,conns \
        --sizes 16,128,1024 \
        --rounds "$ROUNDS" \
        --msgs "$MSGS" \
        --reqrep-msgs 5000 \
        --latency-rate 5000 --latency-msgs 5000 \
        --conns 500 --conns-rate 10 --conns-duration 1 \
        --json bench-results/report.json \
        --html bench-results/report.html \
        --md bench-results/report.md \
        ${EXTRA:-} | tee bench-results/report.txt || rc=$?
fi

if [ "${JS:-1}" != 0 ]; then
    conf_dir="$(mktemp -d)"
    trap 'rm -rf "$conf_dir"' EXIT
    printf 'jetstream {\n  sync_interval: always\n}\n' >"$conf_dir/sync_always.conf"
    js_servers=()
    if [ -x "$TACHYON_BIN" ]; then
        js_servers+=(--server "tachyon=$TACHYON_BIN")
    fi
    js_servers+=(--server "nats=$NATS_BIN")
    js_servers+=(--server "nats-always=$NATS_BIN -c $conf_dir/sync_always.conf")
    # shellcheck disable=SC2086
    target/release/tachyon-bench compare "${js_servers[@]}" --under-test 1 \
        --workloads js-pub,js-async,kv-put,kv-get,js-consume \
        --sizes 16,1024 \
        --rounds "$ROUNDS" \
        --js-msgs "${JS_MSGS:-10000}" --js-pub-msgs "${JS_PUB_MSGS:-1000}" \
        --window 256 --keys 1000 --storage file \
        --json bench-results/report-js.json \
        --html bench-results/report-js.html \
        --md bench-results/report-js.md \
        ${JS_EXTRA:-} | tee bench-results/report-js.txt || rc=$?
fi
if [ "${CONSUMERS:-1}" != 0 ]; then
    c_servers=()
    if [ -x "$TACHYON_BIN" ]; then
        c_servers+=(--server "tachyon=$TACHYON_BIN")
    fi
    c_servers+=(--server "nats=$NATS_BIN")
    if [ -n "$NATS29_BIN" ]; then
        c_servers+=(--server "nats29=$NATS29_BIN")
    fi
    target/release/tachyon-bench compare "${c_servers[@]}" --under-test 1 \
        --workloads js-consume,js-push,js-ordered,kv-watch \
        --sizes 16,1024 --rounds "$ROUNDS" \
        --js-msgs "${CONSUMER_MSGS:-100000}" --replay-msgs "${REPLAY_MSGS:-1000000}" \
        --window 100 --storage file \
        --json bench-results/report-consumers.json \
        --html bench-results/report-consumers.html \
        --md bench-results/report-consumers.md | tee bench-results/report-consumers.txt || rc=$?
    target/release/tachyon-bench compare "${c_servers[@]}" --under-test 1 \
        --workloads js-consume --sizes 16,1024 --rounds "$ROUNDS" \
        --js-msgs "${CONSUMER_MSGS:-100000}" --window 1000 --storage file \
        --json bench-results/report-consumers-batch1000.json \
        --html bench-results/report-consumers-batch1000.html \
        --md bench-results/report-consumers-batch1000.md |
        tee bench-results/report-consumers-batch1000.txt || rc=$?
fi
if [ "${WS:-1}" != 0 ]; then
    target/release/tachyon-bench compare "${servers[@]}" --under-test "$under_test" \
        --workloads ws-pubsub,ws-deflate \
        --sizes 16,1024 --rounds "$ROUNDS" \
        --msgs "${WS_MSGS:-$MSGS}" \
        --json bench-results/report-ws.json \
        --html bench-results/report-ws.html \
        --md bench-results/report-ws.md | tee bench-results/report-ws.txt || rc=$?
fi
# The two-server fan-ins: the server under test as a leaf of, or routed to, a nats-server.
for section in leaf route; do
    enabled="${section^^}"
    count="${section^^}_MSGS"
    if [ "${!enabled:-1}" != 0 ]; then
        target/release/tachyon-bench compare "${servers[@]}" --under-test "$under_test" \
            --hub "$NATS_BIN" \
            --workloads "$section-fanin" \
            --sizes 16,1024 --rounds "$ROUNDS" \
            --msgs "${!count:-$MSGS}" \
            --json "bench-results/report-$section.json" \
            --html "bench-results/report-$section.html" \
            --md "bench-results/report-$section.md" | tee "bench-results/report-$section.txt" || rc=$?
    fi
done
if [ "${GO:-1}" != 0 ]; then
    if [ -x target/natsbench ]; then
        target/release/tachyon-bench compare "${servers[@]}" --under-test "$under_test" \
            --go-client target/natsbench \
            --workloads pubsub,fanout,fanin,queue,reqrep \
            --sizes 16,1024 --rounds "$ROUNDS" \
            --msgs "${GO_MSGS:-$MSGS}" --reqrep-msgs "${GO_REQREP_MSGS:-20000}" \
            --json bench-results/report-go.json \
            --html bench-results/report-go.html \
            --md bench-results/report-go.md | tee bench-results/report-go.txt || rc=$?
        # The telemetry fan-in: hundreds of nats.go publishers, one nats.go subscriber on
        # `telemetry.>`, a subject per publisher and reading (100 each).
        target/release/tachyon-bench compare "${servers[@]}" --under-test "$under_test" \
            --go-client target/natsbench \
            --workloads fanin --pub "${MANY_PUBS:-500}" \
            --sizes 128 --rounds "$ROUNDS" \
            --msgs "${MANY_MSGS:-2000000}" \
            --json bench-results/report-go-many.json \
            --html bench-results/report-go-many.html \
            --md bench-results/report-go-many.md | tee bench-results/report-go-many.txt || rc=$?
        # The same with a raw-protocol subscriber (the server without nats.go's dispatch on
        # the receiving side).
        target/release/tachyon-bench compare "${servers[@]}" --under-test "$under_test" \
            --go-client target/natsbench --go-raw-sub \
            --workloads fanin --pub "${MANY_PUBS:-500}" \
            --sizes 128 --rounds "$ROUNDS" \
            --msgs "${MANY_MSGS:-2000000}" \
            --json bench-results/report-go-many-raw.json \
            --html bench-results/report-go-many-raw.html \
            --md bench-results/report-go-many-raw.md | tee bench-results/report-go-many-raw.txt || rc=$?
        # The Go section again with each side on cores of its own: every server on the last
        # CPU (Tachyon then runs one shard, nats-server GOMAXPROCS 1), natsbench and the
        # harness on the others; it also measures natsbench against the no-cost sink/source
        # (the report's "Go client ceiling"). Then the same with raw-protocol subscribers.
        cpus="$(nproc)"
        if [ "${GO_PINNED:-1}" != 0 ] && [ "$cpus" -ge 2 ]; then
            pinned=()
            [ -x "$TACHYON_BIN" ] && pinned+=(--server "tachyon=$TACHYON_BIN")
            pinned+=(--server "nats=$NATS_BIN")
            if [ -n "$NATS29_BIN" ] && [ -x "$NATS29_BIN" ]; then
                pinned+=(--server "nats29=$NATS29_BIN")
            fi
            for raw in "" "-raw"; do
                target/release/tachyon-bench compare "${pinned[@]}" --under-test 1 \
                    --go-client target/natsbench ${raw:+--go-raw-sub} \
                    --server-cpus "$((cpus - 1))" --client-cpus "0-$((cpus - 2))" \
                    --workloads pubsub,fanout,fanin,queue,reqrep \
                    --sizes 16,1024 --rounds "$ROUNDS" \
                    --msgs "${GO_MSGS:-$MSGS}" --reqrep-msgs "${GO_REQREP_MSGS:-20000}" \
                    --json "bench-results/report-go-pinned$raw.json" \
                    --html "bench-results/report-go-pinned$raw.html" \
                    --md "bench-results/report-go-pinned$raw.md" | tee "bench-results/report-go-pinned$raw.txt" || rc=$?
                target/release/tachyon-bench compare "${pinned[@]}" --under-test 1 \
                    --go-client target/natsbench ${raw:+--go-raw-sub} \
                    --server-cpus "$((cpus - 1))" --client-cpus "0-$((cpus - 2))" \
                    --workloads fanin --pub "${MANY_PUBS:-500}" \
                    --sizes 128 --rounds "$ROUNDS" \
                    --msgs "${MANY_MSGS:-2000000}" \
                    --json "bench-results/report-go-many-pinned$raw.json" \
                    --html "bench-results/report-go-many-pinned$raw.html" \
                    --md "bench-results/report-go-many-pinned$raw.md" | tee "bench-results/report-go-many-pinned$raw.txt" || rc=$?
            done
        fi
    else
        echo "no target/natsbench (scripts/setup.sh --bench builds it); Go client section skipped" >&2
    fi
fi
exit "$rc"
