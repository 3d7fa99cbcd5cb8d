"""The instance index: listings filter on the server, the index can be rebuilt from the records,
and ended instances leave the live bucket after their retention but stay findable in the archive."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from api_kit import REVIEW, Api, bounded_stop
from nats.aio.client import Client
from nats.js.errors import KeyNotFoundError
from nats.js.errors import NotFoundError as JsNotFoundError
from natsflow_engine import layout
from natsflow_engine.api.client import ApiClient
from natsflow_engine.api.protocol import InstanceView
from natsflow_engine.api.server import ApiServer, ApiSettings
from natsflow_engine.errors import InvalidInputError, NotFoundError
from natsflow_engine.index import IndexQuery, IndexSettings, InstanceIndex, Retention, list_entries, rebuild
from natsflow_engine.natsutil import list_kv_keys
from natsflow_engine.retention import Sweeper
from natsflow_engine.runtime.engine import Engine, EngineSettings

T = TypeVar("T")


async def until(fetch: Callable[[], Awaitable[T]], check: Callable[[T], bool], timeout: float = 20.0) -> T:
    async with asyncio.timeout(timeout):
        while True:
            value = await fetch()
            if check(value):
                return value
            await asyncio.sleep(0.05)


def _settings(retention: Retention) -> EngineSettings:
    return EngineSettings(
        fetch_timeout=0.2,
        index=IndexSettings(retention=retention, searchable={"review": ("region", "x")}, sweep_interval=0.2),
    )


@pytest.fixture
async def indexed(nc: Client, unique: str, request: pytest.FixtureRequest) -> AsyncIterator[Api]:
    retention = getattr(request, "param", Retention())
    engine = await Engine(nc, _settings(retention)).start()
    server = await ApiServer(nc, ApiSettings(max_payload=64 * 1024)).start()
    try:
        yield Api(ApiClient(nc, unique, timeout=5.0), server, engine, nc, unique)
    finally:
        await bounded_stop(server.stop(), "API server")
        await bounded_stop(engine.stop(timeout=2.0), "engine")


async def _view(api: Api, iid: str) -> InstanceView | None:
    try:
        return await api.client.instance(iid)
    except NotFoundError:
        return None  # a start without wait returns before the engine has run the launch


async def _task_of(api: Api, iid: str) -> str:
    view = await until(lambda: _view(api, iid), lambda v: v is not None and bool(v.active_elements))
    assert view is not None
    task = view.active_elements[0].user_task
    assert task is not None
    return task


async def _ids(api: Api, **filters: Any) -> list[str]:
    found: list[str] = []
    cursor = None
    while True:
        page = await api.client.instances(limit=2, cursor=cursor, **filters)
        found += [i.id for i in page.instances]
        if page.cursor is None:
            return sorted(found)
        cursor = page.cursor


async def _listed(api: Api, expected: list[str], **filters: Any) -> None:
    """The listing reaches ``expected`` (the index follows the record within the step)."""
    await until(lambda: _ids(api, **filters), lambda ids: ids == sorted(expected))


async def test_listings_filter_on_the_index(indexed: Api) -> None:
    api = indexed
    await api.client.deploy(REVIEW)
    waiting = [(await api.client.start("review", {"region": "eu"}, business_key=f"B-{n}")).instance for n in range(3)]
    done = (await api.client.start("review", {"region": "us"})).instance
    broken = (await api.client.start("review", {"region": "us"})).instance
    await api.client.complete_task(await _task_of(api, done), {"x": 20})
    await api.client.complete_task(await _task_of(api, broken))  # no x: an incident at the gateway
    cancelled = waiting.pop()
    await _task_of(api, cancelled)
    await api.client.cancel(cancelled)

    await _listed(api, [*waiting, done, broken, cancelled])
    await _listed(api, [*waiting, broken], state="active")
    await _listed(api, [broken], incidents=True)
    await _listed(api, waiting, state="active", incidents=False)
    await _listed(api, [done], state="completed")
    await _listed(api, [cancelled], state="cancelled")
    await _listed(api, [waiting[1]], business_key="B-1")
    await _listed(api, [*waiting, cancelled], variables={"region": "eu"})
    await _listed(api, [done], variables={"region": "us", "x": 20})
    await _listed(api, [], process_id="other")
    await _listed(api, [*waiting, done, broken, cancelled], version=1)
    await _listed(api, [], version=2)
    now = datetime.now(UTC)
    hour = timedelta(hours=1)
    await _listed(api, [*waiting, done, broken, cancelled], started_after=(now - hour).isoformat(),
                  started_before=(now + hour).isoformat())
    await _listed(api, [], started_after=(now + hour).isoformat())
    await _listed(api, [], started_before=(now - 40 * 24 * hour).isoformat())

    summary = {i.id: i for i in (await api.client.instances(limit=10)).instances}
    assert summary[broken].incidents == 1 and summary[broken].state == "active"
    assert summary[done].ended is not None and summary[waiting[0]].business_key == "B-0"
    for bad in ({"cursor": "abc"}, {"started_after": "yesterday"}, {"started_after": "2026-12-04T10:00:00"},
                {"state": "sleeping"}, {"variables": {f"v{n}": n for n in range(9)}}):
        with pytest.raises(InvalidInputError):
            await api.client.instances(**bad)


async def test_the_index_rebuilt_from_the_records_is_the_index_the_engine_wrote(indexed: Api) -> None:
    api = indexed
    js = api.nc.jetstream()
    await api.client.deploy(REVIEW)
    ids = [(await api.client.start("review", {"region": "eu", "n": n}, business_key=f"K{n}")).instance
           for n in range(6)]
    await api.client.complete_task(await _task_of(api, ids[0]), {"x": 1})
    await api.client.complete_task(await _task_of(api, ids[1]))
    await _task_of(api, ids[2])
    await api.client.cancel(ids[2])
    await _listed(api, [ids[0]], state="completed")
    await _listed(api, [ids[1]], incidents=True)
    await _listed(api, [ids[2]], state="cancelled")
    await _listed(api, ids)

    async def entries() -> dict[str, bytes]:
        kv = await js.key_value(layout.BUCKET_INDEX)
        keys = await list_kv_keys(js, layout.BUCKET_INDEX, f"{api.tenant}.>")
        return {k: (await kv.get(k)).value or b"" for k in keys}

    written = await entries()
    assert len(written) == 6 and all(key.endswith(tuple(ids)) for key in written)
    kv = await js.key_value(layout.BUCKET_INDEX)
    for key in written:  # lose the index of this tenant
        await kv.purge(key)
    assert await entries() == {}

    index = InstanceIndex(js, api.engine.settings.index)
    records = await js.key_value(layout.BUCKET_INSTANCES)
    assert await rebuild(js, records, index) >= 6
    assert await entries() == written
    page = await list_entries(js, IndexQuery(api.tenant, buckets=("incident",)), 10)
    assert [e.id for e in page.entries] == [ids[1]]


@pytest.mark.parametrize("indexed", [Retention(live=1.0, archive=3600.0)], indirect=True)
async def test_ended_instances_leave_the_live_bucket_and_stay_in_the_archive(indexed: Api) -> None:
    api = indexed
    js = api.nc.jetstream()
    records = await js.key_value(layout.BUCKET_INSTANCES)
    await api.client.deploy(REVIEW)
    running = (await api.client.start("review", {"region": "eu"})).instance
    await _task_of(api, running)
    ended = (await api.client.start("review", {"region": "us"})).instance
    await api.client.complete_task(await _task_of(api, ended), {"x": 20})

    async def live(iid: str) -> bool:
        try:
            await records.get(layout.instance_key(api.tenant, iid))
        except KeyNotFoundError:
            return False
        return True

    await until(lambda: live(ended), lambda present: not present)  # its 1 s TTL
    assert await live(running)  # written before the ended one, and never given a TTL
    view = await api.client.instance(ended)  # from the archive
    assert (view.state, view.variables) == ("completed", {"region": "us", "x": 20})
    assert [r.state for r in (await api.client.history(ended)).records][-1] == "completed"
    await _listed(api, [ended], state="completed")
    await _listed(api, [running], state="active")


@pytest.mark.parametrize("indexed", [Retention(live=1.0, archive=2.0)], indirect=True)
async def test_an_instance_and_its_history_are_gone_when_its_archive_retention_passed(indexed: Api) -> None:
    api = indexed
    js = api.nc.jetstream()
    await api.client.deploy(REVIEW)
    running = (await api.client.start("review", {})).instance
    ended = (await api.client.start("review", {})).instance
    await _task_of(api, running)
    await _task_of(api, ended)
    await api.client.cancel(ended)
    await _listed(api, [ended], state="cancelled")
    assert len((await api.client.history(ended)).records) == 2

    async def found() -> bool:
        try:
            await api.client.instance(ended)
        except NotFoundError:
            return False
        return True

    await until(found, lambda present: not present)  # the sweep removed its entry
    await _listed(api, [running])
    with pytest.raises(JsNotFoundError):  # and its history
        await js.get_last_msg(layout.STREAM_HISTORY, layout.history_subject(api.tenant, ended))
    assert (await api.client.history(running)).records  # a running instance keeps its history
    assert (await js.stream_info(layout.STREAM_HISTORY)).config.max_age in (0, None)


async def test_the_sweep_stops_when_a_cancel_is_lost_on_the_way(nc: Client) -> None:
    """Python 3.11's wait_for can drop a cancel that meets a reply, and nats-py turns one that
    meets a closed connection into ConnectionClosedError: the sweep still stops (an engine's
    stop waited forever for it)."""
    sweeper = Sweeper(nc.jetstream(), InstanceIndex(nc.jetstream(), IndexSettings(sweep_interval=0.01)), _now)
    entered = asyncio.Event()

    async def sweep_losing_its_cancel() -> int:
        entered.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(3600)
        return sweeper.batch  # a full batch: sweep again at once

    sweeper.sweep_once = sweep_losing_its_cancel  # type: ignore[method-assign]
    task = sweeper.start()._task
    assert task is not None
    await asyncio.wait_for(entered.wait(), 20)
    await asyncio.wait_for(sweeper.stop(), 20)
    assert task.done()


def _now() -> datetime:
    return datetime.now(UTC)
