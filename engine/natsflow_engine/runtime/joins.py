"""Joins of one step: parallel gateways wait for a token on every incoming flow; inclusive
gateways split on every true condition and join once no other token can arrive; complex
gateways split like inclusive ones and join when their activation condition holds.

Tokens parked at a join are kept in ``InstanceState.joins`` under ``<scope>/<gateway id>``,
one entry per arrived token (its flow id).

A converging complex gateway (BPMN 2.0, 13.5.5) evaluates its ``activationCondition`` on every
arrival with ``activationCount``, the number of incoming flows holding a token. When it holds,
one token of each such flow is consumed, the gateway fires (its outgoing flows as an inclusive
split) and waits *for reset*: under ``<scope>/<gateway id>/reset`` it lists the flows that
delivered in this round; a token arriving on another incoming flow is consumed without firing,
and the gateway resets once every incoming flow delivered or no token can reach the rest
(the inclusive rule below). A token on a flow that already delivered waits for the next round.
Without an activation condition a complex gateway joins like an inclusive one.

The join does not count tokens. It fires when, for every incoming flow that has no token yet,
no token anywhere in the scope (a waiting element instance, a token queued in this step, a
token parked at another join) can still reach that flow. Reachability over the process graph
is computed once per process and cached.
"""

from __future__ import annotations

from natsflow_engine.bpmn.model import Activity, Gateway, Process
from natsflow_engine.errors import NatsflowError
from natsflow_engine.runtime.context import Part
from natsflow_engine.runtime.scopes import context_of

__all__ = ["RESET", "Joins", "reachable"]

RESET = "/reset"
"""Suffix of the key under which a complex gateway waiting for reset lists the delivered flows."""

_REACH: dict[int, tuple[Process, dict[str, frozenset[str]]]] = {}


def reachable(process: Process) -> dict[str, frozenset[str]]:
    """For each node, the flow ids reachable from it (boundary events of activities included)."""
    cached = _REACH.get(id(process))
    if cached is not None and cached[0] is process:
        return cached[1]
    out_flows: dict[str, list[str]] = {}
    for node in process.nodes.values():
        flows = list(node.outgoing)
        for b in getattr(node, "boundaries", ()):
            flows.extend(process.nodes[b].outgoing)
        out_flows[node.id] = flows
    result: dict[str, frozenset[str]] = {}
    for start in process.nodes:
        seen: set[str] = set()
        stack = list(out_flows[start])
        while stack:
            fid = stack.pop()
            if fid in seen:
                continue
            seen.add(fid)
            stack.extend(out_flows.get(process.flows[fid].target, ()))
        result[start] = frozenset(seen)
    if len(_REACH) > 256:
        _REACH.clear()
    _REACH[id(process)] = (process, result)
    return result


