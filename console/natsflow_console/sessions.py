"""Step-by-step simulations: a :class:`~natsflow_console.simulation.Run` kept open between
requests, moved on by hand (the modeler's "Step by step").

Routes (each acts only on the caller's own simulations; another user's id answers 404)::

    POST   /api/simulations               {source, name?, scenario} -> a view (201)
    GET    /api/simulations/{id}          -> a view
    POST   /api/simulations/{id}/fire     one of {message: {name, correlationKey?, variables?}},
                                          {signal: {name, variables?}}, {advance: "PT1H" | "next"},
                                          {timer: "<pending timer id>"} -> a view
    POST   /api/simulations/{id}/finish   run to the end as a whole simulation does -> a view
    DELETE /api/simulations/{id}          end it (204)

A view: ``{id, elapsed, virtual_time, finished, result, timers, scheduled, scenario, reached}``
(``result`` as ``POST /api/simulate`` answers, ``timers`` the pending timers soonest first,
``scheduled`` the scenario's events not fired yet, ``scenario`` the scenario that replays the
run so far, ``reached`` how many catches the message or signal just fired reached).

Each simulation runs its own embedded nats-server, so they are bounded: at most
:data:`MAX_SESSIONS` in a console, one per user (starting one ends the user's previous one),
each ended after :data:`IDLE` seconds unused or :data:`LIFETIME` in all, or when a move fails
or runs past :data:`MOVE_TIMEOUT` (its state is then unknown).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import msgspec
from aiohttp import web
from natsflow_engine.errors import ConflictError, NotFoundError
from natsflow_engine.natsutil import cancel_and_wait

from natsflow_console.errors import BadRequest
from natsflow_console.keys import USER_KEY
from natsflow_console.routes import Handler, json_body, json_reply
from natsflow_console.scenario import ScenarioError, parse_duration, parse_occurrence, parse_scenario
from natsflow_console.simulation import PendingTimer, Run, SimulationResult, bounded

__all__ = ["IDLE", "LIFETIME", "MAX_SESSIONS", "ROUTES", "SESSIONS_KEY", "Sessions", "install"]

log = logging.getLogger(__name__)

MAX_SESSIONS = 4
IDLE = 600.0
LIFETIME = 1800.0
MOVE_TIMEOUT = 60.0
MAX_NAME = 256
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

Owner = tuple[str, str]
"""(tenant, user name)."""
Move = Callable[[Run], Awaitable[int | None]]


class SessionView(msgspec.Struct, kw_only=True):
    id: str
    elapsed: float
    """Virtual seconds since the start."""
    virtual_time: str
    finished: bool
    result: SimulationResult
    timers: list[PendingTimer]
    scheduled: list[dict[str, Any]]
    scenario: dict[str, Any]
    reached: int | None = None


@dataclass
class Session:
    id: str
    owner: Owner
    run: Run
    created: float
    used: float
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def view(self, reached: int | None = None) -> SessionView:
        result, timers = await self.run.view()
        return SessionView(
            id=self.id,
            elapsed=self.run.elapsed.total_seconds(),
            virtual_time=result.virtual_time,
            finished=self.run.finished,
            result=result,
            timers=timers,
            scheduled=[e.document() for e in self.run.scheduled],
            scenario=self.run.scenario_as_run(),
            reached=reached,
        )


class Sessions:
    """The open step-by-step simulations of a console (see the module doc)."""

    def __init__(
        self,
        *,
        limit: int = MAX_SESSIONS,
        idle: float = IDLE,
        lifetime: float = LIFETIME,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit, self.idle, self.lifetime, self.clock = limit, idle, lifetime, clock
        self._open: dict[str, Session] = {}
        self._starting = 0
        self._lock = asyncio.Lock()
        self._reaper: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._open)

    async def open(self, owner: Owner, run: Run) -> Session:
        """Start ``run`` for ``owner`` (ending the owner's previous simulation)."""
        async with self._lock:
            await self.reap()
            for previous in [s for s in self._open.values() if s.owner == owner]:
                await self._close(previous)
            if len(self._open) + self._starting >= self.limit:
                raise ConflictError(
                    f"{self.limit} step-by-step simulations are open in this console: try again when one ends "
                    f"(unused ones end after {self.idle:.0f} s)"
                )
            self._starting += 1
        try:
            async with bounded(MOVE_TIMEOUT):
                await run.start()
            now = self.clock()
            session = Session(id=secrets.token_urlsafe(12), owner=owner, run=run, created=now, used=now)
            self._open[session.id] = session
            return session
        finally:
            self._starting -= 1

    def get(self, owner: Owner, sid: str) -> Session:
        session = self._open.get(sid) if _ID.match(sid) else None
        if session is None or session.owner != owner or self._expired(session):
            raise NotFoundError(f"no step-by-step simulation {sid[:64]!r} (it ended, or is not yours)")
        session.used = self.clock()
        return session

    async def move(self, session: Session, move: Move) -> SessionView:
        """Apply ``move`` to the session's run and read the new view. A move that failed midway
        (or ran out of time) ended the run, and ends the session; bad input ends nothing."""
        async with session.lock:
            try:
                async with bounded(MOVE_TIMEOUT):
                    reached = await move(session.run)
                    view = await session.view(reached)
            except BaseException as exc:
                if session.run.closed or not isinstance(exc, (ScenarioError, ConflictError)):
                    await self.close(session)
                raise
            session.used = self.clock()
            return view

    async def close(self, session: Session) -> None:
        async with self._lock:
            await self._close(session)

    async def _close(self, session: Session) -> None:
        if self._open.pop(session.id, None) is not None:
            with contextlib.suppress(Exception):
                await session.run.close()

    def _expired(self, session: Session) -> bool:
        now = self.clock()
        return now - session.used > self.idle or now - session.created > self.lifetime

    async def reap(self) -> None:
        """End the simulations unused for too long, or open for too long."""
        for session in [s for s in self._open.values() if self._expired(s)]:
            log.info("step-by-step simulation %s of %s ended: unused or too old", session.id, session.owner[1])
            await self._close(session)

    async def close_all(self) -> None:
        async with self._lock:
            for session in list(self._open.values()):
                await self._close(session)

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(min(30.0, self.idle))
            async with self._lock:
                await self.reap()

    def start_reaper(self) -> None:
        if self._reaper is None:
            self._reaper = asyncio.get_running_loop().create_task(self._reap_forever(), name="simulation-reaper")

    async def stop(self) -> None:
        reaper, self._reaper = self._reaper, None
        if reaper is not None:
            await cancel_and_wait(reaper)
        await self.close_all()


SESSIONS_KEY = web.AppKey("simulations", Sessions)


def install(app: web.Application, sessions: Sessions | None = None) -> None:
    """Keep ``sessions`` (a new registry by default) in ``app``; its reaper runs while the app
    does, and every simulation ends when the app stops."""
    registry = sessions or Sessions()
    app[SESSIONS_KEY] = registry

    async def on_startup(app: web.Application) -> None:
        registry.start_reaper()

    async def on_cleanup(app: web.Application) -> None:
        await registry.stop()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)


