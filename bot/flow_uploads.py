"""Installing a flow file staff upload in the panel, as a new version beside the installed ones.

An upload is checked as ``careloop flows validate`` checks a file (every problem, with its node and,
where the node is found in the file, its line), and further: its id and version must be new, and
the version higher than any installed version of that id (new conversations get the highest; running
ones keep the version they pinned). A file with any problem is refused and nothing is written. A
good one is written into the clinic's folder of flows (the first of ``CARELOOP_FLOWS_DIR``) as
``<id>.v<version>.yaml``, readable by its owner only, and the process's library is rebuilt from the
folders so the web process uses it at once (a worker picks it up when it next starts).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from sqlalchemy.orm import Session

from bot.conversations import BotServices
from care.profile_fields import PROFILE_FIELDS
from flows.definition import MAX_FILE_BYTES
from flows.registry import LIBRARY_DIR, FlowLibrary, read_flow_file
from flows.validate import validate_files
from security.audit import Actor, log

#: The file name an upload is shown under in its problems when it came without a usable one.
UPLOAD_NAME = "upload.yaml"


@dataclass(frozen=True)
class UploadProblem:
    """One reason an uploaded flow was refused: the node (None: the file as a whole), its line if known, why."""

    node_id: str | None
    line: int | None
    reason: str
    kind: str


@dataclass(frozen=True)
class Installed:
    """A flow installed from an upload."""

    flow_id: str
    version: int
    path: Path


class FlowRefusedError(Exception):
    """The uploaded flow has problems; nothing was installed."""

    def __init__(self, problems: Sequence[UploadProblem]) -> None:
        self.problems = list(problems)
        super().__init__(f"the flow was refused: {len(self.problems)} problem(s)")


@dataclass(frozen=True)
class FlowVersionRow:
    """An installed flow version as the flows page lists it."""

    flow_id: str
    version: int
    title_zh: str
    title_en: str
    latest: bool
    builtin: bool


def installed_versions(library: FlowLibrary) -> list[FlowVersionRow]:
    """Return every installed version of every flow, by id and newest version first."""
    latest = {definition.id: definition.version for definition in library.list()}
    rows = [FlowVersionRow(definition.id, definition.version, definition.title.plain("zh"),
                           definition.title.plain("en"), latest[definition.id] == definition.version,
                           Path(definition.source).resolve().is_relative_to(_builtin_dir()))
            for definition in library.list(all_versions=True)]
    return sorted(rows, key=lambda row: (row.flow_id, -row.version))


def _builtin_dir() -> Path:
    return LIBRARY_DIR.resolve()


def node_lines(text: str) -> dict[str, int]:
    """Return the line (1-based) where each node of the flow text is given its id, as far as the YAML can be read."""
    try:
        document = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return {}
    lines: dict[str, int] = {}
    if not isinstance(document, yaml.MappingNode):
        return lines
    for key, value in document.value:
        if not (isinstance(key, yaml.ScalarNode) and key.value == "nodes" and isinstance(value, yaml.SequenceNode)):
            continue
        for item in value.value:
            if not isinstance(item, yaml.MappingNode):
                continue
            for item_key, item_value in item.value:
                if isinstance(item_key, yaml.ScalarNode) and item_key.value == "id" \
                        and isinstance(item_value, yaml.ScalarNode):
                    lines.setdefault(item_value.value, item_value.start_mark.line + 1)
    return lines


def _refused(problems: Sequence[tuple[str | None, str, str]], text: str) -> FlowRefusedError:
    lines = node_lines(text)
    return FlowRefusedError([UploadProblem(node_id, lines.get(node_id) if node_id else None, reason, kind)
                             for node_id, reason, kind in problems])


def install_upload(session: Session, services: BotServices, *, content: bytes, folders: Sequence[Path],
                   actor: Actor) -> Installed:
    """Check the uploaded flow file ``content`` and install it as a new version; audited (``flow.install``).

    :raises FlowRefusedError: with every problem found; nothing is written and the library is unchanged.
    """
    if len(content) > MAX_FILE_BYTES:
        raise FlowRefusedError([UploadProblem(None, None, f"the file is larger than {MAX_FILE_BYTES} bytes",
                                              "schema")])
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        raise FlowRefusedError([UploadProblem(None, None, "the file is not UTF-8 text", "schema")]) from None
    library = services.library
    with tempfile.TemporaryDirectory(prefix="careloop-flow-upload-") as scratch:
        candidate = Path(scratch) / UPLOAD_NAME
        candidate.write_text(text, encoding="utf-8")
        problems = validate_files([candidate], known_flows=library.ids(), profile_fields=PROFILE_FIELDS)
        if problems:
            raise _refused([(problem.node_id, problem.reason, problem.kind) for problem in problems], text)
        definition, _found = read_flow_file(candidate)
    if definition is None:  # validate_files found no problem, so the file reads; kept for the type checker
        raise FlowRefusedError([UploadProblem(None, None, "the file could not be read", "internal_error")])
    installed = [item.version for item in library.list(all_versions=True) if item.id == definition.id]
    if installed and definition.version <= max(installed):
        raise FlowRefusedError([UploadProblem(None, None, f"{definition.id} v{max(installed)} is installed "
                                                          f"already; give this file version {max(installed) + 1} "
                                                          "or higher", "old_version")])
    if not folders:  # checked after the file, so that its writer sees its own problems first
        raise FlowRefusedError([UploadProblem(None, None, "no folder for the clinic's flows is set "
                                                          "(CARELOOP_FLOWS_DIR); ask the operator to set one",
                                              "no_folder")])
    target = folders[0] / f"{definition.id}.v{definition.version}.yaml"
    if target.exists():
        raise FlowRefusedError([UploadProblem(None, None, f"the clinic's folder holds {target.name} already "
                                                          "(a file left out of the library); remove it first",
                                              "duplicate_flow")])
    _write_private(target, text)
    rebuilt = FlowLibrary(folders, profile_fields=PROFILE_FIELDS)
    if (definition.id, definition.version) not in {item.key for item in rebuilt.list(all_versions=True)}:
        target.unlink()  # the library left it out after all: nothing stays installed
        mine = [problem for problem in rebuilt.problems if Path(problem.file).resolve() == target.resolve()]
        raise _refused([(problem.node_id, problem.reason, problem.kind) for problem in mine]
                       or [(None, "the library left the flow out", "internal_error")], text)
    services.library = rebuilt
    log(session, actor=actor, action="flow.install", resource_type="flow", resource_id=None,
        details={"flow": definition.id, "version": definition.version, "file": target.name})
    return Installed(definition.id, definition.version, target)


def _write_private(target: Path, text: str) -> None:
    """Write ``text`` to ``target`` whole or not at all (a temporary file in the folder, then renamed), mode 0600."""
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=".upload-", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(temporary, 0o600)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
