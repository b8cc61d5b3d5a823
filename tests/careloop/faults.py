"""Kill real ``careloop worker`` processes (SIGKILL) while they send, start new ones, and count what
reached the local fake providers. Shared by tests/careloop/test_worker_faults.py (small runs) and
bench/bench_worker_faults.py (1,000 messages).

A run queues messages (or schedules follow-ups), starts one or more workers, and kills one at each
:class:`Kill`: either while a fake provider holds its answer to the Nth message (the provider has
the message, the worker has not written it down) or at a random moment. Right after each kill it
notes what the dead worker held (rows claimed and never attempted, attempts under way) and starts
a replacement; before the next kill it waits until the dead worker's unattempted rows have gone to
another worker. At the end every delivery the fakes recorded is matched to its outbox row.
"""

from __future__ import annotations

import random
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bot.models import OutboxMessage, OutboxStatus, WorkerHeartbeat
from bot.outbox.queue import enqueue
from care.followups import schedule_followup
from care.models import FollowUp, Patient
from care.patients import EnrolmentRequest, enroll_many
from careloop.runtime import Runtime
from security.audit import Actor
from tests.careloop.workers import daytime_zone, kill, start_worker, stop, wait_for
from tests.fakes.twilio_server import FakeTwilio, Hold
from tests.fakes.wechat_server import FakeWeChat

ACTOR = Actor("system", "fault-test", "tests")
SETTLED = {OutboxStatus.SENT.value, OutboxStatus.DELIVERED.value, OutboxStatus.UNCONFIRMED.value,
           OutboxStatus.FAILED.value, OutboxStatus.CANCELLED.value}


# -- the clinic's data ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Person:
    """An enrolled patient as a run addresses them (plain values: usable outside any session)."""

    id: uuid.UUID
    phone: str
    wechat_openid: str | None


def enrol(runtime: Runtime, count: int, *, prefix: str, wechat: bool = False) -> list[Person]:
    """``count`` synthetic patients (a phone each, and an openid when ``wechat``), in a daytime zone."""
    zone = daytime_zone()
    requests = [EnrolmentRequest(card_no=f"{prefix}{n:06d}", name=f"测试{n}", gender="F",
                                 birth_date=date(1950, 1, 1) + timedelta(days=n), phone=f"+86137{n:08d}",
                                 wechat_openid=f"oFault{prefix}{n:021d}" if wechat else None)
                for n in range(count)]
    with runtime.db.unit_of_work() as session:
        ids = [result.patient_id for result in enroll_many(session, requests, actor=ACTOR)]
        people = []
        for patient_id in ids:
            patient = session.get(Patient, patient_id)
            assert patient is not None
            patient.timezone = zone
            people.append(Person(patient.id, patient.phone or "", patient.wechat_openid))
    return people


def queue(runtime: Runtime, channel: str, count: int, patients: list[Person], *,
          purposes: Iterable[str] = ("reminder",)) -> None:
    """``count`` messages on ``channel`` to ``patients`` in turn, each text unique (a call: one per patient)."""
    cycle = list(purposes)
    with runtime.db.unit_of_work() as session:
        for n in range(count):
            patient = patients[n % len(patients)]
            if channel == "voice":
                kind, address, payload = "call", patient.phone, {"record": False}
            elif channel == "wechat":
                kind, address, payload = "text", patient.wechat_openid, {"text": f"提醒 #{n:04d}"}
            else:
                kind, address, payload = "text", patient.phone, {"text": f"提醒 #{n:04d}"}
            enqueue(session, idempotency_key=f"fault:{channel}:{n}", channel=channel, kind=kind,
                    purpose=cycle[n % len(cycle)], address=address or "", payload=payload,
                    patient=session.get(Patient, patient.id))


def schedule(runtime: Runtime, patients: list[Person], channel_order: list[str]) -> None:
    """A PHQ-9 follow-up for each patient, due now, over ``channel_order``."""
    with runtime.db.unit_of_work() as session:
        now = runtime.clock.now()
        for person in patients:
            patient = session.get(Patient, person.id)
            assert patient is not None
            schedule_followup(session, patient, flow_id="phq9", due_at=now, actor=ACTOR,
                              channel_order=channel_order)


