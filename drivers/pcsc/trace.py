"""APDU trace on the `cardstation.apdu` logger, with secrets masked before anything is logged.

Masked: the data of PIN commands (VERIFY, CHANGE PIN, PIN reload, UNBLOCK), of authentication and
key commands (EXTERNAL/INTERNAL AUTHENTICATE, PSAM diversify and encrypt) and of the responses
carrying cryptograms; runs of ASCII digits long enough to be an ID or account number; packed-BCD
account numbers under tag 5A. The log record's own redaction (cardstation.logs) is a second net.
"""

from __future__ import annotations

import logging
import re

log = logging.getLogger("cardstation.apdu")

# INS codes whose command data is a PIN, a MAC, a cryptogram or key-derivation input.
_SECRET_COMMAND_INS = {0x20, 0x24, 0x5E, 0x82, 0x88, 0xDE, 0xFA}
# INS codes whose response data is a cryptogram.
_SECRET_RESPONSE_INS = {0x88, 0xFA, 0xDE}
_DIGIT_RUN = re.compile(rb"[0-9Xx]{15,}")
_BCD_PAN = re.compile(r"5A(0[89A])([0-9A-F]+)")


def _mask_text_runs(data: bytes) -> str:
    """Hex of `data` with every run of >= 15 ASCII digits replaced by '*' pairs."""
    out: list[str] = []
    last = 0
    for match in _DIGIT_RUN.finditer(data):
        out.append(data[last : match.start()].hex().upper())
        out.append("**" * (match.end() - match.start()))
        last = match.end()
    out.append(data[last:].hex().upper())
    return "".join(out)


def _mask_bcd_pan(hex_text: str) -> str:
    def repl(m: re.Match[str]) -> str:
        n = int(m.group(1), 16) * 2
        value = m.group(2)
        return f"5A{m.group(1)}" + "*" * min(n, len(value)) + value[n:]

    return _BCD_PAN.sub(repl, hex_text)


def format_command(apdu: bytes) -> str:
    if len(apdu) < 4:
        return apdu.hex().upper()
    header = apdu[:4].hex().upper()
    rest = apdu[4:]
    if apdu[1] in _SECRET_COMMAND_INS and len(rest) > 1:
        return f"{header} {rest[:1].hex().upper()} <{len(rest) - 1} bytes masked>"
    return f"{header} {_mask_text_runs(rest)}".rstrip()


def format_response(data: bytes, sw: int, secret: bool = False) -> str:
    if secret and data:
        body = f"<{len(data)} bytes masked>"
    else:
        body = _mask_bcd_pan(_mask_text_runs(data))
    return f"{body} {sw:04X}".lstrip()


class ApduTrace:
    """Logs command/response pairs; remembers when a GET RESPONSE fetches a cryptogram."""

    def __init__(self, reader: str = "") -> None:
        self.reader = reader
        self._pending_secret = False

    @staticmethod
    def enabled() -> bool:
        return log.isEnabledFor(logging.DEBUG)

    def command(self, apdu: bytes) -> None:
        ins = apdu[1] if len(apdu) > 1 else None
        if ins != 0xC0:  # GET RESPONSE inherits the secrecy of the command it completes
            self._pending_secret = ins in _SECRET_RESPONSE_INS
        log.debug("%s > %s", self.reader, format_command(apdu))

    def response(self, data: bytes, sw: int) -> None:
        log.debug("%s < %s", self.reader, format_response(data, sw, self._pending_secret))
