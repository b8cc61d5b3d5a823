"""Match a reply against numbered choices: by number, by label, by synonym, or by speech that contains one."""

from __future__ import annotations

import re
from collections.abc import Iterable

from flows.normalize import fold, is_cjk, numbers_in, whole_number

_DIGITS = re.compile(r"(?<![\d.])\d{1,3}(?![\d.])")
_ORDINAL = re.compile(r"(?:第|选)([一二两三四五六七八九十]{1,3})")
# Separators between several answers of a multiple choice ("1,3", "头晕、头痛", "1 and 3").
_SEPARATORS = re.compile(r"\s*(?:[,;/+&、]|\band\b|和|及|与|还有|以及)\s*|\s+")


class ChoiceMatcher:
    """Find which of ``count`` choices a reply means.

    In order: the reply is the choice's number ("2", "２", "二", "two"); it is a label or synonym in any
    language ("好几天", "yes", "y"); it contains exactly one label or synonym of at least two characters,
    the longest winning ("不是" over "是"; speech such as "嗯，好几天吧"); it contains exactly one number
    in range ("我选2"). Anything else, or a tie between different choices, is no match.
    """

    __slots__ = ("_contained", "_count", "_exact")

    def __init__(self, phrases: Iterable[tuple[str, int]], count: int) -> None:
        self._count = count
        exact: dict[str, set[int]] = {}
        contained: list[tuple[int, str, re.Pattern[str] | None, int]] = []
        for phrase, index in phrases:
            folded = fold(phrase)
            if not folded:
                continue
            exact.setdefault(folded, set()).add(index)
            if len(folded) >= 2:
                pattern = None if is_cjk(folded) else re.compile(r"(?<![a-z0-9])" + re.escape(folded) + r"(?![a-z0-9])")
                contained.append((len(folded), folded, pattern, index))
        self._exact = {phrase: next(iter(found)) for phrase, found in exact.items() if len(found) == 1}
        contained.sort(key=lambda item: (-item[0], item[1]))
        self._contained = tuple(contained)

    @property
    def count(self) -> int:
        """Return the number of choices."""
        return self._count

    def match(self, text: str) -> int | None:
        """Return the 0-based index of the choice ``text`` means, or None."""
        folded = fold(text)
        if not folded:
            return None
        if folded.isdigit():
            return self._in_range(int(folded)) if len(folded) <= 6 else None
        found = self._exact.get(folded)
        if found is not None:
            return found
        number = whole_number(folded)
        if number is not None:
            return self._in_range(number)
        found = self._contains(folded)
        if found is not None:
            return found
        # A number written among other words ("我选2", "第二个"); a numeral inside a word ("一半",
        # "不一定") is not a number.
        numbers = {int(digits) for digits in _DIGITS.findall(folded)}
        numbers.update(int(value) for value in numbers_in(" ".join(_ORDINAL.findall(folded))))
        if len(numbers) == 1:
            return self._in_range(numbers.pop())
        return None

    def match_many(self, text: str) -> list[int] | None:
        """Return the 0-based indexes that ``text`` picks (several allowed), in choice order, or None."""
        folded = fold(text)
        if not folded:
            return None
        single = self._exact.get(folded)
        if single is not None:
            return [single]
        compact = folded.replace(" ", "")
        if compact.isdigit() and len(compact) > 1 and self._count <= 9 and len(compact) <= self._count:
            # Keypad or quick typing: "13" means choices 1 and 3 when there are at most nine.
            picks = [self._in_range(int(digit)) for digit in compact]
        else:
            tokens = [token for token in _SEPARATORS.split(folded) if token and token.strip(" .。")]
            if not tokens or len(tokens) > 3 * self._count:
                return None
            picks = [self.match(token) for token in tokens]
        if any(pick is None for pick in picks):
            whole = self.match(folded)
            return None if whole is None else [whole]
        return sorted({pick for pick in picks if pick is not None})

    def _in_range(self, number: int) -> int | None:
        return number - 1 if 1 <= number <= self._count else None

    def _contains(self, folded: str) -> int | None:
        best_length = 0
        found: set[int] = set()
        for length, phrase, pattern, index in self._contained:
            if length < best_length:
                break
            hit = phrase in folded if pattern is None else pattern.search(folded) is not None
            if hit:
                best_length = length
                found.add(index)
        return next(iter(found)) if len(found) == 1 else None
