"""Deployment choices of the clinical rules: which rule pack per scheme, and policies.

The defaults follow clinical-spec.md: BP 140/90 (HTN-CN-2018), Chinese glucose cut-offs (DM-CN-2020),
Chinese BMI (BMI-CN-2013), uric acid > 420 for both sexes (UA-CN-2019), China-PAR only for ages 35-74
(clinical-spec.md 10a: "20-34 and 75+ only as extrapolated when configured").

A clinic that follows the 2022 clinical-practice guideline (130/80), the ADA glucose cut-offs or the
older female uric-acid threshold builds its config with :meth:`ClinicalConfig.from_options`::

    ClinicalConfig.from_options(bp_threshold="130/80", glucose="ADA", uric_acid_female_threshold=360)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from care.clinical.common import ClinicalError

AgePolicy = Literal["flag", "refuse"]

_BP_PACKS = {"140/90": "HTN-CN-2018", "130/80": "HTN-CN-2022"}
_GLUCOSE_PACKS = {"CN": "DM-CN-2020", "ADA": "DM-ADA-2024"}
_BMI_PACKS = {"CN": "BMI-CN-2013", "WHO": "BMI-WHO-2000"}
_UA_PACKS: dict[int | None, str] = {None: "UA-CN-2019", 360: "UA-CN-2019-F360"}


class ConfigError(ClinicalError):
    """An unknown scheme, rule pack or policy in a :class:`ClinicalConfig`."""


@dataclass(frozen=True)
class ClinicalConfig:
    """Which rule pack each scheme uses (``scheme -> pack name``), and the model policies.

    ``packs`` lists only the schemes that differ from the default pack.
    ``china_par_age_policy``: ``"refuse"`` (the default) gives ``out_of_range`` outside ages 35-74;
    ``"flag"`` computes from age 20 and flags ``extrapolated`` outside 35-74 (clinical-spec.md 1.4, 10a).
    """

    packs: Mapping[str, str] = field(default_factory=dict)
    china_par_age_policy: AgePolicy = "refuse"

    def __post_init__(self) -> None:
        # Imported here: ranges imports this module for its default configuration.
        from care.clinical.ranges import rule_packs

        known = rule_packs()
        for scheme, pack in self.packs.items():
            known.pack(scheme, pack)  # raises ConfigError naming the scheme or pack
        if self.china_par_age_policy not in ("flag", "refuse"):
            raise ConfigError(f"unknown China-PAR age policy {self.china_par_age_policy!r} (flag or refuse)")
        object.__setattr__(self, "packs", MappingProxyType(dict(self.packs)))

    def pack_name(self, scheme: str) -> str | None:
        """Return the pack chosen for ``scheme``, or None for the scheme's default."""
        return self.packs.get(scheme)

    @classmethod
    def from_options(
        cls,
        *,
        bp_threshold: str = "140/90",
        glucose: str = "CN",
        bmi: str = "CN",
        uric_acid_female_threshold: int | None = None,
        china_par_age_policy: AgePolicy = "refuse",
    ) -> ClinicalConfig:
        """Build a config from the named clinical choices of clinical-spec.md 7.1-7.5 and 1.4."""
        choices: list[tuple[str, Mapping[Any, str], object]] = [
            ("bp", _BP_PACKS, bp_threshold),
            ("fpg", _GLUCOSE_PACKS, glucose),
            ("hba1c", _GLUCOSE_PACKS, glucose),
            ("bmi", _BMI_PACKS, bmi),
            ("ua", _UA_PACKS, uric_acid_female_threshold),
        ]
        packs: dict[str, str] = {}
        for scheme, table, choice in choices:
            if choice not in table:
                allowed = ", ".join(str(option) for option in table)
                raise ConfigError(f"unknown {scheme} option {choice!r} (allowed: {allowed})")
            packs[scheme] = table[choice]
        return cls(packs=packs, china_par_age_policy=china_par_age_policy)

