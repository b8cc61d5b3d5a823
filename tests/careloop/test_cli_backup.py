"""``careloop backup create|verify|restore``: every row equal after a restore (SQLite <-> PostgreSQL), the audit
chain still verifying, a damaged byte found, a non-empty database refused."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError

from care.blobs import LocalBlobStore, get_encrypted, put_encrypted
from care.models import Patient
from careloop.backups import _tables
from careloop.db import make_engine
from careloop.runtime import build_runtime
from careloop.settings import Settings
from tests.conftest import PG_ENV, SchemaMaker

PG_URL = os.environ.get(PG_ENV) or "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def postgres_reachable() -> bool:
    engine = make_engine(PG_URL)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return True
    except OperationalError:
        return False
    finally:
        engine.dispose()


@pytest.fixture
def other_schemas() -> Iterator[SchemaMaker]:
    if not postgres_reachable():
        pytest.skip("no PostgreSQL at " + PG_URL)
    maker = SchemaMaker(PG_URL)
    yield maker
    maker.drop_all()


def rows_of(settings: Settings) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, ordered by primary key, as the models' column types read them."""
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as connection:
            return {table.name: [tuple(row) for row in connection.execute(
                select(table).order_by(*table.primary_key.columns))] for table in _tables()}
    finally:
        engine.dispose()


@pytest.fixture
def clinic(run_cli, fresh_settings) -> Settings:
    """A demo clinic with a sealed audit trail and one recording in the blob store."""
    code, _, err = run_cli("demo", "--no-serve")
    assert code == 0, err
    runtime = build_runtime(fresh_settings)
    try:
        with runtime.db.unit_of_work() as session:
            patient = session.scalars(select(Patient).order_by(Patient.id)).first()
            assert patient is not None
            put_encrypted(session, LocalBlobStore(fresh_settings.blob_dir), owner_id=patient.id,
                          key=f"recordings/{patient.id}.wav", data=b"RIFF-recording-bytes" * 100)
    finally:
        runtime.close()
    code, _, err = run_cli("worker", "--once")  # seals the audit entries so far into the chain
    assert code == 0, err
    return fresh_settings


def restored_settings(source: Settings, target_url: str, tmp_path: Path) -> Settings:
    """Another installation with the same key files (the backup's key) and its own database and blob folder."""
    return source.with_overrides(database_url=target_url, blob_dir=tmp_path / "restored-blobs")


@pytest.mark.parametrize("target", ["sqlite", "postgresql"])
def test_a_restore_into_an_empty_database_of_either_engine_has_every_row_and_the_chain_verifies(
        run_cli, clinic, tmp_path, request, target):
    before = rows_of(clinic)  # the backup's own audit entry comes after its snapshot
    out = tmp_path / "clinic.backup"
    code, stdout, err = run_cli("backup", "create", "--out", str(out))
    assert code == 0, err
    assert stdout.startswith(f"backup written: {out} (")
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert b"demo" not in out.read_bytes().lower()  # compressed and encrypted: nothing legible

    if target == "sqlite":
        url = f"sqlite:///{tmp_path / 'restored.db'}"
    else:
        url = request.getfixturevalue("other_schemas").new("careloop_restore")
    target_settings = restored_settings(clinic, url, tmp_path)
    code, stdout, err = run_cli("backup", "restore", str(out), settings=target_settings)
    assert code == 0, err
    assert "0 erasure(s) of the ledger re-applied" in stdout

    after = rows_of(target_settings)
    audit_before = before.pop("audit_log")
    audit_after = after.pop("audit_log")
    assert after == before
    # The restore adds its own entry after the backup's.
    assert audit_after[: len(audit_before)] == audit_before
    code, stdout, err = run_cli("audit", "verify", settings=target_settings)
    assert code == 0, err
    code, _, err = run_cli("users", "list", settings=target_settings)  # the restored service answers
    assert code == 0, err

    runtime = build_runtime(target_settings)
    try:
        with runtime.db.unit_of_work() as session:
            patient = session.scalars(select(Patient).order_by(Patient.id)).first()
            assert patient is not None
            recording = get_encrypted(session, LocalBlobStore(target_settings.blob_dir), owner_id=patient.id,
                                      key=f"recordings/{patient.id}.wav")
    finally:
        runtime.close()
    assert recording == b"RIFF-recording-bytes" * 100


def test_a_backup_of_postgresql_restores_into_sqlite(run_cli, tmp_path, other_schemas):
    source = Settings(database_url=other_schemas.new("careloop_source"), key_file=tmp_path / "keys" / "master.key",
                      blob_dir=tmp_path / "blobs")
    code, _, err = run_cli("demo", "--no-serve", settings=source)
    assert code == 0, err
    before = rows_of(source)
    out = tmp_path / "pg.backup"
    code, _, err = run_cli("backup", "create", "--out", str(out), settings=source)
    assert code == 0, err
    target = restored_settings(source, f"sqlite:///{tmp_path / 'from-pg.db'}", tmp_path)
    code, _, err = run_cli("backup", "restore", str(out), settings=target)
    assert code == 0, err
    after = rows_of(target)
    audit_before, audit_after = before.pop("audit_log"), after.pop("audit_log")
    assert after == before
    assert audit_after[: len(audit_before)] == audit_before
    code, _, err = run_cli("audit", "verify", settings=target)
    assert code == 0, err


