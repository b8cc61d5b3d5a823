"""Numbered choices, as written in a flow file, shared by the choice, multi and yes/no answer types."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from flows.answers.matching import ChoiceMatcher
from flows.codes import is_valid_answer_code
from flows.outputs import ChoiceOption
from flows.reader import Reader
from flows.text import LANGUAGES, LocalText


@dataclass(frozen=True, slots=True)
class Choice:
    """One answer of a choice question.

    ``key`` is the category saved with the result (snake_case), ``value`` the value saved (a score, a
    text, a flag; the key when not given), ``label`` what the patient sees, ``synonyms`` other words
    that mean it (per language), ``code`` its LOINC answer code, ``exclusive`` (multiple choice only)
    that it cannot be combined with others ("none of these").
    """

    key: str
    value: Any
    label: LocalText
    synonyms: Mapping[str, tuple[str, ...]]
    code: str | None = None
    exclusive: bool = False

    def words(self) -> Iterator[str]:
        """Yield every label and synonym in every language."""
        yield from self.label.raw.values()
        for words in self.synonyms.values():
            yield from words

    def option(self, number: int, lang: str) -> ChoiceOption:
        """Return the numbered option shown in ``lang``."""
        words = self.synonyms.get(lang, ()) + self.synonyms.get("*", ())
        return ChoiceOption(number, self.key, self.label.plain(lang), words)


def read_synonyms(reader: Reader, raw: object) -> dict[str, tuple[str, ...]]:
    """Read ``synonyms``: a list (any language) or a mapping of language to list."""
    if raw is None:
        return {}
    if isinstance(raw, list):
        words = tuple(str(word) for word in raw if isinstance(word, str | int) and not isinstance(word, bool))
        if len(words) != len(raw):
            reader.problem("'synonyms' must be a list of words")
        return {"*": words}
    if isinstance(raw, Mapping):
        result: dict[str, tuple[str, ...]] = {}
        for lang, words in raw.items():
            if lang not in LANGUAGES or not isinstance(words, list):
                reader.problem(f"'synonyms' must map a language ({', '.join(LANGUAGES)}) to a list of words")
                continue
            result[str(lang)] = tuple(str(word) for word in words)
        return result
    reader.problem("'synonyms' must be a list of words, or a mapping of language to a list")
    return {}


def read_choices(reader: Reader, *, multiple: bool = False) -> tuple[Choice, ...]:
    """Read the ``choices`` list of a question, reporting duplicates and missing parts."""
    raw = reader.sequence("choices", required=True)
    choices: list[Choice] = []
    for position, item in enumerate(raw, start=1):
        child = reader.child(item, f"choices[{position}]")
        key = child.identifier("key", required=True) or f"choice_{position}"
        value = child.raw("value", key)
        if isinstance(value, Mapping | list):
            child.problem("'value' must be a number, a text or true/false")
            value = key
        label = child.text("label", required=True) or LocalText.of({})
        synonyms = read_synonyms(child, child.raw("synonyms"))
        code = child.string("code")
        if code is not None and not is_valid_answer_code(code):
            child.problem(f"'code' must be a LOINC answer code such as LA6568-5, got {code!r}", "bad_code")
            code = None
        exclusive = child.boolean("exclusive") if multiple else False
        child.finish()
        choices.append(Choice(key, value, label, synonyms, code, exclusive))
    if raw and len(choices) < 2:
        reader.problem("a choice question needs at least two choices", "bad_choices")
    if len(choices) > 30:
        reader.problem("a choice question may have at most 30 choices", "bad_choices")
    seen_keys: set[str] = set()
    seen_values: set[str] = set()
    for choice in choices:
        if choice.key in seen_keys:
            reader.problem(f"the choice key '{choice.key}' is used twice", "bad_choices")
        seen_keys.add(choice.key)
        marker = repr(choice.value)
        if marker in seen_values:
            reader.problem(f"the choice value {choice.value!r} is used twice", "bad_choices")
        seen_values.add(marker)
    for lang in LANGUAGES:
        labels = [choice.label.raw.get(lang, "").strip() for choice in choices]
        present = [label for label in labels if label]
        if len(set(present)) != len(present):
            reader.problem(f"two choices have the same {lang} label", "bad_choices")
    return tuple(choices)


def choice_matcher(choices: tuple[Choice, ...]) -> ChoiceMatcher:
    """Return a matcher over the labels and synonyms of ``choices``."""
    phrases = [(word, index) for index, choice in enumerate(choices) for word in choice.words()]
    return ChoiceMatcher(phrases, len(choices))


def choice_texts(choices: tuple[Choice, ...]) -> Iterator[tuple[str, LocalText]]:
    """Yield the label of every choice, for translation checks."""
    for position, choice in enumerate(choices, start=1):
        yield f"choices[{position}].label", choice.label
