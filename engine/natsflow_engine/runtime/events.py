# mypy: disable-error-code="misc"
# (mixins of the interpreter step annotate self as _Step, the class they are mixed into;
# mypy wants a self type to be a supertype of the mixin, which a mixin cannot offer)
"""Catching and throwing events: timers, messages, signals, escalations, links; boundary
events, event sub-processes and event-based gateways. A mixin of the interpreter's step.

A *listener* is an element instance that waits for an event on behalf of something else:

- ``boundary``: child of the activity it is attached to (gone when the activity ends);
- ``esp``: child of a scope, the start event of one of its event sub-processes;
- ``ebg``: child of an event-based gateway, one per event after it.

Plain catches (an intermediate catch event, a receive task) wait on their own element
instance. Listeners never keep a scope alive (see ``scope_idle``).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec

from natsflow_engine.bpmn.model import (
    ErrorTrigger,
    EscalationTrigger,
    Event,
    EventTrigger,
    FlowNode,
    LinkTrigger,
    MessageTrigger,
    SignalTrigger,
    SubProcess,
    TimerTrigger,
)
from natsflow_engine.errors import NatsflowError
from natsflow_engine.runtime import records as r
from natsflow_engine.runtime.scopes import context_of, propagate
from natsflow_engine.runtime.timers import Cycle, due_at, next_in_cycle, to_rfc3339

if TYPE_CHECKING:
    from natsflow_engine.runtime.interpreter import _Step

__all__ = ["EventsMixin", "MESSAGE_MEMORY"]

MESSAGE_MEMORY = 64
"""How many correlated message ids an instance remembers (a message correlates once per instance)."""


def _json(value: Any) -> Any:
    from natsflow_engine.feel import to_json_value

    return to_json_value(value)


class EventsMixin:
    # --- arming ---------------------------------------------------------------------------------

    def arm(self: _Step, ei: r.ElementInstance, trigger: EventTrigger | None, ctx_key: int) -> bool:
        """Start waiting for ``trigger`` on ``ei``; False (with an incident) when it cannot."""
        ctx = context_of(self.s, ctx_key)
        try:
            if isinstance(trigger, TimerTrigger):
                due, cycle = due_at(trigger.kind, trigger.value.evaluate(ctx), self.now)
                self.schedule(ei, due, cycle)
            elif isinstance(trigger, MessageTrigger):
                name = trigger.name.evaluate(ctx)
                key = trigger.correlation_key.evaluate(ctx) if trigger.correlation_key is not None else ""
                if not isinstance(name, str) or not name:
                    raise NatsflowError(f"message name expression gave {name!r}, not a string")
                if key is None or isinstance(key, bool | dict | list):
                    raise NatsflowError(f"correlation key '{_src(trigger.correlation_key)}' gave {key!r}")
                key = str(_json(key)) if not isinstance(key, str) else key
                ei.wait = r.MessageWait(name=name, key=key)
                self.effects.append(
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
            elif isinstance(trigger, SignalTrigger):
                name = trigger.name.evaluate(ctx)
                if not isinstance(name, str) or not name:
                    raise NatsflowError(f"signal name expression gave {name!r}, not a string")
                ei.wait = r.SignalWait(name=name)
                self.effects.append(
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
            self.raise_incident(
                ei, "expression", f"cannot wait for the event of '{ei.el}': {exc}", phase="arm"
            )
            return False
        return True

    def schedule(self: _Step, ei: r.ElementInstance, due: datetime, cycle: Cycle | None) -> None:
        timer = f"{self.s.id}.{ei.key}.t{self.s.step}"
        ei.wait = r.TimerWait(
            timer=timer, due=to_rfc3339(due), cycle=None if cycle is None else _encode_cycle(cycle)
        )
        self.effects.append(
            r.TimerSpec(id=timer, tenant=self.s.tenant, instance=self.s.id, ei=ei.key, due=to_rfc3339(due))
        )
        self.event("timer-scheduled", ei.el, ei.key, due=to_rfc3339(due))

    def release(self: _Step, ei: r.ElementInstance) -> None:
        """Stop waiting: drop the timer, unsubscribe the message or signal."""
        wait = ei.wait
        if isinstance(wait, r.TimerWait):
            self.effects.append(r.TimerCancel(id=wait.timer, tenant=self.s.tenant, instance=self.s.id))
        elif isinstance(wait, r.MessageWait):
            self.effects.append(
                r.Unsubscribe(
                    kind="message",
                    tenant=self.s.tenant,
                    instance=self.s.id,
                    ei=ei.key,
                    name=wait.name,
                    key=wait.key,
                )
            )
        elif isinstance(wait, r.SignalWait):
            self.effects.append(
                r.Unsubscribe(kind="signal", tenant=self.s.tenant, instance=self.s.id, ei=ei.key, name=wait.name)
            )
        else:
            return
        ei.wait = None

    def new_listener(self: _Step, node: FlowNode, parent: int, role: r.ListenerOf) -> r.ElementInstance:
        ei = r.ElementInstance(key=self.new_key(), el=node.id, parent=parent, role=r.Listener(of=role))
        self.s.eis[ei.key] = ei
        return ei

    def arm_boundaries(self: _Step, owner: r.ElementInstance, node: FlowNode) -> bool:
        for bid in getattr(node, "boundaries", ()):
            boundary = self.p.nodes[bid]
            assert isinstance(boundary, Event)
            if isinstance(boundary.trigger, TimerTrigger | MessageTrigger | SignalTrigger):
                listener = self.new_listener(boundary, owner.key, "boundary")
                if not self.arm(listener, boundary.trigger, owner.key):
                    return False
        return True

    def arm_event_subprocesses(self: _Step, scope: r.ElementInstance, esp_ids: tuple[str, ...]) -> None:
        for esp_id in esp_ids:
            esp = self.p.nodes[esp_id]
            assert isinstance(esp, SubProcess)
            for start_id in esp.start_events:
                start = self.p.nodes[start_id]
                assert isinstance(start, Event)
                if isinstance(start.trigger, TimerTrigger | MessageTrigger | SignalTrigger):
                    self.arm(self.new_listener(start, scope.key, "esp"), start.trigger, scope.key)

    # --- firing ---------------------------------------------------------------------------------

    def on_TimerFired(self: _Step, cmd: r.TimerFired) -> None:
        ei = self.s.eis.get(cmd.ei)
        if ei is None or not isinstance(ei.wait, r.TimerWait) or ei.wait.timer != cmd.timer:
            return  # the token has gone on: a timer that is no longer wanted never acts
        self.event("timer-fired", ei.el, ei.key)
        self.trigger(ei, {}, fired=cmd.due)

    def on_MessageCorrelated(self: _Step, cmd: r.MessageCorrelated) -> None:
        if cmd.message_id in self.s.messages:
            return
        wanted = r.MessageWait(name=cmd.name, key=cmd.key)
        ei = self.s.eis.get(cmd.ei)
        if ei is None or ei.wait != wanted:
            ei = next((e for e in sorted(self.s.eis.values(), key=lambda e: e.key) if e.wait == wanted), None)
        if ei is None:
            return
        self.s.messages = [*self.s.messages, cmd.message_id][-MESSAGE_MEMORY:]
        self.event("message-correlated", ei.el, ei.key, name=cmd.name, message=cmd.message_id)
        self.trigger(ei, cmd.variables)

    def on_SignalReceived(self: _Step, cmd: r.SignalReceived) -> None:
        ei = self.s.eis.get(cmd.ei)
        if ei is None or not isinstance(ei.wait, r.SignalWait) or ei.wait.name != cmd.name:
            return
        self.event("signal-received", ei.el, ei.key, name=cmd.name)
        self.trigger(ei, cmd.variables)

    def trigger(
        self: _Step, ei: r.ElementInstance, variables: dict[str, Any], fired: str | None = None
    ) -> None:
        """The event ``ei`` waits for has happened."""
        role = ei.role.of if isinstance(ei.role, r.Listener) else None
        node = self.p.nodes[ei.el]
        if role is None:  # a plain catch: intermediate catch event or receive task
            self.release(ei)
            self.complete_with(ei, variables)
            return
        assert isinstance(node, Event)
        if role == "ebg":
            gateway = self.s.eis[ei.parent]
            scope = gateway.parent
            self.close_listeners(gateway.key)
            del self.s.eis[gateway.key]
            self.event("element-completed", gateway.el, gateway.key)
            if variables:
                propagate(self.s, scope, variables)
            self.pass_event(node, scope)
            return
        keep = not node.cancel_activity if role == "boundary" else not node.interrupting
        if keep:
            self.rearm(ei, node, fired)
        else:
            self.release(ei)
        if role == "boundary":
            owner = self.s.eis[ei.parent]
            scope = owner.parent
            if not keep:
                self.terminate(owner)
            self.fire_catch(node, scope, variables)
        else:  # event sub-process start
            scope_ei = self.s.eis[ei.parent]
            if not keep:
                self.interrupt_scope(scope_ei)
            self.start_event_subprocess(node, scope_ei.key, variables)

    def rearm(self: _Step, ei: r.ElementInstance, node: Event, fired: str | None) -> None:
        """A non-interrupting catch stays: timer cycles schedule their next firing."""
        if not isinstance(ei.wait, r.TimerWait):
            return  # message / signal subscriptions stay open
        cycle_data = ei.wait.cycle
        ei.wait = None
        if cycle_data is None:
            del self.s.eis[ei.key]  # a one-off timer is used up
            return
        base = datetime.fromisoformat(fired.replace("Z", "+00:00")) if fired else self.now
        nxt = next_in_cycle(_decode_cycle(cycle_data), max(base, self.now))
        if nxt is None:
            del self.s.eis[ei.key]
            return
        self.schedule(ei, nxt[0], nxt[1])

    def fire_catch(self: _Step, node: Event, scope: int, variables: dict[str, Any]) -> None:
        """A boundary event happened: its outputs, then its outgoing flows, in ``scope``."""
        key = self.new_key()
        self.event("element-activated", node.id, key)
        if variables:
            propagate(self.s, scope, variables)
        self.event("element-completed", node.id, key)
        self.leave(node, scope)

    def pass_event(self: _Step, node: FlowNode, scope: int) -> None:
        key = self.new_key()
        self.event("element-activated", node.id, key)
        self.event("element-completed", node.id, key)
        self.leave(node, scope)

    def close_listeners(self: _Step, owner: int) -> None:
        for child in [e for e in self.s.eis.values() if e.parent == owner and e.listener]:
            self.release(child)
            del self.s.eis[child.key]

    def interrupt_scope(self: _Step, scope_ei: r.ElementInstance) -> None:
        """An interrupting event sub-process starts: everything else in the scope ends."""
        for child in [e for e in self.s.eis.values() if e.parent == scope_ei.key]:
            if child.listener:
                self.release(child)
                del self.s.eis[child.key]
            else:
                self.terminate(child)
        prefix = f"{scope_ei.key}/"
        self.s.joins = {k: v for k, v in self.s.joins.items() if not k.startswith(prefix)}

    def start_event_subprocess(self: _Step, start: Event, scope: int, variables: dict[str, Any]) -> None:
        esp = self.p.nodes[start.parent]
        assert isinstance(esp, SubProcess)
        esp_ei = self.new_ei(esp, scope, None, vars_={})
        self.event("element-activated", esp.id, esp_ei.key)
        if variables:
            propagate(self.s, esp_ei.key, variables)
        self.arm_event_subprocesses(esp_ei, esp.event_subprocesses)
        self.pass_event(start, esp_ei.key)

    # --- catching events as tokens arrive -------------------------------------------------------

    def enter_catch(self: _Step, node: Event, scope: int, flow: str | None) -> None:
        """Intermediate catch event (timer, message, signal; link catches just pass)."""
        if isinstance(node.trigger, LinkTrigger) or node.trigger is None:
            self.pass_through(node, scope)
            return
        ei = self.new_ei(node, scope, flow)
        self.event("element-activated", node.id, ei.key)
        self.arm(ei, node.trigger, scope)

    def enter_event_gateway(self: _Step, node: FlowNode, scope: int, flow: str | None) -> None:
        gateway = self.new_ei(node, scope, flow)
        self.event("element-activated", node.id, gateway.key)
        for fid in node.outgoing:
            target = self.p.nodes[self.p.flows[fid].target]
            trigger = target.trigger if isinstance(target, Event) else getattr(target, "message", None)
            listener = self.new_listener(target, gateway.key, "ebg")
            if not self.arm(listener, trigger, scope):
                return

    # --- throwing -------------------------------------------------------------------------------

    def throw_link(self: _Step, node: Event, scope: int) -> None:
        assert isinstance(node.trigger, LinkTrigger)
        scope_node = self.p.scope(self.s.eis[scope].el) if scope != 1 else self.p
        for child in scope_node.children:
            target = self.p.nodes[child]
            if (
                target.kind == "intermediateCatchEvent"
                and isinstance(target, Event)
                and isinstance(target.trigger, LinkTrigger)
                and target.trigger.name == node.trigger.name
            ):
                self.pass_through_event(node)
                self.enqueue_enter(target.id, scope, None)
                return
        raise NatsflowError(f"no link catch event named '{node.trigger.name}' in the scope of '{node.id}'")

    def pass_through_event(self: _Step, node: FlowNode) -> None:
        key = self.new_key()
        self.event("element-activated", node.id, key)
        self.event("element-completed", node.id, key)

    def broadcast_signal(self: _Step, node: Event, scope: int) -> bool:
        assert isinstance(node.trigger, SignalTrigger)
        try:
            name = node.trigger.name.evaluate(context_of(self.s, scope))
        except NatsflowError as exc:
            self.raise_incident(self.new_ei(node, scope, None), "expression", f"signal name failed: {exc}")
            return False
        self.effects.append(r.SignalBroadcast(id=self.effect_id(), tenant=self.s.tenant, name=str(name)))
        return True

    def send_message_flows(self: _Step, node: Event, scope: int) -> bool:
        """A throwing message event without a worker: send the message each of its message
        flows leads to; the payload is what the event's input mappings produce."""
        from natsflow_engine.runtime.scopes import apply_mappings

        ctx = context_of(self.s, scope)
        try:
            payload = apply_mappings(node.inputs, ctx, convert=_json) if node.inputs else {}
            for target in self.p.message_flows.get(node.id, ()):
                name = target.name.evaluate(ctx)
                key = target.correlation_key.evaluate(ctx) if target.correlation_key is not None else ""
                key = key if isinstance(key, str) else str(_json(key))
                self.effects.append(
                    r.MessagePublish(
                        id=self.effect_id(), tenant=self.s.tenant, name=str(name), key=key, variables=payload
                    )
                )
        except NatsflowError as exc:
            self.raise_incident(
                self.new_ei(node, scope, None), "expression", f"sending the message failed: {exc}"
            )
            return False
        return True

    def throw_escalation(self: _Step, source: r.ElementInstance | None, scope: int, code: str) -> bool:
        """Find a catcher (boundary or event sub-process) from ``scope`` outwards.

        Returns True when an interrupting catcher took over (the thrower's token is gone).
        An escalation nobody catches is no incident (BPMN / Zeebe semantics).
        """
        self.event(
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
            if current != 1:
                node = self.p.nodes[scope_ei.el]
                boundary = self.find_boundary(node, EscalationTrigger, code)
                if boundary is not None:
                    if boundary.cancel_activity:
                        self.terminate(scope_ei)
                    self.fire_catch(boundary, scope_ei.parent, {})
                    return boundary.cancel_activity
            current = scope_ei.parent
        return False

    def find_boundary(self: _Step, node: FlowNode, kind: type, code: str) -> Event | None:
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

    def find_esp_start(self: _Step, scope_ei: r.ElementInstance, kind: type, code: str) -> Event | None:
        scope_node = self.p if scope_ei.key == 1 else self.p.nodes.get(scope_ei.el)
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

    def catch_error(self: _Step, current: r.ElementInstance, code: str, variables: dict[str, Any]) -> bool:
        """Error catchers at one level: the boundaries of ``current`` and, when it is a scope,
        its error event sub-processes. True when caught."""
        node = self.p.nodes.get(current.el) if current.key != 1 else None
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
        self.terminate(current)
        self.pending[scope] = self.pending.get(scope, 0) + 1
        self.queue.append((self.fire_boundary, (boundary, scope, variables)))
        return True


def _encode_cycle(cycle: Cycle) -> r.TimerCycle:
    return msgspec.convert(cycle.encode(), r.TimerCycle)


def _decode_cycle(cycle: r.TimerCycle) -> Cycle:
    return Cycle.decode(msgspec.structs.asdict(cycle))


def _is_scope(node: FlowNode | None, ei: r.ElementInstance) -> bool:
    return ei.key == 1 or isinstance(node, SubProcess)


def _src(expr: Any) -> str:
    return str(getattr(expr, "source", expr))
