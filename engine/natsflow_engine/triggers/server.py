"""The trigger server: watches trigger definitions and runs one :class:`TriggerRunner` per trigger.

Definitions live in the ``nf_triggers`` bucket (written by the operator or ``natsflow apply``),
for every tenant of the account, under ``<tenant>.<trigger token>``; a definition whose body
names another tenant than its key is not served. With ``tenant`` the server serves only that
tenant's definitions (its connection is that tenant's account). The server watches the bucket: a new definition starts a
runner, a changed one restarts it (expressions are compiled once per revision), a suspended or
removed one stops it, all live. Any number of trigger-server replicas may run: they share each
trigger's durable consumer, and launches are exactly once (see :mod:`.ledger`).

Shutdown runs in phases: stop watching, stop every runner (stop fetching, let launches in flight
finish for ``shutdown_timeout``, cancel the rest, whose messages are redelivered), flush the
counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import msgspec
from nats.aio.client import Client
from nats.js.errors import BucketNotFoundError
from nats.js.kv import KeyValue

from natsflow_engine import catalog, layout
from natsflow_engine.natsutil import cancel_and_wait
from natsflow_engine.observability import Metrics
from natsflow_engine.runtime.setup import LayoutSettings, ensure_layout
from natsflow_engine.triggers.deadletter import ensure_dlq_stream
from natsflow_engine.triggers.ledger import LaunchLedger
from natsflow_engine.triggers.runner import ProcessCheck, TriggerRunner, TriggerSettings
from natsflow_engine.triggers.stats import StatsBook, open_stats_bucket

__all__ = ["TriggerServer", "TriggerSettings"]

log = logging.getLogger(__name__)


class TriggerServer:
    """Serves every trigger of every tenant of the account; see the module docstring."""

    def __init__(
        self,
        nc: Client,
        settings: TriggerSettings | None = None,
        *,
        metrics: Metrics | None = None,
        tenant: str | None = None,
    ) -> None:
        self.nc = nc
        self.tenant = layout.validate_tenant(tenant) if tenant is not None else None
        """The one tenant served (the connection is its account's); None: every tenant."""
        self.metrics = metrics
        self.js = nc.jetstream()
        self.settings = settings or TriggerSettings()
        self.runners: dict[str, TriggerRunner] = {}
        self.suspended: dict[str, catalog.TriggerRecord] = {}
        self._revisions: dict[str, int] = {}
        self._watch_task: asyncio.Task[None] | None = None
        self._synced = asyncio.Event()
        self.stats: StatsBook

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> TriggerServer:
        """Open the buckets (creating what is missing), start watching; returns once the
        definitions present at start have runners."""
        self.triggers = await self._bucket(layout.BUCKET_TRIGGERS)
        workflows = await self._bucket(layout.BUCKET_WORKFLOWS)
        s = self.settings
        self.ledger = await LaunchLedger.open(self.js, retention=s.launch_retention, replicas=s.replicas)
        self.stats = StatsBook(
            await open_stats_bucket(self.js, replicas=s.replicas), s.stats_interval, self.metrics
        )
        self.processes = ProcessCheck(workflows)
        if s.dead_letter_stream:
            await ensure_dlq_stream(self.js, replicas=s.replicas)
        self.stats.start()
        self._synced.clear()
        self._watch_task = asyncio.create_task(self._watch(), name="natsflow-trigger-watch")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10.0):
                await self._synced.wait()
        log.info("trigger server started with %d trigger(s)", len(self.runners))
        return self

    async def stop(self) -> None:
        task, self._watch_task = self._watch_task, None
        if task is not None:
            await cancel_and_wait(task)
        runners, self.runners = list(self.runners.values()), {}
        await asyncio.gather(*(runner.stop() for runner in runners), return_exceptions=True)
        await self.stats.stop()
        log.info("trigger server stopped")

    async def __aenter__(self) -> TriggerServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def running(self) -> bool:
        return self._watch_task is not None and not self._watch_task.done()

    async def wait_ready(self, tenant: str, name: str, timeout: float = 10.0) -> TriggerRunner:
        """Wait until the trigger's runner is bound to its consumer (tests, readiness)."""
        key = layout.trigger_key(tenant, name)
        async with asyncio.timeout(timeout):
            while True:
                runner = self.runners.get(key)
                if runner is not None and runner.ready.is_set():
                    return runner
                await asyncio.sleep(0.01)

    async def _bucket(self, name: str) -> KeyValue:
        try:
            return await self.js.key_value(name)
        except BucketNotFoundError:
            await ensure_layout(self.js, LayoutSettings(replicas=self.settings.replicas))
            return await self.js.key_value(name)

    # --- watching definitions -------------------------------------------------------------------

    async def _watch(self) -> None:
        while True:
            try:
                watcher = await self.triggers.watch(f"{self.tenant}.>" if self.tenant else ">")
                try:
                    async for entry in watcher:
                        if entry is None:
                            self._synced.set()
                            continue
                        await self._apply(entry.key, entry.revision or 0, entry.value, entry.operation)
                finally:
                    with contextlib.suppress(Exception):
                        await watcher.stop()  # type: ignore[no-untyped-call]
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("watching trigger definitions failed: %s; watching again", exc)
                await asyncio.sleep(1.0)

    async def _apply(self, key: str, revision: int, value: bytes | None, operation: str | None) -> None:
        if self._revisions.get(key) == revision:
            return  # seen already (a re-watch replays current values)
        self._revisions[key] = revision
        if operation in ("DEL", "PURGE") or not value:
            self.suspended.pop(key, None)
            await self._stop_runner(key)
            log.info("trigger %s removed", key)
            return
        try:
            record = catalog.decode_trigger(value)
        except msgspec.DecodeError as exc:
            log.error("trigger definition %s is unreadable (%s); not serving it", key, exc)
            await self._stop_runner(key)
            return
        owner = key.split(".", 1)[0]  # whose trigger it is: the key (and the account) says
        if record.tenant != owner or (self.tenant is not None and owner != self.tenant):
            log.error("trigger %s names tenant %r; not serving it", key, record.tenant)
            await self._stop_runner(key)
            return
        await self._stop_runner(key)
        if record.suspended:
            self.suspended[key] = record
            log.info("trigger %s suspended", key)
            return
        self.suspended.pop(key, None)
        runner = TriggerRunner(
            self.nc,
            record,
            revision,
            triggers=self.triggers,
            ledger=self.ledger,
            stats=self.stats,
            processes=self.processes,
            settings=self.settings,
        )
        self.runners[key] = runner
        runner.start()

    async def _stop_runner(self, key: str) -> None:
        runner = self.runners.get(key)
        if runner is not None:
            await runner.stop()
            self.runners.pop(key, None)
