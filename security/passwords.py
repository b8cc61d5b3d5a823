"""Staff passwords: argon2id with OWASP's parameters, and a policy for new passwords."""

from __future__ import annotations

import functools
import secrets
import string

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# OWASP Password Storage Cheat Sheet: argon2id, m=19 MiB, t=2, p=1.
HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1, hash_len=32, salt_len=16, type=Type.ID)

MIN_LENGTH = 12


class WeakPasswordError(ValueError):
    """The new password does not meet the policy."""


def check_policy(password: str, *, user_identifiers: tuple[str, ...] = ()) -> None:
    """Reject short passwords and those containing the user's own identifiers."""
    if len(password) < MIN_LENGTH:
        raise WeakPasswordError(f"the password must be at least {MIN_LENGTH} characters")
    lowered = password.lower()
    for identifier in user_identifiers:
        part = identifier.lower().split("@")[0]
        if len(part) >= 4 and part in lowered:
            raise WeakPasswordError("the password must not contain your name or e-mail")
    if len(set(password)) < 5:
        raise WeakPasswordError("the password repeats too few characters")


def hash_password(password: str) -> str:
    return HASHER.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    """True when ``password`` matches; never raises on a mismatch or a malformed hash."""
    try:
        return HASHER.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


@functools.cache
def _absent_account_hash() -> str:
    # A hash of a random password nobody knows, made once per process with the same parameters.
    return HASHER.hash(secrets.token_urlsafe(24))


def verify_absent(password: str) -> None:
    """Do the work of one :func:`verify_password` for an account that does not exist (always fails).

    A sign-in for an unknown or disabled e-mail then takes as long as one with a wrong password,
    so timing does not tell whether an account exists.
    """
    verify_password(_absent_account_hash(), password)


def needs_rehash(stored_hash: str) -> bool:
    return HASHER.check_needs_rehash(stored_hash)


def generate_password(length: int = 20) -> str:
    """A random one-time password for a new account (letters and digits, no look-alikes)."""
    alphabet = "".join(ch for ch in string.ascii_letters + string.digits if ch not in "0OolI1")
    return "".join(secrets.choice(alphabet) for _ in range(length))
