"""A trigger server process that dies on every message it is handed (``os._exit`` as soon as
its runner starts handling one), as a process killed by what a message makes it do: no handler
code runs after. Run as ``python crashing_trigger_server.py NATS_URL``; prints ``ready``."""

from __future__ import annotations

import asyncio
import os
import sys

import nats
from nats.aio.msg import Msg
from natsflow_engine.triggers.mapping import TriggerMapping
from natsflow_engine.triggers.runner import TriggerRunner
from natsflow_engine.triggers.server import TriggerServer, TriggerSettings

CRASH_CODE = 17


async def _die(self: TriggerRunner, mapping: TriggerMapping, msg: Msg, origin: str) -> bool:
    os._exit(CRASH_CODE)


async def main(url: str) -> None:
    TriggerRunner._launch = _die  # the crash this process stands for
    nc = await nats.connect(url)
    async with TriggerServer(nc, TriggerSettings(stats_interval=0.1)):
        print("ready", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
