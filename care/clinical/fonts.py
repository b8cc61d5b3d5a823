"""The CJK font of charts and reports, from the declared ``mplfonts`` dependency, never the system.

``mplfonts`` ships Noto Sans CJK SC (SIL Open Font License) as a CFF-flavoured OpenType file.
Matplotlib draws it directly. ReportLab embeds only TrueType (``glyf``) outlines, so for a PDF we
subset the font to the characters a document uses and convert those outlines from cubic (CFF) to
quadratic (TrueType) curves with fontTools' cu2qu; the result is a small, standalone TrueType font
that is embedded in the PDF and renders on any machine.
"""

from __future__ import annotations

import functools
import hashlib
import io
from importlib import util
from pathlib import Path

# fontTools (a matplotlib dependency) ships no type information.
from fontTools import subset  # type: ignore[import-untyped]
from fontTools.pens.cu2quPen import Cu2QuPen  # type: ignore[import-untyped]
from fontTools.pens.ttGlyphPen import TTGlyphPen  # type: ignore[import-untyped]
from fontTools.ttLib import TTFont, newTable  # type: ignore[import-untyped]

from care.clinical.common import ClinicalError

FONT_PACKAGE = "mplfonts"
FONT_FILE = "NotoSansCJKsc-Regular.otf"
#: Maximum distance (font units of a 1000-unit em) between a cubic curve and its quadratic copy.
CURVE_TOLERANCE = 1.0
#: Characters every subset holds, so that digits, Latin text and punctuation always render.
BASE_CHARACTERS = "".join(chr(code) for code in range(0x20, 0x7F)) + "°±×·–—‘’“”…≤≥≈→µμ²℃、。，：；！？（）【】《》～·"


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


def _rename(font: TTFont, name: str) -> None:
    """Give the subset its own PostScript and family name (ReportLab keys embedded faces by it)."""
    table = font["name"]
    for record in list(table.names):
        if record.nameID in (1, 3, 4, 6, 16, 17):
            table.removeNames(nameID=record.nameID)
    table.setName(name, 1, 3, 1, 0x409)
    table.setName("Regular", 2, 3, 1, 0x409)
    table.setName(name, 3, 3, 1, 0x409)
    table.setName(name, 4, 3, 1, 0x409)
    table.setName(name, 6, 3, 1, 0x409)


def _cff_to_glyf(font: TTFont) -> None:
    """Replace the CFF outlines of ``font`` by TrueType outlines (in place)."""
    order = font.getGlyphOrder()
    glyph_set = font.getGlyphSet()
    glyf = newTable("glyf")
    glyf.glyphOrder = order
    glyf.glyphs = {}
    for glyph_name in order:
        pen = TTGlyphPen(glyph_set)
        glyph_set[glyph_name].draw(Cu2QuPen(pen, CURVE_TOLERANCE, reverse_direction=True))
        glyf.glyphs[glyph_name] = pen.glyph()
    font["loca"] = newTable("loca")
    font["glyf"] = glyf
    for table in ("CFF ", "VORG"):
        if table in font:
            del font[table]
    maxp = font["maxp"]
    maxp.tableVersion = 0x00010000
    for field in (
        "maxZones", "maxTwilightPoints", "maxStorage", "maxFunctionDefs", "maxInstructionDefs",
        "maxStackElements", "maxSizeOfInstructions", "maxComponentElements",
    ):  # fmt: skip
        setattr(maxp, field, 0)
    maxp.maxZones = 1
    post = font["post"]
    post.formatType = 3.0
    font["head"].glyphDataFormat = 0
    font.sfntVersion = "\x00\x01\x00\x00"


@functools.lru_cache(maxsize=32)
def _truetype_subset(characters: frozenset[str], name: str) -> bytes:
    options = subset.Options()
    options.layout_features = []
    options.hinting = False
    options.desubroutinize = True
    options.notdef_outline = True
    options.name_IDs = [0, 1, 2, 3, 4, 5, 6, 13, 14]
    with TTFont(str(cjk_font_path()), lazy=True) as font:
        subsetter = subset.Subsetter(options)
        subsetter.populate(text="".join(sorted(characters)))
        subsetter.subset(font)
        _cff_to_glyf(font)
        _rename(font, name)
        out = io.BytesIO()
        font.save(out)
    return out.getvalue()


def subset_name(text: str) -> str:
    """Return the name of the subset for ``text``: stable for the same set of characters."""
    characters = "".join(sorted(set(text) | set(BASE_CHARACTERS)))
    return "CareloopCJK-" + hashlib.sha256(characters.encode("utf-8")).hexdigest()[:12]


def truetype_subset(text: str) -> tuple[str, bytes]:
    """Return ``(name, TrueType bytes)`` of Noto Sans CJK SC covering every character of ``text``.

    Characters the font lacks are simply absent (ReportLab then draws its missing-glyph box); the
    font covers all of GB 18030's common Chinese characters. Results are cached per character set.
    """
    characters = frozenset(text) | frozenset(BASE_CHARACTERS)
    name = subset_name(text)
    try:
        return name, _truetype_subset(characters, name)
    except (OSError, KeyError, ValueError, TypeError) as failure:
        raise FontError(f"cannot build the report font: {failure}") from failure
