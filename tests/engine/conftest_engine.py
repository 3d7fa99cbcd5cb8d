"""Engine scenario fixtures: a process test kit per test, optionally restarted at wait states."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from natsflow.testing import ProcessTestEngine
from natsflow.worker import Job


@pytest.fixture
async def kit() -> AsyncIterator[ProcessTestEngine]:
    async with ProcessTestEngine() as engine:
        yield engine


@pytest.fixture(params=[False, True], ids=["steady", "restarted"])
def checkpoint(request: pytest.FixtureRequest, kit: ProcessTestEngine) -> Callable[[], Awaitable[None]]:
    """Call at a wait state: in the 'restarted' run the engine is replaced by a fresh one
    (empty caches), so the rest of the scenario runs from the state stored in NATS."""

    async def restart() -> None:
        await kit.wait_until_idle()
        if request.param:
            await kit.restart_engine()

    return restart


def record_jobs(kit: ProcessTestEngine, task_type: str) -> list[str]:
    """Complete every job of ``task_type`` with no result; the list fills with their element
    ids in the order they ran."""
    ran: list[str] = []

    @kit.task(task_type)
    async def record(job: Job) -> None:
        ran.append(job.element_id)

    return ran
