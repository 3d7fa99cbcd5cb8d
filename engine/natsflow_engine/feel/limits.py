"""The budget of one FEEL evaluation: a step count and caps on the sizes of values it builds.

Every tenant writes expressions, so no expression may hold the engine's event loop or memory:
an evaluation that goes past its budget stops with :class:`~natsflow_engine.errors.FeelBudgetError`
(on an instance, an incident). The budget is deterministic (steps, not seconds), so a replay
of the same step meets the same verdict on any machine.

What costs steps (about one step per compiled node evaluated, ~0.1 µs each here):

* an iteration (``for``, ``some``, ``every``) or a filter charges, before it starts, the number
  of items times the number of compiled nodes in its body, so ``for x in 1..100000000 return x``
  fails at once, without building anything;
* a call of a function value (``function(x) ...``, also from ``sort``) charges its body's size;
* a built-in charges 1 plus the size of its list and context arguments and result (one step per
  item) and of its strings (one step per :data:`CHARS_PER_STEP` characters);
* ``=``, ``in`` and paths over lists charge one step per item; a string ``+`` its length.

Expressions without loops, filters and function values, of at most 64 nodes (comparisons,
arithmetic, paths, built-in calls: the hot path), evaluate every node at most once, are bounded
by their size and their inputs, and do not even set up a budget; the caps still hold.

Caps (checked whether or not a step budget is set): a list built by FEEL (``for``, a filter, a
built-in) holds at most ``max_list`` items, an iterated range at most ``max_list`` members, a
string at most ``max_string`` characters. Defaults: :data:`DEFAULT_LIMITS`; a caller may pass
its own :class:`FeelLimits` to ``CompiledExpression.evaluate``.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BUDGET",
    "CHARS_PER_STEP",
    "DEFAULT_LIMITS",
    "Budget",
    "BudgetExceeded",
    "EvaluationAborted",
    "FeelLimits",
    "check_list",
    "check_string",
    "size_of",
    "spend",
]

CHARS_PER_STEP = 256
"""Characters of a string that cost one step when a built-in reads or returns it."""


@dataclass(frozen=True, slots=True)
class FeelLimits:
    """The budget of one evaluation (see the module docstring)."""

    max_steps: int = 300_000
    """Steps per evaluation: 10-100 ms of evaluation on the 2-core machine this was measured on."""
    max_list: int = 1_000_000
    """Items in one list (or members of an iterated range) that an expression builds."""
    max_string: int = 1_000_000
    """Characters in one string that an expression builds (the size of a whole record)."""


DEFAULT_LIMITS = FeelLimits()


class EvaluationAborted(Exception):
    """Stops an evaluation outright; ``CompiledExpression.evaluate`` turns it into a
    :class:`~natsflow_engine.errors.FeelEvaluationError`. Not a ``TypeError``/``ValueError``, so
    the built-ins' null-on-bad-argument handling never swallows it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BudgetExceeded(EvaluationAborted):
    """The evaluation went past a limit (becomes :class:`~natsflow_engine.errors.FeelBudgetError`)."""

    def __init__(self, message: str, limit: str, value: int) -> None:
        super().__init__(message)
        self.limit = limit
        self.value = value


class Budget:
    """Steps left in one evaluation, with the limits it runs under."""

    __slots__ = ("left", "limits")

    def __init__(self, limits: FeelLimits) -> None:
        self.limits = limits
        self.left = limits.max_steps

    def spend(self, steps: int) -> None:
        self.left -= steps
        if self.left < 0:
            raise BudgetExceeded(
                f"expression exceeded its budget of {self.limits.max_steps} steps",
                "max_steps",
                self.limits.max_steps,
            )


BUDGET: ContextVar[Budget | None] = ContextVar("natsflow_feel_budget", default=None)
"""The budget of the evaluation running in this context; None for expressions too simple to
need one (see the module docstring)."""


def spend(steps: int) -> None:
    """Charge ``steps`` to the running evaluation's budget, if it has one."""
    budget = BUDGET.get()
    if budget is not None:
        budget.spend(steps)


def _limits() -> FeelLimits:
    budget = BUDGET.get()
    return DEFAULT_LIMITS if budget is None else budget.limits


def check_list(length: int, what: str = "a list of {n} items") -> None:
    """Refuse to build (or iterate) ``length`` items past the cap."""
    cap = _limits().max_list
    if length > cap:
        raise BudgetExceeded(
            f"{what.format(n=length)} is more than the limit of {cap} items", "max_list", cap
        )


def check_string(length: int) -> None:
    """Refuse a string of ``length`` characters past the cap."""
    cap = _limits().max_string
    if length > cap:
        raise BudgetExceeded(
            f"a string of {length} characters is more than the limit of {cap} characters",
            "max_string",
            cap,
        )


def size_of(value: Any) -> int:
    """What reading or building ``value`` costs a built-in, in steps (0 for scalars)."""
    tp = type(value)
    if tp is str:
        return len(value) // CHARS_PER_STEP
    if tp is list or tp is dict:
        return len(value)
    return 0
