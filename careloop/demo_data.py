"""A demo clinic of synthetic patients (made up names, numbers and results; no real person)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from care.followups import schedule_followup
from care.identifiers import id_number_check_character
from care.models import Patient
from care.observations import record_observation
from care.patients import DEFAULT_PATIENT_TIMEZONE, EnrolmentRequest, enroll, real_patients
from security.audit import Actor
from security.fields import clock_of

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = ["伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超",
         "秀兰", "霞", "平", "刚", "桂英", "建华", "玉兰", "志强", "海燕", "国庆", "淑珍", "文博"]
PACKAGES = ["高血压管理套餐", "糖尿病管理套餐", "年度体检VIP", "慢病随访基础包"]
# Synthetic area codes (real prefectures' codes, no real person's number).
AREA_CODES = ["110101", "310104", "440106", "330106", "510107", "420102"]

DEMO_PATIENTS = 40
YEARS_OF_HISTORY = 5


def synthetic_id_number(rng: random.Random, born: date, gender: str) -> str:
    sequence = rng.randrange(0, 50) * 2 + (1 if gender == "M" else 0)
    first17 = f"{rng.choice(AREA_CODES)}{born:%Y%m%d}{rng.randrange(0, 10)}{sequence:02d}"
    return first17 + id_number_check_character(first17)


def synthetic_patients(count: int, seed: int = 20261129) -> Iterator[EnrolmentRequest]:
    rng = random.Random(seed)  # noqa: S311 - synthetic demo data, reproducible on purpose
    for index in range(count):
        gender = "M" if index % 2 == 0 else "F"
        born = date(rng.randrange(1945, 1995), rng.randrange(1, 13), rng.randrange(1, 29))
        yield EnrolmentRequest(
            card_no=f"DEMO{index + 1:05d}",
            name=rng.choice(SURNAMES) + rng.choice(GIVEN),
            gender=gender,
            birth_date=born,
            phone=f"+86139{rng.randrange(10_000_000, 99_999_999)}",
            id_number=synthetic_id_number(rng, born, gender),
            package=rng.choice(PACKAGES),
            language="en" if index % 10 == 9 else "zh",
        )


# (LOINC, unit, starting mean, spread, yearly drift)
HISTORY_SERIES = (
    ("8480-6", "mmHg", 128.0, 12.0, 2.5),
    ("8462-4", "mmHg", 80.0, 8.0, 1.0),
    ("29463-7", "kg", 66.0, 10.0, 0.6),
    ("8302-2", "cm", 165.0, 8.0, 0.0),
    ("8280-0", "cm", 84.0, 9.0, 0.8),
    ("14771-0", "mmol/L", 5.6, 0.7, 0.12),
    ("14647-2", "mmol/L", 5.0, 0.7, 0.08),
    ("22748-8", "mmol/L", 3.0, 0.6, 0.06),
    ("14646-4", "mmol/L", 1.3, 0.25, -0.02),
    ("14927-8", "mmol/L", 1.6, 0.5, 0.05),
    ("14933-6", "µmol/L", 360.0, 60.0, 6.0),
    ("14682-9", "µmol/L", 75.0, 12.0, 1.5),
)


DEMO_FOLLOWUPS = ("phq9", "hypertension_followup", "diabetes_followup")


def seed_demo_clinic(session: Session, *, actor: Actor, count: int = DEMO_PATIENTS,
                     timezone: str = DEFAULT_PATIENT_TIMEZONE) -> int:
    """Enrol the demo patients with five yearly checkups each, and a few follow-ups due now.

    The patients live in ``timezone`` (the clinic's, ``CARELOOP_TIMEZONE``).

    The follow-ups go to the console channel in the demo (WeChat and SMS are not configured), so
    the in-process worker invites those patients at once. Does nothing if already seeded.
    """
    if session.scalar(select(func.count()).select_from(Patient).where(real_patients())):
        return 0
    rng = random.Random(7)  # noqa: S311 - synthetic demo data, reproducible on purpose
    now = clock_of(session).now()
    this_year = now.year
    for index, request in enumerate(synthetic_patients(count)):
        patient = enroll(session, request, actor=actor, look_up=False, timezone=timezone).patient
        for code, unit, mean, spread, drift in HISTORY_SERIES:
            start = rng.gauss(mean, spread / 2)
            for years_ago in range(YEARS_OF_HISTORY, 0, -1):
                year = this_year - years_ago
                value = start + drift * (YEARS_OF_HISTORY - years_ago) + rng.gauss(0, spread / 6)
                when = datetime(year, 4, 1, 9, 0, tzinfo=UTC) + timedelta(days=rng.randrange(0, 150))
                record_observation(
                    session, patient, code=code, value=round(value, 1 if unit != "mmol/L" else 2), unit=unit,
                    effective_at=when, source="demo", source_ref=f"demo-{request.card_no}-{year}", actor=actor,
                    audit=False,
                )
        if index < len(DEMO_FOLLOWUPS):
            schedule_followup(session, patient, flow_id=DEMO_FOLLOWUPS[index], due_at=now, actor=actor,
                              channel_order=["wechat", "sms", "console"], source="demo")
        session.flush()
    return count
