"""Shared fixtures: the real pcscd with vpcd slots, and simulated cards linked into them.

What the test modules share otherwise is the `tests.support` package (one module a concern);
its modules that define fixtures are loaded as plugins here, so no test module imports another.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cardstation.pcscd import PcscdUnavailable, ensure_running
from tests.support.pcsc import (
    DESK_PORT,
    DESK_READER,
    ENCODER_PORT,
    ENCODER_READER,
    PSAM_PORT,
    PSAM_READER,
    Slot,
)

# The fixtures of tests/support: the HiTi printer rigs, and the browser page of the console tests.
pytest_plugins = ["tests.support.hiti", "tests.support.console"]


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


@pytest.fixture
def pcsc_context(pcscd: None) -> Iterator[object]:
    from cardstation.drivers.pcsc.readers import PcscContext

    with PcscContext() as ctx:
        yield ctx


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
    """Every simulator of one station (tests/support/world.py), started, on readers the last test
    left empty; stopped, and its readers empty again, afterwards."""
    from tests.support.world import make_world

    for reader in (ENCODER_READER, PSAM_READER):
        pcsc_context.wait_for_removal(reader, timeout=5)  # type: ignore[attr-defined]
    w = make_world(tmp_path)
    pcsc_context.wait_for_card(PSAM_READER, timeout=5)  # type: ignore[attr-defined]
    yield w
    w.stop()
    for reader in (ENCODER_READER, PSAM_READER):
        pcsc_context.wait_for_removal(reader, timeout=5)  # type: ignore[attr-defined]
