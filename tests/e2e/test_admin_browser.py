"""The staff panel in a real browser (Debian's chromium driven by Playwright) against the real app.

A fresh database is prepared with the real CLI (``careloop init``, ``careloop import patients``),
the real app is served on a free port, and the browser does what a new administrator does on the
first day: signs in with the one-time password and a TOTP code, chooses a password, looks at the
work queue, chats a whole GAD-7 as their own test patient in the simulator, takes the task the
score raised, opens that patient's page, and switches the panel to English.
"""

from __future__ import annotations

import io
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from openpyxl import load_workbook
from playwright.sync_api import Page, expect, sync_playwright
from werkzeug.serving import make_server

import careloop
from security import totp

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync"]
CARD_NO = "E2E0001"
#: Where the run saves its screenshots of the main pages (the CI keeps the folder as an artefact).
SCREENSHOTS = Path(os.environ.get("CARELOOP_E2E_SCREENSHOTS") or Path(__file__).parents[2] / "build" / "e2e")
NEW_PASSWORD = "spring rain on the lotus pond 8"
# GAD-7 answers by choice number (1 = not at all ... 4 = nearly every day): scores 2+2+1+3+1+2+1 = 12, moderate.
GAD7_CHOICES = ["3", "3", "2", "4", "2", "3", "2"]


@dataclass
class Clinic:
    url: str
    email: str
    one_time_password: str
    totp_secret: str


@pytest.fixture
def clinic(run_cli, fresh_settings, tmp_path) -> Iterator[Clinic]:
    """Initialise a fresh clinic with one patient and serve the real app on a free local port."""
    code, out, err = run_cli("init")
    assert code == 0, err
    printed = {key: re.search(rf"{key}:\s+(\S+)", out) for key in ("e-mail", "one-time password", "TOTP secret")}
    assert all(printed.values()), out
    patients = tmp_path / "patients.csv"
    patients.write_text("card_no,name,gender,birth_date,phone,language\n"
                        f"{CARD_NO},测试患者,F,1958-03-02,13800000001,zh\n", encoding="utf-8")
    code, _out, err = run_cli("import", "patients", str(patients))
    assert code == 0, err
    app = careloop.create_app(fresh_settings)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="e2e-server", daemon=True)
    thread.start()
    try:
        yield Clinic(url=f"http://127.0.0.1:{server.port}", email=printed["e-mail"].group(1),
                     one_time_password=printed["one-time password"].group(1),
                     totp_secret=printed["TOTP secret"].group(1))
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        app.extensions["careloop"].close()


@dataclass
class Tab:
    page: Page
    # Console errors (CSP violations and failed loads among them) and uncaught script errors.
    problems: list[str] = field(default_factory=list)


@pytest.fixture
def tab() -> Iterator[Tab]:
    """Open a chromium tab (Debian's browser, never a downloaded one); fail clearly when chromium is missing."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's browser with "
                    "`apt-get update && apt-get install -y chromium` (never `playwright install`)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(locale="zh-CN", extra_http_headers={"Accept-Language": "zh-CN,zh;q=0.9"})
            context.set_default_timeout(15_000)
            opened = Tab(context.new_page())
            opened.page.on("console", lambda message: message.type == "error" and opened.problems.append(message.text))
            opened.page.on("pageerror", lambda error: opened.problems.append(str(error)))
            yield opened
            context.close()
        finally:
            browser.close()


def send_as_patient(page: Page, text: str) -> list[str]:
    """Type ``text`` into the simulator, wait for the bot's answer, and return the new reply bubbles."""
    before = page.locator(".bubble.clinic").count()
    page.fill("#text", text)
    with page.expect_response(lambda response: response.url.endswith("/admin/simulator/messages")) as sent:
        page.press("#text", "Enter")
    assert sent.value.status == 200, sent.value.text()
    expect(page.locator("#simulator-form")).to_have_attribute("data-state", "idle")
    bubbles = page.locator(".bubble.clinic")
    return [bubbles.nth(index).inner_text() for index in range(before, bubbles.count())]


