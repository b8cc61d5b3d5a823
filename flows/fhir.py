"""Export flows as FHIR R4 ``Questionnaire`` and finished sessions as ``QuestionnaireResponse``.

The resources are built with ``fhir.resources`` (its R4B package: FHIR 4.3, whose Questionnaire and
QuestionnaireResponse are those of R4). Each question is an item whose ``linkId`` is the node id;
LOINC codes of items and answers are carried where the flow gives them (PHQ-9, GAD-7, readings).
Messages become ``display`` items; saved computed results (scores) become read-only items. Blood
pressure and free-form readings are groups of coded parts (8480-6 systolic, 8462-4 diastolic, 8867-4
pulse, 14771-0 fasting glucose)::

    questionnaire = to_questionnaire(library.get("phq9"), lang="zh")
    response = to_questionnaire_response(definition, state, subject="Patient/123")
    response.model_dump_json()
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fhir.resources.R4B.questionnaire import Questionnaire
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

from flows.answers.blood_pressure import BloodPressureAnswer
from flows.answers.choice import ChoiceAnswer
from flows.answers.choices import Choice
from flows.answers.glucose import GlucoseAnswer
from flows.answers.multi import MultiAnswer
from flows.answers.number import NumberAnswer
from flows.answers.reading import ReadingAnswer
from flows.answers.scale import ScaleAnswer
from flows.answers.yes_no import YesNoAnswer
from flows.codes import LOINC_SYSTEM, UCUM, UCUM_SYSTEM
from flows.definition import FlowDefinition
from flows.nodes.compute import ComputeNode
from flows.nodes.message import MessageNode
from flows.nodes.question import QuestionNode
from flows.text import LocalText

URL_PREFIX = "urn:careloop:flow:"
_MIN_VALUE = "http://hl7.org/fhir/StructureDefinition/minValue"
_MAX_VALUE = "http://hl7.org/fhir/StructureDefinition/maxValue"
_UNIT = "http://hl7.org/fhir/StructureDefinition/questionnaire-unit"
_LANGUAGE_CODES = {"zh": "zh-CN", "en": "en"}
_END_STATUS = {"completed": "completed", "expired": "stopped", "handed_off": "stopped", "skipped": "stopped"}

# The parts of structured answers: (suffix, LOINC code, FHIR type, English and Chinese names).
_BP_PARTS = (
    ("sbp", "8480-6", "integer", "Systolic blood pressure", "收缩压"),
    ("dbp", "8462-4", "integer", "Diastolic blood pressure", "舒张压"),
    ("pulse", "8867-4", "integer", "Heart rate", "心率"),
)
_GLUCOSE_PART = ("glucose", "14771-0", "decimal", "Fasting glucose", "空腹血糖")


def questionnaire_url(definition: FlowDefinition) -> str:
    """Return the canonical URL of the flow's Questionnaire."""
    return URL_PREFIX + definition.id


def _fhir_id(definition: FlowDefinition) -> str:
    # FHIR ids allow letters, digits, '-' and '.', at most 64 characters.
    return f"{definition.id.replace('_', '-')}-v{definition.version}"[:64]


def _name(definition: FlowDefinition) -> str:
    return "".join(part.capitalize() for part in definition.id.split("_"))


def _text(text: LocalText | None, lang: str) -> str | None:
    return text.plain(lang) if text is not None else None


def _coding(code: str | None) -> list[dict[str, Any]] | None:
    return [{"system": LOINC_SYSTEM, "code": code}] if code else None


def _choice_coding(definition: FlowDefinition, node_id: str, choice: Choice, lang: str) -> dict[str, Any]:
    if choice.code:
        return {"system": LOINC_SYSTEM, "code": choice.code, "display": choice.label.plain(lang)}
    return {
        "system": f"{questionnaire_url(definition)}:{node_id}",
        "code": choice.key,
        "display": choice.label.plain(lang),
    }


