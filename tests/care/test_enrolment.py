"""Enrolment: validation of every field, normalisation, idempotency by card, uniqueness of IDs."""

from __future__ import annotations

from datetime import date

import pytest

from care.errors import NotFoundError, ValidationFailedError
from care.identifiers import IdentifierError, normalize_id_number, normalize_phone
from care.imports.enrolment_rows import parse_enrolment as parse_row
from care.patients import EnrolmentOutcome, enroll, find_by_openid, get_patient
from tests.conftest import TEST_ACTOR

TODAY = date(2026, 12, 3)


def parse_enrolment(values):
    return parse_row(values, today=TODAY)


VALID = {"card_no": " ab-001 ", "name": "陈静", "gender": "女", "birth_date": "1949-12-31",
         "phone": "139 1234 5678", "id_number": "11010519491231002x", "language": "中文"}


def test_a_valid_row_is_normalised():
    request = parse_enrolment(VALID)
    assert request.card_no == "AB-001"
    assert request.gender == "F"
    assert request.phone == "+8613912345678"
    assert request.id_number == "11010519491231002X"
    assert request.language == "zh"
    assert request.birth_date == date(1949, 12, 31)


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("card_no", "", "is required"),
        ("card_no", "卡 号!", "letters, digits"),
        ("name", "", "is required"),
        ("gender", "unknown", "is not M/F"),
        ("birth_date", "31/12/1949", "YYYY-MM-DD"),
        ("birth_date", "2090-01-01", "plausible"),
        ("phone", "12345", "not a valid number"),
        ("id_number", "11010519491231002", "17 digits"),
        ("id_number", "110105194912310021", "checksum"),
        ("id_number", "110105194902300028", "impossible birth date"),
        ("language", "fr", "is not zh or en"),
        ("wechat_openid", "has space", "one word"),
    ],
)
def test_each_bad_field_is_named_with_its_reason(field, value, reason):
    with pytest.raises(ValidationFailedError) as failure:
        parse_enrolment({**VALID, field: value})
    assert any(problem.field == field and reason in problem.reason for problem in failure.value.problems)


def test_id_number_must_agree_with_birth_date_and_gender():
    with pytest.raises(ValidationFailedError, match="birth date in the ID number"):
        parse_enrolment({**VALID, "birth_date": "1950-01-01"})
    with pytest.raises(ValidationFailedError, match="gender in the ID number"):
        parse_enrolment({**VALID, "gender": "男"})


def test_every_problem_of_a_row_is_reported_at_once():
    with pytest.raises(ValidationFailedError) as failure:
        parse_enrolment({"card_no": "X1"})
    assert {p.field for p in failure.value.problems} == {"name", "gender", "birth_date", "phone"}


def test_spreadsheet_values_are_accepted():
    request = parse_enrolment({**VALID, "phone": 13912345678.0, "card_no": 1001.0})
    assert request.card_no == "1001"
    assert request.phone == "+8613912345678"


def test_enrolment_is_idempotent_and_updates_changed_fields(db):
    first = enroll(db, parse_enrolment(VALID), actor=TEST_ACTOR)
    assert first.outcome is EnrolmentOutcome.CREATED
    db.flush()
    again = enroll(db, parse_enrolment(VALID), actor=TEST_ACTOR)
    assert again.outcome is EnrolmentOutcome.UNCHANGED
    changed = enroll(db, parse_enrolment({**VALID, "phone": "13900000000", "package": "VIP"}), actor=TEST_ACTOR)
    assert changed.outcome is EnrolmentOutcome.UPDATED
    assert set(changed.changed_fields) == {"phone", "package"}
    assert get_patient(db, "ab-001").phone == "+8613900000000"
    assert get_patient(db, str(first.patient.id)).card_no == "AB-001"


def test_an_id_number_or_openid_cannot_belong_to_two_cards(db):
    enroll(db, parse_enrolment({**VALID, "wechat_openid": "oABC"}), actor=TEST_ACTOR)
    db.flush()
    with pytest.raises(ValidationFailedError, match="already enrolled under another card"):
        enroll(db, parse_enrolment({**VALID, "card_no": "AB-002"}), actor=TEST_ACTOR)
    other = {**VALID, "card_no": "AB-003", "id_number": "", "wechat_openid": "oABC"}
    with pytest.raises(ValidationFailedError, match="already bound"):
        enroll(db, parse_enrolment(other), actor=TEST_ACTOR)
    found = find_by_openid(db, "oABC")
    assert found is not None
    assert found.card_no == "AB-001"


def test_unknown_reference_is_not_found(db):
    with pytest.raises(NotFoundError):
        get_patient(db, "NOPE-1")


@pytest.mark.parametrize(("raw", "expected"), [("13800138000", "+8613800138000"), ("+1 650 253 0000", "+16502530000"),
                                               ("0086 138-0013-8000", "+8613800138000")])
def test_phone_normalisation(raw, expected):
    assert normalize_phone(raw) == expected


def test_id_number_checksum_rejects_one_wrong_digit():
    assert normalize_id_number("11010519491231002X")
    with pytest.raises(IdentifierError):
        normalize_id_number("11010519491231003X")


def test_a_birth_date_is_plausible_up_to_the_clocks_today_not_the_machines():
    born_today = {**VALID, "birth_date": "2026-12-03", "id_number": ""}
    assert parse_row(born_today, today=date(2026, 12, 3)).birth_date == date(2026, 12, 3)
    with pytest.raises(ValidationFailedError, match="plausible"):
        parse_row(born_today, today=date(2026, 12, 2))
