"""A patient's own words outside a flow: a greeting gets the menu, anything else goes to the care team.

"我头很痛怎么办" or "can I change my appointment" is a question for a person, not for the menu again:
the patient is told, in their language, that the care team will reply, and the message lands on the
staff work queue (one open task per patient collects the messages that follow it). A message with a
red-flag word (``red_flags.yaml``: chest pain, breathing, self-harm, ...) first gets the emergency
advice, and opens an urgent task of its own every time.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.config import BotConfig
from bot.texts import say
from care.models import Patient, StaffTask, TaskStatus
from care.tasks import create_task
from security.audit import Actor
from security.fields import clock_of

RED_FLAGS_FILE = Path(__file__).with_name("red_flags.yaml")
MESSAGE_TASK = "patient_message"
RED_FLAG_TASK = "red_flag_message"
KEPT_CHARACTERS = 1000
MAX_MESSAGES_PER_TASK = 50

#: Messages that ask for the menu rather than for a person.
GREETINGS = frozenset({
    "你好", "您好", "嗨", "在吗", "在不在", "菜单", "目录", "开始", "hi", "hello", "hey", "menu", "start over",
})
_NOISE = re.compile(r"[\s\W_]+", re.UNICODE)


@dataclass(frozen=True)
class RedFlag:
    """A kind of emergency a message names, and the advice it gets."""

    kind: str
    advice: str


@functools.cache
def _red_flag_words() -> tuple[tuple[str, RedFlag], ...]:
    data = yaml.safe_load(RED_FLAGS_FILE.read_text(encoding="utf-8"))
    words: list[tuple[str, RedFlag]] = []
    for kind, entry in data["kinds"].items():
        flag = RedFlag(str(kind), str(entry["advice"]))
        for lang in ("zh", "en"):
            words.extend((_squeeze(word), flag) for word in entry.get(lang) or ())
    # Longer phrases first, so the most specific kind wins.
    return tuple(sorted(words, key=lambda item: -len(item[0])))


def _squeeze(text: str) -> str:
    return _NOISE.sub("", text.casefold())


def red_flag_in(text: str) -> RedFlag | None:
    """Return the red flag ``text`` names, or None."""
    squeezed = _squeeze(text)
    for word, flag in _red_flag_words():
        if word and word in squeezed:
            return flag
    return None


def wants_the_menu(text: str) -> bool:
    """Tell whether a message outside a flow asks for the menu (a greeting, a bare number, nothing)."""
    squeezed = _squeeze(text)
    return len(squeezed) <= 1 or squeezed.isdigit() or squeezed in {_squeeze(word) for word in GREETINGS}


def answer_free_text(session: Session, config: BotConfig, patient: Patient, channel: str, text: str) -> list[str]:
    """Queue the message for the care team and return what the patient is told (the advice first)."""
    kept = text.strip()[:KEPT_CHARACTERS]
    actor = Actor("system", "bot", channel)
    lang = patient.language
    flag = red_flag_in(kept)
    if flag is not None:
        create_task(session, patient, kind=RED_FLAG_TASK, priority="urgent", reason=f"red_flag:{flag.kind}",
                    details={"channel": channel, "message": kept}, actor=actor)
        advice = "red_flag_self_harm" if flag.advice == "self_harm" else "red_flag_emergency"
        return [say(advice, lang, channel=channel, **config.clinic.placeholders()),
                say("red_flag_team_told", lang, channel=channel, **config.clinic.placeholders())]
    _queue_for_the_team(session, patient, channel, kept, actor)
    return [say("message_for_the_team", lang, channel=channel, **config.clinic.placeholders())]


def _queue_for_the_team(session: Session, patient: Patient, channel: str, text: str, actor: Actor) -> None:
    """Add the message to the patient's open message task, or open one."""
    entry = {"channel": channel, "message": text, "at": clock_of(session).now().isoformat()}
    open_task = session.scalars(
        select(StaffTask).where(StaffTask.patient_id == patient.id, StaffTask.kind == MESSAGE_TASK,
                                StaffTask.status == TaskStatus.OPEN.value).order_by(StaffTask.created_at.desc())
        .limit(1)
    ).one_or_none()
    if open_task is not None:
        messages = [*list((open_task.details or {}).get("messages") or []), entry][-MAX_MESSAGES_PER_TASK:]
        open_task.details = {**(open_task.details or {}), "messages": messages}
        return
    create_task(session, patient, kind=MESSAGE_TASK, priority="normal", reason=MESSAGE_TASK,
                details={"messages": [entry]}, actor=actor)
