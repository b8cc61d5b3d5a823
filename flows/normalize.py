"""Normalise what patients type or say before it is matched against an answer.

Patients answer on phones, often in a hurry, sometimes by voice: full-width digits and punctuation
(``１２３``, ``／``), Chinese numerals (``二``, ``一百三十五``, ``六点一``), spoken English numbers
(``two``), trailing particles (``是的啊``) and stray punctuation are all common. Everything here is
pure string work, bounded by :data:`MAX_INPUT_CHARS` so that a hostile, very long message costs
no more than a normal one.
"""

from __future__ import annotations

import re
import unicodedata

#: Only this many characters of an input are looked at (free text keeps up to its own limit).
MAX_INPUT_CHARS = 4000

_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"), None)
_SPACES = re.compile(r"\s+")
# Punctuation that patients put around a short answer ("2。", "(2)", "是！").
_EDGE_PUNCT = "。.,，、!！?？~～:：;；'\"“”‘’()（）[]【】<>《》—_*#…·"
# Particles that end a spoken or typed short answer without changing it ("是的啊", "没有呢").
_PARTICLES = re.compile(r"[啊呀吧呢了哦喔嘛哈噢]+$")

_CN_DIGITS = {
    "零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9,
}  # fmt: skip
_CN_UNITS = {"十": 10, "百": 100, "千": 1000}
_CN_RUN = re.compile(r"[零〇一二两三四五六七八九十百千万]+(?:点[零〇一二三四五六七八九]+)?")

_EN_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20,
    "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
}
_EN_RUN = re.compile(
    r"\b(?:(?:" + "|".join(sorted(_EN_WORDS, key=len, reverse=True)) + r"|hundred|thousand|and|point)"
    r"(?:[\s-]+|\b))+",
)
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def normalize(text: str) -> str:
    """Return ``text`` in NFKC form, without invisible characters, with runs of space collapsed.

    NFKC turns full-width digits, letters and punctuation into their ASCII forms (``１２３`` -> ``123``,
    ``／`` -> ``/``, ``，`` -> ``,``).
    """
    text = unicodedata.normalize("NFKC", text[:MAX_INPUT_CHARS]).translate(_INVISIBLE)
    return _SPACES.sub(" ", text).strip()


def fold(text: str) -> str:
    """Return ``text`` ready for matching: normalised, case-folded, edge punctuation and particles removed."""
    folded = normalize(text).casefold().strip(_EDGE_PUNCT + " ")
    if len(folded) > 1:
        folded = _PARTICLES.sub("", folded) or folded
    return folded.strip(_EDGE_PUNCT + " ")


def is_cjk(text: str) -> bool:
    """Return whether ``text`` contains a CJK ideograph."""
    return any("\u3400" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff" for ch in text)


def _cn_integer(run: str) -> int | None:
    """Return the value of a Chinese integer numeral (``一百三十五`` -> 135), or None."""
    if not run:
        return None
    if all(ch in _CN_DIGITS for ch in run):
        # Digit by digit, as numbers are often read out ("一三五" -> 135).
        return int("".join(str(_CN_DIGITS[ch]) for ch in run))
    total = 0
    section = 0
    digit: int | None = None
    for ch in run:
        if ch in "零〇":
            # A placeholder zero ("一百零五"): it adds nothing.
            continue
        if ch in _CN_DIGITS:
            if digit is not None:
                return None
            digit = _CN_DIGITS[ch]
        elif ch in _CN_UNITS:
            section += (1 if digit is None else digit) * _CN_UNITS[ch]
            digit = None
        elif ch == "万":
            total = (total + section + (digit or 0)) * 10000
            section = 0
            digit = None
        else:
            return None
    return total + section + (digit or 0)


def cn_number(run: str) -> float | None:
    """Return the value of a Chinese numeral, with an optional ``点`` decimal part (``六点一`` -> 6.1)."""
    whole, _, decimals = run.partition("点")
    value = _cn_integer(whole)
    if value is None:
        return None
    if not decimals:
        return float(value)
    if not all(ch in _CN_DIGITS for ch in decimals):
        return None
    return float(f"{value}.{''.join(str(_CN_DIGITS[ch]) for ch in decimals)}")


def _en_number(run: str) -> float | None:
    words = [w for w in re.split(r"[\s-]+", run.strip()) if w and w != "and"]
    if not words:
        return None
    decimals: list[int] = []
    if "point" in words:
        at = words.index("point")
        tail = words[at + 1 :]
        words = words[:at]
        if not tail or any(_EN_WORDS.get(w, 10) > 9 for w in tail):
            return None
        decimals = [_EN_WORDS[w] for w in tail]
    total = 0
    current = 0
    for word in words:
        if word == "hundred":
            current = (current or 1) * 100
        elif word == "thousand":
            total += (current or 1) * 1000
            current = 0
        elif word in _EN_WORDS:
            current += _EN_WORDS[word]
        else:
            return None
    value = total + current
    if decimals:
        return float(f"{value}.{''.join(map(str, decimals))}")
    return float(value) if words else None


def _format(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def spell_out_numerals(text: str) -> str:
    """Return ``text`` with Chinese and spoken English numerals replaced by digits.

    ``高压一百三十五低压八十五`` -> ``高压135低压85``; ``six point one`` -> ``6.1``. Used only where a number
    is expected: in choice matching a word such as ``一半`` must stay a word.
    """

    def cn(match: re.Match[str]) -> str:
        value = cn_number(match.group(0))
        return match.group(0) if value is None else _format(value)

    def en(match: re.Match[str]) -> str:
        run = match.group(0)
        value = _en_number(run.casefold())
        if value is None:
            return run
        return _format(value) + (" " if run[-1:].isspace() else "")

    text = _CN_RUN.sub(cn, text)
    if any("a" <= ch <= "z" for ch in text.casefold()):
        text = _EN_RUN.sub(en, text.casefold())
    return text


def numbers_in(text: str) -> list[float]:
    """Return every number written in ``text`` (digits, or numerals spelled out), in order."""
    return [float(m) for m in _NUMBER.findall(spell_out_numerals(text))]


def whole_number(text: str) -> int | None:
    """Return the integer that ``text`` consists of ("2", "二", "two", "第2"), or None."""
    folded = fold(text)
    if folded.isdigit() and len(folded) <= 6:
        return int(folded)
    if folded and len(folded) <= 12:
        converted = spell_out_numerals(folded).strip()
        if converted.isdigit() and len(converted) <= 6:
            return int(converted)
    return None
