"""Safe expressions for branch conditions, computed scores and bands.

Expressions are evaluated by ``simpleeval`` (never Python's ``eval``), and hemmed in further so that
a hostile or careless expression cannot hang the engine or read anything it should not:

* at load time the syntax tree is checked against a whitelist: arithmetic, comparisons, ``and``/``or``/
  ``not``, ``x if c else y``, list literals, calls of the functions below, ``ns.field`` and ``ns['key']``
  on namespaces (``obs``, ``profile``, ``category``, structured answers). No lambdas, comprehensions,
  f-strings, keyword arguments, dunder names or method calls; at most :data:`MAX_LENGTH` characters
  and :data:`MAX_NODES` syntax nodes. Without loops, evaluation time is bounded by the tree's size;
* at run time numbers stay within ±10^15 and finite, powers are small, strings and lists stay short,
  ``*`` and ``%`` work on numbers only (no string repetition or formatting).

Functions: ``min max sum len abs round int float str bool any all``, ``count(list, x)``,
``between(x, low, high)`` (inclusive), ``coalesce(x, default)`` (``default`` when ``x`` is None) and
the national follow-up's visit classification, ``national_htn_class(...)``, ``national_dm_class(...)`` and
``national_next_visit_days(class)`` (:mod:`flows.national_followup`).
Examples::

    phq9_q1 + phq9_q2 + phq9_q3          # a score
    bp.sbp >= 180 or bp.dbp >= 110       # a red flag
    'diabetes' in past_history           # a multiple-choice answer
    coalesce(obs.sbp, 0) >= 140 and age >= 65

An evaluator made with ``unknown_is_false=True`` (tag rules, over facts a patient may not have) reads
None as "unknown": arithmetic on None gives None and an ordering comparison (``< <= > >=``,
``between``) with None is false, so ``latest.sbp >= 140 or latest.dbp >= 90`` holds on the DBP alone
when there is no SBP, instead of failing.
"""

from __future__ import annotations

import ast
import math
import operator
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import simpleeval

from flows import national_followup

MAX_LENGTH = 1000
MAX_NODES = 250
MAX_NUMBER = 10**15
MAX_POWER = 100
MAX_SEQUENCE = 1000
MAX_STRING_LITERAL = 200


class ExpressionError(ValueError):
    """Raise when an expression is not allowed, or fails when evaluated."""


