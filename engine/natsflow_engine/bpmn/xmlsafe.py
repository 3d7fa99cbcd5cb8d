"""Hardened loading of BPMN XML: size limit, no DTD or entities, no network, BPMN root only."""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from natsflow_engine.bpmn.common import BPMN_NS, Element, line_of
from natsflow_engine.errors import BpmnValidationError, ValidationIssue

__all__ = ["LoadedDocument", "load_document"]

DOCTYPE_REFUSED = "DOCTYPE/entity declarations are not allowed in BPMN documents"

# Everything that may precede the root element except a DOCTYPE: whitespace, the XML
# declaration, processing instructions and comments.
_PROLOG = re.compile(r"(?:\s+|<\?.*?\?>|<!--.*?-->)*", re.DOTALL)


@dataclass(frozen=True, slots=True)
class LoadedDocument:
    data: bytes
    root: Element
    name: str | None


def _fail(message: str, name: str | None, line: int | None = None) -> BpmnValidationError:
    return BpmnValidationError([ValidationIssue(element_id=None, line=line, message=message)], source=name)


def _too_large(size: int, limit: int, name: str | None) -> BpmnValidationError:
    return _fail(f"the document is {size} bytes, larger than the limit of {limit} bytes", name)


def _read(source: bytes | str | Path, max_bytes: int, name: str | None) -> tuple[bytes, bool]:
    """The raw bytes (checked against the limit before anything is parsed) and whether they
    came from a ``str`` (then they are UTF-8 whatever the XML declaration says)."""
    if isinstance(source, Path):
        try:
            size = source.stat().st_size
            if size > max_bytes:
                raise _too_large(size, max_bytes, name)
            with source.open("rb") as fh:
                data = fh.read(max_bytes + 1)
        except OSError as exc:
            raise _fail(f"cannot read the document: {exc.strerror or exc}", name) from exc
        if len(data) > max_bytes:
            raise _too_large(len(data), max_bytes, name)
        return data, False
    if isinstance(source, str):
        if len(source) > max_bytes:  # UTF-8 needs at least one byte per character
            raise _too_large(len(source), max_bytes, name)
        try:
            data = source.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise _fail(f"the document is not valid text: {exc.reason}", name) from exc
        if len(data) > max_bytes:
            raise _too_large(len(data), max_bytes, name)
        return data, True
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        if len(data) > max_bytes:
            raise _too_large(len(data), max_bytes, name)
        return data, False
    raise TypeError(f"parse_bpmn() takes bytes, str or pathlib.Path, not {type(source).__name__}")


def _scan_text(data: bytes) -> str:
    """The document as text, good enough to look at its prolog (which is ASCII markup)."""
    if data.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return data.decode("utf-32", errors="replace")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16", errors="replace")
    if data[:4] in (b"\x00\x00\x00<", b"<\x00\x00\x00"):
        return data.decode("utf-32-be" if data[0] == 0 else "utf-32-le", errors="replace")
    if data[:2] in (b"\x00<", b"<\x00"):
        return data.decode("utf-16-be" if data[0] == 0 else "utf-16-le", errors="replace")
    data = data.removeprefix(codecs.BOM_UTF8)
    return data.decode("latin-1")


def _refuse_doctype(data: bytes, name: str | None) -> None:
    text = _scan_text(data)
    match = _PROLOG.match(text)
    rest = text[match.end() if match else 0 :]
    if rest.startswith("<!") and not rest.startswith("<!--"):
        line = text.count("\n", 0, len(text) - len(rest)) + 1
        raise _fail(DOCTYPE_REFUSED, name, line)


def _parser(from_str: bool) -> etree.XMLParser:
    return etree.XMLParser(
        encoding="utf-8" if from_str else None,
        resolve_entities=False,
        no_network=True,
        huge_tree=False,
        load_dtd=False,
        dtd_validation=False,
        remove_comments=True,
        remove_pis=True,
    )


def load_document(source: bytes | str | Path, *, max_bytes: int, name: str | None) -> LoadedDocument:
    """Read, check and parse; raise :class:`BpmnValidationError` for anything that is not a
    well-formed BPMN 2.0 document within the size limit."""
    data, from_str = _read(source, max_bytes, name)
    if not data.strip():
        raise _fail("the document is empty", name)
    _refuse_doctype(data, name)
    try:
        root = etree.fromstring(data, _parser(from_str))
    except etree.XMLSyntaxError as exc:
        msg = str(exc.msg or exc).strip()
        if msg.startswith("Excessive depth"):
            msg = "elements are nested too deeply (the limit is 256 levels)"
        elif msg.startswith("Entity") and "not defined" in msg:
            msg += " (only the five predefined XML entities and character references can be used)"
        raise _fail(f"the document is not well-formed XML: {msg}", name, exc.lineno or None) from exc
    except (ValueError, LookupError) as exc:  # e.g. an unknown encoding in the XML declaration
        raise _fail(f"the document cannot be read as XML: {exc}", name) from exc
    if root is None:
        raise _fail("the document is empty", name)
    docinfo = root.getroottree().docinfo
    if getattr(docinfo, "doctype", "") or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise _fail(DOCTYPE_REFUSED, name)
    if not isinstance(root.tag, str):
        raise _fail("the document has no root element", name)
    qname = etree.QName(root.tag)
    if qname.localname != "definitions" or qname.namespace != BPMN_NS:
        where = f"in namespace '{qname.namespace}'" if qname.namespace else "without a namespace"
        raise _fail(
            f"not a BPMN 2.0 document: the root element is '{qname.localname}' {where}; "
            f"expected 'definitions' in namespace '{BPMN_NS}'",
            name,
            line_of(root),
        )
    return LoadedDocument(data=data, root=root, name=name)
