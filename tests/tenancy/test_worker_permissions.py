"""A worker user with the narrowest permissions runs a job end to end, and can do nothing else."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import nats
import pytest
from natsflow_engine import layout
from natsflow_engine.accounts.permissions import worker_inbox_prefix, worker_permissions
from natsflow_engine.worker import Job, Worker
from tenancy_kit import OperatorServer, TenantStack, probe


async def test_a_worker_with_the_narrowest_permissions_runs_a_job(operator_server: OperatorServer) -> None:
    stack = await TenantStack.start(operator_server, "shop")
    user = stack.account.user("worker-pay", worker_permissions("shop", "pay"))
    conn = await probe(operator_server.url, user, inbox_prefix=worker_inbox_prefix("shop", "pay"))
    worker = Worker(tenant="shop", nc=conn.nc)
    seen: list[Mapping[str, Any]] = []

    @worker.task("pay")
    async def pay(job: Job) -> dict[str, Any]:
        seen.append(job.variables)
        return {"paid": job.variables["amount"]}

    try:
        await worker.start()
        iid = await stack.launch({"amount": 12})
        state = await stack.wait_for(iid, stack.waits_at("approve"))
        assert state.root_vars()["paid"] == 12
        assert seen == [{"amount": 12}]
        assert worker.completed == 1
        await conn.nc.flush(timeout=5)
        assert conn.errors == []  # not a single refused operation on the way
    finally:
        await worker.stop(timeout=2.0)
        await conn.close()
        await stack.stop()


async def test_a_worker_user_can_touch_nothing_but_its_jobs(operator_server: OperatorServer) -> None:
    stack = await TenantStack.start(operator_server, "shop")
    iid = await stack.launch({"amount": 1})
    await stack.wait_for(iid, stack.waits_at("pay"))
    user = stack.account.user("worker-pay", worker_permissions("shop", "pay"))
    conn = await probe(operator_server.url, user, inbox_prefix=worker_inbox_prefix("shop", "pay"))
    reply = f"{worker_inbox_prefix('shop', 'pay')}.x"
    forbidden_publish = [
        "$JS.API.DIRECT.GET.KV_nf_instances",  # read an instance record
        "$JS.API.STREAM.MSG.GET.KV_nf_instances",
        f"$KV.nf_instances.shop.{iid}",  # overwrite it
        "$JS.API.CONSUMER.CREATE.NF_HIST",  # read history
        "$JS.API.CONSUMER.MSG.NEXT.NF_CMD.engine",  # steal the engine's commands
        f"$JS.API.CONSUMER.MSG.NEXT.NF_JOBS.{layout.job_consumer('shop', 'other')}",  # another task type's jobs
        f"$JS.API.CONSUMER.DELETE.NF_JOBS.{layout.job_consumer('shop', 'pay')}",
        "$JS.API.STREAM.PURGE.NF_JOBS",
        "$JS.API.STREAM.DELETE.NF_CMD",
        "nf.cmd.other.x",  # commands of another tenant's token
        f"nf.cmd.shop.{iid}",  # any command but a result (cancel, launch, complete a user task)
        f"nf.cmd.shop.{iid}.{layout.token('other')}",  # results of another task type
        "$JS.API.STREAM.INFO.NF_JOBS",  # stream information
        "$JS.API.CONSUMER.INFO.NF_CMD.engine",
        "nf.job.shop.pay",  # fabricate jobs
    ]
    forbidden_subscribe = ["_INBOX.>", "nf.hist.>", "nf.cmd.>", ">", "$JS.EVENT.>", f"{worker_inbox_prefix('shop', 'other')}.>"]
    try:
        for subject in forbidden_publish:
            await conn.nc.publish(subject, b"{}", reply=reply)
        for subject in forbidden_subscribe:
            await conn.nc.subscribe(subject)
        for subject in forbidden_publish + forbidden_subscribe:
            assert await conn.denied(subject), (subject, conn.errors, conn.nc.is_closed, conn.nc.last_error)
        # the record is untouched and the job still waits for a real worker
        state = await stack.wait_for(iid, stack.waits_at("pay"))
        assert state.state == "active"
    finally:
        await conn.close()
        await stack.stop()


async def test_the_worker_needs_its_inbox_prefix(operator_server: OperatorServer) -> None:
    stack = await TenantStack.start(operator_server, "shop")
    user = stack.account.user("worker-pay", worker_permissions("shop", "pay"))
    conn = await probe(operator_server.url, user)  # default _INBOX prefix: replies cannot arrive
    worker = Worker(tenant="shop", nc=conn.nc)
    worker.task("pay")(_never)
    try:
        with pytest.raises(nats.errors.TimeoutError):  # its first request never gets an answer
            await worker.start()
        assert any('subscription to "_inbox.' in e.lower() for e in conn.errors), conn.errors
    finally:
        await conn.close()
        await stack.stop()


async def _never(job: Job) -> None:
    raise AssertionError("no job should reach this worker")


WORKER_APP = """
from natsflow.worker import Worker

app = Worker()


@app.task("pay")
async def pay(job):
    return {"paid": job.variables["amount"], "by": "natsflow worker"}
"""


async def test_natsflow_worker_runs_with_the_credentials_and_inbox_prefix_of_its_pod(
    operator_server: OperatorServer, tmp_path: Path
) -> None:
    stack = await TenantStack.start(operator_server, "shop")
    creds = tmp_path / "nats.creds"
    creds.write_text(stack.account.user("worker-pay", worker_permissions("shop", "pay")).creds)
    (tmp_path / "payapp.py").write_text(WORKER_APP)
    env = {  # what the operator puts into a worker pod of a tenant account
        **os.environ,
        "NATS_URL": operator_server.url,
        "NATS_CREDS": str(creds),
        "NATS_INBOX_PREFIX": worker_inbox_prefix("shop", "pay"),
        "NATSFLOW_TENANT": "shop",
    }
    cli = [sys.executable, "-c", "from natsflow.cli import main; main()"]
    with (tmp_path / "worker.log").open("w") as log:
        proc = await asyncio.create_subprocess_exec(
            *cli, "worker", str(tmp_path / "payapp.py"), "--task-type", "pay", env=env, stderr=log
        )
    try:
        iid = await stack.launch({"amount": 9})
        state = await stack.wait_for(iid, stack.waits_at("approve"), timeout=60)  # a child process: generous
        assert state.root_vars() == {"amount": 9, "paid": 9, "by": "natsflow worker"}
    finally:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), timeout=20)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        await stack.stop()
    assert "Permissions Violation" not in (tmp_path / "worker.log").read_text()
