"""Diet, activity and mental-health advice from a patient's categories, risks and answers.

The rules are data (``advice_rules.yaml``): every line has a stable id, a guideline source
(clinical-spec.md section 9: 中国居民膳食指南 2022, WHO 2020; and the guidelines of section 7) and
a conflict group. Lines of one group are alternatives: only the highest-priority one is given (ties:
the smaller id), so no two lines contradict each other. A clinician can suppress a line or replace
its text for one patient by id; suppression applies after conflict resolution, so suppressing a
line never brings in an alternative the rules had set aside. Locked lines (the crisis line) can be
neither suppressed nor edited.

Use::

    facts = AdviceFacts.from_results(results, LifestyleAnswers(moderate_minutes_per_week=60, age=67))
    advice = advise(facts, suppressed={"diet.oil_25_30g"}, overrides={"smoking.quit": Label(zh, en)})
    [line.text.zh for line in advice.lines]
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import cast

import yaml

from care.clinical.common import Label, Lang, RuleDataError
from care.clinical.ranges import Interval, check_cover, rule_packs
from care.clinical.risk import MODEL_ORDER, NO_VALUE_CATEGORIES, RiskResult, get_model
from care.clinical.risk.lipids import OVERALL as LIPID_OVERALL

# --- conditions ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AdviceFacts:
    """What advice is decided on: each model's category, and flags (model flags and lifestyle)."""

    categories: Mapping[str, str] = field(default_factory=dict)
    flags: frozenset[str] = frozenset()

    @classmethod
    def from_results(
        cls,
        results: Iterable[RiskResult],
        answers: LifestyleAnswers | None = None,
        *,
        rules: AdviceRules | None = None,
    ) -> AdviceFacts:
        """Collect categories and flags from model results, plus the lifestyle flags of ``answers``.

        Results without a value (incomplete, not applicable, implausible, out of range) give no
        category, only the flags they raised (the PHQ-9 safety flag is raised even when items are missing).
        """
        categories: dict[str, str] = {}
        flags: set[str] = set()
        for result in results:
            if result.category not in NO_VALUE_CATEGORIES:
                categories[result.model] = result.category
            flags.update(result.flags)
        if answers is not None:
            flags |= (rules or advice_rules()).lifestyle_flags(answers)
        return cls(categories=categories, flags=frozenset(flags))


class Condition:
    """A test over :class:`AdviceFacts`."""

    def holds(self, facts: AdviceFacts) -> bool:  # pragma: no cover - abstract
        """Return True when the condition is met."""
        raise NotImplementedError


@dataclass(frozen=True)
class FlagSet(Condition):
    """``{flag: NAME}``."""

    flag: str

    def holds(self, facts: AdviceFacts) -> bool:
        """True when the flag is set."""
        return self.flag in facts.flags


@dataclass(frozen=True)
class CategoryIn(Condition):
    """``{category: {MODEL: [KEY, ...]}}``."""

    model: str
    keys: frozenset[str]

    def holds(self, facts: AdviceFacts) -> bool:
        """True when the model's category is one of the keys."""
        return facts.categories.get(self.model) in self.keys


@dataclass(frozen=True)
class AllOf(Condition):
    """``{all: [...]}``."""

    parts: tuple[Condition, ...]

    def holds(self, facts: AdviceFacts) -> bool:
        """True when every part holds."""
        return all(part.holds(facts) for part in self.parts)


@dataclass(frozen=True)
class AnyOf(Condition):
    """``{any: [...]}``."""

    parts: tuple[Condition, ...]

    def holds(self, facts: AdviceFacts) -> bool:
        """True when at least one part holds."""
        return any(part.holds(facts) for part in self.parts)


@dataclass(frozen=True)
class Not(Condition):
    """``{not: {...}}``."""

    part: Condition

    def holds(self, facts: AdviceFacts) -> bool:
        """True when the part does not hold."""
        return not self.part.holds(facts)


@dataclass(frozen=True)
class _Context:
    known_flags: frozenset[str]
    where: str


