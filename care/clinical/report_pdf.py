"""The printable A4 health report (打印健康报告) from a plain :class:`ReportData`.

Two steps: :func:`layout` turns the data into plain blocks of text, tables and images in the
patient's language; :func:`render_report` embeds a TrueType subset of Noto Sans CJK SC covering
exactly the characters of those blocks (:mod:`care.clinical.fonts`, from the ``mplfonts``
dependency) and draws them with ReportLab. Chinese therefore renders on a fresh machine, and the
text can be extracted from the PDF.

The report is in one language throughout: labels, missing-input names, advice citations
(:mod:`care.clinical.citations`) and the clinic's name and address (:class:`ReportClinic`, filled by
the caller from the clinic settings). Every page carries a header (clinic, patient name, card number,
report date) and a footer (clinic address and phone, "第 n 页 共 m 页" / "Page n of m"); the last
section is kept together with the disclaimer, so the report never ends on a page holding a lone line.

ReportLab keeps registered fonts in a process-wide table; a lock serialises registration and
drawing, and subsets no longer cached are removed from that table, so a long-running worker does
not grow. Nothing here logs; the report holds PHI and is only returned as bytes.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Image, KeepTogether, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle
from reportlab.platypus.flowables import Flowable

from care.clinical import codes
from care.clinical.advice import AdviceLine
from care.clinical.charts import PDF_CHART, render_trend
from care.clinical.citations import citation_label
from care.clinical.common import DISCLAIMER, Label, Lang, format_number
from care.clinical.fonts import truetype_subset
from care.clinical.ranges import Flag
from care.clinical.risk import RiskResult, get_model
from care.clinical.summary import StageSummary
from care.clinical.trends import SOURCE_LABELS, SourceKind, Trend

Sex = Literal["male", "female"]
PAGE_WIDTH, PAGE_HEIGHT = A4
MARGIN = 16 * mm
CONTENT_WIDTH = PAGE_WIDTH - 2 * MARGIN
HIGH_COLOUR = colors.HexColor("#c0392b")
LOW_COLOUR = colors.HexColor("#b9770e")
MUTED_COLOUR = colors.HexColor("#666666")
RULE_COLOUR = colors.HexColor("#bbbbbb")
HEADER_FILL = colors.HexColor("#eef3f8")

# Report wording, zh first (STYLE.md habit 12).
T: dict[str, Label] = {
    "title": Label("健康报告", "Health report"),
    "generated": Label("报告日期", "Report date"),
    "patient": Label("基本信息", "Patient"),
    "name": Label("姓名", "Name"),
    "sex": Label("性别", "Sex"),
    "age": Label("年龄", "Age"),
    "card": Label("卡号", "Card no."),
    "male": Label("男", "Male"),
    "female": Label("女", "Female"),
    "years": Label("岁", "years"),
    "results": Label("最近检查结果", "Latest results"),
    "item": Label("项目", "Item"),
    "value": Label("结果", "Result"),
    "unit": Label("单位", "Unit"),
    "reference": Label("参考范围", "Reference"),
    "flag": Label("提示", "Flag"),
    "category": Label("分类", "Category"),
    "date": Label("日期", "Date"),
    "high": Label("↑ 偏高", "↑ High"),
    "low": Label("↓ 偏低", "↓ Low"),
    "normal": Label("正常", "Normal"),
    "trends": Label("历年趋势", "Trends over the years"),
    "risks": Label("疾病风险评估", "Risk assessment"),
    "model": Label("评估", "Assessment"),
    "notes": Label("说明", "Notes"),
    "advice": Label("健康建议", "Advice"),
    "source": Label("依据", "Source"),
    "summary": Label("阶段总结", "Stage summary"),
    "conclusion": Label("医生结论", "Clinician's conclusion"),
    "signed": Label("签名", "Signed"),
    "page": Label("第 {n} 页 共 {total} 页", "Page {n} of {total}"),
    "incomplete": Label("缺少", "Missing"),
    "phone": Label("电话", "Tel."),
    "address": Label("地址", "Address"),
    "sources": Label("数据来源", "Source"),
    "below_cutoff": Label("未达诊断切点", "Not past the guideline cut-off"),
    "none": Label("暂无", "None yet"),
    "points": Label("分", "points"),
}


#: What a risk model's printed value is, when the model's title does not say it.
VALUE_LABELS: dict[str, Label] = {
    "lipids": Label("非HDL胆固醇", "non-HDL cholesterol"),
}

#: Risk inputs that are not indicators, for the "missing" line (indicators use their catalogue name).
INPUT_LABELS: dict[str, Label] = {
    "sex": Label("性别", "sex"),
    "age": Label("年龄", "age"),
    "race": Label("种族", "race"),
    "bp_treated": Label("是否服用降压药", "blood-pressure treatment"),
    "smoker": Label("是否吸烟", "smoking"),
    "diabetes": Label("是否患糖尿病", "diabetes"),
    "region_north": Label("是否北方居住", "northern China residence"),
    "urban": Label("城乡", "urban or rural residence"),
    "family_history_ascvd": Label("心血管病家族史", "family history of ASCVD"),
    "known_ascvd": Label("已确诊心血管病", "known ASCVD"),
    "physically_active": Label("日常运动", "daily physical activity"),
    "daily_veg_fruit": Label("每日蔬果", "daily vegetables and fruit"),
    "ever_bp_medication": Label("曾服降压药", "ever on blood-pressure medication"),
    "ever_high_glucose": Label("曾有高血糖", "ever high blood glucose"),
    "family_history_diabetes": Label("糖尿病家族史", "family history of diabetes"),
    "uric_acid": Label("血尿酸", "uric acid"),
    "creatinine": Label("血肌酐", "creatinine"),
    "items": Label("问卷条目", "questionnaire items"),
}


def input_label(name: str) -> Label:
    """Return the printed name of a risk input (``items[3]`` is question 3)."""
    if name.startswith("items[") and name.endswith("]"):
        number = name[len("items[") : -1]
        return Label(f"第{number}题", f"question {number}")
    if name in INPUT_LABELS:
        return INPUT_LABELS[name]
    try:
        return codes.indicator(name).name
    except codes.UnknownCodeError:
        return Label(name, name)


@dataclass(frozen=True)
class ReportClinic:
    """The clinic printed on the report: name and address per language, and a phone number.

    The caller fills it from the clinic settings; the report shows the fields in its own language
    and leaves out an address that has no text in that language.
    """

    name: Label
    address: Label | None = None
    phone: str | None = None

    @classmethod
    def named(cls, name: str) -> ReportClinic:
        """Return a clinic with the same name in both languages and no address."""
        return cls(Label(name, name))

    def lines(self, lang: Lang) -> list[str]:
        """Return the address and phone lines in ``lang``."""
        found = []
        address = None if self.address is None else self.address.get(lang).strip()
        if address:
            found.append(f"{T['address'].get(lang)}: {address}")
        if self.phone:
            found.append(f"{T['phone'].get(lang)}: {self.phone}")
        return found


@dataclass(frozen=True)
class PatientDetails:
    """Who the report is for."""

    name: str
    sex: Sex | None = None
    age: int | None = None
    card_no: str | None = None


@dataclass(frozen=True)
class ResultRow:
    """One latest result against its reference range."""

    name: Label
    value: float
    unit: str
    decimals: int
    measured_on: date
    reference: str | None = None
    flag: Flag | None = None
    category: Label | None = None
    source: SourceKind = "checkup"

    @classmethod
    def from_trend(cls, trend: Trend) -> ResultRow:
        """Return the row of a trend's latest value, its flag and category agreeing.

        The flag says where the value lies against the printed reference range, the category what
        the guideline calls it; the two come from different tables (a lab's uric-acid range is not
        the guideline's 420 µmol/L cut-off). When the guideline category is abnormal the flag takes its
        direction; when the range flags the value but the guideline's band is the normal one, the
        category reads "not past the guideline cut-off" instead of "normal".
        """
        flag = trend.flag
        category = None if trend.category is None else trend.category.label
        if trend.category is not None:
            if trend.category.flag != "normal" and flag in (None, "normal"):
                flag = trend.category.flag
            elif trend.category.flag == "normal" and flag in ("high", "low"):
                category = T["below_cutoff"]
        return cls(
            name=trend.name,
            value=trend.latest.value,
            unit=trend.unit,
            decimals=trend.decimals,
            measured_on=trend.latest.when,
            reference=None if trend.reference is None else trend.reference.text(trend.decimals),
            flag=flag,
            category=category,
            source=trend.latest.source,
        )


@dataclass(frozen=True)
class ChartImage:
    """A trend chart rendered as PNG (see :data:`care.clinical.charts.PDF_CHART`)."""

    title: Label
    png: bytes


@dataclass(frozen=True)
class SignedConclusion:
    """The clinician's conclusion of the latest stage summary and its signature."""

    text: str
    signed_by: str
    signed_on: date


@dataclass(frozen=True)
class ReportData:
    """Everything the printed report shows; built by the database layer."""

    clinic: ReportClinic
    patient: PatientDetails
    language: Lang
    generated_on: date
    results: Sequence[ResultRow] = ()
    charts: Sequence[ChartImage] = ()
    risks: Sequence[RiskResult] = ()
    advice: Sequence[AdviceLine] = ()
    summary: StageSummary | None = None
    conclusion: SignedConclusion | None = None
    disclaimer: Label = DISCLAIMER
    trend_lines: Sequence[Label] = field(default_factory=tuple)


def chart_images(trends: Sequence[Trend], lang: Lang) -> list[ChartImage]:
    """Render the PDF-sized PNG chart of each trend in ``lang``."""
    return [ChartImage(trend.name, render_trend(trend, lang=lang, fmt="png", size=PDF_CHART)) for trend in trends]


# --- layout: plain blocks ------------------------------------------------------------------------


@dataclass(frozen=True)
class Heading:
    """A section heading."""

    text: str
    level: int = 1


@dataclass(frozen=True)
class Para:
    """A paragraph in one of the styles ``body``, ``small``, ``muted``."""

    text: str
    style: str = "body"


@dataclass(frozen=True)
class Grid:
    """A table; ``widths`` are fractions of the text width; ``colours`` colour single cells' text."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    widths: tuple[float, ...]
    colours: tuple[tuple[int, int, str], ...] = ()


@dataclass(frozen=True)
class Images:
    """PNG images laid out two per row."""

    pngs: tuple[bytes, ...]


@dataclass(frozen=True)
class Bullets:
    """Bulleted lines, each with an optional small source line."""

    items: tuple[tuple[str, str | None], ...]


@dataclass(frozen=True)
class Gap:
    """Vertical space in millimetres."""

    height_mm: float


Block = Heading | Para | Grid | Images | Bullets | Gap


def _flag_text(flag: Flag | None, lang: Lang) -> str:
    return "" if flag is None else T[flag].get(lang)


def _risk_value(result: RiskResult, lang: Lang) -> str:
    if result.value is None:
        return "-"
    if result.unit == "points":
        return f"{result.value} {T['points'].get(lang)}"
    gap = "" if result.unit == "%" else " "
    return f"{result.value}{gap}{result.unit}"


def layout(data: ReportData) -> list[Block]:
    """Return the report as plain blocks in the patient's language."""
    lang = data.language
    blocks: list[Block] = [
        Heading(data.clinic.name.get(lang), 0),
        *(Para(line, "muted") for line in data.clinic.lines(lang)),
        Heading(T["title"].get(lang), 1),
        Para(f"{T['generated'].get(lang)}: {data.generated_on.isoformat()}", "muted"),
    ]
    patient = data.patient
    sex = "" if patient.sex is None else T[patient.sex].get(lang)
    age = "" if patient.age is None else f"{patient.age} {T['years'].get(lang)}"
    blocks += [
        Heading(T["patient"].get(lang), 2),
        Grid(
            header=(T["name"].get(lang), T["sex"].get(lang), T["age"].get(lang), T["card"].get(lang)),
            rows=((patient.name, sex, age, patient.card_no or ""),),
            widths=(0.3, 0.2, 0.2, 0.3),
        ),
    ]

    blocks.append(Heading(T["results"].get(lang), 2))
    if data.results:
        rows, colours = [], []
        for index, row in enumerate(data.results, start=1):
            rows.append(
                (
                    row.name.get(lang),
                    format_number(row.value, row.decimals),
                    row.unit,
                    row.reference or "",
                    _flag_text(row.flag, lang),
                    "" if row.category is None else row.category.get(lang),
                    row.measured_on.isoformat(),
                    SOURCE_LABELS[row.source].get(lang),
                )
            )
            if row.flag in ("high", "low"):
                colours += [(index, 1, row.flag), (index, 4, row.flag)]
        blocks.append(
            Grid(
                header=tuple(
                    T[key].get(lang)
                    for key in ("item", "value", "unit", "reference", "flag", "category", "date", "sources")
                ),
                rows=tuple(rows),
                widths=(0.18, 0.08, 0.12, 0.12, 0.1, 0.16, 0.13, 0.11),
                colours=tuple(colours),
            )
        )
    else:
        blocks.append(Para(T["none"].get(lang), "muted"))

    if data.charts or data.trend_lines:
        blocks.append(Heading(T["trends"].get(lang), 2))
        blocks.extend(Para(line.get(lang)) for line in data.trend_lines)
        if data.charts:
            blocks.append(Images(tuple(chart.png for chart in data.charts)))

    blocks.append(Heading(T["risks"].get(lang), 2))
    if data.risks:
        risk_rows = []
        for result in data.risks:
            notes = [note.get(lang) for note in result.patient_notes]
            if result.missing:
                separator = "、" if lang == "zh" else ", "
                missing = separator.join(input_label(name).get(lang) for name in result.missing)
                notes.insert(0, f"{T['incomplete'].get(lang)}: {missing}")
            title = get_model(result.model).title.get(lang)
            value_label = VALUE_LABELS.get(result.model)
            if value_label is not None and result.value is not None:
                title = f"{title} ({value_label.get(lang)})"
            risk_rows.append(
                (
                    title,
                    _risk_value(result, lang),
                    result.category_label.get(lang),
                    " ".join(notes),
                )
            )
        blocks.append(
            Grid(
                header=tuple(T[key].get(lang) for key in ("model", "value", "category", "notes")),
                rows=tuple(risk_rows),
                widths=(0.3, 0.14, 0.2, 0.36),
            )
        )
    else:
        blocks.append(Para(T["none"].get(lang), "muted"))

    blocks.append(Heading(T["advice"].get(lang), 2))
    if data.advice:
        blocks.append(
            Bullets(
                tuple(
                    (line.text.get(lang), f"{T['source'].get(lang)}: {citation_label(line.source).get(lang)}")
                    for line in data.advice
                )
            )
        )
    else:
        blocks.append(Para(T["none"].get(lang), "muted"))

    if data.summary is not None:
        blocks.append(Heading(T["summary"].get(lang), 2))
        blocks.extend(Para(line.get(lang)) for line in data.summary.lines)
    if data.conclusion is not None:
        blocks.append(Heading(T["conclusion"].get(lang), 2))
        blocks.append(Para(data.conclusion.text))
        signed = f"{T['signed'].get(lang)}: {data.conclusion.signed_by}, {data.conclusion.signed_on.isoformat()}"
        blocks.append(Para(signed, "muted"))
    blocks.append(Gap(4))
    blocks.append(Para(data.disclaimer.get(lang), "small"))
    return blocks


def block_text(blocks: Sequence[Block]) -> Iterator[str]:
    """Yield every string the blocks draw (for the font subset and for tests)."""
    for block in blocks:
        if isinstance(block, Heading | Para):
            yield block.text
        elif isinstance(block, Grid):
            yield from block.header
            for row in block.rows:
                yield from row
        elif isinstance(block, Bullets):
            for text, source in block.items:
                yield text
                if source:
                    yield source


# --- drawing ----------------------------------------------------------------------------------

_LOCK = threading.Lock()
_REGISTERED: OrderedDict[str, None] = OrderedDict()
_KEEP_FONTS = 8


def _register(text: str) -> str:
    """Register the font subset for ``text`` with ReportLab; forget the least recently used ones."""
    name, data = truetype_subset(text)
    if name in _REGISTERED:
        _REGISTERED.move_to_end(name)
        return name
    pdfmetrics.registerFont(TTFont(name, io.BytesIO(data)))
    _REGISTERED[name] = None
    while len(_REGISTERED) > _KEEP_FONTS:
        old, _ = _REGISTERED.popitem(last=False)
        # ReportLab has no public "unregister"; its tables are plain module-level dicts keyed by name.
        for table_name in ("_fonts", "_dynFaceNames"):
            table = vars(pdfmetrics).get(table_name)
            if isinstance(table, dict):
                table.pop(old, None)
    return name


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\n", "<br/>")


BULLET = "•"


def _styles(font: str, lang: Lang) -> dict[str, ParagraphStyle]:
    # Chinese wraps between any two characters; English only between words.
    wrap = "CJK" if lang == "zh" else None
    base = ParagraphStyle(
        "body", fontName=font, fontSize=9.5, leading=13.5, wordWrap=wrap, alignment=TA_LEFT, bulletFontName=font
    )
    return {
        "body": base,
        "small": ParagraphStyle("small", parent=base, fontSize=8, leading=11, textColor=MUTED_COLOUR),
        "muted": ParagraphStyle("muted", parent=base, fontSize=8.5, leading=12, textColor=MUTED_COLOUR),
        "cell": ParagraphStyle("cell", parent=base, fontSize=8.5, leading=11),
        "head": ParagraphStyle("head", parent=base, fontSize=8.5, leading=11, textColor=colors.HexColor("#1f3b5a")),
        "h0": ParagraphStyle("h0", parent=base, fontSize=15, leading=20, spaceAfter=2),
        "h1": ParagraphStyle("h1", parent=base, fontSize=13, leading=18, spaceAfter=2),
        "h2": ParagraphStyle(
            "h2",
            parent=base,
            keepWithNext=1,
            fontSize=11,
            leading=15,
            spaceBefore=8,
            spaceAfter=4,
            textColor=colors.HexColor("#1f5fa8"),
        ),
        "bullet": ParagraphStyle("bullet", parent=base, leftIndent=10, bulletIndent=0),
        "source": ParagraphStyle("source", parent=base, fontSize=7, leading=9.5, leftIndent=10, textColor=MUTED_COLOUR),
    }


def _grid(block: Grid, styles: dict[str, ParagraphStyle]) -> Table:
    colour_of = {"high": HIGH_COLOUR, "low": LOW_COLOUR}
    special = {(row, col): colour_of[flag] for row, col, flag in block.colours}

    def cell(text: str, row: int, col: int) -> Paragraph:
        style = styles["head"] if row == 0 else styles["cell"]
        if (row, col) in special:
            style = ParagraphStyle(f"c{row}_{col}", parent=style, textColor=special[(row, col)])
        return Paragraph(_escape(text), style)

    matrix = [block.header, *block.rows]
    table = Table(
        [[cell(text, r, c) for c, text in enumerate(row)] for r, row in enumerate(matrix)],
        colWidths=[CONTENT_WIDTH * width for width in block.widths],
        repeatRows=1,
    )
    table.setStyle(
        TableStyle(
            [
                ("BACKGROUND", (0, 0), (-1, 0), HEADER_FILL),
                ("LINEBELOW", (0, 0), (-1, -1), 0.3, RULE_COLOUR),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("TOPPADDING", (0, 0), (-1, -1), 2.5),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 2.5),
            ]
        )
    )
    return table


