"""Flow definitions: read a YAML flow file into a checked, immutable :class:`FlowDefinition`.

The top level of a flow file::

    id: phq9                      # snake_case, unique in the library
    version: 1                    # a whole number; sessions pin the version they started with
    title: {zh: ..., en: ...}
    description: {zh: ..., en: ...}          # optional
    languages: [zh, en]           # every text must be given in each (default: zh and en)
    expiry_hours: 72              # an unanswered question ends the session after this long
    reminders: {after_hours: 24, max: 2}     # optional: re-ask after N hours, at most M times
    max_invalid: 3                # invalid answers before a question's on_invalid exit (default 3)
    on_invalid: skip              # default exit for questions: skip or handoff
    disclaimer: {zh: ..., en: ...}           # carried by results computed with ``disclaimer: true``
    texts: {reminder: ..., handoff: ..., expired: ...}   # optional overrides of the engine's wording
    code: 44249-1                 # optional LOINC code of the whole form (FHIR Questionnaire.code)
    start: intro                  # optional: the first node (default: the first in the list)
    nodes: [...]                  # see flows/nodes/
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from flows.checks import check_definition
from flows.codes import is_valid_loinc
from flows.nodes import NODE_KINDS, Node
from flows.nodes.question import ON_INVALID, QuestionNode
from flows.problems import FlowValidationError, Problem
from flows.reader import Reader
from flows.text import LANGUAGES, LocalText

MAX_FILE_BYTES = 1_000_000
FLOW_TEXTS = ("reminder", "handoff", "expired")


@dataclass(frozen=True, slots=True)
class FlowDefinition:
    """A parsed, checked flow. Immutable once loaded; shared by every session of its (id, version)."""

    id: str
    version: int
    title: LocalText
    description: LocalText | None
    languages: tuple[str, ...]
    expiry_hours: float
    reminder_after_hours: float | None
    reminder_max: int
    max_invalid: int
    on_invalid: str
    disclaimer: LocalText | None
    texts: Mapping[str, LocalText]
    code: str | None
    start: str
    nodes: Mapping[str, Node]
    order: tuple[str, ...]
    source: str = "<string>"
    result_names: frozenset[str] = field(default=frozenset())
    structured_results: frozenset[str] = field(default=frozenset())

    @property
    def key(self) -> tuple[str, int]:
        """Return ``(id, version)``."""
        return (self.id, self.version)

    def questions(self) -> list[QuestionNode]:
        """Return the question nodes in file order."""
        return [node for node in (self.nodes[node_id] for node_id in self.order) if isinstance(node, QuestionNode)]

    def flow_refs(self) -> list[tuple[str, str, str]]:
        """Return ``(node id, field, flow id)`` for every other flow this one names."""
        return [(node.id, where, flow) for node in self.nodes.values() for where, flow in node.flow_refs()]

    def __repr__(self) -> str:
        return f"<FlowDefinition {self.id} v{self.version}>"


class _DuplicateKeyError(yaml.constructor.ConstructorError):
    """A key given twice in one mapping."""


# libyaml's parser when PyYAML was built with it: many times faster, and it refuses nesting deeper than
# a thousand levels at once, where the pure-Python parser goes down to the recursion limit first.
if TYPE_CHECKING:
    _SafeBase = yaml.SafeLoader
else:
    _SafeBase = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_SafeBase):
    """Safe YAML loader that refuses a key given twice in one mapping, and reads booleans as YAML 1.2.

    In YAML 1.1 (PyYAML's default) ``yes``, ``no``, ``on`` and ``off`` are booleans, which would turn
    a synonym list such as ``[yes, no]`` or a ``labels: {yes: ..., no: ...}`` mapping into true/false.
    Here only ``true`` and ``false`` are booleans.
    """


_Loader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _mapping_without_duplicates(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[object] = set()
    for key_node, _value in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=deep)
        try:
            duplicate = key in seen
        except TypeError:
            duplicate = False
        if duplicate:
            raise _DuplicateKeyError(None, None, f"the key {key!r} is given twice", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def read_yaml(text: str, file: str, problems: list[Problem]) -> object:
    """Return the YAML document in ``text``, or None after recording a ``yaml_syntax`` problem."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        problems.append(Problem(file, None, f"the file is larger than {MAX_FILE_BYTES} bytes", "schema"))
        return None
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.YAMLError as failure:
        mark = getattr(failure, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        detail = getattr(failure, "problem", None) or str(failure).splitlines()[0]
        if isinstance(failure, _DuplicateKeyError):
            problems.append(Problem(file, None, f"{detail}{where}", "duplicate_key"))
        else:
            problems.append(Problem(file, None, f"not valid YAML: {detail}{where}", "yaml_syntax"))
    except (TypeError, ValueError, RecursionError) as failure:
        problems.append(Problem(file, None, f"not valid YAML: {failure}", "yaml_syntax"))
    return None


def _read_node(item: object, position: int, file: str, problems: list[Problem]) -> Node | None:
    raw_id = item.get("id") if isinstance(item, Mapping) else None
    label = f"nodes[{position}]"
    if isinstance(raw_id, str | int) and not isinstance(raw_id, bool):
        # Problems name the node by its id as written, unless that cannot stand on one line as a name.
        written = str(raw_id)
        if 0 < len(written) <= 64 and written.isprintable() and written == written.strip():
            label = written
    reader = Reader(item, file=file, node_id=label, problems=problems)
    if not isinstance(item, Mapping):
        return None
    node_id = reader.identifier("id", required=True)
    kind = reader.string("kind", required=True)
    cls = NODE_KINDS.get(kind or "")
    if kind is not None and cls is None:
        reader.problem(f"unknown node kind {kind!r} (known: {', '.join(sorted(NODE_KINDS))})", "unknown_kind")
    if node_id is None or cls is None:
        reader.ignore_rest()
        return None
    node = cls.read(reader, node_id)
    if cls.has_next:
        target = reader.identifier("next")
        if target is not None:
            node.next_id = target
            node.explicit_next = True
    reader.finish()
    return node


def parse_flow(data: object, file: str = "<string>") -> tuple[FlowDefinition | None, list[Problem]]:
    """Return the flow read from a YAML document, and every problem found (the flow is None if unusable)."""
    problems: list[Problem] = []
    top = Reader(data, file=file, node_id=None, problems=problems)
    if not isinstance(data, Mapping):
        return None, problems
    flow_id = top.identifier("id", required=True)
    version = top.integer("version", required=True, minimum=1, maximum=1_000_000)
    title = top.text("title", required=True)
    description = top.text("description")
    languages = _read_languages(top)
    expiry_hours = top.number("expiry_hours", default=72.0)
    if expiry_hours is None or not 0 < expiry_hours <= 24 * 365:
        top.problem("'expiry_hours' must be more than 0 and at most a year", "bad_range")
        expiry_hours = 72.0
    after_hours, reminder_max = _read_reminders(top, expiry_hours)
    max_invalid = top.integer("max_invalid", default=3, minimum=1, maximum=10) or 3
    on_invalid = top.one_of("on_invalid", ON_INVALID, default="skip") or "skip"
    disclaimer = top.text("disclaimer")
    texts: dict[str, LocalText] = {}
    raw_texts = top.mapping("texts")
    if raw_texts is not None:
        child = top.child(raw_texts, "texts")
        for name in FLOW_TEXTS:
            value = child.text(name)
            if value is not None:
                texts[name] = value
        child.finish()
    code = top.string("code")
    if code is not None and not is_valid_loinc(code):
        top.problem(f"'code' {code!r} is not a valid LOINC code (format or check digit)", "bad_code")
    start = top.identifier("start")
    raw_nodes = top.sequence("nodes", required=True)
    top.finish()

    nodes: dict[str, Node] = {}
    order: list[str] = []
    for position, item in enumerate(raw_nodes, start=1):
        node = _read_node(item, position, file, problems)
        if node is None:
            continue
        if node.id in nodes:
            problems.append(Problem(file, node.id, f"the node id '{node.id}' is used twice", "duplicate_node_id"))
            continue
        nodes[node.id] = node
        order.append(node.id)
    if raw_nodes and not nodes:
        problems.append(Problem(file, None, "the flow has no usable node", "schema"))
    # A node without ``next`` goes on to the following node in the list; after the last, the flow ends.
    for position, here in enumerate(order):
        node = nodes[here]
        after = order[position + 1] if position + 1 < len(order) else None
        if node.has_next and not node.explicit_next:
            node.next_id = after

    if flow_id is None or version is None or title is None or not nodes:
        return None, problems
    result_names = frozenset(name for node in nodes.values() for name in node.results())
    structured = frozenset(
        node.result for node in nodes.values() if isinstance(node, QuestionNode) and node.answer.structured
    )
    definition = FlowDefinition(
        id=flow_id,
        version=version,
        title=title,
        description=description,
        languages=languages,
        expiry_hours=expiry_hours,
        reminder_after_hours=after_hours,
        reminder_max=reminder_max,
        max_invalid=max_invalid,
        on_invalid=on_invalid,
        disclaimer=disclaimer,
        texts=texts,
        code=code,
        start=start or order[0],
        nodes=nodes,
        order=tuple(order),
        source=file,
        result_names=result_names,
        structured_results=structured,
    )
    problems.extend(check_definition(definition))
    return definition, problems


def _read_languages(top: Reader) -> tuple[str, ...]:
    raw = top.sequence("languages") or list(LANGUAGES)
    languages = tuple(str(lang) for lang in raw if lang in LANGUAGES)
    if len(languages) != len(raw) or not languages:
        top.problem(f"'languages' must list some of {', '.join(LANGUAGES)}")
        return languages or LANGUAGES
    return languages


def _read_reminders(top: Reader, expiry_hours: float) -> tuple[float | None, int]:
    raw = top.mapping("reminders")
    if raw is None:
        return None, 0
    child = top.child(raw, "reminders")
    after = child.number("after_hours", required=True)
    count = child.integer("max", required=True, minimum=0, maximum=10)
    child.finish()
    if after is None or count is None:
        return None, 0
    if not 0 < after < expiry_hours:
        child.problem("'after_hours' must be more than 0 and less than 'expiry_hours'", "bad_range")
        return None, 0
    return after, count


def _source_text(source: str | Path) -> tuple[str, str]:
    """Return ``(text, file name)`` for a path or a YAML text."""
    if isinstance(source, Path):
        return source.read_text(encoding="utf-8"), str(source)
    if "\n" not in source and source.endswith((".yaml", ".yml")):
        path = Path(source)
        return path.read_text(encoding="utf-8"), str(path)
    return source, "<string>"


def load_flow(source: str | Path, *, file: str | None = None) -> FlowDefinition:
    """Return the checked flow in ``source`` (a path, or YAML text); raise :class:`FlowValidationError`.

    A ``str`` without a newline that ends in ``.yaml``/``.yml`` is a path; any other ``str`` is YAML
    text. References to other flows are checked by :class:`flows.registry.FlowLibrary` and
    :func:`flows.validate.validate_files`, which know the other flows.
    """
    text, name = _source_text(source)
    problems: list[Problem] = []
    data = read_yaml(text, file or name, problems)
    if problems:
        raise FlowValidationError(problems)
    definition, problems = parse_flow(data, file or name)
    if problems or definition is None:
        raise FlowValidationError(problems or [Problem(file or name, None, "the flow could not be read")])
    return definition
