"""nats-server memory for message ids: publishes with and without ``Nats-Msg-Id``.

    python -m bench.dedupe --messages 300000

Every engine publish carries a message id (commands, jobs, history), and JetStream remembers
each id for the stream's duplicate window (``LayoutSettings.duplicate_window``, 600 s). This
bench publishes ``--messages`` small messages to a stream that keeps only the last 1,000 (so
what remains is the id table, not the messages), once without ids and once with a unique id
each, on a fresh nats-server each time, and prints the server's RSS before and after. Not part
of CI.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

import nats
from nats.js.api import StreamConfig
from natsflow_engine.server import EmbeddedNatsServer


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def run(messages: int, with_ids: bool, window: float) -> None:
    with EmbeddedNatsServer() as server:
        assert server.pid is not None
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name="S", subjects=["s.>"], max_msgs=1000, duplicate_window=window))
        before = _rss_mb(server.pid)
        for first in range(0, messages, 2000):
            await asyncio.gather(*(
                js.publish(f"s.{i}", b"x" * 200, headers={"Nats-Msg-Id": f"{i:024d}.h1"} if with_ids else None)
                for i in range(first, min(messages, first + 2000))
            ))
        await asyncio.sleep(2)
        after = _rss_mb(server.pid)
        print(f"{'with' if with_ids else 'without'} message ids: {messages} publishes, nats-server RSS "
              f"{before:.0f} -> {after:.0f} MB (load average {os.getloadavg()[0]:.1f})")
        await nc.close()


async def main(messages: int, window: float) -> None:
    await run(messages, False, window)
    await run(messages, True, window)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=300_000)
    parser.add_argument("--window", type=float, default=600.0, help="duplicate window, seconds")
    args = parser.parse_args()
    asyncio.run(main(args.messages, args.window))
