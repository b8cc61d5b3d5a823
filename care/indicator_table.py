"""The indicator table: every result a Chinese checkup (体检) prints, with its codes, names and units.

Each indicator has a short code (``wbc``), a name in zh and en, the panel it is printed in (血常规,
尿常规, 肝功能, 肾功能, 血脂四项, 血糖, 电解质, 甲状腺功能...), the LOINC code it is stored under and
every LOINC code that identifies it (the mass- and molar-unit codes of one analyte, the method
variants), its canonical unit and the units it is converted from, its plausible range, and the
names and abbreviations a checkup centre prints (总胆固醇, TC, CHOL...), so that a tabular report's
code column may give a printed name instead of a code::

    found = find("谷丙转氨酶(ALT)", names=True)
    found.key, found.loinc, found.unit          # ("alt", "1742-6", "U/L")
    found.to_canonical(1.2, "mg/dL")            # raises UnitError: ALT has no mass unit
    find("2089-1").key                          # "ldl" (LDL-C in mg/dL, the common US code)

The seventeen indicators of :mod:`care.clinical.codes` (the ones risk models, trends and
categories use) are converted and range-checked there, so the clinical layer and the importer never
disagree; the table adds their further LOINC codes (LDL-C 2089-1, HbA1c 17856-6, eGFR 33914-3 and
62238-1) and printed names. The other indicators are recorded in the record (in canonical units) but
no rule or model reads them yet.

Two kinds: ``quantity`` (a number in a unit) and ``grade`` (a test-strip grade of the urinalysis:
``-``, ``±``, ``1+`` .. ``4+``, or ``+`` for a positive without grade; 阴性, 弱阳性 and 阳性 are read as
such). Units are canonical as Chinese laboratories report them (g/L for haemoglobin and proteins,
µmol/L for bilirubin, mmol/L for urea and calcium, pmol/L for free thyroid hormones).

Sources of the codes: LOINC (loinc.org; each code's component, property and system checked against
the LOINC table as the spec's section 8 describes). Conversion factors are the molar masses:
bilirubin 584.7 g/mol (1 mg/dL = 17.1 µmol/L), calcium 40.08 (1 mg/dL = 0.2495 mmol/L), urea 60.06
(1 mg/dL = 0.1665 mmol/L), urea nitrogen 28.0 (1 mg/dL = 0.357 mmol/L), free T4 776.9 (1 ng/dL =
12.87 pmol/L), free T3 651.0 (1 pg/mL = 1.536 pmol/L), haemoglobin monomer 16.11 (1 mmol/L = 16.11
g/L), creatinine in the urine ACR 113.1 (1 mg/mmol = 8.84 mg/g). Plausible ranges of the added
indicators are Careloop's own (rule pack ``PLAUSIBILITY-1``): wide enough for severe disease, narrow
enough to catch a unit or typing error.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

from care.clinical import codes, units
from care.clinical.common import Label
from care.clinical.units import UnitError

Kind = Literal["quantity", "grade"]
LOINC_SYSTEM = "http://loinc.org"
#: The test-strip grades, in order.
GRADES: tuple[str, ...] = ("-", "±", "+", "1+", "2+", "3+", "4+")

_MMOL = "mmol/L"
_UMOL = "µmol/L"
_COUNT9 = "10^9/L"
_COUNT12 = "10^12/L"

# Panels as a checkup report groups its results.
CBC = Label("血常规", "Complete blood count")
URINE = Label("尿常规", "Urinalysis")
LIVER = Label("肝功能", "Liver function")
KIDNEY = Label("肾功能", "Kidney function")
LIPIDS = Label("血脂四项", "Lipid panel")
GLUCOSE = Label("血糖", "Glucose")
ELECTROLYTES = Label("电解质", "Electrolytes")
THYROID = Label("甲状腺功能", "Thyroid function")
VITALS = Label("一般检查", "General examination")
OTHER = Label("其他", "Other")


class IndicatorTableError(ValueError):
    """The table itself is inconsistent (a name or code given twice); raised when the module loads."""


@dataclass(frozen=True, slots=True, eq=False)
class TableIndicator:
    """One row of the indicator table (see the module docstring)."""

    key: str
    name: Label
    group: Label
    unit: str
    loinc: str
    loinc_codes: tuple[str, ...]
    names: tuple[str, ...]
    kind: Kind = "quantity"
    #: unit (the spelling :func:`normalize_unit` returns) -> factor into the canonical unit (not for clinical ones)
    factors: Mapping[str, float] = field(default_factory=dict)
    #: the plausible range in the canonical unit (not for clinical ones: care.clinical.codes holds theirs)
    range: tuple[float, float] | None = None
    #: converted and range-checked by :mod:`care.clinical.codes` (the indicators risk and rules use)
    clinical: bool = False

    def to_canonical(self, value: float, unit: str) -> float:
        """Convert ``value`` given in ``unit`` into the canonical unit; raise :class:`UnitError` naming both."""
        if self.clinical:
            return units.to_canonical(self.key, value, unit)
        spelled = normalize_unit(unit)
        factor = self.factors.get(spelled) if spelled is not None else None
        if factor is None:
            accepted = ", ".join(sorted(spelling or "(none)" for spelling in self.factors))
            raise UnitError(f"unit {unit!r} is not accepted for {self.key} (accepted: {accepted})")
        return value * factor

    def accepts_unit(self, unit: str) -> bool:
        """Tell whether values in ``unit`` can be converted."""
        try:
            self.to_canonical(1.0, unit)
        except UnitError:
            return False
        return True

    @property
    def unitless(self) -> bool:
        """True when the indicator has no unit (a ratio, a specific gravity, a pH, a grade)."""
        return self.kind == "grade" or self.unit == ""

    def plausible_range(self) -> tuple[float, float] | None:
        """Return the range of values that can be true (canonical unit), or None for a grade."""
        if self.clinical:
            return codes.INDICATORS[self.key].plausible
        return self.range

    def is_plausible(self, value: float) -> bool:
        """Tell whether ``value`` (canonical unit) is physiologically possible."""
        if self.clinical:
            try:
                codes.check_plausible(codes.INDICATORS[self.key], value)
            except codes.ImplausibleValueError:
                return False
            return True
        if self.range is None:
            return True
        low, high = self.range
        return math.isfinite(value) and low <= value <= high


def _clinical(key: str, group: Label, names: tuple[str, ...], extra_loinc: tuple[str, ...] = ()) -> TableIndicator:
    source = codes.INDICATORS[key]
    return TableIndicator(
        key=key, name=source.name, group=group, unit=source.unit, loinc=source.loinc,
        loinc_codes=tuple(dict.fromkeys((*source.all_loinc(), *extra_loinc))), names=names, clinical=True,
    )


def _q(
    key: str, zh: str, en: str, group: Label, unit: str, loinc: tuple[str, ...], names: tuple[str, ...],
    plausible: tuple[float, float], factors: Mapping[str, float] | None = None,
) -> TableIndicator:
    return TableIndicator(
        key=key, name=Label(zh, en), group=group, unit=unit, loinc=loinc[0], loinc_codes=loinc, names=names,
        factors=dict(factors) if factors is not None else {unit: 1.0}, range=plausible,
    )


def _grade(key: str, zh: str, en: str, loinc: tuple[str, ...], names: tuple[str, ...]) -> TableIndicator:
    return TableIndicator(
        key=key, name=Label(zh, en), group=URINE, unit="", loinc=loinc[0], loinc_codes=loinc, names=names,
        kind="grade",
    )


_PERCENT = {"%": 1.0}
_GRAMS = {"g/L": 1.0, "g/dL": 10.0}
_SALT = {_MMOL: 1.0, "mEq/L": 1.0}  # monovalent ions: 1 mEq = 1 mmol

TABLE_ROWS: tuple[TableIndicator, ...] = (
    # 一般检查 (general examination)
    _clinical("sbp", VITALS, ("收缩压", "高压", "SBP", "SYS")),
    _clinical("dbp", VITALS, ("舒张压", "低压", "DBP", "DIA")),
    _q("hr", "心率", "Heart rate", VITALS, "/min", ("8867-4",), ("心率", "脉搏", "HR", "Pulse"), (20, 250)),
    _clinical("height", VITALS, ("身高", "HT")),
    _clinical("weight", VITALS, ("体重", "WT")),
    _clinical("bmi", VITALS, ("体重指数", "体质指数", "身体质量指数", "BMI")),
    _clinical("waist", VITALS, ("腰围", "WC")),
    # 血常规 (complete blood count)
    _q("wbc", "白细胞计数", "White blood cells", CBC, _COUNT9, ("6690-2", "26464-8"),
       ("白细胞计数", "白细胞", "WBC"), (0.1, 500)),
    _q("rbc", "红细胞计数", "Red blood cells", CBC, _COUNT12, ("789-8", "26453-1"),
       ("红细胞计数", "红细胞", "RBC"), (0.5, 10)),
    _q("hgb", "血红蛋白", "Haemoglobin", CBC, "g/L", ("718-7",), ("血红蛋白", "血红蛋白浓度", "HGB", "Hb", "HB"),
       (20, 260), {"g/L": 1.0, "g/dL": 10.0, _MMOL: 16.11}),
    _q("hct", "红细胞压积", "Haematocrit", CBC, "%", ("4544-3", "20570-8"),
       ("红细胞压积", "红细胞比容", "血细胞比容", "HCT"), (5, 80), {"%": 1.0, "L/L": 100.0}),
    _q("plt", "血小板计数", "Platelets", CBC, _COUNT9, ("777-3", "26515-7"), ("血小板计数", "血小板", "PLT"),
       (1, 3000)),
    _q("neut_pct", "中性粒细胞百分比", "Neutrophils %", CBC, "%", ("770-8",),
       ("中性粒细胞百分比", "中性粒细胞百分数", "中性粒细胞比率", "中性粒细胞%", "NEUT%", "NE%", "GRAN%", "N%"),
       (0, 100), _PERCENT),
    _q("lymph_pct", "淋巴细胞百分比", "Lymphocytes %", CBC, "%", ("736-9",),
       ("淋巴细胞百分比", "淋巴细胞百分数", "淋巴细胞比率", "淋巴细胞%", "LYMPH%", "LYM%", "LY%", "L%"),
       (0, 100), _PERCENT),
    _q("mono_pct", "单核细胞百分比", "Monocytes %", CBC, "%", ("5905-5",),
       ("单核细胞百分比", "单核细胞百分数", "单核细胞比率", "单核细胞%", "MONO%", "MO%", "M%"), (0, 100), _PERCENT),
    _q("eos_pct", "嗜酸性粒细胞百分比", "Eosinophils %", CBC, "%", ("713-8",),
       ("嗜酸性粒细胞百分比", "嗜酸性粒细胞百分数", "嗜酸性粒细胞比率", "嗜酸性粒细胞%", "EOS%", "EO%", "E%"),
       (0, 100), _PERCENT),
    _q("baso_pct", "嗜碱性粒细胞百分比", "Basophils %", CBC, "%", ("706-2",),
       ("嗜碱性粒细胞百分比", "嗜碱性粒细胞百分数", "嗜碱性粒细胞比率", "嗜碱性粒细胞%", "BASO%", "BA%", "B%"),
       (0, 100), _PERCENT),
    _q("neut_abs", "中性粒细胞计数", "Neutrophils", CBC, _COUNT9, ("751-8",),
       ("中性粒细胞计数", "中性粒细胞绝对值", "中性粒细胞数", "NEUT#", "NE#", "GRAN#", "N#"), (0, 400)),
    _q("lymph_abs", "淋巴细胞计数", "Lymphocytes", CBC, _COUNT9, ("731-0",),
       ("淋巴细胞计数", "淋巴细胞绝对值", "淋巴细胞数", "LYMPH#", "LYM#", "LY#", "L#"), (0, 400)),
    _q("mono_abs", "单核细胞计数", "Monocytes", CBC, _COUNT9, ("742-7",),
       ("单核细胞计数", "单核细胞绝对值", "单核细胞数", "MONO#", "MO#", "M#"), (0, 100)),
    _q("eos_abs", "嗜酸性粒细胞计数", "Eosinophils", CBC, _COUNT9, ("711-2",),
       ("嗜酸性粒细胞计数", "嗜酸性粒细胞绝对值", "嗜酸性粒细胞数", "EOS#", "EO#", "E#"), (0, 100)),
    _q("baso_abs", "嗜碱性粒细胞计数", "Basophils", CBC, _COUNT9, ("704-7",),
       ("嗜碱性粒细胞计数", "嗜碱性粒细胞绝对值", "嗜碱性粒细胞数", "BASO#", "BA#", "B#"), (0, 50)),
    _q("mcv", "平均红细胞体积", "MCV", CBC, "fL", ("787-2",), ("平均红细胞体积", "MCV"), (40, 160)),
    _q("mch", "平均红细胞血红蛋白含量", "MCH", CBC, "pg", ("785-6",),
       ("平均红细胞血红蛋白含量", "平均红细胞血红蛋白量", "MCH"), (10, 60)),
    _q("mchc", "平均红细胞血红蛋白浓度", "MCHC", CBC, "g/L", ("786-4",), ("平均红细胞血红蛋白浓度", "MCHC"),
       (200, 450), _GRAMS),
    _q("rdw_cv", "红细胞分布宽度", "RDW-CV", CBC, "%", ("788-0",),
       ("红细胞分布宽度", "红细胞体积分布宽度", "红细胞分布宽度-CV", "RDW-CV", "RDW"), (5, 40), _PERCENT),
    _q("mpv", "平均血小板体积", "MPV", CBC, "fL", ("32623-1",), ("平均血小板体积", "MPV"), (3, 25)),
    _q("pct", "血小板压积", "Plateletcrit", CBC, "%", ("51637-7",), ("血小板压积", "血小板比容"), (0, 3),
       {"%": 1.0, "mL/L": 0.1, "L/L": 100.0}),
    _q("esr", "红细胞沉降率", "ESR", CBC, "mm/h", ("4537-7", "30341-2"), ("红细胞沉降率", "血沉", "ESR"), (0, 200)),
    # 尿常规 (urinalysis, test strip)
    _grade("u_pro", "尿蛋白", "Urine protein", ("20454-5",), ("尿蛋白", "尿蛋白质", "蛋白质(尿)", "PRO", "U-PRO")),
    _grade("u_glu", "尿糖", "Urine glucose", ("25428-4",),
           ("尿糖", "尿葡萄糖", "葡萄糖(尿)", "U-GLU", "GLU-U", "UGLU")),
    _grade("u_bld", "尿潜血", "Urine blood", ("5794-3",), ("尿潜血", "尿隐血", "潜血", "隐血", "BLD", "ERY", "U-BLD")),
    _grade("u_ket", "尿酮体", "Urine ketones", ("2514-8",), ("尿酮体", "酮体", "KET")),
    _grade("u_bil", "尿胆红素", "Urine bilirubin", ("5770-3",), ("尿胆红素", "胆红素(尿)", "U-BIL")),
    _grade("u_nit", "亚硝酸盐", "Urine nitrite", ("5802-4",), ("亚硝酸盐", "尿亚硝酸盐", "NIT")),
    _grade("u_leu", "尿白细胞", "Urine leukocyte esterase", ("5799-2",),
           ("尿白细胞", "白细胞酯酶", "白细胞(尿)", "LEU", "U-LEU")),
    _q("u_sg", "尿比重", "Urine specific gravity", URINE, "", ("5811-5", "2965-2"), ("尿比重", "比重", "SG", "U-SG"),
       (1.0, 1.08)),
    _q("u_ph", "尿酸碱度", "Urine pH", URINE, "", ("5803-2", "2756-5"),
       ("尿酸碱度", "酸碱度", "尿pH", "尿液酸碱度", "PH", "U-PH"), (4, 10)),
    # 肝功能 (liver function)
    _clinical("alt", LIVER, ("谷丙转氨酶", "丙氨酸氨基转移酶", "丙氨酸转氨酶", "ALT", "GPT", "SGPT")),
    _clinical("ast", LIVER, ("谷草转氨酶", "天门冬氨酸氨基转移酶", "天冬氨酸氨基转移酶", "天冬氨酸转氨酶", "AST",
                             "GOT", "SGOT")),
    _q("ggt", "γ-谷氨酰转移酶", "GGT", LIVER, "U/L", ("2324-2",),
       ("γ-谷氨酰转移酶", "γ-谷氨酰转肽酶", "谷氨酰转肽酶", "谷氨酰转移酶", "γ-GT", "r-GT", "GGT"), (1, 5000),
       {"U/L": 1.0}),
    _q("alp", "碱性磷酸酶", "Alkaline phosphatase", LIVER, "U/L", ("6768-6",), ("碱性磷酸酶", "ALP", "AKP"),
       (5, 5000), {"U/L": 1.0}),
    _q("tbil", "总胆红素", "Total bilirubin", LIVER, _UMOL, ("14631-6", "1975-2"),
       ("总胆红素", "TBIL", "T-BIL", "TB"), (0.5, 1000), {_UMOL: 1.0, "mg/dL": 17.1}),
    _q("dbil", "直接胆红素", "Direct bilirubin", LIVER, _UMOL, ("14629-0", "1968-7"),
       ("直接胆红素", "结合胆红素", "DBIL", "D-BIL", "DB"), (0, 800), {_UMOL: 1.0, "mg/dL": 17.1}),
    _q("tp", "总蛋白", "Total protein", LIVER, "g/L", ("2885-2",), ("总蛋白", "血清总蛋白", "TP"), (20, 150), _GRAMS),
    _q("alb", "白蛋白", "Albumin", LIVER, "g/L", ("1751-7",), ("白蛋白", "清蛋白", "血清白蛋白", "ALB"), (5, 80),
       _GRAMS),
    _q("glb", "球蛋白", "Globulin", LIVER, "g/L", ("10834-0",), ("球蛋白", "GLB", "GLO"), (5, 120), _GRAMS),
    _q("ag_ratio", "白球比", "Albumin/globulin ratio", LIVER, "", ("1759-0",),
       ("白球比", "白球比值", "白蛋白/球蛋白", "A/G"), (0.1, 10)),
    # 肾功能 (kidney function)
    _q("urea", "尿素", "Urea", KIDNEY, _MMOL, ("22664-7", "3091-6"), ("尿素", "UREA", "Urea"), (0.5, 100),
       {_MMOL: 1.0, "mg/dL": 1 / 6.006}),
    _q("bun", "尿素氮", "Urea nitrogen", KIDNEY, _MMOL, ("14937-7", "3094-0"), ("尿素氮", "血尿素氮", "BUN"),
       (0.5, 100), {_MMOL: 1.0, "mg/dL": 0.357}),
    _clinical("cr", KIDNEY, ("肌酐", "血肌酐", "血清肌酐", "CREA", "Cr", "SCr")),
    _clinical("ua", KIDNEY, ("尿酸", "血尿酸", "UA", "URIC")),
    _clinical("egfr", KIDNEY, ("估算肾小球滤过率", "肾小球滤过率", "eGFR", "GFR"), ("33914-3", "62238-1")),
    _q("cysc", "胱抑素C", "Cystatin C", KIDNEY, "mg/L", ("33863-2",), ("胱抑素C", "胱抑素", "Cys-C", "CysC"),
       (0.1, 15)),
    _q("uacr", "尿微量白蛋白/肌酐比值", "Urine albumin/creatinine ratio", KIDNEY, "mg/g", ("9318-7", "14959-1"),
       ("尿微量白蛋白/肌酐比值", "尿微量白蛋白肌酐比", "尿白蛋白/肌酐比值", "尿白蛋白肌酐比", "UACR", "ACR", "mAlb/Cr"),
       (0, 20000), {"mg/g": 1.0, "mg/mmol": 8.84}),
    # 血脂四项 (lipid panel)
    _clinical("tc", LIPIDS, ("总胆固醇", "血清总胆固醇", "胆固醇", "TC", "CHOL", "T-CHO", "TCHO")),
    _clinical("tg", LIPIDS, ("甘油三酯", "三酰甘油", "TG", "TRIG")),
    _clinical("hdl", LIPIDS, ("高密度脂蛋白胆固醇", "高密度脂蛋白", "HDL-C", "HDL", "HDLC")),
    _clinical("ldl", LIPIDS, ("低密度脂蛋白胆固醇", "低密度脂蛋白", "LDL-C", "LDL", "LDLC"), ("2089-1",)),
    # 血糖 (glucose) and HbA1c
    _clinical("fpg", GLUCOSE, ("空腹血糖", "空腹血葡萄糖", "空腹葡萄糖", "血糖", "葡萄糖", "GLU", "FPG", "FBG")),
    _clinical("hba1c", GLUCOSE, ("糖化血红蛋白", "糖化血红蛋白A1c", "HbA1c", "A1C", "GHb"), ("17856-6",)),
    # 电解质 (electrolytes)
    _q("k", "钾", "Potassium", ELECTROLYTES, _MMOL, ("2823-3", "6298-4"), ("钾", "血钾", "K", "K+"), (1, 10), _SALT),
    _q("na", "钠", "Sodium", ELECTROLYTES, _MMOL, ("2951-2", "2947-0"), ("钠", "血钠", "Na", "Na+"), (100, 200),
       _SALT),
    _q("cl", "氯", "Chloride", ELECTROLYTES, _MMOL, ("2075-0", "2069-3"), ("氯", "血氯", "Cl", "Cl-"), (60, 150),
       _SALT),
    _q("ca", "钙", "Calcium", ELECTROLYTES, _MMOL, ("2000-8", "17861-6"), ("钙", "血钙", "Ca", "Ca2+"), (0.5, 5),
       {_MMOL: 1.0, "mg/dL": 0.2495}),
    _q("co2", "二氧化碳", "Carbon dioxide", ELECTROLYTES, _MMOL, ("2028-9",),
       ("二氧化碳", "二氧化碳结合力", "总二氧化碳", "CO2", "TCO2", "CO2CP"), (2, 60), _SALT),
    # 甲状腺功能 (thyroid function)
    _q("tsh", "促甲状腺激素", "TSH", THYROID, "mIU/L", ("3016-3", "11580-8"),
       ("促甲状腺激素", "促甲状腺素", "超敏促甲状腺激素", "TSH", "hTSH", "sTSH"), (0.001, 500),
       {"mIU/L": 1.0, "µIU/mL": 1.0}),
    _q("ft3", "游离三碘甲状腺原氨酸", "Free T3", THYROID, "pmol/L", ("14928-6", "3051-0"),
       ("游离三碘甲状腺原氨酸", "游离T3", "FT3"), (0.3, 100), {"pmol/L": 1.0, "pg/mL": 1.536}),
    _q("ft4", "游离甲状腺素", "Free T4", THYROID, "pmol/L", ("14920-3", "3024-7"),
       ("游离甲状腺素", "游离T4", "FT4"), (0.5, 200), {"pmol/L": 1.0, "ng/dL": 12.87}),
    # 其他 (other)
    _q("hcy", "同型半胱氨酸", "Homocysteine", OTHER, _UMOL, ("13965-9",), ("同型半胱氨酸", "HCY", "Hcy"), (1, 500)),
)

# Unit spellings (lower case, no spaces, after NFKC) -> the spelling the table uses. Units the clinical
# indicators take are spelled as care.clinical.units spells them.
_UNIT_ALIASES: dict[str, str] = {
    "": "", "1": "", "{ratio}": "", "ratio": "", "[ph]": "", "ph": "",
    "10^9/l": _COUNT9, "10*9/l": _COUNT9, "10e9/l": _COUNT9, "x10^9/l": _COUNT9, "×10^9/l": _COUNT9,
    "10^3/ul": _COUNT9, "10*3/ul": _COUNT9, "10^3/µl": _COUNT9, "10^3/μl": _COUNT9, "10^3/mm3": _COUNT9,
    "k/ul": _COUNT9, "10⁹/l": _COUNT9,
    "10^12/l": _COUNT12, "10*12/l": _COUNT12, "10e12/l": _COUNT12, "x10^12/l": _COUNT12, "×10^12/l": _COUNT12,
    "10^6/ul": _COUNT12, "10*6/ul": _COUNT12, "10^6/µl": _COUNT12, "10^6/μl": _COUNT12, "m/ul": _COUNT12,
    "10¹²/l": _COUNT12,
    "g/l": "g/L", "g/dl": "g/dL", "mg/l": "mg/L", "mg/dl": "mg/dL", "ml/l": "mL/L", "l/l": "L/L",
    "mmol/l": _MMOL, "umol/l": _UMOL, "µmol/l": _UMOL, "μmol/l": _UMOL, "pmol/l": "pmol/L",
    "meq/l": "mEq/L", "ng/dl": "ng/dL", "pg/ml": "pg/mL",
    "miu/l": "mIU/L", "mu/l": "mIU/L", "uiu/ml": "µIU/mL", "µiu/ml": "µIU/mL", "μiu/ml": "µIU/mL",
    "u/l": "U/L", "iu/l": "U/L", "[iu]/l": "U/L",
    "%": "%", "fl": "fL", "pg": "pg", "mm/h": "mm/h", "mm/hr": "mm/h", "mm/1h": "mm/h", "mm/[hr]": "mm/h",
    "mg/g": "mg/g", "mg/g{creat}": "mg/g", "mg/gcr": "mg/g", "ug/mg": "mg/g", "µg/mg": "mg/g",
    "mg/mmol": "mg/mmol", "mg/mmol{creat}": "mg/mmol",
    "/min": "/min", "{beats}/min": "/min", "beats/min": "/min", "bpm": "/min", "次/分": "/min", "次/min": "/min",
}


def _fold(text: str) -> str:
    return "".join(unicodedata.normalize("NFKC", text).split()).casefold()


def normalize_unit(unit: str) -> str | None:
    """Return the table's spelling of a printed unit, or None when it is not known."""
    return _UNIT_ALIASES.get(_fold(unit))


