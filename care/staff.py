"""Staff accounts: roles seeded from the defaults, account creation, sign-in checks."""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Text, and_, case, cast, delete, func, literal, or_, select, update
from sqlalchemy.orm import Session

from care.errors import ConflictError, NotFoundError, Problem, ValidationFailedError
from care.models import Role, StaffSession, User
from security import passwords, totp
from security.audit import Actor, log
from security.fields import cipher_of, clock_of
from security.roles import DEFAULT_ROLES, default_role
from security.storage import UtcDateTime

LOCKOUT_THRESHOLD = 5
LOCKOUT_MINUTES = 15
IDLE_TIMEOUT = timedelta(minutes=15)
ABSOLUTE_LIFETIME = timedelta(hours=12)


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
    """Check password and TOTP (or a recovery code); lock the account after repeated failures.

    Every refusal raises the same :class:`SignInError` after the same argon2 work (one
    verification, also for an unknown, disabled or locked account), so neither the answer nor its
    timing tells which factor failed or whether the account exists. The failure count and the
    single use of a code are changed by conditional UPDATEs, so attempts made in parallel are
    counted one by one and one code signs in once.
    """
    now = clock_of(session).now()
    user = session.scalars(select(User).where(User.email == email.strip().lower())).one_or_none()
    actor = Actor("user", str(user.id) if user else "unknown", source)
    refused = SignInError("e-mail, password or code is not correct")
    if user is None or not user.is_active:
        passwords.verify_absent(password)
        log(session, actor=actor, action="auth.failed", resource_type="user")
        raise refused
    password_ok = passwords.verify_password(user.password_hash, password)
    if is_locked(session, user):
        log(session, actor=actor, action="auth.locked", resource_type="user", resource_id=user.id)
        raise refused
    claimed = password_ok and _claim_second_factor(session, user, code, now)
    if not claimed:
        count_failure(session, user)
        log(session, actor=actor, action="auth.failed", resource_type="user", resource_id=user.id)
        raise refused
    if claimed == "recovery":
        log(session, actor=actor, action="auth.recovery_code_used", resource_type="user", resource_id=user.id,
            details={"codes_left": len(user.recovery_code_hashes)})
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password)
    log(session, actor=actor, action="auth.signed_in", resource_type="user", resource_id=user.id)
    return user


_SIGN_IN_FIELDS = ("failed_logins", "locked_until", "last_login_at", "totp_last_step", "recovery_code_hashes")


