"""Ad-hoc sub-processes (BPMN 2.0, 10.3.5; Camunda 8's ``zeebe:adHoc``).

An ad-hoc sub-process starts the activities its ``activeElementsCollection`` lists (Camunda 8,
a FEEL list of element ids), or without one every activity inside it that has no incoming
sequence flow, in document order: all at once (``ordering="Parallel"``) or one after the other
(``Sequential``: the next starts when nothing inside runs). Sequence flows inside are followed
as usual. Each time a token inside ends, its ``completionCondition`` is evaluated (in the
sub-process's variables); once it holds nothing more starts, and with
``cancelRemainingInstances`` (the default) what still runs is terminated. It completes when
nothing inside runs and nothing is left to start, or when the condition held.
"""

from __future__ import annotations

from natsflow_engine.bpmn.model import Activity, SubProcess
from natsflow_engine.errors import NatsflowError
from natsflow_engine.runtime import records as r
from natsflow_engine.runtime import waits as w
from natsflow_engine.runtime.context import Part
from natsflow_engine.runtime.scopes import context_of

__all__ = ["AdHocs"]


class AdHocs(Part):
    __slots__ = ()

    def start(self, ei: r.ElementInstance, node: SubProcess) -> None:
        assert node.ad_hoc is not None
        c = self.c
        try:
            chosen = self._elements(ei, node)
        except NatsflowError as exc:
            c.raise_incident(ei, "expression", f"the active elements of '{node.id}' failed: {exc}")
            return
        if ei.vars is None:
            ei.vars = {}
        c.events.arm_event_subprocesses(ei, node.event_subprocesses)
        first, rest = (chosen[:1], chosen[1:]) if node.ad_hoc.sequential else (chosen, [])
        ei.role = w.AdHocScope(pending=rest)
        if not first:
            c.activities.complete_with(ei, {})
            return
        for element in first:
            c.tokens.enqueue_enter(element, ei.key, None)

    def _elements(self, ei: r.ElementInstance, node: SubProcess) -> list[str]:
        assert node.ad_hoc is not None
        inner = [
            child for child in node.children
            if isinstance(self.p.nodes[child], Activity) and not self.p.nodes[child].incoming
            and child not in node.event_subprocesses
            and not getattr(self.p.nodes[child], "is_for_compensation", False)
        ]  # fmt: skip
        if node.ad_hoc.active_elements is None:
            return inner
        value = self.c.x.value(node.ad_hoc.active_elements, context_of(self.s, ei.key))
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise NatsflowError(f"it gave {value!r}, not a list of element ids")
        unknown = [v for v in value if v not in node.children]
        if unknown:
            raise NatsflowError(f"{unknown} are not elements of the ad-hoc sub-process")
        return list(value)

    def token_ended(self, ei: r.ElementInstance) -> None:
        """A token inside the ad-hoc sub-process ``ei`` ended."""
        c = self.c
        node = self.p.nodes[ei.el]
        role = ei.role
        assert isinstance(node, SubProcess) and node.ad_hoc is not None and isinstance(role, w.AdHocScope)
        condition = node.ad_hoc.completion_condition
        if condition is not None and not role.closing:
            try:
                done = c.x.condition(condition, context_of(self.s, ei.key))
            except NatsflowError as exc:
                c.raise_incident(ei, "expression", f"the completion condition of '{node.id}' failed: {exc}")
                return
            if done:
                ei.role = role = w.AdHocScope(pending=[], closing=True)
                if node.ad_hoc.cancel_remaining:
                    c.drop_queued(ei.key)
                    c.tokens.terminate_children(ei.key)
        if not c.tokens.scope_idle(ei.key):
            return
        if role.pending:
            ei.role = w.AdHocScope(pending=role.pending[1:], closing=role.closing)
            c.tokens.enqueue_enter(role.pending[0], ei.key, None)
            return
        c.activities.complete_with(ei, {})
