"""Names of every NATS object natsflow uses: streams, buckets, subjects, consumers.

The engine, workers, trigger server, API and operator all import these names from here, so
the layout is defined once. Every subject, key and consumer name carries the tenant.

Streams
    ``NF_CMD``   work queue of commands to the engine, subject ``nf.cmd.<tenant>.<instance>``;
                 also holds timer schedules on ``nf.sched.<tenant>.<instance>.<timer>``
    ``NF_JOBS``  work queue of jobs, subject ``nf.job.<tenant>.<task type token>``
    ``NF_HIST``  history, one message per step, subject ``nf.hist.<tenant>.<instance>``
KV buckets
    ``nf_instances``  instance records, key ``<tenant>.<instance>``
    ``nf_workflows``  deployed definitions, keys ``<tenant>.<process>.v<version>`` and
                      ``<tenant>.<process>.latest``
    ``nf_taskdefs``   task definitions, key ``<tenant>.<task type token>``
    ``nf_triggers``   trigger definitions, key ``<tenant>.<trigger name>``
    ``nf_usertasks``  open user tasks, key ``<tenant>.<task id>``
    ``nf_messages``   message subscriptions and buffered messages
"""

from __future__ import annotations

import re

__all__ = [
    "BUCKET_INSTANCES",
    "BUCKET_MESSAGES",
    "BUCKET_TASKDEFS",
    "BUCKET_TRIGGERS",
    "BUCKET_USERTASKS",
    "BUCKET_WORKFLOWS",
    "DEFAULT_TENANT",
    "ENGINE_CONSUMER",
    "STREAM_COMMANDS",
    "STREAM_HISTORY",
    "STREAM_JOBS",
    "command_subject",
    "history_subject",
    "idempotent_instance_id",
    "instance_key",
    "job_consumer",
    "job_subject",
    "schedule_subject",
    "taskdef_key",
    "token",
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

BUCKET_INSTANCES = "nf_instances"
BUCKET_WORKFLOWS = "nf_workflows"
BUCKET_TASKDEFS = "nf_taskdefs"
BUCKET_TRIGGERS = "nf_triggers"
BUCKET_USERTASKS = "nf_usertasks"
BUCKET_MESSAGES = "nf_messages"

ENGINE_CONSUMER = "engine"

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


def history_subject(tenant: str, instance_id: str) -> str:
    return f"nf.hist.{tenant}.{instance_id}"


def instance_key(tenant: str, instance_id: str) -> str:
    return f"{tenant}.{instance_id}"


def workflow_key(tenant: str, process_id: str, version: int) -> str:
    return f"{tenant}.{token(process_id)}.v{version}"


def workflow_latest_key(tenant: str, process_id: str) -> str:
    return f"{tenant}.{token(process_id)}.latest"


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
