"""PHQ-9 and GAD-7 (clinical-spec.md section 6), including the item-9 safety rule (6.2)."""

from __future__ import annotations

import pytest

from care.clinical.risk import InputError, evaluate


def items_with_total(total: int, count: int) -> list[int]:
    """Return item scores (item 9 kept at 0) adding up to ``total``."""
    items = [0] * count
    remaining = total
    for i in range(count - 1):
        items[i] = min(3, remaining)
        remaining -= items[i]
    assert remaining == 0
    return items


def test_vector_14_phq9() -> None:
    result = evaluate("phq9", {"items": [1, 2, 1, 2, 1, 1, 1, 0, 1]})
    assert (result.value, result.category, result.category_label.zh) == (10, "moderate", "中度")
    assert "suicide_risk" in result.flags
    assert result.rule_pack == "PHQ9-2001"
    assert result.details["total_loinc"] == "44261-6"


def test_vector_15_gad7() -> None:
    result = evaluate("gad7", {"items": [2, 2, 1, 1, 0, 1, 1]})
    assert (result.value, result.category) == (8, "mild")
    assert result.flags == ()
    assert result.details["total_loinc"] == "70274-6"


@pytest.mark.parametrize(
    ("total", "category"),
    [(0, "minimal"), (4, "minimal"), (5, "mild"), (9, "mild"), (10, "moderate"), (14, "moderate"),
     (15, "moderately_severe"), (19, "moderately_severe"), (20, "severe"), (24, "severe")],
)  # fmt: skip
def test_phq9_band_edges(total: int, category: str) -> None:
    result = evaluate("phq9", {"items": items_with_total(total, 9)})
    assert (result.value, result.category) == (total, category)
    assert "suicide_risk" not in result.flags


def test_phq9_maximum() -> None:
    assert evaluate("phq9", {"items": [3] * 9}).value == 27


@pytest.mark.parametrize(
    ("total", "category"),
    [(0, "minimal"), (4, "minimal"), (5, "mild"), (9, "mild"), (10, "moderate"), (14, "moderate"), (15, "severe"),
     (18, "severe")],
)  # fmt: skip
def test_gad7_band_edges(total: int, category: str) -> None:
    assert evaluate("gad7", {"items": items_with_total(total, 7)}).category == category


def test_gad7_maximum() -> None:
    assert (evaluate("gad7", {"items": [3] * 7}).value, evaluate("gad7", {"items": [3] * 7}).category) == (21, "severe")


def test_item9_triggers_whatever_the_total() -> None:
    """Spec 6.2: a total of 3 with item 9 = 1 still triggers."""
    result = evaluate("phq9", {"items": [1, 1, 0, 0, 0, 0, 0, 0, 1]})
    assert (result.value, result.category) == (3, "minimal")
    assert result.flags == ("suicide_risk",)
    assert any("crisis" in note.en for note in result.notes)


@pytest.mark.parametrize("item9", [1, 2, 3])
def test_item9_any_positive_answer(item9: int) -> None:
    assert "suicide_risk" in evaluate("phq9", {"items": [0] * 8 + [item9]}).flags


def test_item9_flag_is_raised_even_when_other_items_are_missing() -> None:
    result = evaluate("phq9", {"items": [None, 1, None, 0, 0, 0, 0, 0, 2]})
    assert (result.value, result.category) == (None, "incomplete")
    assert result.missing == ("items[1]", "items[3]")
    assert result.flags == ("suicide_risk",)


def test_missing_items_are_never_prorated() -> None:
    result = evaluate("gad7", {"items": [3, 3, 3, 3, 3, 3, None]})
    assert (result.value, result.category, result.missing) == (None, "incomplete", ("items[7]",))


def test_no_items_at_all() -> None:
    result = evaluate("phq9", {})
    assert (result.value, result.missing) == (None, ("items",))


def test_short_forms() -> None:
    positive = evaluate("phq9", {"items": [1, 2, 0, 0, 0, 0, 0, 0, 0]})
    negative = evaluate("gad7", {"items": [1, 1, 3, 3, 3, 3, 3]})
    assert (positive.details["phq2_total"], positive.details["phq2_positive"]) == (3, True)
    assert (negative.details["gad2_total"], negative.details["gad2_positive"]) == (2, False)


def test_gad7_uses_the_correct_item_2_code() -> None:
    codes = evaluate("gad7", {"items": [0] * 7}).details["item_loinc"]
    assert isinstance(codes, list)
    assert codes[1] == "68509-9"
    assert "68509-1" not in codes


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([1, 2, 3], "a list of 9 item scores"),
        ([0] * 8 + [4], "item 9 must be 0-3"),
        ([0] * 8 + [-1], "item 9 must be 0-3"),
        ([0] * 8 + [True], "item 9 must be 0-3, got true/false"),
        ([0] * 8 + [1.5], "item 9 must be 0-3"),
        ("0,1,2", "a list of 9 item scores"),
    ],
)
def test_bad_items_are_refused_clearly(items: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        evaluate("phq9", {"items": items})
