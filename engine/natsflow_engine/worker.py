"""The worker SDK: run async handlers for the jobs of BPMN tasks.

.. code-block:: python

    from natsflow.worker import BpmnError, JobFailure, Worker

    app = Worker()

    @app.task("charge-card", concurrency=8)
    async def charge(job):
        if not job.variables.get("card"):
            raise JobFailure("no card number in the order", retry=False)
        if job.variables["amount"] > 1000:
            raise BpmnError("limit-exceeded", "amount too large")
        return {"charged": True}

Run it with ``natsflow worker module:app``. A handler returns the variables to set (or None)
and raises :class:`BpmnError` for a business error the model catches. Any other exception is a
failure: the job is retried while retries are left, then becomes an incident on the instance.
As in Zeebe, a task's ``retries`` counts attempts in all: ``retries="3"`` runs the handler at
most three times (``Job.retries_left`` is 2, 1, 0). The worker fails the job with the retries
left and a back-off (the TaskDefinition's ``backoff``, else :class:`RetryBackoff`: 1 s, 2 s,
4 s, ... at most 60 s); the engine creates the job again when the back-off has passed on its
clock, so the test kit's virtual clock skips it (``advance_time``).
A failure that another attempt cannot fix raises
``JobFailure(message, retry=False)``: the job becomes an incident with ``message`` at once,
without the remaining retries (``JobFailure(message)`` is an ordinary, retried failure with a
clean message). A job whose handler runs longer than the consumer's ack wait is kept alive
with progress signals.

A handler runs at least once per job, not exactly once: when the worker dies holding a job, or
the NATS server restarts before the acknowledgement reaches it, the job is delivered again. The
engine applies one result per job. A handler whose side effect must happen once de-duplicates
with ``job.key`` (``<instance>.<element instance>.<attempt of the element>``): the same on every
delivery of a job, different for every new job. ``job.attempt`` is no such key (see
docs/workers.md).

Shutdown is graceful: stop fetching, let in-flight handlers finish (bounded), then cancel the
rest (their jobs are redelivered). :meth:`Worker.run` ends with :class:`ConnectionFailedError`
when the connection is closed for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerInfo
from nats.js.errors import NotFoundError

from natsflow_engine import layout, tracing
from natsflow_engine.errors import BpmnError, ConnectionFailedError, JobFailure
from natsflow_engine.natsutil import PullLoop, cancel_and_wait, deliveries
from natsflow_engine.publisher import JetStreamPublisher
from natsflow_engine.runtime import records as r
from natsflow_engine.runtime.setup import JobConsumerSettings, ensure_job_consumer, ensure_layout
from natsflow_engine.store import publish_command

__all__ = ["BpmnError", "Job", "JobFailure", "RetryBackoff", "Worker"]

log = logging.getLogger(__name__)

_job_decoder = msgspec.json.Decoder(r.Job)


@dataclass(frozen=True)
class Job:
    """What a handler receives."""

    key: str
    """The job's identity, the same on every delivery of this job: the key to de-duplicate side
    effects with (an idempotency key for the systems the handler calls)."""
    type: str
    instance_id: str
    process_id: str
    element_id: str
    variables: Mapping[str, Any]
    headers: Mapping[str, str]
    retries_left: int
    attempt: int
    """Deliveries of this job so far, 1 the first time (after a server crash a redelivery may
    count 1 again: not a de-duplication key)."""
    tenant: str


Handler = Callable[[Job], Awaitable[Mapping[str, Any] | None]]


@dataclass(frozen=True)
class RetryBackoff:
    """The delay before a failed job's next attempt when its TaskDefinition sets no ``backoff``:
    ``initial`` seconds after the first attempt, times ``factor`` after each further one, at
    most ``maximum`` seconds (the defaults of Temporal's retry policy, capped at a minute)."""

    initial: float = 1.0
    """Seconds before the second attempt."""
    factor: float = 2.0
    """Growth of the delay per attempt."""
    maximum: float = 60.0
    """The longest delay."""

    def delay(self, attempt: int) -> float:
        """Seconds to wait after attempt number ``attempt`` (1 for the first) failed."""
        return float(min(self.maximum, self.initial * self.factor ** max(0, attempt - 1)))


@dataclass
class _Task:
    type: str
    handler: Handler
    concurrency: int
    consumer: JobConsumerSettings
    info: ConsumerInfo | None = None
    puller: PullLoop | None = None
    starting: asyncio.Task[None] | None = None


class Worker:
    """Runs handlers for one or more task types. Any number of worker processes may serve the
    same task type; they share its durable consumer."""

    def __init__(
        self,
        nats_url: str | None = None,
        *,
        tenant: str = layout.DEFAULT_TENANT,
        nc: Client | None = None,
        max_payload: int = 1024 * 1024,
        shutdown_timeout: float = 30.0,
        js_domain: str | None = None,
        backoff: RetryBackoff | None = None,
    ) -> None:
        """``js_domain``: the JetStream domain of the platform's servers, for a worker connected
        to a leaf node server at a remote site (its JetStream requests cross the leaf link)."""
        self.nats_url = nats_url
        self.tenant = layout.validate_tenant(tenant)
        self.nc = nc
        self._own_nc = nc is None
        self.max_payload = max_payload
        self.shutdown_timeout = shutdown_timeout
        self.js_domain = js_domain
        self.backoff = backoff or RetryBackoff()
        self._tasks: dict[str, _Task] = {}
        self._js_context: JetStreamContext | None = None
        self._publisher: JetStreamPublisher | None = None
        """Sends the results (the engine's lean publisher: a third of the client CPU of
        nats-py's ``js.publish``)."""
        self._started = False
        self._layout_checked = asyncio.Lock()
        self.completed = 0
        self.failed = 0
        self.closed_check = 0.5
        """Seconds between two looks at the connection in :meth:`run`."""

    # --- registration ---------------------------------------------------------------------------

    def task(
        self,
        task_type: str,
        *,
        concurrency: int = 16,
        consumer: JobConsumerSettings | None = None,
    ) -> Callable[[Handler], Handler]:
        """Register ``handler`` for jobs of ``task_type``; ``concurrency`` bounds this process."""

        layout.check_name("task type", task_type)

        def register(handler: Handler) -> Handler:
            if task_type in self._tasks:
                raise ValueError(f"a handler for task type {task_type!r} is registered already")
            spec = _Task(task_type, handler, concurrency, consumer or JobConsumerSettings())
            self._tasks[task_type] = spec
            if self._started:
                # registered while running (the test kit does this): start serving at once
                spec.starting = asyncio.get_running_loop().create_task(
                    self._serve(spec), name=f"natsflow-worker-{task_type}"
                )
            return handler

        return register

    def keep_only(self, task_type: str) -> None:
        """Serve one task type only (one Deployment per TaskDefinition runs a shared app)."""
        if self._started:
            raise RuntimeError("keep_only() must be called before start()")
        self._tasks = {t: s for t, s in self._tasks.items() if t == task_type}

    @property
    def task_types(self) -> list[str]:
        return list(self._tasks)

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> Worker:
        if self.nc is None:
            self.nc = await nats.connect(
                self.nats_url or "nats://127.0.0.1:4222",
                inbox_prefix=os.environ.get("NATS_INBOX_PREFIX") or "_INBOX",  # set in worker pods
            )
        self._started = True
        if self._publisher is None:
            self._publisher = await JetStreamPublisher(self.nc).start()
        await asyncio.gather(*(self._serve(spec) for spec in self._tasks.values()))
        log.info("worker serving %s for tenant %s", ", ".join(self._tasks) or "no task types", self.tenant)
        return self

    async def stop(self, timeout: float | None = None) -> None:
        """Stop fetching, let in-flight handlers finish (bounded), then cancel the rest."""
        timeout = self.shutdown_timeout if timeout is None else timeout
        self._started = False
        for spec in self._tasks.values():
            if spec.starting is not None:
                await cancel_and_wait(spec.starting)
                spec.starting = None
        pullers = [spec.puller for spec in self._tasks.values() if spec.puller is not None]
        for puller in pullers:
            await puller.stop_pulling()
        await asyncio.gather(*(puller.drain(timeout) for puller in pullers))
        for spec in self._tasks.values():
            spec.puller = None
        publisher, self._publisher = self._publisher, None
        if publisher is not None:
            await publisher.stop()
        if self._own_nc and self.nc is not None:
            await self.nc.close()
            self.nc = None

    @property
    def inflight(self) -> int:
        return sum(spec.puller.inflight for spec in self._tasks.values() if spec.puller is not None)

    async def __aenter__(self) -> Worker:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def run(self) -> None:
        """Start and serve until cancelled, or until the connection is closed for good (the
        server closed it, or nats-py gave up reconnecting): then stop and raise
        :class:`ConnectionFailedError`, so that ``asyncio.run(app.run())`` ends non-zero and a
        supervisor restarts the process instead of keeping a worker that fetches nothing.
        Starts the worker unless :meth:`start` was called already."""
        if not self._started:
            try:
                await self.start()
            except Exception as exc:  # the connection may have been closed for good while starting
                nc = self.nc
                if nc is None or not nc.is_closed:
                    raise
                await self.stop()
                raise ConnectionFailedError(
                    f"the worker's NATS connection was closed for good: {nc.last_error}"
                ) from exc
        assert self.nc is not None
        nc = self.nc
        try:
            # nats-py has no awaitable close and the client may be the caller's: look at it
            while not nc.is_closed:  # noqa: ASYNC110
                await asyncio.sleep(self.closed_check)
        finally:
            await self.stop()
        raise ConnectionFailedError(f"the worker's NATS connection was closed for good: {nc.last_error}")

    # --- serving --------------------------------------------------------------------------------

    async def _serve(self, spec: _Task) -> None:
        assert self.nc is not None
        js = self._js()
        name = layout.job_consumer(self.tenant, spec.type)
        try:  # the only JetStream read a worker user is granted besides its jobs
            spec.info = await js.consumer_info(layout.STREAM_JOBS, name)
        except NotFoundError:  # a fresh account (natsflow dev, tests): create what is missing
            async with self._layout_checked:
                await ensure_layout(js)
            await ensure_job_consumer(js, self.tenant, spec.type, spec.consumer, update=False)
            spec.info = await js.consumer_info(layout.STREAM_JOBS, name)
        spec.puller = await PullLoop(
            self.nc,
            layout.STREAM_JOBS,
            name,
            functools.partial(self._run, spec),
            max_inflight=spec.concurrency,
            batch=spec.concurrency,
            name=f"worker-{spec.type}",
            api_prefix=f"$JS.{self.js_domain}.API" if self.js_domain else "$JS.API",
        ).start()

    async def _run(self, spec: _Task, msg: Msg) -> None:
        if not tracing.enabled():  # no span, and the job's headers are never parsed
            await self._work(spec, msg)
            return
        with tracing.span(f"job {spec.type}", msg.headers, {"natsflow.task_type": spec.type}):
            await self._work(spec, msg)

    async def _work(self, spec: _Task, msg: Msg) -> None:
        try:
            raw = _job_decoder.decode(msg.data)
        except msgspec.DecodeError as exc:
            log.error("dropping undecodable job on %s: %s", msg.subject, exc)
            await msg.term()
            return
        if raw.tenant != self.tenant or raw.type != spec.type:  # whose job it is: the consumer says
            log.error(
                "dropping job %s on %s: it names tenant %r and task type %r, this consumer serves %r of %r",
                raw.key, msg.subject, raw.tenant, raw.type, spec.type, self.tenant,
            )
            await msg.term()
            return
        # as in Zeebe, a job's retries are the attempts still allowed, this one included; a
        # delivery after a worker crashed or timed out is an attempt too, and a TaskDefinition's
        # retries (the consumer's max_deliver - 1) bound the attempts
        attempt = raw.attempt + (deliveries(msg) or 1) - 1
        retries_left = max(0, raw.retries - 1)
        max_deliver = spec.info.config.max_deliver if spec.info and spec.info.config.max_deliver else -1
        if max_deliver > 0:
            retries_left = min(retries_left, max(0, max_deliver - attempt))
        job = Job(
            key=raw.key,
            type=raw.type,
            instance_id=raw.instance,
            process_id=raw.process_id,
            element_id=raw.element_id,
            variables=raw.variables,
            headers=raw.headers,
            retries_left=retries_left,
            attempt=attempt,
            tenant=raw.tenant,
        )
        keepalive = asyncio.create_task(self._keepalive(spec, msg))
        try:
            result = await spec.handler(job)
        except BpmnError as exc:
            keepalive.cancel()
            await self._send(
                spec,
                r.JobError(
                    id=f"{raw.key}.err",
                    tenant=raw.tenant,
                    instance=raw.instance,
                    job=raw.key,
                    ei=raw.ei,
                    code=exc.code,
                    message=exc.message,
                    variables=exc.variables,
                )
            )
            await msg.ack()
            return
        except asyncio.CancelledError:
            keepalive.cancel()
            with contextlib.suppress(Exception):
                await msg.nak()
            raise
        except JobFailure as exc:
            keepalive.cancel()
            self.failed += 1
            await self._failed(spec, msg, raw, job, exc.message, final=not exc.retry)
            return
        except Exception as exc:
            keepalive.cancel()
            self.failed += 1
            await self._failed(spec, msg, raw, job, f"{type(exc).__name__}: {exc}")
            return
        keepalive.cancel()
        variables = dict(result or {})
        command = r.JobCompleted(
            id=f"{raw.key}.done",
            tenant=raw.tenant,
            instance=raw.instance,
            job=raw.key,
            ei=raw.ei,
            variables=variables,
        )
        data = r.encode(command)
        if len(data) > self.max_payload:
            await self._failed(
                spec,
                msg,
                raw,
                job,
                f"result variables are {len(data)} bytes, more than the limit of {self.max_payload}",
                final=True,
            )
            return
        await self._send(spec, command, data)
        await msg.ack()
        self.completed += 1

    async def _failed(
        self, spec: _Task, msg: Msg, raw: r.Job, job: Job, message: str, *, final: bool = False
    ) -> None:
        retries = 0 if final else job.retries_left
        delay = self._delay(spec, job.attempt) if retries else 0.0
        context = _log_context(raw)
        if retries:
            log.info("job %s failed (attempt %d, %d retries left, next in %.3g s): %s", raw.key,
                     job.attempt, retries, delay, message, extra=context)
        else:
            log.warning("job %s failed, %s: %s", raw.key, "not retried" if final else "no retries left",
                        message, extra=context)
        await self._send(
            spec,
            r.JobFailed(
                id=f"{raw.key}.fail",
                tenant=raw.tenant,
                instance=raw.instance,
                job=raw.key,
                ei=raw.ei,
                message=message,
                retries=retries,
                backoff=delay,
            )
        )
        await msg.ack()

    def _delay(self, spec: _Task, attempt: int) -> float:
        """The TaskDefinition's backoff (its consumer's; the last one repeats), else the default."""
        listed = spec.info.config.backoff if spec.info and spec.info.config.backoff else None
        if listed:
            return float(listed[min(attempt - 1, len(listed) - 1)])
        return self.backoff.delay(attempt)

    async def _send(self, spec: _Task, command: r.AnyCommand, data: bytes | None = None) -> None:
        """Send a job's result on the task type's result subject (the only command subjects
        a worker user may publish to; the engine checks that the job is of that type)."""
        assert self.nc is not None
        subject = layout.result_subject(self.tenant, command.instance, spec.type)
        publisher = self._publisher
        if publisher is None or not publisher.started:
            await publish_command(self._js(), command, data=data, subject=subject)
            return
        payload = data if data is not None else r.encode(command)
        await publisher.publish(subject, payload, tracing.inject({"Nats-Msg-Id": command.id}))

    def _js(self) -> JetStreamContext:
        assert self.nc is not None
        if self._js_context is None or self._js_context._nc is not self.nc:
            self._js_context = self.nc.jetstream(domain=self.js_domain)
        return self._js_context

    async def _keepalive(self, spec: _Task, msg: Msg) -> None:
        ack_wait = spec.info.config.ack_wait if spec.info and spec.info.config.ack_wait else 30.0
        interval = max(0.5, ack_wait / 3)
        with contextlib.suppress(Exception):
            while True:
                await asyncio.sleep(interval)
                await msg.in_progress()


def _log_context(job: r.Job) -> dict[str, str]:
    """The structured log fields of a job's lines (see ``natsflow_engine.observability``)."""
    return {"tenant": job.tenant, "instance": job.instance, "element": job.element_id}
