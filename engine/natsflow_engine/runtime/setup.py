"""Create (or update) the streams, buckets and consumers natsflow needs. Idempotent.

Called by the engine at start, by ``natsflow dev``, by the operator and by ``natsflow apply``,
so any of them can be first on a fresh NATS account.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    KeyValueConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BadRequestError, NotFoundError
from nats.js.kv import KeyValue

from natsflow_engine import layout
from natsflow_engine.store import open_or_create_bucket

_T = TypeVar("_T")

__all__ = [
    "JobConsumerSettings",
    "LayoutSettings",
    "ensure_dlq_stream",
    "ensure_engine_consumer",
    "ensure_job_consumer",
    "ensure_layout",
    "open_buckets",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LayoutSettings:
    """How the streams and buckets are created."""

    replicas: int = 1
    """Replication factor of every stream and bucket (3 on a three-node cluster)."""
    memory: bool = False
    """Memory storage instead of file storage (tests and benchmarks of the limit only)."""
    duplicate_window: float = 600.0
    """Seconds JetStream remembers message ids; republished effects inside it are dropped."""
    history_max_age: float = 0.0
    """Seconds history records are kept (0: until the retention sweep removes an ended
    instance's history with its archive; a running instance's history never expires)."""
    command_ack_wait: float = 30.0
    """Seconds before an unacknowledged command is redelivered to another engine replica."""
    command_max_deliver: int = 5
    """Deliveries of one command before it is dead-lettered (``NF_DLQ``, with an incident on
    its instance) instead of being tried again."""
    command_consumer_memory: bool = True
    """Keep the engine consumer's state (what was delivered, how often) in nats-server's
    memory instead of a file it rewrites on every acknowledgement burst. ``NF_CMD`` is a work
    queue: an acknowledged command leaves the stream, so a standalone server that restarts
    loses only delivery counts and the consumer itself, which the engine creates again (see
    docs/design.md). Applies when the consumer is created; an existing one keeps its storage."""
    max_payload: int = 1024 * 1024
    """Largest record natsflow writes; bigger variables payloads are refused."""

    @property
    def storage(self) -> StorageType:
        return StorageType.MEMORY if self.memory else StorageType.FILE


@dataclass(frozen=True)
class JobConsumerSettings:
    """What a ``TaskDefinition`` configures on its jobs consumer (defaults for workers that
    create their consumer themselves)."""

    concurrency: int = 32
    """Jobs in flight across all workers of the type (``max_ack_pending``)."""
    timeout: float = 300.0
    """Seconds a worker may hold a job before it is redelivered (``ack_wait``)."""
    retries: int = 3
    """Deliveries after the first before the job becomes an incident."""
    backoff: tuple[float, ...] = field(default=())
    """Delays between attempts in seconds; empty: redeliver after ``timeout``."""


_buckets = (
    layout.BUCKET_INSTANCES,
    layout.BUCKET_WORKFLOWS,
    layout.BUCKET_TASKDEFS,
    layout.BUCKET_TRIGGERS,
    layout.BUCKET_USERTASKS,
    layout.BUCKET_MESSAGES,
    layout.BUCKET_INDEX,
)


def _streams(settings: LayoutSettings) -> list[StreamConfig]:
    common = StreamConfig(
        storage=settings.storage, num_replicas=settings.replicas, duplicate_window=settings.duplicate_window
    )
    return [
        dataclasses.replace(
            common,
            name=layout.STREAM_COMMANDS,
            subjects=[layout.COMMAND_SUBJECTS, layout.SCHEDULE_SUBJECTS],
            retention=RetentionPolicy.WORK_QUEUE,
            allow_msg_schedules=True,
        ),
        dataclasses.replace(
            common, name=layout.STREAM_JOBS, subjects=[layout.JOB_SUBJECTS], retention=RetentionPolicy.WORK_QUEUE
        ),
        dataclasses.replace(
            common,
            name=layout.STREAM_HISTORY,
            subjects=[layout.HISTORY_SUBJECTS],
            retention=RetentionPolicy.LIMITS,
            max_age=settings.history_max_age,
        ),
    ]


async def _ensure_stream(js: JetStreamContext, config: StreamConfig) -> None:
    assert config.name is not None
    try:
        await js.stream_info(config.name)
    except NotFoundError:
        try:
            await js.add_stream(config)
            log.info("created stream %s", config.name)
        except BadRequestError as exc:  # another process created it first
            if "already in use" not in str(exc):
                raise


async def _ensure_bucket(js: JetStreamContext, name: str, settings: LayoutSettings) -> None:
    config = KeyValueConfig(
        bucket=name, history=1, storage=settings.storage, replicas=settings.replicas, max_value_size=settings.max_payload
    )
    await open_or_create_bucket(js, config)


async def ensure_layout(
    js: JetStreamContext, settings: LayoutSettings | None = None, *, update: bool = False
) -> None:
    """Create every stream, bucket and the engine consumer that is missing.

    Existing streams and buckets keep their configuration (replicas, limits are an operator's
    choice, changed deliberately, never by whichever process starts first). With ``update`` the
    engine consumer is reconfigured to ``settings``; only the engine passes it.
    """
    settings = settings or LayoutSettings()
    await _all(
        [(f"stream {cfg.name}", _ensure_stream(js, cfg)) for cfg in _streams(settings)]
        + [(f"bucket {name}", _ensure_bucket(js, name, settings)) for name in _buckets]
    )
    await ensure_engine_consumer(js, settings, update=update)


async def ensure_engine_consumer(
    js: JetStreamContext, settings: LayoutSettings | None = None, *, update: bool = False
) -> None:
    """Create the engine's consumer of ``NF_CMD`` if it is missing; with ``update`` configure
    an existing one to ``settings`` (its storage stays: nats-server cannot change it)."""
    settings = settings or LayoutSettings()
    memory = settings.command_consumer_memory
    try:
        info = await js.consumer_info(layout.STREAM_COMMANDS, layout.ENGINE_CONSUMER)
    except NotFoundError:
        pass
    else:
        if not update:
            return
        memory = bool(info.config.mem_storage)
    await js.add_consumer(
        layout.STREAM_COMMANDS,
        ConsumerConfig(
            durable_name=layout.ENGINE_CONSUMER,
            filter_subject=layout.COMMAND_SUBJECTS,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=settings.command_ack_wait,
            max_deliver=settings.command_max_deliver,
            max_ack_pending=20_000,
            max_waiting=512,
            mem_storage=memory or None,
        ),
    )


async def ensure_dlq_stream(
    js: JetStreamContext, *, replicas: int = 1, max_age: float = 7 * 24 * 3600.0
) -> None:
    """Create ``NF_DLQ`` (dead letters of triggers and refused commands) when absent; an
    existing one keeps its settings."""
    try:
        await js.stream_info(layout.STREAM_DEAD_LETTERS)
        return
    except NotFoundError:
        pass
    try:
        await js.add_stream(
            StreamConfig(
                name=layout.STREAM_DEAD_LETTERS,
                subjects=[f"{layout.DEAD_LETTER_PREFIX}.>"],
                retention=RetentionPolicy.LIMITS,
                storage=StorageType.FILE,
                max_age=max_age,
                num_replicas=replicas,
                duplicate_window=120.0,
                description="natsflow: trigger messages and commands that were refused",
            )
        )
    except BadRequestError as exc:  # created concurrently, or the subjects overlap another stream
        log.info("dead-letter stream not created: %s", exc)


async def open_buckets(js: JetStreamContext) -> dict[str, KeyValue]:
    """Handles on every natsflow bucket, by name."""
    handles = await _all([(f"bucket {name}", js.key_value(name)) for name in _buckets])
    return dict(zip(_buckets, handles, strict=True))


async def _all(jobs: list[tuple[str, Coroutine[Any, Any, _T]]]) -> list[_T]:
    """Run ``jobs`` concurrently in a TaskGroup: the first failure cancels the others (gather
    would leave them running) and is raised as itself, not as an ExceptionGroup, so callers
    keep catching NATS errors by type."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(job, name=f"natsflow-ensure {what}") for what, job in jobs]
    except ExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return [task.result() for task in tasks]


