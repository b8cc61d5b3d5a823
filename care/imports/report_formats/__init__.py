"""Report formats, registered by name: ``xlsx`` and ``csv`` (the results template), ``hl7v2``, ``fhir``.

Use::

    fmt = format_for_path(Path("results.hl7"))          # or format_for_media_type("application/fhir+json")
    for report in fmt.reports(ReportSource.from_path(path), ParseContext(today=clock.now().date())):
        ...
"""

from __future__ import annotations

from pathlib import Path

from care.imports.report_formats import fhir, hl7v2, tabular  # noqa: F401 - importing a format registers it
from care.imports.report_formats.base import (
    FORMATS,
    ParseContext,
    ParsedReport,
    PatientRef,
    ReportFileError,
    ReportFormat,
    ReportProblem,
    ReportSource,
    ResultLine,
)


class UnknownFormatError(ReportFileError):
    """No registered format reads this file type or media type."""


def format_for_path(path: Path) -> ReportFormat:
    """Return the format of a file by its suffix; raise :class:`UnknownFormatError`."""
    suffix = path.suffix.lower()
    for fmt in FORMATS.values():
        if suffix in fmt.suffixes:
            return fmt
    known = ", ".join(sorted(suffix for fmt in FORMATS.values() for suffix in fmt.suffixes))
    raise UnknownFormatError(f"{path.name}: unknown file type {suffix or '(none)'!r} (known: {known})")


def format_for_media_type(media_type: str) -> ReportFormat:
    """Return the format of an HTTP body by its media type (parameters ignored); raise :class:`UnknownFormatError`."""
    base = media_type.split(";", 1)[0].strip().lower()
    for fmt in FORMATS.values():
        if base in fmt.media_types:
            return fmt
    raise UnknownFormatError(f"unsupported media type {base or '(none)'!r} (supported: {', '.join(media_types())})")


def media_types() -> list[str]:
    """Return every media type a format reads."""
    return [media_type for fmt in FORMATS.values() for media_type in fmt.media_types]


__all__ = [
    "FORMATS",
    "ParseContext",
    "ParsedReport",
    "PatientRef",
    "ReportFileError",
    "ReportFormat",
    "ReportProblem",
    "ReportSource",
    "ResultLine",
    "UnknownFormatError",
    "format_for_media_type",
    "format_for_path",
    "media_types",
]
