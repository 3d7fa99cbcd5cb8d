"""Names of every NATS object natsflow uses: streams, buckets, subjects, consumers.

The engine, workers, trigger server, API and operator all import these names from here, so
the layout is defined once. Every subject, key and consumer name carries the tenant.

Streams
    ``NF_CMD``   work queue of commands to the engine, subject ``nf.cmd.<tenant>.<instance>``;
                 also holds timer schedules on ``nf.sched.<tenant>.<instance>.<timer>``
    ``NF_JOBS``  work queue of jobs, subject ``nf.job.<tenant>.<task type token>``
    ``NF_HIST``  history, one message per step, subject ``nf.hist.<tenant>.<instance>``
    ``NF_DLQ``   dead letters of triggers, subject ``nf.dlq.<tenant>.<trigger token>``
    ``NF_TRG_<subject token>``  capture streams the operator creates for trigger subjects
KV buckets
    ``nf_instances``  instance records, key ``<tenant>.<instance>``
    ``nf_workflows``  deployed definitions, keys ``<tenant>.<process>.v<version>`` and
                      ``<tenant>.<process>.latest``
    ``nf_taskdefs``   task definitions, key ``<tenant>.<task type token>``
    ``nf_triggers``   trigger definitions, key ``<tenant>.<trigger name>``
    ``nf_usertasks``  open user tasks, key ``<tenant>.<task id>``
    ``nf_messages``   message subscriptions and buffered messages
    ``nf_launches``   markers of launched instance ids (counting duplicate launches)
    ``nf_trigger_stats``  counters of each trigger, key ``<tenant>.<trigger name token>``
Consumers
    ``engine``        the engine replicas' shared consumer of ``NF_CMD``
    ``job-…``         one per (tenant, task type) on ``NF_JOBS``, see :func:`job_consumer`
    ``trg-…``         one per trigger on its source stream, see :func:`trigger_consumer`
"""

from __future__ import annotations

import re

__all__ = [
    "BUCKET_INSTANCES",
    "BUCKET_LAUNCHES",
    "BUCKET_MESSAGES",
    "BUCKET_TASKDEFS",
    "BUCKET_TRIGGERS",
    "BUCKET_TRIGGER_STATS",
    "BUCKET_USERTASKS",
    "BUCKET_WORKFLOWS",
    "CAPTURE_STREAM_PREFIX",
    "COMMAND_SUBJECTS",
    "DEAD_LETTER_PREFIX",
    "DEFAULT_TENANT",
    "ENGINE_ADVISORY_QUEUE",
    "ENGINE_CONSUMER",
    "HISTORY_SUBJECTS",
    "JOB_SUBJECTS",
    "SCHEDULE_SUBJECTS",
    "STREAM_COMMANDS",
    "STREAM_DEAD_LETTERS",
    "STREAM_HISTORY",
    "STREAM_JOBS",
    "capture_stream",
    "command_subject",
    "dead_letter_subject",
    "history_subject",
    "idempotent_instance_id",
    "instance_key",
    "instance_key_of_command",
    "job_consumer",
    "job_max_deliveries_advisories",
    "job_subject",
    "schedule_subject",
    "taskdef_key",
    "tenant_history_subjects",
    "timer_starts_key",
    "token",
    "trigger_consumer",
    "trigger_key",
    "usertask_key",
    "validate_tenant",
    "workflow_key",
    "workflow_latest_key",
]

DEFAULT_TENANT = "default"

STREAM_COMMANDS = "NF_CMD"
STREAM_JOBS = "NF_JOBS"
STREAM_HISTORY = "NF_HIST"
STREAM_DEAD_LETTERS = "NF_DLQ"
CAPTURE_STREAM_PREFIX = "NF_TRG_"
"""Streams the operator creates to capture a trigger subject that no other stream stores."""

COMMAND_SUBJECTS = "nf.cmd.>"
SCHEDULE_SUBJECTS = "nf.sched.>"
JOB_SUBJECTS = "nf.job.>"
HISTORY_SUBJECTS = "nf.hist.>"
DEAD_LETTER_PREFIX = "nf.dlq"

BUCKET_INSTANCES = "nf_instances"
BUCKET_WORKFLOWS = "nf_workflows"
BUCKET_TASKDEFS = "nf_taskdefs"
BUCKET_TRIGGERS = "nf_triggers"
BUCKET_USERTASKS = "nf_usertasks"
BUCKET_MESSAGES = "nf_messages"
BUCKET_LAUNCHES = "nf_launches"
BUCKET_TRIGGER_STATS = "nf_trigger_stats"

ENGINE_CONSUMER = "engine"
ENGINE_ADVISORY_QUEUE = "natsflow-engine"
"""Queue group in which engine replicas share the jobs' max-deliveries advisories."""

