"""Where a command came from decides whose it is, never what its body says.

A command names its tenant and instance in its body, but the body is written by whoever
published it. What NATS vouches for is the subject (a user's permissions decide which subjects
it may publish to) and, with an account per tenant, the account (the connection the engine
consumes from). So the engine takes the tenant and instance from the subject
``nf.cmd.<tenant>.<instance>[.<task type token>]`` and refuses a command whose body disagrees,
whose subject names another tenant than the one the engine serves, or that arrived on a job
result subject (``nf.cmd.<tenant>.<instance>.<task type token>``, the only command subjects a
worker may publish to) but is not a result of a job of that task type. A refused command is
dead-lettered with the reason (:func:`dead_letter`); it never changes an instance. The
checks raise :class:`ForbiddenError`, whose text is the reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from nats.aio.msg import Msg
from nats.js import JetStreamContext

from natsflow_engine import layout
from natsflow_engine.errors import ForbiddenError, InvalidNameError
from natsflow_engine.runtime import records as r
from natsflow_engine.runtime.waits import JobWait

__all__ = ["Origin", "check_job_type", "dead_letter", "keep_dead_letter", "origin_of"]

JobResult = r.JobCompleted | r.JobFailed | r.JobError


@dataclass(frozen=True)
class Origin:
    """What the subject of a command vouches for."""

    tenant: str
    instance: str
    task_type: str | None
    """The task type token of a job result subject, None on an instance's command subject."""


def origin_of(subject: str, cmd: r.AnyCommand, served: str | None) -> Origin:
    """The origin of ``cmd`` received on ``subject`` by an engine serving tenant ``served``
    (None: every tenant of its account); :class:`ForbiddenError` when they disagree."""
    try:
        tenant, instance, task_type = layout.parse_command_subject(subject)
    except InvalidNameError as exc:
        raise ForbiddenError(str(exc)) from exc
    if served is not None and tenant != served:
        raise ForbiddenError(f"subject {subject} names tenant {tenant!r}; this engine serves {served!r}")
    if cmd.tenant != tenant or cmd.instance != instance:
        raise ForbiddenError(
            f"the command names tenant {cmd.tenant!r} and instance {cmd.instance!r}, "
            f"but arrived on {subject} (tenant {tenant!r}, instance {instance!r})"
        )
    if task_type is not None and not isinstance(cmd, JobResult):
        raise ForbiddenError(f"a {type(cmd).__name__} arrived on job result subject {subject}")
    return Origin(tenant, instance, task_type)


def check_job_type(origin: Origin, state: r.InstanceState, cmd: r.AnyCommand) -> None:
    """A result arriving on a task type's result subject must answer a job of that type.

    A job created before the type was recorded with it (records written by an older engine)
    is checked against nothing: its result is accepted from either subject."""
    if origin.task_type is None or not isinstance(cmd, JobResult):
        return
    ei = state.eis.get(cmd.ei)
    job = ei.wait if ei is not None else None
    if isinstance(job, JobWait) and job.key == cmd.job and job.type and layout.token(job.type) != origin.task_type:
        raise ForbiddenError(
            f"job {cmd.job} is of task type {job.type!r}; its result arrived on the result subject of "
            f"task type {origin.task_type!r}"
        )


async def dead_letter(js: JetStreamContext, msg: Msg, reason: str) -> str:
    """Keep a refused command in ``NF_DLQ`` on ``nf.dlq.<tenant>.cmd.<instance>`` (the tokens
    of its subject) with its payload and the reason; returns the subject. Idempotent per stream
    sequence inside the duplicate window; a failure to store it raises (the command stays
    unacknowledged: never dropped)."""
    return await keep_dead_letter(js, msg.subject, msg.data, msg.metadata.sequence.stream, reason)


async def keep_dead_letter(js: JetStreamContext, source: str, data: bytes, sequence: int, reason: str) -> str:
    """:func:`dead_letter` of a command read from the stream (``source`` its subject,
    ``sequence`` its stream sequence)."""
    parts = source.split(".")
    tenant = parts[2] if len(parts) > 2 and parts[2] else layout.DEFAULT_TENANT
    instance = parts[3] if len(parts) > 3 and parts[3] else "-"
    origin = f"{layout.STREAM_COMMANDS}:{sequence}"
    subject = layout.command_dead_letter_subject(tenant, instance)
    await js.publish(
        subject,
        data,
        headers={
            "Natsflow-Dead-Letter-Reason": " ".join(reason.split())[:1000],
            "Natsflow-Tenant": tenant,
            "Natsflow-Instance": instance,
            "Natsflow-Source-Subject": source,
            "Natsflow-Source-Sequence": origin,
            "Nats-Msg-Id": f"dlq.{origin}",
        },
    )
    return subject
