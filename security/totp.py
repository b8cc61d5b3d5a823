"""Second factor: TOTP (RFC 6238, via pyotp) with replay protection, and one-time recovery codes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from datetime import datetime

import pyotp

ISSUER = "Careloop"
RECOVERY_CODE_COUNT = 10
STEP_SECONDS = 30
# Six ASCII digits only: str.isdigit() also takes full-width and Arabic-Indic digits, which
# hmac.compare_digest refuses with a TypeError.
_CODE = re.compile(r"[0-9]{6}", re.ASCII)


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, account: str, issuer: str = ISSUER) -> str:
    """The otpauth:// URI an authenticator app scans."""
    return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=issuer)


def current_code(secret: str, at: datetime) -> str:
    return pyotp.TOTP(secret).at(at)


def verify_code(secret: str, code: str, *, at: datetime, last_used_step: int | None) -> int | None:
    """Check ``code`` within one step of drift; return its time step, or None if invalid or replayed.

    The caller stores the returned step and passes it back, so a code is accepted only once.
    """
    cleaned = "".join(code.split()).replace("-", "")  # "123 456" and "123-456" as typed from some apps
    if not _CODE.fullmatch(cleaned):
        return None
    totp = pyotp.TOTP(secret)
    current = int(at.timestamp()) // STEP_SECONDS
    for step in (current - 1, current, current + 1):
        if last_used_step is not None and step <= last_used_step:
            continue
        if hmac.compare_digest(totp.generate_otp(step), cleaned):
            return step
    return None


def new_recovery_codes(count: int = RECOVERY_CODE_COUNT) -> list[str]:
    """Fresh recovery codes to show once: 10 base32 characters (50 bits) each, as ``xxxxx-xxxxx``."""
    codes = []
    for _ in range(count):
        raw = base64.b32encode(secrets.token_bytes(7)).decode()[:10].lower()
        codes.append(f"{raw[:5]}-{raw[5:]}")
    return codes


def hash_recovery_code(key: bytes, code: str) -> str:
    normalized = code.strip().lower().replace(" ", "").replace("-", "")
    return hmac.new(key, normalized.encode(), hashlib.sha256).hexdigest()


def use_recovery_code(key: bytes, code: str, stored_hashes: list[str]) -> list[str] | None:
    """Return the remaining hashes after consuming ``code``, or None if it is not valid."""
    candidate = hash_recovery_code(key, code)
    for index, stored in enumerate(stored_hashes):
        if hmac.compare_digest(stored, candidate):
            return stored_hashes[:index] + stored_hashes[index + 1 :]
    return None
