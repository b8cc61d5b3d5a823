"""The worker as an operator runs it: due follow-ups go out on the console channel in the demo."""

from __future__ import annotations

from sqlalchemy import select

from bot.models import OutboxMessage
from care.models import FollowUp, Patient
from careloop.runtime import build_runtime
from tests.careloop.workers import daytime_zone


def test_worker_once_invites_the_demo_followups_and_sends_them(run_cli, fresh_settings):
    assert run_cli("demo", "--no-serve")[0] == 0
    runtime = build_runtime(fresh_settings)
    with runtime.db.unit_of_work() as session:
        for patient in session.scalars(select(Patient)):
            patient.timezone = daytime_zone()  # the worker runs on the system clock: outside quiet hours
    runtime.close()
    code, out, _ = run_cli("worker", "--once")
    assert code == 0
    assert "due_followups: 3" in out
    assert "dispatch_outbox: 3" in out
    runtime = build_runtime(fresh_settings)
    with runtime.db.unit_of_work() as session:
        followups = list(session.scalars(select(FollowUp)))
        assert {f.status for f in followups} == {"invited"}
        assert {f.current_channel for f in followups} == {"console"}
        statuses = {row.status for row in session.scalars(select(OutboxMessage))}
        assert statuses == {"sent"}
    runtime.close()
    code, out, _ = run_cli("worker", "--once")
    assert "due_followups: 0" in out
    assert "dispatch_outbox: 0" in out
