"""The command line as an operator meets it: init, import, keys rotate + worker, audit verify, errors."""

from __future__ import annotations

import csv
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from care.models import Patient
from care.patients import find_by_card, find_by_id_number, find_by_phone
from careloop.runtime import build_runtime
from careloop.settings import Settings
from security.crypto import DataKey
from security.keys import KeyRing

HEADER_ZH = ["卡号", "姓名", "性别", "出生日期", "手机号", "身份证号", "套餐", "语言", "微信openid"]
HEADER_EN = ["card_no", "name", "gender", "birth_date", "phone", "id_number", "package", "language", "wechat_openid"]

GOOD_ROWS = [
    ["C0001", "欧阳建国", "男", "1958-03-12", "13912345678", "110105195803120010", "高血压管理套餐", "zh", ""],
    ["C0002", "司马秀兰", "女", "1962-11-30", "+86 139 8765 4321", "", "", "zh", "oWx_demo_0002"],
    ["C0003", "Mary Chen", "F", "1971-07-04", "13600001111", "", "VIP", "en", ""],
]
BAD_ROWS = [
    ["C0004", "", "男", "1950-01-01", "13700002222", "", "", "", ""],                     # row 5: name missing
    ["C0005", "诸葛亮", "X", "1950-01-01", "13700003333", "", "", "", ""],                # row 6: gender
    ["C0006", "东方明", "男", "1950-13-01", "13700004444", "", "", "", ""],               # row 7: date
    ["C0007", "上官婉", "女", "1980-02-02", "12345", "", "", "", ""],                     # row 8: phone
    ["C0008", "慕容复", "男", "1958-03-12", "13700005555", "110105195803120017", "", "", ""],  # row 9: checksum
    ["C0001", "欧阳建国", "男", "1958-03-12", "13912345678", "", "", "", ""],              # row 10: repeated card
]


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_xlsx(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    workbook.save(path)
    return path


@pytest.fixture
def initialised(run_cli):
    code, out, err = run_cli("init", "--admin-email", "boss@clinic.test")
    assert code == 0, err
    return out


def open_runtime(settings: Settings):
    return build_runtime(settings)


def test_help_lists_the_commands_and_exits_0(run_cli):
    code, out, _ = run_cli("--help")
    assert code == 0
    for command in ("init", "serve", "worker", "demo", "import", "audit", "keys"):
        assert command in out


def test_unknown_command_is_bad_usage(run_cli):
    code, _, err = run_cli("frobnicate")
    assert code == 2
    assert "No such command" in err


def test_init_creates_a_private_key_file_schema_and_one_admin(run_cli, fresh_settings, initialised):
    assert "one-time password" in initialised
    assert "otpauth://totp/" in initialised
    mode = stat.S_IMODE(os.stat(fresh_settings.key_file).st_mode)
    assert mode == 0o600
    code, out, _ = run_cli("init")
    assert code == 0
    assert "one-time password" not in out  # the admin exists; init only upgrades


def test_commands_without_a_key_file_fail_with_one_line(run_cli, fresh_settings):
    code, out, err = run_cli("audit", "verify")
    assert code == 1
    assert err.strip().startswith("error:")
    assert "careloop init" in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_debug_shows_the_traceback(run_cli):
    code, _, err = run_cli("--debug", "audit", "verify")
    assert code == 1
    assert "Traceback" in err


@pytest.mark.parametrize("writer", [write_csv, write_xlsx], ids=["csv", "xlsx"])
@pytest.mark.parametrize("header", [HEADER_ZH, HEADER_EN], ids=["zh", "en"])
def test_import_takes_good_rows_names_bad_ones_and_is_idempotent(run_cli, fresh_settings, initialised, tmp_path,
                                                                 writer, header):
    source = writer(tmp_path / f"patients{'.csv' if writer is write_csv else '.xlsx'}", header, GOOD_ROWS + BAD_ROWS)
    code, out, err = run_cli("import", "patients", str(source))
    assert code == 1  # some rows were rejected
    assert "3 created, 0 updated, 0 unchanged, 6 rejected" in out
    assert "row 5, name: is required" in err
    assert "row 6, gender" in err
    assert "row 7, birth_date" in err
    assert "row 8, phone" in err
    assert "row 9, id_number: ID number checksum" in err
    assert "row 10, card_no: card number already appears in row 2" in err

    code, out, _ = run_cli("import", "patients", str(source))
    assert "0 created, 0 updated, 3 unchanged, 6 rejected" in out

    runtime = open_runtime(fresh_settings)
    with runtime.db.unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(Patient)) == 3
        patient = find_by_card(session, "c0001")
        assert patient is not None
        assert patient.name == "欧阳建国"
        assert patient.phone == "+8613912345678"
        assert [p.card_no for p in find_by_phone(session, "139-8765-4321")] == ["C0002"]
        found = find_by_id_number(session, "110105195803120010")
        assert found is not None
        assert found.card_no == "C0001"
        assert patient.cards[0].package == "高血压管理套餐"
    runtime.close()


