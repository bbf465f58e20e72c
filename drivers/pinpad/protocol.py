"""The cardstation PIN pad serial protocol ("CSPP/1").

**This protocol is this project's own design.** No public standard covers the PIN pads used at
social-security windows (each vendor has its own, mostly undocumented, command set), so the
station defines this small one; the simulator (``cardstation.simulators.pinpad``) implements the
pad side, and a real pad is fitted with an adapter (or firmware) that speaks it. This docstring is
the complete specification.

Goal
====
A PIN goes from the cardholder's fingers to the card without passing through the operator's
screen or any log. The PIN is plaintext only inside the pad and, later, inside the VERIFY /
CHANGE PIN APDU sent to the card. Nothing on this line carries a PIN digit: the host learns the
*number* of digits typed (KEY_COUNT) and, when the holder presses ENTER, a PIN block encrypted
under a session key (PIN_BLOCK).

Line
====
Any byte stream (RS-232, USB CDC, a pty in tests), 8 data bits, no parity, 1 stop bit, no flow
control; 9600 baud on real pads (ignored on a pty). All multi-byte integers are big-endian.

Frame
=====
::

    STX  LEN       SEQ  CMD  DATA        LRC  ETX
    02   hi lo     xx   xx   LEN-2 bytes xx   03

- ``LEN`` (2 bytes) counts SEQ + CMD + DATA, so ``2 <= LEN <= 2 + MAX_DATA`` (``MAX_DATA`` =
  256). Any other value is a length error.
- ``LRC`` is the XOR of every byte from the first LEN byte to the last DATA byte inclusive.
- ``SEQ``: the host numbers its commands 1, 2, ..., 255, 1, ... (0 is never used by the host).
  Every frame the pad sends in answer to a command (ACK, NAK, and for PROMPT the KEY_COUNT
  frames and the final frame) **echoes that command's SEQ**. A NAK for a frame whose SEQ could
  not be read carries SEQ 0. A receiver ignores frames whose SEQ belongs to no pending command
  (stale answers after a timeout).
- A receiver skips bytes before STX (line noise). On a length error it discards the STX and
  resynchronises on the next STX; on a wrong ETX or an LRC error it discards the whole frame
  (LEN + 5 bytes) and resynchronises after it. The pad answers every such frame with NAK
  (reason below); the host raises :class:`~cardstation.drivers.pinpad.errors.FrameError`. A
  frame not completed within 1 s of its STX is discarded by the pad with NAK TRUNCATED.
- Command codes have the top bit clear from host to pad and set from pad to host.

Commands (host -> pad)
======================
``HELLO 0x01`` - DATA empty. Answer: ACK whose DATA is the identity, three length-prefixed
ASCII strings: ``n model[n] | n serial[n] | n firmware[n]`` (each n is 1 byte).

``LOAD_SESSION_KEY 0x02`` - DATA = ``E_KEK(SK)`` (16 bytes) ``| KCV`` (4 bytes). SK is a fresh
16-byte SM4 session key; ``E_KEK`` is SM4-ECB under the pad's master key KEK (injected into the
pad at a key ceremony; the host side holds it in the key service). ``KCV`` = the first 4 bytes
of ``SM4-ECB(SK, 00 * 16)``. The pad decrypts SK, recomputes the KCV, and answers ACK (SK
replaces any previous session key) or NAK KEY_CHECK_FAILED (SK discarded, previous key erased
too: no PIN entry is possible until a good key is loaded). While a PROMPT is active: NAK BUSY.

``PROMPT 0x03`` - DATA (16 bytes)::

    message(1) | min_len(1) | max_len(1) | timeout_s(1) | account(12 ASCII digits)

``message`` is a :class:`PromptMessage` (what the pad shows: ENTER_PIN, ENTER_NEW_PIN,
CONFIRM_NEW_PIN, ENTER_OLD_PIN); ``4 <= min_len <= max_len <= 12``; ``1 <= timeout_s <= 255``;
``account`` is the 12-digit field of the PIN block (see below; ``000000000000`` when none).
Answer: NAK (BAD_DATA, NO_SESSION_KEY, BUSY) or ACK, then while the holder types:

- one ``KEY_COUNT`` per accepted digit, DATA = the number of digits entered so far (1 byte).
  Digits beyond ``max_len`` are ignored (no frame). CLEAR empties the entry: KEY_COUNT 0.
- ENTER with fewer than ``min_len`` digits is refused *on the pad*: the pad beeps, empties the
  entry, sends KEY_COUNT 0 and keeps waiting (a re-prompt; the timeout is not restarted).
- then exactly one final frame: ``PIN_BLOCK`` (ENTER with min_len..max_len digits),
  ``CANCELLED`` (holder pressed CANCEL, or host CANCEL), ``TIMEOUT`` (no valid ENTER within
  ``timeout_s`` of the PROMPT) or ``ERROR``. The pad then forgets the digits and is idle.

``CANCEL 0x04`` - DATA empty. If a PROMPT is active the pad first ends it with CANCELLED
(origin HOST, the PROMPT's SEQ), then ACKs the CANCEL (CANCEL's SEQ). Idle: ACK only.

Any other command: NAK UNKNOWN_COMMAND. HELLO is answered also while a PROMPT is active.

Answers (pad -> host)
=====================
==============  ====  =================================================================
ACK             0x80  DATA empty, or the identity for HELLO
NAK             0x81  reason (1 byte, :class:`NakReason`)
KEY_COUNT       0x82  digits entered so far (1 byte) - never the digits
PIN_BLOCK       0x83  16 bytes: ``SM4-ECB(SK, pin block)``, layout in ``pinblock.py``
CANCELLED       0x84  origin (1 byte, :class:`CancelOrigin`: 01 holder, 02 host)
TIMEOUT         0x85  DATA empty
ERROR           0x86  code (1 byte, :class:`ErrorCode`)
==============  ====  =================================================================

PIN block (``cardstation.drivers.pinpad.pinblock``, "CS-PB16")
================================================================
16 bytes, one SM4 block. Bytes 0-7 are exactly an ISO 9564-1 format 0 block: the PIN field
``0 | N | PIN digits | F...`` XOR the account field ``0000 | 12 account digits``; bytes 8-15
are 8 fresh random bytes, so the same PIN never gives the same cryptogram twice under one
session key. The host decrypts with SK and checks the format 0 structure.

Example (golden, pinned by the tests): HELLO with SEQ 1 is ``02 0002 01 01 02 03``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from construct import (
    Bytes,
    Checksum,
    Const,
    ConstructError,
    Int8ub,
    Int16ub,
    PascalString,
    RawCopy,
    Rebuild,
    Struct,
    len_,
    this,
)

from cardstation.drivers.pinpad.errors import FrameError

STX: Final = 0x02
ETX: Final = 0x03
MAX_DATA: Final = 256
MIN_LEN: Final = 2
MAX_LEN: Final = 2 + MAX_DATA
#: STX + LEN + LRC + ETX: bytes of a frame besides SEQ, CMD and DATA.
OVERHEAD: Final = 5
SESSION_KEY_LEN: Final = 16
CHECK_VALUE_LEN: Final = 4
PIN_BLOCK_LEN: Final = 16
ACCOUNT_DIGITS: Final = 12
PIN_MIN: Final = 4
PIN_MAX: Final = 12
#: The pad discards a frame not completed within this many seconds of its STX.
INTER_FRAME_TIMEOUT_S: Final = 1.0


class Cmd(IntEnum):
    """Frame command codes: top bit clear host -> pad, set pad -> host."""

    HELLO = 0x01
    LOAD_SESSION_KEY = 0x02
    PROMPT = 0x03
    CANCEL = 0x04
    ACK = 0x80
    NAK = 0x81
    KEY_COUNT = 0x82
    PIN_BLOCK = 0x83
    CANCELLED = 0x84
    TIMEOUT = 0x85
    ERROR = 0x86


class NakReason(IntEnum):
    """Why the pad refused a frame (NAK DATA)."""

    BAD_LRC = 0x01
    BAD_LENGTH = 0x02
    BAD_FRAME = 0x03  # wrong ETX
    TRUNCATED = 0x04
    UNKNOWN_COMMAND = 0x05
    BAD_DATA = 0x06
    KEY_CHECK_FAILED = 0x07
    NO_SESSION_KEY = 0x08
    BUSY = 0x09


class ErrorCode(IntEnum):
    """Pad-side failures ending a PROMPT (ERROR DATA)."""

    KEYPAD_FAULT = 0x01
    CRYPTO_FAULT = 0x02
    TAMPERED = 0x03
    INTERNAL = 0x04


class PromptMessage(IntEnum):
    """What the pad shows the holder."""

    ENTER_PIN = 0x01
    ENTER_NEW_PIN = 0x02
    CONFIRM_NEW_PIN = 0x03
    ENTER_OLD_PIN = 0x04


class CancelOrigin(IntEnum):
    """Who ended a PROMPT with CANCELLED."""

    HOLDER = 0x01
    HOST = 0x02


def lrc(data: bytes) -> int:
    """XOR of every byte of ``data``."""
    value = 0
    for b in data:
        value ^= b
    return value


# --- construct declarations -----------------------------------------------------------------

#: The part of a frame the LRC covers: LEN | SEQ | CMD | DATA.
FRAME_BODY = Struct(
    "length" / Rebuild(Int16ub, len_(this.data) + 2),
    "seq" / Int8ub,
    "cmd" / Int8ub,
    "data" / Bytes(this.length - 2),
)

#: A whole frame: STX | body | LRC | ETX.
FRAME = Struct(
    "stx" / Const(bytes([STX])),
    "body" / RawCopy(FRAME_BODY),
    "lrc" / Checksum(Int8ub, lrc, this.body.data),
    "etx" / Const(bytes([ETX])),
)

#: ACK DATA answering HELLO.
HELLO_INFO = Struct(
    "model" / PascalString(Int8ub, "ascii"),
    "serial" / PascalString(Int8ub, "ascii"),
    "firmware" / PascalString(Int8ub, "ascii"),
)

#: LOAD_SESSION_KEY DATA.
LOAD_SESSION_KEY = Struct(
    "encrypted_key" / Bytes(SESSION_KEY_LEN),
    "check_value" / Bytes(CHECK_VALUE_LEN),
)

#: PROMPT DATA.
PROMPT = Struct(
    "message" / Int8ub,
    "min_len" / Int8ub,
    "max_len" / Int8ub,
    "timeout_s" / Int8ub,
    "account" / Bytes(ACCOUNT_DIGITS),
)

#: One-byte DATA of NAK, KEY_COUNT, CANCELLED and ERROR.
CODE = Struct("code" / Int8ub)


# --- frames ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    """One decoded frame. ``repr`` never shows DATA (it may be a key or a PIN block)."""

    seq: int
    cmd: int
    data: bytes = b""

    def __repr__(self) -> str:
        return f"Frame(seq={self.seq}, cmd={cmd_name(self.cmd)}, data=<{len(self.data)} bytes>)"


def cmd_name(cmd: int) -> str:
    """Symbolic name of a command code, or its hex when unknown."""
    try:
        return Cmd(cmd).name
    except ValueError:
        return f"0x{cmd:02X}"


def build_frame(seq: int, cmd: int, data: bytes = b"") -> bytes:
    """Encode one frame."""
    if not 0 <= seq <= 0xFF or not 0 <= cmd <= 0xFF:
        raise ValueError("seq and cmd are single bytes")
    if len(data) > MAX_DATA:
        raise ValueError(f"DATA longer than {MAX_DATA} bytes")
    return FRAME.build({"body": {"value": {"seq": seq, "cmd": cmd, "data": data}}})


def parse_frame(raw: bytes) -> Frame:
    """Decode exactly one complete frame; raises :class:`FrameError` on any defect."""
    if len(raw) < OVERHEAD + MIN_LEN or raw[0] != STX:
        raise FrameError("no frame (missing STX or too short)", NakReason.BAD_FRAME)
    length = int.from_bytes(raw[1:3], "big")
    if not MIN_LEN <= length <= MAX_LEN or len(raw) != length + OVERHEAD:
        raise FrameError(f"bad frame length {length}", NakReason.BAD_LENGTH)
    seq = raw[3]
    if raw[-1] != ETX:
        raise FrameError("missing ETX", NakReason.BAD_FRAME, seq)
    try:
        parsed = FRAME.parse(raw)
    except ConstructError as exc:
        if raw[-2] != lrc(raw[1:-2]):
            raise FrameError("LRC mismatch", NakReason.BAD_LRC, seq) from None
        raise FrameError(f"malformed frame: {type(exc).__name__}", NakReason.BAD_FRAME) from None
    body = parsed.body.value
    return Frame(body.seq, body.cmd, bytes(body.data))


class FrameDecoder:
    """Incremental decoder for a byte stream; used by both the driver and the simulator.

    :meth:`feed` returns decoded :class:`Frame` objects and, in stream order, the
    :class:`FrameError` for each defective frame (returned, not raised, so one bad frame does not
    hide the good ones after it). Noise before STX is skipped and counted in ``noise_bytes``.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._started: float | None = None
        self.noise_bytes = 0

    @property
    def pending(self) -> bool:
        """True while a frame has started (STX seen) but is not complete."""
        return bool(self._buf)

    def started_at(self) -> float | None:
        """``time.monotonic()`` when the pending frame's STX arrived, None when nothing pends."""
        return self._started if self._buf else None

    def reset(self) -> FrameError | None:
        """Drop a pending partial frame; returns the TRUNCATED error for it, if there was one."""
        had = bool(self._buf)
        self._buf.clear()
        self._started = None
        return FrameError("truncated frame", NakReason.TRUNCATED) if had else None

    def feed(self, chunk: bytes) -> list[Frame | FrameError]:
        """Add received bytes; return what became complete."""
        out: list[Frame | FrameError] = []
        for b in chunk:
            if not self._buf and b != STX:
                self.noise_bytes += 1
                continue
            if not self._buf:
                self._started = time.monotonic()
            self._buf.append(b)
        while self._buf:
            if len(self._buf) < 3:
                break
            length = int.from_bytes(self._buf[1:3], "big")
            if not MIN_LEN <= length <= MAX_LEN:
                out.append(FrameError(f"bad frame length {length}", NakReason.BAD_LENGTH))
                self._resync()
                continue
            total = length + OVERHEAD
            if len(self._buf) < total:
                break
            raw = bytes(self._buf[:total])
            try:
                out.append(parse_frame(raw))
            except FrameError as exc:
                out.append(exc)
                del self._buf[:total]  # wrong ETX or LRC: drop the whole frame
                self._restart()
                continue
            del self._buf[:total]
            self._restart()
        return out

    def _resync(self) -> None:
        """Drop the current STX and look for the next one in what is buffered."""
        del self._buf[0]
        self._restart()

    def _restart(self) -> None:
        idx = self._buf.find(bytes([STX]))
        if idx < 0:
            self.noise_bytes += len(self._buf)
            self._buf.clear()
        else:
            self.noise_bytes += idx
            del self._buf[:idx]
        self._started = time.monotonic() if self._buf else None