def _parts(node: QuestionNode) -> tuple[tuple[str, str, str, str, str], ...]:
    if isinstance(node.answer, BloodPressureAnswer):
        return _BP_PARTS
    if isinstance(node.answer, ReadingAnswer):
        parts = _BP_PARTS if "bp" in node.answer.kinds else ()
        return parts + ((_GLUCOSE_PART,) if "glucose" in node.answer.kinds else ())
    return ()


def _question_item(definition: FlowDefinition, node: QuestionNode, lang: str) -> dict[str, Any]:
    answer = node.answer
    item: dict[str, Any] = {"linkId": node.id, "text": node.text.plain(lang), "required": False}
    if node.code:
        item["code"] = _coding(node.code)
    parts = _parts(node)
    if parts:
        item["type"] = "group"
        item["item"] = [
            {
                "linkId": f"{node.id}.{suffix}",
                "code": _coding(code),
                "text": english if lang == "en" else chinese,
                "type": kind,
                "required": False,
            }
            for suffix, code, kind, english, chinese in parts
        ]
        return item
    item["type"] = answer.fhir_type
    if isinstance(answer, ChoiceAnswer | MultiAnswer):
        item["answerOption"] = [
            {"valueCoding": _choice_coding(definition, node.id, choice, lang)} for choice in answer.choices
        ]
        if isinstance(answer, MultiAnswer):
            item["repeats"] = True
    extensions: list[dict[str, Any]] = []
    if isinstance(answer, NumberAnswer | ScaleAnswer):
        value_key = "valueInteger" if item["type"] == "integer" else "valueDecimal"
        low = int(answer.minimum) if value_key == "valueInteger" else answer.minimum
        high = int(answer.maximum) if value_key == "valueInteger" else answer.maximum
        extensions.append({"url": _MIN_VALUE, value_key: low})
        extensions.append({"url": _MAX_VALUE, value_key: high})
    unit = answer.unit_code
    if unit:
        extensions.append({"url": _UNIT, "valueCoding": {"system": UCUM_SYSTEM, "code": UCUM.get(unit, unit)}})
    if extensions:
        item["extension"] = extensions
    return item


def to_questionnaire(definition: FlowDefinition, *, lang: str = "en") -> Questionnaire:
    """Return the flow as a FHIR ``Questionnaire`` with its texts in ``lang``."""
    items: list[dict[str, Any]] = []
    for node_id in definition.order:
        node = definition.nodes[node_id]
        if isinstance(node, MessageNode):
            items.append({"linkId": node.id, "text": node.text.plain(lang), "type": "display"})
        elif isinstance(node, QuestionNode):
            items.append(_question_item(definition, node, lang))
        elif isinstance(node, ComputeNode) and node.save:
            computed: dict[str, Any] = {
                "linkId": node.id,
                "text": node.result,
                "type": node.value_type,
                "readOnly": True,
                "required": False,
            }
            if node.code:
                computed["code"] = _coding(node.code)
            items.append(computed)
    data: dict[str, Any] = {
        "resourceType": "Questionnaire",
        "id": _fhir_id(definition),
        "url": questionnaire_url(definition),
        "version": str(definition.version),
        "name": _name(definition),
        "title": definition.title.plain(lang),
        "status": "active",
        "subjectType": ["Patient"],
        "language": _LANGUAGE_CODES.get(lang, lang),
        "item": items,
    }
    description = _text(definition.description, lang)
    if description:
        data["description"] = description
    if definition.code:
        data["code"] = [{"system": LOINC_SYSTEM, "code": definition.code}]
    return Questionnaire.model_validate(data)


def _choice_answers(
    definition: FlowDefinition, node: QuestionNode, choices: tuple[Choice, ...], category: object, lang: str
) -> list[dict[str, Any]]:
    keys = str(category).split(",") if category else []
    return [
        {"valueCoding": _choice_coding(definition, node.id, choice, lang)}
        for key in keys
        for choice in choices
        if choice.key == key
    ]


