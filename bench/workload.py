"""The benchmark workloads: the reference process, the order-fulfilment example, ``fast`` (start
to end in one step: the cheapest instance, for filling the instance index) and ``parallel10``
(ten parallel service tasks on an instance carrying a 50 KB variable).

Each workload names its BPMN file, makes the variables of the n-th instance and registers job
handlers on a :class:`~natsflow.worker.Worker`. The order-fulfilment handlers are the
example's own (``examples/order-fulfilment/workers.py``), registered with a bench concurrency.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from natsflow_engine.runtime.setup import JobConsumerSettings
from natsflow_engine.worker import Handler, Job, Worker

from bench.common import ORDER_BPMN, ORDER_WORKERS, REFERENCE_BPMN

MODELS = Path(__file__).resolve().parent / "models"
BLOB = 50 * 1024
"""Size of the large variable of a ``parallel10`` instance."""


@dataclass(frozen=True)
class Workload:
    name: str
    process_id: str
    bpmn: Path
    task_types: tuple[str, ...]
    variables: Callable[[int], dict[str, Any]]
    steps: int
    """History records (engine steps) one instance of the common path takes."""


def _reference_vars(n: int) -> dict[str, Any]:
    return {"amount": n % 200}


def _order_vars(n: int) -> dict[str, Any]:
    kind = n % 10  # 0: backorder (quantity over stock), 1: payment declined (total over limit)
    quantity = 6 if kind == 0 else 2
    price = 400.0 if kind == 1 else 19.5
    return {
        "orderId": f"o{n}",
        "items": [
            {"sku": "A-1", "price": price, "quantity": quantity},
            {"sku": "B-2", "price": 5.0, "quantity": 1},
        ],
        "customer": {"email": f"c{n}@example.org", "card": "4111"},
    }


REFERENCE = Workload("reference", "reference", REFERENCE_BPMN, ("check",), _reference_vars, 2)
ORDER = Workload(
    "order",
    "order-fulfilment",
    ORDER_BPMN,
    ("check-stock", "charge-payment", "reserve-shipment", "ship-order", "notify-customer", "cancel-order"),
    _order_vars,
    5,
)


def _parallel_vars(n: int) -> dict[str, Any]:
    return {"n": n, "blob": "x" * BLOB}


FAST = Workload("fast", "fast", MODELS / "fast.bpmn", (), lambda n: {"n": n}, 1)
PARALLEL = Workload("parallel10", "parallel10", MODELS / "parallel10.bpmn", ("branch",), _parallel_vars, 11)
WORKLOADS = {w.name: w for w in (REFERENCE, ORDER, FAST, PARALLEL)}


async def _check(job: Job) -> dict[str, Any]:
    return {"checked": True}


async def _branch(job: Job) -> dict[str, Any]:
    return {}


def _order_handlers() -> dict[str, Handler]:
    spec = importlib.util.spec_from_file_location("natsflow_example_order_workers", ORDER_WORKERS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    names = {
        "check-stock": "check_stock",
        "charge-payment": "charge_payment",
        "reserve-shipment": "reserve_shipment",
        "ship-order": "ship_order",
        "notify-customer": "notify_customer",
        "cancel-order": "cancel_order",
    }
    return {task_type: getattr(module, fn) for task_type, fn in names.items()}


class JobLog:
    """Appends ``<job key> <delivery>`` per handler start to a file, unbuffered, so the lines
    written before a SIGKILL survive it (fault tests read them)."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def write(self, key: str, attempt: int, what: str = "start") -> None:
        os.write(self.fd, f"{what} {key} {attempt}\n".encode())

    def close(self) -> None:
        os.close(self.fd)


def register(
    worker: Worker,
    workload: Workload,
    *,
    concurrency: int = 128,
    consumer: JobConsumerSettings | None = None,
    delay: float = 0.0,
    job_log: JobLog | None = None,
) -> None:
    """Register the workload's handlers; ``delay`` makes every job take that long, ``job_log``
    records every run (key and delivery attempt) before and after the handler."""
    handlers: dict[str, Handler] = (
        _order_handlers() if workload is ORDER else {"check": _check, "branch": _branch}
    )
    for task_type in workload.task_types:
        worker.task(task_type, concurrency=concurrency, consumer=consumer)(
            _wrap(handlers[task_type], delay, job_log)
        )


def _wrap(handler: Handler, delay: float, job_log: JobLog | None) -> Handler:
    if not delay and job_log is None:
        return handler

    async def wrapped(job: Job) -> Any:
        if job_log is not None:
            job_log.write(job.key, job.attempt)
        if delay:
            await asyncio.sleep(delay)
        result = await handler(job)
        if job_log is not None:
            job_log.write(job.key, job.attempt, "done")
        return result

    return wrapped