class Namespace(Mapping[str, Any]):
    """A read-only mapping reachable with dots in expressions; a missing key reads as None."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def lookup(self, key: object) -> Any:
        """Return the value under ``key``, or None."""
        return self._data.get(key) if isinstance(key, str) else None

    def __repr__(self) -> str:
        return f"Namespace({dict(self._data)!r})"


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _guard(value: Any) -> Any:
    """Return ``value`` if it stays within the limits, else raise."""
    if _is_number(value):
        if isinstance(value, float) and not math.isfinite(value):
            raise ExpressionError("the result is not a finite number")
        if abs(value) > MAX_NUMBER:
            raise ExpressionError("a number grew too large")
    elif isinstance(value, str | list | tuple) and len(value) > MAX_SEQUENCE:
        raise ExpressionError("a text or list grew too long")
    return value


def _numbers(*values: Any) -> None:
    for value in values:
        if not isinstance(value, int | float):
            raise ExpressionError(f"expected a number, got {type(value).__name__}")


def _add(left: Any, right: Any) -> Any:
    if isinstance(left, str) and isinstance(right, str):
        return _guard(left + right)
    if isinstance(left, list) and isinstance(right, list):
        return _guard(left + right)
    _numbers(left, right)
    return _guard(left + right)


def _arith(function: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def apply(left: Any, right: Any) -> Any:
        _numbers(left, right)
        return _guard(function(left, right))

    return apply


def _power(base: Any, exponent: Any) -> Any:
    _numbers(base, exponent)
    if abs(exponent) > MAX_POWER or abs(base) > MAX_NUMBER:
        raise ExpressionError("a power is too large")
    return _guard(base**exponent)


def _contains(item: Any, container: Any) -> bool:
    if isinstance(container, Namespace):
        return item in container
    if isinstance(container, str):
        if not isinstance(item, str):
            raise ExpressionError("'in' on text needs text on the left")
        return item in container
    if isinstance(container, list | tuple | set | frozenset):
        return item in container
    raise ExpressionError(f"'in' needs a list, a set or a text, got {type(container).__name__}")


def _unary(function: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def apply(value: Any) -> Any:
        _numbers(value)
        return _guard(function(value))

    return apply


_OPERATORS: dict[type, Callable[..., Any]] = {
    ast.Add: _add,
    ast.Sub: _arith(operator.sub),
    ast.Mult: _arith(operator.mul),
    ast.Div: _arith(operator.truediv),
    ast.FloorDiv: _arith(operator.floordiv),
    ast.Mod: _arith(operator.mod),
    ast.Pow: _power,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Gt: operator.gt,
    ast.Lt: operator.lt,
    ast.GtE: operator.ge,
    ast.LtE: operator.le,
    ast.In: _contains,
    ast.NotIn: lambda item, container: not _contains(item, container),
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
    ast.Not: operator.not_,
    ast.USub: _unary(operator.neg),
    ast.UAdd: _unary(operator.pos),
}


def _unknown_is_false(function: Callable[..., Any], *, comparison: bool) -> Callable[..., Any]:
    """``function`` reading None as unknown: a comparison with it is false, arithmetic on it is None."""

    def apply(*values: Any) -> Any:
        if any(value is None for value in values):
            return False if comparison else None
        return function(*values)

    return apply


_ORDERINGS = (ast.Gt, ast.Lt, ast.GtE, ast.LtE)
_ARITHMETIC = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow, ast.USub, ast.UAdd)
_UNKNOWN_IS_FALSE_OPERATORS: dict[type, Callable[..., Any]] = {
    **_OPERATORS,
    **{kind: _unknown_is_false(_OPERATORS[kind], comparison=True) for kind in _ORDERINGS},
    **{kind: _unknown_is_false(_OPERATORS[kind], comparison=False) for kind in _ARITHMETIC},
}


def _sequence(values: tuple[Any, ...]) -> list[Any]:
    if len(values) == 1 and isinstance(values[0], list | tuple | set | frozenset):
        return list(values[0])
    return list(values)


def _min(*values: Any) -> Any:
    return min(_sequence(values))


def _max(*values: Any) -> Any:
    return max(_sequence(values))


def _sum(values: Iterable[Any]) -> Any:
    items = list(values)
    _numbers(*items)
    return _guard(sum(items))


def _round(value: Any, digits: int = 0) -> Any:
    _numbers(value)
    if not isinstance(digits, int) or not 0 <= digits <= 10:
        raise ExpressionError("round() takes 0 to 10 digits")
    return round(value, digits) if digits else round(value)


def _int(value: Any) -> int:
    if isinstance(value, str) and len(value) > 20:
        raise ExpressionError("int() of a long text")
    return int(value)


def _float(value: Any) -> float:
    if isinstance(value, str) and len(value) > 40:
        raise ExpressionError("float() of a long text")
    return float(value)


def _str(value: Any) -> str:
    if not isinstance(value, str | int | float | bool | type(None)):
        raise ExpressionError("str() takes a single value")
    return str(value)


def _count(items: Any, value: Any) -> int:
    if not isinstance(items, list | tuple):
        raise ExpressionError("count() needs a list")
    return items.count(value)


def _between(value: Any, low: Any, high: Any) -> bool:
    _numbers(value, low, high)
    return bool(low <= value <= high)


def _coalesce(value: Any, default: Any) -> Any:
    return default if value is None else value


def _classification(function: Callable[..., Any]) -> Callable[..., Any]:
    """A visit classification of :mod:`flows.national_followup`, its input errors as expression errors."""

    def classify(*arguments: Any) -> Any:
        try:
            return function(*arguments)
        except national_followup.ClassificationError as wrong:
            raise ExpressionError(str(wrong)) from None

    return classify


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "min": _min,
    "max": _max,
    "sum": _sum,
    "len": len,
    "abs": _unary(abs),
    "round": _round,
    "int": _int,
    "float": _float,
    "str": _str,
    "bool": bool,
    "any": any,
    "all": all,
    "count": _count,
    "between": _between,
    "coalesce": _coalesce,
    "national_htn_class": _classification(national_followup.national_htn_class),
    "national_dm_class": _classification(national_followup.national_dm_class),
    "national_next_visit_days": _classification(national_followup.national_next_visit_days),
}

#: What the functions do with an unknown (None) argument under ``unknown_is_false``.
_UNKNOWN_IS_FALSE_FUNCTIONS: dict[str, Callable[..., Any]] = {
    **FUNCTIONS,
    "between": _unknown_is_false(_between, comparison=True),
    "abs": _unknown_is_false(FUNCTIONS["abs"], comparison=False),
    "round": _unknown_is_false(_round, comparison=False),
}

_ALLOWED_NODES: tuple[type, ...] = (
    ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.BinOp, ast.Add, ast.Sub, ast.Mult, ast.Div,
    ast.FloorDiv, ast.Mod, ast.Pow, ast.UnaryOp, ast.Not, ast.USub, ast.UAdd, ast.Compare, ast.Eq,
    ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn, ast.Is, ast.IsNot, ast.IfExp,
    ast.Call, ast.Constant, ast.Name, ast.Load, ast.Attribute, ast.Subscript, ast.List, ast.Tuple,
)  # fmt: skip

_DESCRIPTIONS = {
    "Lambda": "lambda", "ListComp": "a comprehension", "SetComp": "a comprehension",
    "DictComp": "a comprehension", "GeneratorExp": "a comprehension", "JoinedStr": "an f-string",
    "NamedExpr": "':='", "Dict": "a dict", "Set": "a set", "Starred": "'*'", "Slice": "a slice",
    "Await": "await", "Yield": "yield", "BitAnd": "'&'", "BitOr": "'|'", "BitXor": "'^'",
    "LShift": "'<<'", "RShift": "'>>'", "Invert": "'~'", "MatMult": "'@'",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Expression:
    """A checked expression, parsed once and evaluated many times."""

    source: str
    tree: ast.expr
    names: frozenset[str]

    def unknown_names(self, known: Iterable[str]) -> list[str]:
        """Return the names used here that are not in ``known``, sorted."""
        return sorted(self.names.difference(known))


def compile_expression(source: str) -> Expression:
    """Parse and check ``source``; raise :class:`ExpressionError` with a reason for staff if refused."""
    if not isinstance(source, str) or not source.strip():
        raise ExpressionError("the expression is empty")
    if len(source) > MAX_LENGTH:
        raise ExpressionError(f"the expression is longer than {MAX_LENGTH} characters")
    text = " ".join(source.split("\n")).strip()
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as failure:
        detail = getattr(failure, "msg", None) or str(failure) or type(failure).__name__
        raise ExpressionError(f"syntax error: {detail}") from None
    names: set[str] = set()
    called: set[int] = set()
    for count, node in enumerate(ast.walk(tree), start=1):
        if count > MAX_NODES:
            raise ExpressionError(f"the expression has more than {MAX_NODES} parts")
        if not isinstance(node, _ALLOWED_NODES):
            name = type(node).__name__
            raise ExpressionError(f"{_DESCRIPTIONS.get(name, name)} is not allowed in expressions")
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name):
                shown = ast.unparse(node.func)[:40]
                raise ExpressionError(f"calling '{shown}' is not allowed (only the listed functions can be called)")
            if node.func.id not in FUNCTIONS:
                raise ExpressionError(f"unknown function '{node.func.id}'")
            if node.keywords:
                raise ExpressionError("keyword arguments are not allowed in expressions")
            called.add(id(node.func))
        elif isinstance(node, ast.Constant):
            value = node.value
            if not isinstance(value, bool | int | float | str | type(None)):
                raise ExpressionError(f"the constant {value!r} is not allowed")
            if isinstance(value, str) and len(value) > MAX_STRING_LITERAL:
                raise ExpressionError(f"a text in the expression is longer than {MAX_STRING_LITERAL} characters")
            if isinstance(value, int | float) and (abs(value) > MAX_NUMBER or not math.isfinite(value)):
                raise ExpressionError("a number in the expression is too large")
        elif isinstance(node, ast.Name):
            if node.id.startswith("_"):
                raise ExpressionError(f"the name '{node.id}' is not allowed")
            if id(node) not in called and node.id not in ("True", "False", "None"):
                names.add(node.id)
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            raise ExpressionError(f"the field '{node.attr}' is not allowed")
    return Expression(source=source, tree=tree.body, names=frozenset(names))


class _Evaluator(simpleeval.SimpleEval):  # type: ignore[misc]
    """simpleeval with our operators and functions, and attribute access on namespaces only."""

    def __init__(self, *, unknown_is_false: bool = False) -> None:
        operators = _UNKNOWN_IS_FALSE_OPERATORS if unknown_is_false else _OPERATORS
        functions = _UNKNOWN_IS_FALSE_FUNCTIONS if unknown_is_false else FUNCTIONS
        super().__init__(operators=dict(operators), functions=dict(functions), names={})
        keep = set(_ALLOWED_NODES)
        inherited: dict[type, Callable[..., Any]] = getattr(self, "nodes", {})
        self.nodes = {kind: handler for kind, handler in inherited.items() if kind in keep}
        self.nodes[ast.List] = self._eval_list
        self.nodes[ast.Tuple] = self._eval_list

    def _eval_list(self, node: ast.List | ast.Tuple) -> list[Any]:
        return _guard([self._eval(element) for element in node.elts])  # type: ignore[no-any-return]

    def _eval_attribute(self, node: ast.Attribute) -> Any:
        base = self._eval(node.value)
        if isinstance(base, Namespace):
            return base.lookup(node.attr)
        raise ExpressionError(f"'.{node.attr}' works only on obs, profile, category and structured answers")

    def _eval_subscript(self, node: ast.Subscript) -> Any:
        container = self._eval(node.value)
        key = self._eval(node.slice)
        if isinstance(container, Namespace):
            return container.lookup(key)
        if isinstance(container, list | tuple | str) and isinstance(key, int) and not isinstance(key, bool):
            return container[key]
        raise ExpressionError("'[...]' works on namespaces with a text key and on lists with a number")

    def _eval_call(self, node: ast.Call) -> Any:
        functions: dict[str, Callable[..., Any]] = self.functions
        if not isinstance(node.func, ast.Name) or node.func.id not in functions:
            raise ExpressionError("unknown function")
        return _guard(functions[node.func.id](*(self._eval(argument) for argument in node.args)))


_PER_THREAD = threading.local()


class Evaluator:
    """Evaluate checked expressions against a set of names.

    With ``unknown_is_false`` None reads as an unknown fact (see the module docstring). The simpleeval
    machinery behind it is built once per thread and reused (it keeps no state between evaluations
    but the names, which each evaluation sets).
    """

    __slots__ = ("_unknown_is_false",)

    def __init__(self, *, unknown_is_false: bool = False) -> None:
        self._unknown_is_false = unknown_is_false

    def evaluate(self, expression: Expression, names: Mapping[str, Any]) -> Any:
        """Return the value of ``expression``; raise :class:`ExpressionError` if it fails for any reason."""
        slot = "unknown_is_false" if self._unknown_is_false else "evaluator"
        inner: _Evaluator | None = getattr(_PER_THREAD, slot, None)
        if inner is None:
            inner = _Evaluator(unknown_is_false=self._unknown_is_false)
            setattr(_PER_THREAD, slot, inner)
        inner.names = names
        try:
            return _guard(inner.eval(expression.source, previously_parsed=expression.tree))
        except ExpressionError:
            raise
        except simpleeval.NameNotDefined as failure:
            raise ExpressionError(f"unknown name '{failure.name}'") from None
        except Exception as failure:  # noqa: BLE001 - any failure of a flow's expression is the flow's error
            raise ExpressionError(f"{type(failure).__name__}: {failure}"[:200]) from None
