"""Conditional events: intermediate catches, boundaries (interrupting or not) and event
sub-process starts whose ``conditionalEventDefinition`` fires when its condition becomes true.

A conditional event waits with a :class:`~natsflow_engine.runtime.waits.ConditionWait`, which
keeps the condition's last value. The condition is evaluated when the event is armed (true
then: it fires at once, before the tokens its scope or activity queued after it) and again at
the end of every step of the instance, after its tokens came to rest: variables change only in
steps, so no change goes unseen. It fires on a change from false to true (BPMN 2.0, 10.5.3: the
event is triggered when the condition *becomes* true); a non-interrupting one that fired stays
armed and fires again only after its condition was false in between. The condition sees the
variables of the element instance the event belongs to (the activity of a boundary, the scope of
a catch or an event sub-process start). A condition that fails or is not boolean is an incident
on the event; resolving it arms the event again.
"""

from __future__ import annotations

from functools import partial

from natsflow_engine.bpmn.model import ConditionalTrigger
from natsflow_engine.errors import NatsflowError
from natsflow_engine.runtime import records as r
from natsflow_engine.runtime import waits as w
from natsflow_engine.runtime.context import Part, listener_trigger
from natsflow_engine.runtime.scopes import context_of

__all__ = ["Conditions"]


class Conditions(Part):
    __slots__ = ()

    def _value(self, ei: r.ElementInstance, trigger: ConditionalTrigger) -> bool | None:
        """The condition's value for ``ei``; None after raising an incident on it."""
        try:
            return self.c.x.condition(trigger.condition, context_of(self.s, ei.parent))
        except NatsflowError as exc:
            self.c.raise_incident(ei, "expression", f"the condition of '{ei.el}' failed: {exc}", phase="arm")
            return None

    def arm(self, ei: r.ElementInstance, trigger: ConditionalTrigger) -> bool:
        """Start waiting; a condition already true fires as the next queued token. False when
        the condition failed (an incident) or fires now."""
        value = self._value(ei, trigger)
        if value is None:
            return False
        ei.wait = w.ConditionWait(met=value)
        if value:
            self.c.enqueue(ei.parent, partial(self._fire, ei.key, ei.parent))
        return not value

    def _fire(self, key: int, parent: int) -> None:
        if not self.c.arrived(parent):
            return
        ei = self.s.eis.get(key)
        if ei is not None and isinstance(ei.wait, w.ConditionWait) and ei.wait.met:
            self.c.event("condition-met", ei.el, ei.key)
            self.c.events.trigger(ei, {})

    def evaluate(self) -> bool:
        """Evaluate every armed condition of the instance; True when one turned true (it fired)."""
        fired = False
        armed = [e for e in self.s.eis.values() if isinstance(e.wait, w.ConditionWait) and not e.incident]
        for ei in sorted(armed, key=lambda e: e.key):
            wait = ei.wait
            if not isinstance(wait, w.ConditionWait) or ei.key not in self.s.eis:
                continue
            node = self.p.nodes.get(ei.el)
            trigger = listener_trigger(node, ei) if node is not None else None
            if not isinstance(trigger, ConditionalTrigger):
                continue
            value = self._value(ei, trigger)
            if value is None or value == wait.met:
                continue
            ei.wait = w.ConditionWait(met=value)
            if value:
                self.c.event("condition-met", ei.el, ei.key)
                self.c.events.trigger(ei, {})
                fired = True
        return fired
