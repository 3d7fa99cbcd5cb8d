"""Per-trigger counters, merged across trigger-server replicas in the ``nf_trigger_stats`` bucket.

Each replica counts in memory and, at most every ``interval`` seconds per trigger, adds its
*deltas* to the trigger's one record (key ``<tenant>.<trigger token>``, the same key as in
``nf_triggers``) with an optimistic ``update(last=revision)`` loop. Any number of replicas merge
into one record; the key count stays one per trigger. A replica killed between two flushes
loses at most one interval of counts (the launches themselves are exactly once regardless).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.kv import KeyValue

from natsflow_engine import layout
from natsflow_engine.natsutil import cancel_and_wait
from natsflow_engine.observability import Metrics
from natsflow_engine.store import compare_and_set, open_or_create_bucket

__all__ = ["BUCKET_TRIGGER_STATS", "StatsBook", "TriggerStats", "decode_stats", "open_stats_bucket"]

log = logging.getLogger(__name__)

BUCKET_TRIGGER_STATS = layout.BUCKET_TRIGGER_STATS


class TriggerStats(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Totals of one trigger across every replica and restart."""

    v: int = 1
    received: int = 0
    launched: int = 0
    duplicates: int = 0
    rejected: int = 0
    redelivered: int = 0
    """Deliveries of a message after its first (a replica died or a launch was retried)."""
    last_error: str | None = None
    last_error_at: str | None = None
    updated: str = ""


_decoder = msgspec.json.Decoder(TriggerStats)
_COUNTERS = ("received", "launched", "duplicates", "rejected", "redelivered")


def decode_stats(data: bytes | None) -> TriggerStats:
    if not data:
        return TriggerStats()
    try:
        return _decoder.decode(data)
    except msgspec.DecodeError:
        return TriggerStats()


async def open_stats_bucket(js: JetStreamContext, *, replicas: int = 1, memory: bool = False) -> KeyValue:
    return await open_or_create_bucket(
        js,
        KeyValueConfig(
            bucket=BUCKET_TRIGGER_STATS,
            history=1,
            replicas=replicas,
            storage=StorageType.MEMORY if memory else StorageType.FILE,
            description="natsflow: trigger counters merged across trigger-server replicas",
        ),
    )


@dataclass
class _Delta:
    received: int = 0
    launched: int = 0
    duplicates: int = 0
    rejected: int = 0
    redelivered: int = 0
    last_error: str | None = None
    last_error_at: str | None = None

    def empty(self) -> bool:
        return not (
            self.received
            or self.launched
            or self.duplicates
            or self.rejected
            or self.redelivered
            or self.last_error
        )


class StatsBook:
    """In-memory deltas per trigger key, flushed to KV by a background task; with ``metrics``,
    the Prometheus counters move too (labels: the tenant and the trigger's key token)."""

    def __init__(self, kv: KeyValue, interval: float = 1.0, metrics: Metrics | None = None) -> None:
        self.kv = kv
        self.interval = interval
        self.metrics = metrics
        self._deltas: dict[str, _Delta] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.local: dict[str, _Delta] = {}
        """Totals of this replica since it started (for logs and tests)."""

    def _both(self, key: str) -> tuple[_Delta, _Delta]:
        return self._deltas.setdefault(key, _Delta()), self.local.setdefault(key, _Delta())

    def count(self, key: str, field: str, n: int = 1) -> None:
        """Add ``n`` to a counter (received, launched, duplicates, rejected, redelivered) of ``key``."""
        for delta in self._both(key):
            setattr(delta, field, getattr(delta, field) + n)
        if self.metrics is not None:
            tenant, _, trigger = key.partition(".")
            self.metrics.trigger_counted(tenant, trigger, field, n)

    def rejected(self, key: str, reason: str) -> None:
        """A message of ``key`` was dead-lettered for ``reason``."""
        self.count(key, "rejected")
        self.error(key, reason)
        if self.metrics is not None:
            tenant, _, trigger = key.partition(".")
            self.metrics.trigger_rejected(tenant, trigger, reason)

    def error(self, key: str, message: str) -> None:
        at = datetime.now(UTC).isoformat()
        for delta in self._both(key):
            delta.last_error, delta.last_error_at = message[:500], at

    def start(self) -> None:
        if self._task is None:
            self._stopping = asyncio.Event()
            self._task = asyncio.create_task(self._loop(self._stopping), name="natsflow-trigger-stats")

    async def stop(self) -> None:
        """Stop the loop (a flush under way finishes first: cancelling it between its write and
        its return would lose or double its counts), then flush what is left (bounded)."""
        task, self._task = self._task, None
        if task is not None:
            self._stopping.set()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5.0):
                    await asyncio.shield(task)
            if not task.done():
                await cancel_and_wait(task)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5.0):
                await self.flush()

    async def _loop(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await stopping.wait()
            if stopping.is_set():
                return
            try:
                await self.flush()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("flushing trigger stats failed: %s", exc)

    async def flush(self) -> None:
        """Merge every pending delta into its KV record; the deltas not merged (a failure, or
        a cancellation before their write) are kept for the next flush."""
        pending, self._deltas = self._deltas, {}
        left = dict(pending)
        try:
            for key, delta in pending.items():
                if not delta.empty():
                    await self._merge(key, delta)
                del left[key]
        finally:
            for key, delta in left.items():
                self._restore(key, delta)

    def _restore(self, key: str, delta: _Delta) -> None:
        into = self._deltas.setdefault(key, _Delta())
        for name in _COUNTERS:
            setattr(into, name, getattr(into, name) + getattr(delta, name))
        if delta.last_error and not into.last_error:
            into.last_error, into.last_error_at = delta.last_error, delta.last_error_at

    async def _merge(self, key: str, delta: _Delta) -> None:
        async def add(current: bytes | None) -> bytes:
            total = decode_stats(current)
            return msgspec.json.encode(
                TriggerStats(
                    received=total.received + delta.received,
                    launched=total.launched + delta.launched,
                    duplicates=total.duplicates + delta.duplicates,
                    rejected=total.rejected + delta.rejected,
                    redelivered=total.redelivered + delta.redelivered,
                    last_error=delta.last_error or total.last_error,
                    last_error_at=delta.last_error_at if delta.last_error else total.last_error_at,
                    updated=datetime.now(UTC).isoformat(),
                )
            )

        await compare_and_set(self.kv, key, add)  # another replica merged first: reload and add again
