"""``ApiClient``: one async method per API endpoint, errors as natsflow exceptions.

.. code-block:: python

    api = ApiClient(nc, "shop")
    await api.deploy(Path("order.bpmn").read_text(), name="order.bpmn")
    started = await api.start("order", {"amount": 10}, key="order-17")
    async for record in api.watch(started.instance):
        print(record.step, [e.type for e in record.events])

Error replies become the natsflow exception of their code (the class that carries that
``api_code`` in :mod:`natsflow_engine.errors`): ``not_found`` -> :class:`NotFoundError`,
``invalid.bpmn`` -> :class:`BpmnValidationError` with every issue, and so on; a code this
client does not know becomes the class of its category (``invalid.x`` -> ``InvalidInputError``)
or :class:`ApiError`. No API replica answering is a :class:`ConnectionFailedError`; NATS
refusing the request (``-ERR 'Permissions Violation ...'``) is a
:class:`PermissionViolationError`, raised as soon as NATS says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import DeliverPolicy

from natsflow_engine import layout, tracing
from natsflow_engine.api import protocol as p
from natsflow_engine.errors import (
    ApiError,
    ConnectionFailedError,
    PayloadTooLargeError,
    PermissionViolationError,
)
from natsflow_engine.runtime.records import HistoryRecord

__all__ = ["ApiClient", "ApiError"]

T = TypeVar("T")
_reply_decoder = msgspec.json.Decoder(p.Reply)
_history_decoder = msgspec.json.Decoder(HistoryRecord)


class _PermissionTap:
    """Hands NATS permission errors to the requests they concern.

    nats-server answers a publish or subscribe the credentials do not allow with
    ``-ERR 'Permissions Violation for Publish to "<subject>"'`` and keeps the connection;
    nats-py passes that only to the connection's error callback, so the request itself would
    wait for its timeout. The tap wraps that callback (calling the original one too) and fails
    the waiting requests at once: those on the refused subject, or every one when the refused
    subscription is the reply inbox."""

    def __init__(self, nc: Client) -> None:
        self._inner: Callable[[Exception], Awaitable[None]] = nc._error_cb
        self._waiting: dict[str, set[asyncio.Future[str]]] = {}
        nc._error_cb = self._error_cb

    async def _error_cb(self, exc: Exception) -> None:
        text = str(exc)
        lowered = text.lower()  # nats-py lower-cases the server's error line, subject included
        if "permissions violation" in lowered:
            refused = lowered.split('"')[1] if lowered.count('"') >= 2 else ""
            everyone = "subscription" in lowered or refused.startswith("_inbox.")
            for subject, futures in self._waiting.items():
                if everyone or subject.lower() == refused:
                    for future in futures:
                        if not future.done():
                            future.set_result(text)
        await self._inner(exc)

    @contextlib.contextmanager
    def watch(self, subject: str) -> Iterator[asyncio.Future[str]]:
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(subject, set()).add(future)
        try:
            yield future
        finally:
            futures = self._waiting.get(subject, set())
            futures.discard(future)
            if not futures:
                self._waiting.pop(subject, None)


_taps: weakref.WeakKeyDictionary[Client, _PermissionTap] = weakref.WeakKeyDictionary()


def _tap(nc: Client) -> _PermissionTap:
    tap = _taps.get(nc)
    if tap is None:
        tap = _taps[nc] = _PermissionTap(nc)
    return tap


class ApiClient:
    """A client of the natsflow API for one tenant, over an open NATS connection."""

    def __init__(self, nc: Client, tenant: str = layout.DEFAULT_TENANT, *, timeout: float = 10.0) -> None:
        self.nc = nc
        self.tenant = layout.validate_tenant(tenant)
        self.timeout = timeout

    async def call(
        self, endpoint: str, request: p.Request, result: type[T], *, timeout: float | None = None
    ) -> T:
        """Send ``request`` to ``endpoint`` and decode the result (the generic form of every method)."""
        data = msgspec.json.encode(request)
        if len(data) > self.nc.max_payload:
            raise PayloadTooLargeError(
                f"the request is {len(data)} bytes, more than the server accepts ({self.nc.max_payload})"
            )
        subject = p.api_subject(self.tenant, endpoint)
        msg = await self._request(subject, endpoint, data, timeout or self.timeout)
        try:
            reply = _reply_decoder.decode(msg.data)
        except msgspec.DecodeError as exc:
            raise ApiError("internal", f"unreadable reply from the API: {exc}") from None
        if reply.error is not None:
            raise p.decode_error(reply.error)
        if not len(reply.result):
            raise ApiError("internal", "the API reply has neither a result nor an error")
        return msgspec.json.decode(reply.result, type=result)

    async def _request(self, subject: str, endpoint: str, data: bytes, timeout: float) -> Msg:
        with _tap(self.nc).watch(subject) as refused:
            headers = tracing.inject({}) or None
            asking = asyncio.ensure_future(self.nc.request(subject, data, timeout=timeout, headers=headers))
            either: set[asyncio.Future[Any]] = {asking, refused}
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            if not asking.done():
                asking.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asking
                raise PermissionViolationError(
                    f"NATS refused the {endpoint} request: {refused.result()}", subject
                )
        try:
            return asking.result()
        except NoRespondersError:
            raise ConnectionFailedError(
                f"no natsflow API server answers on {subject} (is an engine running?)"
            ) from None
        except (NatsTimeoutError, TimeoutError):
            raise ConnectionFailedError(f"the natsflow API did not answer {endpoint} in time") from None

    # --- workflows ------------------------------------------------------------------------------

    async def deploy(self, source: str, *, name: str | None = None) -> list[p.DeployedVersion]:
        reply = await self.call("deploy", p.DeployRequest(source=source, name=name), p.DeployReply)
        return reply.deployed

    async def deploy_form(self, source: str, *, name: str | None = None) -> p.FormDeployReply:
        """Deploy a Camunda form (``.form`` JSON) for user tasks that name its id in ``formId``."""
        return await self.call("form-deploy", p.DeployRequest(source=source, name=name), p.FormDeployReply)

    async def form(self, form_id: str) -> p.FormGetReply:
        return await self.call("form-get", p.FormGetRequest(form_id=form_id), p.FormGetReply)

    async def workflows(self) -> list[p.WorkflowSummary]:
        return (await self.call("workflow-list", p.Empty(), p.WorkflowListReply)).workflows

    async def workflow(
        self, process_id: str, version: int | None = None, *, source: bool = False
    ) -> p.WorkflowGetReply:
        request = p.WorkflowGetRequest(process_id=process_id, version=version, include_source=source)
        return await self.call("workflow-get", request, p.WorkflowGetReply)

    # --- instances ------------------------------------------------------------------------------

    async def start(
        self,
        process_id: str,
        variables: dict[str, Any] | None = None,
        *,
        key: str | None = None,
        business_key: str | None = None,
        version: int | None = None,
        wait: bool = False,
    ) -> p.StartReply:
        request = p.StartRequest(
            process_id=process_id,
            variables=dict(variables or {}),
            key=key,
            business_key=business_key,
            version=version,
            wait=wait,
        )
        return await self.call("instance-start", request, p.StartReply)

    async def cancel(self, instance: str, reason: str = "") -> p.Accepted:
        return await self.call(
            "instance-cancel", p.CancelRequest(instance=instance, reason=reason), p.Accepted
        )

    async def set_variables(
        self, instance: str, variables: dict[str, Any], *, scope: int | None = None
    ) -> p.Accepted:
        request = p.SetVariablesRequest(instance=instance, variables=dict(variables), scope=scope)
        return await self.call("instance-set-variables", request, p.Accepted)

    async def instance(self, instance: str) -> p.InstanceView:
        return await self.call("instance-get", p.InstanceGetRequest(instance=instance), p.InstanceView)

    async def instances(
        self,
        *,
        process_id: str | None = None,
        state: str | None = None,
        business_key: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        version: int | None = None,
        incidents: bool | None = None,
        started_after: str | None = None,
        started_before: str | None = None,
        variables: dict[str, Any] | None = None,
    ) -> p.InstanceListReply:
        """One page of the instance index (see :class:`~natsflow_engine.api.protocol.InstanceListRequest`)."""
        request = p.InstanceListRequest(
            process_id=process_id,
            state=state,
            business_key=business_key,
            limit=limit,
            cursor=cursor,
            version=version,
            incidents=incidents,
            started_after=started_after,
            started_before=started_before,
            variables=variables,
        )
        return await self.call("instance-list", request, p.InstanceListReply)

    async def history(self, instance: str, *, after_step: int = 0, limit: int = 1000) -> p.HistoryReply:
        request = p.HistoryRequest(instance=instance, after_step=after_step, limit=limit)
        return await self.call("instance-history", request, p.HistoryReply)

    # --- messages and signals -------------------------------------------------------------------

    async def publish_message(
        self,
        name: str,
        *,
        correlation_key: str = "",
        variables: dict[str, Any] | None = None,
        ttl: float = 0.0,
        message_id: str | None = None,
    ) -> p.PublishedReply:
        request = p.MessagePublishRequest(
            name=name,
            correlation_key=correlation_key,
            variables=dict(variables or {}),
            ttl=ttl,
            message_id=message_id,
        )
        return await self.call("message-publish", request, p.PublishedReply)

    async def broadcast_signal(self, name: str, variables: dict[str, Any] | None = None) -> p.PublishedReply:
        request = p.SignalBroadcastRequest(name=name, variables=dict(variables or {}))
        return await self.call("signal-broadcast", request, p.PublishedReply)

    async def evaluate_conditions(
        self,
        variables: dict[str, Any] | None = None,
        *,
        process_id: str | None = None,
        evaluation_id: str | None = None,
        max_starts: int = 100,
    ) -> p.ConditionalEvaluateReply:
        """Start an instance at each root-level conditional start event whose condition holds
        for ``variables`` (of ``process_id`` only, when given); see the ``conditional-evaluate``
        endpoint."""
        request = p.ConditionalEvaluateRequest(
            variables=dict(variables or {}), process_id=process_id, evaluation_id=evaluation_id, max_starts=max_starts
        )
        return await self.call("conditional-evaluate", request, p.ConditionalEvaluateReply)

    # --- user tasks -----------------------------------------------------------------------------

    async def tasks(
        self, instance: str | None = None, *, assignee: str | None = None, limit: int = 200
    ) -> list[p.TaskView]:
        request = p.TaskListRequest(instance=instance, assignee=assignee, limit=limit)
        return (await self.call("task-list", request, p.TaskListReply)).tasks

    async def complete_task(self, task: str, variables: dict[str, Any] | None = None) -> p.Accepted:
        request = p.TaskCompleteRequest(task=task, variables=dict(variables or {}))
        return await self.call("task-complete", request, p.Accepted)

    async def claim_task(self, task: str, assignee: str | None, *, force: bool = False) -> p.TaskView:
        return await self.call(
            "task-claim", p.TaskClaimRequest(task=task, assignee=assignee, force=force), p.TaskView
        )

    # --- incidents and triggers -----------------------------------------------------------------

    async def incidents(
        self, instance: str | None = None, *, process_id: str | None = None, limit: int = 500
    ) -> list[p.IncidentInfo]:
        request = p.IncidentListRequest(instance=instance, process_id=process_id, limit=limit)
        return (await self.call("incident-list", request, p.IncidentListReply)).incidents

    async def resolve_incident(self, incident: str, variables: dict[str, Any] | None = None) -> p.Accepted:
        request = p.IncidentResolveRequest(incident=incident, variables=dict(variables or {}))
        return await self.call("incident-resolve", request, p.Accepted)

    async def triggers(self) -> list[p.TriggerView]:
        return (await self.call("trigger-list", p.Empty(), p.TriggerListReply)).triggers

    # --- real-time status -----------------------------------------------------------------------

    async def events(
        self, instance: str | None = None, *, from_start: bool = True
    ) -> AsyncGenerator[HistoryRecord, None]:
        """History records as they are written: of one instance (from its first step when
        ``from_start``), or of every instance of the tenant (new ones only). Runs until the
        caller stops iterating. Reads the history stream with an ordered consumer (push, in
        order, no gaps): a record arrives a few milliseconds after its step."""
        subject = layout.history_subject(self.tenant, instance or "*")
        js = self.nc.jetstream()
        policy = None if (instance and from_start) else DeliverPolicy.NEW
        sub = await js.subscribe(
            subject, stream=layout.STREAM_HISTORY, ordered_consumer=True, deliver_policy=policy
        )
        try:
            async for msg in sub.messages:
                try:
                    yield _history_decoder.decode(msg.data)
                except msgspec.DecodeError:
                    continue
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def watch(self, instance: str) -> AsyncIterator[HistoryRecord]:
        """Every history record of one instance, then live ones, until the instance ends."""
        await self.instance(instance)  # NotFoundError for an unknown instance
        async for record in self.events(instance):
            yield record
            if record.state != "active":
                return
