"""Every ``careloop`` command, as a user first meets it: on a database never initialised, and with a wrong key.

The commands are found by walking the click group, so a command added later is covered without
touching this file: it gets minimal arguments from its parameters' types (or from ``ARGUMENTS``
when it needs particular ones) and must give the one-line answer like every other command.
"""

from __future__ import annotations

import io
import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import click
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from careloop.cli import load_commands
from careloop.readiness import NOT_INITIALISED
from careloop.runtime import build_runtime
from careloop.settings import Settings
from security.audit import AuditEntry
from security.keys import KeyRing
from tests.conftest import PG_ENV

Cli = Callable[..., tuple[int, str, str]]
Path_ = tuple[str, ...]

LIBRARY = Path(__file__).resolve().parents[2] / "flows" / "library"
PLANS = Path(__file__).resolve().parents[2] / "care" / "plans" / "library"
PROGRAMS = Path(__file__).resolve().parents[2] / "care" / "interventions" / "library"
ARGUMENTS: dict[Path_, Callable[[Path], list[str]]] = {
    ("worker",): lambda _: ["--once"],
    ("demo",): lambda _: ["--no-serve"],
    # A host that cannot be bound: a command that skipped its checks fails at once instead of serving.
    ("serve",): lambda _: ["--host", "256.0.0.1", "--port", "5999"],
    ("risk",): lambda _: ["bp", "--input", json.dumps({"sbp": 120, "dbp": 80})],
    ("flows", "validate"): lambda _: [str(LIBRARY / "phq9.yaml")],
    ("plans", "validate"): lambda _: [str(PLANS / "bp_monthly.yaml")],
    ("interventions", "validate"): lambda _: [str(PROGRAMS / "hypertension_3m.yaml")],
    ("simulate",): lambda _: ["phq9", "--lang", "en"],
    ("export", "observations"): lambda tmp: ["--out", str(tmp / "observations.xlsx")],
    ("export", "followups"): lambda tmp: ["--out", str(tmp / "followups.xlsx")],
    ("import", "mappings", "add"): lambda tmp: [str(mapping_file(tmp))],
    ("tasks", "reschedule"): lambda _: [str(uuid.uuid4()), "--due", "2030-01-01T09:00+08:00"],
}


def mapping_file(tmp_path: Path) -> Path:
    path = tmp_path / "local-codes.csv"
    path.write_text("local_code,code\nLAB-GLU,fpg\n", encoding="utf-8")
    return path
# Commands that never open the database: they work whatever state it is in.
NO_DATABASE: set[Path_] = {("risk",), ("flows", "validate"), ("flows", "list"), ("simulate",), ("plans", "validate"),
                           ("interventions", "validate")}
# Commands that initialise the database: on an empty one they succeed.
INITIALISING: set[Path_] = {("init",), ("demo",)}
# Commands that read a backup file before the database: an empty database is what a restore is for, and a
# backup is verified with the key alone; given a file that is no backup, they say so in one line.
BACKUP_FILES: set[Path_] = {("backup", "verify"), ("backup", "restore")}
# ... and those of them that never open the database at all.
BACKUP_ONLY: set[Path_] = {("backup", "verify")}


def assert_no_backup_said(answers: Answers, paths: set[Path_]) -> None:
    for path in paths:
        code, out, err = answers[path]
        assert (path, code, out) == (path, 1, "")
        assert err.startswith("error: "), err
        assert err.endswith(" is not a Careloop backup file\n"), err
        assert err.count("\n") == 1


def leaf_commands(group: click.Group, prefix: Path_ = ()) -> Iterator[tuple[Path_, click.Command]]:
    """Yield every runnable command of ``group`` and its subgroups, with its path of names."""
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from leaf_commands(command, (*prefix, name))
        else:
            yield (*prefix, name), command


def all_groups(group: click.Group, prefix: Path_ = ()) -> Iterator[Path_]:
    yield prefix
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from all_groups(command, (*prefix, name))


def _sample(parameter: click.Parameter, tmp_path: Path) -> str:
    kind = parameter.type
    if isinstance(kind, click.Choice):
        return str(kind.choices[0])
    if isinstance(kind, click.Path):
        sample = tmp_path / "sample-input.txt"
        sample.write_text("x\n", encoding="utf-8")
        return str(sample)
    if isinstance(kind, click.types.IntParamType | click.types.FloatParamType):
        minimum = getattr(kind, "min", None)
        return str(minimum if minimum is not None else 1)
    return "X1"


