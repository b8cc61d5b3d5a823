"""Whole-flow checks: everything that needs the full list of nodes to be seen.

Each check reports with its own ``kind``: ``unknown_target``, ``unreachable_node``,
``loop_without_question``, ``missing_translation``, ``bad_expression``, ``bad_template``,
``duplicate_result``, ``reserved_name``, ``unknown_result``, ``unknown_flow``, ``unknown_profile_field``.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterator
from typing import TYPE_CHECKING

from flows.expressions import FUNCTIONS
from flows.facts import FACT_NAMES
from flows.nodes.notify_staff import NotifyStaffNode
from flows.nodes.set_profile import SetProfileNode
from flows.problems import Problem
from flows.text import LocalText

if TYPE_CHECKING:
    from flows.definition import FlowDefinition

#: Names a result may not take: they mean something else in expressions.
RESERVED_NAMES: frozenset[str] = FACT_NAMES | frozenset(FUNCTIONS) | frozenset({"value", "true", "false", "none"})
#: Attributes every result has in texts: ``{name.label}``, ``{name.category}``, ``{name.unit}``.
RESULT_ATTRIBUTES = frozenset({"label", "category", "unit"})
_TEMPLATE_FACTS = frozenset({"age", "sex", "lang", "obs", "profile"})

#: ``report(node_id, reason, kind)``
_Report = Callable[[str | None, str, str], None]


def check_definition(definition: FlowDefinition, known_flows: Container[str] | None = None) -> list[Problem]:
    """Return every problem of ``definition`` as a whole; ``known_flows`` enables the flow-reference check."""
    problems: list[Problem] = []
    file = definition.source

    def report(node_id: str | None, reason: str, kind: str) -> None:
        problems.append(Problem(file, node_id, reason, kind))

    nodes = definition.nodes
    if definition.start not in nodes:
        report(None, f"'start' names the node '{definition.start}', which does not exist", "unknown_target")
    for node in nodes.values():
        for where, target in node.targets():
            if target not in nodes:
                report(node.id, f"'{where}' names the node '{target}', which does not exist", "unknown_target")

    _check_reachable(definition, report)
    _check_loops(definition, report)
    _check_results(definition, report)
    _check_translations(definition, report)
    _check_expressions(definition, report)
    _check_templates(definition, report)
    if known_flows is not None:
        problems.extend(check_flow_refs(definition, known_flows))
    return problems


def check_flow_refs(definition: FlowDefinition, known_flows: Container[str]) -> list[Problem]:
    """Return an ``unknown_flow`` problem for every flow named by ``definition`` that is not known."""
    return [
        Problem(definition.source, node_id, f"'{where}' names the flow '{flow}', not in the library", "unknown_flow")
        for node_id, where, flow in definition.flow_refs()
        if flow not in known_flows
    ]


def check_profile_fields(definition: FlowDefinition, profile_fields: Container[str]) -> list[Problem]:
    """Return an ``unknown_profile_field`` problem for every ``set_profile`` node that writes an unknown field.

    The profile's field names belong to the host (the record), so the host passes them in.
    """
    return [
        Problem(definition.source, node.id, f"'field' names '{node.field}', which is not a profile field",
                "unknown_profile_field")
        for node in definition.nodes.values()
        if isinstance(node, SetProfileNode) and node.field not in profile_fields
    ]


def _check_reachable(definition: FlowDefinition, report: _Report) -> None:
    nodes = definition.nodes
    if definition.start not in nodes:
        return
    seen = {definition.start}
    pending = [definition.start]
    while pending:
        for successor in nodes[pending.pop()].successors():
            if successor in nodes and successor not in seen:
                seen.add(successor)
                pending.append(successor)
    for node_id in definition.order:
        if node_id not in seen:
            report(node_id, "no path from the start leads to this node", "unreachable_node")


def _check_loops(definition: FlowDefinition, report: _Report) -> None:
    """Report cycles that never pass a question: the engine would go round without waiting."""
    nodes = definition.nodes
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    reported: set[str] = set()
    for root in definition.order:
        if state.get(root) or nodes[root].waits:
            continue
        # Iterative depth-first search over nodes that do not wait.
        path: list[str] = [root]
        iterators: list[Iterator[str]] = [iter(list(nodes[root].successors()))]
        state[root] = 1
        while iterators:
            successor = next(iterators[-1], None)
            if successor is None:
                state[path.pop()] = 2
                iterators.pop()
                continue
            if successor not in nodes or nodes[successor].waits:
                continue
            if state.get(successor) == 1:
                cycle = path[path.index(successor) :]
                if not reported.intersection(cycle):
                    reported.update(cycle)
                    shown = " -> ".join([*cycle, successor])
                    report(successor, f"these nodes loop without asking a question: {shown}", "loop_without_question")
                continue
            if state.get(successor) is None:
                state[successor] = 1
                path.append(successor)
                iterators.append(iter(list(nodes[successor].successors())))


def _check_results(definition: FlowDefinition, report: _Report) -> None:
    owners: dict[str, str] = {}
    for node_id in definition.order:
        node = definition.nodes[node_id]
        for name in node.results():
            if name in RESERVED_NAMES:
                report(node_id, f"the result name '{name}' is reserved (it means something else)", "reserved_name")
            if name in owners:
                report(node_id, f"the result '{name}' is also saved by the node '{owners[name]}'", "duplicate_result")
            else:
                owners[name] = node_id
        if isinstance(node, NotifyStaffNode):
            for name in node.include:
                if name not in definition.result_names:
                    report(node_id, f"'include' names '{name}', which no node saves", "unknown_result")


def _flow_texts(definition: FlowDefinition) -> Iterator[tuple[str | None, str, LocalText]]:
    yield None, "title", definition.title
    if definition.description is not None:
        yield None, "description", definition.description
    if definition.disclaimer is not None:
        yield None, "disclaimer", definition.disclaimer
    for name, text in definition.texts.items():
        yield None, f"texts.{name}", text
    for node_id in definition.order:
        for where, text in definition.nodes[node_id].texts():
            yield node_id, where, text


def _check_translations(definition: FlowDefinition, report: _Report) -> None:
    for node_id, where, text in _flow_texts(definition):
        for lang in text.missing(definition.languages):
            report(node_id, f"'{where}' has no {lang} text", "missing_translation")


def _check_expressions(definition: FlowDefinition, report: _Report) -> None:
    known = definition.result_names | FACT_NAMES
    for node_id in definition.order:
        for where, expression, extra in definition.nodes[node_id].expressions():
            for name in expression.unknown_names(known | extra):
                report(node_id, f"bad expression in '{where}': unknown name '{name}'", "bad_expression")


def _check_templates(definition: FlowDefinition, report: _Report) -> None:
    for node_id, where, text in _flow_texts(definition):
        for name, attribute in set(text.refs()):
            shown = name if attribute is None else f"{name}.{attribute}"
            if name in definition.result_names:
                if attribute is None or attribute in RESULT_ATTRIBUTES or name in definition.structured_results:
                    continue
                report(node_id, f"'{where}' uses {{{shown}}}: results have only label, category, unit", "bad_template")
            elif name == "disclaimer" and attribute is None and where != "disclaimer":
                if definition.disclaimer is None:
                    report(node_id, f"'{where}' uses {{disclaimer}}, but the flow has no 'disclaimer'", "bad_template")
            elif name in _TEMPLATE_FACTS:
                if attribute is not None and name not in ("obs", "profile"):
                    report(node_id, f"'{where}' uses {{{shown}}}: '{name}' has no fields", "bad_template")
                elif attribute is None and name in ("obs", "profile"):
                    report(node_id, f"'{where}' uses {{{shown}}}: name a field, e.g. {{obs.sbp}}", "bad_template")
            else:
                report(node_id, f"'{where}' uses {{{shown}}}, but no result or fact has that name", "bad_template")

