"""``careloop users add|list|disable|reset-password|reset-mfa``: staff accounts from the command line.

Accounts are made by the same service as ``init``'s first administrator, so they sign in to the
panel the same way (password, then TOTP); every change is audited under the command's actor
(``--as EMAIL``, else the operating-system user and host).
"""

from __future__ import annotations

import click

from care import staff
from care.errors import ConflictError, ValidationFailedError
from care.models import User
from careloop.cli.base import CliContext, main, pass_cli
from careloop.cli.system import print_new_account
from security.roles import ROLE_NAMES


@main.group(name="users")
def users_group() -> None:
    """Staff accounts: add, list, disable, reset a password or the second factor."""


@users_group.command(name="add")
@click.option("--email", required=True, help="The staff member's e-mail (their sign-in name).")
@click.option("--role", required=True, type=click.Choice(ROLE_NAMES), help="What the account may do.")
@click.option("--name", "display_name", default="", help="The name shown in the panel (default: the e-mail).")
@pass_cli
def add(cli: CliContext, email: str, role: str, display_name: str) -> None:
    """Add a staff account; print its one-time password, TOTP secret and URI, and recovery codes once."""
    try:
        with cli.unit_of_work() as session:
            account = staff.create_user(session, email=email, display_name=display_name, role_name=role,
                                        actor=cli.actor)
    except ValidationFailedError as problem:
        raise click.BadParameter(str(problem.problems[0].reason), param_hint="'--email'") from None
    except ConflictError as problem:
        raise click.ClickException(str(problem)) from None
    print_new_account(account, f"Staff account created ({role}); the password must be changed at first sign-in.")


def _status(user: User) -> str:
    if not user.is_active:
        return "disabled"
    if user.must_change_password:
        return "active, must change password"
    return "active"


@users_group.command(name="list")
@pass_cli
def list_users(cli: CliContext) -> None:
    """List the staff accounts: e-mail, role, name, status, last sign-in (never a password or a secret)."""
    with cli.unit_of_work() as session:
        now = cli.runtime().clock.now()
        rows = [
            (user.email, user.role.name, user.display_name,
             _status(user) + (", locked" if user.locked_until is not None and user.locked_until > now else ""),
             user.last_login_at.strftime("%Y-%m-%d %H:%M") if user.last_login_at else "never")
            for user in staff.list_users(session)
        ]
    if not rows:
        click.echo("no staff accounts (add one with: careloop users add --email E --role R)")
        return
    widths = [max(len(header), *(len(row[column]) for row in rows))
              for column, header in enumerate(("e-mail", "role", "name", "status", "last sign-in"))]
    for row in [("e-mail", "role", "name", "status", "last sign-in"), *rows]:
        click.echo("  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip())


@users_group.command(name="disable")
@click.argument("email")
@pass_cli
def disable(cli: CliContext, email: str) -> None:
    """Disable the account EMAIL: it can no longer sign in, and its open sessions end."""
    try:
        with cli.unit_of_work() as session:
            changed = staff.disable_user(session, email, actor=cli.actor)
    except ConflictError as problem:
        raise click.ClickException(str(problem)) from None
    if changed:
        click.echo(f"Staff account {email} disabled: it can no longer sign in.")
    else:
        click.echo(f"Staff account {email} was already disabled; nothing changed.")


@users_group.command(name="reset-password")
@click.argument("email")
@pass_cli
def reset_password(cli: CliContext, email: str) -> None:
    """Give EMAIL a new one-time password (changed at the next sign-in); its other sessions end."""
    with cli.unit_of_work() as session:
        user, one_time_password = staff.reset_password(session, email, actor=cli.actor)
        active = user.is_active
        address = user.email
    click.echo("Password reset; the old one no longer works. Keep this; it is shown only once.")
    click.echo(f"  e-mail:             {address}")
    click.echo(f"  one-time password:  {one_time_password}  (must be changed at the next sign-in)")
    if not active:
        click.echo("  note: the account is disabled and still cannot sign in.")


@users_group.command(name="reset-mfa")
@click.argument("email")
@pass_cli
def reset_mfa(cli: CliContext, email: str) -> None:
    """Give EMAIL a new TOTP secret and recovery codes (a lost phone); the old ones stop working."""
    with cli.unit_of_work() as session:
        account = staff.reset_mfa(session, email, actor=cli.actor)
    click.echo("Second factor reset; the old authenticator entry and recovery codes no longer work. "
               "Keep these; they are shown only once.")
    click.echo(f"  e-mail:             {account.user.email}")
    click.echo(f"  TOTP secret:        {account.totp_secret}")
    click.echo(f"  TOTP URI:           {account.totp_uri}")
    click.echo(f"  recovery codes:     {' '.join(account.recovery_codes)}")
