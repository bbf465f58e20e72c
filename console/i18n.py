"""The console's message catalogue: gettext .po files read with Babel (zh_CN first, en second).

Every string the console shows goes through `Translator.gettext`; a reason code's cause and
remedy are entries `cause:CODE` / `remedy:CODE`, so the server's English explanation is shown
only when the catalogue has no entry for a code.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

LOCALES = ("zh_CN", "en")
DEFAULT_LOCALE = "zh_CN"
_FAMILIES = ("PINPAD_", "IDREADER_", "CMS_")
_FOLDER = Path(__file__).resolve().parent / "locale"


@lru_cache(maxsize=len(LOCALES))
def catalogue(locale: str) -> Catalog:
    with open(_FOLDER / f"{locale}.po", "rb") as fh:
        return read_po(fh, locale=locale)


class Translator:
    def __init__(self, locale: str = DEFAULT_LOCALE) -> None:
        self.locale = locale if locale in LOCALES else DEFAULT_LOCALE
        self._catalogue = catalogue(self.locale)

    def gettext(self, message: str) -> str:
        entry = self._catalogue.get(message)
        return entry.string if entry is not None and entry.string else message

    def has(self, message: str) -> bool:
        entry = self._catalogue.get(message)
        return entry is not None and bool(entry.string)

    def state(self, state: str) -> str:
        return self.gettext(f"state:{state}")

    def fault(self, code: str, cause: str, remedy: str) -> tuple[str, str]:
        """Cause and remedy for an operator: the catalogue's, else the server's own text.
        A family of codes (`PINPAD_<ERROR>`, `IDREADER_<ERROR>`, `CMS_<REASON>`) falls back on
        the family's entry (`cause:PINPAD_*`) when the code has none of its own."""
        key_cause, key_remedy = f"cause:{code}", f"remedy:{code}"
        if not self.has(key_cause):
            for family in _FAMILIES:
                if code.startswith(family) and self.has(f"cause:{family}*"):
                    key_cause, key_remedy = f"cause:{family}*", f"remedy:{family}*"
                    break
        return (self.gettext(key_cause) if self.has(key_cause) else cause,
                self.gettext(key_remedy) if self.has(key_remedy) else remedy)