def test_reimport_with_a_corrected_phone_updates_the_card(run_cli, fresh_settings, initialised, tmp_path):
    run_cli("import", "patients", str(write_csv(tmp_path / "a.csv", HEADER_EN, GOOD_ROWS)))
    corrected = [row[:] for row in GOOD_ROWS]
    corrected[2][4] = "13600002222"
    code, out, _ = run_cli("import", "patients", str(write_csv(tmp_path / "b.csv", HEADER_EN, corrected)))
    assert code == 0
    assert "0 created, 1 updated, 2 unchanged, 0 rejected" in out
    runtime = open_runtime(fresh_settings)
    with runtime.db.unit_of_work() as session:
        assert [p.card_no for p in find_by_phone(session, "13600002222")] == ["C0003"]
        assert find_by_phone(session, "13600001111") == []
    runtime.close()


def test_import_refuses_a_file_without_required_columns(run_cli, initialised, tmp_path):
    source = write_csv(tmp_path / "wrong.csv", ["card_no", "name"], [["X1", "某人"]])
    code, _, err = run_cli("import", "patients", str(source))
    assert code == 1
    assert "lacks required column(s): gender (性别)" in err


def test_import_refuses_a_file_that_is_not_a_workbook(run_cli, initialised, tmp_path):
    fake = tmp_path / "fake.xlsx"
    fake.write_bytes(b"this is not a zip file")
    code, _, err = run_cli("import", "patients", str(fake))
    assert code == 1
    assert "not a readable .xlsx workbook" in err


def test_import_missing_file_is_reported(run_cli, initialised, tmp_path):
    code, _, err = run_cli("import", "patients", str(tmp_path / "nope.csv"))
    assert code == 1
    assert "no such file" in err


def raw_database_bytes(settings: Settings, tmp_path: Path) -> bytes:
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        assert url.database is not None
        return b"".join(Path(url.database + suffix).read_bytes() for suffix in ("", "-wal")
                        if Path(url.database + suffix).exists())
    pg_dump = shutil.which("pg_dump")
    assert pg_dump, "pg_dump is needed for the PostgreSQL raw-dump test (Debian: postgresql-client)"
    options = url.query.get("options", "")
    schema = str(options).split("search_path=")[1]
    dump = subprocess.run(
        [pg_dump, "-h", url.host or "127.0.0.1", "-p", str(url.port or 5432), "-U", url.username or "postgres",
         "--schema", schema, "--data-only", url.database or "test"],
        check=True, capture_output=True,
    )
    return dump.stdout


def test_a_copy_of_the_database_shows_no_phi_in_clear(run_cli, fresh_settings, initialised, tmp_path):
    source = write_xlsx(tmp_path / "patients.xlsx", HEADER_ZH, GOOD_ROWS)
    assert run_cli("import", "patients", str(source))[0] == 0
    dump = raw_database_bytes(fresh_settings, tmp_path)
    assert len(dump) > 1000
    for row in GOOD_ROWS:
        name, phone, id_number, openid = row[1], row[4], row[5], row[8]
        assert name.encode() not in dump
        assert name.encode("utf-16-le") not in dump
        digits = "".join(ch for ch in phone if ch.isdigit())[-11:]
        assert digits.encode() not in dump
        if id_number:
            assert id_number.encode() not in dump
        if openid:
            assert openid.encode() not in dump
        assert row[0].encode() not in dump  # card numbers are identifiers too


