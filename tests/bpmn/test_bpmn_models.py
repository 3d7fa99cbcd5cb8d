"""Happy paths: realistic Camunda Modeler 8 models compile into the expected structure."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TypeVar

import pytest
from natsflow_engine.bpmn import parse_bpmn
from natsflow_engine.bpmn.expr import StaticExpr
from natsflow_engine.bpmn.model import (
    Activity,
    CallActivity,
    CompensateTrigger,
    Definitions,
    ErrorTrigger,
    EscalationTrigger,
    Event,
    Gateway,
    LinkTrigger,
    MessageTrigger,
    Process,
    ScriptTask,
    SignalTrigger,
    SubProcess,
    TerminateTrigger,
    TimerTrigger,
)

MODELS = Path(__file__).parent / "models"
T = TypeVar("T")


@pytest.fixture(scope="module")
def order() -> Process:
    return parse_bpmn(MODELS / "order_fulfilment.bpmn").processes["order-fulfilment"]


@pytest.fixture(scope="module")
def claims() -> Process:
    return parse_bpmn(MODELS / "claims.bpmn").processes["claims"]


def node(process: Process, node_id: str, cls: type[T]) -> T:
    found = process.nodes[node_id]
    assert isinstance(found, cls), f"{node_id} is {type(found).__name__}, not {cls.__name__}"
    return found


def test_definitions_metadata() -> None:
    raw = (MODELS / "order_fulfilment.bpmn").read_bytes()
    defs = parse_bpmn(raw, name="orders.bpmn")
    assert isinstance(defs, Definitions)
    assert defs.source_hash == hashlib.sha256(raw).hexdigest()
    assert defs.target_namespace == "http://bpmn.io/schema/bpmn"
    assert defs.name == "orders.bpmn"
    assert list(defs.processes) == ["order-fulfilment"]
    process = defs.processes["order-fulfilment"]
    assert process.executable and process.name == "Order fulfilment" and process.version_tag == "2024-11"
    assert process.line == 3


def test_path_name_defaults_to_file_name() -> None:
    assert parse_bpmn(MODELS / "order_fulfilment.bpmn").name == "order_fulfilment.bpmn"


def test_service_tasks_with_job_type_retries_headers_and_io(order: Process) -> None:
    reserve = node(order, "ReserveStock", Activity)
    assert reserve.kind == "serviceTask" and reserve.name == "Reserve stock"
    assert reserve.task is not None
    assert reserve.task.type.evaluate({}) == "reserve-stock"
    assert reserve.task.retries.evaluate({}) == 5
    assert dict(reserve.headers) == {"warehouse": "berlin", "priority": "high"}
    assert [(m.source.source, m.target) for m in reserve.inputs] == [("order.items", "items")]
    assert [(m.source.source, m.target) for m in reserve.outputs] == [("reservation.ok", "inStock")]
    assert reserve.incoming == ("Flow_0a1",) and reserve.outgoing == ("Flow_0a2",)
    assert reserve.parent == "order-fulfilment" and reserve.line == 15

    charge = node(order, "ChargeCard", Activity)
    assert charge.task is not None
    assert charge.task.type.source == '"payment-" + region'
    assert charge.task.type.evaluate({"region": "eu"}) == "payment-eu"
    assert charge.task.retries.evaluate({}) == 3  # Zeebe's default

    remind = node(order, "Remind", Activity)
    assert remind.kind == "sendTask" and remind.task is not None
    assert remind.task.retries.evaluate({"retries": 7}) == 7


def test_start_event_output_mapping(order: Process) -> None:
    start = node(order, "StartEvent_1", Event)
    assert start.trigger is None
    assert [(m.source.source, m.target) for m in start.outputs] == [("order.id", "orderId")]
    assert order.start_events == ("StartEvent_1",) and order.all_start_events == ("StartEvent_1",)


def test_exclusive_gateway_with_condition_and_default(order: Process) -> None:
    gw = node(order, "InStock", Gateway)
    assert gw.kind == "exclusiveGateway"
    assert gw.default == "Flow_backorder"
    assert gw.outgoing == ("Flow_yes", "Flow_backorder")
    yes = order.flows["Flow_yes"]
    assert yes.source == "InStock" and yes.target == "Split" and yes.name == "yes" and yes.line == 37
    assert yes.condition is not None and yes.condition.source == "inStock = true"
    assert yes.condition.evaluate({"inStock": True}) is True
    assert order.flows["Flow_backorder"].condition is None


def test_parallel_split_and_join(order: Process) -> None:
    split = node(order, "Split", Gateway)
    join = node(order, "Join", Gateway)
    assert split.kind == join.kind == "parallelGateway"
    assert split.outgoing == ("Flow_pay", "Flow_ship")
    assert join.incoming == ("Flow_paid", "Flow_shipped")
    assert join.outgoing == ("Flow_confirm",)


def test_user_task(order: Process) -> None:
    confirm = node(order, "Confirm", Activity)
    ut = confirm.user_task
    assert ut is not None and ut.zeebe_user_task
    assert ut.assignee is not None and ut.assignee.evaluate({"order": {"owner": "ann"}}) == "ann"
    assert ut.candidate_groups is not None and ut.candidate_groups.evaluate({}) == ["sales", "support"]
    assert ut.candidate_users is None
    assert ut.due_date is not None and ut.due_date.evaluate({}) == "2030-01-31T09:00:00Z"
    assert ut.follow_up_date is not None and ut.follow_up_date.source == "order.followUp"
    assert ut.form_id == "confirm-delivery" and ut.form_key is None
    assert confirm.task is None


def test_error_boundary_and_error_end(order: Process) -> None:
    charge = node(order, "ChargeCard", Activity)
    assert charge.boundaries == ("CardDeclined",)
    boundary = node(order, "CardDeclined", Event)
    assert boundary.kind == "boundaryEvent" and boundary.attached_to == "ChargeCard"
    assert boundary.cancel_activity
    assert boundary.trigger == ErrorTrigger(code="CARD_DECLINED", error_ref="Error_declined")
    assert boundary.outgoing == ("Flow_declined",) and boundary.incoming == ()
    end = node(order, "PaymentFailed", Event)
    assert end.trigger == ErrorTrigger(code="PAYMENT_FAILED", error_ref="Error_payment")


def test_non_interrupting_timer_boundary(order: Process) -> None:
    reminder = node(order, "Reminder", Event)
    assert reminder.attached_to == "Confirm" and not reminder.cancel_activity
    assert isinstance(reminder.trigger, TimerTrigger)
    assert reminder.trigger.kind == "cycle" and reminder.trigger.value.evaluate({}) == "R3/P1D"
    assert node(order, "Confirm", Activity).boundaries == ("Reminder",)


def test_children_are_in_document_order(order: Process) -> None:
    assert order.children[:5] == ("StartEvent_1", "ReserveStock", "InStock", "Backorder", "Split")
    assert set(order.children) == set(order.nodes)
    assert order.event_subprocesses == ()


def test_start_events_of_claims(claims: Process) -> None:
    assert claims.start_events == ("Start",)
    assert claims.all_start_events == ("Start", "ClaimFiled")
    filed = node(claims, "ClaimFiled", Event)
    assert isinstance(filed.trigger, MessageTrigger)
    assert filed.trigger.name.evaluate({}) == "claim-filed" and filed.trigger.correlation_key is None
    merge = node(claims, "Merge", Gateway)
    assert merge.incoming == ("f_start", "f_filed")


def test_script_task(claims: Process) -> None:
    score = node(claims, "Score", ScriptTask)
    assert score.script is not None and score.script.evaluate({"amount": 21}) == 42
    assert score.result_variable == "score" and score.task is None
    assert score.incoming == ("f_score",) and score.outgoing == ("f_assess",)


def test_embedded_subprocess_with_io_mappings(claims: Process) -> None:
    sub = node(claims, "Assess", SubProcess)
    assert not sub.triggered_by_event
    assert sub.children == ("AssessStart", "RiskCheck", "DocsReceived", "AssessEnd")
    assert sub.start_events == ("AssessStart",)
    assert [(m.source.source, m.target) for m in sub.inputs] == [("claim", "localClaim"), ("", "decision")]
    assert sub.inputs[1].source.evaluate({}) is None  # an input without a source creates a null variable
    assert [(m.source.source, m.target) for m in sub.outputs] == [("decision", "result.decision")]
    assert sub.boundaries == ("AssessTimeout",)
    for child in sub.children:
        assert claims.nodes[child].parent == "Assess"
    assert claims.scope("Assess") is sub and claims.scope("claims") is claims
    assert node(claims, "RiskCheck", CallActivity).incoming == ("s1",)
    assert claims.flows["s2"].source == "RiskCheck"


def test_message_catch_with_output(claims: Process) -> None:
    docs = node(claims, "DocsReceived", Event)
    assert isinstance(docs.trigger, MessageTrigger)
    assert docs.trigger.name.evaluate({}) == "documents-received"
    assert docs.trigger.correlation_key is not None
    assert docs.trigger.correlation_key.evaluate({"claimId": "c-1"}) == "c-1"
    assert [m.target for m in docs.outputs] == ["documents"]


def test_timer_boundary_on_subprocess_and_terminate(claims: Process) -> None:
    timeout = node(claims, "AssessTimeout", Event)
    assert timeout.trigger == TimerTrigger(kind="duration", value=StaticExpr("PT2H", "PT2H"))
    assert timeout.cancel_activity
    assert isinstance(node(claims, "TimedOut", Event).trigger, TerminateTrigger)


def test_call_activity(claims: Process) -> None:
    call = node(claims, "RiskCheck", CallActivity)
    assert call.called_element.evaluate({}) == "assess-risk"
    assert call.propagate_all_child_variables is False
    assert call.propagate_all_parent_variables is True
    assert call.binding_type == "latest" and call.version_tag is None


def test_multi_instance(claims: Process) -> None:
    notify = node(claims, "Notify", Activity)
    mi = notify.multi_instance
    assert mi is not None and mi.sequential
    assert mi.input_collection is not None and mi.input_collection.evaluate({"parties": [1, 2]}) == [1, 2]
    assert mi.input_element == "party"
    assert mi.output_collection == "results"
    assert mi.output_element is not None and mi.output_element.source == "result"
    assert mi.completion_condition is not None
    assert mi.completion_condition.evaluate({"numberOfCompletedInstances": 2}) is True
    assert mi.cardinality is None


def test_event_based_gateway_targets(claims: Process) -> None:
    wait = node(claims, "Wait", Gateway)
    assert wait.kind == "eventBasedGateway"
    targets = [claims.flows[f].target for f in wait.outgoing]
    assert targets == ["Approved", "OneDay", "Rejected"]
    approved = node(claims, "Approved", Event)
    assert isinstance(approved.trigger, MessageTrigger)
    assert approved.trigger.name.evaluate({"region": "eu"}) == "approved-eu"
    one_day = node(claims, "OneDay", Event)
    assert isinstance(one_day.trigger, TimerTrigger) and one_day.trigger.kind == "date"
    rejected = node(claims, "Rejected", Activity)
    assert rejected.message is not None and rejected.message.name.evaluate({}) == "rejected"


def test_links_signals_escalations(claims: Process) -> None:
    assert node(claims, "GoToEnd", Event).trigger == LinkTrigger("toEnd")
    assert node(claims, "FromLink", Event).trigger == LinkTrigger("toEnd")
    broadcast = node(claims, "Broadcast", Event)
    assert isinstance(broadcast.trigger, SignalTrigger)
    assert broadcast.trigger.name.evaluate({}) == "claims-closed"
    assert node(claims, "Escalate", Event).trigger == EscalationTrigger(code="LATE")


def test_standard_loop(claims: Process) -> None:
    book = node(claims, "Book", Activity)
    assert book.loop is not None
    assert book.loop.test_before and book.loop.maximum == 3
    assert book.loop.condition is not None and book.loop.condition.evaluate({"attempts": 1}) is True


def test_compensation(claims: Process) -> None:
    undo = node(claims, "UndoBook", Event)
    assert isinstance(undo.trigger, CompensateTrigger)
    assert undo.compensation_handler == "CancelBooking"
    assert node(claims, "Book", Activity).boundaries == ("UndoBook",)
    handler = node(claims, "CancelBooking", Activity)
    assert handler.is_for_compensation and handler.incoming == () and handler.outgoing == ()
    throw = node(claims, "Compensate", Event)
    assert throw.trigger == CompensateTrigger(activity_ref="Book", wait_for_completion=True)


def test_message_end_event_as_job(claims: Process) -> None:
    published = node(claims, "Published", Event)
    assert published.task is not None and published.task.type.evaluate({}) == "publish-result"
    assert dict(published.headers) == {"topic": "claims"}
    assert published.incoming == ("f_esc_end", "f_bc_end", "f_from_link")


def test_event_subprocesses(claims: Process) -> None:
    assert claims.event_subprocesses == ("OnUpdate", "OnAnyError")
    on_update = node(claims, "OnUpdate", SubProcess)
    assert on_update.triggered_by_event
    assert on_update.start_events == ("UpdateReceived",)
    assert on_update.children == ("UpdateReceived", "ApplyUpdate", "UpdateApplied")
    start = node(claims, "UpdateReceived", Event)
    assert not start.interrupting and isinstance(start.trigger, MessageTrigger)
    assert start.parent == "OnUpdate"
    any_error = node(claims, "AnyError", Event)
    assert any_error.interrupting and any_error.trigger == ErrorTrigger(code=None, error_ref=None)
    assert node(claims, "Failed", Event).trigger == EscalationTrigger(code="LATE")
    # process-level start lists do not include event sub-process starts
    assert "UpdateReceived" not in claims.all_start_events


def test_every_flow_is_indexed_on_both_ends(claims: Process, order: Process) -> None:
    for process in (claims, order):
        for flow in process.flows.values():
            assert flow.id in process.nodes[flow.source].outgoing
            assert flow.id in process.nodes[flow.target].incoming
            assert process.nodes[flow.source].parent == process.nodes[flow.target].parent


def test_collaboration_keeps_non_executable_process() -> None:
    defs = parse_bpmn(MODELS / "odd_collaboration.bpmn")
    assert set(defs.processes) == {"shop", "customer"}
    assert defs.processes["shop"].executable
    customer = defs.processes["customer"]
    assert not customer.executable
    # its service task has no job type, which only matters for an executable process
    assert node(customer, "Place", Activity).task is None
    shop = defs.processes["shop"]
    assert shop.start_events == ()
    assert shop.all_start_events == ("OrderPlaced", "Signalled", "AtDate")
    timer = node(shop, "OrderPlaced", Event).trigger
    assert isinstance(timer, TimerTrigger) and timer.kind == "cycle"
    signal = node(shop, "Signalled", Event).trigger
    assert isinstance(signal, SignalTrigger) and signal.name.evaluate({"season": "winter"}) == "sale-winter"


def test_models_are_immutable(order: Process) -> None:
    with pytest.raises(AttributeError):
        order.nodes["ReserveStock"].name = "x"  # type: ignore[misc]
