"""The content library of the interventions: education messages (diet, exercise, sleep, mood, ...) in zh and en.

The items are data (``content.yaml`` beside this module), each with a stable id, a topic, the
guideline it comes from and its text in both languages::

    - id: diet_salt
      topic: diet
      source: "中国居民膳食指南(2022): salt < 5 g/day"
      text: {zh: 每天吃盐不超过5克……, en: Keep salt under 5 g a day……}

A program (:mod:`care.interventions.definition`) names items by id; the worker sends an item's
text in the patient's language (:func:`message_text`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

TOPICS = ("diet", "exercise", "sleep", "mood", "weight", "medication")
MAX_TEXT = 300


class ContentDataError(ValueError):
    """The content library is broken (a deployment error, raised when it is loaded)."""


@dataclass(frozen=True)
class ContentItem:
    """One education message: its id, topic, source and text in zh and en."""

    id: str
    topic: str
    source: str
    text_zh: str
    text_en: str

    def text(self, language: str | None) -> str:
        """The text in ``language`` (``en``; anything else reads zh, the clinic's first language)."""
        return self.text_en if language == "en" else self.text_zh


@dataclass(frozen=True)
class ContentLibrary:
    """Every item of the library by id, and the library's version."""

    version: str
    items: Mapping[str, ContentItem]

    def ids(self) -> frozenset[str]:
        return frozenset(self.items)

    def get(self, item_id: str) -> ContentItem | None:
        return self.items.get(item_id)


def _item(raw: Any, index: int) -> ContentItem:
    where = f"content item {index + 1}"
    if not isinstance(raw, Mapping):
        raise ContentDataError(f"{where}: must be a mapping with id, topic, source and text")
    item_id, topic, source, text = raw.get("id"), raw.get("topic"), raw.get("source"), raw.get("text")
    if not isinstance(item_id, str) or not item_id.isidentifier() or not item_id.islower() or len(item_id) > 56:
        raise ContentDataError(f"{where}: id must be lower-case letters, digits and _ (at most 56)")
    if topic not in TOPICS:
        raise ContentDataError(f"{item_id}: topic must be one of {', '.join(TOPICS)}")
    if not isinstance(source, str) or not source.strip():
        raise ContentDataError(f"{item_id}: a guideline 'source' is required")
    if not isinstance(text, Mapping) or any(not isinstance(text.get(lang), str) or not text[lang].strip()
                                            or len(text[lang]) > MAX_TEXT for lang in ("zh", "en")):
        raise ContentDataError(f"{item_id}: text needs zh and en, each 1-{MAX_TEXT} characters")
    return ContentItem(item_id, topic, source.strip(), text["zh"].strip(), text["en"].strip())


def parse_library(text: str) -> ContentLibrary:
    """Read a content library's YAML; raise :class:`ContentDataError` on the first problem."""
    data = yaml.safe_load(text)
    if not isinstance(data, Mapping) or not isinstance(data.get("items"), list) \
            or not isinstance(data.get("version"), str):
        raise ContentDataError("the content library needs a version and a list of items")
    items: dict[str, ContentItem] = {}
    for index, raw in enumerate(data["items"]):
        item = _item(raw, index)
        if item.id in items:
            raise ContentDataError(f"{item.id}: the id is used twice")
        items[item.id] = item
    return ContentLibrary(data["version"], items)


@functools.cache
def content_library() -> ContentLibrary:
    """The built-in content library (read once)."""
    return parse_library(resources.files("care.interventions").joinpath("content.yaml").read_text(encoding="utf-8"))


def message_text(item_id: str, language: str | None) -> str | None:
    """The text of the library's item ``item_id`` in ``language``, or None when there is no such item."""
    item = content_library().get(item_id)
    return item.text(language) if item is not None else None
