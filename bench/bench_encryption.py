"""Encrypted vs unencrypted write+read of patients through the same service code.

Writes ``--count`` patients with ``care.patients.enroll`` (one call per patient, batches of
``--batch`` committed; ``--bulk`` uses ``enroll_many`` per batch, the import's path instead), then
reads every field back through the models in a new ``Database`` (a cold key cache, as another
process would have), once with the real :class:`FieldCipher` and once with a benchmark-only
:class:`NullCipher` swapped in. Both modes write the same rows (patient, card, three consents,
audit entry) and real blind indexes; only the encryption and the data keys differ. Prints both
timings and the ratio encrypted / null (target: <= 1.5x).

    .venv/bin/python -m bench.bench_encryption --count 20000
    .venv/bin/python -m bench.bench_encryption --count 20000 --bulk
    .venv/bin/python -m bench.bench_encryption --count 20000 --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import statistics
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from time import perf_counter

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, selectinload

from bench.common import machine, scratch_database, synthetic_patients
from care.models import Patient
from care.patients import EnrolmentRequest, enroll, enroll_many
from careloop import migrate
from careloop.db import Database, make_engine
from security.audit import Actor, AuditEntry
from security.clock import SystemClock
from security.crypto import DataKey, FieldCipher
from security.keys import KeyRing

ACTOR = Actor("system", "bench", "bench")
TARGET_RATIO = 1.5


class NullCipher(FieldCipher):
    """Benchmark only: fields are stored as their plain bytes and no data key is made or wrapped.

    Blind indexes stay real HMACs, so lookups and uniqueness work exactly as with encryption.
    """

    _NULL_KEY = bytes(32)

    def data_key(self, session: Session, owner_id: uuid.UUID, *, create: bool, now: datetime) -> bytes:
        return self._NULL_KEY

    def load_keys(self, session: Session, owner_ids: Iterable[uuid.UUID], *, create: bool, now: datetime) -> None:
        return None

    def is_cached(self, owner_id: uuid.UUID) -> bool:
        return True

    def seal(self, data_key: bytes, aad: bytes, plaintext: bytes) -> bytes:
        return plaintext

    def open(self, data_key: bytes, aad: bytes, ciphertext: bytes) -> bytes:
        return ciphertext


def make_database(engine: Engine, key_ring: KeyRing, mode: str) -> Database:
    """The app's Database; in ``null`` mode its sessions carry the NullCipher instead."""
    database = Database(engine, key_ring=key_ring, clock=SystemClock())
    if mode == "null":
        database.cipher = NullCipher(key_ring)
        database.sessions.kw["info"] = {**database.sessions.kw["info"], "cipher": database.cipher}
    return database


@dataclass
class Timing:
    mode: str
    write_s: float
    read_s: float

    @property
    def total_s(self) -> float:
        return self.write_s + self.read_s


Values = tuple[str | None, ...]


def expected_values(request: EnrolmentRequest) -> Values:
    return (request.card_no, request.name, request.gender, request.birth_date.isoformat(), request.phone,
            request.id_number, request.wechat_openid, request.package)


def read_values(patient: Patient) -> Values:
    birth = patient.birth_date
    return (patient.card_no, patient.name, patient.gender, birth.isoformat() if birth else None, patient.phone,
            patient.id_number, patient.wechat_openid, patient.cards[0].package if patient.cards else None)


def run_once(mode: str, base_url: str | None, requests: Sequence[EnrolmentRequest], *, batch: int,
             look_up: bool, bulk: bool) -> Timing:
    with scratch_database(base_url, f"enc_{mode}") as url:
        engine = make_engine(url)
        try:
            migrate.upgrade(engine)
            key_ring = KeyRing.generate()
            writer = make_database(engine, key_ring, mode)

            started = perf_counter()
            for start in range(0, len(requests), batch):
                with writer.unit_of_work() as session:
                    if bulk:
                        enroll_many(session, requests[start : start + batch], actor=ACTOR)
                        continue
                    for request in requests[start : start + batch]:
                        enroll(session, request, actor=ACTOR, look_up=look_up)
            write_s = perf_counter() - started

            reader = make_database(engine, key_ring, mode)  # a cold data-key cache, like another process
            read: list[Values] = []
            started = perf_counter()
            with reader.sessions() as session:
                query = select(Patient).options(selectinload(Patient.cards)).execution_options(yield_per=batch)
                for patient in session.scalars(query):
                    read.append(read_values(patient))
            read_s = perf_counter() - started

            check(mode, reader, requests, read)
        finally:
            engine.dispose()
    return Timing(mode, write_s, read_s)


