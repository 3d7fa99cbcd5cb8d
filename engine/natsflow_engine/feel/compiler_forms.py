"""Compiler mixin for the structured forms: lists, contexts, ranges, filters, ``in`` tests,
``instance of``, function calls and the iteration forms ``for``, ``some`` and ``every``.

Filters decide statically when they can: a numeric literal (``list[2]``) indexes, a boolean
expression (``orders[amount > 10]``) filters; anything else is decided on the first item, as
feel-scala does (a number result indexes, otherwise the expression filters). Inside a filter,
``item`` is the current element and, when the element is a context, its entries are names too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import date, datetime, time, timedelta
from typing import Any

from lark import Token, Tree

from .functions import BUILTINS
from .limits import BUDGET, DEFAULT_LIMITS, Budget, check_list, check_string, size_of, spend
from .nodes import CompilerBase, Fn, Node, compare_fn, constant, in_value, unescape
from .regex import REGEX_PATTERN_ARGS, check_pattern
from .values import Env, FeelFunction, FeelRange, ItemScope, Scope, is_number, is_ym_duration

__all__ = ["FormsMixin"]

_COMBINATION = 4
"""Extra steps per combination of a multi-clause ``for``/``some``/``every`` (a new scope each)."""
_BUILTIN = 4
"""Steps per built-in call, besides the sizes it reads and builds."""
_GUARDED = (TypeError, ValueError, ArithmeticError, KeyError, IndexError, AttributeError, RecursionError)


def _index(items: list[Any], position: Any) -> Any:
    if isinstance(position, float) and position.is_integer():
        position = int(position)
    if type(position) is not int or position == 0 or abs(position) > len(items):
        return None
    return items[position - 1] if position > 0 else items[position]


def _iterable(domain: Any) -> list[Any] | range | None:
    """The values a ``for``/``some``/``every`` iterates: list items, integer range members."""
    if domain is None:
        return None
    if isinstance(domain, FeelRange):
        start, end = domain.start, domain.end
        if type(start) is not int or type(end) is not int:
            return None
        step = 1 if end >= start else -1
        if not domain.start_included:
            start += step
        if not domain.end_included:
            end -= step
        members = range(start, end + step, step)
        check_list(len(members), "a range of {n} members")
        return members
    if isinstance(domain, list):
        return domain
    return [domain]


_TYPE_CHECKS: dict[str, Callable[[Any], bool]] = {
    "number": is_number,
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "date": lambda v: type(v) is date,
    "time": lambda v: isinstance(v, time),
    "date and time": lambda v: isinstance(v, datetime),
    "days and time duration": lambda v: isinstance(v, timedelta),
    "years and months duration": is_ym_duration,
    "list": lambda v: isinstance(v, list),
    "context": lambda v: isinstance(v, Mapping),
    "range": lambda v: isinstance(v, FeelRange),
    "function": lambda v: isinstance(v, FeelFunction),
    "Any": lambda v: v is not None,
    "Null": lambda v: v is None,
}


def _bindings(
    clauses: list[tuple[str, Fn]], env: Env, base: dict[str, Any], weight: int
) -> Iterator[Scope] | None:
    """Every combination of the clauses' values as scopes; None when a domain is not iterable.
    Each domain charges ``weight`` steps per value before it is walked."""

    def walk(i: int, local: dict[str, Any]) -> Iterator[Scope]:
        if i == len(clauses):
            yield Scope(dict(local), env)
            return
        name, domain_fn = clauses[i]
        values = _iterable(domain_fn(Scope(local, env)))
        if values is None:
            raise _NotIterable
        spend(len(values) * weight)
        for v in values:
            local[name] = v
            yield from walk(i + 1, local)

    if len(clauses) == 1:
        name, domain_fn = clauses[0]
        values = _iterable(domain_fn(env))
        if values is None:
            return None
        spend(len(values) * weight)
        return (Scope({**base, name: v}, env) for v in values)
    return walk(0, dict(base))


class FormsMixin(CompilerBase):
    """Structured forms; see the module docstring."""

    # ---------------------------------------------------------------------------- collections

    def c_list(self, tree: Tree[Token]) -> Node:
        fns = tuple(self.compile(c).fn for c in tree.children if c is not None)

        def make_list(env: Env) -> Any:
            return [f(env) for f in fns]

        return Node(make_list)

    def c_context(self, tree: Tree[Token]) -> Node:
        entries: list[tuple[str, Fn]] = []
        names: set[str] = set()
        self.scopes.append(names)
        try:
            for entry in tree.children:
                if entry is None:
                    continue
                assert isinstance(entry, Tree)
                key_tree, value_tree = entry.children
                assert isinstance(key_tree, Tree)
                token = key_tree.children[0]
                assert isinstance(token, Token)
                key = unescape(str(token)) if token.type == "STRING" else self.name_of(token)
                entries.append((key, self.compile(value_tree).fn))
                names.add(key)
        finally:
            self.scopes.pop()
        frozen = tuple(entries)
        self.nodes += 2 * len(entries)  # building a dict and a scope per entry costs more than a node

        def make_context(env: Env) -> Any:
            result: dict[str, Any] = {}
            scope = Scope(result, env)
            for key, fn in frozen:
                result[key] = fn(scope)
            return result

        return Node(make_context)

    def c_range(self, tree: Tree[Token]) -> Node:
        open_tok, low_tree, _dots, high_tree, close_tok = tree.children
        low = self.compile(low_tree)
        high = self.compile(high_tree)
        start_in = str(open_tok) == "["
        end_in = str(close_tok) == "]"
        lf, hf = low.fn, high.fn
        if low.const and high.const:
            return constant(FeelRange(low.value, high.value, start_in, end_in))

        def make_range(env: Env) -> Any:
            return FeelRange(lf(env), hf(env), start_in, end_in)

        return Node(make_range)

    # ---------------------------------------------------------------------------- filters

    def c_filter(self, tree: Tree[Token]) -> Node:
        base = self.compile(tree.children[0])
        self.scopes.append({"item"})
        defs_before = self.function_defs
        nodes_before = self.nodes
        try:
            cond = self.compile(tree.children[1])
        finally:
            self.scopes.pop()
        weight = self.nodes - nodes_before
        # one scope object, re-pointed per item, unless a function literal could capture it
        reuse = self.function_defs == defs_before
        bf, cf = base.fn, cond.fn
        if cond.const and is_number(cond.value):
            position = cond.value

            def index(env: Env) -> Any:
                items = bf(env)
                if items is None:
                    return None
                return _index(items if isinstance(items, list) else [items], position)

            return Node(index)
        self.costly = True
        decided = cond.boolean

        def filter_list(env: Env) -> Any:
            items = bf(env)
            if items is None:
                return None
            if not isinstance(items, list):
                items = [items]
            if not items:
                return []
            spend(len(items) * weight)
            scope = ItemScope(items[0], env)
            if not decided:
                first = cf(scope)
                if is_number(first):
                    return _index(items, first)
            if not reuse:
                return [item for item in items if cf(ItemScope(item, env)) is True]
            kept = []
            for item in items:
                scope.item = item
                if cf(scope) is True:
                    kept.append(item)
            return kept

        return Node(filter_list)

    # ---------------------------------------------------------------------------- in / instance of

    def _test_fn(self, value: Node, test: Tree[Token] | Token) -> Fn:
        """A closure testing ``value`` against one positive unary test (``< 5``, ``[1..3]``, ``"a"``)."""
        if isinstance(test, Tree) and test.data == "unary_cmp":
            op = str(test.children[0])
            return compare_fn(op, value, self.compile(test.children[1]))
        target = self.compile(test)
        vf, tf = value.fn, target.fn

        def test_in(env: Env) -> Any:
            return in_value(vf(env), tf(env))

        return test_in

    def c_in_(self, tree: Tree[Token]) -> Node:
        value = self.compile(tree.children[0])
        target = tree.children[1]
        if isinstance(target, Tree) and target.data == "in_group":
            tests = tuple(self._test_fn(value, t) for t in target.children)

            def in_group(env: Env) -> Any:
                seen_null = False
                for test in tests:
                    result = test(env)
                    if result is True:
                        return True
                    seen_null = seen_null or result is None
                return None if seen_null else False

            return Node(in_group, boolean=True)
        return Node(self._test_fn(value, target), boolean=True)

    def c_instance_of(self, tree: Tree[Token]) -> Node:
        value = self.compile(tree.children[0])
        type_token = tree.children[1]
        type_name = " ".join(str(type_token).split())
        check = _TYPE_CHECKS.get(type_name)
        if check is None:
            raise self.error(type_token, f"unknown type '{type_name}'")
        vf = value.fn

        def instance_of(env: Env) -> Any:
            return check(vf(env))

        return Node(instance_of, boolean=True)

    # ---------------------------------------------------------------------------- iteration

    def _iterations(self, trees: list[Tree[Token]]) -> list[tuple[str, Fn]]:
        """Compile ``name in domain`` clauses; each name is visible to the clauses after it."""
        clauses: list[tuple[str, Fn]] = []
        for it in trees:
            name = self.name_of(it.children[0])
            if it.data == "iteration_range":
                low = self.compile(it.children[1]).fn
                high = self.compile(it.children[2]).fn

                def domain(env: Env, low: Fn = low, high: Fn = high) -> Any:
                    return FeelRange(low(env), high(env), True, True)

                clauses.append((name, domain))
            else:
                clauses.append((name, self.compile(it.children[1]).fn))
            self.scopes.append({name})
        return clauses

    def _compile_iteration(
        self, tree: Tree[Token], extra: set[str]
    ) -> tuple[list[tuple[str, Fn]], Fn, bool, int]:
        """The clauses, the body, whether one scope may be reused across iterations (no
        function literal in the body could capture it), and the steps one iteration costs."""
        *its, body_tree = tree.children
        depth = len(self.scopes)
        self.scopes.append(extra)
        self.costly = True
        try:
            clauses = self._iterations(its)  # type: ignore[arg-type]
            defs_before = self.function_defs
            nodes_before = self.nodes
            body = self.compile(body_tree).fn
        finally:
            del self.scopes[depth:]
        return clauses, body, self.function_defs == defs_before, self.nodes - nodes_before

    def c_for_expr(self, tree: Tree[Token]) -> Node:
        clauses, body, reuse, weight = self._compile_iteration(tree, {"partial"})
        if len(clauses) == 1 and reuse:
            name, domain_fn = clauses[0]

            def for_single(env: Env) -> Any:
                values = _iterable(domain_fn(env))
                if values is None:
                    return None
                check_list(len(values))
                spend(len(values) * weight)
                results: list[Any] = []
                local: dict[str, Any] = {"partial": results}
                scope = Scope(local, env)
                for v in values:
                    local[name] = v
                    results.append(body(scope))
                return results

            return Node(for_single)

        def for_loop(env: Env) -> Any:
            results: list[Any] = []
            try:
                scopes = _bindings(clauses, env, {"partial": results}, weight + _COMBINATION)
                if scopes is None:
                    return None
                for scope in scopes:
                    results.append(body(scope))
            except _NotIterable:
                return None
            check_list(len(results))
            return results

        return Node(for_loop)

    def _quantifier(self, tree: Tree[Token], every: bool) -> Node:
        clauses, body, reuse, weight = self._compile_iteration(tree, set())
        if len(clauses) == 1 and reuse:
            name, domain_fn = clauses[0]

            def quantified_single(env: Env) -> Any:
                values = _iterable(domain_fn(env))
                if values is None:
                    return None
                spend(len(values) * weight)
                local: dict[str, Any] = {}
                scope = Scope(local, env)
                for v in values:
                    local[name] = v
                    if (body(scope) is True) is not every:
                        return not every
                return every

            return Node(quantified_single, boolean=True)

        def quantified(env: Env) -> Any:
            try:
                scopes = _bindings(clauses, env, {}, weight + _COMBINATION)
                if scopes is None:
                    return None
                for scope in scopes:
                    if (body(scope) is True) is not every:
                        return not every
            except _NotIterable:
                return None
            return every

        return Node(quantified, boolean=True)

    def c_some_expr(self, tree: Tree[Token]) -> Node:
        return self._quantifier(tree, every=False)

    def c_every_expr(self, tree: Tree[Token]) -> Node:
        return self._quantifier(tree, every=True)

    # ---------------------------------------------------------------------------- calls

    def c_call(self, tree: Tree[Token]) -> Node:
        fname_tree, args_tree = tree.children
        assert isinstance(fname_tree, Tree)
        name_token = fname_tree.children[0]
        assert isinstance(name_token, Token)
        name = self.name_of(name_token)
        named: list[str] = []
        arg_trees: list[Tree[Token]] = []
        if isinstance(args_tree, Tree):
            if args_tree.data == "named":
                for arg in args_tree.children:
                    assert isinstance(arg, Tree)
                    named.append(self.name_of(arg.children[0]))
                    arg_trees.append(arg.children[1])  # type: ignore[arg-type]
            else:
                arg_trees = list(args_tree.children)  # type: ignore[arg-type]
        if self.is_local(name):
            self.costly = True
            return self._call_local(name, named, [self.compile(a) for a in arg_trees])
        builtin = BUILTINS.get(name)
        if builtin is None:
            raise self.error(name_token, f"unknown function '{name}'")
        if not builtin.accepts(len(arg_trees)):
            raise self.error(
                name_token,
                f"function '{name}' expects {builtin.arities()} argument(s), got {len(arg_trees)}",
            )
        if named:
            positions = builtin.order_named(named)
            if positions is None:
                raise self.error(name_token, f"function '{name}' has no parameters named {', '.join(named)}")
            ordered: list[Tree[Token]] = [arg_trees[0]] * len(arg_trees)
            for tree_, pos in zip(arg_trees, positions, strict=True):
                ordered[pos] = tree_
            arg_trees = ordered
        if name == "is defined":
            return self._is_defined(self.compile(arg_trees[0]))
        args = [self.compile(a) for a in arg_trees]
        if name in REGEX_PATTERN_ARGS:
            self._check_pattern(name_token, args, *REGEX_PATTERN_ARGS[name])
        self.uses_clock = self.uses_clock or builtin.clock
        return self._call_builtin(builtin.fn, args, foldable=not builtin.clock)

    def _check_pattern(self, where: Token, args: list[Node], at: int, flags_at: int | None) -> None:
        """Refuse a constant pattern that linear-time matching cannot run (back-references...)."""
        if at >= len(args) or not args[at].const:
            return
        flags: Any = None
        if flags_at is not None and flags_at < len(args):
            if not args[flags_at].const:
                return
            flags = args[flags_at].value
        reason = check_pattern(args[at].value, flags)
        if reason is not None:
            raise self.error(where, reason)

    def _call_builtin(self, fn: Callable[..., Any], args: list[Node], foldable: bool) -> Node:
        """A call of a built-in: null for bad arguments, charged by the sizes it reads and
        builds, and refused when it builds a list or string past the caps (see ``limits``)."""
        fns = tuple(a.fn for a in args)
        if len(fns) == 1:
            (f0,) = fns

            def call1(env: Env) -> Any:
                try:
                    a = f0(env)
                    result = fn(a)
                except _GUARDED:
                    return None
                budget = _running_budget()
                if budget is not None:
                    return _charged(budget, result, a)
                tp = type(result)
                if (tp is str and len(result) > _MAX_STRING) or (tp is list and len(result) > _MAX_LIST):
                    _cap(result)
                return result

            node = Node(call1)
        else:

            def call(env: Env) -> Any:
                try:
                    values = [f(env) for f in fns]
                    result = fn(*values)
                except _GUARDED:
                    return None
                budget = _running_budget()
                if budget is not None:
                    return _charged(budget, result, *values)
                tp = type(result)
                if (tp is str and len(result) > _MAX_STRING) or (tp is list and len(result) > _MAX_LIST):
                    _cap(result)
                return result

            node = Node(call)
        return self.fold(node, *args) if foldable else node

    def _call_local(self, name: str, named: list[str], args: list[Node]) -> Node:
        fns = tuple(a.fn for a in args)
        names = tuple(named)

        def call_local(env: Env) -> Any:
            fn = env.get(name)
            if not isinstance(fn, FeelFunction):
                return None
            values = [f(env) for f in fns]
            if names:
                by_name = dict(zip(names, values, strict=True))
                values = [by_name.get(p) for p in fn.params]
            return fn(*values)

        return Node(call_local)

    def _is_defined(self, arg: Node) -> Node:
        path = arg.path
        if path is None:
            return constant(True)
        root, *keys = path

        def is_defined(env: Env) -> Any:
            if root not in env:
                return False
            value = env.get(root)
            for key in keys:
                if not isinstance(value, Mapping) or key not in value:
                    return False
                value = value[key]
            return True

        return Node(is_defined, boolean=True)


_running_budget = BUDGET.get
_MAX_LIST = DEFAULT_LIMITS.max_list
_MAX_STRING = DEFAULT_LIMITS.max_string


def _charged(budget: Budget, result: Any, *args: Any) -> Any:
    """Charge a built-in call (what it read and built) and cap what it built. Without a budget
    (a call in straight-line code runs once, bounded by its inputs) the callers check only the
    default caps, inline."""
    budget.spend(_BUILTIN + sum(map(size_of, args)) + size_of(result))
    limits = budget.limits
    if type(result) is list:
        if len(result) > limits.max_list:
            check_list(len(result))
    elif type(result) is str and len(result) > limits.max_string:
        check_string(len(result))
    return result


def _cap(result: Any) -> None:
    """Refuse a result past the default caps (no budget running)."""
    if type(result) is list:
        check_list(len(result))
    else:
        check_string(len(result))


class _NotIterable(Exception):
    """A later iteration domain evaluated to null: the whole iteration is null."""
