"""Reference ranges and guideline categories, read from the versioned rule packs.

Source: clinical-spec.md section 7 (categories and fallback ranges) and section 0 (categories are
applied to the displayed, rounded value). The numbers live in ``rule_packs.yaml``; this module only
reads, checks and applies them. A range printed on the lab report always wins over the fallbacks.
A value is checked for plausibility first (:mod:`care.clinical.plausibility`, spec 10a): an
impossible value gets no category (:class:`~care.clinical.plausibility.ImplausibleError`).

Public calls::

    classify("bmi", 24.2)                       -> Classification(key="overweight", label=超重/Overweight, ...)
    classify("fpg", 2.5)                        -> hypoglycaemia_level2 (低血糖2级), flag hypoglycaemia_red_flag
    classify_bp(145, 85)                        -> grade1 with flags ("isolated_systolic",)
    classify_bp(80, 120)                        -> ImplausibleError (SBP must be higher than DBP)
    hypoglycaemia("2345-7", 45, "mg/dL")        -> hypoglycaemia_level2 (any glucose reading, spec 7.3)
    reference_range("alt", sex="male")          -> ReferenceRange(9, 50, source="WST404-2012/2015")
    reference_range("fpg", lab_low=3.9, lab_high=6.1)  -> the lab's range (source "lab")
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Literal, cast

import yaml

from care.clinical import codes, plausibility, units
from care.clinical.common import ClinicalError, Label, RuleDataError, display_round, format_number
from care.clinical.config import ClinicalConfig, ConfigError

Flag = Literal["low", "normal", "high"]
Sex = Literal["male", "female"]
FLAGS: tuple[Flag, ...] = ("low", "normal", "high")
SEXES: tuple[Sex, ...] = ("male", "female")

#: Indicator short code -> scheme of rule_packs.yaml (sbp and dbp are components of "bp").
INDICATOR_SCHEMES: dict[str, str] = {
    "sbp": "bp",
    "dbp": "bp",
    "bmi": "bmi",
    "waist": "waist",
    "fpg": "fpg",
    "hba1c": "hba1c",
    "tc": "tc",
    "ldl": "ldl",
    "hdl": "hdl",
    "tg": "tg",
    "non_hdl": "non_hdl",
    "ua": "ua",
    "egfr": "egfr",
}

LAB_SOURCE = "lab"


class SexRequiredError(ClinicalError):
    """A sex-specific rule was applied without the patient's sex."""


@dataclass(frozen=True, slots=True)
class Interval:
    """A part of the real line: ``lower``/``upper`` None mean unbounded."""

    lower: float | None = None
    lower_inclusive: bool = True
    upper: float | None = None
    upper_inclusive: bool = False

    def contains(self, value: float) -> bool:
        """Return True when ``value`` lies inside the interval."""
        if self.lower is not None and (value < self.lower or (value == self.lower and not self.lower_inclusive)):
            return False
        return not (
            self.upper is not None and (value > self.upper or (value == self.upper and not self.upper_inclusive))
        )

    def text(self, places: int) -> str:
        """Return the interval as printed on a report: ``3.9-6.1``, ``<5.20``, ``≥1.00``, ``>420``."""
        low = None if self.lower is None else format_number(self.lower, places)
        high = None if self.upper is None else format_number(self.upper, places)
        if low is not None and high is not None:
            left = "" if self.lower_inclusive else ">"
            right = "" if self.upper_inclusive else "<"
            return f"{left}{low}-{right}{high}"
        if low is not None:
            return ("≥" if self.lower_inclusive else ">") + low
        if high is not None:
            return ("≤" if self.upper_inclusive else "<") + high
        return "-"


@dataclass(frozen=True, slots=True)
class Band:
    """One category of a scheme: its interval, labels, reference flag and notes."""

    key: str
    label: Label
    flag: Flag
    interval: Interval
    notes: tuple[Label, ...] = ()


