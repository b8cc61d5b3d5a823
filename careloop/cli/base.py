"""The root ``careloop`` command group and the context shared by its commands."""

from __future__ import annotations

import getpass
import importlib
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import click
from sqlalchemy.orm import Session

from care import staff
from care.errors import ConflictError, NotFoundError, ValidationFailedError
from careloop.readiness import open_for_init, open_runtime
from careloop.runtime import Runtime
from careloop.settings import Settings
from security.audit import Actor


def operator() -> str:
    """Name who runs the command: ``login@host`` of the operating system (never a secret)."""
    try:
        login = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER (some containers)
        login = f"uid{os.getuid()}"
    return f"{login}@{socket.gethostname()}"


class CliContext:
    """What every command gets in ``ctx.obj``: the debug flag, settings, a lazily opened runtime, the actor.

    The runtime is opened through :mod:`careloop.readiness`: a database never initialised, or a master
    key that is not the database's, stops the command with one line before anything is read or written.
    """

    def __init__(self, *, debug: bool, settings: Settings | None = None, as_email: str | None = None) -> None:
        self.debug = debug
        self.as_email = as_email
        self._settings = settings
        self._runtime: Runtime | None = None
        self._actor: Actor | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = Settings.from_environment()
        return self._settings

    def runtime(self, *, sealing: bool = False) -> Runtime:
        """Open (once) the runtime of an initialised database with its own master key; ``sealing`` for the
        commands that seal or check the audit chain (they alone read the audit key)."""
        if self._runtime is None:
            self._runtime = open_runtime(self.settings, sealing=sealing)
            self._resolve_actor(self._runtime)
        elif sealing and not self._runtime.db.audit_keys.can_seal:
            raise click.ClickException("internal: the audit key was asked for after the runtime was built")
        return self._runtime

    def runtime_for_init(self) -> Runtime:
        """Open the runtime ``init`` migrates (a new key file only for a database never initialised; the
        audit key is made beside it when missing)."""
        if self._runtime is None:
            self._runtime = open_for_init(self.settings)
        return self._runtime

    @contextmanager
    def unit_of_work(self) -> Iterator[Session]:
        """One session for the command; committed once when the command succeeds."""
        with self.runtime().db.unit_of_work() as session:
            yield session

    def _resolve_actor(self, runtime: Runtime) -> None:
        # Before any command session begins, so the look-up never waits on the command's own transaction.
        source = f"cli:{operator()}"
        if self.as_email is None:
            self._actor = Actor("system", source, source)
            return
        with runtime.db.unit_of_work() as session:
            try:
                user = staff.get_user(session, self.as_email)
            except NotFoundError:
                user = None
            if user is None or not user.is_active:
                raise click.ClickException(f"--as {self.as_email}: there is no active staff account with this e-mail")
            self._actor = Actor("user", str(user.id), source)

    def resolve_actor(self) -> None:
        """Resolve who the audit trail names now (``init`` does, once the schema is in place)."""
        runtime = self.runtime()
        if self._actor is None:
            self._resolve_actor(runtime)

    @property
    def actor(self) -> Actor:
        """Who the audit trail names: the staff account of ``--as``, else the operating-system user and host."""
        if self._actor is None:
            self.resolve_actor()
        assert self._actor is not None  # noqa: S101 - set by the resolution above
        return self._actor

    def close(self) -> None:
        if self._runtime is not None:
            self._runtime.close()


@contextmanager
def one_line_errors(*invalid: type[Exception]) -> Iterator[None]:
    """A care service's refusal as one line and exit 1: ``invalid`` (a file's problems, each on its line),
    a validation's first problem, a conflict or an unknown name; the unit of work around it rolls back."""
    try:
        yield
    except invalid as problem:
        raise click.ClickException(str(problem)) from None
    except ValidationFailedError as problem:
        raise click.ClickException(str(problem.problems[0])) from None
    except (ConflictError, NotFoundError) as problem:
        raise click.ClickException(str(problem)) from None


def plan_grace(settings: Settings) -> timedelta:
    """How long past its time a plan's occurrence is still sent (``CARELOOP_PLAN_GRACE_HOURS``), not marked missed."""
    return timedelta(hours=float(settings.extra.get("plan_grace_hours", 24.0)))


def progress_enabled() -> bool:
    """Progress bars only on a terminal, so logs and pipes stay clean."""
    return sys.stderr.isatty()


#: Which module defines each top-level command. A command's module is imported when the command is
#: named (``careloop import reports`` never loads the PDF and chart stack that ``report`` needs);
#: ``--help`` imports them all.
COMMAND_MODULES: dict[str, str] = {
    "init": "careloop.cli.system",
    "serve": "careloop.cli.system",
    "worker": "careloop.cli.system",
    "demo": "careloop.cli.system",
    "audit": "careloop.cli.system",
    "import": "careloop.cli.imports",
    "keys": "careloop.cli.keys",
    "console": "careloop.cli.console",
    "flows": "careloop.cli.flows",
    "simulate": "careloop.cli.flows",
    "risk": "careloop.cli.risk",
    "api-keys": "careloop.cli.api_keys",
    "report": "careloop.cli.reports",
    "users": "careloop.cli.users",
    "teams": "careloop.cli.teams",
    "tags": "careloop.cli.tags",
    "plans": "careloop.cli.plans",
    "interventions": "careloop.cli.interventions",
    "doctor": "careloop.cli.doctor",
    "export": "careloop.cli.exports",
    "followups": "careloop.cli.care_work",
    "tasks": "careloop.cli.care_work",
    "backup": "careloop.cli.operations",
    "erase": "careloop.cli.operations",
    "patients": "careloop.cli.patients",
}


class CommandsOnDemand(click.Group):
    """The root group: each command's module is imported the first time the command is looked up."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMAND_MODULES.get(cmd_name)
        if cmd_name not in self.commands and module is not None:
            importlib.import_module(module)
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        load_all_commands()
        return super().list_commands(ctx)


def load_all_commands() -> None:
    """Import every command module, so that :data:`main` holds every command."""
    for module in sorted(set(COMMAND_MODULES.values())):
        importlib.import_module(module)


@click.group(cls=CommandsOnDemand, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.option("--as", "as_email", metavar="EMAIL",
              help="The staff account (active) the audit trail names for this command's changes.")
@click.pass_context
def main(ctx: click.Context, debug: bool, as_email: str | None) -> None:
    """Careloop: keeps a clinic in touch with its patients between visits."""
    if ctx.obj is None:
        ctx.obj = CliContext(debug=debug, as_email=as_email)
    else:
        ctx.obj.debug = debug
        ctx.obj.as_email = as_email
    ctx.call_on_close(ctx.obj.close)


pass_cli = click.make_pass_decorator(CliContext)
