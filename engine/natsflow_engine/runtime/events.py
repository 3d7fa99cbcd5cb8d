"""Catching and throwing events: timers, messages, signals, escalations, links; boundary
events, event sub-processes and event-based gateways; events entered by a token (catches,
throws, end events).

A *listener* is an element instance that waits for an event on behalf of something else:

- ``boundary``: child of the activity it is attached to (gone when the activity ends);
- ``esp``: child of a scope, the start event of one of its event sub-processes;
- ``ebg``: child of an event-based gateway, one per event after it.

Plain catches (an intermediate catch event, a receive task) wait on their own element
instance. Listeners never keep a scope alive (see :meth:`Tokens.token_ended`).
"""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Any

import msgspec

from natsflow_engine.bpmn.instantiate import instantiate_flow
from natsflow_engine.bpmn.model import (
    Activity,
    CancelTrigger,
    CompensateTrigger,
    ConditionalTrigger,
    ErrorTrigger,
    EscalationTrigger,
    Event,
    EventTrigger,
    FlowNode,
    Gateway,
    LinkTrigger,
    MessageTrigger,
    MultipleTrigger,
    SignalTrigger,
    SubProcess,
    TerminateTrigger,
    TimerTrigger,
    triggers_of,
)
from natsflow_engine.errors import NatsflowError
from natsflow_engine.runtime import records as r
from natsflow_engine.runtime import waits as w
from natsflow_engine.runtime.context import Part
from natsflow_engine.runtime.scopes import ROOT, context_of, propagate
from natsflow_engine.runtime.timers import Cycle, due_at, next_in_cycle, to_rfc3339

__all__ = ["Events"]

# the event definitions an event waits for with a listener (several of them: a multiple event)
_WAITED = (TimerTrigger, MessageTrigger, SignalTrigger, ConditionalTrigger, MultipleTrigger)



