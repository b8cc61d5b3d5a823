"""Advice rules (clinical-spec.md section 9): lines, sources, conflicts, clinician edits."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from care.clinical.advice import (
    AdviceFacts,
    LifestyleAnswers,
    activity_flag,
    advice_rules,
    advise,
    known_categories,
    load_advice_rules,
)
from care.clinical.common import Label, RuleDataError
from care.clinical.risk import MODEL_ORDER, evaluate
from care.clinical.risk.base import RiskResult


def facts(categories: dict[str, str] | None = None, flags: set[str] | None = None) -> AdviceFacts:
    return AdviceFacts(categories=categories or {}, flags=frozenset(flags or set()))


def ids(result_facts: AdviceFacts, **kwargs: object) -> list[str]:
    return [line.id for line in advise(result_facts, **kwargs).lines]  # type: ignore[arg-type]


# --- spec 9.2 rule-engine anchors ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("moderate", "vigorous", "flag"),
    [
        (149, 0, "insufficient_activity"),
        (150, 0, "meets_minimum"),
        (300, 0, "meets_minimum"),
        (301, 0, "exceeds"),
        (100, 24, "insufficient_activity"),  # 148 moderate-equivalent
        (100, 25, "meets_minimum"),  # moderate + 2 x vigorous = 150
        (0, 75, "meets_minimum"),
        (0, 150, "meets_minimum"),
        (0, 151, "exceeds"),
        (0, 0, "insufficient_activity"),
    ],
)
def test_activity_flags(moderate: float, vigorous: float, flag: str) -> None:
    assert activity_flag(moderate, vigorous) == flag


@pytest.mark.parametrize(
    ("answers", "flag", "raised"),
    [
        (LifestyleAnswers(salt_g_per_day=5), "salt_high", True),
        (LifestyleAnswers(salt_g_per_day=4.9), "salt_high", False),
        (LifestyleAnswers(oil_g_per_day=30), "oil_high", False),
        (LifestyleAnswers(oil_g_per_day=30.5), "oil_high", True),
        (LifestyleAnswers(alcohol_g_per_day=15), "alcohol_above_limit", False),
        (LifestyleAnswers(alcohol_g_per_day=16), "alcohol_above_limit", True),
        (LifestyleAnswers(alcohol_g_per_day=0), "drinks_alcohol", False),
        (LifestyleAnswers(alcohol_g_per_day=5), "drinks_alcohol", True),
        (LifestyleAnswers(age=64), "older_adult", False),
        (LifestyleAnswers(age=65), "older_adult", True),
        (LifestyleAnswers(smoker=True), "smoker", True),
        (LifestyleAnswers(smoker=False), "smoker", False),
        (LifestyleAnswers(moderate_minutes_per_week=60), "insufficient_activity", True),
        (LifestyleAnswers(), "insufficient_activity", False),  # not answered: no flag
    ],
)
def test_lifestyle_flags(answers: LifestyleAnswers, flag: str, raised: bool) -> None:
    assert (flag in advice_rules().lifestyle_flags(answers)) is raised


# --- lines for categories --------------------------------------------------------------------------


def test_high_bp_gives_the_salt_line() -> None:
    advice = advise(AdviceFacts.from_results([evaluate("bp", {"sbp": 145, "dbp": 85})]))
    salt = next(line for line in advice.lines if line.id == "diet.salt_under_5g")
    assert "5克" in salt.text.zh
    assert "5 g" in salt.text.en
    assert "中国居民膳食指南(2022)" in salt.source
    assert advice.version == "ADVICE-2024.1"


def test_normal_bp_gives_no_salt_line_unless_salt_is_high() -> None:
    normal = AdviceFacts.from_results([evaluate("bp", {"sbp": 115, "dbp": 75})])
    assert "diet.salt_under_5g" not in ids(normal)
    salty = AdviceFacts.from_results([evaluate("bp", {"sbp": 115, "dbp": 75})], LifestyleAnswers(salt_g_per_day=9))
    assert "diet.salt_under_5g" in ids(salty)


def test_activity_line_names_150_minutes() -> None:
    advice = advise(AdviceFacts.from_results([], LifestyleAnswers(moderate_minutes_per_week=60)))
    line = next(line for line in advice.lines if line.id == "activity.start_150")
    assert "150" in line.text.zh
    assert "WHO 2020" in line.source


@pytest.mark.parametrize(
    ("items", "expected", "absent"),
    [
        ([1, 1, 1, 1, 1, 1, 1, 1, 1], "mental.depression_self_care", "mental.depression_assessment"),  # 9 mild
        ([2, 1, 1, 1, 1, 1, 1, 1, 1], "mental.depression_assessment", "mental.depression_self_care"),  # 10
        ([0, 0, 0, 0, 0, 0, 0, 1, 3], "safety.crisis_line", "mental.depression_assessment"),  # 4 + item 9
    ],
)
def test_phq9_lines(items: list[int], expected: str, absent: str) -> None:
    given_ids = ids(AdviceFacts.from_results([evaluate("phq9", {"items": items})]))
    assert expected in given_ids
    assert absent not in given_ids


def test_crisis_line_comes_first_even_when_items_are_missing() -> None:
    result = evaluate("phq9", {"items": [None, None, None, None, None, None, None, None, 2]})
    advice = advise(AdviceFacts.from_results([result, evaluate("bp", {"sbp": 150, "dbp": 95})]))
    assert advice.lines[0].id == "safety.crisis_line"
    assert "12356" in advice.lines[0].text.zh
    assert advice.lines[0].locked


# --- conflicts -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scenario", "winner", "loser"),
    [
        (facts({"bp": "grade3"}, {"insufficient_activity"}), "activity.after_bp_control", "activity.start_150"),
        (facts({"bp": "grade3"}, {"exceeds"}), "activity.after_bp_control", "activity.well_done"),
        (facts({"bp": "grade1"}, {"drinks_alcohol", "alcohol_above_limit"}), "alcohol.avoid", "alcohol.limit_15g"),
        (facts({"fpg": "diabetes_range", "cdrs": "high"}), "follow_up.glucose_confirm", "follow_up.ogtt"),
        (facts({"bp": "grade3"}), "follow_up.bp_urgent", "follow_up.bp_confirm"),
        (facts(flags={"pancreatitis_risk", "lipid_high_risk_condition"}), "follow_up.triglycerides_urgent",
         "follow_up.lipids_doctor"),
        (facts({"phq9": "severe"}), "mental.depression_assessment", "mental.depression_self_care"),
    ],
)  # fmt: skip
def test_conflicting_lines_are_never_given_together(scenario: AdviceFacts, winner: str, loser: str) -> None:
    given_ids = ids(scenario)
    assert winner in given_ids
    assert loser not in given_ids


def test_alcohol_limit_when_no_chronic_condition() -> None:
    given_ids = ids(facts({"bp": "normal"}, {"drinks_alcohol", "alcohol_above_limit"}))
    assert "alcohol.limit_15g" in given_ids
    assert "alcohol.avoid" not in given_ids


FLAG_NAMES = sorted(advice_rules().known_flags)
CATEGORY_CHOICES = {model: sorted(known_categories(model)) for model in MODEL_ORDER}


@st.composite
def any_facts(draw: st.DrawFn) -> AdviceFacts:
    categories = {
        model: draw(st.sampled_from(keys)) for model, keys in CATEGORY_CHOICES.items() if draw(st.booleans())
    }
    return AdviceFacts(categories=categories, flags=frozenset(draw(st.sets(st.sampled_from(FLAG_NAMES)))))


@settings(max_examples=300, deadline=None)  # no deadline: shared CI machines
@given(any_facts())
def test_never_two_lines_of_one_conflict_group(scenario: AdviceFacts) -> None:
    advice = advise(scenario)
    groups = [line.group for line in advice.lines]
    assert len(groups) == len(set(groups))
    assert advise(scenario) == advice  # deterministic
    topics = advice_rules().topics
    positions = [topics.index(line.topic) for line in advice.lines]
    assert positions == sorted(positions)


# --- every rule is tested --------------------------------------------------------------------------

TRIGGERS: dict[str, AdviceFacts] = {
    "safety.crisis_line": facts(flags={"suicide_risk"}),
    "follow_up.bp_confirm": facts({"bp": "grade1"}),
    "follow_up.bp_urgent": facts({"bp": "grade3"}),
    "follow_up.ogtt": facts({"cdrs": "high"}),
    "follow_up.glucose_confirm": facts(flags={"hba1c_diabetes_range"}),
    "follow_up.triglycerides_urgent": facts(flags={"pancreatitis_risk"}),
    "follow_up.lipids_doctor": facts({"china-par": "high"}),
    "follow_up.kidney": facts({"egfr": "G3a"}),
    "diet.salt_under_5g": facts(flags={"salt_high"}),
    "diet.oil_25_30g": facts(flags={"oil_high"}),
    "diet.sugar_limit": facts({"findrisc": "moderate"}),
    "diet.vegetables_fruit": facts({"lipids": "borderline"}),
    "diet.low_purine": facts({"uric-acid": "hyperuricaemia"}),
    "activity.start_150": facts(flags={"insufficient_activity"}),
    "activity.keep_going": facts(flags={"meets_minimum"}),
    "activity.well_done": facts(flags={"exceeds"}),
    "activity.after_bp_control": facts({"bp": "grade3"}),
    "activity.strength_2_days": facts(flags={"meets_minimum"}),
    "activity.balance_65": facts(flags={"older_adult"}),
    "activity.sit_less": facts(flags={"insufficient_activity"}),
    "weight.reduce": facts({"waist": "central_obesity"}),
    "weight.gain": facts({"bmi": "underweight"}),
    "smoking.quit": facts(flags={"smoker"}),
    "alcohol.avoid": facts({"egfr": "G4"}, {"drinks_alcohol"}),
    "alcohol.limit_15g": facts(flags={"alcohol_above_limit"}),
    "mental.depression_assessment": facts({"phq9": "moderately_severe"}),
    "mental.depression_self_care": facts({"phq9": "mild"}),
    "mental.anxiety_assessment": facts({"gad7": "moderate"}),
    "mental.anxiety_self_care": facts({"gad7": "mild"}),
}


def test_every_rule_has_a_trigger_here() -> None:
    assert {rule.id for rule in advice_rules().rules} == set(TRIGGERS)


@pytest.mark.parametrize("rule_id", sorted(TRIGGERS))
def test_rule_fires(rule_id: str) -> None:
    assert rule_id in ids(TRIGGERS[rule_id])


def test_no_facts_no_advice() -> None:
    assert advise(facts()).lines == ()


def test_every_rule_has_text_in_both_languages_and_a_source() -> None:
    for rule in advice_rules().rules:
        assert rule.text.zh.strip()
        assert rule.text.en.strip()
        assert rule.source.strip()
        assert "clinical-spec" not in rule.source  # patient-facing source names the guideline


# --- clinician edits -------------------------------------------------------------------------------


def test_suppress_and_override_by_id() -> None:
    scenario = facts({"bp": "grade1"}, {"smoker", "insufficient_activity"})
    edited = Label("请先和张医生约好复查时间。", "Please book a recheck with Dr Zhang first.")
    advice = advise(scenario, suppressed={"smoking.quit"}, overrides={"follow_up.bp_confirm": edited})
    given = {line.id: line for line in advice.lines}
    assert "smoking.quit" not in given
    assert advice.suppressed == ("smoking.quit",)
    assert given["follow_up.bp_confirm"].text == edited
    assert given["follow_up.bp_confirm"].edited
    assert not given["activity.start_150"].edited


def test_suppressing_a_winner_does_not_bring_in_its_alternative() -> None:
    scenario = facts({"bp": "grade3"}, {"insufficient_activity"})
    given_ids = ids(scenario, suppressed={"activity.after_bp_control"})
    assert "activity.after_bp_control" not in given_ids
    assert "activity.start_150" not in given_ids


def test_locked_crisis_line_cannot_be_suppressed_or_edited() -> None:
    advice = advise(
        facts(flags={"suicide_risk"}),
        suppressed={"safety.crisis_line"},
        overrides={"safety.crisis_line": Label("改掉", "changed")},
    )
    assert [line.id for line in advice.lines] == ["safety.crisis_line"]
    assert "12356" in advice.lines[0].text.zh
    assert advice.refused == ("safety.crisis_line",)


def test_unknown_ids_are_reported_not_fatal() -> None:
    advice = advise(facts({"bp": "grade1"}), suppressed={"diet.retired_rule"}, overrides={"x.y": Label("a", "b")})
    assert advice.unknown_ids == ("diet.retired_rule", "x.y")


def test_incomplete_results_give_no_category() -> None:
    incomplete = evaluate("china-par", {"sex": "male"})
    assert isinstance(incomplete, RiskResult)
    assert AdviceFacts.from_results([incomplete]).categories == {}


# --- the rule file is checked on load ----------------------------------------------------------------

MINIMAL = """
version: T-1
lifestyle:
  activity:
    source: test
    vigorous_weight: 2
    bands:
      - {flag: insufficient_activity, below: 150}
      - {flag: meets_minimum, from: 150, to: 300}
      - {flag: exceeds, above: 300}
  thresholds: []
