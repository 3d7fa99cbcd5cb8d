"""Regular expressions for ``matches``, ``replace``, ``split`` and ``extract``, in linear time.

Patterns run on RE2 (the ``google-re2`` package): matching time grows linearly with the input
whatever the pattern, so ``matches(s, "(a+)+$")`` cannot stall the engine. RE2 implements the
XPath/FEEL regex syntax models use, with these differences (documented in docs/design.md):

* no back-references (``(a)\\1``) and no look-around (``(?=``, ``(?!``, ``(?<=``, ``(?<!``; XPath
  has none either). A pattern that Python's ``re`` accepts but RE2 cannot run is refused with
  :class:`RegexUnsupported`: at deploy when the pattern is a constant, as an evaluation error
  (an incident) when it arrives at run time. A pattern that is not a regular expression at all
  (``"("``) gives null, as before;
* ``\\d``, ``\\w`` (and ``\\D``, ``\\W`` outside classes) are rewritten to their Unicode forms
  (``\\p{Nd}``, letters/digits/underscore) so they match as XPath's do; ``\\s`` and ``\\b`` are
  ASCII in RE2;
* ``$`` without the ``m`` flag matches only at the very end (XPath's rule; Python's ``re`` also
  matched before a final newline);
* XPath flags: ``i``, ``s``, ``m`` as in XPath, ``x`` removes whitespace outside character
  classes, ``q`` quotes the whole pattern.

``replace`` takes XPath replacement strings: ``$N`` is group N (null if the pattern has fewer
groups), ``\\$`` and ``\\\\`` are a literal ``$`` and ``\\``.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import re2

from .limits import EvaluationAborted, check_string, spend

__all__ = [
    "REGEX_CALL",
    "REGEX_PATTERN_ARGS",
    "RegexUnsupported",
    "check_pattern",
    "compile_pattern",
    "expand_template",
    "found",
    "regex_of",
    "substitute",
]

REGEX_PATTERN_ARGS: dict[str, tuple[int, int | None]] = {
    "matches": (1, 2),
    "replace": (1, 3),
    "split": (1, None),
    "extract": (1, None),
}
"""Built-ins taking a pattern: position of the pattern and of the flags argument (if any)."""

REGEX_CALL = 16
"""Steps charged per call of a regex built-in, on top of what every built-in call costs."""

_MAX_MEM = 8 << 20
"""RE2's memory budget per compiled pattern; bigger patterns are refused (``pattern too large``)."""

_FLAGS = frozenset("smixq")
_LOOKAROUND = re.compile(r"\(\?<?[=!]")


class RegexUnsupported(EvaluationAborted):
    """A valid regular expression that linear-time matching cannot run."""


def _options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False
    options.max_mem = _MAX_MEM
    return options


def _strip_whitespace(pattern: str) -> str:
    """XPath flag ``x``: whitespace goes, except inside character classes."""
    out: list[str] = []
    in_class = False
    escaped = False
    for ch in pattern:
        if escaped:
            out.append(ch)
            escaped = False
        elif ch == "\\":
            out.append(ch)
            escaped = True
        elif in_class:
            out.append(ch)
            in_class = ch != "]"
        elif ch in " \t\n\r":
            continue
        else:
            out.append(ch)
            in_class = ch == "["
    return "".join(out)


_IN_CLASS = {"d": r"\p{Nd}", "w": r"\p{L}\p{N}_"}
_OUTSIDE = {"d": r"\p{Nd}", "D": r"\P{Nd}", "w": r"[\p{L}\p{N}_]", "W": r"[^\p{L}\p{N}_]"}


def _unicode_classes(pattern: str) -> str:
    r"""Rewrite ``\d`` and ``\w`` (RE2: ASCII) to the Unicode classes XPath means."""
    if "\\" not in pattern:
        return pattern
    out: list[str] = []
    in_class = False
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            nxt = pattern[i + 1]
            table = _IN_CLASS if in_class else _OUTSIDE
            out.append(table.get(nxt, ch + nxt))
            i += 2
            continue
        if ch == "[" and not in_class:
            in_class = True
        elif ch == "]" and in_class:
            in_class = False
        out.append(ch)
        i += 1
    return "".join(out)