def _name_key(text: str) -> str:
    """Printed names compare without spaces, width or case; ``_`` and ``-`` are the same."""
    return _fold(text).replace("_", "-")


_LOINC = re.compile(r"^(\d{1,7})-(\d)$")


def is_loinc(code: str) -> bool:
    """Tell whether ``code`` has the form of a LOINC code and its check digit (mod 10) holds."""
    match = _LOINC.match(code.strip())
    if match is None:
        return False
    total = 0
    for position, char in enumerate(reversed(match[1])):
        digit = int(char) * (2 if position % 2 == 0 else 1)
        total += digit // 10 + digit % 10
    return (10 - total % 10) % 10 == int(match[2])


def _build() -> tuple[dict[str, TableIndicator], dict[str, TableIndicator], dict[str, TableIndicator]]:
    by_key: dict[str, TableIndicator] = {}
    by_loinc: dict[str, TableIndicator] = {}
    by_name: dict[str, TableIndicator] = {}
    for row in TABLE_ROWS:
        if row.key in by_key:
            raise IndicatorTableError(f"indicator {row.key!r} is in the table twice")
        by_key[row.key] = row
        for loinc in row.loinc_codes:
            if not is_loinc(loinc):
                raise IndicatorTableError(f"{row.key}: {loinc} is not a LOINC code (check digit)")
            if by_loinc.setdefault(loinc, row) is not row:
                raise IndicatorTableError(f"LOINC {loinc} names both {by_loinc[loinc].key} and {row.key}")
        for name in (*row.names, row.name.zh, row.name.en):
            key = _name_key(name)
            if by_name.setdefault(key, row) is not row:
                raise IndicatorTableError(f"the name {name!r} names both {by_name[key].key} and {row.key}")
    return by_key, by_loinc, by_name