@dataclass(frozen=True, slots=True)
class FlagRule:
    """An extra flag raised inside a band (e.g. TG >= 5.6 -> ``pancreatitis_risk``)."""

    flag: str
    interval: Interval
    message: Label


@dataclass(frozen=True, slots=True)
class Classification:
    """A value's category under one rule pack."""

    scheme: str
    key: str
    label: Label
    flag: Flag
    rule_pack: str
    citation: str
    value: float
    notes: tuple[Label, ...] = ()
    flags: tuple[str, ...] = ()
    messages: tuple[Label, ...] = ()
    #: display precision of ``value``; 0 means a whole number
    decimals: int = 1

    @property
    def shown(self) -> float | int:
        """The displayed value: an int when the pack shows whole numbers."""
        return int(self.value) if self.decimals == 0 else self.value

    def to_dict(self) -> dict[str, object]:
        """Return a JSON-ready mapping."""
        return {
            "scheme": self.scheme,
            "key": self.key,
            "label": self.label.to_dict(),
            "flag": self.flag,
            "rule_pack": self.rule_pack,
            "citation": self.citation,
            "value": self.shown,
            "notes": [note.to_dict() for note in self.notes],
            "flags": list(self.flags),
        }


@dataclass(frozen=True, slots=True)
class ReferenceRange:
    """The range a value is flagged against; ``source`` is ``"lab"`` or a rule-pack version."""

    interval: Interval
    unit: str
    source: str

    @property
    def low(self) -> float | None:
        """The lower limit, if any."""
        return self.interval.lower

    @property
    def high(self) -> float | None:
        """The upper limit, if any."""
        return self.interval.upper

    def flag(self, value: float) -> Flag:
        """Return ``low``, ``normal`` or ``high`` for ``value`` against this range."""
        if self.interval.contains(value):
            return "normal"
        if self.interval.lower is not None and value <= self.interval.lower:
            return "low"
        return "high"

    def text(self, places: int) -> str:
        """Return the range as printed, e.g. ``3.9-6.1``."""
        return self.interval.text(places)


@dataclass(frozen=True)
class BandPack:
    """A one-dimensional scheme: ordered bands covering the whole line, optionally per sex."""

    scheme: str
    name: str
    citation: str
    confidence: str
    decimals: int
    bands_by_sex: Mapping[str, tuple[Band, ...]]
    extra_flags: tuple[FlagRule, ...] = ()
    notes: tuple[Label, ...] = ()

    @property
    def needs_sex(self) -> bool:
        """True when the bands differ by sex."""
        return "any" not in self.bands_by_sex

    def bands(self, sex: str | None) -> tuple[Band, ...]:
        """Return the bands for ``sex``; raise :class:`SexRequiredError` when needed and missing."""
        if not self.needs_sex:
            return self.bands_by_sex["any"]
        if sex not in self.bands_by_sex:
            raise SexRequiredError(f"{self.scheme} ({self.name}) needs the patient's sex (male or female)")
        return self.bands_by_sex[cast(str, sex)]

    def order(self) -> tuple[str, ...]:
        """Return the category keys from lowest to highest."""
        first = next(iter(self.bands_by_sex.values()))
        return tuple(band.key for band in first)

    def severity(self, key: str) -> int:
        """Return how far category ``key`` is from the most desirable one (0 = most desirable).

        The most desirable category is the normal band farthest from the abnormal side: the first
        normal band when abnormal bands lie above (BP, lipids, risk scores), the last when they lie
        below (eGFR). Raises KeyError for an unknown key.
        """
        return _severity(next(iter(self.bands_by_sex.values())), key)

    def classify(self, value: float, sex: str | None = None) -> Classification:
        """Classify ``value`` after rounding it to the pack's display precision (spec section 0)."""
        shown = display_round(value, self.decimals)
        band = next(band for band in self.bands(sex) if band.interval.contains(shown))
        raised = [rule for rule in self.extra_flags if rule.interval.contains(shown)]
        return Classification(
            scheme=self.scheme,
            key=band.key,
            label=band.label,
            flag=band.flag,
            rule_pack=self.name,
            citation=self.citation,
            value=shown,
            notes=band.notes + self.notes,
            flags=tuple(rule.flag for rule in raised),
            messages=tuple(rule.message for rule in raised),
            decimals=self.decimals,
        )

    def reference(self, unit: str, sex: str | None = None) -> ReferenceRange:
        """Return the union of the pack's ``normal`` bands as a reference range."""
        normal = [band.interval for band in self.bands(sex) if band.flag == "normal"]
        return ReferenceRange(
            interval=Interval(
                lower=normal[0].lower,
                lower_inclusive=normal[0].lower_inclusive,
                upper=normal[-1].upper,
                upper_inclusive=normal[-1].upper_inclusive,
            ),
            unit=unit,
            source=self.name,
        )


