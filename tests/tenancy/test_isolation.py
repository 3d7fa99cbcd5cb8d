"""Two tenant accounts on one operator-mode server, each running the natsflow layout and an
engine: a user of tenant a, even one without any permission limit inside a's account, can
neither read nor change anything of tenant b."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import nats
import pytest
from nats.aio.client import RawCredentials
from nats.aio.msg import Msg
from nats.js.errors import NotFoundError
from natsflow_engine import layout
from natsflow_engine.runtime import records as r
from natsflow_engine.worker import Job, Worker
from tenancy_kit import OperatorServer, TenantStack


@pytest.fixture
async def stacks(operator_server: OperatorServer) -> AsyncIterator[tuple[TenantStack, TenantStack]]:
    a = await TenantStack.start(operator_server, "a")
    b = await TenantStack.start(operator_server, "b")
    try:
        yield a, b
    finally:
        await a.stop()
        await b.stop()


async def _paying_worker(stack: TenantStack) -> Worker:
    worker = Worker(tenant=stack.tenant, nc=stack.nc)

    @worker.task("pay")
    async def pay(job: Job) -> dict[str, Any]:
        return {"paid": job.variables["amount"], "secret": f"{stack.tenant}-card-4242"}

    return await worker.start()


async def test_a_user_of_tenant_a_sees_nothing_of_tenant_b(
    operator_server: OperatorServer, stacks: tuple[TenantStack, TenantStack]
) -> None:
    a, b = stacks
    spy = await nats.connect(
        operator_server.url, user_credentials=RawCredentials(a.account.user("spy").creds)
    )
    seen: list[Msg] = []

    async def record(msg: Msg) -> None:
        seen.append(msg)

    await spy.subscribe(">", cb=record)
    await spy.subscribe("_INBOX.>", cb=record)
    await spy.flush(timeout=5)
    workers = [await _paying_worker(a), await _paying_worker(b)]
    try:
        iid_b = await b.launch({"amount": 7})
        iid_a = await a.launch({"amount": 3})
        state_b = await b.wait_for(iid_b, b.waits_at("approve"))
        assert state_b.root_vars()["secret"] == "b-card-4242"
        await a.wait_for(iid_a, a.waits_at("approve"))
        await spy.flush(timeout=5)

        # the spy saw its own tenant's traffic (so it was listening) and nothing of b's
        subjects = {m.subject for m in seen}
        assert layout.command_subject("a", iid_a) in subjects
        assert layout.history_subject("a", iid_a) in subjects
        assert not [
            m.subject for m in seen if iid_b in m.subject or b"b-card" in m.data or iid_b.encode() in m.data
        ]
        assert not [s for s in subjects if s.startswith(("nf.cmd.b.", "nf.hist.b.", "nf.job.b."))]

        # a's streams, buckets and consumers are a's only
        js = spy.jetstream()
        names_a = {info.config.name for info in await js.streams_info()}
        names_b = {info.config.name for info in await b.nc.jetstream().streams_info()}
        assert layout.STREAM_JOBS in names_a and names_a == names_b  # each account has its own copy
        kv = await js.key_value(layout.BUCKET_INSTANCES)
        assert await kv.get(layout.instance_key("a", iid_a))
        with pytest.raises(NotFoundError):
            await kv.get(layout.instance_key("b", iid_b))
        consumers = {c.name for c in await js.consumers_info(layout.STREAM_JOBS)}
        assert consumers == {layout.job_consumer("a", "pay")}
        with pytest.raises(NotFoundError):
            await js.consumer_info(layout.STREAM_JOBS, layout.job_consumer("b", "pay"))
        history = await js.stream_info(layout.STREAM_HISTORY, subjects_filter="nf.hist.>")
        assert set(history.state.subjects or {}) == {layout.history_subject("a", iid_a)}
    finally:
        for worker in workers:
            await worker.stop(timeout=2.0)
        await spy.close()


async def test_a_user_of_tenant_a_cannot_change_tenant_b(
    operator_server: OperatorServer, stacks: tuple[TenantStack, TenantStack]
) -> None:
    a, b = stacks
    workers = [await _paying_worker(b)]
    spy = await nats.connect(
        operator_server.url, user_credentials=RawCredentials(a.account.user("spy").creds)
    )
    try:
        iid_b = await b.launch({"amount": 7})
        before = await b.wait_for(iid_b, b.waits_at("approve"))
        (task,) = [ei.user_task for ei in before.eis.values() if ei.user_task is not None]
        js = spy.jetstream()
        forged = [
            r.Cancel(id="forged.cancel", tenant="b", instance=iid_b),
            r.UserTaskCompleted(id="forged.utc", tenant="b", instance=iid_b, task=task, variables={"x": 1}),
            r.Launch(id="forged.launch", tenant="b", instance="forged", process_id="charge", version=1),
        ]
        for command in forged:  # lands in a's own command stream, never in b's
            await js.publish(
                layout.command_subject("b", iid_b), r.encode(command), headers={"Nats-Msg-Id": command.id}
            )
        kv = await js.key_value(layout.BUCKET_INSTANCES)
        await kv.put(layout.instance_key("b", iid_b), b"{}")  # a's bucket, a's key
        await spy.request(f"$JS.API.STREAM.PURGE.{layout.STREAM_JOBS}", b"", timeout=5)  # a's stream
        # a's engine consumed the forgeries in a's account
        await _until_engine_idle(a)

        after = await b.state(iid_b)
        assert after is not None and after.state == "active" and after.eis.keys() == before.eis.keys()
        assert await b.state("forged") is None
        # b goes on as if nothing happened
        await b.complete_user_task(after)
        done = await b.wait_for(iid_b, lambda s: s.state == "completed")
        assert "x" not in done.root_vars()
    finally:
        for worker in workers:
            await worker.stop(timeout=2.0)
        await spy.close()


async def test_accounts_isolate_even_tenants_of_the_same_name(operator_server: OperatorServer) -> None:
    one = await TenantStack.start(operator_server, "shop")
    two = await TenantStack.start(operator_server, "shop")
    workers = [await _paying_worker(one)]
    try:
        iid = await one.launch({"amount": 5})
        await one.wait_for(iid, one.waits_at("approve"))
        assert await two.state(iid) is None
        info = await two.nc.jetstream().consumer_info(layout.STREAM_JOBS, layout.job_consumer("shop", "pay"))
        assert info.delivered.stream_seq == 0  # two's job stream never saw one's job
    finally:
        for worker in workers:
            await worker.stop(timeout=2.0)
        await one.stop()
        await two.stop()


async def _until_engine_idle(stack: TenantStack, timeout: float = 30.0) -> None:
    js = stack.nc.jetstream()
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        info = await js.consumer_info(layout.STREAM_COMMANDS, layout.ENGINE_CONSUMER)
        if not info.num_pending and not info.num_ack_pending and not stack.engine.inflight:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"the engine of {stack.tenant} did not drain its commands: {info}")
        await asyncio.sleep(0.01)
