"""Catalog records: what the operator (or ``natsflow apply``) declares for workers and triggers.

The operator writes these records; workers and the trigger server read them. Both are msgspec
structs, versioned with ``v`` (decoders ignore unknown fields, so a newer writer never breaks
an older reader)::

    nf_taskdefs  <tenant>.<task type token>  -> TaskDefRecord
    nf_triggers  <tenant>.<trigger token>    -> TriggerRecord

Names of the NATS objects that belong to a trigger (its durable consumer and, when no stream
captures the trigger's subject yet, a capture stream) are derived here, next to the records,
from the tokens of :mod:`natsflow_engine.layout`.
"""

from __future__ import annotations

import msgspec

from natsflow_engine import layout

__all__ = [
    "CAPTURE_STREAM_PREFIX",
    "ParameterRecord",
    "TaskDefRecord",
    "TriggerRecord",
    "capture_stream",
    "decode_taskdef",
    "decode_trigger",
    "encode_record",
    "trigger_consumer",
]

CAPTURE_STREAM_PREFIX = layout.CAPTURE_STREAM_PREFIX
trigger_consumer = layout.trigger_consumer
capture_stream = layout.capture_stream


class ParameterRecord(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A variable a task type takes or gives back (``TaskDefinition`` ``parameters``/``results``)."""

    name: str
    type: str = "any"
    """``string``, ``number``, ``boolean``, ``object``, ``array`` or ``any``."""
    required: bool = False
    description: str | None = None


class TaskDefRecord(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A task type declared by a ``TaskDefinition``: how its jobs are consumed.

    Workers read it to learn the consumer they pull from and the limits the operator set.
    """

    v: int = 1
    tenant: str
    task_type: str
    name: str
    """Name of the declaring object (``metadata.name`` of the TaskDefinition)."""
    consumer: str
    """Durable consumer on ``NF_JOBS`` (``layout.job_consumer``)."""
    subject: str
    """Subject of the jobs (``layout.job_subject``)."""
    concurrency: int = 32
    timeout: float = 300.0
    retries: int = 3
    backoff: list[float] = msgspec.field(default_factory=list)
    module: str | None = None
    """Python module of the worker (``package.module:app``), informational for the worker."""
    generation: int | None = None
    """``metadata.generation`` of the declaring object when it was applied."""
    parameters: list[ParameterRecord] = msgspec.field(default_factory=list)
    """Variables the jobs take (the modeler checks input mappings against them)."""
    results: list[ParameterRecord] = msgspec.field(default_factory=list)
    """Variables the jobs complete with."""


class TriggerRecord(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A trigger: messages on ``subject`` start instances of ``process_id``.

    The trigger server pulls from ``consumer`` on ``stream``, evaluates ``variables`` (FEEL over
    ``payload``, ``headers`` and ``subject``), derives the idempotency key from the
    ``idempotency_header`` or the ``idempotency_expression`` and launches an instance.
    """

    v: int = 1
    tenant: str
    name: str
    subject: str
    stream: str
    consumer: str
    process_id: str
    version: int | None = None
    """Pinned process version; ``None`` means the latest at launch time."""
    variables: dict[str, str] = msgspec.field(default_factory=dict)
    idempotency_header: str | None = None
    idempotency_expression: str | None = None
    suspended: bool = False
    dead_letter_subject: str | None = None
    max_deliver: int = 5
    captured: bool = False
    """True when ``stream`` is a capture stream the operator created for this subject."""
    generation: int | None = None


_encoder = msgspec.json.Encoder()
_taskdef_decoder = msgspec.json.Decoder(TaskDefRecord)
_trigger_decoder = msgspec.json.Decoder(TriggerRecord)


def encode_record(record: TaskDefRecord | TriggerRecord) -> bytes:
    """JSON bytes of a record; equal records give equal bytes (the operator compares them)."""
    return _encoder.encode(record)


def decode_taskdef(data: bytes) -> TaskDefRecord:
    return _taskdef_decoder.decode(data)


def decode_trigger(data: bytes) -> TriggerRecord:
    return _trigger_decoder.decode(data)
