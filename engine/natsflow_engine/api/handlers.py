"""What each API endpoint does, given the tenant (from the subject) and a decoded request.

Commands are published to the engine's command stream with deterministic message ids, so a
client that retries a request after a timeout does not apply it twice. Handlers raise
natsflow errors; :mod:`.server` turns them into typed error replies.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from natsflow_engine import layout
from natsflow_engine.api import protocol as p
from natsflow_engine.api.views import (
    incidents_of,
    instance_view,
    list_instances,
    load_instance,
    read_history,
    scan_instances,
    task_view,
    trigger_views,
)
from natsflow_engine.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
    UnsupportedError,
)
from natsflow_engine.natsutil import list_kv_keys
from natsflow_engine.runtime import definitions as defs
from natsflow_engine.runtime import forms
from natsflow_engine.runtime import records as r
from natsflow_engine.store import compare_and_set, publish_command
from natsflow_engine.triggers.ledger import LaunchLedger

__all__ = ["Handlers", "check_names"]

log = logging.getLogger(__name__)

_task_decoder = msgspec.json.Decoder(r.UserTask)
_latest_decoder = msgspec.json.Decoder(defs.LatestRecord)
_NAME_RULES: dict[str, Callable[[str, str], object]] = {
    "process_id": layout.check_name,
    "name": layout.check_name,
    "key": layout.check_name,
    "message_id": layout.check_name,
    "evaluation_id": layout.check_name,
    "business_key": functools.partial(layout.check_name, empty=True),
    "assignee": functools.partial(layout.check_name, empty=True),
    "instance": layout.check_id,
    "cursor": layout.check_id,
    "task": functools.partial(layout.check_compound_id, parts=2),
    "incident": functools.partial(layout.check_compound_id, parts=3),
}
"""How each request field that becomes (part of) a subject or KV key, or names one, is bounded;
correlation keys are user data of any length and become a hash token (``layout.token``)."""


def check_names(req: msgspec.Struct) -> None:
    """Refuse a request whose names or ids are outside the limits of :mod:`natsflow_engine.layout`
    (:class:`InvalidNameError`, code ``invalid.name``), before anything reaches NATS."""
    for field in req.__struct_fields__:
        rule, value = _NAME_RULES.get(field), getattr(req, field)
        if rule is not None and isinstance(value, str):
            rule(field.replace("_", " "), value)


class Handlers:
    """Endpoint implementations over the natsflow buckets and streams."""

    def __init__(
        self,
        js: JetStreamContext,
        buckets: dict[str, KeyValue],
        ledger: LaunchLedger,
        max_payload: int,
        messaging: Any | None = None,
    ) -> None:
        self.js = js
        self.instances = buckets[layout.BUCKET_INSTANCES]
        self.workflows = buckets[layout.BUCKET_WORKFLOWS]
        self.usertasks = buckets[layout.BUCKET_USERTASKS]
        self.triggers = buckets[layout.BUCKET_TRIGGERS]
        self.ledger = ledger
        self.max_payload = max_payload
        self.messaging = messaging

    def _check_size(self, variables: dict[str, Any], what: str = "variables") -> None:
        size = len(msgspec.json.encode(variables))
        if size > self.max_payload:
            raise PayloadTooLargeError(
                f"{what} are {size} bytes, more than the limit of {self.max_payload} bytes"
            )

    async def _send(self, cmd: r.AnyCommand) -> None:
        await publish_command(self.js, cmd)

    # --- workflows ------------------------------------------------------------------------------

    async def deploy(self, tenant: str, req: p.DeployRequest) -> p.DeployReply:
        if len(req.source.encode()) > self.max_payload:
            raise PayloadTooLargeError(
                f"the BPMN document is larger than the limit of {self.max_payload} bytes"
            )
        deployed = await defs.deploy_definitions(self.workflows, tenant, req.source, name=req.name)
        return p.DeployReply(
            deployed=[
                p.DeployedVersion(process_id=d.process_id, version=d.version, created=d.created)
                for d in deployed
            ]
        )

    async def form_deploy(self, tenant: str, req: p.DeployRequest) -> p.FormDeployReply:
        """A Camunda form (``.form`` JSON) that user tasks link by ``formId``."""
        if len(req.source.encode()) > self.max_payload:
            raise PayloadTooLargeError(f"the form is larger than the limit of {self.max_payload} bytes")
        done = await forms.deploy_form(self.workflows, tenant, req.source, name=req.name)
        return p.FormDeployReply(form_id=done.form_id, version=done.version, created=done.created)

    async def form_get(self, tenant: str, req: p.FormGetRequest) -> p.FormGetReply:
        record = await forms.get_form(self.workflows, tenant, req.form_id)
        return p.FormGetReply(
            form_id=record.form_id,
            version=record.version,
            source=record.source,
            name=record.name,
            deployed_at=record.deployed_at,
        )

    async def workflow_list(self, tenant: str, req: p.Empty) -> p.WorkflowListReply:
        keys = await list_kv_keys(self.js, layout.BUCKET_WORKFLOWS, f"{tenant}.*.latest")
        values = await asyncio.gather(*(self._value(self.workflows, k) for k in keys))
        latest = sorted((_latest_decoder.decode(v) for v in values if v), key=lambda w: w.process_id)
        return p.WorkflowListReply(
            workflows=[
                p.WorkflowSummary(
                    process_id=w.process_id,
                    version=w.version,
                    name=w.name,
                    deployed_at=w.deployed_at,
                    source_hash=w.source_hash,
                )
                for w in latest
            ]
        )

    async def workflow_get(self, tenant: str, req: p.WorkflowGetRequest) -> p.WorkflowGetReply:
        latest = await defs.get_latest(self.workflows, tenant, req.process_id)
        record = await defs.get_definition(
            self.workflows, tenant, req.process_id, req.version or latest.version
        )
        keys = await list_kv_keys(
            self.js, layout.BUCKET_WORKFLOWS, f"{tenant}.{layout.token(req.process_id)}.*"
        )
        versions = sorted(int(k.rsplit(".v", 1)[1]) for k in keys if k.rsplit(".", 1)[1][1:].isdigit())
        return p.WorkflowGetReply(
            process_id=record.process_id,
            version=record.version,
            latest_version=latest.version,
            versions=versions,
            name=record.name,
            deployed_at=record.deployed_at,
            source_hash=record.source_hash,
            source=record.source if req.include_source else None,
        )

    # --- instances ------------------------------------------------------------------------------

    async def instance_start(self, tenant: str, req: p.StartRequest) -> p.StartReply:
        self._check_size(req.variables)
        await defs.resolve_version(self.workflows, tenant, req.process_id, req.version, check=True)
        iid = layout.idempotent_instance_id(tenant, req.process_id, req.key) if req.key else r.new_id()
        cmd = r.Launch(
            id=f"launch.{iid}",
            tenant=tenant,
            instance=iid,
            process_id=req.process_id,
            version=req.version,
            variables=req.variables,
            business_key=req.business_key,
        )
        duplicate = False
        if req.key:
            duplicate = not await self.ledger.launch(cmd, origin=f"api:{r.new_id()}")
        else:
            await self._send(cmd)
        created = await self._wait_created(tenant, iid) if req.wait else False
        if created:
            await self._refuse_failed_launch(tenant, iid)
        return p.StartReply(instance=iid, process_id=req.process_id, duplicate=duplicate, created=created)

    async def _refuse_failed_launch(self, tenant: str, iid: str) -> None:
        """A launch the engine could not apply because its record would be too large answers
        ``too_large`` (the failed instance stays, with the incident, under ``iid``)."""
        state, _ = await load_instance(self.instances, tenant, iid)
        if state.state == "failed" and any(i.kind == "payload" for i in state.incidents):
            reason = next(i.message for i in state.incidents if i.kind == "payload")
            raise PayloadTooLargeError(f"instance {iid} was not started: {reason}")

    async def _wait_created(self, tenant: str, iid: str, timeout: float = 5.0) -> bool:
        loop = asyncio.get_running_loop()
        deadline, pause = loop.time() + timeout, 0.002
        while True:
            try:
                await self.instances.get(layout.instance_key(tenant, iid))
                return True
            except KeyNotFoundError:
                if loop.time() > deadline:
                    return False
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.05)

    async def instance_cancel(self, tenant: str, req: p.CancelRequest) -> p.Accepted:
        state, _ = await load_instance(self.instances, tenant, req.instance)
        if state.state != "active":
            raise ConflictError(f"instance {req.instance} is {state.state} already")
        await self._send(
            r.Cancel(id=f"cancel.{req.instance}", tenant=tenant, instance=req.instance, reason=req.reason)
        )
        return p.Accepted(id=req.instance, instance=req.instance)

    async def instance_set_variables(self, tenant: str, req: p.SetVariablesRequest) -> p.Accepted:
        self._check_size(req.variables)
        state, _ = await load_instance(self.instances, tenant, req.instance)
        if state.state != "active":
            raise ConflictError(f"instance {req.instance} is {state.state} already")
        if req.scope is not None and req.scope not in state.eis:
            raise NotFoundError(f"instance {req.instance} has no scope {req.scope}")
        await self._send(
            r.SetVariables(
                id=f"set.{req.instance}.{r.new_id()}",
                tenant=tenant,
                instance=req.instance,
                variables=req.variables,
                ei=req.scope,
            )
        )
        return p.Accepted(id=req.instance, instance=req.instance)

    async def instance_get(self, tenant: str, req: p.InstanceGetRequest) -> p.InstanceView:
        state, _ = await load_instance(self.instances, tenant, req.instance, archive=self.js)
        return instance_view(state)

    async def instance_list(self, tenant: str, req: p.InstanceListRequest) -> p.InstanceListReply:
        return await list_instances(self.js, tenant, req)

    async def instance_history(self, tenant: str, req: p.HistoryRequest) -> p.HistoryReply:
        if not 1 <= req.limit <= 10_000:
            raise InvalidInputError(f"limit must be between 1 and 10000, not {req.limit}")
        await load_instance(self.instances, tenant, req.instance, archive=self.js)
        records, more = await read_history(
            self.js, tenant, req.instance, after_step=req.after_step, limit=req.limit
        )
        return p.HistoryReply(records=records, more=more)

    # --- messages and signals -------------------------------------------------------------------

    def _messages(self) -> Any:
        if self.messaging is None:
            raise UnsupportedError(
                "messages and signals are not available in this engine build (natsflow_engine.runtime.messaging)"
            )
        return self.messaging

    async def message_publish(self, tenant: str, req: p.MessagePublishRequest) -> p.PublishedReply:
        self._check_size(req.variables)
        reached = await self._messages().publish_message(
            tenant,
            req.name,
            req.correlation_key,
            req.variables,
            ttl=timedelta(seconds=req.ttl),
            message_id=req.message_id,
        )
        return p.PublishedReply(accepted=True, detail={"reached": _builtins(reached)})

    async def signal_broadcast(self, tenant: str, req: p.SignalBroadcastRequest) -> p.PublishedReply:
        self._check_size(req.variables)
        reached = await self._messages().broadcast_signal(tenant, req.name, req.variables)
        return p.PublishedReply(accepted=True, detail={"reached": _builtins(reached)})

    async def conditional_evaluate(
        self, tenant: str, req: p.ConditionalEvaluateRequest
    ) -> p.ConditionalEvaluateReply:
        self._check_size(req.variables)
        versions = None
        if req.process_id is not None:  # read from the store: a version deployed a moment ago counts
            latest = await defs.get_latest(self.workflows, tenant, req.process_id)
            versions = {req.process_id: latest.version}
        started, failed = await self._messages().evaluate_conditions(
            tenant, req.variables, versions=versions, evaluation_id=req.evaluation_id, max_starts=req.max_starts
        )
        return p.ConditionalEvaluateReply(
            started=[
                p.ConditionalStartView(
                    process_id=s.process_id, version=s.version, start_event=s.start_event, instance=s.instance
                )
                for s in started
            ],
            failed=[
                p.ConditionalErrorView(
                    process_id=f.process_id, version=f.version, start_event=f.start_event, error=f.error or ""
                )
                for f in failed
            ],
        )

    # --- user tasks -----------------------------------------------------------------------------

    async def _task(self, tenant: str, task_id: str) -> tuple[r.UserTask, int]:
        try:
            entry = await self.usertasks.get(layout.usertask_key(tenant, task_id))
        except KeyNotFoundError:
            raise NotFoundError(f"user task {task_id!r} is not open in tenant {tenant!r}") from None
        return _task_decoder.decode(entry.value or b""), entry.revision or 0

    async def trigger_list(self, tenant: str, req: p.Empty) -> p.TriggerListReply:
        return p.TriggerListReply(triggers=await trigger_views(self.js, self.triggers, tenant))

    async def task_list(self, tenant: str, req: p.TaskListRequest) -> p.TaskListReply:
        if not 1 <= req.limit <= 1000:
            raise InvalidInputError(f"limit must be between 1 and 1000, not {req.limit}")
        pattern = f"{tenant}.{req.instance}.*" if req.instance else f"{tenant}.>"
        keys = sorted(await list_kv_keys(self.js, layout.BUCKET_USERTASKS, pattern))
        tasks: list[p.TaskView] = []
        for start in range(0, len(keys), 64):
            values = await asyncio.gather(*(self._value(self.usertasks, k) for k in keys[start : start + 64]))
            for value in values:
                if value is None:
                    continue
                task = _task_decoder.decode(value)
                if req.assignee is None or task.assignee == req.assignee:
                    tasks.append(task_view(task))
            if len(tasks) >= req.limit:
                break
        return p.TaskListReply(tasks=tasks[: req.limit])

    @staticmethod
    async def _value(kv: KeyValue, key: str) -> bytes | None:
        try:
            return (await kv.get(key)).value or None
        except KeyNotFoundError:
            return None

    async def task_complete(self, tenant: str, req: p.TaskCompleteRequest) -> p.Accepted:
        self._check_size(req.variables)
        task, _ = await self._task(tenant, req.task)
        await self._send(
            r.UserTaskCompleted(
                id=f"utc.{task.id}",
                tenant=tenant,
                instance=task.instance,
                task=task.id,
                variables=req.variables,
            )
        )
        return p.Accepted(id=task.id, instance=task.instance)

    async def task_claim(self, tenant: str, req: p.TaskClaimRequest) -> p.TaskView:
        task, _ = await self._task(tenant, req.task)  # refuses ids that are no task and tasks not open

        async def claim(current: bytes | None) -> bytes | None:
            if current is None:
                raise NotFoundError(f"user task {req.task!r} is not open in tenant {tenant!r}")
            task = _task_decoder.decode(current)
            if task.assignee == req.assignee:
                return None
            if task.assignee and req.assignee and not req.force:
                raise ConflictError(f"user task {req.task} is claimed by {task.assignee!r} already")
            task.assignee = req.assignee
            return r.encode(task)

        written = await compare_and_set(self.usertasks, layout.usertask_key(tenant, task.id), claim)
        return task_view(_task_decoder.decode(written.value or b""))

    # --- incidents ------------------------------------------------------------------------------

    async def incident_list(self, tenant: str, req: p.IncidentListRequest) -> p.IncidentListReply:
        if not 1 <= req.limit <= 10_000:
            raise InvalidInputError(f"limit must be between 1 and 10000, not {req.limit}")
        if req.instance is not None:
            state, _ = await load_instance(self.instances, tenant, req.instance)
            return p.IncidentListReply(incidents=incidents_of(state)[: req.limit])
        found: list[p.IncidentInfo] = []

        def keep(s: r.InstanceState) -> bool:
            return bool(s.incidents) and (req.process_id is None or s.process_id == req.process_id)

        async for state in scan_instances(self.js, self.instances, tenant, keep=keep):
            found.extend(incidents_of(state))
            if len(found) >= req.limit:
                break
        return p.IncidentListReply(incidents=found[: req.limit])

    async def incident_resolve(self, tenant: str, req: p.IncidentResolveRequest) -> p.Accepted:
        self._check_size(req.variables)
        instance = req.incident.split(".", 1)[0]
        try:
            state, _ = await load_instance(self.instances, tenant, instance)
        except NotFoundError:
            raise NotFoundError(f"incident {req.incident!r} not found in tenant {tenant!r}") from None
        if not any(i.id == req.incident for i in state.incidents):
            raise NotFoundError(f"incident {req.incident!r} is not open (resolved already?)")
        if state.state != "active":
            # records written before incidents were closed with their instance still list them
            raise ConflictError(f"incident {req.incident!r} is closed: instance {instance} is {state.state}")
        await self._send(
            r.ResolveIncident(
                id=f"resolve.{req.incident}",
                tenant=tenant,
                instance=instance,
                incident=req.incident,
                variables=req.variables,
            )
        )
        return p.Accepted(id=req.incident, instance=instance)


def _builtins(value: Any) -> Any:
    try:
        return msgspec.to_builtins(value)
    except TypeError:
        return str(value)