class Joins(Part):
    __slots__ = ()

    def arrive_parallel(self, node: Gateway, scope: int, flow: str | None) -> bool:
        """A token arrives at a parallel join: True (and the tokens are consumed) when one has
        arrived on every incoming flow."""
        key = f"{scope}/{node.id}"
        arrived = self.s.joins.setdefault(key, [])
        arrived.append(flow or "")
        if not all(f in arrived for f in node.incoming):
            return False
        for f in node.incoming:
            arrived.remove(f)
        if not arrived:
            del self.s.joins[key]
        return True

    def arrive_quantity(self, node: Activity, scope: int, flow: str | None) -> bool:
        """A token arrives at an activity with ``startQuantity`` > 1: True (and that many tokens
        are consumed) once enough have arrived, on any of its incoming flows."""
        key = f"{scope}/{node.id}"
        arrived = self.s.joins.setdefault(key, [])
        arrived.append(flow or "")
        if len(arrived) < node.start_quantity:
            return False
        del arrived[: node.start_quantity]
        if not arrived:
            del self.s.joins[key]
        return True

    def arrive_inclusive(self, node: Gateway, scope: int, flow: str | None) -> None:
        self.s.joins.setdefault(f"{scope}/{node.id}", []).append(flow or "")

    def arrive_complex(self, node: Gateway, scope: int, flow: str | None) -> None:
        key = f"{scope}/{node.id}"
        delivered = self.s.joins.get(key + RESET)
        if delivered is not None and (flow or "") not in delivered:
            delivered.append(flow or "")  # a late token of the round that fired: consumed
            self.c.event("token-consumed", node.id, None, flow=flow)
            self._reset_if_complete(node, scope)
            self.c.tokens.token_ended(scope)
            return
        self.s.joins.setdefault(key, []).append(flow or "")
        if node.activation is not None and delivered is None:
            self._activate(node, scope)

    def _activate(self, node: Gateway, scope: int) -> None:
        """Fire the complex gateway when its activation condition holds."""
        assert node.activation is not None
        key = f"{scope}/{node.id}"
        arrived = self.s.joins.get(key, [])
        holding = [f for f in node.incoming if f in arrived]
        ctx = {**context_of(self.s, scope), "activationCount": len(holding)}
        try:
            if not self.c.x.condition(node.activation, ctx):
                return
        except NatsflowError as exc:
            ei = self.c.new_ei(node, scope, None)
            self.c.raise_incident(ei, "expression", f"activation condition failed: {exc}")
            return
        for f in holding:
            arrived.remove(f)
        if not arrived:
            del self.s.joins[key]
        self.s.joins[key + RESET] = list(holding)
        self.take_inclusive(node, scope, None)
        self._reset_if_complete(node, scope)

    def _reset_if_complete(self, node: Gateway, scope: int) -> bool:
        """Reset a complex gateway once no more tokens of its round can arrive; True when it did
        (a token waiting for the next round is then considered at once)."""
        key = f"{scope}/{node.id}"
        delivered = self.s.joins.get(key + RESET)
        if delivered is None:
            return False
        missing = [f for f in node.incoming if f not in delivered]
        if missing and self._can_still_arrive(scope, node.id, missing):
            return False
        del self.s.joins[key + RESET]
        if self.s.joins.get(key) and node.activation is not None:
            self._activate(node, scope)
        return True

    def waiting_in(self, scope: int) -> bool:
        """Whether a token waits at a join of ``scope`` (a complex gateway waiting for reset
        holds no token)."""
        prefix = f"{scope}/"
        return any(k.startswith(prefix) and not k.endswith(RESET) for k in self.s.joins)

    def clear(self, scope: int) -> None:
        """Drop the tokens waiting at the joins of ``scope`` (it ends or is interrupted)."""
        prefix = f"{scope}/"
        if any(k.startswith(prefix) for k in self.s.joins):
            self.s.joins = {k: v for k, v in self.s.joins.items() if not k.startswith(prefix)}

    def take_inclusive(self, node: Gateway, scope: int, flow: str | None) -> None:
        c = self.c
        ctx = context_of(self.s, scope)
        chosen = []
        try:
            for fid in node.outgoing:
                f = self.p.flows[fid]
                if fid != node.default and (f.condition is None or c.x.condition(f.condition, ctx)):
                    chosen.append(fid)
        except NatsflowError as exc:
            c.raise_incident(c.new_ei(node, scope, flow), "expression", f"condition failed: {exc}")
            return
        if not chosen and node.default:
            chosen = [node.default]
        if not chosen:
            word = "complex" if node.kind == "complexGateway" else "inclusive"
            c.raise_incident(c.new_ei(node, scope, flow), "no-flow",
                             f"no outgoing sequence flow of {word} gateway '{node.id}' has a true condition"
                             " and there is no default flow")
            return
        c.passed(node, flows=chosen)
        for fid in chosen:
            c.tokens.enqueue_enter(self.p.flows[fid].target, scope, fid)

    def fire_ready(self) -> bool:
        """Fire every inclusive join no further token can reach; True when one fired."""
        fired = False
        for key in list(self.s.joins):
            scope_text, _, gw_id = key.partition("/")
            scope = int(scope_text)
            if scope not in self.s.eis:
                self.s.joins.pop(key, None)  # the scope has ended
                continue
            if key.endswith(RESET):
                node = self.p.nodes.get(gw_id.removesuffix(RESET))
                if isinstance(node, Gateway) and self._reset_if_complete(node, scope):
                    fired = True
                    self.c.tokens.token_ended(scope)
                continue
            node = self.p.nodes.get(gw_id)
            inclusive = isinstance(node, Gateway) and (
                node.kind == "inclusiveGateway" or (node.kind == "complexGateway" and node.activation is None)
            )
            if not inclusive or not isinstance(node, Gateway):
                continue
            arrived = self.s.joins.get(key)
            if not arrived:
                continue
            missing = [f for f in node.incoming if f not in arrived]
            if missing and self._can_still_arrive(scope, gw_id, missing):
                continue
            for f in {*arrived}:
                arrived.remove(f)
            if not arrived:
                del self.s.joins[key]
            self.take_inclusive(node, scope, None)
            fired = True
        return fired

    def _can_still_arrive(self, scope: int, gw_id: str, missing: list[str]) -> bool:
        reach = reachable(self.p)
        wanted = set(missing)
        positions: list[str] = []
        for ei in self.c.children(scope):
            if not ei.listener:
                positions.append(ei.el)
        for other in self.s.joins:
            other_scope, _, other_gw = other.partition("/")
            if int(other_scope) == scope and other_gw != gw_id:
                positions.append(other_gw)
        return any(reach.get(pos, frozenset()) & wanted for pos in positions)