def png_size(png: bytes) -> tuple[int, int]:
    """Return ``(width, height)`` in pixels from a PNG's header; raise ValueError for other data."""
    if not png.startswith(b"\x89PNG\r\n\x1a\n") or png[12:16] != b"IHDR":
        raise ValueError("a chart image must be a PNG")
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def _images(block: Images) -> Table:
    width = CONTENT_WIDTH / 2 - 2 * mm
    cells: list[Flowable] = []
    for png in block.pngs:
        pixels_wide, pixels_high = png_size(png)
        cells.append(Image(io.BytesIO(png), width=width, height=width * pixels_high / pixels_wide))
    rows = [cells[i : i + 2] + [Spacer(width, 1)] * (2 - len(cells[i : i + 2])) for i in range(0, len(cells), 2)]
    table = Table(rows, colWidths=[CONTENT_WIDTH / 2] * 2)
    table.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("BOTTOMPADDING", (0, 0), (-1, -1), 4)]))
    return table


def _flowables(blocks: Sequence[Block], styles: dict[str, ParagraphStyle]) -> list[Flowable]:
    story: list[Flowable] = []
    for block in blocks:
        if isinstance(block, Heading):
            story.append(Paragraph(_escape(block.text), styles[f"h{block.level}"]))
        elif isinstance(block, Para):
            story.append(Paragraph(_escape(block.text), styles[block.style]))
        elif isinstance(block, Grid):
            story.append(_grid(block, styles))
        elif isinstance(block, Images):
            story.append(_images(block))
        elif isinstance(block, Bullets):
            for text, source in block.items:
                parts: list[Flowable] = [Paragraph(_escape(text), styles["bullet"], bulletText=BULLET)]
                if source:
                    parts.append(Paragraph(_escape(source), styles["source"]))
                story.append(KeepTogether(parts))
        else:
            story.append(Spacer(1, block.height_mm * mm))
    return story