_SAFE = re.compile(r"[A-Za-z0-9_-]")
_TENANT = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def token(text: str) -> str:
    """Encode any text as one subject token / KV key part / consumer name.

    Letters, digits, ``_`` and ``-`` stay; every other character becomes ``=`` and two
    lower-case hex digits per UTF-8 byte. The encoding is injective, so two task types never
    share a subject.
    """
    out: list[str] = []
    for ch in text:
        if _SAFE.match(ch):
            out.append(ch)
        else:
            out.extend(f"={b:02x}" for b in ch.encode())
    return "".join(out) or "=00"


def validate_tenant(tenant: str) -> str:
    """Tenants are Kubernetes namespace names (DNS-1123 labels); refuse anything else."""
    if not _TENANT.match(tenant):
        raise ValueError(
            f"invalid tenant {tenant!r}: use lower-case letters, digits and '-', at most 63 characters"
        )
    return tenant


def command_subject(tenant: str, instance_id: str) -> str:
    return f"nf.cmd.{tenant}.{instance_id}"


def schedule_subject(tenant: str, instance_id: str, timer: str) -> str:
    return f"nf.sched.{tenant}.{instance_id}.{token(timer)}"


def job_subject(tenant: str, task_type: str) -> str:
    return f"nf.job.{tenant}.{token(task_type)}"


def job_consumer(tenant: str, task_type: str) -> str:
    return f"job-{tenant}-{token(task_type)}"


def instance_key_of_command(subject: str) -> str:
    """The instance key (``<tenant>.<instance>``) of a command subject."""
    return subject[len("nf.cmd.") :]


def history_subject(tenant: str, instance_id: str) -> str:
    return f"nf.hist.{tenant}.{instance_id}"


def tenant_history_subjects(tenant: str) -> str:
    return f"nf.hist.{tenant}.>"


def job_max_deliveries_advisories() -> str:
    """Advisories of jobs delivered as often as their consumer allows."""
    return f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{STREAM_JOBS}.*"


def dead_letter_subject(tenant: str, trigger: str) -> str:
    return f"{DEAD_LETTER_PREFIX}.{tenant}.{token(trigger)}"


def trigger_consumer(tenant: str, name: str) -> str:
    """Durable consumer of a trigger on its source stream."""
    return f"trg-{tenant}-{token(name)}"


def capture_stream(subject: str) -> str:
    """Name of the stream that captures ``subject`` when no existing stream covers it.

    One capture stream per subject (not per trigger): two triggers on one subject share it,
    since JetStream refuses two streams with overlapping subjects in one account.
    """
    return CAPTURE_STREAM_PREFIX + token(subject)


def instance_key(tenant: str, instance_id: str) -> str:
    return f"{tenant}.{instance_id}"


def workflow_key(tenant: str, process_id: str, version: int) -> str:
    return f"{tenant}.{token(process_id)}.v{version}"


def workflow_latest_key(tenant: str, process_id: str) -> str:
    return f"{tenant}.{token(process_id)}.latest"


def timer_starts_key(tenant: str, process_id: str) -> str:
    """Marker (in ``nf_workflows``) of the version whose timer start events are scheduled."""
    return f"{tenant}.{token(process_id)}.timerstarts"


def message_subscriptions_key(tenant: str, name: str, correlation_key: str) -> str:
    """Key (in ``nf_messages``) of the catches waiting for a message."""
    return f"msub.{tenant}.{token(name)}.{token(correlation_key)}"


def message_buffer_key(tenant: str, name: str, correlation_key: str) -> str:
    """Key (in ``nf_messages``) of the messages buffered with a TTL."""
    return f"mbuf.{tenant}.{token(name)}.{token(correlation_key)}"


def signal_subscriptions_key(tenant: str, name: str) -> str:
    """Key (in ``nf_messages``) of the catches waiting for a signal."""
    return f"ssub.{tenant}.{token(name)}"


def message_start_key(tenant: str, process_id: str, correlation_key: str) -> str:
    """Key (in ``nf_messages``) naming the instance a message start event launched for a
    correlation key (one active instance per key)."""
    return f"mkey.{tenant}.{token(process_id)}.{token(correlation_key)}"


def taskdef_key(tenant: str, task_type: str) -> str:
    return f"{tenant}.{token(task_type)}"


def trigger_key(tenant: str, name: str) -> str:
    return f"{tenant}.{token(name)}"


def usertask_key(tenant: str, task_id: str) -> str:
    return f"{tenant}.{task_id}"


def idempotent_instance_id(tenant: str, process_id: str, key: str) -> str:
    """The instance id a launch with idempotency ``key`` gets: the same key always names the
    same instance, so a repeated launch finds it exists (KV create-if-absent) and does nothing,
    long after JetStream's duplicate window."""
    import hashlib

    digest = hashlib.sha256(f"{tenant}\0{process_id}\0{key}".encode()).hexdigest()
    return "k" + digest[:31]
