"""Expressions of one step: every FEEL evaluation of the interpreter goes through here.

:class:`Expressions` holds the step's clock (``now``, given to the step by the engine: the
interpreter never reads the wall clock), so ``now()`` and ``today()`` in a model see the time
of the step, the same on a re-run after a revision conflict. It evaluates values, conditions
(which must be boolean) and input/output mappings, and converts FEEL results into JSON values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from natsflow_engine.bpmn.model import Expr, IoMapping
from natsflow_engine.errors import NatsflowError
from natsflow_engine.feel import CompiledExpression, to_json_value
from natsflow_engine.runtime.scopes import set_path

__all__ = ["Expressions", "Variables", "str_list"]

Variables = Mapping[str, Any]
"""The variables an expression sees (a read-only view)."""


class Expressions:
    __slots__ = ("at", "now")

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.at = now.isoformat()

    def _eval(self, expr: Expr, context: Variables) -> Any:
        if isinstance(expr, CompiledExpression):
            return expr.evaluate(context, now=self.now)
        return expr.evaluate(context)  # a static literal

    def value(self, expr: Expr, context: Variables) -> Any:
        """The FEEL value (dates, durations, ... as FEEL has them)."""
        return self._eval(expr, context)

    def json(self, expr: Expr, context: Variables) -> Any:
        """The value as JSON data (what variables, jobs and messages carry)."""
        return to_json_value(self._eval(expr, context))

    @staticmethod
    def to_json(value: Any) -> Any:
        return to_json_value(value)

    def loose_text(self, expr: Expr | None, context: Variables) -> str:
        """A string as is, anything else as its JSON text ("" when there is no expression)."""
        if expr is None:
            return ""
        value = self._eval(expr, context)
        return value if isinstance(value, str) else str(to_json_value(value))

    def optional_json(self, expr: Expr | None, context: Variables) -> Any:
        return None if expr is None else self.json(expr, context)

    def condition(self, expr: Expr, context: Variables) -> bool:
        """Conditions must be boolean (Zeebe): anything else is an incident, not a silent false."""
        value = self._eval(expr, context)
        if isinstance(value, bool):
            return value
        raise NatsflowError(f"condition '{expr.source}' must be true or false, but was {value!r}")

    def holds(self, expr: Expr | None, context: Variables) -> bool:
        """Lenient: true only when ``expr`` is absent or gives true (loop and completion conditions)."""
        return expr is None or self._eval(expr, context) is True

    def text(self, expr: Expr, context: Variables, what: str) -> str:
        """A non-empty string (a job type, a message or signal name, a called process id)."""
        value = self._eval(expr, context)
        if not isinstance(value, str) or not value:
            raise NatsflowError(f"{what} expression '{expr.source}' gave {value!r}, not a string")
        return value

    def key(self, expr: Expr | None, context: Variables) -> str:
        """A correlation key: a string, a number as text; null, booleans, lists, contexts are refused."""
        if expr is None:
            return ""
        value = self._eval(expr, context)
        if value is None or isinstance(value, bool | dict | list):
            raise NatsflowError(f"correlation key '{expr.source}' gave {value!r}")
        return value if isinstance(value, str) else str(to_json_value(value))

    def mappings(self, mappings: Iterable[IoMapping], context: Variables) -> dict[str, Any]:
        """Evaluate input or output mappings in order; each sees the results of the ones before."""
        out: dict[str, Any] = {}
        for mapping in mappings:
            view = {**context, **out} if out else context
            set_path(out, mapping.target, to_json_value(self._eval(mapping.source, view)))
        return out


def str_list(value: Any) -> list[str]:
    """Candidate groups or users: a list, or a comma-separated string."""
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(value)]
