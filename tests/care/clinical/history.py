"""A deterministic 5-year synthetic check-up history (one patient), shared by the clinical tests."""

from __future__ import annotations

from datetime import date

YEARS = (2020, 2021, 2022, 2023, 2024)

#: Annual check-ups in May; values in canonical units, chosen so each series has a known shape.
ANNUAL: dict[str, tuple[float, ...]] = {
    "sbp": (124, 128, 133, 140, 146),  # rising 4 years in a row
    "dbp": (80, 84, 79, 86, 82),  # up and down
    "weight": (75.0, 75.2, 74.9, 75.1, 75.0),  # stable
    "bmi": (26.0, 26.1, 25.9, 26.0, 26.0),  # stable
    "waist": (96.0, 94.0, 92.0, 90.0, 88.0),  # falling 4 years in a row
    "fpg": (5.2, 5.5, 5.8, 6.1, 6.4),  # rising
    "tc": (5.1, 5.2, 5.4, 5.5, 5.6),  # small steps: rising overall
    "ldl": (3.0, 3.2, 3.1, 3.3, 3.4),
    "hdl": (1.40, 1.30, 1.20, 1.08, 0.95),  # falling below 1.0
    "tg": (1.6, 1.8, 2.0, 1.7, 2.1),
    "ua": (380, 395, 410, 425, 440),
    "alt": (28, 30, 29, 31, 30),
    "cr": (80, 82, 85, 88, 95),
    "egfr": (93.0, 90.5, 88.0, 85.0, 78.0),
}


def annual(code: str) -> list[tuple[date, float]]:
    """Return the annual series of ``code``."""
    return [(date(year, 5, 12), value) for year, value in zip(YEARS, ANNUAL[code], strict=True)]


def history() -> dict[str, list[tuple[date, float]]]:
    """Return every annual series."""
    return {code: annual(code) for code in ANNUAL}