@dataclass(frozen=True)
class BpPack:
    """Blood-pressure categories: SBP and DBP graded separately, the higher grade wins."""

    scheme: str
    name: str
    citation: str
    confidence: str
    decimals: int
    categories: tuple[Band, ...]
    components: Mapping[str, tuple[Band, ...]]
    isolated_systolic: tuple[float, float]
    notes: tuple[Label, ...] = ()

    @property
    def needs_sex(self) -> bool:
        """Blood-pressure categories do not depend on sex."""
        return False

    def order(self) -> tuple[str, ...]:
        """Return the category keys from lowest to highest."""
        return tuple(category.key for category in self.categories)

    def severity(self, key: str) -> int:
        """Return how far category ``key`` is from normal blood pressure (0)."""
        return _severity(self.categories, key)

    def _category(self, key: str) -> Band:
        return next(category for category in self.categories if category.key == key)

    def _component(self, component: str, value: float) -> tuple[float, Band]:
        shown = display_round(value, self.decimals)
        band = next(band for band in self.components[component] if band.interval.contains(shown))
        return shown, self._category(band.key)

    def classify_component(self, component: str, value: float) -> Classification:
        """Classify SBP or DBP alone (used for one indicator's trend)."""
        shown, category = self._component(component, value)
        return Classification(
            scheme=self.scheme,
            key=category.key,
            label=category.label,
            flag=category.flag,
            rule_pack=self.name,
            citation=self.citation,
            value=shown,
            notes=self.notes,
            decimals=self.decimals,
        )

    def classify(self, sbp: float, dbp: float) -> Classification:
        """Return the higher of the SBP and DBP grades; flag ``isolated_systolic`` (spec 7.2)."""
        sbp_shown, by_sbp = self._component("sbp", sbp)
        dbp_shown, by_dbp = self._component("dbp", dbp)
        order = self.order()
        worst = max(by_sbp, by_dbp, key=lambda band: order.index(band.key))
        sbp_from, dbp_below = self.isolated_systolic
        flags = ("isolated_systolic",) if sbp_shown >= sbp_from and dbp_shown < dbp_below else ()
        return Classification(
            scheme=self.scheme,
            key=worst.key,
            label=worst.label,
            flag=worst.flag,
            rule_pack=self.name,
            citation=self.citation,
            value=sbp_shown,
            notes=self.notes,
            flags=flags,
            decimals=self.decimals,
        )

    def reference(self, unit: str, component: str) -> ReferenceRange:
        """Return the range below the hypertension threshold of ``component`` (``sbp``/``dbp``)."""
        normal = [
            band.interval for band in self.components[component] if self._category(band.key).flag == "normal"
        ]
        return ReferenceRange(
            interval=Interval(
                lower=None, upper=normal[-1].upper, upper_inclusive=normal[-1].upper_inclusive
            ),
            unit=unit,
            source=self.name,
        )


Pack = BandPack | BpPack


