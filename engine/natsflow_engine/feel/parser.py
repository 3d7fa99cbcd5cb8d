"""Parsing FEEL source into a lark tree, and turning lark errors into :class:`FeelSyntaxError`.

The LALR(1) parser is built once, lazily, from ``grammar.lark`` plus a generated ``MULTINAME``
terminal that matches the registered multi-word function names (``string length``, ``date and
time`` ...) only when an opening parenthesis follows, so ``date and time(x)`` is one call while
``date and time_ok`` stays two names joined by ``and``.

Error messages name what was expected in words ("an expression", "an operator", "')'") rather
than lark's terminal names; columns are 1-based offsets into the whole source text.
"""

from __future__ import annotations

import re
import threading
from importlib import resources

from lark import Lark, Token, Tree
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from natsflow_engine.errors import FeelSyntaxError

from . import builtins  # noqa: F401  (registers the built-ins before the grammar is generated)
from .functions import multi_word_names

__all__ = ["parse"]

_lock = threading.Lock()
_parser: Lark | None = None

_EXPRESSION_START = {
    "NAME",
    "NUMBER",
    "STRING",
    "MULTINAME",
    "BNAME",
    "LSQB",
    "LBRACE",
    "LPAR",
    "MINUS",
    "_TRUE",
    "_FALSE",
    "_NULL",
    "AT",
    "_IF",
    "_FOR",
    "_SOME",
    "_EVERY",
    "_FUNCTION",
}
_OPERATORS = {
    "COMP_OP",
    "PLUS",
    "MINUS",
    "STAR",
    "SLASH",
    "DOT",
    "LSQB",
    "LPAR",
    "_AND",
    "_OR",
    "_IN",
    "_BETWEEN",
    "_INSTANCE",
}
_DISPLAY = {
    "$END": "end of input",
    "RPAR": "')'",
    "RSQB": "']'",
    "RBRACE": "'}'",
    "COMMA": "','",
    "COLON": "':'",
    "NAME": "a name",
    "BNAME": "a name",
    "STRING": "a string",
    "TYPENAME": "a type",
    "COMP_OP": "a comparison operator",
    "NUMBER": "a number",
}


def _build() -> Lark:
    text = resources.files(__package__).joinpath("grammar.lark").read_text(encoding="utf-8")
    alternatives = "|".join(re.escape(n).replace(r"\ ", r"\s+") for n in multi_word_names())
    text += f"\nMULTINAME.3: /(?:{alternatives})(?=\\s*\\()/\n"
    return Lark(text, parser="lalr", propagate_positions=True, maybe_placeholders=True)


def _get_parser() -> Lark:
    global _parser
    if _parser is None:
        with _lock:
            if _parser is None:
                _parser = _build()
    return _parser


def _describe(expected: set[str]) -> str:
    parser = _get_parser()

    def pattern(name: str) -> str:
        try:
            return str(parser.get_terminal(name).pattern.value).replace("\\b", "")
        except KeyError:
            return name

    words: list[str] = []
    rest = set(expected)
    if "NUMBER" in rest:
        rest -= _EXPRESSION_START
        words.append("an expression")
    if "PLUS" in rest:
        rest = {n for n in rest if n not in _OPERATORS and pattern(n) != "**"}
        words.append("an operator")
    end = "$END" in rest
    rest.discard("$END")
    for name in sorted(rest, key=lambda n: (n not in _DISPLAY, n)):
        words.append(_DISPLAY.get(name) or "'" + pattern(name) + "'")
    if end:
        words.append(_DISPLAY["$END"])
    words = list(dict.fromkeys(words))
    if not words:
        return "nothing"
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " or " + words[-1]


def _syntax_error(source: str, error: UnexpectedInput) -> FeelSyntaxError:
    if isinstance(error, UnexpectedToken):
        token = error.token
        expected = set(error.expected)
        if error.interactive_parser is not None:
            try:
                expected = set(error.interactive_parser.accepts()) or expected  # type: ignore[no-untyped-call]
            except LarkError:  # pragma: no cover - accepts() replays the parser; keep lark's guess
                pass
        if token.type == "$END":
            return FeelSyntaxError(
                source, len(source) + 1, f"unexpected end of input, expected {_describe(expected)}"
            )
        column = (token.start_pos or 0) + 1
        if token.type == "NAME":
            unknown = _unknown_multi_word_call(source, token)
            if unknown is not None:
                return unknown
        return FeelSyntaxError(source, column, f"unexpected '{token.value}', expected {_describe(expected)}")
    if isinstance(error, UnexpectedCharacters):
        pos = error.pos_in_stream or 0
        column = pos + 1
        char = source[pos] if pos < len(source) else ""
        if char == '"':
            return FeelSyntaxError(source, column, "unterminated string literal")
        allowed = error.allowed or set()
        return FeelSyntaxError(
            source, column, f"unexpected character {char!r}, expected {_describe(allowed)}"
        )
    column = (getattr(error, "pos_in_stream", None) or len(source)) + 1
    return FeelSyntaxError(source, column, str(error).splitlines()[0])


_KEYWORDS = {
    "and",
    "or",
    "in",
    "if",
    "then",
    "else",
    "for",
    "return",
    "some",
    "every",
    "satisfies",
    "between",
    "instance",
    "of",
    "function",
    "true",
    "false",
    "null",
}


def _unknown_multi_word_call(source: str, token: Token) -> FeelSyntaxError | None:
    """``string lenght(x)``: names directly followed by "(" that form no known function name."""
    start = token.start_pos or 0
    end = token.end_pos or start
    if not source[end:].lstrip().startswith("("):
        return None
    words = [m for m in re.finditer(r"[A-Za-z_]\w*", source[:start])]
    run: list[re.Match[str]] = []
    for m in reversed(words):  # the words right before the token, up to a keyword or other text
        following = run[0].start() if run else start
        if m.group() in _KEYWORDS or source[m.end() : following].strip():
            break
        run.insert(0, m)
    if not run:
        return None
    name = " ".join([*(m.group() for m in run), str(token.value)])
    return FeelSyntaxError(source, run[0].start() + 1, f"unknown function '{name}'")


def parse(source: str) -> Tree[Token]:
    """Parse FEEL source text into a lark tree; raise :class:`FeelSyntaxError` on any problem."""
    if not source.strip():
        raise FeelSyntaxError(source, len(source) + 1, "empty expression, expected an expression")
    try:
        return _get_parser().parse(source)
    except UnexpectedInput as error:
        raise _syntax_error(source, error) from None
    except LarkError as error:
        raise FeelSyntaxError(source, len(source) + 1, str(error).splitlines()[0]) from None