def _answer_item(definition: FlowDefinition, node: QuestionNode, entry: Mapping[str, Any], lang: str) -> dict[str, Any]:
    answer = node.answer
    value = entry.get("value")
    item: dict[str, Any] = {"linkId": node.id, "text": node.text.plain(lang)}
    parts = _parts(node)
    if parts:
        extra = entry.get("extra") or {}
        children = []
        for suffix, _code, kind, _english, _chinese in parts:
            part = extra.get(suffix)
            if part is None:
                continue
            value_answer = {"valueInteger": int(part)} if kind == "integer" else {"valueDecimal": part}
            children.append({"linkId": f"{node.id}.{suffix}", "answer": [value_answer]})
        item["item"] = children
        return item
    answers: list[dict[str, Any]]
    if isinstance(answer, YesNoAnswer):
        answers = [{"valueBoolean": bool(value)}]
    elif isinstance(answer, ChoiceAnswer | MultiAnswer):
        answers = _choice_answers(definition, node, answer.choices, entry.get("category"), lang)
    elif isinstance(answer, GlucoseAnswer):
        answers = [{"valueQuantity": {"value": value, "unit": "mmol/L", "system": UCUM_SYSTEM, "code": "mmol/L"}}]
    elif answer.fhir_type == "integer" and isinstance(value, int | float):
        answers = [{"valueInteger": int(value)}]
    elif answer.fhir_type == "decimal":
        answers = [{"valueDecimal": value}]
    elif answer.fhir_type == "date":
        answers = [{"valueDate": value}]
    else:
        answers = [{"valueString": str(value)}]
    item["answer"] = answers
    return item


def _computed_item(node: ComputeNode, entry: Mapping[str, Any]) -> dict[str, Any] | None:
    value = entry.get("value")
    kind = node.value_type
    if kind == "integer" and isinstance(value, int | float) and not isinstance(value, bool):
        answer: dict[str, Any] = {"valueInteger": int(value)}
    elif kind == "decimal" and isinstance(value, int | float) and not isinstance(value, bool):
        answer = {"valueDecimal": value}
    elif kind == "boolean" and isinstance(value, bool):
        answer = {"valueBoolean": value}
    elif kind == "string" and value is not None:
        answer = {"valueString": str(value)}
    else:
        return None
    return {"linkId": node.id, "text": node.result, "answer": [answer]}


def to_questionnaire_response(
    definition: FlowDefinition, state: Mapping[str, Any], *, subject: str | None = None
) -> QuestionnaireResponse:
    """Return a session's answers and scores as a FHIR ``QuestionnaireResponse``.

    ``state`` is the session's state (any status: a waiting session gives ``in-progress``, an expired
    or handed-off one ``stopped``). ``subject`` is a reference such as ``"Patient/123"``.
    """
    if state.get("flow_id") != definition.id or state.get("version") != definition.version:
        raise ValueError("the state is not a session of this flow version")
    lang = str(state.get("lang") or definition.languages[0])
    results: Mapping[str, Any] = state.get("results") or {}
    items: list[dict[str, Any]] = []
    for node_id in definition.order:
        node = definition.nodes[node_id]
        if isinstance(node, QuestionNode):
            entry = results.get(node.result)
            if entry is not None and entry.get("node") == node.id:
                items.append(_answer_item(definition, node, entry, lang))
        elif isinstance(node, ComputeNode) and node.save:
            entry = results.get(node.result)
            if entry is not None:
                computed = _computed_item(node, entry)
                if computed is not None:
                    items.append(computed)
    if state.get("status") == "waiting":
        status = "in-progress"
    else:
        status = _END_STATUS.get(str(state.get("end_status")), "stopped")
    data: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": f"{questionnaire_url(definition)}|{definition.version}",
        "status": status,
        "language": _LANGUAGE_CODES.get(lang, lang),
        "item": items,
    }
    authored = state.get("updated_at")
    if authored:
        data["authored"] = authored
    if subject:
        data["subject"] = {"reference": subject}
    return QuestionnaireResponse.model_validate(data)
