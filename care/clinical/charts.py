"""Trend charts with the reference band shaded: SVG for the web, PNG for the PDF.

Pure matplotlib object API on the Agg canvas: no ``pyplot``, no ``matplotlib.use``, no change to
``rcParams``, so rendering leaves no global state behind and is safe in a web worker. Chinese text
uses Noto Sans CJK SC from the ``mplfonts`` dependency (:mod:`care.clinical.fonts`); digits and dates
use matplotlib's bundled DejaVu Sans. SVG text is drawn as paths, so browsers need no font.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date
from typing import Literal

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties

from care.clinical.common import Label, Lang, format_number
from care.clinical.fonts import cjk_font_path
from care.clinical.trends import SOURCE_KINDS, SOURCE_LABELS, Trend

ChartFormat = Literal["svg", "png"]

LINE_COLOUR = "#1f5fa8"
BAND_COLOUR = "#2e9d5b"
FLAG_COLOURS = {"high": "#c0392b", "low": "#d68910", "normal": LINE_COLOUR}
HOME_COLOUR = "#7d5ba6"
REFERENCE_LABEL = Label("参考范围", "Reference")
#: How each kind of source is drawn: marker, line style and colour of its line.
SOURCE_STYLE = {"checkup": ("o", "-", LINE_COLOUR), "clinic": ("s", "-", "#117a65"), "home": ("^", ":", HOME_COLOUR)}
#: left, right, bottom, top margins in inches: room for tick labels and the title line.
MARGINS_IN = (0.5, 0.15, 0.3, 0.3)


@dataclass(frozen=True)
class ChartSize:
    """Size of a chart in inches and the raster resolution of PNGs."""

    width: float = 6.4
    height: float = 2.4
    dpi: int = 150


#: Charts for the web page.
WEB_CHART = ChartSize()
#: Charts for the PDF: half the A4 text width at 1:1, so the text stays legible in print.
PDF_CHART = ChartSize(width=3.5, height=1.6, dpi=200)


def _font(size: float) -> FontProperties:
    return FontProperties(fname=str(cjk_font_path()), size=size)


def _limits(values: list[float], low: float | None, high: float | None) -> tuple[float, float]:
    """Return y limits showing every value and the edges of the reference band, with a margin."""
    marks = [*values, *(edge for edge in (low, high) if edge is not None)]
    bottom, top = min(marks), max(marks)
    span = top - bottom or max(abs(top) * 0.1, 1.0)
    return bottom - span * 0.15, top + span * 0.2


def _x_limits(xs: list[float]) -> tuple[float, float]:
    """Return x limits (ordinal days): a margin before the first date, the axis ends at the last one.

    The right margin is only room for the last marker (a few days), so the axis never reaches into a
    year without data; a single date gets half a year before it.
    """
    if xs[0] == xs[-1]:
        return xs[0] - 180, xs[0] + 12
    span = xs[-1] - xs[0]
    pad = max(20.0, span / 20)
    return xs[0] - pad, xs[-1] + max(3.0, span / 60)


def _date_ticks(dates: list[date], left: float, right: float) -> tuple[list[float], list[str]]:
    """Return tick positions and labels: 1 January of each year over long spans, else the dates.

    No tick lies after the last date.
    """
    first, last = date.fromordinal(int(left) + 1), max(dates)
    if (last - first).days > 400:
        years = [date(year, 1, 1) for year in range(first.year, last.year + 1)]
        shown = [day for day in years if left <= day.toordinal() <= last.toordinal()]
        shown = shown[:: max(1, -(-len(shown) // 8))]
        return [float(day.toordinal()) for day in shown], [str(day.year) for day in shown]
    distinct = sorted(set(dates))
    shown = distinct[:: max(1, -(-len(distinct) // 6))]
    return [float(day.toordinal()) for day in shown], [day.strftime("%Y-%m") for day in shown]


def render_trend(
    trend: Trend, *, lang: Lang = "zh", fmt: ChartFormat = "png", size: ChartSize | None = None
) -> bytes:
    """Return the chart of ``trend`` as SVG or PNG bytes.

    The line joins the measurements in date order; points outside the reference range are drawn in
    the flag's colour; the reference range (lab-printed or fallback) is shaded. Raises ValueError
    for an unknown ``fmt``.
    """
    if fmt not in ("svg", "png"):
        raise ValueError(f"unknown chart format {fmt!r} (svg or png)")
    size = size or ChartSize()
    figure = trend_figure(trend, lang=lang, size=size)
    out = io.BytesIO()
    if fmt == "svg":
        figure.savefig(out, format="svg", dpi=size.dpi, metadata={"Date": None})
    else:
        # Light compression: the PDF re-compresses the pixels anyway, and level 6 costs several ms.
        figure.savefig(
            out, format="png", dpi=size.dpi, metadata={"Software": None}, pil_kwargs={"compress_level": 1}
        )
    return out.getvalue()


def trend_figure(trend: Trend, *, lang: Lang = "zh", size: ChartSize | None = None) -> Figure:
    """Return the matplotlib figure of ``trend`` (see :func:`render_trend`): one series per kind of source."""
    size = size or ChartSize()
    figure = Figure(figsize=(size.width, size.height), dpi=size.dpi)
    FigureCanvasAgg(figure)
    # Fixed margins in inches (a layout engine would cost a second draw per chart).
    figure.subplots_adjust(
        left=MARGINS_IN[0] / size.width,
        right=1 - MARGINS_IN[1] / size.width,
        bottom=MARGINS_IN[2] / size.height,
        top=1 - MARGINS_IN[3] / size.height,
    )
    axes = figure.add_subplot()
    text_font, small_font = _font(10), _font(8)

    dates = [point.when for point in trend.points]
    xs = [float(day.toordinal()) for day in dates]
    values = [point.value for point in trend.points]
    reference = trend.reference
    low = None if reference is None else reference.low
    high = None if reference is None else reference.high
    bottom, top = _limits(values, low, high)
    axes.set_ylim(bottom, top)

    if reference is not None:
        axes.axhspan(
            low if low is not None else bottom,
            high if high is not None else top,
            color=BAND_COLOUR,
            alpha=0.13,
            linewidth=0,
        )
        band = f"{REFERENCE_LABEL.get(lang)} {reference.text(trend.decimals)}"
        axes.set_title(band, fontproperties=small_font, loc="right", color=BAND_COLOUR)
    colours = [FLAG_COLOURS.get(flag or "normal", LINE_COLOUR) for flag in trend.point_flags()]
    kinds = [point.source for point in trend.points]
    present = [kind for kind in SOURCE_KINDS if kind in kinds]
    for kind in present:
        # Each kind of source is its own series: its own line, marker and legend entry.
        marker, style, line_colour = SOURCE_STYLE[kind]
        chosen = [i for i, k in enumerate(kinds) if k == kind]
        axes.plot(
            [xs[i] for i in chosen], [values[i] for i in chosen], color=line_colour, linestyle=style,
            linewidth=1.6 if kind != "home" else 1.0, marker=marker, markersize=4, zorder=3,
            label=SOURCE_LABELS[kind].get(lang),
        )
        axes.scatter(
            [xs[i] for i in chosen], [values[i] for i in chosen], c=[colours[i] for i in chosen],
            s=22 if kind != "home" else 16, marker=marker, zorder=4,
        )
    if present != ["checkup"]:
        axes.legend(prop=_font(7), loc="upper left", frameon=False, ncol=len(present), handlelength=1.6)
    axes.annotate(
        format_number(values[-1], trend.decimals),
        (xs[-1], values[-1]),
        textcoords="offset points",
        xytext=(0, 7),
        ha="center",
        fontproperties=small_font,
        color=colours[-1],
    )
    left, right = _x_limits(xs)
    axes.set_xlim(left, right)
    ticks, labels = _date_ticks(dates, left, right)
    axes.set_xticks(ticks, labels=labels)

    axes.set_title(f"{trend.name.get(lang)} ({trend.unit})", fontproperties=text_font, loc="left")
    axes.tick_params(labelsize=8)
    axes.grid(axis="y", color="#dddddd", linewidth=0.6)
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)

    return figure