async def ensure_job_consumer(
    js: JetStreamContext,
    tenant: str,
    task_type: str,
    settings: JobConsumerSettings | None = None,
    *,
    update: bool = True,
) -> str:
    """Create (or, with ``update``, reconfigure) the durable consumer of one task type.

    Returns the consumer name. Workers call this with ``update=False`` so that a consumer
    configured by the operator keeps its settings.
    """
    settings = settings or JobConsumerSettings()
    name = layout.job_consumer(tenant, task_type)
    subject = layout.job_subject(tenant, task_type)
    if not update:
        try:
            await js.consumer_info(layout.STREAM_JOBS, name)
            return name
        except NotFoundError:
            pass
    legacy = await _drop_legacy_job_consumer(js, tenant, task_type)
    if legacy is not None and not update:  # keep what the operator configured on it
        await js.add_consumer(layout.STREAM_JOBS, dataclasses.replace(legacy, name=name, durable_name=name))
        return name
    config = ConsumerConfig(
        durable_name=name,
        filter_subject=subject,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=settings.timeout,
        max_ack_pending=settings.concurrency,
        max_deliver=settings.retries + 1,
        backoff=list(settings.backoff) if settings.backoff else None,
        max_waiting=512,
    )
    await js.add_consumer(layout.STREAM_JOBS, config)
    return name


async def _drop_legacy_job_consumer(js: JetStreamContext, tenant: str, task_type: str) -> ConsumerConfig | None:
    """Delete this task type's consumer under its name before 0.2 (see
    :func:`layout.legacy_job_consumer`) and return its configuration. Its jobs stay in the
    work-queue stream for the consumer under the new name (JetStream allows one consumer per
    subject on a work queue). A legacy consumer of another subject (the collision) is left."""
    legacy = layout.legacy_job_consumer(tenant, task_type)
    try:
        info = await js.consumer_info(layout.STREAM_JOBS, legacy)
    except NotFoundError:
        return None
    if info.config.filter_subject != layout.job_subject(tenant, task_type):
        return None
    with contextlib.suppress(NotFoundError):
        await js.delete_consumer(layout.STREAM_JOBS, legacy)
    log.info("job consumer %s renamed to %s", legacy, layout.job_consumer(tenant, task_type))
    config: ConsumerConfig = info.config
    return config


async def delete_job_consumer(js: JetStreamContext, tenant: str, task_type: str) -> bool:
    await _drop_legacy_job_consumer(js, tenant, task_type)
    try:
        return await js.delete_consumer(layout.STREAM_JOBS, layout.job_consumer(tenant, task_type))
    except NotFoundError:
        return False
