"""Expressions in a BPMN document: FEEL (``=...``) or static literals (Zeebe's rule).

An attribute or element text that starts with ``=`` is a FEEL expression, the rest is compiled
at deploy time. Anything else is a static value, wrapped in :class:`StaticExpr` so the
interpreter handles both the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from natsflow_engine.bpmn.common import Element, Issues
from natsflow_engine.bpmn.model import Expr
from natsflow_engine.errors import ExpressionError, FeelSyntaxError

__all__ = ["ExprCompiler", "StaticExpr", "StaticKind"]

# How a value without a leading '=' is read:
#   string  the literal text                      (job type, assignee, message name ...)
#   int     a whole number                        (retries)
#   list    a comma separated list of strings    (candidateGroups, candidateUsers)
#   feel    FEEL anyway                          (conditions, input collections, scripts ...)
#   int_or_feel  a whole number, else FEEL        (loopCardinality)
StaticKind = Literal["string", "int", "list", "feel", "int_or_feel"]


@dataclass(frozen=True, slots=True)
class StaticExpr:
    """A literal known at deploy time; ``evaluate`` ignores the context."""

    source: str
    value: Any

    def evaluate(self, context: Mapping[str, Any]) -> Any:
        if isinstance(self.value, tuple):
            return list(self.value)
        return self.value


def _load_compiler() -> Callable[[str], Expr]:
    """``natsflow_engine.feel.compile_expression``, imported on first use (no import cycle)."""
    from natsflow_engine.feel import compile_expression

    return compile_expression


class ExprCompiler:
    """Compiles the expressions of one document; FEEL problems become issues."""

    def __init__(self, issues: Issues) -> None:
        self.issues = issues
        self._compile = _load_compiler()
        self._cache: dict[str, Expr] = {}

    def feel(self, el: Element, text: str, what: str) -> Expr | None:
        """Compile FEEL ``text`` (without the leading '='); None after reporting an issue."""
        if not text.strip():
            self.issues.add(el, f"{what} is an empty expression")
            return None
        cached = self._cache.get(text)
        if cached is not None:
            return cached
        try:
            compiled = self._compile(text)
        except FeelSyntaxError as exc:
            self.issues.add(el, f"{what} is not a valid FEEL expression: {exc.message} (column {exc.column})")
            return None
        except ExpressionError as exc:
            self.issues.add(el, f"{what} is not a valid FEEL expression: {exc}")
            return None
        self._cache[text] = compiled
        return compiled

    def value(self, el: Element, raw: str | None, what: str, kind: StaticKind = "string") -> Expr | None:
        """Read an attribute value or element text by Zeebe's rule (see :data:`StaticKind`)."""
        if raw is None:
            return None
        stripped = raw.strip()
        if stripped.startswith("="):
            return self.feel(el, stripped[1:], what)
        if kind == "feel":
            return self.feel(el, stripped, what)
        if kind in ("int", "int_or_feel"):
            try:
                return StaticExpr(raw, int(stripped))
            except ValueError:
                if kind == "int_or_feel":
                    return self.feel(el, stripped, what)
                self.issues.add(
                    el, f"{what} is '{raw}', which is neither a whole number nor a FEEL expression"
                )
                return None
        if kind == "list":
            items = tuple(part.strip() for part in raw.split(",") if part.strip())
            return StaticExpr(raw, items)
        return StaticExpr(raw, raw)
