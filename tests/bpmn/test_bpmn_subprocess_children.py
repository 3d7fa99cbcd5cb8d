"""Camunda Modeler writes <incoming>/<outgoing> and loop characteristics inside a sub-process
element, next to its contents; they describe the sub-process, not flow nodes inside it."""

from pathlib import Path

from natsflow_engine.bpmn import parse_bpmn
from natsflow_engine.bpmn.model import SubProcess

EXAMPLE = Path(__file__).parents[2] / "examples" / "order-fulfilment" / "order-fulfilment.bpmn"


def test_modeler_subprocess_with_incoming_outgoing_children_parses():
    process = parse_bpmn(EXAMPLE).processes["order-fulfilment"]
    fulfil = process.nodes["fulfil"]
    assert isinstance(fulfil, SubProcess)
    assert fulfil.incoming == ("f_in_stock",) and fulfil.outgoing == ("f5",)
    assert set(fulfil.children) == {"sub_start", "fork", "charge_payment", "reserve_shipment", "join", "sub_end"}
    assert fulfil.boundaries == ("payment_declined",)