def _severity(bands: Sequence[Band], key: str) -> int:
    keys = [band.key for band in bands]
    if key not in keys:
        raise KeyError(key)
    normal = [index for index, band in enumerate(bands) if band.flag == "normal"]
    abnormal_below = any(band.flag != "normal" for band in bands[: normal[0]])
    abnormal_above = any(band.flag != "normal" for band in bands[normal[-1] + 1 :])
    best = normal[-1] if abnormal_below and not abnormal_above else normal[0]
    return abs(keys.index(key) - best)


@dataclass(frozen=True)
class Scheme:
    """A classification scheme and its alternative packs."""

    name: str
    title: Label
    default: str
    packs: Mapping[str, Pack]


@dataclass(frozen=True)
class IntervalEntry:
    """One fallback reference interval row, optionally limited to an age band."""

    low: float
    high: float
    age_from: float | None = None
    age_below: float | None = None


@dataclass(frozen=True)
class RulePacks:
    """Every scheme of ``rule_packs.yaml`` and the fallback reference intervals."""

    schemes: Mapping[str, Scheme]
    intervals_version: str
    intervals_citation: str
    intervals: Mapping[str, Mapping[str, tuple[IntervalEntry, ...]]] = field(default_factory=dict)

    def pack(self, scheme: str, name: str | None = None) -> Pack:
        """Return pack ``name`` of ``scheme`` (its default when None); raise :class:`ConfigError`."""
        found = self.schemes.get(scheme)
        if found is None:
            raise ConfigError(f"unknown rule scheme {scheme!r}")
        chosen = found.default if name is None else name
        try:
            return found.packs[chosen]
        except KeyError:
            known = ", ".join(found.packs)
            raise ConfigError(f"unknown rule pack {chosen!r} for {scheme} (known: {known})") from None

    def for_config(self, scheme: str, config: ClinicalConfig | None) -> Pack:
        """Return the pack that ``config`` chooses for ``scheme``."""
        return self.pack(scheme, None if config is None else config.pack_name(scheme))


# --- loading and checking the YAML -------------------------------------------------------------


def _number(data: Mapping[str, object], key: str, where: str) -> float | None:
    raw = data.get(key)
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise RuleDataError(f"{where}: '{key}' must be a number")
    return float(raw)


def _interval(data: Mapping[str, object], where: str) -> Interval:
    start, above = _number(data, "from", where), _number(data, "above", where)
    below, to = _number(data, "below", where), _number(data, "to", where)
    if start is not None and above is not None:
        raise RuleDataError(f"{where}: use either 'from' or 'above'")
    if below is not None and to is not None:
        raise RuleDataError(f"{where}: use either 'below' or 'to'")
    return Interval(
        lower=start if start is not None else above,
        lower_inclusive=above is None,
        upper=below if below is not None else to,
        upper_inclusive=to is not None,
    )


_BAND_KEYS = frozenset({"key", "zh", "en", "from", "above", "below", "to", "flag", "notes"})
_NOTE_KEYS = frozenset({"zh", "en"})
_CATEGORY_KEYS = frozenset({"key", "zh", "en", "flag"})
_COMPONENT_KEYS = frozenset({"key", "from", "above", "below", "to"})
_FLAG_RULE_KEYS = frozenset({"flag", "from", "above", "below", "to", "zh", "en"})


def _check_keys(data: object, allowed: frozenset[str], where: str) -> None:
    """Refuse unknown keys: a stray comma in a YAML flow mapping silently makes one."""
    if not isinstance(data, dict):
        raise RuleDataError(f"{where}: must be a mapping")
    unknown = sorted(str(name) for name in data if name not in allowed)
    if unknown:
        raise RuleDataError(f"{where}: unknown keys {unknown} (a comma inside unquoted text?)")


def _notes(data: Mapping[str, object], where: str) -> tuple[Label, ...]:
    raw = data.get("notes") or []
    if not isinstance(raw, list):
        raise RuleDataError(f"{where}: 'notes' must be a list")
    for i, note in enumerate(raw):
        _check_keys(note, _NOTE_KEYS, f"{where} note {i + 1}")
    return tuple(Label.from_mapping(note, f"{where} note {i + 1}") for i, note in enumerate(raw))


