"""The flows page: installed flows and versions; a YAML upload installed as a new version or refused whole."""

from __future__ import annotations

import io
import json
import stat
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select

from care.models import AuditEntry
from careloop.settings import Settings
from flows.registry import LIBRARY_DIR
from tests.admin.conftest import page_token

GOOD = (LIBRARY_DIR / "weight_checkin.yaml").read_text(encoding="utf-8").replace("version: 1", "version: 2", 1)
# Two nodes wrong: a branch to a node that does not exist, and a question of an unknown type.
BROKEN = GOOD.replace("default: record_weight", "default: nowhere").replace("type: number", "type: colour")


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    folder = tmp_path / "flows"
    folder.mkdir()
    return Settings(database_url=database_url, key_file=tmp_path / "master.key", blob_dir=tmp_path / "blobs",
                    public_url="https://clinic.example.test", flows_dirs=(folder,))


def upload(client, text: str | bytes, name: str = "weight_checkin.yaml"):
    token = page_token(client, "/admin/flows")
    content = text.encode("utf-8") if isinstance(text, str) else text
    return client.post("/admin/flows", data={"csrf_token": token, "file": (io.BytesIO(content), name)},
                       content_type="multipart/form-data")


def test_the_page_lists_every_installed_flow_and_version(client, signed_in):
    signed_in("health_manager")
    body = client.get("/admin/flows").get_data(as_text=True)
    assert 'data-flow="phq9" data-version="2"' in body
    assert 'data-flow="phq9" data-version="1"' in body
    assert "体重打卡" in body


def test_a_good_file_is_installed_as_a_new_version_and_used_at_once(app, client, db, signed_in, settings):
    signed_in("health_manager")
    response = upload(client, GOOD)
    assert response.status_code == 302
    written = settings.flows_dirs[0] / "weight_checkin.v2.yaml"
    assert written.read_text(encoding="utf-8") == GOOD
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert app.extensions["careloop.services"]["bot"].library.get("weight_checkin").version == 2
    body = client.get("/admin/flows").get_data(as_text=True)
    assert 'data-flow="weight_checkin" data-version="2"' in body
    assert "流程 weight_checkin 第 2 版已安装" in body
    entry = db.scalars(select(AuditEntry).where(AuditEntry.action == "flow.install")).one()
    assert json.loads(entry.details)["flow"] == "weight_checkin"


def test_a_broken_file_is_refused_with_its_problems_per_node_and_line(app, client, signed_in, settings):
    signed_in("health_manager")
    before = app.extensions["careloop.services"]["bot"].library
    response = upload(client, BROKEN)
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "流程未安装" in body
    assert '<td class="node">got_weight</td>' in body
    assert '<td class="node">weight</td>' in body
    lines = BROKEN.splitlines()
    branch_line = next(number for number, line in enumerate(lines, 1) if line.strip() == "- id: got_weight")
    assert f'<td class="line">{branch_line}</td>' in body
    assert list(settings.flows_dirs[0].iterdir()) == []
    assert app.extensions["careloop.services"]["bot"].library is before


@pytest.mark.parametrize(("text", "expected"), [
    (GOOD.replace("version: 2", "version: 1", 1), "v1 is also a built-in flow"),
    ("id: [unclosed\n", "not valid YAML"),
    (b"\xff\xfe not text", "not UTF-8"),
])
def test_other_bad_files_are_refused_and_nothing_is_written(client, signed_in, settings, text, expected):
    signed_in("admin")
    response = upload(client, text)
    assert response.status_code == 422
    assert expected in response.get_data(as_text=True)
    assert list(settings.flows_dirs[0].iterdir()) == []


def test_a_version_must_be_higher_than_the_installed_ones(client, signed_in, settings):
    signed_in("admin")
    assert upload(client, GOOD.replace("version: 2", "version: 3", 1)).status_code == 302
    response = upload(client, GOOD)
    assert response.status_code == 422
    assert "give this file version 4 or higher" in response.get_data(as_text=True)
    assert [path.name for path in settings.flows_dirs[0].iterdir()] == ["weight_checkin.v3.yaml"]


def test_the_form_refuses_no_file_a_wrong_name_or_a_large_file(client, signed_in, settings):
    signed_in("admin")
    token = page_token(client, "/admin/flows")
    assert "请选择流程文件" in client.post("/admin/flows", data={"csrf_token": token}).get_data(as_text=True)
    wrong = upload(client, GOOD, name="flow.txt")
    assert wrong.status_code == 400
    assert ".yaml 或 .yml" in wrong.get_data(as_text=True)
    large = upload(client, GOOD + "#" * (300 * 1024))
    assert large.status_code == 400
    assert "256 KB" in large.get_data(as_text=True)
    assert list(settings.flows_dirs[0].iterdir()) == []


def test_without_a_folder_of_the_clinics_flows_a_good_file_is_refused(client, signed_in, settings, app):
    signed_in("admin")
    app.extensions["careloop.services"]["settings"] = replace(settings, flows_dirs=())
    response = upload(client, GOOD)
    assert response.status_code == 422
    assert "CARELOOP_FLOWS_DIR" in response.get_data(as_text=True)
    broken = upload(client, BROKEN).get_data(as_text=True)
    assert '<td class="node">got_weight</td>' in broken  # the file's own problems first
    assert list(settings.flows_dirs[0].iterdir()) == []
