"""FEEL (Friendly Enough Expression Language) for natsflow, in the Camunda 8 / Zeebe dialect.

Public API::

    from natsflow_engine.feel import compile_expression, CompiledExpression, to_json_value

    expr = compile_expression("amount > 100 and customer.vip")  # no leading '='
    expr.evaluate({"amount": 150, "customer": {"vip": True}})   # True
    to_json_value(value)                                        # JSON-ready (ISO 8601 temporals)

    expr.evaluate(ctx, now=clock)       # now()/today() read ``clock``; FEEL never reads the wall clock
    with evaluation_clock(clock): ...   # the same for every evaluation in the block (one engine step)
    expr.evaluate(ctx, limits=FeelLimits(max_steps=10_000))   # budget; past it: FeelBudgetError

Design: ``grammar.lark`` is parsed by one lazily built lark LALR(1) parser (``parser``); the tree
is compiled into a tree of Python closures (``compiler``, ``compiler_forms``, ``nodes``) with no
``eval``/``exec``; values and FEEL comparison rules live in ``values``, arithmetic in
``operators``, the built-in functions in ``builtins``/``builtins_lists``/``temporal``
(registered in ``functions``). Compiled expressions are cached per source text.
"""

from __future__ import annotations

from .api import CompiledExpression, compile_expression, evaluation_clock
from .limits import DEFAULT_LIMITS, FeelLimits
from .values import FeelFunction, FeelRange, to_json_value

__all__ = [
    "DEFAULT_LIMITS",
    "CompiledExpression",
    "FeelFunction",
    "FeelLimits",
    "FeelRange",
    "compile_expression",
    "evaluation_clock",
    "to_json_value",
]