def _parse_flag(raw: object, context: _Context) -> Condition:
    if not isinstance(raw, str) or raw not in context.known_flags:
        raise RuleDataError(f"{context.where}: unknown flag {raw!r} (declare it under 'facts')")
    return FlagSet(raw)


def known_categories(model: str) -> frozenset[str]:
    """Return every category key ``model`` can produce, over all its rule packs."""
    if model == "lipids":
        return frozenset(LIPID_OVERALL)
    scheme = rule_packs().schemes[get_model(model).scheme]
    keys: set[str] = set()
    for pack in scheme.packs.values():
        keys.update(pack.order())
    return frozenset(keys)


def _parse_category(raw: object, context: _Context) -> Condition:
    if not isinstance(raw, dict) or len(raw) != 1:
        raise RuleDataError(f"{context.where}: 'category' needs exactly one MODEL: [KEYS]")
    ((model, keys),) = raw.items()
    if model not in MODEL_ORDER:
        raise RuleDataError(f"{context.where}: unknown model {model!r}")
    if not isinstance(keys, list) or not keys:
        raise RuleDataError(f"{context.where}: categories of {model} must be a non-empty list")
    unknown = sorted(str(key) for key in keys if key not in known_categories(model))
    if unknown:
        raise RuleDataError(f"{context.where}: {model} has no categories {unknown}")
    return CategoryIn(model, frozenset(keys))


def _parse_many(raw: object, context: _Context) -> tuple[Condition, ...]:
    if not isinstance(raw, list) or not raw:
        raise RuleDataError(f"{context.where}: 'all'/'any' need a non-empty list")
    return tuple(parse_condition(part, context) for part in raw)


#: Condition kind -> parser (STYLE.md habit 5: registries, not if-chains).
CONDITIONS: dict[str, Callable[[object, _Context], Condition]] = {
    "flag": _parse_flag,
    "category": _parse_category,
    "all": lambda raw, context: AllOf(_parse_many(raw, context)),
    "any": lambda raw, context: AnyOf(_parse_many(raw, context)),
    "not": lambda raw, context: Not(parse_condition(raw, context)),
}


def parse_condition(raw: object, context: _Context) -> Condition:
    """Parse one ``when`` condition; raise :class:`RuleDataError` naming the rule."""
    if not isinstance(raw, dict) or len(raw) != 1:
        raise RuleDataError(f"{context.where}: a condition is a mapping with one of {sorted(CONDITIONS)}")
    ((kind, body),) = raw.items()
    parser = CONDITIONS.get(kind)
    if parser is None:
        raise RuleDataError(f"{context.where}: unknown condition {kind!r}")
    return parser(body, context)


# --- lifestyle answers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LifestyleAnswers:
    """A patient's answers that advice uses; None means not answered (no flag is raised)."""

    moderate_minutes_per_week: float | None = None
    vigorous_minutes_per_week: float | None = None
    salt_g_per_day: float | None = None
    oil_g_per_day: float | None = None
    alcohol_g_per_day: float | None = None
    smoker: bool | None = None
    age: float | None = None

    def value(self, name: str) -> float | None:
        """Return the numeric answer ``name`` (a field of this class)."""
        raw = getattr(self, name)
        return None if raw is None else float(raw)


@dataclass(frozen=True)
class ThresholdFlag:
    """A flag raised when one numeric answer lies in ``interval``."""

    flag: str
    answer: str
    interval: Interval
    source: str


@dataclass(frozen=True)
class ActivityRule:
    """Weekly moderate-equivalent minutes (moderate + weight x vigorous) and their flags (spec 9.2)."""

    vigorous_weight: float
    bands: tuple[tuple[str, Interval], ...]
    source: str

    def minutes(self, moderate: float, vigorous: float) -> float:
        """Return moderate-equivalent minutes per week."""
        return moderate + self.vigorous_weight * vigorous

    def flag(self, moderate: float, vigorous: float) -> str:
        """Return ``insufficient_activity``, ``meets_minimum`` or ``exceeds``."""
        total = self.minutes(moderate, vigorous)
        return next(flag for flag, interval in self.bands if interval.contains(total))


