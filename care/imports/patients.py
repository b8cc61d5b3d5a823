"""Bulk enrolment from the patients template (``careloop import patients``).

The service works batch by batch so that the entry point can commit between batches and keep
memory flat; each row is validated whole before anything of it is written, so a bad row changes
nothing and is named with its row number, column and reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice

from sqlalchemy.orm import Session

from care.errors import ValidationFailedError
from care.imports.enrolment_rows import parse_enrolment
from care.imports.tabular import Column, Row, Template
from care.patients import EnrolmentOutcome, EnrolmentRequest, enroll_many
from security.audit import Actor
from security.fields import clock_of

PATIENT_TEMPLATE = Template(
    "patients",
    (
        Column("card_no", "card_no", "卡号", True),
        Column("name", "name", "姓名", True),
        Column("gender", "gender", "性别", True),
        Column("birth_date", "birth_date", "出生日期", True),
        Column("phone", "phone", "手机号", True),
        Column("id_number", "id_number", "身份证号", False),
        Column("package", "package", "套餐", False),
        Column("language", "language", "语言", False),
        Column("wechat_openid", "wechat_openid", "微信openid", False),
    ),
)


@dataclass(frozen=True)
class RowProblem:
    row: int
    column: str
    reason: str

    def __str__(self) -> str:
        return f"row {self.row}, {self.column}: {self.reason}"


@dataclass
class ImportTally:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    problems: list[RowProblem] = field(default_factory=list)
    rejected_rows: set[int] = field(default_factory=set)

    @property
    def rejected(self) -> int:
        return len(self.rejected_rows)

    @property
    def rows(self) -> int:
        return self.created + self.updated + self.unchanged + self.rejected

    def reject(self, row: int, column: str, reason: str) -> None:
        self.problems.append(RowProblem(row, column, reason))
        self.rejected_rows.add(row)


def batches(rows: Iterable[Row], size: int) -> Iterator[list[Row]]:
    iterator = iter(rows)
    while batch := list(islice(iterator, size)):
        yield batch


class PatientImport:
    """Enrols rows batch by batch; remembers card numbers across batches to catch repeats in a file."""

    def __init__(self, *, actor: Actor) -> None:
        self.actor = actor
        self.tally = ImportTally()
        self._cards_seen: dict[str, int] = {}

    def process(self, session: Session, rows: list[Row]) -> None:
        """Enrol one batch (flushes; the caller commits)."""
        requests: list[tuple[Row, EnrolmentRequest]] = []
        today = clock_of(session).now().date()
        for row in rows:
            try:
                request = parse_enrolment(row.values, today=today)
            except ValidationFailedError as failure:
                for problem in failure.problems:
                    self.tally.reject(row.number, problem.field, problem.reason)
                continue
            first = self._cards_seen.get(request.card_no)
            if first is not None:
                self.tally.reject(row.number, "card_no", f"card number already appears in row {first} of this import")
                continue
            self._cards_seen[request.card_no] = row.number
            requests.append((row, request))
        # enroll_many() validates each request before it writes anything of it, so a refused row leaves no trace.
        results = enroll_many(session, [request for _, request in requests], actor=self.actor)
        for (row, _), result in zip(requests, results, strict=True):
            if result.outcome is None:
                for problem in result.problems:
                    self.tally.reject(row.number, problem.field, problem.reason)
            elif result.outcome is EnrolmentOutcome.CREATED:
                self.tally.created += 1
            elif result.outcome is EnrolmentOutcome.UPDATED:
                self.tally.updated += 1
            else:
                self.tally.unchanged += 1
        session.flush()
