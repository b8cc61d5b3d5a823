"""Patient identifiers: normalisation and validation of phone, resident ID, card number, openid, name.

Normalised forms are what blind indexes are computed on, so a lookup finds a record however the
number was typed (spaces, dashes, +86 or not, lower-case x in an ID number).
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date

import phonenumbers

DEFAULT_REGION = "CN"

# GB 11643-1999: weights of the first 17 digits and the check character for each remainder mod 11.
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_WHITESPACE = re.compile(r"\s")


class IdentifierError(ValueError):
    """An identifier is malformed; the message says why, in plain words."""


def normalize_phone(raw: str, region: str = DEFAULT_REGION) -> str:
    """Return the phone number in E.164 (``+8613812345678``); a bare 11-digit number is mainland."""
    text = raw.strip()
    if not text:
        raise IdentifierError("phone number is empty")
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as problem:
        raise IdentifierError("phone number cannot be read") from problem
    if not phonenumbers.is_valid_number(number):
        raise IdentifierError("phone number is not a valid number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def id_number_check_character(first17: str) -> str:
    total = sum(int(digit) * weight for digit, weight in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


def normalize_id_number(raw: str) -> str:
    """Validate an 18-character resident ID (GB 11643-1999 checksum, real birth date) and upper-case it."""
    text = raw.strip().upper()
    if len(text) != 18 or not text[:17].isdigit() or not (text[17].isdigit() or text[17] == "X"):
        raise IdentifierError("ID number must be 17 digits followed by a digit or X")
    try:
        id_birth_date(text)
    except ValueError as problem:
        raise IdentifierError("ID number holds an impossible birth date") from problem
    if id_number_check_character(text[:17]) != text[17]:
        raise IdentifierError("ID number checksum does not match (a digit may be mistyped)")
    return text


def id_birth_date(id_number: str) -> date:
    return date(int(id_number[6:10]), int(id_number[10:12]), int(id_number[12:14]))


def id_gender(id_number: str) -> str:
    """``M`` or ``F`` from the 17th digit (odd: male)."""
    return "M" if int(id_number[16]) % 2 == 1 else "F"


def normalize_card_no(raw: str) -> str:
    text = "".join(raw.split()).upper()
    if not text:
        raise IdentifierError("card number is empty")
    if len(text) > 64 or not all(ch.isalnum() or ch in "-_" for ch in text):
        raise IdentifierError("card number may hold letters, digits, '-' and '_' only (at most 64)")
    return text


def normalize_openid(raw: str) -> str:
    text = raw.strip()
    if not text or len(text) > 128 or _WHITESPACE.search(text):
        raise IdentifierError("WeChat openid must be one word of at most 128 characters")
    return text


def normalize_name(raw: str) -> str:
    """Return a name as its blind index sees it: NFKC (full-width letters become plain), no spaces, case-folded.

    The panel finds a patient by the whole name (``王秀英``, ``wang xiuying`` = ``Wang  Xiuying``),
    never by a part of it: the index is a keyed hash of the whole normalised name.
    """
    return "".join(unicodedata.normalize("NFKC", raw).split()).casefold()
