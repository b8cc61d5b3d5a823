"""``careloop doctor``: one line per check; exit 1 naming what failed, the clinic's broken flow files among them."""

from __future__ import annotations

from pathlib import Path

import pytest

from careloop.readiness import NOT_INITIALISED
from tests.careloop.test_custom_flows import LIBRARY_FLOWS


def checks(out: str) -> dict[str, str]:
    """Return ``{check: "ok" | "FAIL"}`` from the doctor's report."""
    found = {}
    for line in out.splitlines():
        if line.startswith(("ok ", "FAIL ")):
            status, _, rest = line.partition("  ")
            found[rest.split(":")[0].strip()] = status.strip()
    return found


@pytest.fixture
def initialised(run_cli, fresh_settings):
    code, _, err = run_cli("init")
    assert code == 0, err
    return fresh_settings


def test_a_fresh_installation_passes_every_check(run_cli, initialised):
    code, out, err = run_cli("doctor")
    assert (code, err) == (0, "")
    assert checks(out) == {name: "ok" for name in (
        "settings", "key", "database", "files", "channels", "blob store", "flows", "audit", "clock", "erasure ledger",
        "backups")}
    assert f"flows: {LIBRARY_FLOWS} installed" in out


def test_a_broken_flow_file_of_the_clinic_fails_the_flows_check_with_one_line_per_problem(
        run_cli, initialised, tmp_path):
    folder = tmp_path / "clinic_flows"
    folder.mkdir()
    (folder / "broken.yaml").write_text("id: broken\nversion: [1\n", encoding="utf-8")
    (folder / "nodes.yaml").write_text("id: nodes\nversion: 1\ntitle: {zh: 坏, en: bad}\nnodes: [1, {kind: x}]\n",
                                       encoding="utf-8")
    code, out, err = run_cli("doctor", settings=initialised.with_overrides(flows_dirs=(folder,)))
    assert code == 1
    assert err == "error: 1 check failed: flows\n"
    assert checks(out)["flows"] == "FAIL"
    assert f"flows: {LIBRARY_FLOWS} installed (with {folder}), 2 files left out" in out
    told = [line.strip() for line in out.splitlines() if line.strip().startswith("flow left out: ")]
    assert f"flow left out: {folder / 'nodes.yaml'}:nodes[1]: expected a mapping of fields, got the number 1" in told
    assert f"flow left out: {folder / 'nodes.yaml'}:-: the flow has no usable node" in told
    assert any(line.startswith(f"flow left out: {folder / 'broken.yaml'}:-: not valid YAML") for line in told)


def test_a_key_file_others_can_read_fails(run_cli, initialised):
    initialised.key_file.chmod(0o644)
    code, out, err = run_cli("doctor")
    assert code == 1
    assert err == "error: 1 check failed: key\n"
    assert f"FAIL  key: {initialised.key_file} is mode 644, readable by others: chmod 600 {initialised.key_file}" in out


def test_a_channel_asked_for_without_its_settings_fails(run_cli, initialised):
    code, out, err = run_cli("doctor", settings=initialised.with_overrides(channels=("console", "sms")))
    assert code == 1
    assert err == "error: 1 check failed: channels\n"
    assert "FAIL  channels: console, sms off (not set: TWILIO_ACCOUNT_SID" in out


def test_a_database_never_initialised_says_run_init_first(run_cli, fresh_settings):
    code, out, err = run_cli("doctor")
    assert (code, err) == (1, f"error: {NOT_INITIALISED}\n")
    assert checks(out)["database"] == "FAIL"
    assert checks(out)["flows"] == "ok"
    assert not Path(fresh_settings.key_file).exists()


def test_an_altered_erasure_ledger_fails(run_cli, initialised):
    initialised.erasure_ledger_path.write_text(
        '{"patient_id": "7d4cbd0a-4b7a-4b8f-9d5e-0a1b2c3d4e5f", "erased_at": "2026-12-01T00:00:00+00:00", '
        '"mac": "00"}\n', encoding="utf-8")
    code, out, err = run_cli("doctor")
    assert (code, err) == (1, "error: 1 check failed: erasure ledger\n")
    assert (f"FAIL  erasure ledger: the erasure ledger {initialised.erasure_ledger_path}, line 1, does not "
            "authenticate under this master key") in out


def test_a_blob_store_that_is_not_a_folder_fails(run_cli, initialised, tmp_path):
    not_a_folder = tmp_path / "blobs-file"
    not_a_folder.write_text("x", encoding="utf-8")
    not_a_folder.chmod(0o600)
    code, out, err = run_cli("doctor", settings=initialised.with_overrides(blob_dir=not_a_folder))
    assert (code, err) == (1, "error: 1 check failed: blob store\n")
    assert f"FAIL  blob store: {not_a_folder} is not a folder" in out


def test_scheduled_backups_that_stopped_fail(run_cli, initialised, tmp_path):
    folder = tmp_path / "backups"
    folder.mkdir(mode=0o700)
    (folder / "careloop-20200101.backup").write_bytes(b"old")
    code, out, err = run_cli("doctor", settings=initialised.with_overrides(backup_dir=folder))
    assert (code, err) == (1, "error: 1 check failed: backups\n")
    assert "FAIL  backups: the newest backup, careloop-20200101.backup, is " in out
    assert "days old: is the worker running?" in out
    (folder / "careloop-20200101.backup").unlink()
    code, out, err = run_cli("doctor", settings=initialised.with_overrides(backup_dir=folder))
    assert (code, err) == (0, "")
    assert f"ok    backups: {folder} (none yet: the worker writes one a day)" in out
