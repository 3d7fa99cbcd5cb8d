"""What a FEEL budget step costs, and what the hot path costs.

    python -m bench.feel_steps

For each expression shape: nanoseconds per budget step (best of 5) and the steps it used, so the
default ``FeelLimits.max_steps`` can be read as time on this machine (worst shape x max_steps).
Then the cost of ``evaluate`` for a few hot-path expressions (no budget set up). Numbers are
noisy on a shared machine: compare runs made back to back.
"""

from __future__ import annotations

import sys
import time
import timeit
from pathlib import Path

if __package__ in (None, ""):  # pragma: no cover
    sys.path.append(str(Path(__file__).resolve().parent.parent))

from natsflow_engine.feel import DEFAULT_LIMITS, compile_expression
from natsflow_engine.feel.limits import BUDGET, Budget, FeelLimits

SHAPES = [
    "for x in 1..20000 return x",
    "for x in 1..20000 return x * 2 + 1",
    "for i in 1..200, j in 1..100 return i + j",
    "some x in 1..20000 satisfies x < 0",
    "count(L[item > 5])",
    'count(S[a > 5 and b != "x"])',
    "S.a",
    "sum(for x in L return count([x, x, x]))",
    "for x in L return string(x)",
    "for x in 1..20000 return {a: x}",
    "{f: function(x) x + 1, r: for x in L return f(x)}.r",
    "{f: function(x) x + 1, r: sort(L, function(a, b) a > b)}.r",
    "for x in 1..2000 return [1,2,3,4,5,6,7,8,9,10] = [1,2,3,4,5,6,7,8,9,10]",
    "for x in 1..2000 return x in [1,2,3,4,5,6,7,8,9,10]",
    'for x in L return matches(string(x), "^[0-9]+5$")',
    'for x in 1..2000 return "abc" + string(x)',
]

HOT = ["amount > 100", "amount > 100 and customer.vip", '"order-" + id', "upper case(id)"]


def main() -> None:
    env = {"L": list(range(20_000)), "S": [{"a": i, "b": str(i)} for i in range(20_000)]}
    worst = 0.0
    for source in SHAPES:
        expr = compile_expression(source)
        best, used = float("inf"), 0
        for _ in range(5):
            budget = Budget(FeelLimits(max_steps=10**12))
            token = BUDGET.set(budget)
            started = time.perf_counter()
            expr._fn(env)
            best = min(best, time.perf_counter() - started)
            BUDGET.reset(token)
            used = 10**12 - budget.left
        per_step = best / max(used, 1) * 1e9
        worst = max(worst, per_step)
        print(f"{per_step:7.1f} ns/step {used:8d} steps {best * 1000:7.2f} ms  {source}")
    print(f"worst {worst:.0f} ns/step: max_steps={DEFAULT_LIMITS.max_steps} ~ {worst * DEFAULT_LIMITS.max_steps / 1e6:.0f} ms")
    variables = {"amount": 150, "customer": {"vip": True}, "id": "abc"}
    for source in HOT:
        expr = compile_expression(source)
        best = min(timeit.repeat(lambda e=expr: e.evaluate(variables), number=100_000, repeat=7)) / 100_000
        print(f"{best * 1e9:7.0f} ns  evaluate({source!r})")


if __name__ == "__main__":
    main()