def check(mode: str, database: Database, requests: Sequence[EnrolmentRequest], read: list[Values]) -> None:
    """Fail loudly unless every value came back, every enrolment was audited, and (encrypted) no name is clear."""
    if sorted(read, key=lambda v: v[0] or "") != sorted(map(expected_values, requests), key=lambda v: v[0] or ""):
        raise SystemExit(f"{mode}: the values read back differ from those written")
    table = Patient.__table__
    with database.sessions() as session:
        enrolled = select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "patient.enroll")
        audited = session.scalar(enrolled)
        keys = session.scalar(select(func.count()).select_from(DataKey))
        stored: list[bytes] = list(session.scalars(select(table.c.name).limit(100)))
    if audited != len(requests):
        raise SystemExit(f"{mode}: {audited} audit entries for {len(requests)} enrolments")
    names = {request.name.encode() for request in requests}
    if mode == "encrypted" and (keys != len(requests) or any(raw in names for raw in stored)):
        raise SystemExit(f"encrypted: {keys} data keys for {len(requests)} patients, or a name stored in clear")
    if mode == "null" and not all(raw in names for raw in stored):
        raise SystemExit("null: the null cipher was not in use")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=20_000, help="patients written and read (default 20000)")
    parser.add_argument("--database-url", default=None,
                        help="sqlite (default: a temporary file) or a PostgreSQL URL (a scratch schema is made there)")
    parser.add_argument("--batch", type=int, default=500, help="patients per committed batch (default 500)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each mode, alternating; medians are compared")
    parser.add_argument("--look-up", action="store_true",
                        help="let enroll() also look each card up first (as the front desk does; default: known new)")
    parser.add_argument("--bulk", action="store_true",
                        help="write with enroll_many() per batch (the import's path) instead of enroll() per patient")
    args = parser.parse_args(argv)

    requests = [patient.request() for patient in synthetic_patients(args.count)]
    path = "enroll_many() per batch" if args.bulk else f"enroll(look_up={args.look_up}) per patient"
    print(f"bench_encryption: {args.count} patients written with {path}, batch {args.batch}, "
          f"repeat {args.repeat}, database {args.database_url or 'sqlite (temporary file)'}")
    for fact in machine(args.database_url):
        print(f"  {fact}")
    timings: dict[str, list[Timing]] = {"null": [], "encrypted": []}
    for run in range(args.repeat):
        for mode in ("null", "encrypted") if run % 2 == 0 else ("encrypted", "null"):
            timing = run_once(mode, args.database_url, requests, batch=args.batch, look_up=args.look_up,
                              bulk=args.bulk)
            timings[mode].append(timing)
            print(f"  run {run + 1} {mode:9s}: write {timing.write_s:7.2f} s, read {timing.read_s:6.2f} s, "
                  f"total {timing.total_s:7.2f} s ({args.count / timing.total_s:,.0f} patients/s)")

    def median(mode: str, attribute: str) -> float:
        return float(statistics.median(getattr(t, attribute) for t in timings[mode]))

    print("medians:")
    for mode in ("null", "encrypted"):
        print(f"  {mode:9s}: write {median(mode, 'write_s'):7.2f} s, read {median(mode, 'read_s'):6.2f} s, "
              f"total {median(mode, 'total_s'):7.2f} s")
    ratios = {part: median("encrypted", part) / median("null", part) for part in ("write_s", "read_s", "total_s")}
    verdict = "met" if ratios["total_s"] <= TARGET_RATIO else "NOT met"
    print(f"ratio encrypted/null: write {ratios['write_s']:.2f}x, read {ratios['read_s']:.2f}x, "
          f"write+read {ratios['total_s']:.2f}x (target <= {TARGET_RATIO}x: {verdict})")
    return 0 if verdict == "met" else 1


if __name__ == "__main__":
    raise SystemExit(main())
