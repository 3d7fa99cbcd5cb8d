"""One trigger at work: its source stream and durable consumer, and every message it launches from.

For each message: map payload and headers (:mod:`.mapping`), derive the deterministic instance
id from the idempotency key, publish the launch and wait for JetStream's acknowledgement
(:mod:`.ledger`), then acknowledge the source message. A message that can never launch goes to
the dead-letter subject and is acknowledged (it never blocks the consumer); a transient failure
(:data:`TRANSIENT`: NATS trouble, process not deployed yet) is retried with a growing delay up
to the trigger's ``max_deliver``, then dead-lettered. Any other failure is permanent: the same
message would fail the same way again, so it is dead-lettered at once with the reason. A message
the process dies on each time is dead-lettered from JetStream's max-deliveries advisory
(:mod:`.crashes`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError, KeyNotFoundError, NotFoundError
from nats.js.kv import KeyValue

from natsflow_engine import catalog, layout
from natsflow_engine.errors import (
    ConflictError,
    ConnectionFailedError,
    MappingConfigError,
    MessageRejectedError,
)
from natsflow_engine.errors import NotFoundError as NotDeployedError
from natsflow_engine.natsutil import PullLoop, cancel_and_wait
from natsflow_engine.runtime import records as r
from natsflow_engine.triggers.consumers import ensure_trigger_consumer
from natsflow_engine.triggers.crashes import ADVISORY_QUEUE, dead_letter_unhandled, max_deliveries_subject
from natsflow_engine.triggers.deadletter import dead_letter_subject, publish_dead_letter
from natsflow_engine.triggers.ledger import DEFAULT_RETENTION, LaunchLedger
from natsflow_engine.triggers.mapping import TriggerMapping
from natsflow_engine.triggers.stats import StatsBook

__all__ = ["TRANSIENT", "ProcessCheck", "TriggerRunner", "TriggerSettings"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TriggerSettings:
    """How the trigger server consumes; every field has a working default."""

    batch: int = 128
    """Messages asked for per pull request."""
    max_inflight: int = 256
    """Messages of one trigger being launched at once (per replica)."""
    pull_expires: float = 5.0
    """Seconds a pull request waits on the server for messages (pulling is continuous)."""
    check_interval: float = 5.0
    """Seconds between checks that the trigger's consumer still exists (recreated otherwise)."""
    retry_delay: float = 0.5
    """First delay of a transient retry (doubles per attempt, at most 30 s)."""
    ack_wait: float = 30.0
    """``ack_wait`` of consumers the trigger server creates itself (the operator sets its own)."""
    capture_max_age: float = 7 * 24 * 3600.0
    """``max_age`` of capture streams the trigger server creates itself."""
    launch_retention: float = DEFAULT_RETENTION
    """Seconds launch markers (``nf_launches``) are kept to count duplicates."""
    stats_interval: float = 1.0
    """Seconds between merges of the counters into ``nf_trigger_stats``."""
    max_payload: int = 1024 * 1024
    """Largest launch command; bigger variables are dead-lettered as ``too_large``."""
    dead_letter_stream: bool = True
    """Create the ``NF_DLQ`` stream that keeps default dead letters."""
    shutdown_timeout: float = 10.0
    """Seconds in-flight launches may take to finish at stop before they are cancelled."""
    replicas: int = 1
    """Replication of the streams and buckets the trigger server creates."""


class ProcessCheck:
    """Is a process (version) deployed? Positive answers are cached for ``ttl`` seconds."""

    def __init__(self, kv: KeyValue, ttl: float = 5.0) -> None:
        self.kv = kv
        self.ttl = ttl
        self._until: dict[tuple[str, str, int | None], float] = {}
        self._locks: dict[tuple[str, str, int | None], asyncio.Lock] = {}

    async def deployed(self, tenant: str, process_id: str, version: int | None) -> bool:
        k = (tenant, process_id, version)
        loop = asyncio.get_running_loop()
        if self._until.get(k, 0.0) > loop.time():
            return True
        async with self._locks.setdefault(k, asyncio.Lock()):
            if self._until.get(k, 0.0) > loop.time():
                return True
            key = (
                layout.workflow_key(tenant, process_id, version)
                if version
                else layout.workflow_latest_key(tenant, process_id)
            )
            try:
                await self.kv.get(key)
            except KeyNotFoundError:
                return False
            self._until[k] = loop.time() + self.ttl
            return True


