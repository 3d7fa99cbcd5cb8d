"""The public entry points: :func:`compile_expression` and :class:`CompiledExpression`.

Compilation parses with the shared LALR parser, compiles the tree into closures and caches the
result per source text (the same expressions recur in every instance of a process). Evaluation
calls the root closure with the caller's variables; only expressions with loops, calls or many
nodes pay for setting up a step budget (see ``limits``), and only a clock passed to the call is
set for ``now()``/``today()``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from natsflow_engine.errors import FeelBudgetError, FeelEvaluationError, FeelSyntaxError

from .compiler import Compiler
from .functions import CLOCK
from .limits import BUDGET, DEFAULT_LIMITS, Budget, BudgetExceeded, EvaluationAborted, FeelLimits
from .nodes import Fn
from .parser import parse

__all__ = ["CompiledExpression", "compile_expression", "evaluation_clock"]

_EMPTY: Mapping[str, Any] = {}
_STRAIGHT_LINE_NODES = 64
"""Loop- and call-free expressions up to this many nodes run without a step budget: every node
runs at most once, and the size caps still hold."""


class CompiledExpression:
    """A compiled FEEL expression; immutable, thread-safe, cheap to evaluate many times.

    ``source`` is the text it was compiled from, ``variables`` the names of the variables it reads
    from the context (for filters over contexts this may include item entry names).
    """

    __slots__ = ("_costly", "_fn", "_plain", "_uses_clock", "source", "variables")

    def __init__(self, source: str, fn: Fn, variables: frozenset[str], uses_clock: bool, costly: bool) -> None:
        self.source = source
        self.variables = variables
        self._fn = fn
        self._uses_clock = uses_clock
        self._costly = costly
        self._plain = not costly and not uses_clock  # needs neither a budget nor a clock

    def evaluate(
        self,
        context: Mapping[str, Any] | None = None,
        *,
        now: datetime | None = None,
        limits: FeelLimits | None = None,
    ) -> Any:
        """Evaluate against ``context`` (variable name -> JSON-like value); FEEL null is ``None``.

        ``now`` is the clock of ``now()``/``today()``; without it, the one set by
        :func:`evaluation_clock` around the call; with neither, those two functions fail (FEEL
        never reads the machine's clock). ``limits`` is the budget (default
        :data:`~natsflow_engine.feel.limits.DEFAULT_LIMITS`).

        Raises :class:`FeelEvaluationError` only when evaluation fails outright, and its subclass
        :class:`FeelBudgetError` when the expression goes past its budget.
        """
        env = _EMPTY if context is None else context
        try:
            if self._plain and limits is None:
                return self._fn(env)  # the hot path: nothing to set up
            budget = BUDGET.set(Budget(limits or DEFAULT_LIMITS)) if self._costly or limits else None
            clock = CLOCK.set(now) if now is not None and self._uses_clock else None
            try:
                return self._fn(env)
            finally:
                if clock is not None:
                    CLOCK.reset(clock)
                if budget is not None:
                    BUDGET.reset(budget)
        except FeelEvaluationError:
            raise
        except BudgetExceeded as error:
            raise FeelBudgetError(self.source, error.message, error.limit, error.value) from None
        except EvaluationAborted as error:
            raise FeelEvaluationError(self.source, error.message) from None
        except RecursionError:
            raise FeelEvaluationError(self.source, "recursion too deep") from None
        except Exception as error:  # a value of a type FEEL does not know, or an engine bug
            raise FeelEvaluationError(self.source, f"{type(error).__name__}: {error}") from error

    def __repr__(self) -> str:
        return f"CompiledExpression({self.source!r})"


@contextmanager
def evaluation_clock(now: datetime) -> Iterator[None]:
    """Within the block, ``now()``/``today()`` of every evaluation read ``now`` (unless the
    call passes its own). The interpreter sets it once per step from the step's clock."""
    token = CLOCK.set(now)
    try:
        yield
    finally:
        CLOCK.reset(token)


def compile_expression(source: str) -> CompiledExpression:
    """Compile FEEL ``source`` (without Zeebe's leading ``=``); raises :class:`FeelSyntaxError`.

    Constant parts are evaluated here, under the default budget: a constant that goes past it
    raises :class:`FeelBudgetError`, one that cannot run (a pattern with back-references)
    :class:`FeelSyntaxError`. Results are cached per source text (LRU, 4096 entries); compiled
    expressions are immutable, so sharing them is safe.
    """
    if not isinstance(source, str):
        raise TypeError(f"a FEEL expression must be a str, not {type(source).__name__}")
    return _compile_cached(source)


@functools.lru_cache(maxsize=4096)
def _compile_cached(source: str) -> CompiledExpression:
    tree = parse(source)
    compiler = Compiler(source)
    budget = BUDGET.set(Budget(DEFAULT_LIMITS))
    try:
        node = compiler.compile(tree)
    except RecursionError:
        raise FeelSyntaxError(source, 1, "expression nested too deeply") from None
    except BudgetExceeded as error:
        raise FeelBudgetError(source, f"a constant part: {error.message}", error.limit, error.value) from None
    except EvaluationAborted as error:
        raise FeelSyntaxError(source, 1, error.message) from None
    finally:
        BUDGET.reset(budget)
    costly = compiler.costly or compiler.nodes > _STRAIGHT_LINE_NODES
    return CompiledExpression(source, node.fn, frozenset(compiler.free), compiler.uses_clock, costly)
