"""Tokens: moving through the graph, gateways, ending scopes, terminating, passing errors up.

Tokens move with an explicit queue (:meth:`StepContext.enqueue`) until each one waits or ends.
A token entering an element hands it to the part that knows its kind: gateways stay here,
events go to :class:`~natsflow_engine.runtime.events.Events`, activities to
:class:`~natsflow_engine.runtime.activities.Activities`. A scope completes when it has no
queued token, no waiting element instance (listeners do not count) and no token at a join.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

from natsflow_engine.bpmn.model import Activity, Event, FlowNode, Gateway, SequenceFlow
from natsflow_engine.errors import NatsflowError
from natsflow_engine.runtime import records as r
from natsflow_engine.runtime import waits as w
from natsflow_engine.runtime.context import Part
from natsflow_engine.runtime.scopes import ROOT, context_of

__all__ = ["Tokens"]


class Tokens(Part):
    __slots__ = ()

    # --- moving -------------------------------------------------------------------------------

    def enqueue_enter(self, node_id: str, scope: int, flow: str | None) -> None:
        self.c.enqueue(scope, partial(self.enter, node_id, scope, flow))

    def enter(self, node_id: str, scope: int, flow: str | None) -> None:
        c = self.c
        if not c.arrived(scope):
            return  # the scope was terminated or the instance ended while this token was queued
        node = self.p.nodes[node_id]
        if not c.activate(node):
            c.endless_loop(c.new_ei(node, scope, flow))
            return
        if isinstance(node, Gateway):
            self.enter_gateway(node, scope, flow)
        elif isinstance(node, Event):
            c.events.enter_event(node, scope, flow)
        elif isinstance(node, Activity):
            if node.start_quantity > 1 and not c.joins.arrive_quantity(node, scope, flow):
                return  # waits for more tokens (startQuantity)
            c.activities.enter_activity(node, scope, flow)
        else:  # pragma: no cover - the support check refuses other kinds at deploy
            raise NatsflowError(f"element kind {node.kind} cannot be executed")

    def pass_through(self, node: FlowNode, scope: int) -> None:
        """An element that activates and completes in the same instant."""
        self.c.passed(node)
        self.leave(node, scope)

    def leave(self, node: FlowNode, scope: int, context_key: int | None = None) -> None:
        """Take the outgoing flows of a completed node (conditions on activities honoured)."""
        flows = [self.p.flows[f] for f in node.outgoing]
        if not flows:
            self.token_ended(scope)
            return
        if any(f.condition is not None for f in flows):
            chosen = self._true_flows(node, scope, flows, context_key or scope)
            if chosen is None:
                return
            flows = chosen
        for f in flows:
            for _ in range(getattr(node, "completion_quantity", 1)):  # completionQuantity tokens each
                self.enqueue_enter(f.target, scope, f.id)

    def _true_flows(
        self, node: FlowNode, scope: int, flows: list[SequenceFlow], context_key: int
    ) -> list[SequenceFlow] | None:
        c = self.c
        ctx = context_of(self.s, context_key)
        default = getattr(node, "default", None)
        # the default flow is taken when no *conditional* flow is true (unconditional ones do not count)
        try:
            true = [f for f in flows if f.id != default and f.condition is not None
                    and c.x.condition(f.condition, ctx)]
        except NatsflowError as exc:
            c.raise_incident(c.new_ei(node, scope, None), "expression", f"sequence flow condition failed: {exc}",
                             phase="leave")
            return None
        chosen = [f for f in flows if f.id != default and (f.condition is None or f in true)]
        if not true and default:
            chosen.append(self.p.flows[default])
        if not chosen:
            c.raise_incident(c.new_ei(node, scope, None), "no-flow",
                             f"no outgoing sequence flow of '{node.id}' has a true condition", phase="leave")
            return None
        return chosen

    def token_ended(self, scope: int) -> None:
        scope_ei = self.s.eis.get(scope)
        if scope_ei is not None and isinstance(scope_ei.role, w.AdHocScope):
            self.c.adhocs.token_ended(scope_ei)
        elif self.scope_idle(scope):
            self.complete_scope(scope)

    def scope_idle(self, scope: int) -> bool:
        if self.c.pending.get(scope, 0) or self.c.joins.waiting_in(scope):
            return False
        return not any(not ei.listener for ei in self.c.children(scope))

    def complete_scope(self, scope: int) -> None:
        ei = self.s.eis.get(scope)
        if ei is None:
            return
        if scope == ROOT:
            self.s.state = "completed"
            self.s.ended = self.c.at
            self.s.incidents.clear()  # an ended instance has nothing left to resolve
            self.c.event("instance-completed", ei.el, ROOT)
            self.notify_parent("completed")
            return
        self.c.activities.complete_with(ei, {})

    # --- gateways -----------------------------------------------------------------------------

    def enter_gateway(self, node: Gateway, scope: int, flow: str | None) -> None:
        c = self.c
        if node.kind == "eventBasedGateway":
            c.events.enter_event_gateway(node, scope, flow)
            return
        if node.kind == "complexGateway":
            if len(node.incoming) > 1:
                c.joins.arrive_complex(node, scope, flow)
            else:
                c.joins.take_inclusive(node, scope, flow)
            return
        if node.kind == "inclusiveGateway":
            if len(node.incoming) > 1:
                c.joins.arrive_inclusive(node, scope, flow)  # fired once no other token can arrive
            else:
                c.joins.take_inclusive(node, scope, flow)
            return
        if node.kind == "parallelGateway":
            if len(node.incoming) > 1 and not c.joins.arrive_parallel(node, scope, flow):
                return
            c.passed(node)
            for f in node.outgoing:
                self.enqueue_enter(self.p.flows[f].target, scope, f)
            if not node.outgoing:
                self.token_ended(scope)
            return
        if node.kind == "exclusiveGateway" and (len(node.outgoing) > 1 or node.default):
            self._take_exclusive(node, scope, flow)
            return
        self.pass_through(node, scope)

    def _take_exclusive(self, node: Gateway, scope: int, flow: str | None) -> None:
        c = self.c
        ctx = context_of(self.s, scope)
        chosen = None
        try:
            for fid in node.outgoing:
                f = self.p.flows[fid]
                if fid != node.default and (f.condition is None or c.x.condition(f.condition, ctx)):
                    chosen = fid
                    break
        except NatsflowError as exc:
            c.raise_incident(c.new_ei(node, scope, flow), "expression", f"condition failed: {exc}")
            return
        chosen = chosen or node.default
        if chosen is None:
            c.raise_incident(
                c.new_ei(node, scope, flow),
                "no-flow",
                f"no outgoing sequence flow of exclusive gateway '{node.id}' has a true condition"
                " and there is no default flow",
            )
            return
        c.passed(node, flow=chosen)
        self.enqueue_enter(self.p.flows[chosen].target, scope, chosen)

    # --- ending -------------------------------------------------------------------------------

    def terminate(self, ei: r.ElementInstance) -> None:
        c = self.c
        c.events.close_listeners(ei.key)
        c.events.release(ei)
        if isinstance(ei.wait, w.ChildCall):
            c.effects.append(
                r.Cancel(
                    id=f"{self.s.id}.{ei.key}.cancel",
                    tenant=self.s.tenant,
                    instance=ei.wait.child,
                    reason=f"the calling instance {self.s.id} ended '{ei.el}'",
                )
            )
        self.terminate_children(ei.key)
        c.joins.clear(ei.key)
        if ei.user_task is not None:
            c.effects.append(r.UserTaskDone(id=ei.user_task, tenant=self.s.tenant))
        if ei.incident:
            self.s.incidents = [i for i in self.s.incidents if i.ei != ei.key]
        c.drop_ei(ei.key)
        c.event("element-terminated", ei.el, ei.key)

    def terminate_children(self, scope: int) -> None:
        for child in self.c.children(scope):
            self.terminate(child)

    def end_instance(self, state: str, reason: str | None) -> None:
        """Cancel the whole instance (a cancel command, or an error passed to the caller)."""
        self.terminate_children(ROOT)
        self.s.state = state
        self.s.ended = self.c.at
        self.s.incidents.clear()  # an ended instance has nothing left to resolve
        self.c.event("instance-cancelled", self.p.id, ROOT, reason=reason)

    def notify_parent(self, outcome: str, *, code: str | None = None, message: str = "") -> None:
        parent = self.s.parent
        if parent is None:
            return
        self.c.effects.append(
            r.ChildFinished(
                id=f"{self.s.id}.done",
                tenant=parent.tenant,
                instance=parent.instance,
                ei=parent.ei,
                child=self.s.id,
                state=outcome,
                variables=dict(self.s.root_vars()) if outcome == "completed" else {},
                error_code=code,
                error_message=message,
            )
        )

    def throw_error(
        self,
        source: r.ElementInstance,
        code: str,
        message: str,
        variables: Mapping[str, Any],
        *,
        from_end: FlowNode | None = None,
    ) -> None:
        """Find the innermost catcher of ``code`` (boundary or error event sub-process, from the
        source outwards); a called instance passes an uncaught error to its call activity;
        otherwise the error becomes an incident."""
        c = self.c
        c.event("error-thrown", source.el, source.key, code=code, message=message or None)
        current: r.ElementInstance | None = source
        while current is not None:
            if c.events.catch_error(current, code, dict(variables)):
                return
            if current.key == ROOT:
                break
            current = self.s.eis.get(current.parent)
        if self.s.parent is not None:
            self.end_instance("cancelled", f"error {code} passed to the caller")
            self.notify_parent("error", code=code, message=message)
            return
        msg = f"unhandled BPMN error '{code}'" + (f": {message}" if message else "")
        if from_end is not None:  # the incident is at the end event that threw, inside its scope
            c.raise_incident(c.new_ei(from_end, source.key, None), "unhandled-error", msg, phase="done")
            return
        c.raise_incident(source, "unhandled-error", msg, phase="done")
