"""nats-py over WebSocket (its aiohttp transport): pub/sub, headers, request/reply, a 1 MiB
payload, and a second connection, against a running server's websocket port. Then, since
nats-py never asks for compression, aiohttp itself (the library under nats-py) with
permessage-deflate speaks the protocol: compressed frames both ways, checked byte for byte.

Usage: ws_smoke.py ws://127.0.0.1:PORT [CA_FILE]   (wss:// with the server's CA file)
Exits non-zero (with a message) on the first failure.
"""

import asyncio
import ssl
import sys

import aiohttp
import nats

STEP = 5.0
PROBE = b"\x00probe"


def check(ok, what):
    if not ok:
        print(f"ws_smoke: FAILED: {what}")
        sys.exit(1)


async def until_seen(publisher, subject, sub):
    """Publishes probes on `subject` until `sub` gets one, then drains the probes."""
    for _ in range(50):
        await publisher.publish(subject, PROBE)
        await publisher.flush()
        try:
            m = await sub.next_msg(timeout=0.1)
            if m.data == PROBE:
                break
        except nats.errors.TimeoutError:
            continue
    else:
        check(False, f"{subject}: no probe arrived")
    while True:
        try:
            await sub.next_msg(timeout=0.1)
        except nats.errors.TimeoutError:
            return


async def compressed(url, tls, other):
    """A raw NATS session over aiohttp's WebSocket with permessage-deflate."""
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, compress=15, ssl=tls or None) as ws:
            agreed = ws._response.headers.get("Sec-WebSocket-Extensions", "")
            check("permessage-deflate" in agreed, f"compression agreed: {agreed!r}")
            info = await ws.receive(timeout=STEP)
            check(info.data.startswith(b"INFO "), f"INFO first: {info.data[:20]!r}")
            await ws.send_bytes(b'CONNECT {"verbose":false}\r\nSUB ws.z 1\r\nPING\r\n')
            got = b""
            while b"PONG\r\n" not in got:
                got += (await ws.receive(timeout=STEP)).data
            body = b"compressible " * 4000
            # From nats-py (uncompressed) to the deflating subscriber, and back.
            await other.publish("ws.z", body)
            want = b"MSG ws.z 1 %d\r\n" % len(body) + body + b"\r\n"
            got = b""
            while len(got) < len(want):
                got += (await ws.receive(timeout=STEP)).data
            check(got == want, f"compressed delivery: {len(got)} bytes")
            back = await other.subscribe("ws.back")
            await other.flush()
            for _ in range(50):
                await ws.send_bytes(b"PUB ws.back %d\r\n%s\r\n" % (len(PROBE), PROBE))
                try:
                    if (await back.next_msg(timeout=0.1)).data == PROBE:
                        break
                except nats.errors.TimeoutError:
                    continue
            await ws.send_bytes(b"PUB ws.back %d\r\n" % len(body) + body + b"\r\n")
            msg = await back.next_msg(timeout=STEP)
            while msg.data == PROBE:
                msg = await back.next_msg(timeout=STEP)
            check(msg.data == body, f"compressed publish: {len(msg.data)} bytes")


async def main(url, ca):
    tls = None
    if ca:
        tls = ssl.create_default_context(cafile=ca)
    opts = dict(connect_timeout=STEP, max_reconnect_attempts=1)
    if tls:
        opts["tls"] = tls
    nc = await nats.connect(url, **opts)
    other = await nats.connect(url, **opts)
    scheme = "wss" if ca else "ws"
    check(nc.connected_url.scheme == scheme, f"connected over {nc.connected_url}")

    sub = await nc.subscribe("ws.py.>")
    await nc.flush()
    # nats-py's flush over WebSocket may send its PING before the SUB queued ahead of it (the
    # PONG then proves nothing): probe until the subscription is seen to work.
    await until_seen(other, "ws.py.probe", sub)
    await other.publish("ws.py.a", b"hello", headers={"X-Py": "1"})
    msg = await sub.next_msg(timeout=STEP)
    check(msg.data == b"hello" and msg.headers.get("X-Py") == "1", f"pub/sub {msg}")

    async def echo(m):
        await m.respond(m.data.upper())

    await other.subscribe("ws.py.svc", cb=echo)
    await other.flush()
    reply = None
    for _ in range(10):
        try:
            reply = await nc.request("ws.py.svc", b"shout", timeout=STEP / 10)
            break
        except nats.errors.TimeoutError:
            continue
    check(reply is not None and reply.data == b"SHOUT", f"request/reply {reply}")

    big = bytes(range(256)) * 4096
    big_sub = await nc.subscribe("ws.big")
    await nc.flush()
    await until_seen(other, "ws.big", big_sub)
    await other.publish("ws.big", big)
    msg = await big_sub.next_msg(timeout=STEP)
    check(msg.data == big, f"1 MiB payload: {len(msg.data)} bytes")

    await compressed(url, tls, other)

    await other.close()
    await nc.close()
    print("ws_smoke: all passed")


if __name__ == "__main__":
    ca = sys.argv[2] if len(sys.argv) > 2 else None
    asyncio.run(asyncio.wait_for(main(sys.argv[1], ca), 60))
