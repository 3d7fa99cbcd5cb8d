"""Shared building blocks of the FEEL compiler: the :class:`Node` record, comparison and
membership closures, member access, string-literal unescaping and the compiler base class
(error reporting, dispatch by tree rule name, nesting limit, constant folding).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, time, timedelta
from typing import Any

from lark import Token, Tree

from natsflow_engine.errors import FeelSyntaxError

from .limits import spend
from .temporal import temporal_property
from .values import Duration, Env, FeelRange, feel_eq, feel_le, feel_lt

__all__ = ["CompilerBase", "Fn", "Node", "constant", "in_value", "member", "unescape"]

Fn = Callable[[Env], Any]
MAX_DEPTH = 120

_IMMUTABLE = (type(None), bool, int, float, str)


@dataclass(slots=True)
class Node:
    """A compiled sub-expression: its closure plus what the compiler knows about it statically."""

    fn: Fn
    const: bool = False
    value: Any = None
    boolean: bool = False  # always yields a boolean or null (comparisons, logic, quantifiers)
    path: tuple[str, ...] | None = None  # a plain variable path: ("a", "b") for a.b


def constant(value: Any) -> Node:
    def const_fn(env: Env) -> Any:
        return value

    return Node(const_fn, const=True, value=value, boolean=isinstance(value, bool))


def member(value: Any, key: str) -> Any:
    """``value.key``: context entry, mapped over lists, or a temporal property; else null."""
    if isinstance(value, Mapping):
        return value.get(key)
    if isinstance(value, list):
        spend(len(value))
        return [
            item.get(key) if type(item) is dict else member(item, key) if isinstance(item, (Mapping, list)) else None
            for item in value
        ]
    if value is None:
        return None
    return temporal_property(value, key)


def _not_eq(a: Any, b: Any) -> bool | None:
    result = feel_eq(a, b)
    return None if result is None else not result


_COMPARATORS: dict[str, Callable[[Any, Any], bool | None]] = {
    "=": feel_eq,
    "!=": _not_eq,
    "<": feel_lt,
    "<=": feel_le,
    ">": lambda a, b: feel_lt(b, a),
    ">=": lambda a, b: feel_le(b, a),
}
# Python's own comparison for operands of one plain type (int/float/str), where it matches FEEL.
# (Not the `operator` module: the repository's top-level `operator/` folder shadows it for mypy.)
_PY_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}


def compare_fn(op: str, left: Node, right: Node) -> Fn:
    """A closure for ``left op right`` with fast paths for numbers and plain variables."""
    slow = _COMPARATORS[op]
    fast = _PY_OPS[op]
    lf, rf = left.fn, right.fn
    if right.const and type(right.value) in (int, float):
        c = right.value
        if left.path is not None and len(left.path) == 1:
            name = left.path[0]

            def var_cmp_const(env: Env) -> Any:
                a = env.get(name)
                t = type(a)
                if t is int or t is float:
                    return fast(a, c)
                return slow(a, c)

            return var_cmp_const

        def cmp_const(env: Env) -> Any:
            a = lf(env)
            t = type(a)
            if t is int or t is float:
                return fast(a, c)
            return slow(a, c)

        return cmp_const

    def cmp(env: Env) -> Any:
        a = lf(env)
        b = rf(env)
        t = type(a)
        if t is type(b) and (t is int or t is float or t is str):
            return fast(a, b)
        return slow(a, b)

    return cmp


def in_value(value: Any, target: Any) -> bool | None:
    """``value in target`` for a target value: range containment, list membership, or equality."""
    if isinstance(target, FeelRange):
        return target.contains(value)
    if isinstance(target, list):
        spend(len(target))
        for element in target:
            if isinstance(element, FeelRange):
                if element.contains(value) is True:
                    return True
            elif feel_eq(value, element) is True:
                return True
        return False
    return feel_eq(value, target)


class CompilerBase:
    """State and plumbing shared by the compiler mixins. One instance compiles one expression."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.scopes: list[set[str]] = []
        self.free: set[str] = set()
        self.uses_clock = False
        self.depth = 0
        self.function_defs = 0  # function literals compiled so far (see scope reuse in loops)
        self.nodes = 0  # tree nodes compiled so far: the weight of a loop body or function body
        self.costly = False  # loops, calls or many nodes: evaluation runs under a step budget

    # ------------------------------------------------------------------------------- plumbing

    def error(self, where: Tree[Token] | Token | None, message: str) -> FeelSyntaxError:
        column = 1
        if isinstance(where, Token) and where.start_pos is not None:
            column = where.start_pos + 1
        elif isinstance(where, Tree) and not where.meta.empty:
            column = where.meta.start_pos + 1
        return FeelSyntaxError(self.source, column, message)

    def is_local(self, name: str) -> bool:
        return any(name in scope for scope in self.scopes)

    def compile(self, tree: Tree[Token] | Token) -> Node:
        self.depth += 1
        self.nodes += 1
        try:
            if self.depth > MAX_DEPTH:
                raise self.error(tree, f"expression nested too deeply (more than {MAX_DEPTH} levels)")
            if isinstance(tree, Token):  # pragma: no cover - the grammar wraps every token
                raise self.error(tree, f"unexpected token {tree.value!r}")
            handler: Callable[[Tree[Token]], Node] = getattr(self, "c_" + str(tree.data))
            return handler(tree)
        finally:
            self.depth -= 1

    def fold(self, node: Node, *children: Node) -> Node:
        """Evaluate ``node`` now when its children are constant and the result is immutable."""
        if all(c.const for c in children):
            value = node.fn({})
            if isinstance(value, _IMMUTABLE) or _is_temporal(value):
                folded = constant(value)
                folded.boolean = node.boolean or folded.boolean
                return folded
        return node

    @staticmethod
    def name_of(tree: Tree[Token] | Token) -> str:
        token = tree if isinstance(tree, Token) else tree.children[0]
        assert isinstance(token, Token)
        text = str(token.value)
        if token.type == "BNAME":
            return text[1:-1]
        return " ".join(text.split())


def _is_temporal(value: Any) -> bool:
    return isinstance(value, (date, time, timedelta, Duration))


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "'": "'", "\\": "\\", "/": "/", "b": "\b", "f": "\f"}


def unescape(literal: str) -> str:
    """The value of a quoted FEEL string literal (``"a\\"b"`` -> ``a"b``), ``\\uXXXX`` included."""
    body = literal[1:-1]
    if "\\" not in body:
        return body
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\" or i + 1 >= len(body):
            out.append(ch)
            i += 1
            continue
        nxt = body[i + 1]
        if nxt == "u" and _is_hex(body[i + 2 : i + 6]):
            out.append(chr(int(body[i + 2 : i + 6], 16)))
            i += 6
        elif nxt == "U" and _is_hex(body[i + 2 : i + 8]) and int(body[i + 2 : i + 8], 16) <= 0x10FFFF:
            out.append(chr(int(body[i + 2 : i + 8], 16)))
            i += 8
        else:
            out.append(_ESCAPES.get(nxt, "\\" + nxt))
            i += 2
    text = "".join(out)
    try:  # join surrogate pairs written as two \u escapes
        return text.encode("utf-16", "surrogatepass").decode("utf-16")
    except UnicodeError:
        return text


def _is_hex(text: str) -> bool:
    return len(text) in (4, 6) and all(c in "0123456789abcdefABCDEF" for c in text) if text else False
