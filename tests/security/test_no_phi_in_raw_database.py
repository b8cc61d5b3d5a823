"""A copy of the database shows nothing a patient or the clinic entered.

A demo-like run through the real entry points, committed as they commit it: ``careloop init``,
patients enrolled from a workbook, checkup results imported, whole conversations over the console
channel through the bot's inbound entry point (PHQ-9, GAD-7, the satisfaction survey with a free
text answer, a home blood-pressure reading), a printed report, the worker sealing the audit
trail. Then the raw SQLite file (and its WAL) or a ``pg_dump`` of the PostgreSQL schema is
searched for every name, phone, ID number, openid, card number, report id, answer, category,
label, tag name, reading and free text that was entered or derived.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select

from bot.messages import InboundMessage
from bot.models import ConversationSession
from bot.router import handle_inbound
from care.models import FlowResult, PatientTag, StaffTask
from careloop.bot_runtime import bot_for
from careloop.runtime import build_runtime
from tests.careloop.test_cli_foundation import GOOD_ROWS, HEADER_ZH, raw_database_bytes, write_csv, write_xlsx

# Choices 1..4 are not_at_all .. nearly_every_day; item 9 "several days" (a positive item 9).
PHQ9 = ["4", "3", "2", "3", "4", "2", "3", "1", "2", "2"]
GAD7 = ["4", "3", "3", "2", "3", "2", "3"]
COMMENT = "前台的王护士特别耐心XQ7"
READING = "血压163/97"
SATISFACTION = ["3", COMMENT]

ENTERED_ANSWERS = [COMMENT, "163/97", "163.0", "97.0"]
DERIVED = [
    # answer and score categories, as the flows name them
    "nearly_every_day", "more_than_half", "several_days", "not_at_all", "detractor", "moderately_severe",
    # labels
    "几乎每天", "一半以上的天数", "好几天", "不太满意", "中度",
    # tag names the flows add
    "phq9_positive", "phq9_item9_positive", "gad7_positive",
]
REPORT_ID = "RPT-ZX-88121"
RESULTS_HEADER = ["卡号", "报告编号", "检查日期", "指标代码", "结果", "单位"]


def say(runtime, services, card: str, text: str) -> list[str]:
    """One console message through the bot's entry point, in its own committed unit of work."""
    message = InboundMessage(channel="console", provider_key=f"console:{uuid.uuid4()}", sender=card, kind="text",
                             text=text, received_at=runtime.clock.now())
    with runtime.db.unit_of_work() as session:
        return handle_inbound(session, services, message).texts


def test_a_copy_of_the_database_after_a_demo_run_holds_nothing_entered(run_cli, fresh_settings, tmp_path):
    assert run_cli("init")[0] == 0
    assert run_cli("import", "patients", str(write_xlsx(tmp_path / "patients.xlsx", HEADER_ZH, GOOD_ROWS)))[0] == 0
    cards = [row[0] for row in GOOD_ROWS]
    results = write_csv(tmp_path / "results.csv", RESULTS_HEADER, [
        [cards[0], REPORT_ID, "2026-11-20", "sbp", "151", "mmHg"],
        [cards[0], REPORT_ID, "2026-11-20", "waist", "96.5", "cm"],  # no timestamp holds "96.5"
    ])
    code, _, err = run_cli("import", "reports", str(results))
    assert code == 0, err

    runtime = build_runtime(fresh_settings)
    services = bot_for(runtime).services
    conversations = {cards[0]: ["问卷", *PHQ9], cards[1]: ["焦虑", *GAD7], cards[2]: ["满意度", *SATISFACTION]}
    conversations[cards[1]] += ["血压", READING]
    for card, messages in conversations.items():
        for text in messages:
            say(runtime, services, card, text)
    with runtime.db.unit_of_work() as session:
        flows = {(row.flow_id, row.status) for row in session.scalars(select(ConversationSession))}
        assert flows == {("phq9", "ended"), ("gad7", "ended"), ("satisfaction", "ended"),
                         ("home_monitoring", "ended")}
        categories = set(session.scalars(select(FlowResult)).all())
        assert {row.category for row in categories} >= {"nearly_every_day", "detractor"}
        assert {row.tag for row in session.scalars(select(PatientTag))} >= {"phq9_positive", "gad7_positive"}
        assert session.scalars(select(StaffTask)).first() is not None
    runtime.close()

    code, _, err = run_cli("report", cards[0], "--out", str(tmp_path / "report.pdf"))
    assert code == 0, err
    assert run_cli("worker", "--once")[0] == 0
    code, out, err = run_cli("audit", "verify")
    assert code == 0, out + err

    dump = raw_database_bytes(fresh_settings, tmp_path)
    assert len(dump) > 10_000
    needles: list[str] = [*ENTERED_ANSWERS, *DERIVED, REPORT_ID, "96.5", "高血压管理套餐"]
    for row in GOOD_ROWS:
        card, name, phone, id_number, openid = row[0], row[1], row[4], row[5], row[8]
        needles += [card, name, "".join(ch for ch in phone if ch.isdigit())[-11:]]
        needles += [value for value in (id_number, openid) if value]
    found = [needle for needle in needles
             if needle.encode() in dump or (not needle.isascii() and needle.encode("utf-16-le") in dump)]
    assert found == []
