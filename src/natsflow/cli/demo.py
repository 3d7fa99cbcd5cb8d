"""``natsflow demo``: the order-fulfilment example end to end on an embedded NATS server."""

from __future__ import annotations

import asyncio
import logging
import random
import sys
import time
from pathlib import Path
from typing import Any

import click
import msgspec
import nats
from natsflow_engine import layout
from natsflow_engine.runtime import records as r
from natsflow_engine.runtime.definitions import deploy_definitions
from natsflow_engine.runtime.engine import Engine
from natsflow_engine.runtime.setup import ensure_layout, open_buckets
from natsflow_engine.server import EmbeddedNatsServer
from natsflow_engine.store import publish_command

__all__ = ["make_orders", "run_demo"]

OUTCOMES = {"end_fulfilled": "fulfilled", "end_backordered": "backordered", "end_cancelled": "cancelled"}


def make_orders(count: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    catalog = [("keyboard", 45), ("monitor", 189), ("cable", 9), ("laptop", 420), ("mouse", 25)]
    orders = []
    for n in range(1, count + 1):
        picks = rng.sample(catalog, rng.randint(1, 3))
        items = [
            {"sku": sku, "price": price, "quantity": rng.choice([1, 1, 1, 2, 2, 3, 6])}
            for sku, price in picks
        ]
        orders.append({
            "orderId": f"A{n:04d}",
            "items": items,
            "customer": {"email": f"customer{n}@example.com", "card": f"**** {1000 + n}"},
        })  # fmt: skip
    return orders


async def run_demo(directory: Path, *, count: int, timeout: float, tenant: str) -> bool:
    from natsflow.cli.run import load_worker

    bpmn = next(directory.glob("*.bpmn"), None)
    if bpmn is None:
        raise click.ClickException(f"no .bpmn file in {directory}")
    app = load_worker(str(directory / "workers.py") + ":app")
    logging.getLogger("natsflow").setLevel(logging.WARNING)
    decoder = msgspec.json.Decoder(r.HistoryRecord)
    with EmbeddedNatsServer() as server:
        click.echo(f"nats-server (embedded) listening on {server.url}")
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        await ensure_layout(js)
        buckets = await open_buckets(js)
        deployed = await deploy_definitions(buckets[layout.BUCKET_WORKFLOWS], tenant, bpmn)
        for d in deployed:
            click.echo(f"deployed {d.process_id} version {d.version} from {bpmn}")
        engine = await Engine(nc).start()
        app.nc, app.tenant = nc, tenant
        await app.start()

        finished: dict[str, str] = {}
        paths: dict[str, list[str]] = {}
        seen: set[tuple[str, int]] = set()
        done = asyncio.Event()

        async def on_history(msg: Any) -> None:
            rec = decoder.decode(msg.data)
            if (rec.instance, rec.step) in seen:  # plain subscribers also see republished steps
                return
            seen.add((rec.instance, rec.step))
            path = paths.setdefault(rec.instance, [])
            path.extend(e.element_id or "" for e in rec.events if e.type == "element-completed")
            if rec.state != "active":
                finished[rec.instance] = rec.state
                if len(finished) == count:
                    done.set()

        sub = await nc.subscribe(layout.tenant_history_subjects(tenant), cb=on_history)
        orders = make_orders(count)
        started = time.perf_counter()
        ids = {}
        for order in orders:
            iid = layout.idempotent_instance_id(tenant, "order-fulfilment", order["orderId"])
            ids[iid] = order
            cmd = r.Launch(
                id=f"launch.{iid}",
                tenant=tenant,
                instance=iid,
                process_id="order-fulfilment",
                variables=order,
                business_key=order["orderId"],
            )
            await publish_command(js, cmd)
        try:
            await asyncio.wait_for(done.wait(), timeout)
        except TimeoutError:
            pass
        elapsed = time.perf_counter() - started
        await sub.unsubscribe()
        kv = buckets[layout.BUCKET_INSTANCES]
        tally: dict[str, int] = {}
        click.echo(f"\n{'order':<7} {'total':>6}  {'outcome':<12} path")
        for iid, order in ids.items():
            state = r.decode_state((await kv.get(layout.instance_key(tenant, iid))).value or b"")
            end = next((e for e in reversed(paths.get(iid, [])) if e in OUTCOMES), None)
            outcome = OUTCOMES.get(end or "", state.state)
            tally[outcome] = tally.get(outcome, 0) + 1
            total = state.root_vars().get("total", "?")
            click.echo(f"{order['orderId']:<7} {total:>6}  {outcome:<12} {' > '.join(paths.get(iid, []))}")
        await app.stop()
        await engine.stop()
        await nc.close()
    ok = len(finished) == count and all(s == "completed" for s in finished.values())
    summary = ", ".join(f"{n} {k}" for k, n in sorted(tally.items()))
    click.echo(f"\n{count} orders in {elapsed:.2f} s: {summary}")
    if not ok:
        click.echo(f"error: {count - len(finished)} orders did not finish within {timeout} s", err=True)
    sys.stdout.flush()
    return ok
