"""FHIR R4 export: every flow as a Questionnaire, every session as a QuestionnaireResponse."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fhir.resources.R4B.questionnaire import Questionnaire
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

from flows.fhir import to_questionnaire, to_questionnaire_response
from flows.registry import FlowLibrary
from tests.flows.helpers import Conversation, fixture_flow


def _items(resource: Any) -> dict[str, dict[str, Any]]:
    data = json.loads(resource.model_dump_json())
    return {item["linkId"]: item for item in data.get("item", [])}


@pytest.mark.parametrize("flow_id", FlowLibrary.builtin().ids())
@pytest.mark.parametrize("lang", ["zh", "en"])
def test_every_library_flow_exports_as_a_valid_questionnaire(library: FlowLibrary, flow_id: str, lang: str) -> None:
    definition = library.get(flow_id)
    questionnaire = to_questionnaire(definition, lang=lang)
    data = json.loads(questionnaire.model_dump_json())
    assert Questionnaire.model_validate(data).url == f"urn:careloop:flow:{flow_id}"
    assert (data["status"], data["version"], data["title"]) == ("active", str(definition.version),
                                                                definition.title.plain(lang))
    link_ids = [item["linkId"] for item in data["item"]]
    assert set(link_ids) >= {question.id for question in definition.questions()}
    assert len(link_ids) == len(set(link_ids))


def test_phq9_questionnaire_carries_the_loinc_codes(library: FlowLibrary) -> None:
    questionnaire = to_questionnaire(library.get("phq9"))
    data = json.loads(questionnaire.model_dump_json())
    assert data["code"] == [{"system": "http://loinc.org", "code": "44249-1"}]
    items = _items(questionnaire)
    first = items["q1"]
    assert (first["type"], first["text"]) == ("choice", "(1/9) Little interest or pleasure in doing things")
    assert first["code"] == [{"system": "http://loinc.org", "code": "44250-9"}]
    assert [option["valueCoding"] for option in first["answerOption"]] == [
        {"system": "http://loinc.org", "code": "LA6568-5", "display": "Not at all"},
        {"system": "http://loinc.org", "code": "LA6569-3", "display": "Several days"},
        {"system": "http://loinc.org", "code": "LA6570-1", "display": "More than half the days"},
        {"system": "http://loinc.org", "code": "LA6571-9", "display": "Nearly every day"},
    ]
    total = items["total"]
    assert (total["type"], total["readOnly"], total["code"][0]["code"]) == ("integer", True, "44261-6")
    assert items["intro"]["type"] == "display"
    assert items["suicide_flag"]["type"] == "boolean"


def test_choices_without_a_loinc_answer_code_get_a_code_system_of_their_own(library: FlowLibrary) -> None:
    history = _items(to_questionnaire(library.get("intake")))["past_history"]
    assert history["answerOption"][0]["valueCoding"]["system"] == "urn:careloop:flow:intake:past_history"


def test_structured_and_number_items(library: FlowLibrary, mechanics: Any) -> None:
    bp = _items(to_questionnaire(library.get("hypertension_followup")))["bp"]
    assert bp["type"] == "group"
    assert [(part["linkId"], part["code"][0]["code"]) for part in bp["item"]] == [
        ("bp.sbp", "8480-6"), ("bp.dbp", "8462-4"), ("bp.pulse", "8867-4"),
    ]  # fmt: skip
    weight = _items(to_questionnaire(mechanics))["weight"]
    assert weight["type"] == "decimal"
    assert {extension["url"].rsplit("/", 1)[-1]: extension for extension in weight["extension"]} == {
        "minValue": {"url": "http://hl7.org/fhir/StructureDefinition/minValue", "valueDecimal": 20.0},
        "maxValue": {"url": "http://hl7.org/fhir/StructureDefinition/maxValue", "valueDecimal": 300.0},
        "questionnaire-unit": {
            "url": "http://hl7.org/fhir/StructureDefinition/questionnaire-unit",
            "valueCoding": {"system": "http://unitsofmeasure.org", "code": "kg"},
        },
    }
    fpg = _items(to_questionnaire(library.get("diabetes_followup")))["fpg"]
    assert (fpg["type"], fpg["code"][0]["code"]) == ("quantity", "14771-0")


def test_a_finished_phq9_session_exports_as_a_questionnaire_response(library: FlowLibrary) -> None:
    definition = library.get("phq9")
    talk = Conversation(definition, lang="en")
    talk.say("2", "3", "1", "2", "1", "4", "1", "2", "1", "2")
    response = to_questionnaire_response(definition, talk.state, subject="Patient/42")
    data = json.loads(response.model_dump_json())
    assert QuestionnaireResponse.model_validate(data).status == "completed"
    assert data["questionnaire"] == "urn:careloop:flow:phq9|2"
    assert data["subject"] == {"reference": "Patient/42"}
    assert data["authored"] == "2025-01-06T09:00:00+08:00"
    items = _items(response)
    assert items["q1"]["answer"] == [
        {"valueCoding": {"system": "http://loinc.org", "code": "LA6569-3", "display": "Several days"}}
    ]
    assert items["total"]["answer"] == [{"valueInteger": 8}]
    assert items["suicide_flag"]["answer"] == [{"valueBoolean": False}]
    assert "intro" not in items


def test_a_response_of_structured_answers(library: FlowLibrary) -> None:
    definition = library.get("home_monitoring")
    talk = Conversation(definition)
    talk.say("血压135/85 心率72 空腹血糖6.1")
    reading = _items(to_questionnaire_response(definition, talk.state))["reading"]
    assert reading["item"] == [
        {"linkId": "reading.sbp", "answer": [{"valueInteger": 135}]},
        {"linkId": "reading.dbp", "answer": [{"valueInteger": 85}]},
        {"linkId": "reading.pulse", "answer": [{"valueInteger": 72}]},
        {"linkId": "reading.glucose", "answer": [{"valueDecimal": 6.1}]},
    ]


def test_answers_of_every_kind(library: FlowLibrary, mechanics: Any) -> None:
    intake = library.get("intake")
    talk = Conversation(intake)
    talk.say("头晕", "两天", "1,2", "6", "否", "2", "无", "1", "1", "是", "90", "是", "2", "7", "1")
    items = _items(to_questionnaire_response(intake, talk.state))
    assert [answer["valueCoding"]["code"] for answer in items["past_history"]["answer"]] == ["hypertension", "diabetes"]
    assert items["chief_complaint"]["answer"] == [{"valueString": "头晕"}]
    assert items["medications"]["answer"] == [{"valueBoolean": False}]
    assert items["exercise_minutes"]["answer"] == [{"valueDecimal": 90.0}]
    diabetes = library.get("diabetes_followup")
    sugar = Conversation(diabetes)
    sugar.say("110 mg/dL")
    assert _items(to_questionnaire_response(diabetes, sugar.state))["fpg"]["answer"] == [
        {"valueQuantity": {"value": 6.1, "unit": "mmol/L", "system": "http://unitsofmeasure.org", "code": "mmol/L"}}
    ]
    satisfaction = library.get("satisfaction")
    survey = Conversation(satisfaction)
    survey.say("8")
    assert _items(to_questionnaire_response(satisfaction, survey.state))["nps"]["answer"] == [{"valueInteger": 8}]


@pytest.mark.parametrize(("answers", "status"), [([], "in-progress"), (["x", "x", "x"], "stopped")])
def test_response_status_follows_the_session(library: FlowLibrary, answers: list[str], status: str) -> None:
    definition = library.get("phq9")
    talk = Conversation(definition)
    talk.say(*answers)
    assert to_questionnaire_response(definition, talk.state).status == status


def test_a_response_needs_the_sessions_own_flow(library: FlowLibrary) -> None:
    talk = Conversation(fixture_flow("mechanics"))
    with pytest.raises(ValueError, match="not a session of this flow version"):
        to_questionnaire_response(library.get("phq9"), talk.state)


# --- PHQ-9 and GAD-7 with their LOINC panel, item and answer codes (clinical-spec.md 6; issue 13 item 7) ---

LOINC = "http://loinc.org"
FREQUENCY = [
    ("LA6568-5", "Not at all"), ("LA6569-3", "Several days"), ("LA6570-1", "More than half the days"),
    ("LA6571-9", "Nearly every day"),
]  # fmt: skip
#: PHQ-9 item 10 (69722-7), answer list LL359-1: "Very difficult" is LA6575-0, "Extremely difficult" LA6574-3.
DIFFICULTY = [
    ("LA6572-7", "Not difficult at all"), ("LA6573-5", "Somewhat difficult"), ("LA6575-0", "Very difficult"),
    ("LA6574-3", "Extremely difficult"),
]  # fmt: skip
PHQ9_ITEMS = ["44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5", "44253-3", "44260-8"]
GAD7_ITEMS = ["69725-0", "68509-9", "69733-4", "69734-2", "69735-9", "69689-8", "69736-7"]


def _options(item: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(o["valueCoding"]["system"], o["valueCoding"]["code"], o["valueCoding"]["display"])
            for o in item["answerOption"]]  # fmt: skip


@pytest.mark.parametrize(
    ("flow_id", "panel", "item_codes", "extra"),
    [("phq9", "44249-1", PHQ9_ITEMS, {"q10": ("69722-7", DIFFICULTY)}), ("gad7", "69737-5", GAD7_ITEMS, {})],
)
def test_questionnaires_carry_loinc_panel_item_and_answer_codes(
    library: FlowLibrary, flow_id: str, panel: str, item_codes: list[str], extra: dict[str, Any]
) -> None:
    data = json.loads(to_questionnaire(library.get(flow_id)).model_dump_json())
    assert data["code"] == [{"system": LOINC, "code": panel}]
    items = {item["linkId"]: item for item in data["item"]}
    expected = {f"q{n}": (code, FREQUENCY) for n, code in enumerate(item_codes, start=1)} | extra
    for link_id, (code, answers) in expected.items():
        assert items[link_id]["code"] == [{"system": LOINC, "code": code}], link_id
        assert _options(items[link_id]) == [(LOINC, answer, display) for answer, display in answers], link_id
    # Every choice item of these instruments is LOINC-coded: no local code system is left.
    assert not [item for item in items.values() for option in item.get("answerOption", [])
                if option["valueCoding"]["system"] != LOINC]  # fmt: skip


def _validated(resource: Any, model: type[Any]) -> dict[str, Any]:
    """The resource as JSON, validated by fhir.resources from that JSON alone (as a receiver would)."""
    text = resource.model_dump_json()
    model.model_validate_json(text)
    data: dict[str, Any] = json.loads(text)
    return data


@pytest.mark.parametrize(
    ("answer", "code"), [("1", "LA6572-7"), ("2", "LA6573-5"), ("3", "LA6575-0"), ("4", "LA6574-3")]
)
def test_phq9_response_codes_the_difficulty_item_with_loinc(library: FlowLibrary, answer: str, code: str) -> None:
    definition = library.get("phq9")
    talk = Conversation(definition, lang="en")
    talk.say("2", "3", "1", "2", "1", "4", "1", "2", "1", answer)
    assert talk.ended
    response = _validated(to_questionnaire_response(definition, talk.state), QuestionnaireResponse)
    items = {item["linkId"]: item for item in response["item"]}
    display = DIFFICULTY[int(answer) - 1][1]
    assert items["q10"]["answer"] == [{"valueCoding": {"system": LOINC, "code": code, "display": display}}]
    assert [items[f"q{n}"]["answer"][0]["valueCoding"]["code"] for n in range(1, 10)] == [
        "LA6569-3", "LA6570-1", "LA6568-5", "LA6569-3", "LA6568-5", "LA6571-9", "LA6568-5", "LA6569-3", "LA6568-5",
    ]  # fmt: skip


@pytest.mark.parametrize("flow_id", ["phq9", "gad7"])
@pytest.mark.parametrize("lang", ["zh", "en"])
def test_exported_phq9_and_gad7_resources_validate_and_answer_what_was_asked(
    library: FlowLibrary, flow_id: str, lang: str
) -> None:
    definition = library.get(flow_id)
    questionnaire = _validated(to_questionnaire(definition, lang=lang), Questionnaire)
    talk = Conversation(definition, lang=lang)
    phq9, gad7 = ["2", "3", "1", "2", "1", "1", "1", "1", "1", "2"], ["3", "3", "2", "2", "1", "2", "2"]
    talk.say(*(phq9 if flow_id == "phq9" else gad7))
    assert talk.ended
    exported = to_questionnaire_response(definition, talk.state, subject="Patient/42")
    response = _validated(exported, QuestionnaireResponse)
    assert response["status"] == "completed"
    assert response["questionnaire"] == f"{questionnaire['url']}|{questionnaire['version']}"
    asked = {item["linkId"]: item for item in questionnaire["item"]}
    answered = [item for item in response["item"] if "answerOption" in asked[item["linkId"]]]
    assert len(answered) == (10 if flow_id == "phq9" else 7)
    for item in answered:
        options = [option["valueCoding"] for option in asked[item["linkId"]]["answerOption"]]
        assert [answer["valueCoding"] for answer in item["answer"]][0] in options