def _flag(data: Mapping[str, object], where: str) -> Flag:
    raw = data.get("flag")
    for flag in FLAGS:
        if raw == flag:
            return flag
    raise RuleDataError(f"{where}: 'flag' must be one of low, normal, high")


def _key(data: Mapping[str, object], where: str) -> str:
    raw = data.get("key")
    if not isinstance(raw, str) or not raw:
        raise RuleDataError(f"{where}: every band needs a 'key'")
    return raw


def check_cover(intervals: Sequence[Interval], where: str) -> None:
    """Check that ``intervals`` are ordered, do not overlap and cover the whole line."""
    if not intervals:
        raise RuleDataError(f"{where}: no bands")
    if intervals[0].lower is not None or intervals[-1].upper is not None:
        raise RuleDataError(f"{where}: the first band must be open below and the last open above")
    for before, after in zip(intervals, intervals[1:], strict=False):
        if before.upper is None or after.lower is None or before.upper != after.lower:
            raise RuleDataError(f"{where}: bands must meet end to end (gap or overlap at {before.upper})")
        if before.upper_inclusive == after.lower_inclusive:
            raise RuleDataError(f"{where}: boundary {before.upper} is in both or neither of two bands")


def _bands(raw: object, where: str) -> tuple[Band, ...]:
    if not isinstance(raw, list):
        raise RuleDataError(f"{where}: 'bands' must be a list")
    bands: list[Band] = []
    for i, item in enumerate(raw):
        spot = f"{where} band {i + 1}"
        _check_keys(item, _BAND_KEYS, spot)
        bands.append(
            Band(
                key=_key(item, spot),
                label=Label.from_mapping(item, spot),
                flag=_flag(item, spot),
                interval=_interval(item, spot),
                notes=_notes(item, spot),
            )
        )
    check_cover([band.interval for band in bands], where)
    if len({band.key for band in bands}) != len(bands):
        raise RuleDataError(f"{where}: band keys must be unique")
    if not any(band.flag == "normal" for band in bands):
        raise RuleDataError(f"{where}: at least one band must be flagged normal")
    return tuple(bands)


def _header(data: Mapping[str, object], where: str) -> tuple[str, str, int]:
    citation, confidence, decimals = data.get("citation"), data.get("confidence"), data.get("decimals")
    if not isinstance(citation, str) or not citation:
        raise RuleDataError(f"{where}: a 'citation' is required")
    if confidence not in ("V2", "V1", "U"):
        raise RuleDataError(f"{where}: 'confidence' must be V2, V1 or U")
    if isinstance(decimals, bool) or not isinstance(decimals, int) or not 0 <= decimals <= 3:
        raise RuleDataError(f"{where}: 'decimals' must be 0-3")
    return citation, str(confidence), decimals


def _band_pack(scheme: str, name: str, data: Mapping[str, object]) -> BandPack:
    where = f"{scheme}/{name}"
    citation, confidence, decimals = _header(data, where)
    if "by_sex" in data:
        by_sex = data["by_sex"]
        if not isinstance(by_sex, dict) or set(by_sex) != set(SEXES):
            raise RuleDataError(f"{where}: 'by_sex' needs exactly 'male' and 'female'")
        bands_by_sex: dict[str, tuple[Band, ...]] = {sex: _bands(by_sex[sex], f"{where} {sex}") for sex in SEXES}
        if [band.key for band in bands_by_sex["male"]] != [band.key for band in bands_by_sex["female"]]:
            raise RuleDataError(f"{where}: men and women must have the same categories in the same order")
    else:
        bands_by_sex = {"any": _bands(data.get("bands"), where)}
    extra: list[FlagRule] = []
    for i, item in enumerate(cast(list[object], data.get("flags") or [])):
        spot = f"{where} flag {i + 1}"
        _check_keys(item, _FLAG_RULE_KEYS, spot)
        if not isinstance(item, dict) or not isinstance(item.get("flag"), str):
            raise RuleDataError(f"{spot}: needs 'flag'")
        extra.append(
            FlagRule(flag=item["flag"], interval=_interval(item, spot), message=Label.from_mapping(item, spot))
        )
    return BandPack(
        scheme=scheme,
        name=name,
        citation=citation,
        confidence=confidence,
        decimals=decimals,
        bands_by_sex=bands_by_sex,
        extra_flags=tuple(extra),
        notes=_notes(data, where),
    )


