"""The patients list: search by whole name, card or phone (blind indexes), tag and plan filters, pages in SQL.

A nurse sees her care teams' patients only; the search text is posted, never put in a URL.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from care import care_teams, directory
from care.care_teams import EVERY_PATIENT
from care.models import AuditEntry, EnrolmentStatus, Plan, PlanEnrolment
from care.tags import add_tag
from tests.admin.conftest import page_token
from tests.conftest import TEST_ACTOR

ROW = re.compile(r'<tr data-patient="([0-9a-f-]+)"')


@pytest.fixture
def team_of(db):
    def put(member, *patients):
        team = care_teams.create_team(db, f"team {member.email}", actor=TEST_ACTOR)
        care_teams.add_member(db, team, member.user, actor=TEST_ACTOR)
        for patient in patients:
            care_teams.add_patient(db, team, patient, actor=TEST_ACTOR)
        db.flush()

    return put


def search(client, **fields):
    token = page_token(client, "/admin/patients")
    return client.post("/admin/patients", data={"csrf_token": token, **fields})


def shown(response) -> list[str]:
    return ROW.findall(response.get_data(as_text=True))


def test_a_whole_name_finds_the_patient_however_it_is_spaced(client, signed_in, make_patient, team_of):
    member = signed_in("nurse")
    wang, li, smith = make_patient(name="王秀英"), make_patient(name="李建华"), make_patient(name="John Smith")
    team_of(member, wang, li, smith)
    assert shown(search(client, q="王秀英")) == [str(wang.id)]
    assert shown(search(client, q=" 王 秀英 ")) == [str(wang.id)]
    assert shown(search(client, q="john  SMITH")) == [str(smith.id)]
    # A part of a name finds no one: there is no name in clear to search through.
    answer = search(client, q="王")
    assert shown(answer) == []
    assert "姓名需要输入全名" in answer.get_data(as_text=True)


def test_a_card_number_or_phone_number_finds_the_patient(client, signed_in, make_patient, team_of):
    member = signed_in("nurse")
    first = make_patient(card_no="VIP-0007", phone="13811112222")
    second = make_patient(phone="13933334444")
    team_of(member, first, second)
    assert shown(search(client, q="vip-0007")) == [str(first.id)]
    assert shown(search(client, q="139 3333 4444")) == [str(second.id)]
    assert shown(search(client, q="+8613811112222")) == [str(first.id)]
    page = search(client, q="13811112222").get_data(as_text=True)
    assert "*******2222" in page
    assert "13811112222" not in page.replace('value="13811112222"', "")


def test_a_search_never_reaches_outside_the_care_teams(client, signed_in, make_patient, team_of):
    member = signed_in("nurse")
    mine, other = make_patient(name="本队患者"), make_patient(name="别队患者", phone="13755556666")
    team_of(member, mine)
    assert shown(search(client, q="别队患者")) == []
    assert shown(search(client, q="13755556666")) == []
    assert shown(client.get("/admin/patients")) == [str(mine.id)]
    assert other.name not in client.get("/admin/patients").get_data(as_text=True)


def test_a_search_text_in_the_url_is_ignored(client, signed_in, make_patient, team_of):
    member = signed_in("nurse")
    a, b = make_patient(name="甲"), make_patient(name="乙")
    team_of(member, a, b)
    assert set(shown(client.get("/admin/patients", query_string={"q": "甲"}))) == {str(a.id), str(b.id)}


def test_a_search_without_its_csrf_token_is_refused(client, signed_in):
    signed_in("nurse")
    assert client.post("/admin/patients", data={"q": "王秀英"}).status_code == 400


def test_the_tag_filter_and_the_plan_filter(client, signed_in, make_patient, team_of, db, clock):
    member = signed_in("doctor")
    tagged, planned, both, neither = (make_patient() for _ in range(4))
    team_of(member, tagged, planned, both, neither)
    for patient in (tagged, both):
        add_tag(db, patient, "hypertension", source="flow:intake", actor=TEST_ACTOR)
    db.add(Plan(key="htn", title_zh="高血压随访", title_en="Hypertension follow-up", version=1,
                created_at=clock.now(), updated_at=clock.now()))
    for patient in (planned, both):
        db.add(PlanEnrolment(patient_id=patient.id, plan_key="htn", plan_version=1,
                             status=EnrolmentStatus.ACTIVE.value, source="manual", enrolled_at=clock.now()))
    db.flush()
    assert set(shown(client.get("/admin/patients?tag=hypertension"))) == {str(tagged.id), str(both.id)}
    assert set(shown(client.get("/admin/patients?plan=htn"))) == {str(planned.id), str(both.id)}
    assert shown(client.get("/admin/patients?tag=Hypertension&plan=htn")) == [str(both.id)]
    assert shown(search(client, q=both.card_no, tag="hypertension")) == [str(both.id)]
    assert shown(search(client, q=tagged.card_no, plan="htn")) == []
    page = client.get("/admin/patients").get_data(as_text=True)
    assert '<option value="htn"' in page
    assert "高血压随访" in page


def test_a_bad_tag_is_a_clear_error_not_a_failure(client, signed_in):
    signed_in("nurse")
    response = client.get("/admin/patients", query_string={"tag": "x" * 65})
    assert response.status_code == 200
    assert "patients-empty" in response.get_data(as_text=True)


def test_pages_are_cut_in_sql_and_a_search_pages_by_post(client, signed_in, make_patient, team_of, db, statements,
                                                         clock):
    member = signed_in("nurse")
    patients = []
    for _ in range(7):
        patients.append(make_patient())
        clock.advance(minutes=1)
    team_of(member, *patients)
    statements.clear()
    listing = directory.list_patients(db, scope=care_teams.scope_of(member.user), actor=TEST_ACTOR, page=2,
                                      per_page=3)
    assert [row.id for row in listing.rows] == [p.id for p in reversed(patients)][3:6]
    assert (listing.total, listing.pages, listing.page) == (7, 3, 2)
    page_query = next(sql for sql in statements if "LIMIT" in sql.upper() and "FROM patients" in sql)
    assert "OFFSET" in page_query.upper()
    # Out of range: the last page.
    assert directory.list_patients(db, scope=EVERY_PATIENT, actor=TEST_ACTOR, page=99, per_page=3).page >= 3


def test_the_list_pages_through_the_panel(client, signed_in, make_patient, team_of, clock, monkeypatch):
    monkeypatch.setattr(directory, "PER_PAGE", 2)
    member = signed_in("nurse")
    patients = []
    for _ in range(3):
        patients.append(make_patient(name="同名"))
        clock.advance(minutes=1)
    team_of(member, *patients)
    first = client.get("/admin/patients").get_data(as_text=True)
    assert 'id="next-page"' in first
    assert shown(client.get("/admin/patients?page=2")) == [str(patients[0].id)]
    # A page of a search is posted again with its text, never linked.
    searched = search(client, q="同名").get_data(as_text=True)
    pager = searched.split('class="pages"')[1]
    assert 'method="post"' in pager
    assert 'name="q" value="同名"' in pager
    token = page_token(client, "/admin/patients")
    second = client.post("/admin/patients", data={"csrf_token": token, "q": "同名", "page": "2"})
    assert shown(second) == [str(patients[0].id)]


def test_each_patient_listed_is_audited_and_the_audit_holds_no_search_text(client, signed_in, make_patient, team_of,
                                                                          db):
    member = signed_in("nurse")
    patient = make_patient(name="审计患者")
    team_of(member, patient)
    search(client, q="审计患者")
    views = db.scalars(select(AuditEntry).where(AuditEntry.action == "patient.view")).all()
    # One for the page the search form came on, one for the search's answer.
    assert [entry.patient_id for entry in views] == [patient.id, patient.id]
    assert all("审计患者" not in entry.details for entry in views)


def test_the_front_desk_cannot_filter_by_tag_or_plan(client, signed_in, make_patient, team_of, db):
    member = signed_in("front_desk")
    tagged, other = make_patient(), make_patient()
    team_of(member, tagged, other)
    add_tag(db, tagged, "depression", source="flow:phq9", actor=TEST_ACTOR)
    db.flush()
    page = client.get("/admin/patients?tag=depression")
    # A tag says something of a patient's health: the filter is not offered, and not applied.
    assert 'id="tag"' not in page.get_data(as_text=True)
    assert set(shown(page)) == {str(tagged.id), str(other.id)}
    assert set(shown(search(client, q=tagged.card_no, tag="depression"))) == {str(tagged.id)}
