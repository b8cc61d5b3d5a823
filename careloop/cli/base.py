"""The root ``careloop`` command group and the context shared by its commands."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click
from sqlalchemy.orm import Session

from careloop.runtime import Runtime, build_runtime
from careloop.settings import Settings
from security.audit import Actor


class CliContext:
    """What every command gets in ``ctx.obj``: the debug flag, settings and a lazily built runtime."""

    def __init__(self, *, debug: bool, settings: Settings | None = None) -> None:
        self.debug = debug
        self._settings = settings
        self._runtime: Runtime | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = Settings.from_environment()
        return self._settings

    def runtime(self, *, create_key: bool = False, sealing: bool = False) -> Runtime:
        """The command's runtime; ``sealing`` for the commands that seal or check the audit chain (they alone
        read the audit key)."""
        if self._runtime is None:
            self._runtime = build_runtime(self.settings, create_key=create_key, sealing=sealing)
        elif sealing and not self._runtime.db.audit_keys.can_seal:
            raise click.ClickException("internal: the audit key was asked for after the runtime was built")
        return self._runtime

    @contextmanager
    def unit_of_work(self) -> Iterator[Session]:
        """One session for the command; committed once when the command succeeds."""
        with self.runtime().db.unit_of_work() as session:
            yield session

    @property
    def actor(self) -> Actor:
        return Actor("system", "cli", "cli")

    def close(self) -> None:
        if self._runtime is not None:
            self._runtime.close()


def progress_enabled() -> bool:
    """Progress bars only on a terminal, so logs and pipes stay clean."""
    return sys.stderr.isatty()


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Careloop: keeps a clinic in touch with its patients between visits."""
    if ctx.obj is None:
        ctx.obj = CliContext(debug=debug)
    else:
        ctx.obj.debug = debug
    ctx.call_on_close(ctx.obj.close)


pass_cli = click.make_pass_decorator(CliContext)
