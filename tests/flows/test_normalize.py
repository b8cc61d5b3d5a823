"""Normalising what patients type or say."""

from __future__ import annotations

import pytest

from flows.normalize import MAX_INPUT_CHARS, cn_number, fold, normalize, numbers_in, spell_out_numerals, whole_number


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("１２３", "123"),
        ("１３５／８５", "135/85"),
        ("  是的\u200b  ", "是的"),
        ("a\t\n  b", "a b"),
        ("ＡＢＣ", "ABC"),
    ],
)
def test_normalize_folds_full_width_and_space(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("“2”。", "2"), ("(2)", "2"), ("是的啊", "是的"), ("没有呢", "没有"), ("YES!", "yes"), ("啊", "啊")],
)
def test_fold_strips_edge_punctuation_and_particles(raw: str, expected: str) -> None:
    assert fold(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("一百三十五", 135.0),
        ("八十五", 85.0),
        ("一三五", 135.0),
        ("一百零五", 105.0),
        ("两", 2.0),
        ("十", 10.0),
        ("六点一", 6.1),
        ("一万二千", 12000.0),
    ],
)
def test_chinese_numerals(raw: str, expected: float) -> None:
    assert cn_number(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("高压一百三十五低压八十五", "高压135低压85"),
        ("six point one", "6.1"),
        ("one hundred thirty five over eighty five", "135 over 85"),
        ("twenty-one", "21"),
        ("none of these", "none of these"),
    ],
)
def test_spell_out_numerals(raw: str, expected: str) -> None:
    assert spell_out_numerals(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("2", 2), ("２", 2), ("二", 2), ("two", 2), ("“3”。", 3), ("第二个", None), ("2和3", None), ("", None)],
)
def test_whole_number(raw: str, expected: int | None) -> None:
    assert whole_number(raw) == expected


def test_numbers_in_finds_every_number() -> None:
    assert numbers_in("血压135/85，心率七十二") == [135.0, 85.0, 72.0]


def test_very_long_input_is_cut_before_work() -> None:
    assert len(normalize("１" * (MAX_INPUT_CHARS * 10))) == MAX_INPUT_CHARS