facts: [insufficient_activity, meets_minimum, exceeds, smoker]
topics: [diet]
rules:
  - id: diet.one
    topic: diet
    group: g
    priority: 1
    when: {category: {bp: [grade1]}}
    source: test
    text: {zh: 一, en: one}
"""


def test_minimal_rules_load() -> None:
    rules = load_advice_rules(MINIMAL)
    assert [rule.id for rule in rules.rules] == ["diet.one"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("[grade1]", "[grade9]"), r"bp has no categories \['grade9'\]"),
        (("{bp:", "{bpx:"), "unknown model 'bpx'"),
        (("{category: {bp: [grade1]}}", "{flag: salty}"), "unknown flag 'salty'"),
        (("{category: {bp: [grade1]}}", "{maybe: x}"), "unknown condition 'maybe'"),
        (("source: test\n    text", "text"), "a guideline 'source' is required"),
        (("{zh: 一, en: one}", "{zh: 一}"), "both 'zh' and 'en'"),
        (("topic: diet\n    group", "topic: sport\n    group"), "topic 'sport' is not one of"),
        (("priority: 1", "priority: high"), "'priority' must be a whole number"),
        (("    group: g\n", ""), "a conflict 'group' is required"),
        (("facts: [insufficient_activity, ", "facts: ["), "not declared under 'facts'"),
        (("    text: {zh: 一, en: one}\n", "    text: {zh: 一, en: one}\n    colour: red\n"), "unknown keys"),
    ],
)
def test_bad_rule_files_are_refused(change: tuple[str, str], message: str) -> None:
    broken = MINIMAL.replace(*change, 1)
    assert broken != MINIMAL
    with pytest.raises(RuleDataError, match=message):
        load_advice_rules(broken)


def test_duplicate_ids_are_refused() -> None:
    rule = MINIMAL[MINIMAL.index("  - id: diet.one") :]
    with pytest.raises(RuleDataError, match=r"duplicate ids \['diet.one'\]"):
        load_advice_rules(MINIMAL + rule)
