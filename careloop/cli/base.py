"""The root ``careloop`` command group and the context shared by its commands."""

from __future__ import annotations

import click


class CliContext:
    """What every command gets in ``ctx.obj``: the debug flag and lazily built settings."""

    def __init__(self, *, debug: bool) -> None:
        self.debug = debug


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Careloop: keeps a clinic in touch with its patients between visits."""
    ctx.obj = CliContext(debug=debug)
