"""The exports page: four kinds of .xlsx with filters, made in the background, safe cells, audited, private."""

from __future__ import annotations

import io
import json
import re
import stat
import uuid
from datetime import timedelta

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from care import care_teams
from care.followups import schedule_followup
from care.models import AuditEntry, ExportJob, FlowResult
from care.observations import record_observation
from care.tags import add_tag
from tests.admin.conftest import page_token
from tests.conftest import TEST_ACTOR

JOB = re.compile(r"/admin/exports/([0-9a-f-]{36})$")


@pytest.fixture
def runner(app):
    return app.extensions["careloop.exports"]


def export(client, runner, **fields):
    """Ask for an export, let its thread finish, and return the job id."""
    token = page_token(client, "/admin/exports")
    response = client.post("/admin/exports", data={"csrf_token": token, **fields})
    assert response.status_code == 302, response.get_data(as_text=True)
    runner.wait(timeout=60)
    return uuid.UUID(JOB.search(response.headers["Location"]).group(1))


def download(client, job_id):
    page = client.get(f"/admin/exports/{job_id}").get_data(as_text=True)
    assert 'id="download-export"' in page, page
    with client.get(f"/admin/exports/{job_id}/file") as response:  # closing it closes the file sent
        assert response.status_code == 200
        assert response.headers["Content-Disposition"].startswith("attachment;")
        content = response.data
    return load_workbook(io.BytesIO(content), read_only=True).active


def sheet_rows(sheet):
    return [list(row) for row in sheet.iter_rows(values_only=True)]


@pytest.fixture
def clinic(db, make_patient, clock):
    """Two tagged patients and one untagged, with results, answers and follow-ups; one name is a formula."""
    formula = make_patient(name="=HYPERLINK(\"http://evil\")", card_no="EXP-0001")
    plain = make_patient(name="王秀英", card_no="EXP-0002")
    other = make_patient(name="李建华", card_no="EXP-0003")
    for patient in (formula, plain):
        add_tag(db, patient, "高血压", source="flow:intake", actor=TEST_ACTOR)
    for patient, days in ((formula, 0), (plain, 10), (other, 0)):
        record_observation(db, patient, code="sbp", value=150, unit="mmHg",
                           effective_at=clock.now() - timedelta(days=days), source="report:csv", actor=TEST_ACTOR)
        followup = schedule_followup(db, patient, flow_id="phq9", due_at=clock.now() - timedelta(days=days),
                                     actor=TEST_ACTOR)
        followup.session_id = uuid.uuid4()
        for name, value in (("phq9_q1", 2), ("phq9_total", 12)):
            db.add(FlowResult(patient_id=patient.id, session_id=followup.session_id, flow_id="phq9", flow_version=2,
                              name=name, value=value, label="-1+1" if name == "phq9_q1" else None,
                              recorded_at=clock.now() - timedelta(days=days)))
    db.flush()
    return formula, plain, other


def test_a_patients_export_is_made_in_the_background_with_safe_cells(client, db, signed_in, clinic, runner, tmp_path):
    signed_in("admin")
    job_id = export(client, runner, kind="patients")
    job = db.get(ExportJob, job_id)
    db.refresh(job)
    assert (job.status, job.total, job.done, job.rows) == ("done", 3, 3, 3)
    path = runner.folder / job.file_name
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    header, *rows = sheet_rows(download(client, job_id))
    assert list(header[:2]) == ["卡号", "姓名"]
    names = sorted(row[1] for row in rows)
    assert "'=HYPERLINK(\"http://evil\")" in names
    assert "王秀英" in names
    assert not path.exists()  # removed once downloaded
    again = client.get(f"/admin/exports/{job_id}/file")
    assert again.status_code == 302


def test_every_export_is_audited_with_its_filter_and_row_count(client, db, signed_in, clinic, runner):
    signed_in("admin")
    job_id = export(client, runner, kind="observations", tag="高血压")
    entry = db.scalars(select(AuditEntry).where(AuditEntry.action == "export.create",
                                                AuditEntry.resource_id == str(job_id))).one()
    assert json.loads(entry.details)["rows"] == 2
    assert json.loads(entry.details)["filter_tag"] == "高血压"
    per_patient = db.scalars(select(AuditEntry).where(AuditEntry.action == "observation.export")).all()
    assert len(per_patient) == 2


def test_the_tag_and_the_days_narrow_the_export(client, signed_in, clinic, runner, clock):
    signed_in("admin")
    today = clock.now().date().isoformat()
    job_id = export(client, runner, kind="followups", tag="高血压", date_from=today, date_to=today)
    _header, *rows = sheet_rows(download(client, job_id))
    assert [row[0] for row in rows] == ["EXP-0001"]