# --- payloads -------------------------------------------------------------------------------


def encode_prompt(message: int, min_len: int, max_len: int, timeout_s: int, account: str) -> bytes:
    """PROMPT DATA; validates the ranges of the specification."""
    check_prompt_params(min_len, max_len, timeout_s, account)
    return PROMPT.build(
        {
            "message": int(message),
            "min_len": min_len,
            "max_len": max_len,
            "timeout_s": timeout_s,
            "account": account.encode("ascii"),
        }
    )


def check_prompt_params(min_len: int, max_len: int, timeout_s: int, account: str) -> None:
    """Raise ValueError unless the PROMPT parameters are within the specification."""
    if not PIN_MIN <= min_len <= max_len <= PIN_MAX:
        raise ValueError(f"need {PIN_MIN} <= min_len <= max_len <= {PIN_MAX}")
    if not 1 <= timeout_s <= 255:
        raise ValueError("timeout_s must be 1..255")
    if len(account) != ACCOUNT_DIGITS or not account.isascii() or not account.isdigit():
        raise ValueError(f"account must be {ACCOUNT_DIGITS} ASCII digits")


def describe(frame: Frame) -> str:
    """One trace line for a frame with every secret masked.

    LOAD_SESSION_KEY and PIN_BLOCK DATA are never shown; PROMPT shows its parameters but masks
    the account field; other DATA is shown in hex (HELLO identity as text).
    """
    name = cmd_name(frame.cmd)
    head = f"seq={frame.seq} {name}"
    data = frame.data
    try:
        if frame.cmd in (Cmd.LOAD_SESSION_KEY, Cmd.PIN_BLOCK):
            return f"{head} <{len(data)} bytes masked>"
        if frame.cmd == Cmd.PROMPT and len(data) == PROMPT.sizeof():
            p = PROMPT.parse(data)
            try:
                msg = PromptMessage(p.message).name
            except ValueError:
                msg = f"0x{p.message:02X}"
            return (
                f"{head} {msg} len={p.min_len}..{p.max_len} timeout={p.timeout_s}s account=<masked>"
            )
        if frame.cmd == Cmd.NAK and len(data) == 1:
            try:
                return f"{head} {NakReason(data[0]).name}"
            except ValueError:
                return f"{head} 0x{data[0]:02X}"
        if frame.cmd == Cmd.ERROR and len(data) == 1:
            try:
                return f"{head} {ErrorCode(data[0]).name}"
            except ValueError:
                return f"{head} 0x{data[0]:02X}"
        if frame.cmd in (Cmd.KEY_COUNT, Cmd.CANCELLED) and len(data) == 1:
            return f"{head} {data[0]}"
    except ConstructError:
        pass
    if not data:
        return head
    if frame.cmd == Cmd.ACK:
        try:
            info = HELLO_INFO.parse(data)
            return f"{head} model={info.model!r} serial={info.serial!r} fw={info.firmware!r}"
        except (ConstructError, UnicodeDecodeError):
            pass
    return f"{head} <{len(data)} bytes>"
