"""What the browser tests share: a simulated station with operator and upstream tokens and
the console in front of it, Debian's chromium and its `page` fixture (on the requesting
module's `station` fixture), logging in, screenshots."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from cardstation.config import Config
from cardstation.console_thread import CHROMIUM, CHROMIUM_ARGS

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "SHOTS", "console_station", "login", "page", "shot"]
SHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"


@contextmanager
def console_station(folder: Path, readers: tuple[str, ...], blank_cards: int = 4,
                    printers: int = 1, **sections: dict[str, Any]) -> Iterator[Any]:
    """`serve --simulate` with an operator token (`.token`) and an upstream one
    (`.upstream_token`), and the console in front of it (`.console_url`)."""
    from cardstation.commands.serve import start_server
    from cardstation.console_thread import ConsoleThread
    from cardstation.drivers.pcsc.readers import PcscContext
    from cardstation.pcscd import ensure_running
    from cardstation.server.auth.identity import Role
    from cardstation.server.auth.tokens import TokenStore

    ensure_running()
    with PcscContext() as pcsc:
        for reader in readers:
            pcsc.wait_for_removal(reader, timeout=10)
    store = TokenStore()
    token, _ = store.issue("window-1", Role.OPERATOR, ttl_seconds=3600)
    upstream, _ = store.issue("hub", Role.UPSTREAM, ttl_seconds=3600)
    store.save(folder / "tokens.json")
    config = Config().with_values(**sections) if sections else Config()
    config = replace(config, server=replace(config.server,
                                            tokens_file=str(folder / "tokens.json")))
    running = start_server(config, "127.0.0.1:0", simulate=True, speed=0.0,
                           blank_cards=blank_cards, folder=str(folder / "sim"),
                           printers=printers)
    console = ConsoleThread(f"127.0.0.1:{running.port}")
    running.console_url = console.url
    running.token, running.upstream_token = token, upstream
    running.folder = folder / "sim"
    try:
        yield running
    finally:
        console.stop()
        if running.simulated.desk.card is not None:
            running.simulated.desk.remove()
        running.stop()
        with PcscContext() as pcsc:
            for reader in readers:
                pcsc.wait_for_removal(reader, timeout=10)


@contextmanager
def browser_page(extra_args: tuple[str, ...] = (), height: int = 900) -> Iterator[Any]:
    """A page of Debian's chromium (headless) whose console errors are kept (`page.errors`),
    and the requests answered 400 or more (`page.failed`, "STATUS URL")."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=[*CHROMIUM_ARGS, *extra_args])
        context = browser.new_context(viewport={"width": 1280, "height": height})
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.errors = errors  # type: ignore[attr-defined]
        failed: list[str] = []
        page.on("response", lambda r: failed.append(f"{r.status} {r.url}")
                if r.status >= 400 else None)
        page.failed = failed  # type: ignore[attr-defined]
        yield page
        browser.close()


@pytest.fixture
def page(station: Any) -> Iterator[object]:
    """Headless chromium on the requesting module's `station`; `.errors` collects the
    page's console errors."""
    with browser_page() as opened:
        yield opened


def shot(page: Any, name: str) -> None:
    """A full-page screenshot, var/screenshots/NAME.png (a test artefact)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def login(page: Any, running: Any) -> None:
    """Log in with the operator token; returns once the lookup form has the focus."""
    page.goto(running.console_url + "/")
    assert page.url.endswith("/login")  # no session: the login page
    page.wait_for_selector("#token:focus")  # autofocus: the operator just types
    page.keyboard.type(running.token)
    page.keyboard.press("Enter")
    page.wait_for_selector("body[data-ready] #id_number:focus")
    # htmx has taken the form (else Enter submits it as a plain form)
    page.wait_for_function("() => !!document.querySelector('#lookup')['htmx-internal-data']")
