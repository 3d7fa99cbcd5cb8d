"""How many workers a task type needs: a pure function of the backlog, the policy and time.

The backlog (``lag``) is ``num_pending + num_ack_pending`` of the jobs consumer: jobs waiting
plus jobs in flight. The rules follow KEDA's NATS JetStream scaler and the HPA behind it,
without KEDA's trouble of finding the stream leader:

1. Metric unavailable (``lag is None``): keep the current count.
2. *Active* means ``lag > activationThreshold``; only an active backlog wakes a task type
   that runs at zero replicas.
3. Recommendation: ``ceil(lag / targetPendingPerReplica)`` clamped to ``[max(min, 1), max]``.
4. Tolerance: when ``lag / (current * target)`` is within 10 % of 1, keep the current count.
5. Scale up at most to ``max(2 * current, current + 4)`` per step.
6. Scale down to the highest recommendation seen within the stabilisation window (no
   flapping when the backlog oscillates).
7. With ``minReplicas: 0``: scale to zero once nothing was active for ``cooldownPeriod``
   (bypasses the window, as KEDA does).
8. ``minReplicas`` and ``maxReplicas`` always win over steps and windows.

Times are seconds on any monotonic-enough clock the caller chooses (the operator uses epoch
seconds so ``lastActiveTime`` survives restarts through the status).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

__all__ = ["Decision", "History", "Policy", "decide"]


@dataclass(frozen=True)
class Policy:
    min_replicas: int
    max_replicas: int
    target: int
    """Backlog one replica should carry (``targetPendingPerReplica``, default the concurrency)."""
    activation_threshold: int = 0
    cooldown: float = 300.0
    stabilization: float = 300.0
    tolerance: float = 0.1


@dataclass(frozen=True)
class History:
    """What the decision remembers between polls."""

    recommendations: tuple[tuple[float, int], ...] = ()
    """(time, recommended replicas) within the stabilisation window."""
    last_active: float | None = None
    """Last time the backlog was above the activation threshold."""


@dataclass(frozen=True)
class Decision:
    current: int
    replicas: int
    """The replica count to set."""
    recommended: int
    """The recommendation of rule 3 before tolerance, step limits and stabilisation."""
    reason: str
    message: str
    history: History

    @property
    def changed(self) -> bool:
        return self.replicas != self.current


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def decide(policy: Policy, current: int, lag: int | None, now: float, history: History) -> Decision:
    """The replica count for one poll, and the history for the next one."""
    if lag is None:
        return Decision(
            current, current, current, "MetricUnavailable", "backlog unknown; keeping replicas", history
        )
    active = lag > policy.activation_threshold
    last_active = now if active else (history.last_active if history.last_active is not None else now)
    history = replace(history, last_active=last_active)
    floor = max(policy.min_replicas, 1)
    recommended = _clamp(math.ceil(lag / policy.target), floor, policy.max_replicas)

    def done(replicas: int, reason: str, message: str, hist: History = history) -> Decision:
        return Decision(current, replicas, recommended, reason, message, hist)

    if current == 0 and not active:
        if policy.min_replicas > 0:
            return done(policy.min_replicas, "BelowMinimum", f"raising to minReplicas {policy.min_replicas}")
        return done(0, "Idle", f"backlog {lag} not above activation threshold {policy.activation_threshold}")
    if current > 0 and not active and policy.min_replicas == 0 and now - last_active >= policy.cooldown:
        idle = now - last_active
        return done(
            0,
            "ScaleToZero",
            f"no backlog for {idle:.1f}s (cooldown {policy.cooldown:g}s)",
            History(last_active=last_active),
        )

    proposal = recommended
    if current > 0 and abs(lag / (current * policy.target) - 1.0) <= policy.tolerance:
        proposal = _clamp(current, floor, policy.max_replicas)
    window = tuple((t, r) for t, r in history.recommendations if now - t < policy.stabilization)
    window += ((now, proposal),)
    history = replace(history, recommendations=window)

    if proposal > current:
        limit = max(current * 2, current + 4)
        replicas = max(min(proposal, limit), policy.min_replicas)
        reason = "Activate" if current == 0 else "ScaleUp"
        return done(replicas, reason, f"backlog {lag}, target {policy.target}/replica -> {replicas}", history)
    if proposal < current:
        stable = min(current, max(r for _, r in window), policy.max_replicas)
        replicas = max(stable, policy.min_replicas)
        if replicas < current:
            return done(replicas, "ScaleDown", f"backlog {lag} -> {replicas} (highest in window)", history)
        return done(
            current, "Stabilizing", f"backlog {lag} suggests {proposal}; window holds {replicas}", history
        )
    return done(current, "Steady", f"backlog {lag} fits {current} replica(s)", history)
