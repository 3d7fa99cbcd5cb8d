"""Shared helpers of the BPMN parser: namespaces, element access and the issue collector."""

from __future__ import annotations

from collections.abc import Iterator

from lxml import etree

from natsflow_engine.errors import ValidationIssue

__all__ = [
    "BPMN_NS",
    "ZEEBE_NS",
    "Element",
    "Issues",
    "bpmn_child",
    "bpmn_children",
    "is_bpmn",
    "line_of",
    "local_name",
    "parse_bool",
    "zeebe_ext",
    "zeebe_exts",
]

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
ZEEBE_NS = "http://camunda.org/schema/zeebe/1.0"

Element = etree._Element


def local_name(el: Element) -> str:
    """The local part of an element's tag ('' for comments and processing instructions)."""
    tag = el.tag
    if not isinstance(tag, str):
        return ""
    return etree.QName(tag).localname


def namespace_of(el: Element) -> str | None:
    tag = el.tag
    if not isinstance(tag, str):
        return None
    return etree.QName(tag).namespace


def is_bpmn(el: Element, name: str | None = None) -> bool:
    if namespace_of(el) != BPMN_NS:
        return False
    return name is None or local_name(el) == name


def line_of(el: Element) -> int | None:
    line = el.sourceline
    return line if isinstance(line, int) else None


def bpmn_children(el: Element, name: str | None = None) -> Iterator[Element]:
    """Direct children in the BPMN namespace (optionally with one local name)."""
    for child in el:
        if is_bpmn(child, name):
            yield child


def bpmn_child(el: Element, name: str) -> Element | None:
    return next(bpmn_children(el, name), None)


def zeebe_exts(el: Element, name: str) -> list[Element]:
    """``zeebe:<name>`` elements inside the ``extensionElements`` of ``el``."""
    found: list[Element] = []
    for ext in bpmn_children(el, "extensionElements"):
        for child in ext:
            if namespace_of(child) == ZEEBE_NS and local_name(child) == name:
                found.append(child)
    return found


def zeebe_ext(el: Element, name: str) -> Element | None:
    found = zeebe_exts(el, name)
    return found[0] if found else None


def text_of(el: Element | None) -> str | None:
    """Stripped text content of an element, None when empty."""
    if el is None:
        return None
    text = "".join(t for t in el.itertext() if isinstance(t, str)).strip()
    return text or None


def owner_id(el: Element) -> str | None:
    """The id of ``el`` or of the nearest BPMN ancestor that names a model element.

    Event definitions and loop characteristics are skipped: an issue in a timer belongs to the
    event, not to its ``timerEventDefinition``.
    """
    node: Element | None = el
    while node is not None:
        if namespace_of(node) == BPMN_NS:
            name = local_name(node)
            el_id = node.get("id")
            if el_id and not name.endswith(("EventDefinition", "LoopCharacteristics")):
                return el_id
        node = node.getparent()
    return None


class Issues:
    """Collects every validation issue; ``muted`` drops them (non-executable processes)."""

    def __init__(self) -> None:
        self.items: list[ValidationIssue] = []
        self.warnings: list[ValidationIssue] = []  # the document deploys; these are logged
        self.muted = False

    def add(self, where: Element | None, message: str, element_id: str | None = None) -> None:
        """Report at ``where``'s line; the id defaults to that of the nearest enclosing element."""
        if self.muted:
            return
        if element_id is None and where is not None:
            element_id = owner_id(where)
        line = line_of(where) if where is not None else None
        self.items.append(ValidationIssue(element_id=element_id, line=line, message=message))

    def add_at(self, element_id: str | None, line: int | None, message: str) -> None:
        if self.muted:
            return
        self.items.append(ValidationIssue(element_id=element_id, line=line, message=message))

    def warn_at(self, element_id: str | None, line: int | None, message: str) -> None:
        """Something the specification says to ignore: the document still deploys."""
        if not self.muted:
            self.warnings.append(ValidationIssue(element_id=element_id, line=line, message=message))

    def __bool__(self) -> bool:
        return bool(self.items)


def parse_bool(issues: Issues, el: Element, attr: str, default: bool, what: str) -> bool:
    """An ``xs:boolean`` attribute; a bad value is an issue and yields the default."""
    raw = el.get(attr)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    issues.add(el, f"{what} has {attr}='{raw}', which is neither 'true' nor 'false'")
    return default


def parse_quantity(issues: Issues, el: Element, attr: str, what: str) -> int:
    """``startQuantity`` / ``completionQuantity``: a whole number of at least 1 (default 1)."""
    raw = el.get(attr)
    if raw is None:
        return 1
    try:
        value = int(raw.strip())
    except ValueError:
        value = 0
    if value < 1:
        issues.add(el, f"{what} has {attr}='{raw}'; it must be a whole number of at least 1")
        return 1
    return value


def describe(el: Element) -> str:
    """'service task 'pay'' style description of an element for messages."""
    name = local_name(el)
    el_id = el.get("id")
    label = f"'{el_id}'" if el_id else f"without id (line {line_of(el)})"
    if name in _KIND_WORDS:
        return f"{_KIND_WORDS[name]} {label}"
    words = []
    for ch in name:
        if ch.isupper():
            words.append(" " + ch.lower())
        else:
            words.append(ch)
    return f"{''.join(words)} {label}"


_KIND_WORDS = {
    "subProcess": "sub-process",
    "eventBasedGateway": "event-based gateway",
    "businessRuleTask": "business rule task",
}
