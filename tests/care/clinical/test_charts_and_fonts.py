"""Trend charts (SVG and PNG, reference band shaded, CJK labels) and the bundled CJK font."""

from __future__ import annotations

import io
from datetime import date
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from defusedxml import ElementTree
from fontTools.ttLib import TTFont  # type: ignore[import-untyped]
from matplotlib import _pylab_helpers
from PIL import Image

from care.clinical.charts import PDF_CHART, render_trend
from care.clinical.fonts import cjk_font_path, subset_name, truetype_subset
from care.clinical.trends import analyse
from tests.care.clinical.history import annual

BAND_TINT = (225, 241, 231)  # #2e9d5b at 13 % over white


def png_image(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image.convert("RGB")


def count_near(image: Image.Image, colour: tuple[int, int, int], tolerance: int = 6) -> int:
    """Count the pixels within ``tolerance`` of ``colour`` on every channel."""
    pixels = np.asarray(image, dtype=np.int16)
    return int(np.all(np.abs(pixels - np.array(colour)) <= tolerance, axis=-1).sum())


def test_png_has_the_reference_band_and_is_not_blank() -> None:
    data = render_trend(analyse("sbp", annual("sbp")), fmt="png")
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    image = png_image(data)
    assert image.size == (960, 360)  # 6.4 x 2.4 in at 150 dpi
    assert count_near(image, BAND_TINT) > 20_000  # the shaded band
    assert count_near(image, (31, 95, 168), 30) > 500  # the blue line and points
    assert count_near(image, (192, 57, 43), 25) > 30  # points above the range in red


def test_no_band_without_a_reference_range() -> None:
    image = png_image(render_trend(analyse("height", [(date(2023, 1, 1), 170), (date(2024, 1, 1), 170.5)])))
    assert count_near(image, BAND_TINT) == 0


def test_svg_draws_text_as_paths_and_shades_the_band() -> None:
    data = render_trend(analyse("hdl", annual("hdl")), fmt="svg", lang="zh")
    root = ElementTree.fromstring(data)
    assert root.tag.endswith("svg")
    svg = data.decode("utf-8")
    assert "<text" not in svg  # glyphs are outlines: the browser needs no CJK font
    assert "fill: #2e9d5b; opacity: 0.13" in svg
    assert "<!-- 高密度脂蛋白胆固醇 (mmol/L) -->" in svg  # matplotlib labels the path group with the text


def test_pdf_size_chart() -> None:
    image = png_image(render_trend(analyse("fpg", annual("fpg")), size=PDF_CHART))
    assert image.size == (700, 320)


def test_single_point_chart() -> None:
    image = png_image(render_trend(analyse("fpg", [(date(2024, 3, 1), 6.4)])))
    assert image.getextrema() != ((255, 255), (255, 255), (255, 255))


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_rendering_leaves_no_global_state(lang: str) -> None:
    before = dict(matplotlib.rcParams)
    backend = matplotlib.get_backend()
    figures = _pylab_helpers.Gcf.get_num_fig_managers()
    render_trend(analyse("sbp", annual("sbp")), lang=lang, fmt="png")  # type: ignore[arg-type]
    render_trend(analyse("sbp", annual("sbp")), lang=lang, fmt="svg")  # type: ignore[arg-type]
    assert dict(matplotlib.rcParams) == before
    assert matplotlib.get_backend() == backend
    assert _pylab_helpers.Gcf.get_num_fig_managers() == figures  # no pyplot figure was opened


def test_unknown_format() -> None:
    with pytest.raises(ValueError, match="unknown chart format 'gif'"):
        render_trend(analyse("sbp", annual("sbp")), fmt="gif")  # type: ignore[arg-type]


def test_cjk_font_comes_from_the_mplfonts_package() -> None:
    import mplfonts

    path = cjk_font_path()
    assert path.name == "NotoSansCJKsc-Regular.otf"
    assert Path(mplfonts.__file__).parent in path.parents


def test_truetype_subset_has_glyf_outlines_for_the_text() -> None:
    name, data = truetype_subset("张伟的健康报告")
    font = TTFont(io.BytesIO(data))
    assert "glyf" in font
    assert "CFF " not in font
    cmap = font.getBestCmap()
    for character in "张伟的健康报告0123456789ABCxyz%.<":
        assert ord(character) in cmap, character
    assert font["glyf"][cmap[ord("张")]].numberOfContours > 0
    assert font["name"].getDebugName(6) == name


def test_subset_names_follow_the_character_set() -> None:
    assert subset_name("张伟") == subset_name("伟张张")
    assert subset_name("张伟") != subset_name("李娜")
    assert truetype_subset("张伟")[0] == subset_name("张伟")