def test_questionnaire_results_have_one_column_per_result(client, signed_in, clinic, runner):
    signed_in("admin")
    header, *rows = sheet_rows(download(client, export(client, runner, kind="results", plan="")))
    assert list(header) == ["卡号", "问卷", "版本", "日期", "phq9_q1", "phq9_total"]
    assert len(rows) == 3
    assert {row[4] for row in rows} == {"'-1+1"}  # a label that looks like a formula stays text
    assert {row[5] for row in rows} == {12}


def test_staff_export_only_the_patients_of_their_care_teams(client, db, signed_in, clinic, runner):
    member = signed_in("health_manager")
    team = care_teams.create_team(db, "team", actor=TEST_ACTOR)
    care_teams.add_member(db, team, member.user, actor=TEST_ACTOR)
    care_teams.add_patient(db, team, clinic[1], actor=TEST_ACTOR)
    db.flush()
    _header, *rows = sheet_rows(download(client, export(client, runner, kind="patients")))
    assert [row[0] for row in rows] == ["EXP-0002"]


def test_an_export_is_only_its_makers(client, db, signed_in, make_staff, sign_in, clinic, runner, app):
    signed_in("admin")
    job_id = export(client, runner, kind="patients")
    other = app.test_client()
    sign_in(make_staff("admin"), on=other)
    assert other.get(f"/admin/exports/{job_id}").status_code == 404
    assert other.get(f"/admin/exports/{job_id}/file").status_code == 302
    assert db.get(ExportJob, job_id).file_name is not None


def test_a_file_not_downloaded_is_removed_after_an_hour(client, db, signed_in, clinic, runner, clock):
    signed_in("admin")
    job_id = export(client, runner, kind="patients")
    job = db.get(ExportJob, job_id)
    path = runner.folder / job.file_name
    assert path.exists()
    for _step in range(7):  # an hour and a bit, the session kept alive (it ends after 15 idle minutes)
        clock.advance(minutes=9)
        assert client.get("/admin/account").status_code == 200
    assert "已删除" in client.get("/admin/exports").get_data(as_text=True)
    assert not path.exists()
    assert client.get(f"/admin/exports/{job_id}/file").status_code == 302


def test_the_progress_page_refreshes_itself_while_the_export_is_made(client, db, signed_in, clinic, runner):
    member = signed_in("admin")
    # Half-way through (as a large export is, between two refreshes): the page counts and refreshes.
    job = ExportJob(id=uuid.uuid4(), kind="patients", lang="zh", filters={}, requested_by=member.user.id,
                    status="running", total=400, done=100, rows=100, created_at=db.info["clock"].now(),
                    updated_at=db.info["clock"].now())
    db.add(job)
    db.flush()
    page = client.get(f"/admin/exports/{job.id}").get_data(as_text=True)
    assert '<meta http-equiv="refresh" content="2">' in page
    assert '<progress id="export-progress" max="100" value="25">' in page
    assert "<script" not in page


@pytest.mark.parametrize(("fields", "message"), [
    ({"kind": "secrets"}, "请选择导出内容"),
    ({"kind": "patients", "date_from": "2026-13-01"}, "YYYY-MM-DD"),
    ({"kind": "followups", "date_from": "2026-11-02", "date_to": "2026-11-01"}, "the range ends before it starts"),
])
def test_bad_choices_are_refused_and_nothing_is_queued(client, db, signed_in, runner, fields, message):
    signed_in("admin")
    token = page_token(client, "/admin/exports")
    response = client.post("/admin/exports", data={"csrf_token": token, **fields})
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    runner.wait(timeout=10)
    assert db.scalars(select(ExportJob)).all() == []


def test_the_page_speaks_english(client, signed_in):
    signed_in("admin")
    client.post("/admin/language", data={"csrf_token": page_token(client, "/admin/exports"), "language": "en"})
    body = client.get("/admin/exports").get_data(as_text=True)
    assert "Questionnaire results" in body
    assert "Make the export" in body


def test_an_export_whose_thread_stopped_is_marked_failed(client, db, signed_in, clock):
    member = signed_in("admin")
    job = ExportJob(id=uuid.uuid4(), kind="patients", lang="zh", filters={}, requested_by=member.user.id,
                    status="running", total=400, done=100, rows=100, created_at=clock.now(), updated_at=clock.now())
    db.add(job)
    db.flush()
    clock.advance(minutes=11)
    page = client.get(f"/admin/exports/{job.id}").get_data(as_text=True)
    assert 'data-status="failed"' in page
    assert "导出未能完成" in page
    assert '<meta http-equiv="refresh"' not in page


def test_the_worker_removes_the_files_nobody_downloaded(client, db, signed_in, clinic, runner, runtime, clock):
    from careloop.worker import worker_for

    signed_in("admin")
    job = db.get(ExportJob, export(client, runner, kind="patients"))
    path = runner.folder / job.file_name
    purge = next(item for item in worker_for(runtime).jobs if item.name == "purge_exports")
    assert purge.run_batch(db) == 0
    assert path.exists()
    clock.advance(minutes=61)
    assert purge.run_batch(db) == 1
    assert not path.exists()
    assert job.status == "removed"
