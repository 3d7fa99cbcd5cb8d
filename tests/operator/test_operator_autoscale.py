"""The autoscaler's decision function: a table of single polls and a few sequences (flapping)."""

from __future__ import annotations

import pytest
from natsflow_operator.autoscale import History, Policy, decide

P = Policy(min_replicas=0, max_replicas=10, target=10, activation_threshold=0, cooldown=60, stabilization=30)


@pytest.mark.parametrize(
    ("policy", "current", "lag", "expected", "reason"),
    [
        # metric unavailable: keep whatever runs
        (P, 3, None, 3, "MetricUnavailable"),
        (P, 0, None, 0, "MetricUnavailable"),
        # idle at zero stays at zero; activation needs lag above the threshold
        (P, 0, 0, 0, "Idle"),
        (Policy(0, 10, 10, activation_threshold=5), 0, 5, 0, "Idle"),
        (Policy(0, 10, 10, activation_threshold=5), 0, 6, 1, "Activate"),
        # from zero: ceil(lag / target), at most +4 in one step
        (P, 0, 25, 3, "Activate"),
        (P, 0, 200, 4, "Activate"),
        # scale up: at most x2 or +4, whichever is larger
        (P, 2, 200, 6, "ScaleUp"),
        (P, 6, 200, 10, "ScaleUp"),
        (P, 4, 1000, 8, "ScaleUp"),
        # clamped to maxReplicas
        (P, 9, 10_000, 10, "ScaleUp"),
        (P, 10, 10_000, 10, "Steady"),
        # 10 % tolerance around the target keeps the count
        (P, 4, 43, 4, "Steady"),
        (P, 4, 37, 4, "Steady"),
        (P, 4, 45, 5, "ScaleUp"),
        # minReplicas is a floor even at zero backlog and from zero
        (Policy(2, 10, 10), 0, 0, 2, "BelowMinimum"),
        (Policy(2, 10, 10), 1, 0, 2, "ScaleUp"),
        # lowered maxReplicas applies at once (no stabilisation upwards of max)
        (Policy(0, 3, 10), 8, 80, 3, "ScaleDown"),
    ],
)
def test_single_poll(policy: Policy, current: int, lag: int | None, expected: int, reason: str) -> None:
    decision = decide(policy, current, lag, now=1000.0, history=History(last_active=1000.0))
    assert (decision.replicas, decision.reason) == (expected, reason), decision.message


def run(policy: Policy, current: int, polls: list[tuple[float, int | None]]) -> list[int]:
    """Feed (time, lag) polls; return the replica count after each."""
    history, seen = History(), []
    for now, lag in polls:
        decision = decide(policy, current, lag, now, history)
        current, history = decision.replicas, decision.history
        seen.append(current)
    return seen


def test_flapping_backlog_does_not_flap_replicas() -> None:
    policy = Policy(min_replicas=1, max_replicas=10, target=10, stabilization=30, cooldown=60)
    polls = [(float(t), 80 if t % 2 == 0 else 0) for t in range(0, 20)]
    seen = run(policy, 1, polls)
    assert seen[:3] == [5, 5, 8]  # +4 then x2 (capped by the backlog's 8)
    assert set(seen[2:]) == {8}  # the zero polls never scale down inside the window


def test_scale_down_after_the_window_to_the_highest_recent_recommendation() -> None:
    policy = Policy(min_replicas=1, max_replicas=10, target=10, stabilization=10, cooldown=60)
    polls = [(0.0, 80)] + [(float(t), 20) for t in range(1, 30)]
    seen = run(policy, 8, polls)
    assert seen[0] == 8
    assert seen[9] == 8  # window still holds the 8
    assert seen[10] == 2  # 10 s later: the highest recommendation left is 2
    assert seen[-1] == 2


def test_scale_to_zero_only_after_cooldown_since_last_activity() -> None:
    policy = Policy(min_replicas=0, max_replicas=10, target=10, stabilization=1.5, cooldown=5)
    polls = [(0.0, 30), (1.0, 0), (2.0, 0), (4.9, 0), (6.0, 0), (7.0, 0)]
    seen = run(policy, 0, polls)
    assert seen == [3, 3, 1, 1, 0, 0]


def test_keeps_count_when_nats_cannot_be_read_then_resumes() -> None:
    policy = Policy(min_replicas=0, max_replicas=10, target=10, stabilization=0, cooldown=5)
    seen = run(policy, 0, [(0.0, 40), (1.0, None), (2.0, None), (3.0, 40), (100.0, None)])
    assert seen == [4, 4, 4, 4, 4]


def test_min_equals_max_pins_the_count() -> None:
    policy = Policy(min_replicas=3, max_replicas=3, target=10)
    assert run(policy, 3, [(0.0, 0), (1.0, 10_000), (2.0, 0)]) == [3, 3, 3]
