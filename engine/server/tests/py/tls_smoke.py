"""nats-py over TLS: mutual TLS with a client certificate, pub/sub and request/reply.

Usage: tls_smoke.py tls://127.0.0.1:PORT CA_PEM CLIENT_PEM CLIENT_KEY_PEM
Exits non-zero (with a message) on the first failure.
"""

import asyncio
import ssl
import sys

import nats

STEP = 5.0


async def main(url, ca, cert, key):
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
    ctx.load_cert_chain(certfile=cert, keyfile=key)
    nc = await nats.connect(
        url, tls=ctx, connect_timeout=STEP, max_reconnect_attempts=0, allow_reconnect=False
    )
    other = await nats.connect(
        url, tls=ctx, connect_timeout=STEP, max_reconnect_attempts=0, allow_reconnect=False
    )

    sub = await nc.subscribe("tls.py")

    async def echo(msg):
        await msg.respond(msg.data[::-1])

    await other.subscribe("tls.svc", cb=echo)
    await other.flush()
    await nc.flush()
    # Interest set up on one shard is visible on all after the flush round trip of its owner;
    # probe until the subscriber sees traffic from the other connection.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STEP
    while True:
        await other.publish("tls.py", b"probe")
        await other.flush()
        try:
            await sub.next_msg(timeout=0.05)
            break
        except asyncio.TimeoutError:
            assert loop.time() < deadline, "subscription never visible"
    big = bytes(range(256)) * 400
    for i in range(50):
        await other.publish("tls.py", str(i).encode() + b":" + big)
    await other.flush()
    for i in range(50):
        msg = await sub.next_msg(timeout=STEP)
        n, _, body = msg.data.partition(b":")
        assert n == str(i).encode(), (n, i)
        assert body == big, "payload corrupted over TLS"
    deadline = loop.time() + STEP
    while True:
        try:
            resp = await nc.request("tls.svc", b"abc", timeout=1.0)
            break
        except nats.errors.NoRespondersError:
            assert loop.time() < deadline, "responder never visible"
            await asyncio.sleep(0.02)
    assert resp.data == b"cba", resp.data
    await nc.close()
    await other.close()
    print("tls smoke: all passed")


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit("usage: tls_smoke.py URL CA CERT KEY")
    try:
        asyncio.run(asyncio.wait_for(main(*sys.argv[1:]), timeout=60))
    except Exception as e:  # any failure must surface as a non-zero exit with its reason
        print(f"tls smoke: FAILED: {type(e).__name__}: {e!r}", file=sys.stderr)
        sys.exit(1)
