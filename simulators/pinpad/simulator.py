"""A simulated PIN pad on a pty, speaking the cardstation PIN pad protocol (pad side).

The device side of ``cardstation.drivers.pinpad.protocol``: :meth:`PinPadSimulator.start`
opens a pseudo-terminal and returns the slave's path, which the driver opens with pyserial like
any serial port. One thread runs the pad: it decodes frames, answers them, and applies
keystrokes from its "keyboard".

Keyboard (test-facing; these are the holder's fingers, not device commands):

- :meth:`type_digits`, :meth:`press_enter`, :meth:`press_cancel`, :meth:`press_clear` press
  keys *now*. As on a real pad, keys pressed while no PROMPT is active are ignored; tests that
  type from another thread call :meth:`wait_for_prompt` first.
- :meth:`script` pre-loads keystrokes (``["123456", "ENTER"]``): they wait in a queue and are
  consumed as soon as a PROMPT is active, up to the key that ends it (ENTER of a valid length,
  CANCEL); what is left waits for the next PROMPT (so a change-PIN flow can be scripted whole).
- :meth:`enter_keys` is the stdin mode of ``cardstation sim pinpad``: live if a PROMPT is
  active, otherwise pre-loaded like :meth:`script`.

Pad behaviour (as specified in the protocol): each accepted digit -> KEY_COUNT; digits beyond
max_len are ignored; CLEAR -> KEY_COUNT 0; ENTER with fewer than min_len digits is refused on
the pad (entry emptied, KEY_COUNT 0, keep waiting: a re-prompt, the deadline is not restarted);
ENTER with min_len..max_len digits -> PIN_BLOCK (CS-PB16 under the session key); CANCEL ->
CANCELLED(holder); no valid ENTER within timeout_s -> TIMEOUT. The typed digits live only in
this object, only while the PROMPT is active, and are never logged or reported.

Fault injection (:meth:`inject`, each one-shot): ``corrupt_frame`` (the next frame the pad
sends has a wrong LRC), ``no_reply`` (the next command is swallowed: no answer, no effect),
``wrong_check_value`` (the next LOAD_SESSION_KEY is checked as if the pad held another KEK, so
it fails with NAK KEY_CHECK_FAILED), ``keypad_fault`` (the next PROMPT is ACKed and then ends
with ERROR KEYPAD_FAULT).
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import select
import threading
import time
import tty
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final

from construct import ConstructError

from cardstation.drivers.pinpad.errors import FrameError
from cardstation.drivers.pinpad.pinblock import (
    TEST_PINPAD_KEK,
    encode_pin_block,
    encrypt_pin_block,
    unwrap_session_key,
)
from cardstation.drivers.pinpad.protocol import (
    HELLO_INFO,
    INTER_FRAME_TIMEOUT_S,
    LOAD_SESSION_KEY,
    PROMPT,
    CancelOrigin,
    Cmd,
    ErrorCode,
    Frame,
    FrameDecoder,
    NakReason,
    PromptMessage,
    build_frame,
    check_prompt_params,
    describe,
)

log = logging.getLogger("cardstation.simulators.pinpad")

FAULTS: Final = frozenset({"corrupt_frame", "no_reply", "wrong_check_value", "keypad_fault"})

_ENTER: Final = "E"
_CANCEL: Final = "C"
_CLEAR: Final = "X"
_KEY_NAMES: Final = {
    "ENTER": _ENTER,
    "OK": _ENTER,
    "CANCEL": _CANCEL,
    "ESC": _CANCEL,
    "CLEAR": _CLEAR,
    "CLR": _CLEAR,
}


def parse_keys(tokens: Iterable[str]) -> list[str]:
    """Turn tokens (digit strings; ENTER/OK, CANCEL/ESC, CLEAR/CLR, any case) into keys."""
    keys: list[str] = []
    for token in tokens:
        for word in token.split():
            name = word.upper()
            if name in _KEY_NAMES:
                keys.append(_KEY_NAMES[name])
            elif word.isascii() and word.isdigit():
                keys.extend(word)
            else:
                raise ValueError(f"not a key: {word!r} (digits, enter, cancel, clear)")
    return keys


@dataclass(frozen=True)
class PromptInfo:
    """The active prompt as the pad shows it (no account field, no digits)."""

    message: PromptMessage | int
    min_len: int
    max_len: int
    timeout_s: int


@dataclass
class _Prompt:
    seq: int
    info: PromptInfo
    account: str
    deadline: float
    digits: list[str] = field(default_factory=list, repr=False)


class PinPadSimulator:
    """A PIN pad on a pty. ``events`` (optional) receives one human-readable line per pad event
    (prompt shown, digit count, block sent, ...), never a digit."""

    def __init__(
        self,
        kek: bytes = TEST_PINPAD_KEK,
        *,
        model: str = "CSPP-SIM",
        serial: str = "SIM00000001",
        firmware: str = "1.0.0",
        events: Callable[[str], None] | None = None,
    ) -> None:
        self._kek = kek
        self._identity = HELLO_INFO.build({"model": model, "serial": serial, "firmware": firmware})
        self._events = events
        self._session_key: bytes | None = None
        self._prompt: _Prompt | None = None
        self._scripted: deque[str] = deque()
        self._live: queue.SimpleQueue[tuple[str, bool]] = queue.SimpleQueue()
        self._faults: set[str] = set()
        self._lock = threading.Lock()
        self._prompt_cv = threading.Condition(self._lock)
        self._decoder = FrameDecoder()
        self._master: int | None = None
        self._slave: int | None = None
        self._wake_r: int | None = None
        self._wake_w: int | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._path: str | None = None
        #: Commands received, by name, in order (for tests; frames' DATA is not kept).
        self.commands: list[str] = []
        #: How many times ENTER was refused for a too-short entry.
        self.short_entries = 0

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> str:
        """Open the pty, start the pad thread; return the slave path for pyserial."""
        if self._thread is not None:
            raise RuntimeError("already started")
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no ^C/^S handling: ETX is 0x03 and XON/XOFF are data
        self._path = os.ttyname(self._slave)
        self._wake_r, self._wake_w = os.pipe()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="pinpad-sim", daemon=True)
        self._thread.start()
        log.debug("PIN pad simulator on %s", self._path)
        return self._path

    def stop(self) -> None:
        """Stop the pad thread and close the pty."""
        if self._thread is None:
            return
        self._stop.set()
        self._wake()
        self._thread.join(timeout=5)
        self._thread = None
        for fd in (self._master, self._slave, self._wake_r, self._wake_w):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = self._wake_r = self._wake_w = None
        with self._lock:
            self._end_prompt()

    def __enter__(self) -> PinPadSimulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def path(self) -> str | None:
        """The pty slave path once started."""
        return self._path

    # --- state for tests ---------------------------------------------------------------------

    @property
    def has_session_key(self) -> bool:
        """True when a session key passed its check value."""
        return self._session_key is not None

    @property
    def prompt(self) -> PromptInfo | None:
        """The active prompt, or None when idle."""
        with self._lock:
            return self._prompt.info if self._prompt else None

    def wait_for_prompt(self, timeout: float = 5.0) -> bool:
        """Block until a PROMPT is active; False on timeout."""
        with self._prompt_cv:
            return self._prompt_cv.wait_for(lambda: self._prompt is not None, timeout)

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Block until no PROMPT is active; False on timeout."""
        with self._prompt_cv:
            return self._prompt_cv.wait_for(lambda: self._prompt is None, timeout)

    # --- keyboard ----------------------------------------------------------------------------

    def type_digits(self, digits: str) -> None:
        """Press digit keys now (ignored unless a PROMPT is active)."""
        self._press(parse_keys([digits]), hold_if_idle=False)

    def press_enter(self) -> None:
        """Press ENTER now."""
        self._press([_ENTER], hold_if_idle=False)

    def press_cancel(self) -> None:
        """Press CANCEL now."""
        self._press([_CANCEL], hold_if_idle=False)

    def press_clear(self) -> None:
        """Press CLEAR now."""
        self._press([_CLEAR], hold_if_idle=False)

    def script(self, tokens: Iterable[str]) -> None:
        """Pre-load keystrokes, consumed once a PROMPT is active (see the module docstring)."""
        keys = parse_keys(tokens)
        with self._lock:
            self._scripted.extend(keys)
        self._wake()

    def enter_keys(self, tokens: Iterable[str]) -> None:
        """Keys from a person: live while a PROMPT is active, else pre-loaded for the next one."""
        self._press(parse_keys(tokens), hold_if_idle=True)

    def inject(self, fault: str) -> None:
        """Arm a one-shot fault: corrupt_frame, no_reply, wrong_check_value, keypad_fault."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; one of {sorted(FAULTS)}")
        with self._lock:
            self._faults.add(fault)

    def _press(self, keys: list[str], hold_if_idle: bool) -> None:
        for key in keys:
            self._live.put((key, hold_if_idle))
        self._wake()

    def _wake(self) -> None:
        if self._wake_w is not None:
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"\0")

    # --- the pad -----------------------------------------------------------------------------

    def _run(self) -> None:
        assert self._master is not None and self._wake_r is not None
        while not self._stop.is_set():
            wait = 0.1
            with self._lock:
                if self._prompt is not None:
                    wait = max(0.0, min(wait, self._prompt.deadline - time.monotonic()))
                    if self._scripted:
                        wait = 0.0
            try:
                ready, _, _ = select.select([self._master, self._wake_r], [], [], wait)
            except (OSError, ValueError):
                break
            if self._wake_r in ready:
                with contextlib.suppress(OSError):
                    os.read(self._wake_r, 4096)
            if self._master in ready:
                try:
                    chunk = os.read(self._master, 4096)
                except OSError:
                    chunk = b""
                for item in self._decoder.feed(chunk):
                    self._handle(item)
            started = self._decoder.started_at()
            if started is not None and time.monotonic() - started > INTER_FRAME_TIMEOUT_S:
                err = self._decoder.reset()
                if err is not None:
                    self._handle(err)
            self._keys()
            with self._lock:
                if self._prompt is not None and time.monotonic() >= self._prompt.deadline:
                    self._finish(Cmd.TIMEOUT, b"", "timeout")

    def _keys(self) -> None:
        while True:
            try:
                key, hold = self._live.get_nowait()
            except queue.Empty:
                break
            with self._lock:
                if self._prompt is not None:
                    self._key(key)
                elif hold:
                    self._scripted.append(key)
        with self._lock:
            while self._prompt is not None and self._scripted:
                self._key(self._scripted.popleft())

    def _key(self, key: str) -> None:
        """Apply one key to the active prompt (lock held)."""
        p = self._prompt
        assert p is not None
        if key == _CANCEL:
            self._finish(Cmd.CANCELLED, bytes([CancelOrigin.HOLDER]), "cancelled by the holder")
        elif key == _CLEAR:
            p.digits.clear()
            self._count(p)
        elif key == _ENTER:
            if len(p.digits) < p.info.min_len:
                self.short_entries += 1
                p.digits.clear()
                self._emit("entry too short: refused, enter again")
                self._count(p)
                return
            pin = "".join(p.digits)
            p.digits.clear()
            assert self._session_key is not None
            block = encrypt_pin_block(encode_pin_block(pin, p.account), self._session_key)
            del pin
            self._finish(Cmd.PIN_BLOCK, block, "PIN block sent")
        elif len(p.digits) < p.info.max_len:
            p.digits.append(key)
            self._count(p)

    def _count(self, p: _Prompt) -> None:
        self._send(p.seq, Cmd.KEY_COUNT, bytes([len(p.digits)]))
        self._emit(f"digits entered: {len(p.digits)}")

    def _finish(self, cmd: Cmd, data: bytes, event: str) -> None:
        """End the active prompt with its final frame (lock held)."""
        assert self._prompt is not None
        seq = self._prompt.seq
        self._end_prompt()
        self._send(seq, cmd, data)
        self._emit(event)

    def _end_prompt(self) -> None:
        if self._prompt is not None:
            self._prompt.digits.clear()
            self._prompt = None
            self._prompt_cv.notify_all()

    def _handle(self, item: Frame | FrameError) -> None:
        with self._lock:
            if isinstance(item, FrameError):
                log.debug("PIN pad sim: bad frame: %s", item)
                self.commands.append(f"bad frame: {NakReason(item.reason).name}")
                self._send(item.seq or 0, Cmd.NAK, bytes([item.reason]))
                return
            log.debug("PIN pad sim < %s", describe(item))
            self.commands.append(describe(item).split(" ")[1])
            if "no_reply" in self._faults:
                self._faults.discard("no_reply")
                return
            self._command(item)

    def _command(self, f: Frame) -> None:
        """Answer one command (lock held)."""
        if f.cmd == Cmd.HELLO:
            self._send(f.seq, Cmd.ACK, self._identity)
        elif f.cmd == Cmd.LOAD_SESSION_KEY:
            self._load_key(f)
        elif f.cmd == Cmd.PROMPT:
            self._start_prompt(f)
        elif f.cmd == Cmd.CANCEL:
            if self._prompt is not None:
                self._finish(Cmd.CANCELLED, bytes([CancelOrigin.HOST]), "cancelled by the host")
            self._send(f.seq, Cmd.ACK)
        else:
            self._nak(f.seq, NakReason.UNKNOWN_COMMAND)

    def _load_key(self, f: Frame) -> None:
        if self._prompt is not None:
            self._nak(f.seq, NakReason.BUSY)
            return
        try:
            payload = LOAD_SESSION_KEY.parse(f.data)
            if len(f.data) != LOAD_SESSION_KEY.sizeof():
                raise ValueError("size")
        except (ConstructError, ValueError):
            self._nak(f.seq, NakReason.BAD_DATA)
            return
        kek = self._kek
        if "wrong_check_value" in self._faults:
            self._faults.discard("wrong_check_value")
            kek = bytes(b ^ 0xFF for b in kek)
        try:
            key = unwrap_session_key(payload.encrypted_key, payload.check_value, kek)
        except ValueError:
            self._session_key = None
            self._nak(f.seq, NakReason.KEY_CHECK_FAILED)
            self._emit("session key rejected (check value)")
            return
        self._session_key = key
        self._send(f.seq, Cmd.ACK)
        self._emit("session key loaded")

    def _start_prompt(self, f: Frame) -> None:
        if self._prompt is not None:
            self._nak(f.seq, NakReason.BUSY)
            return
        try:
            if len(f.data) != PROMPT.sizeof():
                raise ValueError("size")
            p = PROMPT.parse(f.data)
            account = p.account.decode("ascii")
            check_prompt_params(p.min_len, p.max_len, p.timeout_s, account)
        except (ConstructError, ValueError, UnicodeDecodeError):
            self._nak(f.seq, NakReason.BAD_DATA)
            return
        if self._session_key is None:
            self._nak(f.seq, NakReason.NO_SESSION_KEY)
            return
        try:
            message: PromptMessage | int = PromptMessage(p.message)
        except ValueError:
            message = p.message
        info = PromptInfo(message, p.min_len, p.max_len, p.timeout_s)
        self._send(f.seq, Cmd.ACK)
        self._prompt = _Prompt(f.seq, info, account, time.monotonic() + p.timeout_s)
        self._prompt_cv.notify_all()
        name = message.name if isinstance(message, PromptMessage) else f"0x{message:02X}"
        self._emit(f"prompt {name}: {p.min_len}..{p.max_len} digits, {p.timeout_s} s")
        if "keypad_fault" in self._faults:
            self._faults.discard("keypad_fault")
            self._finish(Cmd.ERROR, bytes([ErrorCode.KEYPAD_FAULT]), "keypad fault")

    def _nak(self, seq: int, reason: NakReason) -> None:
        self._send(seq, Cmd.NAK, bytes([reason]))

    def _send(self, seq: int, cmd: Cmd, data: bytes = b"") -> None:
        frame = build_frame(seq, cmd, data)
        if "corrupt_frame" in self._faults:
            self._faults.discard("corrupt_frame")
            frame = frame[:-2] + bytes([frame[-2] ^ 0x5A]) + frame[-1:]
        log.debug("PIN pad sim > %s", describe(Frame(seq, cmd, data)))
        view = memoryview(frame)
        while view and self._master is not None:
            try:
                n = os.write(self._master, view)
            except BlockingIOError:
                time.sleep(0.01)
                continue
            except OSError:
                return
            view = view[n:]

    def _emit(self, event: str) -> None:
        if self._events is not None:
            try:
                self._events(event)
            except Exception:
                log.exception("PIN pad sim: event callback failed")