def _claim_second_factor(session: Session, user: User, code: str, now: datetime) -> str | None:
    """Use ``code`` (TOTP or recovery) and record the sign-in in one conditional UPDATE.

    The UPDATE matches only while the account is not locked and the code is still unused (a later
    TOTP step than the last one used; the recovery codes as they were read), so of several
    requests with one code exactly one changes the row; return which kind of code it was.
    """
    not_locked = or_(User.locked_until.is_(None), User.locked_until <= now)
    signed_in: dict[str, Any] = {"failed_logins": 0, "locked_until": None, "last_login_at": now}
    step = None
    if user.totp_secret:
        step = totp.verify_code(user.totp_secret, code, at=now, last_used_step=user.totp_last_step)
    if step is not None:
        unused = or_(User.totp_last_step.is_(None), User.totp_last_step < step)
        values, kind = {**signed_in, "totp_last_step": step}, "totp"
        condition = and_(not_locked, unused)
    else:
        # The stored text as it is now, so that the UPDATE below matches only if no one used a code since.
        stored = session.scalar(select(cast(User.recovery_code_hashes, Text)).where(User.id == user.id))
        remaining = totp.use_recovery_code(_recovery_key(session), code, list(json.loads(stored or "[]")))
        if remaining is None:
            return None
        values, kind = {**signed_in, "recovery_code_hashes": remaining}, "recovery"
        condition = and_(not_locked, cast(User.recovery_code_hashes, Text) == stored)
    changed = session.execute(
        update(User).where(User.id == user.id, condition).values(**values).returning(User.id)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    session.expire(user, _SIGN_IN_FIELDS)
    return kind if changed is not None else None


def count_failure(session: Session, user: User) -> None:
    """Count one failed attempt in one UPDATE; the one that reaches the threshold locks the account."""
    reached = User.failed_logins + 1 >= LOCKOUT_THRESHOLD
    lock_until = literal(clock_of(session).now() + timedelta(minutes=LOCKOUT_MINUTES), UtcDateTime())
    session.execute(
        update(User).where(User.id == user.id).values(
            failed_logins=case((reached, 0), else_=User.failed_logins + 1),
            locked_until=case((reached, lock_until), else_=User.locked_until),
        ).execution_options(synchronize_session=False)
    )
    session.expire(user, _SIGN_IN_FIELDS)


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


SAME_AS_CURRENT = "the new password must differ from the current one"


def change_password(session: Session, user: User, *, current_password: str, new_password: str, actor: Actor,
                    keep_session: str | None = None) -> None:
    """Replace the password after checking the current one and the policy; audited either way.

    Every session of the account ends except ``keep_session`` (the token of the one that made the change).

    A wrong current password counts towards the same lockout as a failed sign-in, so a session
    left open cannot be used to guess the password.

    :raises ValidationFailedError: ``current_password`` is not correct, or ``new_password`` breaks the
        policy (the problem's reason is the policy's message); nothing but the failure count changed.
    """
    now = clock_of(session).now()
    if not passwords.verify_password(user.password_hash, current_password):
        count_failure(session, user)
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
    end_sessions(session, user, keep=keep_session)
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

    Its open sessions end at once.

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
    end_sessions(session, user)
    log(session, actor=actor, action="user.disable", resource_type="user", resource_id=user.id)
    return True


def reset_password(session: Session, email: str, *, actor: Actor) -> tuple[User, str]:
    """Give the account a new one-time password, to be changed at the next sign-in; return it once.

    The old password stops working and every open session of the account ends at once; a lockout
    from failed attempts is lifted.

    :raises NotFoundError: no account has this e-mail.
    """
    user = get_user(session, email)
    one_time_password = passwords.generate_password()
    user.password_hash = passwords.hash_password(one_time_password)
    user.must_change_password = True
    user.failed_logins = 0
    user.locked_until = None
    user.updated_at = clock_of(session).now()
    end_sessions(session, user)
    log(session, actor=actor, action="user.password_reset", resource_type="user", resource_id=user.id)
    return user, one_time_password


def reset_mfa(session: Session, email: str, *, actor: Actor) -> NewAccount:
    """Give the account a new TOTP secret and new recovery codes (a lost phone); the old ones stop working.

    Every open session of the account ends at once. The returned account holds no password
    (``one_time_password`` is empty): the password is unchanged.

    :raises NotFoundError: no account has this e-mail.
    """
    user = get_user(session, email)
    secret = totp.new_secret()
    codes = totp.new_recovery_codes()
    user.totp_secret = secret
    user.totp_last_step = None
    user.recovery_code_hashes = [totp.hash_recovery_code(_recovery_key(session), code) for code in codes]
    user.updated_at = clock_of(session).now()
    end_sessions(session, user)
    log(session, actor=actor, action="user.mfa_reset", resource_type="user", resource_id=user.id)
    return NewAccount(user, "", secret, totp.provisioning_uri(secret, user.email), codes)


# -- sessions on the server ----------------------------------------------------------------------------
def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(session: Session, user: User) -> str:
    """Open a session for ``user``; return its random token (for the cookie; only its digest is stored)."""
    now = clock_of(session).now()
    session.execute(
        delete(StaffSession).where(StaffSession.user_id == user.id, or_(
            StaffSession.created_at <= now - ABSOLUTE_LIFETIME, StaffSession.last_seen_at <= now - IDLE_TIMEOUT))
    )
    token = secrets.token_urlsafe(32)
    session.add(StaffSession(token_hash=_token_hash(token), user_id=user.id, created_at=now, last_seen_at=now))
    session.flush()
    return token


@dataclass(frozen=True)
class SessionCheck:
    """What a request's session token is worth: its user, or why it ended (and whose it was)."""

    user: User | None
    user_id: uuid.UUID | None = None
    ended: str | None = None


def resume_session(session: Session, token: str) -> SessionCheck:
    """Find the live session of ``token`` and note this request as activity.

    A session ends (its row is deleted) 15 minutes after its last request (``idle``), 12 hours after
    sign-in (``expired``), or when its account is disabled or locked (``revoked``); an unknown token
    was ended before (``revoked``, no user).
    """
    now = clock_of(session).now()
    row = session.scalars(select(StaffSession).where(StaffSession.token_hash == _token_hash(token))).one_or_none()
    if row is None:
        return SessionCheck(None, None, "revoked")
    ended = None
    if now - row.created_at >= ABSOLUTE_LIFETIME:
        ended = "expired"
    elif now - row.last_seen_at >= IDLE_TIMEOUT:
        ended = "idle"
    elif not row.user.is_active or is_locked(session, row.user):
        ended = "revoked"
    if ended is not None:
        session.delete(row)
        session.flush()
        return SessionCheck(None, row.user_id, ended)
    row.last_seen_at = now
    return SessionCheck(row.user, row.user_id)


def is_live_session(session: Session, token: str) -> bool:
    """Tell whether ``token`` names a session that has not run out (without counting it as activity)."""
    now = clock_of(session).now()
    found = session.scalar(select(func.count()).select_from(StaffSession).where(
        StaffSession.token_hash == _token_hash(token), StaffSession.created_at > now - ABSOLUTE_LIFETIME,
        StaffSession.last_seen_at > now - IDLE_TIMEOUT))
    return bool(found)


def end_session(session: Session, token: str) -> uuid.UUID | None:
    """End the session of ``token`` (sign-out); return whose it was, or None if it had already ended."""
    row = session.scalars(select(StaffSession).where(StaffSession.token_hash == _token_hash(token))).one_or_none()
    if row is None:
        return None
    session.delete(row)
    session.flush()
    return row.user_id


def end_sessions(session: Session, user: User, *, keep: str | None = None) -> int:
    """End every session of ``user`` at once (except the one of token ``keep``); return how many ended."""
    query = delete(StaffSession).where(StaffSession.user_id == user.id)
    if keep is not None:
        query = query.where(StaffSession.token_hash != _token_hash(keep))
    result = session.execute(query.execution_options(synchronize_session="fetch"))
    return int(getattr(result, "rowcount", 0) or 0)
