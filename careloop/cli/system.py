"""``careloop init``, ``serve``, ``worker``, ``demo`` and ``audit verify``."""

from __future__ import annotations

import threading

import click

from care import staff
from careloop import migrate
from careloop.cli.base import CliContext, main, pass_cli
from careloop.jobs import worker_for
from careloop.runtime import Runtime
from careloop.worker import Worker, single_worker_lock
from security import audit
from security.session import audit_keys_of

DEFAULT_ADMIN_EMAIL = "admin@careloop.local"


def initialise(cli: CliContext, admin_email: str) -> staff.NewAccount | None:
    """Create the key file if absent, migrate the schema, seed roles and the first admin."""
    runtime = cli.runtime(create_key=True)
    migrate.upgrade(runtime.db.engine)
    with cli.unit_of_work() as session:
        staff.ensure_roles(session)
        if staff.admin_count(session) == 0:
            return staff.create_user(
                session, email=admin_email, display_name="Administrator", role_name="admin", actor=cli.actor
            )
    return None


def print_new_account(account: staff.NewAccount) -> None:
    click.echo("First administrator created. Keep these; they are shown only once.")
    click.echo(f"  e-mail:             {account.user.email}")
    click.echo(f"  one-time password:  {account.one_time_password}")
    click.echo(f"  TOTP secret:        {account.totp_secret}")
    click.echo(f"  TOTP URI:           {account.totp_uri}")
    click.echo(f"  recovery codes:     {' '.join(account.recovery_codes)}")


def describe_channels(runtime: Runtime) -> None:
    for channel, why in runtime.settings.channel_status().items():
        click.echo(f"  channel {channel}: {'live' if why is None else 'off (' + why + ')'}")


@main.command()
@click.option("--admin-email", default=DEFAULT_ADMIN_EMAIL, show_default=True,
              help="E-mail of the first administrator (created only when there is none).")
@pass_cli
def init(cli: CliContext, admin_email: str) -> None:
    """Create or upgrade the schema, the key file and the first admin."""
    account = initialise(cli, admin_email)
    runtime = cli.runtime()
    click.echo(f"Schema at revision {migrate.current_revision(runtime.db.engine)} on {runtime.db.dialect}.")
    if runtime.key_ring.from_environment:
        click.echo("Master key: from CARELOOP_MASTER_KEY.")
    else:
        click.echo(f"Master key: {runtime.settings.key_file} (mode 0600).")
    if account is not None:
        print_new_account(account)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@pass_cli
def serve(cli: CliContext, host: str, port: int) -> None:
    """Serve the web app: webhooks and the admin panel (development server)."""
    from careloop.app import create_app

    runtime = cli.runtime()
    _require_schema(runtime)
    click.echo(f"Careloop on http://{host}:{port} ({runtime.db.dialect})")
    describe_channels(runtime)
    create_app(runtime=runtime).run(host=host, port=port, debug=False, use_reloader=False)


def _require_schema(runtime: Runtime) -> None:
    if migrate.current_revision(runtime.db.engine) != migrate.head_revision():
        raise click.ClickException("the database schema is not up to date: run `careloop init` first")


@main.command()
@click.option("--once", is_flag=True, help="Run every job's due work once and exit.")
@pass_cli
def worker(cli: CliContext, once: bool) -> None:
    """Run the scheduler and dispatcher (safe to run several on PostgreSQL)."""
    runtime = cli.runtime()
    _require_schema(runtime)
    with single_worker_lock(runtime):
        runner = worker_for(runtime)
        if once:
            for name, handled in runner.run_once().items():
                click.echo(f"{name}: {handled}")
            return
        click.echo(f"worker started ({runtime.db.dialect}); jobs: {', '.join(job.name for job in runner.jobs)}")
        runner.run_forever()


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--no-serve", is_flag=True, help="Prepare the demo clinic and exit without serving.")
@pass_cli
def demo(cli: CliContext, host: str, port: int, no_serve: bool) -> None:
    """Init, seed a demo clinic of synthetic patients, and serve with an in-process worker."""
    from careloop.app import create_app
    from careloop.demo_data import seed_demo_clinic

    account = initialise(cli, DEFAULT_ADMIN_EMAIL)
    runtime = cli.runtime()
    with cli.unit_of_work() as session:
        seeded = seed_demo_clinic(session, actor=cli.actor)
    click.echo(f"Demo clinic: {seeded} synthetic patients added." if seeded else "Demo clinic already seeded.")
    if account is not None:
        print_new_account(account)
    else:
        click.echo(f"Admin: {DEFAULT_ADMIN_EMAIL} (password and TOTP were printed when it was created).")
    if no_serve:
        return
    runner = worker_for(runtime)
    threading.Thread(target=_demo_worker_loop, args=(runner,), daemon=True, name="demo-worker").start()
    click.echo(f"Careloop demo on http://{host}:{port}  (health: http://{host}:{port}/healthz)")
    click.echo(f"Admin panel: http://{host}:{port}/admin/  (simulator: http://{host}:{port}/admin/simulator)")
    describe_channels(runtime)
    create_app(runtime=runtime).run(host=host, port=port, debug=False, use_reloader=False)


def _demo_worker_loop(runner: Worker) -> None:
    stop = threading.Event()
    with runner.alive():
        while not stop.wait(5.0):
            for job in runner.jobs:
                runner.run_guarded(job)


@main.group(name="audit")
def audit_group() -> None:
    """The tamper-evident audit trail."""


@audit_group.command(name="verify")
@pass_cli
def audit_verify(cli: CliContext) -> None:
    """Check the audit chain; exit 1 naming the first altered, removed or inserted entry."""
    with cli.unit_of_work() as session:
        report = audit.verify(session, audit_keys_of(session))
    if not report.ok:
        click.echo(f"audit trail BROKEN: {report.problem}", err=True)
        raise click.exceptions.Exit(1)
    click.echo(f"audit trail intact: {report.sealed} sealed entries, {report.unsealed} awaiting sealing")
