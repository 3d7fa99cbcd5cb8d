"""Global BPMN elements (message, error, signal, escalation) and event definitions -> triggers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from natsflow_engine.bpmn.common import (
    Element,
    bpmn_child,
    bpmn_children,
    describe,
    is_bpmn,
    local_name,
    parse_bool,
    text_of,
)
from natsflow_engine.bpmn.expr import ExprCompiler, StaticExpr
from natsflow_engine.bpmn.model import (
    CancelTrigger,
    CompensateTrigger,
    ComplexBehavior,
    ConditionalTrigger,
    ErrorTrigger,
    EscalationTrigger,
    EventTrigger,
    LinkTrigger,
    MessageTrigger,
    MultipleTrigger,
    SignalTrigger,
    TerminateTrigger,
    TimerTrigger,
)
from natsflow_engine.bpmn.timers import check_timer
from natsflow_engine.bpmn.zeebe import correlation_key

__all__ = [
    "ALLOWED", "Globals", "ParsedTrigger", "Role", "message_trigger", "mi_behavior", "parse_trigger", "trigger_name",
]

# Where an event sits decides which event definitions it may have.
Role = Literal["start", "start_esp", "start_sub", "end", "catch", "throw", "boundary"]

_TRIGGER_NAMES: dict[type, str] = {
    TimerTrigger: "timer",
    MessageTrigger: "message",
    ErrorTrigger: "error",
    SignalTrigger: "signal",
    EscalationTrigger: "escalation",
    LinkTrigger: "link",
    CompensateTrigger: "compensation",
    TerminateTrigger: "terminate",
    ConditionalTrigger: "conditional",
    MultipleTrigger: "multiple",
    CancelTrigger: "cancel",
}

ALLOWED: dict[Role, frozenset[str]] = {
    "start": frozenset({"none", "timer", "message", "signal", "conditional"}),
    "start_esp": frozenset({"timer", "message", "signal", "error", "escalation", "conditional", "compensation"}),
    "start_sub": frozenset({"none"}),
    "end": frozenset({"none", "terminate", "error", "escalation", "message", "signal", "compensation", "cancel"}),
    "catch": frozenset({"timer", "message", "signal", "link", "conditional"}),
    "throw": frozenset({"none", "message", "signal", "escalation", "link", "compensation"}),
    "boundary": frozenset(
        {"timer", "message", "signal", "error", "escalation", "compensation", "conditional", "cancel"}
    ),
}

_ROLE_WORDS: dict[Role, str] = {
    "start": "a process start event",
    "start_esp": "the start event of an event sub-process",
    "start_sub": "the start event of an embedded sub-process",
    "end": "an end event",
    "catch": "an intermediate catch event",
    "throw": "an intermediate throw event",
    "boundary": "a boundary event",
}

_UNSUPPORTED_DEFINITIONS: dict[str, str] = {}


def trigger_name(trigger: EventTrigger | None) -> str:
    return "none" if trigger is None else _TRIGGER_NAMES[type(trigger)]


@dataclass
class Globals:
    """The document-level elements that event definitions and tasks refer to by id."""

    messages: dict[str, Element] = field(default_factory=dict)
    errors: dict[str, Element] = field(default_factory=dict)
    signals: dict[str, Element] = field(default_factory=dict)
    escalations: dict[str, Element] = field(default_factory=dict)
    event_definitions: dict[str, Element] = field(default_factory=dict)
    # targets of message flows: a message flow names the catch, so it needs no correlation key
    message_flow_targets: set[str] = field(default_factory=set)
    message_flow_sources: set[str] = field(default_factory=set)

    @classmethod
    def collect(cls, root: Element) -> Globals:
        found = cls()
        for collab in bpmn_children(root, "collaboration"):
            for mf in bpmn_children(collab, "messageFlow"):
                found.message_flow_targets.add((mf.get("targetRef") or "").strip())
                found.message_flow_sources.add((mf.get("sourceRef") or "").strip())
        tables = {
            "message": found.messages,
            "error": found.errors,
            "signal": found.signals,
            "escalation": found.escalations,
        }
        for child in bpmn_children(root):
            el_id = child.get("id")
            if not el_id:
                continue
            name = local_name(child)
            if name in tables:
                tables[name].setdefault(el_id, child)
            elif name.endswith("EventDefinition"):
                found.event_definitions.setdefault(el_id, child)
        return found


def resolve(table: dict[str, Element], ref: str | None) -> Element | None:
    """Look ``ref`` up; tolerate QName-style references (``tns:Message_1``)."""
    if not ref:
        return None
    ref = ref.strip()
    found = table.get(ref)
    if found is None and ":" in ref:
        found = table.get(ref.rsplit(":", 1)[1])
    return found


def message_trigger(
    ctx: ExprCompiler, g: Globals, owner: Element, holder: Element, *, needs_key: bool
) -> MessageTrigger | None:
    """The message ``holder.messageRef`` points at; ``owner`` is the flow node (for messages)."""
    what = describe(owner)
    ref = holder.get("messageRef")
    if not ref or not ref.strip():
        ctx.issues.add(holder, f"{what} has no message (messageRef)", owner.get("id"))
        return None
    message = resolve(g.messages, ref)
    if message is None:
        ctx.issues.add(holder, f"{what} refers to message '{ref}', which is not defined", owner.get("id"))
        return None
    raw_name = message.get("name")
    if raw_name is None or not raw_name.strip():
        ctx.issues.add(holder, f"{what} refers to message '{ref}', which has no name", owner.get("id"))
        return None
    name = ctx.value(message, raw_name, f"the name of message '{ref}'")
    key = correlation_key(ctx, message)
    if needs_key and key is None and owner.get("id") not in g.message_flow_targets:
        ctx.issues.add(
            holder,
            f"{what} waits for message '{raw_name}', which has no correlation key "
            "(zeebe:subscription correlationKey)",
            owner.get("id"),
        )
    if name is None:
        return None
    return MessageTrigger(name=name, correlation_key=key)


def _definitions(g: Globals, el: Element) -> list[Element]:
    found = [c for c in bpmn_children(el) if local_name(c).endswith("EventDefinition")]
    for ref_el in bpmn_children(el, "eventDefinitionRef"):
        target = resolve(g.event_definitions, text_of(ref_el))
        found.append(target if target is not None else ref_el)
    return found


@dataclass(frozen=True, slots=True)
class ParsedTrigger:
    """``kind`` is the event definition's name ('none', 'timer', 'message' ...); ``ok`` is False
    after an issue was reported. A throwing message event may have kind 'message' and no
    trigger (it runs as a job and names no message)."""

    trigger: EventTrigger | None
    kind: str
    ok: bool


def _kind_of(definition: Element) -> str:
    name = str(local_name(definition))
    if name == "compensateEventDefinition":
        return "compensation"
    return name.removesuffix("EventDefinition") if name.endswith("EventDefinition") else name


def parse_trigger(ctx: ExprCompiler, g: Globals, el: Element, role: Role) -> ParsedTrigger:
    """The trigger of event ``el`` sitting in ``role``."""
    what = describe(el)
    definitions = _definitions(g, el)
    if len(definitions) > 1:
        return _multiple(ctx, g, el, role, definitions)
    if not definitions:
        kind = "none"
        trigger: EventTrigger | None = None
        ok = True
    else:
        definition = definitions[0]
        if is_bpmn(definition, "eventDefinitionRef"):
            ctx.issues.add(
                definition,
                f"{what} refers to event definition '{text_of(definition)}', which is not defined",
                el.get("id"),
            )
            return ParsedTrigger(None, "none", False)
        kind = _kind_of(definition)
        ok, trigger = _trigger(ctx, g, el, definition, role)
        if not ok:
            return ParsedTrigger(None, kind, False)
    if kind not in ALLOWED[role]:
        article = "an" if kind[:1] in ("a", "e", "i", "o", "u") else "a"
        label = "no event definition" if kind == "none" else f"{article} {kind} event definition"
        ctx.issues.add(el, f"{what} has {label}, which is not allowed on {_ROLE_WORDS[role]}")
        return ParsedTrigger(None, kind, False)
    return ParsedTrigger(trigger, kind, ok)


_WAITED = (TimerTrigger, MessageTrigger, SignalTrigger, ConditionalTrigger)
_MULTIPLE_ROLES: dict[Role, tuple[type, ...]] = {
    "catch": _WAITED,
    "boundary": _WAITED,
    "start_esp": _WAITED,
    "start": _WAITED,
    "throw": (SignalTrigger, MessageTrigger),
    "end": (SignalTrigger, MessageTrigger),
}


def _multiple(ctx: ExprCompiler, g: Globals, el: Element, role: Role, definitions: list[Element]) -> ParsedTrigger:
    """An event with several event definitions: intermediate catches, boundary events, process
    and event sub-process start events (timer, message, signal, conditional), throws and end
    events (signal, message). A process start event is not parallel multiple (nothing could hold
    the events that came before the last one: there is no instance yet) and has one timer at
    most (its schedule is keyed by the start event)."""
    what = describe(el)
    allowed = _MULTIPLE_ROLES.get(role)
    if allowed is None:
        ctx.issues.add(el, f"{what} has {len(definitions)} event definitions; on {_ROLE_WORDS[role]} "
                           "natsflow supports one")
        return ParsedTrigger(None, "multiple", False)
    triggers = []
    for definition in definitions:
        if is_bpmn(definition, "eventDefinitionRef"):
            ctx.issues.add(definition, f"{what} refers to event definition '{text_of(definition)}', "
                                       "which is not defined", el.get("id"))
            return ParsedTrigger(None, "multiple", False)
        ok, trigger = _trigger(ctx, g, el, definition, role)
        if not ok:
            return ParsedTrigger(None, "multiple", False)
        if not isinstance(trigger, allowed) or not isinstance(
            trigger, TimerTrigger | MessageTrigger | SignalTrigger | ConditionalTrigger
        ):
            ctx.issues.add(el, f"{what} has several event definitions, one of them {_kind_of(definition)}; "
                               f"{_ROLE_WORDS[role]} with several supports {', '.join(_TRIGGER_NAMES[t] for t in allowed)}")
            return ParsedTrigger(None, "multiple", False)
        triggers.append(trigger)
    parallel = parse_bool(ctx.issues, el, "parallelMultiple", False, what)
    if role == "start" and parallel:
        ctx.issues.add(el, f"{what} is parallel multiple: a process start event that needs every one of its "
                           "events would have to keep the first ones before any instance exists; natsflow "
                           "refuses it (a parallel multiple event sub-process start, boundary or catch works)")
        return ParsedTrigger(None, "multiple", False)
    if role == "start" and sum(isinstance(t, TimerTrigger) for t in triggers) > 1:
        ctx.issues.add(el, f"{what} has several timer definitions; a process start event may have one")
        return ParsedTrigger(None, "multiple", False)
    return ParsedTrigger(MultipleTrigger(triggers=tuple(triggers), parallel=parallel), "multiple", True)


def _trigger(
    ctx: ExprCompiler, g: Globals, el: Element, definition: Element, role: Role
) -> tuple[bool, EventTrigger | None]:
    what = describe(el)
    el_id = el.get("id")
    name = local_name(definition)
    throwing = role in ("end", "throw")
    if name in _UNSUPPORTED_DEFINITIONS:
        ctx.issues.add(definition, f"{what}: {_UNSUPPORTED_DEFINITIONS[name]} are not supported", el_id)
        return False, None
    if name == "timerEventDefinition":
        return _timer(ctx, el, definition)
    if name == "cancelEventDefinition":
        return True, CancelTrigger()
    if name == "conditionalEventDefinition":
        cond = next(bpmn_children(definition, "condition"), None)
        if cond is None or not (cond.text or "").strip():
            ctx.issues.add(definition, f"{what} has a conditional event definition without a condition", el_id)
            return False, None
        expr = ctx.value(cond, cond.text, f"the condition of {what}", "feel")
        return expr is not None, None if expr is None else ConditionalTrigger(condition=expr)
    if name == "messageEventDefinition":
        if throwing:
            # A throwing message event runs as a job (zeebe:taskDefinition); a message is optional.
            # Without one the trigger still says "message", with a name that evaluates to None.
            if not (definition.get("messageRef") or "").strip():
                return True, MessageTrigger(name=StaticExpr("", None))
            msg = message_trigger(ctx, g, el, definition, needs_key=False)
        else:
            msg = message_trigger(
                ctx, g, el, definition, needs_key=role in ("catch", "boundary", "start_esp")
            )
        return msg is not None, msg
    if name == "errorEventDefinition":
        return _error(ctx, g, el, definition, throwing)
    if name == "escalationEventDefinition":
        ref = definition.get("escalationRef")
        code: str | None = None
        if ref:
            escalation = resolve(g.escalations, ref)
            if escalation is None:
                ctx.issues.add(
                    definition, f"{what} refers to escalation '{ref}', which is not defined", el_id
                )
                return False, None
            code = (escalation.get("escalationCode") or "").strip() or None
        if throwing and code is None:
            ctx.issues.add(definition, f"{what} throws an escalation without an escalation code", el_id)
            return False, None
        return True, EscalationTrigger(code=code)
    if name == "signalEventDefinition":
        ref = definition.get("signalRef")
        signal = resolve(g.signals, ref)
        if not ref or signal is None:
            problem = (
                f"refers to signal '{ref}', which is not defined" if ref else "has no signal (signalRef)"
            )
            ctx.issues.add(definition, f"{what} {problem}", el_id)
            return False, None
        raw = signal.get("name")
        if raw is None or not raw.strip():
            ctx.issues.add(definition, f"{what} refers to signal '{ref}', which has no name", el_id)
            return False, None
        signal_name = ctx.value(signal, raw, f"the name of signal '{ref}'")
        if signal_name is None:
            return False, None
        return True, SignalTrigger(name=signal_name)
    if name == "linkEventDefinition":
        link = (definition.get("name") or "").strip()
        if not link:
            ctx.issues.add(definition, f"{what} is a link event without a name", el_id)
            return False, None
        return True, LinkTrigger(name=link)
    if name == "compensateEventDefinition":
        return True, CompensateTrigger(
            activity_ref=(definition.get("activityRef") or "").strip() or None,
            wait_for_completion=parse_bool(ctx.issues, definition, "waitForCompletion", True, what),
        )
    if name == "terminateEventDefinition":
        return True, TerminateTrigger()
    ctx.issues.add(definition, f"{what}: '{name}' is not an event definition natsflow supports", el_id)
    return False, None


def _timer(ctx: ExprCompiler, el: Element, definition: Element) -> tuple[bool, TimerTrigger | None]:
    what = describe(el)
    found = [
        (kind, child)
        for kind, tag in (("duration", "timeDuration"), ("date", "timeDate"), ("cycle", "timeCycle"))
        if (child := bpmn_child(definition, tag)) is not None
    ]
    if len(found) != 1:
        problem = (
            "has no timeDuration, timeDate or timeCycle" if not found else "has more than one timer value"
        )
        ctx.issues.add(definition, f"timer of {what} {problem}", el.get("id"))
        return False, None
    kind, child = found[0]
    raw = text_of(child)
    if raw is None:
        ctx.issues.add(child, f"timer of {what} has an empty {local_name(child)}", el.get("id"))
        return False, None
    value = ctx.value(child, raw, f"the timer of {what}")
    if value is None:
        return False, None
    if isinstance(value, StaticExpr):
        timer_problem = check_timer(kind, raw)
        if timer_problem:
            ctx.issues.add(
                child, f"timer of {what}: {local_name(child)} '{raw}' {timer_problem}", el.get("id")
            )
            return False, None
    timer_kind: Literal["duration", "date", "cycle"] = "duration"
    if kind == "date":
        timer_kind = "date"
    elif kind == "cycle":
        timer_kind = "cycle"
    return True, TimerTrigger(kind=timer_kind, value=value)


def _error(
    ctx: ExprCompiler, g: Globals, el: Element, definition: Element, throwing: bool
) -> tuple[bool, ErrorTrigger | None]:
    what = describe(el)
    ref = definition.get("errorRef")
    code: str | None = None
    error_id: str | None = None
    if ref and ref.strip():
        error = resolve(g.errors, ref)
        if error is None:
            ctx.issues.add(definition, f"{what} refers to error '{ref}', which is not defined", el.get("id"))
            return False, None
        error_id = error.get("id")
        code = (error.get("errorCode") or "").strip() or None
    if throwing and code is None:
        ctx.issues.add(definition, f"error end event '{el.get('id')}' has no error code", el.get("id"))
        return False, None
    return True, ErrorTrigger(code=code, error_ref=error_id)


_BEHAVIORS = {"None": "noneBehaviorEventRef", "One": "oneBehaviorEventRef", "All": None, "Complex": None}


BehaviorEvent = SignalTrigger | MessageTrigger | EscalationTrigger | ErrorTrigger


def _behavior_event(
    ctx: ExprCompiler, g: Globals, el: Element, holder: Element, definition: Element
) -> BehaviorEvent | None:
    what = describe(el)
    ok, trigger = _trigger(ctx, g, el, definition, "throw")
    if not ok:
        return None
    if not isinstance(trigger, SignalTrigger | MessageTrigger | EscalationTrigger | ErrorTrigger):
        ctx.issues.add(holder, f"{what} throws a {_kind_of(definition)} event for its behavior; "
                               "a signal, message, escalation or error is needed", el.get("id"))
        return None
    return trigger


def _complex_behaviors(ctx: ExprCompiler, g: Globals, el: Element, mi_el: Element) -> tuple[ComplexBehavior, ...]:
    """The ``complexBehaviorDefinition``s: each a condition and an implicit throw event."""
    what = describe(el)
    found: list[ComplexBehavior] = []
    definitions = list(bpmn_children(mi_el, "complexBehaviorDefinition"))
    if not definitions:
        ctx.issues.add(mi_el, f"{what} has the multi-instance behavior 'Complex' without a "
                              "complexBehaviorDefinition", el.get("id"))
    for cbd in definitions:
        cond = bpmn_child(cbd, "condition")
        text = text_of(cond)
        if cond is None or not text:
            ctx.issues.add(cbd, f"{what} has a complexBehaviorDefinition without a condition", el.get("id"))
            continue
        condition = ctx.value(cond, text, f"the complex behavior condition of {what}", "feel")
        event: BehaviorEvent | None = None
        holder = bpmn_child(cbd, "event")
        if holder is not None:
            event_definitions = _definitions(g, holder)
            if len(event_definitions) != 1 or is_bpmn(event_definitions[0], "eventDefinitionRef"):
                ctx.issues.add(holder, f"{what} has a complexBehaviorDefinition whose event has "
                                       f"{len(event_definitions)} event definitions (or an undefined one); "
                                       "one is needed", el.get("id"))
                continue
            event = _behavior_event(ctx, g, el, holder, event_definitions[0])
            if event is None:
                continue
        if condition is not None:
            found.append(ComplexBehavior(condition=condition, event=event))
    return tuple(found)


def mi_behavior(
    ctx: ExprCompiler, g: Globals, el: Element
) -> tuple[str, BehaviorEvent | None, tuple[ComplexBehavior, ...]]:
    """The ``behavior`` of an activity's multi-instance characteristics and, for None and One,
    the event definition it throws (``noneBehaviorEventRef`` / ``oneBehaviorEventRef``); for
    Complex, its ``complexBehaviorDefinition``s."""
    mi_el = bpmn_child(el, "multiInstanceLoopCharacteristics")
    if mi_el is None:
        return "All", None, ()
    what = describe(el)
    behavior = (mi_el.get("behavior") or "All").strip()
    if behavior not in _BEHAVIORS:
        ctx.issues.add(mi_el, f"{what} has the multi-instance behavior '{behavior}': "
                              "it is not None, One, All or Complex", el.get("id"))
        return "All", None, ()
    if behavior == "Complex":
        return behavior, None, _complex_behaviors(ctx, g, el, mi_el)
    attr = _BEHAVIORS[behavior]
    ref = mi_el.get(attr) if attr else None
    if attr is None or not ref:
        return behavior, None, ()
    definition = resolve(g.event_definitions, ref)
    if definition is None:
        ctx.issues.add(mi_el, f"{what} refers to event definition '{ref}' ({attr}), which is not defined", el.get("id"))
        return behavior, None, ()
    return behavior, _behavior_event(ctx, g, el, mi_el, definition), ()