def minimal_arguments(path: Path_, command: click.Command, tmp_path: Path) -> list[str]:
    """The arguments ``command`` needs to get past click's parsing (its own, if listed in ARGUMENTS)."""
    if path in ARGUMENTS:
        return ARGUMENTS[path](tmp_path)
    arguments: list[str] = []
    for parameter in command.params:
        if not parameter.required:
            continue
        value = _sample(parameter, tmp_path)
        if isinstance(parameter, click.Option):
            arguments += [parameter.opts[0]] if parameter.is_flag else [parameter.opts[0], value]
        else:
            arguments.append(value)
    return arguments


COMMANDS = list(leaf_commands(load_commands()))
EMPTY_STATES = ["empty schema"] if os.environ.get(PG_ENV) else ["missing file", "empty file"]


def test_the_walk_finds_the_commands_of_the_contract():
    paths = {path for path, _ in COMMANDS}
    for expected in [("init",), ("serve",), ("worker",), ("audit", "verify"), ("keys", "rotate"),
                     ("import", "patients"), ("users", "add"), ("users", "list"), ("api-keys", "create"),
                     ("flows", "validate"), ("risk",), ("simulate",)]:
        assert expected in paths


Answers = dict[Path_, tuple[int, str, str]]


def run_everything(run_cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                   settings: Settings | None = None, only: set[Path_] | None = None) -> Answers:
    """Run every command (or those in ``only``) once with its minimal arguments; return what each answered."""
    answers = {}
    for path, command in COMMANDS:
        if only is not None and path not in only:
            continue
        monkeypatch.setattr("sys.stdin", io.StringIO("/quit\n"))
        answers[path] = run_cli(*path, *minimal_arguments(path, command, tmp_path), settings=settings)
    return answers


def assert_just_works(answers: Answers, paths: set[Path_]) -> None:
    for path in paths:
        code, _, err = answers[path]
        assert (path, code) == (path, 0), err
        assert "Traceback" not in err


def sqlite_path(settings: Settings) -> Path | None:
    url = make_url(settings.database_url)
    return Path(url.database) if url.get_backend_name() == "sqlite" and url.database else None


@pytest.mark.parametrize("key_file", [False, True], ids=["no key file", "a key file"])
@pytest.mark.parametrize("state", EMPTY_STATES)
def test_every_command_on_a_database_never_initialised_says_run_init_first(
        run_cli, fresh_settings, tmp_path, monkeypatch, state, key_file):
    database_file = sqlite_path(fresh_settings)
    if state == "empty file":
        assert database_file is not None
        database_file.parent.mkdir(parents=True, exist_ok=True)
        database_file.touch()
    if key_file:
        KeyRing.generate(fresh_settings.key_file).save()
    assert_just_works(run_everything(run_cli, tmp_path, monkeypatch, only=NO_DATABASE), NO_DATABASE)

    assert_no_backup_said(run_everything(run_cli, tmp_path, monkeypatch, only=BACKUP_FILES), BACKUP_FILES)
    refusing = {path for path, _ in COMMANDS} - NO_DATABASE - INITIALISING - BACKUP_FILES
    wrong = {}
    for path, (code, _, err) in run_everything(run_cli, tmp_path, monkeypatch, only=refusing).items():
        if (code, err) != (1, f"error: {NOT_INITIALISED}\n"):
            wrong[" ".join(path)] = (code, err[-300:])
    assert wrong == {}
    if state == "missing file":
        assert database_file is not None
        assert not database_file.exists()  # a refused command leaves no empty database behind
    assert fresh_settings.key_file.exists() is key_file  # ... and makes no key

    # demo (and init after it) initialise the database, with the key file given or a new one.
    assert_just_works(run_everything(run_cli, tmp_path, monkeypatch, only=INITIALISING), INITIALISING)


def test_every_command_and_group_answers_help_without_a_database(run_cli, fresh_settings):
    for path in [*all_groups(load_commands()), *(path for path, _ in COMMANDS)]:
        code, out, err = run_cli(*path, "--help")
        assert (path, code, err) == (path, 0, "")
        assert "Usage:" in out
    for group in all_groups(load_commands()):
        code, _, err = run_cli(*group)  # a group without a command shows its help, not a squeezed line
        assert code == 2
        assert "Usage:" in err
        assert "Commands:" in err
        assert len(err.splitlines()) > 3
    database_file = sqlite_path(fresh_settings)
    assert database_file is None or not database_file.exists()


