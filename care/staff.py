"""Staff accounts: roles seeded from the defaults, account creation, sign-in checks."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from care.errors import ConflictError, NotFoundError, Problem, ValidationFailedError
from care.models import Role, User
from security import passwords, totp
from security.audit import Actor, log
from security.fields import cipher_of, clock_of
from security.roles import DEFAULT_ROLES, default_role

LOCKOUT_THRESHOLD = 5
LOCKOUT_MINUTES = 15


def ensure_roles(session: Session) -> list[Role]:
    """Create the default roles that are missing (existing roles keep a clinic's edits)."""
    existing = {role.name: role for role in session.scalars(select(Role))}
    for definition in DEFAULT_ROLES:
        if definition.name not in existing:
            role = Role(
                name=definition.name, title_zh=definition.title_zh, title_en=definition.title_en,
                permission_names=sorted(permission.value for permission in definition.permissions),
            )
            session.add(role)
            existing[definition.name] = role
    session.flush()
    return list(existing.values())


@dataclass(frozen=True)
class NewAccount:
    """What to hand the new staff member once: never stored in clear."""

    user: User
    one_time_password: str
    totp_secret: str
    totp_uri: str
    recovery_codes: list[str]


def _recovery_key(session: Session) -> bytes:
    return cipher_of(session).key_ring.purpose_key("recovery-codes")


def create_user(session: Session, *, email: str, display_name: str, role_name: str, actor: Actor) -> NewAccount:
    """Create a staff account with a one-time password, a TOTP secret and recovery codes."""
    email = email.strip().lower()
    if "@" not in email or len(email) > 254 or email.startswith("@") or email.endswith("@"):
        raise ValidationFailedError([Problem("email", f"{email!r} is not an e-mail address")])
    try:
        default_role(role_name)
    except KeyError as error:
        raise ValidationFailedError([Problem("role", str(error.args[0]))]) from error
    role = session.scalars(select(Role).where(Role.name == role_name)).one_or_none()
    if role is None:
        ensure_roles(session)
        role = session.scalars(select(Role).where(Role.name == role_name)).one()
    if session.scalar(select(func.count()).select_from(User).where(User.email == email)):
        raise ConflictError(f"a staff account for {email} already exists")
    now = clock_of(session).now()
    one_time_password = passwords.generate_password()
    secret = totp.new_secret()
    codes = totp.new_recovery_codes()
    user = User(
        email=email, display_name=display_name.strip() or email,
        password_hash=passwords.hash_password(one_time_password), must_change_password=True,
        totp_secret=secret, totp_last_step=None,
        recovery_code_hashes=[totp.hash_recovery_code(_recovery_key(session), code) for code in codes],
        role=role, is_active=True, failed_logins=0, created_at=now, updated_at=now,
    )
    session.add(user)
    log(session, actor=actor, action="user.create", resource_type="user", resource_id=user.id,
        details={"role": role_name})
    return NewAccount(user, one_time_password, secret, totp.provisioning_uri(secret, email), codes)


def admin_count(session: Session) -> int:
    query = select(func.count()).select_from(User).join(Role).where(Role.name == "admin", User.is_active.is_(True))
    return int(session.scalar(query) or 0)


class SignInError(Exception):
    """Sign-in refused; the message is safe to show (it never says which factor failed)."""


def authenticate(session: Session, *, email: str, password: str, code: str, source: str | None) -> User:
    """Check password and TOTP (or a recovery code); lock the account after repeated failures."""
    now = clock_of(session).now()
    user = session.scalars(select(User).where(User.email == email.strip().lower())).one_or_none()
    actor = Actor("user", str(user.id) if user else "unknown", source)
    refused = SignInError("e-mail, password or code is not correct")
    if user is None or not user.is_active:
        passwords.verify_password(passwords.hash_password("timing-equaliser"), password)
        log(session, actor=actor, action="auth.failed", resource_type="user")
        raise refused
    if user.locked_until is not None and user.locked_until > now:
        log(session, actor=actor, action="auth.locked", resource_type="user", resource_id=user.id)
        raise SignInError("too many failed attempts; try again in a few minutes")
    password_ok = passwords.verify_password(user.password_hash, password)
    step = None
    remaining = None
    if password_ok and user.totp_secret:
        step = totp.verify_code(user.totp_secret, code, at=now, last_used_step=user.totp_last_step)
        if step is None:
            remaining = totp.use_recovery_code(_recovery_key(session), code, list(user.recovery_code_hashes))
    if not password_ok or (step is None and remaining is None):
        user.failed_logins += 1
        if user.failed_logins >= LOCKOUT_THRESHOLD:
            user.locked_until = now + timedelta(minutes=LOCKOUT_MINUTES)
            user.failed_logins = 0
        log(session, actor=actor, action="auth.failed", resource_type="user", resource_id=user.id)
        raise refused
    if step is not None:
        user.totp_last_step = step
    else:
        assert remaining is not None  # noqa: S101 - narrowed by the check above
        user.recovery_code_hashes = remaining
        log(session, actor=actor, action="auth.recovery_code_used", resource_type="user", resource_id=user.id,
            details={"codes_left": len(remaining)})
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password)
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    log(session, actor=actor, action="auth.signed_in", resource_type="user", resource_id=user.id)
    return user


