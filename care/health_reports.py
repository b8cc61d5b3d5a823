"""The printable health report (打印健康报告) of one patient, gathered from the record.

:func:`report_data` collects the patient's details, the latest results against their reference
ranges (with flags and guideline categories), trend charts as PNG, the current risk assessment,
the advice lines (with the clinician's edits) and the latest signed stage summary into a
:class:`care.clinical.report_pdf.ReportData`; :func:`print_health_report` renders it and audits
the printing. The risk assessment is brought up to date first when the record changed since it
was made, so the printed risk matches the printed results.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Literal, cast

from sqlalchemy.orm import Session

from care.advice_lines import patient_advice
from care.assessments import current_risk_results
from care.clinical.charts import PDF_CHART, render_trend
from care.clinical.common import Label, Lang
from care.clinical.report_pdf import (
    ChartImage,
    PatientDetails,
    ReportClinic,
    ReportData,
    ResultRow,
    SignedConclusion,
    render_report,
)
from care.clinical.trends import SOURCE_KINDS, SOURCE_LABELS, Trend
from care.indicators import patient_trends, sex_of, today_of, zone_of
from care.models import Patient, User
from care.stage_summaries import latest_signed_summary, stored_summary
from security.audit import Actor, log

#: Charts per report: the indicators with at least two values, out-of-range ones first.
MAX_CHARTS = 6


def _chart_order(trends: list[Trend]) -> list[Trend]:
    charted = [trend for trend in trends if len(trend.points) >= 2]
    return sorted(charted, key=lambda trend: trend.flag in (None, "normal"))[:MAX_CHARTS]


def _trend_line(trend: Trend) -> Label:
    """Return the trend sentence; when home readings are charted too, say which sources the line used."""
    if all(point.source in trend.line_sources for point in trend.points):
        return trend.text
    zh = "、".join(SOURCE_LABELS[kind].zh for kind in SOURCE_KINDS if kind in trend.line_sources)
    en = ", ".join(SOURCE_LABELS[kind].en.lower() for kind in SOURCE_KINDS if kind in trend.line_sources)
    return Label(f"{trend.text.zh} (趋势依据: {zh}数据)", f"{trend.text.en} (trend from {en} values)")


def report_data(
    session: Session, patient: Patient, *, clinic: ReportClinic, actor: Actor, lang: Lang | None = None,
    today: date | None = None, risk_defaults: Mapping[str, object] | None = None,
) -> ReportData:
    """Gather the report of ``patient`` in ``lang`` (default: the patient's language).

    ``clinic`` names the clinic in both languages; ``risk_defaults`` its risk inputs for
    its patients (:func:`care.assessments.gather_risk_inputs`).
    """
    language = cast(Lang, lang or (patient.language if patient.language in ("zh", "en") else "zh"))
    day = today or today_of(session, patient)
    trends = patient_trends(session, patient)
    risks = current_risk_results(session, patient, actor=actor, defaults=risk_defaults)
    advice = patient_advice(session, patient, results=risks)
    signed = latest_signed_summary(session, patient)
    conclusion = None
    if signed is not None and signed.conclusion and signed.signed_by is not None and signed.signed_at is not None:
        signer = session.get(User, signed.signed_by)
        conclusion = SignedConclusion(
            text=signed.conclusion,
            signed_by=signer.display_name if signer is not None else str(signed.signed_by),
            signed_on=signed.signed_at.astimezone(zone_of(patient)).date(),
        )
    sex = cast(Literal["male", "female"] | None, sex_of(patient))
    return ReportData(
        clinic=clinic,
        patient=PatientDetails(name=patient.name or "", sex=sex, age=patient.age_on(day), card_no=patient.card_no),
        language=language,
        generated_on=day,
        results=[ResultRow.from_trend(trend) for trend in trends],
        charts=[
            ChartImage(trend.name, render_trend(trend, lang=language, fmt="png", size=PDF_CHART))
            for trend in _chart_order(trends)
        ],
        risks=[result for result in risks if result.value is not None or result.missing],
        advice=list(advice.lines),
        summary=stored_summary(signed) if signed is not None else None,
        conclusion=conclusion,
        trend_lines=[_trend_line(trend) for trend in trends if len(trend.points) >= 2],
    )


def print_health_report(
    session: Session, patient: Patient, *, clinic: ReportClinic, actor: Actor, lang: Lang | None = None,
    risk_defaults: Mapping[str, object] | None = None,
) -> bytes:
    """Return the A4 PDF of the patient's report; the printing is audited."""
    data = report_data(session, patient, clinic=clinic, actor=actor, lang=lang, risk_defaults=risk_defaults)
    pdf = render_report(data)
    log(session, actor=actor, action="report.print", resource_type="patient", resource_id=patient.id,
        patient_id=patient.id, details={"language": data.language, "results": len(data.results),
                                        "risks": len(data.risks), "charts": len(data.charts)})
    return pdf
