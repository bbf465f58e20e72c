"""Tiny scripted cards for driver tests that must not depend on the card OS."""

from __future__ import annotations

SSC_ATR = bytes.fromhex("3B6D0000008154443686605328A8888888")


class ScriptedCard:
    """Answers from a {command: response} table; records what it was sent."""

    def __init__(self, script: dict[bytes, bytes], atr: bytes = SSC_ATR) -> None:
        self.script = script
        self.atr = atr
        self.received: list[bytes] = []
        self.powered = False

    def power_on(self) -> bytes:
        self.powered = True
        return self.atr

    def power_off(self) -> None:
        self.powered = False

    def reset(self) -> bytes:
        return self.atr

    def process_apdu(self, apdu: bytes) -> bytes:
        self.received.append(apdu)
        return self.script.get(apdu, b"\x6d\x00")