def _bp_pack(scheme: str, name: str, data: Mapping[str, object]) -> BpPack:
    where = f"{scheme}/{name}"
    citation, confidence, decimals = _header(data, where)
    raw_categories = data.get("categories")
    if not isinstance(raw_categories, list):
        raise RuleDataError(f"{where}: 'categories' must be a list")
    for i, item in enumerate(raw_categories):
        _check_keys(item, _CATEGORY_KEYS, f"{where} category {i + 1}")
    categories = tuple(
        Band(
            key=_key(item, f"{where} category {i + 1}"),
            label=Label.from_mapping(item, f"{where} category {i + 1}"),
            flag=_flag(item, f"{where} category {i + 1}"),
            interval=Interval(),
        )
        for i, item in enumerate(raw_categories)
    )
    keys = [category.key for category in categories]
    components: dict[str, tuple[Band, ...]] = {}
    for component in ("sbp", "dbp"):
        raw = data.get(component)
        if not isinstance(raw, list):
            raise RuleDataError(f"{where}: '{component}' must be a list")
        bands = []
        for i, item in enumerate(raw):
            spot = f"{where} {component} band {i + 1}"
            _check_keys(item, _COMPONENT_KEYS, spot)
            key = _key(item, spot)
            if key not in keys:
                raise RuleDataError(f"{spot}: unknown category {key!r}")
            category = categories[keys.index(key)]
            bands.append(Band(key=key, label=category.label, flag=category.flag, interval=_interval(item, spot)))
        check_cover([band.interval for band in bands], f"{where} {component}")
        components[component] = tuple(bands)
    rule = data.get("isolated_systolic")
    if not isinstance(rule, dict):
        raise RuleDataError(f"{where}: 'isolated_systolic' needs sbp_from and dbp_below")
    sbp_from, dbp_below = _number(rule, "sbp_from", where), _number(rule, "dbp_below", where)
    if sbp_from is None or dbp_below is None:
        raise RuleDataError(f"{where}: 'isolated_systolic' needs sbp_from and dbp_below")
    return BpPack(
        scheme=scheme,
        name=name,
        citation=citation,
        confidence=confidence,
        decimals=decimals,
        categories=categories,
        components=components,
        isolated_systolic=(sbp_from, dbp_below),
        notes=_notes(data, where),
    )


def _intervals(raw: object) -> dict[str, dict[str, tuple[IntervalEntry, ...]]]:
    if not isinstance(raw, dict):
        raise RuleDataError("reference_intervals: 'intervals' must be a mapping")
    result: dict[str, dict[str, tuple[IntervalEntry, ...]]] = {}
    for code, by_sex in raw.items():
        if not isinstance(by_sex, dict) or set(by_sex) != set(SEXES):
            raise RuleDataError(f"reference_intervals/{code}: needs 'male' and 'female'")
        result[code] = {}
        for sex in SEXES:
            rows = []
            for i, row in enumerate(by_sex[sex]):
                spot = f"reference_intervals/{code}/{sex} row {i + 1}"
                low, high = _number(row, "low", spot), _number(row, "high", spot)
                if low is None or high is None or low >= high:
                    raise RuleDataError(f"{spot}: needs low < high")
                rows.append(
                    IntervalEntry(low, high, _number(row, "age_from", spot), _number(row, "age_below", spot))
                )
            result[code][sex] = tuple(rows)
    return result


