"""What the browser tests share: a simulated station with operator and upstream tokens and
the console in front of it, Debian's chromium, screenshots."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from cardstation.config import Config
from cardstation.console_thread import CHROMIUM, CHROMIUM_ARGS

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "SHOTS", "console_station"]
SHOTS = Path(__file__).resolve().parent.parent / "var" / "screenshots"


@contextmanager
def console_station(folder: Path, readers: tuple[str, ...], blank_cards: int = 4,
                    printers: int = 1, **sections: dict[str, Any]) -> Iterator[Any]:
    """`serve --simulate` with an operator token (`.token`) and an upstream one
    (`.upstream_token`), and the console in front of it (`.console_url`)."""
    from cardstation.commands.serve import start_server
    from cardstation.console_thread import ConsoleThread
    from cardstation.drivers.pcsc.readers import PcscContext
    from cardstation.pcscd import ensure_running
    from cardstation.server.auth import Role, TokenStore

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
