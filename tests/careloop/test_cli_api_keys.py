"""``careloop api-keys create|list|revoke``: the key is printed once and stored only as an HMAC."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import text

from careloop.db import make_engine
from careloop.settings import Settings

Cli = Callable[..., tuple[int, str, str]]


def test_create_list_revoke(run_cli: Cli, fresh_settings: Settings) -> None:
    assert run_cli("init")[0] == 0
    code, out, err = run_cli("api-keys", "create", "centre-a")
    assert code == 0
    key = out.strip()
    assert key.startswith("clk_")
    assert "shown only this once" in err
    key_id = key.split("_")[1]

    engine = make_engine(fresh_settings.database_url)
    try:
        with engine.connect() as connection:
            stored = connection.execute(text("SELECT key_id, key_mac FROM source_api_keys")).one()
            dump = "\n".join(str(row) for row in connection.execute(text("SELECT * FROM source_api_keys")))
    finally:
        engine.dispose()
    assert stored[0] == key_id
    assert len(stored[1]) == 32
    assert key.split("_", 2)[2] not in dump

    code, out, _ = run_cli("api-keys", "list")
    assert code == 0
    assert key_id in out
    assert "centre-a" in out
    assert "active" in out
    assert key not in out

    assert run_cli("api-keys", "revoke", key_id)[0] == 0
    assert "revoked" in run_cli("api-keys", "list")[1]
    code, _, err = run_cli("api-keys", "revoke", key_id)
    assert code == 1
    assert err.strip() == f"error: API key {key_id} was already revoked"


def test_bad_source_name_is_bad_usage(run_cli: Cli) -> None:
    assert run_cli("init")[0] == 0
    code, _, err = run_cli("api-keys", "create", "a b")
    assert code == 2
    assert "SOURCE_NAME" in err
