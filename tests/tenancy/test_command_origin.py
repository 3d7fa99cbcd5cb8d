"""The tenant comes from the subject (and the account), never from a command's body; a worker's
results come only from its task type's result subject. Refused commands are dead-lettered with
the reason and change nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import nats
import pytest
from nats.aio.client import Client
from natsflow_engine import layout
from natsflow_engine.accounts.permissions import worker_inbox_prefix, worker_permissions
from natsflow_engine.runtime import records as r
from natsflow_engine.runtime.definitions import deploy_definitions
from natsflow_engine.runtime.engine import Engine
from natsflow_engine.runtime.setup import ensure_job_consumer
from natsflow_engine.server import EmbeddedNatsServer
from natsflow_engine.worker import Job, Worker
from tenancy_kit import SERVICE_MODEL, OperatorServer, TenantStack, TenantView, dead_letters, probe

# one account, two tenants: the platform user may do anything, alice only publish a's commands
SINGLE_ACCOUNT = """
accounts {
  T: {
    jetstream: enabled
    users: [
      {user: platform, password: p}
      {user: alice, password: a, permissions: {publish: ["nf.cmd.a.>"], subscribe: ["_INBOX_alice.>"]}}
    ]
  }
}
"""

SHIP_MODEL = SERVICE_MODEL.replace('id="charge"', 'id="shipping"').replace('type="pay"', 'type="ship"')


@pytest.fixture
async def single_account() -> AsyncIterator[tuple[str, Client]]:
    with EmbeddedNatsServer(config=SINGLE_ACCOUNT) as server:
        host = server.url.removeprefix("nats://")
        nc = await nats.connect(f"nats://platform:p@{host}")
        try:
            yield host, nc
        finally:
            await nc.close()


async def test_forged_bodies_naming_another_tenant_are_refused_in_one_account(
    single_account: tuple[str, Client],
) -> None:
    host, nc = single_account
    js = nc.jetstream()
    engine = await Engine(nc).start()  # serves every tenant of the account
    kv = await js.key_value(layout.BUCKET_WORKFLOWS)
    (deployed,) = await deploy_definitions(kv, "b", SERVICE_MODEL)
    await ensure_job_consumer(js, "b", "pay")
    worker = Worker(tenant="b", nc=nc)

    @worker.task("pay")
    async def pay(job: Job) -> dict[str, Any]:
        return {"paid": job.variables["amount"]}

    await worker.start()
    alice = await nats.connect(f"nats://alice:a@{host}", inbox_prefix="_INBOX_alice")
    b = TenantView("b", nc)
    try:
        iid = r.new_id()
        await b.send(r.Launch(id=f"l.{iid}", tenant="b", instance=iid, process_id="charge", version=deployed.version,
                              variables={"amount": 7}))
        before = await b.wait_for(iid, TenantStack.waits_at("approve"))
        (task,) = [ei.user_task for ei in before.eis.values() if ei.user_task is not None]
        forged: list[tuple[str, r.AnyCommand]] = [
            (iid, r.SetVariables(id="f.vars", tenant="b", instance=iid, variables={"x": 1})),
            (iid, r.UserTaskCompleted(id="f.utc", tenant="b", instance=iid, task=task)),
            (iid, r.Cancel(id="f.cancel", tenant="b", instance=iid)),
            ("forged", r.Launch(id="f.launch", tenant="b", instance="forged", process_id="charge", version=1)),
        ]
        for instance, command in forged:  # alice may publish only on nf.cmd.a.>: the subject says a
            await alice.publish(layout.command_subject("a", instance), r.encode(command))
        await alice.flush(timeout=5)

        letters = await dead_letters(nc, "a", len(forged))
        reasons = [m.headers["Natsflow-Dead-Letter-Reason"] for m in letters if m.headers]
        assert len(reasons) == len(forged)
        assert all("names tenant 'b'" in reason and "(tenant 'a'" in reason for reason in reasons), reasons
        assert {r.command_decoder.decode(m.data).id for m in letters} == {c.id for _, c in forged}

        after = await b.state(iid)
        assert after is not None and after.state == "active" and after.eis.keys() == before.eis.keys()
        assert "x" not in after.root_vars()
        assert await b.state("forged") is None
        assert engine.running
    finally:
        await alice.close()
        await worker.stop(timeout=2.0)
        await engine.stop(timeout=2.0)


async def test_a_worker_user_can_only_answer_jobs_of_its_task_type(operator_server: OperatorServer) -> None:
    stack = await TenantStack.start(operator_server, "shop")
    js = stack.nc.jetstream()
    kv = await js.key_value(layout.BUCKET_WORKFLOWS)
    (shipping,) = await deploy_definitions(kv, "shop", SHIP_MODEL)
    await ensure_job_consumer(js, "shop", "ship")
    user = stack.account.user("worker-pay", worker_permissions("shop", "pay"))
    conn = await probe(operator_server.url, user, inbox_prefix=worker_inbox_prefix("shop", "pay"))
    try:
        iid = r.new_id()
        await stack.send(r.Launch(id=f"l.{iid}", tenant="shop", instance=iid, process_id="shipping",
                                  version=shipping.version, variables={"amount": 1}))
        waiting = await stack.wait_for(iid, stack.waits_at("pay"))  # the element id is "pay", its type "ship"
        (ei,) = [e for e in waiting.eis.values() if e.job is not None]
        assert ei.job is not None
        result_subject = layout.result_subject("shop", iid, "pay")  # the only one it may use
        forged: list[r.AnyCommand] = [
            r.JobCompleted(id="f.done", tenant="shop", instance=iid, job=ei.job, ei=ei.key, variables={"x": 1}),
            r.Cancel(id="f.cancel", tenant="shop", instance=iid),
        ]
        for command in forged:
            await conn.nc.publish(result_subject, r.encode(command))
        await conn.nc.flush(timeout=5)
        letters = await dead_letters(stack.nc, "shop", len(forged))
        reasons = sorted(m.headers["Natsflow-Dead-Letter-Reason"] for m in letters if m.headers)
        assert "a Cancel arrived on job result subject" in reasons[0], reasons
        assert "is of task type 'ship'" in reasons[1], reasons
        assert conn.errors == []  # NATS let it publish there: the engine is what refused

        # the engine serving shop's account refuses another tenant's subject even from a
        # platform user of that account
        stray = r.Launch(id="f.other", tenant="other", instance="x", process_id="charge", version=1)
        await js.publish(layout.command_subject("other", "x"), r.encode(stray))
        (letter,) = await dead_letters(stack.nc, "other", 1)  # kept in shop's account
        assert letter.headers and "this engine serves 'shop'" in letter.headers["Natsflow-Dead-Letter-Reason"]

        still = await stack.wait_for(iid, stack.waits_at("pay"))
        assert still.state == "active" and "x" not in still.root_vars()
    finally:
        await conn.close()
        await stack.stop()