# -- what reached the providers ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Delivery:
    channel: str
    address: str
    text: str
    at: float


def deliveries(wechat: FakeWeChat | None, twilio: FakeTwilio | None) -> list[Delivery]:
    found: list[Delivery] = []
    if wechat is not None:
        for request in wechat.delivered():
            body = request.body
            content = (body.get("text") or {}).get("content") or body.get("data", {}).get("first", {}).get("value", "")
            found.append(Delivery("wechat", str(body.get("touser")), str(content), request.at))
    if twilio is not None:
        found.extend(Delivery("sms", m["to"], m["body"], m["_at"]) for m in twilio.sent_messages())
        found.extend(Delivery("voice", c["to"], "", c["_at"]) for c in twilio.placed_calls())
    return found


def _identity(channel: str, address: str, text: str) -> tuple[str, str, str]:
    return (channel, address, "" if channel == "voice" else text)


# -- kills ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Kill:
    """Kill a worker when ``channel``'s provider holds its answer to message ``at`` (``hold``), or
    ``after`` seconds (at random up to that) past the previous death's settling."""

    channel: str
    hold: bool = True
    at: int = 0
    after: float = 0.0


@dataclass
class Death:
    kill: Kill
    worker_id: str
    at: float
    unattempted: set[str] = field(default_factory=set)
    in_flight: set[str] = field(default_factory=set)
    held: str | None = None
    released_after: float | None = None  # death -> the first of its unattempted rows at a provider
    last_sent_after: float | None = None  # death -> the last of them
    in_flight_settled_after: float | None = None  # death -> the last attempt under way settled (looked up, resent)


@dataclass(frozen=True)
class RowState:
    """An outbox row as read during a run (decrypted in its session)."""

    key: str
    channel: str
    purpose: str
    status: str
    resends: int
    error_code: str | None
    leased_by: str | None
    attempted: bool
    identity: tuple[str, str, str]


@dataclass
class Row:
    key: str
    channel: str
    purpose: str
    status: str
    resends: int
    error_code: str | None
    deliveries: int


@dataclass
class Outcome:
    rows: dict[str, Row]
    deaths: list[Death]
    stray: list[Delivery]  # deliveries that match no outbox row
    seconds: float

    def of(self, channel: str, purposes: Iterable[str] | None = None) -> list[Row]:
        wanted = set(purposes) if purposes is not None else None
        return [row for row in self.rows.values()
                if row.channel == channel and (wanted is None or row.purpose in wanted)]

    @staticmethod
    def lost(rows: list[Row]) -> list[Row]:
        return [row for row in rows if row.deliveries == 0]

    @staticmethod
    def duplicated(rows: list[Row]) -> list[Row]:
        return [row for row in rows if row.deliveries > 1]

    def summary(self) -> str:
        lines = []
        for channel in sorted({row.channel for row in self.rows.values()}):
            for purpose in sorted({row.purpose for row in self.of(channel)}):
                rows = self.of(channel, [purpose])
                statuses = Counter(row.status for row in rows)
                extra = sum(row.deliveries - 1 for row in self.duplicated(rows))
                lines.append(f"{channel}/{purpose}: {len(rows)} rows, received {sum(r.deliveries for r in rows)}, "
                             f"lost {len(self.lost(rows))}, duplicated {len(self.duplicated(rows))} (+{extra}), "
                             f"statuses {dict(sorted(statuses.items()))}")
        for number, death in enumerate(self.deaths, 1):
            how = f"holding {death.kill.channel} #{death.kill.at}" if death.kill.hold else "at a random moment"
            released = "-" if death.released_after is None else f"{death.released_after:.1f} s"
            last = "-" if death.last_sent_after is None else f"{death.last_sent_after:.1f} s"
            settled = "-" if death.in_flight_settled_after is None else f"{death.in_flight_settled_after:.1f} s"
            lines.append(f"kill {number} ({how}): {len(death.unattempted)} unattempted, {len(death.in_flight)} "
                         f"in flight; death -> first of its rows sent {released}, -> last {last}; "
                         f"attempt under way settled {settled}")
        lines.append(f"stray deliveries: {len(self.stray)}; run took {self.seconds:.1f} s")
        return "\n".join(lines)