def send_refused(page: Page, text: str) -> str:
    """Type ``text`` into the simulator, expect a refusal, and return the error bubble's text."""
    page.fill("#text", text)
    with page.expect_response(lambda response: response.url.endswith("/admin/simulator/messages")) as sent:
        page.press("#text", "Enter")
    assert sent.value.status == 403, sent.value.text()
    expect(page.locator("#simulator-form")).to_have_attribute("data-state", "idle")
    return page.locator(".bubble.error").last.inner_text()


def test_a_new_administrator_signs_in_and_runs_a_gad7_in_the_simulator(clinic, tab):
    page = tab.page

    # Signed out, the panel sends the browser to the login page, in Chinese.
    page.goto(f"{clinic.url}/admin/")
    expect(page).to_have_url(re.compile(r"/admin/login\?next=/admin/"))
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.locator("h1")).to_have_text("登录")
    screenshot(page, "login")

    # A wrong code: one generic refusal.
    page.fill("#email", clinic.email)
    page.fill("#password", clinic.one_time_password)
    page.fill("#code", "000000")
    page.click("#submit")
    expect(page.locator(".flash.error")).to_contain_text("邮箱、密码或验证码不正确")

    # The one-time password and the authenticator's code: the panel asks for a new password first.
    page.fill("#email", clinic.email)
    page.fill("#password", clinic.one_time_password)
    page.fill("#code", totp.current_code(clinic.totp_secret, datetime.now(UTC)))
    page.click("#submit")
    expect(page).to_have_url(f"{clinic.url}/admin/password")
    page.fill("#current_password", clinic.one_time_password)
    page.fill("#new_password", "too short")
    page.fill("#confirm", "too short")
    page.click("#submit")
    expect(page.locator(".field-error")).to_contain_text("密码至少需要12个字符")
    page.fill("#current_password", clinic.one_time_password)
    page.fill("#new_password", NEW_PASSWORD)
    page.fill("#confirm", NEW_PASSWORD)
    page.click("#submit")

    # The work queue: nothing waiting yet.
    expect(page).to_have_url(f"{clinic.url}/admin/")
    expect(page.locator(".flash.success")).to_contain_text("密码已修改")
    expect(page.locator("h1")).to_have_text("待办工作")
    expect(page.locator("#queue-empty")).to_be_visible()

    # The simulator: a whole GAD-7 as the administrator's own test patient, never as the enrolled one.
    page.click("nav >> text=对话模拟器")
    expect(page.locator("h1")).to_have_text("对话模拟器")
    expect(page.locator("#simulated-patient")).to_contain_text("发送第一条消息时")
    page.fill("#card_no", CARD_NO)
    refusal = send_refused(page, "焦虑")
    assert "模拟器只能以测试患者的身份对话" in refusal
    page.fill("#card_no", "")
    opening = "\n".join(send_as_patient(page, "焦虑"))
    test_card = page.locator("#simulated-patient .card-no").inner_text()
    assert test_card.startswith("SIM-")
    assert "感觉紧张" in opening
    assert "完全不会" in opening
    replies: list[str] = []
    for choice in GAD7_CHOICES:
        replies.extend(send_as_patient(page, choice))
    transcript = "\n".join(replies)
    assert "12 分" in transcript
    assert "中度" in transcript
    assert "2个工作日内联系您" in transcript
    expect(page.locator(".bubble.patient")).to_have_count(len(GAD7_CHOICES) + 2)  # the refused one, too
    screenshot(page, "simulator-gad7")

    # The score raised a task for staff: it is on the queue with the test patient's card and name.
    page.click("nav >> text=待办工作")
    row = page.locator("#queue tbody tr").first
    expect(row.locator(".card-no")).to_have_text(test_card)
    expect(row.locator(".name")).to_contain_text("测试患者")
    expect(row.locator(".badge")).to_have_text("高")
    expect(row).to_contain_text("GAD-7总分12分")
    row.locator("button.acknowledge").click()
    expect(page.locator(".flash.success")).to_have_text("已认领该任务。")
    expect(page.locator("#queue tbody tr").first.locator(".acknowledged")).to_have_text("已有人处理")

    # The card number opens the patient's page; the enrolled patient is on the patient list.
    page.locator("#queue tbody tr").first.locator(".card-no a").click()
    expect(page.locator("#patient .card-no")).to_have_text(test_card)
    page.click("nav >> text=患者")
    expect(page.locator("#patients")).to_contain_text(CARD_NO)
    page.click("nav >> text=待办工作")

    # English, remembered from page to page.
    page.click("form.language button[value=en]")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("h1")).to_have_text("Work queue")
    expect(page.locator("#queue tbody tr").first).to_contain_text("GAD-7 total 12")
    page.click("nav >> text=Simulator")
    expect(page.locator("h1")).to_have_text("Simulator")
    expect(page.locator("#send")).to_have_text("Send")

    # Signing out ends the session; the login page stays in English.
    page.click("text=Sign out")
    expect(page.locator(".flash")).to_have_text("You are signed out.")
    page.goto(f"{clinic.url}/admin/simulator")
    expect(page).to_have_url(re.compile(r"/admin/login"))
    expect(page.locator("h1")).to_have_text("Sign in")

    # The refusal asked for above (the enrolled patient's card in the simulator) is the one failed load.
    assert tab.problems == ["Failed to load resource: the server responded with a status of 403 (FORBIDDEN)"]


