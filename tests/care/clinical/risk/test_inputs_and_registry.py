"""Input checking, missing inputs and the model registry (clinical-spec.md input table and section 0)."""

from __future__ import annotations

import json
import math

import pytest

from care.clinical.risk import MODEL_ORDER, InputError, UnknownModelError, evaluate, get_model, models

SPEC_MODELS = [
    "china-par", "framingham", "pce", "findrisc", "cdrs", "phq9", "gad7", "bmi", "waist", "bp", "fpg", "lipids",
    "uric-acid", "egfr",
]  # fmt: skip


def test_every_spec_model_is_registered() -> None:
    assert [model.name for model in models()] == SPEC_MODELS
    assert list(MODEL_ORDER) == SPEC_MODELS


def test_every_model_documents_itself() -> None:
    for model in models():
        assert model.title.zh
        assert model.title.en
        assert model.citation
        assert model.__doc__
        module_doc = __import__(type(model).__module__, fromlist=["x"]).__doc__
        assert module_doc is not None
        assert "Source" in module_doc
        assert "Inputs (JSON)" in module_doc
        for name in model.required:
            assert model.input_spec(name) is not None


def test_unknown_model() -> None:
    with pytest.raises(UnknownModelError, match="unknown risk model 'qrisk3'"):
        get_model("qrisk3")


@pytest.mark.parametrize(
    ("model", "inputs", "message"),
    [
        ("bp", {"sbp": "130", "dbp": 80}, "input 'sbp' must be a number in mmHg, got the text '130'"),
        ("bp", {"sbp": True, "dbp": 80}, "input 'sbp' must be a number in mmHg, got true/false"),
        ("china-par", {"smoker": 1}, "input 'smoker' must be true or false, got the number 1"),
        ("china-par", {"smoker": "yes"}, "input 'smoker' must be true or false, got the text 'yes'"),
        ("china-par", {"sex": "M"}, "input 'sex' must be one of: male, female; got the text 'M'"),
        ("findrisc", {"family_history_diabetes": True}, "must be one of: none, second_degree, first_degree"),
        ("egfr", {"age": [50]}, "got a list"),
    ],
)
def test_wrong_types_are_reported_clearly(model: str, inputs: dict[str, object], message: str) -> None:
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        evaluate(model, inputs)


@pytest.mark.parametrize(
    ("model", "inputs", "message"),
    [
        ("bp", {"sbp": 1350, "dbp": 80}, "sbp is outside the plausible range 60-300 mmHg"),
        ("bp", {"sbp": math.inf, "dbp": 80}, "sbp must be a finite number"),
        ("bp", {"sbp": math.nan, "dbp": 80}, "sbp must be a finite number"),
        ("bmi", {"height": 17}, "height is outside the plausible range 50-250 cm"),
        ("egfr", {"age": -1}, "age is outside the plausible range 0-130 years"),
    ],
)
def test_implausible_numbers_give_no_value_and_say_why(model: str, inputs: dict[str, object], message: str) -> None:
    result = evaluate(model, inputs)
    assert (result.value, result.category) == (None, "implausible")
    assert result.error is not None
    assert result.error.en.startswith(message)
    assert result.to_dict()["category"] is None


def test_unknown_inputs_fail_only_in_strict_mode() -> None:
    assert evaluate("bp", {"sbp": 120, "dbp": 70, "smokr": True}).category == "high_normal"
    with pytest.raises(InputError, match="unknown input 'smokr' for model bp"):
        evaluate("bp", {"sbp": 120, "dbp": 70, "smokr": True}, strict=True)


def test_null_means_not_given() -> None:
    result = evaluate("bp", {"sbp": 120, "dbp": None})
    assert (result.value, result.category, result.missing) == (None, "incomplete", ("dbp",))
    assert result.category_label.zh == "信息不全"


@pytest.mark.parametrize("name", SPEC_MODELS)
def test_no_inputs_means_incomplete_never_imputed(name: str) -> None:
    result = evaluate(name, {})
    assert result.value is None
    assert result.category == "incomplete"
    assert result.missing
    assert set(result.missing) <= {spec.name for spec in get_model(name).inputs} | {"bmi"}


def test_result_json_shape_has_contract_keys_first() -> None:
    data = evaluate("gad7", {"items": [0, 0, 0, 0, 0, 0, 1]}).to_dict()
    assert list(data)[:6] == ["model", "value", "unit", "category", "citation", "missing"]
    assert json.loads(json.dumps(data, ensure_ascii=False)) == data
    assert data["disclaimer"]["zh"].startswith("本结果用于健康管理的决策支持")  # type: ignore[index]


def test_bmi_derived_from_weight_and_height_is_checked() -> None:
    result = evaluate("bmi", {"weight": 400, "height": 60})
    assert (result.value, result.category) == (None, "implausible")
    assert result.error is not None
    assert result.error.en.startswith("bmi is outside the plausible range >10-<100 kg/m2")


def test_describe_inputs_for_the_list() -> None:
    spec = get_model("china-par").input_spec("sbp")
    assert spec is not None
    assert spec.describe() == "sbp (number, mmHg, 60-300): systolic blood pressure"
    items = get_model("phq9").input_spec("items")
    assert items is not None
    assert "list of 9 item scores 0-3" in items.describe()
