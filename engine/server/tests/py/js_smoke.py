"""nats-py JetStream against a running server started with -js: streams, publish acks, stream
info, message get/delete, purge, KV get/put/update/delete, account info, errors.

Usage: js_smoke.py nats://127.0.0.1:PORT
Exits non-zero (with a message) on the first failure.
"""

import asyncio
import json
import sys

import nats
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import APIError, KeyWrongLastSequenceError, NotFoundError


def check(cond, what):
    if not cond:
        raise AssertionError(what)


async def expect_api_error(coro, err_code, what):
    try:
        await coro
    except APIError as e:
        check(e.err_code == err_code, f"{what}: err_code {e.err_code} ({e}), want {err_code}")
        return e
    raise AssertionError(f"{what}: no error, want err_code {err_code}")


async def main(url):
    nc = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=1)
    js = nc.jetstream(timeout=5)

    info = await js.add_stream(name="PY", subjects=["py.>"])
    check(info.config.name == "PY", f"created {info.config}")
    check(info.config.subjects == ["py.>"], f"subjects {info.config.subjects}")
    check(info.state.messages == 0, f"fresh state {info.state}")
    # The same create again is accepted (same config); another config under the name is not.
    await js.add_stream(name="PY", subjects=["py.>"])
    await expect_api_error(js.add_stream(name="PY", subjects=["other"]), 10058, "name in use")
    await expect_api_error(js.add_stream(name="OV", subjects=["py.a"]), 10065, "overlap")

    for i in range(20):
        ack = await js.publish(f"py.{i % 4}", f"msg {i}".encode())
        check(ack.stream == "PY" and ack.seq == i + 1, f"ack {ack}")
    ack = await js.publish("py.x", b"hdr", headers={"Nats-Msg-Id": "m1"})
    dup = await js.publish("py.x", b"hdr", headers={"Nats-Msg-Id": "m1"})
    check(dup.duplicate and dup.seq == ack.seq, f"duplicate {dup} of {ack}")

    info = await js.stream_info("PY")
    check(info.state.messages == 21, f"state {info.state}")
    check(info.state.last_seq == 21, f"last seq {info.state}")

    msg = await js.get_msg("PY", seq=3)
    check(msg.data == b"msg 2" and msg.subject == "py.2", f"get_msg {msg}")
    last = await js.get_last_msg("PY", "py.1")
    check(last.data == b"msg 17", f"last by subject {last}")
    check(await js.delete_msg("PY", 3), "delete_msg")
    try:
        await js.get_msg("PY", seq=3)
        raise AssertionError("deleted message still there")
    except NotFoundError:
        pass
    purged = await js.purge_stream("PY", subject="py.0")
    check(purged, "purge")
    info = await js.stream_info("PY")
    check(info.state.messages == 15, f"after purge {info.state}")

    mem = await js.add_stream(StreamConfig(name="MEM", subjects=["mem.*"], storage=StorageType.MEMORY))
    check(mem.config.storage == StorageType.MEMORY, f"memory stream {mem.config}")
    await js.publish("mem.a", b"12345")
    info = await js.stream_info("MEM")
    # nats-server's memory accounting: subject + headers + payload + 16.
    check(info.state.bytes == len("mem.a") + 5 + 16, f"memory bytes {info.state.bytes}")

    names = sorted(await js.streams_info(), key=lambda s: s.config.name)
    check([s.config.name for s in names] == ["MEM", "PY"], f"streams {names}")
    acct = await js.account_info()
    check(acct.streams == 2, f"account streams {acct}")

    kv = await js.create_key_value(bucket="pykv", history=2)
    r1 = await kv.put("k", b"v1")
    entry = await kv.get("k")
    check(entry.value == b"v1" and entry.revision == r1, f"kv get {entry}")
    r2 = await kv.update("k", b"v2", last=r1)
    try:
        await kv.update("k", b"v3", last=r1)
        raise AssertionError("stale update accepted")
    except KeyWrongLastSequenceError:
        pass
    check((await kv.get("k")).value == b"v2", "kv value after update")
    check(r2 > r1, "revisions grow")
    await kv.delete("k")
    try:
        await kv.get("k")
        raise AssertionError("deleted key still readable")
    except Exception as e:  # KeyDeletedError / KeyNotFoundError by client version
        check("Key" in type(e).__name__, f"deleted key: {e!r}")

    check(await js.delete_stream("MEM"), "delete stream")
    try:
        await js.stream_info("MEM")
        raise AssertionError("deleted stream still has info")
    except NotFoundError:
        pass
    # Requests a client would not send, answered with nats-server's codes.
    for body, err_code in [
        (b"{bad", 10025),
        (b'{"name":"Y"}', 10056),
        (b'{"name":"X","num_replicas":3}', 10074),
    ]:
        r = await nc.request("$JS.API.STREAM.CREATE.X", body, timeout=5)
        reply = json.loads(r.data)
        check(reply["type"] == "io.nats.jetstream.api.v1.stream_create_response", f"type {reply}")
        check(reply["error"]["err_code"] == err_code, f"{body!r}: {reply}")

    # Consumers: a pull worker, a push subscriber, KV watch and keys.
    await js.add_stream(name="WORK", subjects=["work.*"])
    for i in range(6):
        await js.publish(f"work.{i % 2}", f"job{i}".encode())
    psub = await js.pull_subscribe("work.*", "workers")
    msgs = await psub.fetch(4, timeout=5)
    check([m.data for m in msgs] == [b"job0", b"job1", b"job2", b"job3"], f"fetch {msgs}")
    check(msgs[0].subject == "work.0", f"delivered subject {msgs[0].subject}")
    for m in msgs:
        await m.ack_sync()
    info = await js.consumer_info("WORK", "workers")
    check(info.num_pending == 2 and info.num_ack_pending == 0, f"pull info {info}")
    rest = await psub.fetch(10, timeout=2)
    check(len(rest) == 2, f"rest {rest}")
    await rest[0].nak()
    again = await psub.fetch(1, timeout=5)
    check(again[0].data == rest[0].data and again[0].metadata.num_delivered == 2, "nak redelivers")
    for m in [again[0], rest[1]]:
        await m.ack_sync()

    got = []
    done = asyncio.Event()

    async def on_msg(m):
        got.append(m.data)
        await m.ack()
        if len(got) == 3:
            done.set()

    sub = await js.subscribe("work.1", cb=on_msg, durable="pusher")
    await asyncio.wait_for(done.wait(), 5)
    check(got == [b"job1", b"job3", b"job5"], f"push {got}")
    await sub.unsubscribe()

    kv2 = await js.create_key_value(bucket="watched", history=3)
    await kv2.put("a", b"1")
    await kv2.put("b", b"1")
    check(sorted(await kv2.keys()) == ["a", "b"], "kv keys")
    w = await kv2.watch("a")
    first = await w.updates(timeout=5)
    check(first and first.value == b"1", f"watch first {first}")
    await kv2.put("a", b"2")
    nxt = await w.updates(timeout=5)
    while nxt is None:
        nxt = await w.updates(timeout=5)
    check(nxt.value == b"2", f"watch update {nxt}")
    await w.stop()
    hist = await kv2.history("a")
    check([e.value for e in hist] == [b"1", b"2"], f"kv history {hist}")

    # Deletes in watches (included, or ignored), purge_deletes, bucket status.
    await kv2.delete("b")
    seen = [(e.key, e.operation, e.value)
            for e in await initial_values(await kv2.watchall(include_history=True))]
    check(seen == [("a", None, b"1"), ("b", None, b"1"), ("a", None, b"2"), ("b", "DEL", b"")],
          f"watch with history and deletes {seen}")
    seen = [e.key for e in await initial_values(await kv2.watchall(ignore_deletes=True))]
    check(seen == ["a"], f"watch ignoring deletes {seen}")
    st = await kv2.status()
    check(st.values == 4 and st.history == 3 and st.bucket == "watched", f"kv status {st}")
    await kv2.purge_deletes(olderthan=-1)
    st = await kv2.status()
    check(st.values == 2, f"after purge_deletes {st.values}")
    check(sorted(await kv2.keys()) == ["a"], "keys after purge_deletes")

    await nc.close()
    print("js_smoke: all passed")


async def initial_values(w):
    """What a KV watcher delivers before its end-of-initial-values marker (None); stops it."""
    got = []
    while True:
        e = await w.updates(timeout=5)
        if e is None:
            break
        got.append(e)
    await w.stop()
    return got


if __name__ == "__main__":
    asyncio.run(asyncio.wait_for(main(sys.argv[1]), 60))
