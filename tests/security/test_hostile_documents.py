"""A pushed or imported document cannot crash the import: too deep, a number too long, a file too large.

A FHIR document nested 10,000 levels deep once ended in a ``RecursionError`` (a 500 from the API, a
traceback from the CLI). Each hostile document is now refused the way any unreadable document is:
one line naming the file on the CLI, a 422 naming the reason from ``POST /api/v1/reports``, and
nothing stored.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from care.imports.report_formats import FORMATS, ParseContext, ReportFileError, ReportSource
from care.imports.report_formats import fhir as fhir_format
from care.models import AuditEntry, CheckupReport, Observation
from tests.api.test_reports import api_key, push
from tests.care.imports.samples import fhir_bundle, quantity
from tests.careloop.test_cli_import_reports import count, enrolled

__all__ = ["api_key"]

DEEP = 10_000
BOUNDED = settings(max_examples=30, deadline=None, derandomize=True, database=None,
                   phases=[Phase.explicit, Phase.generate],
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
#: Ways of going one level deeper, and where in a document the nesting is put.
OPENERS = {"[": b"]", '{"x":': b"}", '{"extension":[': b"]}", '[{"a":': b"}]"}
PLACES = ("top", "extension", "entry", "string-bracket-prefix")


def nested(openers: list[str], depth: int, place: str) -> bytes:
    """A document whose nesting, made of ``openers`` in turn, goes ``depth`` levels deep at ``place``."""
    opening = b"".join(openers[i % len(openers)].encode() for i in range(depth))
    closing = b"".join(OPENERS[openers[i % len(openers)]] for i in reversed(range(depth)))
    core = opening + b"0" + closing
    if place == "top":
        return core
    if place == "extension":
        return b'{"resourceType":"Observation","status":"final","code":{"text":"x"},"extension":' + core + b"}"
    if place == "entry":
        return b'{"resourceType":"Bundle","type":"collection","entry":[{"resource":' + core + b"}]}"
    # Brackets inside strings do not nest: a document full of them is read, the real nesting still counted.
    return b'{"resourceType":"Observation","id":"' + b"[" * 500 + b'","extension":' + core + b"}"


def read_fhir(raw: bytes, name: str = "doc.json") -> None:
    context = ParseContext(today=date(2026, 11, 29), code_map={})
    list(FORMATS["fhir"].reports(ReportSource.from_bytes(name, raw), context))


@BOUNDED
@given(openers=st.lists(st.sampled_from(sorted(OPENERS)), min_size=1, max_size=4),
       depth=st.one_of(st.just(DEEP), st.integers(fhir_format.MAX_JSON_DEPTH + 1, DEEP)),
       place=st.sampled_from(PLACES))
def test_a_document_nested_too_deep_is_refused_never_a_recursion_error(openers, depth, place):
    with pytest.raises(ReportFileError, match=r"doc\.json is nested deeper than \d+ levels"):
        read_fhir(nested(openers, depth, place))


def test_nesting_within_the_limit_and_brackets_inside_strings_are_read():
    depth = fhir_format.MAX_JSON_DEPTH - 4  # the document's own levels around the nesting
    read_fhir(nested(['{"extension":['], depth // 2, "extension"))
    observation = quantity("8480-6", 146, "mmHg") | {"id": "[[[[" * 200, "note": [{"text": "{" * 5000}]}
    read_fhir(fhir_bundle(card="C0001", observations=[observation]))


def test_a_number_longer_than_python_reads_is_refused_as_invalid_json():
    raw = b'{"resourceType":"Observation","valueInteger":' + b"9" * 5000 + b"}"
    with pytest.raises(ReportFileError, match=r"doc\.json is not valid JSON: a number is too long"):
        read_fhir(raw)


def hostile(tmp_path: Path) -> dict[str, bytes]:
    too_deep = nested(['{"extension":['], DEEP, "extension")
    long_number = fhir_bundle(card="C0001", observations=[quantity("8480-6", 146, "mmHg")]).replace(
        b'"value": 146', b'"value": ' + b"1" * 5000)
    assert b"1" * 5000 in long_number
    huge = fhir_bundle(card="C0001", observations=[quantity("8480-6", 146, "mmHg")] * 5000)
    assert len(huge) > 1024 * 1024
    return {"deep.json": too_deep, "number.json": long_number, "huge.json": huge}


def test_the_cli_names_each_hostile_file_in_one_line_and_stores_nothing(run_cli, tmp_path, fresh_settings,
                                                                          monkeypatch):
    enrolled(run_cli, tmp_path)
    monkeypatch.setattr(fhir_format, "MAX_BUNDLE_BYTES", 1024 * 1024)  # "huge.json" is larger than that
    paths = []
    for name, data in hostile(tmp_path).items():
        (tmp_path / name).write_bytes(data)
        paths.append(str(tmp_path / name))
    code, _, err = run_cli("import", "reports", *paths)
    assert code == 1
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert lines == [
        f"{tmp_path / 'deep.json'}: deep.json is nested deeper than {fhir_format.MAX_JSON_DEPTH} levels",
        f"{tmp_path / 'number.json'}: number.json is not valid JSON: a number is too long",
        f"{tmp_path / 'huge.json'}: huge.json is larger than 1 MB",
    ]
    assert count(fresh_settings, "observations") == 0
    assert count(fresh_settings, "checkup_reports") == 0


@pytest.mark.parametrize("name", ["deep.json", "number.json"])
def test_the_api_answers_422_with_the_reason_and_stores_nothing(client, db, make_patient, api_key, tmp_path, name):
    make_patient(card_no="C0001")
    status, answer = push(client, hostile(tmp_path)[name], "application/fhir+json", api_key)
    assert status == 422, answer
    assert answer["imported"] is False
    reason = {"deep.json": f"body is nested deeper than {fhir_format.MAX_JSON_DEPTH} levels",
              "number.json": "body is not valid JSON: a number is too long"}[name]
    assert answer["problems"] == [{"where": "body", "column": "fhir", "reason": reason}]
    db.expire_all()
    assert db.scalar(select(func.count()).select_from(Observation)) == 0
    assert db.scalar(select(func.count()).select_from(CheckupReport)) == 0
    refused = db.scalars(select(AuditEntry.details).where(AuditEntry.action == "report.push_refused")).all()
    assert [json.loads(details)["status"] for details in refused] == [422]
