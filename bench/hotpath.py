"""Profile the one-process reference run with py-spy and print where the CPU goes.

    python -m bench.hotpath [--instances 20000] [--seconds 8]

Starts a nats-server and one ``bench.node`` process (engine + worker + load), lets py-spy sample
it (``--nonblocking``, 100 Hz) during a burst, and prints the functions with the largest
inclusive and self shares of the samples, plus what ``Engine._apply`` and nats-py's request path
spend their time on. Needs ``pip install py-spy``.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

if __package__ in (None, ""):  # pragma: no cover
    sys.path.append(str(Path(__file__).resolve().parent.parent))

from bench.common import monitored_server
from bench.procs import NodeProcess
from bench.scenarios import prepare


def frame(raw: str) -> str:
    name, _, where = raw.partition(" (")
    return f"{name} ({where.rsplit('/', 1)[-1].split(':')[0]})" if where else name


def analyse(raw: Path, top: int = 25) -> str:
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    children: dict[str, Counter[str]] = {}
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        frames = [frame(f) for f in stack.split(";")]
        for f in dict.fromkeys(frames):  # each function once per stack
            inclusive[f] += n
        own[frames[-1]] += n
        for i, f in enumerate(frames[:-1]):
            children.setdefault(f, Counter())[frames[i + 1]] += n
    out = [f"{total} samples", "inclusive:"]
    out += [f"  {v / total:6.1%}  {k}" for k, v in inclusive.most_common(top)]
    out.append("self:")
    out += [f"  {v / total:6.1%}  {k}" for k, v in own.most_common(top)]
    for parent in (
        "Engine._apply (engine.py)",
        "Engine._step (engine.py)",
        "Client._request_new_style (client.py)",
    ):
        if parent in children:
            out.append(f"inside {parent}:")
            out += [f"  {v / total:6.1%}  {k}" for k, v in children[parent].most_common(8)]
    return "\n".join(out)


async def main(instances: int, seconds: float) -> None:
    spy = Path(sys.executable).parent / "py-spy"
    out = Path(tempfile.mkdtemp(prefix="natsflow-hotpath-"))
    server, _ = monitored_server()
    with server:
        await prepare(server.url, 1)
        args = ["--url", server.url, "--roles", "engine,worker,load", "--instances", str(instances)]
        node = await NodeProcess("all", [*args, "--paced-seconds", "0"], log_dir=out).start()
        try:
            await node.go()
            await asyncio.sleep(1.0)  # past the start of the burst
            cmd = [str(spy), "record", "-p", str(node.pid), "-d", str(int(seconds)), "-r", "100"]
            cmd += ["-f", "raw", "-o", str(out / "profile.raw"), "--nonblocking"]
            await asyncio.to_thread(
                subprocess.run, cmd, capture_output=True, check=True, timeout=seconds + 30
            )
            burst = await node.expect("burst", 600)
            print(f"burst: {burst['completed']} instances at {burst['rate']:.0f}/s (sampled by py-spy)")
        finally:
            await node.stop()
    print(analyse(out / "profile.raw"))
    shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--instances", type=int, default=20_000)
    p.add_argument("--seconds", type=float, default=8.0)
    a = p.parse_args()
    asyncio.run(main(a.instances, a.seconds))
