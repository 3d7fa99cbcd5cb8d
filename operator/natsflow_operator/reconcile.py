"""The reconcile core: turn a custom resource's spec into NATS objects, and remove them.

Shared by the operator (Kopf handlers, with Kubernetes) and by ``natsflow apply`` / ``natsflow
delete`` (straight to NATS). No Kopf and no Kubernetes here: callers resolve the BPMN source and
the NATS connection, pass the validated spec model, and turn the returned :class:`Outcome` into
status conditions or a line of output. Every function is idempotent: applying twice changes
nothing the second time, and applying after someone deleted an object recreates it (drift).

=================  ===========================================================================
Workflow           every executable process -> ``nf_workflows`` (new version only on new content)
TaskDefinition     ``TaskDefRecord`` -> ``nf_taskdefs``; durable consumer on ``NF_JOBS``
Trigger            ``TriggerRecord`` -> ``nf_triggers``; durable consumer on the subject's stream
                   (a capture stream ``NF_TRG_<subject>`` when no stream stores the subject)
=================  ===========================================================================
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Sequence

import msgspec
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError, KeyNotFoundError, KeyWrongLastSequenceError, NotFoundError
from natsflow_engine import catalog, layout
from natsflow_engine.errors import BpmnValidationError, ConflictError, InvalidInputError
from natsflow_engine.natsutil import list_keys
from natsflow_engine.runtime.definitions import (
    DefinitionRecord,
    LatestRecord,
    ProcessRetention,
    deploy_definitions,
    list_definitions,
    parse_and_check,
)
from natsflow_engine.runtime.setup import JobConsumerSettings, delete_job_consumer, ensure_job_consumer
from natsflow_engine.store import compare_and_set
from natsflow_engine.triggers.consumers import drop_legacy_trigger_consumer, ensure_trigger_consumer

from natsflow_operator.conditions import Cond, Outcome
from natsflow_operator.connections import NatsHandle
from natsflow_operator.models import TaskDefinitionSpec, TriggerSpec, parse_duration
from natsflow_operator.workflow_parts import FormSource, apply_retention, check_forms, deploy_forms

__all__ = [
    "apply_taskdefinition",
    "apply_trigger",
    "apply_workflow",
    "delete_taskdefinition",
    "delete_trigger",
    "delete_workflow",
    "job_settings",
    "processes_of",
    "undeploy",
]

log = logging.getLogger(__name__)

CAPTURE_MAX_AGE = 7 * 24 * 3600.0
TRIGGER_ACK_WAIT = 30.0


def _invalid(kind: str, tenant: str, name: str, reason: str, message: str) -> Outcome:
    return Outcome(kind, tenant, name, "invalid", [Cond("Validated", False, reason, message)])


def _check_tenant(kind: str, tenant: str, name: str) -> Outcome | None:
    try:
        layout.validate_tenant(tenant)
    except ValueError as exc:
        return _invalid(kind, tenant, name, "InvalidTenant", str(exc))
    return None


# ----- Workflow -----------------------------------------------------------------------------


Claims = Callable[[], Awaitable[frozenset[str] | None]]
"""Process ids other Workflow objects of the tenant hold (``None``: cannot tell, keep all)."""


async def apply_workflow(
    h: NatsHandle,
    tenant: str,
    name: str,
    source: str,
    *,
    previous: Sequence[str] = (),
    prune: bool = True,
    claims: Claims | None = None,
    forms: Sequence[FormSource] = (),
    retention: ProcessRetention | None = None,
) -> Outcome:
    """Validate the BPMN and the forms, deploy the executable processes, the forms and the
    processes' retention; nothing is written when one is invalid.

    ``previous`` are the process ids this Workflow deployed before; with ``prune`` the ones no
    longer in the document are undeployed (:func:`undeploy`, unless ``claims`` says another
    Workflow holds them).
    """
    if (bad := _check_tenant("Workflow", tenant, name)) is not None:
        return bad
    try:
        defs = parse_and_check(source, name=name)
    except BpmnValidationError as exc:
        message = "; ".join(str(issue) for issue in exc.errors) or str(exc)
        return _invalid("Workflow", tenant, name, "InvalidBpmn", message)
    if not any(p.executable for p in defs.processes.values()):
        return _invalid("Workflow", tenant, name, "InvalidBpmn", 'no process has isExecutable="true"')
    try:
        checked = check_forms(forms)
    except InvalidInputError as exc:
        return _invalid("Workflow", tenant, name, "InvalidForm", str(exc))
    kv = h.kv(layout.BUCKET_WORKFLOWS)
    for process in defs.processes.values():
        if process.executable:
            await _restore_latest(h, tenant, process.id)
    deployed = await deploy_definitions(kv, tenant, source, name=name)
    ids = [d.process_id for d in deployed]
    form_status, forms_created = await deploy_forms(kv, tenant, name, checked)
    retained = await apply_retention(kv, tenant, ids, retention)
    moved = [d.process_id for d in deployed if not d.created and await _own_latest(h, tenant, d.process_id, name)]
    removed = [pid for pid in previous if pid not in ids]
    if prune and removed:
        keep = await claims() if claims is not None else frozenset()
        if keep is not None:
            await undeploy(h, tenant, name, removed, keep=keep)
    created = any(d.created for d in deployed) or forms_created or retained
    action = ("updated" if previous else "created") if created or removed or moved else "unchanged"
    first = deployed[0]
    versions = ", ".join(
        [f"{d.process_id} v{d.version}" for d in deployed] + [f"form {f['formId']} v{f['version']}" for f in form_status]
    )
    return Outcome(
        "Workflow",
        tenant,
        name,
        action,
        [
            Cond("Validated", True, "ValidBpmn", f"{len(deployed)} executable process(es)"),
            Cond("Synced", True, "Deployed", versions),
        ],
        {
            "version": first.version,
            "contentHash": first.source_hash,
            "processIds": ids,
            "processes": [
                {"processId": d.process_id, "version": d.version, "revision": d.revision} for d in deployed
            ],
            "revision": first.revision,
            "forms": form_status,
        },
    )


async def _own_latest(h: NatsHandle, tenant: str, process_id: str, name: str) -> bool:
    """The same content deployed by another Workflow object (a rename in Git): the ``latest``
    pointer now names this one, so its Triggers find the process by ``workflowRef.name`` and
    removing the old object leaves the process deployed. True when the pointer moved."""

    async def rename(current: bytes | None) -> bytes | None:
        if current is None:
            return None
        latest = msgspec.json.decode(current, type=LatestRecord)
        return None if latest.name == name else msgspec.json.encode(msgspec.structs.replace(latest, name=name))

    written = await compare_and_set(h.kv(layout.BUCKET_WORKFLOWS), layout.workflow_latest_key(tenant, process_id), rename)
    return written.changed


_VERSION_KEY = re.compile(r".*\.v([0-9]+)")


async def _restore_latest(h: NatsHandle, tenant: str, process_id: str) -> None:
    """Point ``latest`` at the highest kept version of an undeployed process, so a new deployment
    continues its numbering (versions of running instances are never overwritten)."""
    kv = h.kv(layout.BUCKET_WORKFLOWS)
    latest_key = layout.workflow_latest_key(tenant, process_id)
    try:
        await kv.get(latest_key)
        return
    except KeyNotFoundError:
        pass
    keys = await list_keys(kv, f"{tenant}.{layout.token(process_id)}.*")
    versions = [int(m.group(1)) for k in keys if (m := _VERSION_KEY.fullmatch(k))]
    if not versions:
        return
    entry = await kv.get(layout.workflow_key(tenant, process_id, max(versions)))
    record = msgspec.json.decode(entry.value or b"", type=DefinitionRecord)
    pointer = LatestRecord(
        process_id=process_id,
        version=record.version,
        source_hash=record.source_hash,
        name=record.name,
        deployed_at=record.deployed_at,
    )
    try:
        await kv.create(latest_key, msgspec.json.encode(pointer))
    except KeyWrongLastSequenceError:
        pass  # deployed meanwhile


async def undeploy(
    h: NatsHandle,
    tenant: str,
    name: str,
    process_ids: Sequence[str],
    *,
    keep: frozenset[str] = frozenset(),
    owner_only: bool = False,
) -> list[str]:
    """Remove the ``latest`` pointer of each process (no new instance starts); keep every version
    (instances in flight load theirs by number). Skip processes in ``keep`` (another Workflow
    holds them) and, with ``owner_only``, those whose latest version another document deployed."""
    kv = h.kv(layout.BUCKET_WORKFLOWS)
    removed = []
    for pid in process_ids:
        if pid in keep:
            continue
        key = layout.workflow_latest_key(tenant, pid)
        try:
            entry = await kv.get(key)
        except KeyNotFoundError:
            continue
        if owner_only and msgspec.json.decode(entry.value or b"", type=LatestRecord).name != name:
            continue
        try:
            await kv.delete(key, last=entry.revision)
        except KeyWrongLastSequenceError:
            continue  # redeployed meanwhile: it is someone's again
        removed.append(pid)
    return removed


async def delete_workflow(
    h: NatsHandle,
    tenant: str,
    name: str,
    process_ids: Sequence[str],
    *,
    keep: frozenset[str] = frozenset(),
    owner_only: bool = False,
) -> Outcome:
    removed = await undeploy(h, tenant, name, process_ids, keep=keep, owner_only=owner_only)
    return Outcome("Workflow", tenant, name, "deleted", status={"undeployed": removed})


async def processes_of(h: NatsHandle, tenant: str, workflow: str) -> list[str]:
    """Process ids whose latest version the Workflow ``workflow`` deployed (no cluster needed)."""
    return [
        r.process_id
        for r in await list_definitions(h.kv(layout.BUCKET_WORKFLOWS), tenant)
        if r.name == workflow
    ]


# ----- TaskDefinition -----------------------------------------------------------------------


def job_settings(spec: TaskDefinitionSpec) -> JobConsumerSettings:
    return JobConsumerSettings(
        concurrency=spec.concurrency,
        timeout=parse_duration(spec.timeout),
        retries=spec.retries,
        backoff=tuple(parse_duration(b) for b in spec.backoff),
    )


def _job_consumer_differences(config: ConsumerConfig, subject: str, s: JobConsumerSettings) -> list[str]:
    expected_ack_wait = s.backoff[0] if s.backoff else s.timeout  # the server stores backoff[0]
    found_backoff = [round(b, 3) for b in config.backoff or []]
    checks = [
        ("filter_subject", config.filter_subject, subject),
        ("max_ack_pending", config.max_ack_pending, s.concurrency),
        ("max_deliver", config.max_deliver, s.retries + 1),
        ("ack_wait", round(config.ack_wait or 0.0, 3), round(expected_ack_wait, 3)),
        ("backoff", found_backoff, [round(b, 3) for b in s.backoff]),
    ]
    return [f"{what} {found!r} != {want!r}" for what, found, want in checks if found != want]


async def _put_if_changed(h: NatsHandle, bucket: str, key: str, value: bytes) -> tuple[bool, int]:
    """Write a KV entry unless it already holds ``value``; return (written, revision).

    Optimistic like every natsflow write: create-if-absent, else update on the revision read.
    """
    kv = h.kv(bucket)
    for _ in range(5):
        try:
            entry = await kv.get(key)
        except KeyNotFoundError:
            try:
                return True, await kv.create(key, value)
            except KeyWrongLastSequenceError:
                continue  # created meanwhile: compare again
        if entry.value == value:
            return False, entry.revision or 0
        try:
            return True, await kv.update(key, value, last=entry.revision)
        except KeyWrongLastSequenceError:
            continue
    raise ConflictError(f"{bucket} {key}: changed concurrently five times; will retry")


async def apply_taskdefinition(
    h: NatsHandle, tenant: str, name: str, spec: TaskDefinitionSpec, *, generation: int | None = None
) -> Outcome:
    """Catalog entry in ``nf_taskdefs`` and the durable jobs consumer with the declared limits."""
    if (bad := _check_tenant("TaskDefinition", tenant, name)) is not None:
        return bad
    settings = job_settings(spec)
    subject = layout.job_subject(tenant, spec.task_type)
    consumer = layout.job_consumer(tenant, spec.task_type)
    try:
        info = await h.js.consumer_info(layout.STREAM_JOBS, consumer)
        differences = _job_consumer_differences(info.config, subject, settings)
        consumer_action = "updated" if differences else "unchanged"
    except NotFoundError:
        differences, consumer_action = ["missing"], "created"
    if differences:
        log.info("jobs consumer %s of tenant %s: %s", consumer, tenant, ", ".join(differences))
        await ensure_job_consumer(h.js, tenant, spec.task_type, settings)
    record = catalog.TaskDefRecord(
        tenant=tenant,
        task_type=spec.task_type,
        name=name,
        consumer=consumer,
        subject=subject,
        concurrency=settings.concurrency,
        timeout=settings.timeout,
        retries=settings.retries,
        backoff=list(settings.backoff),
        module=spec.module,
        generation=generation,
        parameters=[catalog.ParameterRecord(**p.model_dump()) for p in spec.parameters],
        results=[catalog.ParameterRecord(**p.model_dump()) for p in spec.results],
    )
    written, revision = await _put_if_changed(
        h, layout.BUCKET_TASKDEFS, layout.taskdef_key(tenant, spec.task_type), catalog.encode_record(record)
    )
    action = consumer_action if consumer_action != "unchanged" else ("updated" if written else "unchanged")
    return Outcome(
        "TaskDefinition",
        tenant,
        name,
        action,
        [
            Cond("Validated", True, "ValidSpec"),
            Cond("Synced", True, "CatalogEntryWritten" if written else "CatalogEntryCurrent"),
            Cond("ConsumerReady", True, f"Consumer{consumer_action.capitalize()}", consumer),
        ],
        {"consumer": consumer, "subject": subject, "revision": revision},
    )


async def delete_taskdefinition(h: NatsHandle, tenant: str, name: str, task_type: str) -> Outcome:
    """Remove the jobs consumer and the catalog entry (jobs already queued stay in the stream)."""
    await delete_job_consumer(h.js, tenant, task_type)
    await h.kv(layout.BUCKET_TASKDEFS).purge(layout.taskdef_key(tenant, task_type))
    return Outcome("TaskDefinition", tenant, name, "deleted")


# ----- Trigger ------------------------------------------------------------------------------


async def _source_stream(h: NatsHandle, spec: TriggerSpec) -> tuple[str | None, bool, str]:
    """(stream, captured, problem): the declared stream, the one storing the subject, or a new
    capture stream."""
    if spec.stream:
        try:
            await h.js.stream_info(spec.stream)
        except NotFoundError:
            return None, False, f"stream {spec.stream!r} does not exist"
        return spec.stream, spec.stream.startswith(catalog.CAPTURE_STREAM_PREFIX), ""
    try:
        found = await h.js.find_stream_name_by_subject(spec.subject)
        return found, found.startswith(catalog.CAPTURE_STREAM_PREFIX), ""
    except NotFoundError:
        pass
    name = catalog.capture_stream(spec.subject)
    try:
        await h.js.add_stream(
            StreamConfig(
                name=name,
                subjects=[spec.subject],
                retention=RetentionPolicy.INTEREST,
                storage=StorageType.FILE,
                max_age=CAPTURE_MAX_AGE,
                description="natsflow trigger capture stream (created by the operator)",
            )
        )
        log.info("created capture stream %s for subject %s", name, spec.subject)
    except BadRequestError as exc:  # the trigger server (or another operator run) was first
        if "already in use" not in str(exc):
            raise
    return name, True, ""


async def apply_trigger(
    h: NatsHandle,
    tenant: str,
    name: str,
    spec: TriggerSpec,
    *,
    previous_stream: str | None = None,
    generation: int | None = None,
    process_id: str | None = None,
) -> Outcome:
    """Catalog entry in ``nf_triggers`` and a durable consumer on the subject's stream;
    ``process_id`` is what ``workflowRef.name`` resolved to (else ``workflowRef.processId``)."""
    if (bad := _check_tenant("Trigger", tenant, name)) is not None:
        return bad
    stream, captured, problem = await _source_stream(h, spec)
    if stream is None:
        return Outcome(
            "Trigger", tenant, name, "failed",
            [Cond("Validated", True, "ValidSpec"), Cond("ConsumerReady", False, "StreamNotFound", problem)],
        )  # fmt: skip
    consumer = catalog.trigger_consumer(tenant, name)
    if previous_stream and previous_stream != stream:
        await _drop_trigger_consumer(h, previous_stream, consumer)
    try:
        info = await h.js.consumer_info(stream, consumer)
        stale = info.config.filter_subject != spec.subject or info.config.max_deliver != spec.max_deliver
        consumer_action = "updated" if stale else "unchanged"
    except NotFoundError:
        stale, consumer_action = True, "created"
    if stale:
        await ensure_trigger_consumer(
            h.js,
            stream,
            ConsumerConfig(
                durable_name=consumer,
                filter_subject=spec.subject,
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.NEW,
                ack_wait=TRIGGER_ACK_WAIT,
                max_deliver=spec.max_deliver,
                max_ack_pending=1000,
                max_waiting=512,
            ),
            tenant,
            name,
        )
    key = spec.idempotency_key
    record = catalog.TriggerRecord(
        tenant=tenant,
        name=name,
        subject=spec.subject,
        stream=stream,
        consumer=consumer,
        process_id=process_id or spec.workflow_ref.process_id or "",
        version=spec.workflow_ref.version,
        variables=dict(spec.variables),
        idempotency_header=key.header if key else None,
        idempotency_expression=key.expression if key else None,
        suspended=spec.suspend,
        dead_letter_subject=spec.dead_letter_subject,
        max_deliver=spec.max_deliver,
        captured=captured,
        generation=generation,
    )
    written, revision = await _put_if_changed(
        h, layout.BUCKET_TRIGGERS, layout.trigger_key(tenant, name), catalog.encode_record(record)
    )
    action = consumer_action if consumer_action != "unchanged" else ("updated" if written else "unchanged")
    return Outcome(
        "Trigger",
        tenant,
        name,
        action,
        [
            Cond("Validated", True, "ValidSpec"),
            Cond("Synced", True, "CatalogEntryWritten" if written else "CatalogEntryCurrent"),
            Cond("ConsumerReady", True, f"Consumer{consumer_action.capitalize()}", f"{stream}/{consumer}"),
        ],
        {"stream": stream, "consumer": consumer, "captured": captured, "revision": revision},
    )


async def _drop_trigger_consumer(h: NatsHandle, stream: str, consumer: str) -> None:
    """Delete a trigger's consumer; delete the stream too when it is an unused capture stream."""
    try:
        await h.js.delete_consumer(stream, consumer)
    except NotFoundError:
        return
    if stream.startswith(catalog.CAPTURE_STREAM_PREFIX):
        try:
            info = await h.js.stream_info(stream)
        except NotFoundError:
            return
        if not info.state.consumer_count:
            await h.js.delete_stream(stream)
            log.info("deleted capture stream %s (no triggers left)", stream)


async def delete_trigger(h: NatsHandle, tenant: str, name: str, stream: str | None) -> Outcome:
    """Remove the consumer, the catalog entry and an unused capture stream."""
    consumer = catalog.trigger_consumer(tenant, name)
    if stream is None:
        try:
            entry = await h.kv(layout.BUCKET_TRIGGERS).get(layout.trigger_key(tenant, name))
            stream = catalog.decode_trigger(entry.value or b"{}").stream
        except (KeyNotFoundError, msgspec.DecodeError):
            stream = None
    if stream:
        await drop_legacy_trigger_consumer(h.js, stream, tenant, name)
        await _drop_trigger_consumer(h, stream, consumer)
    await h.kv(layout.BUCKET_TRIGGERS).purge(layout.trigger_key(tenant, name))
    return Outcome("Trigger", tenant, name, "deleted")
