"""The panel's languages: Chinese first, English complete.

Message ids in code and templates are English; ``translations/zh/LC_MESSAGES/messages.po`` is the
Chinese catalogue. Only the ``.po`` source is kept in the repository: it is compiled in memory
(babel's ``read_po`` + ``write_mo``) when the app is built, so a fresh checkout needs no build step
and nothing generated can go stale. To add strings, mark them with ``_``/``gettext`` (code) or
``{{ _("...") }}`` (templates), then translate them in the ``.po`` file; a test fails on any marked
string the catalogue lacks.

The language is the one the user picked (remembered in the session), else the best match of the
browser's ``Accept-Language``, else Chinese.
"""

from __future__ import annotations

from functools import cache
from io import BytesIO
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations
from flask import Flask, request, session
from flask_babel import Babel, Domain, get_locale

LANGUAGES = ("zh", "en")
DEFAULT_LANGUAGE = "zh"
LANGUAGE_KEY = "lang"
# The value of <html lang>: the panel's Chinese is Simplified, as written in mainland China.
HTML_LANG = {"zh": "zh-CN", "en": "en"}
LANGUAGE_NAMES = {"zh": "中文", "en": "English"}
CATALOGUE_DIR = Path(__file__).parent / "translations"
DOMAIN = "messages"


@cache
def compiled_catalogues(directory: Path = CATALOGUE_DIR) -> dict[str, Translations]:
    """Compile every ``<lang>/LC_MESSAGES/messages.po`` under ``directory`` into translations, in memory."""
    catalogues: dict[str, Translations] = {}
    for po_path in sorted(directory.glob(f"*/LC_MESSAGES/{DOMAIN}.po")):
        language = po_path.parent.parent.name
        with po_path.open("rb") as source:
            catalog = read_po(source, locale=language, domain=DOMAIN)
        compiled = BytesIO()
        write_mo(compiled, catalog)  # fuzzy entries are left out, as msgfmt does
        compiled.seek(0)
        catalogues[language] = Translations(fp=compiled, domain=DOMAIN)
    return catalogues


class CompiledDomain(Domain):  # type: ignore[misc]  # flask_babel ships no type information
    """A message domain that serves the catalogues compiled in memory instead of reading ``.mo`` files."""

    def __init__(self, catalogues: dict[str, Translations]) -> None:
        super().__init__(domain=DOMAIN)
        self.catalogues = catalogues

    def get_translations(self) -> NullTranslations:
        locale = get_locale()
        if locale is None:
            return NullTranslations()
        return self.catalogues.get(locale.language, NullTranslations())


class CatalogueBabel(Babel):  # type: ignore[misc]  # flask_babel ships no type information
    """Flask-Babel, with its default domain swapped for the in-memory catalogues."""

    def __init__(self) -> None:
        super().__init__()
        self.compiled_domain = CompiledDomain({})

    @property
    def domain_instance(self) -> CompiledDomain:
        return self.compiled_domain


babel = CatalogueBabel()


def select_language() -> str:
    """Pick the request's language: the user's choice, else the browser's preference, else Chinese."""
    chosen = session.get(LANGUAGE_KEY)
    if chosen in LANGUAGES:
        return str(chosen)
    return request.accept_languages.best_match(LANGUAGES, default=DEFAULT_LANGUAGE) or DEFAULT_LANGUAGE


def current_language() -> str:
    """Return the language of the current request (``zh`` or ``en``)."""
    locale = get_locale()
    return locale.language if locale is not None and locale.language in LANGUAGES else DEFAULT_LANGUAGE


def init_app(app: Flask) -> None:
    """Bind Flask-Babel to ``app`` with the compiled catalogues and the language selector."""
    babel.compiled_domain.catalogues = compiled_catalogues()
    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT_LANGUAGE)
    # Staff read times in the clinic's zone; Careloop's clinics are in mainland China.
    app.config.setdefault("BABEL_DEFAULT_TIMEZONE", "Asia/Shanghai")
    babel.init_app(app, locale_selector=select_language)
