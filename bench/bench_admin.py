"""The staff panel's patient list and patient page at scale: server time of the services behind them.

Enrols ``--patients`` synthetic patients (bulk, as the import does) in a scratch database, puts them
all in one care team of a nurse (so every query carries the team's scope, as a nurse's does), tags a
third of them ``hypertension`` and gives one patient ``--years`` years of yearly checkups (16 results
each), then times, ``--runs`` times each, in a unit of work like a request's (audit entries included):

* the list: page 1, the last page, a search by whole name, by phone, by card number, the tag filter;
* the patient page (profile, tags, observations, trends, follow-ups, tasks) and one trend chart (SVG).

Targets (issue 17, at 100,000 patients): list under 150 ms p99; patient page under 300 ms p99.

    .venv/bin/python -m bench.bench_admin --patients 2000                    # smoke, SQLite
    .venv/bin/python -m bench.bench_admin --patients 100000 \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import math
import tempfile
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from time import perf_counter

from bench.common import machine, percentile, scratch_database, summary_ms, synthetic_patients
from care import care_teams, directory, staff
from care.models import CareTeamPatient, Patient, PatientTag, User
from care.observations import record_observation
from care.patients import enroll_many
from careloop import migrate
from careloop.runtime import build_runtime
from careloop.settings import Settings
from security.audit import Actor
from security.clock import FixedClock
from security.fields import insert_new

ACTOR = Actor("system", "bench", "bench")
LIST_TARGET_MS = 150
PAGE_TARGET_MS = 300
#: A yearly checkup: (code, value, unit).
CHECKUP = [("sbp", 138, "mmHg"), ("dbp", 86, "mmHg"), ("height", 168, "cm"), ("weight", 71, "kg"),
           ("bmi", 25.2, "kg/m2"), ("waist", 88, "cm"), ("fpg", 5.9, "mmol/L"), ("hba1c", 5.8, "%"),
           ("tc", 5.4, "mmol/L"), ("ldl", 3.3, "mmol/L"), ("hdl", 1.2, "mmol/L"), ("tg", 1.8, "mmol/L"),
           ("ua", 380, "umol/L"), ("alt", 28, "U/L"), ("ast", 24, "U/L"), ("cr", 78, "umol/L")]


def timed(runs: int, work: Callable[[], object]) -> list[float]:
    samples = []
    for _ in range(runs):
        started = perf_counter()
        work()
        samples.append(perf_counter() - started)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--years", type=int, default=5)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    print("\n".join(machine(args.database_url)))
    with scratch_database(args.database_url, "admin") as url:
        folder = Path(tempfile.mkdtemp(prefix="careloop-bench-admin-"))
        settings = Settings(database_url=url, key_file=folder / "master.key", blob_dir=folder / "blobs")
        clock = FixedClock(datetime(2026, 12, 1, 1, 0, tzinfo=UTC))
        runtime = build_runtime(settings, clock=clock, create_key=True)
        migrate.upgrade(runtime.db.engine)
        people = list(synthetic_patients(args.patients))
        ids: list[uuid.UUID] = []
        started = perf_counter()
        for start in range(0, len(people), 1000):
            with runtime.db.unit_of_work() as session:
                batch = enroll_many(session, [person.request() for person in people[start:start + 1000]], actor=ACTOR)
                ids += [row.patient_id for row in batch if row.patient_id]
        print(f"patients: {len(ids)} enrolled in {perf_counter() - started:.1f} s")
        with runtime.db.unit_of_work() as session:
            staff.ensure_roles(session)
            nurse = staff.create_user(session, email="nurse@bench.test", display_name="Bench nurse",
                                      role_name="nurse", actor=ACTOR).user
            team = care_teams.create_team(session, "Bench team", actor=ACTOR)
            care_teams.add_member(session, team, nurse, actor=ACTOR)
            nurse_id, team_id = nurse.id, team.id
        for start in range(0, len(ids), 5000):
            with runtime.db.unit_of_work() as session:
                chunk = ids[start:start + 5000]
                session.bulk_insert_mappings(CareTeamPatient, [  # type: ignore[arg-type]
                    {"id": uuid.uuid4(), "team_id": team_id, "patient_id": pid, "added_at": clock.now()}
                    for pid in chunk])
                tagged = chunk[::3]
                insert_new(session, PatientTag, [
                    {"id": uuid.uuid4(), "patient_id": pid, "tag": "hypertension", "source": "flow:intake",
                     "added_at": clock.now(), "pinned": False} for pid in tagged], tagged)
        subject = ids[len(ids) // 2]
        with runtime.db.unit_of_work() as session:
            patient = session.get_one(Patient, subject)
            for year in range(args.years):
                for code, value, unit in CHECKUP:
                    record_observation(session, patient, code=code, value=value + year, unit=unit,
                                       effective_at=datetime(2026 - year, 6, 1, 1, 0, tzinfo=UTC),
                                       source="report:csv", actor=ACTOR, audit=False)
            name, phone, card = patient.name, patient.phone, patient.card_no
        pages = math.ceil(len(ids) / directory.PER_PAGE)
        print(f"a nurse's care team of {len(ids)} patients, {len(ids[::3])} tagged; "
              f"the page's patient has {args.years * len(CHECKUP)} results")

        def listing(**options: object) -> Callable[[], object]:
            def run() -> object:
                with runtime.db.unit_of_work() as session:
                    user = session.get_one(User, nurse_id)
                    return directory.list_patients(session, scope=care_teams.scope_of(user), actor=ACTOR,
                                                   **options)  # type: ignore[arg-type]
            return run

        cases = {
            "list, page 1": listing(page=1),
            f"list, page {pages} (last)": listing(page=pages),
            "list, search by whole name": listing(filters=directory.PatientFilter(text=name)),
            "list, search by phone": listing(filters=directory.PatientFilter(text=phone)),
            "list, search by card number": listing(filters=directory.PatientFilter(text=card)),
            "list, tag filter, page 1": listing(filters=directory.PatientFilter(tag="hypertension")),
        }
        worst_list = 0.0
        for label, run in cases.items():
            samples = timed(args.runs, run)
            worst_list = max(worst_list, percentile(samples, 0.99))
            print(f"{label}: {summary_ms(samples)}")
        print(f"list p99 worst {worst_list * 1000:.1f} ms (target < {LIST_TARGET_MS} ms: "
              f"{'met' if worst_list * 1000 < LIST_TARGET_MS else 'NOT met'})")

        def page() -> object:
            with runtime.db.unit_of_work() as session:
                user = session.get_one(User, nurse_id)
                return directory.patient_page(session, subject, user=user, actor=ACTOR)

        def chart() -> object:
            with runtime.db.unit_of_work() as session:
                user = session.get_one(User, nurse_id)
                return directory.trend_chart(session, subject, "sbp", user=user, actor=ACTOR, lang="zh")

        chart()  # matplotlib's first import and font load are not a request's cost
        samples = timed(args.runs, page)
        print(f"patient page: {summary_ms(samples)} (target p99 < {PAGE_TARGET_MS} ms: "
              f"{'met' if percentile(samples, 0.99) * 1000 < PAGE_TARGET_MS else 'NOT met'})")
        print(f"one trend chart (SVG): {summary_ms(timed(args.runs, chart))}")
        runtime.close()


if __name__ == "__main__":
    main()
