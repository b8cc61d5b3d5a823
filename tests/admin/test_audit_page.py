"""The auditor's page: the trail filtered by user, patient, action and days, paged in SQL, and the chain's status."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from sqlalchemy import select

from care.models import AuditEntry
from security import audit
from security.audit import Actor, log
from security.session import audit_keys_of
from tests.admin.conftest import page_token

ROW = re.compile(r'<tr class="audit-entry">')


def filtered(client, **fields):
    token = page_token(client, "/admin/audit")
    return client.post("/admin/audit", data={"csrf_token": token, **fields})


@pytest.fixture
def trail(db, make_patient, make_staff, clock):
    """A nurse who opened one patient three times, and a doctor who opened another once."""
    nurse, doctor = make_staff("nurse"), make_staff("doctor")
    watched, other = make_patient(name="被查看的患者", card_no="AUD-0001"), make_patient(card_no="AUD-0002")
    for _ in range(3):
        log(db, actor=Actor("user", str(nurse.user.id), "127.0.0.1"), action="patient.read",
            resource_type="patient", resource_id=watched.id, patient_id=watched.id)
    log(db, actor=Actor("user", str(doctor.user.id), "127.0.0.1"), action="record.read", resource_type="patient",
        resource_id=other.id, patient_id=other.id)
    db.flush()
    return nurse, doctor, watched, other


def test_the_auditor_filters_by_user_patient_and_action(client, signed_in, trail):
    signed_in("auditor")
    nurse, doctor, watched, other = trail
    by_user = filtered(client, user_email=nurse.email, action="patient.read").get_data(as_text=True)
    assert len(ROW.findall(by_user)) == 3
    assert nurse.email in by_user
    by_patient = filtered(client, patient_ref="aud-0002", action="record.read").get_data(as_text=True)
    assert len(ROW.findall(by_patient)) == 1
    assert str(other.id) in by_patient
    assert "record.read" in by_patient
    by_prefix = filtered(client, action="record.", user_email=doctor.email).get_data(as_text=True)
    assert len(ROW.findall(by_prefix)) == 1


def test_no_clinical_data_and_no_name_is_shown(client, signed_in, trail):
    signed_in("auditor")
    page = filtered(client, patient_ref="AUD-0001").get_data(as_text=True)
    assert "被查看的患者" not in page
    assert "AUD-0001" not in page.replace('value="AUD-0001"', "")


def test_details_that_would_tell_of_a_patients_health_are_left_out(client, db, signed_in, make_patient):
    signed_in("auditor")
    patient = make_patient(card_no="AUD-0003")
    log(db, actor=Actor("system", "bot", "worker"), action="task.create", resource_type="staff_task",
        resource_id=uuid.uuid4(), patient_id=patient.id, details={"kind": "reading_red_flag", "source": "flow"})
    log(db, actor=Actor("system", "test", "test"), action="tag_rule.create", resource_type="tag_rule",
        details={"name": "规则", "version": 1})
    db.flush()
    task = filtered(client, action="task.create").get_data(as_text=True)
    assert "reading_red_flag" not in task
    assert "&#34;source&#34;: &#34;flow&#34;" in task
    rule = filtered(client, action="tag_rule.create").get_data(as_text=True)
    assert "&#34;version&#34;: 1" in rule  # an entry about no patient keeps its details


def test_the_days_narrow_the_trail(client, signed_in, trail, clock):
    signed_in("auditor")
    today = clock.now().date()
    assert len(ROW.findall(filtered(client, action="patient.read", date_from=today.isoformat(),
                                    date_to=today.isoformat()).get_data(as_text=True))) == 3
    assert ROW.findall(filtered(client, action="patient.read", date_from="2030-01-01").get_data(as_text=True)) == []


def test_the_trail_is_paged_in_sql(client, db, signed_in, clock, statements):
    member = signed_in("auditor")
    for number in range(120):
        log(db, actor=Actor("system", "test", "test"), action="page.test", resource_type="thing",
            resource_id=str(number))
    db.flush()
    statements.clear()
    first = filtered(client, action="page.test").get_data(as_text=True)
    assert len(ROW.findall(first)) == 50
    assert "第1页，共3页" in first
    assert any("LIMIT" in statement.upper() and "FROM audit_log" in statement for statement in statements)
    third = filtered(client, action="page.test", page="3").get_data(as_text=True)
    assert len(ROW.findall(third)) == 20
    read = db.scalars(select(AuditEntry).where(AuditEntry.action == "audit.read",
                                               AuditEntry.actor_id == str(member.user.id))).all()
    assert {json.loads(entry.details)["page"] for entry in read} == {1, 3}


@pytest.mark.parametrize(("fields", "message"), [
    ({"user_email": "nobody@clinic.test"}, "没有工作人员账号使用此邮箱"),
    ({"patient_ref": "NO-SUCH"}, "没有患者使用此卡号或编号"),
    ({"date_from": "2026-11-02", "date_to": "2026-11-01"}, "结束日期早于开始日期"),
    ({"date_from": "yesterday"}, "YYYY-MM-DD"),
])
def test_bad_filters_are_shown_at_their_field(client, signed_in, fields, message):
    signed_in("auditor")
    response = filtered(client, **fields)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)


def test_verify_now_checks_the_chain_and_shows_the_last_verification(client, db, signed_in, trail, clock):
    signed_in("auditor")
    audit.seal(db, audit_keys_of(db), now=clock.now())
    db.commit()  # the seal's head goes to the anchor file once committed (the test's transaction still rolls back)
    page = client.get("/admin/audit").get_data(as_text=True)
    assert "尚未在管理后台校验过" in page
    assert "最后封存的记录" in page
    token = page_token(client, "/admin/audit")
    response = client.post("/admin/audit/verify", data={"csrf_token": token})
    assert response.status_code == 302
    page = client.get("/admin/audit").get_data(as_text=True)
    assert "审计记录完整" in page
    assert '<strong>完整</strong>' in page
    entry = db.scalars(select(AuditEntry).where(AuditEntry.action == "audit.verify")).one()
    assert json.loads(entry.details)["ok"] is True


def test_a_tampered_entry_is_reported_broken(client, db, signed_in, trail, clock):
    signed_in("auditor")
    audit.seal(db, audit_keys_of(db), now=clock.now())
    db.commit()
    entry = db.scalars(select(AuditEntry).where(AuditEntry.action == "record.read")).one()
    entry.action = "record.write"  # altered after sealing: its MAC no longer verifies
    db.flush()
    client.post("/admin/audit/verify", data={"csrf_token": page_token(client, "/admin/audit")})
    page = client.get("/admin/audit").get_data(as_text=True)
    assert "审计记录已被破坏" in page
    assert "已破坏" in page


def test_only_the_audit_permission_opens_the_trail(client, signed_in):
    signed_in("doctor")
    assert client.get("/admin/audit").status_code == 403
