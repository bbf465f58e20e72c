"""What the window tests share: `serve --simulate` on a real port, cards on the desk reader,
the holder's keypresses on the PIN pad."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support.pcsc import DESK_READER, ENCODER_READER, PSAM_READER

READERS = (ENCODER_READER, PSAM_READER, DESK_READER)


def wait_readers_empty(readers: tuple[str, ...] = READERS) -> None:
    from cardstation.drivers.pcsc.readers import PcscContext

    with PcscContext() as pcsc:
        for reader in readers:
            pcsc.wait_for_removal(reader, timeout=10)


@contextmanager
def window_station(folder: Path, pin_timeout: float = 2) -> Iterator[Any]:
    """The production server over simulated devices, with `.channel` (insecure, loopback)
    and `.folder`; every reader empty before and after."""
    import grpc

    from cardstation.commands.serve import start_server
    from cardstation.config import Config
    from cardstation.pcscd import ensure_running

    ensure_running()
    wait_readers_empty()
    config = Config().with_values(window={"pin_timeout": pin_timeout})
    running = start_server(config, "127.0.0.1:0", simulate=True, speed=0.0, blank_cards=1,
                           folder=str(folder))
    running.channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    running.folder = folder
    try:
        yield running
    finally:
        running.channel.close()
        running.stop()
        wait_readers_empty()


def put_on_desk(running: Any, card: object) -> None:
    """Swap the card on the desk reader and wait until pcscd has seen it arrive."""
    from cardstation.drivers.pcsc.readers import PcscContext

    with PcscContext() as pcsc:
        if running.simulated.desk.card is not None:
            running.simulated.desk.remove()
        pcsc.wait_for_removal(DESK_READER, timeout=10)  # also after an earlier test's removal
        running.simulated.desk.insert(card)
        pcsc.wait_for_card(DESK_READER, timeout=10)


def holder_types(running: Any, *entries: str) -> None:
    """The holder's keypresses on the PIN pad: each entry, then the confirm key."""
    script: list[str] = []
    for entry in entries:
        script += [entry, "ENTER"]
    running.simulated.pinpad.script(script)
