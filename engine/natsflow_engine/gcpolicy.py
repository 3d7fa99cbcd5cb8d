"""The garbage collector's thresholds in natsflow's processes.

A step allocates thousands of short-lived container objects (records, history events, futures,
messages), so CPython's default thresholds (700, 10, 10) run a full collection every ~70,000
surviving allocations: in the one-process reference run that was 11 full collections per
10,000 instances, each walking the whole heap (77 ms on average, about a sixth of the
process's CPU). :data:`DEFAULT` keeps the young generations small and collects the old one a
hundredth as often (CPython still skips a full collection until the objects waiting for it are
a quarter of the heap). docs/benchmarks.md ("the collector's thresholds") has the measurements.

``NATSFLOW_GC_THRESHOLDS`` overrides them: three integers ``"gen0,gen1,gen2"`` (``700,10,10``
is CPython's default) or ``off`` to keep whatever the interpreter has.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Mapping

__all__ = ["DEFAULT", "ENV", "thresholds", "tune"]

DEFAULT = (2000, 10, 100)
ENV = "NATSFLOW_GC_THRESHOLDS"


def thresholds(value: str | None) -> tuple[int, int, int] | None:
    """The thresholds ``value`` asks for (None: leave the interpreter's); ``ValueError`` names
    what is wrong with it."""
    if value is None or not value.strip():
        return DEFAULT
    if value.strip().lower() == "off":
        return None
    parts = value.split(",")
    try:
        numbers = tuple(int(part) for part in parts)
    except ValueError:
        numbers = ()
    if len(numbers) != 3 or numbers[0] < 1 or min(numbers) < 0:
        raise ValueError(
            f"{ENV} must be three integers 'gen0,gen1,gen2' (gen0 at least 1) or 'off', not {value!r}"
        )
    return numbers[0], numbers[1], numbers[2]


def tune(environ: Mapping[str, str] = os.environ) -> tuple[int, int, int]:
    """Set the collector's thresholds for this process (:data:`DEFAULT`, or ``NATSFLOW_GC_THRESHOLDS``);
    the thresholds in force after the call."""
    wanted = thresholds(environ.get(ENV))
    if wanted is not None:
        gc.set_threshold(*wanted)
    current = gc.get_threshold()
    return current[0], current[1], current[2]