INDICATORS, BY_LOINC, BY_NAME = _build()

_PARENTHESES = re.compile(r"^(?P<outside>[^()]*)\((?P<inside>[^()]+)\)(?P<rest>[^()]*)$")


def find(code: str, *, names: bool = False) -> TableIndicator | None:
    """Return the indicator a code names: a LOINC code, a short code, or (``names``) a printed name.

    Without ``names`` only the seventeen short codes of the results template are codes (``sbp``,
    ``tc``...): a sending system's local code ``CA`` must not be read as calcium. With ``names``
    (a tabular report's code column) every short code and printed name is, and a printed name may
    carry its abbreviation in parentheses (``总胆固醇(TC)``, ``谷丙转氨酶（ALT）``): the name decides,
    the abbreviation only when the name is not known (``尿糖(GLU)`` is urine glucose).
    """
    text = code.strip()
    found = BY_LOINC.get(text)
    if found is not None:
        return found
    by_key = INDICATORS.get(text.lower())
    if by_key is not None and (names or by_key.clinical):
        return by_key
    if not names or not text:
        return None
    key = _name_key(text)
    found = BY_NAME.get(key)
    if found is not None:
        return found
    match = _PARENTHESES.match(key)
    if match is None:
        return None
    # The printed name is more specific than its abbreviation: 尿糖(GLU) is urine glucose, not FPG.
    outside = match["outside"] + match["rest"]
    return (BY_NAME.get(outside) if outside else None) or BY_NAME.get(match["inside"])


