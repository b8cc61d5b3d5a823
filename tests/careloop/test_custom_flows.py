"""A clinic's own flows (CARELOOP_FLOWS_DIR): loaded by the CLI, the bot, the worker and the web process besides
the library; a higher version of a library flow replaces it for new conversations; a broken file is told at start
(one line per problem, naming file, node and reason) and left out while the rest still work."""

from __future__ import annotations

import io
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.conversations import BotServices
from bot.messages import InboundMessage
from bot.models import ConversationSession
from bot.router import handle_inbound
from care.models import FlowResult
from careloop.bot_runtime import build_bot
from careloop.runtime import Runtime
from careloop.settings import Settings
from flows.registry import LIBRARY_DIR
from security.clock import FixedClock

ROOT = Path(__file__).resolve().parents[2]
# The library's flows (a file per version: phq9.yaml and phq9.v1.yaml are one flow).
LIBRARY_FLOWS = len({path.name.split(".")[0] for path in (ROOT / "flows" / "library").glob("*.yaml")})
CLINIC_WORDS = "本诊所想请您评价：您有多大可能"
LEFT_OUT = re.compile(r"^flow left out: (?P<file>[^:]+):(?P<node>[^:]+): (?P<reason>.+)$")


def library_flow_as(folder: Path, name: str, *, flow_id: str, version: int, replace: dict[str, str] | None = None,
                    source: str = "satisfaction.yaml") -> Path:
    """Write a flow of the clinic made from a library flow: another id or version, other words."""
    text = (LIBRARY_DIR / source).read_text(encoding="utf-8")
    text = re.sub(r"(?m)^id: \w+$", f"id: {flow_id}", text)
    text = re.sub(r"(?m)^version: \d+$", f"version: {version}", text)
    for old, new in (replace or {}).items():
        assert old in text
        text = text.replace(old, new)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def clinic_flows(tmp_path: Path) -> Path:
    """A clinic's folder: its own satisfaction survey (v2), a new check-in, and two broken files."""
    folder = tmp_path / "clinic_flows"
    folder.mkdir()
    library_flow_as(folder, "satisfaction.yaml", flow_id="satisfaction", version=2,
                    replace={"您好！您有多大可能": CLINIC_WORDS})
    library_flow_as(folder, "checkin.yaml", flow_id="clinic_checkin", version=1)
    (folder / "broken.yaml").write_text("id: broken\nversion: [1\n", encoding="utf-8")
    library_flow_as(folder, "typo.yaml", flow_id="typo", version=1, replace={"next: sorry": "next: sory"})
    return folder


def left_out_lines(err: str) -> list[re.Match[str]]:
    found = [LEFT_OUT.match(line) for line in err.splitlines() if line.startswith("flow left out: ")]
    assert all(found), err
    return [match for match in found if match is not None]


def check_told(err: str, folder: Path) -> None:
    """The two broken files are told, each problem on a line of its own naming file, node and reason."""
    told = [(Path(match["file"]).name, match["node"], match["reason"]) for match in left_out_lines(err)]
    assert ("broken.yaml", "-") in {(name, node) for name, node, _ in told}
    assert ("typo.yaml", "sorry", "no path from the start leads to this node") in told
    assert ("typo.yaml", "nps_got", "'cases[2].next' names the node 'sory', which does not exist") in told
    assert all(match["file"].startswith(str(folder)) for match in left_out_lines(err))


def test_the_setting_names_one_or_more_folders() -> None:
    assert Settings.from_mapping({}).flows_dirs == ()
    assert Settings.from_mapping({"CARELOOP_FLOWS_DIR": "/srv/flows"}).flows_dirs == (Path("/srv/flows"),)
    assert Settings.from_mapping({"CARELOOP_FLOWS_DIR": "/srv/a: /srv/b ::"}).flows_dirs == (
        Path("/srv/a"), Path("/srv/b"))


# -- the command line ------------------------------------------------------------------------------------
@pytest.fixture
def clinic_settings(fresh_settings: Settings, clinic_flows: Path) -> Settings:
    return fresh_settings.with_overrides(flows_dirs=(clinic_flows,))