class Events(Part):
    __slots__ = ()

    # --- arming ---------------------------------------------------------------------------------

    def arm(self, ei: r.ElementInstance, trigger: EventTrigger | None, ctx_key: int) -> bool:
        """Start waiting for ``trigger`` on ``ei``; False (with an incident) when it cannot."""
        ctx = context_of(self.s, ctx_key)
        x = self.c.x
        try:
            if isinstance(trigger, TimerTrigger):
                due, cycle = due_at(trigger.kind, x.value(trigger.value, ctx), x.now)
                self.schedule(ei, due, cycle)
            elif isinstance(trigger, MessageTrigger):
                name = x.value(trigger.name, ctx)
                if not isinstance(name, str) or not name:
                    raise NatsflowError(f"message name expression gave {name!r}, not a string")
                key = x.key(trigger.correlation_key, ctx)
                ei.wait = w.MessageWait(name=name, key=key)
                self.c.effects.append(
                    r.Subscribe(
                        kind="message",
                        tenant=self.s.tenant,
                        instance=self.s.id,
                        ei=ei.key,
                        element_id=ei.el,
                        name=name,
                        key=key,
                    )
                )
            elif isinstance(trigger, ConditionalTrigger):
                return self.c.conditions.arm(ei, trigger)
            elif isinstance(trigger, SignalTrigger):
                name = x.value(trigger.name, ctx)
                if not isinstance(name, str) or not name:
                    raise NatsflowError(f"signal name expression gave {name!r}, not a string")
                ei.wait = w.SignalWait(name=name)
                self.c.effects.append(
                    r.Subscribe(
                        kind="signal",
                        tenant=self.s.tenant,
                        instance=self.s.id,
                        ei=ei.key,
                        element_id=ei.el,
                        name=name,
                    )
                )
            else:
                return True  # error / escalation / compensation catches wait for a throw, not a subscription
        except NatsflowError as exc:
            self.c.raise_incident(
                ei, "expression", f"cannot wait for the event of '{ei.el}': {exc}", phase="arm"
            )
            return False
        return True

    def schedule(self, ei: r.ElementInstance, due: datetime, cycle: Cycle | None) -> None:
        timer = f"{self.s.id}.{ei.key}.t{self.s.step}"
        ei.wait = w.TimerWait(
            timer=timer, due=to_rfc3339(due), cycle=None if cycle is None else _encode_cycle(cycle)
        )
        self.c.effects.append(
            r.TimerSpec(id=timer, tenant=self.s.tenant, instance=self.s.id, ei=ei.key, due=to_rfc3339(due))
        )
        self.c.event("timer-scheduled", ei.el, ei.key, due=to_rfc3339(due))

    def release(self, ei: r.ElementInstance) -> None:
        """Stop waiting: drop the timer, unsubscribe the message or signal."""
        wait = ei.wait
        if isinstance(wait, w.TimerWait | w.RetryWait):
            self.c.effects.append(r.TimerCancel(id=wait.timer, tenant=self.s.tenant, instance=self.s.id))
        elif isinstance(wait, w.MessageWait):
            self.c.effects.append(
                r.Unsubscribe(
                    kind="message",
                    tenant=self.s.tenant,
                    instance=self.s.id,
                    ei=ei.key,
                    name=wait.name,
                    key=wait.key,
                )
            )
        elif isinstance(wait, w.SignalWait):
            self.c.effects.append(
                r.Unsubscribe(kind="signal", tenant=self.s.tenant, instance=self.s.id, ei=ei.key, name=wait.name)
            )
        elif not isinstance(wait, w.ConditionWait):
            return
        ei.wait = None

    def new_listener(self, node: FlowNode, parent: int, role: w.ListenerOf, i: int = 0) -> r.ElementInstance:
        ei = r.ElementInstance(key=self.c.new_key(), el=node.id, parent=parent, role=w.Listener(of=role, i=i))
        self.c.add_ei(ei)
        return ei

    def arm_boundaries(self, owner: r.ElementInstance, node: FlowNode) -> bool:
        for bid in getattr(node, "boundaries", ()):
            boundary = self.p.nodes[bid]
            assert isinstance(boundary, Event)
            if not isinstance(boundary.trigger, _WAITED):
                continue
            parallel = isinstance(boundary.trigger, MultipleTrigger) and boundary.trigger.parallel
            for i, trigger in enumerate(triggers_of(boundary.trigger)):
                listener = self.new_listener(boundary, owner.key, "boundary", i)
                if not self.arm(listener, trigger, owner.key) and (
                    listener.incident or (boundary.cancel_activity and not parallel)
                ):
                    return False  # an incident, or an interrupting condition true at once
        return True

    def arm_event_subprocesses(self, scope: r.ElementInstance, esp_ids: tuple[str, ...]) -> None:
        for esp_id in esp_ids:
            esp = self.p.nodes[esp_id]
            assert isinstance(esp, SubProcess)
            for start_id in esp.start_events:
                start = self.p.nodes[start_id]
                assert isinstance(start, Event)
                if isinstance(start.trigger, _WAITED):
                    for i, trigger in enumerate(triggers_of(start.trigger)):
                        self.arm(self.new_listener(start, scope.key, "esp", i), trigger, scope.key)

    # --- firing ---------------------------------------------------------------------------------

    def trigger(
        self, ei: r.ElementInstance, variables: dict[str, Any], fired: str | None = None
    ) -> None:
        """The event ``ei`` waits for has happened."""
        role = ei.role.of if isinstance(ei.role, w.Listener) else None
        node = self.p.nodes[ei.el]
        if role is None and isinstance(node, Event) and (nxt := self._next_firing(ei, fired)) is not None:
            # an intermediate timer catch with a cycle sends a token at each firing and
            # completes with the last one
            self.schedule(ei, nxt[0], nxt[1])
            self.c.passed(node)
            self.c.tokens.leave(node, ei.parent)
            return
        if role is None:  # a plain catch: intermediate catch event or receive task
            self.release(ei)
            self.c.activities.complete_with(ei, variables)
            return
        if role == "multi":  # one definition of a catch event with several
            self.c.multiples.fired(ei, variables)
            return
        assert isinstance(node, Event)
        if role == "ebg":
            gateway = self.s.eis[ei.parent]
            scope = gateway.parent
            self.close_listeners(gateway.key)
            self.c.drop_ei(gateway.key)
            self.c.event("element-completed", gateway.el, gateway.key)
            if self.catch_outputs(node, scope, variables):
                self.c.tokens.pass_through(node, scope)
            return
        keep = not node.cancel_activity if role == "boundary" else not node.interrupting
        if isinstance(node.trigger, MultipleTrigger) and node.trigger.parallel:
            if not self.c.multiples.parallel_fired(ei, node, node.trigger, keep):
                return
        elif keep:
            self.rearm(ei, node, fired)
        else:
            self.release(ei)
        if role == "boundary":
            owner = self.s.eis[ei.parent]
            scope = owner.parent
            if not keep:
                self.c.tokens.terminate(owner)
            self.fire_catch(node, scope, variables)
        else:  # event sub-process start
            scope_ei = self.s.eis[ei.parent]
            if not keep:
                self.interrupt_scope(scope_ei)
            self.start_event_subprocess(node, scope_ei.key, variables)

    def _next_firing(self, ei: r.ElementInstance, fired: str | None) -> tuple[datetime, Cycle | None] | None:
        """When a timer cycle ``ei`` waits on fires next (None: not a cycle, or its last firing)."""
        if not isinstance(ei.wait, w.TimerWait) or ei.wait.cycle is None:
            return None
        base = datetime.fromisoformat(fired.replace("Z", "+00:00")) if fired else self.c.x.now
        return next_in_cycle(_decode_cycle(ei.wait.cycle), max(base, self.c.x.now))

    def rearm(self, ei: r.ElementInstance, node: Event, fired: str | None) -> None:
        """A non-interrupting catch stays: timer cycles schedule their next firing."""
        if not isinstance(ei.wait, w.TimerWait):
            return  # message / signal subscriptions stay open
        nxt = self._next_firing(ei, fired)
        ei.wait = None
        if nxt is None:
            self.c.drop_ei(ei.key)  # a one-off timer, or a cycle's last firing, is used up
            return
        self.schedule(ei, nxt[0], nxt[1])

    def fire_catch(self, node: Event, scope: int, variables: dict[str, Any]) -> None:
        """A boundary event happened: its outputs, then its outgoing flows, in ``scope``."""
        self.c.passed(node)
        if self.catch_outputs(node, scope, variables):
            self.c.tokens.leave(node, scope)

    def catch_outputs(self, node: Event, scope: int, variables: dict[str, Any]) -> bool:
        """The event's variables reach ``scope`` through the catch event's output mappings when it
        has some (Zeebe), as they are otherwise. False (with an incident) when a mapping fails."""
        if node.outputs:
            try:
                variables = self.c.x.mappings(node.outputs, {**context_of(self.s, scope), **variables})
            except NatsflowError as exc:
                ei = self.c.new_ei(node, scope, None)
                self.c.raise_incident(ei, "expression", f"output mapping failed: {exc}", phase="leave")
                return False
        if variables:
            propagate(self.s, scope, variables)
        return True

    def _fire_boundary(self, boundary: Event, scope: int, variables: dict[str, Any]) -> None:
        if self.c.arrived(scope):
            self.fire_catch(boundary, scope, variables)

    def close_listeners(self, owner: int) -> None:
        for child in self.c.children(owner):
            if child.listener:
                self.release(child)
                self.c.drop_ei(child.key)

    def interrupt_scope(self, scope_ei: r.ElementInstance) -> None:
        """An interrupting event sub-process starts: everything else in the scope ends, tokens
        still queued towards it included."""
        self.c.drop_queued(scope_ei.key)
        for child in self.c.children(scope_ei.key):
            if child.listener:
                self.release(child)
                self.c.drop_ei(child.key)
            else:
                self.c.tokens.terminate(child)
        self.c.joins.clear(scope_ei.key)

    def start_event_subprocess(self, start: Event, scope: int, variables: dict[str, Any]) -> None:
        esp = self.p.nodes[start.parent]
        assert isinstance(esp, SubProcess)
        esp_ei = self.c.new_ei(esp, scope, None, vars_={})
        self.c.event("element-activated", esp.id, esp_ei.key)
        if variables:
            propagate(self.s, esp_ei.key, variables)
        self.arm_event_subprocesses(esp_ei, esp.event_subprocesses)
        self.c.tokens.pass_through(start, esp_ei.key)

    # --- events entered by a token ---------------------------------------------------------------

    def enter_event(self, node: Event, scope: int, flow: str | None) -> None:
        c = self.c
        trig = node.trigger
        if node.task is not None:  # message throw / end event implemented by a worker
            c.activities.enter_activity(node, scope, flow)
        elif node.kind == "startEvent":
            c.tokens.pass_through(node, scope)  # already triggered: a plain start, or one a launch named
        elif node.kind == "intermediateCatchEvent":
            self.enter_catch(node, scope, flow)
        elif isinstance(trig, LinkTrigger):
            self.throw_link(node, scope)
        elif isinstance(trig, SignalTrigger) and not self.broadcast_signal(node, scope):
            return
        elif isinstance(trig, MultipleTrigger) and not c.multiples.throw(node, trig, scope):
            return
        elif isinstance(trig, MessageTrigger) and not self.send_message_flows(node, scope):
            return
        elif isinstance(trig, EscalationTrigger):
            self.enter_escalation(node, trig, scope)
        elif isinstance(trig, CompensateTrigger):
            c.compensation.throw(node, scope, flow)
        elif isinstance(trig, CancelTrigger):
            c.compensation.cancel(node, scope)
        elif node.kind == "endEvent":
            self.enter_end(node, scope)
        else:  # none intermediate throw (signal and message throws that were sent too)
            c.tokens.pass_through(node, scope)

    def enter_end(self, node: Event, scope: int) -> None:
        c = self.c
        trig = node.trigger
        c.passed(node)
        if isinstance(trig, ErrorTrigger):
            c.tokens.throw_error(self.s.eis[scope], trig.code or "", "", {}, from_end=node)
        elif isinstance(trig, TerminateTrigger):
            c.tokens.terminate_children(scope)
            c.joins.clear(scope)
            c.tokens.complete_scope(scope)
        else:
            c.tokens.token_ended(scope)

    def enter_escalation(self, node: Event, trig: EscalationTrigger, scope: int) -> None:
        c = self.c
        key = c.new_key()
        c.event("element-activated", node.id, key)
        if node.kind == "endEvent":  # an end event is done whatever catches the escalation
            c.event("element-completed", node.id, key)
            if not self.throw_escalation(None, scope, trig.code or ""):
                c.tokens.token_ended(scope)
            return
        if self.throw_escalation(None, scope, trig.code or ""):
            c.event("element-terminated", node.id, key)  # its own scope was interrupted
            return
        c.event("element-completed", node.id, key)
        c.tokens.leave(node, scope)


    def enter_catch(self, node: Event, scope: int, flow: str | None) -> None:
        """Intermediate catch event (timer, message, signal; link catches just pass; one whose
        message started the instance, after an instantiating event-based gateway, too)."""
        if isinstance(node.trigger, LinkTrigger) or node.trigger is None or flow == instantiate_flow(node.id):
            self.c.tokens.pass_through(node, scope)
            return
        if isinstance(node.trigger, MultipleTrigger):
            self.c.multiples.enter_catch(node, node.trigger, scope, flow)
            return
        ei = self.c.new_ei(node, scope, flow)
        self.c.event("element-activated", node.id, ei.key)
        self.arm(ei, node.trigger, scope)

    def enter_event_gateway(self, node: Gateway, scope: int, flow: str | None) -> None:
        gateway = self.c.new_ei(node, scope, flow)
        self.c.event("element-activated", node.id, gateway.key)
        for fid in node.outgoing:
            target = self.p.nodes[self.p.flows[fid].target]
            trigger = target.trigger if isinstance(target, Event) else getattr(target, "message", None)
            listener = self.new_listener(target, gateway.key, "ebg")
            if not self.arm(listener, trigger, scope):
                return

    # --- throwing -------------------------------------------------------------------------------

    def throw_link(self, node: Event, scope: int) -> None:
        assert isinstance(node.trigger, LinkTrigger)
        scope_node = self.p.scope(self.s.eis[scope].el) if scope != ROOT else self.p
        for child in scope_node.children:
            target = self.p.nodes[child]
            if (
                target.kind == "intermediateCatchEvent"
                and isinstance(target, Event)
                and isinstance(target.trigger, LinkTrigger)
                and target.trigger.name == node.trigger.name
            ):
                self.c.passed(node)
                self.c.tokens.enqueue_enter(target.id, scope, None)
                return
        raise NatsflowError(f"no link catch event named '{node.trigger.name}' in the scope of '{node.id}'")

    def broadcast_signal(self, node: Event, scope: int) -> bool:
        assert isinstance(node.trigger, SignalTrigger)
        try:
            name = self.c.x.value(node.trigger.name, context_of(self.s, scope))
        except NatsflowError as exc:
            self.c.raise_incident(self.c.new_ei(node, scope, None), "expression", f"signal name failed: {exc}")
            return False
        self.deliver_own_signal(str(name))
        self.c.effects.append(
            r.SignalBroadcast(id=self.c.effect_id(), tenant=self.s.tenant, name=str(name), origin=self.s.id)
        )
        return True

    def deliver_own_signal(self, name: str) -> None:
        """A signal thrown by this instance reaches this instance's own catches in this step:
        those waiting when it is thrown at once (before the thrower's token moves on), those
        armed later in the step once its tokens came to rest (:meth:`deliver_late_signals`).
        The broadcast skips this instance, so whether its subscriptions were stored first does
        not matter."""
        reached = self.c.signals.setdefault(name, set())
        wanted = w.SignalWait(name=name)
        for ei in sorted(self.s.eis.values(), key=lambda e: e.key):
            if ei.wait == wanted and ei.key not in reached:
                reached.add(ei.key)
                self.c.enqueue(ei.parent, partial(self._signal_arrives, ei.key, ei.parent, wanted))

    def deliver_late_signals(self) -> bool:
        """Signals thrown in this step reach the catches armed after the throw; True when one did."""
        before = sum(len(keys) for keys in self.c.signals.values())
        for name in list(self.c.signals):
            self.deliver_own_signal(name)
        return sum(len(keys) for keys in self.c.signals.values()) > before

    def _signal_arrives(self, key: int, parent: int, wanted: w.SignalWait) -> None:
        if not self.c.arrived(parent):
            return
        ei = self.s.eis.get(key)
        if ei is not None and ei.wait == wanted:
            self.c.event("signal-received", ei.el, ei.key, name=wanted.name)
            self.trigger(ei, {})

    def send_message_flows(self, node: Event | Activity, scope: int) -> bool:
        """A throwing message event without a worker: send the message each of its message
        flows leads to; the payload is what the event's input mappings produce."""
        ctx = context_of(self.s, scope)
        try:
            payload = self.c.x.mappings(node.inputs, ctx) if node.inputs else {}
            for target in self.p.message_flows.get(node.id, ()):
                name = self.c.x.value(target.name, ctx)
                key = self.c.x.loose_text(target.correlation_key, ctx)
                self.c.effects.append(
                    r.MessagePublish(
                        id=self.c.effect_id(), tenant=self.s.tenant, name=str(name), key=key, variables=payload
                    )
                )
        except NatsflowError as exc:
            self.c.raise_incident(
                self.c.new_ei(node, scope, None), "expression", f"sending the message failed: {exc}"
            )
            return False
        return True

    def throw_escalation(self, source: r.ElementInstance | None, scope: int, code: str) -> bool:
        """Find a catcher (boundary or event sub-process) from ``scope`` outwards.

        Returns True when an interrupting catcher took over (the thrower's token is gone).
        An escalation nobody catches is no incident (BPMN / Zeebe semantics).
        """
        self.c.event(
            "escalation-thrown", source.el if source else None, source.key if source else None, code=code
        )
        current: int | None = scope
        while current:
            scope_ei = self.s.eis.get(current)
            if scope_ei is None:
                return False
            # event sub-processes of this scope
            esp_start = self.find_esp_start(scope_ei, EscalationTrigger, code)
            if esp_start is not None:
                if esp_start.interrupting:
                    self.interrupt_scope(scope_ei)
                self.start_event_subprocess(esp_start, scope_ei.key, {})
                return esp_start.interrupting
            # boundaries of the scope's activity (a sub-process), seen from inside
            if current != ROOT:
                node = self.p.nodes[scope_ei.el]
                boundary = self.find_boundary(node, EscalationTrigger, code)
                if boundary is not None:
                    if boundary.cancel_activity:
                        self.c.tokens.terminate(scope_ei)
                    self.fire_catch(boundary, scope_ei.parent, {})
                    return boundary.cancel_activity
            current = scope_ei.parent
        parent = self.s.parent
        if parent is not None:  # uncaught in a called instance: its call activity may catch it
            self.c.effects.append(
                r.ChildFinished(
                    id=f"{self.s.id}.esc.{self.c.effect_id()}", tenant=parent.tenant, instance=parent.instance,
                    ei=parent.ei, child=self.s.id, state="escalation", error_code=code,
                )
            )  # fmt: skip
        return False

    def escalation_from_child(self, call: r.ElementInstance, code: str) -> None:
        """An escalation a called instance did not catch reaches its call activity: a boundary
        of the call activity catches it (interrupting or not), else the scopes around it."""
        boundary = self.find_boundary(self.p.nodes[call.el], EscalationTrigger, code)
        if boundary is None:
            self.throw_escalation(call, call.parent, code)
            return
        if boundary.cancel_activity:
            self.c.tokens.terminate(call)
        self.fire_catch(boundary, call.parent, {})

    def find_boundary(self, node: FlowNode, kind: type, code: str) -> Event | None:
        catch_all = None
        for bid in getattr(node, "boundaries", ()):
            b = self.p.nodes[bid]
            if isinstance(b, Event) and isinstance(b.trigger, kind):
                trig_code = getattr(b.trigger, "code", None)
                if trig_code is None:
                    catch_all = catch_all or b
                elif trig_code == code:
                    return b
        return catch_all

    def find_esp_start(self, scope_ei: r.ElementInstance, kind: type, code: str) -> Event | None:
        scope_node = self.p if scope_ei.key == ROOT else self.p.nodes.get(scope_ei.el)
        esp_ids: tuple[str, ...] = getattr(scope_node, "event_subprocesses", ())
        catch_all = None
        for esp_id in esp_ids:
            esp = self.p.nodes[esp_id]
            assert isinstance(esp, SubProcess)
            for start_id in esp.start_events:
                start = self.p.nodes[start_id]
                if isinstance(start, Event) and isinstance(start.trigger, kind):
                    trig_code = getattr(start.trigger, "code", None)
                    if trig_code is None:
                        catch_all = catch_all or start
                    elif trig_code == code:
                        return start
        return catch_all

    def catch_error(self, current: r.ElementInstance, code: str, variables: dict[str, Any]) -> bool:
        """Error catchers at one level: the boundaries of ``current`` and, when it is a scope,
        its error event sub-processes. True when caught."""
        node = self.p.nodes.get(current.el) if current.key != ROOT else None
        esp_start = self.find_esp_start(current, ErrorTrigger, code) if _is_scope(node, current) else None
        if esp_start is not None:
            self.interrupt_scope(current)
            if variables:
                propagate(self.s, current.key, variables)
            self.start_event_subprocess(esp_start, current.key, {})
            return True
        if node is None:
            return False
        boundary = self.find_boundary(node, ErrorTrigger, code)
        if boundary is None:
            return False
        scope = current.parent
        self.c.tokens.terminate(current)
        self.c.enqueue(scope, partial(self._fire_boundary, boundary, scope, variables))
        return True


def _encode_cycle(cycle: Cycle) -> w.TimerCycle:
    return msgspec.convert(cycle.encode(), w.TimerCycle)


def _decode_cycle(cycle: w.TimerCycle) -> Cycle:
    return Cycle.decode(msgspec.structs.asdict(cycle))


def _is_scope(node: FlowNode | None, ei: r.ElementInstance) -> bool:
    return ei.key == ROOT or isinstance(node, SubProcess)