def load_rule_packs(text: str) -> RulePacks:
    """Parse and check a rule-pack document; raise :class:`RuleDataError` naming the bad entry."""
    data = yaml.safe_load(text)
    if not isinstance(data, dict) or not isinstance(data.get("schemes"), dict):
        raise RuleDataError("rule packs: a top-level 'schemes' mapping is required")
    schemes: dict[str, Scheme] = {}
    for scheme, body in data["schemes"].items():
        if not isinstance(body, dict) or not isinstance(body.get("packs"), dict):
            raise RuleDataError(f"{scheme}: 'packs' mapping is required")
        build = _bp_pack if scheme == "bp" else _band_pack
        packs: dict[str, Pack] = {name: build(scheme, name, pack) for name, pack in body["packs"].items()}
        default = body.get("default")
        if default not in packs:
            raise RuleDataError(f"{scheme}: default pack {default!r} is not defined")
        schemes[scheme] = Scheme(
            name=scheme,
            title=Label.from_mapping(body.get("title"), f"{scheme} title"),
            default=cast(str, default),
            packs=packs,
        )
    intervals = data.get("reference_intervals") or {}
    version, citation = intervals.get("version"), intervals.get("citation")
    if not isinstance(version, str) or not isinstance(citation, str):
        raise RuleDataError("reference_intervals: 'version' and 'citation' are required")
    return RulePacks(
        schemes=schemes,
        intervals_version=version,
        intervals_citation=citation,
        intervals=_intervals(intervals.get("intervals")),
    )


@functools.cache
def rule_packs() -> RulePacks:
    """Return the packaged rule packs, loaded and checked once per process."""
    text = resources.files("care.clinical").joinpath("rule_packs.yaml").read_text(encoding="utf-8")
    return load_rule_packs(text)


# --- applying them -----------------------------------------------------------------------------


def pack_for(scheme: str, config: ClinicalConfig | None = None) -> Pack:
    """Return the pack that ``config`` (default: the spec's defaults) selects for ``scheme``."""
    return rule_packs().for_config(scheme, config)


def band_pack(scheme: str, config: ClinicalConfig | None = None) -> BandPack:
    """Return the one-dimensional pack of ``scheme`` (every scheme but ``bp``)."""
    pack = pack_for(scheme, config)
    if not isinstance(pack, BandPack):
        raise ConfigError(f"{scheme} is not a one-dimensional scheme")
    return pack


def bp_pack(config: ClinicalConfig | None = None) -> BpPack:
    """Return the blood-pressure pack selected by ``config``."""
    pack = pack_for("bp", config)
    if not isinstance(pack, BpPack):
        raise ConfigError("bp is not a blood-pressure pack")
    return pack


def classify(
    code: str, value: float, *, sex: str | None = None, config: ClinicalConfig | None = None
) -> Classification | None:
    """Return the guideline category of one indicator value, or None when the indicator has none.

    ``sbp`` and ``dbp`` alone are graded by their own component of the BP scheme; use
    :func:`classify_bp` for the combined category. Raises :class:`SexRequiredError` for a
    sex-specific scheme without ``sex``, and :class:`~care.clinical.plausibility.ImplausibleError`
    for a value that is not physiologically possible (clinical-spec.md 10a: it gets no category).
    """
    scheme = INDICATOR_SCHEMES.get(code)
    if scheme is None:
        return None
    plausibility.require_plausible({code: value})
    if scheme == "bp":
        return bp_pack(config).classify_component(code, value)
    return band_pack(scheme, config).classify(value, sex)


def classify_bp(sbp: float, dbp: float, *, config: ClinicalConfig | None = None) -> Classification:
    """Return the combined BP category: the higher grade of SBP and DBP (clinical-spec.md 7.2).

    Raises :class:`~care.clinical.plausibility.ImplausibleError` when a value is impossible or SBP is
    not above DBP (80/120 is a reversed pair, not grade 3 hypertension; spec 10a).
    """
    plausibility.require_plausible({"sbp": sbp, "dbp": dbp})
    return bp_pack(config).classify(sbp, dbp)


