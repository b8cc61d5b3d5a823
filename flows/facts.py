"""What a flow may know about the patient: the facts its expressions and texts see.

The host (``bot/``) builds a :class:`Facts` from the record before each step; the engine never reads
the record itself. Expressions see::

    age              whole years, or None
    sex              "male", "female" or None
    lang             the session's language ("zh", "en")
    tags             a set of tag names:            'hypertension' in tags
    obs              latest observations, canonical units, by short code or LOINC:
                     obs.sbp, obs.fpg, obs['8480-6']  (None when unknown)
    profile          profile fields:                profile.smoker
    <result names>   the answers and computed values of this session (None until set)
    category         the category of each result:   category.phq9_total == 'moderate'

Tags added or removed, observations recorded and profile fields set earlier in the same session are
seen by later expressions of that session.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flows.codes import LOINC_TO_SHORT, SHORT_CODES

#: Names that facts take in expressions; results may not use them.
FACT_NAMES: frozenset[str] = frozenset({"age", "sex", "lang", "tags", "obs", "profile", "category"})


def _both_keys(observations: Mapping[str, float]) -> dict[str, float]:
    """Return ``observations`` keyed by short code and by LOINC code alike."""
    result: dict[str, float] = {}
    for key, value in observations.items():
        result[key] = value
        if key in SHORT_CODES:
            result.setdefault(SHORT_CODES[key][0], value)
        elif key in LOINC_TO_SHORT:
            result.setdefault(LOINC_TO_SHORT[key], value)
    return result


@dataclass(frozen=True, slots=True)
class Facts:
    """The patient as a flow sees it. Build with :meth:`build`; treat the mappings as read-only."""

    age: int | None = None
    sex: str | None = None
    language: str = "zh"
    tags: frozenset[str] = frozenset()
    observations: Mapping[str, float] = field(default_factory=dict)
    profile: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        *,
        age: int | None = None,
        sex: str | None = None,
        language: str = "zh",
        tags: Iterable[str] = (),
        observations: Mapping[str, float] | None = None,
        profile: Mapping[str, Any] | None = None,
    ) -> Facts:
        """Return facts; ``observations`` may be keyed by short code (``sbp``) or LOINC (``8480-6``)."""
        if sex not in (None, "male", "female"):
            raise ValueError(f"sex must be 'male', 'female' or None, not {sex!r}")
        return cls(
            age=age,
            sex=sex,
            language=language,
            tags=frozenset(tags),
            observations=_both_keys(observations or {}),
            profile=dict(profile or {}),
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Facts:
        """Return facts from the dictionary form of :meth:`to_dict`."""
        return cls.build(
            age=data.get("age"),
            sex=data.get("sex"),
            language=str(data.get("language") or "zh"),
            tags=data.get("tags") or (),
            observations=data.get("observations") or {},
            profile=data.get("profile") or {},
        )

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dictionary."""
        return {
            "age": self.age,
            "sex": self.sex,
            "language": self.language,
            "tags": sorted(self.tags),
            "observations": dict(self.observations),
            "profile": dict(self.profile),
        }


EMPTY_FACTS = Facts()
