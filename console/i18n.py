"""The console's languages: English, Russian and Turkish, from gettext catalogues.

The catalogues are the ``.po`` files in ``console/catalogues/<language>/LC_MESSAGES``,
extracted from the templates and the console's code by Babel (``make catalogues``:
``pybabel extract`` then ``pybabel update``). They are read once, at start-up, and
compiled in memory with Babel (no ``.mo`` files to build at install). A message without a
translation reads in English, as gettext does; a person's language is their preferred
one from the user directory, or English.

The language of the request being answered lives in a context variable, so that the
templates' ``_()`` and the code's ``gettext`` translate for the person asking.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from importlib.resources import files
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

LANGUAGES = {"en": "English", "ru": "Русский", "tr": "Türkçe"}
"""The console's languages, by ISO 639-1 code, each named in itself."""

DEFAULT_LANGUAGE = "en"

CATALOGUES = Path(str(files("console") / "catalogues"))
"""Where the catalogues are: ``messages.pot``, and ``<language>/LC_MESSAGES/messages.po``."""

_DOMAIN = "messages"
_current: ContextVar[str] = ContextVar("console_language", default=DEFAULT_LANGUAGE)


@cache
def catalogue(language: str) -> NullTranslations:
    """The compiled catalogue of ``language`` (``en`` and unknown codes: the messages
    as written). Raises ``babel.messages.pofile.PoFileError`` for a malformed file."""
    if language == DEFAULT_LANGUAGE or language not in LANGUAGES:
        return NullTranslations()
    source = CATALOGUES / language / "LC_MESSAGES" / f"{_DOMAIN}.po"
    with source.open("rb") as po:
        parsed = read_po(po, locale=language, domain=_DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, parsed)
    compiled.seek(0)
    return Translations(compiled, domain=_DOMAIN)


def chosen(language: str | None) -> str:
    """``language`` if the console speaks it, else English."""
    return language if language in LANGUAGES else DEFAULT_LANGUAGE


@contextmanager
def speaking(language: str | None) -> Iterator[str]:
    """Translate into ``language`` (falling back to English) within the block."""
    token = _current.set(chosen(language))
    try:
        yield _current.get()
    finally:
        _current.reset(token)


def use(language: str | None) -> str:
    """Translate into ``language`` (falling back to English) for the rest of the request
    being answered (each request runs in a context of its own); returns the language."""
    _current.set(chosen(language))
    return _current.get()


def current() -> str:
    """The language of the request being answered."""
    return _current.get()


def gettext(message: str) -> str:
    """``message`` in the current language (as written where it has no translation)."""
    return catalogue(_current.get()).gettext(message)


def ngettext(singular: str, plural: str, count: int) -> str:
    """The singular or plural of a message in the current language, by ``count`` (the
    language's own plural rule: Russian has three forms)."""
    return catalogue(_current.get()).ngettext(singular, plural, count)
