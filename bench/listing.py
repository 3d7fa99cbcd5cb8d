"""Listing pages of a large instance index: a consumer per page against chained gets.

    python -m bench.listing --entries 1000000

Writes ``--entries`` index entries straight into ``nf_index`` of a fresh file-storage
nats-server (not run by the engine: this isolates the listing; ``bench/paging.py`` is the
engine-run figure), then times ``--repeat`` times each: the first page of 50 and the page of
50 half-way, read through a consumer (``_consumer_page``, what every page used before) and
through :func:`natsflow_engine.index.list_entries` (chained ``next_by_subj`` gets for pages of
up to 100). Prints median and max ms and the 1-minute load average. Not part of CI.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time

import msgspec
import nats
from natsflow_engine import layout
from natsflow_engine.index import IndexEntry, IndexQuery, _consumer_page, list_entries
from natsflow_engine.runtime.setup import ensure_layout
from natsflow_engine.server import EmbeddedNatsServer


async def main(entries: int, repeat: int) -> None:
    with EmbeddedNatsServer() as server:
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        await ensure_layout(js)
        started = time.monotonic()
        for first in range(0, entries, 5000):
            await asyncio.gather(*(
                js.publish(
                    f"$KV.{layout.BUCKET_INDEX}." + layout.index_key("t", "completed", "fast", 1, "20261205", None, f"{i:024d}"),
                    msgspec.json.encode(IndexEntry(id=f"{i:024d}", tenant="t", process_id="fast", version=1, state="completed")),
                )
                for i in range(first, min(entries, first + 5000))
            ))
        print(f"wrote {entries} index entries in {time.monotonic() - started:.0f} s")
        query = IndexQuery("t")
        for name, page_of, after in (
            ("consumer, first page", _consumer_page, 0),
            ("chained gets, first page", list_entries, 0),
            ("consumer, page half-way", _consumer_page, entries // 2),
            ("chained gets, page half-way", list_entries, entries // 2),
        ):
            times = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                page = await page_of(js, query, 50, after)
                times.append(1000 * (time.perf_counter() - t0))
            assert len(page.entries) == 50
            print(f"{name}: median {statistics.median(times):.1f} ms, max {max(times):.1f} ms "
                  f"(load average {os.getloadavg()[0]:.1f})")
        await nc.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.entries, args.repeat))