def test_verify_names_the_first_damaged_part(run_cli, clinic, tmp_path):
    out = tmp_path / "clinic.backup"
    assert run_cli("backup", "create", "--out", str(out))[0] == 0
    code, stdout, err = run_cli("backup", "verify", str(out))
    assert (code, err) == (0, "")
    assert stdout.startswith(f"backup intact: {out} made ")

    data = bytearray(out.read_bytes())
    data[len(data) // 2] ^= 0x01
    damaged = tmp_path / "damaged.backup"
    damaged.write_bytes(bytes(data))
    code, _, err = run_cli("backup", "verify", str(damaged))
    assert code == 1
    assert err.startswith(f"error: {damaged}: part ")
    assert "is damaged" in err
    assert err.count("\n") == 1

    truncated = tmp_path / "truncated.backup"
    truncated.write_bytes(out.read_bytes()[:-10])
    code, _, err = run_cli("backup", "verify", str(truncated))
    assert code == 1
    assert "(manifest) is damaged: the file is truncated" in err

    # and a damaged backup is never restored, not even a part of it
    target = restored_settings(clinic, f"sqlite:///{tmp_path / 'never.db'}", tmp_path)
    code, _, err = run_cli("backup", "restore", str(damaged), settings=target)
    assert code == 1
    assert "is damaged" in err
    assert not (tmp_path / "never.db").exists()


def test_restore_refuses_a_database_that_is_not_empty_unless_forced(run_cli, clinic, tmp_path):
    out = tmp_path / "clinic.backup"
    assert run_cli("backup", "create", "--out", str(out))[0] == 0
    before = rows_of(clinic)
    code, _, err = run_cli("backup", "restore", str(out))
    assert (code, err) == (1, "error: the database is not empty: restore into an empty database, or add --force "
                              "to replace everything in it with the backup\n")
    assert rows_of(clinic) == before
    code, _, err = run_cli("backup", "restore", str(out), "--force")
    assert code == 0, err
    after = rows_of(clinic)
    assert {name: rows for name, rows in after.items() if name != "audit_log"} == {
        name: rows for name, rows in before.items() if name != "audit_log"}


def test_a_backup_is_refused_under_another_key_and_never_overwritten(run_cli, clinic, tmp_path):
    out = tmp_path / "clinic.backup"
    assert run_cli("backup", "create", "--out", str(out))[0] == 0
    code, _, err = run_cli("backup", "create", "--out", str(out))
    assert (code, err) == (1, f"error: {out} exists: a backup is never overwritten (choose another name)\n")

    from security.keys import KeyRing

    stranger = KeyRing.generate(tmp_path / "stranger" / "master.key")
    stranger.save()
    elsewhere = Settings(database_url=f"sqlite:///{tmp_path / 'elsewhere.db'}", key_file=stranger.path,
                         blob_dir=tmp_path / "elsewhere-blobs")
    code, _, err = run_cli("backup", "verify", str(out), settings=elsewhere)
    assert code == 1
    assert err.startswith(f"error: {out} was made under master key id ")
    code, _, err = run_cli("backup", "restore", str(out), settings=elsewhere)
    assert code == 1
    assert "use the key file the backup was made with" in err
    assert not (tmp_path / "elsewhere.db").exists()


@pytest.mark.parametrize("content", [b"", b"not a backup at all", b"CLBK\x01\xff\xff\xff\xff"])
def test_a_file_that_is_no_backup_is_one_line(run_cli, clinic, tmp_path, content):
    garbled = tmp_path / "garbled.backup"
    garbled.write_bytes(content)
    for command in (["backup", "verify", str(garbled)], ["backup", "restore", str(garbled)]):
        code, out, err = run_cli(*command, settings=restored_settings(clinic, f"sqlite:///{tmp_path / 'n.db'}",
                                                                      tmp_path))
        assert (code, out) == (1, "")
        assert err.startswith(f"error: {garbled}")
        assert err.count("\n") == 1
    code, _, err = run_cli("backup", "verify", str(tmp_path / "missing.backup"))
    assert (code, err) == (1, f"error: {tmp_path / 'missing.backup'} does not exist\n")


def test_a_backup_of_an_older_schema_is_restored_at_its_revision_and_migrated_to_the_head(run_cli, clinic, tmp_path):
    from careloop import migrate
    from careloop.backups import create_backup
    from security.clock import SystemClock
    from security.keys import KeyRing

    before = rows_of(clinic)
    engine = make_engine(clinic.database_url)
    try:
        migrate.downgrade(engine, "0010_quiet_hours")  # as the Careloop before this one left it
        out = tmp_path / "older.backup"
        summary = create_backup(engine, KeyRing.load(clinic.key_file), clinic.blob_dir, out, now=SystemClock().now())
    finally:
        engine.dispose()
    assert summary.revision == "0010_quiet_hours"

    target = restored_settings(clinic, f"sqlite:///{tmp_path / 'upgraded.db'}", tmp_path)
    code, stdout, err = run_cli("backup", "restore", str(out), settings=target)
    assert code == 0, err
    assert stdout.startswith(f"restored {out}: schema revision 0010_quiet_hours "
                             f"(migrated to {migrate.head_revision()}), ")
    target_engine = make_engine(target.database_url)
    try:
        assert migrate.current_revision(target_engine) == migrate.head_revision()
    finally:
        target_engine.dispose()
    after = rows_of(target)
    audit_before, audit_after = before.pop("audit_log"), after.pop("audit_log")
    assert after == before
    assert audit_after[: len(audit_before)] == audit_before
    assert run_cli("audit", "verify", settings=target)[0] == 0
