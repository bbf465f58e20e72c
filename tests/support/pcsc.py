"""The vpcd readers the tests present cards in, and pcscd: the readers' names and vpcd ports,
a slot to insert and remove cards, and a pcscd restart. The fixtures that open the slots are in
conftest.py."""

from __future__ import annotations

from cardstation.pcscd import ensure_running

ENCODER_READER = "Virtual PCD 00 00"
ENCODER_PORT = 35963
PSAM_READER = "Virtual PCD 00 01"
PSAM_PORT = 35964
DESK_READER = "Virtual PCD Desk 00 00"
DESK_PORT = 35965


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
