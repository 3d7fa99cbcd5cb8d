# mypy: disable-error-code="misc"
# (mixins of the interpreter step annotate self as _Step, the class they are mixed into;
# mypy wants a self type to be a supertype of the mixin, which a mixin cannot offer)
"""Multi-instance activities and standard loops. A mixin of the interpreter's step.

A looped activity runs as a *body* element instance (it carries the activity's boundary
events) with one child element instance per iteration. Each iteration has its own local
variables (``inputElement``, ``loopCounter``); its output element is stored in the body at
the iteration's index, so ``outputCollection`` keeps input order whatever order iterations
finish in. The body completes when every iteration has, or when ``completionCondition``
holds (the others are terminated); then the activity's outgoing flows are taken.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from natsflow_engine.bpmn.model import Activity, MultiInstance, StandardLoop
from natsflow_engine.errors import NatsflowError
from natsflow_engine.runtime import records as r
from natsflow_engine.runtime.scopes import context_of, propagate

if TYPE_CHECKING:
    from natsflow_engine.runtime.interpreter import _Step

__all__ = ["LoopsMixin"]


def _json(value: Any) -> Any:
    from natsflow_engine.feel import to_json_value

    return to_json_value(value)


class LoopsMixin:
    def enter_loop_body(self: _Step, node: Activity, scope: int, flow: str | None) -> None:
        body = self.new_ei(node, scope, flow, vars_={})
        data = r.LoopBody(n=None, seq=True)
        body.role = data
        self.event("element-activated", node.id, body.key, body=True)
        if not self.arm_boundaries(body, node):
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
                if node.loop.test_before and not self._loop_condition(node.loop, context_of(self.s, body.key)):
                    self.finish_body(body, node)
                    return
        except NatsflowError as exc:
            self.raise_incident(body, "expression", f"multi-instance failed: {exc}")
            return
        if data.n == 0:
            self.finish_body(body, node)
            return
        if data.seq or data.n is None:
            self.spawn_iteration(body, node, data)
        else:
            for _ in range(data.n):
                self.spawn_iteration(body, node, data)

    @staticmethod
    def _items(mi: MultiInstance, ctx: Any) -> list[Any]:
        if mi.input_collection is not None:
            value = mi.input_collection.evaluate(ctx)
            if value is None:
                raise NatsflowError(f"input collection '{mi.input_collection.source}' is null")
            if not isinstance(value, list):
                raise NatsflowError(f"input collection '{mi.input_collection.source}' is {value!r}, not a list")
            return [_json(v) for v in value]
        assert mi.cardinality is not None
        count = mi.cardinality.evaluate(ctx)
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise NatsflowError(f"loop cardinality '{mi.cardinality.source}' is {count!r}, not a whole number")
        return [None] * count

    def spawn_iteration(self: _Step, body: r.ElementInstance, node: Activity, data: r.LoopBody) -> None:
        index = data.next
        data.next = index + 1
        local: dict[str, Any] = {"loopCounter": index + 1}
        mi = node.multi_instance
        if mi is not None and mi.input_element:
            local[mi.input_element] = data.items[index]
        inner = r.ElementInstance(
            key=self.new_key(), el=node.id, parent=body.key, vars=local, role=r.Iteration(index=index)
        )
        self.s.eis[inner.key] = inner
        self.event("element-activated", node.id, inner.key, iteration=index)
        self.start_activity(inner, node)

    def iteration_completed(self: _Step, inner: r.ElementInstance, iteration: r.Iteration) -> None:
        body = self.s.eis.get(inner.parent)
        if body is None or not isinstance(body.role, r.LoopBody):
            return
        node = self.p.nodes[body.el]
        assert isinstance(node, Activity)
        data = body.role
        data.done += 1
        mi = node.multi_instance
        if mi is not None and mi.output_collection and mi.output_element is not None and data.out is not None:
            ctx = {**context_of(self.s, body.key), **(inner.vars or {})}
            try:
                data.out[iteration.index] = _json(mi.output_element.evaluate(ctx))
            except NatsflowError as exc:
                self.raise_incident(body, "expression", f"output element failed: {exc}")
                return
        active = sum(1 for e in self.s.eis.values() if e.parent == body.key and not e.listener)
        if mi is not None:
            total = data.n or 0
            if self._completion_reached(body, data, node, active):
                self.finish_body(body, node)
            elif data.next < total and data.seq:
                self.spawn_iteration(body, node, data)
            elif active == 0 and data.next >= total:
                self.finish_body(body, node)
            return
        loop = node.loop
        assert loop is not None
        try:
            again = self._loop_condition(loop, context_of(self.s, body.key))
        except NatsflowError as exc:
            self.raise_incident(body, "expression", f"loop condition failed: {exc}")
            return
        if loop.maximum is not None and data.done >= loop.maximum:
            again = False
        if again:
            self.spawn_iteration(body, node, data)
        else:
            self.finish_body(body, node)

    def _completion_reached(
        self: _Step, body: r.ElementInstance, data: r.LoopBody, node: Activity, active: int
    ) -> bool:
        mi = node.multi_instance
        if mi is None or mi.completion_condition is None:
            return False
        ctx = {
            **context_of(self.s, body.key),
            "numberOfInstances": data.n,
            "numberOfCompletedInstances": data.done,
            "numberOfActiveInstances": active,
        }
        try:
            return mi.completion_condition.evaluate(ctx) is True
        except NatsflowError as exc:
            self.raise_incident(body, "expression", f"completion condition failed: {exc}")
            return False

    @staticmethod
    def _loop_condition(loop: StandardLoop, ctx: Any) -> bool:
        if loop.condition is None:
            return True
        return loop.condition.evaluate(ctx) is True

    def finish_body(self: _Step, body: r.ElementInstance, node: Activity) -> None:
        """All iterations done (or the completion condition held): leave the activity."""
        out = body.role.out if isinstance(body.role, r.LoopBody) else None
        self.close_listeners(body.key)
        self.terminate_children(body.key)
        mi = node.multi_instance
        if mi is not None and mi.output_collection:
            propagate(self.s, body.parent, {mi.output_collection: out if out is not None else []})
        del self.s.eis[body.key]
        self.event("element-completed", node.id, body.key, body=True)
        self.leave(node, body.parent, body.parent)
