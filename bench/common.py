"""What the benchmarks share: synthetic patients, scratch databases, timing and machine facts.

Everything made here is synthetic (no real person's name or number) and everything written to
disk goes under a temporary folder that is removed at the end.
"""

from __future__ import annotations

import os
import platform
import random
import shutil
import sqlite3
import statistics
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TypeGuard

from sqlalchemy import text
from sqlalchemy.engine import make_url

from care.identifiers import id_number_check_character
from care.patients import EnrolmentRequest
from careloop.db import make_engine

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕"
GIVEN = ["伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明",
         "超", "秀兰", "霞", "平", "刚", "桂英", "建华", "玉兰", "志强", "海燕", "国庆", "淑珍", "文博"]
PACKAGES = ["高血压管理套餐", "糖尿病管理套餐", "年度体检VIP", "慢病随访基础包"]
# Real prefectures' codes and real mobile prefixes, combined at random: no real person's identifiers.
AREA_CODES = ["110101", "310104", "440106", "330106", "510107", "420102", "320102", "610103"]
MOBILE_PREFIXES = ["139", "138", "137", "136", "135", "188", "187", "186", "158", "159", "150", "151", "177", "199"]


@dataclass(frozen=True)
class SyntheticPatient:
    """One made-up patient, as the template's columns hold it."""

    card_no: str
    name: str
    gender: str
    birth_date: date
    phone: str
    id_number: str
    package: str
    language: str
    wechat_openid: str | None

    def request(self) -> EnrolmentRequest:
        """The enrolment request (phone in E.164, as ``parse_enrolment`` would give it)."""
        return EnrolmentRequest(
            card_no=self.card_no, name=self.name, gender=self.gender, birth_date=self.birth_date,
            phone="+86" + self.phone, id_number=self.id_number, package=self.package, language=self.language,
            wechat_openid=self.wechat_openid,
        )


def synthetic_patients(count: int, *, seed: int = 11643) -> Iterator[SyntheticPatient]:
    """Yield ``count`` patients with unique card, phone, ID number (valid GB 11643 checksum) and openid."""
    rng = random.Random(seed)
    phones = rng.sample(range(10**8), count)
    ids_seen: set[str] = set()
    for index in range(count):
        gender = "M" if index % 2 == 0 else "F"
        while True:
            born = date(rng.randrange(1935, 2005), rng.randrange(1, 13), rng.randrange(1, 29))
            sequence = rng.randrange(0, 500) * 2 + (1 if gender == "M" else 0)
            first17 = f"{rng.choice(AREA_CODES)}{born:%Y%m%d}{sequence:03d}"
            if first17 not in ids_seen:
                ids_seen.add(first17)
                break
        yield SyntheticPatient(
            card_no=f"BENCH{index + 1:07d}",
            name=rng.choice(SURNAMES) + rng.choice(GIVEN),
            gender=gender,
            birth_date=born,
            phone=f"{MOBILE_PREFIXES[index % len(MOBILE_PREFIXES)]}{phones[index]:08d}",
            id_number=first17 + id_number_check_character(first17),
            package=PACKAGES[index % len(PACKAGES)],
            language="en" if index % 10 == 9 else "zh",
            wechat_openid=f"oBench{uuid.UUID(int=rng.getrandbits(128)).hex}" if index % 3 == 0 else None,
        )


def is_postgresql(url: str | None) -> TypeGuard[str]:
    return url is not None and make_url(url).get_backend_name() == "postgresql"


def with_search_path(url: str, schema: str) -> str:
    """The URL with every connection's search_path set to ``schema`` (as the test suite does)."""
    return make_url(url).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
        hide_password=False
    )


@contextmanager
def scratch_database(url: str | None, label: str) -> Iterator[str]:
    """Yield the URL of a new, empty database; remove it afterwards.

    ``url`` None or a SQLite URL: a new SQLite file in a temporary folder (a SQLite URL's file name
    is not used, only that SQLite is wanted). A PostgreSQL URL: a new schema ``bench_<label>_...``
    in that database, dropped at the end.
    """
    if is_postgresql(url):
        schema = f"bench_{label}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        admin = make_engine(url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as connection:
                connection.execute(text(f'CREATE SCHEMA "{schema}"'))
            try:
                yield with_search_path(url, schema)
            finally:
                with admin.connect() as connection:
                    connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        finally:
            admin.dispose()
        return
    if url is not None and make_url(url).get_backend_name() != "sqlite":
        raise SystemExit(f"--database-url: only sqlite and postgresql URLs are supported, not {url!r}")
    folder = Path(tempfile.mkdtemp(prefix=f"careloop-bench-{label}-"))
    try:
        yield f"sqlite:///{folder / 'bench.db'}"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def percentile(samples: list[float], fraction: float) -> float:
    """The ``fraction`` quantile (nearest rank) of ``samples``."""
    ordered = sorted(samples)
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


def summary_ms(samples_s: list[float]) -> str:
    ms = [s * 1000 for s in samples_s]
    return (f"median {statistics.median(ms):.3f} ms, p95 {percentile(ms, 0.95):.3f} ms, "
            f"p99 {percentile(ms, 0.99):.3f} ms, max {max(ms):.3f} ms (n={len(ms)})")


def machine(database_url: str | None = None) -> list[str]:
    """Facts about this machine worth writing beside a figure."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    facts = [
        f"nproc: {os.cpu_count()}",
        f"CPU: {cpu}",
        f"RAM: {ram}",
        f"Python: {platform.python_version()} ({platform.python_implementation()})",
        f"SQLite: {sqlite3.sqlite_version}",
    ]
    if is_postgresql(database_url):
        engine = make_engine(database_url)
        try:
            with engine.connect() as connection:
                facts.append(f"PostgreSQL: {connection.execute(text('SHOW server_version')).scalar_one()}")
        finally:
            engine.dispose()
    return facts