# --- rules and the result ------------------------------------------------------------------------


@dataclass(frozen=True)
class AdviceRule:
    """One advice line and when it applies."""

    id: str
    topic: str
    group: str
    priority: int
    locked: bool
    when: Condition
    text: Label
    source: str


@dataclass(frozen=True)
class AdviceRules:
    """The loaded rule set."""

    version: str
    topics: tuple[str, ...]
    known_flags: frozenset[str]
    activity: ActivityRule
    thresholds: tuple[ThresholdFlag, ...]
    rules: tuple[AdviceRule, ...]

    def rule(self, rule_id: str) -> AdviceRule | None:
        """Return the rule with ``rule_id``, if any."""
        return next((rule for rule in self.rules if rule.id == rule_id), None)

    def lifestyle_flags(self, answers: LifestyleAnswers) -> frozenset[str]:
        """Return the flags of spec 9.2 raised by ``answers`` (activity, salt, oil, alcohol, age, smoking)."""
        flags: set[str] = set()
        moderate, vigorous = answers.moderate_minutes_per_week, answers.vigorous_minutes_per_week
        if moderate is not None or vigorous is not None:
            flags.add(self.activity.flag(moderate or 0.0, vigorous or 0.0))
        for threshold in self.thresholds:
            value = answers.value(threshold.answer)
            if value is not None and threshold.interval.contains(value):
                flags.add(threshold.flag)
        if answers.smoker:
            flags.add("smoker")
        return frozenset(flags)


@dataclass(frozen=True)
class AdviceLine:
    """One line of advice as given to a patient."""

    id: str
    topic: str
    group: str
    text: Label
    source: str
    locked: bool = False
    edited: bool = False

    def to_dict(self) -> dict[str, object]:
        """Return a JSON-ready mapping."""
        return {
            "id": self.id,
            "topic": self.topic,
            "group": self.group,
            "text": self.text.to_dict(),
            "source": self.source,
            "locked": self.locked,
            "edited": self.edited,
        }


@dataclass(frozen=True)
class AdviceResult:
    """The advice for one patient and what happened to the clinician's edits."""

    lines: tuple[AdviceLine, ...]
    version: str
    #: lines the rules gave that the clinician suppressed
    suppressed: tuple[str, ...] = ()
    #: suppression or override ids that the rules do not know (e.g. a retired rule)
    unknown_ids: tuple[str, ...] = ()
    #: locked lines the clinician tried to suppress or edit (kept unchanged)
    refused: tuple[str, ...] = ()

    def texts(self, lang: Lang) -> list[str]:
        """Return the lines' texts in ``lang``."""
        return [line.text.get(lang) for line in self.lines]

    def to_dict(self) -> dict[str, object]:
        """Return a JSON-ready mapping."""
        return {
            "version": self.version,
            "lines": [line.to_dict() for line in self.lines],
            "suppressed": list(self.suppressed),
            "unknown_ids": list(self.unknown_ids),
            "refused": list(self.refused),
        }


def _winners(rules: Sequence[AdviceRule], facts: AdviceFacts) -> list[AdviceRule]:
    """Return the applicable rules, one per conflict group: highest priority, then smallest id."""
    best: dict[str, AdviceRule] = {}
    for rule in rules:
        if not rule.when.holds(facts):
            continue
        current = best.get(rule.group)
        if current is None or (-rule.priority, rule.id) < (-current.priority, current.id):
            best[rule.group] = rule
    return list(best.values())


