"""A key rotation reaches the processes already running: ``careloop keys rotate`` is picked up by the web
process and the worker without a restart. New data keys are wrapped under the new primary version, the
worker moves the old ones onto it, and what was written before still decrypts.

The web process looks at the key file at most every ``KEY_RING_CHECK_SECONDS`` (by its clock); the
worker at every job's tick. Both engines.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select

from care.patients import EnrolmentRequest, enroll, find_by_card
from careloop.app import create_app
from careloop.runtime import KEY_RING_CHECK_SECONDS, Runtime, build_runtime
from careloop.worker import worker_for
from security.clock import FixedClock
from security.crypto import DataKey
from security.keys import KeyRing, KeyRingError
from tests.conftest import TEST_ACTOR


def enrol(runtime: Runtime, card: str) -> None:
    with runtime.db.unit_of_work() as session:
        enroll(session, EnrolmentRequest(card_no=card, name=f"测试{card}", gender="M", birth_date=date(1955, 2, 3),
                                         phone="+8613912345678"), actor=TEST_ACTOR)


def version_of(runtime: Runtime, card: str) -> int:
    """The master key version that wraps the data key of the patient with ``card``."""
    with runtime.db.unit_of_work() as session:
        patient = find_by_card(session, card)
        assert patient is not None
        version = session.scalar(select(DataKey.kek_version).where(DataKey.owner_id == patient.id))
    assert version is not None
    return version


def name_of(runtime: Runtime, card: str) -> str | None:
    with runtime.db.unit_of_work() as session:
        patient = find_by_card(session, card)
        return patient.name if patient else None


@pytest.fixture
def web_clock() -> FixedClock:
    return FixedClock(datetime(2026, 12, 3, 2, 0, tzinfo=UTC))


def test_web_and_worker_pick_up_a_rotation_without_a_restart(run_cli, fresh_settings, web_clock):
    assert run_cli("init")[0] == 0
    web_runtime = build_runtime(fresh_settings, clock=web_clock)
    web = create_app(runtime=web_runtime).test_client()
    worker_runtime = build_runtime(fresh_settings, sealing=True)
    worker = worker_for(worker_runtime)
    try:
        assert web.get("/healthz").status_code == 200
        worker.run_once()
        enrol(web_runtime, "OLD-WEB")
        enrol(worker_runtime, "OLD-WORKER")
        assert version_of(web_runtime, "OLD-WEB") == version_of(worker_runtime, "OLD-WORKER") == 1

        code, out, _ = run_cli("keys", "rotate")  # another process: the operator's shell
        assert code == 0
        assert "version 2 is now primary" in out

        web_clock.advance(seconds=KEY_RING_CHECK_SECONDS)
        assert web.get("/healthz").status_code == 200  # the first request after the interval looks at the file
        enrol(web_runtime, "NEW-WEB")
        assert version_of(web_runtime, "NEW-WEB") == 2

        worker.run_once()  # its tick looks too: the new key is primary, the old data keys move onto it
        enrol(worker_runtime, "NEW-WORKER")
        assert version_of(worker_runtime, "NEW-WORKER") == 2
        for card in ("OLD-WEB", "OLD-WORKER"):
            assert version_of(worker_runtime, card) == 2
        code, out, _ = run_cli("keys", "status")
        assert "primary: 2" in out
        assert "data keys not yet on the primary: 0" in out

        fresh = build_runtime(fresh_settings)  # a cold cache: every data key is unwrapped again
        try:
            for card in ("OLD-WEB", "OLD-WORKER", "NEW-WEB", "NEW-WORKER"):
                assert name_of(fresh, card) == f"测试{card}"
                assert name_of(web_runtime, card) == f"测试{card}"
        finally:
            fresh.close()
    finally:
        web_runtime.close()
        worker_runtime.close()


def test_the_web_process_looks_at_the_key_file_at_most_once_per_interval(run_cli, fresh_settings, web_clock):
    assert run_cli("init")[0] == 0
    web_runtime = build_runtime(fresh_settings, clock=web_clock)
    web = create_app(runtime=web_runtime).test_client()
    try:
        web.get("/healthz")
        assert run_cli("keys", "rotate")[0] == 0
        web_clock.advance(seconds=KEY_RING_CHECK_SECONDS - 1)
        web.get("/healthz")
        assert web_runtime.key_ring.primary == 1  # a request reads a cached answer, not the file
        web_clock.advance(seconds=1)
        web.get("/healthz")
        assert web_runtime.key_ring.primary == 2
    finally:
        web_runtime.close()


def test_a_ring_reads_its_file_again_only_when_it_changed(tmp_path):
    ring = KeyRing.generate(tmp_path / "master.key")
    ring.save()
    running = KeyRing.load(ring.path)
    assert not running.refresh()  # unchanged: nothing read
    ring.rotate()
    assert running.refresh()
    assert (running.primary, sorted(running.master_keys)) == (2, [1, 2])
    assert running.primary_key() == ring.primary_key()
    assert not running.refresh()


def test_a_key_file_replaced_by_another_ring_is_refused_and_the_running_ring_kept(tmp_path):
    path = tmp_path / "master.key"
    KeyRing.generate(path).save()
    running = KeyRing.load(path)
    before = running.primary_key()
    KeyRing.generate(path).save()  # someone put another clinic's key there
    with pytest.raises(KeyRingError, match="root changed"):
        running.refresh()
    assert running.primary_key() == before
    assert not running.refresh()  # said once per change of the file, not at every look


def test_a_ring_from_the_environment_has_no_file_to_look_at():
    ring = KeyRing.from_environment_value(KeyRing.generate().to_json())
    assert not ring.refresh()
