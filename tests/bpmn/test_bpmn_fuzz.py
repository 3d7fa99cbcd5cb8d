"""Random truncations and mutations of valid models never raise anything but BpmnValidationError."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree
from natsflow_engine.bpmn import parse_bpmn

from natsflow.errors import BpmnValidationError

MODELS = Path(__file__).parent / "models"
SOURCES = [(MODELS / name).read_bytes() for name in ("order_fulfilment.bpmn", "claims.bpmn")]
FUZZ = settings(
    max_examples=int(os.environ.get("NATSFLOW_FUZZ_EXAMPLES", "120")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Values that tend to break things when dropped into attributes or text.
NASTY = st.sampled_from(
    [
        "",
        " ",
        "=",
        "==",
        "=(",
        "=a +",
        "=if x then",
        "true",
        "false",
        "maybe",
        "-1",
        "3",
        "99999999999999999999",
        "PT",
        "P1D",
        "R/",
        "R5/PT1S",
        "* * * * * *",
        "2030-01-01T00:00:00Z",
        "StartEvent_1",
        "ReserveStock",
        "Flow_yes",
        "InStock",
        "Assess",
        "Error_declined",
        "Message_docs",
        "claims",
        "order-fulfilment",
        "ghost",
        "tns:ghost",
        "a:b:c",
        "\u0000",
        "\u202e",
        "x" * 300,
    ]
)


def parse_or_invalid(data: bytes) -> None:
    try:
        parse_bpmn(data)
    except BpmnValidationError as exc:
        assert exc.errors, "a validation error must carry at least one issue"
        for issue in exc.errors:
            assert issue.message


@FUZZ
@given(source=st.sampled_from(SOURCES), data=st.data())
def test_truncations(source: bytes, data: st.DataObject) -> None:
    end = data.draw(st.integers(min_value=0, max_value=len(source)))
    parse_or_invalid(source[:end])


@FUZZ
@given(source=st.sampled_from(SOURCES), data=st.data())
def test_byte_mutations(source: bytes, data: st.DataObject) -> None:
    buf = bytearray(source)
    for _ in range(data.draw(st.integers(min_value=1, max_value=8))):
        pos = data.draw(st.integers(min_value=0, max_value=len(buf) - 1))
        action = data.draw(st.sampled_from(["replace", "delete", "insert", "cut"]))
        if action == "replace":
            buf[pos] = data.draw(st.integers(min_value=0, max_value=255))
        elif action == "delete":
            del buf[pos]
        elif action == "insert":
            buf[pos:pos] = data.draw(
                st.sampled_from([b"<", b">", b'"', b"&", b"=", b"<!--", b"]]>", b"\xff"])
            )
        else:
            del buf[pos : pos + data.draw(st.integers(min_value=1, max_value=200))]
    parse_or_invalid(bytes(buf))


@FUZZ
@given(source=st.sampled_from(SOURCES), data=st.data())
def test_structural_mutations(source: bytes, data: st.DataObject) -> None:
    root = etree.fromstring(source)
    for _ in range(data.draw(st.integers(min_value=1, max_value=6))):
        elements = [el for el in root.iter() if isinstance(el.tag, str)]
        target = data.draw(st.sampled_from(elements))
        action = data.draw(
            st.sampled_from(["drop", "set-attr", "drop-attr", "text", "move", "copy", "rename"])
        )
        parent = target.getparent()
        if action == "drop" and parent is not None:
            parent.remove(target)
        elif action == "set-attr":
            attr = data.draw(
                st.sampled_from(
                    [*list(target.attrib), "id", "default", "attachedToRef", "sourceRef", "targetRef"]
                )
            )
            target.set(attr, data.draw(NASTY).replace("\u0000", ""))
        elif action == "drop-attr" and target.attrib:
            del target.attrib[data.draw(st.sampled_from(sorted(target.attrib)))]
        elif action == "text":
            target.text = data.draw(NASTY).replace("\u0000", "")
        elif action in ("move", "copy") and parent is not None:
            destination = data.draw(st.sampled_from(elements))
            if target in destination.iterancestors() or destination is target:
                continue
            if action == "copy":
                destination.append(etree.fromstring(etree.tostring(target)))
            else:
                parent.remove(target)
                destination.append(target)
        elif action == "rename":
            ns = etree.QName(target).namespace
            local = data.draw(
                st.sampled_from(
                    ["task", "fooTask", "subProcess", "boundaryEvent", "complexGateway", "startEvent"]
                )
            )
            target.tag = f"{{{ns}}}{local}" if ns else local
    parse_or_invalid(etree.tostring(root))