# --- routes -------------------------------------------------------------------------------------


def _owner(request: web.Request) -> Owner:
    user = request[USER_KEY]
    return (user.tenant, user.name)


def _session(request: web.Request) -> Session:
    return request.app[SESSIONS_KEY].get(_owner(request), request.match_info["id"])


def parse_move(body: dict[str, Any]) -> Move:
    """The move a ``fire`` body asks for; :class:`ScenarioError` names a bad field."""
    kinds = [k for k in ("message", "signal", "advance", "timer") if k in body]
    unknown = set(body) - {"message", "signal", "advance", "timer"}
    if unknown:
        raise ScenarioError(f"{sorted(unknown)[0]}: unknown field (message, signal, advance, timer)")
    if len(kinds) != 1:
        raise ScenarioError("fire: exactly one of message, signal, advance, timer")
    kind = kinds[0]
    value = body[kind]
    if kind in ("message", "signal"):
        event = parse_occurrence(timedelta(0), "message" if kind == "message" else "signal", value, kind)
        return lambda run: run.fire(event)
    if kind == "timer":
        if not isinstance(value, str) or not 0 < len(value) <= MAX_NAME:
            raise ScenarioError(f"timer: the id of a pending timer (1 to {MAX_NAME} characters)")
        return lambda run: run.fire_timer(value)
    if value == "next":
        return lambda run: run.next()
    delta = parse_duration(value, "advance")
    return lambda run: run.advance(delta)


async def start(request: web.Request) -> web.StreamResponse:
    body = await json_body(request)
    source, name = body.get("source"), body.get("name")
    if not isinstance(source, str) or not source.strip():
        raise BadRequest("source must be the BPMN XML document")
    if name is not None and (not isinstance(name, str) or len(name) > MAX_NAME):
        raise BadRequest(f"name must be a file name of at most {MAX_NAME} characters")
    scenario = parse_scenario(body.get("scenario"))
    run = await asyncio.to_thread(Run, source, scenario, name=name)
    registry = request.app[SESSIONS_KEY]
    session = await registry.open(_owner(request), run)
    return json_reply(await registry.move(session, _nothing), status=201)


async def _nothing(run: Run) -> None:
    return None


async def show(request: web.Request) -> web.StreamResponse:
    session = _session(request)
    return json_reply(await request.app[SESSIONS_KEY].move(session, _nothing))


async def fire(request: web.Request) -> web.StreamResponse:
    session = _session(request)
    move = parse_move(await json_body(request))
    return json_reply(await request.app[SESSIONS_KEY].move(session, move))


async def finish(request: web.Request) -> web.StreamResponse:
    session = _session(request)

    async def to_the_end(run: Run) -> None:
        await run.finish()

    return json_reply(await request.app[SESSIONS_KEY].move(session, to_the_end))


async def stop(request: web.Request) -> web.StreamResponse:
    session = _session(request)
    await request.app[SESSIONS_KEY].close(session)
    return web.Response(status=204)


ROUTES: list[tuple[str, str, Handler]] = [
    ("POST", "/api/simulations", start),
    ("GET", "/api/simulations/{id}", show),
    ("POST", "/api/simulations/{id}/fire", fire),
    ("POST", "/api/simulations/{id}/finish", finish),
    ("DELETE", "/api/simulations/{id}", stop),
]
