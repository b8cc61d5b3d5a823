"""Languages: Chinese first, English complete; the user's choice, else the browser's, else Chinese."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

import admin
from admin.i18n import CATALOGUE_DIR, compiled_catalogues
from tests.admin.conftest import page_token

ADMIN_DIR = Path(admin.__file__).parent
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]")


@pytest.mark.parametrize(("header", "title"), [
    (None, "登录"),
    ("zh-CN,zh;q=0.9,en;q=0.8", "登录"),
    ("en-US,en;q=0.9", "Sign in"),
    ("en-GB", "Sign in"),
    ("fr-FR,fr;q=0.9", "登录"),
    ("fr,en;q=0.5", "Sign in"),
])
def test_without_a_choice_the_browser_language_decides(client, header, title):
    headers = {"Accept-Language": header} if header else {}
    page = client.get("/admin/login", headers=headers).get_data(as_text=True)
    assert f"<title>{title} ·" in page


def test_the_switch_is_remembered_and_wins_over_the_browser(client):
    token = page_token(client)
    response = client.post("/admin/language", data={"csrf_token": token, "language": "en", "next": "/admin/login"})
    assert response.headers["Location"] == "/admin/login"
    page = client.get("/admin/login", headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    assert '<html lang="en">' in page
    assert "Sign in" in page
    client.post("/admin/language", data={"csrf_token": token, "language": "zh"})
    assert "登录" in client.get("/admin/login", headers={"Accept-Language": "en"}).get_data(as_text=True)


def test_the_choice_survives_signing_in(client, make_staff, sign_in):
    client.post("/admin/language", data={"csrf_token": page_token(client), "language": "en"})
    sign_in(make_staff("nurse"))
    assert "Work queue" in client.get("/admin/").get_data(as_text=True)


def test_an_unknown_language_or_outside_next_changes_nothing_harmful(client):
    token = page_token(client)
    response = client.post("/admin/language", data={"csrf_token": token, "language": "xx",
                                                    "next": "https://evil.example/"})
    assert response.headers["Location"] == "/admin/login"
    assert "登录" in client.get("/admin/login").get_data(as_text=True)


def test_every_page_has_the_switch(client, signed_in):
    signed_in("admin")
    for path in ("/admin/", "/admin/patients", "/admin/simulator", "/admin/account", "/admin/password", "/admin/login"):
        page = client.get(path, follow_redirects=True).get_data(as_text=True)
        assert 'action="/admin/language"' in page, path
        assert 'value="en"' in page


def _marked_strings() -> set[str]:
    method_map = [("**.py", "python"), ("**/templates/**.html", "jinja2")]
    keywords = {"_": None, "gettext": None, "_l": None, "lazy_gettext": None}
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
            str(ADMIN_DIR), method_map=method_map, keywords=keywords):
        found.add(message if isinstance(message, str) else message[0])
    return found


def test_the_chinese_catalogue_translates_every_marked_string_and_nothing_else():
    with (CATALOGUE_DIR / "zh" / "LC_MESSAGES" / "messages.po").open("rb") as source:
        catalogue = read_po(source)
    translated = {message.id: message.string for message in catalogue if message.id}
    marked = _marked_strings()
    assert len(marked) > 40
    assert sorted(marked - set(translated)) == [], "strings to translate in messages.po"
    assert sorted(set(translated) - marked) == [], "obsolete entries in messages.po"
    for message in catalogue:
        if message.id:
            assert message.string, f"untranslated: {message.id}"
            assert not message.fuzzy, f"fuzzy: {message.id}"
            assert sorted(PLACEHOLDER.findall(message.id)) == sorted(PLACEHOLDER.findall(message.string)), message.id


def test_the_catalogue_is_compiled_in_memory_from_the_po_source():
    assert not list(CATALOGUE_DIR.rglob("*.mo"))
    assert compiled_catalogues()["zh"].ugettext("Work queue") == "待办工作"
