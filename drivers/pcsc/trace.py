"""APDU trace on the `cardstation.apdu` logger, personal data and secrets masked by structure.

The trace follows what each APDU addresses (the application selected by name, the EF selected
by FID, the record's SFI and tag) and looks it up in the card's declarations (cardfiles.py):
- the data of a record whose item is personal (ID number, name, birth date, card number, ...),
  of every bank-application record (PAN, track 2), of every binary file not declared public
  (certificates, the card's secrets) and of any record or instruction the trace does not know
  is shown as `<what n bytes #tag>`: its length and a tag that matches equal values within one
  run and cannot be reversed (cardstation.drivers.redaction.tags);
- the data of PIN commands (VERIFY, CHANGE REFERENCE DATA, RESET RETRY COUNTER, the SSC's
  change and reload) and of authentication and key commands (EXTERNAL/INTERNAL AUTHENTICATE,
  GENERAL AUTHENTICATE, PSO, PUT KEY, PSAM diversify and encrypt), and the cryptograms they
  answer, the same way.
What is shown (SELECT, GET CHALLENGE, GPO, public items) still goes through a pattern net here
(runs of ASCII digits, packed-BCD PANs under tag 5A), and the CLI's logging masks every record
once more (cardstation.drivers.redaction.patterns).
"""

from __future__ import annotations

import logging
import re

from cardstation.drivers.redaction import masked

from .cardfiles import DEBIT_AID, ITEMS_BY_ADDRESS, PSE_NAME, PUBLIC_FILES, SSSE_NAME

log = logging.getLogger("cardstation.apdu")

SELECT, GET_RESPONSE, GET_CHALLENGE, GPO = 0xA4, 0xC0, 0x84, 0xA8
RECORD_INS = {0xB2: "read", 0xDC: "update", 0xE2: "append"}
BINARY_INS = {0xB0: "read", 0xD6: "update"}
#: VERIFY, CHANGE REFERENCE DATA (the SSC's unblock with its MAC), RESET RETRY COUNTER, the
#: SSC's CHANGE PIN and PIN reload.
PIN_INS = frozenset({0x20, 0x24, 0x2C, 0x5E})
#: EXTERNAL/INTERNAL AUTHENTICATE, GENERAL AUTHENTICATE, PSO, PUT KEY, PSAM diversify/encrypt.
KEY_INS = frozenset({0x82, 0x88, 0x86, 0x87, 0x2A, 0xD8, 0xDE, 0xFA})
#: Of those, the ones whose answer is a cryptogram.
CRYPTOGRAM_INS = frozenset({0x88, 0x86, 0x87, 0x2A, 0xDE, 0xFA})
#: Instructions whose data and answer carry nothing of a person or a key.
PLAIN_INS = frozenset({SELECT, GET_CHALLENGE, GPO})
_BANK = (DEBIT_AID, PSE_NAME)

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


def format_command(apdu: bytes, label: str | None) -> str:
    """One command for the trace: header, then the data shown (label None) or masked."""
    if len(apdu) < 4:
        return masked(label, apdu) if label else apdu.hex().upper()
    header = apdu[:4].hex().upper()
    body = apdu[4:]
    if label is None:
        return f"{header} {_mask_text_runs(body)}".rstrip()
    if len(body) <= 1:  # case 1 or 2: no command data, at most an Le
        return f"{header} {body.hex().upper()}".rstrip()
    lc = body[0]
    le = body[1 + lc :]
    return f"{header} {lc:02X} {masked(label, body[1 : 1 + lc])} {le.hex().upper()}".rstrip()


def format_response(data: bytes, sw: int, label: str | None) -> str:
    if label and data:
        body = masked(label, data)
    else:
        body = _mask_bcd_pan(_mask_text_runs(data))
    return f"{body} {sw:04X}".lstrip()


class ApduTrace:
    """Logs command/response pairs of one connection, knowing what each one addresses.

    `command` and `response` are called for every exchange, traced or not, so the selection
    the masking depends on is never stale when DEBUG is switched on mid-session."""

    def __init__(self, reader: str = "") -> None:
        self.reader = reader
        self._application: bytes | None = None  # the last SELECT by name
        self._file: int | None = None  # the last SELECT by FID of an EF
        self._selecting: tuple[bytes | None, int | None] | None = None  # until it is answered
        self._response_label: str | None = None

    @staticmethod
    def enabled() -> bool:
        return log.isEnabledFor(logging.DEBUG)

    def command(self, apdu: bytes) -> None:
        if self._selecting is not None:  # a SELECT that got no answer: selection unknown
            self._application, self._file, self._selecting = None, None, None
        command_label, response_label = self._classify(apdu)
        if not (len(apdu) > 1 and apdu[1] == GET_RESPONSE):
            self._response_label = response_label  # GET RESPONSE inherits it
        if self.enabled():
            log.debug("%s > %s", self.reader, format_command(apdu, command_label))

    def response(self, data: bytes, sw: int) -> None:
        if self._selecting is not None:
            # a refused SELECT leaves the card's selection as it was, which the trace cannot
            # be sure of: unknown, so everything after it is masked until the next SELECT
            ok = sw == 0x9000 or sw >> 8 == 0x61
            self._application, self._file = self._selecting if ok else (None, None)
            self._selecting = None
        if self.enabled():
            log.debug("%s < %s", self.reader, format_response(data, sw, self._response_label))

    # -- what an APDU addresses -----------------------------------------------------------
    def _classify(self, apdu: bytes) -> tuple[str | None, str | None]:
        """(label masking the command data, label masking the response data); None shows."""
        if len(apdu) < 4:
            return "data", "data"
        ins, p1, p2 = apdu[1], apdu[2], apdu[3]
        if ins == SELECT:
            self._select(p1, apdu[5 : 5 + apdu[4]] if len(apdu) > 5 else b"")
            return None, None
        if ins == GET_RESPONSE:
            return None, self._response_label
        if ins in PLAIN_INS:
            return None, None
        if ins in PIN_INS:
            return "PIN data", "PIN data"
        if ins in KEY_INS:
            return "key data", "cryptogram" if ins in CRYPTOGRAM_INS else None
        if ins in RECORD_INS:
            label = self._record(p1, p2)
            return label, label
        if ins in BINARY_INS:
            label = self._binary(p1)
            return label, label
        return "data", "data"  # an instruction the station does not send: show nothing

    def _select(self, p1: int, data: bytes) -> None:
        if p1 == 0x04:  # by name: an application (DF); no EF is current
            self._selecting = (bytes(data), None)
        elif p1 in (0x00, 0x02) and len(data) == 2:  # an EF by FID
            self._selecting = (self._application, int.from_bytes(data, "big"))
        else:  # a DF by FID, a parent, a path: whatever EF was current is not any more
            self._selecting = (self._application, None)

    def _record(self, p1: int, p2: int) -> str | None:
        if self._application in _BANK:
            return "bank record"  # PAN, track 2, the holder's name: all of it
        sfi = p2 >> 3
        item = ITEMS_BY_ADDRESS.get((sfi, p1)) if self._application == SSSE_NAME else None
        if item is None or p2 & 0x07:  # not addressed by tag: the trace cannot tell what
            return f"record {p1:02X} of SFI {sfi:02X}"
        return item.name if item.personal else None

    def _binary(self, p1: int) -> str | None:
        if p1 & 0x80:  # short EF identifier in P1: that EF becomes current, FID unknown
            self._file = None
            return f"EF SFI {p1 & 0x1F:02X}"
        if self._file is None:
            return "binary data"
        if (self._application, self._file) in PUBLIC_FILES:
            return None
        return f"EF {self._file:04X}"
