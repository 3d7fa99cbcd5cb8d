"""Names of every NATS object natsflow uses: streams, buckets, subjects, consumers.

The engine, workers, trigger server, API and operator all import these names from here, so
the layout is defined once. Every subject, key and consumer name carries the tenant.

Streams
    ``NF_CMD``   work queue of commands to the engine, subject ``nf.cmd.<tenant>.<instance>``;
                 job results on ``nf.cmd.<tenant>.<instance>.<task type token>`` (a worker
                 may publish only its own task type's; the engine checks the job's type);
                 also holds timer schedules on ``nf.sched.<tenant>.<instance>.<timer>``
    ``NF_JOBS``  work queue of jobs, subject ``nf.job.<tenant>.<task type token>``
    ``NF_HIST``  history, one message per step, subject ``nf.hist.<tenant>.<instance>``
    ``NF_DLQ``   dead letters of triggers, subject ``nf.dlq.<tenant>.<trigger token>``, and
                 commands the engine did not apply, subject ``nf.dlq.<tenant>.cmd.<instance>``
                 (see :func:`command_dead_letter_subject`)
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
    ``nf_index``      the instance index (and archive of ended instances), key
                      ``<tenant>.<bucket>.<process token>.<version>.<day>.<business key token>.<instance>``,
                      see :func:`index_key`
Consumers
    ``engine``        the engine replicas' shared consumer of ``NF_CMD``
    ``job_…``         one per (tenant, task type) on ``NF_JOBS``, see :func:`job_consumer`
    ``trg_…``         one per trigger on its source stream, see :func:`trigger_consumer`
"""

from __future__ import annotations

import hashlib
import re

from natsflow_engine.errors import InvalidNameError

