"""``careloop keys rotate`` and ``careloop keys status``."""

from __future__ import annotations

import click

from careloop.cli.base import CliContext, main, pass_cli
from security.audit import log
from security.fields import cipher_of


@main.group()
def keys() -> None:
    """The master key ring."""


@keys.command()
@pass_cli
def rotate(cli: CliContext) -> None:
    """Make a new master key version primary; the worker re-wraps every data key under it."""
    runtime = cli.runtime()
    old = runtime.key_ring.primary
    new = runtime.key_ring.rotate()
    with cli.unit_of_work() as session:
        log(session, actor=cli.actor, action="keys.rotate", resource_type="key_ring",
            details={"from_version": old, "to_version": new})
        waiting = cipher_of(session).keys_not_on_primary(session)
    click.echo(f"master key version {new} is now primary (was {old}); "
               f"{waiting} data key(s) will be re-wrapped by the worker.")


@keys.command()
@pass_cli
def status(cli: CliContext) -> None:
    """Show the key versions and how many data keys still wait for re-wrapping."""
    runtime = cli.runtime()
    with cli.unit_of_work() as session:
        waiting = cipher_of(session).keys_not_on_primary(session)
    versions = ", ".join(str(v) for v in sorted(runtime.key_ring.master_keys))
    click.echo(f"master key versions: {versions}; primary: {runtime.key_ring.primary}; "
               f"data keys not yet on the primary: {waiting}")
