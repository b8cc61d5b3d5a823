"""The CJK font of charts and reports, from the declared ``mplfonts`` dependency, never the system.

``mplfonts`` ships Noto Sans CJK SC (SIL Open Font License) as a CFF-flavoured OpenType file.
Matplotlib draws it directly. ReportLab embeds only TrueType (``glyf``) outlines, so for a PDF we
build a small TrueType font holding just the characters a document uses: each glyph's cubic (CFF)
outline is converted to quadratic (TrueType) curves with fontTools' cu2qu once per process and
cached, and a font of the needed glyphs is assembled with fontTools' FontBuilder. The result is
standalone, embedded in the PDF, and renders on any machine.
"""

from __future__ import annotations

import functools
import hashlib
import io
import threading
from importlib import util
from pathlib import Path

# fontTools (a matplotlib dependency) ships no type information.
from fontTools.fontBuilder import FontBuilder  # type: ignore[import-untyped]
from fontTools.pens.cu2quPen import Cu2QuPen  # type: ignore[import-untyped]
from fontTools.pens.ttGlyphPen import TTGlyphPen  # type: ignore[import-untyped]
from fontTools.ttLib import TTFont  # type: ignore[import-untyped]

from care.clinical.common import ClinicalError

FONT_PACKAGE = "mplfonts"
FONT_FILE = "NotoSansCJKsc-Regular.otf"
#: Maximum distance (font units of a 1000-unit em) between a cubic curve and its quadratic copy.
CURVE_TOLERANCE = 1.0
NOTDEF = ".notdef"
#: Characters every subset holds, so that digits, Latin text and punctuation always render.
BASE_CHARACTERS = (
    "".join(chr(code) for code in range(0x20, 0x7F)) + "°±×·–—‘’“”…≤≥≈→↑↓•µμ²℃、。，：；！？（）【】《》～"
)


class FontError(ClinicalError):
    """The bundled CJK font cannot be found or converted."""


@functools.cache
def cjk_font_path() -> Path:
    """Return the path of Noto Sans CJK SC inside the installed ``mplfonts`` package."""
    spec = util.find_spec(FONT_PACKAGE)
    locations = [] if spec is None or spec.submodule_search_locations is None else spec.submodule_search_locations
    for location in locations:
        candidate = Path(location) / "fonts" / FONT_FILE
        if candidate.is_file():
            return candidate
    raise FontError(f"{FONT_FILE} not found: install the '{FONT_PACKAGE}' package (a declared dependency)")


class _GlyphSource:
    """The source font, read once, and the TrueType copies of the glyphs converted so far."""

    def __init__(self, path: Path) -> None:
        # Read into memory: no file handle stays open for the life of the process.
        self._font = TTFont(io.BytesIO(path.read_bytes()), lazy=True)
        self._cmap: dict[int, str] = self._font.getBestCmap()
        self._glyph_set = self._font.getGlyphSet()
        self._metrics = self._font["hmtx"].metrics
        self._converted: dict[str, tuple[object, int]] = {}
        self._lock = threading.Lock()
        self.units_per_em: int = self._font["head"].unitsPerEm
        hhea, os2 = self._font["hhea"], self._font["OS/2"]
        self.ascent, self.descent, self.line_gap = hhea.ascent, hhea.descent, hhea.lineGap
        self.os2 = {
            "sTypoAscender": os2.sTypoAscender,
            "sTypoDescender": os2.sTypoDescender,
            "sTypoLineGap": os2.sTypoLineGap,
            "usWinAscent": os2.usWinAscent,
            "usWinDescent": os2.usWinDescent,
            "sCapHeight": os2.sCapHeight,
            "sxHeight": os2.sxHeight,
            "fsType": os2.fsType,  # embedding permissions, kept from the source (0: installable)
            "achVendID": os2.achVendID,
        }

    def glyph_name(self, character: str) -> str | None:
        """Return the source glyph of ``character``, or None when the font lacks it."""
        return self._cmap.get(ord(character))

    def converted(self, name: str) -> tuple[object, int]:
        """Return the TrueType glyph and advance width of source glyph ``name`` (cached)."""
        with self._lock:
            found = self._converted.get(name)
            if found is None:
                pen = TTGlyphPen(None)
                self._glyph_set[name].draw(Cu2QuPen(pen, CURVE_TOLERANCE, reverse_direction=True))
                found = (pen.glyph(), self._metrics[name][0])
                self._converted[name] = found
            return found


@functools.cache
def _source() -> _GlyphSource:
    return _GlyphSource(cjk_font_path())


def subset_name(text: str) -> str:
    """Return the name of the font for ``text``: the same for the same set of characters."""
    characters = "".join(sorted(set(text) | set(BASE_CHARACTERS)))
    return "CareloopCJK-" + hashlib.sha256(characters.encode("utf-8")).hexdigest()[:12]


@functools.lru_cache(maxsize=32)
def _build(characters: frozenset[str], name: str) -> bytes:
    source = _source()
    mapping: dict[int, str] = {}
    for character in sorted(characters):
        glyph_name = source.glyph_name(character)
        if glyph_name is not None:
            mapping[ord(character)] = glyph_name
    order = [NOTDEF, *sorted(set(mapping.values()) - {NOTDEF})]
    glyphs: dict[str, object] = {}
    metrics: dict[str, tuple[int, int]] = {}
    for glyph_name in order:
        glyph, advance = source.converted(glyph_name)
        glyphs[glyph_name] = glyph
        metrics[glyph_name] = (advance, 0)
    builder = FontBuilder(source.units_per_em, isTTF=True)
    builder.setupGlyphOrder(order)
    builder.setupCharacterMap(mapping)
    builder.setupGlyf(glyphs)
    glyf = builder.font["glyf"]
    # Left side bearings are the glyphs' own xMin (an empty glyph has none: 0).
    builder.setupHorizontalMetrics(
        {glyph_name: (metrics[glyph_name][0], getattr(glyf[glyph_name], "xMin", 0)) for glyph_name in order}
    )
    builder.setupHorizontalHeader(ascent=source.ascent, descent=source.descent, lineGap=source.line_gap)
    builder.setupNameTable(
        {
            "familyName": name,
            "styleName": "Regular",
            "uniqueFontIdentifier": name,
            "fullName": name,
            "psName": name,
            "copyright": "Noto Sans CJK SC, Copyright 2014, 2015 Adobe Systems Incorporated",
            "licenseDescription": "SIL Open Font License, Version 1.1",
        }
    )
    builder.setupOS2(**source.os2)
    builder.setupPost(keepGlyphNames=False)
    out = io.BytesIO()
    builder.save(out)
    return out.getvalue()


def truetype_subset(text: str) -> tuple[str, bytes]:
    """Return ``(name, TrueType bytes)`` of Noto Sans CJK SC covering every character of ``text``.

    Characters the font lacks are left out (ReportLab then draws its missing-glyph box); the font
    covers all of GB 18030's common Chinese characters. Fonts are cached per character set, and
    converted glyphs for the life of the process.
    """
    characters = frozenset(text) | frozenset(BASE_CHARACTERS)
    name = subset_name(text)
    try:
        return name, _build(characters, name)
    except (OSError, KeyError, ValueError, TypeError, AttributeError) as failure:
        raise FontError(f"cannot build the report font: {failure}") from failure