def screenshot(page: Page, name: str) -> None:
    """Save the whole page as ``<SCREENSHOTS>/<name>.png``."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_function("() => Array.from(document.images).every(image => image.complete)")  # charts drawn
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


@pytest.fixture
def clinic_with_results(run_cli, fresh_settings, tmp_path) -> Iterator[Clinic]:
    """A fresh clinic of two patients, one with three years of blood pressure and a glucose at 2.8 mmol/L."""
    code, out, err = run_cli("init")
    assert code == 0, err
    printed = {key: re.search(rf"{key}:\s+(\S+)", out) for key in ("e-mail", "one-time password", "TOTP secret")}
    assert all(printed.values()), out
    patients = tmp_path / "patients.csv"
    patients.write_text("card_no,name,gender,birth_date,phone,language\n"
                        "E2E0101,王秀英,F,1956-04-12,13800000101,zh\n"
                        "E2E0102,李建华,M,1961-09-30,13800000102,zh\n", encoding="utf-8")
    assert run_cli("import", "patients", str(patients))[0] == 0
    reports = tmp_path / "reports.csv"
    reports.write_text("card_no,report_id,date,code,value,unit\n"
                       "E2E0101,R-2024,2024-06-01,sbp,150,mmHg\n"
                       "E2E0101,R-2025,2025-06-01,sbp,142,mmHg\n"
                       "E2E0101,R-2026,2026-11-20,sbp,133,mmHg\n"
                       "E2E0101,R-2026,2026-11-20,fpg,2.8,mmol/L\n", encoding="utf-8")
    code, _out, err = run_cli("import", "reports", str(reports))
    assert code == 0, err
    app = careloop.create_app(fresh_settings)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="e2e-server", daemon=True)
    thread.start()
    try:
        yield Clinic(url=f"http://127.0.0.1:{server.port}", email=printed["e-mail"].group(1),
                     one_time_password=printed["one-time password"].group(1),
                     totp_secret=printed["TOTP secret"].group(1))
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        app.extensions["careloop"].close()


def first_sign_in(page: Page, clinic: Clinic) -> None:
    """Sign in with the one-time password and a TOTP code, and choose the new password."""
    page.goto(f"{clinic.url}/admin/login")
    page.fill("#email", clinic.email)
    page.fill("#password", clinic.one_time_password)
    page.fill("#code", totp.current_code(clinic.totp_secret, datetime.now(UTC)))
    page.click("#submit")
    expect(page).to_have_url(f"{clinic.url}/admin/password")
    page.fill("#current_password", clinic.one_time_password)
    page.fill("#new_password", NEW_PASSWORD)
    page.fill("#confirm", NEW_PASSWORD)
    page.click("#submit")
    expect(page).to_have_url(f"{clinic.url}/admin/")


def test_staff_find_a_patient_read_the_record_and_close_the_urgent_task(clinic_with_results, tab):
    page, clinic = tab.page, clinic_with_results
    first_sign_in(page, clinic)

    # The glucose of 2.8 mmol/L raised an urgent task: counted in the header, on top of the queue, with the reading.
    expect(page.locator("#urgent-count")).to_have_text("紧急：1")
    row = page.locator("#queue tbody tr").first
    expect(row.locator(".badge")).to_have_text("紧急")
    expect(row.locator(".name")).to_have_text("王秀英")
    expect(row.locator("a.dial")).to_have_attribute("href", "tel:+8613800000101")
    expect(row.locator(".evidence.reading")).to_contain_text("2.8 mmol/L")
    screenshot(page, "work-queue")

    # The patients list: both patients; a search by whole name, then by phone, posted (the URL stays clean).
    page.click("nav >> text=患者")
    expect(page.locator("#patients tbody tr")).to_have_count(2)
    page.fill("#q", "李建华")
    page.click("#find")
    expect(page.locator("#patients tbody tr")).to_have_count(1)
    expect(page.locator("#patients .name")).to_have_text("李建华")
    assert "李建华" not in page.url
    page.fill("#q", "138 0000 0101")
    page.click("#find")
    expect(page.locator("#patients tbody tr")).to_have_count(1)
    expect(page.locator("#patients .phone")).to_have_text("*******0101")
    assert "0101" not in page.url
    screenshot(page, "patients-search")

    # The patient page: the record, a trend chart drawn by the server, the open task on the timeline.
    page.locator("#patients .card-no a").click()
    expect(page.locator("h1")).to_have_text("王秀英")
    expect(page.locator("#observations")).to_contain_text("133")
    chart = page.locator('#trends figure[data-code="sbp"] img')
    expect(chart).to_be_visible()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=chart.element_handle())
    expect(page.locator("#task-timeline li.open")).to_have_count(1)
    screenshot(page, "patient-page")

    # Back on the queue, the nurse's part: claim, then record the call's outcome and notes.
    page.click("#urgent-count")
    row = page.locator("#queue tbody tr").first
    row.locator("button.acknowledge").click()
    expect(page.locator(".flash.success")).to_have_text("已认领该任务。")
    row = page.locator("#queue tbody tr").first
    row.locator("details.close-task summary").click()
    row.locator("select[name=outcome]").select_option("reached_advised")
    row.locator("textarea[name=notes]").fill("已电话联系，嘱其进食并复测血糖")
    row.locator("details.close-task button[type=submit]").click()
    expect(page.locator(".flash.success")).to_have_text("任务已关闭。")
    expect(page.locator("#queue-empty")).to_be_visible()
    expect(page.locator("#urgent-count")).to_have_text("紧急：0")

    # The closed task stays on the patient's timeline, with its outcome and notes.
    page.click("nav >> text=患者")
    page.locator("#patients tbody tr", has_text="王秀英").locator(".card-no a").click()
    closed = page.locator("#task-timeline li.closed")
    expect(closed).to_have_count(1)
    expect(closed).to_contain_text("已联系，已给建议")
    expect(closed).to_contain_text("嘱其进食并复测血糖")
    screenshot(page, "patient-timeline")

    # Nothing the pages did broke the Content-Security-Policy or failed to load.
    assert tab.problems == []


# A flow whose branch names a node that does not exist, and whose question has an unknown type.
BROKEN_FLOW = """id: e2e_broken
version: 1
title: {zh: 坏流程, en: Broken flow}
nodes:
  - id: ask
    kind: question
    type: colour
    text: {zh: 您好, en: Hello}
  - id: route
    kind: branch
    cases: []
    default: nowhere