def _story(blocks: Sequence[Block], styles: dict[str, ParagraphStyle]) -> list[Flowable]:
    """Return the flowables; the last section and the disclaimer stay together (no orphan last page)."""
    headings = [index for index, block in enumerate(blocks) if isinstance(block, Heading) and block.level == 2]
    split = headings[-1] if headings else len(blocks)
    tail = _flowables(blocks[split:], styles)
    return [*_flowables(blocks[:split], styles), *([KeepTogether(tail)] if tail else [])]


HEADER_Y = PAGE_HEIGHT - 9 * mm
FOOTER_Y = 9 * mm


def _page_furniture(data: ReportData, font: str) -> type[Canvas]:
    """Return a canvas class that draws the header and "page n of m" footer on every page.

    Pages are kept until the document is saved, so each footer knows the page count (ReportLab
    draws a page before it knows how many follow).
    """
    lang = data.language
    patient = data.patient
    header_right = "    ".join(
        part
        for part in (
            f"{T['name'].get(lang)}: {patient.name}" if patient.name else "",
            f"{T['card'].get(lang)}: {patient.card_no}" if patient.card_no else "",
            f"{T['generated'].get(lang)}: {data.generated_on.isoformat()}",
        )
        if part
    )
    clinic_name = data.clinic.name.get(lang)
    contact = "    ".join(data.clinic.lines(lang))
    page_label = T["page"].get(lang)

    class FurnishedCanvas(Canvas):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
            self._pages: list[dict[str, object]] = []

        def showPage(self) -> None:  # noqa: N802 - ReportLab's name
            self._pages.append(dict(self.__dict__))
            self._startPage()  # type: ignore[attr-defined]

        def save(self) -> None:
            total = len(self._pages)
            for number, state in enumerate(self._pages, start=1):
                self.__dict__.update(state)
                self._furnish(number, total)
                super().showPage()
            super().save()

        def _furnish(self, number: int, total: int) -> None:
            self.saveState()
            self.setFont(font, 7.5)
            self.setFillColor(MUTED_COLOUR)
            self.drawString(MARGIN, HEADER_Y, clinic_name)
            self.drawRightString(PAGE_WIDTH - MARGIN, HEADER_Y, header_right)
            self.setStrokeColor(RULE_COLOUR)
            self.setLineWidth(0.3)
            self.line(MARGIN, HEADER_Y - 2 * mm, PAGE_WIDTH - MARGIN, HEADER_Y - 2 * mm)
            self.drawString(MARGIN, FOOTER_Y, contact)
            self.drawRightString(PAGE_WIDTH - MARGIN, FOOTER_Y, page_label.format(n=number, total=total))
            self.restoreState()

    return FurnishedCanvas