_GRADE_WORDS: dict[str, str] = {
    "-": "-", "阴性": "-", "阴": "-", "neg": "-", "negative": "-", "nil": "-", "(-)": "-", "阴性(-)": "-",
    "±": "±", "+-": "±", "+/-": "±", "弱阳性": "±", "微量": "±", "trace": "±", "tr": "±", "(±)": "±",
    "弱阳性(±)": "±",
    "+": "+", "阳性": "+", "阳": "+", "pos": "+", "positive": "+", "(+)": "+", "阳性(+)": "+",
    "1+": "1+", "+1": "1+", "2+": "2+", "+2": "2+", "++": "2+", "(++)": "2+", "3+": "3+", "+3": "3+",
    "+++": "3+", "(+++)": "3+", "4+": "4+", "+4": "4+", "++++": "4+", "(++++)": "4+",
}


def grade_of(raw: str) -> str | None:
    """Return the test-strip grade a printed value names (``阴性`` -> ``-``), or None."""
    key = _fold(raw).replace("−", "-").replace("－", "-")
    return _GRADE_WORDS.get(key)


def all_indicators() -> Iterator[TableIndicator]:
    """Yield every indicator, in the table's order (panel by panel)."""
    yield from TABLE_ROWS


def display_name(code: str) -> Label | None:
    """Return the zh/en name of the indicator a stored code names, or None."""
    found = find(code)
    return found.name if found is not None else None


__all__ = [
    "BY_LOINC",
    "BY_NAME",
    "GRADES",
    "INDICATORS",
    "LOINC_SYSTEM",
    "TABLE_ROWS",
    "IndicatorTableError",
    "TableIndicator",
    "UnitError",
    "all_indicators",
    "display_name",
    "find",
    "grade_of",
    "is_loinc",
    "normalize_unit",
]
