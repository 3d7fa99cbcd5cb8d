"""What an element instance waits for, and what it is: the typed parts of the instance record.

An element instance (:class:`natsflow_engine.runtime.records.ElementInstance`) waits for at
most one thing (:data:`Wait`, a tagged union on ``w``) and may play one role beyond an element
waiting for itself (:data:`Role`, a tagged union on ``r``). Readers outside the interpreter use
these types (or the views on ``ElementInstance``), never the JSON layout.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

__all__ = [
    "AdHocScope",
    "ChildCall",
    "ConditionWait",
    "CompensationHandler",
    "CompensationThrow",
    "Iteration",
    "JobWait",
    "Listener",
    "ListenerOf",
    "LoopBody",
    "MessageWait",
    "MultipleCatch",
    "Phase",
    "RetryWait",
    "Role",
    "SignalWait",
    "TimerCycle",
    "TimerWait",
    "UserTaskWait",
    "Wait",
]


class _Wait(msgspec.Struct, kw_only=True, omit_defaults=True, tag_field="w"):
    pass


class JobWait(_Wait, tag="job"):
    """A job was published; the element waits for its completion, failure or BPMN error."""

    key: str  # the job key, <instance>.<ei>.<attempt>
    type: str = ""  # the job's task type (its result must come from its workers); "": not recorded
    attempt: int = 1  # the job's attempt (a failed job is created again while retries are left)


class RetryWait(_Wait, tag="retry"):
    """A job failed with retries left; it is created again when the back-off timer fires."""

    timer: str  # the timer id, <instance>.<ei>.r<attempt>
    due: str  # RFC 3339, UTC
    attempt: int  # the attempt the new job will be


class UserTaskWait(_Wait, tag="user-task"):
    task: str  # the user task id, <instance>.<ei>


class ChildCall(_Wait, tag="child"):
    """A call activity waits for the instance it launched."""

    child: str


class TimerCycle(msgspec.Struct, kw_only=True):
    """A timer cycle still to run (:class:`natsflow_engine.runtime.timers.Cycle`, encoded)."""

    r: int | None = None  # repetitions left; None: forever
    i: float | None = None  # interval in seconds
    c: str | None = None  # cron expression


class TimerWait(_Wait, tag="timer"):
    timer: str  # the timer id, <instance>.<ei>.t<step>
    due: str  # RFC 3339, UTC
    cycle: TimerCycle | None = None


class MessageWait(_Wait, tag="message"):
    name: str
    key: str = ""  # the correlation key


class SignalWait(_Wait, tag="signal"):
    name: str


class ConditionWait(_Wait, tag="condition"):
    """A conditional event: fires when its condition turns true; ``met`` is its last value."""

    met: bool = False


Wait = (
    JobWait | UserTaskWait | ChildCall | TimerWait | MessageWait | SignalWait | ConditionWait | RetryWait
)
"""What an element instance waits for; at most one thing at a time."""

ListenerOf = Literal["boundary", "esp", "ebg", "multi"]


class _Role(msgspec.Struct, kw_only=True, omit_defaults=True, tag_field="r"):
    pass


class Listener(_Role, tag="listener"):
    """Waits for an event on behalf of its parent: a boundary event of the activity
    (``boundary``), a start event of an event sub-process of the scope (``esp``), or one
    branch of an event-based gateway (``ebg``), or one event definition ``i`` of a catch event
    with several (``multi``). A listener never keeps a scope alive."""

    of: ListenerOf
    i: int = 0
    done: bool = False  # definition ``i`` of a parallel multiple boundary or start happened


class LoopBody(_Role, tag="loop-body"):
    """A multi-instance or standard-loop activity: its iterations are its children."""

    n: int | None  # iterations in all; None: a standard loop (until its condition fails)
    done: int = 0
    next: int = 0  # index of the next iteration to start
    seq: bool = False
    items: list[Any] = []  # the input collection
    out: list[Any] | None = None  # the output collection, by iteration index


class Iteration(_Role, tag="iteration"):
    index: int


class CompensationThrow(_Role, tag="compensation-throw"):
    """A compensation throw event running its handlers one after the other."""

    queue: list[str] = []  # handlers still to run, in order


class CompensationHandler(_Role, tag="compensation-handler"):
    thrower: int  # the element instance of the compensation throw event


class MultipleCatch(_Role, tag="multiple"):
    """A catch event with several event definitions (its listeners are its children);
    ``fired`` lists the definitions that happened, for one that waits for all of them."""

    fired: list[int] = []


class AdHocScope(_Role, tag="ad-hoc"):
    """An ad-hoc sub-process: the inner activities still to start (sequential ordering), and
    whether its completion condition held (nothing more starts)."""

    pending: list[str] = []
    closing: bool = False


Role = Listener | LoopBody | Iteration | CompensationThrow | CompensationHandler | MultipleCatch | AdHocScope
"""What kind of element instance this is, when more than an element waiting for itself."""

Phase = Literal["enter", "job", "complete", "arm", "leave", "done"]
"""Where resolving an incident resumes: enter the element again, create its job again,
complete it, arm its event again, take its outgoing flows, or (after an unhandled error) retry
its job or enter it again."""
