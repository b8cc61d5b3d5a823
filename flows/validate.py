"""Validate flow files: every problem, with file, node id and reason.

``validate_files(["flows/library", "my_flow.yaml"])`` reads each file (directories: their ``*.yaml``
and ``*.yml``), checks it on its own, then checks references between flows against the flows given
together with the built-in library. It never raises for a bad flow; it returns the problems.
"""

from __future__ import annotations

import functools
from collections.abc import Container, Iterable
from pathlib import Path

from flows.checks import check_flow_refs, check_profile_fields
from flows.definition import FlowDefinition
from flows.problems import Problem
from flows.registry import LIBRARY_DIR, flow_files, read_flow_file


@functools.cache
def _builtin_ids() -> frozenset[str]:
    """Return the ids of the built-in flows that can be read (their own problems are not reported here)."""
    ids: set[str] = set()
    for path in flow_files([LIBRARY_DIR]):
        definition, _problems = read_flow_file(path)
        if definition is not None:
            ids.add(definition.id)
    return frozenset(ids)


def validate_files(paths: Iterable[str | Path], *, known_flows: Iterable[str] = (),
                   profile_fields: Container[str] | None = None) -> list[Problem]:
    """Return every problem in the flow files at ``paths``, sorted by file and node.

    A flow may name (``start_flow``, ``schedule_followup``) any flow among the files given, the
    built-in library, or ``known_flows``; with ``profile_fields`` (the host's list), a ``set_profile``
    node must name one of them.
    """
    problems: list[Problem] = []
    definitions: list[FlowDefinition] = []
    seen: dict[tuple[str, int], str] = {}
    for path in flow_files(paths):
        definition, found = read_flow_file(path)
        problems.extend(found)
        if definition is None:
            continue
        if definition.key in seen:
            shown = f"{definition.id} v{definition.version}"
            problems.append(Problem(str(path), None, f"{shown} is also defined in {seen[definition.key]}"))
        seen.setdefault(definition.key, str(path))
        definitions.append(definition)
    known = _builtin_ids() | {definition.id for definition in definitions} | set(known_flows)
    for definition in definitions:
        problems.extend(check_flow_refs(definition, known))
        if profile_fields is not None:
            problems.extend(check_profile_fields(definition, profile_fields))
    return sorted(problems, key=Problem.sort_key)
