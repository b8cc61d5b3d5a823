"""``careloop api-keys create SOURCE_NAME`` / ``list`` / ``revoke KEY_ID``: keys of systems that push reports."""

from __future__ import annotations

import click

from care.api_keys import create_api_key, list_api_keys, revoke_api_key
from care.errors import ValidationFailedError
from careloop.cli.base import CliContext, main, pass_cli


@main.group(name="api-keys")
def api_keys_group() -> None:
    """API keys of the systems that push reports to POST /api/v1/reports (one source per key)."""


@api_keys_group.command(name="create")
@click.argument("source_name")
@pass_cli
def create(cli: CliContext, source_name: str) -> None:
    """Make a key for SOURCE_NAME and print it once (only its HMAC is kept)."""
    try:
        with cli.unit_of_work() as session:
            new = create_api_key(session, source_name, actor=cli.actor)
            key_id = new.record.key_id
    except ValidationFailedError as problem:
        raise click.BadParameter(str(problem), param_hint="SOURCE_NAME") from None
    click.echo(f"API key {key_id} for source {source_name!r}. It is shown only this once; keep it in the sending "
               "system and send it as 'Authorization: Bearer <key>':", err=True)
    click.echo(new.key)


@api_keys_group.command(name="list")
@pass_cli
def list_keys(cli: CliContext) -> None:
    """List the keys: id, source, created, last used, status (never the keys themselves)."""
    with cli.unit_of_work() as session:
        records = list_api_keys(session)
        lines = [
            f"{record.key_id}  {record.source_name:<24}  created {record.created_at:%Y-%m-%d %H:%M}  "
            f"last used {record.last_used_at.strftime('%Y-%m-%d %H:%M') if record.last_used_at else '-':<16}  "
            f"{'active' if record.active else 'revoked ' + format(record.revoked_at, '%Y-%m-%d')}"
            for record in records
        ]
    if not lines:
        click.echo("no API keys (make one with: careloop api-keys create SOURCE_NAME)")
    for line in lines:
        click.echo(line)


@api_keys_group.command(name="revoke")
@click.argument("key_id")
@pass_cli
def revoke(cli: CliContext, key_id: str) -> None:
    """Revoke the key KEY_ID (see list); pushes with it are refused from now on."""
    with cli.unit_of_work() as session:
        record = revoke_api_key(session, key_id, actor=cli.actor)
        source = record.source_name
    click.echo(f"API key {key_id} of source {source!r} revoked.")
