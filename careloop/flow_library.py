"""The installed flows: the built-in library and the clinic's folders (``CARELOOP_FLOWS_DIR``).

Every process loads them the same way (web, worker, every CLI command that runs a flow). A broken
file of the clinic is left out and the rest load; each problem is told once, at start, one line
naming the file, the node and the reason (stderr for the CLI, the log for the web process).
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path

from care.profile_fields import PROFILE_FIELDS
from careloop.settings import Settings
from flows.registry import FlowLibrary

logger = logging.getLogger("careloop.flows")

_told: weakref.WeakSet[FlowLibrary] = weakref.WeakSet()


def load_flow_library(settings: Settings, extra: Iterable[Path] = ()) -> FlowLibrary:
    """Return the built-in flows with those of ``CARELOOP_FLOWS_DIR`` and of ``extra`` folders.

    A clinic's flow with a built-in id and a higher version is the one new conversations get;
    conversations already running keep the version they pinned (every version stays installed).
    """
    return FlowLibrary([*settings.flows_dirs, *extra], profile_fields=PROFILE_FIELDS)


def problem_lines(library: FlowLibrary) -> list[str]:
    """Return one line per problem of the files the library left out."""
    return [f"flow left out: {problem}" for problem in library.problems]


def tell_problems(library: FlowLibrary, say: Callable[[str], object] | None = None) -> None:
    """Say each problem of ``library`` once (``say``: a line writer; default: a warning in the log)."""
    if library in _told:
        return
    _told.add(library)
    for line in problem_lines(library):
        if say is None:
            logger.warning("%s", line)
        else:
            say(line)
