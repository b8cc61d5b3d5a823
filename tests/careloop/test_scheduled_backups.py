"""The worker's daily backup: one a day into CARELOOP_BACKUP_DIR, retention of N daily and M weekly, audited."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from careloop.backups import DailyBackup, daily_backup_name, retained
from careloop.readiness import open_runtime
from careloop.settings import Settings
from security.audit import AuditEntry
from security.clock import FixedClock


@pytest.fixture
def installed(run_cli, fresh_settings, tmp_path) -> Settings:
    assert run_cli("init")[0] == 0
    return fresh_settings.with_overrides(backup_dir=tmp_path / "backups", backup_keep_daily=3, backup_keep_weekly=3)


def outcomes(settings: Settings) -> list[dict[str, object]]:
    runtime = open_runtime(settings)
    try:
        with runtime.db.unit_of_work() as session:
            return [json.loads(entry.details) for entry in session.scalars(
                select(AuditEntry).where(AuditEntry.action == "backup.scheduled").order_by(AuditEntry.id))]
    finally:
        runtime.close()


def test_retention_keeps_the_newest_days_and_the_newest_of_each_recent_week():
    days = [date(2026, 11, 1) + timedelta(days=n) for n in range(30)]  # 1 to 30 November
    kept = retained(days, keep_daily=3, keep_weekly=3)
    # The last three days, and the newest of each of the last three ISO weeks: Monday 30 November and Sunday
    # 29 November (kept as days already), Sunday 22 November. A day kept counts for its week (as restic does).
    assert kept == {date(2026, 11, 28), date(2026, 11, 29), date(2026, 11, 30), date(2026, 11, 22)}
    assert retained([], keep_daily=3, keep_weekly=2) == set()


def test_one_backup_a_day_with_retention_and_its_outcome_audited(installed):
    clock = FixedClock(datetime(2026, 11, 1, 3, 0, tzinfo=UTC))
    runtime = open_runtime(installed, clock=clock)
    job = DailyBackup(runtime)
    try:
        assert job.tick() == 1
        assert job.tick() == 0  # today's is there
        for _ in range(29):
            clock.advance(days=1)
            assert job.tick() == 1
    finally:
        runtime.close()
    folder = installed.backup_dir
    assert folder is not None
    assert sorted(path.name for path in folder.iterdir()) == sorted(
        daily_backup_name(day) for day in (date(2026, 11, 22), date(2026, 11, 28), date(2026, 11, 29),
                                           date(2026, 11, 30)))
    audited = outcomes(installed)
    assert len(audited) == 30
    assert {entry["outcome"] for entry in audited} == {"ok"}
    assert audited[-1]["file"] == daily_backup_name(date(2026, 11, 30))
    assert audited[-1]["removed"] == f"{daily_backup_name(date(2026, 11, 15))} {daily_backup_name(date(2026, 11, 27))}"


def test_a_backup_that_fails_is_audited_and_the_worker_hears_of_it(installed, tmp_path):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("x")
    settings = installed.with_overrides(backup_dir=blocked)
    runtime = open_runtime(settings, clock=FixedClock(datetime(2026, 11, 1, 3, 0, tzinfo=UTC)))
    try:
        with pytest.raises(OSError, match="Not a directory"):
            DailyBackup(runtime).tick()
    finally:
        runtime.close()
    assert outcomes(settings) == [{"outcome": "failed", "file": "careloop-20261101.backup",
                                   "error": "NotADirectoryError"}]


def test_the_worker_runs_the_daily_backup_only_when_a_folder_is_set(run_cli, installed):
    code, out, err = run_cli("worker", "--once", settings=installed)
    assert code == 0, err
    assert "daily_backup: 1" in out
    folder = installed.backup_dir
    assert folder is not None
    [made] = list(folder.iterdir())
    assert run_cli("backup", "verify", str(made), settings=installed)[0] == 0
    code, out, _ = run_cli("worker", "--once", settings=installed.with_overrides(backup_dir=None))
    assert code == 0
    assert "daily_backup" not in out
