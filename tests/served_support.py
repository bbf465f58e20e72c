"""A served simulated station for API tests: `cardstation serve --simulate` in this process,
with a channel to it (`running.channel`), stopped with the readers emptied afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import grpc

from cardstation.config import Config
from tests.conftest import ENCODER_READER, PSAM_READER


@contextmanager
def served_station(folder: str, blank_cards: int) -> Iterator[Any]:
    from cardstation.commands.serve import start_server
    from cardstation.drivers.pcsc.readers import PcscContext
    from cardstation.pcscd import ensure_running

    ensure_running()
    running = start_server(Config(), "127.0.0.1:0", simulate=True, speed=0.0,
                           blank_cards=blank_cards, folder=folder)
    running.channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    try:
        yield running
    finally:
        running.channel.close()
        running.stop()
        with PcscContext() as pcsc:
            for reader in (ENCODER_READER, PSAM_READER):
                pcsc.wait_for_removal(reader, timeout=10)
