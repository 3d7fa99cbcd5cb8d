"""Compensation: undo completed work by running its compensation handlers, newest first.

An activity with a compensation boundary event is recorded in its scope when it completes.
A compensation throw (intermediate or end event) runs the handlers of the recorded
activities of its scope, in reverse order of completion (or only the handler of
``activityRef``), one after the other, and continues when the last one has finished.

A cancel end event cancels the transaction it sits in (BPMN 2.0, 10.2.2): everything else in
the transaction ends, the handlers of the activities completed in it run as for a compensation
throw, then the transaction's cancel boundary event takes the token on (without one the
transaction just ends).
"""

from __future__ import annotations

from natsflow_engine.bpmn.model import Activity, CancelTrigger, CompensateTrigger, Event, FlowNode, SubProcess
from natsflow_engine.runtime import records as r
from natsflow_engine.runtime import waits as w
from natsflow_engine.runtime.context import Part

__all__ = ["Compensation"]


class Compensation(Part):
    __slots__ = ()

    def _handler_of(self, activity_id: str) -> str | None:
        """The activity of its compensation boundary event, or for a sub-process its
        compensation event sub-process."""
        node = self.p.nodes[activity_id]
        for bid in getattr(node, "boundaries", ()):
            b = self.p.nodes[bid]
            if isinstance(b, Event) and isinstance(b.trigger, CompensateTrigger):
                return b.compensation_handler
        for esp_id in node.event_subprocesses if isinstance(node, SubProcess) else ():
            esp = self.p.nodes[esp_id]
            starts = [self.p.nodes[sid] for sid in getattr(esp, "start_events", ())]
            if any(isinstance(st, Event) and isinstance(st.trigger, CompensateTrigger) for st in starts):
                return esp_id
        return None

    def record(self, node: FlowNode, ei: r.ElementInstance) -> None:
        if not isinstance(node, Activity) or self._handler_of(node.id) is None:
            return
        scope = self.s.eis.get(ei.parent)
        while scope is not None and isinstance(scope.role, w.LoopBody):
            scope = self.s.eis.get(scope.parent)
        if scope is None:
            return
        # a sub-process compensated by its compensation event sub-process keeps what completed
        # in it as "<sub-process>><activity>" entries, for that event sub-process to compensate
        nested = [f"{node.id}>{inner}" for inner in ei.compensable] if isinstance(node, SubProcess) else []
        scope.compensable = [*scope.compensable, node.id, *nested]

    def throw(self, node: Event, scope: int, flow: str | None) -> None:
        trig = node.trigger
        assert isinstance(trig, CompensateTrigger)
        scope_ei = self.s.eis[scope]
        recorded = list(scope_ei.compensable)
        chosen = [a for a in recorded if ">" not in a and trig.activity_ref in (None, a)]
        handlers = [h for h in (self._handler_of(a) for a in reversed(chosen)) if h]
        scope_ei.compensable = [a for a in recorded if a not in chosen]
        thrower = self.c.new_ei(node, scope, flow)
        self.c.event("element-activated", node.id, thrower.key)
        self.c.event("compensation-thrown", node.id, thrower.key, handlers=handlers)
        thrower.role = w.CompensationThrow(queue=handlers)
        self._next(thrower)

    def _next(self, thrower: r.ElementInstance) -> None:
        queue = thrower.role.queue if isinstance(thrower.role, w.CompensationThrow) else []
        if queue:
            handler = self.p.nodes[queue.pop(0)]
            assert isinstance(handler, Activity)
            ei = r.ElementInstance(
                key=self.c.new_key(),
                el=handler.id,
                parent=thrower.parent,
                role=w.CompensationHandler(thrower=thrower.key),
            )
            if isinstance(handler, SubProcess) and handler.triggered_by_event:
                # a compensation event sub-process: it compensates what completed in its sub-process
                scope = self.s.eis[thrower.parent]
                prefix = f"{handler.parent}>"
                ei.compensable = [a.removeprefix(prefix) for a in scope.compensable if a.startswith(prefix)]
                scope.compensable = [a for a in scope.compensable if not a.startswith(prefix)]
            self.c.add_ei(ei)
            self.c.event("element-activated", handler.id, ei.key)
            self.c.activities.start_activity(ei, handler)
            return
        node = self.p.nodes[thrower.el]
        self.c.drop_ei(thrower.key)
        self.c.event("element-completed", node.id, thrower.key)
        if isinstance(node, Event) and isinstance(node.trigger, CancelTrigger):
            self._cancelled(thrower.parent)
        elif node.kind == "endEvent":
            self.c.tokens.token_ended(thrower.parent)
        else:
            self.c.tokens.leave(node, thrower.parent)

    def cancel(self, node: Event, scope: int) -> None:
        """A cancel end event: end the rest of the transaction, compensate, then cancel it."""
        c = self.c
        transaction = self.s.eis[scope]
        c.drop_queued(scope)
        c.tokens.terminate_children(scope)
        c.joins.clear(scope)
        done = [a for a in reversed(transaction.compensable) if ">" not in a]
        handlers = [h for h in (self._handler_of(a) for a in done) if h]
        transaction.compensable = []
        thrower = c.new_ei(node, scope, None, role=w.CompensationThrow(queue=handlers))
        c.event("element-activated", node.id, thrower.key)
        c.event("transaction-cancelled", transaction.el, transaction.key, handlers=handlers)
        self._next(thrower)

    def _cancelled(self, scope: int) -> None:
        transaction = self.s.eis.get(scope)
        if transaction is None:
            return
        node = self.p.nodes[transaction.el]
        boundary = next(
            (b for b in (self.p.nodes[bid] for bid in getattr(node, "boundaries", ()))
             if isinstance(b, Event) and isinstance(b.trigger, CancelTrigger)),
            None,
        )  # fmt: skip
        parent = transaction.parent
        self.c.tokens.terminate(transaction)
        if boundary is not None:
            self.c.events.fire_catch(boundary, parent, {})
        else:
            self.c.tokens.token_ended(parent)

    def handler_done(self, handler: w.CompensationHandler) -> None:
        thrower = self.s.eis.get(handler.thrower)
        if thrower is not None:
            self._next(thrower)
