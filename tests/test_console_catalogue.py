"""Every string of the window screens is in both catalogues, and every window reason has a
Chinese cause and remedy (the operator is never left with a raw code or the server's English)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cardstation.console.app import CARD_FIELDS, PIN_ENTRIES, PIN_OPERATIONS
from cardstation.console.i18n import LOCALES, Translator
from cardstation.personalization import window as w

TEMPLATES = Path(__file__).resolve().parent.parent / "console" / "templates"
WINDOW_TEMPLATES = ("window.html", "window_result.html", "reprint.html", "reprint_ready.html",
                    "reprint_done.html", "idfield.html", "make.html", "fault.html", "base.html")


def static_keys() -> set[str]:
    keys: set[str] = set()
    for name in WINDOW_TEMPLATES:
        keys |= set(re.findall(r"""_\(["']([^"']+)["']\)""", (TEMPLATES / name).read_text()))
    return keys


def dynamic_keys() -> set[str]:
    ops = ["READ", "VERIFY_RETURNED", *(f"PIN_{o}" for o in PIN_OPERATIONS), "TEMP_ISSUE",
           "TEMP_REWRITE", "TEMP_RECALL"]
    keys = {f"window.op:{o}" for o in ops}
    keys |= {f"window.done:{o}" for o in ops if o != "READ"}
    keys |= {f"card:{f}" for f in (*CARD_FIELDS, "holder_id_masked", "valid_from", "valid_to")}
    keys |= {f"pin:{e}" for entries in PIN_ENTRIES.values() for e in entries}
    keys |= {f"kind:{k}" for k in ("FORMAL", "TEMPORARY", "UNSPECIFIED")}
    return keys


@pytest.mark.parametrize("locale", LOCALES)
def test_every_window_string_is_in_the_catalogue(locale: str) -> None:
    tr = Translator(locale)
    missing = sorted(k for k in static_keys() | dynamic_keys() if not tr.has(k))
    assert not missing, missing


def test_every_window_reason_has_a_chinese_cause_and_remedy() -> None:
    tr = Translator("zh_CN")
    for code in (*w.REASONS, "NO_WINDOW_DEVICES", "PINPAD_TIMEOUT", "IDREADER_SAM_FAILURE",
                 "CMS_HOLDER_BLOCKED", "REPRINT_NOT_MADE", "REPRINT_WRONG_CARD",
                 "REPRINT_DATA_PURGED"):
        cause, remedy = tr.fault(code, "english cause", "english remedy")
        assert re.search(r"[\u4e00-\u9fff]", cause) and re.search(r"[\u4e00-\u9fff]", remedy), \
            code
