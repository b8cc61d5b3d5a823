"""Another account on the machine cannot read what Careloop writes: files are 0600, folders 0700.

The key files, the audit anchor, the SQLite database with its ``-wal`` and ``-shm``, the worker's
lock, the blob store (folders and blobs), printed reports and exports are made private whatever
the umask (here 002, Debian's for users with their own group, under which a plain ``open()``
makes 0664 files and 0775 folders). ``careloop serve`` warns, and ``careloop doctor`` fails, when
one of them can be read by the group or by others.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import flask
import pytest
from sqlalchemy import text

from care.blobs import LocalBlobStore
from careloop.db import make_engine
from careloop.settings import Settings
from tests.careloop.test_cli_foundation import GOOD_ROWS, HEADER_ZH, write_csv


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def loose_umask() -> Iterator[None]:
    previous = os.umask(0o002)
    yield
    os.umask(previous)


@pytest.fixture
def clinic(tmp_path: Path, loose_umask: None) -> Settings:
    """An installation whose folders do not exist yet (SQLite, as ``make demo`` makes it)."""
    root = tmp_path / "clinic"
    return Settings(database_url=f"sqlite:///{root / 'data' / 'careloop.db'}", key_file=root / "keys" / "master.key",
                    blob_dir=root / "blobs")


def database_file(settings: Settings) -> Path:
    return Path(settings.database_url.removeprefix("sqlite:///"))


def test_what_init_import_worker_report_and_export_write_is_private(run_cli, clinic, tmp_path):
    assert run_cli("init", settings=clinic)[0] == 0
    patients = write_csv(tmp_path / "patients.csv", HEADER_ZH, GOOD_ROWS)
    assert run_cli("import", "patients", str(patients), settings=clinic)[0] == 0
    assert run_cli("worker", "--once", settings=clinic)[0] == 0
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.pdf").write_bytes(b"an older report")
    (out / "old.pdf").chmod(0o644)
    assert run_cli("report", "C0001", "--out", str(out / "old.pdf"), settings=clinic)[0] == 0
    assert run_cli("report", "C0002", "--out", str(out / "new.pdf"), settings=clinic)[0] == 0
    assert run_cli("export", "observations", "--out", str(out / "results.xlsx"), settings=clinic)[0] == 0

    database = database_file(clinic)
    keys = clinic.key_file.parent
    files = [clinic.key_file, keys / "audit.key", keys / "audit.anchor", database,
             Path(f"{database}.worker.lock"), out / "old.pdf", out / "new.pdf", out / "results.xlsx"]
    assert {str(path): oct(mode(path)) for path in files} == {str(path): "0o600" for path in files}
    folders = [keys, database.parent, keys.parent]
    assert {str(path): oct(mode(path)) for path in folders} == {str(path): "0o700" for path in folders}

    engine = make_engine(clinic.database_url)
    try:
        with engine.connect() as connection:  # a connection open: the WAL and its index exist
            connection.execute(text("SELECT count(*) FROM patients"))
            side_files = [Path(f"{database}{suffix}") for suffix in ("-wal", "-shm")]
            assert {str(path): oct(mode(path)) for path in side_files} == {str(p): "0o600" for p in side_files}
    finally:
        engine.dispose()


def test_the_blob_store_makes_its_folders_0700_and_its_blobs_0600(clinic):
    store = LocalBlobStore(clinic.blob_dir)
    store.put("recordings/p1/r1.wav", b"sealed bytes")
    root = clinic.blob_dir
    folders = [root.parent, root, root / "recordings", root / "recordings" / "p1"]
    assert {str(path): oct(mode(path)) for path in folders} == {str(path): "0o700" for path in folders}
    assert oct(mode(root / "recordings" / "p1" / "r1.wav")) == "0o600"


@pytest.fixture
def exposed(run_cli, clinic) -> list[tuple[Path, int]]:
    """An initialised installation where the database, the audit key, a blob folder and a blob were left
    readable."""
    assert run_cli("init", settings=clinic)[0] == 0
    LocalBlobStore(clinic.blob_dir).put("recordings/p1/r1.wav", b"sealed bytes")
    loose = [(database_file(clinic), 0o644), (clinic.audit_key_path, 0o640), (clinic.blob_dir / "recordings", 0o755),
             (clinic.blob_dir / "recordings" / "p1" / "r1.wav", 0o640)]
    for path, loose_mode in loose:
        path.chmod(loose_mode)
    return loose


def warning_lines(clinic: Settings, exposed: list[tuple[Path, int]]) -> list[str]:
    """What is told of ``exposed``: SQLite gives the ``-wal`` and ``-shm`` it makes the database file's mode,
    and the command opened the database before looking."""
    database = database_file(clinic)
    told = [*exposed, (Path(f"{database}-wal"), 0o644), (Path(f"{database}-shm"), 0o644)]
    return sorted(f"{path} is mode {bits:o}, readable by group or others: chmod {700 if path.is_dir() else 600} {path}"
                  for path, bits in told)


def test_serve_warns_of_each_file_or_folder_others_can_read(run_cli, clinic, exposed, monkeypatch):
    served = []
    monkeypatch.setattr(flask.Flask, "run", lambda _app, **options: served.append(options))
    code, _, err = run_cli("serve", settings=clinic)
    assert code == 0
    assert served  # it went on to serve: a warning, not a refusal
    warnings = [line.removeprefix("warning: ") for line in err.splitlines() if line.startswith("warning: ")]
    assert sorted(warnings) == warning_lines(clinic, exposed)


def test_doctor_fails_naming_each_file_or_folder_others_can_read(run_cli, clinic, exposed):
    code, out, err = run_cli("doctor", settings=clinic)
    assert code == 1
    assert err == "error: 1 check failed: files\n"
    assert "FAIL  files: 6 readable by group or others" in out
    told = sorted(line.strip() for line in out.splitlines() if line.startswith("        "))
    assert told == warning_lines(clinic, exposed)
