"""The public entry points: :func:`compile_expression` and :class:`CompiledExpression`.

Compilation parses with the shared LALR parser, compiles the tree into closures and caches the
result per source text (the same expressions recur in every instance of a process). Evaluation
calls the root closure with the caller's variables; only expressions that call ``now()`` or
``today()`` pay for setting the clock context variable.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from natsflow_engine.errors import FeelEvaluationError, FeelSyntaxError

from .compiler import Compiler
from .functions import CLOCK
from .nodes import Fn
from .parser import parse

__all__ = ["CompiledExpression", "compile_expression"]

_EMPTY: Mapping[str, Any] = {}


class CompiledExpression:
    """A compiled FEEL expression; immutable, thread-safe, cheap to evaluate many times.

    ``source`` is the text it was compiled from, ``variables`` the names of the variables it reads
    from the context (for filters over contexts this may include item entry names).
    """

    __slots__ = ("_fn", "_uses_clock", "source", "variables")

    def __init__(self, source: str, fn: Fn, variables: frozenset[str], uses_clock: bool) -> None:
        self.source = source
        self.variables = variables
        self._fn = fn
        self._uses_clock = uses_clock

    def evaluate(self, context: Mapping[str, Any] | None = None, *, now: datetime | None = None) -> Any:
        """Evaluate against ``context`` (variable name -> JSON-like value); FEEL null is ``None``.

        ``now`` is the clock for ``now()``/``today()`` (default: the current UTC time).
        Raises :class:`FeelEvaluationError` only when evaluation fails outright.
        """
        env = _EMPTY if context is None else context
        try:
            if not self._uses_clock:
                return self._fn(env)
            token = CLOCK.set(now)
            try:
                return self._fn(env)
            finally:
                CLOCK.reset(token)
        except FeelEvaluationError:
            raise
        except RecursionError:
            raise FeelEvaluationError(self.source, "recursion too deep") from None
        except Exception as error:  # a value of a type FEEL does not know, or an engine bug
            raise FeelEvaluationError(self.source, f"{type(error).__name__}: {error}") from error

    def __repr__(self) -> str:
        return f"CompiledExpression({self.source!r})"


def compile_expression(source: str) -> CompiledExpression:
    """Compile FEEL ``source`` (without Zeebe's leading ``=``); raises :class:`FeelSyntaxError`.

    Results are cached per source text (LRU, 4096 entries); compiled expressions are immutable,
    so sharing them is safe.
    """
    if not isinstance(source, str):
        raise TypeError(f"a FEEL expression must be a str, not {type(source).__name__}")
    return _compile_cached(source)


@functools.lru_cache(maxsize=4096)
def _compile_cached(source: str) -> CompiledExpression:
    tree = parse(source)
    compiler = Compiler(source)
    try:
        node = compiler.compile(tree)
    except RecursionError:
        raise FeelSyntaxError(source, 1, "expression nested too deeply") from None
    return CompiledExpression(source, node.fn, frozenset(compiler.free), compiler.uses_clock)
