"""The tag rules page: list, preview "would tag N patients" without writing, save a new version and its run."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from care.models import AuditEntry, TagRule, TagRuleRun, TagRuleVersion
from care.observations import record_observation
from care.tags import add_tag
from tests.admin.conftest import page_token
from tests.conftest import TEST_ACTOR

RULE_LINK = re.compile(r'href="/admin/tag-rules/([0-9a-f-]{36})"')


def _post(client, path, **fields):
    token = page_token(client, path)
    return client.post(path, data={"csrf_token": token, **fields})


def _patients_with_sbp(db, make_patient, clock, *values):
    patients = []
    for value in values:
        patient = make_patient()
        record_observation(db, patient, code="sbp", value=value, unit="mmHg", effective_at=clock.now(),
                           source="report:csv", actor=TEST_ACTOR)
        patients.append(patient)
    db.flush()
    return patients


def _count(db, model):
    return db.scalar(select(func.count()).select_from(model))


def test_preview_counts_the_patients_the_rule_would_tag_and_saves_nothing(client, db, signed_in, make_patient,
                                                                          clock):
    signed_in("health_manager")
    _patients_with_sbp(db, make_patient, clock, 150, 160, 120)
    audit_before = _count(db, AuditEntry)
    page = _post(client, "/admin/tag-rules/new", name="高血压风险", tag="高血压",
                 expression="latest.sbp >= 140", enabled="y", preview="y")
    body = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "将为 2 位患者设置标签" in body
    assert 'value="高血压风险"' in body  # the form keeps what was written
    assert _count(db, TagRule) == 0
    assert _count(db, TagRuleRun) == 0
    assert _count(db, AuditEntry) == audit_before


def test_saving_a_new_rule_makes_version_one_and_starts_its_run(client, db, signed_in, make_patient, clock):
    signed_in("health_manager")
    _patients_with_sbp(db, make_patient, clock, 150, 120)
    response = _post(client, "/admin/tag-rules/new", name="高血压风险", tag="高血压",
                     expression="latest.sbp >= 140", enabled="y", save="y")
    assert response.status_code == 302
    rule = db.scalars(select(TagRule)).one()
    assert (rule.name, rule.tag, rule.version, rule.enabled) == ("高血压风险", "高血压", 1, True)
    run = db.scalars(select(TagRuleRun)).one()
    assert (run.rule_id, run.rule_version, run.status, run.total) == (rule.id, 1, "running", 2)
    listing = client.get("/admin/tag-rules").get_data(as_text=True)
    assert "高血压风险" in listing
    assert "latest.sbp &gt;= 140" in listing
    assert RULE_LINK.search(listing).group(1) == str(rule.id)


def test_the_list_counts_the_patients_that_have_the_tag_now(client, db, signed_in, make_patient, clock):
    signed_in("admin")
    first, second = make_patient(), make_patient()
    add_tag(db, first, "高血压", source="flow:intake", actor=TEST_ACTOR)
    add_tag(db, second, "高血压", source="flow:intake", actor=TEST_ACTOR)
    db.flush()
    _post(client, "/admin/tag-rules/new", name="高血压风险", tag="高血压", expression="latest.sbp >= 140",
          enabled="y", save="y")
    listing = client.get("/admin/tag-rules").get_data(as_text=True)
    assert re.search(r'<td class="count">2</td>', listing)


def test_editing_previews_then_saves_a_new_version(client, db, signed_in, make_patient, clock):
    signed_in("clinic_lead")
    _patients_with_sbp(db, make_patient, clock, 135, 150, 120)
    _post(client, "/admin/tag-rules/new", name="高血压风险", tag="高血压", expression="latest.sbp >= 140",
          enabled="y", save="y")
    rule = db.scalars(select(TagRule)).one()
    path = f"/admin/tag-rules/{rule.id}"
    form = client.get(path).get_data(as_text=True)
    assert "latest.sbp &gt;= 140" in form
    preview = _post(client, path, expression="latest.sbp >= 130", enabled="y", preview="y")
    assert "将为 2 位患者设置标签" in preview.get_data(as_text=True)
    db.refresh(rule)
    assert rule.version == 1
    saved = _post(client, path, expression="latest.sbp >= 130", enabled="y", save="y")
    assert saved.status_code == 302
    db.refresh(rule)
    assert (rule.version, rule.expression) == (2, "latest.sbp >= 130")
    assert _count(db, TagRuleVersion) == 2
    runs = db.scalars(select(TagRuleRun).order_by(TagRuleRun.rule_version)).all()
    assert [(run.rule_version, run.status) for run in runs] == [(1, "superseded"), (2, "running")]
    assert db.scalars(select(AuditEntry).where(AuditEntry.action == "tag_rule.update")).one()


def test_an_invalid_expression_is_shown_at_the_field_and_nothing_is_saved(client, db, signed_in):
    signed_in("health_manager")
    for expression in ("latest.nonsense >= 1", "__import__('os')", "latest.sbp >="):
        response = _post(client, "/admin/tag-rules/new", name="坏规则", tag="坏", expression=expression,
                         enabled="y", save="y")
        body = response.get_data(as_text=True)
        assert response.status_code == 400, expression
        assert 'id="expression-error"' in body, expression
        assert "未被接受" in body
    assert _count(db, TagRule) == 0
    assert _count(db, TagRuleRun) == 0


def test_a_new_rule_needs_a_name_and_a_tag_and_a_free_name(client, db, signed_in):
    signed_in("health_manager")
    empty = _post(client, "/admin/tag-rules/new", name=" ", tag="", expression="latest.sbp >= 140", save="y")
    assert empty.status_code == 400
    assert empty.get_data(as_text=True).count("此项必填。") == 2
    _post(client, "/admin/tag-rules/new", name="高血压风险", tag="高血压", expression="latest.sbp >= 140", save="y")
    again = _post(client, "/admin/tag-rules/new", name="高血压风险", tag="别的", expression="latest.sbp >= 150",
                  save="y")
    assert again.status_code == 400
    assert "已有同名规则" in again.get_data(as_text=True)
    assert _count(db, TagRule) == 1


def test_an_unchanged_rule_saves_no_new_version(client, db, signed_in):
    signed_in("health_manager")
    _post(client, "/admin/tag-rules/new", name="高血压风险", tag="高血压", expression="latest.sbp >= 140",
          enabled="y", save="y")
    rule = db.scalars(select(TagRule)).one()
    response = _post(client, f"/admin/tag-rules/{rule.id}", expression="latest.sbp >= 140", enabled="y", save="y")
    assert response.status_code == 302
    db.refresh(rule)
    assert rule.version == 1
    assert _count(db, TagRuleRun) == 1


def test_the_page_speaks_english_too(client, db, signed_in, make_patient, clock):
    signed_in("health_manager")
    client.post("/admin/language", data={"csrf_token": page_token(client, "/admin/tag-rules"), "language": "en"})
    _patients_with_sbp(db, make_patient, clock, 150)
    body = _post(client, "/admin/tag-rules/new", name="r", tag="t", expression="latest.sbp >= 140",
                 enabled="y", preview="y").get_data(as_text=True)
    assert "Would tag 1 patients" in body
    assert "Tag rules" in client.get("/admin/tag-rules").get_data(as_text=True)


def test_an_unknown_rule_is_not_found(client, signed_in):
    signed_in("health_manager")
    assert client.get("/admin/tag-rules/00000000-0000-0000-0000-000000000001").status_code == 404
