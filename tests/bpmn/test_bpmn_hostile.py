"""Hostile and broken XML: refused with clear messages, without touching files or the network."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree
from natsflow_engine.bpmn import parse_bpmn
from natsflow_engine.bpmn.xmlsafe import _parser

from natsflow.errors import BpmnValidationError

MODELS = Path(__file__).parent / "models"
DOCTYPE_MESSAGE = "DOCTYPE/entity declarations are not allowed in BPMN documents"

ROOT_OPEN = '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="urn:x">'
PROCESS = '<bpmn:process id="p" isExecutable="true"><bpmn:startEvent id="s" name="{name}"/></bpmn:process>'


def bpmn(name: str = "start", prolog: str = '<?xml version="1.0" encoding="UTF-8"?>\n') -> str:
    return prolog + ROOT_OPEN + PROCESS.format(name=name) + "</bpmn:definitions>"


def refused(source: bytes | str | Path, **kwargs: int) -> str:
    with pytest.raises(BpmnValidationError) as info:
        parse_bpmn(source, **kwargs)  # type: ignore[arg-type]
    return str(info.value)


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text("TOP-SECRET-CONTENT")
    return path


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A local TCP port that records whether anything connected to it."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    server.setblocking(False)
    try:
        yield server
    finally:
        server.close()


def assert_nobody_connected(server: socket.socket) -> None:
    time.sleep(0.05)
    with pytest.raises(BlockingIOError):
        server.accept()


def test_well_formed_baseline_parses() -> None:
    assert parse_bpmn(bpmn()).processes["p"].nodes["s"].name == "start"


def test_xxe_external_file_entity(secret_file: Path) -> None:
    doctype = f'<?xml version="1.0"?>\n<!DOCTYPE d [<!ENTITY xxe SYSTEM "file://{secret_file}">]>\n'
    message = refused(bpmn(name="&xxe;", prolog=doctype))
    assert DOCTYPE_MESSAGE in message and "line 2" in message
    assert "TOP-SECRET" not in message


def test_xxe_etc_passwd() -> None:
    doctype = '<!DOCTYPE d [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    message = refused(bpmn(name="&xxe;", prolog=doctype))
    assert DOCTYPE_MESSAGE in message and "root:" not in message


def test_lxml_parser_itself_does_not_resolve_entities(secret_file: Path) -> None:
    # Defence in depth: even past the DOCTYPE check, the configured parser does not expand
    # external entities or load DTDs.
    xml = f'<!DOCTYPE d [<!ENTITY xxe SYSTEM "file://{secret_file}">]><d>&xxe;</d>'
    tree = etree.fromstring(xml.encode(), _parser(False))
    assert b"TOP-SECRET" not in etree.tostring(tree)


def test_billion_laughs() -> None:
    entities = '<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10)
    )
    started = time.perf_counter()
    message = refused(bpmn(name="&lol9;", prolog=f"<!DOCTYPE d [{entities}]>"))
    assert DOCTYPE_MESSAGE in message
    assert time.perf_counter() - started < 1.0


def test_parameter_entity_via_external_dtd(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    doctype = f'<!DOCTYPE d [<!ENTITY % ext SYSTEM "http://127.0.0.1:{port}/evil.dtd"> %ext;]>'
    assert DOCTYPE_MESSAGE in refused(bpmn(prolog=doctype))
    assert_nobody_connected(listener)


def test_external_dtd_subset(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    doctype = f'<?xml version="1.0"?><!DOCTYPE definitions SYSTEM "http://127.0.0.1:{port}/bpmn.dtd">'
    assert DOCTYPE_MESSAGE in refused(bpmn(prolog=doctype))
    assert_nobody_connected(listener)


def test_doctype_after_comments_and_processing_instructions() -> None:
    prolog = '<?xml version="1.0"?>\n<!-- a comment -->\n<?pi data?>\n<!doctype d>\n'
    message = refused(bpmn(prolog=prolog))
    assert DOCTYPE_MESSAGE in message and "line 4" in message


def test_doctype_in_utf16_document() -> None:
    xml = bpmn(prolog='<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE d [<!ENTITY e "x">]>')
    assert DOCTYPE_MESSAGE in refused(xml.encode("utf-16"))


def test_doctype_text_inside_cdata_is_harmless() -> None:
    xml = bpmn().replace(
        '<bpmn:startEvent id="s" name="start"/>',
        '<bpmn:startEvent id="s"><bpmn:documentation><![CDATA[<!DOCTYPE html>]]></bpmn:documentation>'
        "</bpmn:startEvent>",
    )
    assert "s" in parse_bpmn(xml).processes["p"].nodes


def test_xinclude_is_not_processed(secret_file: Path) -> None:
    xml = bpmn().replace(
        "<bpmn:startEvent",
        f'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="{secret_file}" parse="text"/><bpmn:startEvent',
    )
    defs = parse_bpmn(xml)
    assert list(defs.processes["p"].nodes) == ["s"]


def test_fifty_megabytes_refused_fast() -> None:
    big = b"<" + b"x" * (50 * 1024 * 1024)
    started = time.perf_counter()
    message = refused(big)
    elapsed = time.perf_counter() - started
    assert f"{len(big)} bytes" in message and f"limit of {4 * 1024 * 1024} bytes" in message
    assert elapsed < 0.5


def test_fifty_megabyte_string_refused_fast() -> None:
    started = time.perf_counter()
    message = refused("x" * (50 * 1024 * 1024))
    assert "larger than the limit" in message
    assert time.perf_counter() - started < 0.5


def test_fifty_megabyte_file_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "huge.bpmn"
    with path.open("wb") as fh:
        fh.truncate(50 * 1024 * 1024)  # sparse: nothing to read, only a size
    started = time.perf_counter()
    message = refused(path)
    assert "huge.bpmn" in message and f"{50 * 1024 * 1024} bytes" in message
    assert time.perf_counter() - started < 0.5


def test_custom_size_limit() -> None:
    xml = bpmn()
    message = refused(xml, max_bytes=100)
    assert f"the document is {len(xml)} bytes, larger than the limit of 100 bytes" in message
    parse_bpmn(xml, max_bytes=len(xml))


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        (b"", "the document is empty"),
        (b"   \n ", "the document is empty"),
        (b"hello world", "not well-formed XML"),
        (b'{"process": "json"}', "not well-formed XML"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "not well-formed XML"),
        ("<bpmn:definitions>", "not well-formed XML"),
        ('<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL">', "not well-formed XML"),
        (b"<root>&undefined;</root>", "not well-formed XML"),
    ],
)
def test_not_xml(source: bytes | str, fragment: str) -> None:
    assert fragment in refused(source)


def test_wrong_root_element() -> None:
    message = refused("<html><body>hi</body></html>")
    assert "not a BPMN 2.0 document: the root element is 'html' without a namespace" in message


def test_wrong_namespace() -> None:
    message = refused('<definitions xmlns="http://www.omg.org/spec/DMN/20191111/MODEL/"/>')
    assert "'definitions' in namespace 'http://www.omg.org/spec/DMN/20191111/MODEL/'" in message
    assert "expected 'definitions' in namespace 'http://www.omg.org/spec/BPMN/20100524/MODEL'" in message


def test_unknown_encoding() -> None:
    assert "XML" in refused(b'<?xml version="1.0" encoding="klingon"?><a/>')


def test_missing_file(tmp_path: Path) -> None:
    assert "cannot read the document" in refused(tmp_path / "absent.bpmn")


def test_wrong_argument_type() -> None:
    with pytest.raises(TypeError):
        parse_bpmn(42)  # type: ignore[arg-type]


def test_deep_nesting_is_refused_not_crashing() -> None:
    depth = 5000
    xml = bpmn().replace(
        '<bpmn:startEvent id="s" name="start"/>',
        '<bpmn:startEvent id="s"/>' + "<bpmn:documentation>" * depth + "</bpmn:documentation>" * depth,
    )
    with pytest.raises(BpmnValidationError):
        parse_bpmn(xml)


def test_deeply_nested_subprocesses() -> None:
    depth = 200
    opening = "".join(f'<bpmn:subProcess id="sub{i}"><bpmn:startEvent id="s{i}"/>' for i in range(depth))
    xml = bpmn().replace('<bpmn:startEvent id="s" name="start"/>', opening + "</bpmn:subProcess>" * depth)
    xml = xml.replace(
        '<bpmn:process id="p" isExecutable="true">',
        '<bpmn:process id="p" isExecutable="true"><bpmn:startEvent id="s"/>',
    )
    defs = parse_bpmn(xml)
    assert defs.processes["p"].nodes[f"s{depth - 1}"].parent == f"sub{depth - 1}"
