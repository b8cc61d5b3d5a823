"""A web process without the audit key cannot verify the chain: the page says where to verify, nothing breaks."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from care.models import AuditEntry
from tests.admin.conftest import page_token


@pytest.fixture
def sealing():
    return None  # as the Procfile's web process: it writes entries but holds no chain key


def test_verify_now_without_the_audit_key_says_where_to_verify(client, db, signed_in):
    signed_in("auditor")
    response = client.post("/admin/audit/verify", data={"csrf_token": page_token(client, "/admin/audit")})
    assert response.status_code == 302
    page = client.get("/admin/audit").get_data(as_text=True)
    assert "careloop audit verify" in page
    assert db.scalars(select(AuditEntry).where(AuditEntry.action == "audit.verify")).all() == []