def _reason(pattern: str, error: str) -> str:
    if _LOOKAROUND.search(pattern):
        return "look-around assertions"
    if re.search(r"\\[1-9]", pattern):
        return "back-references"
    return error


@functools.lru_cache(maxsize=512)
def compile_pattern(pattern: str, flags: str) -> Any:
    """The compiled pattern, or None when it is not a valid regular expression (FEEL null).

    Raises :class:`RegexUnsupported` for a valid pattern RE2 cannot run.
    """
    if set(flags) - _FLAGS:
        return None
    source = pattern
    if "q" in flags:
        source = re2.escape(pattern)
    else:
        if "x" in flags:
            source = _strip_whitespace(source)
        source = _unicode_classes(source)
    inline = "".join(f for f in "ism" if f in flags)
    if inline:
        source = f"(?{inline}){source}"
    try:
        return re2.compile(source, _options())
    except re2.error as error:
        message = error.args[0].decode() if error.args and isinstance(error.args[0], bytes) else str(error)
    try:
        re.compile(pattern)
    except (re.error, OverflowError, RecursionError):
        return None
    raise RegexUnsupported(
        f"the pattern {pattern!r} uses {_reason(pattern, message)}, "
        "which linear-time regular expressions cannot run"
    )


def check_pattern(pattern: Any, flags: Any) -> str | None:
    """Why a constant pattern cannot run (for deploy-time refusal), or None."""
    if not isinstance(pattern, str) or not (flags is None or isinstance(flags, str)):
        return None
    try:
        compile_pattern(pattern, flags or "")
    except RegexUnsupported as error:
        return error.message
    return None


def regex_of(pattern: Any, flags: Any = None) -> Any:
    """The compiled pattern for a built-in, or None (null) for a bad pattern or bad flags.
    Charges :data:`REGEX_CALL` steps: a match through the RE2 wrapper costs a few microseconds."""
    if not isinstance(pattern, str) or not (flags is None or isinstance(flags, str)):
        return None
    spend(REGEX_CALL)
    return compile_pattern(pattern, flags or "")


_UNANCHORED = re2._re2.RE2.Anchor.UNANCHORED
_NO_MATCH = (-1, -1)


def found(regex: Any, text: str) -> bool:
    """Whether ``regex`` matches somewhere in ``text``: RE2 directly (the wrapper's ``search``
    decodes offsets for every group and costs ~10x more)."""
    data = text.encode()
    spans = regex._regexp.Match(_UNANCHORED, data, 0, len(data))
    return bool(spans[0] != _NO_MATCH)


_TEMPLATE = re.compile(r"\\(.)|\$(\d+)", re.DOTALL)


def expand_template(replacement: str, groups: int) -> list[str | int] | None:
    """An XPath replacement string as literal pieces and group numbers; None when it names a
    group the pattern does not have. ``\\x`` is a literal ``x``; a ``$`` without digits is literal."""
    pieces: list[str | int] = []
    last = 0
    for m in _TEMPLATE.finditer(replacement):
        pieces.append(replacement[last : m.start()])
        last = m.end()
        if m.group(1):
            pieces.append(m.group(1))
        elif m.group(2):
            number = int(m.group(2))
            if number > groups:
                return None
            pieces.append(number)
    pieces.append(replacement[last:])
    return pieces


def substitute(regex: Any, template: list[str | int], text: str) -> str:
    """``regex.sub`` with an expanded template, refusing a result past the string cap."""
    produced = len(text)

    def replace(match: Any) -> str:
        nonlocal produced
        piece = "".join(p if isinstance(p, str) else (match.group(p) or "") for p in template)
        produced += len(piece)
        check_string(produced)
        return piece

    result: str = regex.sub(replace, text)
    return result