def audit_rows(settings: Settings) -> int:
    runtime = build_runtime(settings)
    try:
        with runtime.db.unit_of_work() as session:
            return int(session.scalar(select(func.count()).select_from(AuditEntry)) or 0)
    finally:
        runtime.close()


@pytest.fixture
def initialised(run_cli, fresh_settings) -> str:
    """Initialise the fresh database; return its key id."""
    code, _, err = run_cli("init")
    assert code == 0, err
    return KeyRing.load(fresh_settings.key_file).key_id


@pytest.mark.parametrize("wrong_key", ["another key file", "CARELOOP_MASTER_KEY over the right file"])
def test_every_command_with_a_wrong_key_says_the_key_does_not_match(
        run_cli, fresh_settings, initialised, tmp_path, monkeypatch, wrong_key):
    right = fresh_settings.key_file.read_bytes()
    stranger = KeyRing.generate(tmp_path / "stranger.key")
    stranger.save()
    if wrong_key == "another key file":
        settings = fresh_settings.with_overrides(key_file=stranger.path)
    else:
        settings = fresh_settings.with_overrides(master_key=stranger.to_json())
    before = audit_rows(fresh_settings)
    expected = (f"error: the master key does not match this database: it expects key id {initialised}, "
                f"but {stranger.describe_source() if wrong_key == 'another key file' else 'CARELOOP_MASTER_KEY'} "
                f"has key id {stranger.key_id};")

    answers = run_everything(run_cli, tmp_path, monkeypatch, settings=settings)
    wrong = {}
    for path, (code, _, err) in answers.items():
        if path in NO_DATABASE | BACKUP_ONLY:
            continue
        if code != 1 or not err.startswith(expected) or err.count("\n") != 1 or "altered" in err:
            wrong[" ".join(path)] = (code, err[-300:])
    assert wrong == {}
    assert_just_works(answers, NO_DATABASE)
    assert_no_backup_said(answers, BACKUP_ONLY)
    assert audit_rows(fresh_settings) == before  # nothing was written under the wrong key
    assert fresh_settings.key_file.read_bytes() == right
    assert KeyRing.load(stranger.path).primary == 1  # `keys rotate` did not rotate the stranger either


def test_every_command_without_the_key_file_names_the_key_to_restore(
        run_cli, fresh_settings, initialised, tmp_path, monkeypatch):
    fresh_settings.key_file.unlink()
    answers = run_everything(run_cli, tmp_path, monkeypatch)
    wrong = {}
    for path, (code, _, err) in answers.items():
        if path in NO_DATABASE | BACKUP_ONLY:
            continue
        if (code != 1 or not err.startswith(f"error: the master key is missing: this database expects key id "
                                            f"{initialised}, and there is no key file at {fresh_settings.key_file}")
                or err.count("\n") != 1):
            wrong[" ".join(path)] = (code, err[-300:])
    assert wrong == {}
    assert_just_works(answers, NO_DATABASE)
    assert_no_backup_said(answers, BACKUP_ONLY)
    assert not fresh_settings.key_file.exists()  # init made no new key


@pytest.mark.parametrize("where", ["a PostgreSQL server that is not there", "a file that is not a database"])
def test_a_database_that_cannot_be_opened_is_one_line(run_cli, fresh_settings, tmp_path, where):
    if where == "a file that is not a database":
        junk = tmp_path / "junk.db"
        junk.write_bytes(b"this is no SQLite file " * 100)
        url, reason = f"sqlite:///{junk}", "error: the database (sqlite) refused: file is not a database"
    else:
        url, reason = "postgresql+psycopg://careloop@127.0.0.1:9/none", "error: the database (postgresql) refused: "
    for command in (["users", "list"], ["init"]):
        code, out, err = run_cli(*command, settings=fresh_settings.with_overrides(database_url=url))
        assert (code, out) == (1, "")
        assert err.startswith(reason)
        assert err.count("\n") == 1
    assert not fresh_settings.key_file.exists()  # init made no key for a database it could not read