def advise(
    facts: AdviceFacts,
    *,
    suppressed: Collection[str] = (),
    overrides: Mapping[str, Label] | None = None,
    rules: AdviceRules | None = None,
) -> AdviceResult:
    """Return the advice lines for ``facts``, ordered by topic, then priority, then id.

    ``suppressed`` and ``overrides`` are the clinician's per-patient choices, by line id.
    """
    chosen = rules or advice_rules()
    edits = dict(overrides or {})
    known = {rule.id for rule in chosen.rules}
    locked = {rule.id for rule in chosen.rules if rule.locked}
    lines: list[AdviceLine] = []
    dropped: list[str] = []
    for rule in _winners(chosen.rules, facts):
        if rule.id in suppressed and not rule.locked:
            dropped.append(rule.id)
            continue
        edit = None if rule.locked else edits.get(rule.id)
        lines.append(
            AdviceLine(
                id=rule.id,
                topic=rule.topic,
                group=rule.group,
                text=edit or rule.text,
                source=rule.source,
                locked=rule.locked,
                edited=edit is not None,
            )
        )
    order = {topic: index for index, topic in enumerate(chosen.topics)}
    priority = {rule.id: rule.priority for rule in chosen.rules}
    lines.sort(key=lambda line: (order[line.topic], -priority[line.id], line.id))
    asked = set(suppressed) | set(edits)
    return AdviceResult(
        lines=tuple(lines),
        version=chosen.version,
        suppressed=tuple(sorted(dropped)),
        unknown_ids=tuple(sorted(asked - known)),
        refused=tuple(sorted(asked & locked)),
    )


# --- loading -------------------------------------------------------------------------------------

_RULE_KEYS = frozenset({"id", "topic", "group", "priority", "locked", "when", "text", "source"})


def _interval(data: Mapping[str, object], where: str) -> Interval:
    # Same vocabulary as rule_packs.yaml: from / above / below / to.
    def number(key: str) -> float | None:
        raw = data.get(key)
        if raw is None:
            return None
        if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
            raise RuleDataError(f"{where}: '{key}' must be a number")
        return float(raw)

    start, above, below, to = number("from"), number("above"), number("below"), number("to")
    return Interval(
        lower=start if start is not None else above,
        lower_inclusive=above is None,
        upper=below if below is not None else to,
        upper_inclusive=to is not None,
    )


def _activity(raw: object) -> ActivityRule:
    if not isinstance(raw, dict):
        raise RuleDataError("lifestyle.activity: a mapping is required")
    weight, source, bands = raw.get("vigorous_weight"), raw.get("source"), raw.get("bands")
    if isinstance(weight, bool) or not isinstance(weight, int | float) or weight <= 0:
        raise RuleDataError("lifestyle.activity: 'vigorous_weight' must be a positive number")
    if not isinstance(source, str) or not isinstance(bands, list):
        raise RuleDataError("lifestyle.activity: 'source' and 'bands' are required")
    parsed = tuple((str(band.get("flag")), _interval(band, f"lifestyle.activity {band.get('flag')}")) for band in bands)
    check_cover([interval for _, interval in parsed], "lifestyle.activity")
    return ActivityRule(vigorous_weight=float(weight), bands=parsed, source=source)


def _thresholds(raw: object) -> tuple[ThresholdFlag, ...]:
    if not isinstance(raw, list):
        raise RuleDataError("lifestyle.thresholds: a list is required")
    answers = set(LifestyleAnswers.__dataclass_fields__)
    result = []
    for item in raw:
        where = f"lifestyle.thresholds {item.get('flag') if isinstance(item, dict) else item!r}"
        if not isinstance(item, dict) or item.get("answer") not in answers or not isinstance(item.get("source"), str):
            raise RuleDataError(f"{where}: needs 'flag', a known 'answer' and 'source'")
        result.append(ThresholdFlag(str(item["flag"]), str(item["answer"]), _interval(item, where), item["source"]))
    return tuple(result)


