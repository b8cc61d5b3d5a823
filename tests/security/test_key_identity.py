"""The key id that ties a database to its master key: derived from the root, stable, revealing nothing."""

from __future__ import annotations

import base64

from security.keys import KeyRing, derive


def test_the_key_id_survives_a_rotation_and_a_move_to_the_environment(tmp_path):
    ring = KeyRing.generate(tmp_path / "master.key")
    ring.save()
    key_id = ring.key_id
    assert len(key_id) == 16
    int(key_id, 16)
    ring.rotate()
    assert KeyRing.load(ring.path).key_id == key_id
    assert KeyRing.from_environment_value(ring.to_json()).key_id == key_id


def test_another_root_has_another_key_id_and_the_id_is_no_key():
    first, second = KeyRing.generate(), KeyRing.generate()
    assert first.key_id != second.key_id
    for purpose in ("blind-index", "audit-entry", "audit-chain", "master-key/1", "flask-session"):
        assert derive(first.root, purpose)[:8].hex() != first.key_id
    assert base64.b64encode(first.root).decode()[:16] != first.key_id


def test_a_base64_environment_key_has_a_stable_id():
    root = base64.b64encode(bytes(range(32))).decode()
    assert KeyRing.from_environment_value(root).key_id == KeyRing.from_environment_value(root).key_id
