"""Sample report documents in each format (synthetic patients and results)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from openpyxl import Workbook

from care.imports.report_formats.tabular import RESULT_TEMPLATE

ENGLISH = [column.english for column in RESULT_TEMPLATE.columns]
CHINESE = [column.chinese for column in RESULT_TEMPLATE.columns]


def csv_bytes(rows: Sequence[Sequence[Any]], *, header: Sequence[str] = ENGLISH) -> bytes:
    """The results template as CSV UTF-8 (with a BOM, as Excel saves it)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return ("\ufeff" + out.getvalue()).encode()


def xlsx_bytes(rows: Sequence[Sequence[Any]], *, header: Sequence[str] = CHINESE) -> bytes:
    """The results template as a workbook (first sheet)."""
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = "结果"
    sheet.append(list(header))
    for row in rows:
        sheet.append(list(row))
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def hl7_message(
    *, card: str | None = None, id_number: str | None = None, report_id: str = "R-HL7-1", control: str = "MSG1",
    when: str = "20240305083000", results: Sequence[tuple[str, str, str, str]] = (), message_type: str = "ORU^R01",
) -> str:
    """One ORU^R01 message; ``results`` are (code, value, unit, status) OBX values."""
    identifiers = []
    if card:
        identifiers.append(f"{card}^^^CLINIC^MR")
    if id_number:
        identifiers.append(f"{id_number}^^^CHN^NI")
    segments = [
        f"MSH|^~\\&|LIS|CENTRE|CARELOOP|CLINIC|20240305101500+0800||{message_type}|{control}|P|2.5.1",
        f"PID|1||{'~'.join(identifiers)}||测试^患者||19600517|F",
        f"OBR|1|PL-{report_id}|{report_id}^LIS|CHECKUP^体检|||{when}",
    ]
    for number, (code, value, unit, status) in enumerate(results, start=1):
        segments.append(f"OBX|{number}|NM|{code}^^LN||{value}|{unit}|||||{status}|||{when}")
    return "\r".join(segments) + "\r"


def fhir_bundle(
    *, card: str, report_id: str = "R-FHIR-1", when: str = "2024-03-05", status: str = "final",
    observations: Sequence[dict[str, Any]] = (),
) -> bytes:
    """A collection Bundle: a Patient (card number), a DiagnosticReport and its Observations."""
    entries: list[dict[str, Any]] = [
        {"fullUrl": "urn:uuid:patient-1", "resource": {
            "resourceType": "Patient", "id": "patient-1",
            "identifier": [{"type": {"coding": [{"code": "MR"}]}, "value": card}]}},
    ]
    references = []
    for number, observation in enumerate(observations, start=1):
        url = f"urn:uuid:obs-{number}"
        references.append({"reference": url})
        resource = {"resourceType": "Observation", "id": f"obs-{number}", "status": "final",
                    "subject": {"reference": "urn:uuid:patient-1"}, "effectiveDateTime": when}
        resource.update(observation)
        entries.append({"fullUrl": url, "resource": resource})
    entries.insert(1, {"fullUrl": "urn:uuid:report-1", "resource": {
        "resourceType": "DiagnosticReport", "id": "report-1", "status": status,
        "identifier": [{"system": "urn:centre:reports", "value": report_id}],
        "code": {"text": "体检"}, "subject": {"reference": "urn:uuid:patient-1"},
        "effectiveDateTime": when, "result": references}})
    return json.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries}, ensure_ascii=False).encode()


def quantity(loinc: str, value: float, unit: str, ucum: str | None = None) -> dict[str, Any]:
    """An Observation's code and valueQuantity."""
    q: dict[str, Any] = {"value": value, "unit": unit}
    if ucum is not None:
        q.update(system="http://unitsofmeasure.org", code=ucum)
    return {"code": {"coding": [{"system": "http://loinc.org", "code": loinc}]}, "valueQuantity": q}


FIXTURES = Path(__file__).with_name("fixtures")


def fixture(name: str, **replace: str) -> bytes:
    """A FHIR fixture file (synthetic, modelled on the US Core lab examples), placeholders replaced."""
    data = (FIXTURES / name).read_text(encoding="utf-8")
    for placeholder, value in replace.items():
        data = data.replace(f"__{placeholder.upper()}__", value)
    return data.encode()


