"""``python -m natsflow_engine.triggers [NATS_URL]``: a bare trigger server (no health port).

``natsflow trigger-server`` is the full command; this entry point starts faster and serves
tests and debugging. Stops on SIGINT/SIGTERM.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

import nats

from natsflow_engine.triggers.server import TriggerServer, TriggerSettings


async def _main(url: str) -> None:
    nc = await nats.connect(url, max_reconnect_attempts=-1)
    server = await TriggerServer(nc, TriggerSettings()).start()
    print("trigger server ready", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.stop()
        await nc.close()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(
        _main(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("NATS_URL", "nats://127.0.0.1:4222"))
    )