def _rule(raw: object, topics: Sequence[str], known_flags: frozenset[str], index: int) -> AdviceRule:
    if not isinstance(raw, dict):
        raise RuleDataError(f"rule {index}: must be a mapping")
    rule_id = raw.get("id")
    where = f"rule {rule_id or index}"
    unknown = sorted(str(key) for key in raw if key not in _RULE_KEYS)
    if unknown:
        raise RuleDataError(f"{where}: unknown keys {unknown}")
    topic, group, priority, source = raw.get("topic"), raw.get("group"), raw.get("priority"), raw.get("source")
    if not isinstance(rule_id, str) or not rule_id:
        raise RuleDataError(f"{where}: an 'id' is required")
    if topic not in topics:
        raise RuleDataError(f"{where}: topic {topic!r} is not one of {list(topics)}")
    if not isinstance(group, str) or not group:
        raise RuleDataError(f"{where}: a conflict 'group' is required")
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise RuleDataError(f"{where}: 'priority' must be a whole number")
    if not isinstance(source, str) or not source.strip():
        raise RuleDataError(f"{where}: a guideline 'source' is required")
    locked = raw.get("locked", False)
    if not isinstance(locked, bool):
        raise RuleDataError(f"{where}: 'locked' must be true or false")
    if "when" not in raw:
        raise RuleDataError(f"{where}: a 'when' condition is required")
    return AdviceRule(
        id=rule_id,
        topic=cast(str, topic),
        group=group,
        priority=priority,
        locked=locked,
        when=parse_condition(raw["when"], _Context(known_flags, where)),
        text=Label.from_mapping(raw.get("text"), f"{where} text"),
        source=source,
    )


def load_advice_rules(text: str) -> AdviceRules:
    """Parse and check an advice rule document; raise :class:`RuleDataError` naming the bad rule."""
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise RuleDataError("advice rules: a mapping is required")
    version, topics, facts = data.get("version"), data.get("topics"), data.get("facts")
    lifestyle = data.get("lifestyle")
    if not isinstance(version, str) or not version:
        raise RuleDataError("advice rules: a 'version' is required")
    if not isinstance(topics, list) or not all(isinstance(topic, str) for topic in topics):
        raise RuleDataError("advice rules: 'topics' must be a list of names")
    if not isinstance(facts, list) or not all(isinstance(flag, str) for flag in facts):
        raise RuleDataError("advice rules: 'facts' must be a list of flag names")
    if not isinstance(lifestyle, dict):
        raise RuleDataError("advice rules: 'lifestyle' is required")
    activity = _activity(lifestyle.get("activity"))
    thresholds = _thresholds(lifestyle.get("thresholds"))
    produced = {flag for flag, _ in activity.bands} | {threshold.flag for threshold in thresholds} | {"smoker"}
    undeclared = sorted(produced - set(facts))
    if undeclared:
        raise RuleDataError(f"advice rules: lifestyle flags {undeclared} are not declared under 'facts'")
    raw_rules = data.get("rules")
    if not isinstance(raw_rules, list) or not raw_rules:
        raise RuleDataError("advice rules: 'rules' must be a non-empty list")
    known_flags = frozenset(facts)
    rules = tuple(_rule(raw, topics, known_flags, index) for index, raw in enumerate(raw_rules, start=1))
    ids = [rule.id for rule in rules]
    duplicates = sorted({rule_id for rule_id in ids if ids.count(rule_id) > 1})
    if duplicates:
        raise RuleDataError(f"advice rules: duplicate ids {duplicates}")
    return AdviceRules(
        version=version,
        topics=tuple(topics),
        known_flags=known_flags,
        activity=activity,
        thresholds=thresholds,
        rules=rules,
    )


@functools.cache
def advice_rules() -> AdviceRules:
    """Return the packaged advice rules, loaded and checked once per process."""
    text = resources.files("care.clinical").joinpath("advice_rules.yaml").read_text(encoding="utf-8")
    return load_advice_rules(text)


def activity_flag(moderate_minutes: float, vigorous_minutes: float) -> str:
    """Return the WHO 2020 activity flag for weekly minutes (moderate + 2 x vigorous; spec 9.2)."""
    return advice_rules().activity.flag(moderate_minutes, vigorous_minutes)


__all__ = [
    "AdviceFacts",
    "AdviceLine",
    "AdviceResult",
    "AdviceRules",
    "LifestyleAnswers",
    "activity_flag",
    "advice_rules",
    "advise",
    "load_advice_rules",
]
