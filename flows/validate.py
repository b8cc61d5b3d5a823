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
from flows.registry import builtin_files, flow_files, read_flow_file


@functools.cache
def _builtin_keys() -> dict[tuple[str, int], str]:
    """Return ``{(id, version): file}`` of the readable built-in flows (their problems are not reported here)."""
    keys: dict[tuple[str, int], str] = {}
    for path, definition, _problems in builtin_files():
        if definition is not None:
            keys[definition.key] = str(path.resolve())
    return keys


def validate_files(paths: Iterable[str | Path], *, known_flows: Iterable[str] = (),
                   profile_fields: Container[str] | None = None) -> list[Problem]:
    """Return every problem in the flow files at ``paths``, sorted by file and node.

    A flow may name (``start_flow``, ``schedule_followup``) any flow among the files given, the
    built-in library, or ``known_flows``; with ``profile_fields`` (the host's list), a ``set_profile``
    node must name one of them. A flow outside the library with the id and version of a built-in
    flow is a problem: the library would leave it out (a replacement needs a higher version).
    """
    problems: list[Problem] = []
    definitions: list[FlowDefinition] = []
    seen: dict[tuple[str, int], str] = {}
    for path in flow_files(paths):
        definition, found = read_flow_file(path)
        problems.extend(found)
        if definition is None:
            continue
        shown = f"{definition.id} v{definition.version}"
        if definition.key in seen:
            problems.append(Problem(str(path), None, f"{shown} is also defined in {seen[definition.key]}",
                                    "duplicate_flow"))
        elif _builtin_keys().get(definition.key, str(path.resolve())) != str(path.resolve()):
            problems.append(Problem(str(path), None, f"{shown} is also a built-in flow; give this one a higher "
                                    "version to replace it", "duplicate_flow"))
        seen.setdefault(definition.key, str(path))
        definitions.append(definition)
    builtin_ids = {flow_id for flow_id, _version in _builtin_keys()}
    known = builtin_ids | {definition.id for definition in definitions} | set(known_flows)
    for definition in definitions:
        problems.extend(check_flow_refs(definition, known))
        if profile_fields is not None:
            problems.extend(check_profile_fields(definition, profile_fields))
    return sorted(problems, key=Problem.sort_key)