__all__ = [
    "BUCKET_INDEX",
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
    "MAX_ID",
    "MAX_NAME",
    "MAX_TENANT",
    "MAX_TOKEN",
    "SCHEDULE_SUBJECTS",
    "STREAM_COMMANDS",
    "STREAM_DEAD_LETTERS",
    "STREAM_HISTORY",
    "STREAM_JOBS",
    "capture_stream",
    "check_compound_id",
    "check_id",
    "check_name",
    "command_dead_letter_subject",
    "command_max_deliveries_advisories",
    "command_subject",
    "dead_letter_subject",
    "form_key",
    "history_subject",
    "idempotent_instance_id",
    "index_key",
    "index_subject",
    "instance_key",
    "instance_key_of_command",
    "job_consumer",
    "job_max_deliveries_advisories",
    "job_subject",
    "parse_command_subject",
    "legacy_job_consumer",
    "legacy_trigger_consumer",
    "message_buffer_key",
    "message_start_key",
    "message_subscriptions_key",
    "result_subject",
    "result_subjects",
    "schedule_subject",
    "signal_subscriptions_key",
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
BUCKET_INDEX = "nf_index"

ENGINE_CONSUMER = "engine"
ENGINE_ADVISORY_QUEUE = "natsflow-engine"
"""Queue group in which engine replicas share the jobs' max-deliveries advisories."""

MAX_TENANT = 63
"""Tenants are DNS-1123 labels: lower-case letters, digits and ``-``, at most 63 characters."""
MAX_NAME = 255
"""Process and element ids, task types, message and signal names, trigger names, business
keys, message ids, assignees: at most 255 characters, no control characters."""
MAX_ID = 64
"""Instance ids: at most 64 letters, digits, ``_`` or ``-`` (generated ids have 24 or 32)."""
MAX_TOKEN = 128
"""Longest encoded :func:`token`; longer values (and values with NUL) become a hash token."""

_SAFE = re.compile(r"[A-Za-z0-9_-]")
_ALL_SAFE = re.compile(r"[A-Za-z0-9_-]+")
_TENANT = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def token(text: str) -> str:
    """Encode any text as one subject token / KV key part / consumer name, at most
    :data:`MAX_TOKEN` characters.

    Letters, digits, ``_`` and ``-`` stay; every other character becomes ``=`` and two
    lower-case hex digits per UTF-8 byte; the empty text is ``=00``. Text whose encoding would
    be longer than :data:`MAX_TOKEN`, or that contains NUL (which would encode as ``=00`` too),
    becomes ``==`` and 32 hex digits of its SHA-256 (no escape yields ``==``). The encoding is
    injective, so two task types never share a subject; callers keep the original text in the
    record.
    """
    if len(text) <= MAX_TOKEN and _ALL_SAFE.fullmatch(text):
        return text
    out: list[str] = []
    for ch in text:
        if _SAFE.match(ch):
            out.append(ch)
        else:
            out.extend(f"={b:02x}" for b in ch.encode("utf-8", "surrogatepass"))
    encoded = "".join(out) or "=00"
    if len(encoded) > MAX_TOKEN or "\x00" in text:
        return "==" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return encoded


def validate_tenant(tenant: str) -> str:
    """Tenants are Kubernetes namespace names (DNS-1123 labels); refuse anything else."""
    if not _TENANT.match(tenant):
        raise InvalidNameError("tenant", tenant, "use lower-case letters, digits and '-', at most 63 characters")
    return tenant


def check_name(field: str, value: str, *, empty: bool = False) -> str:
    """Refuse a name longer than :data:`MAX_NAME`, with a control character, or empty (unless
    ``empty``)."""
    if len(value) > MAX_NAME or _CONTROL.search(value) or not (value or empty):
        raise InvalidNameError(
            field, value, f"use 1 to {MAX_NAME} characters and no control characters (it has {len(value)})"
        )
    return value


def check_id(field: str, value: str) -> str:
    """Refuse an instance id that is not 1 to :data:`MAX_ID` letters, digits, ``_`` or ``-``."""
    if not _ID.fullmatch(value):
        raise InvalidNameError(field, value, f"use 1 to {MAX_ID} letters, digits, '_' or '-'")
    return value


def check_compound_id(field: str, value: str, parts: int) -> str:
    """Refuse a user-task id (``<instance>.<n>``, ``parts`` 2) or an incident id
    (``<instance>.<n>.<n>``, ``parts`` 3) of another shape."""
    head, *numbers = value.split(".")
    if len(numbers) != parts - 1 or not all(n.isascii() and n.isdigit() and len(n) <= 18 for n in numbers):
        raise InvalidNameError(field, value, f"use <instance>{'.<number>' * (parts - 1)}")
    check_id(field, head)
    return value


def command_subject(tenant: str, instance_id: str) -> str:
    return f"nf.cmd.{tenant}.{instance_id}"


def schedule_subject(tenant: str, instance_id: str, timer: str) -> str:
    return f"nf.sched.{tenant}.{instance_id}.{token(timer)}"


def job_subject(tenant: str, task_type: str) -> str:
    return f"nf.job.{tenant}.{token(task_type)}"


def job_consumer(tenant: str, task_type: str) -> str:
    """``job_<tenant>_<task type token>``: tenants have no ``_``, so the name is injective."""
    return f"job_{tenant}_{token(task_type)}"


def legacy_job_consumer(tenant: str, task_type: str) -> str:
    """The job consumer's name before 0.2 (``-`` separated; tenant ``a-b`` with type ``c``
    and tenant ``a`` with type ``b-c`` shared it). Replaced when a worker or the operator
    ensures the consumer."""
    return f"job-{tenant}-{token(task_type)}"


def result_subject(tenant: str, instance_id: str, task_type: str) -> str:
    """Where a worker of ``task_type`` sends a job's result: the instance's command subject
    with the task type token appended (still in ``NF_CMD``, still ``nf.cmd.>``)."""
    return f"nf.cmd.{tenant}.{instance_id}.{token(task_type)}"


def result_subjects(tenant: str, task_type: str) -> str:
    """Every result subject of one task type of a tenant (what a worker may publish to)."""
    return f"nf.cmd.{tenant}.*.{token(task_type)}"


def parse_command_subject(subject: str) -> tuple[str, str, str | None]:
    """``(tenant, instance, task type token or None)`` of a command or result subject;
    :class:`InvalidNameError` for anything else."""
    parts = subject.split(".")
    if len(parts) not in (4, 5) or parts[:2] != ["nf", "cmd"] or not all(parts):
        raise InvalidNameError("command subject", subject, "use nf.cmd.<tenant>.<instance>[.<task type>]")
    return parts[2], parts[3], parts[4] if len(parts) == 5 else None


def instance_key_of_command(subject: str) -> str:
    """The instance key (``<tenant>.<instance>``) of a command or result subject."""
    return ".".join(subject.split(".")[2:4])


def command_dead_letter_subject(tenant: str, instance_id: str) -> str:
    """Where the engine keeps a command it did not apply, by the tenant and instance tokens of
    its subject (``nf.dlq.<tenant>.cmd.<instance>``: five tokens, so it never meets a trigger's
    ``nf.dlq.<tenant>.<trigger token>``)."""
    return f"{DEAD_LETTER_PREFIX}.{tenant}.cmd.{instance_id}"


def history_subject(tenant: str, instance_id: str) -> str:
    return f"nf.hist.{tenant}.{instance_id}"


def tenant_history_subjects(tenant: str) -> str:
    return f"nf.hist.{tenant}.>"


def job_max_deliveries_advisories() -> str:
    """Advisories of jobs delivered as often as their consumer allows."""
    return f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{STREAM_JOBS}.*"


def command_max_deliveries_advisories() -> str:
    """Advisories of commands delivered as often as the engine consumer allows."""
    return f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{STREAM_COMMANDS}.{ENGINE_CONSUMER}"


def dead_letter_subject(tenant: str, trigger: str) -> str:
    return f"{DEAD_LETTER_PREFIX}.{tenant}.{token(trigger)}"


def trigger_consumer(tenant: str, name: str) -> str:
    """Durable consumer of a trigger on its source stream: ``trg_<tenant>_<name token>``
    (tenants have no ``_``, so the name is injective, as :func:`job_consumer`)."""
    return f"trg_{tenant}_{token(name)}"


def legacy_trigger_consumer(tenant: str, name: str) -> str:
    """The trigger consumer's name before 0.2 (``-`` separated; tenant ``a-b`` with trigger
    ``c`` and tenant ``a`` with trigger ``b-c`` shared it). Replaced, at its delivery
    position, when the trigger server or the operator binds the trigger."""
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


def form_key(tenant: str, form_id: str) -> str:
    """Key (in ``nf_workflows``) of a deployed form; ``=form`` is never a process token."""
    return f"{tenant}.=form.{token(form_id)}"


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
    digest = hashlib.sha256(f"{tenant}\0{process_id}\0{key}".encode()).hexdigest()
    return "k" + digest[:31]


INDEX_ANY = "*"
"""A wildcard for one part of :func:`index_key` in :func:`index_subject`."""


def index_key(
    tenant: str, bucket: str, process_id: str, version: int, day: str, business_key: str | None, instance_id: str
) -> str:
    """Key (in ``nf_index``) of an instance's index entry: every part a listing filters on is a
    token, so a filter is a subject the server matches. ``bucket`` is ``active``, ``incident``
    (active with open incidents), ``completed``, ``cancelled`` or ``failed``; ``day`` the
    ``YYYYMMDD`` of the start; a missing business key is ``=`` (no :func:`token` is)."""
    bk = "=" if business_key is None else token(business_key)
    return f"{tenant}.{bucket}.{token(process_id)}.{version}.{day}.{bk}.{instance_id}"


def index_subject(
    tenant: str,
    bucket: str = INDEX_ANY,
    process_id: str | None = None,
    version: int | None = None,
    day: str = INDEX_ANY,
    business_key: str | None = None,
) -> str:
    """The subject of ``nf_index`` entries matching the given parts (None or ``*``: any)."""
    proc = INDEX_ANY if process_id is None else token(process_id)
    ver = INDEX_ANY if version is None else str(version)
    bk = INDEX_ANY if business_key is None else token(business_key)
    return f"$KV.{BUCKET_INDEX}.{tenant}.{bucket}.{proc}.{ver}.{day}.{bk}.*"
