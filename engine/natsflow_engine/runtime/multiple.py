"""Events with several event definitions (BPMN 2.0, 10.5.1, "multiple" and "parallel multiple").

A catch event with several definitions waits as an element instance with the role
:class:`~natsflow_engine.runtime.waits.MultipleCatch`; each definition is armed on a listener of
its own (``Listener(of="multi", i=<index>)``), a child of the catch. It completes when any one
of them happens, or, with ``parallelMultiple="true"``, when each of them happened once (in any
order); then its other listeners are released. A boundary event or an event sub-process start
with several definitions has a listener per definition (``Listener(of="boundary"|"esp", i=...)``);
any one fires it, or, parallel multiple, the last of them to happen (each listener is marked
``done`` meanwhile; a non-interrupting one then waits for all of them again). A throw or end event with several definitions
throws each of them in document order (signals and messages on message flows).
"""

from __future__ import annotations

from typing import Any

from natsflow_engine.bpmn.model import Event, MessageTrigger, MultipleTrigger, SignalTrigger
from natsflow_engine.runtime import records as r
from natsflow_engine.runtime import waits as w
from natsflow_engine.runtime.context import Part

__all__ = ["Multiples"]


class Multiples(Part):
    __slots__ = ()

    def enter_catch(self, node: Event, trigger: MultipleTrigger, scope: int, flow: str | None) -> None:
        c = self.c
        catch = c.new_ei(node, scope, flow, role=w.MultipleCatch())
        c.event("element-activated", node.id, catch.key)
        for i, sub in enumerate(trigger.triggers):
            listener = r.ElementInstance(
                key=c.new_key(), el=node.id, parent=catch.key, role=w.Listener(of="multi", i=i)
            )
            c.add_ei(listener)
            if not c.events.arm(listener, sub, scope) and listener.incident:
                return

    def fired(self, listener: r.ElementInstance, variables: dict[str, Any]) -> None:
        """One definition of a multiple catch happened."""
        c = self.c
        catch = self.s.eis.get(listener.parent)
        node = self.p.nodes[listener.el]
        role = listener.role
        if catch is None or not isinstance(catch.role, w.MultipleCatch) or not isinstance(role, w.Listener):
            return
        assert isinstance(node, Event) and isinstance(node.trigger, MultipleTrigger)
        c.events.release(listener)
        c.drop_ei(listener.key)
        if node.trigger.parallel:
            catch.role = w.MultipleCatch(fired=sorted({*catch.role.fired, role.i}))
            if len(catch.role.fired) < len(node.trigger.triggers):
                return
        c.activities.complete_with(catch, variables)

    def parallel_fired(self, ei: r.ElementInstance, node: Event, trigger: MultipleTrigger, keep: bool) -> bool:
        """Definition ``i`` of a parallel multiple boundary or event sub-process start happened:
        True once each of its definitions did (a non-interrupting one then waits for all of them
        again)."""
        role = ei.role
        assert isinstance(role, w.Listener)
        self.c.events.release(ei)
        ei.role = w.Listener(of=role.of, i=role.i, done=True)
        siblings = [
            e for e in self.c.children(ei.parent)
            if e.el == node.id and isinstance(e.role, w.Listener) and e.role.of == role.of
        ]  # fmt: skip
        if not all(isinstance(e.role, w.Listener) and e.role.done for e in siblings):
            return False
        if keep:
            for sibling in siblings:
                assert isinstance(sibling.role, w.Listener)
                sibling.role = w.Listener(of=role.of, i=sibling.role.i)
                self.c.events.arm(sibling, trigger.triggers[sibling.role.i], ei.parent)
        return True

    def throw(self, node: Event, trigger: MultipleTrigger, scope: int) -> bool:
        """Throw every signal, then send the messages of the event's message flows (once);
        False when one could not be thrown (an incident)."""
        for sub in trigger.triggers:
            single = Event(
                id=node.id, kind=node.kind, line=node.line, parent=node.parent, trigger=sub, inputs=node.inputs
            )
            if isinstance(sub, SignalTrigger) and not self.c.events.broadcast_signal(single, scope):
                return False
        if any(isinstance(sub, MessageTrigger) for sub in trigger.triggers):
            return self.c.events.send_message_flows(node, scope)
        return True