def test_keys_rotate_then_worker_leaves_nothing_under_the_old_key(run_cli, fresh_settings, initialised, tmp_path):
    source = write_csv(tmp_path / "p.csv", HEADER_EN, GOOD_ROWS)
    run_cli("import", "patients", str(source))
    code, out, _ = run_cli("keys", "rotate")
    assert code == 0
    assert "version 2 is now primary" in out
    code, out, _ = run_cli("worker", "--once")
    assert code == 0
    assert "rewrap_keys:" in out

    ring = KeyRing.load(fresh_settings.key_file)
    assert ring.primary == 2
    runtime = open_runtime(fresh_settings)
    with runtime.db.unit_of_work() as session:
        versions = set(session.scalars(select(DataKey.kek_version)))
        assert versions == {2}
    runtime.close()
    # Retire version 1 altogether: every record must still read.
    ring.retire(1)
    runtime = open_runtime(fresh_settings)
    with runtime.db.unit_of_work() as session:
        names = sorted(p.name or "" for p in session.scalars(select(Patient)))
        assert names == sorted(row[1] for row in GOOD_ROWS)
    runtime.close()


def test_audit_verify_passes_then_names_an_entry_altered_in_sql(run_cli, fresh_settings, initialised, tmp_path):
    run_cli("import", "patients", str(write_csv(tmp_path / "p.csv", HEADER_EN, GOOD_ROWS)))
    assert run_cli("worker", "--once")[0] == 0
    code, out, _ = run_cli("audit", "verify")
    assert code == 0
    assert "audit trail intact" in out

    runtime = open_runtime(fresh_settings)
    with runtime.db.engine.begin() as connection:
        victim = connection.execute(text("SELECT id FROM audit_log WHERE action = 'patient.enroll' "
                                         "ORDER BY id LIMIT 1")).scalar_one()
        connection.execute(text("UPDATE audit_log SET actor_id = 'someone-else' WHERE id = :id"), {"id": victim})
    runtime.close()
    code, _, err = run_cli("audit", "verify")
    assert code == 1
    assert f"(id {victim})" in err
    assert len(err.strip().splitlines()) == 1


def test_worker_refuses_an_unmigrated_database(run_cli, fresh_settings):
    KeyRing.generate(fresh_settings.key_file).save()
    code, _, err = run_cli("worker", "--once")
    assert code == 1
    assert "careloop init" in err


def test_console_script_runs_as_a_real_process(fresh_settings, tmp_path):
    env = {**os.environ, "CARELOOP_DATABASE_URL": fresh_settings.database_url,
           "CARELOOP_KEY_FILE": str(fresh_settings.key_file)}
    executable = Path(sys.executable).with_name("careloop")
    done = subprocess.run([str(executable), "init"], env=env, capture_output=True, text=True, cwd=tmp_path,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "First administrator created" in done.stdout
    bad = subprocess.run([str(executable), "import", "patients"], env=env, capture_output=True, text=True,
                         cwd=tmp_path, timeout=60)
    assert bad.returncode == 2
    assert "Missing argument" in bad.stderr


def test_demo_prepares_a_synthetic_clinic_once(run_cli, fresh_settings):
    code, out, _ = run_cli("demo", "--no-serve")
    assert code == 0
    assert "40 synthetic patients added" in out
    assert "otpauth://totp/" in out
    code, out, _ = run_cli("demo", "--no-serve")
    assert "already seeded" in out
    runtime = open_runtime(fresh_settings)
    with runtime.db.unit_of_work() as session:
        patient = find_by_card(session, "DEMO00001")
        assert patient is not None
        assert patient.name
    runtime.close()


def test_one_worker_per_sqlite_file_but_several_on_postgresql(fresh_settings, dialect_name):
    from careloop.worker import WorkerLockedError, single_worker_lock

    KeyRing.generate(fresh_settings.key_file).save()
    runtime = open_runtime(fresh_settings)
    with single_worker_lock(runtime):
        if dialect_name == "sqlite":
            with pytest.raises(WorkerLockedError), single_worker_lock(runtime):
                pass
        else:
            with single_worker_lock(runtime):  # rows are claimed with SKIP LOCKED instead
                pass
    runtime.close()
