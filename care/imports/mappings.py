"""A clinic's own codes: what a checkup centre's local code means, from a file or stored.

A mapping file is .csv (UTF-8) or .xlsx (first sheet), one local code a row, English or Chinese
headers::

    local_code 本地代码 | code 指标代码 (or loinc) | unit 单位 (optional)
    GLU-F             | fpg                    | mmol/L
    XHDB              | 718-7                  | g/L
    HB-A2             | 4551-8                 |

``code`` is a code of the indicator table (a short code, a LOINC code or a printed name) or any
other LOINC code (then the results are kept under that code, as ones outside the table); ``unit``
is the unit the source reports the code in, used when a result gives none. A file is used for one
import (``careloop import reports --map FILE``) or stored (``careloop import mappings add FILE``),
for one source or for every source (``*``); the stored mappings apply to the CLI and to
``POST /api/v1/reports`` alike. A mapping given for the import wins over a stored one, and a
source's own over one for every source.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from care.imports.report_formats.base import MappedCode as MappedCode
from care.imports.report_formats.base import ReportProblem, code_key
from care.imports.tabular import Column, Template, TemplateError, cell_text, read_rows
from care.indicator_table import find, is_loinc
from care.models import CodeMapping
from security.audit import Actor, log
from security.fields import clock_of

ANY_SOURCE = "*"
MAX_CODE = 32
MAX_SOURCE = 64

MAPPING_TEMPLATE = Template(
    "code mappings",
    (
        Column("local_code", "local_code", "本地代码", True),
        Column("loinc", "code", "指标代码", True),
        Column("unit", "unit", "单位", False),
    ),
)


class MappingFileError(ValueError):
    """A mapping file that cannot be used: unreadable, or with bad rows (each named)."""

    def __init__(self, message: str, problems: Sequence[ReportProblem] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)


@dataclass(frozen=True)
class MappingRow:
    """One checked row of a mapping file."""

    local_code: str
    target: str
    unit: str | None


@dataclass
class MappingTally:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    sources: set[str] = field(default_factory=set)

    def __str__(self) -> str:
        return f"{self.added} added, {self.updated} updated, {self.unchanged} unchanged"


def check_mapping(local_code: str, target: str, unit: str | None) -> tuple[str, str] | None:
    """Return ``(column, reason)`` when the mapping cannot be used, else None."""
    if not local_code:
        return "local_code", "is required"
    if len(local_code) > MAX_CODE:
        return "local_code", f"is longer than {MAX_CODE} characters"
    if not target:
        return "code", "is required"
    indicator = find(target, names=True)
    if indicator is None:
        if not is_loinc(target):
            return "code", f"{target[:40]!r} is neither a code of the indicator table nor a LOINC code"
        return None
    if len(target) > MAX_CODE:
        return "code", f"is longer than {MAX_CODE} characters"
    if unit and not indicator.accepts_unit(unit):
        return "unit", f"unit {unit[:40]!r} is not accepted for {indicator.key}"
    return None


def read_mapping_file(path: Path) -> list[MappingRow]:
    """Read and check a mapping file.

    Raises:
        MappingFileError: the file cannot be read, or any row is bad (every bad row is named).
    """
    rows: list[MappingRow] = []
    problems: list[ReportProblem] = []
    seen: dict[str, tuple[int, str]] = {}
    try:
        for row in read_rows(path, MAPPING_TEMPLATE):
            where = f"row {row.number}"
            local = cell_text(row.values.get("local_code"))
            target = cell_text(row.values.get("loinc"))
            unit = cell_text(row.values.get("unit")) or None
            problem = check_mapping(local, target, unit)
            if problem is not None:
                problems.append(ReportProblem(where, *problem))
                continue
            key = code_key(local)
            earlier = seen.get(key)
            if earlier is not None and earlier[1] != target:
                problems.append(ReportProblem(where, "local_code", f"is mapped differently in row {earlier[0]}"))
                continue
            seen[key] = (row.number, target)
            rows.append(MappingRow(local, target, unit))
    except TemplateError as problem:
        raise MappingFileError(f"{path.name}: {problem}") from problem
    except OSError as problem:
        raise MappingFileError(f"{path.name} cannot be read: {problem.strerror or problem}") from problem
    if problems:
        raise MappingFileError(f"{path.name}: {len(problems)} bad row(s)", problems)
    return rows


def code_map(rows: Iterable[MappingRow]) -> dict[str, MappedCode]:
    """Return the rows as the formats look codes up (:class:`care.imports.report_formats.ParseContext`)."""
    return {code_key(row.local_code): MappedCode(row.target, row.unit) for row in rows}


def stored_code_map(session: Session, source: str) -> dict[str, MappedCode]:
    """Return the stored mappings that apply to ``source`` (its own win over those for every source)."""
    query = select(CodeMapping).where(or_(CodeMapping.source == ANY_SOURCE, CodeMapping.source == source))
    found: dict[str, MappedCode] = {}
    for row in sorted(session.scalars(query), key=lambda row: row.source != ANY_SOURCE):
        found[row.local_key] = MappedCode(row.target, row.unit)
    return found


def code_map_for(session: Session, source: str, extra: Mapping[str, MappedCode] | None = None) -> dict[str, MappedCode]:
    """Return the mappings an import of ``source`` uses: the stored ones, then ``extra`` (a file's) over them."""
    found = stored_code_map(session, source)
    found.update(extra or {})
    return found


def _checked_source(source: str) -> str:
    source = source.strip()
    if not source or len(source) > MAX_SOURCE:
        raise ValueError(f"the source name must be 1-{MAX_SOURCE} characters")
    return source


def store_mappings(session: Session, rows: Sequence[MappingRow], *, source: str, actor: Actor) -> MappingTally:
    """Store (add or update) mappings for ``source`` (``*``: every source); flushes, audited with counts."""
    source = _checked_source(source)
    now = clock_of(session).now()
    who = f"{actor.kind}:{actor.id}"[:64]
    existing = {row.local_key: row for row in session.scalars(select(CodeMapping).where(CodeMapping.source == source))}
    tally = MappingTally(sources={source})
    for row in rows:
        key = code_key(row.local_code)
        stored = existing.get(key)
        if stored is None:
            stored = CodeMapping(source=source, local_code=row.local_code, local_key=key, target=row.target,
                                 unit=row.unit, updated_by=who, created_at=now, updated_at=now)
            session.add(stored)
            existing[key] = stored
            tally.added += 1
        elif (stored.target, stored.unit, stored.local_code) == (row.target, row.unit, row.local_code):
            tally.unchanged += 1
        else:
            stored.local_code, stored.target, stored.unit = row.local_code, row.target, row.unit
            stored.updated_by, stored.updated_at = who, now
            tally.updated += 1
    session.flush()
    log(session, actor=actor, action="mappings.store", resource_type="code_mappings",
        details={"source": source, "added": tally.added, "updated": tally.updated, "unchanged": tally.unchanged})
    return tally


def list_mappings(session: Session, source: str | None = None) -> list[CodeMapping]:
    """Return the stored mappings (of one source, or all), by source and local code."""
    query = select(CodeMapping)
    if source is not None:
        query = query.where(CodeMapping.source == source)
    return list(session.scalars(query.order_by(CodeMapping.source, CodeMapping.local_key)))


def remove_mapping(session: Session, local_code: str, *, source: str, actor: Actor) -> bool:
    """Remove one stored mapping; return whether there was one (audited when removed)."""
    result = session.execute(delete(CodeMapping).where(CodeMapping.source == source,
                                                       CodeMapping.local_key == code_key(local_code)))
    removed = bool(getattr(result, "rowcount", 0))
    if removed:
        log(session, actor=actor, action="mappings.remove", resource_type="code_mappings",
            details={"source": source, "local_code": local_code})
    return removed
