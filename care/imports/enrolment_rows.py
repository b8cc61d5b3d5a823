"""Parsing one row of the enrolment template (a spreadsheet row, a form) into an enrolment request."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from care.errors import Problem, ValidationFailedError
from care.identifiers import (
    IdentifierError,
    id_birth_date,
    id_gender,
    normalize_card_no,
    normalize_id_number,
    normalize_openid,
    normalize_phone,
)
from care.imports.tabular import cell_text
from care.patients import EnrolmentRequest

GENDERS = {"m": "M", "male": "M", "男": "M", "f": "F", "female": "F", "女": "F"}
LANGUAGES = {"zh": "zh", "zh-cn": "zh", "中文": "zh", "en": "en", "english": "en", "英文": "en"}
MAX_NAME = 64
MAX_PACKAGE = 128

def _text(values: Mapping[str, object], key: str) -> str:
    return cell_text(values.get(key))


def parse_enrolment(values: Mapping[str, object], *, today: date) -> EnrolmentRequest:
    """Validate raw values (from a spreadsheet row or a form) into a request; every problem is reported.

    ``today`` (the clock's) bounds a plausible birth date.

    Raises:
        ValidationFailedError: with one :class:`Problem` per bad field.
    """
    problems: list[Problem] = []

    def required(key: str) -> str:
        text = _text(values, key)
        if not text:
            problems.append(Problem(key, "is required"))
        return text

    card_no = required("card_no")
    if card_no:
        try:
            card_no = normalize_card_no(card_no)
        except IdentifierError as error:
            problems.append(Problem("card_no", str(error)))
    name = required("name")
    if len(name) > MAX_NAME:
        problems.append(Problem("name", f"is longer than {MAX_NAME} characters"))
    gender_text = required("gender")
    gender = GENDERS.get(gender_text.lower(), "")
    if gender_text and not gender:
        problems.append(Problem("gender", "is not M/F or 男/女"))
    birth_text = required("birth_date")
    birth: date | None = None
    if birth_text:
        try:
            birth = date.fromisoformat(birth_text)
        except ValueError:
            problems.append(Problem("birth_date", "is not a date in YYYY-MM-DD form"))
        else:
            if birth > today or birth.year < 1900:
                problems.append(Problem("birth_date", "is not a plausible birth date"))
    phone = required("phone")
    if phone:
        try:
            phone = normalize_phone(phone)
        except IdentifierError as error:
            problems.append(Problem("phone", str(error)))
    id_number: str | None = _text(values, "id_number") or None
    if id_number:
        try:
            id_number = normalize_id_number(id_number)
        except IdentifierError as error:
            problems.append(Problem("id_number", str(error)))
        else:
            if birth is not None and id_birth_date(id_number) != birth:
                problems.append(Problem("id_number", "birth date in the ID number differs from birth_date"))
            if gender and id_gender(id_number) != gender:
                problems.append(Problem("id_number", "gender in the ID number differs from gender"))
    package = _text(values, "package") or None
    if package and len(package) > MAX_PACKAGE:
        problems.append(Problem("package", f"is longer than {MAX_PACKAGE} characters"))
    language_text = _text(values, "language") or "zh"
    language = LANGUAGES.get(language_text.lower(), "")
    if not language:
        problems.append(Problem("language", "is not zh or en"))
    openid: str | None = _text(values, "wechat_openid") or None
    if openid:
        try:
            openid = normalize_openid(openid)
        except IdentifierError as error:
            problems.append(Problem("wechat_openid", str(error)))
    if problems or birth is None:
        raise ValidationFailedError(problems)
    return EnrolmentRequest(
        card_no=card_no, name=name, gender=gender, birth_date=birth, phone=phone, id_number=id_number,
        package=package, language=language, wechat_openid=openid,
    )
