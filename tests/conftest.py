"""Shared fixtures: the real pcscd with vpcd slots, and simulated cards linked into them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cardstation.pcscd import PcscdUnavailable, ensure_running

ENCODER_READER = "Virtual PCD 00 00"
ENCODER_PORT = 35963
PSAM_READER = "Virtual PCD 00 01"
PSAM_PORT = 35964
DESK_READER = "Virtual PCD Desk 00 00"
DESK_PORT = 35965


@pytest.fixture(scope="session")
def pcscd() -> None:
    """pcscd with the vpcd driver. Missing pcscd fails the test (make test installs it);
    CARDSTATION_NO_PCSCD=1 skips instead, for machines that cannot run it."""
    try:
        ensure_running()
    except PcscdUnavailable as exc:
        if os.environ.get("CARDSTATION_NO_PCSCD") == "1":
            pytest.skip(f"pcscd unavailable: {exc}")
        raise


def restart_pcscd() -> None:
    """Stop pcscd and start it again (vpcd links reconnect by themselves)."""
    import subprocess
    import time

    subprocess.run(["pkill", "-x", "pcscd"], check=False)
    for _ in range(50):
        if subprocess.run(["pgrep", "-x", "pcscd"], capture_output=True).returncode:
            break
        time.sleep(0.1)
    ensure_running()


@pytest.fixture
def pcsc_context(pcscd: None) -> Iterator[object]:
    from cardstation.drivers.pcsc.readers import PcscContext

    with PcscContext() as ctx:
        yield ctx


class Slot:
    """A vpcd slot under test: insert/remove cards and wait until pcscd has seen it."""

    def __init__(self, reader: str, port: int, context: object) -> None:
        from cardstation.simulators.vpcd.link import VpcdLink

        self.reader = reader
        self.link = VpcdLink(port=port)
        self.context = context
        # start from an empty slot: pcscd may not yet have seen the last test's card leave
        context.wait_for_removal(reader, timeout=5)  # type: ignore[attr-defined]

    def insert(self, card: object, wait: bool = True) -> None:
        self.link.insert(card)
        if wait:
            self.link.wait_connected(5)
            self.context.wait_for_card(self.reader, timeout=5)  # type: ignore[attr-defined]

    def remove(self, wait: bool = True) -> None:
        self.link.remove()
        if wait:
            self.context.wait_for_removal(self.reader, timeout=5)  # type: ignore[attr-defined]

    def close(self) -> None:
        if self.link.card is not None:
            self.remove()
        self.link.stop()


@pytest.fixture
def encoder_slot(pcsc_context: object) -> Iterator[Slot]:
    slot = Slot(ENCODER_READER, ENCODER_PORT, pcsc_context)
    yield slot
    slot.close()


@pytest.fixture
def psam_slot(pcsc_context: object) -> Iterator[Slot]:
    slot = Slot(PSAM_READER, PSAM_PORT, pcsc_context)
    yield slot
    slot.close()


@pytest.fixture
def desk_slot(pcsc_context: object) -> Iterator[Slot]:
    slot = Slot(DESK_READER, DESK_PORT, pcsc_context)
    yield slot
    slot.close()


@pytest.fixture
def world(pcsc_context: object, tmp_path: Path) -> Iterator[object]:
    """Every simulator of one station (tests/world.py), started, on readers the last test
    left empty; stopped, and its readers empty again, afterwards."""
    from tests.world import make_world

    for reader in (ENCODER_READER, PSAM_READER):
        pcsc_context.wait_for_removal(reader, timeout=5)  # type: ignore[attr-defined]
    w = make_world(tmp_path)
    pcsc_context.wait_for_card(PSAM_READER, timeout=5)  # type: ignore[attr-defined]
    yield w
    w.stop()
    for reader in (ENCODER_READER, PSAM_READER):
        pcsc_context.wait_for_removal(reader, timeout=5)  # type: ignore[attr-defined]
