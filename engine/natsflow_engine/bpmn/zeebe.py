"""Readers for the Zeebe extension elements (``zeebe:*`` inside ``extensionElements``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from natsflow_engine.bpmn.common import (
    Element,
    bpmn_child,
    describe,
    parse_bool,
    text_of,
    zeebe_ext,
    zeebe_exts,
)
from natsflow_engine.bpmn.expr import ExprCompiler, StaticExpr
from natsflow_engine.bpmn.model import (
    AdHoc,
    Expr,
    IoMapping,
    MultiInstance,
    StandardLoop,
    TaskDefinition,
    UserTaskDefinition,
)

__all__ = [
    "CalledElement",
    "Script",
    "called_element",
    "headers",
    "io_mappings",
    "loop_characteristics",
    "script",
    "task_definition",
    "user_task",
]

_PATH_PART = re.compile(r"[^\s.=][^.]*")


def _single(ctx: ExprCompiler, el: Element, name: str) -> Element | None:
    found = zeebe_exts(el, name)
    if len(found) > 1:
        ctx.issues.add(found[1], f"{describe(el)} has more than one zeebe:{name}", el.get("id"))
    return found[0] if found else None


def task_definition(ctx: ExprCompiler, el: Element) -> TaskDefinition | None:
    """``zeebe:taskDefinition type retries``; None when absent. A missing type is an issue."""
    td = _single(ctx, el, "taskDefinition")
    if td is None:
        return None
    what = describe(el)
    raw_type = td.get("type")
    if raw_type is None or not raw_type.strip():
        ctx.issues.add(td, f"{what} has a zeebe:taskDefinition without a job type", el.get("id"))
        return None
    job_type = ctx.value(td, raw_type, f"the job type of {what}")
    retries = ctx.value(td, td.get("retries", "3"), f"the retries of {what}", "int")
    if isinstance(retries, StaticExpr) and retries.value < 0:
        ctx.issues.add(td, f"{what} has negative retries ({retries.value})", el.get("id"))
    if job_type is None or retries is None:
        return None
    return TaskDefinition(type=job_type, retries=retries)


def _target_ok(target: str) -> bool:
    return all(_PATH_PART.fullmatch(part.strip()) for part in target.split("."))


def io_mappings(ctx: ExprCompiler, el: Element) -> tuple[tuple[IoMapping, ...], tuple[IoMapping, ...]]:
    """``zeebe:ioMapping``: (inputs, outputs)."""
    what = describe(el)
    el_id = el.get("id")
    result: dict[str, list[IoMapping]] = {"input": [], "output": []}
    for mapping in zeebe_exts(el, "ioMapping"):
        for child in mapping:
            tag = child.tag
            if not isinstance(tag, str) or not tag.endswith(("}input", "}output")):
                continue
            direction = "input" if tag.endswith("}input") else "output"
            target = (child.get("target") or "").strip()
            if not target:
                ctx.issues.add(child, f"{what} has an {direction} mapping without a target", el_id)
                continue
            if not _target_ok(target):
                ctx.issues.add(
                    child,
                    f"{what} has an {direction} mapping whose target '{target}' is not a variable name",
                    el_id,
                )
                continue
            raw = child.get("source")
            source: Expr | None
            if raw is None or not raw.strip():
                source = StaticExpr("", None)  # Zeebe: an input without a source creates a null variable
            else:
                source = ctx.value(child, raw, f"the {direction} mapping '{target}' of {what}")
            if source is not None:
                result[direction].append(IoMapping(source=source, target=target))
    return tuple(result["input"]), tuple(result["output"])


def headers(ctx: ExprCompiler, el: Element) -> Mapping[str, str]:
    """``zeebe:taskHeaders``: header key/value pairs (static strings)."""
    found: dict[str, str] = {}
    for block in zeebe_exts(el, "taskHeaders"):
        for header in block:
            if not isinstance(header.tag, str) or not header.tag.endswith("}header"):
                continue
            key = header.get("key")
            if not key:
                ctx.issues.add(header, f"{describe(el)} has a task header without a key", el.get("id"))
                continue
            found[key] = header.get("value", "")
    return found


def user_task(ctx: ExprCompiler, el: Element) -> UserTaskDefinition:
    what = describe(el)
    assignment = zeebe_ext(el, "assignmentDefinition")
    schedule = zeebe_ext(el, "taskSchedule")
    form = zeebe_ext(el, "formDefinition")
    assignee = groups = users = due = follow_up = None
    if assignment is not None:
        assignee = ctx.value(assignment, assignment.get("assignee"), f"the assignee of {what}")
        groups = ctx.value(
            assignment, assignment.get("candidateGroups"), f"the candidate groups of {what}", "list"
        )
        users = ctx.value(
            assignment, assignment.get("candidateUsers"), f"the candidate users of {what}", "list"
        )
    if schedule is not None:
        due = _date(ctx, schedule, "dueDate", f"the due date of {what}", el.get("id"))
        follow_up = _date(ctx, schedule, "followUpDate", f"the follow-up date of {what}", el.get("id"))
    form_key = form_id = external = None
    if form is not None:
        form_key = form.get("formKey") or None
        form_id = form.get("formId") or None
        external = ctx.value(form, form.get("externalReference"), f"the external form of {what}")
    return UserTaskDefinition(
        assignee=assignee,
        candidate_groups=groups,
        candidate_users=users,
        due_date=due,
        follow_up_date=follow_up,
        form_key=form_key,
        form_id=form_id,
        external_form_reference=external,
        zeebe_user_task=zeebe_ext(el, "userTask") is not None,
    )


def _date(ctx: ExprCompiler, el: Element, attr: str, what: str, el_id: str | None) -> Expr | None:
    raw = el.get(attr)
    if raw is None or not raw.strip():
        return None
    expr = ctx.value(el, raw, what)
    if isinstance(expr, StaticExpr):
        from natsflow_engine.bpmn.timers import check_date

        problem = check_date(raw.strip())
        if problem:
            ctx.issues.add(el, f"{what} '{raw}' {problem}", el_id)
            return None
    return expr


@dataclass(frozen=True, slots=True)
class CalledElement:
    process_id: Expr | None
    propagate_child: bool
    propagate_parent: bool
    binding_type: str
    version_tag: str | None


def called_element(ctx: ExprCompiler, el: Element) -> CalledElement:
    what = describe(el)
    ce = _single(ctx, el, "calledElement")
    if ce is None:
        # Other tools write the standard attribute: <callActivity calledElement="child">.
        raw = el.get("calledElement")
        pid = ctx.value(el, raw, f"the called process of {what}") if raw and raw.strip() else None
        return CalledElement(pid, True, True, "latest", None)
    raw = ce.get("processId")
    pid = ctx.value(ce, raw, f"the called process of {what}") if raw and raw.strip() else None
    binding = ce.get("bindingType", "latest")
    if binding not in ("latest", "deployment", "versionTag"):
        ctx.issues.add(ce, f"{what} has an unknown bindingType '{binding}'", el.get("id"))
    version_tag = ce.get("versionTag") or None
    if binding == "versionTag" and version_tag is None:
        ctx.issues.add(ce, f"{what} binds by versionTag but has no versionTag", el.get("id"))
    return CalledElement(
        process_id=pid,
        propagate_child=parse_bool(ctx.issues, ce, "propagateAllChildVariables", True, what),
        propagate_parent=parse_bool(ctx.issues, ce, "propagateAllParentVariables", True, what),
        binding_type=binding,
        version_tag=version_tag,
    )


@dataclass(frozen=True, slots=True)
class Script:
    expression: Expr | None
    result_variable: str | None
    present: bool


def script(ctx: ExprCompiler, el: Element) -> Script:
    """``zeebe:script expression resultVariable`` (or the standard ``<script>`` child as FEEL)."""
    what = describe(el)
    zs = _single(ctx, el, "script")
    if zs is not None:
        raw = zs.get("expression")
        if raw is None or not raw.strip():
            ctx.issues.add(zs, f"{what} has a zeebe:script without an expression", el.get("id"))
            return Script(None, None, True)
        expr = ctx.value(zs, raw, f"the script of {what}", "feel")
        result = (zs.get("resultVariable") or "").strip() or None
        if result is None:
            ctx.issues.add(zs, f"{what} has a zeebe:script without a resultVariable", el.get("id"))
        return Script(expr, result, True)
    return Script(None, None, False)


def loop_characteristics(ctx: ExprCompiler, el: Element) -> tuple[MultiInstance | None, StandardLoop | None]:
    what = describe(el)
    el_id = el.get("id")
    mi_el = bpmn_child(el, "multiInstanceLoopCharacteristics")
    std_el = bpmn_child(el, "standardLoopCharacteristics")
    if mi_el is not None and std_el is not None:
        ctx.issues.add(el, f"{what} has both multi-instance and standard loop characteristics")
    mi = _multi_instance(ctx, mi_el, what, el_id) if mi_el is not None else None
    loop = None
    if std_el is not None:
        cond_text = text_of(bpmn_child(std_el, "loopCondition"))
        cond = ctx.value(std_el, cond_text, f"the loop condition of {what}", "feel") if cond_text else None
        maximum: int | None = None
        raw_max = std_el.get("loopMaximum")
        if raw_max is not None and raw_max.strip():
            try:
                maximum = int(raw_max.strip())
            except ValueError:
                ctx.issues.add(
                    std_el, f"{what} has loopMaximum '{raw_max}', which is not a whole number", el_id
                )
        if cond is None and maximum is None:
            ctx.issues.add(
                std_el, f"{what} has a standard loop with neither loopCondition nor loopMaximum", el_id
            )
        test_before = parse_bool(ctx.issues, std_el, "testBefore", False, what)
        loop = StandardLoop(condition=cond, test_before=test_before, maximum=maximum)
    return mi, loop


def _multi_instance(ctx: ExprCompiler, mi_el: Element, what: str, el_id: str | None) -> MultiInstance:
    sequential = parse_bool(ctx.issues, mi_el, "isSequential", False, what)
    zl = _single(ctx, mi_el, "loopCharacteristics")
    input_collection = output_element = None
    input_element = output_collection = None
    if zl is not None:
        raw = zl.get("inputCollection")
        if raw and raw.strip():
            input_collection = ctx.value(zl, raw, f"the input collection of {what}", "feel")
        input_element = (zl.get("inputElement") or "").strip() or None
        output_collection = (zl.get("outputCollection") or "").strip() or None
        raw = zl.get("outputElement")
        if raw and raw.strip():
            output_element = ctx.value(zl, raw, f"the output element of {what}", "feel")
        if (output_collection is None) != (output_element is None):
            ctx.issues.add(zl, f"{what} must set both outputCollection and outputElement, or neither", el_id)
    card_text = text_of(bpmn_child(mi_el, "loopCardinality"))
    cardinality = (
        ctx.value(mi_el, card_text, f"the loop cardinality of {what}", "int_or_feel") if card_text else None
    )
    cond_text = text_of(bpmn_child(mi_el, "completionCondition"))
    completion = (
        ctx.value(mi_el, cond_text, f"the completion condition of {what}", "feel") if cond_text else None
    )
    if input_collection is None and cardinality is None:
        ctx.issues.add(
            mi_el, f"{what} is multi-instance but has neither an inputCollection nor a loopCardinality", el_id
        )
    return MultiInstance(
        sequential=sequential,
        input_collection=input_collection,
        input_element=input_element,
        output_collection=output_collection,
        output_element=output_element,
        completion_condition=completion,
        cardinality=cardinality,
    )


def version_tag(process: Element) -> str | None:
    vt = zeebe_ext(process, "versionTag")
    value = vt.get("value") if vt is not None else None
    return value.strip() or None if value else None


def correlation_key(ctx: ExprCompiler, message: Element) -> Expr | None:
    sub = zeebe_ext(message, "subscription")
    if sub is None:
        return None
    raw = sub.get("correlationKey")
    if raw is None or not raw.strip():
        return None
    return ctx.value(sub, raw, f"the correlation key of message '{message.get('id')}'")


def ad_hoc_of(ctx: ExprCompiler, el: Element, what: str) -> AdHoc:
    """An ``adHocSubProcess``: BPMN's ``ordering``, ``completionCondition`` and
    ``cancelRemainingInstances``, Camunda 8's ``zeebe:adHoc activeElementsCollection``."""
    ordering = (el.get("ordering") or "Parallel").strip()
    if ordering not in ("Parallel", "Sequential"):
        ctx.issues.add(el, f"{what} has ordering='{ordering}', which is neither 'Parallel' nor 'Sequential'")
    cond_text = text_of(bpmn_child(el, "completionCondition"))
    condition = ctx.value(el, cond_text, f"the completion condition of {what}", "feel") if cond_text else None
    zeebe_el = zeebe_ext(el, "adHoc")
    raw = zeebe_el.get("activeElementsCollection") if zeebe_el is not None else None
    active = ctx.value(el, raw, f"the active elements of {what}", "feel") if raw and raw.strip() else None
    return AdHoc(
        sequential=ordering == "Sequential",
        completion_condition=condition,
        cancel_remaining=parse_bool(ctx.issues, el, "cancelRemainingInstances", True, what),
        active_elements=active,
    )
