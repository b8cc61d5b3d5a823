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

from flows.checks import check_profile_fields
from flows.definition import FlowDefinition, parse_flow, read_yaml
from flows.problems import Problem

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
    """Return the flow in ``path`` and the problems found (flow references are not checked here).

    Never raises for what the file holds: an unreadable file, bad bytes or a bug met while checking
    are problems of the file like any other.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError, ValueError) as failure:
        return None, [Problem(str(path), None, f"cannot read the file: {failure}", "schema")]
    try:
        problems: list[Problem] = []
        data = read_yaml(text, str(path), problems)
        if problems:
            return None, problems
        return parse_flow(data, str(path))
    except Exception as failure:  # noqa: BLE001 - a file must never stop the others from being checked
        shown = f"{type(failure).__name__}: {failure}"[:200]
        return None, [Problem(str(path), None, f"the file could not be checked ({shown})", "internal_error")]


@functools.cache
def builtin_files() -> tuple[tuple[Path, FlowDefinition | None, list[Problem]], ...]:
    """Return ``(path, flow, problems)`` of each built-in flow file, read once per process (they ship with the code)."""
    return tuple((path, *read_flow_file(path)) for path in flow_files([LIBRARY_DIR]))


class FlowLibrary:
    """Installed flows keyed by ``(id, version)``: every good flow, and the problems of the files left out.

    Every file is read and checked when the library is built. A file with any problem is left out and
    its problems are kept in :attr:`problems` (the host reports them at start), so one broken file of
    a clinic never stops the other flows. References between flows (``start_flow``,
    ``schedule_followup``) must resolve inside the library: a flow that names a flow that is missing,
    or was left out, is left out too, with a problem of its own. With ``profile_fields`` (the host's
    list), a flow whose ``set_profile`` names another field is left out.

    The same ``(id, version)`` twice keeps the first one read (the built-in library first, then the
    directories in the order given): a clinic replaces a built-in flow by giving it a higher version.
    """

    def __init__(self, directories: Iterable[str | Path] = (), *, include_builtin: bool = True,
                 profile_fields: Container[str] | None = None) -> None:
        sources: list[Path] = []
        problems: list[Problem] = []
        for directory in map(Path, directories):
            if directory.exists():
                sources.append(directory)
            else:
                problems.append(Problem(str(directory), None, "there is no such folder of flow files",
                                        "missing_folder"))
        read = [*(builtin_files() if include_builtin else ()),
                *((path, *read_flow_file(path)) for path in flow_files(sources))]
        flows: dict[tuple[str, int], FlowDefinition] = {}
        left_out: set[str] = set()
        for path, definition, found in read:
            if definition is None or found:
                problems.extend(found)
                if definition is not None:
                    left_out.add(definition.id)
                continue
            if definition.key in flows:
                other = flows[definition.key].source
                problems.append(Problem(str(path), None, f"{definition.id} v{definition.version} is also defined in "
                                        f"{other}; give this one a higher version", "duplicate_flow"))
                continue
            if profile_fields is not None:
                found = check_profile_fields(definition, profile_fields)
                if found:
                    problems.extend(found)
                    left_out.add(definition.id)
                    continue
            flows[definition.key] = definition
        problems.extend(_drop_unresolved(flows, left_out))
        self.problems: builtins.list[Problem] = sorted(problems, key=Problem.sort_key)
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


def _drop_unresolved(flows: dict[tuple[str, int], FlowDefinition], left_out: set[str]) -> builtins.list[Problem]:
    """Remove from ``flows`` every flow that names a flow not installed; return a problem for each.

    ``left_out`` holds the ids of the flows already left out for their own problems (a reference to
    one of them says so). Removing one flow can leave another naming it unresolved, so this repeats
    until nothing changes.
    """
    problems: builtins.list[Problem] = []
    dropped = True
    while dropped:
        dropped = False
        ids = {flow_id for flow_id, _version in flows}
        for key, definition in list(flows.items()):
            missing = [(node_id, where, flow) for node_id, where, flow in definition.flow_refs() if flow not in ids]
            if not missing:
                continue
            for node_id, where, flow in missing:
                why = "which was left out for its own problems" if flow in left_out else "not in the library"
                problems.append(Problem(definition.source, node_id,
                                        f"'{where}' names the flow '{flow}', {why}; this flow is left out too",
                                        "unknown_flow"))
            left_out.add(definition.id)
            del flows[key]
            dropped = True
    return problems


@functools.cache
def _builtin() -> FlowLibrary:
    return FlowLibrary()


#: The earlier name of :class:`FlowNotFoundError`, kept for callers that use it.
FlowNotFound = FlowNotFoundError
