"""Odd but valid documents: other prefixes, default namespace, vendor extensions, encodings."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest
from natsflow_engine.bpmn import parse_bpmn
from natsflow_engine.bpmn.model import Activity, CallActivity, Definitions, Event, Gateway, MessageTrigger

MODELS = Path(__file__).parent / "models"
ORDER = MODELS / "order_fulfilment.bpmn"


def shape(defs: Definitions) -> dict[str, object]:
    """Everything structural about a document, to compare encodings of the same model."""
    out: dict[str, object] = {}
    for pid, process in defs.processes.items():
        out[pid] = (
            process.children,
            process.start_events,
            {n.id: (n.kind, n.name, n.incoming, n.outgoing, n.parent) for n in process.nodes.values()},
            {
                f.id: (f.source, f.target, f.condition.source if f.condition else None)
                for f in process.flows.values()
            },
        )
    return out


@pytest.mark.parametrize("path", sorted(MODELS.glob("*.bpmn")), ids=lambda p: p.name)
def test_every_model_parses(path: Path) -> None:
    defs = parse_bpmn(path)
    assert any(p.executable for p in defs.processes.values())


def test_bpmn2_prefix_and_qname_refs() -> None:
    process = parse_bpmn(MODELS / "odd_bpmn2_prefix.bpmn").processes["eclipse-process"]
    wait = process.nodes["ReceiveTask_1"]
    assert isinstance(wait, Activity) and wait.message is not None  # messageRef="tns:Message_1"
    assert wait.message.name.evaluate({}) == "payment-received"
    # a condition without a leading '=' is read as FEEL
    condition = process.flows["SequenceFlow_2"].condition
    assert condition is not None and condition.evaluate({"amount": 150}) is True
    gateway = process.nodes["ExclusiveGateway_1"]
    assert isinstance(gateway, Gateway) and gateway.default == "SequenceFlow_3"


def test_semantic_prefix_and_renamed_zeebe_prefix() -> None:
    process = parse_bpmn(MODELS / "odd_semantic_prefix.bpmn").processes["semantic-process"]
    assert process.version_tag == "v7"
    review = process.nodes["review"]
    assert isinstance(review, Activity) and review.user_task is not None
    assert review.user_task.candidate_users is not None
    assert review.user_task.candidate_users.evaluate({}) == ["alice", "bob"]
    assert review.user_task.form_key == "camunda-forms:bpmn:review-form"
    assert not review.user_task.zeebe_user_task
    assert review.boundaries == ("rejected",)
    # no <incoming>/<outgoing> children anywhere: filled from the flows
    assert review.incoming == ("sf1",) and review.outgoing == ("sf2",)
    assert set(process.nodes) == {"start", "review", "rejected", "approved", "rejectedEnd"}


def test_default_namespace_without_incoming_children() -> None:
    process = parse_bpmn(MODELS / "odd_default_namespace.bpmn").processes["default-ns"]
    assert process.nodes["fork"].outgoing == ("c1", "c2")
    assert process.nodes["join"].incoming == ("ca", "cb")
    choose = process.nodes["choose"]
    assert isinstance(choose, Gateway) and choose.kind == "inclusiveGateway" and choose.default == "c3"
    cdata = process.flows["c4"].condition
    assert cdata is not None and cdata.evaluate({"x": 1, "y": 3}) is True
    assert process.nodes["b"].kind == "manualTask"
    # data objects, stores and groups are not flow nodes
    assert set(process.nodes) == {"s", "fork", "a", "b", "join", "choose", "e1", "e2"}


def test_other_vendor_extensions_are_ignored() -> None:
    process = parse_bpmn(MODELS / "odd_other_vendors.bpmn").processes["vendors"]
    work = process.nodes["work"]
    assert isinstance(work, Activity) and work.task is not None
    assert work.task.retries.evaluate({}) == 2
    assert work.multi_instance is not None and work.multi_instance.cardinality is not None
    assert work.multi_instance.cardinality.evaluate({}) == 3
    call = process.nodes["call"]
    assert isinstance(call, CallActivity) and call.called_element.evaluate({}) == "child-process"
    assert set(process.nodes) == {"start", "work", "call", "end"}


def test_collaboration_with_message_flows() -> None:
    defs = parse_bpmn(MODELS / "odd_collaboration.bpmn")
    assert set(defs.processes) == {"shop", "customer"}


def test_crlf_and_bom() -> None:
    raw = ORDER.read_bytes()
    variant = codecs.BOM_UTF8 + raw.replace(b"\n", b"\r\n")
    defs = parse_bpmn(variant)
    assert shape(defs) == shape(parse_bpmn(raw))
    assert defs.processes["order-fulfilment"].nodes["ReserveStock"].line == 15


def test_utf16_document() -> None:
    text = ORDER.read_text(encoding="utf-8").replace('encoding="UTF-8"', 'encoding="UTF-16"')
    assert shape(parse_bpmn(text.encode("utf-16"))) == shape(parse_bpmn(ORDER))


def test_latin1_document_with_declaration() -> None:
    text = ORDER.read_text(encoding="utf-8").replace('encoding="UTF-8"', 'encoding="ISO-8859-1"')
    text = text.replace('name="Reserve stock"', 'name="Réserver le stock"')
    process = parse_bpmn(text.encode("latin-1")).processes["order-fulfilment"]
    assert process.nodes["ReserveStock"].name == "Réserver le stock"


def test_str_with_encoding_declaration() -> None:
    text = ORDER.read_text(encoding="utf-8").replace('name="Reserve stock"', 'name="Lager prüfen ✓"')
    process = parse_bpmn(text).processes["order-fulfilment"]
    assert process.nodes["ReserveStock"].name == "Lager prüfen ✓"


def test_str_and_bytes_hash_the_same_utf8() -> None:
    raw = ORDER.read_bytes()
    assert parse_bpmn(raw).source_hash == parse_bpmn(raw.decode("utf-8")).source_hash


def test_no_prefix_on_extension_namespace_and_whitespace_values() -> None:
    xml = """<?xml version="1.0"?>
<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d">
  <message id="m" name="  ping  "><extensionElements>
    <subscription xmlns="http://camunda.org/schema/zeebe/1.0" correlationKey="  =key  "/>
  </extensionElements></message>
  <process id="p">
    <startEvent id="s"/>
    <intermediateCatchEvent id="c"><messageEventDefinition messageRef=" m "/></intermediateCatchEvent>
    <sequenceFlow id="f" sourceRef=" s " targetRef="c"/>
  </process>
</definitions>"""
    process = parse_bpmn(xml).processes["p"]  # isExecutable missing: executable
    assert process.executable
    catch = process.nodes["c"]
    assert isinstance(catch, Event) and isinstance(catch.trigger, MessageTrigger)
    assert catch.trigger.correlation_key is not None and catch.trigger.correlation_key.source == "key"
    assert process.flows["f"].source == "s"
