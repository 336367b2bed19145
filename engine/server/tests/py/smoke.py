"""nats-py against a running server: connect, sub, pub, request/reply, headers, queue, drain.

Usage: smoke.py nats://127.0.0.1:PORT
Exits non-zero (with a message) on the first failure.
"""

import asyncio
import sys

import nats
from nats.errors import NoRespondersError

STEP = 5.0
PROBE = b"\x00probe"


ERRORS = []


async def on_error(e):
    # Recorded, printed once at the end on failure, instead of a traceback per retry.
    ERRORS.append(e)


async def connect(url):
    return await nats.connect(
        url,
        connect_timeout=STEP,
        max_reconnect_attempts=2,
        reconnect_time_wait=0.2,
        error_cb=on_error,
    )


async def next_msg(sub, what):
    """The next message that is not an interest probe."""
    while True:
        try:
            msg = await sub.next_msg(timeout=STEP)
        except asyncio.TimeoutError:
            raise AssertionError(f"{what}: no message within {STEP}s")
        if msg.data != PROBE:
            return msg


async def await_interest(publisher, sub, subject):
    """Publishes probes until `sub` gets one, so later publishes from `publisher` reach it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STEP
    while True:
        await publisher.publish(subject, PROBE)
        await publisher.flush()
        try:
            msg = await sub.next_msg(timeout=0.05)
        except asyncio.TimeoutError:
            assert loop.time() < deadline, f"interest on {subject} never visible"
            continue
        assert msg.data == PROBE, f"unexpected {msg.data!r} while probing {subject}"
        return


async def pub_sub(a, b):
    sub = await a.subscribe("py.greet")
    await await_interest(b, sub, "py.greet")
    for i in range(20):
        await b.publish("py.greet", f"hello-{i}".encode())
    await b.flush()
    for i in range(20):
        msg = await next_msg(sub, "pub/sub")
        assert msg.subject == "py.greet", msg.subject
        assert msg.data == f"hello-{i}".encode(), msg.data
    await sub.unsubscribe()
    print("ok pub/sub")


async def wildcards(a, b):
    star = await a.subscribe("py.*.x")
    full = await a.subscribe("py.w.>")
    await await_interest(b, star, "py.probe.x")
    await await_interest(b, full, "py.w.probe")
    for subject in ["py.a.x", "py.w.b.c", "py.w.x"]:
        await b.publish(subject, subject.encode())
    await b.flush()
    got_star = [(await next_msg(star, "star")).subject for _ in range(2)]
    assert got_star == ["py.a.x", "py.w.x"], got_star
    got_full = [(await next_msg(full, "full")).subject for _ in range(2)]
    assert got_full == ["py.w.b.c", "py.w.x"], got_full
    print("ok wildcards")


async def request_reply(a, b):
    async def upper(msg):
        if msg.reply:
            await msg.respond(msg.data.upper())

    svc = await a.subscribe("py.svc", cb=upper)
    await a.flush()
    # A request sent before the interest is visible gets no responders: retry until answered.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STEP
    while True:
        try:
            resp = await b.request("py.svc", b"ping", timeout=STEP)
            break
        except NoRespondersError:
            assert loop.time() < deadline, "responder never became visible"
            await asyncio.sleep(0.02)
    assert resp.data == b"PING", resp.data
    for i in range(10):
        resp = await b.request("py.svc", f"r{i}".encode(), timeout=STEP)
        assert resp.data == f"R{i}".encode(), resp.data
    await svc.unsubscribe()
    print("ok request/reply")


async def no_responders(b):
    try:
        await b.request("py.nobody", b"?", timeout=STEP)
    except NoRespondersError:
        print("ok no responders")
        return
    raise AssertionError("request to nobody did not fail with no responders")


async def headers(a, b):
    sub = await a.subscribe("py.hdr")
    await await_interest(b, sub, "py.hdr")
    await b.publish("py.hdr", b"body", headers={"X-Trace": "t-1", "X-Other": "v"})
    await b.flush()
    msg = await next_msg(sub, "headers")
    assert msg.data == b"body", msg.data
    assert msg.headers is not None, "no headers"
    assert msg.headers.get("X-Trace") == "t-1", msg.headers
    assert msg.headers.get("X-Other") == "v", msg.headers
    print("ok headers")


async def queue(url, b):
    members = [await connect(url) for _ in range(3)]
    received = []
    probed = set()

    def handler(idx):
        async def cb(msg):
            if msg.data == PROBE:
                probed.add(idx)
            else:
                received.append((idx, int(msg.data)))

        return cb

    for i, m in enumerate(members):
        await m.subscribe("py.work", queue="workers", cb=handler(i))
        await m.flush()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STEP
    while len(probed) < len(members):
        assert loop.time() < deadline, f"queue members visible: {probed}"
        await b.publish("py.work", PROBE)
        await b.flush()
        await asyncio.sleep(0.02)
    total = 300
    for n in range(total):
        await b.publish("py.work", str(n).encode())
    await b.flush()
    deadline = loop.time() + STEP
    while len(received) < total and loop.time() < deadline:
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.2)
    numbers = sorted(n for _, n in received)
    assert numbers == list(range(total)), f"{len(numbers)} delivered, expected each of {total} once"
    per_member = [sum(1 for i, _ in received if i == k) for k in range(len(members))]
    assert all(c > 0 for c in per_member), per_member
    for m in members:
        await m.close()
    print(f"ok queue group {per_member}")


async def drain(url):
    nc = await connect(url)
    got = []

    async def cb(msg):
        got.append(msg.data)

    await nc.subscribe("py.drain", cb=cb)
    for i in range(50):
        await nc.publish("py.drain", str(i).encode())
    # drain flushes, waits for the server to confirm the UNSUBs, lets callbacks finish, closes.
    await asyncio.wait_for(nc.drain(), timeout=STEP)
    assert nc.is_closed, "drained connection is not closed"
    assert got == [str(i).encode() for i in range(50)], f"got {len(got)} of 50"
    print("ok drain")


async def main(url):
    a = await connect(url)
    b = await connect(url)
    assert a.max_payload == 1024 * 1024, a.max_payload
    await pub_sub(a, b)
    await wildcards(a, b)
    await request_reply(a, b)
    await no_responders(b)
    await headers(a, b)
    await queue(url, b)
    await drain(url)
    await a.close()
    await b.close()
    print("smoke: all passed")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: smoke.py nats://HOST:PORT")
    try:
        asyncio.run(asyncio.wait_for(main(sys.argv[1]), timeout=60))
    except Exception as e:  # any failure must surface as a non-zero exit with its reason
        print(f"smoke: FAILED: {type(e).__name__}: {e}", file=sys.stderr)
        if ERRORS:
            print(f"smoke: last client error: {ERRORS[-1]!r}", file=sys.stderr)
        sys.exit(1)
