"""Clinical logic: units, reference ranges, risk scores, trends, advice, summaries, reports.

Pure code: no database, no Flask, nothing above ``care`` in DESIGN.md's table. Every number comes
from ``shared/clinical-spec.md`` and lives in versioned rule data; every result carries its rule-pack
version and citation. Importing this package imports none of its modules (matplotlib and ReportLab
load only when charts or reports are used).

Modules (one responsibility each):

- ``units``: canonical units and conversions (``to_canonical(analyte, value, unit)``).
- ``plausibility``: the checks before any arithmetic (``check_values({...})``, clinical-spec.md 10a).
- ``codes``: the indicator catalogue, LOINC codes (``resolve(code, value, unit)``).
- ``config``: which rule pack each scheme uses (``ClinicalConfig.from_options(...)``).
- ``ranges`` + ``rule_packs.yaml``: categories and reference ranges (``classify``, ``classify_bp``,
  ``reference_range``).
- ``risk``: the risk models, one module each, registered by name (``risk.evaluate(name, inputs)``).
- ``trends``: changes, slope, flag, category and a sentence per indicator (``analyse``).
- ``charts``: SVG/PNG trend charts with the reference band (``render_trend``).
- ``fonts``: the CJK font from ``mplfonts`` and TrueType subsets for PDFs.
- ``advice`` + ``advice_rules.yaml``: advice lines with sources and conflict groups (``advise``).
- ``summary``: the stage summary of a period (``compute_stage_summary``).
- ``report_pdf``: the printable A4 report (``render_report(ReportData)``).
"""