class FaultRun:
    """Workers on one database, the fakes they talk to, and the kills."""

    def __init__(self, runtime: Runtime, env: dict[str, str], log: Path, *, wechat: FakeWeChat | None = None,
                 twilio: FakeTwilio | None = None, seed: int = 0) -> None:
        self.runtime = runtime
        self.env = env
        self.log = log
        self.wechat = wechat
        self.twilio = twilio
        self.rng = random.Random(seed)
        self.processes: list[subprocess.Popen[bytes]] = []
        self.deaths: list[Death] = []
        self._settled_at: dict[str, float] = {}

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-6000:] if self.log.exists() else ""

    def count(self, channel: str) -> int:
        if channel == "wechat":
            assert self.wechat is not None
            return len(self.wechat.delivered())
        assert self.twilio is not None
        return len(self.twilio.calls if channel == "voice" else self.twilio.messages)

    def _hold(self, kill: Kill) -> Hold:
        if kill.channel == "wechat":
            assert self.wechat is not None
            return self.wechat.hold_at(kill.at)
        assert self.twilio is not None
        return self.twilio.hold_at(kill.at, calls=kill.channel == "voice")

    def _release(self) -> None:
        for fake in (self.wechat, self.twilio):
            if fake is not None:
                fake.release()

    def _held_delivery(self, kill: Kill) -> Delivery:
        mine = [d for d in deliveries(self.wechat, self.twilio) if d.channel == kill.channel]
        return mine[kill.at - 1]

    def _rows(self) -> list[RowState]:
        rows = self._read_rows()
        now = time.monotonic()
        for row in rows:  # when each row a dead worker had under way was settled (as often as rows are read)
            if row.status in SETTLED and row.key not in self._settled_at:
                self._settled_at[row.key] = now
        return rows

    def _read_rows(self) -> list[RowState]:
        with self.runtime.db.unit_of_work() as session:
            return [RowState(row.idempotency_key, row.channel, row.purpose, row.status, row.resends, row.error_code,
                             row.leased_by, row.sending_started_at is not None,
                             _identity(row.channel, row.address or "", str((row.payload or {}).get("text", ""))))
                    for row in session.scalars(select(OutboxMessage))]

    def _worker_of(self, process: subprocess.Popen[bytes]) -> str:
        def registered() -> str | None:
            with self.runtime.db.unit_of_work() as session:
                return session.scalars(select(WorkerHeartbeat.worker_id).where(
                    WorkerHeartbeat.pid == process.pid)).first()
        wait_for(registered, timeout=60, what=f"worker {process.pid} to beat")
        worker_id = registered()
        assert worker_id is not None
        return worker_id

    def _holder(self, delivery: Delivery) -> subprocess.Popen[bytes]:
        """The worker process whose lease the held message's row is under."""
        for row in self._rows():
            if row.identity == _identity(delivery.channel, delivery.address, delivery.text) and row.leased_by:
                for process in self.processes:
                    if process.poll() is None and self._worker_of(process) == row.leased_by:
                        return process
        raise AssertionError(f"no live worker holds the held message\n{self.output()}")

    def start(self) -> subprocess.Popen[bytes]:
        process = start_worker(self.env, self.log)
        self.processes.append(process)
        return process

    def stop_all(self) -> None:
        self._release()
        for process in self.processes:
            stop(process)

    def _die(self, victim: subprocess.Popen[bytes], kill_spec: Kill, held: Delivery | None) -> Death:
        worker_id = self._worker_of(victim)
        kill(victim)
        death = Death(kill=kill_spec, worker_id=worker_id, at=time.monotonic(),
                      held=None if held is None else f"{held.channel}:{held.address}")
        self._release()
        for row in self._rows():
            if row.leased_by == worker_id and row.status == OutboxStatus.SENDING.value:
                (death.in_flight if row.attempted else death.unattempted).add(row.key)
        return death

    def _released(self, death: Death) -> bool:
        """Whether every row the dead worker claimed and never attempted has been sent by another."""
        rows = {row.key: row for row in self._rows()}
        return all(rows[key].status in SETTLED for key in death.unattempted)

    def run(self, kills: list[Kill], *, workers: int = 1, expected_rows: int,
            timeout: float = 120.0) -> Outcome:
        """Start ``workers`` workers, kill at each of ``kills`` (replacing the dead), and wait until all
        ``expected_rows`` rows are settled; return what reached the providers, matched to the rows."""
        started = time.monotonic()
        deaths = self.deaths
        try:
            for _ in range(workers):
                self.start()
            for wanted in kills:
                held: Delivery | None = None
                # A held message not yet reached: the next few if the run is already past the one asked for.
                spec = replace(wanted, at=max(wanted.at, self.count(wanted.channel) + self.rng.randint(1, 5)))
                if spec.hold and self._short_of(spec.channel, spec.at - self.count(spec.channel) + 2):
                    spec = replace(spec, hold=False, after=1.0)  # too few left to hold one: a random moment
                if spec.hold:
                    hold = self._hold(spec)
                    assert hold.reached.wait(timeout=timeout), f"the provider never got #{spec.at}\n{self.output()}"
                    held = self._held_delivery(spec)
                    victim = self._holder(held)
                else:
                    time.sleep(self.rng.uniform(0.0, spec.after))
                    alive = [process for process in self.processes if process.poll() is None]
                    victim = self.rng.choice(alive)
                death = self._die(victim, spec, held)
                deaths.append(death)
                self.start()
                wait_for(lambda death=death: self._released(death), timeout=60,
                         what="the dead worker's unattempted rows to be sent by another")
            wait_for(lambda: self._settled(expected_rows), timeout=timeout, interval=0.25,
                     what=f"{expected_rows} settled rows\n{self.output()}")
        finally:
            self.stop_all()
        return self._outcome(deaths, time.monotonic() - started)

    def _short_of(self, channel: str, needed: int) -> bool:
        """Whether ``channel`` has rows, but fewer than ``needed`` still to send (rows made by the
        workers themselves, follow-up invitations, do not exist yet at the start)."""
        rows = [row for row in self._rows() if row.channel == channel]
        return bool(rows) and sum(1 for row in rows if row.status not in SETTLED) < needed

    def _settled(self, expected_rows: int) -> bool:
        rows = self._rows()
        return len(rows) >= expected_rows and all(row.status in SETTLED for row in rows)

    def _outcome(self, deaths: list[Death], seconds: float) -> Outcome:
        rows = self._rows()
        by_identity = {row.identity: row for row in rows}
        received: Counter[str] = Counter()
        times: dict[str, list[float]] = {}
        stray = []
        for delivery in deliveries(self.wechat, self.twilio):
            row = by_identity.get(_identity(delivery.channel, delivery.address, delivery.text))
            if row is None:
                stray.append(delivery)
                continue
            received[row.key] += 1
            times.setdefault(row.key, []).append(delivery.at)
        for death in deaths:
            settled = [self._settled_at[key] - death.at for key in death.in_flight if key in self._settled_at]
            if settled and len(settled) == len(death.in_flight):
                death.in_flight_settled_after = max(settled)
            after = [min(t for t in times.get(key, []) if t >= death.at) - death.at
                     for key in death.unattempted if any(t >= death.at for t in times.get(key, []))]
            if after:
                death.released_after, death.last_sent_after = min(after), max(after)
        table = {row.key: Row(row.key, row.channel, row.purpose, row.status, row.resends, row.error_code,
                              received[row.key]) for row in rows}
        return Outcome(table, deaths, stray, seconds)


def followups(runtime: Runtime) -> list[FollowUp]:
    with runtime.db.unit_of_work() as session:
        return list(session.scalars(select(FollowUp)))


def settings_summary(env: dict[str, Any]) -> str:
    return ", ".join(f"{name}={env[name]}" for name in sorted(env)
                     if name.startswith("CARELOOP_") and name not in ("CARELOOP_KEY_FILE", "CARELOOP_DATABASE_URL"))
