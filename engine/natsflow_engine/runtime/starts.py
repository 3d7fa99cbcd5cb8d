"""Timer start events: when a process version with a timer start becomes the latest, its first
firing is scheduled; every firing launches an instance and, for a cycle, schedules the next.

Launches carry the version they were scheduled for; the engine drops one whose version is no
longer the latest, so redeploying replaces the schedule. Pure functions: time comes in.
"""

from __future__ import annotations

from datetime import datetime

from natsflow_engine import layout
from natsflow_engine.bpmn.model import Event, Process, TimerTrigger, triggers_of
from natsflow_engine.runtime import records as r
from natsflow_engine.runtime.expressions import Expressions
from natsflow_engine.runtime.timers import Cycle, due_at, next_in_cycle, to_rfc3339

__all__ = ["first_timer_starts", "is_timer_start", "next_timer_start"]


def is_timer_start(process: Process, start_id: str | None) -> bool:
    node = process.nodes.get(start_id or "")
    return isinstance(node, Event) and node.parent == process.id and _timer_of(node) is not None


def _timer_of(node: Event) -> TimerTrigger | None:
    """The timer definition of a start event (one of several on a multiple start event)."""
    return next((t for t in triggers_of(node.trigger) if isinstance(t, TimerTrigger)), None)


def _spec(tenant: str, process: Process, version: int, start: str, due: datetime, cycle: Cycle | None) -> r.TimerSpec:
    stamp = to_rfc3339(due)
    iid = layout.idempotent_instance_id(tenant, process.id, f"timer:{start}:{version}:{stamp}")
    launch = r.Launch(
        id=f"launch.{iid}",
        tenant=tenant,
        instance=iid,
        process_id=process.id,
        version=version,
        start_event=start,
        timer_cycle=cycle.encode() if cycle is not None else None,
    )
    return r.TimerSpec(id=f"tstart.{iid}", tenant=tenant, instance=iid, ei=0, due=stamp, launch=launch)


def first_timer_starts(tenant: str, process: Process, version: int, now: datetime) -> list[r.TimerSpec]:
    specs = []
    for sid in process.all_start_events:
        if is_timer_start(process, sid):
            node = process.nodes[sid]
            assert isinstance(node, Event)
            timer = _timer_of(node)
            assert timer is not None
            due, cycle = due_at(timer.kind, Expressions(now).value(timer.value, {}), now)
            specs.append(_spec(tenant, process, version, sid, due, cycle))
    return specs


def next_timer_start(cmd: r.Launch, process: Process, now: datetime) -> r.TimerSpec | None:
    if cmd.timer_cycle is None or cmd.start_event is None or cmd.version is None:
        return None
    nxt = next_in_cycle(Cycle.decode(cmd.timer_cycle), now)
    if nxt is None:
        return None
    return _spec(cmd.tenant, process, cmd.version, cmd.start_event, nxt[0], nxt[1])
