"""Does an R3 KV bucket keep every acknowledged update when one node is SIGKILLed?

    python -m bench.r3_kv_check [--keys 3000] [--rounds 3] [--victim 0|leader|follower]

A three-node loopback cluster; ``--keys`` keys are created and updated twice each, with
``update(last=revision)``, 200 at a time, the way the engine writes instance records. One node
is killed a second into the run and restarted two seconds later. At the end every key must hold
the value of its last acknowledged update. Prints one line per round; exit code 1 on a loss.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from pathlib import Path

if __package__ in (None, ""):  # pragma: no cover
    sys.path.append(str(Path(__file__).resolve().parent.parent))

import nats
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import KeyWrongLastSequenceError

from bench.common import NatsCluster, wait_jetstream


async def one_round(keys: int, victim_rule: str) -> tuple[int, int, str]:
    with NatsCluster(name="kvcheck") as c:
        await wait_jetstream(c.url, 3)
        nc = await nats.connect(c.urls, reconnect_time_wait=0.2, max_reconnect_attempts=600)
        js = nc.jetstream(timeout=5)
        kv = await js.create_key_value(
            KeyValueConfig(bucket="t", history=1, replicas=3, storage=StorageType.FILE)
        )
        acked: dict[str, bytes] = {}

        async def write(key: str, value: bytes, last: int) -> int:
            for _ in range(100):
                try:
                    rev = await (kv.create(key, value) if last == 0 else kv.update(key, value, last=last))
                    acked[key] = value
                    return rev
                except KeyWrongLastSequenceError:
                    entry = await kv.get(key)  # an earlier try was stored but its ack was lost
                    if entry.value == value:
                        acked[key] = value
                        return entry.revision
                    last = entry.revision
                except Exception:
                    await asyncio.sleep(0.2)
            raise RuntimeError(f"{key}: no write in 100 tries")

        sem = asyncio.Semaphore(200)

        async def key_task(i: int) -> None:
            async with sem:
                rev = await write(f"k{i}", b"v0", 0)
                rev = await write(f"k{i}", b"v1", rev)
                await write(f"k{i}", b"v2", rev)

        async def chaos() -> str:
            await asyncio.sleep(1.0)
            leader = int((await js.stream_info("KV_t")).cluster.leader[1:])
            victim = {"leader": leader, "follower": (leader + 1) % 3}.get(
                victim_rule, int(victim_rule) if victim_rule.isdigit() else 0
            )
            c.kill_node(victim)
            await asyncio.sleep(2.0)
            c.start_node(victim)
            return f"killed n{victim} (KV leader was n{leader})"

        chaos_task = asyncio.create_task(chaos())
        await asyncio.gather(*(key_task(i) for i in range(keys)))
        what = await chaos_task
        await asyncio.sleep(2.0)
        lost = 0
        for key, value in acked.items():
            with contextlib.suppress(Exception):
                if (await kv.get(key)).value != value:
                    lost += 1
        await nc.close()
        return len(acked), lost, what


async def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--keys", type=int, default=3000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--victim", default="0")
    args = p.parse_args()
    worst = 0
    for n in range(args.rounds):
        acked, lost, what = await one_round(args.keys, args.victim)
        print(
            f"round {n + 1}: {what}; {acked} keys acknowledged, {lost} lost their last acknowledged update",
            flush=True,
        )
        worst = max(worst, lost)
    return 1 if worst else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
