"""Tag rules wired to the flows' expression language and the conversation log (see :mod:`care.tag_rules`).

The record (``care``) keeps the rules and applies them; what it cannot know is here: the language
(:mod:`flows.expressions`, never ``eval``), the questionnaires' result names (the installed flows)
and when each patient last wrote or was written to (the conversation log).

A rule's expression is read with ``unknown_is_false``: a fact the patient does not have is None, and
a comparison with it is false, so ``latest.sbp >= 140 or latest.dbp >= 90`` holds on the DBP alone.
"""

from __future__ import annotations

import ast
import functools
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from bot.models import ConversationMessage, Direction
from care.rule_facts import FactCatalogue
from care.tag_rules import RuleEngine
from flows.expressions import Evaluator, Expression, ExpressionError, Namespace, compile_expression
from flows.registry import FlowLibrary

_CONSTANTS = frozenset({"True", "False", "None"})


@functools.lru_cache(maxsize=512)
def _compiled(source: str) -> Expression:
    return compile_expression(source)


def _collect(node: ast.AST, found: set[tuple[str, ...]]) -> None:
    """Add the name paths ``node`` reads to ``found`` (``latest.sbp`` -> ``("latest", "sbp")``)."""
    if isinstance(node, ast.Attribute | ast.Subscript | ast.Name):
        parts: list[str] = []
        current: ast.AST = node
        while isinstance(current, ast.Attribute | ast.Subscript):
            if isinstance(current, ast.Attribute):
                parts.append(current.attr)
            elif isinstance(current.slice, ast.Constant) and isinstance(current.slice.value, str):
                parts.append(current.slice.value)
            else:
                parts.clear()  # a key computed at run time: only the path before it can be checked
                _collect(current.slice, found)
            current = current.value
        if isinstance(current, ast.Name):
            if current.id not in _CONSTANTS:
                found.add((current.id, *reversed(parts)))
        else:
            _collect(current, found)
        return
    if isinstance(node, ast.Call):
        for argument in node.args:  # the function's own name is not a fact
            _collect(argument, found)
        return
    for child in ast.iter_child_nodes(node):
        _collect(child, found)


def _namespaced(value: Any) -> Any:
    if isinstance(value, Mapping):
        return Namespace({key: _namespaced(item) for key, item in value.items()})
    return value


class FlowExpressions:
    """The flows' safe expressions as a :class:`care.tag_rules.RuleLanguage`."""

    def __init__(self) -> None:
        self._evaluator = Evaluator(unknown_is_false=True)

    def paths(self, source: str) -> frozenset[tuple[str, ...]]:
        try:
            expression = _compiled(source)
        except ExpressionError as refused:
            raise ValueError(str(refused)) from None
        found: set[tuple[str, ...]] = set()
        _collect(expression.tree, found)
        return frozenset(found)

    def holds(self, source: str, facts: Mapping[str, Any]) -> bool | None:
        try:
            value = self._evaluator.evaluate(_compiled(source), _namespaced(facts))
        except ExpressionError:
            return None
        return bool(value)


def contact_times(session: Session, patient_id: uuid.UUID) -> tuple[datetime | None, datetime | None]:
    """When the patient's conversation log last moved either way, and when they last wrote (one query)."""
    inbound = case((ConversationMessage.direction == Direction.IN.value, ConversationMessage.created_at))
    row = session.execute(select(func.max(ConversationMessage.created_at), func.max(inbound))
                          .where(ConversationMessage.patient_id == patient_id)).one()
    return _aware(row[0]), _aware(row[1])


def _aware(value: object) -> datetime | None:
    # An aggregate comes back without the column's type on SQLite (text or naive); it is stored in UTC.
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def catalogue_of(library: FlowLibrary) -> FactCatalogue:
    """The names rules may read, the questionnaires being the installed flows with their result names."""
    questionnaires: dict[str, set[str]] = {}
    for definition in library.list(all_versions=True):
        questionnaires.setdefault(definition.id, set()).update(definition.result_names)
    return FactCatalogue({flow_id: frozenset(names) for flow_id, names in questionnaires.items()})


def rule_engine(library: FlowLibrary) -> RuleEngine:
    """The rule engine of the installed flows."""
    return RuleEngine(language=FlowExpressions(), catalogue=catalogue_of(library), contact=contact_times)
