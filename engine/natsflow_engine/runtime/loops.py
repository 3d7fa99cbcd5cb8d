"""Multi-instance activities and standard loops.

A looped activity runs as a *body* element instance (it carries the activity's boundary
events) with one child element instance per iteration. Each iteration has its own local
variables (``inputElement``, ``loopCounter``); its output element is stored in the body at
the iteration's index, so ``outputCollection`` keeps input order whatever order iterations
finish in. The body completes when every iteration has, or when ``completionCondition``
holds (the others are terminated); then the activity's outgoing flows are taken.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from natsflow_engine.bpmn.model import (
    Activity,
    Event,
    EventTrigger,
    MessageTrigger,
    MultiInstance,
    SignalTrigger,
)
from natsflow_engine.errors import NatsflowError
from natsflow_engine.runtime import records as r
from natsflow_engine.runtime import waits as w
from natsflow_engine.runtime.context import Part
from natsflow_engine.runtime.expressions import Variables
from natsflow_engine.runtime.scopes import context_of, propagate

__all__ = ["Loops"]


class Loops(Part):
    __slots__ = ()

    def enter_body(self, node: Activity, scope: int, flow: str | None) -> None:
        body = self.c.new_ei(node, scope, flow, vars_={})
        data = w.LoopBody(n=None, seq=True)
        body.role = data
        self.c.event("element-activated", node.id, body.key, body=True)
        if not self.c.events.arm_boundaries(body, node):
            return
        ctx = context_of(self.s, scope)
        mi = node.multi_instance
        try:
            if mi is not None:
                items = self._items(mi, ctx)
                data.n, data.seq, data.items = len(items), mi.sequential, items
                if mi.output_collection:
                    data.out = [None] * len(items)
            else:
                assert node.loop is not None
                if node.loop.maximum is not None and node.loop.maximum < 0:
                    raise NatsflowError(f"loopMaximum is {node.loop.maximum}; it must not be negative")
                if node.loop.test_before and not self.c.x.holds(node.loop.condition, context_of(self.s, body.key)):
                    self.finish_body(body, node)
                    return
        except NatsflowError as exc:
            what = "multi-instance" if mi is not None else "loop"
            self.c.raise_incident(body, "expression", f"{what} failed: {exc}")
            return
        if data.n == 0:
            self.finish_body(body, node)
            return
        if data.seq or data.n is None:
            self.spawn_iteration(body, node, data)
        else:
            for _ in range(data.n):
                self.spawn_iteration(body, node, data)
                if body.key not in self.s.eis:
                    return  # an instant iteration met the completion condition

    def _items(self, mi: MultiInstance, ctx: Variables) -> list[Any]:
        x = self.c.x
        if mi.input_collection is not None:
            value = x.value(mi.input_collection, ctx)
            if value is None:
                raise NatsflowError(f"input collection '{mi.input_collection.source}' is null")
            if not isinstance(value, list):
                raise NatsflowError(f"input collection '{mi.input_collection.source}' is {value!r}, not a list")
            return [x.to_json(v) for v in value]
        assert mi.cardinality is not None
        count = x.value(mi.cardinality, ctx)
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise NatsflowError(f"loop cardinality '{mi.cardinality.source}' is {count!r}, not a whole number")
        return [None] * count

    def spawn_iteration(self, body: r.ElementInstance, node: Activity, data: w.LoopBody) -> None:
        if not self.c.activate(node):
            self.c.endless_loop(body)
            return
        index = data.next
        data.next = index + 1
        local: dict[str, Any] = {"loopCounter": index + 1}
        mi = node.multi_instance
        if mi is not None and mi.input_element:
            local[mi.input_element] = data.items[index]
        inner = r.ElementInstance(
            key=self.c.new_key(), el=node.id, parent=body.key, vars=local, role=w.Iteration(index=index)
        )
        self.c.add_ei(inner)
        self.c.event("element-activated", node.id, inner.key, iteration=index)
        self.c.activities.start_activity(inner, node)

    def _queue_iteration(self, body: r.ElementInstance) -> None:
        """The next iteration of a sequential body starts from the token queue, not from inside
        the completion of the one before (instant iterations would nest calls)."""
        self.c.enqueue(body.key, partial(self._next_iteration, body.key))

    def _next_iteration(self, key: int) -> None:
        if not self.c.arrived(key):
            return
        body = self.s.eis[key]
        node = self.p.nodes[body.el]
        if isinstance(body.role, w.LoopBody) and isinstance(node, Activity):
            self.spawn_iteration(body, node, body.role)

    def iteration_completed(self, inner: r.ElementInstance, iteration: w.Iteration) -> None:
        body = self.s.eis.get(inner.parent)
        if body is None or not isinstance(body.role, w.LoopBody):
            return
        node = self.p.nodes[body.el]
        assert isinstance(node, Activity)
        data = body.role
        data.done += 1
        mi = node.multi_instance
        if mi is not None and mi.behavior_event is not None and (
            mi.behavior == "None" or (mi.behavior == "One" and data.done == 1)
        ):
            self._behavior_event(body, node, mi.behavior_event)
        if mi is not None and mi.output_collection and mi.output_element is not None and data.out is not None:
            ctx = {**context_of(self.s, body.key), **(inner.vars or {})}
            try:
                data.out[iteration.index] = self.c.x.json(mi.output_element, ctx)
            except NatsflowError as exc:
                self.c.raise_incident(body, "expression", f"output element failed: {exc}")
                return
        # iterations still running: started and not completed (none ends otherwise while the
        # body runs), counted without scanning the element instances
        active = data.next - data.done
        if mi is not None:
            total = data.n or 0
            if self._complex_behavior(body, data, node, active) or self._completion_reached(
                body, data, node, active
            ):
                self.finish_body(body, node)
            elif data.next < total and data.seq:
                self._queue_iteration(body)
            elif active == 0 and data.next >= total:
                self.finish_body(body, node)
            return
        loop = node.loop
        assert loop is not None
        try:
            again = self.c.x.holds(loop.condition, context_of(self.s, body.key))
        except NatsflowError as exc:
            self.c.raise_incident(body, "expression", f"loop condition failed: {exc}")
            return
        if loop.maximum is not None and data.done >= loop.maximum:
            again = False
        if again:
            self._queue_iteration(body)
        else:
            self.finish_body(body, node)

    def _behavior_event(self, body: r.ElementInstance, node: Activity, event: EventTrigger) -> None:
        """A completing instance throws the behavior's event: the boundary events of the
        activity that catch it take a token on; the activity goes on."""
        ctx = context_of(self.s, body.key)
        x = self.c.x
        try:
            for bid in node.boundaries:
                boundary = self.p.nodes[bid]
                if not isinstance(boundary, Event) or type(boundary.trigger) is not type(event):
                    continue
                if isinstance(event, SignalTrigger | MessageTrigger):
                    theirs = getattr(boundary.trigger, "name", None)
                    if theirs is None or x.value(theirs, ctx) != x.value(event.name, ctx):
                        continue
                elif getattr(boundary.trigger, "code", None) not in (None, getattr(event, "code", None)):
                    continue
                self.c.event("behavior-event-thrown", node.id, body.key, boundary=bid)
                self.c.events.fire_catch(boundary, body.parent, {})
        except NatsflowError as exc:
            self.c.raise_incident(body, "expression", f"the behavior event failed: {exc}")

    def _complex_behavior(self, body: r.ElementInstance, data: w.LoopBody, node: Activity, active: int) -> bool:
        """Behavior Complex: each ``complexBehaviorDefinition`` whose condition holds throws its
        event; when one held, the remaining instances are cancelled and the activity completes."""
        mi = node.multi_instance
        if mi is None or not mi.complex_behaviors or body.incident:
            return False
        ctx = self._loop_variables(body, data, active)
        held = False
        for behavior in mi.complex_behaviors:
            try:
                holds = self.c.x.holds(behavior.condition, ctx)
            except NatsflowError as exc:
                self.c.raise_incident(body, "expression", f"complex behavior condition failed: {exc}")
                return False
            if holds:
                held = True
                if behavior.event is not None:
                    self._behavior_event(body, node, behavior.event)
        return held and body.key in self.s.eis

    def _loop_variables(self, body: r.ElementInstance, data: w.LoopBody, active: int) -> dict[str, Any]:
        return {
            **context_of(self.s, body.key),
            "numberOfInstances": data.n,
            "numberOfCompletedInstances": data.done,
            "numberOfActiveInstances": active,
        }

    def _completion_reached(
        self, body: r.ElementInstance, data: w.LoopBody, node: Activity, active: int
    ) -> bool:
        mi = node.multi_instance
        if mi is None or mi.completion_condition is None:
            return False
        try:
            return self.c.x.holds(mi.completion_condition, self._loop_variables(body, data, active))
        except NatsflowError as exc:
            self.c.raise_incident(body, "expression", f"completion condition failed: {exc}")
            return False

    def finish_body(self, body: r.ElementInstance, node: Activity) -> None:
        """All iterations done (or the completion condition held): leave the activity."""
        out = body.role.out if isinstance(body.role, w.LoopBody) else None
        self.c.events.close_listeners(body.key)
        self.c.tokens.terminate_children(body.key)
        mi = node.multi_instance
        if mi is not None and mi.output_collection:
            propagate(self.s, body.parent, {mi.output_collection: out if out is not None else []})
        self.c.drop_ei(body.key)
        self.c.event("element-completed", node.id, body.key, body=True)
        self.c.tokens.leave(node, body.parent, body.parent)
