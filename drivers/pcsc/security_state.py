"""What the card's security state is, as far as the commands sent on one connection tell.

A social security card keeps a bit for each key presented by EXTERNAL AUTHENTICATE until the
SSSE is selected again or the card is powered off (ssc-chip.md section 13; selecting a DF
outside the SSSE clears it too). Field personalization code selects the SSSE and presents a
key once, then writes every record; a session that knows the card is still in the SSSE with the
key presented need not select and authenticate again (each costs a GET CHALLENGE, two PSAM
commands and the EXTERNAL AUTHENTICATE).

The tracker watches the wire (a transport observer), so a caller that selects or authenticates
through any path is seen. It is a belief, not the card's word: callers that rely on it retry
once with a fresh select and key when the card answers 6982 anyway (see ChipSession).
"""

from __future__ import annotations

from dataclasses import dataclass, field

_SELECT = 0xA4
_EXTERNAL_AUTH = 0x82
_BY_NAME, _EF_BELOW = 0x04, 0x02


@dataclass
class SecurityState:
    """The DF the card is in (ssse: the SSSE itself) and the keys presented since it was
    entered. Starts unknown: a new connection has selected nothing."""

    ssse_name: bytes
    in_ssse: bool = False
    keys: set[int] = field(default_factory=set)

    def observe(self, command: bytes, response: bytes) -> None:
        """A transport observer: update the belief from one (command, response) pair."""
        if len(command) < 4 or len(response) < 2:
            return
        ins, p1, p2 = command[1], command[2], command[3]
        sw1 = response[-2]
        if ins == _SELECT:
            if sw1 not in (0x90, 0x61):
                return  # a failed select leaves the current DF as it was
            if p1 == _EF_BELOW:
                return  # an EF of the current DF: the DF and its security state stay
            if p1 == _BY_NAME and command[5:5 + command[4]] == self.ssse_name:
                self.in_ssse = True  # (re)selecting the SSSE clears its security state
            else:
                # another application (the bank's), a DF below (DF01..: its own state
                # rules), or a select by FID that may be any file: assume nothing
                self.in_ssse = False
            self.keys.clear()
        elif ins == _EXTERNAL_AUTH and command[0] == 0x00:
            if response[-2:] == b"\x90\x00":
                self.keys.add(p2)
            else:
                self.keys.discard(p2)

    def forget(self) -> None:
        """Assume nothing (after an error that may have reset the card)."""
        self.in_ssse = False
        self.keys.clear()
