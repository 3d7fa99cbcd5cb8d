"""The built-in function registry.

A built-in is a plain Python function over FEEL values plus its FEEL signature(s): the parameter
names (for named-argument calls such as ``substring(string: s, start: 2)``) and how many are
required. The compiler resolves names, checks arity and maps named arguments at compile time, so a
call costs one Python call at run time. Built-ins return ``None`` (FEEL null) for arguments of the
wrong type; the compiler additionally turns ``TypeError``/``ValueError``/``ArithmeticError`` and
friends raised inside a built-in into null, so implementations stay short.

Function names made of several words (``string length``) are registered with single spaces; the
parser derives its multi-word-name terminal from :func:`multi_word_names`.

``now()`` and ``today()`` read the evaluation clock from :data:`CLOCK`, a context variable that
``CompiledExpression.evaluate`` sets only for expressions that use the clock.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = ["BUILTINS", "CLOCK", "Builtin", "builtin", "multi_word_names"]

CLOCK: ContextVar[datetime | None] = ContextVar("natsflow_feel_clock", default=None)


@dataclass(frozen=True, slots=True)
class Builtin:
    """One built-in function.

    ``signatures`` lists the accepted parameter-name tuples (overloads); names ending in ``?`` are
    optional. ``variadic`` functions accept any number (>= 1) of positional arguments and treat a
    single list argument as the list of values (``max([1, 2])`` = ``max(1, 2)``).
    """

    name: str
    fn: Callable[..., Any]
    signatures: tuple[tuple[str, ...], ...]
    variadic: bool = False
    clock: bool = False

    def accepts(self, count: int) -> bool:
        if self.variadic:
            return count >= 1 or any(len(s) == 0 for s in self.signatures)
        for sig in self.signatures:
            required = sum(1 for p in sig if not p.endswith("?"))
            if required <= count <= len(sig):
                return True
        return False

    def arities(self) -> str:
        if self.variadic:
            return "one or more"
        counts: set[int] = set()
        for sig in self.signatures:
            required = sum(1 for p in sig if not p.endswith("?"))
            counts.update(range(required, len(sig) + 1))
        return " or ".join(str(c) for c in sorted(counts))

    def order_named(self, names: list[str]) -> list[int] | None:
        """Positions of the given named arguments in the first matching signature, or None."""
        for sig in self.signatures:
            plain = [p.rstrip("?") for p in sig]
            if not set(names) <= set(plain) or len(set(names)) != len(names):
                continue
            required = {p for p in sig if not p.endswith("?")}
            if not required <= set(names):
                continue
            positions = [plain.index(n) for n in names]
            if max(positions, default=-1) >= len(names):
                continue  # an optional parameter before a given one is missing
            return positions
        return None


BUILTINS: dict[str, Builtin] = {}


def builtin(
    name: str,
    *signatures: str,
    variadic: bool = False,
    clock: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a built-in. Each signature is a comma-separated parameter list, e.g. ``"a, b?"``."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        sigs = tuple(tuple(p.strip() for p in s.split(",") if p.strip()) for s in signatures)
        BUILTINS[name] = Builtin(name, fn, sigs or ((),), variadic, clock)
        return fn

    return register


def multi_word_names() -> list[str]:
    """Registered names containing spaces, longest first (so the lexer prefers the longest)."""
    return sorted((n for n in BUILTINS if " " in n), key=len, reverse=True)
