"""The master key and the database belong together: init records the key id and never makes a second key."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable

from sqlalchemy import func, select, text

from care import staff
from careloop import migrate
from careloop.db import make_engine
from careloop.runtime import build_runtime
from careloop.settings import Settings
from security.audit import AuditEntry
from security.key_identity import recorded_key_id
from security.keys import KeyRing
from tests.conftest import TEST_ACTOR

Cli = Callable[..., tuple[int, str, str]]


def recorded(settings: Settings) -> str | None:
    runtime = build_runtime(settings)
    try:
        with runtime.db.unit_of_work() as session:
            return recorded_key_id(session)
    finally:
        runtime.close()


def audit_count(settings: Settings) -> int:
    runtime = build_runtime(settings)
    try:
        with runtime.db.unit_of_work() as session:
            return int(session.scalar(select(func.count()).select_from(AuditEntry)) or 0)
    finally:
        runtime.close()


def test_init_records_the_key_id_it_prints_and_a_rotation_keeps_it(run_cli, fresh_settings):
    code, out, err = run_cli("init")
    assert code == 0, err
    key_id = KeyRing.load(fresh_settings.key_file).key_id
    assert f"key id {key_id}" in out
    assert recorded(fresh_settings) == key_id
    assert run_cli("keys", "rotate")[0] == 0
    assert KeyRing.load(fresh_settings.key_file).key_id == key_id
    code, out, err = run_cli("init")
    assert code == 0, err
    assert f"key id {key_id}" in out
    assert run_cli("keys", "status")[0] == 0


def test_init_without_the_key_file_refuses_and_makes_no_new_key(run_cli, fresh_settings):
    assert run_cli("init")[0] == 0
    key_id = KeyRing.load(fresh_settings.key_file).key_id
    before = audit_count(fresh_settings)
    kept = fresh_settings.key_file.read_bytes()
    fresh_settings.key_file.unlink()
    code, out, err = run_cli("init")
    assert (code, out) == (1, "")
    assert err == (f"error: the master key is missing: this database expects key id {key_id}, and there is no key "
                   f"file at {fresh_settings.key_file} and no CARELOOP_MASTER_KEY; restore the key file from your "
                   "backup (mode 0600) or set CARELOOP_MASTER_KEY (careloop will not make a new key for a database "
                   "that has data under one)\n")
    assert not fresh_settings.key_file.exists()
    fresh_settings.key_file.write_bytes(kept)  # restored as the message says
    assert audit_count(fresh_settings) == before
    assert run_cli("init")[0] == 0


def test_init_with_another_key_file_refuses_and_changes_nothing(run_cli, fresh_settings, tmp_path):
    assert run_cli("init")[0] == 0
    key_id = KeyRing.load(fresh_settings.key_file).key_id
    stranger = KeyRing.generate(tmp_path / "other.key")
    stranger.save()
    before = audit_count(fresh_settings)
    code, _, err = run_cli("init", settings=fresh_settings.with_overrides(key_file=stranger.path))
    assert code == 1
    assert err.startswith(f"error: the master key does not match this database: it expects key id {key_id}, but "
                          f"key file {stranger.path} has key id {stranger.key_id}; restore")
    assert len(err.splitlines()) == 1
    assert audit_count(fresh_settings) == before
    assert recorded(fresh_settings) == key_id


def test_the_environment_key_wins_over_the_file(run_cli, fresh_settings):
    assert run_cli("init")[0] == 0
    ring = KeyRing.load(fresh_settings.key_file)
    wrong = base64.b64encode(secrets.token_bytes(32)).decode()
    code, _, err = run_cli("keys", "status", settings=fresh_settings.with_overrides(master_key=wrong))
    assert code == 1
    assert err.startswith(f"error: the master key does not match this database: it expects key id {ring.key_id}, "
                          "but CARELOOP_MASTER_KEY has key id ")
    # The same ring given in the environment works without the file.
    fresh_settings.key_file.unlink()
    code, out, err = run_cli("keys", "status", settings=fresh_settings.with_overrides(master_key=ring.to_json()))
    assert code == 0, err
    assert "primary: 1" in out


def test_a_database_made_with_an_environment_key_gets_no_key_file(run_cli, fresh_settings):
    root = base64.b64encode(secrets.token_bytes(32)).decode()
    settings = fresh_settings.with_overrides(master_key=root)
    code, out, err = run_cli("init", settings=settings)
    assert code == 0, err
    assert "from CARELOOP_MASTER_KEY" in out
    assert not fresh_settings.key_file.exists()
    assert recorded(settings) == KeyRing.from_environment_value(root).key_id
    code, _, err = run_cli("users", "list")  # the file path, which init did not create
    assert code == 1
    assert err.startswith("error: the master key is missing: this database expects key id ")


def test_an_invalid_environment_key_is_one_line(run_cli, fresh_settings):
    assert run_cli("init")[0] == 0
    code, _, err = run_cli("users", "list", settings=fresh_settings.with_overrides(master_key="not base64!"))
    assert (code, err) == (1, "error: the master key cannot be used: CARELOOP_MASTER_KEY is not valid base64\n")


def make_database_without_a_key_record(settings: Settings) -> KeyRing:
    """A database at revision 0001 (before key ids were recorded) holding a staff account under its key."""
    ring = KeyRing.generate(settings.key_file)
    ring.save()
    engine = make_engine(settings.database_url)
    migrate.upgrade(engine, "0001")
    engine.dispose()
    runtime = build_runtime(settings)
    try:
        with runtime.db.unit_of_work() as session:
            staff.ensure_roles(session)
            staff.create_user(session, email="old@clinic.test", display_name="Old", role_name="admin",
                              actor=TEST_ACTOR)
    finally:
        runtime.close()
    return ring


def test_a_database_older_than_key_ids_is_upgraded_with_its_own_key_and_then_records_it(run_cli, fresh_settings):
    ring = make_database_without_a_key_record(fresh_settings)
    code, _, err = run_cli("users", "list")
    assert code == 1
    assert err == ("error: the database schema is at revision 0001, this Careloop needs "
                   f"{migrate.head_revision()}: run careloop init to upgrade it\n")
    code, out, err = run_cli("init")
    assert code == 0, err
    assert "First administrator created" not in out  # the old admin is still there
    assert recorded(fresh_settings) == ring.key_id
    code, out, _ = run_cli("users", "list")
    assert code == 0
    assert "old@clinic.test" in out


def test_a_database_older_than_key_ids_refuses_another_key(run_cli, fresh_settings, tmp_path):
    make_database_without_a_key_record(fresh_settings)
    stranger = KeyRing.generate(tmp_path / "other.key")
    stranger.save()
    for command in (["init"], ["users", "list"]):
        code, _, err = run_cli(*command, settings=fresh_settings.with_overrides(key_file=stranger.path))
        assert code == 1
        assert err.startswith(f"error: the master key does not match this database: key file {stranger.path} (key "
                              f"id {stranger.key_id}) does not open the data already stored")
    engine = make_engine(fresh_settings.database_url)
    try:
        assert migrate.current_revision(engine) == "0001"  # init refused before migrating
    finally:
        engine.dispose()


def test_a_database_error_is_one_line_without_the_statement(run_cli, fresh_settings):
    assert run_cli("init")[0] == 0
    engine = make_engine(fresh_settings.database_url)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE source_api_keys"))
    engine.dispose()
    code, _, err = run_cli("api-keys", "list")
    assert code == 1
    assert err.startswith("error: the database refused: ")
    assert "source_api_keys" in err
    assert "SELECT" not in err
    assert "[SQL" not in err
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1
