"""``careloop init``, ``serve``, ``worker``, ``demo`` and ``audit verify``."""

from __future__ import annotations

import threading

import click

from care import staff
from careloop import migrate
from careloop.bot_runtime import bot_for
from careloop.cli.base import CliContext, main, pass_cli
from careloop.file_modes import loose_file_lines
from careloop.flow_library import tell_problems
from careloop.runtime import Runtime
from careloop.worker import Worker, single_worker_lock, worker_for
from security import audit
from security.audit import log
from security.key_identity import record_key_id
from security.session import audit_keys_of

DEFAULT_ADMIN_EMAIL = "admin@careloop.local"


def initialise(cli: CliContext, admin_email: str) -> staff.NewAccount | None:
    """Migrate the schema, record the master key's id, seed roles and the first admin.

    A database never initialised gets the key given (or a new key file) and an audit key; an
    initialised one must come with its own key, else nothing is changed.
    """
    runtime = cli.runtime_for_init()
    if cli.as_email is not None and migrate.current_revision(runtime.db.engine) is None:
        raise click.ClickException(f"--as {cli.as_email}: the database has no staff accounts yet "
                                   "(init creates the first administrator)")
    migrate.upgrade(runtime.db.engine, key_ring=runtime.key_ring)
    cli.resolve_actor()
    with cli.unit_of_work() as session:
        if record_key_id(session, runtime.key_ring, now=runtime.clock.now()):
            log(session, actor=cli.actor, action="keys.recorded", resource_type="key_ring",
                details={"key_id": runtime.key_ring.key_id})
        staff.ensure_roles(session)
        if staff.admin_count(session) == 0:
            return staff.create_user(
                session, email=admin_email, display_name="Administrator", role_name="admin", actor=cli.actor
            )
    return None


def print_new_account(account: staff.NewAccount, heading: str = "First administrator created.") -> None:
    """Print what a new staff member needs once: e-mail, one-time password, TOTP and recovery codes."""
    click.echo(f"{heading} Keep these; they are shown only once.")
    click.echo(f"  e-mail:             {account.user.email}")
    click.echo(f"  one-time password:  {account.one_time_password}")
    click.echo(f"  TOTP secret:        {account.totp_secret}")
    click.echo(f"  TOTP URI:           {account.totp_uri}")
    click.echo(f"  recovery codes:     {' '.join(account.recovery_codes)}")


def describe_clinic(runtime: Runtime) -> None:
    """One line on stderr naming the clinic settings left unset and the default each takes."""
    unset = runtime.settings.unset_clinic_settings()
    if unset:
        click.echo(f"clinic settings not set, using defaults: {'; '.join(unset)}", err=True)


def describe_channels(runtime: Runtime) -> None:
    for channel, why in runtime.settings.channel_status().items():
        click.echo(f"  channel {channel}: {'live' if why is None else 'off (' + why + ')'}")


def describe_file_modes(runtime: Runtime) -> None:
    """Warn (on stderr) of each key, database or blob file the group or others can read."""
    for line in loose_file_lines(runtime.settings):
        click.echo(f"warning: {line}", err=True)


def describe_flows(runtime: Runtime) -> None:
    """Say how many flows are installed, and each problem of a flow file left out (on stderr)."""
    library = bot_for(runtime).services.library
    left_out = len({problem.file for problem in library.problems})
    more = f", {left_out} file(s) left out (see stderr)" if left_out else ""
    click.echo(f"  flows: {len(library)} installed{more}")
    tell_problems(library, lambda line: click.echo(line, err=True))


@main.command()
@click.option("--admin-email", default=DEFAULT_ADMIN_EMAIL, show_default=True,
              help="E-mail of the first administrator (created only when there is none).")
@pass_cli
def init(cli: CliContext, admin_email: str) -> None:
    """Create or upgrade the schema, the key file and the first admin."""
    account = initialise(cli, admin_email)
    runtime = cli.runtime()
    click.echo(f"Schema at revision {migrate.current_revision(runtime.db.engine)} on {runtime.db.dialect}.")
    ring = runtime.key_ring
    where = "from CARELOOP_MASTER_KEY" if ring.from_environment else f"{runtime.settings.key_file} (mode 0600)"
    click.echo(f"Master key: {where}, key id {ring.key_id}. Back it up apart from the database: "
               "without it the data cannot be read.")
    if runtime.settings.audit_key:
        click.echo("Audit key: from CARELOOP_AUDIT_KEY (give it to the worker only, never to the web process).")
    else:
        click.echo(f"Audit key: {runtime.settings.audit_key_path} (mode 0600; give it to the worker only, never to "
                   "the web process).")
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
    describe_clinic(runtime)
    describe_file_modes(runtime)
    click.echo(f"Careloop on http://{host}:{port} ({runtime.db.dialect})")
    describe_channels(runtime)
    describe_flows(runtime)
    create_app(runtime=runtime).run(host=host, port=port, debug=False, use_reloader=False)


@main.command()
@click.option("--once", is_flag=True, help="Run every job's due work once and exit.")
@pass_cli
def worker(cli: CliContext, once: bool) -> None:
    """Run the scheduler and dispatcher (safe to run several on PostgreSQL)."""
    runtime = cli.runtime(sealing=True)
    describe_clinic(runtime)
    with single_worker_lock(runtime):
        tell_problems(bot_for(runtime).services.library, lambda line: click.echo(line, err=True))
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
        seeded = seed_demo_clinic(session, actor=cli.actor, timezone=runtime.settings.timezone)
    click.echo(f"Demo clinic: {seeded} synthetic patients added." if seeded else "Demo clinic already seeded.")
    if account is not None:
        print_new_account(account)
    else:
        click.echo(f"Admin: {DEFAULT_ADMIN_EMAIL} (password and TOTP were printed when it was created).")
    if no_serve:
        return
    runner = worker_for(runtime)
    threading.Thread(target=_demo_worker_loop, args=(runner,), daemon=True, name="demo-worker").start()
    describe_clinic(runtime)
    describe_file_modes(runtime)
    click.echo(f"Careloop demo on http://{host}:{port}  (health: http://{host}:{port}/healthz)")
    click.echo(f"Admin panel: http://{host}:{port}/admin/  (simulator: http://{host}:{port}/admin/simulator)")
    describe_channels(runtime)
    describe_flows(runtime)
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
    """Check the audit chain, its head and its anchor file; exit 1 naming the first affected sequence number.

    Every problem found is listed on stdout, the first (lowest sequence number) on stderr.
    """
    cli.runtime(sealing=True)
    with cli.unit_of_work() as session:
        report = audit.verify(session, audit_keys_of(session))
    if not report.ok:
        for problem in report.problems:
            click.echo(f"  seq {problem.seq if problem.seq is not None else '-'}: {problem.message}")
        first = report.problems[0]
        where = f"first affected seq {first.seq}" if first.seq is not None else "an entry awaiting sealing"
        more = f" (and {len(report.problems) - 1} more problem(s), listed above)" if len(report.problems) > 1 else ""
        click.echo(f"audit trail BROKEN, {where}: {first.message}{more}", err=True)
        raise click.exceptions.Exit(1)
    click.echo(f"audit trail intact: {report.sealed} sealed entries, {report.unsealed} awaiting sealing")
