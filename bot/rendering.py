"""Turning the engine's neutral outputs into what a channel shows or says."""

from __future__ import annotations

from collections.abc import Sequence

from flows.outputs import Output
from flows.render import render


def render_text(outputs: Sequence[Output], lang: str) -> list[str]:
    """One text message per output, with numbered choices and a short instruction."""
    return [render(output, "text", lang).text for output in outputs]