"""


def test_an_administrator_edits_a_rule_uploads_a_flow_and_exports_and_an_auditor_reads_the_trail(
        clinic_with_results, tab, run_cli, tmp_path):
    page, clinic = tab.page, clinic_with_results
    first_sign_in(page, clinic)

    # A tag rule, previewed before it is saved: the last blood pressure of 133 holds for >= 130, not >= 140.
    page.click("nav >> text=标签规则")
    expect(page.locator("#rules-empty")).to_be_visible()
    page.click("#new-rule")
    page.fill("#name", "血压偏高")
    page.fill("#tag", "血压偏高")
    page.fill("#expression", "latest.sbp >= 130")
    page.click("#preview-rule")
    expect(page.locator("#preview")).to_contain_text("将为 1 位患者设置标签")
    page.click("#save-rule")
    expect(page.locator(".flash.success")).to_contain_text("第 1 版")
    row = page.locator('#tag-rules tr[data-rule="血压偏高"]')
    expect(row.locator(".version")).to_have_text("1")
    row.locator("a").click()
    page.fill("#expression", "latest.sbp >= 140")
    page.click("#preview-rule")
    expect(page.locator("#preview")).to_contain_text("将为 0 位患者设置标签")
    screenshot(page, "tag-rule-preview")
    page.fill("#expression", "latest.sbp >>= 140")
    page.click("#save-rule")
    expect(page.locator("#expression-error")).to_contain_text("未被接受")
    page.fill("#expression", "latest.sbp >= 140")
    page.click("#save-rule")
    expect(page.locator('#tag-rules tr[data-rule="血压偏高"] .version')).to_have_text("2")

    # A broken flow file: refused, each problem named by its node and line; nothing installed.
    flow_file = tmp_path / "e2e_broken.yaml"
    flow_file.write_text(BROKEN_FLOW, encoding="utf-8")
    page.click("nav >> text=流程")
    expect(page.locator('#flows tr[data-flow="phq9"]')).to_have_count(2)
    page.set_input_files("#file", str(flow_file))
    page.click("#upload-flow")
    problems = page.locator("#flow-problems")
    expect(problems).to_contain_text("流程未安装")
    expect(problems.locator("tr.flow-problem", has_text="ask").locator(".line")).to_have_text("5")
    expect(problems.locator("tr.flow-problem", has_text="nowhere")).to_have_count(1)
    expect(page.locator('#flows tr[data-flow="e2e_broken"]')).to_have_count(0)
    screenshot(page, "flow-upload-problems")

    # An export of the observations, made in the background, downloaded once and opened.
    page.click("nav >> text=导出")
    page.select_option("#kind", "observations")
    page.click("#make-export")
    expect(page.locator("#download-export")).to_be_visible(timeout=30_000)  # the page refreshes itself
    screenshot(page, "export-ready")
    with page.expect_download() as download:
        page.click("#download-export")
    assert download.value.suggested_filename.endswith(".xlsx")
    sheet = load_workbook(io.BytesIO(Path(download.value.path()).read_bytes()), read_only=True).active
    rows = [list(row) for row in sheet.iter_rows(values_only=True)]
    assert rows[0][:3] == ["卡号", "日期", "代码"]
    assert len(rows) == 1 + 4
    assert {row[0] for row in rows[1:]} == {"E2E0101"}

    # The auditor: the trail without a word of the record, filtered by action, and where to verify the chain.
    page.click("text=退出")
    code, out, err = run_cli("users", "add", "--email", "auditor@clinic.test", "--role", "auditor")
    assert code == 0, err
    auditor = Clinic(clinic.url, "auditor@clinic.test", re.search(r"one-time password:\s+(\S+)", out).group(1),
                     re.search(r"TOTP secret:\s+(\S+)", out).group(1))
    page.goto(f"{clinic.url}/admin/login")
    page.fill("#email", auditor.email)
    page.fill("#password", auditor.one_time_password)
    page.fill("#code", totp.current_code(auditor.totp_secret, datetime.now(UTC)))
    page.click("#submit")
    page.fill("#current_password", auditor.one_time_password)
    page.fill("#new_password", NEW_PASSWORD)
    page.fill("#confirm", NEW_PASSWORD)
    page.click("#submit")
    page.click("nav >> text=审计记录")
    page.fill("#action", "export.")
    page.click("#filter-audit")
    actions = page.locator("#audit-entries .action")
    expect(actions.filter(has_text="export.create")).to_have_count(1)
    expect(actions.filter(has_text="export.download")).to_have_count(1)
    expect(page.locator("main")).not_to_contain_text("王秀英")
    page.click("#verify-chain")
    expect(page.locator(".flash.error")).to_contain_text("careloop audit verify")
    screenshot(page, "audit-trail")

    # The refusals asked for above (the bad expression, the broken flow) are the only failed loads.
    assert tab.problems == ["Failed to load resource: the server responded with a status of 400 (BAD REQUEST)",
                            "Failed to load resource: the server responded with a status of 422 (UNPROCESSABLE ENTITY)"]