#: A Chinese checkup as a centre exports it: (printed name, value, unit as printed, indicator or None).
#: 54 indicators of the table and 6 the table does not have (kept as they came).
CHECKUP_60: tuple[tuple[str, object, str, str | None], ...] = (
    ("身高", 165.2, "cm", "height"), ("体重", 63.5, "kg", "weight"), ("体重指数(BMI)", 23.3, "kg/m²", "bmi"),
    ("腰围", 82, "cm", "waist"), ("收缩压", 128, "mmHg", "sbp"), ("舒张压", 78, "mmHg", "dbp"),
    ("白细胞计数(WBC)", 6.2, "10^9/L", "wbc"), ("红细胞计数(RBC)", 4.61, "10^12/L", "rbc"),
    ("血红蛋白(HGB)", 138, "g/L", "hgb"), ("红细胞压积(HCT)", 41.2, "%", "hct"),
    ("平均红细胞体积(MCV)", 89.4, "fL", "mcv"), ("平均红细胞血红蛋白含量(MCH)", 29.9, "pg", "mch"),
    ("平均红细胞血红蛋白浓度(MCHC)", 335, "g/L", "mchc"), ("红细胞分布宽度(RDW-CV)", 12.8, "%", "rdw_cv"),
    ("血小板计数(PLT)", 226, "10^9/L", "plt"), ("平均血小板体积(MPV)", 10.1, "fL", "mpv"),
    ("中性粒细胞百分比(NEUT%)", 58.3, "%", "neut_pct"), ("淋巴细胞百分比(LYM%)", 32.1, "%", "lymph_pct"),
    ("单核细胞百分比(MONO%)", 6.4, "%", "mono_pct"), ("嗜酸性粒细胞百分比(EOS%)", 2.6, "%", "eos_pct"),
    ("嗜碱性粒细胞百分比(BASO%)", 0.6, "%", "baso_pct"), ("中性粒细胞计数(NEUT#)", 3.61, "10^9/L", "neut_abs"),
    ("淋巴细胞计数(LYM#)", 1.99, "10^9/L", "lymph_abs"),
    ("尿蛋白(PRO)", "阴性", "", "u_pro"), ("尿糖(GLU)", "-", "", "u_glu"), ("尿潜血(BLD)", "弱阳性", "", "u_bld"),
    ("尿酮体(KET)", "阴性(-)", "", "u_ket"), ("尿胆红素(BIL)", "阴性", "", "u_bil"),
    ("亚硝酸盐(NIT)", "阴性", "", "u_nit"),
    ("尿白细胞(LEU)", "＋", "", "u_leu"), ("尿比重(SG)", 1.02, "", "u_sg"), ("尿酸碱度(pH)", 6.0, "", "u_ph"),
    ("谷丙转氨酶(ALT)", 23, "U/L", "alt"), ("天门冬氨酸氨基转移酶(AST)", 21, "U/L", "ast"),
    ("γ-谷氨酰转移酶(GGT)", 28, "U/L", "ggt"), ("碱性磷酸酶(ALP)", 72, "U/L", "alp"),
    ("总胆红素(TBIL)", 12.4, "µmol/L", "tbil"), ("直接胆红素(DBIL)", 3.8, "μmol/L", "dbil"),
    ("总蛋白(TP)", 72.5, "g/L", "tp"), ("白蛋白(ALB)", 45.1, "g/L", "alb"),
    ("尿素(UREA)", 5.1, "mmol/L", "urea"), ("肌酐(CREA)", 68, "umol/L", "cr"), ("尿酸(UA)", "352↑", "µmol/L", "ua"),
    ("估算肾小球滤过率(eGFR)", 98.2, "mL/min/1.73m²", "egfr"),
    ("总胆固醇(TC)", 5.32, "mmol/L", "tc"), ("甘油三酯(TG)", 1.46, "mmol/L", "tg"),
    ("高密度脂蛋白胆固醇(HDL-C)", 1.38, "mmol/L", "hdl"), ("低密度脂蛋白胆固醇(LDL-C)", 3.21, "mmol/L", "ldl"),
    ("空腹血糖(GLU)", 5.4, "mmol/L", "fpg"), ("糖化血红蛋白(HbA1c)", 5.6, "%", "hba1c"),
    ("钾(K)", 4.1, "mmol/L", "k"), ("钠(Na)", 141, "mmol/L", "na"),
    ("促甲状腺激素(TSH)", 2.1, "μIU/mL", "tsh"), ("同型半胱氨酸(HCY)", 11.2, "µmol/L", "hcy"),
    ("载脂蛋白A1(ApoA1)", 1.42, "g/L", None), ("载脂蛋白B(ApoB)", 0.98, "g/L", None),
    ("脂蛋白(a)", 120, "mg/L", None), ("癌胚抗原(CEA)", 1.8, "ng/mL", None),
    ("甲胎蛋白(AFP)", 3.2, "ng/mL", None), ("尿胆原(URO)", "正常", "", None),
)


def checkup_rows(card: str, report_id: str = "TJ20240315-0001", day: str = "2024-03-15") -> list[list[object]]:
    """The 60 results of :data:`CHECKUP_60` as rows of the results template."""
    return [[card, report_id, day, name, value, unit] for name, value, unit, _ in CHECKUP_60]