def test_flows_list_shows_the_clinic_flows_and_tells_each_broken_file(run_cli, clinic_settings, clinic_flows):
    code, out, err = run_cli("flows", "list", settings=clinic_settings)
    assert code == 0, err
    rows = {line.split()[0]: line.split()[1] for line in out.splitlines()[1:]}
    assert rows["satisfaction"] == "2"
    assert rows["clinic_checkin"] == "1"
    assert rows["phq9"] == "2"  # the library's newest version (v1 stays installed for conversations pinned to it)
    assert "typo" not in rows
    assert "broken" not in rows
    check_told(err, clinic_flows)
    code, out, err = run_cli("flows", "list", "--all-versions", settings=clinic_settings)
    assert [line.split()[:2] for line in out.splitlines() if line.startswith("satisfaction")] == [
        ["satisfaction", "1"], ["satisfaction", "2"]]


def test_simulate_runs_the_clinic_version(run_cli, clinic_settings, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("9\n很好\n"))
    code, out, err = run_cli("simulate", "satisfaction", "--now", "2026-03-02T09:00:00+08:00",
                             settings=clinic_settings)
    assert code == 0, err
    assert "[satisfaction v2 · zh · text]" in out
    assert CLINIC_WORDS in out
    assert "nps = 9 [promoter]" in out
    monkeypatch.setattr("sys.stdin", io.StringIO("9\n"))
    code, out, err = run_cli("simulate", "typo", settings=clinic_settings)
    assert code == 1
    assert err.splitlines()[-1] == "error: no installed flow typo"


def test_validate_lets_a_flow_name_an_installed_clinic_flow(run_cli, clinic_settings, tmp_path):
    draft = tmp_path / "draft.yaml"
    draft.write_text(
        "id: draft\nversion: 1\ntitle: {zh: 草稿, en: Draft}\nnodes:\n"
        "  - {id: go, kind: start_flow, flow: clinic_checkin}\n  - {id: done, kind: end}\n", encoding="utf-8")
    code, out, _ = run_cli("flows", "validate", str(draft), settings=clinic_settings)
    assert (code, out.strip()) == (0, "ok: 1 flow file checked, no problems.")
    code, out, _ = run_cli("flows", "validate", str(draft))
    assert code == 1
    assert "'flow' names the flow 'clinic_checkin', not in the library" in out


def test_the_console_command_answers_with_the_clinic_flow(run_cli, clinic_settings, clinic_flows, monkeypatch):
    assert run_cli("demo", "--no-serve", settings=clinic_settings)[0] == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("满意度\n9\n很好\n问卷\nexit\n"))
    code, out, err = run_cli("console", "DEMO00011", settings=clinic_settings)
    assert code == 0, err
    assert CLINIC_WORDS in out
    assert "做事时提不起劲或没有兴趣" in out  # the library's flows still run beside the clinic's
    check_told(err, clinic_flows)


def test_the_worker_tells_the_broken_files_at_start(run_cli, clinic_settings, clinic_flows):
    assert run_cli("init", settings=clinic_settings)[0] == 0
    code, out, err = run_cli("worker", "--once", settings=clinic_settings)
    assert code == 0, err
    assert "due_followups: 0" in out
    check_told(err, clinic_flows)


def test_the_web_app_logs_the_broken_files_at_start(runtime, clinic_flows, caplog):
    from careloop.app import create_app

    clinic = Runtime(settings=runtime.settings.with_overrides(flows_dirs=(clinic_flows,)), key_ring=runtime.key_ring,
                     db=runtime.db, clock=runtime.clock)
    with caplog.at_level(logging.WARNING, logger="careloop.flows"):
        create_app(runtime=clinic)
    check_told("\n".join(record.getMessage() for record in caplog.records), clinic_flows)


