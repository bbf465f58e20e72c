"""Console figures, in Debian's chromium through Playwright against `serve --simulate`:

- `console.page_ms.p95`: the make-card page and its preview served to the browser (load the
  page, type the ID number, press Enter, until the preview with its confirm button is shown);
- `console.event_lag_ms.p95`: a journal transition to its DOM update in the page (each step's
  journal time against the moment the page added it, measured in the page by console.js),
  over the steps of several cards, leaving out the ones replayed when the stream opened.
"""

from __future__ import annotations

import statistics
import tempfile
from dataclasses import replace
from pathlib import Path

_SERVED_MS = """() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const preview = performance.getEntriesByType('resource')
      .filter(e => e.name.endsWith('/preview')).pop();
  return (nav.responseEnd - nav.startTime) + (preview ? preview.duration : 0);
}"""


def _p95(values: list[float]) -> float:
    return round(statistics.quantiles(values, n=20)[-1], 1) if len(values) >= 2 else values[0]


def run(pages: int = 30, cards: int = 5) -> list[dict]:
    from playwright.sync_api import sync_playwright

    from cardstation.commands.serve import start_server
    from cardstation.config import Config
    from cardstation.console_thread import CHROMIUM, CHROMIUM_ARGS, ConsoleThread
    from cardstation.pcscd import ensure_running
    from cardstation.server.auth import Role, TokenStore

    ensure_running()
    folder = Path(tempfile.mkdtemp(prefix="cardstation-console-bench-"))
    store = TokenStore()
    token, _ = store.issue("bench", Role.OPERATOR, ttl_seconds=3600)
    store.save(folder / "tokens.json")
    config = Config()
    config = replace(config, server=replace(config.server, tokens_file=str(folder / "tokens.json")))
    running = start_server(config, "127.0.0.1:0", simulate=True, speed=0.0,
                           blank_cards=cards + 1, folder=str(folder / "sim"))
    console = ConsoleThread(f"127.0.0.1:{running.port}")
    url = console.url
    samples = running.simulated.cms.samples["ready"]
    page_ms: list[float] = []
    lags: list[float] = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                        args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(url + "/login")
            page.fill("#token", token)
            page.press("#token", "Enter")
            page.wait_for_selector("#id_number:focus")
            for n in range(-3, pages):  # three warm-up rounds (templates, first connections)
                page.goto(url + "/")
                page.fill("#id_number", samples[n % len(samples)])
                page.press("#id_number", "Enter")
                page.wait_for_selector("#confirm")
                # served to the browser, as the browser timed it (Navigation and Resource
                # Timing): the page, then the preview request with its two face images
                if n >= 0:
                    page_ms.append(page.evaluate(_SERVED_MS))
            for n in range(cards):
                page.goto(url + "/")
                page.fill("#id_number", samples[n])
                page.press("#id_number", "Enter")
                page.wait_for_selector("#confirm")
                page.click("#confirm")
                page.wait_for_selector(".outcome", timeout=60_000)
                steps = page.evaluate("window.cardstationLags")
                lags += [s["lag"] for s in steps if s["state"] not in ("FETCHED", "PREVIEWED")]
            browser.close()
    finally:
        console.stop()
        running.stop()
    return [
        {"name": "console.page_ms.p95", "value": _p95(page_ms), "unit": "ms",
         "target": "<= 150", "pages": len(page_ms),
         "median": round(statistics.median(page_ms), 1),
         "note": "the make-card page and its preview request (with both face images) as the "
                 "browser's Navigation/Resource Timing measures them"},
        {"name": "console.event_lag_ms.p95", "value": _p95(lags), "unit": "ms",
         "target": "<= 100", "events": len(lags), "cards": cards,
         "median": round(statistics.median(lags), 1) if lags else None,
         "note": "journal commit time to the step's DOM insertion, measured in the page"},
    ]