def furniture_text(data: ReportData) -> str:
    """Return every character the header and footer may draw (for the font subset)."""
    lang = data.language
    pieces = [
        data.clinic.name.get(lang),
        *data.clinic.lines(lang),
        T["name"].get(lang),
        T["card"].get(lang),
        T["generated"].get(lang),
        data.patient.name,
        data.patient.card_no or "",
        data.generated_on.isoformat(),
        T["page"].get(lang),
        "0123456789:",
    ]
    return "".join(pieces)


def render_report(data: ReportData) -> bytes:
    """Return the A4 PDF of ``data``: a header (clinic, patient, card, date) and "page n of m" on every page."""
    blocks = layout(data)
    lang = data.language
    text = "".join(block_text(blocks)) + furniture_text(data) + BULLET

    out = io.BytesIO()
    with _LOCK:
        font = _register(text)
        document = SimpleDocTemplate(
            out,
            pagesize=A4,
            leftMargin=MARGIN,
            rightMargin=MARGIN,
            topMargin=MARGIN + 2 * mm,
            bottomMargin=MARGIN + 4 * mm,
            title=T["title"].get(lang),
            author=data.clinic.name.get(lang),
            creator="Careloop",
        )
        document.build(_story(blocks, _styles(font, lang)), canvasmaker=_page_furniture(data, font))
    return out.getvalue()