TRANSIENT: tuple[type[Exception], ...] = (
    nats.errors.Error,  # NATS trouble, including JetStream API errors
    ConnectionFailedError,
    ConflictError,
    NotDeployedError,  # the process may be deployed soon
    TimeoutError,
    OSError,
)
"""Failures worth another attempt; a message failing otherwise is dead-lettered at once."""


class TriggerRunner:
    """Consumes one trigger's messages until stopped; see the module docstring."""

    def __init__(
        self,
        nc: Client,
        record: catalog.TriggerRecord,
        revision: int,
        *,
        triggers: KeyValue,
        ledger: LaunchLedger,
        stats: StatsBook,
        processes: ProcessCheck,
        settings: TriggerSettings,
    ) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.record = record
        self.revision = revision
        self.key = layout.trigger_key(record.tenant, record.name)
        self.triggers = triggers
        self.ledger = ledger
        self.stats = stats
        self.processes = processes
        self.settings = settings
        self.ready = asyncio.Event()
        self.stream = record.stream
        self.consumer = record.consumer or catalog.trigger_consumer(record.tenant, record.name)
        if self.consumer == layout.legacy_trigger_consumer(record.tenant, record.name):
            self.consumer = catalog.trigger_consumer(record.tenant, record.name)  # renamed in 0.2
        self.dlq = dead_letter_subject(record.tenant, record.name, record.dead_letter_subject)
        self._main: asyncio.Task[None] | None = None
        self._pull: PullLoop | None = None
        self._advisory: Subscription | None = None
        self._fresh_stream = False
        self._stopping = asyncio.Event()
        self.log = logging.LoggerAdapter(log, {"tenant": record.tenant, "trigger": record.name})

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        self._main = asyncio.create_task(self._run(), name=f"natsflow-trigger-{self.key}")

    async def stop(self, timeout: float | None = None) -> None:
        """Stop pulling, let launches in flight finish (bounded), cancel the rest."""
        self._stopping.set()
        if self._main is not None:
            await cancel_and_wait(self._main)
            self._main = None
        await self._unbind(timeout or self.settings.shutdown_timeout)

    async def _unbind(self, timeout: float) -> None:
        """Stop pulling; in-flight launches get ``timeout`` to finish (their messages are
        redelivered otherwise)."""
        pull = self._pull
        self.ready.clear()
        advisory, self._advisory = self._advisory, None
        if advisory is not None:
            with contextlib.suppress(Exception):
                await advisory.unsubscribe()
        if pull is None:
            return
        try:
            async with asyncio.timeout(timeout + 5.0):
                await pull.stop_pulling()
                await pull.drain(timeout)
        except TimeoutError:  # a launch ignored its cancellation: never hang a shutdown on it
            self.log.error(
                "trigger %s: %d launch(es) still running after stop", self.record.name, pull.inflight
            )
        self._pull = None  # not reached when cancelled while draining: stop() drains it then

    async def _run(self) -> None:
        delay = 0.5
        while not self._stopping.is_set():
            try:
                mapping = TriggerMapping(self.record)
                await self._bind(mapping)
                delay = 0.5
                await self._check_consumer()
            except asyncio.CancelledError:
                raise
            except MappingConfigError as exc:
                self.log.error("trigger %s is not usable: %s", self.record.name, exc)
                self.stats.error(self.key, str(exc))
                return  # waits for a corrected definition (a new revision restarts the runner)
            except Exception as exc:
                if self._stopping.is_set():
                    return
                self.log.warning("trigger %s: %s; retrying in %.1fs", self.record.name, exc, delay)
                self.stats.error(self.key, f"{type(exc).__name__}: {exc}")
                await self._unbind(self.settings.shutdown_timeout)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                if not await self._still_current():
                    return

    async def _still_current(self) -> bool:
        try:
            entry = await self.triggers.get(self.key)
        except KeyNotFoundError:
            return False
        return entry.revision == self.revision

    # --- stream and consumer --------------------------------------------------------------------

    async def _bind(self, mapping: TriggerMapping) -> None:
        self._fresh_stream = False
        self.stream = await self._ensure_stream()
        try:
            await self.js.consumer_info(self.stream, self.consumer)
        except NotFoundError:
            await ensure_trigger_consumer(
                self.js,
                self.stream,
                ConsumerConfig(
                    durable_name=self.consumer,
                    filter_subject=self.record.subject,
                    ack_policy=AckPolicy.EXPLICIT,
                    deliver_policy=DeliverPolicy.NEW,
                    ack_wait=self.settings.ack_wait,
                    max_deliver=self.record.max_deliver,
                    max_ack_pending=1000,
                    max_waiting=512,
                ),
                self.record.tenant,
                self.record.name,
                legacy=not self._fresh_stream,  # a new stream has no old consumer: no extra round trip
            )
            self.log.info("created consumer %s on stream %s", self.consumer, self.stream)
        # before the first pull: the server sends the advisory when the consumer is next pulled
        self._advisory = await self.nc.subscribe(
            max_deliveries_subject(self.stream, self.consumer),
            queue=ADVISORY_QUEUE,
            cb=self._on_max_deliveries,
        )
        s = self.settings
        self._pull = await PullLoop(
            self.nc,
            self.stream,
            self.consumer,
            lambda msg: self._handle(mapping, msg),
            max_inflight=s.max_inflight,
            batch=s.batch,
            expires=s.pull_expires,
            name=f"trigger-{self.key}",
        ).start()
        self.ready.set()
        self.log.info("trigger %s consuming %s from %s", self.record.name, self.record.subject, self.stream)

    async def _ensure_stream(self) -> str:
        """The record's stream; else the stream storing the subject; else a new capture stream."""
        name = self.record.stream
        if name:
            try:
                await self.js.stream_info(name)
                return name
            except NotFoundError:
                if not (self.record.captured or name.startswith(catalog.CAPTURE_STREAM_PREFIX)):
                    raise RuntimeError(
                        f"stream {name!r} of trigger {self.record.name!r} does not exist"
                    ) from None
        with contextlib.suppress(NotFoundError):
            return await self.js.find_stream_name_by_subject(self.record.subject)
        name = name or catalog.capture_stream(self.record.subject)
        try:
            await self.js.add_stream(
                StreamConfig(
                    name=name,
                    subjects=[self.record.subject],
                    retention=RetentionPolicy.INTEREST,
                    storage=StorageType.FILE,
                    max_age=self.settings.capture_max_age,
                    num_replicas=self.settings.replicas,
                    description="natsflow trigger capture stream (created by the trigger server)",
                )
            )
            self.log.info("created capture stream %s for %s", name, self.record.subject)
            self._fresh_stream = True
        except BadRequestError as exc:
            if "already in use" not in str(exc):
                raise
        return name

    # --- consuming ------------------------------------------------------------------------------

    async def _check_consumer(self) -> None:
        """Runs while messages flow (the pull loop hands them to :meth:`_handle`); raises when
        the consumer disappears, so that :meth:`_run` binds again (drift repair)."""
        while True:
            await asyncio.sleep(self.settings.check_interval)
            await self.js.consumer_info(self.stream, self.consumer)

    async def _handle(self, mapping: TriggerMapping, msg: Msg) -> None:
        meta = msg.metadata
        origin = f"{meta.stream}:{meta.sequence.stream}"
        self.stats.count(self.key, "received")
        if meta.num_delivered > 1:
            self.stats.count(self.key, "redelivered")
        try:
            launched = await self._launch(mapping, msg, origin)
        except asyncio.CancelledError:
            raise
        except MessageRejectedError as exc:
            await self._reject(msg, origin, str(exc))
            return
        except TRANSIENT as exc:
            await self._retry_later(msg, origin, exc)
            return
        except Exception as exc:  # deterministic: another attempt fails the same way
            self.log.warning("message %s cannot launch: %s: %s", origin, type(exc).__name__, exc)
            await self._reject(msg, origin, f"invalid: {type(exc).__name__}: {exc}")
            return
        self.stats.count(self.key, "launched" if launched else "duplicates")
        await msg.ack()

    async def _launch(self, mapping: TriggerMapping, msg: Msg, origin: str) -> bool:
        rec = self.record
        ctx = mapping.context(msg.data, msg.headers, msg.subject)
        variables = mapping.map_variables(ctx)
        key = mapping.key(ctx, origin)
        iid = layout.idempotent_instance_id(rec.tenant, rec.process_id, key)
        cmd = r.Launch(
            id=f"launch.{iid}",
            tenant=rec.tenant,
            instance=iid,
            process_id=rec.process_id,
            version=rec.version,
            variables=variables,
        )
        data = r.encode(cmd)
        if len(data) > self.settings.max_payload:
            raise MessageRejectedError(
                "too_large", f"the launch would be {len(data)} bytes, more than {self.settings.max_payload}"
            )
        if not await self.processes.deployed(rec.tenant, rec.process_id, rec.version):
            version = f" version {rec.version}" if rec.version else ""
            raise NotDeployedError(
                f"process {rec.process_id!r}{version} is not deployed in tenant {rec.tenant!r}"
            )
        return await self.ledger.launch(cmd, origin, data=data)

    async def _on_max_deliveries(self, msg: Msg) -> None:
        """A message was delivered ``max_deliver`` times and never acknowledged nor naked by
        :meth:`_handle` (the process died on it): dead-letter it (see :mod:`.crashes`)."""
        try:
            reason = await dead_letter_unhandled(
                self.nc,
                self.stream,
                msg.data,
                dlq=self.dlq,
                tenant=self.record.tenant,
                trigger=self.record.name,
            )
        except Exception as exc:  # no stream stores the dead letter: say so, nothing is acked anyway
            self.log.error("dead-lettering an undeliverable message of %s failed: %s", self.stream, exc)
            self.stats.error(self.key, f"dead letter failed: {exc}")
            return
        if reason is not None:
            self.log.error("message of %s dead-lettered to %s: %s", self.stream, self.dlq, reason)
            self.stats.rejected(self.key, reason)

    async def _retry_later(self, msg: Msg, origin: str, exc: Exception) -> None:
        attempts = msg.metadata.num_delivered
        text = str(exc) if isinstance(exc, NotDeployedError) else f"{type(exc).__name__}: {exc}"
        self.stats.error(self.key, text)
        if attempts >= self.record.max_deliver:
            await self._reject(msg, origin, f"gave up after {attempts} attempts: {text}")
            return
        self.log.warning(
            "message %s failed (attempt %d of %d): %s", origin, attempts, self.record.max_deliver, text
        )
        with contextlib.suppress(Exception):
            await msg.nak(delay=min(self.settings.retry_delay * 2 ** (attempts - 1), 30.0))

    async def _reject(self, msg: Msg, origin: str, reason: str) -> None:
        try:
            await publish_dead_letter(
                self.nc,
                self.dlq,
                msg.data,
                msg.headers,
                reason=reason,
                tenant=self.record.tenant,
                trigger=self.record.name,
                source_subject=msg.subject,
                origin=origin,
            )
        except Exception as exc:
            self.log.error("dead-lettering %s to %s failed: %s", origin, self.dlq, exc)
            self.stats.error(self.key, f"dead letter failed: {exc}")
            with contextlib.suppress(Exception):
                await msg.nak(delay=self.settings.retry_delay)
            return
        self.log.info("message %s dead-lettered to %s: %s", origin, self.dlq, reason)
        self.stats.rejected(self.key, reason)
        await msg.ack()
