"""Host driver of the cardstation PIN pad protocol (``protocol.py``) over pyserial.

The driver never sees a PIN: it sends the session key the caller made (already encrypted under
the pad's KEK), shows the operator the *number* of digits typed through ``on_progress``, and
returns the encrypted PIN block. Decrypting it is :class:`~.pinblock.SessionKeys`' job.

Every frame is traced at DEBUG on the ``cardstation.pinpad`` logger (and to the optional
``trace`` callable) through :func:`~.protocol.describe`, which masks session keys, PIN blocks
and the account field.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

import serial
from construct import ConstructError

from cardstation.drivers.pinpad.errors import (
    FrameError,
    PinPadCancelled,
    PinPadError,
    PinPadNotResponding,
    PinPadRejected,
    PinPadTimeout,
)
from cardstation.drivers.pinpad.protocol import (
    ACCOUNT_DIGITS,
    CHECK_VALUE_LEN,
    HELLO_INFO,
    PIN_BLOCK_LEN,
    SESSION_KEY_LEN,
    CancelOrigin,
    Cmd,
    Frame,
    FrameDecoder,
    PromptMessage,
    build_frame,
    describe,
    encode_prompt,
)

log = logging.getLogger("cardstation.pinpad")

#: How long each serial read may block; bounds the latency of cancel and deadlines.
_POLL_S = 0.05


@dataclass(frozen=True)
class PinPadInfo:
    """The pad's identity, from HELLO."""

    model: str
    serial: str
    firmware: str


def _prompt_message(prompt: str | PromptMessage) -> PromptMessage:
    if isinstance(prompt, PromptMessage):
        return prompt
    try:
        return PromptMessage[prompt.strip().upper()]
    except KeyError:
        names = ", ".join(m.name for m in PromptMessage)
        raise ValueError(f"unknown prompt {prompt!r}; one of {names}") from None