#: The categories of 低血糖 (hypoglycaemia), mildest first: 中国2型糖尿病防治指南(2020年版) §低血糖,
#: level 1 3.0-<3.9 mmol/L, level 2 < 3.0 mmol/L (clinical-spec.md 7.3). Both are red flags.
HYPOGLYCAEMIA_LEVELS = ("hypoglycaemia_level1", "hypoglycaemia_level2")

#: Glucose in blood, serum or plasma, fasting or not (the low-glucose rule applies to any glucose
#: measurement, spec 7.3): the fasting-glucose indicator's codes plus LOINC 2345-7 and 14749-6
#: (serum or plasma, mass and molar), 2339-0 and 15074-8 (blood), 41653-7 and 14743-9 (capillary
#: blood by glucometer), as used by FHIR R4's example Observation f001 and US Core's lab examples.
GLUCOSE_CODES: frozenset[str] = frozenset(
    {"fpg", *codes.INDICATORS["fpg"].all_loinc(), "2345-7", "14749-6", "2339-0", "15074-8", "41653-7", "14743-9"}
)


def hypoglycaemia(
    code: str, value: float, unit: str, *, config: ClinicalConfig | None = None
) -> Classification | None:
    """Return the 低血糖 category of a glucose reading, or None (not glucose, not low, or not usable).

    ``code`` is a short code or LOINC code, ``value`` in ``unit`` as recorded (mmol/L or mg/dL). A
    value in an unknown unit or outside the plausible range gets no category (spec 10a).
    """
    key = code.strip()
    if key.lower() not in GLUCOSE_CODES:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    try:
        mmol = units.to_canonical("fpg", float(value), unit)
    except units.UnitError:
        return None
    if plausibility.check_value("fpg", mmol) is not None:
        return None
    found = band_pack("fpg", config).classify(mmol)
    return found if found.key in HYPOGLYCAEMIA_LEVELS else None


def _fallback_interval(code: str, sex: str | None, age: float | None) -> ReferenceRange | None:
    packs = rule_packs()
    by_sex = packs.intervals.get(code)
    if by_sex is None or sex not in by_sex:
        return None
    for entry in by_sex[cast(str, sex)]:
        if entry.age_from is not None or entry.age_below is not None:
            if age is None:
                return None
            if entry.age_from is not None and age < entry.age_from:
                continue
            if entry.age_below is not None and age >= entry.age_below:
                continue
        return ReferenceRange(
            interval=Interval(lower=entry.low, upper=entry.high, upper_inclusive=True),
            unit="",
            source=packs.intervals_version,
        )
    return None


def reference_range(
    code: str,
    unit: str,
    *,
    sex: str | None = None,
    age: float | None = None,
    lab_low: float | None = None,
    lab_high: float | None = None,
    config: ClinicalConfig | None = None,
) -> ReferenceRange | None:
    """Return the range to flag ``code`` against, or None when there is none.

    Order (clinical-spec.md section 7): the range printed on the lab report; the WS/T 404 fallback
    interval (ALT, AST, creatinine, uric acid; by sex and age); the normal bands of the indicator's
    guideline scheme. A sex-specific range without ``sex`` gives None, never a guess.
    """
    if lab_low is not None or lab_high is not None:
        return ReferenceRange(
            interval=Interval(lower=lab_low, upper=lab_high, upper_inclusive=True), unit=unit, source=LAB_SOURCE
        )
    if code in rule_packs().intervals:
        found = _fallback_interval(code, sex, age)
        return None if found is None else ReferenceRange(found.interval, unit, found.source)
    scheme = INDICATOR_SCHEMES.get(code)
    if scheme is None:
        return None
    if scheme == "bp":
        return bp_pack(config).reference(unit, code)
    pack = band_pack(scheme, config)
    if pack.needs_sex and sex not in SEXES:
        return None
    return pack.reference(unit, sex)
