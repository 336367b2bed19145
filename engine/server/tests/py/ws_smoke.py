"""nats-py over WebSocket (its aiohttp transport): pub/sub, headers, request/reply, a 1 MiB
payload, and a second connection, against a running server's websocket port.

Usage: ws_smoke.py ws://127.0.0.1:PORT
Exits non-zero (with a message) on the first failure.
"""

import asyncio
import sys

import nats

STEP = 5.0


def check(ok, what):
    if not ok:
        print(f"ws_smoke: FAILED: {what}")
        sys.exit(1)


async def main(url):
    nc = await nats.connect(url, connect_timeout=STEP, max_reconnect_attempts=1)
    other = await nats.connect(url, connect_timeout=STEP, max_reconnect_attempts=1)
    check(nc.connected_url.scheme == "ws", f"connected over {nc.connected_url}")

    sub = await nc.subscribe("ws.py.>")
    await nc.flush()
    await other.publish("ws.py.a", b"hello", headers={"X-Py": "1"})
    msg = await sub.next_msg(timeout=STEP)
    check(msg.data == b"hello" and msg.headers.get("X-Py") == "1", f"pub/sub {msg}")

    async def echo(m):
        await m.respond(m.data.upper())

    await other.subscribe("ws.py.svc", cb=echo)
    await other.flush()
    reply = await nc.request("ws.py.svc", b"shout", timeout=STEP)
    check(reply.data == b"SHOUT", f"request/reply {reply.data!r}")

    big = bytes(range(256)) * 4096
    big_sub = await nc.subscribe("ws.big")
    await nc.flush()
    await other.publish("ws.big", big)
    msg = await big_sub.next_msg(timeout=STEP)
    check(msg.data == big, f"1 MiB payload: {len(msg.data)} bytes")

    await other.close()
    await nc.close()
    print("ws_smoke: all passed")


if __name__ == "__main__":
    asyncio.run(asyncio.wait_for(main(sys.argv[1]), 60))