class PinPad:
    """One PIN pad on a serial line (a device path, or any ``serial_for_url`` URL).

    ``timeout`` bounds the wait for the answer to a command (ACK/NAK) and is added to a
    prompt's ``timeout_s`` as the grace for the pad's own TIMEOUT frame. The methods are not
    meant to be called concurrently, except :meth:`cancel`, which may be called from another
    thread (or from ``on_progress``) while :meth:`read_pin_block` waits.
    """

    def __init__(
        self,
        port_or_url: str,
        timeout: float = 2.0,
        *,
        baudrate: int = 9600,
        trace: Callable[[str], None] | None = None,
    ) -> None:
        try:
            self._port = serial.serial_for_url(
                port_or_url, baudrate=baudrate, timeout=_POLL_S, write_timeout=timeout
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise PinPadNotResponding(f"cannot open PIN pad port {port_or_url}: {exc}") from exc
        self.timeout = timeout
        self._trace = trace
        self._decoder = FrameDecoder()
        self._frames: deque[Frame | FrameError] = deque()
        self._io_lock = threading.RLock()
        self._write_lock = threading.Lock()
        self._seq = 0
        self._prompt_active = False
        self._cancel_seq: int | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        """Close the serial port."""
        self._port.close()

    def __enter__(self) -> PinPad:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- commands ----------------------------------------------------------------------------

    def hello(self) -> PinPadInfo:
        """HELLO: the pad's model, serial number and firmware version."""
        answer = self._command(Cmd.HELLO)
        try:
            info = HELLO_INFO.parse(answer.data)
        except (ConstructError, UnicodeDecodeError) as exc:
            raise FrameError(f"malformed HELLO identity: {type(exc).__name__}") from None
        return PinPadInfo(model=info.model, serial=info.serial, firmware=info.firmware)

    def load_session_key(self, encrypted_key: bytes, check_value: bytes) -> None:
        """LOAD_SESSION_KEY: the 16-byte session key encrypted under the pad's KEK and its 4-byte
        check value (both from :meth:`SessionKeys.new_session`). Raises :class:`PinPadRejected`
        (code ``NakReason.KEY_CHECK_FAILED``) when the pad's check fails."""
        if len(encrypted_key) != SESSION_KEY_LEN or len(check_value) != CHECK_VALUE_LEN:
            raise ValueError(
                f"need a {SESSION_KEY_LEN}-byte key and a {CHECK_VALUE_LEN}-byte check value"
            )
        self._command(Cmd.LOAD_SESSION_KEY, encrypted_key + check_value)

    def read_pin_block(
        self,
        prompt: str | PromptMessage,
        min_len: int = 6,
        max_len: int = 6,
        timeout_s: int = 30,
        account: str = "0" * ACCOUNT_DIGITS,
        on_progress: Callable[[int], None] | None = None,
    ) -> bytes:
        """PROMPT the holder and return the 16-byte PIN block ENCRYPTED under the session key.

        ``prompt`` names a :class:`PromptMessage` (``"ENTER_PIN"``, ``"ENTER_NEW_PIN"``,
        ``"CONFIRM_NEW_PIN"``, ``"ENTER_OLD_PIN"``). ``on_progress`` receives the number of
        digits entered so far (0 after CLEAR or a refused short entry) for the operator's screen.

        Raises :class:`PinPadCancelled`, :class:`PinPadTimeout`, :class:`PinPadError` (ERROR
        frame), :class:`PinPadRejected` (NAK, e.g. no session key), :class:`PinPadNotResponding`,
        :class:`FrameError`. If the call ends other than by the pad's final frame or a NAK (a
        frame error, no answer, an exception from ``on_progress``), the driver sends CANCEL so
        the pad cannot stay prompting.
        """
        message = _prompt_message(prompt)
        data = encode_prompt(message, min_len, max_len, timeout_s, account)
        with self._io_lock:
            # Active from before the PROMPT leaves, so a concurrent cancel() never waits for the
            # I/O lock: the pad handles PROMPT then CANCEL in order.
            self._prompt_active = True
            finished = False
            try:
                self._forget_stale()
                seq = self._send(Cmd.PROMPT, data)
                try:
                    self._expect_ack(seq, time.monotonic() + self.timeout)
                except PinPadRejected:
                    finished = True  # NAK: no prompt running on the pad
                    raise
                block = self._await_entry(seq, timeout_s, on_progress)
                finished = True
                return block
            except (PinPadCancelled, PinPadTimeout, PinPadError):
                finished = True  # the pad ended the prompt itself
                raise
            finally:
                self._prompt_active = False
                if not finished:
                    self._abort_prompt(seq)

    def cancel(self) -> None:
        """CANCEL. While :meth:`read_pin_block` waits (another thread, or ``on_progress``), this
        only sends the command; that call then raises ``PinPadCancelled(by_holder=False)``.
        Otherwise it waits for the pad's ACK."""
        if self._prompt_active:
            self._cancel_seq = self._send(Cmd.CANCEL)
            return
        self._command(Cmd.CANCEL)

    # --- internals ---------------------------------------------------------------------------

    def _await_entry(
        self, seq: int, timeout_s: int, on_progress: Callable[[int], None] | None
    ) -> bytes:
        deadline = time.monotonic() + timeout_s + self.timeout
        while True:
            frame = self._receive(deadline)
            if frame is None:
                raise PinPadNotResponding(f"no end of PIN entry within {timeout_s} s + grace")
            if frame.seq != seq:
                self._stale(frame)
                continue
            if frame.cmd == Cmd.KEY_COUNT and len(frame.data) == 1:
                if on_progress is not None:
                    on_progress(frame.data[0])
            elif frame.cmd == Cmd.PIN_BLOCK:
                if len(frame.data) != PIN_BLOCK_LEN:
                    raise FrameError(f"PIN_BLOCK of {len(frame.data)} bytes")
                return frame.data
            elif frame.cmd == Cmd.CANCELLED:
                by_holder = frame.data != bytes([CancelOrigin.HOST])
                if not by_holder:
                    self._drain_cancel_ack()
                raise PinPadCancelled(by_holder=by_holder)
            elif frame.cmd == Cmd.TIMEOUT:
                raise PinPadTimeout(f"no PIN entered within {timeout_s} s")
            elif frame.cmd == Cmd.ERROR:
                raise PinPadError(frame.data[0] if frame.data else 0)
            elif frame.cmd == Cmd.NAK:
                raise PinPadRejected(frame.data[0] if frame.data else 0)
            else:
                raise FrameError(f"unexpected {describe(frame)} during PIN entry")

    def _abort_prompt(self, seq: int) -> None:
        """Best effort: cancel the pad's prompt after a host-side failure and drain its end."""
        try:
            cancel_seq = self._send(Cmd.CANCEL)
            deadline = time.monotonic() + self.timeout
            while (frame := self._receive(deadline)) is not None:
                if frame.seq == cancel_seq and frame.cmd in (Cmd.ACK, Cmd.NAK):
                    break
        except Exception as exc:  # the original error is the one that matters
            log.debug("PIN pad: cancelling the prompt after a failure: %s", type(exc).__name__)

    def _drain_cancel_ack(self) -> None:
        cancel_seq, self._cancel_seq = self._cancel_seq, None
        if cancel_seq is None:
            return
        deadline = time.monotonic() + self.timeout
        with contextlib.suppress(FrameError):
            while (frame := self._receive(deadline)) is not None:
                if frame.seq == cancel_seq:
                    return
                self._stale(frame)

    def _forget_stale(self) -> None:
        """Before a new command: frames and frame errors decoded before it was sent answer
        nothing the driver still waits for (late answers, line noise); left queued, each
        would be taken for the new command's answer, failing the next commands one by one."""
        if self._frames:
            log.debug("PIN pad: dropping %d stale frames before a command", len(self._frames))
            self._frames.clear()

    def _command(self, cmd: Cmd, data: bytes = b"") -> Frame:
        with self._io_lock:
            self._forget_stale()
            seq = self._send(cmd, data)
            return self._expect_ack(seq, time.monotonic() + self.timeout)

    def _expect_ack(self, seq: int, deadline: float) -> Frame:
        while True:
            frame = self._receive(deadline)
            if frame is None:
                raise PinPadNotResponding(f"no answer from the PIN pad (seq {seq})")
            if frame.cmd == Cmd.NAK and frame.seq in (seq, 0):
                raise PinPadRejected(frame.data[0] if frame.data else 0)
            if frame.seq != seq:
                self._stale(frame)
                continue
            if frame.cmd == Cmd.ACK:
                return frame
            raise FrameError(f"expected ACK, got {describe(frame)}")

    def _stale(self, frame: Frame) -> None:
        log.debug("PIN pad: ignoring stale frame %s", describe(frame))

    def _next_seq(self) -> int:
        self._seq = self._seq % 255 + 1
        return self._seq

    def _send(self, cmd: Cmd, data: bytes = b"") -> int:
        with self._write_lock:
            seq = self._next_seq()
            frame = Frame(seq, cmd, data)
            self._log(">", frame)
            try:
                self._port.write(build_frame(seq, cmd, data))
                self._port.flush()
            except (serial.SerialException, OSError) as exc:
                raise PinPadNotResponding(f"cannot write to the PIN pad: {exc}") from exc
            return seq

    def _receive(self, deadline: float) -> Frame | None:
        """Next frame before ``deadline``; None if nothing complete came. FrameError on a
        defective frame, or when a frame started but did not finish by the deadline."""
        while not self._frames:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                err = self._decoder.reset()
                if err is not None:
                    raise err
                return None
            try:
                chunk = self._port.read(max(1, self._port.in_waiting))
            except (serial.SerialException, OSError) as exc:
                raise PinPadNotResponding(f"cannot read from the PIN pad: {exc}") from exc
            self._frames.extend(self._decoder.feed(chunk))
        item = self._frames.popleft()
        if isinstance(item, FrameError):
            log.debug("PIN pad: bad frame from the pad: %s", item)
            raise item
        self._log("<", item)
        return item

    def _log(self, direction: str, frame: Frame) -> None:
        line = f"{direction} {describe(frame)}"
        log.debug("PIN pad %s", line)
        if self._trace is not None:
            self._trace(line)