def get_user(session: Session, email: str) -> User:
    user = session.scalars(select(User).where(User.email == email.strip().lower())).one_or_none()
    if user is None:
        raise NotFoundError(f"no staff account for {email}")
    return user


def find_user(session: Session, user_id: uuid.UUID) -> User | None:
    """Return the staff account with this id, or None."""
    return session.get(User, user_id)


def is_locked(session: Session, user: User) -> bool:
    """Tell whether the account is locked out right now (after repeated failures)."""
    return user.locked_until is not None and user.locked_until > clock_of(session).now()


def password_fingerprint(user: User) -> str:
    """Return a short digest of the stored password hash.

    A signed-in session keeps it, so a password change (or reset) signs out every other session
    of the account. It reveals nothing: the hash it digests is salted argon2id.
    """
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:24]


SAME_AS_CURRENT = "the new password must differ from the current one"


def change_password(session: Session, user: User, *, current_password: str, new_password: str, actor: Actor) -> None:
    """Replace the password after checking the current one and the policy; audited either way.

    A wrong current password counts towards the same lockout as a failed sign-in, so a session
    left open cannot be used to guess the password.

    :raises ValidationFailedError: ``current_password`` is not correct, or ``new_password`` breaks the
        policy (the problem's reason is the policy's message); nothing but the failure count changed.
    """
    now = clock_of(session).now()
    if not passwords.verify_password(user.password_hash, current_password):
        user.failed_logins += 1
        if user.failed_logins >= LOCKOUT_THRESHOLD:
            user.locked_until = now + timedelta(minutes=LOCKOUT_MINUTES)
            user.failed_logins = 0
        log(session, actor=actor, action="user.password_change_failed", resource_type="user", resource_id=user.id,
            details={"reason": "current_password"})
        raise ValidationFailedError([Problem("current_password", "is not correct")])
    try:
        passwords.check_policy(new_password, user_identifiers=(user.email, user.display_name))
        if passwords.verify_password(user.password_hash, new_password):
            raise passwords.WeakPasswordError(SAME_AS_CURRENT)
    except passwords.WeakPasswordError as error:
        log(session, actor=actor, action="user.password_change_failed", resource_type="user", resource_id=user.id,
            details={"reason": "policy"})
        raise ValidationFailedError([Problem("new_password", str(error))]) from error
    user.password_hash = passwords.hash_password(new_password)
    user.must_change_password = False
    user.failed_logins = 0
    user.updated_at = now
    log(session, actor=actor, action="user.password_change", resource_type="user", resource_id=user.id)


def record_sign_out(session: Session, user_id: uuid.UUID, *, reason: str, actor: Actor) -> None:
    """Audit the end of a staff session: ``reason`` is ``logout``, ``idle`` or ``expired``."""
    log(session, actor=actor, action="auth.signed_out", resource_type="user", resource_id=user_id,
        details={"reason": reason})


def list_users(session: Session) -> list[User]:
    """Return every staff account, by e-mail."""
    return list(session.scalars(select(User).order_by(User.email)))


def disable_user(session: Session, email: str, *, actor: Actor) -> bool:
    """Disable an account so that it can no longer sign in; return False when it already was disabled.

    Its open sessions end at their next request (the panel re-checks ``is_active``).

    :raises NotFoundError: no account has this e-mail.
    :raises ConflictError: it is the last active administrator (nobody could manage accounts after it).
    """
    user = get_user(session, email)
    if not user.is_active:
        return False
    if user.role.name == "admin" and admin_count(session) <= 1:
        raise ConflictError(f"{user.email} is the last active administrator; add another one before disabling it")
    user.is_active = False
    user.updated_at = clock_of(session).now()
    log(session, actor=actor, action="user.disable", resource_type="user", resource_id=user.id)
    return True


def reset_password(session: Session, email: str, *, actor: Actor) -> tuple[User, str]:
    """Give the account a new one-time password, to be changed at the next sign-in; return it once.

    The old password stops working and every open session of the account ends (its password
    fingerprint changes); a lockout from failed attempts is lifted.

    :raises NotFoundError: no account has this e-mail.
    """
    user = get_user(session, email)
    one_time_password = passwords.generate_password()
    user.password_hash = passwords.hash_password(one_time_password)
    user.must_change_password = True
    user.failed_logins = 0
    user.locked_until = None
    user.updated_at = clock_of(session).now()
    log(session, actor=actor, action="user.password_reset", resource_type="user", resource_id=user.id)
    return user, one_time_password


def reset_mfa(session: Session, email: str, *, actor: Actor) -> NewAccount:
    """Give the account a new TOTP secret and new recovery codes (a lost phone); the old ones stop working.

    The returned account holds no password (``one_time_password`` is empty): the password is unchanged.

    :raises NotFoundError: no account has this e-mail.
    """
    user = get_user(session, email)
    secret = totp.new_secret()
    codes = totp.new_recovery_codes()
    user.totp_secret = secret
    user.totp_last_step = None
    user.recovery_code_hashes = [totp.hash_recovery_code(_recovery_key(session), code) for code in codes]
    user.updated_at = clock_of(session).now()
    log(session, actor=actor, action="user.mfa_reset", resource_type="user", resource_id=user.id)
    return NewAccount(user, "", secret, totp.provisioning_uri(secret, user.email), codes)
