"""The ``careloop`` command line.

Every command module registers its commands on :data:`main` when imported; :data:`main` imports a
command's module when the command is named (``careloop.cli.base.COMMAND_MODULES``). :func:`run` turns
failures into one clear line on stderr and the contract's exit codes: 0 ok, 1 the operation
failed, 2 bad usage. A traceback is shown only with ``--debug``.
"""

from __future__ import annotations

import sys
import traceback

import click
from sqlalchemy.exc import SQLAlchemyError

from careloop.cli.base import CliContext, load_all_commands, main
from careloop.readiness import database_problem
from careloop.settings import Settings


def load_commands() -> click.Group:
    """Import every command module and return :data:`main` with all its commands (tests, ``--help``)."""
    load_all_commands()
    return main


def run(argv: list[str] | None = None, *, settings: Settings | None = None) -> int:
    """Run the CLI on ``argv`` (default ``sys.argv[1:]``) and return the exit code.

    ``settings`` replaces the environment (tests); by default they are read from it.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        result = main.main(
            args=args, prog_name="careloop", standalone_mode=False, obj=CliContext(debug=debug, settings=settings)
        )
    except click.exceptions.Abort:
        click.echo("error: aborted", err=True)
        return 1
    except click.exceptions.NoArgsIsHelpError as problem:
        problem.show()  # a group named without a command: its help, as click shows it
        return problem.exit_code
    except click.UsageError as problem:
        hint = f" (see '{problem.ctx.command_path} --help')" if problem.ctx is not None else ""
        click.echo(f"error: {one_line(problem.format_message())}{hint}", err=True)
        return problem.exit_code
    except click.ClickException as problem:
        click.echo(f"error: {one_line(problem.format_message())}", err=True)
        return problem.exit_code
    except SQLAlchemyError as failure:
        # Never the statement or its parameters (they can hold PHI): the driver's reason only.
        if debug:
            traceback.print_exc()
        click.echo(f"error: {database_problem(failure)}", err=True)
        return 1
    except Exception as failure:  # noqa: BLE001 - the contract: one clear line, never a traceback
        if debug:
            traceback.print_exc()
        click.echo(f"error: {one_line(str(failure)) or type(failure).__name__}", err=True)
        return 1
    return result if isinstance(result, int) else 0


def one_line(message: str) -> str:
    """Join a message's lines into one (a contract error is one line on stderr)."""
    return " ".join(part.strip() for part in message.splitlines() if part.strip())


def entry() -> None:
    """Console-script entry point."""
    sys.exit(run())


__all__ = ["CliContext", "entry", "load_commands", "main", "run"]
