"""Intervention programs (健康干预方案): checked with each problem's line and field, stored per version, carried out by
the plan made from them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from care import interventions, plans
from care.errors import ConflictError
from care.interventions.content import ContentDataError, content_library, parse_library
from care.interventions.definition import from_dict, parse_program, plan_definition_of
from care.models import InterventionProgramVersion, PlanVersion
from tests.care.interventions.programs import FLOWS, program_text
from tests.conftest import TEST_ACTOR

CONTENT = content_library().ids()


def shown(text: str, source: str = "p.yaml") -> set[str]:
    with pytest.raises(interventions.ProgramInvalidError) as raised:
        parse_program(text, flow_ids=FLOWS, content_ids=CONTENT, source=source)
    return {problem.shown(source) for problem in raised.value.problems}


def test_every_builtin_program_is_valid_and_its_plan_is_a_valid_plan():
    found = {}
    for path in sorted(interventions.LIBRARY_DIR.glob("*.yaml")):
        definition = parse_program(path.read_text(encoding="utf-8"), flow_ids=FLOWS, content_ids=CONTENT,
                                   source=str(path))
        plan = plan_definition_of(definition)
        assert plan.id == f"iv_{definition.id}"
        assert len(plan.steps) == len(definition.check_ins) + len(definition.education)
        found[definition.id] = definition
    assert set(found) == {"hypertension_3m", "weight_3m"}
    assert found["hypertension_3m"].title_zh == "高血压3个月管理"
    assert found["hypertension_3m"].duration_days == 90
    assert found["hypertension_3m"].start_on_tag == "高血压"
    [sbp, _dbp] = found["hypertension_3m"].goals
    assert (sbp.indicator, sbp.comparator, sbp.target, sbp.within_days) == ("sbp", "<", 130.0, 90)
    assert found["weight_3m"].goals[0].change_percent == -5.0


def test_every_content_item_speaks_both_languages_and_names_its_source():
    library = content_library()
    assert {item.topic for item in library.items.values()} >= {"diet", "exercise", "sleep", "mood"}
    for item in library.items.values():
        assert item.text_zh
        assert item.text_en
        assert item.source
        assert not any("\u4e00" <= char <= "\u9fff" for char in item.text_en), item.id
        assert (item.text("en"), item.text("zh")) == (item.text_en, item.text_zh)


def test_a_broken_content_library_is_refused():
    with pytest.raises(ContentDataError, match="a guideline 'source' is required"):
        parse_library("version: x\nitems:\n  - {id: tip, topic: diet, text: {zh: 少盐, en: Less salt}}\n")
    with pytest.raises(ContentDataError, match="topic must be one of"):
        parse_library("version: x\nitems:\n  - {id: tip, topic: magic, source: s, text: {zh: 少盐, en: Less salt}}\n")


def test_a_bad_program_lists_each_problem_with_its_line_and_field():
    text = ("id: Bad-Id\n"                                            # 1
            "version: 0\n"                                            # 2
            "title: {zh: 管理}\n"                                      # 3
            "duration_days: 0\n"                                      # 4
            "goals:\n"                                                # 5
            "  - {id: g1, indicator: cholesterolish, target: {below: 5}}\n"   # 6
            "  - {id: g2, indicator: sbp, target: {under: 130}}\n"            # 7
            "  - {id: g3, indicator: weight, change_percent: 0}\n"            # 8
            "  - {id: g4, indicator: sbp, target: {below: 130}, change_percent: -5}\n"  # 9
            "check_ins:\n"                                            # 10
            "  - flow: no_such_flow\n"                                # 11
            "    every: {}\n"                                         # 12
            "    at: '25:00'\n"                                       # 13
            "education:\n"                                            # 14
            "  - {day: 400, message: no_such_tip}\n"                  # 15
            "education_channels: [voice]\n"                           # 16
            "colour: red\n")                                          # 17
    problems = shown(text)
    assert "p.yaml:1: id: is required: lower-case letters, digits and _, starting with a letter (at most 60)" \
        in problems
    assert "p.yaml:2: version: must be a whole number from 1 to 1000000" in problems
    assert any(line.startswith("p.yaml:3: title.en:") for line in problems)
    assert "p.yaml:4: duration_days: must be a whole number from 1 to 3650" in problems
    assert any(line.startswith("p.yaml:6: goals[0].indicator: must be an indicator of the catalogue")
               for line in problems)
    assert any(line.startswith("p.yaml:7: goals[1].target: must be one of below, at_most") for line in problems)
    assert "p.yaml:8: goals[2].change_percent: must be a change from -90 to 100 per cent, not 0" in problems
    assert "p.yaml:9: goals[3]: give a target or a change_percent (one of the two)" in problems
    assert "p.yaml:11: check_ins[0].flow: no flow 'no_such_flow' in the library (careloop flows list)" in problems
    assert any(line.startswith("p.yaml:12: check_ins[0].every: must be longer than nothing") for line in problems)
    assert any(line.startswith("p.yaml:13: check_ins[0].at: must be a local time HH:MM") for line in problems)
    assert any(line.startswith("p.yaml:15: education[0].day: must be a whole number from 0 to") for line in problems)
    assert any(line.startswith("p.yaml:15: education[0].message: no message 'no_such_tip' in the content library")
               for line in problems)
    assert any(line.startswith("p.yaml:16: education_channels: must list text channels") for line in problems)
    assert any(line.startswith("p.yaml:17: colour: unknown field") for line in problems)


def test_a_program_needs_something_to_send_and_broken_yaml_names_its_line():
    assert "p.yaml:1: check_ins: a program needs check-ins or education messages (or both)" in shown(
        "id: empty\nversion: 1\ntitle: {zh: 空, en: Empty}\nduration_days: 30\n"
        "goals: [{id: g, indicator: sbp, target: {below: 130}}]\n")
    assert any(line.startswith("p.yaml:3: yaml: not valid YAML") for line in shown("id: x\ngoals: [\n"))


def test_a_stored_definition_reads_back_the_same():
    definition = parse_program(program_text(tag="高血压"), flow_ids=FLOWS, content_ids=CONTENT)
    assert from_dict(definition.as_dict()) == definition


def test_adding_a_program_publishes_its_plan_and_a_new_version_moves_both(db, make_patient, clock):
    published = interventions.add_program(db, program_text(), flow_ids=FLOWS, actor=TEST_ACTOR)
    assert (published.change, published.program.key, published.program.duration_days) == ("added", "bp_care", 90)
    plan, plan_definition = plans.get_plan(db, "iv_bp_care")
    assert (plan.version, len(plan_definition.steps)) == (1, 4)
    assert [step.message for step in plan_definition.steps] == [None, "diet_salt", "exercise_walking",
                                                                "sleep_routine"]
    again = interventions.add_program(db, program_text(), flow_ids=FLOWS, actor=TEST_ACTOR)
    assert again.change == "unchanged"
    with pytest.raises(ConflictError, match="is at version 1"):
        interventions.add_program(db, program_text(days=75), flow_ids=FLOWS, actor=TEST_ACTOR)
    patient = make_patient()
    enrolment = interventions.start(db, patient, "bp_care", actor=TEST_ACTOR)
    newer = interventions.add_program(db, program_text(version=2, days=75), flow_ids=FLOWS, actor=TEST_ACTOR)
    assert (newer.change, newer.moved) == ("new version", 4)  # the patient's four rows, re-timed in place
    assert (enrolment.program_version, enrolment.ends_at) == (2, clock.now() + timedelta(days=75))
    assert plans.get_plan(db, "iv_bp_care")[0].version == 2
    assert interventions.get_program(db, "bp_care", 1)[1].duration_days == 90
    assert interventions.get_program(db, "bp_care")[1].duration_days == 75
    versions = db.scalars(select(InterventionProgramVersion.version).order_by(InterventionProgramVersion.version))
    assert list(versions) == [1, 2]
    assert db.scalars(select(PlanVersion.source_text).where(PlanVersion.version == 2)).one().startswith(
        "# Made from the intervention program 'bp_care' v2")
