"""A clinic's own codes: a mapping file for one import, or stored for a source (and for the API)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from care.imports.mappings import (
    MappingFileError,
    code_map,
    code_map_for,
    list_mappings,
    read_mapping_file,
    remove_mapping,
    store_mappings,
)
from care.imports.report_formats import FORMATS, ReportSource
from care.imports.reports import import_document
from care.models import AuditEntry, Patient
from care.observations import observations_of
from security.audit import Actor
from tests.care.imports.samples import csv_bytes, hl7_message

ACTOR = Actor("system", "pytest", "tests")


def mapping_file(tmp_path: Path, text: str, name: str = "map.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_mapping_file_is_read_with_english_or_chinese_headers(tmp_path: Path) -> None:
    rows = read_mapping_file(mapping_file(tmp_path, "local_code,loinc,unit\nGLU-F,fpg,mmol/L\nXHDB,718-7,\n"))
    assert [(row.local_code, row.target, row.unit) for row in rows] == [("GLU-F", "fpg", "mmol/L"),
                                                                        ("XHDB", "718-7", None)]
    chinese = read_mapping_file(mapping_file(tmp_path, "本地代码,指标代码,单位\n血脂1,总胆固醇,mg/dL\n", "zh.csv"))
    assert [(row.local_code, row.target, row.unit) for row in chinese] == [("血脂1", "总胆固醇", "mg/dL")]


def test_bad_mapping_rows_are_all_named(tmp_path: Path) -> None:
    path = mapping_file(tmp_path, "local_code,code,unit\n,fpg,\nA1,nonsense,\nA2,hgb,mmHg\nA3,4551-8,\n"
                                  "A4,4551-7,\nA3,hgb,\n")
    with pytest.raises(MappingFileError) as refused:
        read_mapping_file(path)
    assert [str(problem) for problem in refused.value.problems] == [
        "row 2, local_code: is required",
        "row 3, code: 'nonsense' is neither a code of the indicator table nor a LOINC code",
        "row 4, unit: unit 'mmHg' is not accepted for hgb",
        "row 6, code: '4551-7' is neither a code of the indicator table nor a LOINC code",
        "row 7, local_code: is mapped differently in row 5",
    ]


def test_a_mapping_file_resolves_local_codes_in_every_format(db: Session, make_patient: Callable[..., Patient],
                                                             tmp_path: Path) -> None:
    patient = make_patient()
    rows = read_mapping_file(mapping_file(tmp_path, "local_code,code,unit\nGLU-F,fpg,mg/dL\nHB-A2,4551-8,%\n"
                                                    "XHDB,血红蛋白,\n"))
    data = hl7_message(card=patient.card_no, report_id="H1", results=[
        ("GLU-F", "108", "", "F"), ("HB-A2", "2.6", "", "F"), ("xhdb", "13.2", "g/dL", "F"),
    ])
    tally = import_document(db, ReportSource.from_bytes("a.hl7", data.encode()), FORMATS["hl7v2"],
                            source_name="lis", actor=ACTOR, code_map=code_map(rows))
    db.flush()
    assert tally.problems == []
    found = {row.code: row for row in observations_of(db, patient, kept_too=True)}
    assert round(found["14771-0"].value or 0, 2) == 6.0  # 108 mg/dL, the mapping's unit
    assert round(found["718-7"].value or 0, 1) == 132.0  # case and width do not count
    assert (found["4551-8"].value, found["4551-8"].unit, found["4551-8"].recognised) == (2.6, "%", False)
    assert found["4551-8"].code_system == "http://loinc.org"
    assert tally.kept["unknown_code"].listed() == ["4551-8"]


def test_stored_mappings_apply_per_source_and_a_files_win(db: Session, make_patient: Callable[..., Patient],
                                                          tmp_path: Path) -> None:
    everywhere = read_mapping_file(mapping_file(tmp_path, "local_code,code\nZ1,tc\nZ2,tg\n", "all.csv"))
    own = read_mapping_file(mapping_file(tmp_path, "local_code,code\nZ1,hdl\n", "own.csv"))
    assert str(store_mappings(db, everywhere, source="*", actor=ACTOR)) == "2 added, 0 updated, 0 unchanged"
    assert str(store_mappings(db, own, source="centre-a", actor=ACTOR)) == "1 added, 0 updated, 0 unchanged"
    assert str(store_mappings(db, own, source="centre-a", actor=ACTOR)) == "0 added, 0 updated, 1 unchanged"
    assert {key: value.target for key, value in code_map_for(db, "centre-a").items()} == {"z1": "hdl", "z2": "tg"}
    assert {key: value.target for key, value in code_map_for(db, "centre-b").items()} == {"z1": "tc", "z2": "tg"}
    extra = code_map(read_mapping_file(mapping_file(tmp_path, "local_code,code\nz2,ldl\n", "run.csv")))
    assert code_map_for(db, "centre-a", extra)["z2"].target == "ldl"
    assert [(row.source, row.local_code) for row in list_mappings(db)] == [("*", "Z1"), ("*", "Z2"),
                                                                            ("centre-a", "Z1")]
    assert remove_mapping(db, "z1", source="centre-a", actor=ACTOR)
    assert not remove_mapping(db, "z1", source="centre-a", actor=ACTOR)
    db.flush()
    assert code_map_for(db, "centre-a")["z1"].target == "tc"
    actions = db.scalars(select(AuditEntry.action).where(AuditEntry.resource_type == "code_mappings")).all()
    assert sorted(actions) == ["mappings.remove", "mappings.store", "mappings.store", "mappings.store"]


def test_an_import_uses_the_stored_mappings_of_its_source_by_default(
    db: Session, make_patient: Callable[..., Patient], tmp_path: Path
) -> None:
    patient = make_patient()
    store_mappings(db, read_mapping_file(mapping_file(tmp_path, "local_code,code,unit\n血脂-1,ldl,mmol/L\n")),
                   source="centre", actor=ACTOR)
    data = csv_bytes([[patient.card_no, "R1", "2024-03-05", "血脂-1", "3.1", ""]])
    tally = import_document(db, ReportSource.from_bytes("a.csv", data), FORMATS["csv"], source_name="centre",
                            actor=ACTOR)
    db.flush()
    assert tally.problems == []
    assert [(row.code, row.value, row.unit) for row in observations_of(db, patient)] == [("22748-8", 3.1, "mmol/L")]