def test_serve_tells_the_flows_at_start(run_cli, clinic_settings, clinic_flows):
    assert run_cli("init", settings=clinic_settings)[0] == 0
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    environment = {**os.environ, "CARELOOP_DATABASE_URL": clinic_settings.database_url,
                   "CARELOOP_KEY_FILE": str(clinic_settings.key_file),
                   "CARELOOP_BLOB_DIR": str(clinic_settings.blob_dir),
                   "CARELOOP_FLOWS_DIR": f"{clinic_flows}:{clinic_flows.parent / 'not_there'}",
                   "PYTHONPATH": str(ROOT)}
    command = [str(Path(sys.executable).parent / "careloop"), "serve", "--port", str(port)]
    with subprocess.Popen(command, cwd=clinic_flows.parent, env=environment, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as web:
        try:
            _wait_until_up(f"http://127.0.0.1:{port}/healthz", web)
        finally:
            web.send_signal(signal.SIGTERM)
            out, err = web.communicate(timeout=30)
    installed = LIBRARY_FLOWS + 1  # the clinic's own flow beside the library's
    assert re.search(rf"^  flows: {installed} installed, 3 file\(s\) left out \(see stderr\)$", out, re.MULTILINE), out
    check_told(err, clinic_flows.parent)
    assert f"flow left out: {clinic_flows.parent / 'not_there'}:-: there is no such folder of flow files" in err


def _wait_until_up(url: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"serve exited with {process.returncode}: {process.communicate()}")
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - a loopback URL of the test's own
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("careloop serve did not answer within 60 s")


# -- the bot runtime, answered through the console channel ----------------------------------------------
def bot_services(runtime: Runtime, *folders: Path) -> BotServices:
    clinic = Runtime(settings=runtime.settings.with_overrides(flows_dirs=folders), key_ring=runtime.key_ring,
                     db=runtime.db, clock=runtime.clock)
    return build_bot(clinic).services


def sender(db: Session, clock: FixedClock) -> Callable[[BotServices, str, str], list[str]]:
    """Send a console message as the patient with card number ``card`` through ``services``; return the texts."""

    def send(services: BotServices, card: str, text: str) -> list[str]:
        message = InboundMessage(channel="console", provider_key=f"test:{uuid.uuid4()}", sender=card, kind="text",
                                 text=text, received_at=clock.now())
        reply = handle_inbound(db, services, message)
        db.flush()
        return reply.texts

    return send


def test_the_bot_answers_with_the_clinic_flow_and_leaves_the_broken_ones_out(db, runtime, clock, make_patient,
                                                                             clinic_flows):
    services = bot_services(runtime, clinic_flows)
    assert {Path(problem.file).name for problem in services.library.problems} == {"broken.yaml", "typo.yaml"}
    say = sender(db, clock)
    patient = make_patient()
    assert CLINIC_WORDS in "".join(say(services, patient.card_no, "满意度"))
    say(services, patient.card_no, "9")
    say(services, patient.card_no, "很好")
    conversation = db.scalars(select(ConversationSession).where(ConversationSession.patient_id == patient.id)).one()
    assert (conversation.flow_id, conversation.flow_version, conversation.status) == ("satisfaction", 2, "ended")
    saved = {row.name: row for row in db.scalars(select(FlowResult).where(FlowResult.patient_id == patient.id))}
    assert saved["nps"].category == "promoter"
    other = make_patient()
    assert "做事时提不起劲或没有兴趣" in "".join(say(services, other.card_no, "问卷"))


def test_a_running_conversation_keeps_its_version_when_the_clinic_publishes_a_new_one(db, runtime, clock,
                                                                                      make_patient, tmp_path):
    folder = tmp_path / "later"
    folder.mkdir()
    say = sender(db, clock)
    patient = make_patient()
    before = bot_services(runtime, folder)
    assert "您好！您有多大可能" in "".join(say(before, patient.card_no, "满意度"))
    library_flow_as(folder, "satisfaction.yaml", flow_id="satisfaction", version=2,
                    replace={"您好！您有多大可能": CLINIC_WORDS, "谢谢您抽时间回答！": "本诊所谢谢您！"})
    after = bot_services(runtime, folder)  # the process restarts with the clinic's new file
    assert after.library.get("satisfaction").version == 2
    say(after, patient.card_no, "9")
    assert "谢谢您抽时间回答！" in "".join(say(after, patient.card_no, "很好"))
    newcomer = make_patient()
    assert CLINIC_WORDS in "".join(say(after, newcomer.card_no, "满意度"))
    versions = {row.patient_id: row.flow_version for row in db.scalars(select(ConversationSession))
                if row.patient_id in (patient.id, newcomer.id)}
    assert versions == {patient.id: 1, newcomer.id: 2}
