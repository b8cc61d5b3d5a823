"""The flow library: every installed flow, by id and version.

The built-in flows live in ``flows/library/*.yaml``; a clinic may add directories of its own. Several
versions of a flow may be installed side by side (``phq9.yaml`` at version 2 and ``phq9.v1.yaml`` at
version 1): new sessions get the latest, sessions in progress load the version they pinned::

    library = FlowLibrary.builtin()
    definition = library.get("phq9")                                  # the latest
    pinned = library.get(state["flow_id"], state["version"])          # a session's own version
"""

from __future__ import annotations

import builtins
import functools
from collections.abc import Container, Iterable, Iterator
from pathlib import Path

from flows.checks import check_flow_refs, check_profile_fields
from flows.definition import FlowDefinition, parse_flow, read_yaml
from flows.problems import FlowValidationError, Problem

LIBRARY_DIR = Path(__file__).resolve().parent / "library"


class FlowNotFoundError(KeyError):
    """Raise when no installed flow has the id (and version) asked for."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "flow not found"


def flow_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Yield the flow files among ``paths``: files as given, and ``*.yaml``/``*.yml`` in directories (sorted)."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from sorted(item for item in path.iterdir() if item.suffix in (".yaml", ".yml") and item.is_file())
        else:
            yield path


def read_flow_file(path: Path) -> tuple[FlowDefinition | None, list[Problem]]:
    """Return the flow in ``path`` and the problems found (flow references are not checked here)."""
    problems: list[Problem] = []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as failure:
        return None, [Problem(str(path), None, f"cannot read the file: {failure}", "schema")]
    data = read_yaml(text, str(path), problems)
    if problems:
        return None, problems
    return parse_flow(data, str(path))


class FlowLibrary:
    """Installed flows keyed by ``(id, version)``; loading is all-or-nothing.

    Every file is read and checked when the library is built, and references between flows
    (``start_flow``, ``schedule_followup``) must resolve inside the library. Any problem raises
    :class:`FlowValidationError` with all the problems, so a broken flow is found at start-up and
    never half-way through a patient's conversation.
    """

    def __init__(self, directories: Iterable[str | Path] = (), *, include_builtin: bool = True,
                 profile_fields: Container[str] | None = None) -> None:
        sources = [LIBRARY_DIR] if include_builtin else []
        sources.extend(Path(directory) for directory in directories)
        problems: list[Problem] = []
        flows: dict[tuple[str, int], FlowDefinition] = {}
        for path in flow_files(sources):
            definition, found = read_flow_file(path)
            problems.extend(found)
            if definition is None or found:
                continue
            if definition.key in flows:
                other = flows[definition.key].source
                problems.append(
                    Problem(str(path), None, f"{definition.id} v{definition.version} is also defined in {other}")
                )
                continue
            flows[definition.key] = definition
        ids = {flow_id for flow_id, _version in flows}
        for definition in flows.values():
            problems.extend(check_flow_refs(definition, ids))
            if profile_fields is not None:
                problems.extend(check_profile_fields(definition, profile_fields))
        if problems:
            raise FlowValidationError(problems)
        self._flows = flows
        self._latest: dict[str, FlowDefinition] = {}
        for definition in sorted(flows.values(), key=lambda item: item.version):
            self._latest[definition.id] = definition

    @classmethod
    def builtin(cls) -> FlowLibrary:
        """Return the library of built-in flows (loaded once per process)."""
        return _builtin()

    def get(self, flow_id: str, version: int | None = None) -> FlowDefinition:
        """Return flow ``flow_id`` at ``version`` (default: the latest); raise :class:`FlowNotFoundError`."""
        found = self._latest.get(flow_id) if version is None else self._flows.get((flow_id, version))
        if found is None:
            shown = flow_id if version is None else f"{flow_id} v{version}"
            raise FlowNotFoundError(f"no installed flow {shown}")
        return found

    def list(self, *, all_versions: bool = False) -> builtins.list[FlowDefinition]:
        """Return the flows sorted by id (and version): the latest of each, or every version."""
        chosen = self._flows.values() if all_versions else self._latest.values()
        return sorted(chosen, key=lambda item: item.key)

    def ids(self) -> builtins.list[str]:
        """Return the ids of the installed flows, sorted."""
        return sorted(self._latest)

    def __contains__(self, flow_id: object) -> bool:
        return flow_id in self._latest

    def __len__(self) -> int:
        return len(self._latest)


@functools.cache
def _builtin() -> FlowLibrary:
    return FlowLibrary()


#: The earlier name of :class:`FlowNotFoundError`, kept for callers that use it.
FlowNotFound = FlowNotFoundError
