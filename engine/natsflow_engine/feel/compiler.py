"""Compiling a FEEL parse tree into a tree of Python closures.

Every node becomes a :class:`Node` whose ``fn`` takes the environment (a ``Mapping`` of variable
names to values) and returns the node's value. No Python source is generated: the closures are
built from the factories below and call each other directly. Work is done once at compile time
where possible:

* constant sub-expressions are folded (``1 + 2`` and ``date("2024-01-01")`` become constants);
* variable paths ``a.b.c`` become one closure walking a key tuple;
* comparisons against a constant number take an inlined fast path;
* function names, arity and named arguments are resolved and checked (unknown functions and
  wrong argument counts are :class:`FeelSyntaxError`).

Name resolution is dynamic, as in FEEL: a missing variable or path is null. Local names (loop
variables, context entries, function parameters, ``item`` in filters) live in small
:class:`~natsflow_engine.feel.values.Scope` frames chained over the caller's variables.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from lark import Token, Tree

from . import operators as ops
from .compiler_forms import FormsMixin
from .nodes import Node, compare_fn, constant, member, unescape
from .values import Env, FeelFunction, feel_le

__all__ = ["Compiler"]

_CHAINS = {"add": "+", "sub": "+", "mul": "*", "div": "*", "pow": "**", "and_": "and", "or_": "or"}

_ARITHMETIC: dict[str, Callable[[Any, Any], Any]] = {
    "add": ops.add,
    "sub": ops.sub,
    "mul": ops.mul,
    "div": ops.div,
    "pow": ops.power,
}


_CALL = 16
"""Extra steps per call of a function value (argument binding and a new scope)."""


class Compiler(FormsMixin):
    """Compiles one parsed expression: literals, names, operators and logic (see also the mixin)."""

    # ------------------------------------------------------------------------------- literals

    def c_number(self, tree: Tree[Token]) -> Node:
        text = str(tree.children[0])
        try:
            value = float(text) if "." in text else int(text)
        except ValueError:  # longer than Python's int-from-text limit
            value = math.inf
        if value == math.inf:
            raise self.error(tree, "number literal too large")
        return constant(value)

    def c_string(self, tree: Tree[Token]) -> Node:
        return constant(unescape(str(tree.children[0])))

    def c_true(self, tree: Tree[Token]) -> Node:
        return constant(True)

    def c_false(self, tree: Tree[Token]) -> Node:
        return constant(False)

    def c_null(self, tree: Tree[Token]) -> Node:
        return constant(None)

    def c_temporal(self, tree: Tree[Token]) -> Node:
        from .temporal import parse_temporal

        text = unescape(str(tree.children[0]))
        value = parse_temporal(text)
        if value is None:
            raise self.error(tree, f'invalid temporal literal @"{text}"')
        return constant(value)

    # ------------------------------------------------------------------------------- names

    def c_var(self, tree: Tree[Token]) -> Node:
        name = self.name_of(tree.children[0])
        if not self.is_local(name):
            self.free.add(name)

        def var(env: Env) -> Any:
            return env.get(name)

        return Node(var, path=(name,))

    def c_path(self, tree: Tree[Token]) -> Node:
        base = self.compile(tree.children[0])
        key = self.name_of(tree.children[1])
        if base.path is not None:
            root, *rest = base.path
            keys = (*rest, key)
            if len(keys) == 1:

                def path1(env: Env) -> Any:
                    v = env.get(root)
                    if type(v) is dict:
                        return v.get(key)
                    return member(v, key)

                return Node(path1, path=(root, key))

            def path_n(env: Env) -> Any:
                v = env.get(root)
                for k in keys:
                    v = v.get(k) if type(v) is dict else member(v, k)
                return v

            return Node(path_n, path=(root, *keys))
        bf = base.fn

        def path(env: Env) -> Any:
            return member(bf(env), key)

        return self.fold(Node(path), base) if base.const and not isinstance(base.value, list) else Node(path)

    # ------------------------------------------------------------------------------- operators

    def c_neg(self, tree: Tree[Token]) -> Node:
        inner = self.compile(tree.children[0])
        f = inner.fn

        def negate(env: Env) -> Any:
            return ops.neg(f(env))

        return self.fold(Node(negate), inner)

    @staticmethod
    def _spine(tree: Tree[Token]) -> tuple[Tree[Token] | Token, list[tuple[str, Tree[Token] | Token]]]:
        """Flatten a left-associative chain (``a + b - c``) into its first operand and the steps,
        so long chains neither nest Python calls nor hit the nesting limit."""
        family = _CHAINS[str(tree.data)]
        steps: list[tuple[str, Tree[Token] | Token]] = []
        node: Tree[Token] | Token = tree
        while isinstance(node, Tree) and _CHAINS.get(str(node.data)) == family:
            steps.append((str(node.data), node.children[1]))
            node = node.children[0]
        steps.reverse()
        return node, steps

    def _arith(self, tree: Tree[Token]) -> Node:
        first_tree, step_trees = self._spine(tree)
        first = self.compile(first_tree)
        steps = [(_ARITHMETIC[name], self.compile(t)) for name, t in step_trees]
        ff = first.fn
        if len(steps) == 1:
            fn, right = steps[0]
            rf = right.fn

            def arith(env: Env) -> Any:
                try:
                    return fn(ff(env), rf(env))
                except (ArithmeticError, TypeError, ValueError):
                    return None

            return self.fold(Node(arith), first, right)
        pairs = tuple((fn, node.fn) for fn, node in steps)

        def arith_chain(env: Env) -> Any:
            try:
                value = ff(env)
                for fn, rf in pairs:
                    value = fn(value, rf(env))
                return value
            except (ArithmeticError, TypeError, ValueError):
                return None

        return self.fold(Node(arith_chain), first, *(node for _, node in steps))

    c_add = c_sub = c_mul = c_div = c_pow = _arith

    def c_compare(self, tree: Tree[Token]) -> Node:
        left = self.compile(tree.children[0])
        op = str(tree.children[1])
        right = self.compile(tree.children[2])
        return self.fold(Node(compare_fn(op, left, right), boolean=True), left, right)

    def c_between(self, tree: Tree[Token]) -> Node:
        value, low, high = (self.compile(c) for c in tree.children)
        vf, lf, hf = value.fn, low.fn, high.fn

        def between(env: Env) -> Any:
            v = vf(env)
            a = feel_le(lf(env), v)
            if a is False:
                return False
            b = feel_le(v, hf(env))
            if b is False:
                return False
            return True if a is True and b is True else None

        return self.fold(Node(between, boolean=True), value, low, high)

    def _logic_operands(self, tree: Tree[Token]) -> list[Node]:
        first, steps = self._spine(tree)
        return [self.compile(first), *(self.compile(t) for _, t in steps)]

    def c_and_(self, tree: Tree[Token]) -> Node:
        operands = self._logic_operands(tree)
        if len(operands) == 2:
            lf, rf = operands[0].fn, operands[1].fn

            def conj(env: Env) -> Any:
                a = lf(env)
                if a is False:
                    return False
                b = rf(env)
                if b is False:
                    return False
                return True if a is True and b is True else None

            return self.fold(Node(conj, boolean=True), *operands)
        fns = tuple(o.fn for o in operands)

        def conj_n(env: Env) -> Any:
            result: bool | None = True
            for f in fns:
                value = f(env)
                if value is False:
                    return False
                if value is not True:
                    result = None
            return result

        return self.fold(Node(conj_n, boolean=True), *operands)

    def c_or_(self, tree: Tree[Token]) -> Node:
        operands = self._logic_operands(tree)
        if len(operands) == 2:
            lf, rf = operands[0].fn, operands[1].fn

            def disj(env: Env) -> Any:
                a = lf(env)
                if a is True:
                    return True
                b = rf(env)
                if b is True:
                    return True
                return False if a is False and b is False else None

            return self.fold(Node(disj, boolean=True), *operands)
        fns = tuple(o.fn for o in operands)

        def disj_n(env: Env) -> Any:
            result: bool | None = False
            for f in fns:
                value = f(env)
                if value is True:
                    return True
                if value is not False:
                    result = None
            return result

        return self.fold(Node(disj_n, boolean=True), *operands)

    def c_if_expr(self, tree: Tree[Token]) -> Node:
        cond, then, other = (self.compile(c) for c in tree.children)
        cf, tf, of = cond.fn, then.fn, other.fn
        if cond.const:
            return then if cond.value is True else other

        def if_then_else(env: Env) -> Any:
            return tf(env) if cf(env) is True else of(env)

        return Node(if_then_else, boolean=then.boolean and other.boolean)

    def c_function_def(self, tree: Tree[Token]) -> Node:
        *param_trees, body_tree = tree.children
        self.function_defs += 1
        self.costly = True
        params = tuple(self.name_of(p) for p in param_trees if p is not None)
        self.scopes.append(set(params))
        nodes_before = self.nodes
        try:
            body = self.compile(body_tree)
        finally:
            self.scopes.pop()
        bf = body.fn
        cost = self.nodes - nodes_before + _CALL

        def make_function(env: Env) -> Any:
            return FeelFunction(params, bf, env, cost)

        return Node(make_function)
