"""Key ring files, passwords (argon2id) and TOTP with replay protection and recovery codes."""

from __future__ import annotations

import base64
import json
import os
import stat
from datetime import UTC, datetime, timedelta

import pytest

from security import passwords, totp
from security.keys import KeyRing, KeyRingError, open_key_ring


def test_key_file_is_created_private_and_reads_back(tmp_path):
    path = tmp_path / "instance" / "master.key"
    ring = open_key_ring(key_file=path, environment_value=None, create=True)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    again = KeyRing.load(path)
    assert again.root == ring.root
    assert again.master_keys == ring.master_keys


def test_rotation_adds_a_primary_and_other_processes_pick_it_up(tmp_path):
    path = tmp_path / "master.key"
    ring = open_key_ring(key_file=path, environment_value=None, create=True)
    other_process = KeyRing.load(path)
    assert ring.rotate() == 2
    assert other_process.master_key(2) == ring.master_key(2)  # reloaded on a miss
    assert ring.purpose_key("blind-index") == other_process.purpose_key("blind-index")


def test_environment_key_wins_and_cannot_be_rotated_in_place(tmp_path):
    raw = base64.b64encode(os.urandom(32)).decode()
    ring = open_key_ring(key_file=tmp_path / "absent.key", environment_value=raw)
    assert ring.from_environment
    assert not (tmp_path / "absent.key").exists()
    with pytest.raises(KeyRingError, match="CARELOOP_MASTER_KEY"):
        ring.rotate()


@pytest.mark.parametrize(
    ("value", "message"),
    [("not base64!!", "not valid base64"), (base64.b64encode(b"short").decode(), "32 bytes"),
     ('{"format": "other"}', "format"), ("{nope", "not valid JSON")],
)
def test_bad_key_material_is_refused_with_a_reason(value, message):
    with pytest.raises(KeyRingError, match=message):
        KeyRing.from_environment_value(value)


def test_missing_key_file_says_how_to_create_it(tmp_path):
    with pytest.raises(KeyRingError, match="careloop init"):
        KeyRing.load(tmp_path / "none.key")


def test_the_primary_key_cannot_be_retired(tmp_path):
    ring = KeyRing.generate(tmp_path / "k.key")
    ring.save()
    with pytest.raises(KeyRingError):
        ring.retire(1)
    document = json.loads((tmp_path / "k.key").read_text())
    assert document["primary"] == 1


def test_password_hash_is_argon2id_with_owasp_parameters():
    stored = passwords.hash_password("correct horse battery staple")
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert passwords.verify_password(stored, "correct horse battery staple")
    assert not passwords.verify_password(stored, "Correct horse battery staple")
    assert not passwords.verify_password("garbage", "x")


@pytest.mark.parametrize("candidate", ["short", "aaaaaaaaaaaaaaaa", "nurse.zhang-2026!!"])
def test_weak_passwords_are_refused(candidate):
    with pytest.raises(passwords.WeakPasswordError):
        passwords.check_policy(candidate, user_identifiers=("nurse.zhang@clinic.test",))


def test_totp_code_is_accepted_once_within_one_step_of_drift():
    secret = totp.new_secret()
    now = datetime(2026, 11, 29, 8, 0, 10, tzinfo=UTC)
    code = totp.current_code(secret, now)
    step = totp.verify_code(secret, code, at=now + timedelta(seconds=25), last_used_step=None)
    assert step is not None
    assert totp.verify_code(secret, code, at=now, last_used_step=step) is None  # replay
    assert totp.verify_code(secret, code, at=now + timedelta(minutes=5), last_used_step=None) is None
    assert totp.verify_code(secret, "12345", at=now, last_used_step=None) is None


def test_totp_matches_rfc_6238_test_vector():
    # RFC 6238 appendix B, SHA-1, T = 59 s: 94287082 (8 digits); its last six digits for a 6-digit code.
    secret = base64.b32encode(b"12345678901234567890").decode()
    assert totp.current_code(secret, datetime.fromtimestamp(59, tz=UTC)) == "287082"


def test_recovery_codes_work_once():
    key = os.urandom(32)
    codes = totp.new_recovery_codes()
    assert len(set(codes)) == 10
    stored = [totp.hash_recovery_code(key, code) for code in codes]
    remaining = totp.use_recovery_code(key, codes[3].upper(), stored)
    assert remaining is not None
    assert len(remaining) == 9
    assert totp.use_recovery_code(key, codes[3], remaining) is None
