"""Answer scripts of the library flows (``flows/library/scripts/<flow id>.yaml``) and what they expect.

A script holds runs; each run is one conversation: the patient's language, who the patient is, the
answers as typed (and, where the phone differs, as keyed or spoken), and what the record holds at the
end. The engine-level test checks that a flow's runs together take every node and every edge of the
flow; the channel matrix replays the same runs over each channel and checks the record. Format::

    flow: hypertension_followup
    uncovered:                       # edges no scripted answer can take, each with its reason
      - {from: bp, to: adherence, reason: only a timer skips this question}
    runs:
      - name: red flag, stopped medicine
        lang: zh                     # zh or en; every script has runs in both
        patient: {sex: male, age: 66, observations: {sbp: 150}, profile: {}, tags: []}
        answers: ["185/112", "4", "3"]
        voice: ["185*112", "4", "3"]  # optional: what the patient keys or says on a call, answer by answer
        channels: [console, wechat, sms, voice]   # optional: the channels that can carry the run (default all)
        expect:
          end: completed             # how the conversation ended
          results: {bp: {category: red_flag}, adherence: {value: stopped}}
          profile: {bp_treated: false}
          observations: {8480-6: 185}
          tasks: [urgent bp_red_flag]                # the flow's own tasks: priority and reason, in any order
          record_tasks: [urgent hypoglycaemia_level1]  # tasks the record opens itself (a red-flag reading)
          tags_added: [bp_above_target]
          tags_removed: []
          followups: [hypertension_followup]         # flows scheduled by the run
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from flows.registry import LIBRARY_DIR

SCRIPTS_DIR = LIBRARY_DIR / "scripts"
CHANNELS = ("console", "wechat", "sms", "voice")


@dataclass(frozen=True)
class Expectation:
    """What the record holds when a run has ended."""

    end: str = "completed"
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    profile: dict[str, Any] = field(default_factory=dict)
    observations: dict[str, float] = field(default_factory=dict)
    tasks: tuple[str, ...] = ()
    record_tasks: tuple[str, ...] = ()
    tags_added: tuple[str, ...] = ()
    tags_removed: tuple[str, ...] = ()
    followups: tuple[str, ...] = ()


@dataclass(frozen=True)
class Run:
    """One scripted conversation of a flow."""

    flow: str
    name: str
    lang: str
    answers: tuple[str, ...]
    voice: tuple[str, ...] | None
    channels: tuple[str, ...]
    sex: str | None
    age: int | None
    observations: dict[str, float]
    profile: dict[str, Any]
    tags: tuple[str, ...]
    expect: Expectation

    @property
    def id(self) -> str:
        return f"{self.flow}[{self.lang}] {self.name}"

    def answers_on(self, channel: str) -> tuple[str, ...]:
        """Return the answers as the patient gives them on ``channel``."""
        return self.voice if channel == "voice" and self.voice is not None else self.answers

    def birth_date(self, today: date) -> date:
        """Return a birth date that makes the patient ``age`` on ``today`` (mid-year, so no birthday is near)."""
        age = self.age if self.age is not None else 50
        return date(today.year - age - 1, 7, 1) if (today.month, today.day) < (7, 1) else date(today.year - age, 7, 1)


@dataclass(frozen=True)
class Script:
    """The runs of one flow and the edges they are excused from taking."""

    flow: str
    path: Path
    runs: tuple[Run, ...]
    uncovered: frozenset[tuple[str, str]]


def _run(flow: str, raw: dict[str, Any]) -> Run:
    patient = raw.get("patient") or {}
    expect = raw.get("expect") or {}
    voice = raw.get("voice")
    return Run(
        flow=flow, name=str(raw["name"]), lang=str(raw["lang"]),
        answers=tuple(str(answer) for answer in raw["answers"]),
        voice=tuple(str(answer) for answer in voice) if voice is not None else None,
        channels=tuple(raw.get("channels") or CHANNELS),
        sex=patient.get("sex"), age=patient.get("age"),
        observations={str(code): float(value) for code, value in (patient.get("observations") or {}).items()},
        profile=dict(patient.get("profile") or {}), tags=tuple(patient.get("tags") or ()),
        expect=Expectation(
            end=str(expect.get("end", "completed")),
            results={str(name): dict(value) for name, value in (expect.get("results") or {}).items()},
            profile=dict(expect.get("profile") or {}),
            observations={str(code): float(value) for code, value in (expect.get("observations") or {}).items()},
            tasks=tuple(expect.get("tasks") or ()), record_tasks=tuple(expect.get("record_tasks") or ()),
            tags_added=tuple(expect.get("tags_added") or ()),
            tags_removed=tuple(expect.get("tags_removed") or ()), followups=tuple(expect.get("followups") or ()),
        ),
    )


def load_script(flow_id: str) -> Script:
    """Return the script of ``flow_id``; raise FileNotFoundError when the flow has none."""
    path = SCRIPTS_DIR / f"{flow_id}.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if data.get("flow") != flow_id:
        raise ValueError(f"{path} is the script of {data.get('flow')!r}, not of {flow_id!r}")
    uncovered = frozenset((str(item["from"]), str(item["to"])) for item in data.get("uncovered") or ())
    return Script(flow_id, path, tuple(_run(flow_id, raw) for raw in data["runs"]), uncovered)


def library_flow_ids() -> list[str]:
    """Return the ids of the library's flows, from their files (an older version's file, ``phq9.v1.yaml``: none)."""
    ids: list[str] = []
    for path in sorted(LIBRARY_DIR.glob("*.yaml")):
        flow_id = str(yaml.safe_load(path.read_text(encoding="utf-8"))["id"])
        if flow_id not in ids:
            ids.append(flow_id)
    return ids


def all_runs() -> list[Run]:
    """Return every run of every library flow that has a script."""
    runs: list[Run] = []
    for flow_id in library_flow_ids():
        if (SCRIPTS_DIR / f"{flow_id}.yaml").exists():
            runs.extend(load_script(flow_id).runs)
    return runs
