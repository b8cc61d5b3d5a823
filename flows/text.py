"""Texts in several languages, with ``{name}`` placeholders filled from the session.

A flow writes every patient-facing text once per language::

    text:
      zh: 您的得分是 {phq9_total} 分，在“{phq9_total.label}”范围。
      en: Your score is {phq9_total}, in the "{phq9_total.label}" range.

A placeholder is ``{name}`` (a result, a computed value or a fact) or ``{name.attr}``: ``label`` (the
chosen answer's or band's wording), ``category`` (its key), ``unit``, or a field of a structured value
(``{bp.sbp}``, ``{obs.sbp}``). ``{disclaimer}`` is the flow's disclaimer. ``{{`` and ``}}`` write
literal braces.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

#: Languages the engine speaks; every flow must give each text in each language it lists.
LANGUAGES: tuple[str, ...] = ("zh", "en")

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)(?:\.([A-Za-z_][A-Za-z0-9_]*))?\}")

#: A placeholder: the name and the optional attribute.
Ref = tuple[str, str | None]
#: Looks a placeholder up and returns the text to put in its place.
Resolver = Callable[[str, str | None], str]


@dataclass(frozen=True, slots=True)
class Template:
    """One language's text split into literal parts and placeholders."""

    parts: tuple[str | Ref, ...]
    plain: str | None

    @classmethod
    def parse(cls, source: str) -> Template:
        """Split ``source`` into parts; a stray single brace stays literal text."""
        parts: list[str | Ref] = []
        literal: list[str] = []
        position = 0
        for match in _PLACEHOLDER.finditer(source):
            literal.append(source[position : match.start()])
            token = match.group(0)
            if token in ("{{", "}}"):
                literal.append(token[0])
            else:
                if literal:
                    parts.append("".join(literal))
                    literal = []
                parts.append((match.group(1), match.group(2)))
            position = match.end()
        literal.append(source[position:])
        if "".join(literal):
            parts.append("".join(literal))
        has_refs = any(isinstance(part, tuple) for part in parts)
        plain = None if has_refs else "".join(p for p in parts if isinstance(p, str))
        return cls(tuple(parts), plain)

    def refs(self) -> Iterator[Ref]:
        """Yield every placeholder."""
        for part in self.parts:
            if isinstance(part, tuple):
                yield part

    def format(self, resolve: Resolver) -> str:
        """Return the text with each placeholder replaced by ``resolve(name, attr)``."""
        if self.plain is not None:
            return self.plain
        return "".join(part if isinstance(part, str) else resolve(part[0], part[1]) for part in self.parts)


@dataclass(frozen=True, slots=True)
class LocalText:
    """A text given in one or more languages."""

    raw: Mapping[str, str]
    templates: Mapping[str, Template]

    @classmethod
    def of(cls, raw: Mapping[str, str]) -> LocalText:
        """Build a text from ``{lang: text}``."""
        clean = {lang: value for lang, value in raw.items()}
        return cls(clean, {lang: Template.parse(value) for lang, value in clean.items()})

    def missing(self, languages: tuple[str, ...]) -> list[str]:
        """Return the languages of ``languages`` that this text does not give (or gives empty)."""
        return [lang for lang in languages if not self.raw.get(lang, "").strip()]

    def refs(self) -> Iterator[Ref]:
        """Yield every placeholder of every language."""
        for template in self.templates.values():
            yield from template.refs()

    def template(self, lang: str) -> Template:
        """Return the template for ``lang``, falling back to Chinese, then English, then any."""
        found = self.templates.get(lang) or self.templates.get("zh") or self.templates.get("en")
        if found is None:
            found = next(iter(self.templates.values()), _EMPTY)
        return found

    def plain(self, lang: str) -> str:
        """Return the text for ``lang`` with placeholders left as written."""
        return self.raw.get(lang) or self.raw.get("zh") or self.raw.get("en") or next(iter(self.raw.values()), "")

    def format(self, lang: str, resolve: Resolver) -> str:
        """Return the text in ``lang`` with its placeholders filled."""
        return self.template(lang).format(resolve)


_EMPTY = Template((), "")
